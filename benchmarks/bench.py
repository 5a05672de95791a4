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
GENPROG = ROOT.parent / "shared" / "bench" / "genprog.py"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
# the measured processes import diffcli from this checkout (its dependencies must be installed)
ENVIRONMENT = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))

WORKLOADS = [("chain", 100_000), ("wide", 100_000), ("deep", 5_000), ("mlp", 64)]
ANALYSIS = "<!-- analysis: written by hand, kept when bench.py rewrites the measurements above -->"
RATIO_TARGET, DEEP_TARGET, STARTUP_TARGET, LINEAR_TARGET = 2.0, 1.0, 1.3, 12.0

# Runs in a fresh process: diffcli's phases, in CPU seconds, and the process's peak memory.
PHASES = r"""
import gc, json, resource, sys, time
gc.disable()  # as the command does
from diffcli import engine, parser
from diffcli.errors import Source
from diffcli.graph import build
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
# Carlo draws them), or the whole uncertainty propagation with N Monte Carlo samples; CPU seconds.
MONTE_CARLO = r"""
import json, sys, time
import numpy as np
import diffcli
from diffcli import batch
program = diffcli.load(sys.argv[1])
what, n = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(1)
if what == "batch":
    columns = {name: value + 0.01 * rng.standard_normal(n) for name, value in program.inputs.items()}
    t0 = time.process_time()
    batch.run(program, columns, gradients=False)
else:
    t0 = time.process_time()
    from diffcli.uncertainty import propagate
    propagate(program, monte_carlo=n, seed=1)
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


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    options.add_argument("--quick", action="store_true",
                         help="one run each, no chain 1,000,000; print only")
    options.add_argument("--only", choices=[k for k, _ in WORKLOADS] + ["uncertainty"], action="append",
                         help="measure only these workloads (print only)")
    args = options.parse_args()
    if not GENPROG.exists() and args.only != ["uncertainty"]:
        raise SystemExit(f"{GENPROG} is not there: the workloads come from ../shared/bench/genprog.py")
    repeat = 1 if args.quick else args.repeat
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
    text = report(rows, startup, table, linear, repeat, uncertainty)
    print(text)
    if not partial:
        # keep the hand-written analysis that follows the measurements
        old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        if ANALYSIS in old:
            text += "\n" + old[old.index(ANALYSIS):]
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
