"""No input makes time or memory grow without bound: endless points and data files, huge sweeps,
fit's step count, Monte Carlo's sample count. Each is refused quickly, or done in bounded memory."""

from __future__ import annotations

import io
import json
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


def run_limited(tmp_path, *arguments):
    """The real command, in a child whose address space is capped at MEMORY."""
    program = tmp_path / "square.expr"
    program.write_text(SQUARE)
    return subprocess.run(diffcli_command() + [arguments[0], str(program), *arguments[1:]],
                          capture_output=True, text=True, preexec_fn=_limited, timeout=120)


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
