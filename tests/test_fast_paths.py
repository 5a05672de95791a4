"""Guards for the fast paths (see benchmarks/): they must give what the plain ones gave.

- `diffcli grad --json` on small programs from ../shared/bench/genprog.py matches results saved from
  diffcli before it was optimised (tests/data/reference/).
- diffcli's own LALR loop (parser._FastParser) accepts exactly what Lark's parser accepts, and builds
  the tree Lark builds, on the samples, the conformance cases and random token soup.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from conftest import SAMPLES, SHARED, run_diffcli
import diffcli
from diffcli.language import parser
from diffcli.errors import DiffcliError
from diffcli.language.syntax import Assignment, Binary, Call, Name, Number, Paren, UncertainAssignment, Unary

REFERENCE = Path(__file__).parent / "data" / "reference"


@pytest.mark.parametrize("name", ["chain_200", "wide_200", "deep_200", "mlp_3"])
def test_same_results_as_before_optimisation(name):
    done = run_diffcli("grad", REFERENCE / f"{name}.expr", "--json")
    assert done.returncode == 0, done.stderr_text
    got = json.loads(done.stdout_text)
    want = json.loads((REFERENCE / f"{name}.json").read_text(encoding="utf-8"))
    assert got["output"] == want["output"]
    for key in ("inputs", "values"):  # the forward pass does the same operations in the same order
        assert got[key] == want[key], key
        assert list(got[key]) == list(want[key]), key
    # the reverse pass may add a node's contributions in another order: equal up to rounding
    assert list(got["gradients"]) == list(want["gradients"])
    for variable, value in want["gradients"].items():
        assert math.isclose(got["gradients"][variable], value, rel_tol=1e-12, abs_tol=1e-300), variable


# ---------------------------------------------------------------- the fast parser against Lark's

def _from_lark(tree):
    """Lark's parse tree (no transformer) -> the shape `_from_ast` gives."""
    if isinstance(tree, Token):
        return tree
    kind, kids = tree.data, tree.children
    if kind == "number":
        return ("number", float(kids[0]), kids[0].start_pos, kids[0].end_pos)
    if kind == "name":
        return ("name", str(kids[0]), kids[0].start_pos, kids[0].end_pos)
    if kind == "binary":
        return ("binary", kids[1].type, kids[1].start_pos, _from_lark(kids[0]), _from_lark(kids[2]))
    if kind == "implicit":
        right = _from_lark(kids[1])
        return ("implicit", _from_lark(kids[0]), right)
    if kind == "unary":
        return ("unary", kids[0].type, kids[0].start_pos, _from_lark(kids[1]))
    if kind == "paren":
        return ("paren", kids[0].start_pos, kids[2].end_pos, _from_lark(kids[1]))
    if kind == "call":
        args = [_from_lark(a) for a in kids[2].children if isinstance(a, Tree)]
        return ("call", str(kids[0]), kids[0].start_pos, kids[3].end_pos, args)
    if kind == "stmt":
        return ("stmt", str(kids[0]), kids[0].start_pos, _from_lark(kids[2]))
    if kind == "uncertain":
        relative = len(kids) == 6 and kids[5] is not None
        amount = float(kids[4]) / (100 if relative else 1)
        return ("uncertain", str(kids[0]), kids[0].start_pos, _from_lark(kids[2]), amount, relative,
                (kids[3].start_pos, kids[3].end_pos))
    assert kind == "start", kind
    return [_from_lark(k) for k in kids]


_BINARY = {"add": ("PLUS", "MINUS"), "sub": ("MINUS",), "mul": ("STAR",), "div": ("SLASH",), "pow": ("POW",)}


