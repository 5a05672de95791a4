"""Standard streams and the command line under abuse: a full or closed standard output, a closed
standard input, and malformed command lines with --json, through the real `diffcli` command."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import SAMPLES, diffcli_command

CHAIN = str(SAMPLES / "backprop_chain.expr")


def _run(*args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, close_stdin=False,
         close_stdout=False):
    """The real command, with standard input or output closed (not merely empty) if asked."""
    close = [0] if close_stdin else []
    close += [1] if close_stdout else []

    def closing():
        for descriptor in close:
            os.close(descriptor)

    env = dict(os.environ)
    env.pop("DIFFCLI_DEBUG", None)
    done = subprocess.run(diffcli_command() + list(args), stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, preexec_fn=closing, env=env, timeout=300)
    done.stderr_text = done.stderr.decode("utf-8")
    return done


def _json_error(done) -> dict:
    assert done.stderr_text.count("\n") == 1, done.stderr_text
    return json.loads(done.stderr_text)["error"]


COMMANDS = [
    ["--version"], ["--help"], ["grad", "--help"],
    ["grad", CHAIN, "--set", "o=1"], ["grad", CHAIN, "--set", "o=1", "--json"],
    ["eval", CHAIN, "--set", "o=1"], ["check", CHAIN, "--set", "o=1"],
    ["explain", CHAIN, "--set", "o=1"], ["graph", CHAIN, "--set", "o=1"],
]
# many points: the batch writer goes through the same path (issue 21: `internal error: OSError`)
BATCH = [
    ["grad", CHAIN, "--sweep", "o=0:1:5"],  # (the table, then its summary)
    ["eval", str(SAMPLES / "decay.expr"), "--points", str(SAMPLES / "decay.csv"), "--json"],
]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", COMMANDS + BATCH, ids=" ".join)
def test_full_standard_output_is_an_io_error(args):
    with open("/dev/full", "wb") as full:
        done = _run(*args, stdout=full)
    assert done.returncode == 1, done.stderr_text
    assert "Traceback" not in done.stderr_text and "internal error" not in done.stderr_text
    if "--json" in args:
        assert _json_error(done)["kind"] == "io"
    else:
        assert done.stderr_text == "error: cannot write to standard output: No space left on device\n"


@pytest.mark.parametrize("args", COMMANDS[:2] + COMMANDS[3:5] + COMMANDS[-1:] + BATCH, ids=" ".join)
def test_closed_standard_output_is_an_io_error(args):
    done = _run(*args, stdout=None, close_stdout=True)
    assert done.returncode == 1, done.stderr_text
    assert "Traceback" not in done.stderr_text and "internal error" not in done.stderr_text
    assert "cannot write to standard output: it is closed" in done.stderr_text
    if "--json" in args:
        assert _json_error(done)["kind"] == "io"


@pytest.mark.parametrize("args, json_flag", [
    (["grad", CHAIN, "--points", "-"], []),
    (["fit", str(SAMPLES / "decay.expr"), "--data", "-", "--residual", "r"], ["--json"])], ids=str)
def test_points_from_a_closed_standard_input_are_an_io_error(args, json_flag):
    done = _run(*args, *json_flag, stdin=None, close_stdin=True)
    assert done.returncode == 1 and "internal error" not in done.stderr_text
    if json_flag:
        assert _json_error(done) == {"kind": "io", "message": "cannot read standard input: it is closed"}
    else:
        assert done.stderr_text == "error: cannot read standard input: it is closed\n"


def test_a_negative_seed_is_a_usage_error():
    done = _run("uncertainty", str(SAMPLES / "pendulum.expr"), "--monte-carlo", "10", "--seed", "-1", "--json")
    assert done.returncode == 2 and _json_error(done)["kind"] == "input"
    assert "--seed" in _json_error(done)["message"]


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_the_last_resort_handler_honours_json(monkeypatch, json_flag):
    """A bug in diffcli (here one put in on purpose) is still one line of text, or one JSON object."""
    from typer.testing import CliRunner

    from diffcli.cli import app
    from diffcli.program import Program

    def broken(*args, **kwargs):
        raise ZeroDivisionError("on purpose")

    monkeypatch.delenv("DIFFCLI_DEBUG", raising=False)
    monkeypatch.setattr(Program, "evaluate", broken)
    done = CliRunner().invoke(app, ["eval", CHAIN, "--set", "o=1", *json_flag])
    assert done.exit_code == 1 and done.stdout == ""
    if json_flag:
        error = json.loads(done.stderr)["error"]
        assert error["kind"] == "internal" and "ZeroDivisionError: on purpose" in error["message"]
    else:
        assert done.stderr.startswith("error: internal error in diffcli") and "Traceback" not in done.stderr


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_closed_standard_input_is_an_io_error(json_flag):
    done = _run("grad", "-", *json_flag, stdin=None, close_stdin=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr_text
    if json_flag:
        assert _json_error(done) == {"kind": "io", "message": "cannot read standard input: it is closed"}
    else:
        assert done.stderr_text == "error: cannot read standard input: it is closed\n"


@pytest.mark.parametrize("args, says", [
    (["--set", "x=abc"], "'abc' is not a number"),
    (["--precision", "0"], "--precision"),
    (["--mode", "forward"], "--mode forward needs --wrt NAME"),
    (["--no-such-option"], "No such option: --no-such-option"),
    (["--set", "x"], "is not NAME=VALUE"),
])
def test_malformed_command_line_with_json_is_one_json_error(args, says):
    done = _run("grad", str(SAMPLES / "neuron.expr"), "--json", *args)
    assert done.returncode == 2 and done.stdout == b""
    error = _json_error(done)
    assert error["kind"] == "input" and says in error["message"]


@pytest.mark.parametrize("value", ["١", "５", "1_000", "inf", "nan", "0x10", "1e", "--1", "1e999"])
def test_set_numbers_follow_the_language(value):
    done = _run("grad", str(SAMPLES / "neuron.expr"), "--set", f"x={value}", "--json")
    assert done.returncode == 2 and _json_error(done)["kind"] == "input", done.stderr_text


@pytest.mark.parametrize("value, number", [("2", 2.0), ("-.5e3", -500.0), ("+2.", 2.0), (" 3 ", 3.0)])
def test_set_numbers_in_the_language_are_accepted(value, number):
    done = _run("grad", str(SAMPLES / "neuron.expr"), "--set", f"x={value}", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["inputs"]["x"] == number


@pytest.mark.parametrize("option", [["--set", "{}=3"], ["--of", "{}"], ["--wrt", "{}"]])
@pytest.mark.parametrize("name, what", [("pi", "a constant"), ("sin", "a function")])
def test_reserved_names_cannot_be_set_or_chosen(name, what, option):
    done = _run("grad", str(SAMPLES / "neuron.expr"), option[0], option[1].format(name), "--json")
    assert done.returncode == 1 and done.stdout == b""
    error = _json_error(done)
    assert error["kind"] == "input" and f"`{name}` is {what}, not a variable" in error["message"]


def test_an_endless_input_is_refused():
    """/dev/zero as FILE used to be read until memory ran out."""
    done = _run("grad", "/dev/zero", "--json")
    assert done.returncode == 1 and _json_error(done)["message"].startswith("/dev/zero is larger than")


def test_a_file_past_the_limit_is_refused(tmp_path, monkeypatch):
    import diffcli
    from diffcli import program

    monkeypatch.setattr(program, "MAX_FILE_BYTES", 100)
    path = tmp_path / "big.expr"
    path.write_text("x = 1\n" * 20)
    with pytest.raises(diffcli.DiffcliError, match="larger than"):
        diffcli.load(path)
    path.write_text("x = 1" + " " * 94 + "\n")  # 100 bytes: the limit itself
    assert diffcli.load(path).names == ["x"]


BROKEN_PIPE_COMMANDS = COMMANDS + [
    ["grad", CHAIN, "--sweep", "o=0:1:200000"], ["grad", CHAIN, "--sweep", "o=0:1:200000", "--json"],
    ["eval", CHAIN, "--sweep", "o=0:1:200000", "--csv"], ["codegen", CHAIN, "--lang", "c", "--json"],
    ["hessian", CHAIN, "--set", "o=1", "--json"],
]


@pytest.mark.parametrize("args", BROKEN_PIPE_COMMANDS, ids=" ".join)
def test_a_broken_pipe_exits_1_quietly_or_with_a_json_error(args):
    """The reader has gone (`| head`): exit 1 on every command (a --sweep exited 0 and the others 1),
    nothing on standard error but the --json error object, as docs/errors.md says."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = _run(*args, stdout=writer)
    finally:
        os.close(writer)
    assert done.returncode == 1, done.stderr_text
    if "--json" in args:
        assert _json_error(done) == {"kind": "io", "message": "cannot write to standard output: Broken pipe"}
    else:
        assert done.stderr_text == ""
