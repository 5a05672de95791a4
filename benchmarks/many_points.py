"""Many points (issue 11): the batch engine and `grad --sweep/--points` against hand-written NumPy.

    python benchmarks/many_points.py            # the three targets; rewrites its section of RESULTS.md
    python benchmarks/many_points.py --quick    # 100,000 and 1,000,000 points instead; prints only

Side by side in one run, on samples/two_layer_network.expr:
1. the batch engine in process (`batch.run`), value and the gradient with respect to all 16 inputs at
   1,000,000 points, against the same formulas written by hand in NumPy (target: at most 3x), and
   against a Python loop over `Program.grad` (timed on 20,000 points and scaled; target: 50x faster);
2. the whole `diffcli grad --sweep x1=... --sweep x2=... --csv > file` process against a NumPy script
   that computes the same 33 columns by hand and writes them with numpy.savetxt(fmt="%.17g")
   (target: no slower);
3. 10,000,000 points piped through standard input (`--points - --csv`): peak resident memory
   (target: under 500 MB).
Times are CPU seconds (user + system): the machine is shared, and CPU time is what other jobs
disturb least.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NETWORK = ROOT / "samples" / "two_layer_network.expr"
ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
BEGIN, END = "<!-- many points: begin -->", "<!-- many points: end -->"

DEFAULTS = dict(target=0.25, w11=0.3, w12=-0.2, c1=0.1, w21=-0.5, w22=0.4, c2=0.0, w31=0.8, w32=0.1,
                c3=-0.3, v1=0.7, v2=-1.1, v3=0.5, d=0.05)

# the network's value and gradients, written by hand (the reference the engine is held to)
HAND = r'''
import numpy as np

def network(x1, x2, target, w11, w12, c1, w21, w22, c2, w31, w32, c3, v1, v2, v3, d):
    h1 = np.tanh(w11*x1 + w12*x2 + c1)
    h2 = np.tanh(w21*x1 + w22*x2 + c2)
    h3 = np.tanh(w31*x1 + w32*x2 + c3)
    r = v1*h1 + v2*h2 + v3*h3 + d - target
    loss = r**2
    dy = 2*r
    dz1 = dy*v1*(1 - h1*h1); dz2 = dy*v2*(1 - h2*h2); dz3 = dy*v3*(1 - h3*h3)
    return loss, dict(x1=dz1*w11 + dz2*w21 + dz3*w31, x2=dz1*w12 + dz2*w22 + dz3*w32, target=-dy,
                      w11=dz1*x1, w12=dz1*x2, c1=dz1, w21=dz2*x1, w22=dz2*x2, c2=dz2,
                      w31=dz3*x1, w32=dz3*x2, c3=dz3, v1=dy*h1, v2=dy*h2, v3=dy*h3, d=dy)
'''

# the whole-process reference: the same columns as `grad --csv`, by hand, written by savetxt
SAVETXT = HAND + r'''
import sys
n1, n2 = int(sys.argv[1]), int(sys.argv[2])
x1, x2 = np.meshgrid(np.linspace(-2, 2, n1), np.linspace(-1, 1, n2), indexing="ij")
x1, x2 = x1.ravel(), x2.ravel()
fixed = %r
loss, g = network(x1, x2, **fixed)
n = len(x1)
columns = [x1, x2] + [np.full(n, v) for v in fixed.values()] + [loss]
columns += [np.broadcast_to(g[k], (n,)) for k in ["x1", "x2", *fixed]]
with open(sys.argv[3], "w") as out:
    out.write(",".join(["x1", "x2", *fixed, "loss"] + ["dloss/d" + k for k in ["x1", "x2", *fixed]]) + ",error\n")
    np.savetxt(out, np.column_stack(columns), fmt="%%.17g", delimiter=",")
''' % DEFAULTS


def cpu() -> float:
    return time.process_time()


# Runs the measured command and reports its own CPU time and peak memory. (Measuring through this
# small process matters: on Linux a child forked from this big benchmark process starts with this
# process's peak memory as its own.)
MEASURE = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([usage.ru_utime + usage.ru_stime, time.perf_counter() - start, usage.ru_maxrss,
               os.waitstatus_to_exitcode(status)], out)
"""


def child_run(argv, stdin=None, stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and peak resident KiB of one child process."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        subprocess.run([sys.executable, "-c", MEASURE, report.name, *argv], stdin=stdin, stdout=stdout,
                       env=ENVIRONMENT, check=True)
        cpu_time, wall, peak, code = json.load(open(report.name))
    if code not in (0, 1):
        raise SystemExit(f"{argv} exited {code}")
    return cpu_time, wall, peak


def engine_in_process(n: int, loop_points: int) -> dict:
    import diffcli
    from diffcli.interpreters import batch

    namespace: dict = {}
    exec(HAND, namespace)  # noqa: S102 - our own reference code, above
    network = namespace["network"]
    program = diffcli.parse(NETWORK.read_text(), str(NETWORK))
    rng = np.random.default_rng(11)
    every = {name: rng.uniform(-2, 2, n) for name in program.inputs}  # all 16 inputs vary
    swept = {"x1": every["x1"], "x2": every["x2"]}                     # 2 vary, 14 fixed
    rows = {}
    for label, columns, hand_args in [("all 16 inputs vary", every, every),
                                      ("x1, x2 vary (the rest fixed)", swept, {**DEFAULTS, **swept})]:
        batch.run(program, {k: v[:1000] for k, v in columns.items()})  # warm up: the plan, NumPy
        with np.errstate(all="ignore"):
            t0 = cpu(); network(**hand_args); t1 = cpu()
        result = batch.run(program, columns); t2 = cpu()
        assert not result.failed.any()
        rows[label] = (t1 - t0, t2 - t1)
    points = [{k: float(v[i]) for k, v in every.items()} for i in range(loop_points)]
    t0 = cpu()
    for point in points:
        program.grad(point)
    loop = (cpu() - t0) / loop_points * n
    return {"n": n, "rows": rows, "loop": loop, "loop_points": loop_points}


