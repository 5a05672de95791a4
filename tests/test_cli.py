"""The command line: Typer's runner for most cases, and the installed executable as a subprocess."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SAMPLES, run_diffcli
from diffcli import __version__
from diffcli.cli import app

runner = CliRunner()
CHAIN = str(SAMPLES / "backprop_chain.expr")
ANSI = re.compile(r"\x1b\[")


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_grad_table_marks_inputs_and_output_in_file_order():
    result = invoke("grad", CHAIN, "--set", "o=1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "g = 47" in lines[0]
    rows = [line for line in lines if line.startswith("│")]
    assert [row.split("│")[1].split()[0] for row in rows] == list("abcdefgo")
    assert "a (input)" in rows[0] and "-432" in rows[0] and "input" in rows[0]
    assert "g (output)" in rows[6] and "3f - o" in rows[6]
    assert "o (input)" in rows[7]
    assert not ANSI.search(result.output)
    assert max(len(line) for line in lines) <= 80


@pytest.mark.parametrize("command, path", [("grad", CHAIN), ("uncertainty", str(SAMPLES / "pendulum.expr"))])
def test_a_scalar_command_imports_neither_numpy_nor_pydantic(command, path):
    """Start-up is most of a small `grad` or linear `uncertainty`: NumPy (arrays, many points, the
    second order) and pydantic (which Typer 0.29 imports, building a validator per option) stay out."""
    import subprocess
    import sys
    probe = ("import sys\nfrom diffcli.cli import app\n"
             f"sys.argv = ['diffcli', {command!r}, {path!r}, '--set', 'o=1', '--json']\n"
             "try:\n    app()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('numpy', 'pydantic') if m in sys.modules), file=sys.stderr)\n")
    if command == "uncertainty":
        probe = probe.replace(", '--set', 'o=1'", "")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert "value" in json.loads(done.stdout), done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr


def test_the_process_builds_the_named_command_and_every_command_otherwise():
    """main() has Typer build only the command named first: that command runs and explains itself
    as before, and anything else (a misspelt command, the top-level help) still sees them all."""
    assert run_diffcli("grad", CHAIN, "--set", "o=1", "--json").stdout_text == \
        invoke("grad", CHAIN, "--set", "o=1", "--json").stdout
    assert "--precision" in run_diffcli("grad", "--help", env={"COLUMNS": "200"}).stdout_text
    misspelt = run_diffcli("grd", CHAIN, env={"COLUMNS": "200"})
    assert misspelt.returncode == 2 and "Did you mean 'grad'?" in misspelt.stderr_text
    everything = run_diffcli("--help", env={"COLUMNS": "200"}).stdout_text
    assert all(f" {name} " in everything for name in ("grad", "eval", "hessian", "graph", "plot",
                                                       "serve", "check", "explain", "codegen", "fit",
                                                       "uncertainty"))


def test_grad_json_matches_spec_example():
    result = invoke("grad", CHAIN, "--set", "o=1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "output": "g", "value": 47.0,
        "inputs": {"a": 2.0, "o": 1.0},
        "values": {"a": 2.0, "b": -1.0, "c": 1.0, "d": 1.0, "e": 8.0, "f": 16.0, "g": 47.0, "o": 1.0},
        "gradients": {"a": -432.0, "b": 144.0, "c": 42.0, "d": 12.0, "e": 6.0, "f": 3.0, "g": 1.0, "o": -1.0},
    }
    assert list(json.loads(result.output)["values"]) == list("abcdefgo")


def test_set_repeats_and_takes_comma_lists():
    one = json.loads(invoke("grad", CHAIN, "--set", "a=3", "--set", "o=2", "--json").output)
    two = json.loads(invoke("grad", CHAIN, "--set", "a=3,o=2", "--json").output)
    assert one == two and one["inputs"] == {"a": 3.0, "o": 2.0}


def test_a_name_set_twice_to_different_values_is_refused():
    """Which of two values was meant cannot be guessed; the same value twice is harmless."""
    from conftest import run_diffcli

    for args in (["--set", "o=1,o=2"], ["--set", "o=1", "--set", "o=2"]):
        done = run_diffcli("grad", CHAIN, *args, "--json")
        assert done.returncode == 2
        assert "`o` is given twice (o=1 and o=2)" in json.loads(done.stderr_text)["error"]["message"]
    same = json.loads(invoke("grad", CHAIN, "--set", "o=1", "--set", "o=1.0", "--json").output)
    assert same["inputs"]["o"] == 1.0


@pytest.mark.parametrize("first, second", [("x=[1,2]", "x=1"), ("x=1", "x=[1,2]"), ("x=[1]", "x=1"),
                                           ("x=[1,2]", "x=[1,3]"), ("x=[[1,2]]", "x=[1,2]")])
def test_an_array_given_twice_is_refused_as_a_number_is(first, second, tmp_path):
    """(x=[1,2] then x=1 was an internal error, x=[1] then x=1 took the scalar, and an array given
    twice with the same numbers was refused.)"""
    from conftest import run_diffcli

    program = tmp_path / "a.expr"
    program.write_text("x = [1, 2]\ny = sum(x^2)\n")
    done = run_diffcli("grad", program, "--set", first, "--set", second, "--json")
    assert done.returncode == 2, done.stderr_text
    assert f"`x` is given twice ({first} and {second})" in json.loads(done.stderr_text)["error"]["message"]
    same = run_diffcli("grad", program, "--set", "x=[1,2]", "--set", "x=[1, 2.0]", "--json")
    assert same.returncode == 0 and json.loads(same.stdout_text)["inputs"]["x"] == [1.0, 2.0]


def test_json_numbers_round_trip():
    result = invoke("grad", SAMPLES / "neuron.expr", "--json")
    data = json.loads(result.output)
    assert data["inputs"]["k"] == 0.35915077292816744


def test_eval_and_forward_mode():
    data = json.loads(invoke("eval", CHAIN, "--set", "o=1", "--json").output)
    assert data == {"inputs": {"a": 2.0, "o": 1.0},
                    "values": {"a": 2.0, "b": -1.0, "c": 1.0, "d": 1.0, "e": 8.0, "f": 16.0, "g": 47.0, "o": 1.0}}
    data = json.loads(invoke("grad", CHAIN, "--set", "o=1", "--mode", "forward", "--wrt", "a", "--json").output)
    assert data["wrt"] == "a" and data["derivatives"]["g"] == -432.0 and data["derivatives"]["d"] == -15.0
    table = invoke("grad", CHAIN, "--set", "o=1", "--wrt", "a").output
    assert "∂name/∂a" in table and "-432" in table
    assert invoke("eval", CHAIN, "--set", "o=1").exit_code == 0


def test_precision():
    result = invoke("grad", SAMPLES / "neuron.expr", "--precision", "3")
    assert "0.0406" in result.output and "0.0405613" not in result.output
    result = invoke("grad", SAMPLES / "neuron.expr", "--precision", "17")
    assert "0.040561260220424432" in result.output or "0.04056126022042443" in result.output


def test_standard_input():
    result = invoke("grad", "-", "--json", input="x = 3\ny = x^2\n")
    assert json.loads(result.output)["gradients"]["x"] == 6.0


@pytest.mark.parametrize("args,code", [
    (["grad", CHAIN], 1),                              # o has no value
    (["grad", CHAIN, "--set", "o"], 2),                # no `=`
    (["grad", CHAIN, "--set", "o=one"], 2),            # not a number
    (["grad", CHAIN, "--set", "o=inf"], 2),
    (["grad", CHAIN, "--bogus"], 2),
    (["grad", CHAIN, "--set", "o=1", "--precision", "0"], 2),
    (["grad", CHAIN, "--set", "o=1", "--mode", "forward"], 2),   # no --wrt
    (["grad", CHAIN, "--set", "o=1", "--mode", "reverse", "--wrt", "a"], 2),
    (["grad", CHAIN, "--set", "o=1,b=2"], 1),          # b is computed
    (["grad", CHAIN, "--set", "o=1", "--of", "q"], 1),
    (["grad", CHAIN, "--set", "o=1", "--wrt", "b"], 1),
    (["grad", "/nonexistent/file.expr"], 1),
])
def test_exit_codes(args, code):
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def test_json_errors_are_one_object():
    result = invoke("grad", CHAIN, "--json")
    assert result.exit_code == 1
    body = json.loads(result.output)["error"]
    assert body["kind"] == "name" and body["line"] == 9 and body["column"] == 10
    assert body["file"] == CHAIN


def test_version_and_help():
    assert invoke("--version").output.strip() == f"diffcli {__version__}"
    help_text = invoke("--help").output
    assert "grad" in help_text and "eval" in help_text
    grad_help = invoke("grad", "--help").output
    assert "--set" in grad_help and "Examples" in grad_help


# ---------------------------------------------------------------- the installed executable

def test_installed_executable_end_to_end(tmp_path):
    done = run_diffcli("grad", CHAIN, "--set", "o=1", "--json")
    assert done.returncode == 0 and done.stderr == b""
    assert json.loads(done.stdout_text)["gradients"]["a"] == -432.0
    table = run_diffcli("grad", CHAIN, "--set", "o=1")
    assert table.returncode == 0 and not ANSI.search(table.stdout_text)
    assert "∂g/∂name" in table.stdout_text


def test_installed_executable_errors_go_to_stderr(tmp_path):
    model = tmp_path / "model.expr"
    model.write_text("a = 1\nb = 2(a + 3))\n")
    done = run_diffcli("grad", model)
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr_text == (
        "error: unexpected `)`\n"
        f" --> {model}:2:13\n"
        "  |\n"
        "2 | b = 2(a + 3))\n"
        "  |             ^\n"
        "  = help: remove it, or add the `(` it closes\n"
    )
    done = run_diffcli("grad", "-", "--json", input=b"y = \xff\n")
    assert done.returncode == 1 and json.loads(done.stderr_text)["error"]["kind"] == "io"


def test_grammar_is_packaged(tmp_path):
    """A non-editable install carries the grammar inside the package."""
    import subprocess
    import sys

    code = "import diffcli.language.parser as p, diffcli; print(p.grammar_path()); print(diffcli.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    grammar, package = done.stdout.split()
    assert done.returncode == 0 and grammar.endswith(".lark")
    if not package.startswith(str(ROOT)):  # installed, not run from the checkout
        assert grammar.endswith("diffcli/language/expr.lark")


def test_notes_go_to_stderr_but_not_with_json(tmp_path):
    model = tmp_path / "e.expr"
    model.write_text("e = 2\nx = 2e-3 + e\n")
    done = run_diffcli("grad", model)
    assert done.returncode == 0 and done.stderr_text.startswith("note: `2e-3` is the number 0.002")
    done = run_diffcli("grad", model, "--json")
    assert done.returncode == 0 and done.stderr == b""


def test_set_with_an_uncertainty_is_the_plain_value_outside_uncertainty():
    """`--set L=1±0.1` as `uncertainty` takes it; grad and eval take L = 1 and leave the ± alone."""
    pendulum = SAMPLES / "pendulum.expr"
    plain = json.loads(invoke("grad", pendulum, "--set", "L=1", "--json").output)
    for text in ("L=1±0.1", "L=1 +/- 5%", "L=1±0"):
        assert json.loads(invoke("grad", pendulum, "--set", text, "--json").output) == plain
    assert json.loads(invoke("eval", pendulum, "--set", "L=1±0.1", "--json").output)["inputs"]["L"] == 1.0
    for bad in ("L=1±x", "L=1±-0.1", "L=1±"):
        assert invoke("grad", pendulum, "--set", bad).exit_code == 2
