"""Second derivatives of an array program: forward-over-reverse on the lowered graph, every
direction at once as a leading NumPy axis.

A tangent pass carries T[node], of shape (k,) + the node's shape: d(node)/d(direction d) for the k
directions (the unit vectors of the elements asked for, or one H·v direction). Then the reverse pass
runs on pairs: the adjoint g of each node (array_engine.reverse's) and its tangent Ġ, of shape
(k,) + the node's shape. For an elementwise node the argument's Ġ gains Ġ·p + g·ṗ, p its partial
and ṗ = Σ_m (∂p/∂x_m)·T[x_m]: the second partials ∂p/∂x_m come from the same partial rules pushed
through the op table's array duals (`ops.backend("numpy-dual")`, a unit tangent on argument m), so
no operation has a second copy of its math. A structural node's Ġ is its vjp applied to Ġ (the
batching rules of array_batch, which take a leading axis) plus what its `second` entry in ops.py
says: nothing for a linear op or a step (max, min), the vjp with the other argument's tangent for a
bilinear one (@, dot, outer), or its curvature rule (logsumexp, softmax, norm).

At an input, Ġ[d] is the row of H for direction d. The matrix is (H + Hᵀ)/2, as for scalars.
A second derivative that is not finite where it is needed (a non-zero adjoint meeting a moving
tangent) is a `domain` error naming the operation, its place and the first bad element.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from . import array_engine
from .array_batch import RULES
from .hessian import _LINEAR, _partial_shapes
from ..errors import DiffcliError
from ..formatting import applied_text, excerpt, operator_span
from ..language.arrays import element_label, operand_label
from ..language.graph import needs_gradient
from ..ops import ArrayOp, ArrayDual, apply_partial, backend

MAX_ELEMENTS = 3000       # elements in a full Hessian over arrays (k directions on every node)
MAX_TANGENTS = 1 << 25    # numbers in the tangents of every node together (k × the graph's elements)


def _finite(a) -> bool:
    with np.errstate(all="ignore"):
        total = a.sum()
        return total - total == 0.0


def tangents(graph, values: list, output: int, seeds: dict, k: int, checked: bool = True, undefined_at=None):
    """T[node] along the k directions ((k,) + its shape, None where it does not move) for the nodes
    up to `output`, and the elementwise nodes' partials (computed once, for the reverse pass too).

    Checked, a tangent that is not finite is done again with a still tangent or a zero partial
    blocking an undefined partial; one that still is raises, unless `undefined_at` is a dict: then
    its elements are left NaN and the node is mapped to the first derivative's error, raised only
    where the NaN is needed (as hessian.value_tangents leaves it on floats)."""
    m = backend("numpy")
    n = len(graph)
    tangent: list = [None] * n
    for node, t in seeds.items():
        tangent[node] = t
    partials: list = [None] * n  # elementwise nodes: the partial of every argument
    shape, attrs, args, ops = graph.shape, graph.attrs, graph.args, graph.op
    nds = [len(s) for s in shape]
    start = min(seeds, default=n)
    with np.errstate(all="ignore"):
        # ---- forward: the tangents
        for i in range(start + 1, output + 1):
            op = ops[i]
            if op is None:
                continue
            a = args[i]
            ts = [tangent[j] for j in a]
            if all(t is None for t in ts):
                continue
            xs = [values[j] for j in a]
            if op.__class__ is ArrayOp:
                total = _jvp(op, attrs.get(i), values[i], ts, xs, [nds[j] for j in a], nds[i], k)
            else:
                ps = partials[i] = [apply_partial(op, m, q, values[i], *xs) for q in range(len(a))]
                total = None
                for p, t in zip(ps, ts):
                    if t is not None:
                        c = t * p
                        total = c if total is None else total + c
            total = np.asarray(total, dtype=float)
            if total.shape != (k,) + shape[i]:
                total = np.broadcast_to(total, (k,) + shape[i])
            if checked and not _finite(total):
                total = _blocked_tangent(graph, values, i, ts, partials[i], k, undefined_at)
            tangent[i] = total
    return tangent, partials


def second_order(graph, values: list, output: int, seeds: dict, k: int, wanted=None):
    """(adjoints, adjoint tangents): d(output)/d(node) for every node (array_engine.reverse's), and
    its tangent along each of the k directions (an array (k,) + shape, or None where it does not
    move). `seeds` maps input nodes to their tangents, each (k,) + the input's shape.

    A fast walk (_Walk: what depends on the graph alone decided once) checks nothing on the way;
    where a result it leaves at the `wanted` nodes (default: every input) is not finite, the walk
    is done again checked, which blocks an undefined partial where nothing flows and otherwise names
    the operation at fault (as hessian.second_order)."""
    if wanted is None:
        wanted = [graph.names[name] for name in graph.inputs]
    found = _fast_walk(graph, values, output, seeds, k)
    if found is not None and (wanted == () or all((found[0][node] is None or _finite(found[0][node]))
                                                  and (found[1][node] is None or _finite(found[1][node]))
                                                  for node in wanted)):
        adjoint, adjoint_t = found
        return [np.zeros(s) if g is None else np.asarray(g) for g, s in zip(adjoint, graph.shape)], adjoint_t
    return checked_second_order(graph, values, output, seeds, k)


def checked_second_order(graph, values, output, seeds, k):
    """second_order's checked walk (and array_engine's checked first-order adjoints)."""
    needs = needs_gradient(graph)
    adjoint = array_engine.reverse(graph, values, output, needs)
    return adjoint, _walk(graph, values, output, seeds, k, adjoint, needs, checked=True)


class _Walk:
    """The fast walk compiled for a graph, an output, the seeded nodes and k directions: a closure
    per node and pass, with what depends on the graph alone (which arguments move and which need a
    cotangent, the rules, the shapes, the special cases) decided once, so that a call does the
    arithmetic and little else."""

    def __init__(self, graph, output, seeded, k, units=None):
        n = self.n = len(graph)
        self.units = units  # (held, so that the id in the cache's key stays its own)
        self.output = output
        depends = [False] * n
        for node in seeded:
            depends[node] = True
        for i in range(min(seeded, default=n), n):
            if not depends[i] and any(depends[j] for j in graph.args[i]):
                depends[i] = True
        feeds = graph.feeds(output)
        needs = needs_gradient(graph)
        self.forward, self.reverse = [], []
        self.scalars = [j for j in range(n) if graph.shape[j] == ()]
        for i in range(output + 1):
            op = graph.op[i]
            if op is None or not feeds[i]:
                continue
            a = graph.args[i]
            moves = [depends[j] for j in a]
            needed = [needs[j] and feeds[j] for j in a]
            steps = _structural_steps if op.__class__ is ArrayOp else _elementwise_steps
            forward, reverse = steps(graph, i, moves, needed, k, units or {})
            if depends[i]:
                self.forward.append(forward)
            self.reverse.append(reverse)
        self.reverse.reverse()

    def run(self, values, seeds, into=None):
        """(adjoints, their tangents), nothing checked (None where anything raised); the tangents
        of the nodes with an array in `into` left there."""
        n = self.n
        # scalars as NumPy scalars: the same numbers, without a 0-d array's overhead on every operation
        values = list(values)
        for j in self.scalars:
            values[j] = values[j][()]
        tangent: list = [None] * n
        for node, t in seeds.items():
            tangent[node] = t
        partials: list = [None] * n
        adjoint: list = [None] * n
        adjoint[self.output] = np.float64(1.0)
        adjoint_t: list = [None] * n
        owned = [False] * n  # adjoint_t[j] is an array of this pass's own, to add into in place
        try:
            with np.errstate(all="ignore"):
                for step in self.forward:
                    step(values, tangent, partials)
                for step in self.reverse:
                    step(values, tangent, partials, adjoint, adjoint_t, owned, into)
                for j, place in enumerate(into or ()):
                    if place is not None and adjoint_t[j] is not place:
                        if adjoint_t[j] is None:
                            place[...] = 0.0
                        else:
                            np.copyto(place, adjoint_t[j])
                        adjoint_t[j] = place
        except (ArithmeticError, ValueError):
            return None
        return adjoint, adjoint_t


def _accumulate(adjoint, adjoint_t, owned, j, c, c2, shape, full):
    """Add argument j's cotangent c and its tangent c2 (either None) to what it has."""
    if c is not None:
        if c.__class__ is not np.float64:
            c = np.asarray(c, dtype=float)
        if c.shape != shape:
            c = np.broadcast_to(c, shape)
        before = adjoint[j]
        adjoint[j] = c if before is None else before + c
    if c2 is not None:
        if c2.shape != full:
            c2 = np.broadcast_to(c2, full)
        before = adjoint_t[j]
        if before is None:
            adjoint_t[j] = c2
        elif owned[j]:
            np.add(before, c2, out=before)
        else:
            adjoint_t[j], owned[j] = before + c2, True


