"""The batched array engine (issue 18's many points): `array_batch.run(..., reduce="mean")`, the
moons network's mean gradient over 10,000 rows, against the same written by hand in NumPy (an
(n, 2) matrix through the layers), in one process, one thread, alternating.

    python benchmarks/array_batch.py          # measures, prints, and rewrites its section of RESULTS.md
    python benchmarks/array_batch.py --quick  # fewer rounds; prints only

Each round's figure is the median of many calls; the table gives the median of the rounds and their
spread (lowest and highest round), and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(SINGLE)  # before NumPy is imported

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- array batch: begin -->", "<!-- array batch: end -->"
ROUNDS = 7


def per_call(f, seconds=0.2) -> float:
    """The median time of one call, over as many calls as fit in about `seconds`."""
    f()
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-7)
    times = []
    for _ in range(max(5, int(seconds / once))):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def spread(values, scale=1e3, unit="ms") -> str:
    return f"{statistics.median(values) * scale:.3g} {unit} ({min(values) * scale:.3g}–{max(values) * scale:.3g})"


def ratio_text(a, b) -> str:
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})", statistics.median(ratios)


def moons_array_source() -> str:
    """The scalar moons file's network and loss, written with arrays, with the same initial values."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_moons

    layers = make_moons.initial_parameters()
    matrices = [np.array([w for w, _ in layer]) for layer in layers]
    biases = [np.array([b for _, b in layer]) for layer in layers]
    lines = ["# the moons network of scripts/make_moons.py, with arrays", "x1 = 0", "x2 = 0", "y = 1"]
    for k, (W, b) in enumerate(zip(matrices, biases), 1):
        lines.append(f"W{k} = {[[repr(float(e)) for e in row] for row in W]}".replace("'", ""))
        lines.append(f"b{k} = {[repr(float(e)) for e in b]}".replace("'", ""))
    lines += ["h1 = relu(W1 @ [x1, x2] + b1)", "h2 = relu(W2 @ h1 + b2)", "score = (W3 @ h2 + b3)[0]",
              "accuracy = (1 + sign(y*score))/2",
              "l2 = " + " + ".join(f"sum(W{k}^2) + sum(b{k}^2)" for k in (1, 2, 3)),
              "loss = relu(1 - y*score) + 0.0001*l2"]
    return "\n".join(lines) + "\n"


def batch_section() -> list[str]:
    import diffcli
    from diffcli.interpreters import array_batch

    program = diffcli.parse(moons_array_source().replace("x1 = 0\nx2 = 0\n", "x = [0, 0]\n")
                            .replace("[x1, x2]", "x"))
    rng = np.random.default_rng(5)
    n = 10_000
    X, Y = rng.normal(size=(n, 2)), np.sign(rng.normal(size=n))
    P = {k: program.inputs[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3")}

    def numpy_mean():
        a1 = X @ P["W1"].T + P["b1"]
        h1 = np.maximum(a1, 0)
        a2 = h1 @ P["W2"].T + P["b2"]
        h2 = np.maximum(a2, 0)
        score = h2 @ P["W3"][0] + P["b3"][0]
        margin = 1 - Y * score
        gs = np.where(margin > 0, -Y, 0.0) / n
        g2 = np.outer(gs, P["W3"][0]) * (a2 > 0)
        g1 = (g2 @ P["W2"]) * (a1 > 0)
        grads = {"W3": (gs @ h2)[None, :], "b3": np.array([gs.sum()]), "W2": g2.T @ h1, "b2": g2.sum(0),
                 "W1": g1.T @ X, "b1": g1.sum(0)}
        for k, value in P.items():
            grads[k] = grads[k] + 2e-4 * value
        return np.mean(np.maximum(margin, 0)), grads

    def ours():
        return array_batch.run(program, {"x": X, "y": Y}, reduce="mean")

    mine, hand = ours(), numpy_mean()
    for k in P:
        assert np.allclose(mine.gradients[k], hand[1][k]), k
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(per_call(ours))
        b.append(per_call(numpy_mean))
    text, _ = ratio_text(a, b)
    return [f"| `array_batch.run(reduce=\"mean\")`, the moons network at {n:,} points | " + spread(a)
            + " | NumPy by hand: " + spread(b) + f" | {text} |"]


def write_section(begin: str, end: str, title: str, script: str, rounds: int, rows: list[str], quick: bool,
                  note: str = "") -> None:
    """Print the section, and (unless `quick`) put it in RESULTS.md between `begin` and `end`."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    block = [begin, f"## {title}", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/{script}` "
             f"(one thread; {rounds} rounds, each the median of many calls; the median round, and the "
             f"lowest and highest in parentheses; load average at the end: {load}).{note}", "",
             "| what | diffcli | against | ratio |", "| --- | ---: | ---: | ---: |", *rows, "", end]
    print("\n".join(block))
    if not quick:
        text = RESULTS.read_text()
        if begin in text:
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: "\n".join(block), text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
        RESULTS.write_text(text)


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="three rounds; print only")
    args = parser.parse_args()
    if args.quick:
        ROUNDS = 3
    write_section(BEGIN, END, "Many points on an array program", "array_batch.py", ROUNDS, batch_section(), args.quick)


if __name__ == "__main__":
    main()
