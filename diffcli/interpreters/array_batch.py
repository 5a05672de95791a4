"""The array engine over many points at once: every node's value has a leading point axis, or none
where it is the same at every point (constants, inputs given one value).

    >>> import numpy as np, diffcli
    >>> from diffcli.interpreters import array_batch
    >>> program = diffcli.parse("W = [[1, 2], [3, 4]]\\nx = [0, 0]\\ny = sum(tanh(W @ x))")
    >>> points = {"x": np.array([[0.0, 0.0], [1.0, -1.0]])}          # (n,) + x's shape
    >>> result = array_batch.run(program, points)                        # per-point gradients
    >>> result.value.shape, result.gradients["x"].shape, result.gradients["W"].shape
    ((2,), (2, 2), (2, 2, 2))
    >>> mean = array_batch.run(program, points, reduce="mean")          # their mean over the points
    >>> mean.gradients["W"].shape
    (2, 2)

`run(program, points, fixed=None, of=None, *, gradients=True, reduce=None, all_names=False)`:
`points` maps inputs to arrays of shape (n,) + the input's shape (one value per point); `fixed`
maps inputs to one value for every point (as --set); the other inputs keep their defaults. With
`reduce` "sum" or "mean", each gradient has its input's shape: the sum (or mean) over the points
that did not fail, computed without per-point gradients of inputs that are the same at every point
(a weight matrix shared by a data set). The result's `failed` and `errors` say which points failed
and why: exactly the error `Program.grad` gives at that point (a failed point is computed again by
the one-point array engine, which names the element: `log` of -0.2 at x[3]).

The math is ops.py's: elementwise nodes apply their scalar entries to NumPy arrays (a value with
a point axis broadcasts against one without, aligned on the right, since an elementwise node's
arguments have its own shape); each structural op has a batching rule in `RULES` below, its value
and vjp with an optional leading point axis on every argument and cotangent (JAX's vmap rules are
the model). In reduce mode the adjoint of a node that is the same at every point is kept summed over
the points (linear from there up: its ancestors are the same at every point too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

import numpy as np

from ..errors import DiffcliError
from ..language.graph import needs_gradient
from ..ops import ArrayOp, _index_key, apply_partial, backend

CHUNK = 1 << 15        # points per pass at most
BUDGET = 1 << 23       # numbers per pass (64 MB of doubles) for the values and adjoints that vary


# ================================================================ batching rules of the structural ops
# Each rule sees per-point ndims `nds` (graph.shape's lengths); an array with one more axis than its
# ndim carries the point axis first. Reduction axes are counted from the end so they hold either way.

def _lead(x, nd: int) -> int:
    return x.ndim - nd


def _axes(attrs, nd: int) -> tuple:
    axis = attrs.get("axis") if attrs else None
    if axis is None or nd == 1:
        return tuple(range(-nd, 0))
    return (-2,) if axis == 0 else (-1,)


def _swap(x, nd):
    return x if nd < 2 else np.swapaxes(x, -1, -2)


def _mm(x, y, ndx: int, ndy: int):
    """x @ y per point, either side with a point axis or not (one BLAS call where one side varies)."""
    lx, ly = _lead(x, ndx), _lead(y, ndy)
    if not ly:
        return x @ y                        # (n, …) @ fixed: matmul's own broadcasting is per point
    if not lx:
        return y @ _swap(x, ndx) if ndy == 1 else x @ y
    x1 = x[:, None, :] if ndx == 1 else x
    y1 = y[..., None] if ndy == 1 else y
    r = x1 @ y1
    if ndy == 1:
        r = r[..., 0]
    return r[:, 0] if ndx == 1 else r


def _outer(a, b):
    # (einsum: the same products, at two to three times the speed of a[..., :, None] * b[..., None, :])
    return np.einsum("...i,...j->...ij", a, b)


def _summed_outer(a, b, la, lb):
    """Σ over the points of outer(a, b)."""
    if la and lb:
        return a.T @ b
    return np.outer(a.sum(0) if la else a, b.sum(0) if lb else b)


def _matmul_vjp(attrs, g, out, xs, nds, nd_out, sums):
    (x, y), (ndx, ndy) = xs, nds
    lg, lx, ly = _lead(g, nd_out), _lead(x, ndx), _lead(y, ndy)
    cx = cy = None
    if ndx == 1 and ndy == 1:
        ge = np.expand_dims(g, -1)
        cx, cy = ge * y, ge * x
        if sums[0]:
            cx = g @ y if lg and ly else (g.sum(0) if lg else g) * (y.sum(0) if ly else y)
        if sums[1]:
            cy = g @ x if lg and lx else (g.sum(0) if lg else g) * (x.sum(0) if lx else x)
        return cx, cy
    if ndy == 1:    # matrix @ vector
        cx = _summed_outer(g, y, lg, ly) if sums[0] else _outer(g, y)
        cy = _mm(_swap(x, 2), g, 2, 1)
        if sums[1]:
            cy = np.tensordot(x, g, axes=([0, 1], [0, 1])) if lx and lg else cy.sum(0) if cy.ndim > 1 else cy
        return cx, cy
    if ndx == 1:    # vector @ matrix
        cx = _mm(y, g, 2, 1)
        if sums[0]:
            cx = np.tensordot(y, g, axes=([0, 2], [0, 1])) if ly and lg else cx.sum(0) if cx.ndim > 1 else cx
        cy = _summed_outer(x, g, lx, lg) if sums[1] else _outer(x, g)
        return cx, cy
    cx = (np.tensordot(g, y, axes=([0, 2], [0, 2])) if lg and ly else None) if sums[0] else None
    cy = (np.tensordot(x, g, axes=([0, 1], [0, 1])) if lx and lg else None) if sums[1] else None
    if cx is None:
        cx = _mm(g, _swap(y, 2), 2, 2)
        cx = cx.sum(0) if sums[0] and cx.ndim > 2 else cx
    if cy is None:
        cy = _mm(_swap(x, 2), g, 2, 2)
        cy = cy.sum(0) if sums[1] and cy.ndim > 2 else cy
    return cx, cy


def _spread(g, ax, x_shape, lead_shape):
    return np.broadcast_to(np.expand_dims(g, ax), lead_shape + x_shape)


def _reduction(value, back):
    """A one-array reduction: value(x, ax) and back(g, out, x, ax) -> the cotangent."""
    return (lambda attrs, xs, nds: value(xs[0], _axes(attrs, nds[0])),
            lambda attrs, g, out, xs, nds, nd_out, sums: (back(g, out, xs[0], _axes(attrs, nds[0]), nds[0],
                                                               nd_out),))


def _sum_back(g, out, x, ax, nd, nd_out):
    return _spread(g, ax, x.shape[x.ndim - nd:], g.shape[:_lead(g, nd_out)])


def _count(x, ax):
    return math.prod(x.shape[a] for a in ax)


def _shares(out, x, ax):
    tied = (x == np.expand_dims(out, ax)).astype(float)
    return tied / np.sum(tied, axis=ax, keepdims=True)


def _logsumexp(x, ax):
    top = np.max(x, axis=ax, keepdims=True)
    return np.squeeze(top, axis=ax) + np.log(np.sum(np.exp(x - top), axis=ax))


def _norm(x, ax):
    top = np.max(np.abs(x), axis=ax, keepdims=True)  # scaled, as hypot: the squares alone under/overflow
    top = np.where((top > 0) & (top < np.inf), top, 1.0)
    return np.squeeze(top, axis=ax) * np.sqrt(np.sum((x / top) ** 2, axis=ax))


def _softmax(x, ax):
    e = np.exp(x - np.max(x, axis=ax, keepdims=True))
    return e / np.sum(e, axis=ax, keepdims=True)


def _dot(x, y, lx, ly):
    if lx and ly:
        return np.einsum("nk,nk->n", x, y)
    return y @ x if ly else x @ y


def _broadcast_value(attrs, xs, nds):
    (x,), (nd,), target = xs, nds, attrs["shape"]
    if not _lead(x, nd):
        return np.broadcast_to(x, target)
    n = x.shape[0]
    return np.broadcast_to(x.reshape((n,) + (1,) * (len(target) - nd) + x.shape[1:]), (n,) + target)


def _broadcast_vjp(attrs, g, out, xs, nds, nd_out, sums):
    (x,), (nd,), target = xs, nds, attrs["shape"]
    lg = _lead(g, nd_out)
    shape = x.shape[x.ndim - nd:]
    k = len(target) - nd
    axes = [lg + a for a in range(k)] + [lg + k + i for i, d in enumerate(shape) if d == 1 and target[k + i] != 1]
    r = g.sum(axis=tuple(axes), keepdims=True) if axes else g
    return (r.reshape(g.shape[:lg] + shape),)


def _index_value(attrs, xs, nds):
    (x,), (nd,) = xs, nds
    return x[(slice(None),) * _lead(x, nd) + _index_key(attrs)]


def _index_vjp(attrs, g, out, xs, nds, nd_out, sums):
    (x,), (nd,) = xs, nds
    lg = _lead(g, nd_out)
    whole = np.zeros(g.shape[:lg] + x.shape[x.ndim - nd:])
    whole[(slice(None),) * lg + _index_key(attrs)] = g
    return (whole,)


def _stack_value(attrs, xs, nds):
    leads = [_lead(x, nd) for x, nd in zip(xs, nds)]
    if not any(leads):
        return np.stack(xs)
    n = next(x.shape[0] for x, lead in zip(xs, leads) if lead)
    shape = (n,) + xs[0].shape[leads[0]:]
    return np.stack([np.broadcast_to(x, shape) for x in xs], axis=1)


def _stack_vjp(attrs, g, out, xs, nds, nd_out, sums):
    lg = _lead(g, nd_out)
    return tuple(g[(slice(None),) * lg + (k,)] for k in range(len(xs)))


class Batching(NamedTuple):
    """A structural op's batching rule. value(attrs, xs, nds); vjp(attrs, g, out, xs, nds, nd_out,
    sums) -> a cotangent per argument, each with a point axis or not; `sums[k]` (only for rules with
    `sums`) asks for argument k's cotangent summed over the points already."""

    value: Callable
    vjp: Callable
    sums: bool = False


