"""Text -> AST. The only module that knows Lark.

The grammar lives in `grammars/expr.lark` (packaged into the wheel as `diffcli/language/expr.lark`) and is
the one definition of the syntax. Lark compiles it into an LALR(1) table, which ships beside this
module as JSON (`expr_table.json`, made by `scripts/make_parse_table.py`; a test checks that it is
the grammar's), so that start-up neither compiles the grammar nor loads Lark's pickle cache from the
shared temporary directory, where anyone could plant one. `_FastParser` runs that table itself and calls `_Builder` as it reduces, so the
AST is built during the parse and no parse tree is ever made. The table also holds, already read out of
Lark's part, what `_FastParser` needs (`fast_data`), so that start-up does not load Lark's part, nor
import Lark at all (a tenth of a command's start-up): Lark is only used when the shipped table is
stale and the grammar must be compiled. A syntax
error is placed from where `_FastParser` stopped, as a `DiffcliError` of kind "syntax" for a person.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import DiffcliError, Source
from ..ops import ARRAY_FUNCTIONS, CONSTRUCTORS, FUNCTIONS
from .syntax import (Array, Assignment, Binary, Call, Expr, Index, Keyword, Name, Number, Paren, Parsed,
                     UncertainAssignment, Unary, literal_number)

if TYPE_CHECKING:
    from lark import Lark

_BINARY_OPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "POW": "pow", "AT": "matmul"}
# calls that make a program an array program (`max(x)` of one argument too)
_ARRAY_CALLS = frozenset(ARRAY_FUNCTIONS) | frozenset(CONSTRUCTORS)
_OPENING, _CLOSING = ("LPAR", "LSQB"), ("RPAR", "RSQB")
_ROW = re.compile(r"\[[^\[\]]*\]")
_SIGNED_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_UNARY_OPS = {"MINUS": "neg", "PLUS": "pos"}
_OPENS, _CLOSES, _SEPARATES = 1, 2, 3  # the roles of tokens in the parse (_FastParser.roles)
# the scanner's first alternatives (the commonest tokens); the rest follow, then separators, and
# the tokens only arrays use last, so that a scalar program's tokens are not tried against them
# (they cost a chain of 100,000 statements 3% of its instructions when they came before `+`)
_SCAN_ORDER = {"NAME": 0, "NUMBER": 1, "_SEP": 3, "NUMBERS": 4, "LSQB": 4, "RSQB": 4, "AT": 4, "COLON": 4}


def grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "expr.lark"
    return packaged if packaged.exists() else here.parent.parent / "grammars" / "expr.lark"


_COMMENT = re.compile("#[^\n]*")


def holds_semicolon(separator: str) -> bool:
    """Whether a separator token (blanks, line breaks, `;` and comments) holds a `;` that ends a
    statement: one outside its comments, which run to the end of their line whatever they hold."""
    return ";" in separator and ";" in _COMMENT.sub("", separator)


class _ParenNewlines:
    """Post-lexer: a line break inside open parentheses or brackets does not end the statement."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for token in stream:
            kind = token.type
            if kind in _OPENING:
                depth += 1
            elif kind in _CLOSING:
                if depth:
                    depth -= 1
            elif kind == "_SEP" and depth and not holds_semicolon(token):
                continue
            yield token


TABLE_PATH = Path(__file__).resolve().parent / "expr_table.json"

_lark: Lark | None = None


def _parser() -> Lark:
    global _lark
    if _lark is None:
        grammar = grammar_path().read_text(encoding="utf-8")
        table = _shipped_table(grammar)
        if table is None:  # the grammar was edited, or another Lark: compile it (0.04 s)
            _lark = _compile(grammar)
        else:
            from lark import Lark

            _lark = Lark._load_from_dict(table["data"], table["memo"], postlex=_ParenNewlines())
    return _lark


_signed_number: re.Pattern | None = None


def read_number(text: str) -> float | None:
    """`text` as a signed number in the language's own syntax (the grammar's NUMBER: ASCII digits,
    no `_`, `inf` or `nan`), else None: what `--set` accepts."""
    global _signed_number
    if _signed_number is None:
        number = _FastParser.get().number
        _signed_number = re.compile(f"[+-]?(?:{number})")
    return float(text) if _signed_number.fullmatch(text) else None


def split_settings(text: str) -> list[str]:
    """`a=2,x=[1,2],o=1` -> its settings: commas inside brackets do not separate them."""
    parts, depth, begin = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            parts.append(text[begin:i])
            begin = i + 1
    parts.append(text[begin:])
    return parts


def read_array(text: str) -> list | None:
    """`[1, -2]` or `[[1, 2], [3, 4]]` in the language's number syntax, as nested lists of floats:
    a vector, or a matrix of rows of one length. None if it is not one (unbalanced, empty, ragged,
    deeper than two levels, or not numbers): what `--set x=[...]` accepts."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    inner = text[1:-1].strip()
    if inner.startswith("["):  # a matrix: rows
        rows, depth, begin = [], 0, 0
        for i, char in enumerate(inner):
            if char == "[":
                depth += 1
                if depth > 1:
                    return None
                begin = i
            elif char == "]":
                depth -= 1
                if depth < 0:
                    return None
                rows.append(read_array(inner[begin:i + 1]))
            elif depth == 0 and char not in ", \t":
                return None
        if depth or not rows or any(row is None for row in rows) or len({len(row) for row in rows}) != 1:
            return None
        return rows
    pieces = [piece.strip() for piece in inner.split(",")]
    if pieces and pieces[-1] == "" and len(pieces) > 1:
        pieces.pop()  # a trailing comma, as in the language
    numbers = [read_number(piece) for piece in pieces]
    if not numbers or any(x is None or not math.isfinite(x) for x in numbers):
        return None
    return numbers


def _compile(grammar: str) -> Lark:
    from lark import Lark

    # never cache=True: Lark would unpickle a file from the shared temporary directory
    return Lark(grammar, parser="lalr", lexer="contextual", postlex=_ParenNewlines(),
                maybe_placeholders=True)


def table_data(grammar: str) -> dict:
    """Lark's serialized parser for `grammar`, as plain JSON data (what expr_table.json holds)."""
    import lark
    from lark import Lark
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = _compile(grammar).memo_serialize([TerminalDef, Rule])
    del data["options"]["postlex"]  # an object: given again on loading
    # the grammar itself rather than a digest of it: start-up then compares texts, and imports no hashlib
    table = {"lark": lark.__version__, "grammar": grammar, "data": data, "memo": memo}
    # as it reads back from JSON: tuples become lists, integer keys strings
    table = json.loads(json.dumps(table), object_hook=_int_keys)
    # and what _FastParser reads of that table as Lark loads it, so that start-up need not load it
    table["fast"] = fast_data(Lark._load_from_dict(table["data"], table["memo"], postlex=_ParenNewlines()))
    return table


