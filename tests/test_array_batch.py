"""The batched array engine (interpreters/array_batch.py) against the one-point array engine, point
by point, and against NumPy by hand; per-point failures; the mean/sum of gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffcli
from diffcli.interpreters import array_batch

# expressions over A (m×n), v (n), u (m), s (scalar): each a vector, matrix or scalar of known shape
PIECES = {
    "vector_n": ["v", "A @ u * 0 + v" , "tanh(u @ A)", "softmax(v)", "sum(A, axis=0)", "max(A, axis=0)",
                 "transpose(A)[:, 0] * s", "A[0] - v", "logsumexp(A, axis=0)", "[v[0], s, u[0]][0] + v",
                 "min(v, 0.3)", "mean(outer(u, v), axis=0)", "sigmoid(v) * s"],
    "vector_m": ["u", "A @ v", "sin(A @ tanh(v))", "softmax(A @ v)", "sum(A * v, axis=1)", "u * norm(v)",
                 "transpose(A) @ v * 0 + u", "mean(A, axis=1) + u", "exp(u) / sum(exp(u))", "u[0:1] + u"],
    "scalar": ["s", "dot(v, v)", "sum(A)", "norm(u)", "max(u)", "logsumexp(v)", "u @ A @ v", "A[0, 0]",
               "mean(tanh(A)) * s", "softplus(s) + min(v)", "sum(softmax(A, axis=1)^2)"],
}
# (`A @ u * 0 + v` and friends are shape errors unless m = n: only well-shaped programs are kept)


@st.composite
def programs(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lines = [f"A = {np.round(np.linspace(-1, 1, m * n), 3).reshape(m, n).tolist()}",
             f"v = {np.round(np.linspace(0.5, -0.4, n), 3).tolist()}", f"u = {np.round(np.linspace(-0.3, 0.7, m), 3).tolist()}",
             "s = 0.7"]
    names = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(PIECES)))
        lines.append(f"t{k} = {draw(st.sampled_from(PIECES[kind]))}")
        names.append(f"t{k}")
    lines.append(f"y = sum({names[0]}^2) + "
                 + " + ".join(f"0.5 * sum(sin({t}))" for t in names))
    return "\n".join(lines), m, n, draw(st.sets(st.sampled_from(["A", "v", "u", "s"]), min_size=1, max_size=4)), \
        draw(st.integers(1, 4)), draw(st.integers(0, 2**31))


def _parse(text):
    try:
        return diffcli.parse(text)
    except diffcli.DiffcliError as error:
        assert error.kind == "shape", error.message
        return None


@settings(max_examples=60, deadline=None)
@given(programs())
def test_batched_equals_the_one_point_engine_at_every_point(case):
    text, m, n, varying, count, seed = case
    program = _parse(text)
    if program is None:
        return
    rng = np.random.default_rng(seed)
    shapes = {"A": (m, n), "v": (n,), "u": (m,), "s": ()}
    points = {name: rng.uniform(-1, 1, (count,) + shapes[name]) for name in varying}
    result = array_batch.run(program, points, all_names=True)
    summed = array_batch.run(program, points, reduce="sum")
    assert not result.failed.any()
    for k in range(count):
        one = program.grad({name: column[k] for name, column in points.items()})
        assert result.value[k] == pytest.approx(one.value, rel=1e-12, abs=1e-12)
        for name in program.names:
            np.testing.assert_allclose(result.gradients[name][k], one.gradients[name], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(result.values[name][k], one.values[name], rtol=1e-12, atol=1e-12)
    for name in shapes:
        np.testing.assert_allclose(summed.gradients[name], result.gradients[name].sum(axis=0), rtol=1e-10, atol=1e-11)


def test_a_two_layer_network_against_numpy_by_hand():
    program = diffcli.parse("W1 = uniform(4, 3, seed=1)\nb1 = zeros(4)\nW2 = uniform(2, 4, seed=2)\n"
                            "x = [0, 0, 0]\nt = [0, 1]\nh = tanh(W1 @ x + b1)\nz = W2 @ h\n"
                            "loss = logsumexp(z) - dot(t, z)")
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(50, 3)), np.eye(2)[rng.integers(0, 2, 50)]
    W1, W2 = program.inputs["W1"], program.inputs["W2"]
    H = np.tanh(X @ W1.T)
    Z = H @ W2.T
    top = Z.max(axis=1, keepdims=True)
    loss = top[:, 0] + np.log(np.exp(Z - top).sum(axis=1)) - (T * Z).sum(axis=1)
    dZ = np.exp(Z - top) / np.exp(Z - top).sum(axis=1, keepdims=True) - T
    dH = dZ @ W2 * (1 - H**2)
    mean = array_batch.run(program, {"x": X, "t": T}, reduce="mean")
    each = array_batch.run(program, {"x": X, "t": T})
    np.testing.assert_allclose(each.value, loss, rtol=1e-12)
    np.testing.assert_allclose(mean.gradients["W2"], dZ.T @ H / 50, rtol=1e-11)
    np.testing.assert_allclose(mean.gradients["W1"], dH.T @ X / 50, rtol=1e-11)
    np.testing.assert_allclose(each.gradients["x"], dH @ W1, rtol=1e-11)
    np.testing.assert_allclose(each.gradients["W1"], dH[:, :, None] * X[:, None, :], rtol=1e-11)


def test_a_failing_point_fails_alone_with_the_one_point_error():
    program = diffcli.parse("x = [1, 2, 3, 4]\nw = 2\ny = sum(w * log(x))")
    points = {"x": np.array([[1, 2, 3, 4], [1, 2, 3, -0.2], [1, 1, 1, 1.0]])}
    result = array_batch.run(program, points)
    assert result.failed.tolist() == [False, True, False]
    assert "`log`" in result.errors[1].message and "-0.2" in result.errors[1].message
    assert "x[3]" in result.errors[1].message and result.errors[1].kind == "domain"
    assert np.isnan(result.gradients["x"][1]).all() and np.isfinite(result.gradients["x"][[0, 2]]).all()
    mean = array_batch.run(program, points, reduce="mean")
    assert mean.failed.tolist() == [False, True, False]
    assert mean.gradients["w"] == pytest.approx((np.log(points["x"][0]).sum() + 0) / 2)
    np.testing.assert_allclose(mean.gradients["x"], (2 / points["x"][0] + 2 / points["x"][2]) / 2)


def test_a_derivative_that_does_not_exist_fails_its_point():
    program = diffcli.parse("x = [1, 2]\ny = norm(x)")
    result = array_batch.run(program, {"x": np.array([[3.0, 4.0], [0.0, 0.0]])})
    assert result.failed.tolist() == [False, True]
    assert "norm" in result.errors[1].message
    np.testing.assert_allclose(result.gradients["x"][0], [0.6, 0.8])


def test_inputs_fixed_and_checked_as_grad_checks_them():
    program = diffcli.parse("W = [[1, 2], [3, 4]]\nx = [0, 0]\ny = sum(W @ x)")
    result = array_batch.run(program, {"x": np.ones((3, 2))}, fixed={"W": np.eye(2)})
    np.testing.assert_allclose(result.value, [2, 2, 2])
    np.testing.assert_allclose(result.gradients["W"], np.ones((3, 2, 2)))
    with pytest.raises(diffcli.DiffcliError) as error:
        array_batch.run(program, {"x": np.ones((3, 3))})
    assert error.value.kind == "input"
    with pytest.raises(diffcli.DiffcliError) as error:
        array_batch.run(program, {"x": np.ones((3, 2))}, of="Wx")
    assert error.value.kind == "input"


def test_points_are_taken_in_passes_of_bounded_size(monkeypatch):
    monkeypatch.setattr(array_batch, "BUDGET", 500)
    program = diffcli.parse("W = uniform(10, 10, seed=1)\nx = zeros(10)\ny = sum(tanh(W @ x)^2)")
    X = np.random.default_rng(1).normal(size=(40, 10))
    whole = array_batch.run(program, {"x": X}, reduce="mean")
    assert array_batch.points_per_pass(program.graph, [True] * len(program.graph), True) == 1
    H = np.tanh(X @ program.inputs["W"].T)
    np.testing.assert_allclose(whole.gradients["W"], ((2 * H * (1 - H**2)).T @ X) / 40, rtol=1e-11)


def test_the_docstring_examples():
    import doctest

    assert doctest.testmod(array_batch).failed == 0


# ---------------------------------------------------------------- --sweep and --points on array programs

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from diffcli.cli import app  # noqa: E402

NET = "W = [[1, 2], [3, 4]]\nx = [0, 0]\na = 0.5\ny = sum(log(a + W @ x))\n"


def cli(tmp_path, *arguments, program=NET, files=None):
    path = tmp_path / "net.expr"
    path.write_text(program)
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    return CliRunner().invoke(app, [arguments[0], str(path), *[a.replace("@", str(tmp_path) + "/") for a in arguments[1:]]])


def _one(x, a=0.5, W=np.array([[1.0, 2.0], [3.0, 4.0]])):
    return diffcli.parse(NET).grad({"x": np.array(x, float), "a": a, "W": W})


def test_csv_element_columns_in_and_out(tmp_path):
    done = cli(tmp_path, "grad", "--points", "@p.csv", "--csv",
               files={"p.csv": 'x[0],x[1],"W[0,0]","W[0,1]","W[1,0]","W[1,1]"\n0.1,0.2,1,2,3,4\n-1,-2,1,2,3,4\n1,1,2,0,0,2\n'})
    assert done.exit_code == 1  # point 1 fails
    lines = done.stdout.splitlines()
    assert lines[0] == ('"W[0,0]","W[0,1]","W[1,0]","W[1,1]",x[0],x[1],a,y,"dy/dW[0,0]","dy/dW[0,1]","dy/dW[1,0]",'
                        '"dy/dW[1,1]",dy/dx[0],dy/dx[1],dy/da,error')
    row = [float(c) for c in lines[1].split(",")[:-1]]
    one = _one([0.1, 0.2])
    assert row[7] == one.value and row[8:12] == one.gradients["W"].ravel().tolist()
    assert row[12:14] == one.gradients["x"].tolist() and row[14] == one.gradients["a"]
    assert "`log` of -4.5 at (a + W @ x)[0]" in lines[2]
    third = [float(c) for c in lines[3].split(",")[:-1]]
    assert third[:4] == [2, 0, 0, 2] and third[7] == _one([1, 1], W=np.array([[2.0, 0], [0, 2]])).value


def test_json_lines_arrays_in_and_out_and_a_wrong_shape_fails_alone(tmp_path):
    done = cli(tmp_path, "grad", "--points", "@p.jsonl", "--json",
               files={"p.jsonl": '{"x": [0.1, 0.2]}\n{"x": [1, 2, 3]}\n{"x": [1, 1]}\n'})
    assert done.exit_code == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows[0]["inputs"]["W"] == [[1.0, 2.0], [3.0, 4.0]] and rows[0]["inputs"]["x"] == [0.1, 0.2]
    assert rows[0]["gradients"]["W"] == _one([0.1, 0.2]).gradients["W"].tolist()
    assert rows[1]["error"]["kind"] == "input" and "vector of 3" in rows[1]["error"]["message"]
    assert rows[2]["value"] == _one([1, 1]).value
    assert json.loads(done.stderr)["error"]["failed"] == 1


def test_a_point_of_the_wrong_shape_shows_its_inputs_as_given(tmp_path):
    """The failed point's inputs were null in JSON (a, W and x) and 0 in the table and CSV: now
    JSON has x as written and the others as used; the table and CSV leave x's cells empty (the
    value does not fit them) and show a and W as the other points do."""
    files = {"p.jsonl": '{"x": [0.1, 0.2], "a": 1}\n{"x": [7, 8, 9], "a": 2}\n{"x": [1, 1], "a": 3}\n'}
    rows = [json.loads(line) for line in cli(tmp_path, "grad", "--points", "@p.jsonl", "--json", files=files).stdout.splitlines()]
    assert rows[1]["inputs"] == {**rows[0]["inputs"], "x": [7.0, 8.0, 9.0], "a": 2.0} and "error" in rows[1]
    given = list(csv.DictReader(io.StringIO(cli(tmp_path, "grad", "--points", "@p.jsonl", "--csv", files=files).stdout)))[1]
    assert given["x[0]"] == given["x[1]"] == "" and given["a"] == "2.0" and given["W[0,0]"] == "1.0"
    from conftest import run_diffcli

    table = run_diffcli("grad", tmp_path / "net.expr", "--points", tmp_path / "p.jsonl", env={"COLUMNS": "400"}).stdout_text
    row = next(line for line in table.splitlines() if line.startswith("│") and line.split("│")[1].strip() == "1")
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    names = [cell.strip() for cell in next(line for line in table.splitlines() if line.startswith("┃")).split("┃")[1:-1]]
    shown = dict(zip(names, cells))
    assert shown["x[0]"] == shown["x[1]"] == "" and shown["a"] == "2" and "vector of 3" in shown["error"]


def test_sweeps_over_a_scalar_of_an_array_program_and_all(tmp_path):
    done = cli(tmp_path, "grad", "--sweep", "a=1:2:3", "--all", "--json")
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["inputs"]["a"] for r in rows] == [1.0, 1.5, 2.0]
    assert rows[1]["values"]["x"] == [0.0, 0.0] and rows[1]["gradients"]["y"] == 1.0
    assert rows[1]["gradients"]["x"] == _one([0, 0], a=1.5).gradients["x"].tolist()
    swept = cli(tmp_path, "grad", "--sweep", "x=1:2:3")
    assert swept.exit_code == 1 and "a sweep gives one number per point, not an array" in swept.output
    assert "CSV columns x[0], x[1], or JSON Lines arrays" in swept.output
    swept = cli(tmp_path, "grad", "--sweep", "W=1:2:3", "--json")  # its columns are W's labels, quoted
    help = json.loads(swept.stderr)["error"]["help"]
    assert 'CSV columns "W[0,0]", "W[0,1]", …' in help and "--sweep W[0,0]=START" in help, help
    table = cli(tmp_path, "grad", "--sweep", "a=1:2:3", "--set", "x=[1,1]")
    assert "the same at every point: W[0,0] = 1" in table.stdout and "x[1] = 1" in table.stdout


def test_a_sweep_of_an_element_gives_the_array_per_point(tmp_path):
    """--sweep x[1]=…: each point's x is the default with that element swept; each row is what
    grad --set x=[…] gives at that point alone (another process of the command line)."""
    done = cli(tmp_path, "grad", "--sweep", "x[1]=0:1:5", "--json")
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    for row, v in zip(rows, np.linspace(0, 1, 5).tolist(), strict=True):
        alone = cli(tmp_path, "grad", "--set", f"x=[0,{v!r}]", "--json")
        assert alone.exit_code == 0, alone.output
        one = json.loads(alone.stdout)
        assert row["inputs"] == one["inputs"] and row["inputs"]["x"] == [0.0, v]
        assert row["value"] == one["value"]
        assert row["gradients"] == {name: one["gradients"][name] for name in one["inputs"]}  # (every input's)


def test_element_sweeps_form_a_grid_with_set_giving_the_other_elements(tmp_path):
    done = cli(tmp_path, "grad", "--sweep", "W[1,0]=-1:1:3", "--sweep", "a=1:2:2", "--set", "x=[0.5,0.25]", "--csv")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    header = lines[0].split(",")  # (no comma inside a quoted label here but the W[i,j] ones)
    assert lines[0].startswith('"W[0,0]","W[0,1]","W[1,0]","W[1,1]",x[0],x[1],a,y,')
    rows = [[float(c) for c in line.split(",")[:-1]] for line in lines[1:]]
    grid = [(w, a) for w in (-1.0, 0.0, 1.0) for a in (1.0, 2.0)]  # the last sweep varies fastest
    assert len(rows) == len(grid) and header[-1] == "error"
    for row, (w, a) in zip(rows, grid):
        W = np.array([[1.0, 2.0], [w, 4.0]])
        one = _one([0.5, 0.25], a=a, W=W)
        assert row[:7] == [1.0, 2.0, w, 4.0, 0.5, 0.25, a]
        assert row[7] == one.value and row[8:12] == one.gradients["W"].ravel().tolist()
        assert row[12:14] == one.gradients["x"].tolist() and row[14] == one.gradients["a"]
    # eval takes them too; a point outside log's domain fails alone, naming its element
    failed = cli(tmp_path, "eval", "--sweep", "x[0]=-2:0:3", "--json")
    assert failed.exit_code == 1
    rows = [json.loads(line) for line in failed.stdout.splitlines()]
    assert rows[0]["error"]["message"] == "`log` of -1.5 at (a + W @ x)[0]"
    assert rows[2]["value"] == diffcli.parse(NET).evaluate({"x": np.zeros(2)}).values["y"]


@pytest.mark.parametrize("sweep, message", [
    ("x[2]=0:1:3", "`x` is a vector of 2: it has no element x[2]"),
    ("W[0]=0:1:3", "it has no element W[0]"),
    ("a[0]=0:1:3", "`a` is a scalar, not an array"),
    ("x=0:1:3", "sweep one of its elements (--sweep x[0]=START:STOP:NUM)"),
    ("q[1]=0:1:3", "the program does not use `q`"),
    ("y[0]=0:1:3", "`y` is computed"),
])
def test_bad_element_sweeps_are_input_errors(tmp_path, sweep, message):
    done = cli(tmp_path, "grad", "--sweep", sweep, "--json")
    assert done.exit_code == 1
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "input" and message in error["message"] + error.get("help", "")
    twice = cli(tmp_path, "grad", "--sweep", "x[1]=0:1:3", "--sweep", "x[ 1]=0:1:2", "--json")
    assert twice.exit_code == 1 and "swept twice" in json.loads(twice.stderr)["error"]["message"]
    free = cli(tmp_path, "grad", "--sweep", "v[0]=0:1:3", "--json", program="y = sum(v^2)\n")
    assert free.exit_code == 1 and "has no value" in json.loads(free.stderr)["error"]["message"]
    chart = cli(tmp_path, "plot", "--sweep", "x[1]=0:1:3", "-o", "@chart.json")
    assert chart.exit_code == 1 and "not an array's elements" in chart.output
    # a whole array: plot's own refusal (grad's help named `--sweep x[0]=…`, which plot refuses)
    chart = cli(tmp_path, "plot", "--sweep", "x=0:1:3", "-o", "@chart.json", "--json")
    assert chart.exit_code == 1
    error = json.loads(chart.stderr)["error"]
    assert "plot sweeps scalar inputs, not an array (`x` is a vector of 2)" in error["message"]
    assert "--sweep x[0]=START" not in error["help"] and "grad --sweep 'x[0]=…' --csv" in error["help"]


def test_plot_of_a_scalar_output_of_an_array_program(tmp_path):
    from diffcli.commands.points import Sweep
    from diffcli.renderers import plots

    done = cli(tmp_path, "plot", "--sweep", "a=1:2:20", "-o", "@chart.json")
    assert done.exit_code == 0, done.output
    _, result = plots.sweep_chart(diffcli.parse(NET), [Sweep("a", 1, 2, 5)], {"x": np.array([1.0, 1.0])}, None)
    for k, a in enumerate(np.linspace(1, 2, 5)):
        one = _one([1, 1], a=a)
        assert result.value[k] == pytest.approx(one.value) and result.gradients["a"][k] == pytest.approx(one.gradients["a"])


BAD_HEADERS = [
    ("x[0]\n1\n", "has no column x[1]"),
    ("x[0],x[1],x[2]\n1,2,3\n", "no element x[2]"),
    ("x\n1\n", "give its elements as columns"),
    ("a[0],x[0],x[1]\n1,1,1\n", "is a scalar, not an array"),
    ('"x[0],x[1]\n1\n', "quote in the header is not closed"),
    ("x[0],x[0]\n1,1\n", "named twice"),
    ("x[a],x[1]\n1,1\n", "not an input or an element"),
    ("W[0,0]\n1\n", "is quoted"),
    ('"W[99999,99999]"\n1\n', "no element W[99999,99999]"),
]


@pytest.mark.parametrize("text, message", BAD_HEADERS)
def test_bad_array_columns_are_diagnostics(tmp_path, text, message):
    done = cli(tmp_path, "grad", "--points", "@p.csv", "--json", files={"p.csv": text})
    assert done.exit_code == 1
    error = json.loads(done.stderr)["error"]
    assert message in error["message"] and error["kind"] in ("input", "shape")


def test_a_free_array_input_takes_its_shape_from_the_columns(tmp_path):
    done = cli(tmp_path, "eval", "--points", "@m.csv", "--csv", program="x = [1, 2]\ny = sum(v * x)\n",
               files={"m.csv": '"v[1,1]","v[0,0]","v[0,1]","v[1,0]"\n1,2,3,4\n'})
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[1] == "1.0,2.0,2.0,3.0,4.0,1.0,14.0,"
    huge = cli(tmp_path, "eval", "--points", "@h.csv", "--json", program="x = [1, 2]\ny = sum(v * x)\n",
               files={"h.csv": '"v[99999,99999]"\n1\n'})
    assert huge.exit_code == 1 and json.loads(huge.stderr)["error"]["kind"] == "shape"


def test_the_dask_kernel_on_an_array_program_and_its_refusals():
    dask_array = pytest.importorskip("dask.array")  # (the test extra installs dask)
    from diffcli.interpreters import batch

    program = diffcli.parse(NET)
    f = batch.kernel(program, ["a"])
    assert f.columns == ["y", "dy/dW[0,0]", "dy/dW[0,1]", "dy/dW[1,0]", "dy/dW[1,1]", "dy/dx[0]", "dy/dx[1]", "dy/da"]
    a = np.linspace(1, 2, 10)
    out = dask_array.from_array(a, chunks=4).map_blocks(f, new_axis=1, chunks=(4, 8), dtype=float).compute()
    for k in (0, 9):
        one = _one([0, 0], a=a[k])
        assert out[k].tolist() == [one.value, *one.gradients["W"].ravel(), *one.gradients["x"], one.gradients["a"]]
    with pytest.raises(diffcli.DiffcliError) as error:
        batch.kernel(diffcli.parse("x = [1, 2]\ny = 2x"), [])
    assert "the output `y` is an array" in error.value.message
    with pytest.raises(diffcli.DiffcliError) as error:  # a block of x without its point axis
        batch.kernel(program, ["x"])(np.array([1.0, 2.0]))
    assert error.value.kind == "input" and "a block of shape (n, 2), not (2,)" in error.value.message


def test_the_dask_kernel_takes_array_inputs_per_point_the_point_axis_leading():
    """Blocks of x (n, 2), W (n, 2, 2) and a (n,) through Dask's threaded scheduler, against each
    point's Program.grad and against NumPy by hand."""
    dask_array = pytest.importorskip("dask.array")
    import dask
    from diffcli.interpreters import batch

    program = diffcli.parse(NET)
    rng = np.random.default_rng(7)
    n = 23
    x, W, a = rng.uniform(-1, 1, (n, 2)), rng.uniform(0.5, 2, (n, 2, 2)), rng.uniform(3, 4, n)
    f = batch.kernel(program, ["x", "W", "a"])
    blocks = dask_array.blockwise(f, "ik", dask_array.from_array(x, chunks=(5, 2)), "ij",
                                  dask_array.from_array(W, chunks=(5, 2, 2)), "ijl",
                                  dask_array.from_array(a, chunks=5), "i",
                                  new_axes={"k": len(f.columns)}, dtype=float, concatenate=True)
    with dask.config.set(scheduler="threads"):  # the local scheduler, blocks in parallel
        got = blocks.compute()
    assert got.shape == (n, 8) and (got == f(x, W, a)).all()
    for k in range(n):
        one = _one(x[k], a=a[k], W=W[k])
        assert got[k].tolist() == [one.value, *one.gradients["W"].ravel(), *one.gradients["x"], one.gradients["a"]]
        z = a[k] + W[k] @ x[k]  # by hand: y = Σ log(z), dy/dz = 1/z
        np.testing.assert_allclose(got[k, 0], np.log(z).sum(), rtol=1e-14)
        np.testing.assert_allclose(got[k, 1:5], np.outer(1 / z, x[k]).ravel(), rtol=1e-14)
        np.testing.assert_allclose(got[k, 5:7], W[k].T @ (1 / z), rtol=1e-14)
        np.testing.assert_allclose(got[k, 7], (1 / z).sum(), rtol=1e-14)
    # a point outside log's domain (by hand: some element of 0.5 + W @ x ≤ 0) is NaN in its row alone
    rows = batch.kernel(program, ["x"])(x)
    outside = (0.5 + x @ np.array([[1.0, 2.0], [3.0, 4.0]]).T <= 0).any(axis=1)
    assert 0 < outside.sum() < n
    assert (np.isnan(rows).all(axis=1) == outside).all() and np.isfinite(rows[~outside]).all()


