"""`diffcli fit --data`: fitting over rows (the batch engine), against SciPy's curve_fit and NumPy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diffcli.commands import fit as fitting
from diffcli.program import parse

from test_fit import ROOT, invoke


DECAY = ROOT / "samples" / "decay.expr"
DECAY_DATA = ROOT / "samples" / "decay.csv"


def test_residual_fit_agrees_with_curve_fit():
    from scipy.optimize import curve_fit

    out = json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--json").stdout)
    t, y = np.loadtxt(DECAY_DATA, delimiter=",", skiprows=1, unpack=True)
    popt, pcov = curve_fit(lambda t, A, k, c: A * np.exp(-k * t) + c, t, y, p0=[4, 0.1, 0])
    assert list(out["parameters"].values()) == pytest.approx(popt, rel=1e-6)
    assert list(out["stderr"].values()) == pytest.approx(np.sqrt(np.diag(pcov)), rel=1e-5)
    correlation = pcov[1, 2] / math.sqrt(pcov[1, 1] * pcov[2, 2])
    assert out["correlation"]["k"]["c"] == pytest.approx(correlation, rel=1e-5)
    assert out["converged"] and out["method"] == "least_squares" and out["evaluations"] < 50
    for name, true in {"A": 5.0, "k": 0.3, "c": 0.5}.items():  # as samples/decay.expr states
        assert abs(out["parameters"][name] - true) < out["stderr"][name]
    A, k, c = popt
    assert out["objective"] == pytest.approx(float(np.sum((A * np.exp(-k * t) + c - y) ** 2)), rel=1e-9)


def test_a_residual_of_thousands_of_statements_fits_as_curve_fit():
    """The residual's passes are compiled to Python source: a program of 5,000 tested values (each a
    `log`) must not become one expression nested 5,000 deep ("nested too deeply")."""
    from scipy.optimize import curve_fit

    n = 5000
    lines = ["a = 1.0", "s0 = 0"] + [f"s{i} = s{i - 1} + log(a*t + {i})" for i in range(1, n + 1)]
    program = parse("\n".join(lines + [f"r = s{n}/{n} - y"]), "long.expr")
    t = np.arange(1.0, 21.0)
    y = 0.1 * t + 7
    fit = program.fit(wrt=["a"], data={"t": t, "y": y}, residual="r")
    k = np.arange(1, n + 1)[:, None]
    popt, pcov = curve_fit(lambda t, a: np.log(a * t + k).sum(axis=0) / n, t, y, p0=[1.0])
    assert fit.parameters["a"] == pytest.approx(popt[0], rel=1e-6)
    assert fit.stderr["a"] == pytest.approx(math.sqrt(pcov[0, 0]), rel=1e-4)


def test_mean_over_rows_and_report(tmp_path):
    """The objective with --data is the mean over rows; --report gives other variables' means."""
    data = tmp_path / "d.csv"
    data.write_text("x,y\n1,2\n2,4.5\n3,5.5\n")
    path = tmp_path / "line.expr"
    path.write_text("m = 0\nfitted = m*x\nsq = (fitted - y)^2\n")
    out = json.loads(invoke("fit", path, "--data", data, "--report", "fitted", "--json").stdout)
    x, y = np.array([1, 2, 3.0]), np.array([2, 4.5, 5.5])
    slope = x @ y / (x @ x)
    assert out["parameters"]["m"] == pytest.approx(slope, rel=1e-6)
    assert out["objective"] == pytest.approx(np.mean((slope * x - y) ** 2), rel=1e-9)
    assert out["history"][0] == pytest.approx(np.mean(y**2))
    assert out["report"]["fitted"] == pytest.approx(np.mean(slope * x), rel=1e-6)