def fast_data(instance: Lark) -> dict:
    """What `_FastParser` reads of a Lark LALR parser, as plain JSON data: the terminals (name,
    regex, priority, widest match, length of the pattern), the ignored ones, the states with their
    actions in Lark's order (a shift's next state, or -1 - the index of the rule it reduces), the
    rules (name, alias, expand1, and each symbol's name, is_term and filter_out), and the start
    and end states."""
    from lark.parsers.lalr_analysis import Shift

    table = instance.parser.parser.parser.parse_table
    rules: list = []
    numbered: dict = {}
    states = []
    for state, row in table.states.items():
        entries = []
        for symbol, (action, arg) in row.items():
            if action is Shift:
                entries.append([symbol, arg])
                continue
            if arg not in numbered:
                numbered[arg] = len(rules)
                rules.append([arg.origin.name, arg.alias, arg.options.expand1,
                              [[s.name, s.is_term, s.is_term and s.filter_out] for s in arg.expansion]])
            entries.append([symbol, -1 - numbered[arg]])
        states.append([state, entries])
    terminals = [[t.name, t.pattern.to_regexp(), t.priority, t.pattern.max_width, len(t.pattern.value)]
                 for t in instance.lexer_conf.terminals]
    return {"terminals": terminals, "ignore": list(instance.lexer_conf.ignore), "states": states, "rules": rules,
            "start": table.start_states["start"], "end": table.end_states["start"]}


def _fast_table() -> dict:
    """`fast_data` of the grammar's parser: the shipped table's (read without Lark), else Lark's
    after compiling the grammar."""
    table = _shipped_table(grammar_path().read_text(encoding="utf-8"), keys=False)
    if table is not None and isinstance(table.get("fast"), dict):
        return table["fast"]
    return fast_data(_parser())


def _shipped_table(grammar: str, keys: bool = True) -> dict | None:
    """The shipped table if it was made from this grammar by this version of Lark, else None
    (read with `keys=False`, its keys stay strings: only its `fast` part is then of use)."""
    try:
        table = json.loads(TABLE_PATH.read_text(encoding="utf-8"), object_hook=_int_keys if keys else None)
    except (OSError, ValueError):
        return None
    if not isinstance(table, dict) or table.get("lark") != lark_version() \
            or table.get("grammar") != grammar:
        return None
    return table


_VERSION = re.compile(r"""^__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""", re.MULTILINE)


def lark_version() -> str | None:
    """The installed Lark's version, read from its package's source while Lark is not imported; None
    if it cannot be read (the shipped table is then taken for stale, and Lark compiles the grammar)."""
    if "lark" in sys.modules:
        return sys.modules["lark"].__version__
    from importlib.util import find_spec

    try:
        spec = find_spec("lark")
        found = _VERSION.search(Path(spec.origin).read_text(encoding="utf-8"))
    except (AttributeError, ImportError, OSError, TypeError, ValueError):
        return None
    return found.group(1) if found else None


def _int_keys(mapping: dict) -> dict:
    """JSON object keys back to the integers they were (state and symbol numbers)."""
    return {int(key) if key.isdigit() else key: value for key, value in mapping.items()}


def parse(source: Source) -> list[Assignment]:
    """Parse a program's text into its assignments, in file order."""
    return parse_with_nodes(source).statements


def parse_with_nodes(source: Source) -> Parsed:
    """The assignments, and for each the nodes of its expression, children before parents
    (the order in which the parser made them, and in which graph.build compiles them), its names
    and the program's calls."""
    fast = _FastParser.get()
    try:
        parsed = fast.parse(source.text)
    except DiffcliError as error:
        error.source = source
        raise
    if parsed is None:
        raise _diagnose(source, fast.stop)
    return parsed


# ---------------------------------------------------------------- the fast path for valid programs

# A literal of numbers is most often spelled as JSON spells one (no `1.`, `.5`, `+1`, `01` or
# trailing comma), and then JSON's decoder, one pass in C, reads it: its numbers are float()'s
# (integers too, so that `-0` keeps its sign), the rows of a matrix come as lists. The weights and
# data of a network are most of its file, and this halves the time to read them.
def _no_constant(name):
    raise ValueError(name)  # NaN, Infinity: no numbers of the language


_JSON_NUMBERS = json.JSONDecoder(parse_int=float, parse_constant=_no_constant)


class _Literal:
    """A NUMBERS token that JSON's decoder read, in place of the scanner's match (the same span and
    group): its text starts at `at` (its leading blanks at `begin`); `values` are its numbers as one
    NumPy array, or None where the builder reads the text itself (ragged rows, a number too large
    for a double)."""

    __slots__ = ("lastindex", "string", "begin", "at", "stop", "values")

    def __init__(self, group: int, string: str, begin: int, at: int, stop: int, values):
        self.lastindex, self.string, self.begin, self.at, self.stop, self.values = group, string, begin, at, stop, values

    def group(self, n: int = 0) -> str:
        return self.string[self.begin if n == 0 else self.at:self.stop]

    __getitem__ = group

    def start(self, n: int = 0) -> int:
        return self.begin if n == 0 else self.at

    def end(self, n: int = 0) -> int:
        return self.stop

    def span(self, n: int = 0) -> tuple[int, int]:
        return self.start(n), self.stop


