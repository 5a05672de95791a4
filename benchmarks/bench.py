"""diffcli against the floor: CPython's own compile() of the same program.

    python benchmarks/bench.py              # everything, then writes benchmarks/RESULTS.md
    python benchmarks/bench.py --quick      # fewer runs, no chain 1,000,000 (does not write RESULTS.md)

For each workload from ../shared/bench/genprog.py it times, side by side and in fresh processes:
diffcli's parse (text -> AST), build (AST -> graph), forward and reverse passes, the whole
`diffcli grad FILE --json` process, and compile() of the same program translated to Python
(`^` -> `**`). CPython cannot compile `wide` as written (a 100,000-term line overflows its compiler's
recursion), so its floor is the same arithmetic one term per statement (`s1 = s0 + term1`, ...);
nor `deep` (it refuses 5,000 nested parentheses), which has an absolute target instead.

Times are CPU seconds (user + system) of the measured process, the median of several runs: the
machine is shared, and CPU time is what other jobs disturb least. Wall-clock medians are shown too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (a git worktree elsewhere names it with DIFFCLI_GENPROG)
GENPROG = Path(os.environ.get("DIFFCLI_GENPROG") or ROOT.parent / "shared" / "bench" / "genprog.py")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# the measured processes import diffcli from this checkout (its dependencies must be installed)
ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))

WORKLOADS = [("chain", 100_000), ("wide", 100_000), ("deep", 5_000), ("mlp", 64)]
ANALYSIS = "<!-- analysis: written by hand, kept when bench.py rewrites the measurements above -->"
RATIO_TARGET, DEEP_TARGET, STARTUP_TARGET, LINEAR_TARGET = 2.0, 1.0, 1.3, 12.0
# second order (issue 12): hessian process / grad process; H·v / gradient; Jacobian of 10 / gradient
HESSIAN_TARGET, HVP_TARGET, JACOBIAN_TARGET = 1.5, 4.0, 10.0
SECOND_ORDER_BEGIN, SECOND_ORDER_END = "<!-- second order: begin -->", "<!-- second order: end -->"

# Runs in a fresh process: diffcli's phases, in CPU seconds, and the process's peak memory.
PHASES = r"""
import gc, json, resource, sys, time
gc.disable()  # as the command does
from diffcli.interpreters import engine
from diffcli.language import parser
from diffcli.errors import Source
from diffcli.language.graph import build
from diffcli.program import Program, read_source
clock = time.process_time
path = sys.argv[1]
source = Source(read_source(open(path, "rb").read(), path), path)
parser.parse(Source("x = 1", "warm-up"))  # load the grammar's tables, as any run does first
t0 = clock(); parsed = parser.parse_with_nodes(source); statements = parsed.statements
t1 = clock(); graph = build(statements, source, parsed)
t2 = clock(); inputs, _ = Program(source, statements, graph)._inputs({})
values = engine.forward(graph, inputs)
t3 = clock(); engine.reverse(graph, values, graph.names[graph.output])
t4 = clock()
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"parse": t1 - t0, "build": t2 - t1, "forward": t3 - t2, "reverse": t4 - t3,
                  "statements": len(statements), "nodes": len(graph), "peak_mib": peak_kib / 1024}))
"""

# Runs in a fresh process: CPython's compile() of a Python file, in CPU seconds.
COMPILE = r"""
import gc, json, sys, time
text = open(sys.argv[1], encoding="utf-8").read()
t0 = time.process_time()
try:
    compile(text, sys.argv[1], "exec")
    print(json.dumps({"compile": time.process_time() - t0}))
except (RecursionError, SyntaxError, MemoryError) as error:
    print(json.dumps({"compile": None, "error": f"{type(error).__name__}: {error}"[:80]}))
"""


# Runs in a fresh process: a gradient and a second-order computation on one program, in process,
# alternately, CPU seconds each (medians): `hvp` (v = 1 on every input) or `jacobian` (the last 10
# named variables as outputs).
SECOND = r"""
import gc, json, statistics, sys, time
gc.disable()
import diffcli
program = diffcli.load(sys.argv[1])
what, repeat = sys.argv[2], int(sys.argv[3])
if what == "hvp":
    vector = dict.fromkeys(program.inputs, 1.0)
    second = lambda: program.hvp(vector)
else:
    outputs = list(program.graph.names)[-10:]
    second = lambda: program.jacobian(outputs)
first, other = [], []
for _ in range(repeat):
    for times, f in ((first, program.grad), (other, second)):
        t0 = time.process_time(); f(); times.append(time.process_time() - t0)