def _partial_rule(op, q):
    """rule(m, out, *xs): op's partial with respect to argument q (apply_partial's dispatch, once)."""
    if op.arity == 0:
        variadic = op.partial_rules[0]
        return lambda m, out, *xs: variadic(m, q, out, xs)
    return op.partial_rules[q]


def _is_one(p) -> bool:
    return p.__class__ is float and p == 1.0


def _elementwise_steps(graph, i, moves, needed, k, units):
    op, a = graph.op[i], graph.args[i]
    m, duals = backend("numpy"), backend("numpy-dual")
    rules = [_partial_rule(op, q) for q in range(len(a))]
    wanted = [mv or nq for mv, nq in zip(moves, needed)]
    moving = [(v, j) for v, (j, mv) in enumerate(zip(a, moves)) if mv]
    takers = [(u, j, (k,) + graph.shape[j], graph.shape[j]) for u, (j, nq) in enumerate(zip(a, needed)) if nq]
    full = (k,) + graph.shape[i]
    shapes = _partial_shapes(op.key, len(a))
    curved = shapes is not _LINEAR
    general = curved and any(shape[0] == "general" for shape in shapes)

    def partials_of(values):
        xs = [values[j] for j in a]
        out = values[i]
        return [rule(m, out, *xs) if w else None for rule, w in zip(rules, wanted)]

    def known_partials(values, partials):  # (a node the forward pass skipped: its tangent does not move)
        ps = partials[i] = partials_of(values)
        return ps

    if len(a) == 1:
        (j,), (rule,) = a, rules

        def forward(values, tangent, partials):
            p = rule(m, values[i], values[j])
            partials[i] = [p]
            t = tangent[j]
            total = t if _is_one(p) else t * p
            tangent[i] = total if total.shape == full else np.broadcast_to(total, full)
    else:
        def forward(values, tangent, partials):
            ps = partials[i] = partials_of(values)
            total = None
            for v, j in moving:
                p = ps[v]
                c = tangent[j] if _is_one(p) else tangent[j] * p  # (+: no copy)
                total = c if total is None else total + c
            tangent[i] = total if total.shape == full else np.broadcast_to(total, full)

    if len(a) == 1 and len(takers) == 1 and (general or not curved):  # tanh, exp, …: reverse's one argument
        (j,), (rule,) = a, rules
        _, _, full_j, shape_j = takers[0]

        def reverse(values, tangent, partials, adjoint, adjoint_t, owned, into):
            g, gt = adjoint[i], adjoint_t[i]
            if g is None and gt is None:
                return
            ps = partials[i] or known_partials(values, partials)
            p = ps[0]
            c2 = None if gt is None else gt if _is_one(p) else gt * p
            t = tangent[j]
            if general and g is not None and t is not None:  # its second partial, as second_partials'
                pt = rule(duals, ArrayDual(values[i], p), ArrayDual(values[j], 1.0))
                d = pt.t if pt.__class__ is ArrayDual else 0.0
                if d.__class__ is not float or d != 0.0:
                    c = (g * d) * t
                    c2 = c if c2 is None else c2 + c
            _accumulate(adjoint, adjoint_t, owned, j, None if g is None else g * p, c2, shape_j, full_j)
    else:
        def second_partials(values, ps, tangent):
            """h[u][v] = ∂p_u/∂x_v for each argument u that takes a cotangent and v whose tangent moves:
            the partial rules pushed through array duals, a unit tangent on argument v."""
            xs = [values[j] for j in a]
            out = values[i]
            h = [[] for _ in a]
            for v, j in enumerate(a):
                if tangent[j] is None:
                    continue
                lifted = [ArrayDual(x, 1.0 if q == v else 0.0) for q, x in enumerate(xs)]
                pv = ps[v] if ps[v] is not None else rules[v](m, out, *xs)
                dout = ArrayDual(out, pv)
                for u, _, _, _ in takers:
                    pt = rules[u](duals, dout, *lifted)
                    d = pt.t if pt.__class__ is ArrayDual else 0.0
                    if d.__class__ is not float or d != 0.0:
                        h[u].append((d, tangent[j]))
            return h

        def reverse(values, tangent, partials, adjoint, adjoint_t, owned, into):
            g, gt = adjoint[i], adjoint_t[i]
            if g is None and gt is None:
                return
            ps = partials[i] or known_partials(values, partials)
            bending = curved and g is not None and tangent[i] is not None
            h = second_partials(values, ps, tangent) if bending and general else None
            for u, j, full_j, shape_j in takers:
                p = ps[u]
                c2 = None if gt is None else gt if _is_one(p) else gt * p
                if bending:
                    if h is None:  # x·y: ∂p_u/∂x_v = 1 where p_u is x_v
                        shape = shapes[u]
                        if shape[0] == "argument" and tangent[a[shape[1]]] is not None:
                            c = g * tangent[a[shape[1]]]
                            c2 = c if c2 is None else c2 + c
                    else:
                        for d, t in h[u]:
                            c = (g * d) * t
                            c2 = c if c2 is None else c2 + c
                _accumulate(adjoint, adjoint_t, owned, j, None if g is None else g * p, c2, shape_j, full_j)

    return forward, reverse


