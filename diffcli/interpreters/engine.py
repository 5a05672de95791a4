"""Interpreters over the graph: forward values, reverse adjoints, forward tangents.

Each walks the flat node list in order (or in reverse) and reads the operation table; none recurses.
The fast loops check nothing per node; when one raises or leaves a value that is not finite, the
same walk is done again with checks, to name the operation, its place and the offending value.
"""

from __future__ import annotations

import math

from ..errors import DiffcliError
from ..language.graph import needs_gradient  # noqa: F401  (callers read it here)
from .domain import derivative_message, domain_message
from ..language.graph import Graph
from ..formatting import excerpt, operator_span

_FAILURES = (ArithmeticError, ValueError)
_isfinite = math.isfinite


# ---------------------------------------------------------------- forward values

def forward(graph: Graph, inputs: dict[str, float]) -> list[float]:
    """The value of every node, given a value for every input."""
    if graph.shape is not None:
        from . import array_engine  # (imported by array programs only: start-up)

        return array_engine.forward(graph, inputs)
    values = list(graph.value0)
    names = graph.names
    for name in graph.inputs:
        values[names[name]] = inputs[name]
    functions = [op.value if op is not None else None for op in graph.op]
    args = graph.args
    i = 0
    try:
        for i, f in enumerate(functions):
            if f is None:
                continue
            a = args[i]
            if len(a) == 2:
                values[i] = f(values[a[0]], values[a[1]])
            elif len(a) == 1:
                values[i] = f(values[a[0]])
            else:
                values[i] = f(*[values[j] for j in a])
    except _FAILURES:  # (named where a value first overflowed, if one did: sin(x*x) at x*x)
        first = next((j for j in range(i) if not _isfinite(values[j])), i)
        raise _value_error(graph, values, first) from None
    if not all(map(_isfinite, values)):
        first = next(i for i, v in enumerate(values) if not _isfinite(v))
        raise _value_error(graph, values, first)
    return values


def _value_error(graph: Graph, values: list[float], i: int) -> DiffcliError:
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    message, help = domain_message(op, xs, excerpt(graph.source, graph.expr[i]))
    return DiffcliError("domain", message, operator_span(graph.source, graph.expr[i]), source=graph.source, help=help,
                        operation=op.name)


# ---------------------------------------------------------------- reverse adjoints

def reverse(graph: Graph, values: list[float], output: int, needs: list[bool] | None = None, *,
            stop=None, strict: bool = True) -> list[float]:
    """The adjoint d(output)/d(node) of every node: reverse-mode accumulation with `+=`.

    `needs` is needs_gradient(graph), for callers that make several passes.

    `stop`: nodes the pass does not go past, as if they were leaves. Stopped at the named nodes, the
    adjoint of each one that `output`'s statement uses is a local partial of that statement (explain's
    step 2). Not `strict`: an undefined partial gives NaN where it flows, rather than an error.
    """
    if graph.shape is not None:
        from . import array_engine

        return array_engine.reverse(graph, values, output, needs)
    ops = graph.op
    if stop:
        ops = list(ops)
        for node in stop:
            if node != output:
                ops[node] = None
    if needs is None:
        needs = needs_gradient(graph)
    adjoint = [0.0] * len(graph)
    try:
        _reverse(graph, ops, needs, values, output, adjoint, None)
        if all(map(_isfinite, adjoint)):
            return adjoint
    except _FAILURES:
        pass
    adjoint = [0.0] * len(graph)
    _reverse(graph, ops, needs, values, output, adjoint, _check_step if strict else _partial_or_nan)
    return adjoint


