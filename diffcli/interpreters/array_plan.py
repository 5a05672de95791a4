"""A lowered array graph compiled once into one straight-line Python function: the forward pass, the
reverse pass of one output, and only the checks that can find anything (issues 18 and 19).

array_engine.py interprets a graph node by node, checking every result; that costs more than the
arithmetic on a network's small arrays. A plan does the same operations with the same NumPy calls on
the same operands (so its numbers are the interpreter's, bit for bit, but for the large sums of
outer products below), but:

- it is compiled once per (graph, output, gradients wanted), from the op table's rules and the
  graph's node indices only (never the file's text), as ops.py compiles its float table;
- constant subgraphs (a broadcast `2` of `W^2`) are computed once, when the plan is made;
- a broadcast feeding only `+ - * /` is left to NumPy's broadcasting (exact arithmetic: the same
  numbers), its reverse rule, the sum over the stretched axes, kept in its place;
- only the gradients asked for are computed (`fit` wants the parameters', not the data's), and
  only the values they and the asked-for values need;
- a value is checked for being finite only where a NaN or an infinity could otherwise vanish: at the
  values returned, and at the arguments of the operations that can map one to a finite number
  (`exp(-inf)`, `tanh`, `x/inf`, `x^0`, indexing, a matrix product, whose BLAS may skip zeros;
  relu is written as |x·m|, which makes NaN of a NaN or -inf); elsewhere a bad element flows, at
  least as NaN, into something checked. A value known finite (an input, a `tanh` of finite
  values) is not checked again.
  Reverse: the gradients returned, and the adjoint entering each matrix product.

When a check fails the plan returns None and the caller runs the interpreter, which finds the first
bad node and raises its located error (or, in the reverse pass, blocks a zero adjoint's undefined
partial): errors and their places are the interpreter's.

Large gradients (the 512×512 program of issue 18): the adjoint of a matrix input (of BIG elements
or more) used in matrix-vector products is a sum of outer products g·yᵀ. Its factors are kept, and
the sum made at once when complete: one outer product by NumPy's own multiply (the interpreter's
bits), two or more as one matrix product of the stacked factors, which rounds each element once
rather than once per term (so it may differ from the interpreter's by an ulp: more accurate, not
less). It is written into a buffer of the plan's own, reused from one call to the next while
nobody else holds it (a fresh 2 MiB array costs page faults on every call under glibc's default
allocator), and its finiteness follows from a cheap bound (the sum of max|g|·max|y| over its
outer products) without reading it again. Smaller arrays get the interpreter's bits exactly.
"""

from __future__ import annotations

import math
import sys

from ..ops import ArrayOp, backend, unbroadcast

# elementwise operations whose partials are plain arithmetic on their arguments: a broadcast
# argument can be left to NumPy (the same numbers)
_EXACT = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
# a NaN or infinity in any argument makes some element of the result one (for div: its numerator)
_PROPAGATES = {"add", "sub", "mul", "neg", "pos", "id", "broadcast", "transpose", "sum", "mean", "stack"}
# finite arguments give a finite result
_KEEPS_FINITE = {"relu", "sign", "abs", "tanh", "sigmoid", "sin", "cos", "atan", "neg", "pos", "id",
                 "transpose", "broadcast", "index", "stack", "amax", "amin", "max", "min", "softmax"}
_HUGE = 1e300   # a bound below which a sum of a few products cannot overflow
BIG = 65536   # a matrix input of this many elements has its outer products made at once, in a reused buffer
MAX_PLAN_NODES = 20_000
FAILURES = (ArithmeticError, ValueError, TypeError, IndexError)   # larger graphs are interpreted (a plan's source grows with the graph)


def _np():
    import numpy as np

    return np


