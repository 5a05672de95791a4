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

import functools
import math
import weakref
from dataclasses import dataclass, field

from . import domain, engine
from .. import ops
from ..display import Displayed
from ..errors import DiffcliError
from ..formatting import applied_text, excerpt, operator_span
from ..language.graph import Graph

_isfinite = math.isfinite
MAX_MATRIX = 300  # inputs in a full Hessian: k tangents on every node (k² numbers out)
MAX_TANGENTS = 1 << 25  # k × the graph's nodes: the tangents' numbers (as array_hessian's bound)


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
            operation=graph.op[output].name if graph.op[output] is not None else None,
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
                    undefined = moving and type(pt) is Dual and not _finite(pt.t) and not _exists(
                        op, out, xs, ps)
                    raise _second_order_error(graph, values, i, n, undefined_at, undefined)
                adjoint_t[j] = adjoint_t[j] + contribution
    return adjoint, adjoint_t


def _exists(op, out, xs, partials) -> bool:
    """Whether every second partial of the operation is finite here (with unit tangents): then an
    infinite tangent of a partial was a large direction's overflow (H·v with v = 1e308), not an
    undefined second derivative."""
    try:
        ps = [f(out, *xs) for f in partials]
        if not all(map(_isfinite, ps)):
            return False
        _second_partials(op, out, xs, ps, [True] * len(xs))  # (raises where one is not finite)
    except (ArithmeticError, ValueError):
        return False
    return True


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
            operation=graph.op[i].name,
        )
    op = graph.op[i]
    xs = [values[j] for j in graph.args[i]]
    which = "" if len(xs) == 1 else f" with respect to its {domain._ordinal(n)} argument"
    return DiffcliError(
        "domain",
        f"the second derivative of `{op.name}`{which} is infinite or undefined at {applied_text(op, xs)}",
        operator_span(graph.source, graph.expr[i]), source=graph.source,
        help="the Hessian does not exist here; evaluate at another point",
        operation=op.name,
    )


# ---------------------------------------------------------------- the results

def hessian_matrix(graph: Graph, values: list[float], output: int, wrt: list[str]):
    """(gradient over wrt, symmetric Hessian over wrt as a NumPy matrix): the sum over the nodes (see _edge_sum), and
    where that meets anything that is not finite, forward-over-reverse with k directions, which
    gives the result or names the operation whose (second) derivative does not exist."""
    import numpy as np

    try:
        with np.errstate(all="ignore"):
            compiled = _compiled_sum(graph, output, tuple(wrt))
            found = compiled(values) if compiled is not None else None
            if found is None:  # too large to compile, or anything not finite: as before
                found = _edge_sum(graph, values, output, wrt)
        if found is not None:
            return found
    except (ArithmeticError, ValueError):
        pass
    return walk_matrix(graph, values, output, wrt)


def walk_matrix(graph: Graph, values: list[float], output: int, wrt: list[str]):
    """hessian_matrix by forward-over-reverse with k directions, checked where needed."""
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
    return gradient, matrix


