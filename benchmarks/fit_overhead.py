"""The decay fit (samples/decay.expr on samples/decay.csv, 40 rows, 3 parameters), side by side in one
process: diffcli's `program.fit(data=..., residual="r")` against SciPy's curve_fit with an analytic
Jacobian (the fastest a user writes by hand), curve_fit with its finite differences, and lmfit; then
the whole `diffcli fit ... --residual r --json` process against the same process of another checkout
(`--before PATH`: a checkout of diffcli before the change, run with PYTHONPATH).

    python benchmarks/fit_overhead.py [--before /path/to/old/checkout] [--checkout PATH] [--rounds N]

(`--checkout PATH`: the in-process rows with that checkout's diffcli imported instead of this one.)

Each program.fit call reads what curve_fit returns, `.parameters` and `.covariance` (its statistics,
correlations and report are computed when first read, so a call that reads them pays for them too).
In-process times are CPU times of warm calls (the data already in memory, as a notebook has them), the calls
alternated round by round so that the shared machine's load falls on each alike; each ratio is
taken within one round, and its median and range over the rounds are printed. Process times are
CPU seconds (user + system), the median of fresh processes (with --before, the two checkouts
alternated).
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
if "--checkout" in sys.argv:   # the in-process rows of another checkout (the same samples)
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--checkout") + 1]).resolve()))
else:
    sys.path.insert(0, str(ROOT))

import diffcli  # noqa: E402

DECAY, DATA = ROOT / "samples" / "decay.expr", ROOT / "samples" / "decay.csv"


def side_by_side(calls: dict, rounds: int = 15, seconds: float = 0.05) -> dict[str, list[float]]:
    """Each call's CPU time per call (time.process_time: the time this process ran, not the time it
    waited for a core) in every round, the calls alternated within each round (so that the shared
    machine's load falls on all of them alike); a round runs each call for about `seconds`."""
    counts = {}
    for name, call in calls.items():   # warm, and how many calls make `seconds`
        call()
        began, k = time.process_time(), 0
        while time.process_time() - began < seconds / 4:
            call()
            k += 1
        counts[name] = max(3, 4 * k)
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.process_time()
            for _ in range(counts[name]):
                call()
            times[name].append((time.process_time() - began) / counts[name])
    return times


def in_process(rounds: int = 15) -> tuple[dict[str, list[float]], int]:
    from scipy.optimize import curve_fit

    t, y = np.loadtxt(DATA, delimiter=",", skiprows=1, unpack=True)
    program = diffcli.load(DECAY)
    columns = {"t": t, "y": y}

    def model(t, A, k, c):
        return A * np.exp(-k * t) + c

    def jacobian(t, A, k, c):
        e = np.exp(-k * t)
        return np.column_stack([e, -A * t * e, np.ones_like(t)])

    def read(result):   # what curve_fit returns: the parameters and their covariance
        return result.parameters, result.covariance

    calls = {
        "curve_fit, analytic Jacobian": lambda: curve_fit(model, t, y, p0=[4, 0.1, 0], jac=jacobian),
        "program.fit": lambda: read(program.fit(data=columns, residual="r")),
        "curve_fit, finite differences": lambda: curve_fit(model, t, y, p0=[4, 0.1, 0]),
    }
    try:
        import lmfit

        lm = lmfit.Model(model)
        params = lm.make_params(A=4, k=0.1, c=0)
        calls["lmfit Model.fit"] = lambda: lm.fit(y, params, t=t)
    except ImportError:
        pass
    found = program.fit(data=columns, residual="r")
    return side_by_side(calls, rounds), found.fit.evaluations


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
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--checkout", type=Path, help="import diffcli from this checkout (in process)")
    args = parser.parse_args()
    print(f"diffcli from {Path(diffcli.__file__).parent.parent}; load average before: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    times, evaluations = in_process(args.rounds)
    floor = times["curve_fit, analytic Jacobian"]
    print(f"in process, the decay fit ({args.rounds} rounds, the calls alternated in each; program.fit: "
          f"{evaluations} evaluations): CPU ms per call, median (range), and the ratio to curve_fit with its Jacobian "
          "in the same round: median (range)")
    for name, seconds in times.items():
        ratios = [a / b for a, b in zip(seconds, floor)]
        print(f"  {name:32s} {statistics.median(seconds) * 1e3:7.3f} ms ({min(seconds) * 1e3:.3f}–"
              f"{max(seconds) * 1e3:.3f})  {statistics.median(ratios):5.2f}x ({min(ratios):.2f}–{max(ratios):.2f})")
    print(f"load average after the in-process rows: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.before:   # one run of each in turn, and the ratio of each pair
        now, before = [], []
        for _ in range(15):
            now.append(process_seconds(ROOT, 1))
            before.append(process_seconds(args.before, 1))
        ratios = [a / b for a, b in zip(now, before)]
        print(f"whole process `diffcli fit ... --residual r --json`, CPU s, median of 15 (range): "
              f"{statistics.median(now):.3f} ({min(now):.3f}–{max(now):.3f}); before the change "
              f"{statistics.median(before):.3f} ({min(before):.3f}–{max(before):.3f}); the runs in pairs, "
              f"their ratio: median {statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f})")
    else:
        print(f"whole process `diffcli fit ... --residual r --json`: {process_seconds(ROOT):.3f} s CPU")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
