"""Interpreters over the graph: forward values, reverse adjoints, forward tangents.

Each walks the flat node list in order (or in reverse) and reads the operation table; none recurses.
The fast loops check nothing per node; when one raises or leaves a value that is not finite, the
same walk is done again with checks, to name the operation, its place and the offending value.
"""

from __future__ import annotations

import math

from .errors import DiffcliError
from .graph import Graph
from .syntax import Binary, Call, Unary

_FAILURES = (ArithmeticError, ValueError)
_isfinite = math.isfinite


def number_text(x: float) -> str:
    """A number as a person writes it: 2 rather than 2.0, and every digit needed to round-trip."""
    if _isfinite(x) and x == int(x) and abs(x) < 1e16:
        return "-0" if x == 0 and math.copysign(1.0, x) < 0 else str(int(x))
    return repr(x)


# ---------------------------------------------------------------- forward values

def forward(graph: Graph, inputs: dict[str, float]) -> list[float]:
    """The value of every node, given a value for every input."""
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
    except _FAILURES:
        raise _value_error(graph, values, i) from None
    if not all(map(_isfinite, values)):
        first = next(i for i, v in enumerate(values) if not _isfinite(v))
        raise _value_error(graph, values, first)
    return values


def _value_error(graph: Graph, values: list[float], i: int) -> DiffcliError:
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    shown = _applied(op, xs)
    where = _expr_text(graph, i)
    problem = op.value_problem(xs) if op.value_problem else None
    if problem is not None:
        message, help = problem
        message = message.format(where=where, shown=shown)
    else:
        try:
            result = op.value(*xs)
        except OverflowError:
            result = math.inf
        except _FAILURES:
            result = None
        if result is None:
            message = f"`{op.name}` is undefined at {shown}"
            help = f"{op.name} needs {op.domain}" if op.domain else None
        else:
            message = f"`{where}` overflows: {shown} is too large for a double"
            help = "doubles reach about 1.8e308; rescale the inputs"
    return DiffcliError("domain", message, _op_span(graph, i), source=graph.source, help=help)


# ---------------------------------------------------------------- reverse adjoints

def needs_gradient(graph: Graph) -> list[bool]:
    """Whether each node's adjoint is wanted: named variables and what depends on them.

    Unnamed constant subexpressions (the `2` in `x^2`) need none, so a partial that is undefined
    there (d(x^y)/dy for x < 0) is never asked for.
    """
    needs = [False] * len(graph)
    for node in graph.names.values():
        needs[node] = True
    for i, a in enumerate(graph.args):
        if a and not needs[i]:
            for j in a:
                if needs[j]:
                    needs[i] = True
                    break
    return needs


def reverse(graph: Graph, values: list[float], output: int, needs: list[bool] | None = None) -> list[float]:
    """The adjoint d(output)/d(node) of every node: reverse-mode accumulation with `+=`.
    `needs` is needs_gradient(graph), for callers that make several sweeps."""
    if needs is None:
        needs = needs_gradient(graph)
    adjoint = [0.0] * len(graph)
    try:
        _reverse(graph, values, output, adjoint, needs, checked=False)
        if all(map(_isfinite, adjoint)):
            return adjoint
    except _FAILURES:
        pass
    adjoint = [0.0] * len(graph)
    _reverse(graph, values, output, adjoint, needs, checked=True)
    return adjoint  # pragma: no cover - the checked walk raises where the fast one failed


def _reverse(graph, values, output, adjoint, needs, checked):
    ops, args, partials = graph.op, graph.args, graph.partials
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
                    _check_step(graph, values, adjoint, i, 0, g)
                adjoint[j] += g * partials[i][0](out, values[j])
        elif len(a) == 2:
            j, k = a
            x, y = values[j], values[k]
            ps = partials[i]
            if needs[j]:
                if checked:
                    _check_step(graph, values, adjoint, i, 0, g)
                adjoint[j] += g * ps[0](out, x, y)
            if needs[k]:
                if checked:
                    _check_step(graph, values, adjoint, i, 1, g)
                adjoint[k] += g * ps[1](out, x, y)
        else:
            xs = [values[j] for j in a]
            for n, (p, j) in enumerate(zip(partials[i], a)):
                if needs[j]:
                    if checked:
                        _check_step(graph, values, adjoint, i, n, g)
                    adjoint[j] += g * p(out, *xs)