def plan(graph, output: int, wanted: tuple | None = None, keep: tuple | None = None, trusted: bool = True,
         checked: bool = True):
    """The compiled passes for `output` (a scalar node): gradients of the nodes `wanted` (default:
    every node the interpreter gives one, that is every named one and what depends on them), values
    of the nodes `keep` (default: every named node). `trusted`: the inputs are known finite (the
    program checks what it is given; a fit's parameters are checked by the fit). Not `checked`: the
    gradients returned are the caller's to check (a fit checks them at once, flattened). Cached on the
    graph; None if it cannot be compiled (then callers interpret)."""
    cache = graph.__dict__.setdefault("_plans", {})
    key = (output, wanted, keep, trusted, checked)
    if key not in cache:
        cache[key] = None   # too large, or a rule this cannot write: interpreted
        if len(graph) <= MAX_PLAN_NODES:
            try:
                cache[key] = _compile(graph, output, wanted, keep, trusted, checked)
            except (*FAILURES, KeyError, AttributeError, SyntaxError, RecursionError):
                pass
    return cache[key]


class Plan:
    """run(inputs) -> (values, adjoints), lists over the graph's nodes (None where not computed),
    or None where a check failed (see the module's docstring)."""

    def __init__(self, function, inputs, keep, wanted, pools):
        # function(*arguments) is the pass itself (under np.errstate(all="ignore"), the caller's)
        self.function, self.inputs, self.keep, self.wanted = function, inputs, keep, wanted
        self._pools = pools

    def arguments(self, inputs: dict) -> list:
        """The function's arguments: each input (by name in `inputs`) as a float array, or a NumPy
        scalar (a 0-d array costs an array's overhead on every operation)."""
        np = _np()
        return [np.float64(x) if not getattr(x, "ndim", 0) else np.asarray(x, dtype=float)
                for x in map(inputs.__getitem__, self.inputs)]

    def run(self, inputs: dict):
        np = _np()
        with np.errstate(all="ignore"):
            try:
                return self.function(*self.arguments(inputs))
            except FAILURES:   # (none is expected: the interpreter then says what it is)
                return None


class _Pool:
    """A reusable array: handed out again only when nothing but the pool holds it (the lock: two
    threads running one plan never get the same one)."""

    __slots__ = ("shape", "array", "lock")

    def __init__(self, shape):
        import threading

        self.shape, self.array, self.lock = shape, None, threading.Lock()

    def get(self):
        with self.lock:
            array = self.array
            # held by self.array, by `array` here and by getrefcount's argument: by nobody else
            if array is None or sys.getrefcount(array) > 3:
                self.array = array = _np().empty(self.shape)
            return array