def _json_literal(text: str, at: int):
    """(end, values) of a literal of numbers at text[at] (a `[`) that JSON's decoder reads, values its
    numbers as one NumPy array (a vector's, or a matrix's rows of one length), or None where the
    builder reads the text itself and places the error (ragged rows, a number too large for a
    double); None if JSON's decoder does not read one there (the scanner's regex then decides)."""
    try:
        values, end = _JSON_NUMBERS.raw_decode(text, at)
    except (ValueError, RecursionError):  # (nested deeper than JSON's decoder goes: no literal either)
        return None
    # JSON's other values (strings, objects, true, false, null) each hold one of these characters and
    # no number does: without them the literal is lists of floats (found in the text, in C, where a
    # check of each element's type was a pass in Python)
    find = text.find
    if values.__class__ is not list or not values or find('"', at, end) >= 0 or find("{", at, end) >= 0 \
            or find("t", at, end) >= 0 or find("f", at, end) >= 0 or find("n", at, end) >= 0:
        return None
    np = _numpy()
    try:
        if values[0].__class__ is list:
            lengths = set(map(len, values))  # (a TypeError for a number beside the rows)
            if 0 in lengths:
                return None
            if len(lengths) > 1:  # ragged: the builder places the error, if the rows are of numbers
                return (end, None) if text.count("[", at, end) == len(values) + 1 else None
            flat = np.fromiter(itertools.chain.from_iterable(values), float, len(values) * len(values[0]))
            array = flat.reshape(len(values), -1)
        else:
            flat = array = np.fromiter(values, float, len(values))
    except (TypeError, ValueError):  # a list among the numbers, or nested deeper: no literal of numbers
        return None
    return end, None if np.isinf(flat).nonzero()[0].size else array  # (ndarray.any() is a Python wrapper)


def _numpy():
    import numpy  # (only for a literal: a scalar program's start-up does without it)

    return numpy