def whole_process(n1: int, n2: int, folder: Path) -> dict:
    script = folder / "savetxt_reference.py"
    script.write_text(SAVETXT)
    with open(folder / "ours.csv", "w") as ours:
        diffcli = child_run([sys.executable, "-m", "diffcli", "grad", str(NETWORK), "--sweep", f"x1=-2:2:{n1}",
                             "--sweep", f"x2=-1:1:{n2}", "--csv"], stdout=ours)
    reference = child_run([sys.executable, str(script), str(n1), str(n2), str(folder / "reference.csv")])
    mine = (folder / "ours.csv").read_text().splitlines()
    theirs = (folder / "reference.csv").read_text().splitlines()
    assert len(mine) == len(theirs) == n1 * n2 + 1 and mine[0] == theirs[0]
    return {"n": n1 * n2, "diffcli": diffcli, "reference": reference}


def streaming(n: int, folder: Path) -> dict:
    path = folder / "points.csv"
    rng = np.random.default_rng(5)
    with open(path, "w") as out:
        out.write("x1,x2\n")
        for start in range(0, n, 1_000_000):
            block = rng.uniform(-2, 2, size=(min(n - start, 1_000_000), 2)).round(6)
            out.write("".join("%r,%r\n" % (a, b) for a, b in block.tolist()))
    with open(path) as stdin:
        run = child_run([sys.executable, "-m", "diffcli", "grad", str(NETWORK), "--points", "-", "--csv"],
                        stdin=stdin)
    path.unlink()
    return {"n": n, "run": run}


def section(engine, process, stream, invocation) -> str:
    e_rows = engine["rows"]
    lines = [BEGIN, "## Many points (issue 11)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{invocation}`, "
             f"side by side in one run (CPU seconds; load average at the end: "
             f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}). `samples/two_layer_network.expr`.", "",
             f"**1. The batch engine in process**, {engine['n']:,} points, value and the gradient with respect to "
             "all 16 inputs:", "",
             "| inputs | hand-written NumPy | `batch.run` | ratio (target ≤ 3×) | Python loop over `Program.grad` "
             "| speed-up over the loop (target ≥ 50×) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, (hand, ours) in e_rows.items():
        lines.append(f"| {label} | {hand:.3f} s | {ours:.3f} s | {ours / hand:.2f}× | {engine['loop']:.1f} s "
                     f"(scaled from {engine['loop_points']:,} points) | {engine['loop'] / ours:.0f}× |")
    d, r = process["diffcli"], process["reference"]
    lines += ["", f"**2. The whole process**, {process['n']:,} points (`grad --sweep x1=-2:2:N1 --sweep "
              "x2=-1:1:N2 --csv > file`, 33 columns) against the same columns by hand in NumPy written with "
              "`numpy.savetxt(fmt=\"%.17g\")`:", "",
              "| process | CPU | wall | peak memory |", "| --- | ---: | ---: | ---: |",
              f"| NumPy + savetxt | {r[0]:.2f} s | {r[1]:.2f} s | {r[2] / 1024:.0f} MiB |",
              f"| `diffcli grad --sweep ... --csv` | {d[0]:.2f} s | {d[1]:.2f} s | {d[2] / 1024:.0f} MiB |", "",
              f"Ratio {d[0] / r[0]:.2f}× (target ≤ 1×: {'met' if d[0] <= r[0] else '**not met**'}).", ""]
    s = stream["run"]
    lines += [f"**3. {stream['n']:,} points through standard input** (`grad --points - --csv`): "
              f"peak memory {s[2] / 1024:.0f} MiB (target < 500 MB: {'met' if s[2] * 1024 < 500e6 else '**not met**'}); "
              f"{s[0]:.1f} s CPU, {s[1]:.1f} s wall.", "", END]
    return "\n".join(lines) + "\n"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--quick", action="store_true", help="fewer points; print, do not write RESULTS.md")
    options.add_argument("--write", action="store_true", help="write RESULTS.md even with --quick")
    args = options.parse_args()
    n, loop_points = (100_000, 2_000) if args.quick else (1_000_000, 20_000)
    grid = (100, 1000) if args.quick else (1000, 1000)
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_in_process(n, loop_points)
        process = whole_process(*grid, Path(folder))
        stream = streaming(1_000_000 if args.quick else 10_000_000, Path(folder))
    text = section(engine, process, stream, " ".join(["python benchmarks/many_points.py"] + sys.argv[1:]))
    print(text)
    if args.write or not args.quick:
        results = RESULTS.read_text() if RESULTS.exists() else ""
        if BEGIN in results:
            head, rest = results.split(BEGIN, 1)
            results = head + text + rest.split(END, 1)[1].lstrip("\n")
        else:
            results = results.rstrip("\n") + "\n\n" + text
        RESULTS.write_text(results)


if __name__ == "__main__":
    main()
