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
from .check import EPS, CheckResult, Row, _compare, _kink, setup
from ..program import Program

MATRIX_INPUTS = 20


def check_second(program: Program, values: Mapping[str, float] | None = None, of: str | None = None,
                 rtol: float = 1e-6, atol: float = 1e-8, allow_kinks: bool = False) -> CheckResult:
    run, inputs, node_values, out, feeds, kinks = setup(program, values, of)
    graph = program.graph
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
