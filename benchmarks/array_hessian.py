"""`hessian` of an array program against `jax.jit(jax.hessian(f))` (issue 19's target), side by side.

    python benchmarks/array_hessian.py               # prints the table; --write puts it in RESULTS.md
    python benchmarks/array_hessian.py --peers DIR   # the peers' environment (made if missing)
    python benchmarks/array_hessian.py --checkout OLD --checkout .   # checkouts side by side

The program is genprog.py's `mlp 10` (8 inputs, two tanh layers of 10, a squared error: 219 input
elements) written with arrays (`array_mlp`): x, W1 (10×8), b1, W2 (10×10), b2, v, target. diffcli's
`Program.hessian()` (warm, in process) and JAX's jitted Hessian of the same function of the 219
numbers (float64, one thread, warm) run in alternating processes, ROUNDS rounds; a round's figure is
the median of CALLS calls. The table gives the medians, the per-round ratios' spread and the load
average. JAX lives in the environment peers.py makes, never in diffcli's dependencies. Each
--checkout (a diffcli source tree; default this one) is one row, all run in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (the peers' environment, one-thread settings, spreads)

ROUNDS = 7
CALLS = 200
SHAPES = {"x": ("in", (8,)), "W1": ("w1", (10, 8)), "b1": ("b1", (10,)), "W2": ("w2", (10, 10)),
          "b2": ("b2", (10,)), "v": ("v", (10,))}
BODY = ("h1 = tanh(W1 @ x + b1)\nh2 = tanh(W2 @ h1 + b2)\nyhat = v @ h2\nloss = (yhat - target)^2\n")


def array_mlp(scalar_text: str) -> tuple[str, dict]:
    """genprog's scalar mlp 10 as an array program (the same numbers), and its inputs as arrays."""
    import numpy as np

    numbers = {}
    for line in scalar_text.splitlines():
        match = re.fullmatch(r"(\w+) = (-?[0-9.]+)", line.strip())
        if match:
            numbers[match.group(1)] = float(match.group(2))
    inputs = {}
    for name, (prefix, shape) in SHAPES.items():
        array = np.zeros(shape)
        for index in np.ndindex(*shape):
            array[index] = numbers[prefix + ("_" + "_".join(map(str, index)) if prefix != "in" else str(index[0]))]
        inputs[name] = array
    inputs["target"] = numbers["target"]

    def literal(a):
        if a.ndim == 1:
            return "[" + ", ".join(repr(float(x)) for x in a) + "]"
        return "[" + ",\n     ".join(literal(row) for row in a) + "]"

    text = "".join(f"{name} = {literal(inputs[name])}\n" for name in SHAPES) + f"target = {inputs['target']!r}\n" + BODY
    return text, inputs


DIFFCLI = r"""
import json, statistics, sys, time
import diffcli
program = diffcli.load(sys.argv[1])
calls = int(sys.argv[2])
program.hessian()
times = []
for _ in range(calls):
    t0 = time.process_time(); h = program.hessian(); times.append(time.process_time() - t0)
print(json.dumps({"hessian": statistics.median(times), "h": h.matrix.tolist(), "wrt": h.wrt}))
"""

JAX = r"""
import json, statistics, sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
inputs, calls = json.loads(sys.stdin.read())
names = ["x", "W1", "b1", "W2", "b2", "v", "target"]
shapes = [jnp.shape(jnp.array(inputs[n])) for n in names]
sizes = [int(jnp.size(jnp.array(inputs[n]))) for n in names]
def f(theta):
    parts, k = {}, 0
    for n, s, m in zip(names, shapes, sizes):
        parts[n] = theta[k:k + m].reshape(s); k += m
    h1 = jnp.tanh(parts["W1"] @ parts["x"] + parts["b1"])
    h2 = jnp.tanh(parts["W2"] @ h1 + parts["b2"])
    return (parts["v"] @ h2 - parts["target"]) ** 2
theta = jnp.concatenate([jnp.ravel(jnp.array(inputs[n], dtype=jnp.float64)) for n in names])
h = jax.jit(jax.hessian(f))
h(theta).block_until_ready()
times = []
for _ in range(calls):
    t0 = time.process_time(); r = h(theta).block_until_ready(); times.append(time.process_time() - t0)
print(json.dumps({"hessian": statistics.median(times), "h": r.tolist()}))
"""


