"""Array programs -> source code: the program and its gradient as loops over fixed-size arrays in C
and JavaScript, and as NumPy in Python (scalar programs: renderers/codegen.py, unchanged).

The lowered graph (language/arrays.py: every node's shape known, broadcasts explicit) is written
node by node. In C and JavaScript every array is a flat row-major block (a local `double t5[32]`,
a `Float64Array`); a broadcast, a transpose, an index or slice and `b = a` are *views*: no storage,
their elements read from their source's with the indexes mapped (so `X @ transpose(W1) + b1` reads
W1 and b1 in place), and their adjoints added straight into their source's (a broadcast's `+=` is
the sum over the stretched axes). Each other node is one loop nest: elementwise operations print
the op table's rule (ops.printer, the same templates as scalar codegen) over the elements; the
structural ones (matmul, the reductions, softmax, dot, outer, norm, stack) are written here as
loops. The reverse pass runs the nodes in reverse order, each adding its adjoint times its
partials into its arguments' adjoints (all start at 0: gradients go into caller-provided arrays).

C has two versions of the function: a fast one that only ORs together whether each value is finite
(and tests the gradient at the end), and, called where that fails, a checked one that tests every
element as the engine does and names the operation, its place and the element. JavaScript and
Python are checked throughout. Python is NumPy, statement for statement the array engine's
operations (the same NumPy calls on the same arrays), with its checks.

Bounded: a program whose arrays (values and adjoints) hold more than MAX_ELEMENTS numbers, or whose
literal numbers written into the file (constants and defaults) exceed it, is refused (C keeps its
arrays on the stack).
"""

from __future__ import annotations

import json
import math

from .. import ops
from ..errors import DiffcliError
from ..formatting import EXCERPT_WIDTH, operator_span
from ..interpreters.engine import needs_gradient
from ..language.arrays import operand_label
from ..ops import ArrayOp, shape_text
from ..program import Program
from . import codegen
from .codegen import Generated, _Namer, _head_excerpt, _object_key, _templates

MAX_ELEMENTS = 200_000  # numbers in the arrays of one call (C: on the stack, 8 bytes each, twice)
VIEWS = frozenset({"broadcast", "transpose", "index", "id", "pos"})


def generate(program: Program, lang: str, of: str | None = None, name: str | None = None, *,
             value_only: bool = False, wrt: str | None = None, filename: str | None = None) -> Generated:
    """codegen.generate for every program: an array program here, a scalar one there (unchanged)."""
    if not (program.base.arrays or program.has_arrays):
        return codegen.generate(program, lang, of, name, value_only=value_only, wrt=wrt, filename=filename)
    if lang not in codegen.LANGUAGES:
        raise DiffcliError("input", f"--lang {lang}: not one of " + ", ".join(codegen.LANGUAGES))
    if wrt is not None:
        raise DiffcliError("input", "--forward: array programs are generated in reverse mode (the whole gradient)",
                           help="leave out --forward --wrt, or use --value-only for the value alone")
    if name is not None and not (name.isascii() and name.isidentifier()
                                 and name not in codegen._C_RESERVED | codegen._JS_RESERVED | codegen._PY_RESERVED):
        raise DiffcliError("input", f"--name {name}: not a plain identifier (ASCII letters, digits and _, "
                           "not a keyword or a library name of Python, C or JavaScript)")
    if program.graph.shape is None:  # a free input: a scalar here (codegen takes no --set)
        program._bind({n: 0.0 if v is None else v for n, v in program.base.inputs.items()})
    output = program.check_name(of, "--of") if of is not None else program.output
    program._scalar_output(output)
    writer = _Python if lang == "python" else _C if lang == "c" else _JavaScript
    return writer(program, output, value_only, name, filename or program.source.filename).generate()


def _size(shape) -> int:
    return math.prod(shape)


def _flat(idx, shape) -> str | int:
    """The row-major offset of a multi-index (ints or code) in an array of `shape`."""
    if not shape:
        return 0
    if len(shape) == 1:
        return idx[0]
    a, b = idx
    if isinstance(a, int) and isinstance(b, int):
        return a * shape[1] + b
    row = f"{a} * {shape[1]}" if not isinstance(a, int) else str(a * shape[1])
    if row == "0":
        return b
    return row if b == 0 else f"{row} + {b}"


def _plus(a, k: int):
    if k == 0:
        return a
    if isinstance(a, int):
        return a + k
    return f"({a} + {k})"


class _Writer:
    lang = ""

    def __init__(self, program: Program, output: str, value_only: bool, name: str | None, filename: str):
        self.program, self.graph, self.value_only = program, program.graph, value_only
        self.filename, self.output_name = filename, output
        graph = self.graph
        self.out = graph.names[output]
        self.namer = namer = _Namer(self.lang)
        free = [n for n, v in graph.inputs.items() if v is None]
        self.parameters = free + [n for n, v in graph.inputs.items() if v is not None]
        self.function = namer.fresh(name or namer._mangled(("eval_" if value_only else "grad_") + output))
        self.variable = {n: namer.variable(n) for n in graph.names}
        self.name_of = graph.name_of()
        self.index_names = [namer.fresh(b) for b in ("i", "j", "k", "r")]
        self._plan()

    # -- which node is what
    def _plan(self):
        graph = self.graph
        n = len(graph)
        self.kind = kind = [""] * n
        for i, op in enumerate(graph.op):
            if op is None:
                kind[i] = "input" if self.name_of.get(i) in graph.inputs else "const"
            elif op.key in VIEWS:
                kind[i] = "view"
            else:
                kind[i] = "store"
        live = [False] * n
        live[self.out] = True
        for i in range(self.out, -1, -1):
            if live[i]:
                for j in graph.args[i]:
                    live[j] = True
        needs = needs_gradient(graph)
        self.ref, self.adj = [""] * n, [""] * n
        for i in range(n):
            base = self.name_of.get(i)
            if kind[i] == "input":
                self.ref[i] = self.variable[base]
            elif kind[i] == "const":
                if graph.shape[i]:
                    self.ref[i] = self.namer.fresh(f"c{i}")
            elif kind[i] == "store":
                self.ref[i] = self.variable[base] if base is not None else self.namer.fresh(f"t{i}")
        if not self.value_only:
            for i in range(n):
                if kind[i] == "input" or kind[i] == "store" and live[i] and needs[i]:
                    self.adj[i] = self.namer.fresh("d_" + self.ref[i])
        stored = sum(_size(graph.shape[i]) for i in range(n) if kind[i] == "store")
        stored += sum(_size(graph.shape[i]) for i in range(n) if self.adj[i])
        written = sum(_size(graph.shape[i]) for i in range(n) if kind[i] in ("input", "const"))
        for what, count in (("numbers in its arrays (values and adjoints)", stored),
                            ("literal numbers to write (constants and defaults)", written)):
            if count > MAX_ELEMENTS:
                raise DiffcliError("shape", f"codegen: the program has {count:,} {what}, above the bound of "
                                   f"{MAX_ELEMENTS:,} for generated code", help="generated code keeps every array "
                                   "in the function (C: on the stack); use diffcli itself for programs this large")
        self.live = live

    def where(self, i: int) -> str:
        """"`log(x)` (line 3, column 5)": an operation's place, as its messages say it."""
        source, expr = self.program.source, self.graph.expr[i]
        if expr is None:  # an added broadcast of a constant: never fails
            return "a broadcast"
        begin = operator_span(source, expr)[0]
        line, column = source.line_col(begin)
        return f"`{_head_excerpt(source, expr.start, expr.end, EXCERPT_WIDTH)}` (line {line}, column {column})"

    def label(self, i: int) -> str:
        """How an error names node i's elements: its first array operand's label (the engine's)."""
        for j in self.graph.args[i]:
            if self.graph.shape[j]:
                return operand_label(self.graph, j)
        return ""

    def comment(self, i: int) -> str:
        name = self.name_of.get(i)
        if name is None or name not in self.graph.definitions:
            return ""
        line = self.program.source.line_col(self.graph.definitions[name].start)[0]
        text = f"line {line}: {name} = {self.program.definition(name)}"
        return "".join(ch if ch.isprintable() else "?" for ch in text)

    def header_lines(self) -> list[str]:
        what = f"the value of `{self.output_name}`" if self.value_only else \
            f"`{self.output_name}` and its gradient with respect to every input (reverse mode)"
        return [f"Generated by diffcli from {self.filename}: {what}.",
                "Self-contained: no diffcli at run time. Arrays are row-major; the adjoint loops run in reverse order."]

    def inputs_doc(self) -> list[str]:
        lines = []
        for name in self.parameters:
            shape = self.graph.shape[self.graph.names[name]]
            default = self.graph.inputs[name]
            what = "scalar" if not shape else shape_text(shape)
            shown = "no default (a free input)" if default is None else "default from the file" if shape else \
                f"default {float(default)!r}"
            lines.append(f"  {self.variable[name]}: input `{name}`, {what}, {shown}")
        return ["".join(ch if ch.isprintable() else "?" for ch in line) for line in lines]