def _compile(graph, output, wanted, keep, trusted, checked):
    np = _np()
    m = backend("numpy")
    n = len(graph)
    ops, args, shape, attrs = graph.op, graph.args, graph.shape, graph.attrs
    names = graph.names
    inputs = [name for name in graph.inputs]
    input_nodes = {names[name]: k for k, name in enumerate(inputs)}
    if keep is None:
        keep = tuple(sorted(set(names.values())))
    # which nodes' adjoints are wanted: the interpreter's needs_gradient, or the requested leaves'
    if wanted is None:
        from ..language.graph import needs_gradient

        needs = needs_gradient(graph)
    else:
        needs = [False] * n
        for j in wanted:
            needs[j] = True
        for i in range(n):
            if not needs[i] and any(needs[j] for j in args[i]):
                needs[i] = True
    # the nodes computed: what the output and the kept values depend on
    live = [False] * n
    for j in (output,) + tuple(keep):
        live[j] = True
    for i in range(n - 1, -1, -1):
        if live[i]:
            for j in args[i]:
                live[j] = True
    # constants: nodes that depend on no input, computed now with the interpreter's own calls
    op_of = ops.__getitem__
    const = {}
    with np.errstate(all="ignore"):
        for i in range(n):
            if not live[i] or i in input_nodes or needs[i] and op_of(i) is not None:
                continue   # (a computed constant whose gradient is asked for is computed, to get it)
            op = ops[i]
            if op is None:
                const[i] = np.asarray(graph.value0[i], dtype=float)
            elif all(j in const for j in args[i]):
                xs = [const[j] for j in args[i]]
                value = op.value(np, attrs.get(i), *xs) if op.__class__ is ArrayOp else op.rule(m, *xs)
                const[i] = np.asarray(value, dtype=float)
            else:
                continue
            if not np.isfinite(const[i]).all():
                return None   # the interpreter raises its error
            if not const[i].ndim:
                const[i] = const[i][()]   # a NumPy scalar: the same numbers, without an array's overhead
    consumers = [[] for _ in range(n)]
    for i in range(n):
        if live[i]:
            for k, j in enumerate(args[i]):
                consumers[j].append((i, k))

    def key(i):
        op = ops[i]
        return None if op is None else op.key

    # a broadcast used only by + - * / : NumPy broadcasts it there
    elided = {i for i in range(n) if live[i] and i not in const and key(i) == "broadcast"
              and consumers[i] and all(key(c) in _EXACT for c, _ in consumers[i])}

    env = {"one": np.float64(1.0), "np": np, "m": m, "add": np.add.reduce, "full": _full, "unbroadcast": unbroadcast, "_ok": _ok, "isf": math.isfinite,
           "ArrayOp": ArrayOp}
    pools = []
    lines = []
    v = lambda j: f"K{j}" if j in const else f"v{j}"
    writer = _Writer(np, env, lines)
    operand = lambda j: _Src(writer, v(j), const.get(j), actual(j))

    def actual(j):
        """The shape of node j's variable: an elided broadcast's is its argument's."""
        while j in elided:
            j = args[j][0]
        return shape[j]
    for j, value in const.items():
        env[f"K{j}"] = value

    # -- forward
    finite = set(const) | (set(input_nodes) if trusted else set())   # known finite without a check
    tested = set()

    def check(j, out):
        if j in finite or j in tested:
            return
        tested.add(j)
        finite.add(j)
        out.append(_test(v(j), shape[j]))

    for i in range(n):
        if not live[i] or i in const or i in input_nodes:
            continue
        op, a = ops[i], args[i]
        text = None
        if i not in elided and op.__class__ is not ArrayOp and op.key not in _EXACT and op.arity:
            text = _written(writer, op.rule, *[operand(j) for j in a])
        # the arguments of an operation that can hide a NaN or infinity are checked (relu written as
        # |x·m| hides none: a NaN or -inf argument gives NaN)
        propagates = op.key in _PROPAGATES or op.key == "relu" and text and text.startswith("np.abs(")
        for k, j in enumerate(a):
            if not propagates and not (op.key == "div" and k == 0):
                check(j, lines)
        xs = [v(j) for j in a]
        if i in elided:
            lines.append(f"    v{i} = {xs[0]}")
        elif op.key in _EXACT:
            lines.append(f"    v{i} = {xs[0]} {_EXACT[op.key]} {xs[1]}")
        elif op.key == "matmul":
            lines.append(f"    v{i} = {xs[0]} @ {xs[1]}")
        elif op.key == "transpose":
            lines.append(f"    v{i} = {xs[0]}.T")
        elif op.key in ("sum", "mean"):   # ops' _sum_value: np.sum, that is np.add.reduce
            over = _over(attrs.get(i), shape[a[0]])
            count = "" if op.key == "sum" else f" / {math.prod(shape[a[0]]) if over is None else shape[a[0]][over]}"
            lines.append(f"    v{i} = add({xs[0]}, {over}){count}")
        elif op.__class__ is ArrayOp:
            env[f"F{i}"], env[f"A{i}"] = op.value, attrs.get(i)
            lines.append(f"    v{i} = np.asarray(F{i}(np, A{i}, {', '.join(xs)}), dtype=float)")
        else:
            if text:
                lines.append(f"    v{i} = {text}")
            else:
                env[f"R{i}"] = op.rule
                lines.append(f"    v{i} = R{i}(m, {', '.join(xs)})")
        if op.key in _KEEPS_FINITE and all(j in finite for j in a):
            finite.add(i)
    # what is returned: the output and the kept values, checked
    for j in dict.fromkeys((output,) + tuple(keep)):
        if j not in const and j not in input_nodes:
            check(j, lines)

    # -- reverse: the adjoint of every needed node reached from the output
    reached = [False] * n
    reached[output] = True
    has = set()        # nodes whose adjoint variable exists
    rank1 = {}         # large matrix input -> the (g, y) of the outer products its adjoint sums
    lines.append(f"    g{output} = one")
    has.add(output)

    def contribute(j, expr, out, outer=None):
        """adjoint[j] += expr (the first: adjoint[j] = expr). `outer` = (g, y): expr is outer(g, y).
        A large matrix input's outer products are kept as their factors, and made at once, into a
        buffer of the plan's, when the sum is complete (or something else is added to it)."""
        if outer is not None and ops[j] is None and len(shape[j]) == 2 and math.prod(shape[j]) >= BIG:
            bound = f"np.max(np.abs({outer[0]})) * np.max(np.abs({outer[1]}))"
            if j not in has:
                has.add(j)
                rank1[j] = [outer]
                env[f"P{j}"] = pool = _Pool(shape[j])
                pools.append(pool)
                out.append(f"    b{j} = {bound}")
                return
            if j in rank1:
                rank1[j].append(outer)
                out.append(f"    b{j} = b{j} + {bound}")
                return
        if j in rank1:
            materialize(j, out)
        if j in has:
            out.append(f"    g{j} = g{j} + {expr}")
        else:
            has.add(j)
            out.append(f"    g{j} = {expr}")

    def materialize(j, out):
        pairs = rank1.pop(j)
        out.append(f"    g{j} = P{j}.get()")
        if len(pairs) == 1:   # np.outer's own multiply
            out.append(f"    np.multiply({pairs[0][0]}[:, None], {pairs[0][1]}, out=g{j})")
        else:   # Σ g yᵀ as one matrix product (each element rounded once, not once per term)
            gs, ys = (", ".join(p[side] for p in pairs) for side in (0, 1))
            out.append(f"    np.matmul(np.stack(({gs}), axis=1), np.stack(({ys})), out=g{j})")

    lazy = {}
    returned = set(names.values()) if wanted is None else set(wanted)   # their adjoints are arrays

    def written_partial(i, k):
        """Node i's k-th partial written out, and its shape; None if it cannot be."""
        op = ops[i]
        if op.key in _EXACT or op.arity == 0 or op.key in ("neg", "pos", "id"):
            return None
        out = _Src(writer, f"v{i}", None, shape[i])
        try:
            src = writer.lift(op.partial_rules[k](writer, out, *[operand(j) for j in args[i]]))
        except (_Unwritable, ArithmeticError, ValueError):
            return None
        return src.text, src.shape, src.scaled

    for i in range(output, -1, -1):
        if i not in has or ops[i] is None or i in const:
            continue
        op, a = ops[i], args[i]
        g = f"g{i}"
        xs = [v(j) for j in a]
        targets = [(k, j) for k, j in enumerate(a) if needs[j] and (j not in const or ops[j] is None)]
        if not targets:
            continue
        if i in elided or op.key == "broadcast":
            j = a[0]
            contribute(j, _unbroadcast_text(g, shape[i], shape[j]), lines)
            continue
        one_number = not shape[i]   # g{i} is a (NumPy) scalar
        if i in lazy:   # g{i} is a scalar standing for an array of node i's shape filled with it
            full_shape = lazy.pop(i)
            parts = [written_partial(i, k) for k, _ in targets] if op.__class__ is not ArrayOp else []
            keeps = all(p is not None and p[1] == full_shape for p in parts) or op.key == "mul" and all(
                actual(a[1 - k]) == full_shape for k, _ in targets)
            if not parts or not keeps:
                lines.append(f"    {g} = full({full_shape!r}, {g})")
            else:
                one_number = True
        if op.key in _EXACT or op.__class__ is not ArrayOp:
            for k, j in targets:
                if op.key == "add" or op.key in ("pos", "id") or (op.key == "sub" and k == 0):
                    expr = g
                elif op.key == "sub" or op.key == "neg":
                    expr = f"(-{g})"
                elif op.key == "mul":
                    expr = f"{g} * {xs[1 - k]}"
                elif op.key == "div":
                    expr = f"{g} * (1.0 / {xs[1]})" if k == 0 else f"{g} * ((-v{i}) / {xs[1]})"
                elif op.arity == 0:
                    env[f"Q{i}"] = op.partial_rules[0]
                    expr = f"{g} * Q{i}(m, {k}, v{i}, ({', '.join(xs)},))"
                else:
                    text = written_partial(i, k)
                    if text and one_number and text[2]:   # g·(c·x) as (g·c)·x: one array operation
                        expr = f"({g} * {text[2][0]!r}) * {text[2][1]}"
                    elif text:
                        expr = f"{g} * {text[0]}"
                    else:
                        env[f"Q{i}_{k}"] = op.partial_rules[k]
                        expr = f"{g} * Q{i}_{k}(m, v{i}, {', '.join(xs)})"
                contribute(j, expr, lines)
            continue
        if op.key == "matmul":
            lines.append(_test(g, shape[i]))
            x, y = xs
            dx, dy = len(shape[a[0]]), len(shape[a[1]])
            for k, j in targets:
                if dx == 1 and dy == 1:
                    contribute(j, f"{g} * {y if k == 0 else x}", lines)
                elif dy == 1:
                    if k == 0:   # np.outer's own multiply
                        contribute(j, f"({g}[:, None] * {y})", lines, outer=(g, y))
                    else:
                        contribute(j, f"{x}.T @ {g}", lines)
                elif dx == 1:
                    contribute(j, f"{y} @ {g}" if k == 0 else f"np.outer({x}, {g})", lines)
                else:
                    contribute(j, f"{g} @ {y}.T" if k == 0 else f"{x}.T @ {g}", lines)
            continue
        if op.key == "transpose":
            contribute(a[0], f"{g}.T", lines)
            continue
        if op.key in ("sum", "mean") and _over(attrs.get(i), shape[a[0]]) is None:
            # ops' _spread: g filled into an array of x's shape (then divided by the count, for mean);
            # where x is used only here, its adjoint is kept as the scalar until a rule needs the array
            j = a[0]
            if len(consumers[j]) == 1 and j not in has and ops[j] is not None and ops[j].__class__ is not ArrayOp \
                    and j not in elided and j not in returned:
                has.add(j)
                lazy[j] = shape[j]
                lines.append(f"    g{j} = {g}" + ("" if op.key == "sum" else f" / {math.prod(shape[j])}"))
                continue
            if op.key == "sum":
                contribute(j, f"full({shape[j]!r}, {g})", lines)
            else:
                contribute(j, f"full({shape[j]!r}, {g}) / {math.prod(shape[j])}", lines)
            continue
        env[f"J{i}"], env[f"A{i}"] = op.vjp, attrs.get(i)
        if op.key in ("outer",):
            lines.append(_test(g, shape[i]))
        lines.append(f"    c{i} = J{i}(np, A{i}, {g}, v{i}, {', '.join(xs)})")
        for k, j in targets:
            env[f"S{j}"] = shape[j]
            lines.append(f"    c = np.asarray(c{i}[{k}], dtype=float)")
            lines.append(f"    if c.shape != S{j}: c = np.broadcast_to(c, S{j})")
            contribute(j, "c", lines)
    bounded = set(rank1)   # sums of outer products only: finite by their bound
    for j in list(rank1):
        materialize(j, lines)
    # the gradients returned, checked (a sum of outer products by its bound, else whole)
    want = [j for j in range(n) if needs[j] and j in has and (wanted is None and j in names.values()
                                                                or wanted is not None and j in wanted)]
    for j in want if checked else ():
        if j in bounded:
            lines.append(f"    if not b{j} < {_HUGE!r}:")
            lines.append("    " + _test(f"g{j}", shape[j]))
        else:
            lines.append(_test(f"g{j}", shape[j]))
    values = ", ".join(f"{j}: {v(j)}" for j in dict.fromkeys((output,) + tuple(keep)))
    grads = ", ".join(f"{j}: g{j}" for j in want)
    lines.append(f"    return {{{values}}}, {{{grads}}}")
    params = ", ".join(f"v{names[name]}" for name in inputs)
    source = f"def run({params}):\n" + "\n".join(lines) + "\n"
    # our own text, made from node numbers and the op table, never a file's (as ops.py's float table)
    exec(compile(source, "<array plan>", "exec"), env)  # noqa: S102
    result = Plan(env["run"], inputs, keep, want, pools)
    result.source = source
    result.zeros = [j for j in (range(n) if wanted is None else wanted)
                    if needs[j] and j not in has and (wanted is not None or j in names.values())]
    return result


