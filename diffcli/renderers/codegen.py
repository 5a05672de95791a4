"""Graph -> source code: the program and its gradient as one self-contained Python, C or JavaScript file.

Reverse mode written out as straight-line code, linear in the program's size: the forward statements
in the graph's order (one per operation, named after the file's variables where they have names,
temporaries `t<node>` otherwise), then one block per operation in reverse order that adds its
adjoint times each partial into its arguments' adjoints with `+=`, only where the scalar engine does
(an adjoint of exactly 0 skips its block; arguments whose gradient nobody wants get nothing). Every
value and partial expression is an op rule of ops.py printed by `ops.printer(lang)`, once per
operation kind, as a template filled in with the arguments' names: no math is written here. So the
generated Python does the same float operations in the same order as `Program.grad`, and gives the
same bits.

Checks, as the engine's: a value that is not finite (or, in Python, an operation that raises) is a
domain error naming the operation and its place; an adjoint that stops being finite after a `+=` is
an undefined derivative (the partial was not finite) or an overflow. Python raises `DomainError` (a
ValueError), JavaScript throws `DomainError` (an Error), C returns 1 (value), 2 (derivative) or 3
(gradient overflow) and points `*error` at a static message.

Large programs: above SPLIT operations (a frame of a million doubles overflows a thread's stack, and
compilers take minutes over straight-line code that long) the program is data (see _Table), read by
one loop per pass that does what the checked straight-line code does, in all three languages; the
operations' places are tables too (see _Places), each message made only where it fails (in C, in a
buffer of the calling thread's own). Forward mode keeps straight-line functions of SPLIT operations
each, its values and tangents in arrays.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator
import json.encoder
import re
import os
import stat
import sys
from array import array

from .. import ops
from . import target_names
from ..interpreters.engine import needs_gradient
from ..formatting import EXCERPT_WIDTH, operator_span
from ..language.syntax import Binary, Index
from ..errors import DiffcliError
from ..program import Program

LANGUAGES = ("python", "c", "javascript")
SPLIT = 4000  # operations per function in C and JavaScript, above which values live in arrays

# the names each language reserves (keywords, predefined macros, its library's names): target_names.py
_C_RESERVED, _JS_RESERVED, _PY_RESERVED = target_names.C, target_names.JAVASCRIPT, target_names.PYTHON


def _nfkc(name: str) -> str:
    """`name` in NFKC, as Python reads identifiers (an ASCII name is its own: unicodedata is
    imported only for the others)."""
    import unicodedata

    return unicodedata.normalize("NFKC", name)


class _Namer:
    """Identifiers of one language, each used once: the file's names first (kept where the language
    allows them, else mangled deterministically), then diffcli's own (suffixed where taken)."""

    def __init__(self, lang: str):
        self.lang = lang
        self.reserved = {"python": _PY_RESERVED, "c": _C_RESERVED, "javascript": _JS_RESERVED}[lang]
        self.used: set[str] = set()

    def _allowed(self, name: str) -> bool:
        if name in self.reserved or name in self.used or name.startswith("DIFFCLI_"):
            return False
        if self.lang == "c":
            return name.isascii() and name.isidentifier() and not name.startswith(("__", "_")) or (
                name.isascii() and name.isidentifier() and name[:1] == "_" and name[1:2].islower())
        return name.isidentifier() and (name.isascii() or _nfkc(name) == name)

    def variable(self, name: str) -> str:
        """A file's variable name in this language."""
        if not self._allowed(name):
            name = self._mangled(name)
        return self.fresh(name)

    def _mangled(self, name: str) -> str:
        parts = []
        for ch in name:
            if ch.isascii() and (ch.isalnum() or ch == "_"):
                if parts and not isinstance(parts[-1], str):
                    parts.append("_")
                parts.append(ch)
            else:
                parts.append(("_" if parts else "") + f"u{ord(ch):04x}")
                parts.append(None)  # mark: what follows a code starts with `_`
        text = "".join(p for p in parts if isinstance(p, str))
        if not text or text[0].isdigit() or text[0] == "_":
            text = "v" + text
        return text

    def fresh(self, base: str) -> str:
        """`base`, or `base_2`, `base_3`, ... : the first not yet used or reserved."""
        name, k = base, 1
        while name in self.used or name in self.reserved or (
                self.lang == "python" and not name.isascii() and _nfkc(name) in self.used):
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name


# ---------------------------------------------------------------- op templates

@functools.lru_cache(maxsize=None)
def _templates(lang: str, key: str, nargs: int):
    """op `key` on `nargs` arguments as format strings: (value, partials, count). Arguments are
    `{0}`..`{nargs-1}`, the result `{nargs}`, and for min/max the number of arguments tied with the
    result `{nargs+1}` (computed once per node by the `count` template, so that n partials are not
    n² text)."""
    op = ops.OPS[key]
    printer = ops.printer(lang)
    if printer.number(0.5).count("{") or "{" in printer.conditional.replace("{c}", "").replace(
            "{a}", "").replace("{b}", ""):
        raise AssertionError("a printer's text has braces")
    xs = [printer.code("{%d}" % i) for i in range(nargs)]
    out = printer.code("{%d}" % nargs)
    namespace = _CountOnce(printer, printer.code("{%d}" % (nargs + 1)))
    value = str(ops.apply(op, printer, *xs))
    partials = tuple(str(printer._text(ops.apply_partial(op, namespace, n, out, *xs)))
                     for n in range(nargs))
    return value, partials, namespace.counted


class _CountOnce:
    """The printer, except that the tie count of min/max is one placeholder (its text kept once)."""

    def __init__(self, printer, placeholder):
        self._printer, self._placeholder, self.counted = printer, placeholder, None

    def __getattr__(self, name):
        return getattr(self._printer, name)

    def count_equal(self, xs, out):
        if self.counted is None:  # the same placeholders for every partial: printed once, not n times
            self.counted = str(self._printer.count_equal(xs, out))
        return self._placeholder


# ---------------------------------------------------------------- what is generated

class _Record:
    """A record of the fields its class annotates, in order: made, compared and shown as a dataclass
    (not made by `dataclasses`: making this module's four cost every codegen run 1.5 ms)."""

    __slots__ = ()
    __hash__ = None  # (as a dataclass's: compared by value, so not hashable)
    _fields: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__dict__.get("__annotations__", {}))

    def __init__(self, *values, **named):
        fields = self._fields
        if len(values) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, {len(values)} given")
        given = dict(zip(fields, values))
        for name, value in named.items():
            if name not in fields or name in given:
                raise TypeError(f"{type(self).__name__}(): unexpected or repeated field {name!r}")
            given[name] = value
        if len(given) != len(fields):
            missing = [name for name in fields if name not in given]
            raise TypeError(f"{type(self).__name__}(): missing {', '.join(missing)}")
        for name in fields:
            setattr(self, name, given[name])

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields) + ")"

    def replace(self, **changes):
        """A copy with `changes` (dataclasses.replace)."""
        return type(self)(**{name: changes.get(name, getattr(self, name)) for name in self._fields})


class Generated(_Record):
    """Generated source: `source` (the .py, .c or .mjs text), and for C `header` (the .h text)."""

    lang: str
    function: str
    source: str  # (given as a list of lines, a large file's: joined only where it is read)
    header: str | None
    parameters: list[str]  # the inputs, in argument order (the file's names)

    @property
    def source(self) -> str:
        text = self.__dict__["_source"]
        if not isinstance(text, str):
            text = self.__dict__["_source"] = "\n".join(text)
        return text

    @source.setter
    def source(self, text: str | list[str]) -> None:
        self.__dict__["_source"] = text

    def pieces(self) -> list[str] | _Pieces:
        """The source to write: a large file's lines a few at a time (see _Pieces), never joined into
        one more copy of the whole text."""
        text = self.__dict__["_source"]
        return [text] if isinstance(text, str) else _Pieces(text)


class _Pieces:
    """Lines as text in pieces: up to _PIECE_LINES lines joined (their line breaks with them), and a
    line of _LARGE_LINE characters or more (a table's: they hold most of a large file) alone, as it
    is, not copied into a piece; made again each time it is iterated: a write that starts over
    (output.py's, in place) reads it twice."""

    __slots__ = ("lines",)

    def __init__(self, lines: list[str]):
        self.lines = lines

    def __iter__(self):
        lines, step, pending = self.lines, _PIECE_LINES, []
        last = len(lines) - 1
        for k, line in enumerate(lines):
            if len(line) >= _LARGE_LINE:
                if pending:
                    yield "".join(pending)
                    pending = []
                yield line
            else:
                pending.append(line)
            if k < last:
                pending.append("\n")
            if len(pending) >= 2 * step:
                yield "".join(pending)
                pending = []
        if pending:
            yield "".join(pending)


_PIECE_LINES = 64  # (as fast as one join and encode of the whole at chain 100,000, and a few KB a piece)
_LARGE_LINE = 1 << 16


def generate(program: Program, lang: str, of: str | None = None, name: str | None = None, *,
             value_only: bool = False, wrt: str | None = None, filename: str | None = None,
             keep: list | None = None) -> Generated:
    """Source code computing `of` (default: the program's output) and its gradient with respect to
    every input (or only the value, or with `wrt` its derivative along one input, forward mode).
    `keep`: a list the writer (its plan and tables) is added to, not freed here (the command line
    keeps its objects to its end: freeing a large program's one by one only costs time)."""
    if lang not in LANGUAGES:
        raise DiffcliError("input", f"--lang {lang}: not one of " + ", ".join(LANGUAGES))
    if program.base.arrays or program.has_arrays:  # (array_codegen.py imports this module: no call back)
        raise DiffcliError("shape", "codegen.generate writes scalar programs", help="array_codegen.generate takes arrays")
    graph = program.graph
    output = program.check_name(of, "--of") if of is not None else program.output
    if wrt is not None:
        program.check_name(wrt, "--wrt")
        if wrt not in graph.inputs:
            raise DiffcliError("input", f"--wrt {wrt}: `{wrt}` is computed, not an input",
                               help="inputs: " + ", ".join(graph.inputs))
    if name is not None and not (name.isascii() and name.isidentifier()
                                 and name not in _C_RESERVED | _JS_RESERVED | _PY_RESERVED):
        raise DiffcliError("input", f"--name {name}: not a plain identifier (ASCII letters, digits and _, "
                           "not a keyword or a library name of Python, C or JavaScript)")
    writer = {"python": _Python, "c": _C, "javascript": _JavaScript}[lang]
    mode = "value" if value_only else "forward" if wrt is not None else "reverse"
    writer = writer(program, output, mode, wrt, name, filename or program.source.filename)
    if keep is not None:
        keep.append(writer)
    return writer.generate()


