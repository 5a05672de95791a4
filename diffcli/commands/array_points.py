"""Points files for array programs: CSV columns `x[0]`, `x[1]`, `W[0,1]` (a header cell with a comma
is quoted, RFC 4180) and JSON Lines arrays (`{"x": [1, 2]}`).

Each array is given by all its elements or none (else a diagnostic at the header). The numbers go to
the same store as a scalar file's (one column per element, row-major); chunks come out as one
(n,) + shape array per array input. In JSON Lines, a point whose array has the wrong shape fails
alone: its error is kept (`Points.row_errors`), with the values as written (`error.given`: name ->
the JSON value), and its numbers are NaN, which the rows out show as empty cells.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..errors import DiffcliError
from ..ops import MAX_ELEMENTS, shape_text
from ..program import Program, _element, _shape_words
from . import points
from .points import (MAX_POINTS_TEXT, Points, _jsonl_object, _names, _parse_slowly, _row_error, _Store, check_names, chunk_rows, same_keys,
                     _NOT_IN_NUMBERS)


def read_points(stream, filename, fmt, program: Program, limit: int = MAX_POINTS_TEXT) -> Points:
    """points.read_points, reading an array program's file (or one that names elements) here."""
    import sys

    return points.read_points(stream, filename, fmt, program, limit, arrays=sys.modules[__name__])


def wanted(program: Program, first_line: str) -> bool:
    """Whether a points file is read as an array program's: the program has arrays, or the file
    names elements or gives arrays."""
    return program.base.arrays or program.has_arrays or "[" in first_line or (
        not first_line.lstrip().startswith("{") and '"' in first_line)


def read(blocks, filename, first, number, program: Program, fmt: str) -> Points:
    if fmt == "jsonl":
        layout, store, errors = _read_jsonl(blocks, filename, first, number, program)
    else:
        layout, store, errors = _read_csv(blocks, filename, first, number, program)
    if store.n == 0:
        raise DiffcliError("input", f"{filename} has no points, only a header", help="add one row of numbers per point")
    columns = lambda rows: {name: rows[:, ks].reshape((len(rows),) + shape) for name, (shape, ks) in layout.items()}
    chunks = lambda: points.served(store, chunk_rows(store.width), columns)
    # a scalar program's scalar points (read here for a quote or a bracket): the scalar engine's,
    # and a point of the wrong shape is the file's error, as points.read_points says
    arrays = bool(program.base.arrays or program.has_arrays or any(shape for shape, _ in layout.values()))
    if errors and not arrays:
        raise errors[min(errors)]
    many = Points(list(layout), store.n, chunks)
    many.row_errors, many.arrays = errors, arrays
    return many


# ---------------------------------------------------------------- CSV

def _cells(text: str) -> list[tuple[str, int, int]]:
    """A header line's cells (RFC 4180: a quoted cell may hold commas, `""` is a quote), each with its
    start and end in the line; raises ValueError at an unclosed quote."""
    cells, at = [], 0
    while True:
        start = at
        if at < len(text) and text[at] == '"':
            value, at = [], at + 1
            while True:
                close = text.find('"', at)
                if close < 0:
                    raise ValueError(start)
                value.append(text[at:close])
                if text.startswith('""', close):
                    value.append('"')
                    at = close + 2
                    continue
                at = close + 1
                break
            end = text.find(",", at)
            end = len(text) if end < 0 else end
            cells.append(("".join(value) + text[at:end], start, end))
        else:
            end = text.find(",", at)
            end = len(text) if end < 0 else end
            cells.append((text[start:end], start, end))
        if end >= len(text):
            return cells
        at = end + 1


