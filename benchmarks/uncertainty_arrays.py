"""Uncertainty of an array program (issue 19 part 4): the Monte Carlo through the batched array
engine, against the unrolled scalar program through the scalar batch engine and the same samples
written by hand in NumPy; and --order 2 (a Hessian of differences of exact gradients, batched)
against the scalar program's exact Hessian. One process, one thread, alternating.

    python benchmarks/uncertainty_arrays.py          # measures, prints, and rewrites its section of RESULTS.md
    python benchmarks/uncertainty_arrays.py --quick  # fewer rounds; prints only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from array_batch import per_call, ratio_text, spread, write_section  # noqa: E402  (one thread, set there)

import numpy as np  # noqa: E402

BEGIN, END = "<!-- uncertainty arrays: begin -->", "<!-- uncertainty arrays: end -->"
ROUNDS = 5
M, N = 4, 8          # W is M×N, x has N elements
SAMPLES = 100_000


def sources() -> tuple[str, str]:
    rng = np.random.default_rng(2)
    x, w = rng.uniform(0.5, 2, N).round(3), rng.uniform(-1, 1, (M, N)).round(3)
    arrays = f"x = {x.tolist()} ± 1%\nW = {w.tolist()} ± 0.01\ny = sum(tanh(W @ x / 4))\n"
    lines = [f"x_{j} = {float(x[j])!r} ± 1%" for j in range(N)]
    lines += [f"W_{i}_{j} = {float(w[i, j])!r} ± 0.01" for i in range(M) for j in range(N)]
    lines += [f"h_{i} = tanh((" + " + ".join(f"W_{i}_{j}*x_{j}" for j in range(N)) + ") / 4)" for i in range(M)]
    lines.append("y = " + " + ".join(f"h_{i}" for i in range(M)))
    return arrays, "\n".join(lines) + "\n"


def rows() -> list[str]:
    import diffcli

    arrays_text, scalar_text = sources()
    arrays, scalars = diffcli.parse(arrays_text), diffcli.parse(scalar_text)
    x, w = arrays.inputs["x"], arrays.inputs["W"]

    def by_hand():
        z = np.random.Generator(np.random.SFC64(1)).standard_normal((N + M * N, SAMPLES))
        xs = x[:, None] + 0.01 * np.abs(x)[:, None] * z[:N]
        ws = w.reshape(-1, 1) + 0.01 * z[N:]
        y = np.tanh(np.einsum("ijn,jn->in", ws.reshape(M, N, SAMPLES), xs) / 4).sum(axis=0)
        return y.mean(), y.std(ddof=1)

    def monte_carlo(program):
        return lambda: program.uncertainty(monte_carlo=SAMPLES, seed=1).monte_carlo

    mine, theirs, hand = monte_carlo(arrays)(), monte_carlo(scalars)(), by_hand()
    assert abs(mine.mean - hand[0]) < 1e-12 and abs(mine.std - hand[1]) < 1e-10  # the same draws
    assert abs(mine.mean - theirs.mean) < 1e-12
    second = arrays.uncertainty(order=2).second_order, scalars.uncertainty(order=2).second_order
    assert abs(second[0].uncertainty - second[1].uncertainty) < 1e-9 * second[1].uncertainty

    a, b, c, d, e = [], [], [], [], []
    for _ in range(ROUNDS):
        a.append(per_call(monte_carlo(arrays), 1.0))
        b.append(per_call(monte_carlo(scalars), 1.0))
        c.append(per_call(by_hand, 1.0))
        d.append(per_call(lambda: arrays.uncertainty(order=2), 0.5))
        e.append(per_call(lambda: scalars.uncertainty(order=2), 0.5))
    elements = N + M * N
    return [
        f"| `uncertainty --monte-carlo {SAMPLES:,}`, x ({N}) and W ({M}×{N}) uncertain: the array program "
        f"| {spread(a)} | the unrolled scalar program: {spread(b)} | {ratio_text(a, b)[0]} |",
        f"| the same | {spread(a)} | the same samples by hand in NumPy: {spread(c)} | {ratio_text(a, c)[0]} |",
        f"| `uncertainty --order 2` over the {elements} elements: central differences of the exact gradient, "
        f"batched | {spread(d)} | the scalar program's exact Hessian: {spread(e)} | {ratio_text(d, e)[0]} |",
    ]


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two rounds; print only")
    args = parser.parse_args()
    if args.quick:
        ROUNDS = 2
    write_section(BEGIN, END, "Uncertainty of an array program", "uncertainty_arrays.py", ROUNDS, rows(), args.quick,
                  " Each call is the whole `Program.uncertainty`: the linear budget too.")


if __name__ == "__main__":
    main()