# ---------------------------------------------------------------- rules written out as NumPy source

_NUMPY_NAMES = {"pow": "power", "asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2"}


class _Src:
    """A rule's value being written as source: text, and its array when it is a constant (then an
    operation on constants only is done now, once, with the same NumPy calls, and named)."""

    __slots__ = ("text", "value", "space", "shape", "scaled")

    def __init__(self, space, text, value=None, shape=()):
        self.space, self.text, self.value, self.scaled = space, text, value, None
        self.shape = shape if value is None else _np().shape(value)

    def _binary(self, symbol, function, other, swap=False):
        return self.space.combine(symbol, function, (other, self) if swap else (self, other))

    __add__ = lambda s, o: s._binary("+", lambda a, b: a + b, o)
    __radd__ = lambda s, o: s._binary("+", lambda a, b: a + b, o, True)
    __sub__ = lambda s, o: s._binary("-", lambda a, b: a - b, o)
    __rsub__ = lambda s, o: s._binary("-", lambda a, b: a - b, o, True)
    __mul__ = lambda s, o: s._binary("*", lambda a, b: a * b, o)
    __rmul__ = lambda s, o: s._binary("*", lambda a, b: a * b, o, True)
    __truediv__ = lambda s, o: s._binary("/", lambda a, b: a / b, o)
    __rtruediv__ = lambda s, o: s._binary("/", lambda a, b: a / b, o, True)
    __gt__ = lambda s, o: s._binary(">", lambda a, b: a > b, o)
    __ge__ = lambda s, o: s._binary(">=", lambda a, b: a >= b, o)
    __lt__ = lambda s, o: s._binary("<", lambda a, b: a < b, o)
    __le__ = lambda s, o: s._binary("<=", lambda a, b: a <= b, o)
    __hash__ = None

    def __neg__(self):
        return self.space.call("negative", self)


