"""No input makes time or memory grow without bound: endless points and data files, huge sweeps,
fit's step count, Monte Carlo's sample count. Each is refused quickly, or done in bounded memory."""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys

import pytest

import diffcli
from diffcli.commands import points

from conftest import diffcli_command

SQUARE = "x = 1\ny = x^2\n"
MEMORY = 1 << 30  # address space for a child run: far below what an endless line used (24 GB)


def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


# one BLAS thread: on a machine of many cores each thread's buffers would take address space
ENVIRONMENT = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_limited(tmp_path, *arguments):
    """The real command, in a child whose address space is capped at MEMORY."""
    program = tmp_path / "square.expr"
    program.write_text(SQUARE)
    return subprocess.run(diffcli_command() + [arguments[0], str(program), *arguments[1:]],
                          capture_output=True, text=True, preexec_fn=_limited, timeout=120, env=ENVIRONMENT)


@pytest.mark.parametrize("option", [["grad", "--points"], ["eval", "--points"], ["fit", "--data"]])
def test_an_endless_line_is_refused_quickly_in_bounded_memory(tmp_path, option):
    """Issue 21: `--points /dev/zero` grew past 24 GB; now a line past 16 MiB is an io error."""
    done = run_limited(tmp_path, option[0], *option[1:], "/dev/zero", "--json")
    assert done.returncode == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "io" and "line 1 of /dev/zero is longer than 16 MiB" in error["message"]


