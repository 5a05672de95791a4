"""The parser's table: shipped as JSON data (never a pickle, nothing from the shared temporary
directory), made from the grammar, and read by `_FastParser` through Lark internals that only the
pinned versions of Lark lay out as it expects."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import lark
import pytest
from lark import Lark

from diffcli.language import parser

from conftest import ROOT, run_diffcli

GRAMMAR = (ROOT / "grammars" / "expr.lark").read_text(encoding="utf-8")


class _Payload:
    """Unpickling this creates the file `marker`: proof that a planted pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path) -> None:
    path.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Payload(marker)) * 2)


def _canonical(instance: Lark):
    """A Lark LALR parser as something to compare: its terminals, and its table with the states
    numbered in the order a walk from the start meets them (Lark numbers them differently from
    one run to the next)."""
    from lark.parsers.lalr_analysis import Shift

    table = instance.parser.parser.parser.parse_table
    number: dict[int, int] = {}
    queue = [table.start_states["start"]]
    while queue:
        state = queue.pop(0)
        if state not in number:
            number[state] = len(number)
            row = table.states.get(state, {})
            queue += [row[symbol][1] for symbol in sorted(row) if row[symbol][0] is Shift]
    assert len(number) == len(table.states)
    rows = {
        number[state]: {
            symbol: ("shift", number[arg]) if action is Shift
            else ("reduce", str(arg), arg.alias, arg.options.expand1)
            for symbol, (action, arg) in row.items()
        }
        for state, row in table.states.items()
    }
    terminals = sorted((t.name, t.pattern.to_regexp(), t.priority) for t in instance.lexer_conf.terminals)
    return terminals, sorted(instance.lexer_conf.ignore), rows, number[table.end_states["start"]]


def test_shipped_table_is_the_grammars():
    stale = ("diffcli/language/expr_table.json was not made from grammars/expr.lark with this Lark "
             f"({lark.__version__}): run `python scripts/make_parse_table.py`")
    shipped = json.loads(parser.TABLE_PATH.read_text(encoding="utf-8"))
    assert shipped["grammar"] == GRAMMAR, stale
    if shipped["lark"] != lark.__version__:  # diffcli then compiles the grammar at start-up
        pytest.skip(f"the shipped table is for Lark {shipped['lark']}, not {lark.__version__}")
    shipped = parser._shipped_table(GRAMMAR)
    loaded = Lark._load_from_dict(shipped["data"], shipped["memo"], postlex=parser._ParenNewlines())
    assert _canonical(loaded) == _canonical(parser._compile(GRAMMAR)), stale
    assert parser._parser().source_path == "<deserialized>"  # diffcli runs the shipped table
    # what _FastParser reads, shipped beside Lark's data, is that data's as Lark loads it
    assert shipped["fast"] == parser.fast_data(loaded), stale


def test_a_valid_program_parses_without_loading_lark(tmp_path):
    """Start-up reads the fast parser's part of the shipped table; Lark's own part is loaded only
    when the table is stale (or for nothing else: syntax errors are placed from the fast parser),
    and Lark is not even imported: the table's Lark version is checked against Lark's source."""
    code = ("import sys, diffcli; from diffcli.language import parser; "
            "diffcli.parse('x = [1, 2]\\ny = sum(x * x) + 1\\n', 'm.expr'); "
            "print(parser.read_number('-2.5'), parser._lark is None, 'lark' in sys.modules, "
            "parser.lark_version())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-2.5", "True", "False", lark.__version__]