def _from_ast(node):
    if isinstance(node, list):
        return [_from_ast(n) for n in node]
    if isinstance(node, UncertainAssignment):
        return ("uncertain", node.name, node.start, _from_ast(node.expr), node.amount, node.relative, node.at)
    if isinstance(node, Assignment):
        return ("stmt", node.name, node.start, _from_ast(node.expr))
    if isinstance(node, Number):
        return ("number", node.value, node.start, node.end)
    if isinstance(node, Name):
        return ("name", node.id, node.start, node.end)
    if isinstance(node, Binary):
        if node.implicit:
            return ("implicit", _from_ast(node.left), _from_ast(node.right))
        kind = {"add": "PLUS", "sub": "MINUS", "mul": "STAR", "div": "SLASH", "pow": "POW"}[node.op]
        return ("binary", kind, node.op_start, _from_ast(node.left), _from_ast(node.right))
    if isinstance(node, Unary):
        return ("unary", "MINUS" if node.op == "neg" else "PLUS", node.start, _from_ast(node.operand))
    if isinstance(node, Paren):
        return ("paren", node.start, node.end, _from_ast(node.inner))
    assert isinstance(node, Call)
    return ("call", node.func, node.start, node.end, [_from_ast(a) for a in node.args])


def _both(text: str):
    """(what the fast parser gives, what Lark gives): a tree; "error" (with Lark, and where);
    or for the fast parser a DiffcliError its builder raised (a product after a name, a huge number)."""
    try:
        fast = parser._FastParser.get().parse(text)
        fast = "error" if fast is None else _from_ast(fast[0])
    except DiffcliError as error:
        fast = error
    try:
        lark = _from_lark(parser._parser().parse(text))
    except UnexpectedInput as error:
        at_end = getattr(error, "token", None) is not None and error.token.type == "$END"
        lark = ("error", len(text) if at_end or error.pos_in_stream is None else error.pos_in_stream)
    return fast, lark


def _check_same(text: str):
    fast, lark = _both(text)
    if isinstance(fast, DiffcliError):
        # the builder refused what the grammar allows, before any syntax error Lark finds
        assert lark[0] != "error" or lark[1] >= fast.span[1], (text, fast, lark)
    elif fast == "error":
        assert lark[0] == "error", text
    else:
        assert fast == lark, text


def _programs():
    files = sorted(SAMPLES.glob("*.expr")) + sorted(REFERENCE.glob("*.expr"))
    files += sorted((SHARED / "conformance").glob("*/*.expr"))
    return files


@pytest.mark.parametrize("path", _programs(), ids=lambda p: p.name)
def test_fast_parser_agrees_with_lark_on_files(path):
    _check_same(path.read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff"))


_PIECES = ["a", "b1", "θ", "_x", "2", "3.", ".5", "1e3", "2e", "2e-3", "1e999", "pi", "sin", "max",
           "+", "-", "*", "**", "^", "/", "(", ")", ",", "=", " ", "\t", "\n", "\r\n", "\r", ";",
           "# note\n", "@", "!", "x = ", "y = 2", "\n(", ")\n", "±", "+/-", "%", " ± 0.1", "±5%"]


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_fast_parser_agrees_with_lark_on_token_soup(pieces):
    _check_same("".join(pieces))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=20))
def test_fast_parser_agrees_with_lark_on_statements(pieces):
    _check_same("x = " + "".join(pieces))


def test_long_table_is_plain_and_complete(tmp_path):
    from diffcli.renderers.report import PLAIN_TABLE_ROWS

    n = PLAIN_TABLE_ROWS + 1
    lines = ["x0 = 1"] + [f"x{i} = x{i - 1} + 0.5*sin(x{i - 1}) + {i}" for i in range(1, n)]
    path = tmp_path / "long.expr"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_diffcli("grad", path)
    assert done.returncode == 0, done.stderr_text
    out = done.stdout_text.splitlines()
    want = json.loads(run_diffcli("grad", path, "--json").stdout_text)
    assert out[0] == f"diffcli grad {path}: x{n - 1} = {_six(want['value'])}"
    assert out[1].split() == ["name", "definition", "value", f"∂x{n - 1}/∂name"]
    rows = out[3:-1]
    assert len(rows) == n
    assert rows[0].split() == ["x0", "(input)", "input", "1", _six(want["gradients"]["x0"])]
    last = rows[-1].split()
    assert last[:2] == [f"x{n - 1}", "(output)"] and last[-2:] == [_six(want["value"]), "1"]
    assert "┃" not in done.stdout_text