print(json.dumps({"gradient": statistics.median(first), "second": statistics.median(other),
                  "inputs": len(program.inputs), "nodes": len(program.graph)}))
"""


def run(argv: list[str], capture: bool = False) -> tuple[float, float, float, bytes]:
    """Run a process to its end: (CPU seconds, wall seconds, peak MiB, its output if captured)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out if capture else subprocess.DEVNULL, stderr=err,
                                   env=ENVIRONMENT)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU time and memory
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{err.read().decode()}")
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024, out.read()


def median_runs(argv, repeat: int) -> dict:
    runs = [run(argv) for _ in range(repeat)]
    return {"cpu": statistics.median(r[0] for r in runs), "wall": statistics.median(r[1] for r in runs),
            "peak_mib": max(r[2] for r in runs)}


def json_runs(argv, repeat: int) -> dict:
    """Medians of what a measuring process prints (a JSON object), and of its own CPU time."""
    import json

    runs = []
    for _ in range(repeat):
        cpu, _, _, output = run(argv, capture=True)
        runs.append(dict(json.loads(output), process_cpu=cpu))
    return {k: statistics.median(r[k] for r in runs) if isinstance(runs[0][k], (int, float)) else runs[0][k]
            for k in runs[0]}


# ---------------------------------------------------------------- translating to Python

def to_python(text: str) -> str:
    """The program as Python source: the generated programs use explicit `*` and `^` only."""
    return text.replace("^", "**")