def _edge_sum(graph: Graph, values: list[float], output: int, wrt: list[str]):
    """The Hessian as Σ over the nodes i of g_i · Tᵀ ∇²φ_i T: g_i the adjoint of node i, ∇²φ_i its
    operation's second partials, T the tangents d(argument)/d(wrt) of its arguments (the chain
    rule twice; forward-over-reverse computes the same sum, a direction at a time).

    The tangents of all the nodes are one matrix, filled a level of the graph at a time (every node
    of a level at once). The terms: (c, a, b) meaning c·T[a]ᵀT[b]; where T[a] is an input's unit
    row, a term is c·T[b] added into that input's row; the others are one matrix product. The
    result is S + Sᵀ, symmetric by construction. What depends only on the graph (the levels, the
    terms' places) is planned once (_EdgePlan). Returns None where anything is not finite (the
    caller's checked walk then decides)."""
    import numpy as np

    plan = _edge_plan(graph, output, tuple(wrt))
    adjoint = engine.reverse(graph, values, output)
    partials = [0.0]  # slot 0: the partial of an argument that does not move
    for i, functions, a in plan.nodes:
        out = values[i]
        if len(a) == 2:
            x, y = values[a[0]], values[a[1]]
            partials += [f(out, x, y) for f in functions]
        else:
            xs = [values[j] for j in a]
            partials += [f(out, *xs) for f in functions]
    # coefficients: g_i for x·y's terms, g_i·h (halved on the diagonal) for the general ones
    coefficient = [adjoint[i] for i in plan.bilinear]
    for i, op, moving, slots, count in plan.general:
        g = adjoint[i]
        if g == 0.0:  # nothing flows through here: its second partials are not needed
            coefficient += [0.0] * count
            continue
        xs = [values[j] for j in graph.args[i]]
        ps = [partials[s] for s in slots]
        for (u, v), h in _second_partials(op, values[i], xs, ps, moving):
            coefficient.append(g * h / 2 if u == v else g * h)
    p = np.array(partials)
    tangent = np.zeros((len(graph), len(wrt)))
    tangent[plan.input_nodes, plan.input_rows] = 1.0
    for group, sources, slots in plan.levels:
        total = tangent[sources[0]] * p[slots[0]][:, None]
        for source, slot in zip(sources[1:], slots[1:]):
            total += tangent[source] * p[slot][:, None]
        tangent[group] = total
    c = np.array(coefficient)
    half = np.zeros((len(wrt), len(wrt)))
    if len(plan.rows):
        np.add.at(half, plan.rows, c[plan.row_terms][:, None] * tangent[plan.row_others])
    if len(plan.dense_a):
        half += (tangent[plan.dense_a] * c[plan.dense_terms][:, None]).T @ tangent[plan.dense_b]
    matrix = half + half.T
    if not (np.isfinite(matrix).all() and np.isfinite(tangent).all()):
        return None
    return {name: adjoint[graph.names[name]] for name in wrt}, matrix


MAX_PRODUCTS = 20_000  # products in a compiled sum (its source grows with them); above: _edge_sum
MAX_COMPILED = 2_000  # nodes of a graph whose sum is compiled (compiling costs ~ its size, once)
_CHUNK = 32  # terms a statement adds at most (a long sum is a deep tree to Python's compiler)


def _compiled_sum(graph: Graph, output: int, wrt: tuple):
    """_edge_sum compiled once per (graph, output, wrt) into straight-line Python on floats: each
    node's tangent only along the inputs it depends on (known from the graph), each term of the sum
    only over those, the upper triangle summed once. The same partial functions (graph.partials) and
    second partials (_second_partials, the op table's rules on dual numbers) as _edge_sum; None (and
    _edge_sum runs) where the sum would be too large to write out. The function returns None where
    anything raises or is not finite, and the caller runs _edge_sum (and so its checks and errors)."""
    plans = _COMPILED.setdefault(graph, {})
    key = (output, wrt, len(graph))
    if key not in plans:
        if len(plans) > 16:
            plans.clear()
        plans[key] = _compile_sum(graph, output, wrt) if len(graph) <= MAX_COMPILED else None
    return plans[key]


_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _sum_statements(target: str, terms: list[str], lines: list[str]) -> None:
    for start in range(0, len(terms), _CHUNK):
        lines.append(f"  {target} {'=' if start == 0 else '+='} {' + '.join(terms[start:start + _CHUNK])}")


