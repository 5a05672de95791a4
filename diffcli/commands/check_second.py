"""`check --order 2`: second derivatives against central differences of the reverse-mode gradient.

On a program of at most MATRIX_INPUTS inputs every entry of the Hessian is checked: row `a,b`
compares H[a][b] (forward-over-reverse, hessian.py) with the central difference of the reverse
gradient's `a` component in the direction of `b`, Richardson-extrapolated as in check.py, with the
same tolerances and kink handling (a kink counts when the step in `b` crosses it). Its `forward`
column is H[b][a] from the other row of the unsymmetrized matrix: the same numbers summed in another
order, which must agree to rounding.

On a larger program one random direction v (fixed seed) is checked instead: row `a` compares
(H·v)[a] with the central difference of the gradient's `a` component along v; there `forward`
repeats the product, having no second computation.
"""

from __future__ import annotations

import random
from typing import Mapping

from ..interpreters import engine, hessian
from .check import EPS, MAX_ELEMENTS_CHECKED, SAMPLE_SEED, CheckResult, Row, _array_kink, _compare, _kink, setup
from ..program import Program

MATRIX_INPUTS = 20


def check_second(program: Program, values: Mapping[str, float] | None = None, of: str | None = None,
                 rtol: float = 1e-6, atol: float = 1e-8, allow_kinks: bool = False) -> CheckResult:
    run, inputs, node_values, out, feeds, kinks = setup(program, values, of)
    graph = program.graph
    if graph.shape is not None:
        return _check_second_arrays(program, run, inputs, node_values, out, feeds, kinks, rtol, atol, allow_kinks)
    wrt = [name for name in inputs if feeds[graph.names[name]]]
    needs = engine.needs_gradient(graph)
    nodes = [graph.names[name] for name in wrt]

    def gradient_at(point):
        return engine.reverse(graph, engine.forward(graph, point), out, needs)

    if len(wrt) <= MATRIX_INPUTS:
        directions = {b: {b: 1.0} for b in wrt}
    else:
        rng = random.Random(0)
        directions = {"v": {name: rng.uniform(-1.0, 1.0) for name in wrt}}
    products = {}
    for key, direction in directions.items():
        seeds = {graph.names[n]: t for n, t in direction.items()}
        products[key] = hessian.second_order(graph, node_values, out, seeds, nodes)[1] if nodes else None

    rows = []
    for key, direction in directions.items():
        seeds = {graph.names[n]: t for n, t in direction.items()}
        tangent, _ = hessian.value_tangents(graph, node_values, seeds, hessian.depends_on(graph, seeds))
        h = EPS ** (1 / 3) * max(1.0, *(abs(inputs[n]) for n in direction))
        differences: dict[float, tuple] = {}

        def central(step, direction=direction):
            if step not in differences:
                up = {**inputs, **{n: inputs[n] + step * t for n, t in direction.items()}}
                down = {**inputs, **{n: inputs[n] - step * t for n, t in direction.items()}}
                differences[step] = (gradient_at(up), gradient_at(down), step)
            return differences[step]

        kink = _kink(graph, node_values, tangent, h, kinks)
        for a in wrt:
            if key != "v" and wrt.index(a) > wrt.index(key):
                continue  # the matrix is symmetric: its upper triangle (with the diagonal) suffices
            node = graph.names[a]
            analytic = float(products[key][node])
            other = float(products[a][graph.names[key]]) if key != "v" else analytic
            row = Row(a if key == "v" else f"{a},{key}", analytic, other, None, None, None, True)
            row.kink = kink

            def difference(step, node=node):
                up, down, used = central(step)
                return (up[node] - down[node]) / (2 * used)

            scale = max(abs(run.adjoints[graph.names[a]]), 1e-300)
            where = f"{key} = {inputs[key]:g}" if key != "v" else "a random direction v"
            _compare(row, difference, h, scale, where, rtol, atol, allow_kinks)
            rows.append(row)
    return CheckResult(run.output, run.value, all(r.ok for r in rows), rows, run.unused,
                       rtol, atol, order=2)


