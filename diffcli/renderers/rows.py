"""Many points out: one row per point, as JSON Lines, CSV, or a table of the first and last rows.

Each chunk of points is computed by the batch engine and written at once; numbers are written with
repr, the shortest text that reads back as the same double. A failed point's row carries its
error; the run goes on, and the caller exits 1 at the end (SPEC "Many points").
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..interpreters import batch
from .diagnostics import error_body
from ..errors import DiffcliError
from ..formatting import json_text
from ..commands.points import Points
from ..program import Program

TABLE_ROWS = 10  # the table shows this many first and last rows


class Columns:
    """What each row holds, in order: the inputs, the values, the gradients."""

    def __init__(self, program: Program, result: batch.BatchResult, all_names: bool):
        self.output = result.output
        self.inputs = list(result.inputs)  # every input, then the given names the program does not use
        self.named = list(program.names) + result.unused
        self.values = [n for n in self.named if n not in result.inputs] if all_names else [self.output]
        self.gradients = list(result.gradients or ())
        self.all_names = all_names

    def csv_header(self) -> list[str]:
        return self.inputs + self.values + [f"d{self.output}/d{n}" for n in self.gradients] + ["error"]

    def arrays(self, result: batch.BatchResult) -> list[np.ndarray]:
        """The result's columns, in the order of csv_header (without `error`)."""
        values = [result.values[n] for n in self.values] if self.all_names else [result.value]
        return ([result.inputs[n] for n in self.inputs] + values
                + [result.gradients[n] for n in self.gradients])


def _name(text: str) -> str:
    return json_text(text).replace("%", "%%")


def _constant(array: np.ndarray):
    """The one value of a column that is the same at every point (a --set, a default), else None."""
    if array.strides == (0,) and len(array):
        return float(array[0])
    return None


def _fill(parts: list[str], arrays: list[np.ndarray]) -> tuple[list[str], list[list]]:
    """Row template parts with the columns that do not vary written in (formatted once per chunk
    rather than once per row), and the lists of the columns that do vary."""
    template, varying = [], []
    for part, array in zip(parts, arrays):
        constant = _constant(array)
        if constant is None:
            template.append(part)
            varying.append(array.tolist())
        else:
            template.append(part.replace("%r", repr(constant)))
    return template, varying


class JsonLines:
    def __init__(self, columns: Columns):
        c = self.columns = columns
        # (text before the slot, column) for every number of a row, in order
        slots = [(f"{', ' if k else ''}{_name(n)}: ", ("inputs", n)) for k, n in enumerate(c.inputs)]
        slots[0] = ('{"point": %d, "inputs": {' + slots[0][0], slots[0][1])
        slots.append(('}, "value": ', ("value", None)))
        closing = "}"
        if c.all_names:
            slots += [(f"{', ' if k else ''}{_name(n)}: ", ("values", n)) for k, n in enumerate(c.named)]
            slots[-len(c.named)] = (', "values": {' + slots[-len(c.named)][0], ("values", c.named[0]))
            closing = "}}"
        if c.gradients:
            first = len(slots)
            slots += [(f"{', ' if k else ''}{_name(n)}: ", ("gradients", n)) for k, n in enumerate(c.gradients)]
            slots[first] = (("}" if c.all_names else "") + ', "gradients": {' + slots[first][0], slots[first][1])
            closing = "}}"
        self.parts = [text.replace("%", "%%").replace("%%d", "%d") + "%r" for text, _ in slots]
        self.sources = [source for _, source in slots]
        self.tail = closing + "\n"

    def _array(self, result, source):
        table, name = source
        if table == "value":
            return result.value
        return getattr(result, table)[name]

    def rows(self, offset: int, result: batch.BatchResult) -> str:
        arrays = [self._array(result, source) for source in self.sources]
        template, varying = _fill(self.parts, arrays)
        template = "".join(template) + self.tail
        table = zip(range(offset, offset + result.n), *varying)
        if not result.errors:
            return "".join([template % row for row in table])
        lines = []
        for k, row in enumerate(table):
            error = result.errors.get(k)
            if error is None:
                lines.append(template % row)
            else:
                inputs = {n: float(result.inputs[n][k]) for n in self.columns.inputs}
                lines.append(json_text({"point": offset + k, "inputs": inputs, "error": error_body(error)}) + "\n")
        return "".join(lines)


def _given(x, text) -> str:
    """A failed point's input cell: `text` of the number, or empty where its value did not fit
    (array_points.py: an array of the wrong shape in the file, whose elements are NaN here)."""
    x = float(x)
    return "" if math.isnan(x) else text(x)


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


class Csv:
    def __init__(self, columns: Columns):
        self.columns = columns
        self.width = len(columns.csv_header()) - 1
        self.inputs = len(columns.inputs)
        self.blank = "," * (self.width - self.inputs)

    def header(self) -> str:
        return ",".join(map(_csv_cell, self.columns.csv_header())) + "\n"

    def rows(self, offset: int, result: batch.BatchResult) -> str:
        arrays = self.columns.arrays(result)
        template, varying = _fill(["%r,"] * self.width, arrays)
        template = "".join(template) + "\n"
        if not result.errors:
            return "".join([template % row for row in zip(*varying)])
        lines = []
        for k, row in enumerate(zip(*varying)):
            error = result.errors.get(k)
            if error is None:
                lines.append(template % row)
            else:
                lines.append(",".join(_given(a[k], repr) for a in arrays[: self.inputs]) + "," + self.blank
                             + _csv_cell(error.message) + "\n")
        return "".join(lines)