class _Writer:
    """The walk over the graph shared by the three languages; subclasses say how each piece is written."""

    lang = ""
    comment = "#"

    def __init__(self, program: Program, output: str, mode: str, wrt: str | None, name: str | None,
                 filename: str):
        self.program, self.graph, self.mode, self.wrt = program, program.graph, mode, wrt
        self.filename = filename
        graph = self.graph
        self.output_name = output
        self.out = graph.names[output]
        namer = self.namer = _Namer(self.lang)
        free = [n for n, v in graph.inputs.items() if v is None]
        self.parameters = free + [n for n, v in graph.inputs.items() if v is not None]
        # every file name first, in file order, so that diffcli's own names never take one of them
        default = {"reverse": "grad_", "value": "eval_", "forward": "deriv_"}[mode] + output + (
            f"_{wrt}" if wrt else "")
        self.function = namer.fresh(name or namer._mangled(default))  # before the file's names: kept
        # the operations' nodes (a table's, and its places'): found here once (an Op, a named tuple
        # of many fields, is true; a leaf's None is false)
        self.op_nodes = list(itertools.compress(range(len(graph.op)), graph.op))
        self.split = len(self.op_nodes) > SPLIT
        # above SPLIT (but in forward mode) the program is data read by loops (see _Table): the code
        # names no variable but the inputs
        self.tabled = self.split and mode != "forward"
        # (a table's code names no node but the inputs)
        self.name_of = {graph.names[n]: n for n in graph.inputs} if self.tabled else graph.name_of()
        named = filter(graph.inputs.__contains__, graph.names) if self.tabled else graph.names
        self.variable = {n: namer.variable(n) for n in named}
        self.internal = {k: namer.fresh(base) for k, base in self.internal_names.items()}
        self._plan()

    internal_names: dict = {}  # diffcli's own names: key -> the identifier wanted

    # -- the plan: which node is what, and where it comes from
    def _plan(self):
        if self.tabled:
            return self._plan_table()
        graph, namer = self.graph, self.namer
        n = len(graph)
        ops_, args, value0 = graph.op, graph.args, graph.value0
        number = ops.printer(self.lang).number
        ref: list[str] = [""] * n
        slot = 0
        self.slot = [-1] * n
        values = self.internal.get("v")
        position = {name: k for k, name in enumerate(self.parameters)}
        name_of, split, slots = self.name_of, self.split, self.slot
        constants: dict = {}  # a constant's text, once per value
        inputs = graph.inputs  # (a named leaf that is not one, `c = (2)`, is a constant like the `2` in `x^2`)
        for i in range(n):
            if ops_[i] is None:
                if i in name_of and split and name_of[i] in inputs:  # an input, in the array of the arguments
                    ref[i] = f"{self.internal['x']}[{position[name_of[i]]}]"
                elif i in name_of and name_of[i] in inputs:
                    ref[i] = self.variable[name_of[i]]
                else:
                    key = (value0[i], str(value0[i]))  # (0.0 and -0.0 are equal, their texts are not)
                    text = constants.get(key)
                    if text is None:
                        text = str(number(value0[i]))
                        text = constants[key] = f"({text})" if text.startswith("-") else text
                    ref[i] = text
                continue
            slots[i] = slot
            if split:
                ref[i] = f"{values}[{slot}]"
            elif i in name_of:
                ref[i] = self.variable[name_of[i]]
            else:
                ref[i] = namer.fresh(f"t{i}")
            slot += 1
        self.ref = ref
        self.n_ops = slot
        # nodes the output depends on, and the adjoints the engine keeps
        live = [False] * n
        live[self.out] = True
        for i in range(self.out, -1, -1):
            if live[i]:
                for j in args[i]:
                    live[j] = True
        self.live = live
        needs = needs_gradient(graph, self.op_nodes)
        self.wanted = wanted = [a and b for a, b in zip(live, needs)]
        self.adjoint = [""] * n
        self.gradient_order, self.gradient_user = [], []
        if self.mode == "reverse":
            kept = [i for i in range(n) if wanted[i]]
            if split:
                g = self.internal["g"]
                for k, i in enumerate(kept):
                    self.adjoint[i] = f"{g}[{k}]"
            else:
                for i in kept:  # (a named constant's after its name: its ref is its number)
                    self.adjoint[i] = namer.fresh("d_" + (self.variable[name_of[i]] if i in name_of else ref[i]))
            self.n_adjoints = len(kept) if split else 0
            if self.lang != "python":
                self._places()
                return
            # for the Python check at the end: the adjoints from the last node's to the first's, and
            # the operation (of the highest index) through which each receives
            user = [0] * n
            for i in range(self.out + 1):
                if self.adjoint[i] and ops_[i] is not None:
                    for j in args[i]:
                        if self.adjoint[j]:
                            user[j] = self.slot[i]
            self.gradient_order = [j for j in range(n - 1, -1, -1) if self.adjoint[j]]
            self.gradient_user = [user[j] for j in self.gradient_order]
        elif self.mode == "forward":
            start = graph.names[self.wrt]
            moving = [False] * n
            moving[start] = True
            for i in range(start + 1, n):
                if any(moving[j] for j in args[i]):
                    moving[i] = True
            tangent_slot = 0
            for i in range(n):
                if moving[i] and live[i]:
                    if self.split:
                        self.adjoint[i] = f"{self.internal['g']}[{tangent_slot}]"
                        tangent_slot += 1
                    else:
                        self.adjoint[i] = namer.fresh("dt_" + ref[i])
            self.n_adjoints = tangent_slot
        self._places()

    def _plan_table(self):
        """The plan of a program read by loops (see _Table): the constants' texts, the adjoints kept."""
        graph = self.graph
        ops_, value0 = graph.op, graph.value0
        number = ops.printer(self.lang).number
        self.ref = [""] * len(graph)  # the loops name no operation's value
        leaves = itertools.compress(range(len(ops_)), map(operator.is_, ops_, itertools.repeat(None)))
        inputs = set(map(graph.names.__getitem__, graph.inputs))  # (a named leaf, `c = (2)`, is no input)
        self.constants = list(itertools.filterfalse(inputs.__contains__, leaves))
        # the adjoints the engine keeps: those a node the output does not depend on would keep
        # stay 0 (nothing flows into them), so they need not be told apart
        self.wanted = needs_gradient(graph, self.op_nodes)
        self.places = self.place_table()
        # each constant's value: the number of one of the distinct values (each written once)
        values = list(map(value0.__getitem__, self.constants))
        distinct = {value: k for k, value in enumerate(dict.fromkeys(values))}
        if 0.0 in distinct and len({math.copysign(1.0, value) for value in values if value == 0.0}) > 1:
            self.distinct, self.which = values, list(range(len(values)))  # 0.0 and -0.0, one key: all written
        else:
            self.distinct, self.which = list(distinct), list(map(distinct.__getitem__, values))
        if self.lang != "python":  # (Python's are their repr)
            texts = [str(number(value)) for value in self.distinct]
            self.distinct_texts = [f"({text})" if text.startswith("-") else text for text in texts]

    def place_table(self) -> "_Places":
        """Each operation's place as numbers, its message made only where it fails (see _Places)."""
        graph, source = self.graph, self.program.source
        text, width = source.text, EXCERPT_WIDTH
        exprs = list(map(graph.expr.__getitem__, self.op_nodes))
        # where each operation begins: its operator's place, its bracket's, or its start (a bracket
        # only in an index, array syntax: a graph without `attrs` has none)
        if not graph.attrs:
            at = [expr.op_start if expr.__class__ is Binary else expr.start for expr in exprs]
        else:
            begin = {kind: "op_start" if issubclass(kind, Binary) else "bracket" if issubclass(kind, Index)
                     else "start" for kind in set(map(type, exprs))}
            at = list(map(getattr, exprs, map(begin.__getitem__, map(type, exprs))))
        start = [expr.start for expr in exprs]
        end = [expr.end for expr in exprs]
        length = _differences(end, start)
        # the common case, as excerpt() shows it: printable ASCII, no comment, no run of blanks, not
        # longer than the width: a slice of the file's text; else the text excerpt() makes, aside
        # (looked for in bulk: most files have none but line breaks, which an expression rarely spans)
        folded = set()
        # (searched no further than width + 1 characters: a longer one is folded, and cut, anyway;
        # a whole search of each of the n nested spans of one long statement took time n²)
        heads = lambda: map(min, end, map(operator.add, start, itertools.repeat(width + 1)))  # noqa: E731
        plain = text.isascii() and "#" not in text and "  " not in text
        if plain and not (data := text.encode("ascii")).translate(None, _PRINTABLE_OR_LINE_BREAK):
            # (what _UNPLAIN finds but line breaks: none) an operation's text is within its
            # statement's, so where each statement starts a line of its own, and the last has no
            # line break, none holds one; else each operation's text is looked at
            if not _own_lines(self.program.statements, source._starts(), text):
                found = list(map(text.find, itertools.repeat("\n", len(exprs)), start, heads()))
                if found.count(-1) != len(found):
                    folded.update(k for k, n in enumerate(found) if n >= 0)
        else:
            data = None
            found = list(map(_unplain().search, itertools.repeat(text, len(exprs)), start, heads()))
            folded.update(k for k, match in enumerate(found) if match is not None)
        if max(length, default=0) > width:
            folded.update(k for k, n in enumerate(length) if n > width)
        if data is not None and len(start) > 1:  # (ASCII: each character its byte, looked at in one call each)
            if 32 in operator.itemgetter(*start)(data):
                folded.update(k for k, n in enumerate(start) if text[n] == " ")
            if 32 in operator.itemgetter(*end)(b"\0" + data):  # (the character before each end)
                folded.update(k for k, n in enumerate(end) if text[n - 1] == " ")
        else:
            if start and " " in operator.itemgetter(*start)(text):  # (each character in one call)
                folded.update(k for k, n in enumerate(start) if text[n] == " ")
            if end and " " in operator.itemgetter(*end)("\0" + text):  # (the character before each end)
                folded.update(k for k, n in enumerate(end) if text[n - 1] == " ")
        back = _differences(at, start)  # the text starts this far before the operation
        folded, extras = sorted(folded), []
        for k in folded:
            plain = text[start[k]:min(end[k], start[k] + width + 1)]   # (a long one's head: the rest is not shown)
            if _unplain().search(plain) is None and plain[:1] != " " and text[end[k] - 1] != " ":
                plain = plain[:width - 1] + "…"
            else:
                plain = _head_excerpt(source, start[k], end[k], width)
            extras.append(plain)
            back[k] = length[k] = 0
        del exprs, start, end  # (the rest of the run reuses their memory)
        # the text as one character a character: what no slice quotes becomes a blank or `?`, so
        # that offsets are the same in every language
        # (a plain text, `data` found above, is printable ASCII and line breaks already)
        ascii_text = text if data is not None else (
            text.encode("ascii", "replace").translate(_BLANK_CONTROLS).decode("ascii"))
        return _Places(at, back, length, folded, extras, source._starts(), ascii_text)

    def _places(self):
        """Each operation's place, as its messages say it: "`log(x)` (line 3, column 5)"."""
        graph, source = self.graph, self.program.source
        starts = source._starts()
        text_of, width = source.text, EXCERPT_WIDTH
        import bisect

        bisect_right = bisect.bisect_right
        where = []
        append = where.append
        begins: dict = {}  # expression class -> how its operation's place is found
        exprs = graph.expr
        for i, op in enumerate(graph.op):
            if op is None:
                continue
            expr = exprs[i]
            kind = begins.get(type(expr))
            if kind is None:
                kind = begins[type(expr)] = _begin_kind(source, expr)
            begin = expr.op_start if kind == 1 else expr.bracket if kind == 2 else expr.start
            line = bisect_right(starts, begin) - 1
            text = text_of[expr.start:min(expr.end, expr.start + width + 1)]   # (a long one's head)
            # the common case, already as excerpt() shows it: printable ASCII, no comment, no run
            # of blanks (one statement's text); else excerpt() folds it
            if not (text.isascii() and text.isprintable()) or "#" in text or "  " in text or text[:1] == " " \
                    or text_of[expr.end - 1] == " ":
                text = _head_excerpt(source, expr.start, expr.end, width)
            elif expr.end - expr.start > width:
                text = text[:width - 1] + "…"
            append(f"`{text}` (line {line + 1}, column {begin - starts[line] + 1})")
        self.where = where
        self.quoted = self.quote_all(where) if self.lang != "python" else []

    def quote_all(self, texts: list[str]) -> list[str]:
        """[self.quote(text) for text in texts], in bulk where nothing needs replacing."""
        if all(map(str.isprintable, texts)) and not self.quote_replaces(texts):
            return list(map(_encode_string, texts))
        return [self.quote(text) for text in texts]

    def quote_replaces(self, texts: list[str]) -> bool:
        return False

    def statement_comment(self, i: int) -> str:
        """`line 4: b = 5 - 3a` for the node a statement names, else "" (made once per node: the
        forward and the reverse pass both show it)."""
        comments = self.__dict__.setdefault("_comments", {})
        if i in comments:
            return comments[i]
        name = self.name_of.get(i)
        if name is None or name not in self.graph.definitions:
            comments[i] = ""
            return ""
        stmt = self.graph.definitions[name]
        source = self.program.source
        line = source.line_col(stmt.start)[0]
        expr = stmt.expr
        text = source.text[expr.start:expr.end]  # as snippet() shows it, where it is plain
        if not (text.isascii() and text.isprintable()) or "#" in text or "  " in text or text[:1] == " " \
                or text[-1:] == " ":
            text = self.program.definition(name)
        comments[i] = self.safe_comment(f"line {line}: {name} = {text}")
        return comments[i]

    def comments(self) -> dict:
        """node -> its statement's comment in the language's block-comment form (named nodes only)."""
        return {i: self.block_comment(self.statement_comment(i)) for i in self.name_of
                if self.statement_comment(i)}

    def safe_comment(self, text: str) -> str:
        if text.isprintable():
            return text
        return "".join(ch if ch.isprintable() else "?" for ch in text)

    # -- the pieces, for each node
    def edges(self, i: int, into: list[str] | None = None, refs: list[str] | None = None,
              count_name: str | None = None):
        """(n, argument node, partial text) for every argument whose adjoint is kept, and the tie
        count's text (min/max) or None. (`refs` and `count_name`: the fast path's names.)"""
        op, a = self.graph.op[i], self.graph.args[i]
        value, partials, count = _templates(self.lang, op.key, len(a))
        refs = refs or self.ref
        names = [refs[j] for j in a]
        names.append(refs[i])
        names.append(count_name or self.internal["n"])
        targets = self.adjoint if into is None else into
        edges = [(n, j, partials[n].format(*names)) for n, j in enumerate(a) if targets[j]]
        counted = count.format(*names) if count is not None and edges else None
        return edges, counted

    def fast_plan(self) -> "_Fast | None":
        """The straight-line version of the program and its gradient (see _Fast), or None where
        there is none (a split program, forward mode)."""
        if self.split or self.mode == "forward":
            return None
        graph, n = self.graph, len(self.graph)
        ops_, args = graph.op, graph.args
        # values: an `id` or `+x` is its argument; the same operation on the same values is computed once
        root = list(range(n))
        first: dict = {}
        values = []
        for i in range(n):
            op = ops_[i]
            if op is None:
                continue
            a = tuple(root[j] for j in args[i])
            if op.key in ("id", "pos"):
                root[i] = a[0]
                continue
            named = tuple(self.ref[j] for j in a)  # (equal constants are equal names)
            key = (op.key, tuple(sorted(named)) if op.key in _EXACTLY_COMMUTATIVE else named)
            if key in first:
                root[i] = first[key]
                continue
            first[key] = i
            values.append(i)
        refs = [self.ref[root[i]] for i in range(n)]
        value_lines = [(self.ref[i], _templates(self.lang, ops_[i].key, len(args[i]))[0].format(
            *[refs[j] for j in args[i]])) for i in values]
        # a value need not be tested when one of its users cannot be finite without it
        implied = [False] * n
        named = set(graph.names.values())
        for i in values:
            for position in ops.NONFINITE_PROPAGATES.get(ops_[i].key, ()):
                implied[root[args[i][position]]] = True
            if ops_[i].key in ops.BASE_PROPAGATES_IF_EXPONENT_POSITIVE:
                exponent = root[args[i][1]]  # a constant: a leaf that is no input
                c = graph.value0[exponent] if ops_[exponent] is None and exponent not in named else None
                if isinstance(c, (int, float)) and 0 < c < math.inf:
                    implied[root[args[i][0]]] = True
        # an input no user carries a non-finite value on from (`tanh(x)`, say) is tested as such a
        # value is: C's test of the derivatives by the exception flags holds where every input is finite
        input_nodes = {graph.names[name] for name in graph.inputs}
        used = {root[j] for i in values for j in args[i]} & input_nodes
        inputs = [self.ref[j] for j in sorted(used) if not implied[j]]
        # how many library calls each value waits for, on its longest path from the inputs
        calls = [0] * n
        for i, (_, text) in zip(values, value_lines):
            calls[i] = max((calls[root[j]] for j in args[i]), default=0) + bool(_call().search(text))
        fast = _Fast(value_lines, {self.ref[i] for i in values if not implied[i]}, [], [], [], refs[self.out], {},
                     {self.ref[i]: calls[i] for i in values}, inputs)
        if self.mode != "reverse":
            return fast
        adjoint, terms = self.adjoint, [[] for _ in range(n)]
        text = [""] * n
        text[self.out] = "1.0"
        leaf = [True] * n
        for i in range(self.out, -1, -1):
            if not adjoint[i]:
                continue
            if i != self.out:
                parts = terms[i]
                if len(parts) == 1 and parts[0][1] == "1.0":  # d_a = d_b · 1: the same number
                    text[i] = parts[0][0]
                else:
                    text[i] = adjoint[i]
                    fast.adjoints.append((adjoint[i], " + ".join(_term(g, p) for g, p in parts) or "0.0"))
            if ops_[i] is None:
                continue
            count_name = None
            if ops_[i].arity == 0:
                count_name = self.namer.fresh(f"n{i}")
            edges, counted = self.edges(i, refs=refs, count_name=count_name)
            if counted:
                fast.counts.append((count_name, counted))
            for _, j, partial in edges:
                terms[j].append((text[i], partial))
                leaf[i] = False
        # an adjoint that flows into a sum of its own (not a copy under another name) is not finite
        # only where that sum is not: the leaves that are such adjoints under their own names need
        # no test of their own (the lowest of a set of copies is a leaf, so each set has one)
        sums = {adjoint[j]: [g for g, _ in terms[j]] for j in range(n) if text[j] and text[j] == adjoint[j]}
        flowing = {g for parts in sums.values() for g in parts}
        leaves = [i for i in range(self.out, -1, -1)
                  if adjoint[i] and leaf[i] and text[i] != "1.0" and text[i] not in flowing]
        # a leaf g·p with |p| ≤ 1 (a constant, or a value of ops.BOUNDED_BY_ONE, finite where the
        # forward test passes) is finite where g is: no test of its own where the other leaves' tests
        # cover g (what a test covers: its sum's terms' adjoints, and theirs)
        bounded_values = {self.ref[i] for i in values if ops_[i].key in ops.BOUNDED_BY_ONE}
        bounded = {i: terms[i][0][0] for i in leaves if len(terms[i]) == 1 and text[i] == adjoint[i]
                   and (terms[i][0][1] in bounded_values or _at_most_one(terms[i][0][1]))}
        covered, todo = {"1.0"}, [text[i] for i in leaves if i not in bounded]
        while todo:
            name = todo.pop()
            if name not in covered:
                covered.add(name)
                todo += sums.get(name, ())
        fast.checks += [text[i] for i in leaves if bounded.get(i) not in covered]
        fast.checks = list(dict.fromkeys(fast.checks))
        fast.gradient = {name: text[graph.names[name]] if adjoint[graph.names[name]] else "0.0"
                         for name in self.parameters}
        return fast

    @staticmethod
    def arities(t: "_Table") -> list[int]:
        """Each case's number of arguments."""
        return [nargs for (_, nargs), _ in sorted(t.kinds.items(), key=lambda item: item[1])]

    def table(self) -> "_Table":
        """A large program as data for one loop per pass (see _Table)."""
        self.read: dict = {}  # (C and JavaScript) table -> how its element {} is read
        graph = self.graph
        ops_, args = graph.op, graph.args
        node = self.op_nodes  # (place_table's)
        # a case per operation (its key, a string: hashed once), per number of arguments where that varies
        # (an Op's first field: its key; the true ones of graph.op, in order, are node's)
        keys = list(map(operator.itemgetter(0), filter(None, ops_)))
        distinct = dict.fromkeys(keys)
        variadic = {key for key in distinct if ops.OPS[key].arity == 0}
        if variadic:
            arity = map(len, map(args.__getitem__, node))
            keys = [(key, n) if key in variadic else key for key, n in zip(keys, arity)]
            distinct = dict.fromkeys(keys)
        case = {key: k for k, key in enumerate(distinct)}
        kind = list(map(case.__getitem__, keys))
        kinds = {key if isinstance(key, tuple) else (key, ops.OPS[key].arity): k for key, k in case.items()}
        flat = list(itertools.chain.from_iterable(map(args.__getitem__, node)))
        inputs = [graph.names[name] for name in self.parameters]
        import bisect

        last = bisect.bisect_right(node, self.out) - 1
        step = _steps(node)
        return _Table(kinds, kind, node, step, flat, self.constants, inputs, self.wanted, last)

    def generate(self) -> Generated:
        raise NotImplementedError

    def header_comment(self) -> list[str]:
        what = {"reverse": f"`{self.output_name}` and its gradient with respect to every input (reverse mode)",
                "value": f"the value of `{self.output_name}`",
                "forward": f"`{self.output_name}` and its derivative with respect to `{self.wrt}` (forward mode)"}
        return [self.safe_comment(line) for line in (
            f"Generated by diffcli from {self.filename}: {what[self.mode]}.",
            "Self-contained: no diffcli at run time. The same operations in the same order as `diffcli grad`.",
        )]

    def inputs_doc(self) -> list[str]:
        lines = []
        for name in self.parameters:
            default = self.graph.inputs[name]
            shown = "no default (a free input)" if default is None else f"default {default!r}"
            lines.append(self.safe_comment(f"  {self.variable[name]}: input `{name}`, {shown}"))
        return lines