def _unary(value, back):
    return Batching(lambda attrs, xs, nds: value(xs[0], nds[0]),
                    lambda attrs, g, out, xs, nds, nd_out, sums: (back(g, out, xs[0], nds[0]),))


RULES: dict[str, Batching] = {
    "matmul": Batching(lambda attrs, xs, nds: _mm(xs[0], xs[1], *nds), _matmul_vjp, sums=True),
    "sum": Batching(*_reduction(lambda x, ax: np.sum(x, axis=ax), _sum_back)),
    "mean": Batching(*_reduction(lambda x, ax: np.sum(x, axis=ax) / _count(x, ax),
                                 lambda g, out, x, ax, nd, nd_out: _sum_back(g, out, x, ax, nd, nd_out) / _count(x, ax))),
    "amax": Batching(*_reduction(lambda x, ax: np.max(x, axis=ax),
                                 lambda g, out, x, ax, nd, nd_out: np.expand_dims(g, ax) * _shares(out, x, ax))),
    "amin": Batching(*_reduction(lambda x, ax: np.min(x, axis=ax),
                                 lambda g, out, x, ax, nd, nd_out: np.expand_dims(g, ax) * _shares(out, x, ax))),
    "logsumexp": Batching(*_reduction(_logsumexp, lambda g, out, x, ax, nd, nd_out:
                                      np.expand_dims(g, ax) * _softmax(x, ax))),
    "softmax": Batching(*_reduction(_softmax, lambda g, out, x, ax, nd, nd_out:
                                    out * (g - np.sum(g * out, axis=ax, keepdims=True)))),
    "dot": Batching(lambda attrs, xs, nds: _dot(xs[0], xs[1], _lead(xs[0], 1), _lead(xs[1], 1)),
                    lambda attrs, g, out, xs, nds, nd_out, sums: (np.expand_dims(g, -1) * xs[1],
                                                                  np.expand_dims(g, -1) * xs[0])),
    "outer": Batching(lambda attrs, xs, nds: _outer(*xs),
                      lambda attrs, g, out, xs, nds, nd_out, sums: ((g @ xs[1][..., :, None])[..., 0],
                                                                    (xs[0][..., None, :] @ g)[..., 0, :])),
    "transpose": _unary(lambda x, nd: _swap(x, nd), lambda g, out, x, nd: _swap(g, nd)),
    "norm": _unary(lambda x, nd: _norm(x, tuple(range(-nd, 0))),
                   lambda g, out, x, nd: np.expand_dims(np.where(g != 0, g / out, 0.0), tuple(range(-nd, 0))) * x),
    "broadcast": Batching(_broadcast_value, _broadcast_vjp),
    "index": Batching(_index_value, _index_vjp),
    "stack": Batching(_stack_value, _stack_vjp),
}