def split_sum(expr: str) -> list[str]:
    """The top-level terms of `t1 + t2 + ...` (the generated `wide` line)."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(expr):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "+" and depth == 0:
            terms.append(expr[start:i].strip())
            start = i + 1
    terms.append(expr[start:].strip())
    return terms


def wide_floor(text: str) -> str:
    """`loss = t1 + t2 + ...` as one term per statement: `s1 = t1`, `s2 = s1 + t2`, ..."""
    lines = text.splitlines()
    last = lines[-1]
    name, _, expr = last.partition(" = ")
    out = lines[:-1]
    for i, term in enumerate(split_sum(expr), 1):
        out.append(f"s{i} = {term}" if i == 1 else f"s{i} = s{i - 1} + {term}")
    out.append(f"{name} = s{i}")
    return to_python("\n".join(out) + "\n")


# ---------------------------------------------------------------- the measurements

def diffcli_command() -> list[str]:
    script = Path(sys.executable).parent / "diffcli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "diffcli"]


def generate(kind: str, size: int, folder: Path) -> Path:
    path = folder / f"{kind}_{size}.expr"
    if not path.exists():
        with open(path, "wb") as out:
            subprocess.run([sys.executable, str(GENPROG), kind, str(size)], stdout=out, check=True)
    return path


def measure_workload(kind: str, size: int, folder: Path, repeat: int) -> dict:
    path = generate(kind, size, folder)
    text = path.read_text(encoding="utf-8")
    floor_text = wide_floor(text) if kind == "wide" else to_python(text)
    floor_path = folder / f"{kind}_{size}.py"
    floor_path.write_text(floor_text, encoding="utf-8")
    row = {"kind": kind, "size": size}
    row.update(json_runs([sys.executable, "-c", PHASES, str(path)], repeat))
    row["process"] = median_runs(diffcli_command() + ["grad", str(path), "--json"], repeat)
    floor = json_runs([sys.executable, "-c", COMPILE, str(floor_path)], repeat)
    row["compile"], row["compile_process"] = floor["compile"], floor["process_cpu"]
    return row


def measure_table(folder: Path) -> dict:
    path = generate("chain", 100_000, folder)
    return median_runs(diffcli_command() + ["grad", str(path)], 1)


def measure_second_order(folder: Path, repeat: int) -> dict:
    """The three second-order targets, each a ratio of two things measured side by side."""
    import json

    sample = str(ROOT / "samples" / "two_layer_network.expr")
    grad_runs, hessian_runs = [], []
    for _ in range(repeat):  # alternately, so that a busy moment hurts both alike
        grad_runs.append(run(diffcli_command() + ["grad", sample, "--json"])[0])
        hessian_runs.append(run(diffcli_command() + ["hessian", sample, "--json"])[0])
    result = {"grad_process": statistics.median(grad_runs), "hessian_process": statistics.median(hessian_runs)}
    for what, kind, size in (("hvp", "mlp", 64), ("jacobian", "chain", 100_000)):
        path = generate(kind, size, folder)
        output = run([sys.executable, "-c", SECOND, str(path), what, str(max(repeat, 3))], capture=True)[3]
        result[what] = dict(json.loads(output), kind=kind, size=size)
    return result


def second_order_report(second: dict, repeat: int) -> str:
    hessian_ratio = second["hessian_process"] / second["grad_process"]
    hvp, jacobian = second["hvp"], second["jacobian"]
    hvp_ratio, jacobian_ratio = hvp["second"] / hvp["gradient"], jacobian["second"] / jacobian["gradient"]
    lines = [
        SECOND_ORDER_BEGIN,
        "## Second order: Hessians, H·v, Jacobians",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`python benchmarks/bench.py --second-order` (medians of {repeat} alternating runs; CPU seconds).",
        "",
        "| what | measured | against | ratio | target | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        f"| `diffcli hessian samples/two_layer_network.expr --json` (16 inputs), whole process "
        f"| {second['hessian_process'] * 1000:.0f} ms | `grad --json`: {second['grad_process'] * 1000:.0f} ms "
        f"| {hessian_ratio:.2f}× | ≤ {HESSIAN_TARGET:g}× | {verdict(hessian_ratio <= HESSIAN_TARGET)} |",
        f"| `program.hvp(v)`, v = 1 on all {hvp['inputs']:,} inputs of mlp 64 ({hvp['nodes']:,} nodes), in process "
        f"| {hvp['second'] * 1000:.1f} ms | `program.grad()`: {hvp['gradient'] * 1000:.1f} ms "
        f"| {hvp_ratio:.2f}× | ≤ {HVP_TARGET:g}× | {verdict(hvp_ratio <= HVP_TARGET)} |",
        f"| `program.jacobian(...)` of the last 10 named variables of chain 100,000, in process "
        f"| {jacobian['second']:.2f} s | `program.grad()`: {jacobian['gradient']:.2f} s "
        f"| {jacobian_ratio:.2f}× | ≤ {JACOBIAN_TARGET:g}× | {verdict(jacobian_ratio <= JACOBIAN_TARGET)} |",
        SECOND_ORDER_END,
    ]
    return "\n".join(lines) + "\n"


def replace_second_order(old: str, section: str) -> str:
    """RESULTS.md with its second-order section replaced (or added before the analysis)."""
    if SECOND_ORDER_BEGIN in old and SECOND_ORDER_END in old:
        start, end = old.index(SECOND_ORDER_BEGIN), old.index(SECOND_ORDER_END) + len(SECOND_ORDER_END) + 1
        return old[:start] + section + old[end:]
    if ANALYSIS in old:
        at = old.index(ANALYSIS)
        return old[:at] + section + "\n" + old[at:]
    return old + "\n" + section


# The smallest Typer command line that imports what diffcli imports: Typer's own work when it runs a
# command (it converts every parameter through pydantic since 0.2x) is not in `import typer`.
TYPER_APP = (
    "import sys, typer, rich, lark\n"
    "app = typer.Typer()\n"
    "@app.command()\n"
    "def grad(file: str, json: bool = False):\n"
    "    pass\n"
    "sys.argv = ['app', 'model.expr', '--json']\n"
    "app()\n"
)


def measure_startup(repeat: int) -> dict:
    sample = ROOT / "samples" / "backprop_chain.expr"
    floor = median_runs([sys.executable, "-c", "import typer, rich, lark"], repeat)
    typer_app = median_runs([sys.executable, "-c", TYPER_APP], repeat)
    grad = median_runs(diffcli_command() + ["grad", str(sample), "--set", "o=1"], repeat)
    as_json = median_runs(diffcli_command() + ["grad", str(sample), "--set", "o=1", "--json"], repeat)
    return {"floor": floor, "typer_app": typer_app, "grad": grad, "json": as_json}


# ---------------------------------------------------------------- uncertainty (issue 15)

UNCERTAINTY_TARGET, MONTE_CARLO_TARGET, MONTE_CARLO_POINTS = 1.2, 3.0, 1_000_000

# Runs in a fresh process: the batch engine's values at N points (the inputs drawn as the Monte
# Carlo draws them), or the whole uncertainty propagation with N Monte Carlo samples; CPU seconds of
# a second call, after a first one.
MONTE_CARLO = r"""
import json, sys, time
import numpy as np
import diffcli
from diffcli.interpreters import batch
program = diffcli.load(sys.argv[1])
what, n = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(1)
from diffcli.interpreters.uncertainty import propagate
columns = {name: value + 0.01 * rng.standard_normal(n) for name, value in program.inputs.items()}
run = ((lambda: batch.run(program, columns, gradients=False)) if what == "batch"
       else (lambda: propagate(program, monte_carlo=n, seed=1)))
