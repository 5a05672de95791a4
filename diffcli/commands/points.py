"""Many points in: sweeps over ranges, and points files (CSV or JSON Lines), in chunks.

A points file is read and checked to its end before anything is computed, so that a bad row is a
diagnostic (with its line and column in the points file) and no result has been written yet. Its
numbers are kept as raw doubles: in memory for a few chunks, then in an unnamed temporary file
(never a pickle), so memory does not grow with the number of points.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import tempfile
from dataclasses import dataclass
from typing import IO, Iterator

import numpy as np

from ..errors import DiffcliError, Source, shown
from ..language.graph import did_you_mean
from ..ops import CONSTANTS, RESERVED
from ..program import Program, _element, _shape_words as shape_words

CHUNK = 1 << 14       # points computed and written at a time (a few MB of text)
CHUNK_NUMBERS = 1 << 20  # ... fewer points when they have many columns: a chunk's numbers at most
IN_MEMORY = 1 << 22   # numbers kept in memory before they go to a temporary file
MAX_SWEEP_POINTS = 10**10
MAX_LINE = 16 * 2**20           # characters in a line of a points file (100,000 numbers take ~2 MB)
MAX_POINTS_TEXT = 2**30         # characters in a whole --points file (its numbers go to a disk file)
MAX_DATA_TEXT = 256 * 2**20     # ... in a --data file, which a fit keeps in memory (as FILE's bound)
READ_BLOCK = 1 << 20            # characters read at a time


# ================================================================ sweeps

@dataclass(frozen=True)
class Sweep:
    name: str
    start: float
    stop: float
    num: int
    log: bool = False

    def values(self) -> np.ndarray:
        return self.at(np.arange(self.num))

    def at(self, index: np.ndarray) -> np.ndarray:
        """The values at these indices, as numpy.linspace (or geomspace) has them, made for these
        indices alone; where STOP - START overflows, as (1 - t)·START + t·STOP, which cannot."""
        start, stop = self.start, self.stop
        if self.log:  # geomspace: 10 to the evenly spaced logarithms, the ends exactly as given
            start, stop = float(np.log10(abs(start))), float(np.log10(abs(stop)))
        div = max(self.num - 1, 1)
        i = index.astype(float)
        delta = stop - start
        with np.errstate(all="ignore"):
            step = delta / div
            y = i * step + start if step != 0 else i / div * delta + start
        if not np.isfinite(y).all():
            t = i / div
            y = (1 - t) * start + t * stop
        if self.log:
            y = 10.0 ** y
            y[index == 0] = abs(self.start)
        if self.num > 1:
            y[index == self.num - 1] = abs(self.stop) if self.log else self.stop
        return -y if self.log and self.start < 0 else y


def parse_sweep(text: str) -> Sweep:
    """`x=-1:1:5` (5 points from -1 to 1) or `f=1e-3:1e3:7:log` (7 points, evenly spaced in log).
    A ValueError says what is wrong (the command line turns it into a usage error)."""
    name, eq, spec = text.partition("=")
    name = name.strip()
    if not eq or not name:
        raise ValueError(f"{text!r} is not NAME=START:STOP:NUM (for example --sweep x=-1:1:5)")
    parts = [p.strip() for p in spec.split(":")]
    log = len(parts) == 4 and parts[3] == "log"
    if len(parts) != 3 and not log:
        raise ValueError(f"{text!r} is not NAME=START:STOP:NUM or NAME=START:STOP:NUM:log")
    from ..language.parser import read_number

    start, stop = read_number(parts[0]), read_number(parts[1])
    if start is None or stop is None:
        raise ValueError(f"{text!r}: START and STOP must be numbers, written as in the language "
                         "and --set: 2, -0.5, 1e-3")
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise ValueError(f"{text!r}: START and STOP must be finite")
    if not re.fullmatch("[0-9]+", parts[2]):
        raise ValueError(f"{text!r}: NUM must be a whole number of points (digits 0-9)")
    num = int(parts[2])
    if num < 1:
        raise ValueError(f"{text!r}: NUM must be at least 1")
    if log and (start == 0 or stop == 0 or (start < 0) != (stop < 0)):
        raise ValueError(f"{text!r}: a log sweep needs START and STOP of the same sign, neither 0")
    return Sweep(name, start, stop, num, log)


# ================================================================ what the inputs come from

class Points:
    """n points as chunks of columns: `chunks()` yields (offset, {name: array})."""

    def __init__(self, names: list[str], n: int, chunks):
        self.names, self.n, self._chunks = names, n, chunks
        self.row_errors: dict = {}  # point -> the input error of that point alone (an array of the wrong shape)

    def chunks(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        return self._chunks()


def grid(sweeps: list[Sweep], program: Program, sets: dict | None = None) -> Points:
    """Every combination of the sweeps' values, the last varying fastest, made a chunk at a time.

    A sweep of an array input's element (`--sweep x[1]=0:1:5`, `W[0,1]`, labels as CSV columns
    name them) gives that array per point: its other elements are its value from `sets` (as
    --set gave it) or its default, the same at every point."""
    def fail(name, message, help=None):
        raise DiffcliError("input", f"--sweep {name}: {message}", help=help)

    sets = sets or {}
    elements = {s.name: _element(s.name) for s in sweeps if "[" in s.name}
    check_names(program, list(dict.fromkeys(elements[s.name][0] if s.name in elements else s.name for s in sweeps)), fail)
    arrays: dict[str, np.ndarray] = {}  # array input -> its value at every point but the swept elements
    for s in sweeps:
        if s.name in elements:
            name, index = elements[s.name]
            arrays[name] = _swept_array(program, s.name, name, index, sets, fail)
        elif s.name in program.graph.inputs and program.shape(s.name):
            shape = program.shape(s.name)
            labels = [s.name + "[" + ",".join(map(str, np.unravel_index(k, shape))) + "]"
                      for k in range(min(2, math.prod(shape)))]  # (row-major: W[0,0], W[0,1])
            columns = ", ".join(f'"{label}"' if len(shape) == 2 else label for label in labels)  # (RFC 4180)
            fail(s.name, f"`{s.name}` is {shape_words(shape)}; a sweep gives one number per point, not an array",
                 help=f"sweep one of its elements (--sweep {labels[0]}=START:STOP:NUM), or give its elements per "
                 f"point with --points (CSV columns {columns}{', …' if math.prod(shape) > 2 else ''}, or JSON "
                 "Lines arrays)")
    n = math.prod(s.num for s in sweeps)  # (before anything is made: 10^9 points would be 8 GB)
    if n > MAX_SWEEP_POINTS:
        raise DiffcliError("input", f"the sweeps make {n:,} points, more than {MAX_SWEEP_POINTS:,}",
                           help="use fewer points per sweep, or split the grid into several runs")
    labels = [s.name.replace(" ", "") for s in sweeps]
    if len(set(labels)) < len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise DiffcliError("input", f"--sweep {twice}: swept twice", help="give each input one --sweep")
    names = list(dict.fromkeys(elements[s.name][0] if s.name in elements else s.name for s in sweeps))
    step = chunk_rows(max(1, sum(value.size for value in arrays.values())))

    def chunks():
        for offset in range(0, n, step):
            index = np.arange(offset, min(n, offset + step))
            columns = {name: np.empty((len(index),) + value.shape) for name, value in arrays.items()}
            for column, value in zip(columns.values(), arrays.values()):
                column[...] = value
            for sweep in reversed(sweeps):
                index, at = np.divmod(index, sweep.num)
                if sweep.name in elements:
                    name, element = elements[sweep.name]
                    columns[name][(slice(None),) + element] = sweep.at(at)
                else:
                    columns[sweep.name] = sweep.at(at)
            yield offset, {name: columns[name] for name in names}

    return Points(names, n, chunks)


def _swept_array(program, label, name, index, sets, fail):
    """The value of the array input `name` whose element `index` is swept (a copy), or the error."""
    if name not in program.base.inputs:
        fail(label, f"the program does not use `{name}`", "only an array input's elements can be swept")
    value = sets.get(name, program.base.inputs[name])
    if value is None:
        fail(label, f"`{name}` has no value to sweep an element of", f"give it one: --set {name}=[…]")
    value = np.array(value, dtype=float)
    shape = value.shape
    if not shape:
        fail(label, f"`{name}` is a scalar, not an array", f"sweep it whole: --sweep {name}=START:STOP:NUM")
    if len(index) != len(shape) or not all(i < n for i, n in zip(index, shape)):
        fail(label, f"`{name}` is {shape_words(shape)}: it has no element {name}[{','.join(map(str, index))}]",
             f"indexes run from 0, one per axis (shape {'×'.join(map(str, shape))})")
    return value


class _Line(Source):
    """One line of a big points file, as a Source whose line number is the line's own: enough for a
    diagnostic's excerpt, without keeping the file."""

    __slots__ = ("number",)

    def __init__(self, text: str, filename: str, number: int):
        super().__init__(text, filename)
        self.number = number

    def line_col(self, offset: int) -> tuple[int, int]:
        return self.number, offset + 1

    def line_text(self, line: int) -> str:
        return self.text