def test_a_pickle_planted_in_the_temp_dir_does_not_run(tmp_path):
    """Lark's cache=True would load `.lark_cache_<user>_<sha256>_<py>.tmp` from the temporary
    directory, which every user can write: find the name Lark gives it and plant a payload there."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(temp)
    try:  # the options diffcli's parser used to cache with, in their order
        Lark(GRAMMAR, parser="lalr", lexer="contextual", postlex=parser._ParenNewlines(),
             maybe_placeholders=True, cache=True)
    finally:
        tempfile.tempdir = saved
    planted = list(temp.glob(".lark_cache_*"))
    assert planted, "Lark no longer writes its cache here: this test plants nothing"
    marker = tmp_path / "ran"
    for path in planted:
        _plant(path, marker)
    model = tmp_path / "m.expr"
    model.write_text("x = 2\ny = x*x\n")
    done = run_diffcli("grad", model, "--json", env={"TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr_text
    assert not marker.exists(), "diffcli unpickled a file from the temporary directory"
    assert sorted(temp.iterdir()) == sorted(planted), "diffcli wrote into the temporary directory"


def test_a_pickle_in_place_of_the_shipped_table_does_not_run(tmp_path):
    """The table is JSON: a pickle put in its place is not loaded; the grammar is compiled instead."""
    package = tmp_path / "diffcli"
    shutil.copytree(Path(parser.__file__).parent.parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "grammars" / "expr.lark", package / "language" / "expr.lark")
    marker = tmp_path / "ran"
    _plant(package / "language" / "expr_table.json", marker)
    model = tmp_path / "m.expr"
    model.write_text("x = 2\ny = x*x\n")
    done = run_diffcli("grad", model, "--json", env={"PYTHONPATH": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr_text
    assert '"y": 1.0' in done.stdout_text  # it parsed, with the grammar compiled afresh
    assert not marker.exists(), "diffcli unpickled the file in place of its table"


def _pinned_range() -> tuple[str, str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'"lark>=([\d.]+),<([\d.]+)"', text)
    assert found, "pyproject.toml must pin lark to a range (>=LOW,<HIGH): _FastParser reads its internals"
    return found.group(1), found.group(2)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_lark_is_a_version_whose_table_layout_the_fast_parser_reads():
    low, high = _pinned_range()
    assert _version(low) <= _version(lark.__version__) < _version(high), (
        f"Lark {lark.__version__} is outside the range pyproject.toml pins ({low} to <{high}), "
        "the versions whose private parse-table layout diffcli.language.parser._FastParser is known to read"
    )


def test_lark_internals_that_the_fast_parser_reads():
    """Each private piece of Lark that _FastParser uses, checked by name: if a new Lark moves one,
    this says which (then update _FastParser, regenerate the table, and move the pin)."""
    from lark.grammar import Rule
    from lark.parsers.lalr_analysis import Shift

    reason = (f"Lark {lark.__version__} changed a private layout that diffcli.language.parser._FastParser "
              "reads: {}. Keep lark below this version in pyproject.toml, or update _FastParser")
    instance = parser._compile(GRAMMAR)
    try:
        table = instance.parser.parser.parser.parse_table
    except AttributeError:
        pytest.fail(reason.format("Lark.parser.parser.parser.parse_table is gone"))
    for field in ("states", "start_states", "end_states"):
        assert hasattr(table, field), reason.format(f"the parse table has no `{field}`")
    assert isinstance(table.start_states.get("start"), int), reason.format("start_states['start']")
    assert isinstance(table.end_states.get("start"), int), reason.format("end_states['start']")
    for state, row in table.states.items():
        assert isinstance(state, int), reason.format("states are not numbered by integers")
        for symbol, action in row.items():
            assert isinstance(symbol, str), reason.format("a row's symbols are not names")
            assert isinstance(action, tuple) and len(action) == 2, reason.format(
                "an action is not an (action, argument) pair")
            if action[0] is Shift:
                assert isinstance(action[1], int), reason.format("a shift's argument is not a state")
            else:
                rule = action[1]
                assert isinstance(rule, Rule), reason.format("a reduction's argument is not a Rule")
                assert isinstance(rule.origin.name, str) and hasattr(rule, "alias"), \
                    reason.format("Rule.origin.name / Rule.alias")
                assert isinstance(rule.options.expand1, bool), reason.format("Rule.options.expand1")
                for symbol in rule.expansion:
                    assert isinstance(symbol.is_term, bool), reason.format("Symbol.is_term")
                    if symbol.is_term:
                        assert isinstance(symbol.filter_out, bool), reason.format("Terminal.filter_out")
    for terminal in instance.lexer_conf.terminals:
        assert isinstance(terminal.priority, int), reason.format("TerminalDef.priority")
        assert isinstance(terminal.pattern.max_width, int), reason.format("Pattern.max_width")
        assert isinstance(terminal.pattern.to_regexp(), str), reason.format("Pattern.to_regexp()")
    assert set(instance.lexer_conf.ignore) <= {t.name for t in instance.lexer_conf.terminals}, \
        reason.format("LexerConf.ignore")
    assert callable(getattr(Lark, "_load_from_dict", None)), reason.format("Lark._load_from_dict")