def _structural_steps(graph, i, moves, needed, k, units):
    op, a = graph.op[i], graph.args[i]
    attrs = graph.attrs.get(i)
    nds = [len(graph.shape[j]) for j in a]
    nd = len(graph.shape[i])
    full = (k,) + graph.shape[i]
    takers = [(q, j, graph.shape[j], (k,) + graph.shape[j]) for q, (j, nq) in enumerate(zip(a, needed)) if nq]
    vjp = op.vjp
    if op.key == "matmul" and nds == [2, 1]:  # W @ x, a network's layer: BLAS calls on the stacked directions
        (jw, jx), (mw, mx) = a, moves
        rows, cols = graph.shape[jw]
        # W's tangent a scaled unit seed (W in the Hessian): its products with x and g are x's and
        # g's elements placed and scaled, T_W[d] being one `scale` at (r, c) in W's directions d
        unit = units.get(jw)
        if unit is not None:
            unit = (unit[0], unit[1] // cols, unit[1] % cols, unit[2])

        def forward(values, tangent, partials):
            w, x = values[jw], values[jx]
            if not mw:
                total = None
            elif unit is not None:
                ds, r, c, scale = unit
                total = np.zeros((k, rows))
                total[ds, r] = x[c] * scale  # T_W[d] @ x
            else:
                total = (tangent[jw].reshape(-1, cols) @ x).reshape(k, rows)
            if mx:
                term = tangent[jx] @ w.T
                total = term if total is None else np.add(total, term, out=total)
            tangent[i] = total

        def reverse(values, tangent, partials, adjoint, adjoint_t, owned, into):
            g, gt = adjoint[i], adjoint_t[i]
            if g is None:
                if gt is None:
                    return
                firsts = [None, None]
                seconds = _structural(op, attrs, g, gt, values[i], tangent[i], [values[jw], values[jx]],
                                      [tangent[jw], tangent[jx]], nds, nd, False, needed)
            else:
                xs = values[jw], values[jx]
                firsts = vjp(np, attrs, g, values[i], *xs)
                # W's adjoint tangent made where it is to be left, when it is W's first
                place = into[jw] if into is not None and adjoint_t[jw] is None else None
                seconds = _matrix_vector_seconds(g, gt, xs, [tangent[jw], tangent[jx]], needed, k, unit, place)
                if place is not None and seconds[0] is place:
                    adjoint_t[jw], owned[jw] = place, True
                    seconds[0] = None
            for q, j, shape_j, full_j in takers:
                _accumulate(adjoint, adjoint_t, owned, j, firsts[q], seconds[q], shape_j, full_j)

        return forward, reverse

    if op.key == "matmul" and nds == [1, 1]:  # v @ h, a network's last layer: its tangents by BLAS
        (jx, jy), (mx, my) = a, moves

        def forward(values, tangent, partials):
            total = None if not mx else tangent[jx] @ values[jy]
            if my:
                term = tangent[jy] @ values[jx]
                total = term if total is None else total + term
            tangent[i] = total

        def reverse(values, tangent, partials, adjoint, adjoint_t, owned, into):
            # Ġ_x = Ġ ⊗ y + g·T_y, Ġ_y = Ġ ⊗ x + g·T_x (the vjp of Ġ, then the bilinear term)
            g, gt = adjoint[i], adjoint_t[i]
            if g is None and gt is None:
                return
            xs = values[jx], values[jy]
            firsts = vjp(np, attrs, g, values[i], *xs) if g is not None else (None, None)
            others = tangent[jy], tangent[jx]
            for q, j, shape_j, full_j in takers:
                c2 = None if gt is None else gt[:, None] * xs[1 - q]
                if g is not None and others[q] is not None:
                    c = g * others[q]
                    c2 = c if c2 is None else np.add(c2, c, out=c2)
                _accumulate(adjoint, adjoint_t, owned, j, firsts[q], c2, shape_j, full_j)

        return forward, reverse

    def forward(values, tangent, partials):
        total = _jvp(op, attrs, values[i], [tangent[j] if mv else None for j, mv in zip(a, moves)],
                     [values[j] for j in a], nds, nd, k)
        if total.shape != full:
            total = np.broadcast_to(total, full)
        tangent[i] = total

    def reverse(values, tangent, partials, adjoint, adjoint_t, owned, into):
        g, gt = adjoint[i], adjoint_t[i]
        if g is None and gt is None:
            return
        xs = [values[j] for j in a]
        out = values[i]
        firsts = vjp(np, attrs, g, out, *xs) if g is not None else [None] * len(a)
        seconds = _structural(op, attrs, g, gt, out, tangent[i], xs, [tangent[j] for j in a], nds, nd,
                              g is not None and tangent[i] is not None, needed)
        for q, j, shape_j, full_j in takers:
            _accumulate(adjoint, adjoint_t, owned, j, firsts[q], seconds[q], shape_j, full_j)

    return forward, reverse


_WALKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _walk_for(graph, output, seeded, k, units=None) -> _Walk:
    kept = _WALKS.setdefault(graph, {})
    key = (output, tuple(sorted(seeded)), k, id(units))
    found = kept.get(key)
    if found is None:
        if len(kept) > 16:
            kept.clear()
        found = kept[key] = _Walk(graph, output, key[1], k, units)
    return found


def _fast_walk(graph, values, output, seeds, k, units=None, into=None):
    """The adjoints and their tangents, nothing checked (None where anything raised)."""
    return _walk_for(graph, output, list(seeds), k, units).run(values, seeds, into)


def _walk(graph, values, output, seeds, k, adjoint, needs, checked):
    undefined_at = {} if checked else None  # (a NaN tangent is an error only where it is needed)
    tangent, partials = tangents(graph, values, output, seeds, k, checked, undefined_at)
    n = len(graph)
    shape, attrs, args, ops = graph.shape, graph.attrs, graph.args, graph.op
    nds = [len(s) for s in shape]
    with np.errstate(all="ignore"):
        # ---- reverse: the adjoints' tangents
        adjoint_t: list = [None] * n
        owned = [False] * n  # adjoint_t[j] is an array of this pass's own, to add into in place
        for i in range(output, -1, -1):
            op = ops[i]
            if op is None:
                continue
            g, gt = adjoint[i], adjoint_t[i]
            moving = tangent[i] is not None and (g != 0).any()
            if gt is None and not moving:
                continue
            a = args[i]
            xs = [values[j] for j in a]
            if op.__class__ is ArrayOp:
                contributions = _structural(op, attrs.get(i), g, gt, values[i], tangent[i], xs,
                                            [tangent[j] for j in a], [nds[j] for j in a], nds[i], moving,
                                            [needs[j] for j in a])
            else:
                contributions = _elementwise(graph, values, i, g, gt, partials[i], tangent, moving, needs, checked)
            for position, (j, c) in enumerate(zip(a, contributions)):
                if c is None or not needs[j]:
                    continue
                c = np.asarray(c, dtype=float)
                if c.shape != (k,) + shape[j]:
                    c = np.broadcast_to(c, (k,) + shape[j])
                if checked and not _finite(c):
                    first = next((undefined_at[m] for m in (i, *a) if m in undefined_at), None)
                    raise first or _second_order_error(graph, values, i, position, c, moving)
                before = adjoint_t[j]
                if before is None:
                    adjoint_t[j] = c
                    owned[j] = False
                elif owned[j]:
                    np.add(before, c, out=before)
                else:
                    adjoint_t[j], owned[j] = before + c, True
    return adjoint_t


def _matrix_vector_seconds(g, gt, xs, ts, needed, k, unit=None, place=None):
    """_structural for z = W @ x (W a matrix, x a vector), in as few BLAS calls as it takes:
    Ġ_W[d] = Ġ_z[d] ⊗ x + g ⊗ T_x[d] (one stacked product of rank 2, into `place` if given),
    Ġ_x = Ġ_z W + g·T_W (g's elements placed, where T_W is a scaled unit seed: `unit`)."""
    (w, x), (tw, tx) = xs, ts
    m, n = w.shape
    cw = cx = None
    if needed[0] and (gt is not None or tx is not None):
        if gt is not None and tx is not None:
            # the factors laid out pair first, so that each is filled by whole blocks (the
            # matmul reads them through strides: the same products, in the same order)
            left = np.empty((2, k, m))
            left[0] = gt
            left[1] = g
            right = np.empty((2, k, n))
            right[0] = x
            right[1] = tx
            cw = np.matmul(left.transpose(1, 2, 0), right.transpose(1, 0, 2), out=place)
        elif gt is not None:
            cw = np.einsum("ki,j->kij", gt, x)
        else:
            cw = np.einsum("i,kj->kij", g, tx)
    if needed[1] and (gt is not None or tw is not None):
        if gt is not None:
            cx = gt @ w
        if tw is not None:
            if unit is not None:
                ds, r, c, scale = unit
                term = np.zeros((k, n))
                term[ds, c] = g[r] * scale
            else:
                term = g @ tw  # (m,) @ (k, m, n): Σ_i g[i] T_W[d, i, :]
            cx = term if cx is None else np.add(cx, term, out=cx)
    return [cw, cx]


def _jvp(op, attrs, out, ts, xs, nds, nd_out, k):
    """The op's tangent along every direction: its batching rules (array_batch.RULES), the
    directions as the leading axis, read off its vjp where it is no linear map of its arguments."""
    rule = RULES[op.key]
    second = op.second
    if second == "linear":
        if op.key == "stack":
            ts = [np.zeros(np.shape(x)) if t is None else t for t, x in zip(ts, xs)]
        return rule.value(attrs, ts, nds)
    if second == "bilinear":
        total = 0.0
        for q, t in enumerate(ts):
            if t is not None:
                total = total + rule.value(attrs, [t if r == q else x for r, x in enumerate(xs)], nds)
        return total
    (t,), (x,) = ts, xs
    if op.key == "softmax":  # its Jacobian is symmetric: the jvp is the vjp
        return rule.vjp(attrs, t, out, xs, nds, nd_out, (False,))[0]
    # a reduction: each result element is Σ over its slice of t · ∂out/∂x, that row read off the vjp of 1
    row = rule.vjp(attrs, np.ones(np.shape(out)), out, xs, nds, nd_out, (False,))[0]
    return np.sum(t * row, axis=_tail(attrs, x))


def _tail(attrs, x):
    axis = attrs.get("axis") if attrs else None
    nd = np.ndim(x)
    return tuple(range(-nd, 0)) if axis is None or nd == 1 else (axis - nd,)


def _structural(op, attrs, g, gt, out, tout, xs, ts, nds, nd_out, moving, needed):
    """The tangent of each argument's cotangent: the vjp of Ġ, plus the op's second-order term."""
    rule = RULES[op.key]
    count = len(xs)
    sums = (False,) * count
    total = [None] * count
    if gt is not None:
        total = list(rule.vjp(attrs, gt, out, xs, nds, nd_out, sums))
    if not moving or op.second in ("linear", "piecewise"):
        return total
    if op.second == "bilinear":
        # argument q's cotangent along the other argument's tangent: the vjp of g at the tangents,
        # one call for both (each cotangent of a bilinear op is linear in the other argument alone)
        wanted = [needed[q] and ts[1 - q] is not None for q in range(2)]
        if any(wanted):
            at = [x if t is None else t for t, x in zip(ts, xs)]
            for q, c in enumerate(rule.vjp(attrs, g, out, at, nds, nd_out, sums)):
                if not wanted[q]:
                    continue
                before = total[q]
                if before is None:
                    total[q] = c
                elif before.base is None and before.shape == np.shape(c):  # a new array of the vjp's
                    np.add(before, c, out=before)
                else:
                    total[q] = before + c
        return total
    if ts[0] is not None and needed[0]:
        c = op.second(np, attrs, g, out, xs[0], ts[0], tout)
        total[0] = c if total[0] is None else total[0] + c
    return total


def _elementwise(graph, values, i, g, gt, ps, tangent, moving, needs, checked=True, shapes=None):
    """Ġ·p + g·ṗ for each argument of an elementwise node (`needs`: per node, or when not `checked`
    per argument)."""
    op, a = graph.op[i], graph.args[i]
    needed = [needs[j] for j in a] if checked else needs
    if ps is None:
        ps = [apply_partial(op, backend("numpy"), q, values[i], *[values[j] for j in a]) for q in range(len(a))]
    total = [None if gt is None or not nq or p is None else gt if p.__class__ is float and p == 1.0 else gt * p
             for nq, p in zip(needed, ps)]
    if checked:  # a zero adjoint tangent blocks an undefined partial (0·sqrt'(0))
        total = [c if c is None or _finite(c) else np.where(gt != 0, c, 0.0) for c in total]
    if not moving:
        return total
    if shapes is None:
        shapes = _partial_shapes(op.key, len(a))
    if shapes is _LINEAR:
        return total
    ts = [tangent[j] for j in a]
    if all(shape[0] != "general" for shape in shapes):  # x·y: ∂p_u/∂x_v = 1 where p_u is x_v
        for u, shape in enumerate(shapes):
            if shape[0] == "argument" and needed[u] and ts[shape[1]] is not None:
                c = g * ts[shape[1]]
                total[u] = c if total[u] is None else total[u] + c
        return total
    duals = backend("numpy-dual")
    xs = [values[j] for j in a]
    out = values[i]
    for v, t in enumerate(ts):
        if t is None:
            continue
        lifted = [ArrayDual(x, 1.0 if q == v else 0.0) for q, x in enumerate(xs)]
        pv = ps[v] if ps[v] is not None else apply_partial(op, backend("numpy"), v, out, *xs)
        dout = ArrayDual(out, pv)
        for u in range(len(a)):
            if not needed[u]:
                continue
            pt = apply_partial(op, duals, u, dout, *lifted)
            h = pt.t if pt.__class__ is ArrayDual else 0.0
            if h.__class__ is float and h == 0.0:
                continue
            c = (g * h) * t
            if checked:
                c = np.where(t != 0, c, 0.0)  # a still tangent needs no second partial
                c = np.where(g != 0, c, 0.0)  # nor a zero adjoint
            total[u] = c if total[u] is None else total[u] + c
    return total


# ---------------------------------------------------------------- errors

def _blocked_tangent(graph, values, i, ts, ps, k, undefined_at=None):
    """A tangent that is not finite: again with a still tangent or a zero partial blocking an
    undefined partial (as array_engine.tangents does), else the first derivative's error, at the
    first bad element: raised, or with `undefined_at` (a dict) kept for node i, its elements NaN.
    An overflow is raised at once."""
    inherited = None if undefined_at is None else next(
        (undefined_at[j] for j, t in zip(graph.args[i], ts) if j in undefined_at and t is not None), None)
    if ps is None:  # a structural op (norm at 0): its own error
        error = inherited or array_engine._structural_derivative_error(graph, i, np.full(graph.shape[i], np.nan))
        if undefined_at is None or (graph.op[i].key != "norm" and inherited is None):
            raise error
        undefined_at[i] = error
        return np.full((k,) + graph.shape[i], np.nan)
    total = 0.0
    for q, t in enumerate(ts):
        if t is None:
            continue
        p = ps[q]
        c = np.where((t != 0) & (p != 0), t * p, 0.0)
        if not _finite(c):
            bad = ~np.isfinite(c)
            p_b = np.broadcast_to(p, bad.shape[1:])
            if (bad & np.isfinite(t) & np.isfinite(p)).any():  # finite factors: an overflow
                overflow = np.where((bad & np.isfinite(t) & np.isfinite(p)).any(axis=0), np.inf, 0.0)
                raise array_engine._derivative_error(graph, values, i, q, p_b, overflow)
            undefined = bad & np.isfinite(t)  # (else a NaN that flowed in: the error of where it came from)
            error = (None if undefined.any() else inherited) or array_engine._derivative_error(
                graph, values, i, q, p_b, np.where((undefined if undefined.any() else bad).any(axis=0), np.nan, 0.0))
            if undefined_at is None:
                raise error
            undefined_at.setdefault(i, error)
            c = np.where(bad, np.nan, c)
        total = total + c
    return np.broadcast_to(np.asarray(total, dtype=float), (k,) + graph.shape[i])


def _second_order_error(graph, values, i, position, c, moving) -> DiffcliError:
    op = graph.op[i]
    bad = ~np.isfinite(c)
    element = tuple(int(z) for z in np.unravel_index(int(np.flatnonzero(bad.any(axis=0))[0]), c.shape[1:])) \
        if c.ndim > 1 else ()
    where = excerpt(graph.source, graph.expr[i])
    span = operator_span(graph.source, graph.expr[i])
    if op.__class__ is ArrayOp or not moving or _second_partials_finite(graph, values, i, element):
        return DiffcliError("domain", f"a second derivative overflows at `{where}`", span, source=graph.source,
                            help="it grew past the largest double (about 1.8e308); rescale the inputs",
                            operation=op.name)
    from .domain import _ordinal

    xs = [float(np.asarray(values[j]) if not element else np.asarray(values[j])[element]) for j in graph.args[i]]
    which = "" if len(xs) == 1 else f" with respect to its {_ordinal(position)} argument"
    at = ""
    if element:
        at = f" at {operand_label(graph, graph.args[i][0])}{element_label(element)}"
    return DiffcliError("domain", f"the second derivative of `{op.name}`{which} is infinite or undefined at "
                        f"{applied_text(op, xs)}{at}", span, source=graph.source,
                        help="the Hessian does not exist here; evaluate at another point", operation=op.name)


def _second_partials_finite(graph, values, i, element) -> bool:
    """Whether every second partial of elementwise node i is finite at `element` (else the error is
    the operation's own, not an overflow on the way)."""
    op, a = graph.op[i], graph.args[i]
    xs = [values[j] for j in a]
    out = values[i]
    numeric, duals = backend("numpy"), backend("numpy-dual")
    with np.errstate(all="ignore"):
        for v in range(len(a)):
            lifted = [ArrayDual(x, 1.0 if q == v else 0.0) for q, x in enumerate(xs)]
            dout = ArrayDual(out, apply_partial(op, numeric, v, out, *xs))
            for u in range(len(a)):
                pt = apply_partial(op, duals, u, dout, *lifted)
                h = np.asarray(pt.t if pt.__class__ is ArrayDual else 0.0, dtype=float)
                if not np.isfinite(h if h.ndim == 0 or not element else np.broadcast_to(h, np.shape(out))[element]):
                    return False
    return True


# ---------------------------------------------------------------- the results

class Plan:
    """What a Hessian over some elements needs of the graph alone: their labels, the seeds (each
    input's tangents: the columns of the identity for its elements, halved) and where each label's
    row is."""

    def __init__(self, graph, wrt):
        labels, chosen = [], []
        for name, index in wrt:
            node = graph.names[name]
            shape = graph.shape[node]
            if index is None:
                flats = list(range(math.prod(shape)))
                labels += [name] if not shape else [name + element_label(i) for i in np.ndindex(*shape)]
            else:
                flats = [int(np.ravel_multi_index(index, shape))] if shape else [0]
                labels.append(name + element_label(index) if shape else name)
            chosen.append((node, flats))
        self.labels = labels
        seen: set = set()
        self.repeated = next((label for label in labels if label in seen or seen.add(label)), None)
        k = self.k = len(labels)
        seeds, ones, offset = {}, {}, 0
        for node, flats in chosen:
            size = math.prod(graph.shape[node])
            if node not in seeds:
                seeds[node] = np.zeros((k, size))
            directions = np.arange(offset, offset + len(flats))
            seeds[node][directions, flats] = 0.5
            before = ones.get(node, ((), ()))
            ones[node] = (np.concatenate([before[0], directions]).astype(int),
                          np.concatenate([before[1], flats]).astype(int))
            offset += len(flats)
        # the fast walk's seeds: the unit vectors halved, which halves every tangent exactly (a power
        # of two; the numbers go subnormal below 2.2e-308 only), so that (H + Hᵀ)/2 is one sum of its rows
        self.halves = {node: seed.reshape((k,) + graph.shape[node]) for node, seed in seeds.items()}
        for seed in self.halves.values():
            seed.flags.writeable = False
        self.units = {node: (d, flats, 0.5) for node, (d, flats) in ones.items()}  # where the halves are
        # each input's part of the rows: a slice where it is the input's every element in order
        self.columns = [(node, slice(None) if flats == list(range(math.prod(graph.shape[node]))) else flats)
                        for node, flats in chosen]
        self.whole = len({node for node, _ in chosen}) == len(chosen) and all(
            flats == slice(None) for _, flats in self.columns)

    def places(self, graph):
        """(rows, into): a new k × k array, and per node the part of it that is the node's adjoint
        tangent ((k,) + its shape), where the rows are every element of each input (else None, None)."""
        if not self.whole:
            return None, None
        k = self.k
        rows = np.empty((k, k))
        into: list = [None] * len(graph)
        offset = 0
        for node, _ in self.columns:
            shape = graph.shape[node]
            size = math.prod(shape)
            into[node] = rows[:, offset:offset + size].reshape((k,) + shape)
            offset += size
        return rows, into


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def plan(graph, wrt: list[tuple[str, tuple | None]]) -> Plan:
    """The Plan for `wrt` entries (name, element index or None for every element), kept per graph."""
    plans = _PLANS.setdefault(graph, {})
    key = tuple(wrt)
    found = plans.get(key)
    if found is None:
        if len(plans) > 16:
            plans.clear()
        found = plans[key] = Plan(graph, wrt)
    return found


def hessian_matrix(graph, values: list, output: int, chosen: Plan):
    """(gradient over the plan's elements, symmetric Hessian over them as a matrix)."""
    _keep_freed_memory()
    k = chosen.k
    if k == 0:  # the output depends on no input (`sum([1, 2])`): an empty matrix, as on floats
        return np.zeros(0), np.zeros((0, 0))
    # the fast walk, along the halved directions, into the rows where they are whole inputs; its
    # results checked once, whole: the checked walk runs where they are not finite
    rows, into = chosen.places(graph)
    found = _fast_walk(graph, values, output, chosen.halves, k, chosen.units, into)
    if found is not None:
        adjoint, adjoint_t = found
        for node, _ in chosen.columns:
            if adjoint[node] is None:
                adjoint[node] = np.zeros(graph.shape[node])
        if rows is not None and all(adjoint_t[node] is into[node] for node, _ in chosen.columns):
            gradient = np.concatenate([np.asarray(adjoint[node], dtype=float).reshape(-1)
                                       for node, _ in chosen.columns])
        else:
            rows, gradient = _rows(graph, k, chosen, adjoint, adjoint_t)
        # rows[d, r] = H[r][d] / 2: (H + Hᵀ)/2 the sum, checked once with the gradient (one sum of
        # both: a NaN or infinity in either is one in it)
        matrix = np.add(rows, rows.T)
        with np.errstate(all="ignore"):
            total = matrix.sum() + gradient.sum()
            finite = total - total == 0.0
        if finite:
            return gradient, matrix
    seeds = {node: 2.0 * half for node, half in chosen.halves.items()}  # the unit vectors
    adjoint, adjoint_t = checked_second_order(graph, values, output, seeds, k)
    rows, gradient = _rows(graph, k, chosen, adjoint, adjoint_t)
    rows *= 0.5  # halved first, so that the sum cannot overflow
    return gradient, np.add(rows, rows.T)


def _rows(graph, k, chosen, adjoint, adjoint_t):
    if all(flats == slice(None) and adjoint_t[node] is not None for node, flats in chosen.columns):
        # every element of each input, in order: one copy each
        return (np.concatenate([adjoint_t[node].reshape(k, -1) for node, _ in chosen.columns], axis=1),
                np.concatenate([np.asarray(adjoint[node], dtype=float).reshape(-1) for node, _ in chosen.columns]))
    rows = np.empty((k, k))
    gradient = np.empty(k)
    offset = 0
    for node, flats in chosen.columns:
        t = adjoint_t[node]
        width = math.prod(graph.shape[node]) if flats == slice(None) else len(flats)
        if t is None:
            rows[:, offset:offset + width] = 0.0
        else:
            rows[:, offset:offset + width] = t.reshape(k, -1)[:, flats]
        gradient[offset:offset + width] = np.asarray(adjoint[node], dtype=float).reshape(-1)[flats]
        offset += width
    return rows, gradient


_KEPT = []


def _keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks of up to 64 MiB for reuse rather than give each back
    to the system (its default above 128 KiB, adjusted as it goes): the walk makes and frees arrays
    of a few hundred KiB by the dozen, and each one mapped afresh costs a page fault per 4 KiB on
    its first write, which here was most of a Hessian's time (2.1 ms of mlp 10's, 0.85 ms without).
    Done once, where glibc is the C library; elsewhere nothing."""
    if _KEPT:
        return
    _KEPT.append(True)
    try:
        import ctypes

        libc = ctypes.CDLL(None)  # the process's own symbols: the C library's among them, no search
        if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
            libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD
            libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError, ValueError):
        pass


def hessian_vector(graph, values: list, output: int, vector: dict):
    """(adjoints, H·v per input node, each of its input's shape) for a direction {input node: array}."""
    _keep_freed_memory()
    seeds = {node: np.asarray(v, dtype=float)[None] for node, v in vector.items() if np.any(v != 0)}
    adjoint, adjoint_t = second_order(graph, values, output, seeds, 1)
    product = {}
    for name in graph.inputs:
        node = graph.names[name]
        t = adjoint_t[node]
        product[node] = np.zeros(graph.shape[node]) if t is None else np.asarray(t[0], dtype=float)
    return adjoint, product
