#!/usr/bin/env python3
"""Stress: long chains (../shared/bench/genprog.py chain N) through parse and grad, with peak memory.

usage: python scripts/stress_memory.py [SIZE ...]     (default: 10000 100000 1000000)

Each size runs in a fresh Python process (the library: diffcli.load, then Program.grad) that
reports its peak resident memory; the table gives memory per statement above the bare import, which
stays flat when memory grows linearly with the program.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

GENPROG = Path(__file__).resolve().parent.parent.parent / "shared" / "bench" / "genprog.py"

CHILD = """
import json, resource, sys, time
import diffcli
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
program = diffcli.load(sys.argv[1])
parsed = time.perf_counter()
result = program.grad()
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kib": base, "peak_kib": peak, "parse_s": parsed - start, "grad_s": done - parsed,
                  "names": len(result.gradients), "value": result.value}))
"""


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000]
    print(f"{'statements':>11} {'peak MiB':>9} {'above import':>13} {'bytes/statement':>16} "
          f"{'parse s':>8} {'grad s':>7}")
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            path = Path(scratch) / f"chain{size}.expr"
            with path.open("w") as out:
                subprocess.run([sys.executable, str(GENPROG), "chain", str(size)], stdout=out, check=True)
            done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"{size:>11} failed: {done.stderr.strip()[-500:]}")
                continue
            m = json.loads(done.stdout)
            above = (m["peak_kib"] - m["base_kib"]) * 1024
            print(f"{size:>11} {m['peak_kib'] / 1024:>9.0f} {above / 2**20:>11.0f} Mi {above / size:>16.0f} "
                  f"{m['parse_s']:>8.1f} {m['grad_s']:>7.1f}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
