"""The engine on a lowered array graph (language/arrays.py): forward values, reverse adjoints and
forward tangents on NumPy arrays, through the op table.

An elementwise node applies its scalar entry's rule and partials to NumPy arrays (backend("numpy")),
its arguments having its own shape (broadcasts are nodes of their own); a structural node calls its
ArrayOp's value, vjp or jvp. Each node's result is checked once, whole: where one is not finite, the
error names the operation, its place and the first bad element in row-major order (`log` of -0.2
at x[3]). Scalars are 0-d values here; the program turns them back into floats.
"""

from __future__ import annotations

from ..errors import DiffcliError
from ..formatting import excerpt, operator_span
from ..language.arrays import element_label, operand_label
from ..language.graph import needs_gradient
from ..ops import ArrayOp, apply_partial, backend
from .domain import derivative_message, domain_message, element_derivative_message, element_domain_message


def _np():
    import numpy as np

    return np


def _finite(array) -> bool:
    """Whether every element is finite. The sum is: an inf or NaN element makes it inf or NaN (and
    finite elements whose sum overflows only send the caller to its exact, element-wise check):
    a quarter of the cost of np.isfinite(array).all() on a large array."""
    total = array.sum()
    return total - total == 0.0


# ---------------------------------------------------------------- forward

def forward(graph, inputs: dict) -> list:
    np = _np()
    m = backend("numpy")
    values = [None if v is None else np.asarray(v, dtype=float) for v in graph.value0]
    for name in graph.inputs:
        values[graph.names[name]] = np.asarray(inputs[name], dtype=float)
    attrs = graph.attrs
    with np.errstate(all="ignore"):
        for i, op in enumerate(graph.op):
            if op is None:
                continue
            xs = [values[j] for j in graph.args[i]]
            if op.__class__ is ArrayOp:
                value = op.value(np, attrs.get(i), *xs)
            else:
                value = op.rule(m, *xs)
            value = np.asarray(value, dtype=float)
            if not _finite(value) and not np.isfinite(value).all():
                raise _value_error(graph, values, i, value)
            values[i] = value
    return values


def _first_bad(np, array):
    """The row-major index of array's first element that is not finite (() for a scalar)."""
    if array.ndim == 0:
        return ()
    flat = int(np.flatnonzero(~np.isfinite(array))[0])
    return tuple(int(k) for k in np.unravel_index(flat, array.shape))


def _at(np, x, index):
    x = np.asarray(x)
    return float(x if x.ndim == 0 else x[index])


def _label(graph, i, index) -> str:
    """`x[3]`, `(W @ x - 1)[3]`: the element at `index` of node i's result, named in the operand it
    comes from (the divisor first for `/`), through the broadcasts that stretched it; else in the
    result itself."""
    args = list(graph.args[i])
    if graph.op[i].key == "div":
        args.reverse()
    for j in args:
        while graph.op[j] is not None and graph.op[j].key in ("broadcast", "id"):
            j = graph.args[j][0]
        shape = graph.shape[j]
        if shape:
            lead = len(index) - len(shape)
            return operand_label(graph, j) + element_label(
                tuple(0 if n == 1 else index[lead + k] for k, n in enumerate(shape)))
    return operand_label(graph, i) + element_label(index)


def _value_error(graph, values, i, value) -> DiffcliError:
    np = _np()
    op = graph.op[i]
    index = _first_bad(np, value)
    where = excerpt(graph.source, graph.expr[i])
    if op.__class__ is ArrayOp:
        message = f"`{where}` overflows{'' if not index else ' at ' + operand_label(graph, i) + element_label(index)}"
        help = "doubles reach about 1.8e308; rescale the inputs"
    else:
        xs = [_at(np, values[j], index) for j in graph.args[i]]
        if index:
            message, help = element_domain_message(op, xs, where, _label(graph, i, index))
        else:
            message, help = domain_message(op, xs, where)
    return DiffcliError("domain", message, operator_span(graph.source, graph.expr[i]), source=graph.source,
                        help=help, operation=op.name)


# ---------------------------------------------------------------- reverse

# structural ops whose vjp makes new arrays (so a sum of cotangents may be kept in the first one)
_FRESH_COTANGENTS = frozenset({"matmul", "dot", "outer", "index", "norm", "logsumexp", "softmax", "amax", "amin"})