def checkout_name(root: Path) -> str:
    """A checkout as the table names it: its commit (and branch), else its folder's name."""
    done = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%h%d"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else root.name


def measure(folder: Path, python_peers: str, checkouts: list[Path]) -> dict:
    import numpy as np

    scalar = peers.run([sys.executable, str(peers.GENPROG), "mlp", "10"])
    text, inputs = array_mlp(scalar)
    path = folder / "mlp_10_arrays.expr"
    path.write_text(text, encoding="utf-8")
    plain = {n: (v.tolist() if hasattr(v, "tolist") else v) for n, v in inputs.items()}
    ours, theirs = [[] for _ in checkouts], []
    for _ in range(ROUNDS):
        for runs, root in zip(ours, checkouts):
            env = dict(peers.ENVIRONMENT, PYTHONPATH=str(root))
            runs.append(json.loads(peers.run([sys.executable, "-c", DIFFCLI, str(path), str(CALLS)], env=env)))
        theirs.append(json.loads(subprocess.run([python_peers, "-c", JAX], input=json.dumps([plain, CALLS]),
                                                capture_output=True, text=True, env=peers.ENVIRONMENT,
                                                check=True).stdout))
    rows = []
    for runs, root in zip(ours, checkouts):
        rows.append({"checkout": checkout_name(root), "inputs": len(runs[0]["wrt"]),
                     "diffcli": peers.spread([o["hessian"] for o in runs]),
                     "ratio": peers.round_ratios([o["hessian"] for o in runs], [t["hessian"] for t in theirs]),
                     "difference": float(np.max(np.abs(np.array(runs[0]["h"]) - np.array(theirs[0]["h"]))))})
    return {"rows": rows, "jax": peers.spread([t["hessian"] for t in theirs]), "load": peers.load(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(["python benchmarks/array_hessian.py", *sys.argv[1:]])}


def _micro(s: dict) -> str:
    return f"{s['median'] * 1e6:,.0f} µs ({s['low'] * 1e6:,.0f}–{s['high'] * 1e6:,.0f})"


def report(r: dict) -> list[str]:
    rows, jax = r["rows"], r["jax"]
    several = len(rows) > 1
    lines = ["### `hessian` of an array program (issue 19): mlp 10 written with arrays", "",
             f"Measured {r['when']} by `{r['command']}`.", "",
             f"genprog's `mlp 10` (x 8, W1 10×8, b1, W2 10×10, b2, v, target) as an array program; "
             f"`Program.hessian()` warm in process against `jax.jit(jax.hessian(f))` warm (float64, one "
             f"thread) of the same function of the {rows[0]['inputs']} numbers; alternating processes, {ROUNDS} "
             f"rounds of {CALLS} calls (CPU time, median call); load average {r['load']}."
             + (" Each checkout ran in the same rounds, against the same JAX runs." if several else ""), "",
             ("| checkout " if several else "") + "| inputs | `Program.hessian()` | `jax.jit(jax.hessian(f))` "
             "| ratio (rounds' range) | largest difference |",
             ("| --- " if several else "") + "| ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append((f"| {row['checkout']} " if several else "")
                     + f"| {row['inputs']} | {_micro(row['diffcli'])} | {_micro(jax)} | "
                     f"**{row['ratio']['median']:.2f}×** ({row['ratio']['low']:.2f}–{row['ratio']['high']:.2f}) | "
                     f"{row['difference']:.2g} |")
    return lines + ["", "Target: ≤ 1×.", ""]


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "diffcli-peers")
    parser.add_argument("--write", action="store_true", help="put the table in RESULTS.md")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of each (more on a busy machine)")
    parser.add_argument("--checkout", type=Path, action="append",
                        help="a diffcli source tree to measure (repeat for several, side by side; default: this one)")
    options = parser.parse_args()
    ROUNDS = options.rounds
    checkouts = [root.resolve() for root in options.checkout or [peers.ROOT]]
    python_peers = peers.peers_python(options.peers)
    with tempfile.TemporaryDirectory() as scratch:
        lines = report(measure(Path(scratch), python_peers, checkouts))
    print("\n".join(lines))
    if options.write:
        begin, end = "<!-- array hessian: begin -->", "<!-- array hessian: end -->"
        text = peers.RESULTS.read_text(encoding="utf-8")
        section = "\n".join([begin, *lines, end])
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: section, text) if begin in text else text + "\n" + section + "\n"
        peers.RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