run()  # warm: the first call's planning and imports are not the steady state either side measures
t0 = time.process_time()
run()
print(json.dumps({"cpu": time.process_time() - t0}))
"""


def uncertain_copy(path: Path, folder: Path) -> Path:
    """The program with every literal input given a standard uncertainty of 0.01."""
    literal = re.compile(r"\s*\w+\s*=\s*[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?\s*")
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        code, hash, comment = line.partition("#")
        parts = [part.rstrip() + " ± 0.01" if literal.fullmatch(part) else part for part in code.split(";")]
        lines.append(";".join(parts) + hash + comment)
    out = folder / f"uncertain_{path.name}"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def measure_uncertainty(folder: Path, repeat: int) -> dict:
    sample = uncertain_copy(ROOT / "samples" / "two_layer_network.expr", folder)
    # alternated, so that the load of the shared machine weighs on both alike
    runs = [(run(diffcli_command() + ["grad", str(sample)]), run(diffcli_command() + ["uncertainty", str(sample)]))
            for _ in range(repeat)]
    grad, propagation = ({"cpu": statistics.median(r[k][0] for r in runs),
                          "wall": statistics.median(r[k][1] for r in runs)} for k in (0, 1))
    batch = json_runs([sys.executable, "-c", MONTE_CARLO, str(sample), "batch", str(MONTE_CARLO_POINTS)],
                      repeat)
    monte_carlo = json_runs([sys.executable, "-c", MONTE_CARLO, str(sample), "monte_carlo",
                             str(MONTE_CARLO_POINTS)], repeat)
    return {"grad": grad, "uncertainty": propagation, "batch": batch["cpu"],
            "monte_carlo": monte_carlo["cpu"]}


def uncertainty_report(result: dict) -> list[str]:
    grad, propagation = result["grad"], result["uncertainty"]
    ratio = propagation["cpu"] / grad["cpu"]
    mc_ratio = result["monte_carlo"] / result["batch"]
    return [
        "",
        "## Uncertainty",
        "",
        "`samples/two_layer_network.expr` with every one of its 16 inputs given `± 0.01`:",
        "",
        "| measurement | CPU | wall | ratio | target | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        f"| `diffcli grad` (process) | {grad['cpu'] * 1000:.0f} ms | {grad['wall'] * 1000:.0f} ms | 1 | | |",
        f"| `diffcli uncertainty` (process) | {propagation['cpu'] * 1000:.0f} ms | "
        f"{propagation['wall'] * 1000:.0f} ms | {ratio:.2f}× | ≤ {UNCERTAINTY_TARGET:g}× | "
        f"{verdict(ratio <= UNCERTAINTY_TARGET)} |",
        f"| `batch.run` of {MONTE_CARLO_POINTS:,} points, values only (in process) | "
        f"{result['batch']:.2f} s | | 1 | | |",
        f"| `propagate(program, monte_carlo={MONTE_CARLO_POINTS:_})`: sampling, the same batch "
        f"runs in chunks, statistics (in process) | {result['monte_carlo']:.2f} s | | {mc_ratio:.2f}× | "
        f"< {MONTE_CARLO_TARGET:g}× | {verdict(mc_ratio < MONTE_CARLO_TARGET)} |",
    ]


# ---------------------------------------------------------------- the report

def machine() -> str:
    model = ""
    if shutil.which("lscpu"):
        listing = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        found = re.search(r"Model name:\s*(.+)", listing)
        model = found.group(1).strip() if found else ""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
            f"(load average at the end: {load}); Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report(rows, startup, table, linear, repeat, uncertainty=None) -> str:
    lines = [
        "# diffcli performance",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`python benchmarks/bench.py` ({repeat} runs each, medians).",
        f"Machine: {machine()}.",
        "",
        "Times are CPU seconds (user + system) of each process: the machine is shared with other "
        "jobs, which inflate wall-clock times (shown too) far more than CPU times. The floor is "
        "CPython's `compile()` of the same program translated to Python (`^` -> `**`); for `wide` "
        "the same arithmetic one term per statement.",
        "",
        "| workload | statements | graph nodes | parse | build | forward | reverse | `grad --json` process (wall) | statements/s | floor: compile() | ratio | target | met? | ratio to a `python` process that compiles |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for row in rows:
        process = row["process"]
        floor = row.get("compile")
        per_second = row["statements"] / process["cpu"]
        if floor is None:  # deep: CPython refuses it
            ratio, target, ok = "-", f"< {DEEP_TARGET:g} s", process["cpu"] < DEEP_TARGET
            floor_text, process_ratio = "cannot compile", "-"
        else:
            ratio_value = process["cpu"] / floor
            ratio, target, ok = f"{ratio_value:.2f}×", f"≤ {RATIO_TARGET:g}×", ratio_value <= RATIO_TARGET
            floor_text = f"{floor:.2f} s"
            process_ratio = f"{process['cpu'] / row['compile_process']:.2f}×"
        lines.append(
            f"| {row['kind']} {row['size']:,} | {row['statements']:,} | {row['nodes']:,} | "
            f"{row['parse']:.2f} s | {row['build']:.2f} s | {row['forward']:.2f} s | "
            f"{row['reverse']:.2f} s | {process['cpu']:.2f} s ({process['wall']:.2f} s) | "
            f"{per_second:,.0f} | {floor_text} | {ratio} | {target} | {verdict(ok)} | {process_ratio} |"
        )
    lines += ["", "Peak memory (resident) of the whole `grad --json` process:", ""]
    for row in rows:
        lines.append(f"- {row['kind']} {row['size']:,}: {row['process']['peak_mib']:.0f} MiB")
    if linear is not None:
        small, big = linear
        ratio = big["cpu"] / small["cpu"]
        lines += [
            "",
            "## Growth",
            "",
            "| workload | `grad --json` process (wall) | peak memory |",
            "| --- | ---: | ---: |",
            f"| chain 100,000 | {small['cpu']:.2f} s ({small['wall']:.2f} s) | {small['peak_mib']:.0f} MiB |",
            f"| chain 1,000,000 | {big['cpu']:.2f} s ({big['wall']:.2f} s) | {big['peak_mib']:.0f} MiB |",
            "",
            f"Ten times the program takes {ratio:.1f}× the time (target ≤ {LINEAR_TARGET:g}×: "
            f"{verdict(ratio <= LINEAR_TARGET)}) and {big['peak_mib'] / small['peak_mib']:.1f}× the memory.",
        ]
    floor, grad, as_json = startup["floor"], startup["grad"], startup["json"]
    typer_app = startup["typer_app"]
    ratio = grad["cpu"] / floor["cpu"]
    lines += [
        "",
        "## Start-up",
        "",
        "| command | CPU | wall | ratio to the floor |",
        "| --- | ---: | ---: | ---: |",
        f"| floor: `python -c \"import typer, rich, lark\"` | {floor['cpu'] * 1000:.0f} ms | {floor['wall'] * 1000:.0f} ms | 1 |",
        f"| `diffcli grad samples/backprop_chain.expr --set o=1` | {grad['cpu'] * 1000:.0f} ms | {grad['wall'] * 1000:.0f} ms | {ratio:.2f}× |",
        f"| the same with `--json` | {as_json['cpu'] * 1000:.0f} ms | {as_json['wall'] * 1000:.0f} ms | {as_json['cpu'] / floor['cpu']:.2f}× |",
        f"| for comparison: a one-command Typer app that imports rich and lark and parses two parameters | {typer_app['cpu'] * 1000:.0f} ms | {typer_app['wall'] * 1000:.0f} ms | {typer_app['cpu'] / floor['cpu']:.2f}× |",
        "",
        f"Target ≤ {STARTUP_TARGET:g}×: {verdict(ratio <= STARTUP_TARGET)}.",
    ]
    if table is not None:
        lines += [
            "",
            "## The table on a large program",
            "",
            f"`diffcli grad chain_100000.expr` (table mode, output to a file): {table['cpu']:.2f} s CPU "
            f"({table['wall']:.2f} s wall).",
        ]
    if uncertainty is not None:
        lines += uncertainty_report(uncertainty)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- codegen (issue 14)

# Evaluations per second of the gradient of one program: Program.grad, and the generated code.
CODEGEN_RATES = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
import diffcli
program = diffcli.load(sys.argv[1])
def rate(f, seconds=1.0):
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for _ in range(100):
            f()
        n += 100
    return n / (time.process_time() - start)
namespace = {}
generated = diffcli.renderers.codegen(program, "python", name="f")
exec(generated, namespace)
print(json.dumps({"Program.grad": rate(lambda: program.grad()), "python": rate(namespace["f"])}))
"""
C_MAIN = r"""
#include <stdio.h>
#include <time.h>
int main(void)
{
    /* the inputs read from volatile memory each time: the compiler cannot fold the call at build time */
    static volatile double source[%(n)d] = {%(values)s};
    double in[%(n)d], value, gradient[%(n)d], total = 0; long k, n = 0; int j; clock_t start = clock();
    while (clock() - start < CLOCKS_PER_SEC) {
        for (k = 0; k < 100000; k++) {
            for (j = 0; j < %(n)d; j++) in[j] = source[j];
            f(%(args)s &value, gradient, 0); total += gradient[0];
        }
        n += 100000;
    }
    printf("%%.6g %%g\n", n / ((double)(clock() - start) / CLOCKS_PER_SEC), total);
    return 0;
}
"""
JS_MAIN = r"""
import { f } from './model.mjs';
let n = 0, total = 0; const start = process.cpuUsage();
const used = () => { const u = process.cpuUsage(start); return (u.user + u.system) / 1e6; };
while (used() < 1) { for (let k = 0; k < 10000; k++) total += f().gradient[%(first)s]; n += 10000; }
console.log(n / used(), total);
"""