def _begin_kind(source, expr) -> int:
    """Where operator_span finds an expression's operation: 1 its op_start, 2 its bracket, 0 its start."""
    return 1 if isinstance(expr, Binary) else 2 if isinstance(expr, Index) else 0


# add and mul give the same bits either way round; min, max and hypot are left as written
_EXACTLY_COMMUTATIVE = {"add", "mul"}
# a value's text that calls a function (the library's: `tanh(`, `Math.exp(`)
@functools.lru_cache(maxsize=None)
def _call():  # (compiled where first used: a large program's tables never use it)
    return re.compile(r"[A-Za-z_][\w.]*\(")


class _Fast(_Record):
    """The program as straight-line code with no test on the way: the values (CSE'd, copies
    propagated), min/max's tie counts, each adjoint as the sum of its terms in the engine's order
    (one term of partial 1 is the same number, so no statement), and the few values whose sum is
    finite exactly when everything is (or, rarely, when a sum of finite numbers overflows). Where
    that sum is not finite, the generated code calls the checked version, which gives the engine's
    result or error with its place: so the errors are the checked code's, and where the fast code
    answers, every product it adds and the engine skips (an adjoint of 0) was 0, and its numbers
    are the engine's, except that a zero may be -0.0 where the engine's is 0.0 (the engine starts
    every sum at 0.0; here a sum starts at its first term)."""

    values: list        # (name, expression)
    tested: set         # the values to add up as they come (one running sum: nothing else kept live)
    counts: list        # (name, expression)
    adjoints: list      # (name, expression)
    checks: list        # adjoint expressions to add up at the end
    value: str
    gradient: dict      # input name -> expression
    calls: dict         # value name -> the number of library calls on its longest path from the inputs
    inputs: list        # the inputs tested where C reads the exception flags (see fast_plan)

    def check_sums(self, chunk: int = 64) -> list[str]:
        """The checked expressions summed, `chunk` terms per expression, each a balanced tree of
        additions (a chain of them would make every call wait for its whole length)."""
        sums = []
        for k in range(0, len(self.checks), chunk):
            level = self.checks[k:k + chunk]
            while len(level) > 1:
                level = [f"({a} + {b})" if b else a
                         for a, b in zip(level[::2], level[1::2] + [""] * (len(level) % 2))]
            sums.append(level[0])
        return sums


class _Table(_Record):
    """A large program as data (above SPLIT operations): each operation's kind (a case of the loop,
    one per operation and number of arguments), node and arguments, the constants and the kept
    adjoints; the places are _Places. The loops do what the checked straight-line code does, in
    the same order, with the same tests; the file grows by numbers, not by statements."""

    kinds: dict         # (op key, number of arguments) -> case
    kind: list          # per operation
    node: list
    step: list          # node[k] - node[k - 1] (0 for the first): the table written (mostly small numbers)
    flat: list          # the arguments, in order: each operation's as many as its kind's arity
    constants: list     # nodes (their values: the writer's `distinct` and `which`)
    inputs: list        # the parameters' nodes
    kept: list          # per node: whether the engine keeps its adjoint (bools)
    last: int           # the last operation the output depends on (or comes before it)


class _Places(_Record):
    """The operations' places as tables (a large program's): an operation's message names
    "`its text` (line L, column C)", made only where it fails. `at`: where its operation begins (an
    offset in the file; the line is the last of `lines`, the lines' starts, not after it); its text
    is text[at - back:at - back + length], or where length is 0 extras[folded.index(k)] (excerpt()'s
    text where it folds or cuts the file's)."""

    at: list
    back: list          # (both of 0 to EXCERPT_WIDTH: small tables)
    length: list
    folded: list        # the operations whose text is one of the extras, in order
    extras: list
    lines: list
    text: str           # the file's text, printable ASCII and line breaks only (as many characters)


# a table of numbers of 0 to _SMALL - 1 is written as one character each, from "0" (48) to "Z" (90): no
# character any language's string needs to escape but C's `?` (trigraphs)
_SMALL = 43
_SHIFT = bytes.maketrans(bytes(range(256)), bytes(range(48, 48 + _SMALL)) + bytes(256 - _SMALL))  # (not small: 0)


def _head_excerpt(source, start: int, end: int, width: int) -> str:
    """excerpt() of the span start:end, reading a long one's head only, twice as much each time
    until it fills the width: the snippet of a head is the snippet of the whole cut short (a blank
    at the cut aside), and the span's last character is no blank, so the whole is longer still."""
    cut = start + 4 * width
    while cut < end:
        head = source.snippet(start, cut)
        if len(head) >= width:
            return head[:width - 1] + "…"
        cut = start + 2 * (cut - start)
    text = source.snippet(start, end)
    return text if len(text) <= width else text[:width - 1] + "…"


def _differences(a: list, b: list) -> bytearray | list:
    """a[k] - b[k] each, as a bytearray where each is of 0 to 255 (most places' tables: an eighth of
    a list's memory, its text made by one copy), else as a list."""
    try:
        return bytearray(map(operator.sub, a, b))
    except ValueError:
        return list(map(operator.sub, a, b))


def _steps(values: list) -> list:
    """Each number less the one before (the first's: 0): what a table of rising numbers is written as."""
    return list(map(operator.sub, values, itertools.chain(values[:1], values))) or [0]


def _int_text(values: list, per_line: int, between: str) -> str:
    """Ints as `str(values)[1:-1]` would write them, a line (`between` the lines) of `per_line` each:
    each line made by one `%` of a format of `per_line` `%d`s (a fifth faster than a list's text)."""
    n, rest = len(values), len(values) % per_line
    line = _INT_FORMATS.get(per_line) or _INT_FORMATS.setdefault(per_line, ", ".join(["%d"] * per_line))
    texts = [line % tuple(values[k:k + per_line]) for k in range(0, n - rest, per_line)]
    if rest:
        texts.append(", ".join(["%d"] * rest) % tuple(values[n - rest:]))
    return between.join(texts)


_INT_FORMATS: dict = {}

# the array codes of 1, 2, 4 and 8 bytes an item, unsigned and signed (of the same size, the last listed)
_HEX_CODES = {(signed, array(code).itemsize): code for signed, codes in ((False, "QLIHB"), (True, "qlihb"))
              for code in codes}
_HEX_SIZES = {False: (1, 2, 4, 8), True: (1, 2, 4)}


def _hex_table(values: list, signed: bool = False) -> tuple[int, bytes] | None:
    """Ints as the bytes of their hexadecimal text: (size, data), each number `size` bytes, big-endian
    (two's complement if `signed`), the narrowest of 1, 2, 4 (or, unsigned, 8) bytes that holds them
    all; None if none does. Made by array and bytes in bulk: a fifth of the time of their decimal text."""
    for size in _HEX_SIZES[signed]:
        try:
            numbers = array(_HEX_CODES[signed, size], values)
        except OverflowError:  # (too large for the size: a wider one)
            continue
        if sys.byteorder == "little":
            numbers.byteswap()
        return size, numbers.tobytes()
    return None


def _hex_literals(size: int, data: bytes, per_line: int = 500) -> str:
    """C's and JavaScript's literals of a _hex_table, `0x` and 2·size digits each, `per_line` a line
    (no blank after the commas: the file is a sixth smaller)."""
    step = size * per_line  # (a line's bytes at a time: each piece made while in the cache)
    return ",\n".join(["0x" + data[k:k + step].hex(",", size).replace(",", ",0x") for k in range(0, len(data), step)])


def _small_text(values: list) -> str | None:
    """A table as its characters, or None where a number is not small."""
    try:
        shifted = bytes(values).translate(_SHIFT)  # (bytes() takes only 0 to 255)
    except ValueError:
        return None
    return None if 0 in shifted else shifted.decode("ascii")


# C's string literals stay within the 4,095 characters ISO C compilers must accept (MSVC stops near
# 16,000; gcc -pedantic warns): a longer table is rows of _C_ROW characters, one literal each
_C_ROW_BITS = 11
_C_ROW = 1 << _C_ROW_BITS
# a hexadecimal table's C type, by its numbers' size in bytes (unsigned long: 32 bits at least)
_C_UNSIGNED = {1: "unsigned char", 2: "unsigned short", 4: "unsigned long", 8: "unsigned long long"}


# _c_literal cuts a line of more than 1,000 characters into pieces of 1,000
_LONG_LINE = 1000


def _short_lines(text: str) -> bool:
    """Whether no line of `text` is longer than _LONG_LINE characters."""
    return len(text) <= _LONG_LINE or max(map(len, text.split("\n"))) <= _LONG_LINE


def _lines_within(starts: list, size: int, width: int) -> bool:
    """Whether no line of a text of `size` characters whose lines start at `starts` is longer than
    `width` (as _short_lines finds, from the lines' starts)."""
    return size - starts[-1] <= width and (len(starts) < 2 or max(map(operator.sub, starts[1:], starts)) <= width + 1)


def _c_literal(text: str, short: bool | None = None) -> str:
    """Printable ASCII and line breaks as a C string literal: a piece a line, of at most 1000
    characters (cut before escaping, so that no escape is split). `short`: _short_lines(text), if known."""
    escape = lambda piece: piece.replace("\\", "\\\\").replace('"', '\\"').replace("?", "\\?")
    if short or short is None and _short_lines(text):  # the common case, escaped whole: the same pieces
        return '"' + escape(text).replace("\n", '\\n"\n"') + '"'
    pieces = []
    for line in text.split("\n"):
        pieces += [escape(line[k:k + 1000]) for k in range(0, len(line), 1000)] or [""]
        pieces[-1] += "\\n"
    pieces[-1] = pieces[-1][:-2]
    return '"' + '"\n"'.join(pieces) + '"'


def _c_char_rows(name: str, text: str) -> str:
    """_c_rows of a text of the characters "0" to "Z" and hexadecimal digits only (a small table's, a
    hexadecimal one's): of those only `?` is escaped, a row at a time, in pieces of _LONG_LINE a line."""
    rows = [text[k:k + _C_ROW] for k in range(0, len(text), _C_ROW)]
    rows = ['"' + '"\n"'.join([row[j:j + _LONG_LINE].replace("?", "\\?") for j in range(0, len(row), _LONG_LINE)])
            + '"' for row in rows]
    return f"static const char {name}[][{_C_ROW + 1}] = {{\n" + ",\n".join(rows) + "};"


def _c_rows(name: str, text: str, short: bool | None = None) -> str:
    """`static const char name[][_C_ROW + 1]`: text in rows of _C_ROW characters (row r holds
    characters r·_C_ROW on), read as name[i >> _C_ROW_BITS][i & (_C_ROW - 1)]. `short`:
    _short_lines(text), if known."""
    if short is None:
        short = _short_lines(text)
    short = short or None  # (no row has a longer line than the whole; else row by row)
    if short and "\\" not in text and '"' not in text and "?" not in text:  # (nothing to escape)
        rows = ['"' + text[k:k + _C_ROW].replace("\n", '\\n"\n"') + '"' for k in range(0, len(text), _C_ROW)]
    else:
        rows = [_c_literal(text[k:k + _C_ROW], short) for k in range(0, len(text), _C_ROW)]
    return f"static const char {name}[][{_C_ROW + 1}] = {{\n" + ",\n".join(rows) + "};"


# what keeps an expression's text from being quoted as it is: excerpt() folds it (compiled where
# first used: most files never need it)
@functools.lru_cache(maxsize=None)
def _unplain():
    return re.compile(r"[^ -~]|#|  ")


def _own_lines(statements: list, starts: list, text: str) -> bool:
    """Whether each statement starts a line of its own (`starts`, the lines' starts) and the last holds
    no line break: then no statement spans a line break (each ends before the next line starts)."""
    n = len(statements)
    return (len(starts) >= n and [statement.start for statement in statements] == starts[:n]
            and text.find("\n", statements[-1].start, statements[-1].end) < 0)
_PRINTABLE_OR_LINE_BREAK = bytes(range(32, 127)) + b"\n"

