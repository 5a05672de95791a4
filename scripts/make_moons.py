"""micrograd's demo as diffcli files: the two-moons data and a 2-16-16-1 ReLU network.

    python scripts/make_moons.py samples/moons # writes samples/moons/moons.csv and samples/moons/moons_mlp.expr
    diffcli fit samples/moons/moons_mlp.expr --data samples/moons/moons.csv --method gd --steps 100 --report accuracy

moons.csv: 100 points of scikit-learn's make_moons(noise=0.1), made the same way without scikit-learn
(two half circles, shuffled, Gaussian noise), from a fixed seed; the labels are -1 and 1, as in the
demo. moons_mlp.expr: micrograd's MLP(2, [16, 16, 1]) (ReLU on the hidden layers, a linear output),
its 337 parameters as literal inputs with seeded initial values (uniform on [-1, 1] for weights, 0
for biases, as micrograd's Neuron), and the demo's loss: the max-margin (hinge) loss of one row plus
1e-4 times the sum of the squared parameters. The mean over the rows that `diffcli fit --data`
minimizes is then exactly the demo's total loss; `accuracy` is 1 for a row classified right.

--json writes the same data and initial parameters as JSON for benchmarks/bench.py's micrograd run.
moons_mlp_arrays.expr is the same network, the same initial parameters and the same loss as an array
program of a dozen statements: the 100 points as a matrix X (one per row), the labels as a vector,
and the loss averaged over the rows in the file (so `grad` gives the gradient of the total loss that
`fit --data` minimizes on the scalar version). moons_mlp_rows.expr is the same array network for one
row, for `fit --data moons.csv` (the batched array engine runs all the rows at once).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

LAYERS = (2, 16, 16, 1)
ALPHA = 1e-4


def make_moons(n: int = 100, noise: float = 0.1, seed: int = 1337) -> tuple[np.ndarray, np.ndarray]:
    """What sklearn.datasets.make_moons does: an upper half circle and a lower one shifted right."""
    rng = np.random.RandomState(seed)
    n_out, n_in = n // 2, n - n // 2
    outer = np.linspace(0, math.pi, n_out)
    inner = np.linspace(0, math.pi, n_in)
    x = np.concatenate([np.cos(outer), 1 - np.cos(inner)])
    y = np.concatenate([np.sin(outer), 1 - np.sin(inner) - 0.5])
    points = np.column_stack([x, y])
    labels = np.concatenate([np.zeros(n_out), np.ones(n_in)])
    order = rng.permutation(n)
    points, labels = points[order], labels[order]
    points += rng.normal(scale=noise, size=points.shape)
    return points, labels * 2 - 1


def initial_parameters(seed: int = 1337) -> list[list[tuple[list[float], float]]]:
    """Per layer, per neuron: (weights, bias); weights uniform on [-1, 1), biases 0 (micrograd)."""
    rng = np.random.RandomState(seed + 1)
    return [[(rng.uniform(-1, 1, n_in).tolist(), 0.0) for _ in range(n_out)]
            for n_in, n_out in zip(LAYERS, LAYERS[1:])]


def network_source(layers) -> str:
    lines = ["# micrograd's demo: a 2-16-16-1 ReLU network on the two-moons data (scripts/make_moons.py)",
             "# Inputs x1, x2 and the label y (-1 or 1) come from each row of moons.csv. Train it with",
             "#   diffcli fit moons_mlp.expr --data moons.csv --method gd --steps 100 --report accuracy",
             ""]
    names = []  # every parameter, for the L2 term
    for layer, neurons in enumerate(layers, 1):
        lines.append(f"# layer {layer}: {len(neurons)} neurons of {len(neurons[0][0])} inputs")
        for j, (weights, bias) in enumerate(neurons):
            for i, w in enumerate(weights):
                lines.append(f"w{layer}_{j}_{i} = {w!r}")
                names.append(f"w{layer}_{j}_{i}")
            lines.append(f"b{layer}_{j} = {bias!r}")
            names.append(f"b{layer}_{j}")
    lines.append("")
    inputs = ["x1", "x2"]
    for layer, neurons in enumerate(layers, 1):
        last = layer == len(layers)
        outputs = []
        for j, (weights, _) in enumerate(neurons):
            terms = " + ".join(f"w{layer}_{j}_{i}*{x}" for i, x in enumerate(inputs))
            name = "score" if last else f"h{layer}_{j}"
            body = f"{terms} + b{layer}_{j}"
            lines.append(f"{name} = {body}" if last else f"{name} = relu({body})")
            outputs.append(name)
        inputs = outputs
    lines += [
        "",
        "accuracy = (1 + sign(y*score))/2   # 1 when the row is classified right",
        "# the demo's L2 term: 1e-4 times the sum of every parameter squared",
        "l2 = " + " + ".join(f"{n}^2" for n in names),
        "loss = relu(1 - y*score) + " + repr(ALPHA) + "*l2",
        "",
    ]
    return "\n".join(lines)


def matrix(rows) -> str:
    """A matrix literal, one row a line."""
    return "[" + ",\n      ".join("[" + ", ".join(repr(x) for x in row) + "]" for row in rows) + "]"


def _weights_and_biases(layers):
    return [([w for w, _ in layer], [b for _, b in layer]) for layer in layers]


def array_source(layers, points, labels) -> str:
    """The network as an array program: W1 16×2, W2 16×16, W3 16 (one output), over every row of X."""
    (w1, b1), (w2, b2), (w3, b3) = _weights_and_biases(layers)
    return "\n".join([
        "# micrograd's demo as arrays: a 2-16-16-1 ReLU network on the two-moons data (scripts/make_moons.py)",
        "# the same initial parameters as moons_mlp.expr; every point at once, as the rows of X",
        f"X = {matrix(points.tolist())}",
        f"y = {[int(v) for v in labels.tolist()]}",
        f"W1 = {matrix(w1)}",
        f"b1 = {b1!r}",
        f"W2 = {matrix(w2)}",
        f"b2 = {b2!r}",
        f"w3 = {w3[0]!r}",
        f"b3 = {b3[0]!r}",
        "H1 = relu(X @ transpose(W1) + b1)",
        "H2 = relu(H1 @ transpose(W2) + b2)",
        "score = H2 @ w3 + b3",
        "accuracy = mean((1 + sign(y*score))/2)",
        f"loss = mean(relu(1 - y*score)) + {ALPHA!r}*(sum(W1^2) + sum(b1^2) + sum(W2^2) + sum(b2^2) + sum(w3^2) + b3^2)",
        ""])


def rows_source(layers) -> str:
    """The network as an array program of one row (x1, x2, y from moons.csv), for `fit --data`:
    the same parameters as arrays, the rows batched by the engine."""
    (w1, b1), (w2, b2), (w3, b3) = _weights_and_biases(layers)
    return "\n".join([
        "# micrograd's demo as arrays, a row at a time: x1, x2 and the label y come from each row of moons.csv",
        "#   diffcli fit moons_mlp_rows.expr --data moons.csv --wrt W1,b1,W2,b2,w3,b3 --method gd --report accuracy",
        "# the same initial parameters as moons_mlp.expr (scripts/make_moons.py)",
        f"W1 = {matrix(w1)}",
        f"b1 = {b1!r}",
        f"W2 = {matrix(w2)}",
        f"b2 = {b2!r}",
        f"w3 = {w3[0]!r}",
        f"b3 = {b3[0]!r}",
        "x = [x1, x2]",
        "h1 = relu(W1 @ x + b1)",
        "h2 = relu(W2 @ h1 + b2)",
        "score = w3 @ h2 + b3",
        "accuracy = (1 + sign(y*score))/2   # 1 when the row is classified right",
        f"loss = relu(1 - y*score) + {ALPHA!r}*(sum(W1^2) + sum(b1^2) + sum(W2^2) + sum(b2^2) + sum(w3^2) + b3^2)",
        ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--json", action="store_true", help="also write moons.json (data and parameters)")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    points, labels = make_moons()
    layers = initial_parameters()
    with open(args.outdir / "moons.csv", "w") as out:
        out.write("x1,x2,y\n")
        for (a, b), label in zip(points.tolist(), labels.tolist()):
            out.write(f"{a!r},{b!r},{int(label)}\n")
    (args.outdir / "moons_mlp.expr").write_text(network_source(layers))
    (args.outdir / "moons_mlp_arrays.expr").write_text(array_source(layers, points, labels))
    (args.outdir / "moons_mlp_rows.expr").write_text(rows_source(layers))
    if args.json:
        (args.outdir / "moons.json").write_text(json.dumps({
            "x": points.tolist(), "y": labels.tolist(), "layers": layers}))


if __name__ == "__main__":
    main()