def _reverse(graph, ops, needs, values, output, adjoint, checked):
    """The reverse pass, unchecked (checked is None: the hot path), or with checked(graph, values,
    adjoint, i, n, g) giving each partial (and raising where it does not exist)."""
    args, partials = graph.args, graph.partials
    adjoint[output] = 1.0
    for i in range(output, -1, -1):
        g = adjoint[i]
        if g == 0.0 or ops[i] is None:  # nothing flows through here: its partials are not needed
            continue
        a = args[i]
        out = values[i]
        if len(a) == 1:
            j = a[0]
            if needs[j]:
                if checked:
                    adjoint[j] += g * checked(graph, values, adjoint, i, 0, g)
                else:
                    adjoint[j] += g * partials[i][0](out, values[j])
        elif len(a) == 2:
            j, k = a
            x, y = values[j], values[k]
            ps = partials[i]
            if needs[j]:
                if checked:
                    adjoint[j] += g * checked(graph, values, adjoint, i, 0, g)
                else:
                    adjoint[j] += g * ps[0](out, x, y)
            if needs[k]:
                if checked:
                    adjoint[k] += g * checked(graph, values, adjoint, i, 1, g)
                else:
                    adjoint[k] += g * ps[1](out, x, y)
        else:
            xs = [values[j] for j in a]
            for n, (p, j) in enumerate(zip(partials[i], a)):
                if needs[j]:
                    if checked:
                        adjoint[j] += g * checked(graph, values, adjoint, i, n, g)
                    else:
                        adjoint[j] += g * p(out, *xs)


def _partial(graph, values, i, n):
    """The partial of node i with respect to its n-th argument, or None where it does not exist."""
    xs = [values[j] for j in graph.args[i]]
    try:
        p = graph.partials[i][n](values[i], *xs)
    except _FAILURES:
        return None
    return p if _isfinite(p) else None


def _partial_or_nan(graph, values, adjoint, i, n, g):
    p = _partial(graph, values, i, n)
    return math.nan if p is None else p


def _check_step(graph, values, adjoint, i, n, g):
    """Node i's n-th partial, or the error saying why it or the gradient through it does not exist."""
    p = _partial(graph, values, i, n)
    if p is None:
        raise _derivative_error(graph, values, i, n)
    j = graph.args[i][n]
    if not (_isfinite(g * p) and _isfinite(adjoint[j] + g * p)):
        raise DiffcliError(
            "domain", f"the gradient overflows at `{excerpt(graph.source, graph.expr[i])}`",
            operator_span(graph.source, graph.expr[i]), source=graph.source,
            help="a derivative grew past the largest double (about 1.8e308); rescale the inputs",
            operation=graph.op[i].name,
        )
    return p


def _derivative_error(graph, values, i, n) -> DiffcliError:
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    message, help = derivative_message(op, xs, n, excerpt(graph.source, graph.expr[i]))
    return DiffcliError("domain", message, operator_span(graph.source, graph.expr[i]), source=graph.source, help=help,
                        operation=op.name)


# ---------------------------------------------------------------- forward tangents

def tangents(graph: Graph, values: list[float], wrt: int, needed=None, seed=None) -> list[float]:
    """d(node)/d(wrt) for every node: forward mode, one column of the Jacobian.

    As in the reverse pass, a partial is only needed where something flows through it: a zero
    partial blocks the flow (`0*sqrt(x)` at x = 0 has derivative 0). An infinite or undefined
    partial that does flow is an error once it reaches a node in `needed` (default: every named
    variable); elsewhere the tangent is left NaN. (`seed`: on an array graph, the direction, an
    array of wrt's shape.)
    """
    if graph.shape is not None:
        from . import array_engine

        return array_engine.tangents(graph, values, wrt, needed, seed)
    tangent = [0.0] * len(graph)
    tangent[wrt] = 1.0
    args = graph.args
    undefined_at: dict[int, tuple[int, int]] = {}  # node with a NaN tangent -> the partial that caused it
    for i in range(wrt + 1, len(graph)):
        a = args[i]
        if not a:
            continue
        total = 0.0
        for n, j in enumerate(a):
            t = tangent[j]
            if t != 0.0:
                p = _partial(graph, values, i, n)
                if p == 0.0:
                    continue
                if p is None or j in undefined_at:
                    undefined_at.setdefault(i, undefined_at.get(j, (i, n)))
                    total = math.nan
                    continue
                total += t * p
        if not _isfinite(total) and i not in undefined_at:
            raise DiffcliError(
                "domain", f"the derivative overflows at `{excerpt(graph.source, graph.expr[i])}`",
                operator_span(graph.source, graph.expr[i]), source=graph.source,
                help="a derivative grew past the largest double (about 1.8e308); rescale the inputs",
                operation=graph.op[i].name,
            )
        tangent[i] = total
    for node in graph.names.values() if needed is None else needed:
        if node in undefined_at:
            raise _derivative_error(graph, values, *undefined_at[node])
    return tangent