# C's fast code tests its derivatives by the floating-point exception flags where it can: with doubles
# in SSE2 and a C library that follows IEC 60559 (Annex F: glibc), an operation of finite operands
# whose result is not finite raises invalid, divide-by-zero or overflow, so where every value and
# input is finite (the forward tests) and none of these flags is raised, every derivative is finite.
# One read of them costs less than adding up the derivatives (issue 23: 0.97x SymPy's C against 1.04x,
# on an Intel Xeon; on an AMD one a read cost about what the sum does). gcc only: clang's default
# ignores the flags (it may fold an overflow at build time), as -ffast-math and -fno-trapping-math do;
# x86-64 only (32-bit x86's libm computes in x87, whose flags MXCSR does not hold).
FLAGS = [
    "/* the fast code's last test, where the compiler and library allow: the invalid, divide-by-zero and",
    " * overflow flags (SSE's, MXCSR) read once, only read; an operation of finite operands whose result",
    " * is not finite raises one (C99 Annex F), so where none is raised every derivative is finite, and",
    " * only where one is (by this call, or before it) are the derivatives added up and tested. Define",
    " * DIFFCLI_NO_FLAGS to add them up always (so under valgrind, which does not raise the flags). */",
    "#if !defined(DIFFCLI_NO_FLAGS) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) \\",
    "    && defined(__SSE2_MATH__) \\",
    "    && defined(__STDC_IEC_559__) && !defined(__FAST_MATH__) && !defined(__NO_TRAPPING_MATH__)",
    "#define DIFFCLI_FLAGS 1",
    "#define DIFFCLI_RAISED() (__builtin_ia32_stmxcsr() & 0x0Du)",
    "#else",
    "#define DIFFCLI_FLAGS 0",
    "#endif",
]
_BLANK_CONTROLS = bytes.maketrans(bytes([*range(10), *range(11, 32), 127]), b" " * 32)


def _term(g: str, p: str) -> str:
    if g == "1.0":
        return p
    if p == "1.0":
        return g
    if p == "-1.0":
        return f"-{g}"
    return f"{g} * {p}"


def _at_most_one(text: str) -> bool:
    """Whether a partial's text is a number of magnitude at most 1."""
    try:
        return abs(float(text)) <= 1.0
    except ValueError:
        return False


def _literal(text: str) -> bool:
    """Whether a partial's text is a plain number or name (needs no temporary): letters and digits
    (one at least), with `. _ - ( ) [ ]`."""
    return _literal_pattern().fullmatch(text) is not None


@functools.lru_cache(maxsize=None)
def _literal_pattern():  # (compiled where first used, as _call)
    return re.compile(r"[\w.()\[\]-]*[^\W_][\w.()\[\]-]*")


# ---------------------------------------------------------------- Python

