"""Bad input never crashes diffcli (see fuzzing.py for the inputs and the properties).

Bounded for CI: a few thousand inputs in-process (library and Typer app), a handful through the
real command. scripts/long_fuzz.py runs the same generators for a million inputs.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import diffcli
from conftest import run_diffcli
from diffcli.cli import app
from fuzzing import TOKENS, check_cli_in_process, check_library, check_result, random_argv, random_input

LIBRARY_EXAMPLES = 3000
CLI_EXAMPLES = 600


@settings(max_examples=LIBRARY_EXAMPLES)
@given(st.randoms(use_true_random=False))
def test_library_raises_only_diffcli_errors(rng):
    check_library(random_input(rng), rng)


@settings(max_examples=500)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join), st.randoms(use_true_random=False))
def test_token_soup(text, rng):
    check_library(text.encode("utf-8"), rng)


@settings(max_examples=500)
@given(st.text(), st.randoms(use_true_random=False))
def test_any_text(text, rng):
    check_library(text.encode("utf-8", "surrogatepass"), rng)


@settings(max_examples=CLI_EXAMPLES)
@given(st.randoms(use_true_random=False))
def test_command_line_in_process(rng):
    data = random_input(rng)
    try:
        names = diffcli.parse(data.decode("utf-8")).names
    except (diffcli.DiffcliError, UnicodeDecodeError):
        names = []
    check_cli_in_process(CliRunner(), app, random_argv(rng, names), data)


def test_extreme_inputs_in_process():
    """Long names and lines, 100,000 nested parentheses, long chains of signs and powers."""
    rng = random.Random(5)
    for _ in range(12):
        check_library(random_input(rng, extreme=True), rng)


DEEP = 100_000
BAD_FILES = {
    "nul": b"a = 2\x00\nb = a\n",
    "invalid-utf8": b"a = \xff\xfe 2\nb = a\n",
    "truncated-utf8": "θ = 2\ny = θ".encode("utf-8")[:-1],
    "huge-number": b"a = 1e999\nb = a\n",
    "huge-integer": b"a = " + b"9" * 400 + b"\n",
    "overflow": b"a = 1e300\nb = a*a\n",
    "long-name-bad": b"x" * 100_000 + b" = 2\ny = " + b"x" * 100_000 + b" x\n",
    "long-line-bad": b"a = 1\ny = " + b" + ".join([b"a"] * 50_000) + b" +\n",
    "deep-open": b"y = " + b"(" * DEEP + b"1\n",
    "deep-extra-close": b"y = " + b"(" * DEEP + b"1" + b")" * (DEEP + 1) + b"\n",
    "empty": b"",
    "only-comments": b"# nothing\n\n",
    "bom-only": b"\xef\xbb\xbf",
    "lone-cr": b"a = 1\rb = a\n",
    "unicode-digit": "x = ٣\n".encode("utf-8"),
    "control-chars": b"a = 1\x1b[31m\n",
}


GOOD_BIG_FILES = {
    "deep": b"x = 0.5\ny = " + b"(" * DEEP + b"2x" + b")" * DEEP + b"\n",
    "long-name": b"x" * 100_000 + b" = 2\ny = 3" + b"x" * 100_000 + b"\n",
    "long-line": b"a = 1\ny = " + b" + ".join([b"a"] * 50_000) + b"\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES) + sorted(GOOD_BIG_FILES))
def test_files_through_the_real_command(name, tmp_path):
    path = tmp_path / "fuzz.expr"
    path.write_bytes(BAD_FILES[name] if name in BAD_FILES else GOOD_BIG_FILES[name])
    extra = ["--json"] if len(name) % 2 else []  # half of them with JSON errors
    done = run_diffcli("grad", path, *extra)
    assert done.returncode == (0 if name in GOOD_BIG_FILES else 1), (name, done.stderr_text[-500:])
    check_result(done.returncode, done.stdout_text, done.stderr_text)


BAD_ARGUMENTS = [
    (["--set", "a=1e999"], 2), (["--set", "a=nan"], 2), (["--set", "a=-inf"], 2), (["--set", "a"], 2),
    (["--set", "=1"], 2), (["--set", "a=1,b"], 2), (["--set", "a=0x10"], 2), (["--set", "a==1"], 2),
    (["--set", "b=1"], 1), (["--set", "zz=1,a=x"], 2), (["--set", "θ=1"], 0), (["--set", "a b=1"], 1),
    (["--of", "nope"], 1), (["--of", ""], 1), (["--of", "a"], 0), (["--wrt", "b"], 1), (["--wrt", "a"], 0),
    (["--mode", "forward"], 2), (["--mode", "sideways"], 2), (["--precision", "0"], 2), (["--nope"], 2),
    (["--of", "b", "--wrt", "a"], 2),
]


@pytest.mark.parametrize("argv, code", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments(argv, code):
    assert check_cli_in_process(CliRunner(), app, ["grad", "-", *argv], b"a = 2\nb = 3a\n") == code


@pytest.mark.parametrize("argv, code", [(["--set", "a=1e999"], 2), (["--set", "b=1"], 1), (["--of", "zz"], 1)])
def test_bad_arguments_through_the_real_command(argv, code, tmp_path):
    path = tmp_path / "good.expr"
    path.write_text("a = 2\nb = 3a\n", encoding="utf-8")
    done = run_diffcli("grad", path, *argv)
    assert done.returncode == code, done.stderr_text
    check_result(done.returncode, done.stdout_text, done.stderr_text)


def test_missing_file_and_directory(tmp_path):
    for target in (tmp_path / "missing.expr", tmp_path):
        done = run_diffcli("grad", target)
        assert done.returncode == 1
        check_result(done.returncode, done.stdout_text, done.stderr_text)


def test_bare_command_prints_help_and_succeeds():
    """Regression: Click 8.2 made a bare `diffcli` print help on standard output and exit 2."""
    done = run_diffcli()
    assert done.returncode == 0 and "Usage" in done.stdout_text and done.stderr == b""


def test_unicode_digits_are_not_numbers():
    """Regression: the number pattern was `\\d`, which took `٣` (Arabic-Indic three) for 3."""
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.parse("x = ٣\n")
    assert caught.value.kind == "syntax" and caught.value.column == 5
    assert diffcli.parse("x٣ = 2\ny = 3x٣\n").grad().gradients["x٣"] == 3.0  # a digit inside a name
