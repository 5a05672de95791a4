"""Bad input for diffcli, and the properties it must keep whatever it is given.

The inputs: random characters, random tokens of the language, sample files truncated and mutated,
invalid UTF-8, NUL bytes, huge numbers, long names and lines, deep parentheses, and random command
lines with bad --set/--of values. Every generator takes a `random.Random`, so tests (under
hypothesis) and scripts/long_fuzz.py draw the same kinds of input.

The properties (SPEC section 2): only DiffcliError leaves the library; the command exits 0, 1 or
2, prints no traceback, leaves standard output empty on error and says why on standard error.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import diffcli
from diffcli.renderers import diagnostics
from diffcli.program import read_source

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "samples").glob("*.expr")) + sorted((ROOT.parent / "shared" / "conformance").glob("*/*.expr"))
SEED_TEXTS = [p.read_bytes() for p in SEEDS] or [b"a = 2\nb = 5 - 3a\ng = 3b - o\n"]

TOKENS = [
    "a", "b", "x", "y_1", "θ", "e", "E", "pi", "sin", "min", "max", "pow", "atan2", "log", "sqrt", "relu",
    "abs", "exp", "hypot", "0", "1", "2", "2.", ".5", "1e-3", "2e", "1e999", "1e-999", "5e-324", "0.0",
    "+", "-", "*", "/", "^", "**", "(", ")", ",", "=", ";", "#", "\n", "\r\n", "\r", " ", "\t", "\x00",
    "\ufeff", "é", "٣", "１", "_", "!", "'", ".", "..", "e5", "$", "\u200b", "\x0c", "\\", "°", "ǅ",
]
NUMBERS = ["0", "-0", "1", "-1", "2.5", "1e308", "-1e308", "5e-324", "1e-320", "1e999", "nan", "inf",
           "-inf", "0x10", "1_000", "", " ", "abc", "1e", "++1", "٣", "1,2"]


def _token_soup(rng: random.Random) -> str:
    return "".join(rng.choice(TOKENS) for _ in range(rng.randint(0, 40)))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: delete, duplicate, insert a token or byte, flip a byte, truncate."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(data))
        j = min(len(data), i + rng.randint(0, 12))
        edit = rng.randint(0, 5)
        if edit == 0:
            del data[i:j]
        elif edit == 1:
            data[i:i] = data[i:j] * rng.randint(1, 3)
        elif edit == 2:
            data[i:i] = rng.choice(TOKENS).encode("utf-8")
        elif edit == 3:
            data[i:i] = bytes([rng.randint(0, 255)])
        elif edit == 4 and i < len(data):
            data[i] ^= 1 << rng.randint(0, 7)
        else:
            del data[i:]
    return bytes(data)


def _extreme(rng: random.Random) -> str:
    """The large and the deep: long names and lines, deep parentheses, many statements, huge numbers."""
    n = rng.choice([1000, 10_000, 100_000])
    kind = rng.randint(0, 6)
    if kind == 0:
        return "x" * n + " = 2\ny = " + "x" * n + "\n"
    if kind == 1:
        return "y = " + "(" * n + "1" + ")" * rng.choice([n, n - 1, n + 1]) + "\n"
    if kind == 2:
        return "a = 1\ny = " + " + ".join(["a"] * (n // 10)) + rng.choice(["", " +", ")"]) + "\n"
    if kind == 3:
        return "y = " + "-" * n + "2\n"
    if kind == 4:
        return "y = 2" + "^2" * (n // 10) + "\n"
    if kind == 5:
        return "y = " + "9" * n + "\n"
    return "a = 1\n" + "".join(f"v{i} = a{rng.choice(['', '*', '+'])}\n" for i in range(n // 100))


EDGE_NUMBERS = ["0", "1", "2", "0.5", "3", "1e308", "1.7976931348623157e308", "5e-324", "1e-320", "1e-300",
                "710", "1e16", "0.1", "pi"]
FUNCTIONS = ["sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log", "ln", "log2",
             "log10", "sqrt", "abs", "sigmoid", "relu", "softplus"]


def _random_expression(rng: random.Random, names: list[str], depth: int) -> str:
    if depth <= 0 or rng.random() < 0.3:
        return rng.choice(names + EDGE_NUMBERS) if names else rng.choice(EDGE_NUMBERS)
    sub = lambda: _random_expression(rng, names, depth - 1)  # noqa: E731
    kind = rng.randint(0, 6)
    if kind == 0:
        return f"{sub()} {rng.choice(['+', '-', '*', '/', '^', '**'])} {sub()}"
    if kind == 1:
        return f"({sub()})"
    if kind == 2:
        return f"-{sub()}"
    if kind in (3, 4):
        return f"{rng.choice(FUNCTIONS)}({sub()})"
    if kind == 5:
        return f"{rng.choice(['pow', 'atan2', 'hypot'])}({sub()}, {sub()})"
    return f"{rng.choice(['min', 'max'])}({', '.join(sub() for _ in range(rng.randint(2, 4)))})"


def _random_program(rng: random.Random) -> str:
    """A valid program, often not a sound one: edge values for every operation, so that domain
    errors and overflow (forward and reverse) are reached."""
    names, lines = [], []
    for i in range(rng.randint(1, 5)):
        name = f"v{i}"
        if rng.random() < 0.3:
            lines.append(f"{name} = {rng.choice(['', '-'])}{rng.choice(EDGE_NUMBERS[:-1])}")
        else:
            lines.append(f"{name} = {_random_expression(rng, names + ['free'], rng.randint(1, 4))}")
        names.append(name)
    return "\n".join(lines) + "\n"


def random_input(rng: random.Random, extreme: bool = False) -> bytes:
    """One input file's bytes, of a random kind."""
    kind = rng.randint(0, 11 if extreme else 10)
    if kind >= 9 and not (extreme and kind == 11):
        return _random_program(rng).encode("utf-8")
    if kind == 0:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 30))).encode("utf-8", "replace")
    if kind == 1:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))
    if kind in (2, 3):
        return _token_soup(rng).encode("utf-8")
    if kind == 4:
        seed = rng.choice(SEED_TEXTS)
        return seed[: rng.randint(0, len(seed))]
    if kind <= 8:
        return _mutate(rng, rng.choice(SEED_TEXTS + [_random_program(rng).encode("utf-8")]))
    return _extreme(rng).encode("utf-8")