def _six(x: float) -> str:
    from diffcli.formatting import number

    return number(x, 6)


@pytest.mark.parametrize("path", _programs(), ids=lambda p: p.name)
def test_parser_gathers_what_build_would_find(path):
    """graph.build walks the statements itself when not given the parser's `Parsed`: the same."""
    from diffcli.errors import Source
    from diffcli.language.graph import _gather

    try:
        parsed = parser.parse_with_nodes(Source(path.read_text(encoding="utf-8").lstrip("\ufeff")))
    except (DiffcliError, UnicodeDecodeError):
        return
    found = _gather(parsed.statements)
    assert found.nodes == parsed.nodes
    assert found.uses == parsed.uses
    assert sorted(found.calls, key=id) == sorted(parsed.calls, key=id)


# ---------------------------------------------------------------- syntax errors without Lark's parse

def _stops_alike(text: str):
    """Where the fast parser stops on a syntax error (and what it would have taken there) is where
    Lark's parser stops: the diagnostics are made from the fast parser's stop alone."""
    fast = parser._FastParser.get()
    try:
        if fast.parse(text) is not None:
            return
    except DiffcliError:
        return
    token, expected = fast.stop.token, fast.stop.expected
    # `+/-` where `±` cannot stand: Lark's contextual lexer reads it as `+` `/` `-` there and stops
    # at the `+` or the `/`; the fast scanner takes it whole, and says `±` is out of place
    plus_minus_out_of_place = token.type == "PLUSMINUS" and text.startswith("+/-", token.start)
    try:
        parser._parser().parse(text)
    except UnexpectedCharacters as error:  # (Lark's lexer says so too of a token out of place)
        assert token.start == error.pos_in_stream, text
        return
    except UnexpectedToken as error:
        lark = error.token
        start = len(text) if lark.type == "$END" else lark.start_pos
        if lark.type == "_SEP":  # Lark's separator takes the blanks before it; diffcli skips them
            start += len(lark) - len(lark.lstrip(" \t\f"))
        if plus_minus_out_of_place:
            assert start in (token.start, token.start + 1), text
            return
        assert (token.type, token.start) == (lark.type, start), text
        # the terminals a diagnostic names (Lark's lexer adds `_SEP`, which it always accepts)
        assert expected & set(parser._SYMBOLS) == set(error.expected) & set(parser._SYMBOLS), text
        return
    raise AssertionError(f"Lark accepted {text!r}")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=24))
def test_fast_parser_stops_where_lark_does(pieces):
    _stops_alike("".join(pieces))
    _stops_alike("x = " + "".join(pieces))


def test_a_syntax_error_is_described_without_lark_parsing(monkeypatch):
    """Lark's own parse of a 2,000,000-term line cost 30 s and 2.8 GB: it is never run."""
    from lark import Lark

    parser._FastParser.get()

    def refuse(*args, **kwargs):
        raise AssertionError("Lark parsed or lexed the text")

    monkeypatch.setattr(Lark, "parse", refuse)
    monkeypatch.setattr(Lark, "lex", refuse)
    text = "y = " + "+".join(["x"] * 20_000) + " +\n"
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text)
    assert caught.value.message == "expected an expression after `+`, found end of line"
    assert caught.value.span == (len(text) - 1, len(text))


def test_scanner_tries_array_tokens_after_every_scalar_one():
    # A scalar program's tokens would otherwise be tried against the array literal's long pattern
    # first: on a 100,000-statement chain that cost 3% of its instructions (benchmarks/RESULTS.md).
    kinds = [kind for kind in parser._FastParser.get().kinds if kind is not None]
    array_only = {"NUMBERS", "LSQB", "RSQB", "AT", "COLON"}
    first_array = min(kinds.index(kind) for kind in array_only)
    assert all(kind in array_only or kind in ("BAD", "$END") for kind in kinds[first_array:]), kinds
    assert kinds.index("NUMBERS") < kinds.index("LSQB")  # Lark's order where both match
