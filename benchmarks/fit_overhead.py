"""The decay fit (samples/decay.expr on samples/decay.csv, 40 rows, 3 parameters), side by side in one
process: diffcli's `program.fit(data=..., residual="r")` against SciPy's curve_fit with an analytic
Jacobian (the fastest a user writes by hand), curve_fit with its finite differences, and lmfit; then
the whole `diffcli fit ... --residual r --json` process against the same process of another checkout
(`--before PATH`: a checkout of diffcli before the change, run with PYTHONPATH).

    python benchmarks/fit_overhead.py [--before /path/to/old/checkout]

In-process times are the median of many warm calls (the data already in memory, as a notebook has
them); process times are CPU seconds (user + system), the median of fresh processes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import diffcli  # noqa: E402

DECAY, DATA = ROOT / "samples" / "decay.expr", ROOT / "samples" / "decay.csv"


def median_seconds(call, repeat: int = 300, rounds: int = 7) -> float:
    call()
    medians = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(repeat // rounds):
            call()
        medians.append((time.perf_counter() - began) / (repeat // rounds))
    return statistics.median(medians)


def in_process() -> dict[str, float]:
    from scipy.optimize import curve_fit

    t, y = np.loadtxt(DATA, delimiter=",", skiprows=1, unpack=True)
    program = diffcli.load(DECAY)
    columns = {"t": t, "y": y}

    def model(t, A, k, c):
        return A * np.exp(-k * t) + c

    def jacobian(t, A, k, c):
        e = np.exp(-k * t)
        return np.column_stack([e, -A * t * e, np.ones_like(t)])

    times = {
        "program.fit": median_seconds(lambda: program.fit(data=columns, residual="r")),
        "curve_fit, analytic Jacobian": median_seconds(lambda: curve_fit(model, t, y, p0=[4, 0.1, 0], jac=jacobian)),
        "curve_fit, finite differences": median_seconds(lambda: curve_fit(model, t, y, p0=[4, 0.1, 0])),
    }
    try:
        import lmfit

        lm = lmfit.Model(model)
        params = lm.make_params(A=4, k=0.1, c=0)
        times["lmfit Model.fit"] = median_seconds(lambda: lm.fit(y, params, t=t), repeat=70)
    except ImportError:
        pass
    # the same fit's parts: its evaluations and SciPy's trust region around them
    found = program.fit(data=columns, residual="r")
    times["(evaluations of program.fit)"] = found.fit.evaluations
    return times


def process_seconds(checkout: Path, runs: int = 9) -> float:
    environment = dict(os.environ, PYTHONPATH=str(checkout))
    command = [sys.executable, "-m", "diffcli", "fit", str(DECAY), "--data", str(DATA), "--residual", "r", "--json"]
    cpu = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, env=environment, check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, help="a checkout of diffcli before the change")
    args = parser.parse_args()
    times = in_process()
    evaluations = times.pop("(evaluations of program.fit)")
    floor = times["curve_fit, analytic Jacobian"]
    print(f"in process, the decay fit (median of warm calls; program.fit: {evaluations} evaluations)")
    for name, seconds in times.items():
        print(f"  {name:32s} {seconds * 1e3:7.3f} ms  {seconds / floor:5.1f}x curve_fit with its Jacobian")
    now = process_seconds(ROOT)
    print(f"whole process `diffcli fit ... --residual r --json`: {now:.3f} s CPU")
    if args.before:
        before = process_seconds(args.before)
        print(f"  the same process before the change: {before:.3f} s CPU ({now / before:.2f}x)")


if __name__ == "__main__":
    main()