def measure_codegen(folder: Path, repeat: int) -> dict:
    """Generating chain 100,000 beside `grad --json` on it; the two-layer network's gradient per second."""
    import json

    chain = generate("chain", 100_000, folder)
    results = {
        "grad": median_runs(diffcli_command() + ["grad", str(chain), "--json"], repeat),
        **{lang: median_runs(diffcli_command() + ["codegen", str(chain), "--lang", lang, "-o",
                                                  str(folder / f"chain.{lang}")], repeat)
           for lang in ("python", "c", "javascript")},
    }
    sample = ROOT / "samples" / "two_layer_network.expr"
    _, _, _, out = run([sys.executable, "-c", CODEGEN_RATES, str(sample), str(ROOT)], capture=True)
    rates = json.loads(out)
    sys.path.insert(0, str(ROOT))
    import diffcli

    program = diffcli.load(sample)
    inputs = [n for n, d in program.inputs.items() if d is None] + [n for n, d in program.inputs.items() if d is not None]
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler:
        c = diffcli.renderers.codegen(program, "c", name="f")
        args = "".join(f"in[{k}], " for k in range(len(inputs)))
        values = ", ".join(repr(program.inputs[n]) for n in inputs)
        (folder / "model.c").write_text(c + C_MAIN % {"n": len(inputs), "args": args, "values": values})
        subprocess.run([compiler, "-O2", "-o", str(folder / "model"), str(folder / "model.c"), "-lm"], check=True)
        _, _, _, out = run([str(folder / "model")], capture=True)
        rates["c"] = float(out.split()[0])
    if shutil.which("node"):
        (folder / "model.mjs").write_text(diffcli.renderers.codegen(program, "javascript", name="f"))
        (folder / "main.mjs").write_text(JS_MAIN % {"first": json.dumps(inputs[0])})
        _, _, _, out = run(["node", str(folder / "main.mjs")], capture=True)
        rates["javascript"] = float(out.split()[0])
    results["rates"] = rates
    return results