class _Python(_Writer):
    lang = "python"
    internal_names = {"n": "_n", "p": "_p", "x": "x", "v": "v", "g": "g", "DomainError": "DomainError",
                      "isfinite": "_isfinite", "WHERE": "_WHERE", "BLOCK_LINES": "_BLOCK_LINES",
                      "BLOCK_NODES": "_BLOCK_NODES", "RUNS": "_FORWARD_RUNS",
                      "check_values": "_check_values", "fail_value": "_fail_value",
                      "fail_derivative": "_fail_derivative", "located": "_located", "error": "_error",
                      "check_gradient": "_check_gradient", "USER": "_USER"}

    def generate(self) -> Generated:
        if self.tabled:
            return Generated("python", self.function, self.table_source(), None, self.parameters)
        I, graph, ref = self.internal, self.graph, self.ref
        triple = '"' * 3
        # a docstring is not raw: a backslash of the file name (`C:\new`) is escaped
        header = [line.replace("\\", "\\\\").replace(triple, "'''") for line in self.header_comment()]
        lines = [triple + header[0], *header[1:], triple, "",
                 "import math", "", "", f"class {I['DomainError']}(ValueError):",
                 f"    {triple}A value or a derivative outside an operation's domain, or an overflow.{triple}",
                 "", ""]
        runs: list[tuple[int, int]] = []  # (first line, first operation) of each run of forward lines
        block_lines: list[int] = []
        block_nodes: list[int] = []
        isfinite, p, n_ = I["isfinite"], I["p"], I["n"]
        op_nodes = [i for i, op in enumerate(graph.op) if op is not None]
        split = self.split
        indent = "    " if split else "        "

        comments = {i: f"  # {text}" for i in self.name_of for text in [self.statement_comment(i)] if text}
        ops_, args = graph.op, graph.args
        statement: dict = {}  # (op, arguments) -> its line as a format string

        def forward_lines(nodes):
            runs.append((len(lines) + 1, self.slot[nodes[0]]))
            append = lines.append
            for i in nodes:
                a = args[i]
                key = (ops_[i].key, len(a))
                text = statement.get(key)
                if text is None:
                    text = statement[key] = f"{indent}{{{len(a)}}} = {_templates(self.lang, key[0], len(a))[0]}"
                append(text.format(*map(ref.__getitem__, a), ref[i]) + comments.get(i, ""))

        def block(i, g, body):
            block_lines.append(len(lines) + 1)
            block_nodes.append(self.slot[i])
            lines.append(f"{indent}if {g}:" + comments.get(i, ""))
            lines.extend(body)

        adjoint, slot = self.adjoint, self.slot

        def reverse_block(i):
            a = args[i]
            if not any(adjoint[j] for j in a):
                return
            _, partials, count = _templates(self.lang, ops_[i].key, len(a))
            names = list(map(ref.__getitem__, a))
            names.append(ref[i])
            names.append(n_)
            g = adjoint[i]
            block_lines.append(len(lines) + 1)
            block_nodes.append(slot[i])
            append = lines.append
            append(f"{indent}if {g}:" + comments.get(i, ""))
            if count is not None:
                append(f"{indent}    {n_} = {count.format(*names)}")
            for n, j in enumerate(a):
                if adjoint[j]:
                    append(f"{indent}    {adjoint[j]} += {g} * {partials[n].format(*names)}")

        def tangent_block(i):
            tangent = self.adjoint
            edges, counted = self.edges(i, into=tangent)
            lines.append(f"{indent}{tangent[i]} = 0.0")
            for n, j, partial in edges:
                body = [f"{indent}    {n_} = {counted}"] if counted else []
                # as the engine does: an undefined partial makes the tangent NaN, which a zero
                # partial further on may block (`0*sqrt(x)` at 0 has derivative 0); the end's check
                # catches what reaches the output
                body += [f"{indent}    try:", f"{indent}        {p} = {partial}",
                         f"{indent}    except (ArithmeticError, ValueError):", f"{indent}        {p} = math.nan"]
                body.append(f"{indent}    if {p}: {tangent[i]} += {tangent[j]} * {p}")
                block(i, tangent[j], body)

        if self.mode == "reverse":
            backward = [i for i in range(self.out, -1, -1) if self.adjoint[i] and graph.op[i] is not None]
            emit_backward = reverse_block
        elif self.mode == "forward":
            backward = [i for i in range(graph.names[self.wrt] + 1, self.out + 1) if self.adjoint[i]]
            emit_backward = tangent_block
        else:
            backward, emit_backward = [], None
        first = {"reverse": self.out, "forward": graph.names.get(self.wrt, -1)}.get(self.mode, -1)
        initial = [f"{self.adjoint[first]} = 1.0"] if first >= 0 and self.adjoint[first] else []  # (none: no pass)
        if self.mode == "reverse" and not split:
            rest = [self.adjoint[j] for j in range(self.out) if self.adjoint[j]]
            initial += [f"{' = '.join(rest[k:k + 20])} = 0.0" for k in range(0, len(rest), 20)]
        chunks: list[str] = []
        first_backward = 0
        if split:
            for k in range(0, len(op_nodes), SPLIT):
                name = self.namer.fresh(f"_forward_{k // SPLIT}")
                lines.append(f"def {name}({I['x']}, {I['v']}, {I['g']}):")
                forward_lines(op_nodes[k:k + SPLIT])
                lines += ["", ""]
                chunks.append(name)
            first_backward = len(chunks)
            for k in range(0, len(backward), SPLIT // 2):
                name = self.namer.fresh(f"_{self.mode}_{k // (SPLIT // 2)}")
                lines.append(f"def {name}({I['x']}, {I['v']}, {I['g']}):")
                for i in backward[k:k + SPLIT // 2]:
                    emit_backward(i)
                lines += ["", ""]
                chunks.append(name)
        lines += self.signature_and_doc()
        lines.append("    try:")
        if split:
            lines.append(f"        {I['x']} = [{', '.join(self.variable[n] for n in self.parameters)}]")
            lines.append(f"        {I['v']} = [0.0] * {self.n_ops}")
            lines.append(f"        {I['g']} = [0.0] * {self.n_adjoints if backward else 0}")
            for k, name in enumerate(chunks):
                if k == first_backward:
                    lines.append(f"        {I['check_values']}(0, {I['v']})")
                    lines += ["        " + line for line in initial]
                lines.append(f"        {name}({I['x']}, {I['v']}, {I['g']})")
            if first_backward == len(chunks):
                lines.append(f"        {I['check_values']}(0, {I['v']})")
            if self.mode == "reverse":
                lines.append(f"        {I['check_gradient']}(0, {I['g']}[::-1])")
        else:
            if op_nodes:
                forward_lines(op_nodes)
            for k in range(0, len(op_nodes), 1000):
                chunk = ", ".join(ref[i] for i in op_nodes[k:k + 1000])
                lines.append(f"{indent}{I['check_values']}({k}, ({chunk},))")
            lines += [indent + line for line in initial]
            for i in backward:
                emit_backward(i)
            if self.mode == "reverse":
                kept = [self.adjoint[j] for j in self.gradient_order]
                for k in range(0, len(kept), 1000):
                    lines.append(f"{indent}{I['check_gradient']}({k}, ({', '.join(kept[k:k + 1000])},))")
        if self.mode == "forward" and self.adjoint[self.out]:  # (else the output does not move: 0)
            lines.append(f"        if not {isfinite}({self.adjoint[self.out]}): "
                         f"raise {I['fail_derivative']}({self.slot[self.out]}, -1, math.nan)")
        if lines[-1] == "    try:":  # (no operation: nothing to run)
            lines.append("        pass")
        if self.mode == "reverse":
            gradient = ", ".join(f"{n!r}: {self.adjoint[graph.names[n]] or '0.0'}" for n in self.parameters)
            result = f"{ref[self.out]}, {{{gradient}}}"
        elif self.mode == "forward":
            result = f"{ref[self.out]}, {self.adjoint[self.out] or '0.0'}"
        else:
            result = ref[self.out]
        W = I["WHERE"]
        lines += [
            f"    except {I['DomainError']}:",
            "        raise",
            f"    except (ArithmeticError, ValueError) as {I['error']}:",
            f"        raise {I['located']}({I['error']}) from None",
            f"    return {result}",
            "", "",
            f"{isfinite} = math.isfinite",
            f"{I['RUNS']} = ({''.join(f'({a}, {b}), ' for a, b in runs)})",
            "# tables as text, one string each (a tuple of a million constants is slow to compile)",
            f"{I['BLOCK_LINES']} = tuple(map(int, {' '.join(map(str, block_lines))!r}.split()))",
            f"{I['BLOCK_NODES']} = tuple(map(int, {' '.join(map(str, block_nodes))!r}.split()))",
            f"{I['USER']} = tuple(map(int, {' '.join(map(str, self.gradient_user))!r}.split()))",
            f"{W} = {chr(10).join(self.where)!r}.split({chr(10)!r})",
            "", "",
            f"def {I['check_values']}(first, values):",
            "    for k, value in enumerate(values):",
            f"        if not {isfinite}(value):",
            f"            raise {I['fail_value']}(first + k, 'the result is not finite')",
            "", "",
            f"def {I['check_gradient']}(first, adjoints):",
            f"    {triple}Adjoints, the last node's first: the first that is not finite names its user.{triple}",
            "    for k, adjoint in enumerate(adjoints):",
            f"        if not {isfinite}(adjoint):",
            f"            where = {W}[{I['USER']}[first + k]]",
            "            if adjoint != adjoint:",
            f"                raise {I['DomainError']}(f'the derivative of {{where}} is infinite or undefined')",
            f"            raise {I['DomainError']}(f'the gradient overflows at {{where}}')",
            "", "",
            f"def {I['fail_value']}(k, reason):",
            f"    return {I['DomainError']}(f'{{{W}[k]}}: undefined or overflows ({{reason}})')",
            "", "",
            f"def {I['fail_derivative']}(k, n, partial):",
            "    if k < 0:",
            f"        return {I['DomainError']}('the derivative is infinite or undefined at these inputs')",
            f"    where = {W}[k] + (f', with respect to its argument {{n + 1}}' if n >= 0 else '')",
            f"    if {isfinite}(partial):",
            f"        return {I['DomainError']}(f'the gradient overflows at {{where}}')",
            f"    return {I['DomainError']}(f'the derivative of {{where}} is infinite or undefined')",
            "", "",
            f"def {I['located']}(error):",
            f"    {triple}The error, as a DomainError naming the operation whose line raised it.{triple}",
            "    import bisect",
            "",
            "    traceback = error.__traceback__",
            "    while traceback.tb_next is not None:",
            "        traceback = traceback.tb_next",
            "    line = traceback.tb_lineno",
            f"    b = bisect.bisect_right({I['BLOCK_LINES']}, line) - 1",
            f"    if {I['BLOCK_LINES']} and line >= {I['BLOCK_LINES']}[0]:",
            f"        return {I['DomainError']}(f'the derivative of {{{W}[{I['BLOCK_NODES']}[b]]}} "
            "is infinite or undefined ({error})')",
            f"    first_line, first = {I['RUNS']}[bisect.bisect_right({I['RUNS']}, (line, len({W}))) - 1]",
            f"    return {I['fail_value']}(first + line - first_line, error)",
            "",
        ]
        return Generated("python", self.function, "\n".join(lines), None, self.parameters)

    def table_source(self) -> list[str]:
        """A large program's module: its operations as tables read by one loop per pass (see _Table),
        each operation kind a function; the errors are the straight-line code's, with its places."""
        I, t, P = self.internal, self.table(), self.places
        fresh = self.namer.fresh
        N = {key: fresh(base) for key, base in (
            ("hex", "_hex"), ("small", "_small"), ("OPS", "_OPS"), ("VALUES", "_VALUES"), ("PARTIALS", "_PARTIALS"),
            ("KEPT", "_KEPT"), ("KIND", "_KIND"), ("FIRST", "_FIRST"), ("START", "_START"), ("DISTINCT", "_CONSTANTS"), ("AT", "_AT"), ("BACK", "_BACK"), ("LENGTH", "_LENGTH"),
            ("FOLDED", "_FOLDED"), ("EXTRAS", "_EXTRAS"), ("LINES", "_LINES"), ("TEXT", "_TEXT"), ("place", "_place"),
            ("user", "_user"), ("k", "k"), ("f", "f"), ("i", "i"), ("a", "a"), ("d", "d"), ("out", "out"),
            ("node", "_node"), ("which", "_which"))}  # (module-level loop names start with _: `import *` skips them)
        triple = '"' * 3
        header = [line.replace("\\", "\\\\").replace(triple, "'" * 3) for line in self.header_comment()]
        isfinite, DomainError, v, g = I["isfinite"], I["DomainError"], I["v"], I["g"]
        k, f, i, a, d, out = (N[x] for x in ("k", "f", "i", "a", "d", "out"))
        size, backward = len(self.graph), self.mode == "reverse"

        def ints(values, small: bool = False, signed: bool = False) -> str:
            text = _small_text(values) if small else None
            if text is not None:
                return f"{N['small']}({text!r})"
            hexed = _hex_table(values, signed)
            if hexed is not None:  # (hexadecimal digits: nothing to escape)
                return f"{N['hex']}('{hexed[1].hex()}', {hexed[0]}, {signed})"
            return f"({str(values)[1:-1]},)"  # (beyond 64 bits: never an index or an offset)

        forward, partials, functions = [], [], []
        for (key, nargs), case in t.kinds.items():
            value, partial_texts, count = _templates(self.lang, key, nargs)
            refs = [f"{v}[{a}[{j}]]" for j in range(nargs)]
            forward.append(f"    lambda {v}, {a}: {value.format(*refs)},")
            filled = refs + [out, I["n"]]
            name = fresh(f"_partials_{case}")
            partials.append(name)
            functions.append(f"def {name}({v}, {g}, {a}, {out}, {d}):")
            if count is not None:
                functions.append(f"    {I['n']} = {count.format(*filled)}")
            for j in range(nargs):
                functions.append(f"    if {N['KEPT']}[{a}[{j}]]: {g}[{a}[{j}]] += {d} * "
                                 f"{partial_texts[j].format(*filled)}")
            functions += ["", ""]
        distinct_text = ",".join(map(repr, self.distinct))
        lines = [triple + header[0], *header[1:], triple, "",
                 "import array", "import bisect", "import itertools", "import math", "import sys", "", "",
                 f"class {DomainError}(ValueError):",
                 f"    {triple}A value or a derivative outside an operation's domain, or an overflow.{triple}",
                 "", "",
                 f"{isfinite} = math.isfinite",
                 "", "",
                 f"def {N['hex']}(text, size, signed):",
                 f"    {triple}Numbers as hexadecimal digits, `size` bytes each, big-endian (two's complement if signed).{triple}",
                 "    code = next(c for c in ('bhilq' if signed else 'BHILQ') if array.array(c).itemsize == size)",
                 "    numbers = array.array(code, bytes.fromhex(text))",
                 "    if sys.byteorder == 'little':",
                 "        numbers.byteswap()",
                 "    return tuple(numbers)",
                 "", "",
                 f"def {N['small']}(text):",
                 f"    {triple}Numbers of 0 to {_SMALL - 1} written as one character each, from '0'.{triple}",
                 "    return text.encode('ascii').translate(bytes((c - 48) % 256 for c in range(256)))",
                 "", "",
                 "# the operations as tables (text: a tuple of a million constants is slow to compile): each",
                 "# one's kind (a function of each pass), node and arguments",
                 f"{N['KIND']} = {ints(t.kind, True)}",
                 "# each operation's node and first argument, from the steps and the kinds' arity",
                 f"{N['FIRST']} = tuple(itertools.accumulate(map({tuple(self.arities(t))}.__getitem__, {N['KIND']}), "
                 "initial=0))",
                 f"{N['OPS']} = tuple(zip({N['KIND']}, itertools.accumulate({ints(t.step, True)}[1:], initial={t.node[0]}), "
                 f"map({ints(t.flat)}.__getitem__, map(slice, {N['FIRST']}, {N['FIRST']}[1:]))))",
                 f"{N['START']} = [0.0] * {size}  # the values: the constants', the others set by each call",
                 f"{N['DISTINCT']} = tuple(map(float, filter(None, {distinct_text!r}.split(','))))",
                 f"for {N['node']}, {N['which']} in zip(itertools.accumulate({ints(_steps(t.constants), True)}[1:], "
                 f"initial={(t.constants or [0])[0]}), {ints(self.which, True)}):",
                 f"    {N['START']}[{N['node']}] = {N['DISTINCT']}[{N['which']}]",
                 *[f"{N['KEPT']} = {ints(t.kept, True)}"][:backward],
                 "# the places: where each operation begins and its text (a slice of the file's, or one of the",
                 "# extras), the lines' starts; a message is made only where an operation fails",
                 f"{N['AT']} = {ints(_steps(P.at), True, True)}  # (steps from the operation before's)",
                 f"{N['BACK']} = {ints(P.back, True)}",
                 f"{N['LENGTH']} = {ints(P.length, True)}",
                 f"{N['FOLDED']} = {ints(P.folded)}",
                 f"{N['EXTRAS']} = {tuple(P.extras)!r}",
                 f"{N['LINES']} = {ints(P.lines)}",
                 f"{N['TEXT']} = {P.text!r}",
                 "", "",
                 f"def {N['place']}({k}):",
                 f"    at, back, length = {P.at[0]} + sum({N['AT']}[1:{k} + 1]), {N['BACK']}[{k}], {N['LENGTH']}[{k}]",
                 f"    text = {N['TEXT']}[at - back:at - back + length] if length else "
                 f"{N['EXTRAS']}[{N['FOLDED']}.index({k})]",
                 f"    line = bisect.bisect_right({N['LINES']}, at) - 1",
                 f"    return f'`{{text}}` (line {{line + 1}}, column {{at - {N['LINES']}[line] + 1}})'",
                 "", "",
                 f"def {I['fail_value']}({k}, reason):",
                 f"    return {DomainError}(f'{{{N['place']}({k})}}: undefined or overflows ({{reason}})')",
                 "", "",
                 f"def {I['check_values']}({v}):",
                 f"    {triple}After the forward pass, as the straight-line code: the first value not finite.{triple}",
                 f"    for {k}, ({f}, {i}, {a}) in enumerate({N['OPS']}):",
                 f"        if not {isfinite}({v}[{i}]):",
                 f"            raise {I['fail_value']}({k}, 'the result is not finite')",
                 "", "",
                 f"{N['VALUES']} = (",
                 *forward,
                 ")",
                 "", ""]
        if backward:
            lines += [
                f"def {N['user']}(j):",
                f"    {triple}The last operation the output depends on that takes j and keeps its adjoint.{triple}",
                f"    live = [False] * {size}",
                f"    live[{self.out}] = True",
                f"    for {k} in range({t.last}, -1, -1):",
                f"        {f}, {i}, {a} = {N['OPS']}[{k}]",
                f"        if live[{i}]:",
                f"            if {N['KEPT']}[{i}] and j in {a}:",
                f"                return {k}",
                f"            for x in {a}:",
                "                live[x] = True",
                "    return 0",
                "", "",
                f"def {I['check_gradient']}({g}):",
                f"    {triple}The adjoints, the last node's first: the first that is not finite names its user.{triple}",
                f"    for j in range({size} - 1, -1, -1):",
                f"        if {N['KEPT']}[j] and not {isfinite}({g}[j]):",
                f"            where = {N['place']}({N['user']}(j))",
                f"            if {g}[j] != {g}[j]:",
                f"                raise {DomainError}(f'the derivative of {{where}} is infinite or undefined')",
                f"            raise {DomainError}(f'the gradient overflows at {{where}}')",
                "", "",
                *functions,
                f"{N['PARTIALS']} = ({''.join(name + ', ' for name in partials)})",
                "", ""]
        body = [f"    {v} = {N['START']}.copy()",
                *[f"    {v}[{node}] = {self.variable[name]}" for node, name in zip(t.inputs, self.parameters)],
                f"    {k} = 0",
                "    try:",
                f"        for {k}, ({f}, {i}, {a}) in enumerate({N['OPS']}):",
                f"            {v}[{i}] = {N['VALUES']}[{f}]({v}, {a})",
                f"    except (ArithmeticError, ValueError) as {I['error']}:",
                f"        raise {I['fail_value']}({k}, {I['error']}) from None",
                f"    if not all(map({isfinite}, {v})):",
                f"        {I['check_values']}({v})"]
        if backward:
            gradient = ", ".join(f"{name!r}: " + (f"{g}[{node}]" if t.kept[node] else "0.0")
                                 for node, name in zip(t.inputs, self.parameters))
            body += [f"    {g} = [0.0] * {size}",
                     f"    {g}[{self.out}] = 1.0",
                     f"    {k} = {t.last}",
                     "    try:",
                     f"        for {k} in range({t.last}, -1, -1):",
                     f"            {f}, {i}, {a} = {N['OPS']}[{k}]",
                     f"            {d} = {g}[{i}]",
                     f"            if {d} and {N['KEPT']}[{i}]:",
                     f"                {N['PARTIALS']}[{f}]({v}, {g}, {a}, {v}[{i}], {d})",
                     f"    except (ArithmeticError, ValueError) as {I['error']}:",
                     f"        raise {DomainError}(f'the derivative of {{{N['place']}({k})}} is infinite or undefined "
                     f"({{{I['error']}}})') from None",
                     f"    if not all(map({isfinite}, {g})):",
                     f"        {I['check_gradient']}({g})",
                     f"    return {v}[{self.out}], {{{gradient}}}"]
        else:
            body.append(f"    return {v}[{self.out}]")
        return lines + self.signature_and_doc() + body + [""]  # (lines: see Generated.pieces)

    def signature_and_doc(self) -> list[str]:
        graph, I = self.graph, self.internal
        triple = '"' * 3
        params = []
        for name in self.parameters:
            default = graph.inputs[name]
            params.append(self.variable[name] if default is None else f"{self.variable[name]}={float(default)!r}")
        doc = {"reverse": f"Return (`{self.output_name}`, {{input: d{self.output_name}/d input}}).",
               "value": f"Return the value of `{self.output_name}`.",
               "forward": f"Return (`{self.output_name}`, d{self.output_name}/d{self.wrt})."}[self.mode]
        return [f"def {self.function}({', '.join(params)}):",
                "    " + triple + self.safe_comment(doc).replace(triple, "'''"),
                "",
                *["    " + line.replace(triple, "'''").replace("\\", "/") for line in self.inputs_doc()],
                "",
                f"    Raises {I['DomainError']} (a ValueError) where an operation is undefined or overflows.",
                "    " + triple]


# ---------------------------------------------------------------- C and JavaScript

class _CFamily(_Writer):
    """C and JavaScript: the same statements and braces; they differ in declarations, checks and
    how a failure is reported."""

    comment = "//"
    declare_value = declare_variable = ""
    internal_names = {k: k for k in ("n", "p", "x", "v", "g", "value", "gradient", "derivative",
                                     "error", "w", "DomainError", "valueError", "gradientError")}

    def quote(self, text: str) -> str:
        return _encode_string(self.safe_comment(text))

    def block_comment(self, text: str) -> str:
        return f" /* {text.replace('*/', '* /')} */" if text else ""

    def straight_lines(self, fast: "_Fast", total: str, stores: dict | None = None,
                       declare: str | None = None, early: tuple | None = None, inputs: list = (),
                       sums: bool = True) -> list[str] | tuple[list[str], bool]:
        """The straight-line statements, the tested values added to `total` as they come and the
        adjoints' leaves at the end; `stores` (name -> lines): what to write right after a name is
        defined (C's results, so that they need not stay in registers until the end). With
        `declare` (C's `double `), `total` is declared by its first term, not started at 0.0.
        With `early` (C's: a name, and a function of a total's name giving the line that tests it),
        the tested values computed before the first library call are summed in that name and tested
        right before the call, and `total` starts after it: no total is kept across the calls
        (`fast.values` sorted by their calls, so the ones that wait for none come first). `inputs`: the
        inputs to test, first. Without `sums`, the adjoints' leaves are not added: (the lines, whether
        `total` is declared)."""
        stores = stores or {}
        started = declare is None
        # (only where there are calls to cross, and no tested value comes between the first library
        # call and the last: else a total is kept across calls anyway, and the early test is one more
        # for nothing; across one call, decay's, it was 2% slower than the total kept)
        called = [k for k, (name, text) in enumerate(fast.values) if _call().search(text)]
        current = early[0] if early and len(called) > 1 and not any(
            name in fast.tested for name, _ in fast.values[called[0]:called[-1]]) else total

        def add(text):
            nonlocal started
            line = f"    {current} = {current} + {text};" if started else f"    {declare}{current} = {text};"
            started = True
            return line

        lines = list(stores.get("", ()))  # the results that are no statement's: first
        lines += [add(name) for name in inputs]
        for name, text in fast.values:
            if current != total and fast.calls[name]:  # the first library call
                if started:
                    lines.append(early[1](current))
                current, started = total, False
            lines.append(f"    {self.declare_value}{name} = {text};")
            if name in fast.tested:
                lines.append(add(name))
            lines += stores.get(name, ())
        for name, text in fast.counts + fast.adjoints:
            lines.append(f"    {self.declare_value}{name} = {text};")
            lines += stores.get(name, ())
        if not sums:
            return lines, started
        lines += [add(text) for text in fast.check_sums()]
        return lines if started else lines + [f"    {declare}{total} = 0.0;"]

    def statements(self):
        """(forward statements, blocks): the forward pass one line per operation, then the reverse
        (or tangent) pass as blocks, each a list of lines."""
        graph, ref, I = self.graph, self.ref, self.internal
        declare = "" if self.split else self.declare_value
        value_check, gradient_check = (template.replace("{valueError}", I["valueError"]).replace(
            "{gradientError}", I["gradientError"]) for template in (self.value_check, self.gradient_check))
        comments = self.comments()
        slot, quoted = self.slot, self.quoted
        ops_, args = graph.op, graph.args
        # each operation kind's statement as one format string: its arguments, its result, its place
        statement: dict = {}
        forward = []
        append = forward.append
        for i, op in enumerate(ops_):
            if op is None:
                continue
            a = args[i]
            key = (op.key, len(a))
            text = statement.get(key)
            if text is None:
                k = len(a)
                text = statement[key] = f"{declare}{{{k}}} = {_templates(self.lang, op.key, k)[0]}; " + (
                    value_check.replace("{target}", f"{{{k}}}").replace("{where}", f"{{{k + 1}}}"))
            append(text.format(*map(ref.__getitem__, a), ref[i], quoted[slot[i]]) + comments.get(i, ""))
        blocks = []
        self.uses_count = self.uses_partial = False
        if self.mode == "reverse":
            adjoint = self.adjoint
            p_name, n_name = I["p"], I["n"]
            # `{0} += {1} * {2}; check({0}, {2}, {3})`: target, source, partial, place
            edge = "        {0} += {1} * {2}; " + gradient_check.replace("{target}", "{0}").replace(
                "{partial}", "{2}").replace("{where}", "{3}")
            literal = _literal_pattern().fullmatch
            uses_count = uses_partial = False
            kinds: dict = {}
            for i in range(self.out, -1, -1):
                g = adjoint[i]
                if not g or ops_[i] is None:
                    continue
                a = args[i]
                targets = [(n, j, adjoint[j]) for n, j in enumerate(a) if adjoint[j]]
                if not targets:
                    continue
                key = (ops_[i].key, len(a))
                templates = kinds.get(key)
                if templates is None:
                    templates = kinds[key] = _templates(self.lang, *key)
                _, partials, count = templates
                names = list(map(ref.__getitem__, a))
                names.append(ref[i])
                names.append(n_name)
                lines = [f"if ({g} != 0.0) {{" + comments.get(i, "")]
                if count is not None:
                    uses_count = True
                    lines.append(f"        {n_name} = {count.format(*names)};")
                where = quoted[slot[i]]
                several = len(a) > 1
                for n, j, d in targets:
                    partial = partials[n].format(*names)
                    if literal(partial) is None:
                        uses_partial = True
                        lines.append(f"        {p_name} = {partial};")
                        partial = p_name
                    lines.append(edge.format(d, g, partial, f"{where[:-1]}, with respect to its argument "
                                             f"{n + 1}{where[-1]}" if several else where))
                lines.append("    }")
                blocks.append(["\n".join(lines)])  # one text, its lines indented for the "    " it gets
            self.uses_count, self.uses_partial = uses_count, uses_partial
        elif self.mode == "forward" and self.adjoint[self.out]:  # (else the output does not move: 0)
            tangent = self.adjoint
            start = graph.names[self.wrt]
            for i in range(start + 1, self.out + 1):
                if not tangent[i]:
                    continue
                edges, counted = self.edges(i, into=tangent)
                lines = [f"{'' if self.split else self.declare_variable}{tangent[i]} = 0.0;"
                         + self.block_comment(self.statement_comment(i))]
                for n, j, partial in edges:
                    lines.append(f"if ({tangent[j]} != 0.0) {{")
                    if counted:
                        self.uses_count = True
                        lines.append(f"    {I['n']} = {counted};")
                    self.uses_partial = True
                    lines.append(f"    {I['p']} = {partial};")
                    lines.append(f"    if ({I['p']} != 0.0) {tangent[i]} += {tangent[j]} * {I['p']};")
                    lines.append("}")
                blocks.append(lines)
            blocks.append([self.tangent_check.replace("{gradientError}", I["gradientError"]).format(
                target=tangent[self.out], where=self.quote(f"`{self.output_name}`"))])
        return forward, blocks

    def table_cases(self, t: "_Table", fail_gradient: str, names: dict, argument: str) -> tuple[list, list]:
        """The forward and the reverse loop's cases, one per operation kind: its value, and its
        partials added into the kept adjoints with the checks of the checked code. `argument`: the
        j-th argument's node, as a format of j."""
        v, g, p, n_, d = (names[k] for k in ("v", "g", "p", "n", "d"))
        forward, reverse = [], []
        for (key, nargs), k in t.kinds.items():
            value, partials, count = _templates(self.lang, key, nargs)
            nodes = [argument.format(j) for j in range(nargs)]
            refs = [f"{v}[{x}]" for x in nodes]
            forward.append(f"        case {k}: {names['r']} = {value.format(*refs)}; break;")
            filled = refs + [f"{v}[{names['i']}]", n_]
            reverse.append(f"        case {k}:")
            if count is not None:
                reverse.append(f"            {n_} = {count.format(*filled)};")
            for j in range(nargs):
                target = f"{g}[{nodes[j]}]"
                reverse.append(f"            if ({self.read['kept'].format(nodes[j])}) {{ {p} = {partials[j].format(*filled)}; "
                               f"{target} += {d} * {p}; if (!{self.finite}({target})) "
                               + fail_gradient.replace("{p}", p).replace("{argument}", str(j + 1 if nargs > 1 else 0))
                               + " }")
            reverse.append("            break;")
        return forward, reverse

    def table_passes(self, t: "_Table", tables: dict, names: dict, forward: list, reverse: list, arguments: str,
                     fail_value: str, adjoints: list) -> list[str]:
        """The loops of a large program (C and JavaScript): constants and inputs into the values,
        the forward pass, and in reverse mode the reverse pass (`adjoints`: its array's lines)."""
        k, a, r, i, d, v, g = (names[x] for x in ("k", "a", "r", "i", "d", "v", "g"))
        open_, close = ("/* ", " */") if self.lang == "c" else ("// ", "")
        c = names["c"]
        lines = [f"    for ({k} = 0, {c} = {(t.constants or [0])[0]}; {k} < {len(t.constants)}; {k}++) {{ "
                 f"{c} += {self.read['constant'].format(k)}; {v}[{c}] = {tables['value']}[{self.read['which'].format(k)}]; }}",
                 *[f"    {v}[{node}] = {self.variable[name]};" for node, name in zip(t.inputs, self.parameters)],
                 f"    {open_}forward pass: each value tested as it is computed{close}",
                 f"    for ({k} = 0; {k} < {len(t.node)}; {k}++) {{",
                 f"        {a} = {arguments};",
                 f"        switch ({self.read['kind'].format(k)}) {{",
                 *forward,
                 f"        default: {r} = {ops.printer(self.lang).nan_text};",
                 "        }",
                 f"        {v}[{tables['node']}[{k}]] = {r};",
                 f"        if (!{self.finite}({r})) {fail_value}",
                 "    }"]
        if self.mode != "reverse":
            return lines
        return lines + [f"    {open_}reverse pass: an adjoint of exactly 0 passes nothing on; each sum tested{close}",
                        *adjoints,
                        f"    {g}[{self.out}] = 1.0;",
                        f"    for ({k} = {t.last}; {k} >= 0; {k}--) {{",
                        f"        {i} = {tables['node']}[{k}];",
                        f"        {d} = {g}[{i}];",
                        f"        if (!{self.read['kept'].format(i)} || {d} == 0.0) continue;",
                        f"        {a} = {arguments};",
                        f"        switch ({self.read['kind'].format(k)}) {{",
                        *reverse,
                        "        }",
                        "    }"]

    @staticmethod
    def numbers(values, per_line: int = 500) -> str:
        """Numbers (or their texts) as the lines of an initializer, `per_line` a line."""
        values = list(values) or [0]
        if per_line == 1:
            return ",\n".join(map(str, values))
        if isinstance(values[0], str):
            return ",\n".join([", ".join(values[k:k + per_line]) for k in range(0, len(values), per_line)])
        if values[0].__class__ is int:  # (the tables' lists hold one type: ints, or bools)
            return _int_text(values, per_line, ",\n")
        # a list's text is its numbers' ("[1, 2]"): made in one call a line
        return ",\n".join([str(values[k:k + per_line])[1:-1] for k in range(0, len(values), per_line)])

    def initial_adjoints(self) -> list[str]:
        """Lines declaring the adjoints (tangents): 0, the output's (the input's) 1."""
        I = self.internal
        first = self.out if self.mode == "reverse" else self.graph.names[self.wrt]
        if self.split:
            return [f"for (int i = 0; i < {self.n_adjoints}; i++) {I['g']}[i] = 0.0;".replace(
                "int i", self.loop_index), f"{self.adjoint[first]} = 1.0;"]
        lines = [f"{self.declare_variable}{self.adjoint[first]} = 1.0;"]
        if self.mode == "reverse":
            rest = [f"{self.adjoint[j]} = 0.0" for j in range(self.out) if self.adjoint[j]]
            for k in range(0, len(rest), 8):
                lines.append(f"{self.declare_variable}{', '.join(rest[k:k + 8])};")
        return lines


class _C(_CFamily):
    lang = "c"
    finite = "isfinite"

    def __init__(self, *args):
        super().__init__(*args)
        self.reason = self.namer.fresh(f"{self.function}_reason")
        self.failed = self.namer.fresh(f"{self.function}_failed")
    comment = "//"
    declare_value = "const double "
    declare_variable = "double "
    loop_index = "long i"
    value_check = "DIFFCLI_VALUE({target}, {where});"
    gradient_check = "DIFFCLI_GRADIENT({target}, {partial}, {where});"
    tangent_check = "DIFFCLI_DERIVATIVE({target}, {where});"

    def quote(self, text: str) -> str:
        return super().quote(text).replace("?", "\\?")  # no trigraphs

    def quote_replaces(self, texts: list[str]) -> bool:
        return any("?" in text for text in texts)

    def signature(self, function: str | None = None) -> str:
        I = self.internal
        params = [f"double {self.variable[n]}" for n in self.parameters]
        params.append(f"double *{I['value']}")
        if self.mode == "reverse":
            params.append(f"double {I['gradient']}[{max(len(self.parameters), 1)}]")
        elif self.mode == "forward":
            params.append(f"double *{I['derivative']}")
        params.append(f"const char **{I['error']}")
        return f"int {function or self.function}({', '.join(params)})"

    def documentation(self) -> list[str]:
        out = self.output_name
        lines = ["/*", *[" * " + line for line in self.header_comment()], " *",
                 f" * {self.function}: returns 0 and sets *value (and the derivatives), or on a domain error",
                 " * returns 1 (a value is undefined or overflows), 2 (a derivative is infinite or undefined)",
                 " * or 3 (the gradient overflows), and if `error` is not NULL points *error at a static",
                 " * string naming the operation and its place in the .expr file, like",
                 " * \"`log(x - 1)` (line 3, column 5)\"; " + self.reason + "(code) says what went wrong there.",
                 " * After an error *value (and the derivatives) may hold partial results: use them on 0 only.",
                 " * Thread-safe: no global state. Inputs:",
                 *[" * " + line for line in self.inputs_doc()]]
        if self.mode == "reverse":
            lines.append(f" * gradient[k] = d{out}/d(input k), the inputs in the order of the arguments.")
        elif self.mode == "forward":
            lines.append(f" * *derivative = d{out}/d{self.wrt}.")
        if self.split:
            lines.append(" * (Large: values live in one allocated block; returns 4 if malloc fails.)")
        if self.tabled:
            lines.append(" * (Large: *error points at a buffer of the calling thread's own, which its next error rewrites.)")
        if self.reads_flags:
            lines += [" * Built by gcc with SSE2 doubles and an IEC 60559 C library (glibc), it reads (never writes) the",
                      " * floating-point exception flags to find errors: -DDIFFCLI_NO_FLAGS where they are not raised",
                      " * as IEC 60559 says (under valgrind)."]
        return [line.replace("*/", "* /") for line in lines] + [" */"]

    def header(self) -> str:
        guard = self.namer._mangled(f"{self.function}_h").upper()
        return "\n".join([*self.documentation(), f"#ifndef {guard}", f"#define {guard}", "",
                          f"{self.signature()};", f"const char *{self.reason}(int code);", "", "#endif", ""])

    reads_flags = False  # (its fast code's last test reads the exception flags: see FLAGS)

    def generate(self) -> Generated:
        I = self.internal
        e = I["error"]
        documentation = self.documentation()
        head = [*documentation, "#include <math.h>", "#include <stddef.h>"]
        if self.split:
            head.append("#include <stdlib.h>")
        if self.tabled:
            head += ["#include <stdio.h>", "#include <string.h>"]
        head += [
            "",
            f"static const char *const {self.reason}_texts[] = {{\"\", \"undefined or overflows\",",
            "    \"its derivative is infinite or undefined\", \"the gradient overflows\", \"out of memory\"};",
            "",
            f"const char *{self.reason}(int code)",
            "{",
            f"    return code >= 0 && code <= 4 ? {self.reason}_texts[code] : \"unknown error\";",
            "}",
            "",
            "/* the failure path, out of line: each check costs a test and a call that is never made */",
            f"static int {self.failed}(const char **error, int code, const char *where)",
            "{",
            "    if (error) *error = where;",
            "    return code;",
            "}",
            "",
            f"#define DIFFCLI_FAIL(code, where) return {self.failed}({e}, (code), (where))",
            "#define DIFFCLI_VALUE(x, where) if (!isfinite(x)) DIFFCLI_FAIL(1, where)",
            "#define DIFFCLI_GRADIENT(x, p, where) if (!isfinite(x)) DIFFCLI_FAIL(isfinite(p) ? 3 : 2, where)",
            "#define DIFFCLI_DERIVATIVE(x, where) if (!isfinite(x)) DIFFCLI_FAIL(2, where)",
            "",
        ]
        if self.split and self.mode != "forward":
            return Generated("c", self.function, self.table_source(head), self.header(), self.parameters)
        forward, blocks = self.statements()
        temporaries = [I["p"]] * self.uses_partial + [I["n"]] * self.uses_count  # none unused: -Wall
        temps = f"double {', '.join(temporaries)};" if temporaries else ""
        body: list[str] = []
        if not self.split:
            body += ["{", "    /* forward pass */", *["    " + line for line in forward]]
            if blocks:
                body += ["    /* " + ("reverse pass: d_x is d" + self.output_name + "/dx" if self.mode == "reverse"
                                       else "tangents: dt_x is dx/d" + str(self.wrt)) + " */",
                         *["    " + temps][:bool(temps)], *["    " + line for line in self.initial_adjoints()],
                         *["    " + line for block in blocks for line in block]]
            elif self.mode == "reverse" and self.adjoint[self.out]:
                body += ["    " + line for line in self.initial_adjoints()]  # (the output an input: no pass)
            if not self.op_nodes:  # (no operation: nothing to test, no error to name)
                body += [f"    (void){e}; (void){self.failed};"]
            body += self.results("    ") + ["    return 0;", "}"]
            fast = self.fast_plan()
            if fast is not None and fast.checks:
                self.reads_flags = True
                head[:len(documentation)] = self.documentation()
            if fast is None:
                text = "\n".join(head + [self.signature()] + body + self.undefines()) + "\n"
            else:
                checked = self.namer.fresh(f"{self.function}_checked")
                flags, undefines = [], self.undefines()
                if fast.checks:
                    flags, undefines = ["", *FLAGS], undefines[:-1] + [
                        f"#undef DIFFCLI_{m}" for m in ("FLAGS", "RAISED")] + [""]
                text = "\n".join(head + ["/* every step tested: where the fast code below meets a value or a derivative",
                                          " * that is not finite, this names the operation, as diffcli does */",
                                          "#if defined(__GNUC__)",
                                          "__attribute__((noinline, cold))  /* out of the fast path's way */",
                                          "#endif",
                                          "static " + self.signature(checked)] + body + flags
                                 + ["", self.signature()] + self.fast_body(fast, checked) + undefines) + "\n"
            return Generated("c", self.function, text, self.header(), self.parameters)
        # split: every input, value and adjoint in one allocated block, the passes in functions of SPLIT
        chunk_params = f"double *{I['x']}, double *{I['v']}, double *{I['g']}, const char **{e}"
        functions, calls = [], []
        pieces = [(f"forward_{k // SPLIT}", forward[k:k + SPLIT], "") for k in range(0, len(forward), SPLIT)]
        flat = [blocks[k:k + SPLIT // 2] for k in range(0, len(blocks), SPLIT // 2)]
        pieces += [(f"{self.mode}_{k}", [line for block in chunk for line in block], temps)
                   for k, chunk in enumerate(flat)]
        for suffix, lines, declared in pieces:
            fname = self.namer.fresh(f"{self.function}_{suffix}")
            functions += [f"static int {fname}({chunk_params})", "{"] + (
                ["    " + declared] if declared else []) + ["    " + line for line in lines] + [
                f"    (void){I['x']}; (void){I['v']}; (void){I['g']}; (void){e};", "    return 0;", "}", ""]
            calls.append(fname)
        n_in = len(self.parameters)
        code = self.namer.fresh("code")
        size = n_in + self.n_ops + (self.n_adjoints if blocks else 0) + 1
        body = ["{",
                f"    double *{I['w']} = malloc(sizeof(double) * {size});",
                f"    if (!{I['w']}) DIFFCLI_FAIL(4, \"malloc\");",
                f"    double *{I['x']} = {I['w']}, *{I['v']} = {I['w']} + {n_in}, *{I['g']} = {I['v']} + {self.n_ops};",
                f"    int {code} = 0;",
                *[f"    {I['x']}[{k}] = {self.variable[n]};" for k, n in enumerate(self.parameters)]]
        for k, fname in enumerate(calls):
            if k == len(pieces) - len(flat):
                body += ["    " + line for line in self.initial_adjoints()]
            body.append(f"    if (({code} = {fname}({I['x']}, {I['v']}, {I['g']}, {e})) != 0) goto done;")
        body += self.results("    ") + ["done:", f"    free({I['w']});", f"    return {code};", "}"]
        text = "\n".join(head + functions + [self.signature()] + body + self.undefines()) + "\n"
        return Generated("c", self.function, text, self.header(), self.parameters)

    def table_source(self, head: list[str]) -> list[str]:
        """A large program's file: its operations as tables, one loop per pass (see _Table)."""
        I, t = self.internal, self.table()
        fresh = self.namer.fresh
        names = {k: fresh(k) for k in ("k", "a", "r", "i", "d", "c", "failed", "argument", "code")}
        names.update(v=I["v"], g=I["g"], p=I["p"], n=I["n"])
        tables = {k: fresh(f"{self.function}_{k}") for k in ("kind", "node", "first", "args", "hex", "constant",
                                                            "value", "which", "kept", "place", "step", "arity")}
        self.hex_digits = fresh(f"{self.function}_hex_digits")
        names.update(kept=tables["kept"])
        k, a, r, i, d, failed, argument, code = (names[x] for x in ("k", "a", "r", "i", "d", "failed", "argument",
                                                                   "code"))

        size = len(self.graph)
        v, g, p, n_ = I["v"], I["g"], I["p"], I["n"]
        kind_type = "unsigned char" if len(t.kinds) <= 255 else "unsigned short"
        flat = t.flat or [0]
        hexed = _hex_table(flat)
        digits = 2 * hexed[0]
        backward = self.mode == "reverse"
        data = [
            f"/* the operations as tables: their kinds (cases below), nodes and arguments */",
            self.declare_table(tables["kind"], t.kind, kind_type, "kind"),
            self.declare_table(tables["step"], t.step, "long", "step"),
            f"static const unsigned char {tables['arity']}[] = {{{self.numbers(self.arities(t))}}};",
            "/* number k of a table written as hexadecimal digits, `digits` each */",
            f"static long long {self.hex_digits}(const char (*rows)[{_C_ROW + 1}], long k, int digits)",
            "{",
            "    long long x = 0;",
            "    long i = k * digits, end = i + digits;",
            "    char c;",
            f"    for (; i < end; i++) {{ c = rows[i >> {_C_ROW_BITS}][i & {_C_ROW - 1}]; "
            "x = 16 * x + (c <= '9' ? c - '0' : c - 'a' + 10); }",
            "    return x;",
            "}",
            f"/* the arguments as hexadecimal digits, {digits} each (read into an array by each call) */",
            _c_char_rows(tables["hex"], hexed[1].hex()),
            self.declare_table(tables["constant"], _steps(t.constants), "long", "constant"),
            f"static const double {tables['value']}[] = {{\n{self.numbers(self.distinct_texts)}}};",
            self.declare_table(tables["which"], self.which, "long", "which"),
            *[self.declare_table(tables["kept"], t.kept, "unsigned char", "kept")][:backward],
            "",
            *self.place_source(tables["place"]),
        ]
        self.read.setdefault("kept", tables["kept"] + "[{}]")  # (value only: no reverse pass is written)
        fail = f"{{ {code} = isfinite({{p}}) ? 3 : 2; {failed} = {k}; {argument} = {{argument}}; goto done; }}"
        forward, reverse = self.table_cases(t, fail, names, names["a"] + "[{}]")
        body = ["{",
                f"    double *{v} = malloc(sizeof(double) * {2 * size + 1} + sizeof(long) * "
                f"{2 * len(t.node) + 1 + len(flat)}), {r}"
                + (f", *{g}, {d}, {p}" if backward else "")
                + (f", {n_}" if self.mode == "reverse" and any(
                    _templates(self.lang, *key)[2] is not None for key in t.kinds) else "") + ";",
                f"    const long *{a};",
                f"    long {k}, {names['c']}, {failed} = 0, *{tables['node']}, *{tables['first']}, *{tables['args']}"
                + (f", {i}" if self.mode == "reverse" else "") + ";",
                f"    int {code} = 0, {argument} = 0;",
                f"    if (!{v}) DIFFCLI_FAIL(4, \"malloc\");",
                f"    /* each operation's node and first argument, from the steps and the kinds' arity */",
                f"    {tables['node']} = (long *)({v} + {2 * size + 1});",
                f"    {tables['first']} = {tables['node']} + {len(t.node)};",
                f"    {tables['node']}[0] = {t.node[0]};",
                f"    for ({k} = 1; {k} < {len(t.node)}; {k}++) {tables['node']}[{k}] = {tables['node']}[{k} - 1] + "
                f"{self.read['step'].format(k)};",
                f"    {tables['first']}[0] = 0;",
                f"    for ({k} = 0; {k} < {len(t.node)}; {k}++) {tables['first']}[{k} + 1] = {tables['first']}[{k}] + "
                f"{tables['arity']}[{self.read['kind'].format(k)}];",
                f"    /* the arguments, from their hexadecimal digits ({digits} each) */",
                f"    {tables['args']} = {tables['first']} + {len(t.node) + 1};",
                f"    for ({k} = 0; {k} < {len(flat)}; {k}++) {tables['args']}[{k}] = "
                f"(long){self.hex_digits}({tables['hex']}, {k}, {digits});",
                *[f"    {g} = {v} + {size};"][:backward],
                *self.table_passes(t, tables, names, forward, reverse, f"{tables['args']} + {tables['first']}[{k}]",
                                   f"{{ {code} = 1; {failed} = {k}; goto done; }}",
                                   [f"    for ({k} = 0; {k} < {size}; {k}++) {g}[{k}] = 0.0;"])]
        body.append(f"    *{I['value']} = {v}[{self.out}];")
        if self.mode == "reverse":
            body += [f"    {I['gradient']}[{n}] = " + (f"{g}[{node}];" if t.kept[node] else "0.0;")
                     + self.block_comment(f"d{self.output_name}/d{name}")
                     for n, (node, name) in enumerate(zip(t.inputs, self.parameters))]
        body += ["done:", f"    free({v});",
                 f"    if ({code} && {I['error']}) *{I['error']} = {tables['place']}({failed}, {argument});",
                 f"    (void){argument};", f"    return {code};", "}"]
        return head + data + [self.signature()] + body + self.undefines() + [""]  # (lines: see Generated.pieces)

    def place_source(self, place: str) -> list[str]:
        """The places' tables and `place(k, argument)`, which writes operation k's message (and
        its argument's, if not 0) into a buffer of the thread's own and returns it."""
        P = self.places
        message = self.namer.fresh(f"{place}_message")
        tables = {k: self.namer.fresh(f"{place}_{k}") for k in ("at", "back", "length", "folded", "lines", "text",
                                                               "extras")}
        at, back, length, folded, lines, text_, extras = tables.values()
        rows = len(P.text) > _C_ROW
        quoted_extras = ",\n".join(self.quote_all(P.extras)) or '""'
        declared = [self.declare_table(back, P.back, "unsigned char", "back"),
                    self.declare_table(length, P.length, "unsigned char", "length")]
        return [
            "/* the places: where each operation begins and its text (a slice of the file's, or for the",
            " * operations `folded` one of the extras), the lines' starts; a message is written only where",
            " * an operation fails */",
            self.hex_rows(at, _steps(P.at), "at", signed=True),
            *declared,
            self.hex_rows(folded, P.folded, "folded"),
            self.hex_rows(lines, P.lines, "lines"),
            f"static const char *const {extras}[] = {{\n{quoted_extras}}};",
            _c_rows(text_, P.text, _lines_within(P.lines, len(P.text), _LONG_LINE)) if rows
            else f"static const char {text_}[] =\n" + _c_literal(P.text) + ";",
            "#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L",
            f"static _Thread_local char {message}[512];",
            "#elif defined(__GNUC__)",
            f"static __thread char {message}[512];",
            "#else",
            f"static char {message}[512];  /* (no thread-local storage: one message for all threads) */",
            "#endif",
            "",
            f"static const char *{place}(long k, int argument)",
            "{",
            f"    long at = {P.at[0]}, low = 0, high = {len(P.lines)}, middle, e;",
            f"    for (e = 1; e <= k; e++) at += {self.read['at'].format('e')};  /* (the table's steps) */",
            "    e = 0;",
            *([f"    const char *text = {text_} + at - {self.read['back'].format('k')};",
               f"    int length = {self.read['length'].format('k')}, used;"] if not rows else [
               f"    char slice[{EXCERPT_WIDTH + 1}];  /* the text's rows are short literals: the slice copied out */",
               "    const char *text = slice;",
               f"    int length = {self.read['length'].format('k')}, used, i;",
               f"    for (i = 0; i < length; i++) slice[i] = {text_}[(at - {self.read['back'].format('k')} + i) >> "
               f"{_C_ROW_BITS}][(at - {self.read['back'].format('k')} + i) & {_C_ROW - 1}];"]),
            "    if (!length) {  /* one of the extras */",
            f"        while ({self.read['folded'].format('e')} != k) e++;",
            f"        text = {extras}[e];",
            "        length = (int)strlen(text);",
            "    }",
            "    while (high - low > 1) {",
            "        middle = low + (high - low) / 2;",
            f"        if ({self.read['lines'].format('middle')} <= at) low = middle; else high = middle;",
            "    }",
            f"    used = snprintf({message}, sizeof {message}, \"`%.*s` (line %ld, column %ld)\", length, text, low + 1,",
            f"                    at - {self.read['lines'].format('low')} + 1);",
            f"    if (argument && used > 0 && (size_t)used < sizeof {message})",
            f"        snprintf({message} + used, sizeof {message} - used, \", with respect to its argument %d\", argument);",
            f"    return {message};",
            "}",
            "",
        ]

    def hex_rows(self, name: str, values: list, key: str, signed: bool = False) -> str:
        """A table read where an operation fails, as hexadecimal digits (see _hex_table: a `signed`
        one's numbers read back from their two's complement); how its element {} is read goes
        into self.read[key]."""
        hexed = _hex_table(values or [0], signed)
        if hexed is None:  # (beyond 32 bits, signed: decimal)
            return self.declare_table(name, values, "long long", key, small=False)
        size, data = hexed
        read = f"{self.hex_digits}({name}, {{}}, {2 * size})"
        half = f"0x{1 << (8 * size - 1):x}LL"
        self.read[key] = f"(long)(({read} ^ {half}) - {half})" if signed else f"(long){read}"
        return _c_char_rows(name, data.hex())

    def declare_table(self, name: str, values: list, c_type: str, key: str, small: bool = True) -> str:
        """A static table, small numbers as the characters of a string (see _small_text; not if not
        `small`: the table is read as an array), others as hexadecimal literals of the narrowest
        unsigned type (see _hex_table), read as a long; how its element {} is read goes into
        self.read[key]."""
        small = _small_text(values) if small else None
        if small is None:
            hexed = _hex_table(values or [0])
            if hexed is None:
                self.read[key] = f"{name}[{{}}]"
                return f"static const {c_type} {name}[] = {{\n{self.numbers(values)}}};"
            size, data = hexed
            self.read[key] = f"((long){name}[{{}}])"
            return f"static const {_C_UNSIGNED[size]} {name}[] = {{\n{_hex_literals(size, data)}}};"
        if len(small) <= _C_ROW:
            self.read[key] = f"({name}[{{}}] - '0')"
            return f"static const char {name}[] =\n" + _c_literal(small) + ";"
        self.read[key] = f"({name}[({{0}}) >> {_C_ROW_BITS}][({{0}}) & {_C_ROW - 1}] - '0')"
        return _c_char_rows(name, small)

    def fast_body(self, fast: "_Fast", checked: str) -> list[str]:
        """The function's body: the straight-line code, one test of its sum, the checked version
        called where that fails."""
        I = self.internal
        total = self.namer.fresh("finite")
        # each result written as soon as it is known (kept in registers to the end, they would be
        # spilled around every libm call): the checked version, when it runs, writes them again
        defined = {name for name, _ in fast.values + fast.counts + fast.adjoints}
        stores: dict = {}
        results = [(f"*{I['value']}", fast.value)] + ([(f"{I['gradient']}[{k}]", fast.gradient[name])
                                                      for k, name in enumerate(self.parameters)]
                                                     if self.mode == "reverse" else [])
        for target, text in results:
            stores.setdefault(text if text in defined else "", []).append(f"    {target} = {text};")
        # the values that feed the library calls first, and the calls together: the tested ones
        # among them are summed before the first call, not in a total kept across every call
        fast = fast.replace(values=sorted(fast.values, key=lambda value: fast.calls[value[0]]))
        arguments = [self.variable[n] for n in self.parameters] + [I["value"]] + (
            [I["gradient"]] if self.mode == "reverse" else []) + [I["error"]]
        # not a tail call (a volatile result): one would make the compiler copy every argument
        # passed on the stack into its own frame on entry, to hand them on
        code = self.namer.fresh("code")

        def test(name):
            return (f"    if (!isfinite({name})) {{ volatile int {code} = {checked}({', '.join(arguments)}); "
                    f"return {code}; }}")

        # the values before the first library call tested there: their total is not kept (spilled
        # and reloaded) across the calls
        early = (self.namer.fresh("finite"), test)
        lines = ["{", "    /* straight-line: no test on the way (see the checked version above) */"]
        if not fast.checks:
            lines += [*self.straight_lines(fast, total, stores, declare="double ", early=early), test(total)]
            return lines + ["    return 0;", "}"]
        # the derivatives tested by the exception flags where the compiler and library allow (see
        # FLAGS): added up only where a flag is raised (by this call, or before it: then as without them)
        straight, started = self.straight_lines(fast, total, stores, declare="double ", early=early,
                                                inputs=fast.inputs, sums=False)
        added = [f"    {total} = {total} + {text};" for text in fast.check_sums()]
        lines += [*straight, *[f"    double {total} = 0.0;"][started:], "#if DIFFCLI_FLAGS",
                  "    if (DIFFCLI_RAISED()) {", *["    " + line for line in added], "    }", "#else", *added,
                  "#endif", test(total)]
        return lines + ["    return 0;", "}"]

    def results(self, indent: str) -> list[str]:
        I = self.internal
        lines = [f"{indent}*{I['value']} = {self.ref[self.out]};"]
        if self.mode == "reverse":
            for k, name in enumerate(self.parameters):
                lines.append(f"{indent}{I['gradient']}[{k}] = {self.adjoint[self.graph.names[name]] or '0.0'};"
                             + self.block_comment(f"d{self.output_name}/d{name}"))
        elif self.mode == "forward":
            lines.append(f"{indent}*{I['derivative']} = {self.adjoint[self.out] or '0.0'};")
        return lines

    def undefines(self) -> list[str]:
        return ["", *[f"#undef DIFFCLI_{m}" for m in ("FAIL", "VALUE", "GRADIENT", "DERIVATIVE")], ""]
class _JavaScript(_CFamily):
    lang = "javascript"
    finite = "Number.isFinite"
    declare_value = "const "
    declare_variable = "let "
    loop_index = "let i"
    value_check = "if (!Number.isFinite({target})) throw {valueError}({where});"
    gradient_check = "if (!Number.isFinite({target})) throw {gradientError}({partial}, {where});"
    tangent_check = "if (!Number.isFinite({target})) throw {gradientError}(NaN, {where});"

    def generate(self) -> Generated:
        I = self.internal
        out = self.output_name
        head = ["// " + line for line in self.header_comment()] + [
            "",
            "/** A value or a derivative outside an operation's domain, or an overflow. */",
            f"export class {I['DomainError']} extends Error {{}}",
            "",
            f"function {I['valueError']}(where) {{",
            f"    return new {I['DomainError']}(`${{where}}: undefined or overflows`);",
            "}",
            "",
            f"function {I['gradientError']}(partial, where) {{",
            "    return new " + I["DomainError"] + "(Number.isFinite(partial) ? `the gradient overflows at ${where}`",
            "        : `the derivative of ${where} is infinite or undefined`);",
            "}",
            "",
        ]
        returns = {"reverse": f"{{value, gradient: {{input: d{out}/d input}}}}", "value": f"the value of `{out}`",
                   "forward": f"{{value, derivative: d{out}/d{self.wrt}}}"}[self.mode]
        doc = ["/**", f" * Returns {returns}; throws {I['DomainError']} where an operation is undefined or overflows.",
               *[" * " + line for line in self.inputs_doc()], " */"]
        doc = [line.replace("*/", "* /") if k != len(doc) - 1 else line for k, line in enumerate(doc)]
        params = ", ".join(self.variable[n] if self.graph.inputs[n] is None
                           else f"{self.variable[n]} = {float(self.graph.inputs[n])!r}" for n in self.parameters)
        if self.split and self.mode != "forward":
            return Generated("javascript", self.function, self.table_source(head, doc, params), None,
                             self.parameters)
        forward, blocks = self.statements()
        temps = f"let {I['p']}, {I['n']};" if blocks else ""
        if not self.split:
            body = ["    // forward pass", *["    " + line for line in forward]]
            if blocks:
                body += ["    " + temps, *["    " + line for line in self.initial_adjoints()],
                         *["    " + line for block in blocks for line in block]]
            body += ["    " + self.result()]
            fast = self.fast_plan()
            if fast is None:
                text = "\n".join(head + doc + [f"export function {self.function}({params}) {{"] + body + ["}", ""])
            else:
                checked = self.namer.fresh(f"{self.function}_checked")
                text = "\n".join(head + ["// every step tested: where the fast code below meets a value or a derivative",
                                          "// that is not finite, this names the operation, as diffcli does",
                                          f"function {checked}({params}) {{"] + body + ["}", ""]
                                 + doc + [f"export function {self.function}({params}) {{"]
                                 + self.fast_body(fast, checked) + ["}", ""])
            return Generated("javascript", self.function, text, None, self.parameters)

        functions, calls = [], []
        flat = [blocks[k:k + SPLIT // 2] for k in range(0, len(blocks), SPLIT // 2)]
        pieces = [(f"forward_{k // SPLIT}", forward[k:k + SPLIT], "") for k in range(0, len(forward), SPLIT)]
        pieces += [(f"{self.mode}_{k}", [line for block in chunk for line in block], temps)
                   for k, chunk in enumerate(flat)]
        for suffix, lines, declared in pieces:
            fname = self.namer.fresh(f"{self.function}_{suffix}")
            functions += [f"function {fname}({I['x']}, {I['v']}, {I['g']}) {{"] + (
                ["    " + declared] if declared else []) + ["    " + line for line in lines] + ["}", ""]
            calls.append(fname)
        n_in = len(self.parameters)
        body = [f"    const {I['x']} = new Float64Array([{', '.join(self.variable[n] for n in self.parameters)}]);",
                f"    const {I['v']} = new Float64Array({self.n_ops});",
                f"    const {I['g']} = new Float64Array({self.n_adjoints if blocks else 0});"]
        del n_in
        for k, fname in enumerate(calls):
            if k == len(pieces) - len(flat):
                body += ["    " + line for line in self.initial_adjoints()[1:]]
            body.append(f"    {fname}({I['x']}, {I['v']}, {I['g']});")
        body.append("    " + self.result())
        text = "\n".join(head + functions + doc + [f"export function {self.function}({params}) {{"] + body + ["}", ""])
        return Generated("javascript", self.function, text, None, self.parameters)

    def table_source(self, head: list[str], doc: list[str], params: str) -> list[str]:
        """A large program's module: its operations as tables, one loop per pass (see _Table)."""
        I, t = self.internal, self.table()
        fresh = self.namer.fresh
        names = {k: fresh(k) for k in ("k", "a", "r", "i", "d", "c")}
        names.update(v=I["v"], g=I["g"], p=I["p"], n=I["n"])
        tables = {k: fresh(f"{self.function}_{k}") for k in ("kind", "node", "first", "args", "constant", "value",
                                                            "which", "kept", "place", "step", "arity")}
        names.update(kept=tables["kept"])
        size = len(self.graph)
        k, a, r, i, d = (names[x] for x in ("k", "a", "r", "i", "d"))
        v, g, p, n_ = I["v"], I["g"], I["p"], I["n"]
        array = "Uint8Array" if len(t.kinds) <= 255 else "Uint16Array"
        data = [
            "// the operations as tables: their kinds (cases below), nodes and arguments",
            self.declare_table(tables["kind"], t.kind, array, "kind"),
            self.declare_table(tables["step"], t.step, "Int32Array", "step"),
            f"const {tables['arity']} = [{self.numbers(self.arities(t))}];",
            "// each operation's node and first argument, from the steps and the kinds' arity",
            f"const {tables['node']} = new Int32Array({len(t.node)}), {tables['first']} = new Int32Array({len(t.node) + 1});",
            f"{tables['node']}[0] = {t.node[0]};",
            f"for (let k = 1; k < {len(t.node)}; k++) {tables['node']}[k] = {tables['node']}[k - 1] + {tables['step']}[k];",
            f"for (let k = 0; k < {len(t.node)}; k++) {tables['first']}[k + 1] = {tables['first']}[k] + "
            f"{tables['arity']}[{tables['kind']}[k]];",
            *self.hex_table(tables["args"], t.flat or [0]),
            self.declare_table(tables["constant"], _steps(t.constants), "Int32Array", "constant"),
            f"const {tables['value']} = new Float64Array([\n{self.numbers(self.distinct_texts)}]);",
            self.declare_table(tables["which"], self.which, "Int32Array", "which"),
            self.declare_table(tables["kept"], t.kept, "Uint8Array", "kept"),
            "",
            *self.place_source(tables["place"]),
        ]
        fail = f"throw {I['gradientError']}({{p}}, {tables['place']}({names['k']}, {{argument}}));"
        forward, reverse = self.table_cases(t, fail, names, f"{tables['args']}[{names['a']} + {{}}]")
        body = [f"    const {v} = new Float64Array({size});",
                f"    let {k}, {a}, {r}, {names['c']};",
                *self.table_passes(t, tables, names, forward, reverse, f"{tables['first']}[{k}]",
                                   f"throw {I['valueError']}({tables['place']}({k}, 0));",
                                   [f"    const {g} = new Float64Array({size});", f"    let {i}, {d}, {p}, {n_};"])]
        if self.mode == "reverse":
            gradient = {name: (f"{g}[{node}]" if t.kept[node] else "0.0")
                        for node, name in zip(t.inputs, self.parameters)}
            body.append("    " + self.result(f"{v}[{self.out}]", gradient))
        else:
            body.append("    " + self.result(f"{v}[{self.out}]"))
        return head + data + doc + [f"export function {self.function}({params}) {{", *body, "}", ""]  # (lines)

    def place_source(self, place: str) -> list[str]:
        """The places' tables and `place(k, argument)`, operation k's message (and its argument's,
        if not 0)."""
        P = self.places
        tables = {k: self.namer.fresh(f"{place}_{k}") for k in ("at", "back", "length", "folded", "lines", "text",
                                                               "extras")}
        at, back, length, folded, lines, text_, extras = tables.values()
        # a template literal keeps the line breaks as they are
        text = P.text.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
        return [
            "// the places: where each operation begins and its text (a slice of the file's, or for the",
            "// operations `folded` one of the extras), the lines' starts; a message is made only where an",
            "// operation fails",
            *self.hex_table(at, _steps(P.at), signed=True),
            self.declare_table(back, P.back, "Uint8Array", "back"),
            self.declare_table(length, P.length, "Uint8Array", "length"),
            f"const {folded} = [\n{self.numbers(P.folded)}];",
            *self.hex_table(lines, P.lines),
            f"const {extras} = [\n{','.join(self.quote_all(P.extras))}];",
            f"const {text_} = `" + text + "`;",
            "",
            f"function {place}(k, argument) {{",
            f"    const length = {length}[k];",
            f"    let at = {P.at[0]};",
            f"    for (let e = 1; e <= k; e++) at += {at}[e];  // (the table's steps)",
            f"    let low = 0, high = {lines}.length;",
            "    while (high - low > 1) {",
            "        const middle = (low + high) >> 1;",
            f"        if ({lines}[middle] <= at) low = middle; else high = middle;",
            "    }",
            f"    const text = length ? {text_}.slice(at - {back}[k], at - {back}[k] + length) : {extras}[{folded}.indexOf(k)];",
            f"    return `\\`${{text}}\\` (line ${{low + 1}}, column ${{at - {lines}[low] + 1}})`",
            "        + (argument ? `, with respect to its argument ${argument}` : \"\");",
            "}",
            "",
        ]

    def declare_table(self, name: str, values: list, array: str, key: str, signed: bool = False,
                      small: bool = True) -> str:
        """A typed array, small numbers read from the characters of a string (see _small_text; not
        if not `small`), others as hexadecimal literals into the narrowest typed array (see
        _hex_table: a `signed` one's own type reads their two's complement back); how its element
        {} is read goes into self.read[key]."""
        self.read[key] = f"{name}[{{}}]"
        small = _small_text(values) if small else None
        if small is None:
            hexed = _hex_table(values or [0], signed)
            if hexed is None or hexed[0] == 8:  # (no typed array of 64-bit numbers: decimal)
                return f"const {name} = new {array}([\n{self.numbers(values)}]);"
            array = ("Int" if signed else "Uint") + f"{8 * hexed[0]}Array"
            return f"const {name} = new {array}([\n{_hex_literals(*hexed)}]);"
        chunks = [small[k:k + 1000] for k in range(0, len(small), 1000)] or [""]
        return f"const {name} = {array}.from(\"" + '" +\n"'.join(chunks) + '", (c) => c.charCodeAt(0) - 48);'

    @staticmethod
    def hex_table(name: str, values: list, signed: bool = False) -> list[str]:
        """A typed array of numbers read from their hexadecimal digits (see _hex_table), once, as the
        module loads (a signed one's own type reads their two's complement back; a Float64Array
        holds unsigned ones above 32 bits)."""
        hexed = _hex_table(values, signed)
        if hexed is None:  # (beyond 32 bits, signed: decimal)
            return [f"const {name} = new Float64Array([\n{_CFamily.numbers(values)}]);"]
        size, data = hexed
        digits, text = 2 * size, data.hex()
        array = f"{'Int' if signed else 'Uint'}{8 * size}Array" if size < 8 else "Float64Array"
        chunks = [text[k:k + 1000] for k in range(0, len(text), 1000)]
        return [f"const {name} = new {array}({len(values)});  // (from {digits} hexadecimal digits each)",
                "{",
                '    const digits = "' + '" +\n"'.join(chunks) + '";',
                f"    for (let k = 0; k < {len(values)}; k++) "
                f"{name}[k] = parseInt(digits.slice({digits} * k, {digits} * k + {digits}), 16);",
                "}"]

    def fast_body(self, fast: "_Fast", checked: str) -> list[str]:
        """The straight-line code, one test of its sum, the checked version called where that fails."""
        total = self.namer.fresh("finite")
        lines = ["    // straight-line: no test on the way (see the checked version above)", f"    let {total} = 0.0;",
                 *self.straight_lines(fast, total)]
        arguments = ", ".join(self.variable[n] for n in self.parameters)
        lines.append(f"    if (!Number.isFinite({total})) return {checked}({arguments});")
        return lines + ["    " + self.result(fast.value, fast.gradient)]

    def result(self, value: str | None = None, gradient: dict | None = None) -> str:
        """The return statement; `value` and `gradient` (input -> text) are the fast path's."""
        value = value or self.ref[self.out]
        if self.mode == "value":
            return f"return {value};"
        if self.mode == "forward":
            return f"return {{value: {value}, derivative: {self.adjoint[self.out] or '0.0'}}};"
        if gradient is None:
            gradient = {n: self.adjoint[self.graph.names[n]] or "0.0" for n in self.parameters}
        listed = ", ".join(f"{_object_key(n)}: {gradient[n]}" for n in self.parameters)
        return f"return {{value: {value}, gradient: {{{listed}}}}};"

    def inputs_doc(self) -> list[str]:
        return super().inputs_doc()


# json.dumps(text, ensure_ascii=False) without its encoder object per call (the same function inside)
_encode_string = json.encoder.encode_basestring


def _json_string(text: str) -> str:
    return _encode_string(text)


def _object_key(name: str) -> str:
    """A key of a JavaScript object literal: `"__proto__": v` would set the prototype, `["__proto__"]: v`
    defines the property."""
    return f"[{_json_string(name)}]" if name == "__proto__" else _json_string(name)


def header_path(source_path: str) -> str:
    """Where `-o SOURCE_PATH`'s C header goes: SOURCE_PATH with `.h` for `.c`. Only a `.c` path that is
    a regular file (or none yet): `-o model.h` would overwrite itself with the header, `-o /dev/null`
    would create `/dev/null.h`."""
    root, extension = os.path.splitext(source_path)
    try:
        regular = stat.S_ISREG(os.stat(source_path).st_mode)
    except FileNotFoundError:
        regular = True
    except OSError:
        regular = False  # cannot look: the write reports why
    if extension != ".c" or not regular:
        raise DiffcliError("input", f"-o {source_path}: C's source needs a path ending in .c (its header "
                           "goes beside it, with .h)" + ("" if regular else ", to a regular file"),
                           help="write `-o model.c` (also writes model.h), or `-o -` for the source alone "
                                "on standard output")
    return root + ".h"
