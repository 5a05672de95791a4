"""diffcli against an independent answer (SymPy and mpmath at 40 digits) on random valid programs.

See strategies.py for what the programs hold and how the answer is computed. The library runs
every example; the command line (in-process, through Typer's CliRunner) a share of them.
"""

from __future__ import annotations

import json

import mpmath
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import diffcli
from diffcli.cli import app
from strategies import close, mismatches, programs

LIBRARY_EXAMPLES = 1000
CLI_EXAMPLES = 200


@settings(max_examples=LIBRARY_EXAMPLES)
@given(programs(), st.data())
def test_library_gradients_match_sympy(case, data):
    program = diffcli.parse(case.text, "generated.expr")
    result = program.grad(case.sets, of=case.of)
    assert mismatches(case, result) == [], case.text

    # forward mode: d(output)/d(input), one input per program, must be the same total derivative
    inputs = [name for name in case.names if program.is_input(name)]
    if not inputs:
        return
    wrt = data.draw(st.sampled_from(inputs))
    forward = program.derivatives(wrt, case.sets).derivatives[case.output]
    want, scale = case.gradients()[wrt]
    assert close(forward, want, scale), (wrt, forward, mpmath.nstr(want, 17), case.text)


@settings(max_examples=CLI_EXAMPLES)
@given(programs())
def test_command_line_json_matches_sympy(case):
    args = ["grad", "-", "--json"]
    if case.sets:
        args += ["--set", ",".join(f"{name}={value!r}" for name, value in case.sets.items())]
    if case.of is not None:
        args += ["--of", case.of]
    done = CliRunner().invoke(app, args, input=case.text.encode("utf-8"))
    assert done.exit_code == 0, done.stderr
    got = json.loads(done.stdout)
    assert list(got["values"]) == list(got["gradients"])
    result = diffcli.Gradients(got["inputs"], got["values"], [], got["output"], got["value"],
                               got["gradients"])
    assert mismatches(case, result) == [], case.text
    assert got["value"] == got["values"][case.output]