class _Builder:
    """Makes AST nodes as the parser reduces: one method per rule (or alias) of the grammar.

    A token arrives as the regular-expression match that found it; its group `lastindex` is the
    terminal (leading blanks are part of the match, so spans come from that group).
    """

    def __init__(self, kinds: list[str | None]):
        self.kinds = kinds  # group index -> terminal name
        # group index -> the operation of a binary or unary operator
        self.binary_ops = [_BINARY_OPS.get(kind) for kind in kinds]
        self.unary_ops = [_UNARY_OPS.get(kind) for kind in kinds]
        self.begin("")

    def begin(self, text: str) -> None:
        self.text = text  # the source being parsed, for the implicit-product diagnostic
        # every statement's expression nodes, in the order they are made: children before parents
        self.nodes: list[list[Expr]] = []
        self.made: list[Expr] = []
        self.uses: list[list[Name]] = []  # every statement's names
        self.named: list[Name] = []
        self.calls: list[Call] = []
        self.arrays = False  # whether any array syntax was seen

    def number(self, token):
        group = token.lastindex
        text = token.group(group)
        value = float(text)
        if value == math.inf:
            raise DiffcliError(
                "domain",
                f"the number `{text}` is too large for a double",
                token.span(group),
                help="doubles reach about 1.8e308",
            )
        node = Number(value, *token.span(group))
        self.made.append(node)
        return node

    def name(self, token):
        group = token.lastindex
        node = Name(token[group], *token.span(group))
        self.made.append(node)
        self.named.append(node)
        return node

    def binary(self, left, op, right):
        group = op.lastindex
        node = Binary(self.binary_ops[group], left, right, op.start(group))
        self.made.append(node)
        if node.op == "matmul":
            self.arrays = True
        return node

    # -- arrays: literal and subscript numbers, keyword values and sizes are no graph nodes, so
    # they leave `made` (they are its last entries when their rule is reduced)

    def _unmake(self, exprs) -> None:
        count = sum(_literal_size(e) for e in exprs)
        if count:
            del self.made[-count:]

    def literal(self, lsqb, elements, rsqb):
        elements = elements or []
        constant = all(_literal_size(e) for e in elements) and bool(elements)
        if constant:
            self._unmake(elements)
        node = Array(elements, lsqb.start(lsqb.lastindex), rsqb.end(), constant)
        self.made.append(node)
        self.arrays = True
        return node

    def numbers(self, token):
        """`[1, -2.5, 3e-3]`, one token: a constant literal whose elements are its numbers."""
        group = token.lastindex
        # (a token the regex found is one JSON's decoder did not read: the slower path's)
        if token.__class__ is _Literal and token.values is not None:
            node = Array([], token.at, token.stop, True, token.values)
            self.made.append(node)
            self.arrays = True
            return node
        text, start = token.group(group), token.start(group)
        if text[1:].lstrip().startswith("["):  # a matrix: its rows, each a vector of its own
            rows = [self._vector(match.group(), start + match.start()) for match in _ROW.finditer(text)]
            node = Array(rows, start, start + len(text), True)
            self.made.append(node)
            self.arrays = True
            return node
        node = self._vector(text, start)
        self.made.append(node)
        self.arrays = True
        return node

    def _vector(self, text, start):
        values = [float(number) for number in _SIGNED_NUMBER.findall(text)]
        if math.inf in values or -math.inf in values:
            match = next(m for m in _SIGNED_NUMBER.finditer(text) if not math.isfinite(float(m.group())))
            raise DiffcliError("domain", f"the number `{match.group()}` is too large for a double",
                               (start + match.start(), start + match.end()), help="doubles reach about 1.8e308")
        return Array([], start, start + len(text), True, values)

    def index_numbers(self, target, token):
        """`x[1]`, `W[0, -1]`: a subscript that the scanner took for a literal of numbers."""
        group = token.lastindex
        text, start = token.group(group), token.start(group)
        items = []
        if text[1:].lstrip().startswith("["):
            raise DiffcliError("syntax", "an index is an integer literal, not an array", (start, start + len(text)),
                               help="write x[0], x[-1], W[1, :] or x[1:3]: integers, optionally negative")
        for match in _SIGNED_NUMBER.finditer(text):
            if not re.fullmatch("-?[0-9]+", match.group()):
                raise DiffcliError("syntax", f"an index is an integer literal, not `{match.group()}`",
                                   (start + match.start(), start + match.end()),
                                   help="write x[0], x[-1], W[1, :] or x[1:3]: integers, optionally negative")
            items.append(int(match.group()))
        node = Index(target, tuple(items), start, start + len(text))
        self.made.append(node)
        self.arrays = True
        return node

    def elements(self, *items):
        return [item for item in items if isinstance(item, Expr)]

    def index(self, target, lsqb, subscripts, rsqb):
        items = []
        for item in subscripts:
            if isinstance(item, tuple):
                low, colon, high = item
                items.append((self._integer(low), self._integer(high)))
                self._unmake([e for e in (low, high) if e is not None])
            else:
                items.append(self._integer(item))
                self._unmake([item])
        node = Index(target, tuple(items), lsqb.start(lsqb.lastindex), rsqb.end())
        self.made.append(node)
        self.arrays = True
        return node

    def _integer(self, expr):
        """An index or slice bound: an integer literal with an optional `-`."""
        if expr is None:
            return None
        number = expr.operand if isinstance(expr, Unary) and expr.op == "neg" else expr
        text = self.text[number.start:number.end] if isinstance(number, Number) else ""
        if not text.isdigit():
            raise DiffcliError("syntax", f"an index is an integer literal, not `{_short(self.text[expr.start:expr.end])}`",
                               (expr.start, expr.end),
                               help="write x[0], x[-1], W[1, :] or x[1:3]: integers, optionally negative")
        return -int(text) if number is not expr else int(text)

    def subscripts(self, *items):
        return [item for item in items if isinstance(item, (Expr, tuple))]

    def slice(self, *items):
        low = high = None
        colon = next(i for i, item in enumerate(items) if not isinstance(item, Expr))
        if colon == 1:
            low = items[0]
        if len(items) > colon + 1:
            high = items[colon + 1]
        return (low, items[colon], high)

    def keyword(self, name, _equals, value):
        group = name.lastindex
        if _literal_size(value) == 0 or isinstance(value, Array):
            raise DiffcliError("name", f"the keyword `{name.group(group)}` takes a number literal",
                               (value.start, value.end), help=f"write it like `{name.group(group)}=1`")
        self._unmake([value])
        self.arrays = True
        return Keyword(name.group(group), literal_number(value), self.text[value.start:value.end],
                       name.start(group), name.end(group), value.end)

    def unary(self, op, operand):
        group = op.lastindex
        node = Unary(self.unary_ops[group], operand, op.start(group))
        self.made.append(node)
        return node

    def implicit(self, left, right):
        last = left
        while True:  # the rightmost piece of `left`: a loop, since nesting may be deep
            if isinstance(last, Binary):
                last = last.right
            elif isinstance(last, Unary):
                last = last.operand
            else:
                break
        if isinstance(last, (Array, Index)):
            a = _short(self.text[last.start : last.end])
            b = _short(self.text[right.start : right.end])
            raise DiffcliError("syntax", f"missing operator between `{a}` and `{b}`", (right.start, right.end),
                               help=f"write `{a}*{b}` to multiply (there is no implicit product after `]`)")
        if isinstance(last, Name):
            a = _short(self.text[last.start : last.end])
            b = _short(self.text[right.start : right.end])
            if last.id in FUNCTIONS:
                raise DiffcliError(
                    "syntax", f"`{a}` is a function: its argument goes in parentheses",
                    (right.start, right.end), help=f"write `{a}({b})`",
                )
            raise DiffcliError(
                "syntax",
                f"missing operator between `{a}` and `{b}`",
                (right.start, right.end),
                help=f"write `{a}*{b}` to multiply (only a number or `)` may stand right before a factor)",
            )
        node = Binary("mul", left, right, right.start, implicit=True)
        self.made.append(node)
        return node

    def call(self, name, _lpar, args, rpar):
        group = name.lastindex
        func = name.group(group)
        keywords = ()
        if Keyword in map(type, args):  # (in C: the common call has none)
            keywords = tuple(arg for arg in args if arg.__class__ is Keyword)
            first = args.index(keywords[0])
            for arg in args[first:]:
                if arg.__class__ is not Keyword:
                    raise DiffcliError("name", "a positional argument after a keyword argument",
                                       (arg.start, arg.end), help="put the keywords last: uniform(3, seed=1)")
            args = args[:first]
            seen = set()
            for keyword in keywords:
                if keyword.name in seen:
                    raise DiffcliError("name", f"the keyword `{keyword.name}` is given twice",
                                       (keyword.start, keyword.name_end), help="give each keyword once")
                seen.add(keyword.name)
        sizes = ()
        if func in _ARRAY_CALLS or len(args) == 1 and func in ("max", "min"):
            self.arrays = True
            if func in CONSTRUCTORS:
                sizes = tuple(self._size(func, arg) for arg in args)
                self._unmake(args)
                args = []
        node = Call(func, args, name.start(group), name.end(), rpar.end(), keywords, sizes)
        self.made.append(node)
        self.calls.append(node)
        return node

    def _size(self, func, arg):
        text = self.text[arg.start:arg.end] if isinstance(arg, Number) else ""
        if not text.isdigit():
            raise DiffcliError("name", f"`{func}` takes sizes that are integer literals, not "
                               f"`{_short(self.text[arg.start:arg.end])}`", (arg.start, arg.end),
                               help=f"write it like `{func}(3)` or `{func}(2, 3)`")
        return int(text)

    def arguments(self, *items):
        return [item for item in items if isinstance(item, (Expr, Keyword))]

    def paren(self, lpar, inner, rpar):
        node = Paren(inner, lpar.start(lpar.lastindex), rpar.end())
        self.made.append(node)
        return node

    def stmt(self, name, _equals, expr):
        group = name.lastindex
        self.nodes.append(self.made)
        self.uses.append(self.named)
        self.made, self.named = [], []
        return Assignment(name.group(group), expr, name.start(group), name.end())

    def uncertain(self, name, equals, expr, plusminus, amount, percent=None):
        """`x = 2.1 ± 0.1` or `x = 2.1 ± 5%`: only an input's literal may carry an uncertainty; an
        array literal's, one number for every element or an array of its shape (`± [0.1, 0.2]`)."""
        at = plusminus.span(plusminus.lastindex)
        literal = expr.operand if expr.__class__ is Unary else expr
        array = expr.__class__ is Array and expr.constant
        if literal.__class__ is not Number and not array:
            name_text = name.group(name.lastindex)
            help = ("give the input its own line, like `x = 2.1 ± 0.1`, and use `x` here"
                    + (" (an array input's literal of numbers may carry one: `x = [1.2, 3.4] ± 0.1`)"
                       if self.arrays else ""))
            if expr.__class__ is Call and expr.func in CONSTRUCTORS:
                help = (f"a constructor's elements take theirs on the command line: --uncertainty {name_text}=0.1 "
                        f"(or write {name_text}'s literal of numbers, like `{name_text} = [1.2, 3.4] ± 0.1`)")
            raise DiffcliError("syntax", "only an input's number can carry an uncertainty", at, help=help)
        statement = self.stmt(name, equals, expr)
        if amount.group(amount.lastindex).startswith("["):  # NUMBERS: `± [0.1, 0.2]`
            value = self._amounts(statement.name, expr, self.numbers(amount), at)
        else:
            value = self.number(amount).value
        self.made.pop()  # the amount is no node of the expression
        if percent is not None:
            value /= 100
        return UncertainAssignment(statement.name, expr, statement.start, statement.name_end,
                                   value, percent is not None, at)

    def _amounts(self, name, literal, amounts, at):
        """`x = [1.2, 3.4] ± [0.1, 0.2]`: the uncertainties as nested lists, of the literal's shape
        (else a shape error naming both), each a number ≥ 0."""
        if not array_literal(literal):
            raise DiffcliError("shape", f"`{name}` is a scalar, and its uncertainty an array", (amounts.start, amounts.end),
                               help=f"a scalar input takes one uncertainty: `{name} = 2.1 ± 0.1`")
        for match in _SIGNED_NUMBER.finditer(self.text, amounts.start, amounts.end):
            if match.group().startswith("-") and float(match.group()) != 0:
                raise DiffcliError("syntax", f"an uncertainty is a number ≥ 0, not `{match.group()}`", match.span(),
                                   help="a standard uncertainty is one standard deviation: drop the sign")
        numbers, shape = amounts.numbers(), _literal_shape(amounts)
        if shape is None:  # (a token of numbers nests two levels at most: rows of different lengths)
            rows = amounts.elements
            row = next(row for row in rows if len(row.numbers()) != len(rows[0].numbers()))
            raise DiffcliError("shape", f"this row of uncertainties has {_elements(len(row.numbers()))}, but the "
                               f"first has {_elements(len(rows[0].numbers()))}", (row.start, row.end),
                               help="the rows of a matrix are vectors of one length")
        expected = _literal_shape(literal)
        if expected is not None and shape != expected:
            words = lambda s: f"a vector of {s[0]}" if len(s) == 1 else f"a {s[0]}×{s[1]} matrix"
            raise DiffcliError(
                "shape", f"`±` needs an uncertainty of `{name}`'s shape, or one number for every element",
                at, labels=[((literal.start, literal.end), f"{name} is {words(expected)}"),
                            ((amounts.start, amounts.end), f"the uncertainty is {words(shape)}")],
                help=f"give {expected[0] if len(expected) == 1 else '×'.join(map(str, expected))} uncertainties "
                "laid out as the literal, or one: `± 0.1`, `± 1%`")
        return numbers

    def start(self, *statements):
        return list(statements)