def _compile_sum(graph: Graph, output: int, wrt: tuple):
    import numpy as np

    from ..language.graph import needs_gradient

    k = len(wrt)
    row_of = {graph.names[name]: r for r, name in enumerate(wrt)}
    depends = depends_on(graph, list(row_of))
    feeds, needs = graph.feeds(output), needs_gradient(graph)
    op_of, args = graph.op, graph.args
    namespace = {"_np": np, "_second": _second_partials}
    # the partials: of the arguments that move (tangents) and of those whose adjoint is wanted
    wanted = {(i, q) for i in range(len(graph)) if op_of[i] is not None and (depends[i] or feeds[i])
              for q, j in enumerate(args[i]) if (depends[i] and depends[j]) or (feeds[i] and needs[j])}
    if len(wanted) > MAX_PRODUCTS:
        return None
    body: list[str] = []
    for i, q in sorted(wanted):
        namespace[f"f{i}_{q}"] = graph.partials[i][q]
        body.append(f"  p{i}_{q} = f{i}_{q}({', '.join(f'v{j}' for j in (i, *args[i]))})")
    # the adjoints, in engine.reverse's order (the same sums, bit for bit)
    adjoint = {output: "1.0"}
    for i in range(output, -1, -1):
        if op_of[i] is None or i not in adjoint:
            continue
        for q, j in enumerate(args[i]):
            if (i, q) in wanted and needs[j]:
                body.append(f"  a{j} {'+=' if j in adjoint else '= 0.0 +'} {adjoint[i]} * p{i}_{q}")
                adjoint[j] = f"a{j}"
    _sum_statements("check", [name for name in adjoint.values() if name != "1.0"] or ["0.0"], body)
    body += ["  if check - check != 0.0:", "   return None"]
    # rows[node]: {row: the tangent's variable there, or "" for an input's own unit row}
    rows: dict[int, dict[int, str]] = {node: {r: ""} for node, r in row_of.items()}
    tangents, terms = [], []   # terms: (coefficient variable, node a, node b)
    for i in range(len(graph)):
        op = op_of[i]
        if op is None or not depends[i]:
            continue
        a = args[i]
        here: dict[int, list[str]] = {}
        for q, j in enumerate(a):
            if depends[j]:
                for r, t in rows[j].items():
                    here.setdefault(r, []).append(f"p{i}_{q}" + (f" * {t}" if t else ""))
        rows[i] = {}
        for r, parts in sorted(here.items()):
            rows[i][r] = f"t{i}_{r}"
            _sum_statements(f"t{i}_{r}", parts, body)
            tangents.append(f"t{i}_{r}")
        found = _term_pairs(op, a, depends) if feeds[i] and i in adjoint else None
        if found is None:
            continue
        bilinear, moving, pairs = found
        if bilinear:
            terms += [(adjoint[i], a[u], a[v]) for u, v in pairs]
        else:
            ps = ", ".join(f"p{i}_{q}" if moving[q] else "0.0" for q in range(len(a)))
            names = [f"c{i}_{u}_{v}" for u, v in pairs]
            namespace[f"op{i}"], namespace[f"moving{i}"] = op, moving
            body += [f"  if {adjoint[i]} == 0.0:", f"   {' = '.join(names)} = 0.0", "  else:",
                     f"   h = _second(op{i}, v{i}, [{', '.join(f'v{j}' for j in a)}], [{ps}], moving{i})"]
            for n, ((u, v), name) in enumerate(zip(pairs, names)):
                body.append(f"   {name} = {adjoint[i]} * h[{n}][1]" + (" / 2" if u == v else ""))
                terms.append((name, a[u], a[v]))
        if len(tangents) + len(terms) > MAX_PRODUCTS:
            return None
    if sum(len(rows[ja]) * len(rows[jb]) for _, ja, jb in terms) > MAX_PRODUCTS:
        return None
    entries: dict[tuple, list[str]] = {}
    for c, ja, jb in terms:
        for r, tr in rows[ja].items():
            for s, ts in rows[jb].items():
                factors = " * ".join(x for x in (c, tr, ts) if x)
                entries.setdefault((min(r, s), max(r, s)), []).append(f"2.0 * {factors}" if r == s else factors)
    for (r, s), parts in sorted(entries.items()):
        _sum_statements(f"e{r}_{s}", parts, body)
    # every tangent's finiteness in one sum (a NaN or infinity anywhere: the checked walk decides)
    _sum_statements("check", tangents or ["0.0"], body)
    cells = ", ".join(f"e{min(r, s)}_{max(r, s)}" if (min(r, s), max(r, s)) in entries else "0.0"
                      for r in range(k) for s in range(k))
    body += [f"  M = _np.array([{cells}]).reshape({k}, {k})",
             "  if check - check != 0.0 or not _np.isfinite(M).all():", "   return None",
             f"  return {{{', '.join(f'{name!r}: {adjoint.get(graph.names[name], 0.0)}' for name in wrt)}}}, M"]
    used = sorted({j for i, _ in wanted for j in (i, *args[i])})
    lines = ["def _run(V):", *[f" v{j} = V[{j}]" for j in used], " try:", *body,
             " except (ArithmeticError, ValueError):", "  return None"]
    exec(compile("\n".join(lines), "<diffcli hessian plan>", "exec"), namespace)  # our own text only
    return namespace["_run"]


