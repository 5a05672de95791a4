"""Training with arrays (issue 19): micrograd's moons network, 100 steps of gradient descent, side by
side in one run.

    python benchmarks/train_arrays.py               # measures; rewrites its part of RESULTS.md
    python benchmarks/train_arrays.py --no-write    # prints only
    python benchmarks/train_arrays.py --peers DIR   # PyTorch's environment (made if missing)

The network is samples/moons/moons_mlp_arrays.expr (2-16-16-1 ReLU, the 100 points as the rows of a
matrix, the hinge loss averaged over them plus 1e-4 times the sum of the squared parameters), with
the initial parameters of scripts/make_moons.py, the learning rate 1 - 0.9·k/100.

In process, each contender runs the 100 steps from the same start, alternately, ROUNDS rounds; a
round's figure is the median of REPEATS runs, and the table gives the median of the rounds with the
lowest and highest:
- diffcli: `fit.fit(problem, "gd", ...)` on the loaded program (the array engine's compiled plan,
  one forward and one reverse pass over all the rows per step);
- NumPy by hand: the same forward and backward passes written out;
- PyTorch: `nn.Sequential` of `Linear`s and `ReLU`s, float64, one thread, its autograd and a plain
  SGD update, in an environment this script makes (`pip install torch==2.13.0 numpy`), never a
  diffcli dependency: each round, a process of its own (warmed by one training) runs its REPEATS
  trainings, between diffcli's and NumPy's rounds.
Whole process: CPU seconds of `diffcli fit moons_mlp_arrays.expr ... --method gd` against the scalar
program `diffcli fit moons_mlp.expr --data moons.csv --method gd`. Every contender's final loss is
printed beside its time: they must agree (to rounding) for the timings to compare the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
MOONS = ROOT / "samples" / "moons"
BEGIN, END = "<!-- train-arrays: begin (train_arrays.py rewrites this part) -->", "<!-- train-arrays: end -->"
ROUNDS, REPEATS, STEPS = 7, 5, 100
PARAMETERS = ["W1", "b1", "W2", "b2", "w3", "b3"]
SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TORCH = "torch==2.13.0"

TORCH_LOOP = r"""
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
start = json.load(open(sys.argv[1]))
rounds, repeats, steps = map(int, sys.argv[2:5])
X = torch.tensor(start["X"], dtype=torch.float64)
y = torch.tensor(start["y"], dtype=torch.float64)

def train():
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                                torch.nn.ReLU(), torch.nn.Linear(16, 1)).double()
    with torch.no_grad():
        for layer, (w, b) in zip((model[0], model[2], model[4]), start["layers"]):
            layer.weight.copy_(torch.tensor(w, dtype=torch.float64))
            layer.bias.copy_(torch.tensor(b, dtype=torch.float64))
    parameters = list(model.parameters())
    began = time.perf_counter()
    for k in range(steps):
        score = model(X)[:, 0]
        loss = torch.relu(1 - y * score).mean() + 1e-4 * sum((p * p).sum() for p in parameters)
        model.zero_grad()
        loss.backward()
        rate = 1.0 - 0.9 * k / steps
        with torch.no_grad():
            for p in parameters:
                p -= rate * p.grad
    elapsed = time.perf_counter() - began
    with torch.no_grad():
        score = model(X)[:, 0]
        loss = torch.relu(1 - y * score).mean() + 1e-4 * sum((p * p).sum() for p in parameters)
    return elapsed, float(loss)

train()  # warm
figures = [statistics.median(train()[0] for _ in range(repeats)) for _ in range(rounds)]
print(json.dumps({"rounds": figures, "loss": train()[1], "version": torch.__version__}))
"""


def peers_python(folder: Path) -> str:
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
    if subprocess.run([str(python), "-c", "import torch, numpy"], capture_output=True).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH, "numpy"], check=True)
    return str(python)


def start_values() -> dict:
    """The file's inputs: the data and the initial parameters, as NumPy arrays."""
    from diffcli.program import load

    return {name: np.asarray(value, float) for name, value in load(MOONS / "moons_mlp_arrays.expr").inputs.items()}