def array_literal(expr) -> bool:
    """Whether an expression is a constant array literal (of signed numbers)."""
    return expr.__class__ is Array and expr.constant


def _elements(n: int) -> str:
    return "1 element" if n == 1 else f"{n} elements"


def _literal_shape(literal) -> tuple | None:
    """A constant array literal's shape, (n,) or (m, n); None if it is ragged or nested deeper (the
    graph reports that)."""
    numbers = literal.numbers()
    if not numbers:
        return None
    if all(isinstance(x, float) for x in numbers):
        return (len(numbers),)
    if all(isinstance(x, list) and x and all(isinstance(y, float) for y in x) for x in numbers) and \
            len({len(x) for x in numbers}) == 1:
        return (len(numbers), len(numbers[0]))
    return None


def _literal_size(expr) -> int:
    """How many nodes a constant made: a signed number literal 1 or 2, a constant array literal 1
    (its own; its elements made none); 0 for anything else."""
    kind = expr.__class__
    if kind is Number or kind is Array and expr.constant:
        return 1
    if kind is Unary and expr.operand.__class__ is Number:
        return 2
    return 0


def _short(text: str, limit: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _uncaptured(pattern: str) -> str:
    """A regular expression with its groups made non-capturing (the scan is 10% faster), unless
    it refers back to one."""
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return pattern
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]" or pattern[i - 1] == "[" or pattern[i - 2 : i] == "[^"
        elif char == "[":
            in_class = True
        elif char == "(" and not pattern.startswith("?", i + 1):
            char = "(?:"
        out.append(char)
        i += 1
    return "".join(out)


def _possessive(pattern: str) -> str:
    """NUMBERS' pattern with every quantifier possessive (`*+`, `++`, `?+`), where Python's `re` has
    them (3.11): the same language, since nothing NUMBERS repeats (blanks, digits, a sign, a
    number, a row) can be the start of what follows it, so no match ever gives back; and a third
    faster to scan, the literals of a network's weights being most of its file. (A test checks the
    two match alike.)"""
    if sys.version_info < (3, 11):
        return pattern
    out, in_class, escaped = [], False, False
    for i, char in enumerate(pattern):
        out.append(char)
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "*+?" and pattern[i - 1] != "(" and pattern[i + 1:i + 2] not in ("+", "?"):
            out.append("+")
    return "".join(out)


class _Rule(NamedTuple):
    """A rule of the grammar as `fast_data` gives it: its name, alias, whether it is `?rule` (expand1)
    and its symbols, each (name, is_term, filter_out)."""

    name: str
    alias: str | None
    expand1: bool
    symbols: list


class _FastParser:
    """An LALR(1) parser over Lark's own parse table, for speed on large files.

    Lark makes a Token object and several calls per token, which on a 100,000-statement file was
    most of diffcli's run time. Here one regular expression, built from the grammar's terminals in
    the order Lark's lexer tries them, finds the tokens; the rule of `_ParenNewlines` is applied
    inline; and a tight loop follows Lark's table, calling `_Builder` on each reduction. It only
    needs to accept valid programs: on any syntax error it returns None and `_diagnose` reports it.
    """

    _instance: _FastParser | None = None

    @classmethod
    def get(cls) -> _FastParser:
        if cls._instance is None:
            cls._instance = cls(_fast_table())
        return cls._instance

    def __init__(self, data: dict):
        """`data` is `fast_data` of Lark's parser for the grammar."""
        # (name, regex, priority, widest match, length of the pattern) as Lark's lexer orders them
        terminals = sorted(data["terminals"], key=lambda t: (-t[2], -t[3], -t[4], t[0]))
        ignored = set(data["ignore"])
        # The regex tries the alternatives in turn, so the commonest go first (a fifth faster).
        # Lark's order only matters where two terminals can match at the same place, here `**`
        # before `*` and NUMBERS before `[`, and this stable sort keeps it within each rank.
        terminals.sort(key=lambda t: _SCAN_ORDER.get(t[0], 3 if t[0] in ignored else 2))
        self.number = next(regex for name, regex, *_ in terminals if name == "NUMBER")  # for read_number
        # Blanks that the grammar ignores are skipped as part of the next token's match; a last
        # alternative takes any other character (a syntax error), so the scan ends only with `$END`.
        patterns = [_uncaptured(regex) for _, regex, *_ in terminals]
        terminals = [name for name, *_ in terminals]
        patterns = [_possessive(p) if name == "NUMBERS" else p for p, name in zip(patterns, terminals)]
        blanks = "|".join(p for p, name in zip(patterns, terminals) if name in ignored)
        # `[ \t]*` rather than `(?:[ \t]+)?`: the same, and faster to run
        skip = blanks[:-1] + "*" if re.fullmatch(r"\[[^\]]+\]\+", blanks) else f"(?:{blanks})?"
        tokens = "|".join(f"(?P<T{i}>{p})" for i, p in enumerate(patterns))
        self.regex = re.compile(f"{skip}(?:{tokens}|(?P<BAD>[\\s\\S]))|(?P<END>\\Z)")
        kinds: list[str | None] = [None] * (self.regex.groups + 1)
        for i, name in enumerate(terminals):
            kinds[self.regex.groupindex[f"T{i}"]] = None if name in ignored else name
        kinds[self.regex.groupindex["BAD"]] = "BAD"  # in no state's actions: a syntax error
        kinds[self.regex.groupindex["END"]] = "$END"
        self.end_group = self.regex.groupindex["END"]
        self.numbers_group = kinds.index("NUMBERS")
        self.kinds = kinds
        self.builder = _Builder(kinds)

        self.start_state = data["start"]
        self.accept_state = size = max(state for state, _ in data["states"]) + 1
        # actions[state][terminal]: the next state (an int) after a shift, or a reduction
        actions: list[dict] = [{} for _ in range(size + 1)]
        goto: list[dict] = [{} for _ in range(size + 1)]
        reductions: dict = {}
        rules = data["rules"]
        for state, row in data["states"]:
            for symbol, arg in row:
                if arg >= 0:  # a shift
                    (actions if symbol.isupper() else goto)[state][symbol] = arg
                else:
                    if arg not in reductions:
                        reductions[arg] = self._reduction(_Rule(*rules[-1 - arg]))
                    actions[state][symbol] = reductions[arg]
        # Lark accepts on reaching the end state with `$END`: here, a shift to accept_state
        actions[data["end"]]["$END"] = self.accept_state

        # settle[rule][state][terminal]: the state after reducing to `rule` above `state`, with
        # `terminal` next, and after the reductions `?rule: x` that follow (they only rename the
        # value). Computed once here, so that those reductions cost nothing while parsing. While
        # parsing, a token's terminal is the number of the regex group that matched it, so `settle`
        # is made with the groups; a state with no goto on `rule` has None.
        groups = {kind: group for group, kind in enumerate(kinds) if kind is not None}

        # for each state, the terminals on which it reduces such a rule, and the rule's name: on
        # any other terminal, the state after the reduction to `rule` is the goto's
        renaming = [{kind: action[0] for kind, action in row.items()
                     if action.__class__ is tuple and action[1] == 1 and action[2] is None and kind in groups}
                    for row in actions]
        settle: dict = {}
        for below, row in enumerate(goto):
            for rule, reached in row.items():
                settled = dict.fromkeys(groups.values(), reached)
                for kind, renamed in renaming[reached].items():
                    state = row[renamed]
                    while (renamed := renaming[state].get(kind)) is not None:
                        state = row[renamed]
                    settled[groups[kind]] = state
                if rule not in settle:
                    settle[rule] = [None] * len(goto)
                settle[rule][below] = settled

        # A reduction carries, in place of its rule's name, where it leads: its column of `settle`
        leads = {reduction: (settle.get(reduction[0]) or [None] * len(goto),) + reduction[1:]
                 for reduction in reductions.values()}
        self.actions = [{groups[k]: leads.get(action, action) for k, action in row.items()}
                        for row in actions]
        # group index -> what the rule of `_ParenNewlines` does with it: _OPENS or _CLOSES a
        # bracket, a separator or an ignored token (_SEPARATES), or nothing (0); a list, since
        # the parse asks it of every token
        self.roles = [_OPENS if kind in _OPENING else _CLOSES if kind in _CLOSING
                      else _SEPARATES if kind in (None, "_SEP") else 0 for kind in kinds]

    def _reduction(self, rule) -> tuple:
        """(the rule's name, how its children are passed, the function that makes its value, and
        how many symbols it pops). `__init__` then puts where the reduction leads in place of the name.

        Children are passed as 1 or 3 arguments (the common rules), as any number of arguments
        (shape 0), or as one list (shape -1) after dropping filtered tokens (`_SEP`) and inlining
        the helper rules Lark makes for `(...)*`. A rule with no function keeps its one child.
        """
        name = rule.name
        symbols = rule.symbols
        method = getattr(self.builder, rule.alias or name, None)
        dropped = [filter_out for _, _, filter_out in symbols]
        inlined = [not is_term and symbol.startswith("_") for symbol, is_term, _ in symbols]
        if not any(dropped) and not any(inlined) and not name.startswith("_"):
            if method is None:
                assert rule.expand1 and len(symbols) == 1, rule
            shape = len(symbols) if len(symbols) in (1, 3) else 0
            return name, shape, method, len(symbols)

        # the children to keep, each with whether it is a helper's list to splice in; a helper
        # rule that is left-recursive (`__x: __x stmt _SEP`) grows its own list in place
        helper = name.startswith("_")
        grow = helper and inlined[0]
        plan = [(i, inlined[i]) for i in range(1 if grow else 0, len(symbols)) if not dropped[i]]
        if grow and len(symbols) == 3 and plan == [(1, False)]:  # the statements: the loop's fast shape

            def append(items: list, item, _dropped) -> list:
                items.append(item)
                return items

            return name, 3, append, 3

        def reduce(children: list):
            items = children[0] if grow else []
            for i, splice in plan:
                if splice:
                    items.extend(children[i])
                else:
                    items.append(children[i])
            if helper:
                return items
            if method is not None:
                return method(*items)
            assert rule.expand1 and len(items) == 1, rule
            return items[0]

        return name, -1, reduce, len(symbols)

    def _tokens(self, text: str):
        """The scanner's matches, in order: the regex's, except that a literal of numbers that JSON's
        decoder reads is read by it (a `_Literal`): one pass in C for what is most of a network's
        file, where the regex would scan it and the builder read its numbers again. The two agree on
        every token (a test checks): the regex's NUMBERS matches exactly such a literal, and a `[`
        that starts none is left to the regex, as is every other character."""
        scanner = self.regex.scanner
        if "[" not in text:
            return iter(scanner(text).match, None)
        after = [0]  # where the last literal ends

        def pieces():
            yield self._literal_tokens(text, after)
            # the text after the last literal (a network's formulas) is the regex's alone: its
            # matches go straight to the parser, not through a generator
            yield iter(scanner(text, after[0]).match, None)

        return itertools.chain.from_iterable(pieces())

    def _literal_tokens(self, text: str, after: list):
        """The tokens up to the end of the last literal that JSON's decoder reads, whose end is left
        in after[0]."""
        scanner, match, end_group = self.regex.scanner, self.regex.match, self.end_group
        done = search = 0  # the text before `done` is tokenized; the next `[` to look at is at or after `search`
        while True:
            at = text.find("[", search)
            if at < 0:
                break
            line = text.rfind("\n", 0, at) + 1
            if text.find("#", line, at) >= 0:  # in a comment (no other token holds a `#`)
                search = text.find("\n", at)
                if search < 0:
                    break
                continue
            literal = _json_literal(text, at)
            if literal is None:  # the regex's token here (a literal JSON does not read, or `[`)
                search = match(text, at).end()
                continue
            begin = at
            while begin > done and text[begin - 1] in " \t":  # its leading blanks are its own, as the regex's
                begin -= 1
            if begin > done:
                for token in iter(scanner(text, done, begin).match, None):
                    if token.lastindex == end_group:  # (the end of the piece, not of the text)
                        break
                    yield token
            stop, values = literal
            yield _Literal(self.numbers_group, text, begin, at, stop, values)
            done = search = stop
        after[0] = done

    def parse(self, text: str) -> Parsed | None:
        """The program's statements and their nodes (see parse_with_nodes), or None if it has a
        syntax error."""
        actions = self.actions
        roles, kinds = self.roles, self.kinds
        state = self.start_state
        states = [state]  # the LALR stack: always one longer than values
        values: list = []
        push_state, push_value, pop_value = states.append, values.append, values.pop
        opened: list[int] = []  # where the open parentheses begin
        last = None  # the last token shifted
        builder = self.builder
        builder.begin(text)
        try:
            for token in self._tokens(text):
                kind = token.lastindex
                role = roles[kind]
                if role:
                    if role == _OPENS:
                        opened.append(token.start(kind))
                    elif role == _CLOSES:
                        closed = opened.pop() if opened else None
                    elif opened and not holds_semicolon(token.group()) or kinds[kind] is None:
                        continue  # a line break inside parentheses, or an ignored token
                action = actions[state][kind]
                while action.__class__ is not int:  # reductions, until the token can be shifted
                    after, shape, make, size = action
                    if shape == 3:
                        right = pop_value()
                        middle = pop_value()
                        values[-1] = make(values[-1], middle, right)
                        del states[-2:]
                        state = states[-1] = after[states[-2]][kind]
                    elif shape == 1:
                        if make is not None:
                            values[-1] = make(values[-1])
                        state = states[-1] = after[states[-2]][kind]
                    else:
                        top = len(values) - size
                        value = make(values[top:]) if shape < 0 else make(*values[top:])
                        del values[top:]
                        del states[top + 1 :]
                        push_value(value)
                        state = after[states[-1]][kind]
                        push_state(state)
                    action = actions[state][kind]
                state = action
                push_state(state)
                push_value(token)
                last = token
        except KeyError:  # no action for this token here: a syntax error
            role = roles[token.lastindex]
            if role == _OPENS:  # as the parentheses were before this token
                opened.pop()
            elif role == _CLOSES and closed is not None:
                opened.append(closed)
            self.stop = _Stop(_token(token, kinds), {kinds[g] for g in actions[state]},
                              None if last is None else _token(last, kinds), opened)
            return None
        finally:
            nodes, uses, calls, arrays = builder.nodes, builder.uses, builder.calls, builder.arrays
            builder.begin("")
        return Parsed(values[-2], nodes, uses, calls, arrays) if state == self.accept_state else None


# ---------------------------------------------------------------- diagnostics for syntax errors

_SYMBOLS = {
    "EQUALS": "`=`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`", "SLASH": "`/`", "POW": "`^`",
    "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`", "NUMBER": "a number", "NAME": "a name",
    "PLUSMINUS": "`±`", "PERCENT": "`%`", "LSQB": "`[`", "RSQB": "`]`", "AT": "`@`", "COLON": "`:`",
    "NUMBERS": "an array",
}
_OPERAND_STARTS = {"NUMBER", "NAME", "LPAR", "LSQB", "NUMBERS"}


class _Token(NamedTuple):
    """A token where the parser stopped, or before it: its terminal, text and span."""

    type: str
    text: str
    start: int
    end: int

    def __str__(self) -> str:
        return _short(self.text)


def _token(match, kinds) -> _Token:
    group = match.lastindex
    return _Token(kinds[group], match.group(group), *match.span(group))


class _Stop(NamedTuple):
    """Where the fast parser stopped on a syntax error: the token it could not take, the terminals
    it could have taken there, the token before, and where the parentheses open there begin."""

    token: _Token
    expected: set[str]
    previous: _Token | None
    open_parens: list[int]


def _describe(token: _Token) -> str:
    kind = token.type
    if kind == "$END":
        return "end of file"
    if kind == "_SEP":
        return "`;`" if holds_semicolon(token.text) else "end of line"
    if kind in ("NUMBER", "NAME"):
        return f"{'number' if kind == 'NUMBER' else 'name'} `{_short(token.text)}`"
    return f"`{token}`"


# the uncertainty's tokens anywhere but after an input's number: (message, help)
_MISPLACED = {
    "PLUSMINUS": ("`±` can only follow the number of an input",
                  "give the input its own line, like `x = 2.1 ± 0.1`, and use `x` in formulas"),
    "PERCENT": ("`%` only marks a relative uncertainty, like `x = 2.1 ± 5%`",
                "the operators are + - * / ^ **; write a percentage as a fraction: 0.05"),
}


def _diagnose(source: Source, stop: _Stop) -> DiffcliError:
    """The syntax error where the parser stopped."""
    token, expected, previous, open_parens = stop
    text = source.text
    if token.type == "BAD":  # a character that starts no token
        pos = token.start
        char = text[pos]
        help = None
        if char == "\r":
            message = "a carriage return that does not end a line"
            help = "lines end with `\\n` or `\\r\\n`"
        elif char in "!%&|<>~`'\"?$\\{}":
            message = f"unexpected character `{char}`"
            help = "the operators are + - * / ^ ** and functions are called like sin(x)"
        else:
            name = f"U+{ord(char):04X}" if not char.isprintable() else f"`{char}`"
            message = f"unexpected character {name}"
        return DiffcliError("syntax", message, (pos, pos + 1), source=source, help=help)

    kind = token.type
    at_end = kind in ("$END", "_SEP")
    pos = token.start
    if previous is not None and (kind == "$END" or kind == "_SEP" and not holds_semicolon(token.text)):
        pos = previous.end  # point just past the last token of the line
    span = (pos, pos + 1)

    def fail(message, help=None, at=span):
        return DiffcliError("syntax", message, at, source=source, help=help)

    ends_operand = previous is not None and previous.type in ("NUMBER", "NAME", "RPAR", "RSQB", "NUMBERS")
    at_statement_start = previous is None or previous.type == "_SEP"
    if kind in _MISPLACED:
        return fail(*_MISPLACED[kind])
    if previous is not None and previous.type == "PLUSMINUS":
        return fail(f"expected a number after `±`, found {_describe(token)}",
                    "an uncertainty is a number (`x = 2.1 ± 0.1`), a percentage (`x = 2.1 ± 5%`) "
                    "or, for an array input, a literal of numbers (`x = [1.2, 3.4] ± [0.1, 0.2]`)")
    if kind == "RPAR" and not open_parens:
        return fail("unexpected `)`", "remove it, or add the `(` it closes")
    if open_parens and (at_end or kind == "EQUALS"):
        lpar = open_parens[-1]
        opening = text[lpar]
        closing = ")" if opening == "(" else "]"
        return fail(f"this `{opening}` is never closed", f"add the `{closing}` that closes it", at=(lpar, lpar + 1))
    if kind == "RSQB" and not open_parens:
        return fail("unexpected `]`", "remove it, or add the `[` it closes")
    if kind in ("LSQB", "NUMBERS") and previous is not None and previous.type == "NUMBER":
        return fail(f"unexpected `[` after the number `{previous}`",
                    f"write `*` to multiply: `{previous}*[…]` (a number cannot be indexed)")
    if at_statement_start:
        return fail(
            f"expected a name to assign, found {_describe(token)}",
            "a statement is `name = expression`",
        )
    if "EQUALS" in expected:
        return fail(
            f"expected `=` after `{previous}`, found {_describe(token)}",
            f"a statement assigns a name: `{previous} = expression`",
        )
    if kind == "NUMBER" and ends_operand:
        # (an index `x[0]` is one token, `[0]`, whose end is what the number follows, as `)` is)
        left = "]" if previous.type == "NUMBERS" else previous
        return fail(
            f"unexpected {_describe(token)}: a number cannot follow `{left}` directly",
            f"write `*` to multiply: `{left}*{token}`",
        )
    if kind == "EQUALS":
        return fail(
            "unexpected `=`: a statement assigns one name",
            "end the previous statement with a new line or `;`",
        )
    if expected & _OPERAND_STARTS and not ends_operand:
        if previous.type == "LPAR" and kind == "RPAR":
            return fail("empty parentheses", "put an expression inside, or remove them")
        return fail(
            f"expected an expression after {_describe(previous)}, found {_describe(token)}",
            "an expression is a number, a name, a call like sin(x), or one in parentheses",
        )
    if kind == "LPAR":
        return fail(f"unexpected `(` after {_describe(previous)}", "write `*` to multiply")
    wanted = sorted(_SYMBOLS.get(name, name) for name in expected if name in _SYMBOLS)
    help = f"expected {', '.join(wanted)}" if wanted else None
    return fail(f"unexpected {_describe(token)}", help)
