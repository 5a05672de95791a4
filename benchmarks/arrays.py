"""Arrays (issue 18's targets), side by side in one run:

    python benchmarks/arrays.py            # measures, prints, and rewrites its section of RESULTS.md
    python benchmarks/arrays.py --quick    # fewer repetitions; prints only
    python benchmarks/arrays.py --torch    # also PyTorch eager, in a virtual environment made here

1. `Program.grad` of `W = uniform(512, 512, seed=1); v = uniform(512, seed=2); h = tanh(W @ v);
   loss = sum(tanh(W @ h)^2)` in process, against the same forward and backward written by hand
   in NumPy (and, with --torch, PyTorch eager in float64), each the median of many calls. Both run
   in a fresh process twice: with glibc's default allocator settings, and with its dynamic mmap
   threshold fixed high (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), because on some machines
   (virtual ones especially) returning 2 MiB arrays to the system and faulting them back in costs
   more than the arithmetic, and the hand-written loop, holding fewer arrays at once, dodges it.
2. Loading (parse, shapes, graph) samples/moons/moons_mlp_arrays.expr against the scalar
   samples/moons/moons_mlp.expr, in process.
3. Peak memory of the whole `diffcli grad` process on a program with a 2000×2000 matrix input,
   against the bytes of its arrays plus the interpreter's baseline (the same command on a scalar
   program).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- arrays: begin -->", "<!-- arrays: end -->"
ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
TORCH_VENV = Path(tempfile.gettempdir()) / f"diffcli-bench-torch-{os.getuid()}"

PROGRAM_512 = "W = uniform(512, 512, seed=1)\nv = uniform(512, seed=2)\nh = tanh(W @ v)\nloss = sum(tanh(W @ h)^2)\n"

MEASURE_512 = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    import diffcli
    program = diffcli.parse(PROGRAM)
    W, v = program.inputs["W"], program.inputs["v"]

    def by_hand():
        a = W @ v; h = np.tanh(a); b = W @ h; t = np.tanh(b); loss = np.sum(t * t)
        gb = 2 * t * (1 - t * t)
        gW = np.outer(gb, h); gh = W.T @ gb; ga = gh * (1 - h * h)
        gW += np.outer(ga, v)
        return loss, gW, W.T @ ga

    result, (loss, gW, gv) = program.grad(), by_hand()
    assert abs(result.value - loss) <= 1e-9 * abs(loss)
    assert np.allclose(result.gradients["W"], gW, rtol=1e-10) and np.allclose(result.gradients["v"], gv, rtol=1e-10)

    def median(f, n):
        f()
        times = []
        for _ in range(n):
            start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
        return sorted(times)[n // 2]

    n = int(sys.argv[1])
    rounds = [(median(program.grad, n), median(by_hand, n)) for _ in range(3)]  # interleaved
    print(json.dumps({"diffcli": min(r[0] for r in rounds), "numpy": min(r[1] for r in rounds)}))
''').replace("PROGRAM", repr(PROGRAM_512))

MEASURE_TORCH = textwrap.dedent('''
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    W0 = torch.rand(512, 512, generator=g, dtype=torch.float64) * 2 - 1
    v0 = torch.rand(512, generator=g, dtype=torch.float64) * 2 - 1

    def step():
        W = W0.clone().requires_grad_(); v = v0.clone().requires_grad_()
        h = torch.tanh(W @ v)
        loss = torch.sum(torch.tanh(W @ h) ** 2)
        loss.backward()
        return W.grad, v.grad

    def median(f, n):
        f()
        times = []
        for _ in range(n):
            start = time.perf_counter(); f(); times.append(time.perf_counter() - start)
        return sorted(times)[n // 2]

    print(json.dumps({"torch": min(median(step, int(sys.argv[1])) for _ in range(3))}))
''')


def run_json(argv, env=None) -> dict:
    import json

    done = subprocess.run(argv, capture_output=True, text=True, env=env or ENVIRONMENT, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def grad_512(n: int, tuned_malloc: bool) -> dict:
    env = dict(ENVIRONMENT)
    if tuned_malloc:
        env.update(MALLOC_MMAP_THRESHOLD_=str(64 * 2**20), MALLOC_TRIM_THRESHOLD_=str(256 * 2**20))
    return run_json([sys.executable, "-c", MEASURE_512, str(n)], env)


def torch_512(n: int, tuned_malloc: bool) -> dict | None:
    python = TORCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TORCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy"], check=True)
    env = dict(os.environ)
    if tuned_malloc:
        env.update(MALLOC_MMAP_THRESHOLD_=str(64 * 2**20), MALLOC_TRIM_THRESHOLD_=str(256 * 2**20))
    return run_json([str(python), "-c", MEASURE_TORCH, str(n)], env)


def loading(n: int) -> tuple[float, float]:
    sys.path.insert(0, str(ROOT))
    import diffcli

    texts = {name: (ROOT / "samples" / "moons" / name).read_text(encoding="utf-8")
             for name in ("moons_mlp_arrays.expr", "moons_mlp.expr")}

    def median(text):
        times = []
        for _ in range(n):
            start = time.perf_counter()
            diffcli.parse(text)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return median(texts["moons_mlp_arrays.expr"]), median(texts["moons_mlp.expr"])


def peak_memory(folder: Path) -> tuple[int, int, int, int]:
    """(peak RSS of grad on a 2000×2000 input, the same with --json, of grad on a scalar program,
    the arrays' bytes)."""
    big = folder / "big.expr"
    big.write_text("W = uniform(2000, 2000, seed=1)\nv = uniform(2000, seed=2)\ny = sum(tanh(W @ v))\n")
    scalar = folder / "scalar.expr"
    scalar.write_text("a = 2\ny = a^2\n")

    def rss(path, *options) -> int:
        script = ("import resource, subprocess, sys; subprocess.run([sys.executable, '-m', 'diffcli', 'grad', "
                  f"{str(path)!r}, *{list(options)!r}], stdout=subprocess.DEVNULL, check=True); "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENVIRONMENT,
                              check=True)
        return int(done.stdout.strip()) * 1024

    # the arrays a grad must hold: W and its gradient (2000×2000 each); the vectors are small
    arrays = 2 * 2000 * 2000 * 8
    return rss(big), rss(big, "--json"), rss(scalar), arrays


def section(fast, tuned, torch, load, memory, command) -> str:
    lines = [BEGIN, "## Arrays", "", f"Measured by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).", "",
             "**1. `Program.grad` of the 512×512 program** (in process, the best of three interleaved medians):", "",
             "| allocator | diffcli | NumPy by hand | ratio | target ≤ 1.5× |" + (" PyTorch eager | ratio to PyTorch | target ≤ 1× |" if torch else ""),
             "| --- | ---: | ---: | ---: | --- |" + (" ---: | ---: | --- |" if torch else "")]
    for label, r, t in (("glibc defaults", fast, torch and torch[0]), ("mmap threshold 64 MiB", tuned, torch and torch[1])):
        ratio = r["diffcli"] / r["numpy"]
        row = (f"| {label} | {r['diffcli'] * 1e3:.2f} ms | {r['numpy'] * 1e3:.2f} ms | {ratio:.2f}× | "
               f"{'met' if ratio <= 1.5 else '**not met**'} |")
        if t:
            to_torch = r["diffcli"] / t["torch"]
            row += f" {t['torch'] * 1e3:.2f} ms | {to_torch:.2f}× | {'met' if to_torch <= 1 else '**not met**'} |"
        lines.append(row)
    if not torch:
        lines += ["", "PyTorch was not measured in this run (`--torch` makes its environment and measures it)."]
    arrays_load, scalar_load = load
    lines += ["", f"**2. Loading the moons network** (parse, shapes, graph; in process, median): the array program "
              f"{arrays_load * 1e3:.1f} ms, the scalar one {scalar_load * 1e3:.1f} ms: "
              f"{arrays_load / scalar_load:.3f}× (target ≤ 0.1×: {'met' if arrays_load <= 0.1 * scalar_load else '**not met**'}).",
              ""]
    big, big_json, baseline, arrays = memory
    bound = 3 * arrays + baseline
    lines += [f"**3. Peak memory of the `diffcli grad` process** with a 2000×2000 input: {big / 2**20:.0f} MiB; "
              f"the arrays it must hold (W and its gradient) {arrays / 2**20:.0f} MiB, the interpreter's baseline "
              f"(`grad` of a scalar program) {baseline / 2**20:.0f} MiB: {(big - baseline) / arrays:.2f}× the arrays "
              f"above the baseline (target ≤ 3×: {'met' if big <= bound else '**not met**'}). With `--json`, which "
              f"writes W three times and its gradient once as text: {big_json / 2**20:.0f} MiB "
              f"({(big_json - baseline) / arrays:.2f}×).", "", END]
    return "\n".join(lines) + "\n"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--quick", action="store_true", help="fewer repetitions; print, do not write RESULTS.md")
    options.add_argument("--torch", action="store_true", help="also measure PyTorch eager (makes its own venv)")
    args = options.parse_args()
    n = 20 if args.quick else 100
    fast, tuned = grad_512(n, False), grad_512(n, True)
    torch = (torch_512(n, False), torch_512(n, True)) if args.torch else None
    load = loading(5 if args.quick else 20)
    with tempfile.TemporaryDirectory() as folder:
        memory = peak_memory(Path(folder))
    text = section(fast, tuned, torch, load, memory, " ".join(["python benchmarks/arrays.py"] + sys.argv[1:]))
    print(text)
    if not args.quick:
        results = RESULTS.read_text() if RESULTS.exists() else ""
        if BEGIN in results:
            head, rest = results.split(BEGIN, 1)
            results = head + text + rest.split(END, 1)[1].lstrip("\n")
        else:
            results = results.rstrip("\n") + "\n\n" + text
        RESULTS.write_text(results)


if __name__ == "__main__":
    main()