def codegen_report(results: dict) -> str:
    grad = results["grad"]["cpu"]
    lines = ["## codegen (issue 14)", "",
             "Generating code for chain 100,000 (`diffcli codegen chain_100000.expr --lang L -o FILE`, "
             "CPU of the whole process) beside `diffcli grad chain_100000.expr --json`:", "",
             "| process | CPU | wall | ratio to `grad --json` | target ≤ 1× |", "| --- | ---: | ---: | ---: | --- |",
             f"| `grad --json` | {grad:.2f} s | {results['grad']['wall']:.2f} s | 1 | |"]
    for lang in ("python", "c", "javascript"):
        r = results[lang]
        lines.append(f"| `codegen --lang {lang}` | {r['cpu']:.2f} s | {r['wall']:.2f} s | {r['cpu'] / grad:.2f}× "
                     f"| {verdict(r['cpu'] <= grad)} |")
    rates = results["rates"]
    base = rates["Program.grad"]
    lines += ["", "Gradients per second of `samples/two_layer_network.expr` (CPU time, one process each; "
              "C compiled with `gcc -O2`):", "", "| code | evaluations/s | speed-up over `Program.grad` |",
              "| --- | ---: | ---: |"]
    for key, rate in rates.items():
        lines.append(f"| {key} | {rate:,.0f} | {rate / base:,.0f}× |")
    if "c" in rates:
        lines += ["", f"Target: C ≥ 1000× `Program.grad`: {verdict(rates['c'] / base >= 1000)} "
                  f"({rates['c'] / base:,.0f}×)."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- fitting (issue 13)

FIT_SPEEDUP_TARGET, FIT_EVALUATIONS_TARGET = 50.0, 50
FIT_BEGIN, FIT_END = "<!-- fit: begin (bench.py rewrites this part) -->", "<!-- fit: end -->"
DECAY_TRUE = {"A": 5.0, "k": 0.3, "c": 0.5}  # stated in samples/decay.expr

# micrograd's own demo loop (demo.ipynb), on scripts/make_moons.py's data and initial parameters
MICROGRAD = r"""
import json, sys
from micrograd.engine import Value
from micrograd.nn import MLP
setup = json.load(open(sys.argv[1]))
model = MLP(2, [16, 16, 1])
for layer, neurons in zip(model.layers, setup["layers"]):
    for neuron, (weights, bias) in zip(layer.neurons, neurons):
        for w, value in zip(neuron.w, weights):
            w.data = value
        neuron.b.data = bias
X, y = setup["x"], setup["y"]

def loss():
    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
    return data_loss + reg_loss, sum(accuracy) / len(accuracy)

for k in range(100):
    total_loss, acc = loss()
    model.zero_grad()
    total_loss.backward()
    learning_rate = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= learning_rate * p.grad
total_loss, acc = loss()
print(json.dumps({"loss": total_loss.data, "accuracy": acc}))
"""


def measure_fit(folder: Path, repeat: int) -> dict:
    """The moons network trained by diffcli and by micrograd, and the exponential decay fit."""
    import json

    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_moons.py"), str(folder), "--json"],
                   check=True)
    moons = [str(folder / "moons_mlp.expr"), "--data", str(folder / "moons.csv"), "--method", "gd",
             "--steps", "100", "--report", "accuracy", "--json"]
    ours = json.loads(run(diffcli_command() + ["fit", *moons], capture=True)[3])
    ours_time = median_runs(diffcli_command() + ["fit", *moons], repeat)
    # one run of micrograd (about a minute): its time and its result together
    cpu, wall, peak, output = run([sys.executable, "-c", MICROGRAD, str(folder / "moons.json")], capture=True)
    theirs, theirs_time = json.loads(output), {"cpu": cpu, "wall": wall, "peak_mib": peak}
    decay = [str(ROOT / "samples" / "decay.expr"), "--data", str(ROOT / "samples" / "decay.csv"),
             "--residual", "r", "--json"]
    fitted = json.loads(run(diffcli_command() + ["fit", *decay], capture=True)[3])
    return {"ours": ours, "ours_time": ours_time, "theirs": theirs, "theirs_time": theirs_time,
            "decay": fitted}