def _read_csv(blocks, filename, first, number, program):
    text = first.rstrip("\r")
    try:
        cells = _cells(text)
    except ValueError as error:
        raise _row_error(f"{filename}: a quote in the header is not closed", filename, number, text,
                         error.args[0], help='quote a cell with a comma in it whole: "W[0,1]"') from None

    def fail(k, message, help=None):
        raise _row_error(f"column `{cells[k][0].strip()}` of {filename}: {message}", filename, number, text,
                         cells[k][1], cells[k][2], help)

    labels = [cell.strip() for cell, _, _ in cells]
    given: dict[str, dict] = {}   # name -> {index or None: column}
    for k, label in enumerate(labels):
        if not label:
            raise _row_error(f"{filename}: column {k + 1} of the header has no name", filename, number, text,
                             cells[k][1], help="the first row names an input in each column")
        name, index = _element(label)
        if "[" in label and index is None:
            if "]" not in label and k + 1 < len(labels) and labels[k + 1].endswith("]"):
                fail(k, "a matrix element's label holds a comma, so the cell is quoted",
                     f'write "{label},{labels[k + 1]}" with its quotes (CSV, RFC 4180)')
            fail(k, "not an input or an element of one", "name an element as x[0] or W[0,1] (indexes from 0)")
        if index in given.get(name, {}) or (given.get(name) and (index is None) != (None in given[name])):
            fail(k, "named twice in the header" if index in given.get(name, {}) else
                 f"`{name}` is given whole and by elements", "give an array by its elements, each once")
        given.setdefault(name, {})[index] = k
    where = {name: min(columns.values()) for name, columns in given.items()}
    unused = check_names(program, list(given), lambda name, message, help=None: fail(where[name], message, help))
    layout = {}
    for name, columns in given.items():
        if name in unused:
            if None not in columns:
                fail(where[name], f"the program has no variable `{name}`", "variables: " + _names(program.names))
            layout[name] = ((), [columns[None]])
            continue
        layout[name] = _csv_array(program, name, columns, fail)
    store = _Store(len(labels))
    for start, lines in blocks:
        if not any(line.strip() for line in lines):
            continue
        rows = [line for line in lines if line.strip()]
        block_text = "\n".join(rows)
        try:
            if _NOT_IN_NUMBERS.search(block_text):
                raise ValueError
            import io

            block = np.loadtxt(io.StringIO(block_text), delimiter=",", dtype=float, ndmin=2, comments=None)
            if block.shape[1] != len(labels) or not np.isfinite(block).all():
                raise ValueError
        except ValueError:
            block = np.array(_parse_slowly(lines, start, filename, labels), dtype=float).reshape(-1, len(labels))
        store.add(block)
    # (the store keeps the file's column order; the layout's columns pick each array's, row-major)
    return layout, store, {}


def _csv_array(program, name, columns, fail):
    """(shape, the columns of its elements in row-major order) for an input given by elements."""
    default = program.base.inputs.get(name)
    known = None if default is None else tuple(np.shape(default))
    indexes = list(columns)
    first = where = min(columns.values())
    if None in columns:
        if known:
            fail(first, f"`{name}` is {_shape_words(known)}: give its elements as columns "
                 f"{', '.join(_labels(name, known)[:3])}, …", "an array is given by all its elements, a column each")
        return (), [columns[None]]
    if known == ():
        fail(first, f"`{name}` is a scalar, not an array", f"name the column `{name}`")
    ndim = {len(index) for index in indexes}
    if len(ndim) > 1 or ndim.pop() > 2:
        fail(first, f"the columns of `{name}` do not agree on its shape", "a vector's elements are x[i], a matrix's W[i,j]")
    shape = known or tuple(max(index[a] for index in indexes) + 1 for a in range(len(indexes[0])))
    for index in indexes:
        if len(index) != len(shape) or not all(i < n for i, n in zip(index, shape)):
            fail(columns[index], f"`{name}` is {_shape_words(shape)}: it has no element {name}[{','.join(map(str, index))}]",
                 f"indexes run from 0 (shape {shape_text(shape)})")
    if math.prod(shape) > MAX_ELEMENTS:
        raise DiffcliError("shape", f"column `{name}[…]`: an array of {shape_text(shape)} elements is too large",
                           help=f"an array holds at most {MAX_ELEMENTS:,} elements")
    for index in np.ndindex(*shape):  # (stops at the first missing one: at most one more than the columns)
        if index not in columns:
            fail(where, f"`{name}` is {_shape_words(shape)}, but the header has no column "
                 f"{name}[{','.join(map(str, index))}]", "an array is given by all its elements or none")
    return shape, [columns[index] for index in np.ndindex(*shape)]


