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

from . import engine, ops
from .errors import DiffcliError
from .formatting import applied_text, operator_span
from .graph import Graph

_isfinite = math.isfinite


def _moves(t) -> bool:
    if type(t) is float:
        return t != 0.0
    return bool(t.any())


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


def value_tangents(graph: Graph, values: list[float], seeds: dict, depends: list[bool]):
    """d(node)/dv for every node, v being the seeds' directions; and, for a node whose tangent is
    undefined (NaN), the partial (node, argument) that made it so."""
    tangent: list = [0.0] * len(graph)
    undefined_at: dict[int, tuple[int, int]] = {}
    for node, t in seeds.items():
        tangent[node] = t
    args, partials = graph.args, graph.partials
    for i in range(min(seeds, default=len(graph)) + 1, len(graph)):
        if not depends[i] or not args[i]:
            continue
        a = args[i]
        total = 0.0
        xs = None
        for n, j in enumerate(a):
            t = tangent[j]
            if type(t) is float and t == 0.0:
                continue
            if xs is None:
                xs = [values[k] for k in a]
            try:
                p = partials[i][n](values[i], *xs)
            except (ArithmeticError, ValueError):
                p = math.nan
            if p == 0.0:
                continue
            if not _isfinite(p) or j in undefined_at:
                undefined_at.setdefault(i, undefined_at.get(j, (i, n)))
                p = math.nan
            total = total + p * t
        tangent[i] = total
    return tangent, undefined_at


def second_order(graph: Graph, values: list[float], output: int, seeds: dict, wanted):
    """The adjoints d(output)/d(node) and their tangents along the seeds' directions, for the
    nodes that depend on one of the `wanted` nodes (whose adjoints are the results)."""
    depends = depends_on(graph, seeds)
    tangent, undefined_at = value_tangents(graph, values, seeds, depends)
    needs = depends_on(graph, wanted)
    dual = ops.backend("dual")
    Dual = ops.Dual
    args, partials, op_of = graph.args, graph.partials, graph.op
    adjoint = [0.0] * len(graph)
    adjoint_t: list = [0.0] * len(graph)
    adjoint[output] = 1.0
    for i in range(output, -1, -1):
        op = op_of[i]
        g, gt = adjoint[i], adjoint_t[i]
        if op is None:
            continue
        g_flows, gt_flows = g != 0.0, _moves(gt)
        if not (g_flows or gt_flows):
            continue
        a = args[i]
        xs = [values[j] for j in a]
        out = values[i]
        moving = g_flows and depends[i]  # then the partials' own tangents are needed
        duals = None
        for n, j in enumerate(a):
            if not needs[j]:
                continue
            try:
                p = partials[i][n](out, *xs)
            except (ArithmeticError, ValueError):
                p = math.nan
            if not _isfinite(p):
                raise engine._derivative_error(graph, values, i, n)
            adjoint[j] += g * p
            contribution = gt * p if gt_flows else 0.0
            if moving:
                if duals is None:
                    duals = [Dual(values[k], tangent[k]) for k in a]
                    dout = Dual(out, tangent[i])
                pt = ops.apply_partial(op, dual, n, dout, *duals)
                if type(pt) is Dual and _moves_any(pt.t):
                    contribution = contribution + g * pt.t
            if type(contribution) is not float or contribution != 0.0:
                if not _finite(contribution):
                    raise _second_order_error(graph, values, i, n, undefined_at)
                adjoint_t[j] = adjoint_t[j] + contribution
    return adjoint, adjoint_t


def _moves_any(t) -> bool:
    # a partial's tangent is non-zero, or NaN where the partial has no derivative
    if type(t) is float:
        return t != 0.0
    return True


def _second_order_error(graph, values, i, n, undefined_at) -> DiffcliError:
    for j in (i, *graph.args[i]):
        if j in undefined_at:  # a first derivative on the way was undefined already
            return engine._derivative_error(graph, values, *undefined_at[j])
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    which = "" if len(xs) == 1 else f" with respect to its {engine._ordinal(n)} argument"
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
    adjoint, adjoint_t = second_order(graph, values, output, seeds, nodes)
    rows = np.array([np.broadcast_to(adjoint_t[node], (k,)) for node in nodes], dtype=float).reshape(k, k)
    matrix = (rows + rows.T) / 2
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