def _row_error(message, filename, number, text, start=0, end=None, help=None) -> DiffcliError:
    text = text.rstrip("\r")
    end = max(start + 1, len(text) if end is None else end)
    return DiffcliError("input", message, (start, end), source=_Line(text, filename, number), help=help)


def check_names(program: Program, names: list[str], where) -> list[str]:
    """The --set rules for names that come from a sweep or a points file: a computed name, or an
    unknown one close to a name of the program, is an error (raised by `where(name, message,
    help)`); another unknown name is an input the program does not use (returned)."""
    unused = []
    graph = program.graph
    for name in names:
        if name in graph.inputs:
            continue
        if name in RESERVED:
            where(name, f"`{name}` is {'a constant' if name in CONSTANTS else 'a function'}, not an input",
                  "only inputs can be given values: " + ", ".join(list(graph.inputs)[:12]))
        if name in graph.names:
            where(name, f"`{name}` is computed (`{name} = {program.definition(name)}`), not an input",
                  "only inputs can be given values: " + ", ".join(list(graph.inputs)[:12]))
        base = name.partition("[")[0].strip()
        if base != name and base in graph.inputs:  # an element's label where only scalars are read (fit --data)
            if isinstance(program.inputs.get(base), float):
                where(name, f"`{base}` is a scalar: it has no element {name[len(base):].strip()}", f"name the column `{base}`")
            where(name, f"a column here gives a scalar input, and `{name}` names an element of `{base}`",
                  f"give the elements columns of their own ({base}0, {base}1, …) and build `{base}` in the "
                  f"program: {base} = [{base}0, {base}1, …]")
        hint = did_you_mean(name, graph.names)
        if hint or not name.isidentifier():
            where(name, f"the program has no variable `{name}`", hint or "variables: " + ", ".join(graph.names))
        unused.append(name)
    return unused