def diffcli_trainer():
    from diffcli.commands import fit as fitting
    from diffcli.program import load

    program = load(MOONS / "moons_mlp_arrays.expr")

    def train():
        problem, start, _ = fitting.setup(program, PARAMETERS, {}, data={})
        began = time.perf_counter()
        result = fitting.fit(problem, "gd", start=start, steps=STEPS)
        return time.perf_counter() - began, result.objective

    return train


def numpy_trainer(v: dict):
    """The same network and loss, forward and backward by hand."""
    X, y = v["X"], v["y"]

    def loss_and_gradients(W1, b1, W2, b2, w3, b3):
        z1 = X @ W1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W2.T + b2
        h2 = np.maximum(z2, 0)
        score = h2 @ w3 + b3
        margin = 1 - y * score
        squares = (W1 * W1).sum() + (b1 * b1).sum() + (W2 * W2).sum() + (b2 * b2).sum() + (w3 * w3).sum() + b3 * b3
        loss = np.maximum(margin, 0).mean() + 1e-4 * squares
        d_score = np.where(margin > 0, -y, 0.0) / len(y)
        d_h2 = np.outer(d_score, w3) * (z2 > 0)
        d_h1 = (d_h2 @ W2) * (z1 > 0)
        return loss, [d_h1.T @ X + 2e-4 * W1, d_h1.sum(0) + 2e-4 * b1, d_h2.T @ h1 + 2e-4 * W2,
                      d_h2.sum(0) + 2e-4 * b2, h2.T @ d_score + 2e-4 * w3, d_score.sum() + 2e-4 * b3]

    def train():
        p = [v[name].copy() for name in PARAMETERS]
        began = time.perf_counter()
        for k in range(STEPS):
            _, gradients = loss_and_gradients(*p)
            rate = 1.0 - 0.9 * k / STEPS
            p = [x - rate * g for x, g in zip(p, gradients)]
        elapsed = time.perf_counter() - began
        return elapsed, float(loss_and_gradients(*p)[0])

    return train


def cpu_of(argv) -> float:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=dict(os.environ, **SINGLE))
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {process.stderr.read().decode()}")
    return usage.ru_utime + usage.ru_stime


def spread(values) -> str:
    return f"{statistics.median(values) * 1e3:.1f} ms ({min(values) * 1e3:.1f}–{max(values) * 1e3:.1f})"