# ---------------------------------------------------------------- C and JavaScript: loops

class _Loops(_Writer):
    """The loop nests of C and JavaScript, which differ in declarations, loops and failures."""

    def numbers(self, value) -> str:
        number = ops.printer(self.lang).number
        return ", ".join(str(number(x)) for x in value.ravel())

    @property
    def tested(self) -> list[bool]:
        """Whether the fast code tests a node's values: not where every user (through views that read
        every element) carries a value that is not finite on into its own result (inf·0, inf - inf
        and NaN are not finite), since that result is tested, or carries it further."""
        if "_tested" in self.__dict__:
            return self._tested
        graph, n = self.graph, len(self.graph)
        users: list[list] = [[] for _ in range(n)]
        for u in range(n):
            for position, j in enumerate(graph.args[u]):
                users[j].append((u, position))
        carries = [False] * n  # a view whose every element's non-finiteness reaches a tested value

        def carried(u, position):
            op = graph.op[u]
            if self.kind[u] == "view":
                return carries[u]
            if op.__class__ is ArrayOp:
                return op.key in _CARRY
            return position in ops.NONFINITE_PROPAGATES.get(op.key, ())
        tested = [True] * n
        for i in range(n - 1, -1, -1):
            passes = bool(users[i]) and all(carried(u, position) for u, position in users[i])
            if self.kind[i] == "view":
                carries[i] = graph.op[i].key != "index" and passes
            elif self.kind[i] == "store":
                tested[i] = not passes
        self._tested = tested
        return tested

    # -- elements: E (value) and A (adjoint) of node j at a multi-index of its own shape
    def _resolve(self, j: int, idx: tuple):
        """(storage node, its multi-index): views followed to their source, the indexes mapped."""
        graph = self.graph
        while self.kind[j] == "view":
            op, src = graph.op[j], graph.args[j][0]
            s = graph.shape[src]
            if op.key == "broadcast":
                lead = len(idx) - len(s)
                idx = tuple(0 if s[k] == 1 else idx[k + lead] for k in range(len(s)))
            elif op.key == "transpose":
                idx = tuple(reversed(idx))
            elif op.key == "index":
                items = graph.attrs[j]["items"]
                mapped, rest = [], list(idx)
                for axis, n in enumerate(s):
                    item = items[axis] if axis < len(items) else None
                    if item is None:
                        mapped.append(rest.pop(0))
                    elif isinstance(item, int):
                        mapped.append(item % n)
                    else:
                        mapped.append(_plus(rest.pop(0), range(n)[slice(*item)].start))
                idx = tuple(mapped)
            j = src
        return j, idx

    def has_adjoint(self, j: int) -> bool:
        while self.kind[j] == "view":
            j = self.graph.args[j][0]
        return bool(self.adj[j])

    def element(self, name: str, j: int, idx: tuple, two_d: bool) -> str:
        shape = self.graph.shape[j]
        if not shape:
            return name
        if two_d and len(shape) == 2 and self.lang == "c":
            return f"{name}[{idx[0]}][{idx[1]}]"
        return f"{name}[{_flat(idx, shape)}]"

    def E(self, j: int, idx: tuple = ()) -> str:
        j, idx = self._resolve(j, idx)
        if self.kind[j] == "const" and not self.graph.shape[j]:
            text = str(ops.printer(self.lang).number(self.graph.value0[j]))
            return f"({text})" if text.startswith("-") else text
        return self.element(self.ref[j], j, idx, self.kind[j] == "input")

    def A(self, j: int, idx: tuple = ()) -> str | None:
        j, idx = self._resolve(j, idx)
        if not self.adj[j]:
            return None
        return self.element(self.adj[j], j, idx, self.kind[j] == "input")

    # -- loops
    def loops(self, shape, names=None):
        """(opening lines, closing lines, the multi-index) of a loop nest over `shape`."""
        names = names or self.index_names
        opening, idx = [], []
        for axis, n in enumerate(shape):
            v = names[axis]
            opening.append(self.for_loop(v, n))
            idx.append(v)
        return opening, ["}"] * len(shape), tuple(idx)

    def nest(self, lines, shape, body, names=None):
        opening, closing, idx = self.loops(shape, names)
        depth = len(opening)
        for k, line in enumerate(opening):
            lines.append("    " * k + line)
        for line in body(idx):
            lines.append("    " * depth + line)
        for k in range(depth - 1, -1, -1):
            lines.append("    " * k + closing[k])

    def slices(self, shape, attrs):
        """A reduction's loops: (outer shape, inner shape, element index of (outer, inner), reduced index)."""
        axis = (attrs or {}).get("axis")
        if axis is None or len(shape) == 1:
            return (), shape, (lambda o, e: e), (lambda o: ())
        if axis == 0:  # down the columns: one slice per column
            return (shape[1],), (shape[0],), (lambda o, e: (e[0], o[0])), (lambda o: o)
        return (shape[0],), (shape[1],), (lambda o, e: (o[0], e[0])), (lambda o: o)

    def reduction(self, lines, shape, attrs, prelude, body, postlude):
        """Per slice: prelude(reduced index), inner loop body(element index), postlude(reduced index)."""
        outer, inner, element, reduced = self.slices(shape, attrs)
        names = self.index_names

        def slice_body(o):
            r = reduced(o)
            result = list(prelude(r))
            inner_lines: list[str] = []
            self.nest(inner_lines, inner, lambda e: body(element(o, e), r), names[len(outer):])
            return result + inner_lines + list(postlude(r))

        self.nest(lines, outer, slice_body, names)

    # -- the forward pass
    def forward(self, checked: bool) -> list[str]:
        graph, lines = self.graph, []
        for i, op in enumerate(graph.op):
            if self.kind[i] != "store":
                continue
            comment = self.comment(i)
            if comment:
                lines.append(self.line_comment(comment))
            shape = graph.shape[i]
            if shape:
                lines.append(self.declare_array(self.ref[i], _size(shape)))
            else:
                lines.append(self.declare_scalar(self.ref[i], "0.0"))
            self.forward_node(lines, i, op, checked)
        return lines

    def store(self, i, idx):
        return self.element(self.ref[i], i, idx, False)

    def check(self, i: int, target: str, idx, checked: bool) -> list[str]:
        if not checked:
            return [f"{self.bad} |= !{self.isfinite}({target});"] if self.tested[i] else []
        return [self.value_failure(target, self.where(i), self.label(i) if idx else "", i, idx)]

    def forward_node(self, lines, i, op, checked):
        graph, a, shape = self.graph, self.graph.args[i], self.graph.shape[i]
        attrs = graph.attrs.get(i)
        acc = self.acc
        if op.__class__ is not ArrayOp:
            template = _templates(self.lang, op.key, len(a))[0]

            def body(idx):
                t = self.store(i, idx)
                return [f"{t} = {template.format(*[self.E(j, idx) for j in a])};", *self.check(i, t, idx, checked)]
            return self.nest(lines, shape, body)
        key, x = op.key, a[0]
        xs = graph.shape[x]
        if key == "matmul":
            y = a[1]
            inner = xs[-1]
            k = self.index_names[2]

            def body(idx):
                left, right = idx[:len(xs) - 1], idx[len(xs) - 1:]
                t = self.store(i, idx)
                return [f"{acc} = 0.0;", self.for_loop(k, inner),
                        f"    {acc} += {self.E(x, left + (k,))} * {self.E(y, (k,) + right)};", "}",
                        f"{t} = {acc};", *self.check(i, t, (), checked)]
            return self.nest(lines, shape, body)
        if key in ("sum", "mean", "norm", "dot"):
            if key == "dot":
                return self.nest(lines, (), lambda idx: [
                    f"{acc} = 0.0;", self.for_loop(self.index_names[0], xs[0]),
                    f"    {acc} += {self.E(x, (self.index_names[0],))} * {self.E(a[1], (self.index_names[0],))};",
                    "}", f"{self.ref[i]} = {acc};", *self.check(i, self.ref[i], (), checked)])
            count = _count(xs, attrs)

            top = self.acc2

            def post(r):
                t = self.store(i, r)
                value = {"sum": acc, "mean": f"{acc} / {float(count)!r}", "norm": f"{top} * {self.sqrt}({acc})"}[key]
                return [f"{t} = {value};", *self.check(i, t, (), checked)]
            if key == "norm":  # scaled by the largest |x|, as the engine's (the squares alone under/overflow)
                return self.reduction(lines, xs, attrs, lambda r: [
                    f"{top} = 0.0;", *self._inner(xs, attrs, r, lambda e: [
                        f"if ({self.fabs}({self.E(x, e)}) > {top}) {top} = {self.fabs}({self.E(x, e)});"]),
                    f"if (!({top} > 0.0 && {top} < {self.infinity})) {top} = 1.0;", f"{acc} = 0.0;"],
                    lambda e, r: [f"{acc} += ({self.E(x, e)} / {top}) * ({self.E(x, e)} / {top});"], post)
            return self.reduction(lines, xs, attrs, lambda r: [f"{acc} = 0.0;"],
                                  lambda e, r: [f"{acc} += {self.E(x, e)};"], post)
        if key in ("amax", "amin", "logsumexp", "softmax"):
            top, compare = self.acc2, "<" if key == "amin" else ">"
            start = self.infinity if key == "amin" else "-" + self.infinity
            outer, inner, element, reduced = self.slices(xs, attrs)
            names = self.index_names[len(outer):]

            def slice_body(o):
                body = [f"{top} = {start};"]
                self.nest(body, inner, lambda e: [f"if ({self.E(x, element(o, e))} {compare} {top}) "
                                                  f"{top} = {self.E(x, element(o, e))};"], names)
                t = self.store(i, reduced(o)) if key != "softmax" else ""
                if key in ("amax", "amin"):
                    return body + [f"{t} = {top};", *self.check(i, t, (), checked)]
                body.append(f"{acc} = 0.0;")
                if key == "logsumexp":
                    self.nest(body, inner, lambda e: [f"{acc} += {self.exp}({self.E(x, element(o, e))} - {top});"],
                              names)
                    return body + [f"{t} = {top} + {self.log}({acc});", *self.check(i, t, (), checked)]
                # softmax: the exponentials stored, then divided by their sum
                self.nest(body, inner, lambda e: [
                    f"{self.store(i, element(o, e))} = {self.exp}({self.E(x, element(o, e))} - {top});",
                    f"{acc} += {self.store(i, element(o, e))};"], names)
                self.nest(body, inner, lambda e: [
                    f"{self.store(i, element(o, e))} = {self.store(i, element(o, e))} / {acc};",
                    *self.check(i, self.store(i, element(o, e)), element(o, e), checked)], names)
                return body
            return self.nest(lines, outer, slice_body)
        if key == "outer":
            return self.nest(lines, shape, lambda idx: [
                f"{self.store(i, idx)} = {self.E(x, idx[:1])} * {self.E(a[1], idx[1:])};",
                *self.check(i, self.store(i, idx), idx, checked)])
        if key == "stack":
            for k, j in enumerate(a):
                self.nest(lines, graph.shape[j], lambda idx, k=k, j=j: [
                    f"{self.store(i, (k,) + idx)} = {self.E(j, idx)};",  # (its elements are tested where they are
                    *self.check(i, self.store(i, (k,) + idx), (), checked)[:not checked]])  # made, but not in the fast code)
            return None
        raise AssertionError(f"no loops for {key}")

    # -- the reverse pass
    def reverse(self, checked: bool) -> list[str]:
        graph, lines = self.graph, []
        seed = self.A(self.out)
        if seed is None:
            return lines
        lines.append(f"{seed} += 1.0;")
        for i in range(self.out, -1, -1):
            if self.kind[i] != "store" or not self.adj[i]:
                continue
            if not any(self.has_adjoint(j) for j in graph.args[i]):
                if not checked:  # an adjoint that flows nowhere: the gradient's test would not see it
                    self.nest(lines, graph.shape[i], lambda idx: [
                        f"{self.bad} |= !{self.isfinite}({self.element(self.adj[i], i, idx, False)});"])
                continue
            before = len(lines)
            comment = self.comment(i)
            self.reverse_node(lines, i, graph.op[i], checked)
            if comment and len(lines) > before:
                lines.insert(before, self.line_comment(comment))
        return lines

    def contribution(self, i, n, target, g, p, idx, checked, structural=False) -> list[str]:
        """`target += g * p`, checked as the engine checks (a zero adjoint blocks an undefined partial).
        idx: the element of argument n (structural ops) or of node i (elementwise)."""
        if not checked:
            return [f"{target} += {g} * {p};" if p != "1.0" else f"{target} += {g};"]
        where = self.where(i) + (f", with respect to its argument {n + 1}" if len(self.graph.args[i]) > 1 else "")
        if structural:
            arg = self.graph.args[i][n]
            label = operand_label(self.graph, arg) if idx else ""
            # (every structural cotangent is linear in g: a zero adjoint contributes 0, and blocks an
            # undefined partial, norm's at 0, as the engine's)
            return [f"if ({g} != 0.0) {{", f"    {self.pvar} = {p};", f"    {self.cvar} = {g} * {self.pvar};",
                    "    " + self.derivative_failure(self.cvar, self.pvar, where, label, arg, idx, True),
                    f"    {target} += {self.cvar};", "}"]
        return [f"if ({g} != 0.0) {{" if not structural else "{", f"    {self.pvar} = {p};", f"    {self.cvar} = {g} * {self.pvar};",
                "    " + self.derivative_failure(self.cvar, self.pvar, where, self.label(i) if idx else "", i, idx,
                                                 structural),
                f"    {target} += {self.cvar};", "}"]

    def reverse_node(self, lines, i, op, checked):
        graph, a, shape = self.graph, self.graph.args[i], self.graph.shape[i]
        attrs = graph.attrs.get(i)
        G = lambda idx: self.A(i, idx)
        if op.__class__ is not ArrayOp:
            value, partials, count = _templates(self.lang, op.key, len(a))

            def body(idx):
                names = [self.E(j, idx) for j in a] + [self.E(i, idx), self.nvar]
                out = []
                if count is not None:
                    out.append(f"{self.nvar} = {count.format(*names)};")
                for n, j in enumerate(a):
                    target = self.A(j, idx)
                    if target is not None:
                        out += self.contribution(i, n, target, G(idx), partials[n].format(*names), idx, checked)
                return out
            return self.nest(lines, shape, body)
        key, x = op.key, a[0]
        xs = graph.shape[x]
        if key == "matmul":
            y = a[1]
            k = self.index_names[2]
            inner = xs[-1]

            def body(idx):
                left, right = idx[:len(xs) - 1], idx[len(xs) - 1:]
                out = [f"{self.gvar} = {G(idx)};", self.for_loop(k, inner)]
                dx, dy = self.A(x, left + (k,)), self.A(y, (k,) + right)
                if dx is not None:
                    out += ["    " + s for s in self.contribution(i, 0, dx, self.gvar, self.E(y, (k,) + right),
                                                                   left + (k,), checked, True)]
                if dy is not None:
                    out += ["    " + s for s in self.contribution(i, 1, dy, self.gvar, self.E(x, left + (k,)),
                                                                   (k,) + right, checked, True)]
                return out + ["}"]
            return self.nest(lines, shape, body)
        if key == "dot":
            v = self.index_names[0]
            body = []
            for n, (j, other) in enumerate(((x, a[1]), (a[1], x))):
                target = self.A(j, (v,))
                if target is not None:
                    body += self.contribution(i, n, target, G(()), self.E(other, (v,)), (v,), checked, True)
            return self.nest(lines, xs, lambda idx: body)
        if key == "outer":
            y = a[1]

            def body(idx):
                out = []
                for n, (j, jidx, other) in enumerate(((x, idx[:1], self.E(y, idx[1:])),
                                                      (y, idx[1:], self.E(x, idx[:1])))):
                    target = self.A(j, jidx)
                    if target is not None:
                        out += self.contribution(i, n, target, G(idx), other, jidx, checked, True)
                return out
            return self.nest(lines, shape, body)
        if key == "stack":
            for k, j in enumerate(a):
                if self.has_adjoint(j):
                    self.nest(lines, graph.shape[j], lambda idx, k=k, j=j: self.contribution(
                        i, k, self.A(j, idx), G((k,) + idx), "1.0", idx, checked, True))
            return None
        if not self.has_adjoint(x):
            return None
        count = _count(xs, attrs)
        if key == "logsumexp":  # the softmax, exp(x - top) / Σ (exp(x - out) loses out's log n at 1e16)
            top, acc = self.acc2, self.acc
            return self.reduction(
                lines, xs, attrs,
                lambda r: [f"{top} = -{self.infinity};", *self._inner(xs, attrs, r, lambda e: [
                    f"if ({self.E(x, e)} > {top}) {top} = {self.E(x, e)};"]), f"{acc} = 0.0;",
                    *self._inner(xs, attrs, r, lambda e: [f"{acc} += {self.exp}({self.E(x, e)} - {top});"])],
                lambda e, r: self.contribution(i, 0, self.A(x, e), G(r), f"({self.exp}({self.E(x, e)} - {top}) / {acc})",
                                               e, checked, True), lambda r: [])
        if key in ("sum", "mean", "norm"):
            partial = {"sum": lambda e, r: "1.0", "mean": lambda e, r: f"(1.0 / {float(count)!r})",
                       "norm": lambda e, r: f"{self.E(x, e)} / {self.E(i, r)}"}[key]
            if key == "mean":  # the engine's g / count
                return self.reduction(lines, xs, attrs, lambda r: [], lambda e, r: self.contribution(
                    i, 0, self.A(x, e), f"({G(r)} / {float(count)!r})", "1.0", e, checked, True), lambda r: [])
            return self.reduction(lines, xs, attrs, lambda r: [], lambda e, r: self.contribution(
                i, 0, self.A(x, e), G(r), partial(e, r), e, checked, True), lambda r: [])
        if key in ("amax", "amin"):
            acc = self.acc
            return self.reduction(
                lines, xs, attrs,
                lambda r: [f"{acc} = 0.0;", *self._inner(xs, attrs, r, lambda e: [
                    f"if ({self.E(x, e)} == {self.E(i, r)}) {acc} += 1.0;"])],
                lambda e, r: self.contribution(i, 0, self.A(x, e), G(r),
                                               f"({self.E(x, e)} == {self.E(i, r)} ? 1.0 / {acc} : 0.0)",
                                               e, checked, True), lambda r: [])
        if key == "softmax":
            acc = self.acc
            return self.reduction(
                lines, xs, attrs,
                lambda r: [f"{acc} = 0.0;", *self._inner(xs, attrs, r, lambda e: [
                    f"{acc} += {G(e)} * {self.E(i, e)};"])],
                lambda e, r: self.contribution(i, 0, self.A(x, e), self.E(i, e), f"({G(e)} - {acc})",
                                               e, checked, True), lambda r: [])
        raise AssertionError(f"no reverse loops for {key}")

    def _inner(self, xs, attrs, r, body):
        """A loop over one slice of a reduction (the slice of reduced index r)."""
        outer, inner, element, _ = self.slices(xs, attrs)
        lines: list[str] = []
        self.nest(lines, inner, lambda e: body(element(r, e)), self.index_names[len(outer):])
        return lines