class Endless(io.TextIOBase):
    """A header, then valid rows that never end (as `yes 1` would give)."""

    def __init__(self):
        self.header = True

    def read(self, size=-1):
        if self.header:
            self.header = False
            return "x\n"
        return "1\n" * (size // 2)


def test_an_endless_file_of_short_lines_is_refused_at_the_bound():
    program = diffcli.parse(SQUARE)
    with pytest.raises(diffcli.DiffcliError) as raised:
        points.read_points(Endless(), "endless.csv", None, program, limit=5 * 2**20)
    assert raised.value.kind == "io" and "endless.csv is longer than 5 MiB" in raised.value.message
    assert points.MAX_DATA_TEXT < points.MAX_POINTS_TEXT  # --data is kept in memory, --points is not


def test_a_long_line_is_refused_after_shorter_ones(monkeypatch):
    monkeypatch.setattr(points, "MAX_LINE", 100)
    monkeypatch.setattr(points, "READ_BLOCK", 16)
    program = diffcli.parse(SQUARE)
    text = "x\n1\n2\n" + "3" * 101 + "\n"
    with pytest.raises(diffcli.DiffcliError, match="line 4 of long.csv is longer than"):
        points.read_points(io.StringIO(text), "long.csv", None, program)
    ok = points.read_points(io.StringIO("x\n1\n2\n" + "3" * 99 + "\n4"), "ok.csv", None, program)
    assert [list(c["x"]) for _, c in ok.chunks()] == [[1.0, 2.0, float("3" * 99), 4.0]]


def test_a_huge_sweep_is_checked_and_made_a_chunk_at_a_time(tmp_path):
    """Issue 21: `--sweep x=0:1:1000000000` allocated 8 GB before anything; 10^20 points died with
    `internal error: ValueError`. Now the first rows come at once, in a capped address space."""
    program = tmp_path / "square.expr"
    program.write_text(SQUARE)
    child = subprocess.Popen(diffcli_command() + ["eval", str(program), "--sweep", "x=0:1:1000000001",
                                                  "--csv"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_limited, env=ENVIRONMENT)
    try:
        rows = [child.stdout.readline() for _ in range(3)]
    finally:
        child.stdout.close()
        child.wait(timeout=60)
    assert rows[:2] == ["x,y,error\n", "0.0,0.0,\n"] and rows[2].startswith("1e-09,")
    assert child.stderr.read() == ""
    done = run_limited(tmp_path, "eval", "--sweep", "x=0:1:100000000000000000000", "--json")
    assert done.returncode == 1 and "internal" not in done.stderr
    assert "more than 10,000,000,000" in json.loads(done.stderr)["error"]["message"]


def test_sweep_values_are_numpys_bit_for_bit():
    import random

    import numpy as np

    rng = random.Random(21)
    for _ in range(400):
        num = rng.choice([1, 2, 3, 5, 10, 97])
        a, b = (rng.uniform(-1e3, 1e3) * 10.0 ** rng.randint(-300, 300) for _ in range(2))
        assert np.array_equal(points.Sweep("x", a, b, num).values(), np.linspace(a, b, num)), (a, b, num)
        if a * b > 0:
            assert np.array_equal(points.Sweep("x", a, b, num, True).values(), np.geomspace(a, b, num))


@pytest.mark.parametrize("command", ["eval", "grad"])
def test_a_sweep_over_every_double_is_made_without_overflow(tmp_path, command):
    """Issue 21: `eval id.expr --sweep x=-1e308:1e308:3 --json` printed `"x": NaN` and Infinity,
    blamed --set and showed NumPy's warnings."""
    program = tmp_path / "id.expr"
    program.write_text("x = 1\ny = x\n")
    done = subprocess.run(diffcli_command() + [command, str(program), "--sweep", "x=-1e308:1e308:3",
                                               "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    rows = [json.loads(line, parse_constant=pytest.fail) for line in done.stdout.splitlines()]
    assert [row["inputs"]["x"] for row in rows] == [-1e308, 0.0, 1e308] == [row["value"] for row in rows]
    wide = points.Sweep("x", -1.7976931348623157e308, 1.7976931348623157e308, 5).values()
    assert wide[0] == -wide[-1] == -1.7976931348623157e308 and wide[2] == 0
    assert list(wide) == pytest.approx([-1.7976931348623157e308, -8.988465674311579e307, 0.0,
                                        8.988465674311579e307, 1.7976931348623157e308], rel=1e-15)


@pytest.mark.parametrize("sweeps", [["x=-1e308:1e308:3"], ["x=-1e308:1e308:3", "w=-1e308:1e308:3"],
                                    ["x=1e-300:1e300:9:log", "w=-1e308:-1e-300:3:log"], ["x=1e300:1e308:5"]])
def test_plot_specifies_the_widest_sweeps(tmp_path, sweeps):
    """Issue 21: plot over such a sweep was `internal error: TypeError` (ZeroDivisionError for log
    heat maps); overflowing points are gaps, and the specification holds only finite numbers."""
    from typer.testing import CliRunner

    from diffcli.cli import app

    program = tmp_path / "xw.expr"
    program.write_text("x = 1\nw = 1\ny = x*w\n")
    out = tmp_path / "p.json"
    arguments = [a for s in sweeps for a in ("--sweep", s)]
    done = CliRunner().invoke(app, ["plot", str(program), *arguments, "-o", str(out)])
    assert done.exit_code == 0, done.output
    json.loads(out.read_text(), parse_constant=pytest.fail)  # no NaN, no Infinity


def test_plot_draws_a_sweep_over_every_double(tmp_path):
    program = tmp_path / "xw.expr"
    program.write_text("x = 1\nw = 1\ny = x*w\n")
    out = tmp_path / "p.svg"
    done = subprocess.run(diffcli_command() + ["plot", str(program), "--sweep", "x=-1e308:1e308:3", "--sweep",
                                               "w=-1e308:1e308:3", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "internal" not in done.stderr and "Error" not in done.stderr
    assert out.read_text().lstrip().startswith("<svg")


@pytest.mark.parametrize("sweep", ["x=5e-324:1e-323:3", "x=2.2e-308:4.4e-308:3", "x=5e-324:1e-320:3:log"])
def test_plot_refuses_an_axis_too_small_to_draw(tmp_path, sweep):
    """(Vega's ticks fail there: `RangeError: Invalid array length` and an empty picture.)"""
    from typer.testing import CliRunner

    from diffcli.cli import app

    program = tmp_path / "id.expr"
    program.write_text("x = 1\ny = x\n")
    done = CliRunner().invoke(app, ["plot", str(program), "--sweep", sweep, "-o", str(tmp_path / "p.svg")])
    assert done.exit_code == 2 and "cannot" in done.output