def test_data_columns_the_program_lacks(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("tt,y\n1,2\n")
    result = invoke("fit", DECAY, "--data", data, "--residual", "r")
    assert result.exit_code == 1 and "`tt`" in result.stderr and "did you mean `t`" in result.stderr
    data.write_text("t,y\n1,2\n2,oops\n")
    result = invoke("fit", DECAY, "--data", data, "--residual", "r", "--json")
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 1 and "oops" in error["message"] and "y" in error["message"]


def test_the_fit_plot_over_a_column(tmp_path):
    out = tmp_path / "fit.svg"
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--plot", out, "--x", "t")
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<svg") and "model over t" in svg
    # the curve: the data column the residual compares with, and the model
    program = parse(DECAY.read_text())
    data = {"t": np.array([0.0, 1.0]), "y": np.array([5.0, 4.0])}
    problem = fitting.Problem(program, ["A", "k", "c"], residual="r", data=data)
    found = fitting.fit(problem, "least_squares", start={"A": 4, "k": 0.1, "c": 0}, steps=3)
    curve = fitting.curve(problem, found, "t")
    assert curve["data"][0] == "y" and curve["fitted"][0] == "model" and curve["x"] == [0.0, 1.0]


def test_moons_network_matches_an_independent_forward_pass(tmp_path):
    """scripts/make_moons.py's network has micrograd's 337 parameters, and its loss at the start is
    the demo's loss computed with NumPy."""
    import subprocess
    import sys

    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_moons.py"), str(tmp_path), "--json"], check=True)
    for name in ("moons.csv", "moons_mlp.expr"):  # the samples are what the script writes
        assert (tmp_path / name).read_text() == (ROOT / "samples" / "moons" / name).read_text()
    setup = json.loads((tmp_path / "moons.json").read_text())
    program = parse((tmp_path / "moons_mlp.expr").read_text())
    assert sum(v is not None for v in program.inputs.values()) == 337
    out = json.loads(invoke("fit", tmp_path / "moons_mlp.expr", "--data", tmp_path / "moons.csv",
                            "--method", "gd", "--steps", "1", "--json").stdout)
    assert len(out["parameters"]) == 337
    h = np.array(setup["x"])
    params = []
    for i, neurons in enumerate(setup["layers"]):
        w = np.array([n[0] for n in neurons])
        b = np.array([n[1] for n in neurons])
        params += [w.ravel(), b]
        h = h @ w.T + b
        if i < 2:
            h = np.maximum(h, 0)
    y = np.array(setup["y"])
    l2 = sum(float(p @ p) for p in params)
    loss = np.mean(np.maximum(0, 1 - y * h[:, 0])) + 1e-4 * l2
    assert out["history"][0] == pytest.approx(loss, rel=1e-12)


def test_a_gradient_at_the_noise_level_is_shown_as_such():
    """Issue 21: docs/fit.md showed A's gradient at the optimum as 1.59269e-13, and another machine
    prints 1.59008e-13: the rows' terms 2·r·∂r/∂A cancel to rounding noise. Such a component is
    `≈ 0` in the report; one clearly above the noise keeps its digits."""
    # (--tol 1e-8, SciPy's own default: the fit stops while k's gradient is still above the noise)
    done = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--tol", "1e-8")
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if "gradient" in line}
    assert lines["A"].endswith("gradient ≈ 0") and lines["c"].endswith("gradient ≈ 0")
    assert lines["k"].endswith("gradient 3.099e-8")
    # the measure itself: the gradient against Σ|term| computed by hand from the rows
    out = json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--tol", "1e-8",
                            "--json").stdout)
    t, y = np.loadtxt(DECAY_DATA, delimiter=",", skiprows=1, unpack=True)
    A, k, c = out["parameters"].values()
    r = A * np.exp(-k * t) + c - y
    terms = {"A": 2 * np.abs(r * np.exp(-k * t)).sum(), "k": 2 * np.abs(r * A * t * np.exp(-k * t)).sum(),
             "c": 2 * np.abs(r).sum()}
    for name, total in terms.items():
        assert (abs(out["gradient"][name]) < fitting.GRADIENT_NOISE * total) == (name != "k")