# structural operations whose every result is not finite where an argument's element is not (each
# element enters a product or a sum); not the extremes or logsumexp/softmax (exp(-inf) is 0)
_CARRY = frozenset({"matmul", "sum", "mean", "dot", "outer", "norm", "stack"})


def _count(shape, attrs) -> int:
    axis = (attrs or {}).get("axis")
    if axis is None or len(shape) == 1:
        return _size(shape)
    return shape[axis]


class _C(_Loops):
    lang = "c"
    isfinite, sqrt, exp, log, infinity, fabs = "isfinite", "sqrt", "exp", "log", "INFINITY", "fabs"

    def __init__(self, *args):
        super().__init__(*args)
        fresh = self.namer.fresh
        self.reason, self.failed = fresh(f"{self.function}_reason"), fresh(f"{self.function}_failed")
        self.checked_name = fresh(f"{self.function}_checked")
        self.acc, self.acc2, self.gvar = fresh("acc"), fresh("top"), fresh("g")
        self.pvar, self.cvar, self.nvar = fresh("p"), fresh("c"), fresh("n")
        self.bad = fresh("bad")
        self.value_name, self.error_name, self.element_name = fresh("value"), fresh("error"), fresh("element")

    def for_loop(self, v, n):
        return f"for (int {v} = 0; {v} < {n}; {v}++) {{"

    def line_comment(self, text):
        return f"/* {text.replace('*/', '* /')} */"

    def declare_array(self, name, size):
        return f"double {name}[{size}];"

    def declare_scalar(self, name, value):
        return f"double {name} = {value};"

    def quote(self, text):
        return json.dumps("".join(ch if ch.isprintable() else "?" for ch in text),
                          ensure_ascii=False).replace("?", "\\?")

    def value_failure(self, target, where, label, i, idx):
        at = f" at {label}" if label else ""
        return (f"if (!isfinite({target})) DIFFCLI_FAIL(1, {self.quote(where + ': undefined or overflows' + at)}, "
                f"{_flat(idx, self.graph.shape[i]) if idx else -1});")

    def derivative_failure(self, c, p, where, label, i, idx, structural):
        at = f" at {label}" if label else ""
        k = _flat(idx, self.graph.shape[i]) if idx else -1
        return (f"if (!isfinite({c})) DIFFCLI_FAIL(isfinite({p}) ? 3 : 2, isfinite({p}) ? "
                f"{self.quote('the gradient overflows at ' + where + at)} : "
                f"{self.quote('the derivative of ' + where + ' is infinite or undefined' + at)}, {k});")

    def param(self, name) -> str:
        shape = self.graph.shape[self.graph.names[name]]
        dims = "".join(f"[{n}]" for n in shape)
        return f"const double {self.variable[name]}{dims}" if shape else f"double {self.variable[name]}"

    def signature(self, function) -> str:
        params = [self.param(n) for n in self.parameters] + [f"double *{self.value_name}"]
        if not self.value_only:
            for n in self.parameters:
                node = self.graph.names[n]
                shape = self.graph.shape[node]
                params.append(f"double {self.adj[node]}" + ("".join(f"[{k}]" for k in shape) if shape else "[1]"))
        params += [f"long *{self.element_name}", f"const char **{self.error_name}"]
        return f"int {function}({', '.join(params)})"

    def documentation(self) -> list[str]:
        out = self.output_name
        lines = ["/*", *[" * " + line for line in self.header_lines()], " *",
                 f" * {self.function}: returns 0 and sets *{self.value_name}"
                 + ("" if self.value_only else " and the gradients") + ", or on a domain error returns",
                 " * 1 (a value is undefined or overflows), 2 (a derivative is infinite or undefined) or 3",
                 " * (the gradient overflows), points *error (if not NULL) at a static string naming the",
                 " * operation, its place in the .expr file and the array, and sets *element (if not NULL)",
                 " * to the row-major index of the first bad element there (-1 for a scalar).",
                 f" * {self.reason}(code) says what a code means. Thread-safe: no global state; the arrays",
                 " * live on the stack. Inputs (row-major arrays, as declared):",
                 *[" * " + line for line in self.inputs_doc()]]
        if not self.value_only:
            lines.append(" * Gradients, written into the caller's arrays (each of its input's shape; a scalar's is [1]):")
            lines += [f" *   {self.adj[self.graph.names[n]]} = d{out}/d{n}" for n in self.parameters]
        return [line.replace("*/", "* /") for line in lines] + [" */"]

    def zero_gradients(self) -> list[str]:
        lines = []
        for n in self.parameters:
            node = self.graph.names[n]
            shape = self.graph.shape[node]
            self.nest(lines, shape or (1,), lambda idx: [
                f"{self.element(self.adj[node], node, idx, True) if shape else self.adj[node] + '[0]'} = 0.0;"])
        return lines

    def body(self, checked: bool) -> list[str]:
        # scalar gradients live in locals, copied out at the end (arrays are the caller's)
        lines = [f"double {self.acc} = 0.0, {self.acc2} = 0.0, {self.gvar} = 0.0, {self.pvar} = 0.0, "
                 f"{self.cvar} = 0.0, {self.nvar} = 0.0;"]
        if not checked:
            lines.append(f"int {self.bad} = 0;")
        else:
            lines.append(f"(void){self.failed};  /* (a program with nothing to check) */")
        lines.append(f"(void){self.acc}; (void){self.acc2}; (void){self.gvar}; (void){self.pvar}; "
                     f"(void){self.cvar}; (void){self.nvar};")
        lines += self.forward(checked)
        value = self.E(self.out)
        if not self.value_only:
            lines += self.zero_gradients()
            scalar_inputs = [self.graph.names[n] for n in self.parameters if not self.graph.shape[self.graph.names[n]]]
            saved = {}
            for node in scalar_inputs:  # a scalar input's adjoint in a local, not through the pointer
                saved[node] = self.adj[node]
                self.adj[node] = self.namer.fresh("s_" + self.adj[node])
                lines.append(self.declare_scalar(self.adj[node], "0.0"))
            for i in range(len(self.graph)):
                if self.kind[i] == "store" and self.adj[i]:
                    shape = self.graph.shape[i]
                    lines.append(f"double {self.adj[i]}[{_size(shape)}] = {{0.0}};" if shape
                                 else self.declare_scalar(self.adj[i], "0.0"))
            lines += self.reverse(checked)
            for node in scalar_inputs:
                lines.append(f"{saved[node]}[0] = {self.adj[node]};")
                if not checked:
                    lines.append(f"{self.bad} |= !isfinite({self.adj[node]});")
                self.adj[node] = saved[node]
            if not checked:
                for n in self.parameters:
                    node = self.graph.names[n]
                    if self.graph.shape[node]:
                        self.nest(lines, self.graph.shape[node], lambda idx: [
                            f"{self.bad} |= !isfinite({self.element(self.adj[node], node, idx, True)});"])
        if not checked:
            arguments = [self.variable[n] for n in self.parameters] + [self.value_name] + (
                [] if self.value_only else [self.adj[self.graph.names[n]] for n in self.parameters]) + [
                self.element_name, self.error_name]
            lines.append(f"if ({self.bad}) return {self.checked_name}({', '.join(arguments)});")
        lines += [f"*{self.value_name} = {value};", "return 0;"]
        return ["{", *["    " + line for line in lines], "}"]

    def constants(self) -> list[str]:
        lines = []
        for i in range(len(self.graph)):
            if self.kind[i] == "const" and self.graph.shape[i]:
                lines.append(f"static const double {self.ref[i]}[{_size(self.graph.shape[i])}] = "
                             f"{{{self.numbers(self.graph.value0[i])}}};")
        return lines + ([""] if lines else [])

    def header(self) -> str:
        guard = self.namer._mangled(f"{self.function}_h").upper()
        return "\n".join([*self.documentation(), f"#ifndef {guard}", f"#define {guard}", "",
                          f"{self.signature(self.function)};", f"const char *{self.reason}(int code);", "",
                          "#endif", ""])

    def generate(self) -> Generated:
        head = [*self.documentation(), "#include <math.h>", "#include <stddef.h>", "",
                f"static const char *const {self.reason}_texts[] = {{\"\", \"undefined or overflows\",",
                "    \"its derivative is infinite or undefined\", \"the gradient overflows\"};", "",
                f"const char *{self.reason}(int code)", "{",
                f"    return code >= 0 && code <= 3 ? {self.reason}_texts[code] : \"unknown error\";", "}", "",
                f"static int {self.failed}(long *{self.element_name}, const char **{self.error_name}, int code, "
                "const char *where, long k)", "{",
                f"    if ({self.error_name}) *{self.error_name} = where;",
                f"    if ({self.element_name}) *{self.element_name} = k;", "    return code;", "}", "",
                f"#define DIFFCLI_FAIL(code, where, k) return {self.failed}({self.element_name}, {self.error_name}, "
                "(code), (where), (k))", "", *self.constants(),
                "/* every element tested: where the fast code below meets a value or a derivative that is not",
                " * finite, this names the operation, its place and the element, as diffcli does */",
                "#if defined(__GNUC__)", "__attribute__((noinline, cold))", "#endif",
                "static " + self.signature(self.checked_name)]
        text = "\n".join(head + self.body(True) + ["", self.signature(self.function)] + self.body(False)
                         + ["", "#undef DIFFCLI_FAIL", ""])
        return Generated("c", self.function, text, self.header(), self.parameters)