def fit_report(fit: dict) -> str:
    ours, theirs, decay = fit["ours"], fit["theirs"], fit["decay"]
    speedup = fit["theirs_time"]["cpu"] / fit["ours_time"]["cpu"]
    within = {name: abs(decay["parameters"][name] - true) / decay["stderr"][name]
              for name, true in DECAY_TRUE.items()}
    decay_ok = all(v <= 1 for v in within.values()) and decay["evaluations"] < FIT_EVALUATIONS_TARGET
    lines = [
        FIT_BEGIN,
        "## Fitting (issue 13)",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        "`python benchmarks/bench.py --fit`; CPU seconds of whole processes.",
        "",
        "micrograd's demo: the 2-16-16-1 ReLU network (337 parameters) on 100 two-moons points "
        "(scripts/make_moons.py), 100 steps of gradient descent, learning rate 1.0 - 0.9·k/100, the same "
        "data and initial parameters on both sides:",
        "",
        "| | process CPU (wall) | final loss | training accuracy |",
        "| --- | ---: | ---: | ---: |",
        f"| `diffcli fit moons_mlp.expr --data moons.csv --method gd --steps 100 --report accuracy --json` "
        f"| {fit['ours_time']['cpu']:.2f} s ({fit['ours_time']['wall']:.2f} s) | {ours['objective']:.6g} "
        f"| {ours['report']['accuracy']:.0%} |",
        f"| micrograd {_micrograd_version()} (PyPI), its demo loop | {fit['theirs_time']['cpu']:.2f} s "
        f"({fit['theirs_time']['wall']:.2f} s) | {theirs['loss']:.6g} | {theirs['accuracy']:.0%} |",
        "",
        f"Speed-up {speedup:.1f}× (target ≥ {FIT_SPEEDUP_TARGET:g}×: {verdict(speedup >= FIT_SPEEDUP_TARGET)}); "
        f"the final losses differ by {abs(ours['objective'] - theirs['loss']):.1e} (summation order).",
        "",
        "The exponential decay (samples/decay.expr, `--residual r`, least_squares):",
        "",
        "| parameter | true | fitted | standard error | \\|fitted − true\\| / error |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, true in DECAY_TRUE.items():
        lines.append(f"| {name} | {true:g} | {decay['parameters'][name]:.6g} | {decay['stderr'][name]:.3g} "
                     f"| {within[name]:.2f} |")
    lines += [
        "",
        f"{decay['evaluations']} evaluations (target: within one standard error, in fewer than "
        f"{FIT_EVALUATIONS_TARGET}: {verdict(decay_ok)}); converged: {decay['converged']} ({decay['message']}).",
        FIT_END,
    ]
    return "\n".join(lines) + "\n"


def _micrograd_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("micrograd")
    except PackageNotFoundError:
        return "(not installed)"


def write_fit_section(section: str) -> None:
    """Replace the fit section of RESULTS.md (after the hand-written analysis), or add it."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    if FIT_BEGIN in old and FIT_END in old:
        head, rest = old.split(FIT_BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(FIT_END, 1)[1]
    else:
        text = old.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    options.add_argument("--quick", action="store_true",
                         help="one run each, no chain 1,000,000; print only")
    options.add_argument("--only", choices=[k for k, _ in WORKLOADS] + ["uncertainty"], action="append",
                         help="measure only these workloads (print only)")
    options.add_argument("--second-order", action="store_true",
                         help="measure only the second-order targets, and update their section of RESULTS.md")
    options.add_argument("--codegen", action="store_true",
                         help="measure only codegen: generating chain 100,000, and generated code's speed (print only)")
    options.add_argument("--fit", action="store_true",
                         help="measure only the fit targets (micrograd's demo, the decay fit) and "
                         "rewrite their section of RESULTS.md")
    args = options.parse_args()
    if args.fit:
        with tempfile.TemporaryDirectory(prefix="diffcli-bench-") as folder:
            section = fit_report(measure_fit(Path(folder), args.repeat))
        print(section)
        write_fit_section(section)
        return
    if args.codegen:
        with tempfile.TemporaryDirectory(prefix="diffcli-bench-") as folder:
            print(codegen_report(measure_codegen(Path(folder), 1 if args.quick else args.repeat)))
        return
    if not GENPROG.exists() and args.only != ["uncertainty"]:
        raise SystemExit(f"{GENPROG} is not there: the workloads come from ../shared/bench/genprog.py")
    repeat = 1 if args.quick else args.repeat
    if args.second_order:
        with tempfile.TemporaryDirectory(prefix="diffcli-bench-") as folder:
            section = second_order_report(measure_second_order(Path(folder), max(repeat, 5)), max(repeat, 5))
        print(section)
        old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        RESULTS.write_text(replace_second_order(old, section), encoding="utf-8")
        return
    partial = args.quick or args.only
    with tempfile.TemporaryDirectory(prefix="diffcli-bench-") as folder:
        folder = Path(folder)
        rows = []
        for kind, size in WORKLOADS:
            if args.only and kind not in args.only:
                continue
            print(f"measuring {kind} {size} ...", file=sys.stderr, flush=True)
            rows.append(measure_workload(kind, size, folder, repeat))
        uncertainty = None
        if not args.only or "uncertainty" in args.only:
            print("measuring uncertainty ...", file=sys.stderr, flush=True)
            uncertainty = measure_uncertainty(folder, max(repeat, 3))
            if args.only == ["uncertainty"]:
                print("\n".join(uncertainty_report(uncertainty)))
                return
        print("measuring start-up ...", file=sys.stderr, flush=True)
        startup = measure_startup(max(repeat * 5, 5))
        linear = table = None
        if not partial:
            print("measuring chain 1,000,000 ...", file=sys.stderr, flush=True)
            small = rows[0]["process"]
            big = median_runs(diffcli_command() + ["grad", str(generate("chain", 1_000_000, folder)),
                                                   "--json"], 1)
            linear = (small, big)
            print("measuring the table on chain 100,000 ...", file=sys.stderr, flush=True)
            table = measure_table(folder)
            print("measuring second order ...", file=sys.stderr, flush=True)
            second = second_order_report(measure_second_order(folder, max(repeat, 5)), max(repeat, 5))
    text = report(rows, startup, table, linear, repeat, uncertainty)
    print(text)
    if not partial:
        # keep the hand-written analysis that follows the measurements
        old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        if ANALYSIS in old:
            text += "\n" + old[old.index(ANALYSIS):]
        RESULTS.write_text(replace_second_order(text, second), encoding="utf-8")
        print("measuring the fit targets ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="diffcli-bench-") as folder:
            write_fit_section(fit_report(measure_fit(Path(folder), repeat)))
        print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
