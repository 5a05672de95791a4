"""Many points out for array programs: the batched array engine a chunk at a time, its rows written
as rows.py writes a scalar program's.

CSV and the table expand every array into element columns, row-major (`x[0]`, `W[0,1]`, and
`d<out>/d<label>` for the gradients; a header cell with a comma is quoted); JSON Lines keeps each
array a nested list. A point whose input had the wrong shape (JSON Lines) fails alone, with its
input error; its other inputs are shown as used, that one as written (JSON) or as empty cells.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DiffcliError
from ..formatting import json_text
from ..interpreters import array_batch
from .diagnostics import error_body
from .rows import Csv, Outcome, Progress, Summary, failure_report  # noqa: F401  (the caller reads it here)


def labels(name: str, shape: tuple) -> list[str]:
    return [name] if not shape else [f"{name}[{','.join(map(str, index))}]" for index in np.ndindex(*shape)]


def _flat(table: dict, names: list[str], n: int) -> dict:
    """{label: the (n,) column of that element} for these names' (n,) + shape arrays."""
    out = {}
    for name in names:
        array = table[name]
        shape = array.shape[1:]
        if n > 1 and array.strides[0] == 0:  # the same at every point: kept so (the table's caption)
            first = array[0].reshape(-1)
            for k, label in enumerate(labels(name, shape)):
                out[label] = np.broadcast_to(first[k], (n,))
            continue
        flat = array.reshape(n, -1)
        for k, label in enumerate(labels(name, shape)):
            out[label] = flat[:, k]
    return out


class _Flat:
    """An ArrayBatchResult as rows.py's writers read a BatchResult: a 1-D column per label."""

    def __init__(self, result, columns):
        self.n, self.errors = result.n, result.errors
        self.inputs = _flat(result.inputs, columns.input_names, result.n)
        table = result.values if columns.all_names else {result.output: result.value}
        self.values = _flat(table, columns.value_names, result.n)
        self.gradients = _flat(result.gradients, columns.gradient_names, result.n) if result.gradients else {}


class ArrayColumns:
    """rows.Columns for arrays: labels in place of names."""

    def __init__(self, program, result, all_names: bool):
        self.output, self.all_names = result.output, all_names
        self.input_names = list(result.inputs)
        names = self.named = list(program.names) + result.unused
        self.value_names = [n for n in names if n not in result.inputs] if all_names else [result.output]
        self.gradient_names = list(result.gradients or ())
        shape = lambda name, table: table[name].shape[1:]
        self.inputs = [l for n in self.input_names for l in labels(n, shape(n, result.inputs))]
        values = result.values if all_names else {result.output: result.value}
        self.values = [l for n in self.value_names for l in labels(n, shape(n, values))]
        self.gradients = [l for n in self.gradient_names for l in labels(n, shape(n, result.gradients))]

    def csv_header(self) -> list[str]:
        return self.inputs + self.values + [f"d{self.output}/d{n}" for n in self.gradients] + ["error"]

    def arrays(self, flat: _Flat) -> list[np.ndarray]:
        return ([flat.inputs[n] for n in self.inputs] + [flat.values[n] for n in self.values]
                + [flat.gradients[n] for n in self.gradients])


class ArrayJsonLines:
    """One JSON object per point, arrays as nested lists (SPEC "Many points")."""

    def __init__(self, columns: ArrayColumns):
        self.columns = columns

    def rows(self, offset: int, result) -> str:
        c = self.columns
        inputs = {name: result.inputs[name].tolist() for name in c.input_names}
        values = {name: result.values[name].tolist() for name in c.named} if c.all_names else None
        value = result.value.tolist()
        grads = {name: result.gradients[name].tolist() for name in c.gradient_names} if result.gradients else None
        lines = []
        for k in range(result.n):
            point = {"point": offset + k, "inputs": {name: column[k] for name, column in inputs.items()}}
            error = result.errors.get(k)
            if error is not None:
                given = getattr(error, "given", {})   # a wrong shape in the file: as written there
                point["inputs"] = {name: given[name] if name in given else column[k] for name, column in inputs.items()}
                point["error"] = error_body(error)
            else:
                point["value"] = value[k]
                if values is not None:
                    point["values"] = {name: column[k] for name, column in values.items()}
                if grads is not None:
                    point["gradients"] = {name: column[k] for name, column in grads.items()}
            lines.append(json_text(point) + "\n")
        return "".join(lines)


def _per_pass(program, result_numbers: int) -> int:
    return max(1, array_batch.BUDGET // max(1, 4 * result_numbers))


def run(program, points, sets, of, *, gradients, all_names, write, fmt, precision=6):
    """rows.run for an array program (or a points file with arrays)."""
    writer = columns = None
    failed, first = 0, None
    progress = Progress(points.n)
    step = None
    try:
        for offset, chunk in points.chunks():
            size = len(next(iter(chunk.values()))) if chunk else 0
            start = 0
            while start < size:
                stop = min(size, start + (step or 1))
                part = {name: column[start:stop] for name, column in chunk.items()}
                result = array_batch.run(program, part, sets, of, gradients=gradients, all_names=all_names)
                _file_errors(points, offset + start, result)
                if columns is None:  # (a first point, to learn the columns and so the size of a pass)
                    columns = ArrayColumns(program, result, all_names)
                    step = _per_pass(program, len(columns.csv_header()))
                    writer = {"jsonl": ArrayJsonLines, "csv": Csv}.get(fmt, lambda c: Summary(c, precision))(columns)
                    if fmt == "csv":
                        write(writer.header())
                    continue
                if result.errors:
                    failed += len(result.errors)
                    if first is None:
                        k = min(result.errors)
                        first = (offset + start + k, result.errors[k])
                shown = result if fmt == "jsonl" else _Flat(result, columns)
                if fmt == "table":
                    writer.add(offset + start, shown)
                else:
                    write(writer.rows(offset + start, shown))
                start = stop
                progress.advance(offset + stop)
    finally:
        progress.close()
    unused = [n for n in (columns.input_names if columns else []) if n not in program.graph.inputs]
    return Outcome(points.n, failed, first, writer if fmt == "table" else None, unused)


def _file_errors(points, offset: int, result) -> None:
    """Points whose input had the wrong shape in the file fail with that error."""
    for point, error in points.row_errors.items():
        k = point - offset
        if 0 <= k < result.n:
            result.failed[k] = True
            result.errors[k] = error
            for table in (result.values, result.gradients):
                for column in (table or {}).values():
                    column[k] = math.nan
            result.value[k] = math.nan


__all__ = ["run", "labels", "DiffcliError"]
