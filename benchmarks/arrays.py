"""The arrays issue's targets (issue 18), measured side by side in one run, one thread.

    python benchmarks/arrays.py                 # every section; rewrites its part of RESULTS.md
    python benchmarks/arrays.py --only grad     # some sections (grad, load, memory, batch); prints only
    python benchmarks/arrays.py --peers DIR     # where PyTorch's environment is (made if missing)

1. `grad`: `Program.grad` of the issue's program (W 512×512, two products, tanh) in process,
   against the same forward and backward written by hand in NumPy (in the same process, calls
   alternating) and against PyTorch eager (float64, `loss.backward()`), which runs in its own
   environment (`python -m venv DIR`, `pip install torch==2.13.0 numpy`; never diffcli's), the two
   processes alternating round by round.
2. `load`: `diffcli.load` of the moons network written with arrays (parse, shapes, graph: the
   weights as literals, the same initial values as the scalar file) against loading today's scalar
   file (`scripts/make_moons.py`), alternating.
3. `memory`: the peak resident memory of a process that runs `Program.grad` on a 2000×2000 matrix
   input (the same program as in 1), less that of the same process without the arrays (the
   interpreter's baseline: Python, NumPy, diffcli, the program parsed), over the arrays' bytes.
4. `batch`: `array_batch.run(..., reduce="mean")`, the moons network's mean gradient over 10,000
   rows, against the same by hand in NumPy (an (n, 2) matrix through the layers).

Each round's figure is the median of many calls; the table gives the median of the rounds and
their spread (lowest and highest round), and the machine's load average.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from pathlib import Path

SINGLE = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(SINGLE)  # before NumPy is imported

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BEGIN, END = "<!-- arrays: begin -->", "<!-- arrays: end -->"
ROUNDS = 7
ENVIRONMENT = dict(os.environ, **SINGLE, PYTHONPATH=str(ROOT))

PROGRAM = """W = uniform({n}, {n}, seed=1)
v = uniform({n}, seed=2)
h = tanh(W @ v)
loss = sum(tanh(W @ h)^2)
"""


def by_hand(W, v):
    """The program's value and gradients, written out in NumPy."""
    h = np.tanh(W @ v)
    t = np.tanh(W @ h)
    loss = np.sum(t * t)
    gb = 2 * t * (1 - t * t)
    gW = np.outer(gb, h)
    ga = (W.T @ gb) * (1 - h * h)
    gW += np.outer(ga, v)
    return loss, gW, W.T @ ga


def per_call(f, seconds=0.2) -> float:
    """The median time of one call, over as many calls as fit in about `seconds`."""
    f()
    start = time.perf_counter()
    f()
    once = max(time.perf_counter() - start, 1e-7)
    times = []
    for _ in range(max(5, int(seconds / once))):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def spread(values, scale=1e3, unit="ms") -> str:
    return f"{statistics.median(values) * scale:.3g} {unit} ({min(values) * scale:.3g}–{max(values) * scale:.3g})"


def ratio_text(a, b) -> str:
    ratios = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})", statistics.median(ratios)


# ---------------------------------------------------------------- PyTorch, in its own environment

TORCH_ROUND = textwrap.dedent("""
    import statistics, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    W0, v0 = np.load(sys.argv[1]), np.load(sys.argv[2])
    W, v = torch.tensor(W0, requires_grad=True), torch.tensor(v0, requires_grad=True)
    def step():
        W.grad = v.grad = None
        h = torch.tanh(W @ v)
        loss = (torch.tanh(W @ h) ** 2).sum()
        loss.backward()
        return loss, W.grad, v.grad
    step()
    if sys.argv[3] == "check":
        loss, gW, gv = step()
        np.save(sys.argv[4], np.concatenate([[loss.item()], gW.numpy().ravel(), gv.numpy().ravel()]))
        sys.exit()
    times = []
    for _ in range(int(sys.argv[3])):
        start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
    print(statistics.median(times))
""")