def test_logsumexp_gradient_of_huge_ties_is_the_softmax_per_point():
    program = diffcli.parse("x = [1, 2]\ny = logsumexp(x)")
    result = array_batch.run(program, {"x": np.array([[1e16, 1e16], [1e300, 1e300], [1.0, 1.0]])})
    np.testing.assert_allclose(result.gradients["x"], 0.5)


def test_norm_of_tiny_elements_per_point_is_scaled():
    program = diffcli.parse("x = [1, 2]\ny = norm(x)")
    result = array_batch.run(program, {"x": np.array([[1e-200, 1e-200], [3.0, 4.0], [1e200, 1e200]])})
    assert not result.failed.any()
    np.testing.assert_allclose(result.gradients["x"], [[2 ** -0.5] * 2, [0.6, 0.8], [2 ** -0.5] * 2])


def test_a_scalar_program_takes_an_unused_array_per_point():
    # a scalar program's graph has no shapes: an unused array given per point was an internal TypeError
    program = diffcli.parse("k = 1\ny = k*2\n")
    result = array_batch.run(program, {"k": [1.0, 2.0], "zz": [[1.0, 2.0], [3.0, 4.0]]})
    assert np.asarray(result.value).tolist() == [2.0, 4.0] and result.unused == ["zz"]
    assert np.asarray(result.gradients["k"]).tolist() == [2.0, 2.0]
