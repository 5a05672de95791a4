"""Second derivatives over the graph: forward-over-reverse, beside engine.py's passes.

A tangent pass first carries d(node)/dv for a direction v (a float), or for k directions at once
(a NumPy array of length k), through the float partials. Then the reverse pass runs on pairs: each
adjoint g has a tangent ġ, and every partial p = ∂node/∂arg is evaluated in the op table's dual
backend (`ops.backend("dual")`) at the arguments' (value, tangent) pairs, which gives its tangent ṗ
from the same rule the first-order pass uses. The argument's adjoint tangent gains ġ·p + g·ṗ. At
an input the adjoint tangent is (H·v)[input]; with the k unit directions of the inputs `wrt` it is
a row of the Hessian, all rows in one pass.

No second copy of any math: relu'' = abs'' = 0 (their partials are constant steps), min/max pass
the tangent of the chosen argument (ties averaged, as the first derivative splits), and a second
derivative that is infinite or undefined (sqrt at 0, x^1.5 at 0) is a `domain` error only where it
is needed: where it meets a non-zero adjoint and a moving tangent.

The matrix is symmetrized, (H + Hᵀ)/2: forward-over-reverse gives H[a][b] and H[b][a] by different
sums, equal to rounding; their mean is the better estimate of each and makes the result exactly
symmetric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import domain, engine
from .. import ops
from ..errors import DiffcliError
from ..formatting import applied_text, excerpt, operator_span
from ..language.graph import Graph

_isfinite = math.isfinite
MAX_MATRIX = 300  # inputs in a full Hessian: k tangents on every node (k² numbers out)


def _finite(t) -> bool:
    if type(t) is float:
        return _isfinite(t)
    import numpy as np

    return bool(np.isfinite(t).all())


def depends_on(graph: Graph, seeds) -> list[bool]:
    """Whether each node depends on one of the seed nodes (so that its tangent can move)."""
    depends = [False] * len(graph)
    for node in seeds:
        depends[node] = True
    args = graph.args
    for i in range(min(seeds, default=len(graph)), len(graph)):
        if not depends[i]:
            for j in args[i]:
                if depends[j]:
                    depends[i] = True
                    break
    return depends


def value_tangents(graph: Graph, values: list[float], seeds: dict, depends: list[bool],
                   checked: bool = True):
    """d(node)/dv for every node, v being the seeds' directions; and, for a node whose tangent is
    undefined (NaN), the partial (node, argument) that made it so (when `checked`; unchecked, an
    undefined partial raises or leaves NaN, and the caller redoes the walk checked)."""
    tangent: list = [0.0] * len(graph)
    undefined_at: dict[int, tuple[int, int]] = {}
    for node, t in seeds.items():
        tangent[node] = t
    args, partials = graph.args, graph.partials
    for i in range(min(seeds, default=len(graph)) + 1, len(graph)):
        if not depends[i]:
            continue
        a = args[i]
        if not a:
            continue
        out = values[i]
        ps = partials[i]
        total = 0.0
        if len(a) == 2 and not checked:  # the common case, written out
            j, k = a
            x, y = values[j], values[k]
            t, u = tangent[j], tangent[k]
            if type(t) is not float or t != 0.0:
                total = ps[0](out, x, y) * t
            if type(u) is not float or u != 0.0:
                total = total + ps[1](out, x, y) * u
        else:
            xs = [values[j] for j in a]
            for n, j in enumerate(a):
                t = tangent[j]
                if type(t) is not float or t != 0.0:
                    if checked:
                        total = _tangent_step(undefined_at, i, n, j, ps[n], out, xs, t, total)
                    else:
                        total = total + ps[n](out, *xs) * t
        tangent[i] = total
    return tangent, undefined_at


def _tangent_step(undefined_at, i, n, j, partial, out, xs, t, total):
    try:
        p = partial(out, *xs)
    except (ArithmeticError, ValueError):
        p = math.nan
    if p == 0.0:  # a zero partial blocks the flow, as in engine.tangents
        return total
    if not _isfinite(p) or j in undefined_at:
        undefined_at.setdefault(i, undefined_at.get(j, (i, n)))
        p = math.nan
    return total + p * t


def second_order(graph: Graph, values: list[float], output: int, seeds: dict, wanted):
    """The adjoints d(output)/d(node) and their tangents along the seeds' directions, for the
    nodes that depend on one of the `wanted` nodes (whose adjoints are the results).

    A fast walk checks nothing; if it raises, or leaves a result that is not finite, the walk is
    done again with checks, to name the operation whose (second) derivative is undefined."""
    depends = depends_on(graph, seeds)
    needs = depends_on(graph, wanted)
    try:
        tangent, _ = value_tangents(graph, values, seeds, depends, checked=False)
        adjoint, adjoint_t = _sweep(graph, values, output, tangent, depends, needs, None)
        if all(_finite(adjoint_t[node]) and _isfinite(adjoint[node]) for node in wanted):
            return adjoint, adjoint_t
    except (ArithmeticError, ValueError):
        pass
    tangent, undefined_at = value_tangents(graph, values, seeds, depends)
    adjoint, adjoint_t = _sweep(graph, values, output, tangent, depends, needs, undefined_at)
    if not all(_finite(adjoint_t[node]) for node in wanted):  # a sum grew past the largest double
        raise DiffcliError(
            "domain", "a second derivative overflows",
            operator_span(graph.source, graph.expr[output]) if graph.expr[output] is not None else None, source=graph.source,
            help="a second derivative grew past the largest double (about 1.8e308); rescale the inputs",
        )
    return adjoint, adjoint_t


def _sweep(graph, values, output, tangent, depends, needs, undefined_at):
    """The reverse walk on (adjoint, adjoint tangent) pairs; checked when `undefined_at` is given."""
    checked = undefined_at is not None
    dual = ops.backend("dual")
    Dual = ops.Dual
    args, partials, op_of = graph.args, graph.partials, graph.op
    adjoint = [0.0] * len(graph)
    adjoint_t: list = [0.0] * len(graph)
    adjoint[output] = 1.0
    for i in range(output, -1, -1):
        op = op_of[i]
        if op is None:
            continue
        g, gt = adjoint[i], adjoint_t[i]
        gt_flows = type(gt) is not float or gt != 0.0
        if g == 0.0 and not gt_flows:
            continue
        a = args[i]
        out = values[i]
        ps = partials[i]
        moving = g != 0.0 and depends[i]  # then the partials' own tangents are needed
        rules = op.partial_rules
        if op.arity == 2 and not checked:  # the common case, written out
            j, k = a
            x, y = values[j], values[k]
            if moving:
                dx, dy, dout = Dual(x, tangent[j]), Dual(y, tangent[k]), Dual(out, tangent[i])
            for n, j in enumerate(a):
                if needs[j]:
                    p = ps[n](out, x, y)
                    adjoint[j] += g * p
                    contribution = gt * p if gt_flows else 0.0
                    if moving:
                        pt = rules[n](dual, dout, dx, dy)
                        if type(pt) is Dual:
                            contribution = contribution + g * pt.t
                    adjoint_t[j] = adjoint_t[j] + contribution
            continue
        xs = [values[j] for j in a]
        duals = None
        for n, j in enumerate(a):
            if not needs[j]:
                continue
            if checked:
                p = _checked_partial(graph, values, i, n)
            else:
                p = ps[n](out, *xs)
            adjoint[j] += g * p
            contribution = gt * p if gt_flows else 0.0
            if moving:
                if duals is None:
                    duals = [Dual(values[k], tangent[k]) for k in a]
                    dout = Dual(out, tangent[i])
                if op.arity:
                    pt = rules[n](dual, dout, *duals)
                else:
                    pt = rules[0](dual, n, dout, duals)
                if type(pt) is Dual:
                    t = pt.t
                    if type(t) is not float or t != 0.0:
                        contribution = contribution + g * t
            if type(contribution) is not float or contribution != 0.0:
                if checked and not _finite(contribution):
                    undefined = moving and type(pt) is Dual and not _finite(pt.t)
                    raise _second_order_error(graph, values, i, n, undefined_at, undefined)
                adjoint_t[j] = adjoint_t[j] + contribution
    return adjoint, adjoint_t


def _checked_partial(graph, values, i, n) -> float:
    p = engine._partial(graph, values, i, n)
    if p is None:
        raise engine._derivative_error(graph, values, i, n)
    return p


def _second_order_error(graph, values, i, n, undefined_at, undefined) -> DiffcliError:
    for j in (i, *graph.args[i]):
        if j in undefined_at:  # a first derivative on the way was undefined already
            return engine._derivative_error(graph, values, *undefined_at[j])
    if not undefined:
        return DiffcliError(
            "domain", f"a second derivative overflows at `{excerpt(graph.source, graph.expr[i])}`",
            operator_span(graph.source, graph.expr[i]), source=graph.source,
            help="it grew past the largest double (about 1.8e308); rescale the inputs",
        )
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    which = "" if len(xs) == 1 else f" with respect to its {domain._ordinal(n)} argument"
    return DiffcliError(
        "domain",
        f"the second derivative of `{op.name}`{which} is infinite or undefined at {applied_text(op, xs)}",
        operator_span(graph.source, graph.expr[i]), source=graph.source,
        help="the Hessian does not exist here; evaluate at another point",
    )


# ---------------------------------------------------------------- the results

def hessian_matrix(graph: Graph, values: list[float], output: int, wrt: list[str]):
    """(gradient over wrt, symmetric Hessian over wrt), by forward-over-reverse with k directions."""
    import numpy as np

    nodes = [graph.names[name] for name in wrt]
    k = len(nodes)
    seeds = {}
    for row, node in enumerate(nodes):
        seeds[node] = np.eye(k)[row]
    with np.errstate(all="ignore"):  # an overflow or NaN is found and named, not warned about
        adjoint, adjoint_t = second_order(graph, values, output, seeds, nodes)
    rows = np.array([np.broadcast_to(adjoint_t[node], (k,)) for node in nodes], dtype=float).reshape(k, k)
    matrix = rows / 2 + rows.T / 2  # (not (rows + rows.T) / 2, which can overflow)
    gradient = {name: adjoint[node] for name, node in zip(wrt, nodes)}
    hessian = {a: {b: float(matrix[r, c]) for c, b in enumerate(wrt)} for r, a in enumerate(wrt)}
    return gradient, hessian


def hessian_vector(graph: Graph, values: list[float], output: int, vector: dict[str, float]):
    """(gradient, H·v) over every input, by one forward-over-reverse pass with a float tangent."""
    seeds = {graph.names[name]: float(v) for name, v in vector.items() if v != 0.0}
    inputs = [graph.names[name] for name in graph.inputs]
    adjoint, adjoint_t = second_order(graph, values, output, seeds, inputs)
    gradient = {name: adjoint[graph.names[name]] for name in graph.inputs}
    product = {name: float(adjoint_t[graph.names[name]]) for name in graph.inputs}
    return gradient, product


@dataclass
class Hessian:
    """Second derivatives of `output` over the inputs `wrt`."""

    inputs: dict[str, float]
    unused: list[str]
    output: str
    value: float
    wrt: list[str]
    gradient: dict[str, float]
    hessian: dict[str, dict[str, float]]


@dataclass
class HessianVector:
    """H·v over every input, H being the Hessian of `output` over all inputs."""

    inputs: dict[str, float]
    unused: list[str]
    output: str
    value: float
    vector: dict[str, float]
    gradient: dict[str, float]
    hvp: dict[str, float]