# ================================================================ the passes over one chunk

def _finite(x) -> bool:
    total = np.add.reduce(x, axis=None)
    return bool(total - total == 0.0) or bool(np.isfinite(x).all())


def _bad_points(x, nd: int, n: int):
    """The points at which x (with a point axis or not) has an element that is not finite."""
    if not _lead(x, nd):
        return np.ones(n, bool)
    return ~np.isfinite(x.reshape(n, -1)).all(axis=1)


def _varying(graph, given) -> list[bool]:
    varies = [False] * len(graph)
    for name in given:
        varies[graph.names[name]] = True
    for i, args in enumerate(graph.args):
        if args and any(varies[j] for j in args):
            varies[i] = True
    return varies


class _Pass:
    """One chunk's forward pass and (if asked) reverse pass."""

    def __init__(self, graph, leaves, n, output, needs, *, gradients, reduce):
        self.graph, self.n = graph, n
        self.bad = np.zeros(n, bool)
        self.dirty = False   # reduce mode met a value that is not finite: the chunk is done per point
        self.values = self._forward(leaves)
        self.adjoint = self._reverse(output, needs, reduce) if gradients else None

    def _mark(self, x, nd):
        if not _finite(x):
            self.bad |= _bad_points(x, nd, self.n)

    def _forward(self, leaves):
        graph, m = self.graph, backend("numpy")
        values, attrs, shape = leaves, graph.attrs, graph.shape
        for i, op in enumerate(graph.op):
            if op is None:
                continue
            xs = [values[j] for j in graph.args[i]]
            if op.__class__ is ArrayOp:
                value = RULES[op.key].value(attrs.get(i), xs, [len(shape[j]) for j in graph.args[i]])
            else:
                value = op.rule(m, *xs)
            values[i] = value = np.asarray(value, dtype=float)
            self._mark(value, len(shape[i]))
        return values

    def _reverse(self, output, needs, reduce):
        graph, values, n, m = self.graph, self.values, self.n, backend("numpy")
        shape, attrs = graph.shape, graph.attrs
        fixed = [_lead(v, len(s)) == 0 for v, s in zip(values, shape)]
        adjoint: list = [None] * len(graph)
        # in reduce mode, the adjoint of a node that is the same at every point is summed over them
        adjoint[output] = np.asarray(float(n) if reduce and fixed[output] else 1.0)
        for i in range(output, -1, -1):
            g, op = adjoint[i], graph.op[i]
            if g is None or op is None:
                continue
            a = graph.args[i]
            xs = [values[j] for j in a]
            out = values[i]
            per_point = not (reduce and fixed[i])   # g is per point (else summed already)
            if op.__class__ is ArrayOp:
                rule = RULES[op.key]
                sums = tuple(bool(reduce) and per_point and fixed[j] and rule.sums for j in a)
                cotangents = rule.vjp(attrs.get(i), g, out, xs, [len(shape[j]) for j in a], len(shape[i]), sums)
            else:
                sums = (False,) * len(a)
                cotangents = []
                for k, j in enumerate(a):
                    if not needs[j]:
                        cotangents.append(None)
                        continue
                    c = np.asarray(g * apply_partial(op, m, k, out, *xs), dtype=float)
                    if not _finite(c):  # a zero adjoint blocks an undefined partial (0·sqrt'(0))
                        c = np.where(g != 0, c, 0.0)
                    cotangents.append(c)
            for j, c, summed in zip(a, cotangents, sums):
                if not needs[j] or c is None:
                    continue
                c = np.asarray(c, dtype=float)
                nd = len(shape[j])
                if not _finite(c):
                    if reduce:
                        self.dirty = True
                        return None
                    self.bad |= _bad_points(c, nd, n)
                if reduce and fixed[j] and per_point and not summed:
                    c = c.sum(axis=0) if _lead(c, nd) else c * n
                if c.ndim < nd:
                    c = np.broadcast_to(c, shape[j])
                adjoint[j] = c if adjoint[j] is None else adjoint[j] + c
        return adjoint