def _labels(name, shape):
    return [f"{name}[{','.join(map(str, index))}]" for index in np.ndindex(*shape)]


# ---------------------------------------------------------------- JSON Lines

def _shape_of_json(value):
    """The shape of a number or a (nested) list of numbers, or None where it is ragged or not
    numeric; raises TypeError at an element that is not a number."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
        raise TypeError(value)
    if isinstance(value, (int, float)):
        return ()
    if not value:
        return None
    shapes = {_shape_of_json(element) for element in value}
    if len(shapes) != 1 or None in shapes:
        return None
    inner = shapes.pop()
    return None if len(inner) > 1 else (len(value),) + inner


def _read_jsonl(blocks, filename, first, number, program):
    obj = _jsonl_object(first, filename, number)
    names = list(obj)
    if not names:
        raise _row_error(f"{filename}: line {number} gives no input", filename, number, first, 0)

    def fail_at(line, line_number, name, message, help=None):
        key = json.dumps(name, ensure_ascii=False)
        at = line.find(key)
        raise _row_error(message, filename, line_number, line, max(at, 0), None if at < 0 else at + len(key), help)

    unused = check_names(program, names, lambda name, message, help=None:
                         fail_at(first, number, name, f"`{name}` in {filename}: {message}", help))
    shapes = {}
    for name in names:
        default = program.base.inputs.get(name)
        if name not in unused and default is not None:
            shapes[name] = tuple(np.shape(default))
            continue
        try:
            shape = _shape_of_json(obj[name])
        except TypeError:
            shape = ()
        if shape is None or len(shape) > 2:
            fail_at(first, number, name, f"{filename}: `{name}` on line {number} is not a number, a vector or a "
                    "matrix of numbers", "a matrix is a list of rows of one length: [[1, 2], [3, 4]]")
        shapes[name] = shape
    sizes = [math.prod(shapes[name]) for name in names]
    width = sum(sizes)
    layout, at = {}, 0
    for name, size in zip(names, sizes):
        layout[name] = (shapes[name], list(range(at, at + size)))
        at += size
    store = _Store(width)
    errors: dict[int, DiffcliError] = {}
    rows: list = []
    step = chunk_rows(width)

    def row(line, line_number):
        obj = _jsonl_object(line, filename, line_number)
        same_keys(obj, names, filename, line_number, line)
        out = []
        for name in names:
            value = obj[name]
            try:
                shape = _shape_of_json(value)
            except TypeError:
                fail_at(line, line_number, name, f"{filename}: `{name}` on line {line_number} is not a finite "
                        f"number: {json.dumps(value)[:40]}")
            array = np.asarray(value, dtype=float) if shape is not None else None
            if array is not None and not np.isfinite(array).all():
                fail_at(line, line_number, name, f"{filename}: `{name}` on line {line_number} holds a value that "
                        "is not a finite number")
            if shape != shapes[name]:
                got = "a ragged list" if shape is None else _shape_words(shape)
                error = errors.setdefault(store.n + len(rows), DiffcliError(   # (the first such name's)
                    "input", f"{filename}, line {line_number}: `{name}` is {_shape_words(shapes[name])}, but the "
                    f"value given is {got}", help=f"give {name} a value of shape {shape_text(shapes[name])}"))
                error.given = {**getattr(error, "given", {}), name: value}   # as written, for the rows out
                out.extend([math.nan] * math.prod(shapes[name]))
            else:
                out.extend(array.ravel().tolist())
        rows.append(out)
        if len(rows) == step:
            store.add(np.array(rows, dtype=float).reshape(-1, width))
            rows.clear()

    row(first, number)
    for start, lines in blocks:
        for line_number, line in enumerate(lines, start):
            if line.strip():
                row(line, line_number)
    if rows:
        store.add(np.array(rows, dtype=float).reshape(-1, width))
    return layout, store, errors