class _JavaScript(_Loops):
    lang = "javascript"
    isfinite, sqrt, exp, log, infinity, fabs = "Number.isFinite", "Math.sqrt", "Math.exp", "Math.log", "Infinity", "Math.abs"

    def __init__(self, *args):
        super().__init__(*args)
        fresh = self.namer.fresh
        self.acc, self.acc2, self.gvar = fresh("acc"), fresh("top"), fresh("g")
        self.pvar, self.cvar, self.nvar = fresh("p"), fresh("c"), fresh("n")
        self.bad = fresh("bad")
        self.DomainError, self.gradient_name = fresh("DomainError"), fresh("gradient")
        self.defaults = {n: fresh("default_" + self.variable[n]) for n in self.parameters
                         if self.graph.shape[self.graph.names[n]]}

    def for_loop(self, v, n):
        return f"for (let {v} = 0; {v} < {n}; {v}++) {{"

    def line_comment(self, text):
        return f"// {text}"

    def declare_array(self, name, size):
        return f"const {name} = new Float64Array({size});"

    def declare_scalar(self, name, value):
        return f"let {name} = {value};"

    def quote(self, text):
        return json.dumps(text, ensure_ascii=False)

    def at(self, label, i, idx):
        """A template literal naming the element (` at x[${i}]`), where there is one."""
        if not label:
            return ""
        return " + ` at " + label.replace("`", "'").replace("$", "\\$") + "[" + ",".join(
            "${" + str(k) + "}" for k in idx) + "]`"

    def value_failure(self, target, where, label, i, idx):
        return (f"if (!Number.isFinite({target})) throw new {self.DomainError}("
                f"{self.quote(where + ': undefined or overflows')}{self.at(label, i, idx)});")

    def derivative_failure(self, c, p, where, label, i, idx, structural):
        return (f"if (!Number.isFinite({c})) throw new {self.DomainError}((Number.isFinite({p}) ? "
                f"{self.quote('the gradient overflows at ' + where)} : "
                f"{self.quote('the derivative of ' + where + ' is infinite or undefined')}){self.at(label, i, idx)});")

    def generate(self) -> Generated:
        graph = self.graph
        lines = ["// " + line for line in self.header_lines()] + [
            "", "/** A value or a derivative outside an operation's domain, or an overflow. */",
            f"export class {self.DomainError} extends Error {{}}", ""]
        for i in range(len(graph)):
            if self.kind[i] == "const" and graph.shape[i]:
                lines.append(f"const {self.ref[i]} = new Float64Array([{self.numbers(graph.value0[i])}]);")
        for n, d in self.defaults.items():
            lines.append(f"const {d} = new Float64Array([{self.numbers(graph.inputs[n])}]);")
        out = self.output_name
        params = []
        for n in self.parameters:
            default = graph.inputs[n]
            if default is None:
                params.append(self.variable[n])
            elif n in self.defaults:
                params.append(f"{self.variable[n]} = {self.defaults[n]}")
            else:
                params.append(f"{self.variable[n]} = {float(default)!r}")
        if not self.value_only:
            params.append(f"{self.gradient_name} = {{}}")
        doc = ["", "/**", f" * Returns " + (f"the value of `{out}`" if self.value_only else
                                            f"{{value, gradient: {{input: d{out}/d input}}}}")
               + f"; throws {self.DomainError} where an operation is undefined or overflows.",
               " * Arrays are Float64Arrays, row-major; a gradient is a Float64Array of its input's shape (a",
               f" * number for a scalar), written into `{self.gradient_name}[name]` where the caller gives one.",
               *[" * " + line for line in self.inputs_doc()], " */"]
        lines += [line.replace("*/", "* /") if k != len(doc) - 1 else line for k, line in enumerate(doc)]
        lines.append(f"export function {self.function}({', '.join(params)}) {{")
        body = []
        for n in self.parameters:
            node = graph.names[n]
            shape = graph.shape[node]
            v = self.variable[n]
            if shape:
                body.append(f"if ({v}.length !== {_size(shape)}) throw new TypeError("
                            f"{self.quote(f'{n}: {_size(shape)} numbers ({shape_text(shape)}, row-major), not ')} "
                            f"+ {v}.length);")
        body.append(f"let {self.acc} = 0.0, {self.acc2} = 0.0, {self.gvar} = 0.0, {self.pvar} = 0.0, "
                    f"{self.cvar} = 0.0, {self.nvar} = 0.0;")
        body += self.forward(True)
        if not self.value_only:
            for n in self.parameters:
                node = graph.names[n]
                shape = graph.shape[node]
                if shape:
                    body.append(f"const {self.adj[node]} = {self.gradient_name}[{json.dumps(n)}] ?? "
                                f"new Float64Array({_size(shape)});")
                    body.append(f"{self.adj[node]}.fill(0.0);")
                else:
                    body.append(self.declare_scalar(self.adj[node], "0.0"))
            for i in range(len(graph)):
                if self.kind[i] == "store" and self.adj[i]:
                    shape = graph.shape[i]
                    body.append(self.declare_array(self.adj[i], _size(shape)) if shape
                                else self.declare_scalar(self.adj[i], "0.0"))
            body += self.reverse(True)
        value = self.E(self.out)
        if self.value_only:
            body.append(f"return {value};")
        else:
            listed = ", ".join(f"{_object_key(n)}: {self.adj[graph.names[n]]}" for n in self.parameters)
            body.append(f"return {{value: {value}, gradient: {{{listed}}}}};")
        lines += ["    " + line for line in body] + ["}", ""]
        return Generated("javascript", self.function, "\n".join(lines), None, self.parameters)