def ratio(a, b) -> str:
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "diffcli-torch-peers")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for name, value in SINGLE.items():
        os.environ.setdefault(name, value)
    values = start_values()
    with open(Path(args.peers.parent) / "moons_start.json", "w") as out:
        json.dump({"X": values["X"].tolist(), "y": values["y"].tolist(), "layers": [
            (values["W1"].tolist(), values["b1"].tolist()), (values["W2"].tolist(), values["b2"].tolist()),
            ([values["w3"].tolist()], [float(values["b3"])])]}, out)
    python = peers_python(args.peers)

    def torch_round() -> dict:   # its own process: one round of REPEATS trainings, after a warm one
        done = subprocess.run([python, "-c", TORCH_LOOP, out.name, "1", str(REPEATS), str(STEPS)],
                              capture_output=True, text=True, check=True, env=dict(os.environ, **SINGLE))
        return json.loads(done.stdout)

    ours, by_hand = diffcli_trainer(), numpy_trainer(values)
    ours(), by_hand()  # warm
    rounds = {"diffcli": [], "numpy": [], "torch": []}
    losses = {}
    for _ in range(ROUNDS):   # the three alternately, a round each in turn
        torch = torch_round()
        rounds["torch"] += torch["rounds"]
        losses["torch"] = torch["loss"]
        for name, train in (("diffcli", ours), ("numpy", by_hand)):
            runs = [train() for _ in range(REPEATS)]
            rounds[name].append(statistics.median(t for t, _ in runs))
            losses[name] = runs[-1][1]
    diffcli = [sys.executable, "-m", "diffcli"]
    arrays_cmd = diffcli + ["fit", str(MOONS / "moons_mlp_arrays.expr"), "--wrt", ",".join(PARAMETERS),
                            "--method", "gd", "--steps", str(STEPS), "--json"]
    scalar_cmd = diffcli + ["fit", str(MOONS / "moons_mlp.expr"), "--data", str(MOONS / "moons.csv"),
                            "--method", "gd", "--steps", str(STEPS), "--json"]
    whole = {"arrays": [], "scalar": []}
    for _ in range(3):
        whole["arrays"].append(cpu_of(arrays_cmd))
        whole["scalar"].append(cpu_of(scalar_cmd))

    load = os.getloadavg()[0]
    lines = [
        "## Training with arrays (issue 19)", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/train_arrays.py` "
        f"(load average {load:.2f}); micrograd's moons network (samples/moons/moons_mlp_arrays.expr), "
        f"{STEPS} steps of gradient descent on the 100 rows, the same start for all. In process: the median "
        f"of {ROUNDS} rounds (lowest–highest), each the median of {REPEATS} trainings; one thread each.", "",
        "| in process, 100 steps | time | final loss | diffcli ÷ it |", "| --- | ---: | ---: | ---: |",
        f"| diffcli `fit.fit(problem, \"gd\")`, the array engine | {spread(rounds['diffcli'])} | "
        f"{losses['diffcli']:.15g} | |",
        f"| PyTorch {torch['version']} loop, nn.Sequential, float64 | {spread(rounds['torch'])} | "
        f"{losses['torch']:.15g} | {ratio(rounds['diffcli'], rounds['torch'])} (target ≤ 1×) |",
        f"| NumPy by hand | {spread(rounds['numpy'])} | {losses['numpy']:.15g} | "
        f"{ratio(rounds['diffcli'], rounds['numpy'])} (target ≤ 2×) |", "",
        "| whole process, CPU | seconds (lowest–highest of 3) |", "| --- | ---: |",
        f"| `diffcli fit moons_mlp_arrays.expr --wrt W1,b1,W2,b2,w3,b3 --method gd` | "
        f"{statistics.median(whole['arrays']):.2f} ({min(whole['arrays']):.2f}–{max(whole['arrays']):.2f}) |",
        f"| `diffcli fit moons_mlp.expr --data moons.csv --method gd` (scalar) | "
        f"{statistics.median(whole['scalar']):.2f} ({min(whole['scalar']):.2f}–{max(whole['scalar']):.2f}) |", "",
        f"Arrays ÷ scalar, whole process: {ratio(whole['arrays'], whole['scalar'])} (target ≤ 0.5×).", "",
        "diffcli runs the program's compiled plan (diffcli/interpreters/array_plan.py): the forward and "
        "reverse passes written once into one Python function, the same NumPy calls on the same operands "
        "as the interpreter (the same bits: the final losses agree to the last digit), only the "
        "parameters' gradients computed, and values checked for NaN and infinity only where one could "
        "vanish (relu's arguments, the adjoints entering matrix products, the loss, the flattened "
        "gradient). About 90 NumPy calls a step, against about 55 in the loop by hand (which checks "
        "nothing); PyTorch's loop pays its dispatch and autograd per operation in C++.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        results = RESULTS.read_text()
        block = f"{BEGIN}\n{text}\n{END}"
        if BEGIN in results:
            results = results[:results.index(BEGIN)] + block + results[results.index(END) + len(END):]
        else:
            results = results.rstrip("\n") + "\n" + block + "\n"
        RESULTS.write_text(results)


if __name__ == "__main__":
    main()
