"""Many points out: one row per point, as JSON Lines, CSV, or a table of the first and last rows.

Each chunk of points is computed by the batch engine and written at once; numbers are written with
repr, the shortest text that reads back as the same double. A failed point's row carries its
error; the run goes on, and the caller exits 1 at the end (SPEC "Many points").
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import batch
from .diagnostics import error_body
from .errors import DiffcliError
from .points import Points
from .program import Program

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
    return json.dumps(text, ensure_ascii=False).replace("%", "%%")


class JsonLines:
    def __init__(self, columns: Columns):
        self.columns = columns
        c = columns
        inputs = ", ".join(f"{_name(n)}: %r" for n in c.inputs)
        head = '{"point": %d, "inputs": {' + inputs + "}"
        body = ', "value": %r'
        if c.all_names:
            body += ', "values": {' + ", ".join(f"{_name(n)}: %r" for n in c.named) + "}"
        if c.gradients:
            body += ', "gradients": {' + ", ".join(f"{_name(n)}: %r" for n in c.gradients) + "}"
        self.head, self.template = head, head + body + "}\n"

    def rows(self, offset: int, result: batch.BatchResult) -> str:
        c = self.columns
        n = result.n
        inputs = [result.inputs[name].tolist() for name in c.inputs]
        out = [result.value.tolist()]
        if c.all_names:
            out += [result.values[name].tolist() for name in c.named]
        out += [result.gradients[name].tolist() for name in c.gradients]
        table = zip(range(offset, offset + n), *inputs, *out)
        template = self.template
        if not result.errors:
            return "".join([template % row for row in table])
        lines = []
        for k, row in enumerate(table):
            error = result.errors.get(k)
            if error is None:
                lines.append(template % row)
            else:
                lines.append(self.head % row[: 1 + len(inputs)] + ', "error": '
                             + json.dumps(error_body(error), ensure_ascii=False) + "}\n")
        return "".join(lines)


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(ch in text for ch in ',"\n\r') else text


class Csv:
    def __init__(self, columns: Columns):
        self.columns = columns
        self.width = len(columns.csv_header()) - 1
        self.template = ",".join(["%r"] * self.width) + ",\n"
        self.inputs = len(columns.inputs)
        self.blank = "," * (self.width - self.inputs)

    def header(self) -> str:
        return ",".join(self.columns.csv_header()) + "\n"

    def rows(self, offset: int, result: batch.BatchResult) -> str:
        arrays = [a.tolist() for a in self.columns.arrays(result)]
        template = self.template
        if not result.errors:
            return "".join([template % row for row in zip(*arrays)])
        lines = []
        for k, row in enumerate(zip(*arrays)):
            error = result.errors.get(k)
            if error is None:
                lines.append(template % row)
            else:
                lines.append(",".join(map(repr, row[: self.inputs])) + "," + self.blank
                             + _csv_cell(error.message) + "\n")
        return "".join(lines)


class Summary:
    """The first and last rows, for a table on a terminal."""

    def __init__(self, columns: Columns, precision: int):
        self.columns, self.precision = columns, precision
        self.first: list[list[str]] = []
        self.last: list[list[str]] = []
        self.n = 0

    def add(self, offset: int, result: batch.BatchResult) -> None:
        from .report import number

        arrays = self.columns.arrays(result)
        wanted = [k for k in range(result.n) if offset + k < TABLE_ROWS or k >= result.n - TABLE_ROWS]
        for k in wanted:
            error = result.errors.get(k)
            cells = [str(offset + k)] + [
                "" if error is not None and i >= len(self.columns.inputs) else number(float(a[k]), self.precision)
                for i, a in enumerate(arrays)] + [error.message if error is not None else ""]
            (self.first if offset + k < TABLE_ROWS else self.last).append(cells)
        self.last = self.last[-TABLE_ROWS:]
        self.n = offset + result.n

    def render(self, title: str):
        from rich.table import Table

        header = ["point"] + self.columns.csv_header()
        failed = any(row[-1] for row in self.first + self.last)
        if not failed:
            header = header[:-1]
        table = Table(title=title, caption=f"{self.n:,} points", title_justify="left")
        for k, name in enumerate(header):
            table.add_column(name, justify="right" if k < len(header) - (1 if failed else 0) else "left")
        for row in self.first:
            table.add_row(*row[: len(header)])
        if self.n > len(self.first) + len(self.last):
            skipped = self.n - len(self.first) - len(self.last)
            table.add_row("…", f"[dim]{skipped:,} more points[/dim]", *[""] * (len(header) - 2))
        for row in self.last:
            table.add_row(*row[: len(header)])
        return table


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
        return json.dumps({"error": body}, ensure_ascii=False) + "\n"
    head = f"\x1b[1;31merror\x1b[0m\x1b[1m: {summary}\x1b[0m\n" if color else f"error: {summary}\n"
    return head + render_text(error, color=color)