# ---------------------------------------------------------------- Python: NumPy

class _Python(_Writer):
    """NumPy: one statement per node, the array engine's calls; each value checked as it comes."""

    lang = "python"

    def _plan(self):
        super()._plan()
        fresh = self.namer.fresh
        self.np, self.DomainError = fresh("np"), fresh("DomainError")
        self.helpers = {k: fresh("_" + k) for k in (
            "value", "grad", "structural", "unbroadcast", "spread", "keep", "shares", "matmul_vjp",
            "logsumexp", "softmax", "norm", "array", "WHERE", "LABEL", "index_error", "float", "n", "gx", "gy")}
        for i in range(len(self.graph)):
            if self.kind[i] == "view":
                self.ref[i] = self.variable[self.name_of[i]] if i in self.name_of else fresh(f"t{i}")
            if self.kind[i] == "view" and self.live[i] and not self.value_only and any(
                    self.adj[j] for j in self.graph.args[i]):
                self.adj[i] = fresh("d_" + self.ref[i])
        self.defaults = {n: fresh("_default_" + self.variable[n]) for n in self.parameters
                         if self.graph.shape[self.graph.names[n]]}
        self.slot = {i: k for k, i in enumerate(i for i, op in enumerate(self.graph.op) if op is not None)}

    def _np(self, text: str) -> str:
        return text.replace("np.", self.np + ".") if self.np != "np" else text

    def value_ref(self, j: int) -> str:
        if self.kind[j] == "const" and not self.graph.shape[j]:
            text = str(ops.printer("numpy").number(self.graph.value0[j]))
            return f"({text})" if text.startswith("-") else text
        return self.ref[j]

    def axis(self, i: int) -> str:
        axis = (self.graph.attrs.get(i) or {}).get("axis")
        x = self.graph.args[i][0]
        return "None" if axis is None or len(self.graph.shape[x]) == 1 else str(axis)

    def index_key(self, i: int) -> str:
        parts = []
        for item in self.graph.attrs[i]["items"]:
            parts.append(str(item) if isinstance(item, int) else ":".join("" if b is None else str(b) for b in item))
        return ", ".join(parts)

    def value_text(self, i: int) -> str:
        graph, op, a = self.graph, self.graph.op[i], self.graph.args[i]
        x = [self.value_ref(j) for j in a]
        H, np = self.helpers, self.np
        if op.__class__ is not ArrayOp:
            return self._np(_templates("numpy", op.key, len(a))[0].format(*x))
        key, axis = op.key, self.axis(i)
        count = _count(graph.shape[a[0]], graph.attrs.get(i))
        return {
            "matmul": lambda: f"{x[0]} @ {x[1]}",
            "sum": lambda: f"{np}.sum({x[0]}, axis={axis})",
            "mean": lambda: f"{np}.sum({x[0]}, axis={axis}) / {count}",
            "amax": lambda: f"{np}.max({x[0]}, axis={axis})",
            "amin": lambda: f"{np}.min({x[0]}, axis={axis})",
            "logsumexp": lambda: f"{H['logsumexp']}({x[0]}, {axis})",
            "softmax": lambda: f"{H['softmax']}({x[0]}, {axis})",
            "dot": lambda: f"{np}.dot({x[0]}, {x[1]})",
            "outer": lambda: f"{np}.outer({x[0]}, {x[1]})",
            "transpose": lambda: f"{np}.transpose({x[0]})",
            "norm": lambda: f"{H['norm']}({x[0]})",
            "broadcast": lambda: f"{np}.broadcast_to({x[0]}, {graph.shape[i]!r})",
            "index": lambda: f"{x[0]}[{self.index_key(i)}]",
            "stack": lambda: f"{np}.stack(({', '.join(x)},))",
        }[key]()

    def backward(self, i: int) -> list[str]:
        """The statements adding node i's adjoint times its partials into its arguments' adjoints."""
        graph, op, a = self.graph, self.graph.op[i], self.graph.args[i]
        H, np, g, k = self.helpers, self.np, self.adj[i], self.slot[i]
        x = [self.value_ref(j) for j in a]
        out = self.ref[i]
        lines = []

        def add(j, text):
            if self.adj[j]:
                lines.append(f"{self.adj[j]} = {self.adj[j]} + {text}")
        if op.__class__ is not ArrayOp:
            _, partials, count = _templates("numpy", op.key, len(a))
            names = x + [out, H["n"]]
            if count is not None:
                lines.append(f"{H['n']} = {self._np(count.format(*names))}")
            for n, j in enumerate(a):
                add(j, f"{H['grad']}({k}, {n if len(a) > 1 else -1}, {g}, {self._np(partials[n].format(*names))})")
            return lines
        key, axis = op.key, self.axis(i)
        s = lambda text: f"{H['structural']}({k}, {text})"
        count = _count(graph.shape[a[0]], graph.attrs.get(i))
        spread = f"{H['spread']}({g}, {x[0]}, {axis})"
        if key == "matmul":
            lines.append(f"{H['gx']}, {H['gy']} = {H['matmul_vjp']}({g}, {x[0]}, {x[1]})")
            add(a[0], s(H["gx"]))
            add(a[1], s(H["gy"]))
        elif key in ("sum", "mean"):
            add(a[0], s(spread if key == "sum" else f"{spread} / {count}"))
        elif key in ("amax", "amin"):
            add(a[0], s(f"{spread} * {H['shares']}({out}, {x[0]}, {axis})"))
        elif key == "logsumexp":
            add(a[0], s(f"{spread} * {H['softmax']}({x[0]}, {axis})"))  # (exp(x - out) loses out's log n at 1e16)
        elif key == "softmax":
            add(a[0], s(f"{out} * ({g} - {np}.sum({g} * {out}, axis={axis}, keepdims=True))"))
        elif key == "dot":
            add(a[0], s(f"{g} * {x[1]}"))
            add(a[1], s(f"{g} * {x[0]}"))
        elif key == "outer":
            add(a[0], s(f"{g} @ {x[1]}"))
            add(a[1], s(f"{x[0]} @ {g}"))
        elif key == "transpose":
            add(a[0], f"{np}.transpose({g})")
        elif key == "norm":
            add(a[0], f"{H['structural']}({k}, {np}.where({g} != 0, {g} * {x[0]} / {out}, 0.0), True)")
        elif key == "broadcast":
            add(a[0], f"{H['unbroadcast']}({g}, {graph.shape[a[0]]!r})")
        elif key == "index":
            if self.adj[a[0]]:
                lines.append(f"{self.adj[a[0]]}[{self.index_key(i)}] += {g}")
        elif key == "stack":
            for n, j in enumerate(a):
                add(j, f"{g}[{n}]")
        return lines

    def generate(self) -> Generated:
        graph, H, np, E = self.graph, self.helpers, self.np, self.DomainError
        triple = '"' * 3
        header = [line.replace("\\", "\\\\").replace(triple, "'''") for line in self.header_lines()]
        lines = [triple + header[0], *header[1:], "Python over NumPy: the array engine's operations, one statement "
                 "a node.", triple, "", f"import numpy as {np}", ""]
        for i in range(len(graph)):
            if self.kind[i] == "const" and graph.shape[i]:
                lines.append(f"{self.ref[i]} = {np}.array({graph.value0[i].tolist()!r})")
        for n, d in self.defaults.items():
            lines.append(f"{d} = {np}.array({graph.inputs[n].tolist()!r})")
        lines += ["", "", f"class {E}(ValueError):",
                  f"    {triple}A value or a derivative outside an operation's domain, or an overflow.{triple}", "", ""]
        params = []
        for n in self.parameters:
            default = graph.inputs[n]
            params.append(self.variable[n] if default is None else f"{self.variable[n]}={self.defaults[n]}"
                          if n in self.defaults else f"{self.variable[n]}={float(default)!r}")
        out = self.output_name
        doc = (f"Return the value of `{out}`." if self.value_only else
               f"Return (`{out}`, {{input: d{out}/d input}}); an array's gradient is a NumPy array of its shape.")
        lines += [f"def {self.function}({', '.join(params)}):", "    " + triple + doc, "",
                  *["    " + line.replace(triple, "'''").replace("\\", "/") for line in self.inputs_doc()], "",
                  f"    Raises {E} (a ValueError) where an operation is undefined or overflows.", "    " + triple]
        body = []
        for n in self.parameters:
            shape = graph.shape[graph.names[n]]
            v = self.variable[n]
            body.append(f"{v} = {H['array']}({v}, {shape!r}, {n!r})" if shape else f"{v} = {H['float']}({v})")
        where, labels = [], []
        for i, op in enumerate(graph.op):
            if op is None:
                continue
            where.append(self.where(i))
            labels.append(self.label(i) if graph.shape[i] else "")
            comment = self.comment(i)
            text = self.value_text(i)
            line = f"{self.ref[i]} = " + (text if self.kind[i] == "view" else f"{H['value']}({self.slot[i]}, {text})")
            body.append(line + (f"  # {comment}" if comment else ""))
        if not self.value_only:
            for i in range(len(graph)):
                if self.adj[i] and i != self.out:
                    body.append(f"{self.adj[i]} = {np}.zeros({graph.shape[i]!r})")
            body.append(f"{self.adj[self.out]} = {np}.asarray(1.0)")
            for i in range(self.out, -1, -1):
                if graph.op[i] is not None and self.adj[i] and any(self.adj[j] for j in graph.args[i]):
                    block = self.backward(i)
                    comment = self.comment(i)
                    if comment and block:
                        block[0] += f"  # {comment}"
                    body += block
            body.append(f"return {H['float']}({self.ref[self.out]}), {{" + ", ".join(
                f"{n!r}: " + (self.adj[graph.names[n]] if graph.shape[graph.names[n]]
                              else f"{H['float']}({self.adj[graph.names[n]]})") for n in self.parameters) + "}")
        else:
            body.append(f"return {H['float']}({self.ref[self.out]})")
        lines += [f"    with {np}.errstate(all='ignore'):", *["        " + line for line in body], "", ""]
        lines += _PYTHON_HELPERS.format(np=np, E=E, where=where, labels=labels, **H).split("\n")
        return Generated("python", self.function, "\n".join(lines), None, self.parameters)