class _Writer:
    """The numpy backend's namespace (ops._NumPy), writing source instead of computing: each method
    is the NumPy call the backend makes, so the text computes what the backend computes."""

    def __init__(self, np, env, lines):
        # a comparison of values is written once, as a name (relu's mask serves its partial too)
        self.np, self.env, self.lines, self.masks = np, env, lines, {}
        self.compared, self.floats = {}, {}   # mask -> (left, symbol, right); mask -> its 1.0/0.0 array
        self.nan = _Src(self, "np.nan", np.nan)
        for f in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log", "log2",
                  "log10", "log1p", "sqrt", "fabs", "pow", "atan2", "hypot"):
            setattr(self, f, (lambda name: lambda *xs: self.call(name, *xs))(_NUMPY_NAMES.get(f, f)))

    def lift(self, x):
        if isinstance(x, _Src):
            return x
        if isinstance(x, float) and math.isfinite(x):
            return _Src(self, repr(x), x)
        if isinstance(x, bool) or not isinstance(x, float):
            raise _Unwritable
        raise _Unwritable

    def constant(self, value):
        name = f"C{len(self.env)}"
        self.env[name] = value
        return _Src(self, name, value)

    def combine(self, symbol, function, operands):
        a, b = map(self.lift, operands)
        if a.value is not None and b.value is not None:
            return self.constant(function(a.value, b.value))
        src = _Src(self, f"({a.text} {symbol} {b.text})", shape=self.np.broadcast_shapes(a.shape, b.shape))
        if symbol == "*":   # c·x, c a constant power of two throughout (2·W of `W^2`): noted, see scaled()
            for c, x in ((a, b), (b, a)):
                if c.value is not None and x.value is None and src.shape == x.shape:
                    src.scaled = scaled(c.value, x.text)
        if symbol in ("<", "<=", ">", ">="):
            if src.text not in self.masks:
                self.masks[src.text] = name = f"M{len(self.masks)}"
                self.compared[name] = (a.text, symbol, b.text)
                self.lines.append(f"    {name} = {src.text}")
            src.text = self.masks[src.text]
        return src

    def call(self, name, *xs):
        xs = [self.lift(x) for x in xs]
        if all(x.value is not None for x in xs):
            return self.constant(getattr(self.np, name)(*[x.value for x in xs]))
        if name == "power" and xs[1].value is not None and (xs[1].value == 1.0).all() \
                and self.np.broadcast_shapes(xs[0].shape, xs[1].shape) == xs[0].shape:
            # x^1 is x itself (a pow within an ulp has no other choice; NaN and ±inf too): the power
            # rule's y·x^(y−1) of `W^2` is 2·W, the same bits without a pow per element
            return xs[0]
        return _Src(self, f"np.{name}({', '.join(x.text for x in xs)})",
                    shape=self.np.broadcast_shapes(*[x.shape for x in xs]))

    def where(self, cond, a, b):
        cond, a, b = self.lift(cond), self.lift(a), self.lift(b)
        if cond.value is not None and cond.value.dtype == bool:   # a constant choice, made now
            whole = self.np.broadcast_shapes(cond.shape, a.shape, b.shape)
            for chosen, everywhere in ((a, cond.value.all()), (b, not cond.value.any())):
                if everywhere and chosen.shape == whole:
                    return chosen
        # np.where costs several times a multiply; two of its forms, written as exact arithmetic:
        zero = b.value is not None and not b.shape and b.value == 0.0 and math.copysign(1.0, b.value) > 0
        if cond.text in self.compared and zero and not cond.shape == () and cond.shape == whole_shape(cond, a, b):
            if a.value is not None and not a.shape and a.value == 1.0:   # where(m, 1, 0): m as 1.0/0.0
                return _Src(self, self.floated(cond.text), shape=cond.shape)
            if self.compared[cond.text] == (a.text, ">", "0.0"):
                # where(x > 0, x, 0) (relu): |x·m| is x where x > 0 and +0 elsewhere; where x is
                # NaN or -inf it is NaN, not 0: a check then fails, and the interpreter runs
                return _Src(self, f"np.abs({a.text} * {self.floated(cond.text)})", shape=cond.shape)
        return self.call("where", cond, a, b)

    def floated(self, mask):
        if mask not in self.floats:
            self.floats[mask] = name = f"MF{mask[1:]}"
            self.lines.append(f"    {name} = {mask}.astype(float)")
        return self.floats[mask]

    def both(self, a, b):
        return self.call("logical_and", a, b)

    def eq(self, a, b):
        return self.call("equal", a, b)

    def op(self, key, *args):
        from ..ops import OPS

        return OPS[key].rule(self, *args)

    def __getattr__(self, name):   # count_equal, min, max: not written out (the caller falls back)
        raise _Unwritable