def reverse(graph, values, output: int, needs=None) -> list:
    """d(output)/d(node) for every node, each of its node's shape (output a scalar).

    The fast pass checks each node's summed adjoint once (a large array's cotangents are then summed
    in place, not checked one by one); where one is not finite, the checked pass below runs
    instead, which finds the contribution at fault (or blocks it, as a zero adjoint blocks an
    undefined partial) and raises its error."""
    np = _np()
    if needs is None:
        needs = needs_gradient(graph)
    with np.errstate(all="ignore"):
        adjoint = _fast_reverse(np, graph, values, output, needs)
    if adjoint is not None:
        return [np.zeros(s) if adj is None else adj for adj, s in zip(adjoint, graph.shape)]
    return _checked_reverse(np, graph, values, output, needs)


def _fast_reverse(np, graph, values, output, needs):
    m = backend("numpy")
    adjoint: list = [None] * len(graph)
    owned = [False] * len(graph)  # adjoint[j] is an array of this pass's own, to add into in place
    adjoint[output] = np.asarray(1.0)
    attrs, shape = graph.attrs, graph.shape
    for i in range(output, -1, -1):
        g = adjoint[i]
        if g is None:
            continue
        if not _finite(g) and not np.isfinite(g).all():
            return None
        op = graph.op[i]
        if op is None:
            continue
        a = graph.args[i]
        xs = [values[j] for j in a]
        out = values[i]
        if op.__class__ is ArrayOp:
            cotangents = op.vjp(np, attrs.get(i), g, out, *xs)
            fresh = op.key in _FRESH_COTANGENTS
        else:
            cotangents = [g * apply_partial(op, m, n, out, *xs) if needs[j] else None for n, j in enumerate(a)]
            fresh = True
        for j, c in zip(a, cotangents):
            if not needs[j]:
                continue
            c = np.asarray(c, dtype=float)
            if c.shape != shape[j]:
                c, own = np.broadcast_to(c, shape[j]), False
            else:
                own = fresh and c.ndim > 0
            before = adjoint[j]
            if before is None:
                adjoint[j], owned[j] = c, own
            elif owned[j]:
                np.add(before, c, out=before)
            else:
                adjoint[j], owned[j] = before + c, before.ndim > 0
    return adjoint


def _checked_reverse(np, graph, values, output, needs):
    m = backend("numpy")
    adjoint: list = [None] * len(graph)
    adjoint[output] = np.asarray(1.0)
    # whether a node's adjoint is an array of this pass's own, which no other node holds, so that
    # further contributions are added in place (a large matrix's gradient is allocated once)
    owned = [False] * len(graph)

    def accumulate(j, c, fresh):
        if adjoint[j] is None:
            adjoint[j], owned[j] = c, fresh
        elif owned[j]:
            adjoint[j] += c
        else:
            adjoint[j], owned[j] = adjoint[j] + c, True

    attrs = graph.attrs
    with np.errstate(all="ignore"):
        for i in range(output, -1, -1):
            g = adjoint[i]
            op = graph.op[i]
            if g is None or op is None:
                continue
            a = graph.args[i]
            xs = [values[j] for j in a]
            out = values[i]
            if op.__class__ is ArrayOp:
                cotangents = op.vjp(np, attrs.get(i), g, out, *xs)
                for n, (j, c) in enumerate(zip(a, cotangents)):
                    if needs[j]:
                        c = np.asarray(c, dtype=float)
                        if not _finite(c) and not np.isfinite(c).all():
                            raise _structural_derivative_error(graph, i, c)
                        accumulate(j, c, op.fresh and c.ndim > 0)
                continue
            for n, j in enumerate(a):
                if not needs[j]:
                    continue
                p = apply_partial(op, m, n, out, *xs)
                c = np.asarray(g * p, dtype=float)
                if not _finite(c) and not np.isfinite(c).all():
                    # a zero adjoint blocks an undefined partial (0·sqrt'(0)), as on floats
                    c = np.where(g != 0, c, 0.0)
                    if not np.isfinite(c).all():
                        raise _derivative_error(graph, values, i, n, np.broadcast_to(p, np.shape(c)), c)
                fresh = c.ndim > 0 and c is not g
                if np.shape(c) != graph.shape[j]:
                    c, fresh = np.broadcast_to(c, graph.shape[j]), False
                accumulate(j, c, fresh)
    return [np.zeros(s) if adj is None else adj for adj, s in zip(adjoint, graph.shape)]


