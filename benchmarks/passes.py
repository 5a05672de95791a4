"""Forward + reverse passes, and the graph build, of two checkouts of diffcli, side by side, on one program.

    git worktree add /tmp/before <commit>          # the checkout to compare with
    python ../shared/bench/genprog.py chain 100000 > /tmp/chain.expr
    python benchmarks/passes.py /tmp/before . /tmp/chain.expr

Each checkout runs in its own fresh processes, alternating, ROUNDS times; each process reports the
best of five passes (and of five builds of the graph from the parsed statements) in CPU time. The medians are printed with their ratio (after / before).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

ROUNDS = 5
MEASURE = r"""
import gc, sys, time
gc.disable()
sys.path.insert(0, sys.argv[1])
from diffcli.interpreters import engine
from diffcli.language import parser
from diffcli.errors import Source
from diffcli.language.graph import build
from diffcli.program import Program, read_source
path = sys.argv[2]
source = Source(read_source(open(path, "rb").read(), path), path)
parsed = parser.parse_with_nodes(source)
build_time = float("inf")
for _ in range(5):
    t = time.process_time()
    graph = build(parsed.statements, source, parsed)
    build_time = min(build_time, time.process_time() - t)
inputs, _ = Program(source, parsed.statements, graph)._inputs({})
best = float("inf")
for _ in range(5):
    t = time.process_time()
    values = engine.forward(graph, inputs)
    engine.reverse(graph, values, graph.names[graph.output])
    best = min(best, time.process_time() - t)
print(best, build_time)
"""


def main() -> None:
    before, after, program = sys.argv[1:4]
    times: dict[str, list[list[float]]] = {before: [], after: []}
    for _ in range(ROUNDS):
        for checkout in (before, after):
            done = subprocess.run([sys.executable, "-c", MEASURE, checkout, program],
                                  capture_output=True, text=True, check=True)
            times[checkout].append([float(t) for t in done.stdout.split()])
    for k, what in enumerate(("forward + reverse", "graph build")):
        a, b = (statistics.median(row[k] for row in times[c]) for c in (before, after))
        print(f"{what}: before {before}: {a * 1000:.1f} ms   after {after}: {b * 1000:.1f} ms   "
              f"ratio {b / a:.3f}")


if __name__ == "__main__":
    main()
