"""Adding an operation is one entry in ops.py: a throwaway one reaches every command.

The test defines `cube(x) = x^3` through `ops.define` (the path every built-in entry takes) and runs
each command in process. Commands added later extend `COMMANDS`.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from diffcli import ops
from diffcli.cli import app

PROGRAM = "x = 1.5\ny = cube(2x) + 1\n"
# (arguments, a check of the output) for every command that reads the op table
COMMANDS = [
    (["grad", "--json"], lambda out: json.loads(out)["gradients"]["x"] == pytest.approx(6 * 9.0)),
    (["eval", "--json"], lambda out: json.loads(out)["values"]["y"] == pytest.approx(28.0)),
    (["grad", "--mode", "forward", "--wrt", "x", "--json"],
     lambda out: json.loads(out)["derivatives"]["y"] == pytest.approx(54.0)),
    (["check", "--json"], lambda out: json.loads(out)["ok"] is True),
    (["explain", "--wrt", "x"], lambda out: "cube" in out and "54" in out),
    (["graph"], lambda out: "cube" in out),
    (["plot", "--sweep", "x=0:1:3", "-o", "-", "--format", "json"],
     lambda out: json.loads(out)["datasets"]["points"][-1] == pytest.approx(
         {"x": 1.0, "value": 9.0, "slope": 24.0, "segment": 0, "lone": False})),
    (["grad", "--sweep", "x=1:1.5:2", "--json"],
     lambda out: [json.loads(row)["gradients"]["x"] for row in out.splitlines()] == pytest.approx([24.0, 54.0])),
    (["eval", "--sweep", "x=1.5:1.5:1", "--csv"], lambda out: out.splitlines()[1].split(",")[1] == "28.0"),
    (["hessian", "--json"], lambda out: json.loads(out)["hessian"]["x"]["x"] == pytest.approx(72.0)),
    (["hessian", "--hvp", "x=2", "--json"], lambda out: json.loads(out)["hvp"]["x"] == pytest.approx(144.0)),
    (["check", "--order", "2", "--json"], lambda out: json.loads(out)["ok"] is True),
    (["grad", "--of", "x,y", "--json"], lambda out: json.loads(out)["jacobian"]["y"]["x"] == pytest.approx(54.0)),
    (["codegen", "--lang", "python", "--name", "f"], lambda out: _run_generated(out) == (28.0, {"x": 54.0})),
    # the partial 3x² of the rule, printed, applied to the temporary 2x
    (["codegen", "--lang", "c"], lambda out: "((3.0 * t2) * t2)" in out),
    (["codegen", "--lang", "javascript"], lambda out: "((3.0 * t2) * t2)" in out),
    (["fit", "--method", "gd", "--lr", "0.001", "--steps", "1", "--json"],
     lambda out: json.loads(out)["parameters"]["x"] == pytest.approx(1.5 - 0.001 * 54.0)),
    (["uncertainty", "--uncertainty", "x=0.1", "--json"],
     lambda out: json.loads(out)["uncertainty"] == pytest.approx(5.4)),
]


def _run_generated(source: str):
    namespace: dict = {}
    exec(source, namespace)  # the text diffcli generated, from this test's own program
    return namespace["f"]()


@pytest.fixture
def cube():
    ops.define("cube", "cube", 1, lambda m, x: x * x * x, (lambda m, out, x: 3.0 * x * x,))
    yield
    ops.forget("cube")
    assert "cube" not in ops.FUNCTIONS and "cube" not in ops.RESERVED


@pytest.mark.parametrize("arguments, ok", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_a_new_operation_reaches_the_command(cube, tmp_path, arguments, ok):
    path = tmp_path / "cube.expr"
    path.write_text(PROGRAM)
    result = CliRunner().invoke(app, [arguments[0], str(path), *arguments[1:]])
    assert result.exit_code == 0, result.output
    assert ok(result.stdout), result.stdout


def test_an_unknown_operation_is_unknown_again_after_forget(tmp_path):
    path = tmp_path / "cube.expr"
    path.write_text(PROGRAM)
    result = CliRunner().invoke(app, ["grad", str(path)])
    assert result.exit_code == 1