def scaled(c, text):
    """(c, text) if c is one power of two throughout (so g·(c·x) is (g·c)·x exactly: c·x and g·c only
    move exponents; where g·c overflows and g·(c·x) would not, the gradient is inf, which the checks
    catch, and the interpreter runs), else None."""
    np = _np()
    c = np.ravel(c)
    first = float(c[0])
    if first and math.isfinite(first) and abs(math.frexp(first)[0]) == 0.5 and (c == first).all():
        return first, text
    return None


def whole_shape(*xs):
    return _np().broadcast_shapes(*[x.shape for x in xs])


class _Unwritable(Exception):
    pass


def _written(writer, rule, *operands):
    """A rule applied to operands (source text, or constant arrays by name), as source; None where it
    cannot be written out."""
    try:
        text = writer.lift(rule(writer, *operands))
    except (_Unwritable, ArithmeticError, ValueError):
        return None
    return text.text


def _unbroadcast_text(g, have, shape) -> str:
    """ops.unbroadcast(np, g, shape) for a g of shape `have`, as the reductions it makes."""
    if have == shape:
        return g
    if not shape:
        return f"add({g}, None)"
    lead = len(have) - len(shape)
    text = f"add({g}, {tuple(range(lead))!r})" if lead else g
    rest = have[lead:]
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and rest[i] != 1)
    return f"add({text}, {stretched!r}, keepdims=True)" if stretched else text


def _over(attrs, shape):
    """The axis a reduction runs over (ops._over): None for all of them."""
    axis = attrs.get("axis") if attrs else None
    return None if axis is None or len(shape) == 1 else axis


def _full(shape, g):
    out = _np().empty(shape)
    out[...] = g
    return out


def _test(name, shape) -> str:
    """The line that returns None unless every element of `name` is finite: its sum is (an inf or
    NaN makes the sum one; a finite array whose sum overflows gets the exact test)."""
    if not shape:
        return f"    if not isf({name}): return None"
    return f"    if not isf(add({name}, None)) and not _ok({name}): return None"


def _ok(array) -> bool:
    return bool(_np().isfinite(array).all())