def _term_pairs(op, a, depends):
    """A node's terms in the sum: None for a linear operation, else (bilinear, which arguments
    move, the (u, v) argument pairs u ≤ v both moving): x·y's pairs (a second partial of 1), or
    every pair of a general operation (second partials from _second_partials, in this order)."""
    moving = [depends[j] for j in a]
    shapes = _partial_shapes(op.key, len(a))
    if shapes is _LINEAR:
        return None
    if all(shape[0] != "general" for shape in shapes):
        return True, moving, [(u, shape[1]) for u, shape in enumerate(shapes)
                              if shape[0] == "argument" and u <= shape[1] and moving[u] and moving[shape[1]]]
    return False, moving, [(u, v) for v in range(len(a)) for u in range(v + 1) if moving[u] and moving[v]]


class _EdgePlan:
    """What _edge_sum needs of the graph alone: the moving nodes with their partial functions (of
    the moving arguments only), the levels (group, source nodes and partial slots per argument),
    and the terms (each a coefficient index; a unit row's, or a dense pair's)."""

    def __init__(self, graph: Graph, output: int, wrt: tuple):
        import numpy as np

        n = len(graph)
        op_of, args = graph.op, graph.args
        row_of = {graph.names[name]: r for r, name in enumerate(wrt)}
        self.input_nodes, self.input_rows = list(row_of), list(row_of.values())
        depends = depends_on(graph, list(row_of))
        feeds = graph.feeds(output)
        self.nodes, self.bilinear, self.general = [], [], []
        level, by_level, slot = [0] * n, {}, [None] * n
        terms = []  # (coefficient index, a, b)
        next_slot = 1
        for i in range(n):
            op = op_of[i]
            if op is None or not depends[i]:
                continue
            a = args[i]
            functions = [f for f, j in zip(graph.partials[i], a) if depends[j]]
            slot[i] = [0] * len(a)
            for position, j in enumerate(a):
                if depends[j]:
                    slot[i][position] = next_slot
                    next_slot += 1
            self.nodes.append((i, functions, a))
            level[i] = 1 + max(level[j] for j in a if depends[j])
            by_level.setdefault((level[i], len(a)), []).append(i)
            found = _term_pairs(op, a, depends) if feeds[i] else None
            if found is None:
                continue
            bilinear, moving, pairs = found
            if bilinear:
                for u, v in pairs:
                    terms.append((len(self.bilinear), a[u], a[v]))
                    self.bilinear.append(i)
            else:
                self.general.append((i, op, moving, slot[i], pairs))
        # the general terms' coefficients follow the bilinear ones, in _second_partials' order
        index = len(self.bilinear)
        for number, (i, op, moving, slots, pairs) in enumerate(self.general):
            for u, v in pairs:
                terms.append((index, args[i][u], args[i][v]))
                index += 1
            self.general[number] = (i, op, moving, slots, len(pairs))
        self.levels = [(np.array(group), [np.array([args[i][m] for i in group]) for m in range(arity)],
                        [np.array([slot[i][m] for i in group]) for m in range(arity)])
                       for (_, arity), group in sorted(by_level.items())]
        rows, row_terms, row_others, dense_terms, dense_a, dense_b = [], [], [], [], [], []
        for t, ja, jb in terms:
            if jb in row_of:
                ja, jb = jb, ja
            if ja in row_of:
                rows.append(row_of[ja]); row_terms.append(t); row_others.append(jb)
            else:
                dense_terms.append(t); dense_a.append(ja); dense_b.append(jb)
        self.rows, self.row_terms, self.row_others = (np.array(x, dtype=np.intp) for x in (rows, row_terms, row_others))
        self.dense_terms, self.dense_a, self.dense_b = (np.array(x, dtype=np.intp) for x in (dense_terms, dense_a, dense_b))


