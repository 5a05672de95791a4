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


def test_scale_counts_each_use_of_a_name():
    """Regression (of this harness, found by the long run): in `e = (W)(pi/W)` the two uses of W cancel
    exactly, so d y/d W is 0, but diffcli's doubles leave rounding of the size of each use's
    contribution. Each use is its own SymPy symbol, so the scale sees both contributions."""
    import sympy

    from strategies import Case

    w1, w2, e = (sympy.Symbol(s, real=True) for s in ("W#0", "W#1", "e#2"))
    case = Case("", {}, None, "y", ["W", "e", "y"],
                {"W": mpmath.mpf(0.572), "e": +mpmath.pi, "y": mpmath.mpf(25) ** mpmath.pi},
                {"e": w1 * (sympy.pi / w2), "y": sympy.Integer(25) ** e}, ["e", "y"],
                {w1: "W", w2: "W", e: "e"})
    want, scale = case.gradients()["W"]
    assert want == 0 and scale > 8e5
    got = diffcli.parse("W = 0.572\ne = (W)(pi/W)\ny = 25^e\n").grad().gradients["W"]
    assert got != 0 and close(got, want, scale)