# ================================================================ points files

def sniff_format(path: str, stream_head: str | None = None) -> str:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if stream_head is not None and stream_head.lstrip().startswith("{"):
        return "jsonl"
    return "csv"


class _Store:
    """Chunks of parsed columns, in memory and then in an unnamed temporary file of raw doubles."""

    def __init__(self, width: int):
        self.width = width
        self.kept: list[np.ndarray] = []
        self.n = 0
        self.file = None

    def add(self, block: np.ndarray) -> None:  # block: (rows, width)
        self.n += len(block)
        if self.file is None and self.n * self.width > IN_MEMORY:
            self.file = tempfile.TemporaryFile()
            for kept in self.kept:
                kept.tofile(self.file)
            self.kept = []
        if self.file is not None:
            np.ascontiguousarray(block).tofile(self.file)
        else:
            self.kept.append(block)

    def blocks(self) -> Iterator[np.ndarray]:
        if self.file is None:
            yield from self.kept
            return
        self.file.seek(0)
        left = self.n
        while left:
            rows = min(chunk_rows(self.width), left)
            block = np.fromfile(self.file, dtype=float, count=rows * self.width)
            yield block.reshape(rows, self.width)
            left -= rows


def read_points(stream: IO[str], filename: str, fmt: str | None, program: Program,
                limit: int = MAX_POINTS_TEXT, arrays=None) -> Points:
    """Read a whole points file (CSV with a header row of input names, or JSON Lines of objects),
    checking every row; then its points are served in chunks. A line longer than MAX_LINE, or a
    file longer than `limit` characters, is refused as soon as it is seen (`/dev/zero` never ends).
    `arrays`: the array_points module, for files of an array program (which it reads itself)."""
    blocks = _line_blocks(stream, filename, limit)
    for number, lines in blocks:
        blank = next((k for k, line in enumerate(lines) if line.strip()), None)
        if blank is not None:
            break
    else:
        raise DiffcliError("input", f"{filename} has no points", help="give a header row of input names, "
                           "then one row of numbers per point (or JSON Lines of objects)")
    first, number = lines[blank], number + blank
    rest = itertools.chain([(number + 1, lines[blank + 1:])], blocks)
    fmt = fmt or sniff_format(filename, first)
    if arrays is not None and arrays.wanted(program, first):
        return arrays.read(rest, filename, first, number, program, fmt)
    reader = _read_jsonl if fmt == "jsonl" else _read_csv
    names, store = reader(rest, filename, first, number, program)
    if store is None or store.n == 0:
        raise DiffcliError("input", f"{filename} has no points, only a header",
                           help="add one row of numbers per point")
    columns = lambda rows: {name: np.ascontiguousarray(rows[:, k]) for k, name in enumerate(names)}
    return Points(names, store.n, lambda: served(store, chunk_rows(len(names)), columns))


