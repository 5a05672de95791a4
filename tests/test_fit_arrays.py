"""`diffcli fit` with array parameters: against NumPy by hand (least squares' normal equations),
finite differences, SciPy on the same flattened vector, and the unrolled scalar program (moons)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from diffcli.cli import app
from diffcli.commands import fit as fitting
from diffcli.commands.points import read_points
from diffcli.program import load, parse

ROOT = Path(__file__).resolve().parent.parent
MOONS = ROOT / "samples" / "moons"
X = np.array([[1.0, 0.5, -1.0], [0.2, -0.3, 2.0], [1.5, 1.0, 0.0], [-0.7, 0.4, 0.3], [0.0, -1.2, 0.8]])
Y = np.array([1.0, -2.0, 0.5, 0.3, 1.1])
LINEAR = (f"# least squares, the rows of X at once\nX = {fitting.array_literal(X, '    ')}\n"
          f"y = {fitting.array_literal(Y)}\nw = [0, 0, 0]\nc = 0.5\n"
          "loss = mean((X @ w + c - y)^2)\n")


def invoke(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture
def linear(tmp_path):
    path = tmp_path / "linear.expr"
    path.write_text(LINEAR)
    return path


def test_the_gradient_is_numpys_by_hand_and_finite_differences():
    program = parse(LINEAR)
    problem, start, _ = fitting.setup(program, ["w", "c"], {}, data={})
    x = problem.start({"w": np.array([0.3, -0.2, 0.7]), "c": 0.1})
    f, g, *_ = problem.evaluate(x)
    w, c = x[:3], x[3]
    r = X @ w + c - Y
    assert f == pytest.approx(np.mean(r**2), rel=1e-14)
    assert g == pytest.approx(np.append(2 * X.T @ r / len(Y), 2 * r.mean()), rel=1e-13)
    h = 1e-6
    central = [(problem.evaluate(x + h * e)[0] - problem.evaluate(x - h * e)[0]) / (2 * h) for e in np.eye(4)]
    assert g == pytest.approx(central, rel=1e-7)
    assert problem.labels == ["w[0]", "w[1]", "w[2]", "c"]


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "Newton-CG"])
def test_every_scipy_method_reaches_the_normal_equations_solution(linear, method):
    result = invoke("fit", linear, "--wrt", "w,c", "--method", method, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    design = np.column_stack([X, np.ones(len(Y))])
    exact = np.linalg.solve(design.T @ design, design.T @ Y)
    assert np.array(out["parameters"]["w"]) == pytest.approx(exact[:3], abs=1e-5)
    assert out["parameters"]["c"] == pytest.approx(exact[3], abs=1e-5)
    assert isinstance(out["gradient"]["w"], list) and len(out["gradient"]["w"]) == 3


def test_gd_and_adam_match_the_update_rules_by_hand(linear):
    design = np.column_stack([X, np.ones(len(Y))])
    for method, lr in (("gd", 0.1), ("adam", 0.05)):
        out = json.loads(invoke("fit", linear, "--wrt", "w,c", "--method", method, "--lr", lr, "--steps", 20,
                                "--json").stdout)
        x, m, v = np.array([0, 0, 0, 0.5]), np.zeros(4), np.zeros(4)
        for k in range(20):
            g = 2 * design.T @ (design @ x - Y) / len(Y)
            rate = lr * (1 - 0.9 * k / 20)
            if method == "gd":
                x = x - rate * g
            else:
                m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
                x = x - rate * (m / (1 - 0.9 ** (k + 1))) / (np.sqrt(v / (1 - 0.999 ** (k + 1))) + 1e-8)
        assert out["parameters"]["w"] == pytest.approx(list(x[:3]), rel=1e-12)
        assert out["parameters"]["c"] == pytest.approx(x[3], rel=1e-12)


def test_bounds_spread_over_every_element(linear):
    out = json.loads(invoke("fit", linear, "--wrt", "w,c", "--bounds", "w=-0.1:0.1", "--json").stdout)
    assert all(-0.1 <= e <= 0.1 for e in out["parameters"]["w"]) and 0.1 in np.round(out["parameters"]["w"], 12)


def test_the_report_summarizes_arrays_and_lists_elements_on_request(linear):
    text = invoke("fit", linear, "--wrt", "w,c").stdout
    line = next(row for row in text.splitlines() if row.strip().startswith("w "))
    assert "3: " in line and " to " in line and "norm" in line and "gradient norm" in line
    rows = invoke("fit", linear, "--wrt", "w,c", "--elements").stdout.splitlines()
    assert [row.split()[0] for row in rows if row.startswith("  w[")] == ["w[0]", "w[1]", "w[2]"]


def test_write_lays_out_matrices_and_keeps_everything_else(tmp_path):
    path = tmp_path / "m.expr"
    path.write_bytes(b"\xef\xbb\xbf# two rows\r\nW = [[1, 2], [3, 4]]   # kept\r\nb = [0, 0]\r\n"
                     b"loss = sum((W @ [1, -1] + b - [3, 1])^2) + 0.5*sum(W^2)\r\n")
    result = invoke("fit", path, "--wrt", "W,b", "--write", "--json")
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)["parameters"]
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff# two rows\r\nW = [[") and text.count("\r\n") == 5 and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")
    assert lines[1].endswith("],") and lines[2].startswith("     [") and lines[2].endswith("]]   # kept")
    assert lines[1].index(",") == lines[2].index(",")   # the columns line up
    assert lines[4].startswith("loss = sum((W @ [1, -1]")
    written = load(path)
    assert written.inputs["W"].tolist() == fitted["W"] and written.inputs["b"].tolist() == fitted["b"]


def test_write_refuses_a_literal_with_a_comment_inside_and_writes_nothing(tmp_path):
    path = tmp_path / "c.expr"
    original = "W = [[1, 2],  # first row\n     [3, 4]]\nloss = sum(W^2)\n"
    path.write_text(original)
    result = invoke("fit", path, "--wrt", "W", "--write")
    assert result.exit_code == 1 and "holds a comment" in result.output and "--save" in result.output
    assert path.read_text() == original


def test_write_replaces_a_constructor_with_its_fitted_literal_and_says_so(tmp_path):
    path = tmp_path / "u.expr"
    path.write_text("V = uniform(2, 3, seed=1)\nloss = sum((V - 1)^2)\n")
    result = invoke("fit", path, "--wrt", "V", "--write")
    assert result.exit_code == 0 and "uniform(2, 3, seed=1)` is now the literal" in result.stderr
    assert load(path).inputs["V"] == pytest.approx(np.ones((2, 3)), abs=1e-6)


def test_save_reads_back_with_inputs_and_a_shape_mismatch_names_both(linear, tmp_path):
    saved = tmp_path / "fitted.json"
    out = json.loads(invoke("fit", linear, "--wrt", "w,c", "--save", saved, "--json").stdout)
    assert json.loads(saved.read_text()) == out["parameters"]
    again = json.loads(invoke("grad", linear, "--inputs", saved, "--json").stdout)
    assert again["inputs"]["w"] == out["parameters"]["w"]
    other = tmp_path / "other.expr"
    other.write_text("w = [1, 2]\nc = 0\nloss = sum(w^2) + c\n")
    result = invoke("fit", other, "--inputs", saved)
    assert result.exit_code == 1 and "a vector of 2 in the file" in result.output and "vector of 3" in result.output


def test_an_unwritable_save_or_plot_is_refused_before_the_result_is_printed(linear, tmp_path):
    """fit --save DIR (or a missing directory, or --plot DIR.png) printed the result, then failed:
    now the io error comes first, standard output stays empty (SPEC), and nothing is written."""
    folder = tmp_path / "folder.json"
    folder.mkdir()
    for option, target in (("--save", folder), ("--save", tmp_path / "missing" / "s.json"),
                           ("--plot", tmp_path / "missing" / "p.svg")):
        for json_flag in ([], ["--json"]):
            result = invoke("fit", linear, "--wrt", "w,c", option, target, *json_flag)
            assert result.exit_code == 1 and result.stdout == "", (option, target, json_flag)
            assert f"cannot write {target}" in result.stderr
            if json_flag:
                assert json.loads(result.stderr)["error"]["kind"] == "io"
    assert list(folder.iterdir()) == [] and not (tmp_path / "missing").exists()
    assert linear.read_text() == LINEAR


def test_data_rows_batched_with_array_parameters_equal_the_scalar_program(tmp_path):
    """--data with arrays: the mean objective (gd) and least squares' per-row Jacobian (standard
    errors) of `w = [0, 0]` equal those of the same program written with scalars a, b."""
    t = np.linspace(0, 4, 9)
    y = 1.5 * t - 0.7 + np.sin(3 * t) * 0.1
    data = tmp_path / "line.csv"
    data.write_text("t,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in zip(t.tolist(), y.tolist())))
    arrays, scalars = tmp_path / "a.expr", tmp_path / "s.expr"
    arrays.write_text("w = [0, 0]\nr = w[0]*t + w[1] - y\nloss = r^2 + 0.1*sum(w^2)\n")
    scalars.write_text("a = 0\nb = 0\nr = a*t + b - y\nloss = r^2 + 0.1*(a^2 + b^2)\n")
    for options in (["--method", "gd", "--lr", "0.05", "--steps", "7"], ["--residual", "r"]):
        got = json.loads(invoke("fit", arrays, "--data", data, *options, "--json").stdout)
        want = json.loads(invoke("fit", scalars, "--data", data, *options, "--json").stdout)
        assert got["history"] == pytest.approx(want["history"], rel=1e-12)
        assert got["parameters"]["w"] == pytest.approx([want["parameters"]["a"], want["parameters"]["b"]], rel=1e-10)
    assert [got["stderr"]["w[0]"], got["stderr"]["w[1]"]] == pytest.approx([want["stderr"]["a"], want["stderr"]["b"]],
                                                                            rel=1e-8)
    assert np.array([got["parameters"]["w"]]) == pytest.approx(np.polyfit(t, y, 1)[None, :], rel=1e-9)


def test_moons_a_row_at_a_time_with_data_equals_the_scalar_program():
    rows = load(MOONS / "moons_mlp_rows.expr")
    scalar = load(MOONS / "moons_mlp.expr")
    with open(MOONS / "moons.csv", newline="") as stream:
        points = read_points(stream, "moons.csv", None, scalar)
    columns = fitting.gather(points.names, [chunk for _, chunk in points.chunks()])
    problem, start, _ = fitting.setup(rows, ["W1", "b1", "W2", "b2", "w3", "b3"], {}, data=columns)
    scalar_problem, scalar_start, _ = fitting.setup(scalar, [], {}, data=columns)
    batched = fitting.fit(problem, "gd", start=start, steps=3)
    unrolled = fitting.fit(scalar_problem, "gd", start=scalar_start, steps=3)
    assert batched.history == pytest.approx(unrolled.history, rel=0, abs=1e-10)


def _moons_problems():
    arrays = load(MOONS / "moons_mlp_arrays.expr")
    array_problem, array_start, _ = fitting.setup(arrays, ["W1", "b1", "W2", "b2", "w3", "b3"], {}, data={})
    scalar = load(MOONS / "moons_mlp.expr")
    with open(MOONS / "moons.csv", newline="") as stream:
        rows = read_points(stream, "moons.csv", None, scalar)
    columns = fitting.gather(rows.names, [chunk for _, chunk in rows.chunks()])
    scalar_problem, scalar_start, _ = fitting.setup(scalar, [], {}, data=columns)
    return array_problem, array_start, scalar_problem, scalar_start


def test_moons_as_arrays_trains_as_the_scalar_program_step_for_step():
    array_problem, array_start, scalar_problem, scalar_start = _moons_problems()
    for i in range(16):   # the same initial weights
        assert array_start["W1"][i].tolist() == [scalar_start[f"w1_{i}_0"], scalar_start[f"w1_{i}_1"]]
        assert array_start["W2"][i].tolist() == [scalar_start[f"w2_{i}_{j}"] for j in range(16)]
    arrays = fitting.fit(array_problem, "gd", start=array_start, steps=4)
    scalars = fitting.fit(scalar_problem, "gd", start=scalar_start, steps=4)
    assert len(arrays.history) == len(scalars.history) == 5
    assert arrays.history == pytest.approx(scalars.history, rel=0, abs=1e-10)
    assert arrays.parameters["w3"].tolist() == pytest.approx([scalars.parameters[f"w3_0_{j}"] for j in range(16)],
                                                             rel=0, abs=1e-10)
    accuracy = fitting.means(array_problem, arrays.parameters, ["accuracy"])["accuracy"]
    assert accuracy == fitting.means(scalar_problem, scalars.parameters, ["accuracy"])["accuracy"]


def test_profile_intervals_of_array_parameters_are_those_of_the_same_fit_written_with_scalars(tmp_path):
    """One interval per element, labelled w[1]; the scalar program fits w0, w1, w2 to the rows of a
    CSV file: the same χ² surface, so the same profiles."""
    arrays = tmp_path / "arrays.expr"
    arrays.write_text(LINEAR.replace("loss = mean((X @ w + c - y)^2)", "r = X @ w + c - y"))
    scalars = tmp_path / "scalars.expr"
    scalars.write_text("w0 = 0\nw1 = 0\nw2 = 0\nc = 0.5\nr = w0*x1 + w1*x2 + w2*x3 + c - y\n")
    data = tmp_path / "rows.csv"
    data.write_text("x1,x2,x3,y\n" + "".join(",".join(repr(float(v)) for v in [*row, t]) + "\n" for row, t in zip(X, Y)))
    out = json.loads(invoke("fit", arrays, "--wrt", "w,c", "--residual", "r", "--confidence", "1,2", "--json").stdout)
    ref = json.loads(invoke("fit", scalars, "--data", data, "--wrt", "w0,w1,w2,c", "--residual", "r",
                            "--confidence", "1,2", "--json").stdout)
    assert list(out["confidence"]) == ["w[0]", "w[1]", "w[2]", "c"]
    for label, name in zip(out["confidence"], ref["confidence"]):
        for level in ("1σ", "2σ"):
            mine, theirs = out["confidence"][label][level], ref["confidence"][name][level]
            assert [v is None for v in mine] == [v is None for v in theirs]  # (an open side: 1 degree of freedom)
            assert [v for v in mine if v is not None] == pytest.approx([v for v in theirs if v is not None], rel=1e-7)
        assert None not in out["confidence"][label]["1σ"]
    report = invoke("fit", arrays, "--wrt", "w,c", "--residual", "r", "--confidence", "1").stdout
    table = report[report.index("confidence intervals"):].splitlines()
    assert [line.split()[0] for line in table[2:]] == ["w[0]", "w[1]", "w[2]", "c"]
    best = float(table[3].split()[2])  # −1σ, best, +1σ
    assert best == pytest.approx(out["parameters"]["w"][1], rel=1e-5)


def test_profile_intervals_refuse_more_elements_than_their_bound_before_fitting(tmp_path):
    from diffcli.commands.fit_intervals import MAX_PARAMETERS

    path = tmp_path / "wide.expr"
    n = MAX_PARAMETERS + 1
    path.write_text(f"X = uniform({n + 5}, {n}, seed=1)\ny = uniform({n + 5}, seed=2)\nw = zeros({n})\n"
                    "r = X @ w - y\n")
    result = invoke("fit", path, "--wrt", "w", "--residual", "r", "--confidence", "1", "--json")
    error = json.loads(result.output)["error"]
    assert result.exit_code == 1 and error["kind"] == "input"
    assert f"{n} fitted elements: at most {MAX_PARAMETERS}" in error["message"]


def test_an_array_residual_without_data_is_scipys_least_squares_with_its_standard_errors(tmp_path):
    from scipy.optimize import least_squares

    path = tmp_path / "map.expr"
    path.write_text((ROOT / "docs" / "examples" / "fit_matrix.expr").read_text()
                    .replace("loss = mean((A @ X + c - Y)^2)", "r = A @ X + c - Y"))
    out = json.loads(invoke("fit", path, "--wrt", "A,c", "--residual", "r", "--json").stdout)
    X = np.array([[1, 0, 2, 1], [0, 1, 1, -1.0]])
    Y = np.array([[2.1, 0.9, 5.2, 1.1], [1.0, 3.1, 3.9, -2.0]])
    # r = J p - Y row-major, p = (A[0,0], A[0,1], A[1,0], A[1,1], c): the normal equations exactly
    jacobian = np.zeros((8, 5))
    for i in range(2):
        for k in range(4):
            jacobian[4 * i + k, 2 * i:2 * i + 2] = X[:, k]
    jacobian[:, 4] = 1.0
    exact, *_ = np.linalg.lstsq(jacobian, Y.ravel(), rcond=None)
    residual = jacobian @ exact - Y.ravel()
    errors = np.sqrt(np.diag(np.linalg.inv(jacobian.T @ jacobian) * (residual @ residual) / (8 - 5)))
    reference = least_squares(lambda p: jacobian @ p - Y.ravel(), np.zeros(5))   # and SciPy agrees
    assert reference.x == pytest.approx(exact, rel=1e-6)
    assert np.append(np.ravel(out["parameters"]["A"]), out["parameters"]["c"]) == pytest.approx(exact, rel=1e-12)
    assert [out["stderr"][k] for k in ("A[0,0]", "A[0,1]", "A[1,0]", "A[1,1]", "c")] == pytest.approx(errors, rel=1e-10)
    assert out["statistics"]["rows"] == 8


def test_report_of_an_array_variable_is_its_mean_over_the_rows(tmp_path):
    path = tmp_path / "d.expr"
    path.write_text("w = [1, 2]\nh = w*x\nloss = sum(h^2)\n")
    data = tmp_path / "d.csv"
    data.write_text("x\n1\n3\n")
    out = json.loads(invoke("fit", path, "--data", data, "--method", "gd", "--steps", 1, "--lr", 0.01,
                            "--report", "h", "--json").stdout)
    w = np.array(out["parameters"]["w"])
    assert out["report"]["h"] == pytest.approx(list(w * 2.0), rel=1e-14)   # the mean of w·1 and w·3