_EDGE_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _edge_plan(graph: Graph, output: int, wrt: tuple) -> _EdgePlan:
    plans = _EDGE_PLANS.setdefault(graph, {})
    plan = plans.get((output, wrt))
    if plan is None:
        if len(plans) > 16:  # a few outputs and input sets per program
            plans.clear()
        plan = plans[(output, wrt)] = _EdgePlan(graph, output, wrt)
    return plan


@functools.lru_cache(maxsize=None)
def _partial_shapes(key: str, nargs: int) -> tuple:
    """Each partial of an operation as printed: ("constant",), ("argument", m) where it is argument
    m itself (x·y's partials), else ("general",). Read from the printed rules, so nothing of the math
    is written here: a constant partial has no second derivative, an argument's is 1."""
    printer = ops.printer("python")
    xs = printer.variables(*[f"x{m}" for m in range(nargs)])
    shapes = []
    for m in range(nargs):
        text = str(printer._text(ops.apply_partial(ops.OPS[key], printer, m, printer.code("out"), *xs)))
        if text in [str(x) for x in xs]:
            shapes.append(("argument", [str(x) for x in xs].index(text)))
        elif _is_number(text):
            shapes.append(("constant",))
        else:
            shapes.append(("general",))
    return _LINEAR if all(shape == ("constant",) for shape in shapes) else tuple(shapes)


_LINEAR = ("linear",)  # every partial a constant (+, -, a copy): no second derivative at all


def _is_number(text: str) -> bool:
    try:
        float(text.strip("()"))
    except ValueError:
        return False
    return True


def _second_partials(op, out, xs, ps, moving):
    """((u, v), ∂²/∂x_u∂x_v) for u ≤ v, both arguments moving: from the partial rules' shapes, and
    for a general rule its dual numbers (argument v moving, the result by its partial ∂out/∂x_v)."""
    shapes = _partial_shapes(op.key, len(xs))
    if all(shape[0] != "general" for shape in shapes):
        return [((u, shape[1]), 1.0) for u, shape in enumerate(shapes)
                if shape[0] == "argument" and u <= shape[1] and moving[u] and moving[shape[1]]]
    dual, Dual = ops.backend("dual"), ops.Dual
    found = []
    for v in range(len(xs)):
        if not moving[v]:
            continue
        duals = [Dual(x, 1.0 if m == v else 0.0) for m, x in enumerate(xs)]
        moving_out = Dual(out, ps[v])
        for u in range(v + 1):
            if not moving[u]:
                continue
            pt = ops.apply_partial(op, dual, u, moving_out, *duals)
            h = pt.t if type(pt) is Dual else 0.0
            if type(h) is not float:
                h = float(h)
            if not _isfinite(h):
                raise ValueError("a second partial that is not finite")
            found.append(((u, v), h))
    return found


def hessian_vector(graph: Graph, values: list[float], output: int, vector: dict[str, float]):
    """(gradient, H·v) over every input, by one forward-over-reverse pass with a float tangent."""
    seeds = {graph.names[name]: float(v) for name, v in vector.items() if v != 0.0}
    inputs = [graph.names[name] for name in graph.inputs]
    adjoint, adjoint_t = second_order(graph, values, output, seeds, inputs)
    gradient = {name: adjoint[graph.names[name]] for name in graph.inputs}
    product = {name: float(adjoint_t[graph.names[name]]) for name in graph.inputs}
    return gradient, product


@dataclass
class Hessian(Displayed):
    """Second derivatives of `output` over the inputs `wrt`: `matrix` (NumPy, rows and columns in
    wrt's order), and `hessian`, the same numbers by name (made when first asked for)."""

    inputs: dict[str, float]
    unused: list[str]
    output: str
    value: float
    wrt: list[str]
    gradient: dict[str, float]
    matrix: object = field(compare=False, repr=False)

    @functools.cached_property
    def hessian(self) -> dict[str, dict[str, float]]:
        return {a: dict(zip(self.wrt, row)) for a, row in zip(self.wrt, self.matrix.tolist())}


@dataclass
class HessianVector(Displayed):
    """H·v over every input, H being the Hessian of `output` over all inputs."""

    inputs: dict[str, float]
    unused: list[str]
    output: str
    value: float
    vector: dict[str, float]
    gradient: dict[str, float]
    hvp: dict[str, float]