def served(store: _Store, step: int, columns) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """A store's rows `step` at a time, as (offset, columns(rows))."""
    offset = 0
    pending: list[np.ndarray] = []
    size = 0
    for block in store.blocks():
        pending.append(block)
        size += len(block)
        while size >= step or (size and offset + size == store.n):
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            take, rest = joined[:step], joined[step:]
            yield offset, columns(take)
            offset += len(take)
            pending, size = ([rest], len(rest)) if len(rest) else ([], 0)


def chunk_rows(width: int) -> int:
    """Points a chunk holds: CHUNK, or fewer when each has so many columns that CHUNK_NUMBERS is passed."""
    return max(1, min(CHUNK, CHUNK_NUMBERS // max(width, 1)))


def _line_blocks(stream: IO[str], filename: str, limit: int) -> Iterator[tuple[int, list[str]]]:
    """The stream's lines without their `\n` (and without a leading byte-order mark, which Excel
    writes), as (the first one's line number, lines), about READ_BLOCK characters at a time."""
    carry: list[str] = []   # the start of a line that has not ended yet
    carried = total = 0
    number = 1
    while True:
        text = stream.read(READ_BLOCK)
        if total == 0 and text.startswith("\ufeff"):
            text = text[1:]
        total += len(text)
        if total > limit:
            raise DiffcliError("io", f"{filename} is longer than {limit // 2**20} MiB, more than diffcli "
                               "reads", help="split the points into several files and runs")
        end = text.find("\n")
        if carried + (len(text) if end < 0 else end) > MAX_LINE:
            raise DiffcliError("io", f"line {number} of {filename} is longer than {MAX_LINE // 2**20} MiB, "
                               "more than diffcli reads", help="a points file has one point per line")
        if not text:
            if carried:
                yield number, ["".join(carry)]
            return
        if end < 0:
            carry.append(text)
            carried += len(text)
            continue
        cut = text.rfind("\n")
        carry.append(text[:cut])
        lines = "".join(carry).split("\n")
        yield number, lines
        number += len(lines)
        carry, carried = [text[cut + 1:]], len(text) - cut - 1


def _header(program, filename, line, number) -> list[str]:
    text = line.rstrip("\r")
    cells = text.split(",")
    names = [c.strip() for c in cells]
    starts = _cell_starts(cells)

    def fail(name, message, help=None):
        k = names.index(name)
        raise _row_error(f"column `{name}` of {filename}: {message}", filename, number, text,
                         starts[k], starts[k] + len(cells[k]), help)

    if len(names) == 1 and ("\t" in text or ";" in text):
        separator = "tabs" if "\t" in text else "`;`"
        raise _row_error(f"{filename}: the header is one column, `{shown(names[0])}`, with {separator} in it",
                         filename, number, text, 0, help="a points file is CSV: its columns are separated "
                         "by commas (save it as CSV, or replace the separators with `,`)")
    seen: set[str] = set()
    for k, name in enumerate(names):
        if not name:
            raise _row_error(f"{filename}: column {k + 1} of the header has no name", filename, number,
                             text, starts[k], help="the first row names an input in each column")
        if name in seen:
            fail(name, "named twice in the header")
        seen.add(name)
    check_names(program, names, fail)
    return names


def _cell_starts(cells: list[str]) -> list[int]:
    starts, at = [], 0
    for cell in cells:
        starts.append(at)
        at += len(cell) + 1
    return starts


# only what a number of the language (and --set) is made of: then NumPy's reading of a cell is
# float()'s, which is the language's (without `_`, `inf`, `nan` or digits other than 0-9)
_NOT_IN_NUMBERS = re.compile(r"[^0-9eE.+\-, \t\r\n]")


def _read_csv(blocks, filename, first, number, program):
    names = _header(program, filename, first, number)
    width = len(names)
    store = _Store(width)
    for start, lines in blocks:
        rows = [line for line in lines if line.strip()]
        if not rows:
            continue
        text = "\n".join(rows)
        try:
            if _NOT_IN_NUMBERS.search(text):
                raise ValueError
            block = np.loadtxt(io.StringIO(text), delimiter=",", dtype=float, ndmin=2, comments=None)
            if block.shape[1] != width or not np.isfinite(block).all():
                raise ValueError
        except ValueError:  # find the bad cell
            block = np.array(_parse_slowly(lines, start, filename, names), dtype=float).reshape(-1, width)
        store.add(block)
    return names, store


def _parse_slowly(lines, start, filename, names) -> list[list[float]]:
    """The rows of a block, each cell read as --set reads a number; the first bad row or cell is a
    diagnostic."""
    from ..language.parser import read_number

    width = len(names)
    rows = []
    for number, line in enumerate(lines, start):
        if not line.strip():
            continue
        text = line.rstrip("\r")
        cells = text.split(",")
        starts = _cell_starts(cells)
        if len(cells) != width:
            what = "fewer" if len(cells) < width else "more"
            at = len(text) if len(cells) < width else starts[width] - 1
            raise _row_error(f"{filename}: row {number} has {len(cells)} value{'s' * (len(cells) != 1)}, {what} than the "
                             f"{width} columns of the header ({_names(names)})", filename, number, text,
                             at, help="give one number per column")
        row = []
        for k, cell in enumerate(cells):
            value = read_number(cell.strip())
            if value is None or not math.isfinite(value):
                shown_cell = f"`{cell.strip()}`" if cell.strip() else "an empty cell"
                raise _row_error(f"{filename}: {shown_cell} in column `{names[k]}` is not a finite number",
                                 filename, number, text, starts[k], starts[k] + max(1, len(cell)),
                                 help=None if value is not None or not cell.strip() else
                                 "numbers are written as in the language and --set: 2, -0.5, 1e-3")
            row.append(value)
        rows.append(row)
    return rows


def _names(names: list[str]) -> str:
    return ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")


def _read_jsonl(blocks, filename, first, number, program):
    names = _jsonl_names(first, filename, number, program)
    store = _Store(len(names))
    step = chunk_rows(len(names))
    rows: list[list[float]] = [_jsonl_row(first, filename, number, names)]
    for start, lines in blocks:
        for number, line in enumerate(lines, start):
            if line.strip():
                rows.append(_jsonl_row(line, filename, number, names))
                if len(rows) == step:
                    store.add(np.array(rows, dtype=float).reshape(-1, len(names)))
                    rows = []
    if rows:
        store.add(np.array(rows, dtype=float).reshape(-1, len(names)))
    return names, store


class _Twice(ValueError):
    """A key given twice in one JSON object."""

    def __init__(self, key: str):
        self.key = key


def _no_repeats(pairs):
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen = set()
        raise _Twice(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return obj


# integers as floats, as the language reads them (no int of 5,000 digits to convert); made once,
# since json.loads with options makes a decoder at each call (twice the time of a row)
_DECODER = json.JSONDecoder(object_pairs_hook=_no_repeats, parse_int=float)


def _jsonl_object(line, filename, number) -> dict:
    try:
        obj = _DECODER.decode(line)
    except _Twice as twice:
        key = json.dumps(twice.key, ensure_ascii=False)
        at = line.find(key, line.find(key) + 1)
        raise _row_error(f"{filename}: line {number} gives `{twice.key}` twice", filename, number, line,
                         max(at, 0), None if at < 0 else at + len(key),
                         help="give each input once a line, as a CSV header names each column once") from None
    except json.JSONDecodeError as error:
        raise _row_error(f"{filename}: line {number} is not JSON: {error.msg}", filename, number, line,
                         error.colno - 1) from None
    except RecursionError:  # (not the program's nesting, which the command's last resort names)
        raise _row_error(f"{filename}: line {number} is nested too deeply", filename, number, line, 0, 1,
                         help="a point's array is a list of numbers, or of rows of them: {\"x\": [1, 2]}") from None
    if not isinstance(obj, dict):
        raise _row_error(f"{filename}: line {number} is not a JSON object", filename, number, line, 0,
                         help='write one object per line: {"x": 1.5, "y": 2}')
    return obj


def _jsonl_names(line, filename, number, program) -> list[str]:
    names = list(_jsonl_object(line, filename, number))
    if not names:
        raise _row_error(f"{filename}: line {number} gives no input", filename, number, line, 0)

    def fail(name, message, help=None):
        at = line.find(json.dumps(name, ensure_ascii=False))
        raise _row_error(f"`{name}` in {filename}: {message}", filename, number, line, max(at, 0),
                         None if at < 0 else at + len(json.dumps(name, ensure_ascii=False)), help)

    check_names(program, names, fail)
    return names


def same_keys(obj: dict, names: list[str], filename, number, line) -> None:
    """A JSON Lines object gives the inputs of the first line, no more, no fewer."""
    for name in names:
        if name not in obj:
            raise _row_error(f"{filename}: line {number} has no `{name}`", filename, number, line, 0,
                             help=f"every line gives the inputs of the first: {_names(names)}")
    if len(obj) != len(names):
        known = set(names)
        extra = next(k for k in obj if k not in known)
        raise _row_error(f"{filename}: line {number} gives `{extra}`, which the first line does not",
                         filename, number, line, 0, help=f"every line gives the same inputs: {_names(names)}")


def _jsonl_row(line, filename, number, names) -> list[float]:
    obj = _jsonl_object(line, filename, number)
    same_keys(obj, names, filename, number, line)
    row = []
    for name in names:
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            key = json.dumps(name, ensure_ascii=False)
            at = line.find(key)
            raise _row_error(f"{filename}: `{name}` on line {number} is not a finite number: "
                             f"{json.dumps(value)}", filename, number, line, max(at, 0),
                             None if at < 0 else at + len(key))
        row.append(float(value))
    return row