class Summary:
    """The first and last rows, for a table on a terminal. Inputs that are the same at every point
    (set, or left at their default) go in the caption rather than in columns."""

    def __init__(self, columns: Columns, precision: int):
        self.columns, self.precision = columns, precision
        self.first: list[list[str]] = []
        self.last: list[list[str]] = []
        self.n = 0
        self.keep: list[int] | None = None   # the columns shown, by index into csv_header
        self.fixed: dict[str, float] = {}

    def _choose(self, arrays) -> None:
        c = self.columns
        fixed = {n: _constant(a) for n, a in zip(c.inputs, arrays) if _constant(a) is not None}
        if len(fixed) == len(c.inputs):  # nothing varies: show every input
            fixed = {}
        self.fixed = fixed
        inputs = [k for k, n in enumerate(c.inputs) if n not in fixed]
        values = list(range(len(c.inputs), len(c.inputs) + len(c.values)))
        first = len(c.inputs) + len(c.values)
        gradients = [first + k for k, n in enumerate(c.gradients) if n not in fixed]
        self.keep = inputs + values + gradients

    def add(self, offset: int, result: batch.BatchResult) -> None:
        from .report import number

        arrays = self.columns.arrays(result)
        if self.keep is None:
            self._choose(arrays)
        inputs = len(self.columns.inputs)
        wanted = [k for k in range(result.n) if offset + k < TABLE_ROWS or k >= result.n - TABLE_ROWS]
        for k in wanted:
            error = result.errors.get(k)
            cells = [str(offset + k)] + [
                "" if error is not None and i >= inputs else _given(arrays[i][k], lambda x: number(x, self.precision))
                for i in self.keep] + [error.message if error is not None else ""]
            (self.first if offset + k < TABLE_ROWS else self.last).append(cells)
        self.last = self.last[-TABLE_ROWS:]
        self.n = offset + result.n

    def render(self, title: str):
        from rich.table import Table

        from .report import number

        all_names = self.columns.csv_header()
        header = ["point"] + [all_names[k] for k in self.keep]
        failed = any(row[-1] for row in self.first + self.last)
        if failed:
            header.append("error")
        caption = f"{self.n:,} point{'s' * (self.n != 1)}"
        if self.n > len(self.first) + len(self.last):
            caption += f", {self.n - len(self.first) - len(self.last):,} not shown"
        if self.fixed:
            caption += "; the same at every point: " + ", ".join(
                f"{n} = {number(v, self.precision)}" for n, v in self.fixed.items())
        table = Table()
        for k, name in enumerate(header):
            table.add_column(name, justify="left" if failed and k == len(header) - 1 else "right")
        for row in self.first:
            table.add_row(*row[: len(header)])
        if self.n > len(self.first) + len(self.last):
            table.add_row(*["⋮"] * len(header))
        for row in self.last:
            table.add_row(*row[: len(header)])
        from rich.console import Group
        from rich.text import Text

        return Group(Text(title), table, Text(caption))


class Progress:
    """A progress bar on standard error, shown only on a terminal and only once a run has taken a
    second (a short run should not flash one)."""

    def __init__(self, total: int):
        self.total, self.started, self.bar, self.task = total, time.perf_counter(), None, None
        self.enabled = sys.stderr.isatty()

    def advance(self, done: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.started < 1.0:
                return
            from rich.console import Console
            from rich.progress import Progress as Bar

            self.bar = Bar(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("points", total=self.total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(program: Program, points: Points, sets: dict[str, float], of: str | None, *, gradients: bool,
        all_names: bool, write: Callable[[str], None], fmt: str, precision: int = 6):
    """Compute every point a chunk at a time and write its rows (fmt "jsonl" or "csv"), or keep the
    first and last (fmt "table")."""
    writer = None
    failed, first = 0, None
    progress = Progress(points.n)
    try:
        for offset, chunk in points.chunks():
            result = batch.run(program, {**sets, **chunk}, of, gradients=gradients, all_names=all_names)
            if writer is None:
                columns = Columns(program, result, all_names)
                writer = {"jsonl": JsonLines, "csv": Csv}.get(fmt, lambda c: Summary(c, precision))(columns)
                if fmt == "csv":
                    write(writer.header())
            if result.errors:
                failed += len(result.errors)
                if first is None:
                    k = min(result.errors)
                    first = (offset + k, result.errors[k])
            if fmt == "table":
                writer.add(offset, result)
            else:
                write(writer.rows(offset, result))
            progress.advance(offset + result.n)
    finally:
        progress.close()
    return Outcome(points.n, failed, first, writer if fmt == "table" else None,
                   writer.columns.inputs[len(program.graph.inputs):])


@dataclass
class Outcome:
    n: int
    failed: int
    first: tuple[int, DiffcliError] | None   # the first failed point and its error
    summary: Summary | None                 # the table's rows, for fmt "table"
    unused: list[str]                       # given names the program does not use


def failure_report(outcome: Outcome, as_json: bool, color: bool = False) -> str:
    """What standard error says after a run in which some points failed."""
    from .diagnostics import render_text

    point, error = outcome.first
    summary = f"{outcome.failed:,} of {outcome.n:,} points failed; the first is point {point}"
    if as_json:
        body = error_body(error)
        body = {**body, "message": f"{summary}: {error.message}", "point": point,
                "failed": outcome.failed, "points": outcome.n}
        return json_text({"error": body}) + "\n"
    head = f"\x1b[1;31merror\x1b[0m\x1b[1m: {summary}\x1b[0m\n" if color else f"error: {summary}\n"
    return head + render_text(error, color=color)