def random_values(rng: random.Random, program) -> dict[str, float]:
    """Values for some of the program's inputs (often all), now and then for a name it does not take."""
    inputs = list(program.inputs)
    chosen = inputs if rng.random() < 0.5 else rng.sample(inputs, rng.randint(0, len(inputs)))
    values = {name: rng.choice([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e308, -1e308, 5e-324, 1e-300, 3.0, 700.0])
              for name in chosen}
    if rng.random() < 0.05:
        values[rng.choice(program.names + ["zz", "a", "b1", "x", "nan"])] = rng.choice([1.0, math.nan, math.inf])
    return values


# ---------------------------------------------------------------- the library's property

def check_library(data: bytes, rng: random.Random) -> str:
    """Run the library on `data` as every command would; only DiffcliError may escape.

    Returns what happened ("ok" or the error's kind); any other exception propagates: it is a finding.
    Each DiffcliError is also rendered, as text and as JSON, as the command line would.
    """
    try:
        program = diffcli.parse(read_source(data, "fuzz.expr"), "fuzz.expr")
        names = program.names
        values = random_values(rng, program)
        of = rng.choice(names + ["nope"]) if rng.random() < 0.3 else None
        program.evaluate(values)
        program.grad(values, of)
        inputs = [n for n in names if program.is_input(n)]
        if inputs:
            program.derivatives(rng.choice(inputs + names), values)
        return "ok"
    except diffcli.DiffcliError as error:
        assert error.kind in ("syntax", "name", "cycle", "domain", "input", "io"), error.kind
        diagnostics.render_text(error)
        diagnostics.render_json(error)
        return error.kind


# ---------------------------------------------------------------- the command line's property

OPTIONS = ["--set", "--of", "--json", "--precision", "--mode", "--wrt", "--nope", "-h", "--version", "-"]


def random_argv(rng: random.Random, names: list[str]) -> list[str]:
    """A command line for `diffcli`, often malformed: FILE is read from standard input (`-`)."""
    if rng.random() < 0.6:  # well formed, so that the file itself is exercised
        argv = [rng.choice(["grad", "grad", "eval"]), "-"] + (["--json"] if rng.random() < 0.5 else [])
        if names and rng.random() < 0.5:
            argv += ["--set", ",".join(f"{n}={rng.choice(NUMBERS[:10])}" for n in rng.sample(names, 1))]
        if names and argv[0] == "grad" and rng.random() < 0.2:
            argv += ["--of", rng.choice(names)]
        return argv
    command = rng.choice(["grad", "grad", "eval", "nope", "GRAD", ""])
    argv = [command] if command else []
    if rng.random() < 0.95:
        argv.append("-")
    pool = names + ["zz", "", "=", "a b", "θ", "x" * 300]
    for _ in range(rng.randint(0, 4)):
        option = rng.choice(OPTIONS)
        argv.append(option)
        if option == "--set":
            items = [f"{rng.choice(pool)}{rng.choice(['=', '=', '==', ':', ''])}{rng.choice(NUMBERS)}"
                     for _ in range(rng.randint(1, 3))]
            argv.append(rng.choice([",", ", ", ",,"]).join(items))
        elif option in ("--of", "--wrt"):
            argv.append(rng.choice(pool))
        elif option == "--precision":
            argv.append(rng.choice(["0", "1", "17", "18", "-1", "x", "6"]))
        elif option == "--mode":
            argv.append(rng.choice(["reverse", "forward", "sideways", ""]))
    return argv


def check_result(exit_code: int, stdout: str, stderr: str) -> None:
    """The command line's promises, whatever it was given."""
    assert exit_code in (0, 1, 2), exit_code
    for stream in (stdout, stderr):
        assert "Traceback" not in stream and "internal error" not in stream, stream[-2000:]
    if exit_code != 0:
        assert stdout == "", stdout[:500]
        assert stderr.strip(), "no diagnostic on standard error"


def check_cli_in_process(runner, app, argv: list[str], data: bytes) -> int:
    """Run the Typer app in-process (CliRunner) and check its promises; returns the exit code."""
    done = runner.invoke(app, argv, input=data)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise AssertionError(f"{type(done.exception).__name__}: {done.exception}") from done.exception
    check_result(done.exit_code, done.stdout, done.stderr)
    return done.exit_code