# the generated module's helpers: the engine's checks, and the NumPy of its structural vjps, as text
_PYTHON_HELPERS = """{WHERE} = {where!r}
{LABEL} = {labels!r}


def {float}(x):
    return float(x)


def {array}(x, shape, name):
    x = {np}.asarray(x, dtype=float)
    if x.shape != shape:
        raise ValueError(f"{{name}}: an array of shape {{shape}}, not {{x.shape}}")
    return x


def {index_error}(x):
    x = {np}.asarray(x)
    if x.ndim == 0:
        return ()
    flat = int({np}.flatnonzero(~{np}.isfinite(x))[0])
    return tuple(int(k) for k in {np}.unravel_index(flat, x.shape))


def {value}(k, x):
    if not {np}.isfinite(x).all():
        index = {index_error}(x)
        at = f" at {{{LABEL}[k]}}[{{','.join(map(str, index))}}]" if index and {LABEL}[k] else ""
        raise {E}(f"{{{WHERE}[k]}}: undefined or overflows{{at}}")
    return x


def {grad}(k, n, g, p):
    c = g * p
    if not {np}.isfinite(c).all():
        c = {np}.where(g != 0, c, 0.0)  # a zero adjoint blocks an undefined partial
        if not {np}.isfinite(c).all():
            index = {index_error}(c)
            at = f" at {{{LABEL}[k]}}[{{','.join(map(str, index))}}]" if index and {LABEL}[k] else ""
            where = {WHERE}[k] + ("" if n < 0 else f", with respect to its argument {{n + 1}}")
            p = {np}.broadcast_to(p, {np}.shape(c))
            if {np}.isfinite(p[index] if index else p):
                raise {E}(f"the gradient overflows at {{where}}{{at}}")
            raise {E}(f"the derivative of {{where}} is infinite or undefined{{at}}")
    return c


def {structural}(k, c, norm=False):
    if not {np}.isfinite(c).all():
        if norm:
            raise {E}(f"the derivative of {{{WHERE}[k]}} is undefined: the norm is 0")
        index = {index_error}(c)
        raise {E}(f"the gradient overflows at {{{WHERE}[k]}}" + (f", element [{{','.join(map(str, index))}}]"
                                                                    if index else ""))
    return c


def {unbroadcast}(g, shape):
    if g.shape == shape:
        return g
    if not shape:
        return g.sum()
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


def {keep}(out, x, axis):
    if axis is None:
        return {np}.reshape(out, (1,) * x.ndim)
    return {np}.expand_dims(out, axis)


def {spread}(g, x, axis):
    out = {np}.empty(x.shape)
    out[...] = {keep}(g, x, axis)
    return out


def {shares}(out, x, axis):
    tied = (x == {keep}(out, x, axis)).astype(float)
    return tied / {np}.sum(tied, axis=axis, keepdims=True)


def {matmul_vjp}(g, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * y, g * x
    if y.ndim == 1:
        return {np}.outer(g, y), x.T @ g
    if x.ndim == 1:
        return y @ g, {np}.outer(x, g)
    return g @ y.T, x.T @ g


def {logsumexp}(x, axis):
    top = {np}.max(x, axis=axis, keepdims=True)
    return {np}.reshape(top, {np}.shape({np}.sum(x, axis=axis))) + {np}.log({np}.sum({np}.exp(x - top), axis=axis))


def {norm}(x):
    top = {np}.max({np}.abs(x))  # scaled, as hypot: the squares alone under/overflow
    if not 0 < top < {np}.inf:
        return {np}.sqrt({np}.sum(x * x))
    return top * {np}.sqrt({np}.sum((x / top) ** 2))


def {softmax}(x, axis):
    e = {np}.exp(x - {np}.max(x, axis=axis, keepdims=True))
    return e / {np}.sum(e, axis=axis, keepdims=True)
"""
