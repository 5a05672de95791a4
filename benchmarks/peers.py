"""diffcli against its peers on their own ground (issue 23), side by side.

    python benchmarks/peers.py                  # every section; rewrites its part of RESULTS.md
    python benchmarks/peers.py --only c,hessian # some sections; prints only
    python benchmarks/peers.py --peers DIR      # where the peers' environment is (made if missing)
    python benchmarks/peers.py --only c --before DIR  # also another checkout's C, in the same binary

The peers (JAX, SymPy) live in an environment this script makes (`python -m venv DIR` and
`pip install jax sympy numpy`), never in diffcli's. One thread per contender: OMP_NUM_THREADS=1 and
XLA's single-thread flags for JAX. Each pair runs alternately, ROUNDS rounds; a round's figure is a
median of many calls, and the table gives the median of the rounds with their spread (lowest and
highest round), and the machine's load average (the machine may be shared: ratios side by side are
what count).

1. `c`: generated C of samples/two_layer_network.expr (value + gradient), gcc -O2, 10^6 calls a
   round, against SymPy's `codegen` with CSE of the same formulas, and against the program's
   transcendental calls alone (the `tanh`s with the arithmetic that feeds them): one binary,
   the three functions timed in turn.
2. `codegen`: `diffcli codegen chain_N.expr --lang L -o FILE` against `diffcli grad chain_N.expr
   --json`, whole processes (CPU time), N = 10,000 and 100,000.
3. `hessian`: `Program.hessian()` warm, in process, against `jax.jit(jax.hessian(f))` warm (float64),
   on two_layer_network and mlp_10 (219 inputs); and `Program.hvp` beside `Program.grad`.
4. `batch`: `batch.run` at 10^6 points (value + 16 gradients of two_layer_network) against the
   same formulas written by hand in NumPy, in one process, alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
GENPROG = Path(os.environ.get("DIFFCLI_GENPROG") or next(
    (p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.exists()), ROOT.parent / "shared")
    / "bench" / "genprog.py")  # beside the checkout, or two levels up from a worktree
NETWORK = ROOT / "samples" / "two_layer_network.expr"
BEGIN, END = "<!-- peers: begin -->", "<!-- peers: end -->"
ROUNDS = 7
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
          "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
          "JAX_ENABLE_X64": "1", "JAX_PLATFORMS": "cpu"}
ENVIRONMENT = dict(os.environ, **SINGLE, PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
# whole processes start as an installed diffcli does, from cached bytecode (written by a warm-up run),
# not compiling every module from source each run
ENVIRONMENT.pop("PYTHONDONTWRITEBYTECODE", None)


def peers_python(folder: Path) -> str:
    """The peers' interpreter, the environment made (jax, sympy, numpy) if it is not there."""
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
    check = subprocess.run([str(python), "-c", "import jax, sympy, numpy"], capture_output=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "jax", "sympy", "numpy"], check=True)
    return str(python)


