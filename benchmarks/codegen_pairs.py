"""`codegen` against `grad --json` of the same large file, whole processes in pairs (issue 23, part 2).

    python benchmarks/codegen_pairs.py [--pairs 30] [--sizes 10000,100000] [--langs python,c,javascript]

Each pair runs `diffcli grad chain_N.expr --json` and `diffcli codegen chain_N.expr --lang L -o FILE`
one right after the other (which one first alternates pair to pair), after a warm-up pair (bytecode
cached), and takes each process's CPU seconds (user + system, from wait4). Printed per size and
language: the median of the pairs' ratios codegen / grad, their range, how many pairs are below 1, and
the one-sided sign test's p-value of that count (the chance of as many or more below 1 if codegen and
grad took the same time: each pair then below 1 with probability one half). Prints only.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (this folder's: the environment, genprog, CPU seconds of a process)


def sign_test(below: int, pairs: int) -> float:
    """P(at least `below` of `pairs` fair coin flips come up heads)."""
    return sum(math.comb(pairs, k) for k in range(below, pairs + 1)) / 2 ** pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--langs", default="python,c,javascript")
    options = parser.parse_args()
    command = [sys.executable, "-m", "diffcli"]
    print(f"load average {peers.load()}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for size in map(int, options.sizes.split(",")):
            path = folder / f"chain_{size}.expr"
            path.write_text(peers.run([sys.executable, str(peers.GENPROG), "chain", str(size)]))
            pairs = options.pairs if size <= 10_000 else max(options.pairs // 3, 5)
            for lang in options.langs.split(","):
                grad = command + ["grad", str(path), "--json"]
                codegen = command + ["codegen", str(path), "--lang", lang, "-o", str(folder / f"out.{lang}")]
                peers.cpu_of(grad), peers.cpu_of(codegen)  # warm-up
                ratios = []
                for k in range(pairs):
                    if k % 2:
                        b = peers.cpu_of(grad)
                        a = peers.cpu_of(codegen)
                    else:
                        a = peers.cpu_of(codegen)
                        b = peers.cpu_of(grad)
                    ratios.append(a / b)
                below = sum(r < 1 for r in ratios)
                print(f"chain {size:,} {lang:10} {pairs} pairs: median {statistics.median(ratios):.3f}x "
                      f"({min(ratios):.3f}-{max(ratios):.3f}), {below} of {pairs} below 1 "
                      f"(sign test p = {sign_test(below, pairs):.2g})", flush=True)
    print(f"load average {peers.load()}")


if __name__ == "__main__":
    main()