# ================================================================ the API

@dataclass
class ArrayBatchResult:
    """Results at n points. Per point, arrays have a leading axis of n; where a point failed they
    hold NaN and `errors[point]` says why. With `reduce`, `gradients[name]` has the input's own
    shape: the sum or mean over the points that did not fail."""

    n: int
    output: str
    inputs: dict[str, np.ndarray]             # every input, as used: (n,) + its shape
    value: np.ndarray                         # the output's value: (n,) + its shape
    gradients: dict[str, np.ndarray] | None   # d(output)/d(input) (every named variable with all_names)
    values: dict[str, np.ndarray] | None      # every named variable's value (all_names)
    failed: np.ndarray                        # bool, per point
    errors: dict[int, DiffcliError]
    unused: list[str]
    reduce: str | None = None


def work_per_point(graph, given) -> int:
    """About how many operations on numbers one point's forward pass takes when the inputs `given`
    vary: the elements of every node that varies, a matrix product's times its inner size."""
    work = 0
    for i, varies in enumerate(_varying(graph, given)):
        if varies:
            size = math.prod(graph.shape[i])
            if getattr(graph.op[i], "key", None) == "matmul":
                size *= (graph.shape[graph.args[i][0]] or (1,))[-1]
            work += size
    return max(1, work)