def _check_second_arrays(program, run, inputs, node_values, out, feeds, kinks, rtol, atol, allow_kinks):
    """check --order 2 on an array program: the same rows over elements (`W[0,1],x[1]`), from the
    unsymmetrized rows of array_hessian's forward-over-reverse; above MATRIX_INPUTS elements, H·v
    along one random direction (a fixed seed) over every element."""
    import numpy as np

    from ..interpreters import array_hessian

    graph = program.graph
    nodes = [graph.names[name] for name in inputs if feeds[graph.names[name]]]
    sizes = [max(1, int(np.prod(graph.shape[node]))) for node in nodes]
    offsets = np.cumsum([0] + sizes)
    count = int(offsets[-1])

    def place(r):  # element r of them all, row-major within each input -> (input node, flat index)
        q = int(np.searchsorted(offsets, r, side="right")) - 1
        return nodes[q], int(r - offsets[q])

    matrix = count <= MATRIX_INPUTS
    shown = list(range(count))
    sampled = None
    if not matrix and count > MAX_ELEMENTS_CHECKED:  # H·v checked at a seeded sample of the elements
        shown = sorted(int(r) for r in np.random.default_rng(SAMPLE_SEED).choice(count, MAX_ELEMENTS_CHECKED,
                                                                                  replace=False))
        sampled = (f"{MAX_ELEMENTS_CHECKED} of the inputs' {count:,} elements, a sample drawn "
                   f"with seed {SAMPLE_SEED}")
    where = {r: place(r) for r in shown}
    labels = {}
    for r in shown:
        node, flat = where[r]
        shape = graph.shape[node]
        name = _name_of(graph, node)
        labels[r] = name if not shape else name + "[" + ",".join(map(str, np.unravel_index(flat, shape))) + "]"
    needs = engine.needs_gradient(graph)

    def component(adjoints, r):
        node, flat = where[r]
        return float(np.asarray(adjoints[node], dtype=float).reshape(-1)[flat])

    def gradient_at(point):
        return engine.reverse(graph, engine.forward(graph, point), out, needs)

    def moved(step, direction):
        point = dict(inputs)
        for node, t in direction.items():
            name = _name_of(graph, node)
            point[name] = np.asarray(inputs[name], dtype=float) + step * t if np.ndim(t) else inputs[name] + step * float(t)
        return point

    if matrix:
        k = count
        seeds = {node: np.zeros((k, size)) for node, size in zip(nodes, sizes)}
        for r, (node, flat) in where.items():
            seeds[node][r, flat] = 1.0
        seeds = {node: seed.reshape((k,) + graph.shape[node]) for node, seed in seeds.items()}
    else:
        rng = np.random.default_rng(0)
        k = 1
        seeds = {node: rng.uniform(-1.0, 1.0, size).reshape((1,) + graph.shape[node]) for node, size in zip(nodes, sizes)}
    _, adjoint_t = array_hessian.second_order(graph, node_values, out, seeds, k) if count else (None, None)
    product = {}  # (d, r): (H·direction d)[element r]
    for r, (node, flat) in where.items():
        t = adjoint_t[node]
        for d in range(k):
            product[d, r] = 0.0 if t is None else float(t.reshape(k, -1)[d, flat])
    # (for the kinks only: an undefined partial's NaN is left, as the scalar check leaves it)
    tangent, _ = array_hessian.tangents(graph, node_values, out, seeds, k, undefined_at={}) if count else ([], None)

    rows = []
    for d in range(k):
        direction = {node: seed[d] for node, seed in seeds.items()}
        along = [float(np.max(np.abs(np.asarray(inputs[_name_of(graph, node)], dtype=float)))) for node in direction]
        h = EPS ** (1 / 3) * max(1.0, *along)
        differences: dict = {}

        def central(step, direction=direction):
            if step not in differences:
                differences[step] = (gradient_at(moved(step, direction)), gradient_at(moved(-step, direction)), step)
            return differences[step]

        kink = _array_kink(graph, node_values, [np.zeros(s) if t is None else t[d] for t, s in zip(tangent, graph.shape)],
                           h, kinks) if kinks else None
        for r in (range(d + 1) if matrix else shown):  # the upper triangle (with the diagonal) suffices
            label = labels[r]
            analytic = product[d, r]
            other = product[r, d] if matrix else analytic
            row = Row(f"{label},{labels[d]}" if matrix else label, analytic, other, None, None, None, True)
            row.kink = kink

            def difference(step, r=r):
                up, down, used = central(step)
                return (component(up, r) - component(down, r)) / (2 * used)

            scale = max(abs(component(run.adjoints, r)), 1e-300)
            at = f"{labels[d]} = {component_value(inputs, graph, where[d]):g}" if matrix else "a random direction v"
            _compare(row, difference, h, scale, at, rtol, atol, allow_kinks)
            rows.append(row)
    return CheckResult(run.output, float(run.value), all(r.ok for r in rows), rows, run.unused, rtol, atol, order=2,
                       sampled=sampled)


def _name_of(graph, node: int) -> str:
    return next(name for name in graph.inputs if graph.names[name] == node)


def component_value(inputs, graph, place) -> float:
    import numpy as np

    node, flat = place
    return float(np.asarray(inputs[_name_of(graph, node)], dtype=float).reshape(-1)[flat])