def test_without_data_a_small_gradient_is_not_called_noise(tmp_path):
    """One term (no rows to cancel): the computed gradient is the whole story, however small."""
    path = tmp_path / "q.expr"
    path.write_text("a = 1.0000000000001\nf = (a - 1)^2\n")
    done = invoke("fit", path, "--method", "gd", "--steps", "1", "--lr", "0")
    assert done.exit_code == 0 and "gradient 1.9984e-13" in done.stdout


def test_an_objective_unbounded_below_is_an_error_naming_residual(tmp_path):
    """Issue 21: `fit samples/decay.expr --data samples/decay.csv` without `--residual r` minimized
    the mean of r to -2e27 and exited 0."""
    program = tmp_path / "decay.expr"
    program.write_text(DECAY.read_text())
    done = invoke("fit", program, "--data", DECAY_DATA, "--json", "--write")
    assert done.exit_code == 1 and program.read_text() == DECAY.read_text()  # nothing written
    assert json.loads(done.stdout)["objective"] < -1e9  # the report is still printed
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "input" and "unbounded below" in error["message"]
    assert "--residual r" in error["help"]
    assert json.loads(done.stdout)["evaluations"] < 100  # stopped as soon as it ran away
    # without data, a linear objective: no residual to name
    (tmp_path / "line.expr").write_text("a = 1\nb = 2\nf = 3*a - b\n")
    done = invoke("fit", tmp_path / "line.expr", "--json", "--method", "gd", "--lr", "1e10", "--steps", "5")
    error = json.loads(done.stderr)["error"]
    assert done.exit_code == 1 and "unbounded below" in error["message"] and "--residual" not in error["help"]


def test_a_far_minimum_that_is_finite_is_not_called_unbounded(tmp_path):
    path = tmp_path / "far.expr"
    path.write_text("a = 0\nf = (a - 1e12)^2 - 1e20\n")
    done = invoke("fit", path, "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["parameters"]["a"] == pytest.approx(1e12, rel=1e-9)


def test_steps_caps_levenberg_marquardt_and_the_trust_region_together():
    """An unbounded fit tries MINPACK's lm first and may start again with the trust region: --steps
    caps the evaluations of both together (the one more is the report's at the best point)."""
    for steps in (3, 5):
        out = json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--steps", str(steps),
                                "--json").stdout)
        assert out["evaluations"] <= steps + 1 and out["converged"] is False
    done = json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--json").stdout)
    assert done["converged"] and "`ftol`" in done["message"]


def test_a_data_column_of_an_arrays_element_says_data_columns_are_scalars(tmp_path):
    """--data reads scalar columns (an array is built from them in the program): a column `x[0]` of
    an array input `x` said `the program has no variable x[0]`, of a program that has `x`."""
    data = tmp_path / "d.csv"
    data.write_text("x[0],x[1],y\n1,2,3\n2,1,0\n0,1,1\n")
    for text in ("x = [0, 0]\nw = [0.5, -0.5]\nr = dot(w, x) - y\n", "w = [0.5, -0.5]\nr = dot(w, x) - y\n"):
        program = tmp_path / "p.expr"
        program.write_text(text)
        done = invoke("fit", program, "--wrt", "w", "--data", data, "--residual", "r", "--json")
        assert done.exit_code == 1
        error = json.loads(done.stderr)["error"]
        assert error["kind"] == "input" and (error["line"], error["column"]) == (1, 1)
        assert "`x[0]` names an element of `x`" in error["message"] and "x = [x0, x1, …]" in error["help"]
    program.write_text("x = 1\nr = x*a - y\n")
    done = invoke("fit", program, "--wrt", "a", "--data", data, "--residual", "r", "--json")
    assert "`x` is a scalar: it has no element [0]" in json.loads(done.stderr)["error"]["message"]