def points_per_pass(graph, varies: list[bool], gradients: bool) -> int:
    """How many points one pass takes: the numbers that vary per point, values and adjoints, within
    BUDGET (at least one point: a single point's size is bounded by the program's arrays)."""
    per_point = sum(math.prod(s) for s, v in zip(graph.shape, varies) if v)
    per_point *= 3 if gradients else 1
    per_point += sum(math.prod(graph.shape[node]) for node in graph.names.values())  # results
    return max(1, min(CHUNK, BUDGET // max(per_point, 1)))


def _given(program, points: Mapping, fixed: Mapping | None):
    """The number of points, each varying input as an (n,) + shape array, and the inputs of one
    point (--set rules: names, shapes) with the fixed ones."""
    points = {name: np.asarray(column, dtype=float) for name, column in points.items()}
    lengths = {len(column) for column in points.values() if column.ndim}
    if len(lengths) > 1 or any(column.ndim == 0 for column in points.values()):
        raise DiffcliError("input", "every input given per point must have the same number of points: "
                           + ", ".join(f"{k}: {v.shape[:1]}" for k, v in points.items()))
    n = lengths.pop() if lengths else 1
    representative = {**dict(fixed or {}), **{name: _plain(column[0]) for name, column in points.items()}}
    inputs, unused = program._inputs(representative)
    graph = program.graph
    for name, column in points.items():
        if name in graph.inputs and column.shape[1:] != program.shape(name):  # (a scalar program's graph: no shapes)
            raise DiffcliError("input", f"`{name}` per point has shape {column.shape[1:]}, "
                               f"but the program's `{name}` has shape {program.shape(name)}")
    return n, points, inputs, unused


def _plain(value):
    return float(value) if np.ndim(value) == 0 else value


def run(program, points: Mapping[str, object], fixed: Mapping[str, object] | None = None, of: str | None = None,
        *, gradients: bool = True, reduce: str | None = None, all_names: bool = False) -> ArrayBatchResult:
    """See the module's docstring. `program` is a diffcli.Program (scalar or array: a scalar program
    is lowered too); names and shapes are checked as `Program.grad` checks them."""
    if reduce not in (None, "sum", "mean"):
        raise ValueError(f"reduce must be None, 'sum' or 'mean', not {reduce!r}")
    output = program.check_name(of, "--of") if of is not None else program.output
    n, points, inputs, unused = _given(program, points, fixed)
    if gradients:
        program._scalar_output(output)
    graph = program.graph
    if graph.shape is None:  # a scalar program: lowered too, so that one engine runs everything
        from ..language.arrays import lower

        graph = lower(program.base, {name: () for name in program.base.inputs})
    names = graph.names
    varying = {name: column for name, column in points.items() if name in graph.inputs}
    varies = _varying(graph, varying)
    needs = needs_gradient(graph)
    step = points_per_pass(graph, varies, gradients)
    shape = lambda name: graph.shape[names[name]]
    out_node = names[output]
    used = {name: varying.get(name, np.broadcast_to(np.asarray(inputs[name], dtype=float), (n,) + shape(name)))
            for name in graph.inputs}
    for name in unused:
        used[name] = np.broadcast_to(np.asarray(points.get(name, inputs[name]), dtype=float),
                                     (n,) + np.shape(inputs[name]))
    value = np.empty((n,) + shape(output))
    wanted = list(names) if all_names else list(graph.inputs)
    if gradients and reduce:
        grads = {name: np.zeros(shape(name)) for name in wanted}
    elif gradients:
        grads = {name: np.empty((n,) + shape(name)) for name in wanted}
    else:
        grads = None
    vals = {name: np.empty((n,) + shape(name)) for name in names} if all_names else None
    failed = np.zeros(n, bool)
    errors: dict[int, DiffcliError] = {}
    fixed_values = {name: np.asarray(inputs[name], dtype=float) for name in graph.inputs if name not in varying}

    def leaves(rows):
        values = [None if v is None else np.asarray(v, dtype=float) for v in graph.value0]
        for name, column in fixed_values.items():
            values[names[name]] = column
        for name, column in varying.items():
            values[names[name]] = column[rows]
        return values

    def one_pass(rows, mode):
        size = len(range(*rows.indices(n))) if isinstance(rows, slice) else len(rows)
        return _Pass(graph, leaves(rows), size, out_node, needs, gradients=gradients, reduce=mode)

    def store(rows, done: _Pass, keep):
        """Write the pass's results for the points `keep` (a bool mask over the pass's points)."""
        index = np.arange(n)[rows][keep]
        lead = lambda x, name: x[keep] if _lead(x, len(shape(name))) else np.broadcast_to(x, (len(index),) + shape(name))
        value[index] = lead(done.values[out_node], output)
        for name in vals or ():
            vals[name][index] = lead(done.values[names[name]], name)
        if grads is None:
            return
        for name in wanted:
            g = done.adjoint[names[name]]
            g = np.zeros(shape(name)) if g is None else g
            if reduce:
                # (a per-point adjoint of an input that varies; a summed one otherwise)
                grads[name] += (g[keep].sum(axis=0) if _lead(g, len(shape(name))) else g * len(index)) \
                    if varies[names[name]] else g
            else:
                grads[name][index] = lead(g, name) + 0.0

    with np.errstate(all="ignore"):
        for start in range(0, n, step):
            rows = slice(start, min(n, start + step))
            done = one_pass(rows, reduce)
            if done.dirty or done.bad.any():
                if reduce:  # find the failing points with per-point adjoints, then sum the others
                    done = one_pass(rows, None)
                    good = ~done.bad
                    if good.any():
                        again = one_pass(np.arange(n)[rows][good], reduce)
                        store(np.arange(n)[rows][good], again, np.ones(int(good.sum()), bool))
                else:
                    store(rows, done, ~done.bad)
                for point in np.flatnonzero(done.bad) + start:
                    _single(program, int(point), used, fixed, output, gradients, reduce, all_names,
                            value, grads, vals, failed, errors)
            else:
                store(rows, done, np.ones(rows.stop - rows.start, bool))
    if gradients and reduce == "mean":
        good = int(n - failed.sum())
        for name in grads:
            grads[name] = grads[name] / good if good else np.full(shape(name), math.nan)
    for name in unused:
        if grads is not None:
            grads[name] = np.zeros(np.shape(inputs[name])) if reduce else np.where(
                failed.reshape((n,) + (1,) * np.ndim(inputs[name])), math.nan, 0.0) + np.zeros(used[name].shape)
        if vals is not None:
            vals[name] = used[name]
    inputs_used = {name: used[name] for name in list(graph.inputs) + list(unused)}
    return ArrayBatchResult(n, output, inputs_used, value, grads, vals, failed, errors, unused, reduce)


def _single(program, point, used, fixed, output, gradients, reduce, all_names, value, grads, vals, failed, errors):
    """One point by the one-point engine: its exact error, or its result where that engine has one."""
    given = {**dict(fixed or {}), **{name: _plain(column[point]) for name, column in used.items()}}
    try:
        result = program.grad(given, output) if gradients else program.evaluate(given)
    except DiffcliError as error:
        failed[point] = True
        errors[point] = error
        value[point] = math.nan
        for table in (vals,) + (() if reduce else (grads,)):
            for column in (table or {}).values():
                column[point] = math.nan
        return
    value[point] = result.values[output]
    for name, column in (vals or {}).items():
        column[point] = result.values[name]
    for name, column in (grads or {}).items():
        if reduce:
            column += result.gradients[name]
        else:
            column[point] = result.gradients[name]


def scalar_columns(program, columns: Mapping[str, object], of: str | None = None, *, gradients: bool = True,
                   all_names: bool = False):
    """`batch.run`'s contract on an array program (plot's sweeps): a 1-D array for a scalar input
    is one value per point, any other value is the same at every point; the result is a
    result with batch.BatchResult's fields over the scalar variables (an array's value or gradient
    is not a column)."""
    graph = program.base
    points, fixed = {}, {}
    for name, column in columns.items():
        array = np.asarray(column, dtype=float) if not isinstance(column, (int, float)) else None
        scalar_input = name in graph.inputs and (graph.inputs[name] is None or not np.ndim(graph.inputs[name]))
        if array is not None and array.ndim == 1 and (scalar_input or name not in graph.names):
            points[name] = array
        else:
            fixed[name] = column
    result = run(program, points, fixed, of, gradients=gradients, all_names=all_names)
    scalar = lambda table: None if table is None else {k: v for k, v in table.items() if v.ndim == 1}
    if result.value.ndim != 1:
        raise DiffcliError("shape", f"the output `{result.output}` is an array; a chart needs a scalar output",
                           help=f"plot a scalar made of it, like sum({result.output}) or {result.output}[i] (--of NAME)")
    return ArrayBatchResult(result.n, result.output, scalar(result.inputs), result.value, scalar(result.gradients),
                            scalar(result.values), result.failed, result.errors, result.unused)


def kernel(program, inputs, of: str | None = None, *, gradients: bool = True) -> Callable[..., np.ndarray]:
    """`batch.kernel` on an array program: f(*arrays) -> an (n, k) array whose columns are
    `f.columns`: the output's value, then d(output)/d(label) for every element of every input, in
    file order and row-major (`dy/dW[0,1]`, `dy/dx[2]`, `dy/da`: CSV's columns). The given
    `inputs` come per point, the point axis leading: (n,) for a scalar input, (n,) + its shape for
    an array input (a Dask array's blocks, chunked along the points only); the other inputs keep
    their values. A free input is a scalar here; an array output does not fit an (n, k) block, and
    is refused."""
    from ..language.arrays import element_label

    inputs = list(inputs)
    output = program.check_name(of, "--of") if of is not None else program.output
    defaults = program.base.inputs
    program._inputs({name: 0.0 if defaults.get(name) is None else defaults[name]
                     for name in inputs if name in defaults})  # the --set rules for the names
    if program.shape(output):
        raise DiffcliError("shape", f"batch.kernel: the output `{output}` is an array; a kernel's block has one "
                           "value per point", help=f"use a scalar made of it, like sum({output}) or {output}[i]")
    names = list(program.graph.inputs)
    labels = [name + (element_label(index) if index else "") for name in names
              for index in np.ndindex(*program.shape(name))]
    columns = [output] + ([f"d{output}/d{label}" for label in labels] if gradients else [])

    shapes = {name: program.shape(name) for name in inputs if name in program.graph.inputs}

    def f(*arrays):
        given = dict(zip(inputs, (np.asarray(array, dtype=float) for array in arrays)))
        for name, array in given.items():
            shape = shapes.get(name, ())
            if array.shape[1:] != shape or array.ndim != len(shape) + 1:
                block = "(n, " + ", ".join(map(str, shape)) + ")" if shape else "(n,)"
                raise DiffcliError("input", f"batch.kernel: `{name}` comes one value per point, the point axis first: "
                                   f"a block of shape {block}, not {array.shape}",
                                   help="chunk the array along its first axis (the points) only")
        result = run(program, given, None, output, gradients=gradients)
        parts = [result.value.reshape(result.n, 1)]
        if gradients:
            parts += [result.gradients[name].reshape(result.n, -1) for name in names]
        return np.concatenate(parts, axis=1)

    f.columns = columns
    return f
