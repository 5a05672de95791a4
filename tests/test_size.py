"""Programs of the sizes users generate: long files, long lines, deep parentheses.

Each is checked against an evaluation that does not use diffcli's engine, and none may hit
Python's recursion limit. (Speed is measured in benchmarks/, never here.)
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

import diffcli
from conftest import SHARED

GENPROG = SHARED / "bench" / "genprog.py"
pytestmark = pytest.mark.skipif(not GENPROG.exists(), reason="../shared/bench/genprog.py is not here")


def generate(kind: str, size: int) -> str:
    return subprocess.run([sys.executable, str(GENPROG), kind, str(size)], capture_output=True,
                          text=True, check=True).stdout


def test_deep_5000_parentheses():
    result = diffcli.parse(generate("deep", 5000)).grad()
    y, dy = 0.5, 1.0
    for _ in range(5000):
        y, dy = y * 0.999 + 0.001, dy * 0.999
    assert result.value == pytest.approx(y, rel=1e-12)
    assert result.gradients["x"] == pytest.approx(dy, rel=1e-9)


def test_deep_100000_parentheses():
    text = "x = 0.5\ny = " + "(" * 100_000 + "x" + ")" * 100_000 + "\n"
    assert diffcli.parse(text).grad().gradients["x"] == 1.0


def test_wide_100000_terms_on_one_line():
    text = generate("wide", 100_000)
    result = diffcli.parse(text).grad()
    w, b = 0.5, 0.1
    loss = dw = db = 0.0
    for y, x in re.findall(r"\((-?[\d.]+) - \(w\*(-?[\d.]+) \+ b\)\)\^2", text):
        r = float(y) - (w * float(x) + b)
        loss += r * r
        dw += -2 * r * float(x)
        db += -2 * r
    assert text.count("^2") == 100_000
    assert result.value == pytest.approx(loss, rel=1e-9)
    assert result.gradients["w"] == pytest.approx(dw, rel=1e-9)
    assert result.gradients["b"] == pytest.approx(db, rel=1e-9)


def test_chain_100000_statements():
    text = generate("chain", 100_000)
    program = diffcli.parse(text)
    result = program.grad()
    assert result.output == "x99999" and len(result.values) == 100_000

    # values: the same program run by CPython, statement by statement
    python = re.sub(r"\b(sin|tanh|exp|log|sqrt)\(", r"math.\1(", text.replace("^", "**"))
    namespace = {"math": math}
    exec(compile(python, "chain", "exec"), namespace)
    for name in ("x2", "x1000", "x50000", "x99999"):
        assert result.values[name] == pytest.approx(namespace[name], rel=1e-12, abs=1e-300)
    worst = max(abs(result.values[n] - namespace[n]) / max(1.0, abs(namespace[n])) for n in result.values)
    assert worst < 1e-12

    # gradients: central differences of CPython's run, nudging one variable and re-running the rest
    lines = python.splitlines()
    mattering = [m for m in range(99_000, 99_999) if abs(result.gradients[f"x{m}"]) > 1e-3]
    assert len(mattering) > 3
    for m in mattering[:3] + mattering[-3:]:
        tail = compile("\n".join(lines[m + 1:]), "tail", "exec")
        x = namespace[f"x{m}"]
        h = 1e-6 * max(1.0, abs(x))
        ends = []
        for step in (h, -h):
            nudged = dict(namespace, **{f"x{m}": x + step})
            exec(tail, nudged)
            ends.append(nudged["x99999"])
        numeric = (ends[0] - ends[1]) / (2 * h)
        assert abs(numeric) > 1e-3
        assert result.gradients[f"x{m}"] == pytest.approx(numeric, rel=1e-5)

    # and reverse mode agrees with forward mode, a separate interpreter, where x0 still matters
    early = program.grad(of="x300").gradients["x0"]
    assert early != 0 and early == pytest.approx(program.derivatives("x0").derivatives["x300"], rel=1e-9)