def _partial(graph, values, i, n):
    """The partial of node i with respect to its n-th argument, or None where it does not exist."""
    xs = [values[j] for j in graph.args[i]]
    try:
        p = graph.partials[i][n](values[i], *xs)
    except _FAILURES:
        return None
    return p if _isfinite(p) else None


def _check_step(graph, values, adjoint, i, n, g):
    p = _partial(graph, values, i, n)
    if p is None:
        raise _derivative_error(graph, values, i, n)
    j = graph.args[i][n]
    if not (_isfinite(g * p) and _isfinite(adjoint[j] + g * p)):
        raise DiffcliError(
            "domain", f"the gradient overflows at `{_expr_text(graph, i)}`",
            _op_span(graph, i), source=graph.source,
            help="a derivative grew past the largest double (about 1.8e308); rescale the inputs",
        )


def _derivative_error(graph, values, i, n) -> DiffcliError:
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    which = "" if len(xs) == 1 else f" with respect to its {_ordinal(n)} argument"
    problem = op.derivative_problem(n) if op.derivative_problem else None
    if problem is not None:
        message, help = problem
        message = message.format(where=_expr_text(graph, i), shown=_applied(op, xs))
    else:
        message = f"the derivative of `{op.name}`{which} is infinite or undefined at {_applied(op, xs)}"
        help = "the gradient does not exist here; evaluate at another point"
    return DiffcliError("domain", message, _op_span(graph, i), source=graph.source, help=help)


def _ordinal(n: int) -> str:
    return ("first", "second", "third")[n] if n < 3 else f"{n + 1}th"


# ---------------------------------------------------------------- forward tangents

def tangents(graph: Graph, values: list[float], wrt: int, needed=None) -> list[float]:
    """d(node)/d(wrt) for every node: forward mode, one column of the Jacobian.

    As in the reverse pass, a partial is only needed where something flows through it: a zero
    partial blocks the flow (`0*sqrt(x)` at x = 0 has derivative 0). An infinite or undefined
    partial that does flow is an error once it reaches a node in `needed` (default: every named
    variable); elsewhere the tangent is left NaN.
    """
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
                "domain", f"the derivative overflows at `{_expr_text(graph, i)}`",
                _op_span(graph, i), source=graph.source,
                help="a derivative grew past the largest double (about 1.8e308); rescale the inputs",
            )
        tangent[i] = total
    for node in graph.names.values() if needed is None else needed:
        if node in undefined_at:
            raise _derivative_error(graph, values, *undefined_at[node])
    return tangent


# ---------------------------------------------------------------- where things are

def _applied(op, xs) -> str:
    shown = [number_text(x) for x in xs]
    if op.infix:
        return f"{shown[0]} {op.name} {shown[1]}"
    if op.key == "neg":
        return f"-({shown[0]})"
    return f"{op.name}({', '.join(shown)})"


def _expr_text(graph: Graph, i: int) -> str:
    expr = graph.expr[i]
    text = graph.source.snippet(expr.start, expr.end)
    return text if len(text) <= 40 else text[:39] + "…"


def _op_span(graph: Graph, i: int) -> tuple[int, int]:
    expr = graph.expr[i]
    if isinstance(expr, Binary):
        width = 0 if expr.implicit else (2 if graph.source.text.startswith("**", expr.op_start) else 1)
        return expr.op_start, expr.op_start + max(width, 1)
    if isinstance(expr, Unary):
        return expr.start, expr.start + 1
    if isinstance(expr, Call):
        return expr.start, expr.name_end
    return expr.start, expr.end