def torch_python(folder: Path) -> str:
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
    if subprocess.run([str(python), "-c", "import torch, numpy"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy"], check=True)
    return str(python)


def grad_section(peers: Path) -> list[str]:
    import diffcli

    program = diffcli.parse(PROGRAM.format(n=512))
    W, v = program.inputs["W"], program.inputs["v"]
    result = program.grad()
    loss, gW, gv = by_hand(W, v)
    assert np.isclose(result.value, loss) and np.allclose(result.gradients["W"], gW) \
        and np.allclose(result.gradients["v"], gv), "diffcli and NumPy by hand disagree"
    python = torch_python(peers)
    with tempfile.TemporaryDirectory() as folder:
        script, wf, vf, check = (Path(folder) / name for name in ("round.py", "W.npy", "v.npy", "check.npy"))
        script.write_text(TORCH_ROUND)
        np.save(wf, W)
        np.save(vf, v)
        subprocess.run([python, str(script), str(wf), str(vf), "check", str(check)], check=True, env=ENVIRONMENT)
        theirs = np.load(check)
        assert np.isclose(theirs[0], loss) and np.allclose(theirs[1:1 + W.size], gW.ravel()), \
            "PyTorch and NumPy by hand disagree"
        ours, hand, torch = [], [], []
        for _ in range(ROUNDS):
            ours.append(per_call(lambda: program.grad()))
            hand.append(per_call(lambda: by_hand(W, v)))
            calls = max(20, int(0.2 / max(hand[-1], 1e-6)))
            out = subprocess.run([python, str(script), str(wf), str(vf), str(calls)], check=True,
                                 capture_output=True, text=True, env=ENVIRONMENT).stdout
            torch.append(float(out))
    to_hand, r1 = ratio_text(ours, hand)
    to_torch, r2 = ratio_text(ours, torch)
    return [
        "| `Program.grad`, W 512×512 (issue's program) | " + spread(ours) + " | NumPy by hand: " + spread(hand)
        + f" | {to_hand} | ≤ 1.5× | {'met' if r1 <= 1.5 else '**not met**'} |",
        "| the same | " + spread(ours) + " | PyTorch 2.13 eager (float64): " + spread(torch)
        + f" | {to_torch} | ≤ 1× | {'met' if r2 <= 1 else '**not met**'} |",
    ]


# ---------------------------------------------------------------- loading the moons network

def moons_array_source() -> str:
    """The scalar moons file's network and loss, written with arrays, with the same initial values."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_moons

    layers = make_moons.initial_parameters()
    matrices = [np.array([w for w, _ in layer]) for layer in layers]
    biases = [np.array([b for _, b in layer]) for layer in layers]
    lines = ["# the moons network of scripts/make_moons.py, with arrays", "x1 = 0", "x2 = 0", "y = 1"]
    for k, (W, b) in enumerate(zip(matrices, biases), 1):
        lines.append(f"W{k} = {[[repr(float(e)) for e in row] for row in W]}".replace("'", ""))
        lines.append(f"b{k} = {[repr(float(e)) for e in b]}".replace("'", ""))
    lines += ["h1 = relu(W1 @ [x1, x2] + b1)", "h2 = relu(W2 @ h1 + b2)", "score = (W3 @ h2 + b3)[0]",
              "accuracy = (1 + sign(y*score))/2",
              "l2 = " + " + ".join(f"sum(W{k}^2) + sum(b{k}^2)" for k in (1, 2, 3)),
              "loss = relu(1 - y*score) + 0.0001*l2"]
    return "\n".join(lines) + "\n"


def load_section() -> list[str]:
    import diffcli

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_moons.py"), folder], check=True,
                       capture_output=True, env=ENVIRONMENT)
        scalar_file = Path(folder) / "moons_mlp.expr"
        array_file = Path(folder) / "moons_arrays.expr"
        array_file.write_text(moons_array_source())
        scalar, arrays = diffcli.load(scalar_file), diffcli.load(array_file)
        point = {"x1": 0.3, "x2": -0.2, "y": 1.0}
        a, s = arrays.grad(point), scalar.grad(point)
        assert np.isclose(a.value, s.value) and np.isclose(a.gradients["W2"][3, 5], s.gradients["w2_3_5"]), \
            "the array network is not the scalar one"
        ours, theirs = [], []
        for _ in range(ROUNDS):
            ours.append(per_call(lambda: diffcli.load(array_file)))
            theirs.append(per_call(lambda: diffcli.load(scalar_file), 0.5))
    text, r = ratio_text(ours, theirs)
    return [f"| loading the moons network with arrays ({len(arrays.graph)} nodes) | " + spread(ours)
            + f" | the scalar file ({len(scalar.graph):,} nodes): " + spread(theirs)
            + f" | {text} | ≤ 0.1× | {'met' if r <= 0.1 else '**not met**'} |"]


# ---------------------------------------------------------------- memory

MEMORY = textwrap.dedent("""
    import resource, sys
    import numpy as np, diffcli
    program = diffcli.parse("h = tanh(W @ v)\\nloss = sum(tanh(W @ h)^2)")
    if sys.argv[1] == "grad":
        rng = np.random.default_rng(1)
        W, v = rng.uniform(-1, 1, (2000, 2000)), rng.uniform(-1, 1, 2000)
        result = program.grad({"W": W, "v": v})
        assert result.gradients["W"].shape == (2000, 2000)
        print(W.nbytes + v.nbytes)
    else:
        print(0)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
""")


def memory_section() -> list[str]:
    peaks, bases, size = [], [], 0
    for _ in range(3):
        for mode in ("grad", "baseline"):
            out = subprocess.run([sys.executable, "-c", MEMORY, mode], check=True, capture_output=True,
                                 text=True, env=ENVIRONMENT).stdout.split()
            if mode == "grad":
                size = int(out[0])
                peaks.append(int(out[1]))
            else:
                bases.append(int(out[1]))
    extra = [(p - b) / size for p, b in zip(peaks, bases)]
    m = statistics.median(extra)
    mib = lambda x: f"{x / 2**20:.0f} MiB"
    return [f"| memory of `Program.grad`, W a 2000×2000 input ({mib(size)} of arrays) | peak "
            f"{mib(statistics.median(peaks))} | baseline {mib(statistics.median(bases))} | "
            f"{m:.2f}× the arrays ({min(extra):.2f}–{max(extra):.2f}) | ≤ 3× | {'met' if m <= 3 else '**not met**'} |"]


# ---------------------------------------------------------------- many points

def batch_section() -> list[str]:
    import diffcli
    from diffcli.interpreters import array_batch

    program = diffcli.parse(moons_array_source().replace("x1 = 0\nx2 = 0\n", "x = [0, 0]\n")
                            .replace("[x1, x2]", "x"))
    rng = np.random.default_rng(5)
    n = 10_000
    X, Y = rng.normal(size=(n, 2)), np.sign(rng.normal(size=n))
    P = {k: program.inputs[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3")}

    def numpy_mean():
        a1 = X @ P["W1"].T + P["b1"]
        h1 = np.maximum(a1, 0)
        a2 = h1 @ P["W2"].T + P["b2"]
        h2 = np.maximum(a2, 0)
        score = h2 @ P["W3"][0] + P["b3"][0]
        margin = 1 - Y * score
        gs = np.where(margin > 0, -Y, 0.0) / n
        g2 = np.outer(gs, P["W3"][0]) * (a2 > 0)
        g1 = (g2 @ P["W2"]) * (a1 > 0)
        grads = {"W3": (gs @ h2)[None, :], "b3": np.array([gs.sum()]), "W2": g2.T @ h1, "b2": g2.sum(0),
                 "W1": g1.T @ X, "b1": g1.sum(0)}
        for k, value in P.items():
            grads[k] = grads[k] + 2e-4 * value
        return np.mean(np.maximum(margin, 0)), grads

    def ours():
        return array_batch.run(program, {"x": X, "y": Y}, reduce="mean")

    mine, hand = ours(), numpy_mean()
    for k in P:
        assert np.allclose(mine.gradients[k], hand[1][k]), k
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(per_call(ours))
        b.append(per_call(numpy_mean))
    text, _ = ratio_text(a, b)
    return [f"| `array_batch.run(reduce=\"mean\")`, the moons network at {n:,} points | " + spread(a)
            + " | NumPy by hand: " + spread(b) + f" | {text} | - | - |"]


SECTIONS = {"grad": grad_section, "load": load_section, "memory": memory_section, "batch": batch_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "diffcli-peers-torch")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    rows = []
    for name in chosen:
        rows += SECTIONS[name](args.peers) if name == "grad" else SECTIONS[name]()
        print("\n".join(rows[-2:] if name == "grad" else rows[-1:]), flush=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    block = [BEGIN, "## Arrays (issue 18)", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/arrays.py` "
             f"(one thread; {ROUNDS} rounds, each the median of many calls; the median round, and the "
             f"lowest and highest in parentheses; load average at the end: {load}).", "",
             "| what | diffcli | against | ratio | target | met? |", "| --- | ---: | ---: | ---: | --- | --- |",
             *rows, "", END]
    print("\n".join(block))
    if not args.only:
        text = RESULTS.read_text()
        if BEGIN in text:
            text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: "\n".join(block), text, flags=re.S)
        else:
            text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