def run(argv, env=None, cwd=None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, env=env or ENVIRONMENT, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{done.stderr}")
    return done.stdout


def cpu_of(argv) -> float:
    """CPU seconds (user + system) of one whole process."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENVIRONMENT)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {process.stderr.read().decode()}")
    return usage.ru_utime + usage.ru_stime


def spread(samples) -> dict:
    return {"median": statistics.median(samples), "low": min(samples), "high": max(samples)}


def ratio(a: dict, b: dict) -> str:
    """a/b of medians, with the spread of the per-round ratios when both have rounds."""
    return f"{a['median'] / b['median']:.2f}×"


def round_ratios(a: list, b: list) -> dict:
    return spread([x / y for x, y in zip(a, b)])


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def python_program(path: Path) -> tuple[str, list[str], str]:
    """(the program as Python text, its inputs in diffcli's argument order, its output)."""
    sys.path.insert(0, str(ROOT))
    import diffcli

    program = diffcli.load(path)
    inputs = [n for n, d in program.inputs.items() if d is None] + [
        n for n, d in program.inputs.items() if d is not None]
    return path.read_text(encoding="utf-8").replace("^", "**"), inputs, program.output



# The benchmark's own programs (its sample, genprog's output) run as Python with a peer's functions:
# statements `name = expression`, `;`-separated, `#` comments; the inputs are not reassigned.
RUN_PROGRAM = r"""
def run_program(text, namespace, inputs):
    for line in text.splitlines():
        for statement in line.split("#")[0].split(";"):
            name, _, expr = statement.partition("=")
            if expr and name.strip() not in inputs:
                namespace[name.strip()] = eval(expr, namespace)  # the benchmark's own program
    return namespace
"""

# ---------------------------------------------------------------- 1. generated C

# In the peers' environment: SymPy's C (codegen with CSE) of value and gradient, and of the
# transcendental calls alone. The program text is this script's own sample, run as Python with
# SymPy's functions: no parser of SymPy reads it.
SYMPY_C = RUN_PROGRAM + r"""
import json, sys
import sympy as sp
from sympy.utilities.codegen import codegen, C99CodeGen
text, inputs, output = json.loads(sys.stdin.read())
symbols = {n: sp.Symbol(n, real=True) for n in inputs}
namespace = dict(symbols, tanh=sp.tanh, exp=sp.exp, log=sp.log, sin=sp.sin, cos=sp.cos, sqrt=sp.sqrt)
e = run_program(text, namespace, symbols)[output]
args = [symbols[n] for n in inputs]
value, gradient = sp.Symbol("value"), sp.MatrixSymbol("gradient", len(args), 1)
def c(name, expressions):
    [(_, source), _] = codegen((name, expressions), header=False, empty=False,
                               code_gen=C99CodeGen(project="bench", cse=True),
                               argument_sequence=args + [value, gradient])
    return source.split("\n", 1)[1]  # not its #include "name.h"
calls = sorted(e.atoms(sp.Function), key=str)
floor = [sp.Eq(value, sp.Add(*calls)), sp.Eq(gradient, sp.Matrix([0] * len(args)))]
print(json.dumps({"sympy": c("f_sympy", [sp.Eq(value, e), sp.Eq(gradient, sp.Matrix([e.diff(x) for x in args]))]),
                  "floor": c("f_floor", floor), "calls": len(calls)}))
"""

C_MAIN = r"""
#include <stdio.h>
#include <time.h>
static double now(void)
{
    struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}
/* the inputs read from volatile memory each call: no call is folded at build time */
static volatile double source[%(n)d] = {%(values)s};
static double total;
#define TIME(call) do { double in[%(n)d], value, gradient[%(n)d]; long k; int j; double t0 = now(); \
    for (k = 0; k < CALLS; k++) { for (j = 0; j < %(n)d; j++) in[j] = source[j]; call; total += gradient[0] + value; } \
    printf("%%.4f ", (now() - t0) / CALLS * 1e9); } while (0)
#define CALLS 1000000L
int main(void)
{
    double in[%(n)d], value, a[%(n)d], b[%(n)d], worst = 0; int j, r;
    for (j = 0; j < %(n)d; j++) in[j] = source[j];
    f_diffcli(%(args)s &value, a, 0);
    f_sympy(%(args)s &value, b);
    for (j = 0; j < %(n)d; j++) { double d = a[j] - b[j]; if (d < 0) d = -d; if (d > worst) worst = d; }
    printf("%%.3g\n", worst);
    for (r = 0; r < %(rounds)d; r++) {
        TIME(f_diffcli(%(args)s &value, gradient, 0)); TIME(f_sympy(%(args)s &value, gradient));
        TIME(f_floor(%(args)s &value, gradient));%(before)s printf("\n");
    }
    return total == 12345.0;
}
"""


# another checkout's generated C (--before), run with that checkout first on the path
BEFORE_C = r"""
import sys
import diffcli
from diffcli.renderers.codegen import generate
sys.stdout.write(generate(diffcli.load(sys.argv[1]), "c", name="f_before").source)
"""


def measure_c(folder: Path, peers: str, before: Path | None = None) -> dict:
    import diffcli

    text, inputs, output = python_program(NETWORK)
    program = diffcli.load(NETWORK)
    theirs = json.loads(subprocess.run([peers, "-c", SYMPY_C], input=json.dumps([text, inputs, output]),
                                       capture_output=True, text=True, check=True).stdout)
    from diffcli.renderers.codegen import generate

    ours = generate(program, "c", name="f_diffcli").source
    args = "".join(f"in[{k}], " for k in range(len(inputs)))
    values = ", ".join(repr(program.inputs[n]) for n in inputs)
    # (run in that checkout: `python -c` puts the working directory first on the path)
    previous = "" if before is None else run([sys.executable, "-c", BEFORE_C, str(NETWORK)],
                                             env=dict(ENVIRONMENT, PYTHONPATH=str(before)), cwd=before)
    timed = f" TIME(f_before({args} &value, gradient, 0));" if previous else ""
    main = C_MAIN % {"n": len(inputs), "args": args, "values": values, "rounds": ROUNDS, "before": timed}
    (folder / "peers.c").write_text(ours + previous + theirs["sympy"] + theirs["floor"] + main)
    compiler = shutil.which("gcc") or shutil.which("cc")
    subprocess.run([compiler, "-O2", "-o", str(folder / "peers_c"), str(folder / "peers.c"), "-lm"], check=True)
    lines = run([str(folder / "peers_c")]).split("\n")
    worst = float(lines[0])
    rounds = [[float(x) for x in line.split()] for line in lines[1:] if line.strip()]
    diffcli_ns, sympy_ns, floor_ns = ([r[k] for r in rounds] for k in range(3))
    result = {"diffcli": spread(diffcli_ns), "sympy": spread(sympy_ns), "floor": spread(floor_ns),
              "vs_sympy": round_ratios(diffcli_ns, sympy_ns), "vs_floor": round_ratios(diffcli_ns, floor_ns),
              "sympy_vs_floor": round_ratios(sympy_ns, floor_ns), "gradient_difference": worst,
              "calls": theirs["calls"], "load": load()}
    if previous:
        before_ns = [r[3] for r in rounds]
        result.update(before=spread(before_ns), before_vs_sympy=round_ratios(before_ns, sympy_ns),
                      before_vs_floor=round_ratios(before_ns, floor_ns), vs_before=round_ratios(diffcli_ns, before_ns))
    return result


def c_report(r: dict) -> list[str]:
    def row(name, key):
        s = r[key]
        return f"| {name} | {s['median']:.1f} ns | {s['low']:.1f}–{s['high']:.1f} |"

    def ratios(name, key):
        s = r[key]
        return f"{name} **{s['median']:.2f}×** (rounds {s['low']:.2f}–{s['high']:.2f})"

    before = [] if "before" not in r else [
        f"- the `--before` checkout's C: {r['before']['median']:.1f} ns ({r['before']['low']:.1f}–"
        f"{r['before']['high']:.1f}); " + "; ".join([ratios("/ SymPy", "before_vs_sympy"), ratios(
            "/ the floor", "before_vs_floor"), ratios("this checkout's / its", "vs_before")])]
    return ["### 1. Generated C (value + gradient of `samples/two_layer_network.expr`, gcc -O2)", "",
            f"10^6 calls a round, {ROUNDS} rounds, the three functions in turn in one process "
            f"(thread CPU time); load average {r['load']}.", "",
            "| code | per call (median) | rounds' range |", "| --- | ---: | ---: |",
            row("diffcli `codegen --lang c`", "diffcli"), row("SymPy `codegen` with CSE", "sympy"),
            row(f"the {r['calls']} transcendental calls alone", "floor"), "",
            f"- diffcli / SymPy: **{r['vs_sympy']['median']:.2f}×** (rounds {r['vs_sympy']['low']:.2f}–"
            f"{r['vs_sympy']['high']:.2f}; target ≤ 1×)",
            f"- diffcli / the calls' floor: **{r['vs_floor']['median']:.2f}×** (rounds {r['vs_floor']['low']:.2f}–"
            f"{r['vs_floor']['high']:.2f}; target ≤ 1.5×); SymPy / the floor: {r['sympy_vs_floor']['median']:.2f}×",
            f"- largest difference between the two gradients: {r['gradient_difference']:.3g}", *before, ""]


# ---------------------------------------------------------------- 2. generating in bulk

def measure_codegen(folder: Path, sizes=(10_000, 100_000)) -> dict:
    results = {}
    command = [sys.executable, "-m", "diffcli"]
    for size in sizes:
        path = folder / f"chain_{size}.expr"
        path.write_text(run([sys.executable, str(GENPROG), "chain", str(size)]))
        times: dict[str, list[float]] = {"grad": [], "python": [], "c": [], "javascript": []}
        for counted in [False] + [True] * (3 if size > 10_000 else 5):  # (a warm-up round first)
            times["grad"].append(cpu_of(command + ["grad", str(path), "--json"]))
            for lang in ("python", "c", "javascript"):
                times[lang].append(cpu_of(command + ["codegen", str(path), "--lang", lang, "-o",
                                                     str(folder / f"out_{size}.{lang}")]))
            if not counted:
                times = {k: [] for k in times}
        results[size] = {k: spread(v) for k, v in times.items()}
        results[size]["ratios"] = {lang: round_ratios(times[lang], times["grad"]) for lang in ("python", "c", "javascript")}
    results["load"] = load()
    return results


def codegen_report(r: dict) -> list[str]:
    lines = ["### 2. Generating in bulk (whole processes, CPU seconds)", "",
             f"`codegen chain_N.expr --lang L -o FILE` beside `grad chain_N.expr --json`, alternating, "
             f"after a warm-up round (bytecode cached); "
             f"load average {r['load']}.", "",
             "| N | `grad --json` | python | c | javascript |", "| ---: | ---: | ---: | ---: | ---: |"]
    for size, s in r.items():
        if size == "load":
            continue
        cells = [f"{s[lang]['median']:.2f} s (**{s['ratios'][lang]['median']:.2f}×**, "
                 f"{s['ratios'][lang]['low']:.2f}–{s['ratios'][lang]['high']:.2f})" for lang in ("python", "c", "javascript")]
        lines.append(f"| {int(size):,} | {s['grad']['median']:.2f} s | " + " | ".join(cells) + " |")
    return lines + ["", "Target: every ratio ≤ 1×.", ""]


# ---------------------------------------------------------------- 3. Hessians

DIFFCLI_HESSIAN = r"""
import gc, json, statistics, sys, time
import diffcli
program = diffcli.load(sys.argv[1])
calls = int(sys.argv[2])
vector = dict.fromkeys(program.inputs, 1.0)
program.hessian(); program.hvp(vector); program.grad()
def timed(f):
    times = []
    for _ in range(calls):
        t0 = time.process_time(); f(); times.append(time.process_time() - t0)
    return statistics.median(times)
print(json.dumps({"hessian": timed(program.hessian), "hvp": timed(lambda: program.hvp(vector)),
                  "grad": timed(program.grad)}))
"""

JAX_HESSIAN = RUN_PROGRAM + r"""
import json, statistics, sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
text, inputs, output, calls = json.loads(sys.stdin.read())
names = [n for n in inputs]
def f(x):
    namespace = dict(tanh=jnp.tanh, exp=jnp.exp, log=jnp.log, sin=jnp.sin, cos=jnp.cos, sqrt=jnp.sqrt)
    namespace.update({n: x[k] for k, n in enumerate(names)})
    return run_program(text, namespace, names)[output]
defaults = {}
for line in text.splitlines():
    for statement in line.split("#")[0].split(";"):
        name, _, expr = statement.partition("=")
        if name.strip() in names and name.strip() not in defaults:
            defaults[name.strip()] = float(eval(expr))
x = jnp.array([defaults[n] for n in names], dtype=jnp.float64)
h = jax.jit(jax.hessian(f))
h(x).block_until_ready()
times = []
for _ in range(calls):
    t0 = time.process_time(); h(x).block_until_ready(); times.append(time.process_time() - t0)
print(json.dumps({"hessian": statistics.median(times), "h00": float(h(x)[0, 0])}))
"""


def measure_hessian(folder: Path, peers: str) -> dict:
    mlp = folder / "mlp_10.expr"
    mlp.write_text(run([sys.executable, str(GENPROG), "mlp", "10"]))
    results = {}
    for label, path, calls in (("two_layer_network", NETWORK, 300), ("mlp_10", mlp, 40)):
        text, inputs, output = python_program(path)
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(json.loads(run([sys.executable, "-c", DIFFCLI_HESSIAN, str(path), str(calls)])))
            theirs.append(json.loads(subprocess.run([peers, "-c", JAX_HESSIAN], input=json.dumps(
                [text, inputs, output, calls]), capture_output=True, text=True, env=ENVIRONMENT, check=True).stdout))
        results[label] = {
            "inputs": len(inputs),
            "diffcli": spread([o["hessian"] for o in ours]), "jax": spread([t["hessian"] for t in theirs]),
            "ratio": round_ratios([o["hessian"] for o in ours], [t["hessian"] for t in theirs]),
            "hvp": spread([o["hvp"] for o in ours]), "grad": spread([o["grad"] for o in ours]),
            "hvp_ratio": round_ratios([o["hvp"] for o in ours], [o["grad"] for o in ours]),
        }
    results["load"] = load()
    return results


def hessian_report(r: dict) -> list[str]:
    lines = ["### 3. Hessians (warm, in process; median call of each round)", "",
             f"diffcli's and JAX's processes alternating, {ROUNDS} rounds; JAX float64, one thread; "
             f"load average {r['load']}.", "",
             "| program | inputs | `Program.hessian()` | `jax.jit(jax.hessian(f))` | ratio (rounds) | `hvp` | `hvp` / `grad` |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, s in r.items():
        if label == "load":
            continue
        lines.append(f"| {label} | {s['inputs']} | {s['diffcli']['median'] * 1e6:,.0f} µs | {s['jax']['median'] * 1e6:,.0f} µs "
                     f"| **{s['ratio']['median']:.2f}×** ({s['ratio']['low']:.2f}–{s['ratio']['high']:.2f}) "
                     f"| {s['hvp']['median'] * 1e6:,.0f} µs | {s['hvp_ratio']['median']:.2f}× |")
    return lines + ["", "Target: ≤ 1× JAX on both.", ""]


# ---------------------------------------------------------------- 4. the batch engine

def measure_batch(points: int = 1_000_000) -> dict:
    import time

    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import many_points
    import diffcli
    from diffcli.interpreters import batch

    program = diffcli.load(NETWORK)
    rng = np.random.default_rng(1)
    x1, x2 = rng.uniform(-2, 2, points), rng.uniform(-2, 2, points)
    namespace: dict = {}
    exec(many_points.HAND, namespace)  # the benchmark's own reference formulas
    hand = namespace["network"]
    ours, theirs = [], []
    for _ in range(ROUNDS):
        t0 = time.process_time()
        result = batch.run(program, {"x1": x1, "x2": x2})
        ours.append(time.process_time() - t0)
        t0 = time.process_time()
        value, gradients = hand(x1, x2, **many_points.DEFAULTS)
        theirs.append(time.process_time() - t0)
    difference = max(float(np.max(np.abs(result.gradients[n] - g))) for n, g in gradients.items())
    return {"diffcli": spread(ours), "hand": spread(theirs), "ratio": round_ratios(ours, theirs),
            "difference": difference, "points": points, "load": load()}


def batch_report(r: dict) -> list[str]:
    return ["### 4. The batch engine (two_layer_network, value + 16 gradients)", "",
            f"{r['points']:,} points, in one process, alternating, {ROUNDS} rounds, CPU time; load average {r['load']}.", "",
            "| code | median | rounds' range |", "| --- | ---: | ---: |",
            f"| `batch.run` | {r['diffcli']['median'] * 1e3:.1f} ms | {r['diffcli']['low'] * 1e3:.1f}–{r['diffcli']['high'] * 1e3:.1f} |",
            f"| NumPy by hand | {r['hand']['median'] * 1e3:.1f} ms | {r['hand']['low'] * 1e3:.1f}–{r['hand']['high'] * 1e3:.1f} |",
            "", f"Ratio **{r['ratio']['median']:.2f}×** (rounds {r['ratio']['low']:.2f}–{r['ratio']['high']:.2f}; "
            f"target ≤ 1.2×); largest gradient difference {r['difference']:.3g}.", ""]


# ---------------------------------------------------------------- the report

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="c,codegen,hessian,batch")
    parser.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "diffcli-peers")
    parser.add_argument("--keep", type=Path, help="a folder to keep the generated programs in")
    parser.add_argument("--before", type=Path, help="another diffcli checkout: its C timed in the same binary (c)")
    options = parser.parse_args()
    os.environ.update(SINGLE)
    sections = options.only.split(",")
    peers = peers_python(options.peers) if {"c", "hessian"} & set(sections) else None
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = options.keep or Path(scratch)
        folder.mkdir(exist_ok=True)
        for name in sections:
            if name == "c":
                section = c_report(measure_c(folder, peers, options.before))
            elif name == "codegen":
                section = codegen_report(measure_codegen(folder))
            elif name == "hessian":
                section = hessian_report(measure_hessian(folder, peers))
            else:
                section = batch_report(measure_batch())
            print("\n".join(section), flush=True)
            lines += section
    if options.only == parser.get_default("only"):
        text = RESULTS.read_text(encoding="utf-8")
        section = "\n".join([BEGIN, *lines, END])
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        text = pattern.sub(lambda _: section, text) if BEGIN in text else text + "\n" + section + "\n"
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