def _derivative_error(graph, values, i, n, p, c) -> DiffcliError:
    np = _np()
    op = graph.op[i]
    index = _first_bad(np, c)
    where = excerpt(graph.source, graph.expr[i])
    p = np.asarray(p)
    if np.isfinite(p if p.ndim == 0 else p[index]):
        return DiffcliError("domain", f"the gradient overflows at `{where}`", operator_span(graph.source, graph.expr[i]),
                            source=graph.source, help="a derivative grew past the largest double (about 1.8e308); "
                            "rescale the inputs", operation=op.name)
    xs = [_at(np, values[j], index) for j in graph.args[i]]
    if index:
        message, help = element_derivative_message(op, xs, n, where, _label(graph, i, index))
    else:
        message, help = derivative_message(op, xs, n, where)
    return DiffcliError("domain", message, operator_span(graph.source, graph.expr[i]),
                        source=graph.source, help=help, operation=op.name)


def _structural_derivative_error(graph, i, c) -> DiffcliError:
    np = _np()
    op = graph.op[i]
    where = excerpt(graph.source, graph.expr[i])
    if op.key == "norm":
        message, help = (f"the derivative of `norm` is undefined at `{where}` = 0",
                         "norm(x) has no gradient where x is 0 (as sqrt has none at 0)")
    else:
        index = _first_bad(np, c)
        message = f"the gradient overflows at `{where}`" + (f", element {element_label(index)}" if index else "")
        help = "a derivative grew past the largest double (about 1.8e308); rescale the inputs"
    return DiffcliError("domain", message, operator_span(graph.source, graph.expr[i]), source=graph.source,
                        help=help, operation=op.name)


# ---------------------------------------------------------------- forward tangents

def tangents(graph, values, wrt: int, needed=None, seed=None) -> list:
    """d(node)/d(wrt) in the direction `seed` (an array of wrt's shape; default 1 for a scalar):
    forward mode, through each node's jvp or elementwise partials.

    As on floats (engine.tangents), a partial is only needed where something flows through it: a
    zero tangent or a zero partial blocks the flow, element by element (`0*sqrt(x)` at x = 0 has
    derivative 0). An infinite or undefined partial that does flow leaves its elements NaN, and is an
    error once it reaches a node in `needed` (default: every named variable); an overflow is an
    error at once."""
    np = _np()
    m = backend("numpy")
    tangent: list = [None] * len(graph)
    tangent[wrt] = np.asarray(1.0 if seed is None else seed, dtype=float)
    attrs = graph.attrs
    undefined_at: dict = {}  # node with NaN elements -> the error of the partial that caused them
    with np.errstate(all="ignore"):
        for i in range(wrt + 1, len(graph)):
            op = graph.op[i]
            if op is None:
                continue
            a = graph.args[i]
            ts = [tangent[j] for j in a]
            if all(t is None for t in ts):
                continue
            xs = [values[j] for j in a]
            if op.__class__ is ArrayOp:
                total = np.asarray(op.jvp(np, attrs.get(i), values[i], ts, *xs), dtype=float)
                if not np.isfinite(total).all():
                    inherited = [undefined_at[j] for j in a if j in undefined_at]
                    if inherited:
                        undefined_at[i] = inherited[0]
                    elif op.key == "norm":  # undefined (at 0), not an overflow
                        undefined_at[i] = _structural_derivative_error(graph, i, total)
                    else:
                        raise _structural_derivative_error(graph, i, total)
            else:
                total = 0.0
                for n, (j, t) in enumerate(zip(a, ts)):
                    if t is None:
                        continue
                    p = apply_partial(op, m, n, values[i], *xs)
                    c = np.where((t != 0) & (p != 0), t * p, 0.0)
                    bad = ~np.isfinite(c)
                    if bad.any():
                        t_ok, p_ok = np.isfinite(t), np.isfinite(p)
                        p_b = np.broadcast_to(p, np.shape(c))
                        overflow = bad & t_ok & p_ok
                        if overflow.any():  # finite partials whose product overflows
                            raise _derivative_error(graph, values, i, n, p_b, np.where(overflow, np.inf, 0.0))
                        undefined = bad & t_ok & ~p_ok  # (else a NaN that flowed in, from j)
                        first = None if undefined.any() else undefined_at.get(j)
                        undefined_at.setdefault(i, first or _derivative_error(
                            graph, values, i, n, p_b, np.where(undefined if undefined.any() else bad, np.nan, 0.0)))
                        c = np.where(bad, np.nan, c)
                    total = total + c
                total = np.asarray(total, dtype=float)
                if np.shape(total) != graph.shape[i]:
                    total = np.broadcast_to(total, graph.shape[i])
            tangent[i] = total
    for node in graph.names.values() if needed is None else needed:
        if node in undefined_at and not np.isfinite(tangent[node] if tangent[node] is not None else 0.0).all():
            raise undefined_at[node]
    return [np.zeros(s) if t is None else t for t, s in zip(tangent, graph.shape)]
