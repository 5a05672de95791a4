"""`diffcli fit --residual` for a lab report: lmfit's statistics (χ², AIC, BIC, R²), the covariance,
weights with σ (curve_fit's sigma and absolute_sigma), on decay, a Gaussian peak on a background, a
straight line with σ per point and a fit with a parameter at its bound; against lmfit and SciPy."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from test_fit import ROOT, invoke

lmfit = pytest.importorskip("lmfit")  # the `test` extra installs it

DECAY = ROOT / "samples" / "decay.expr"
DECAY_DATA = ROOT / "samples" / "decay.csv"

GAUSSIAN = """\
a = 10      # height
mu = 4.8    # centre
s = 1.5     # width
b0 = 0.5    # background
b1 = 0
model = a*exp(-(x - mu)^2/(2*s^2)) + b0 + b1*x
r = y - model
"""

LINE = "m = 1\nq = 0\nr = m*x + q - y\n"


def gaussian(x, a, mu, s, b0, b1):
    return a * np.exp(-(x - mu) ** 2 / (2 * s**2)) + b0 + b1 * x


def write_csv(path, **columns):
    names = list(columns)
    rows = zip(*(columns[n] for n in names))
    path.write_text(",".join(names) + "\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in rows))
    return path


@pytest.fixture
def peak(tmp_path):
    rng = np.random.default_rng(22)
    x = np.linspace(0, 10, 60)
    y = gaussian(x, 12.0, 5.0, 1.2, 1.0, 0.1) + rng.normal(0, 0.3, x.size)
    (tmp_path / "peak.expr").write_text(GAUSSIAN)
    return tmp_path / "peak.expr", write_csv(tmp_path / "peak.csv", x=x, y=y), x, y


@pytest.fixture
def line(tmp_path):
    rng = np.random.default_rng(7)
    x = np.arange(1.0, 13.0)
    sigma = 0.1 + 0.05 * x
    y = 2.5 * x - 1.0 + rng.normal(0, sigma)
    (tmp_path / "line.expr").write_text(LINE)
    return tmp_path / "line.expr", write_csv(tmp_path / "line.csv", x=x, y=y, s=sigma), x, y, sigma


def fit_json(*args):
    result = invoke("fit", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def lmfit_result(function, x, y, start, weights=None, **bounds):
    model = lmfit.Model(function)
    params = model.make_params(**start)
    for name, (low, high) in bounds.items():
        params[name].set(min=low, max=high)
    return model.fit(y, params, x=x, weights=weights)


def check_against_lmfit(out, result, rel=1e-6):
    names = list(out["parameters"])
    stats = out["statistics"]
    assert stats["rows"] == result.ndata and stats["parameters"] == result.nvarys
    assert stats["chi_square"] == pytest.approx(result.chisqr, rel=rel)
    assert stats["reduced_chi_square"] == pytest.approx(result.redchi, rel=rel)
    assert stats["aic"] == pytest.approx(result.aic, rel=rel)
    assert stats["bic"] == pytest.approx(result.bic, rel=rel)
    assert stats["r_squared"] == pytest.approx(result.rsquared, rel=rel)
    assert [out["parameters"][n] for n in names] == pytest.approx([result.params[n].value for n in names], rel=1e-5)
    covariance = np.array([[out["covariance"][a][b] for b in names] for a in names])
    lm_names = list(result.var_names)
    order = [lm_names.index(n) for n in names]
    theirs = result.covar[np.ix_(order, order)]
    errors = np.sqrt(np.diag(theirs))
    # lmfit's covariance comes from MINPACK's finite-difference Jacobian: close, to its accuracy
    assert covariance / np.outer(errors, errors) == pytest.approx(theirs / np.outer(errors, errors), abs=1e-2)


def check_covariance_against_curve_fit(out, function, jacobian, x, y, start):
    """curve_fit with the exact Jacobian: the same covariance to 1e-6."""
    from scipy.optimize import curve_fit

    names = list(out["parameters"])
    popt, pcov = curve_fit(function, x, y, p0=[start[n] for n in names], jac=jacobian,
                           ftol=1e-12, xtol=1e-12, gtol=1e-12)
    covariance = np.array([[out["covariance"][a][b] for b in names] for a in names])
    assert covariance == pytest.approx(pcov, rel=1e-6, abs=1e-6 * np.abs(pcov).max())


def test_decay_statistics_against_lmfit():
    out = fit_json(DECAY, "--data", DECAY_DATA, "--residual", "r")
    t, y = np.loadtxt(DECAY_DATA, delimiter=",", skiprows=1, unpack=True)
    result = lmfit_result(lambda x, A, k, c: A * np.exp(-k * x) + c, t, y, {"A": 4, "k": 0.1, "c": 0})
    check_against_lmfit(out, result)
    # every pair in JSON, the small one (|A,k| = 0.19 here) too, and the matrix is symmetric
    assert set(out["correlation"]) == {"A", "k"} and set(out["correlation"]["A"]) == {"k", "c"}
    assert out["covariance"]["A"]["c"] == out["covariance"]["c"]["A"]
    assert math.sqrt(out["covariance"]["k"]["k"]) == pytest.approx(out["stderr"]["k"], rel=1e-12)


def test_gaussian_peak_on_a_background_against_lmfit(peak):
    path, data, x, y = peak
    out = fit_json(path, "--data", data, "--residual", "r")
    start = {"a": 10, "mu": 4.8, "s": 1.5, "b0": 0.5, "b1": 0}
    check_against_lmfit(out, lmfit_result(lambda x, a, mu, s, b0, b1: gaussian(x, a, mu, s, b0, b1), x, y, start))

    def jacobian(x, a, mu, s, b0, b1):
        e = np.exp(-(x - mu) ** 2 / (2 * s**2))
        return np.column_stack([e, a * e * (x - mu) / s**2, a * e * (x - mu) ** 2 / s**3,
                                np.ones_like(x), x])
    check_covariance_against_curve_fit(out, gaussian, jacobian, x, y, start)
    text = invoke("fit", path, "--data", data, "--residual", "r").stdout
    assert "R²" in text and "AIC" in text and "--json has every pair" in text


def test_small_correlations_are_in_json_not_in_the_report(peak):
    path, data, *_ = peak
    out = fit_json(path, "--data", data, "--residual", "r")
    pairs = {(a, b): c for a, row in out["correlation"].items() for b, c in row.items()}
    assert len(pairs) == 10
    small = [pair for pair, c in pairs.items() if abs(c) <= 0.1]
    assert small, "the data set should have a pair below 0.1 for this test to mean something"
    text = invoke("fit", path, "--data", data, "--residual", "r").stdout
    shown = text.split("correlations")[1]
    for a, b in small:
        assert f"  {a}, {b}  " not in shown


@pytest.mark.parametrize("absolute", [False, True])
def test_line_with_sigma_per_point_against_curve_fit(line, absolute):
    from scipy.optimize import curve_fit

    path, data, x, y, sigma = line
    args = ["--absolute-sigma"] if absolute else []
    out = fit_json(path, "--data", data, "--residual", "r", "--sigma", "s", *args)
    popt, pcov = curve_fit(lambda x, m, q: m * x + q, x, y, p0=[1, 0], sigma=sigma, absolute_sigma=absolute)
    assert [out["parameters"]["m"], out["parameters"]["q"]] == pytest.approx(popt, rel=1e-6)
    assert [out["stderr"]["m"], out["stderr"]["q"]] == pytest.approx(np.sqrt(np.diag(pcov)), rel=1e-6)
    assert out["covariance"]["m"]["q"] == pytest.approx(pcov[0, 1], rel=1e-6)
    assert out["absolute_sigma"] is absolute
    # χ² is the weighted sum; R² the unweighted one over y's spread, as lmfit computes both
    result = lmfit_result(lambda x, m, q: m * x + q, x, y, {"m": 1, "q": 0}, weights=1 / sigma)
    assert out["statistics"]["chi_square"] == pytest.approx(result.chisqr, rel=1e-6)
    assert out["statistics"]["aic"] == pytest.approx(result.aic, rel=1e-6)
    assert out["statistics"]["r_squared"] == pytest.approx(result.rsquared, rel=1e-6)


def test_absolute_sigma_scales_by_the_reduced_chi_square(line):
    path, data, *_ = line
    relative = fit_json(path, "--data", data, "--residual", "r", "--sigma", "s")
    absolute = fit_json(path, "--data", data, "--residual", "r", "--sigma", "s", "--absolute-sigma")
    ratio = relative["stderr"]["m"] / absolute["stderr"]["m"]
    assert ratio == pytest.approx(math.sqrt(relative["statistics"]["reduced_chi_square"]), rel=1e-9)
    assert absolute["scale"] == 1.0


def test_a_parameter_at_its_bound_against_lmfit(tmp_path):
    """The baseline c would be negative; held at 0 by its bound, it still counts as a parameter in
    N − P (lmfit counts every varying one)."""
    rng = np.random.default_rng(3)
    t = np.linspace(0, 8, 30)
    y = 4 * np.exp(-0.4 * t) - 0.3 + rng.normal(0, 0.05, t.size)
    data = write_csv(tmp_path / "d.csv", t=t, y=y)
    out = fit_json(DECAY, "--data", data, "--residual", "r", "--bounds", "c=0:inf")
    assert out["parameters"]["c"] == pytest.approx(0, abs=1e-12) and out["converged"]
    result = lmfit_result(lambda x, A, k, c: A * np.exp(-k * x) + c, t, y, {"A": 4, "k": 0.1, "c": 0.1},
                          c=(0, np.inf))  # (lmfit's bound transform has a zero derivative at the bound)
    assert result.params["c"].value == pytest.approx(0, abs=1e-6)
    stats = out["statistics"]
    assert stats["chi_square"] == pytest.approx(result.chisqr, rel=1e-5)
    assert stats["aic"] == pytest.approx(result.aic, rel=1e-5)
    assert stats["bic"] == pytest.approx(result.bic, rel=1e-5)
    assert stats["r_squared"] == pytest.approx(result.rsquared, rel=1e-6)
    for name in ("A", "k"):
        assert out["parameters"][name] == pytest.approx(result.params[name].value, rel=1e-5)


def test_observed_column_named_or_found(tmp_path, line):
    path, data, x, y, sigma = line
    found = fit_json(path, "--data", data, "--residual", "r")
    named = fit_json(path, "--data", data, "--residual", "r", "--observed", "y")
    assert found["statistics"]["r_squared"] == named["statistics"]["r_squared"]
    (tmp_path / "sq.expr").write_text("m = 1\nq = 0\nr = (m*x + q - y)/2\n")  # not a difference
    out = fit_json(tmp_path / "sq.expr", "--data", data, "--residual", "r")
    assert "r_squared" not in out["statistics"] and "aic" in out["statistics"]


def test_sigma_errors(line):
    path, data, *_ = line
    result = invoke("fit", path, "--data", data, "--residual", "r", "--sigma", "sd")
    assert result.exit_code == 1 and "no column `sd`" in result.stderr and "`s`" in result.stderr
    result = invoke("fit", path, "--data", data, "--residual", "r", "--absolute-sigma")
    assert result.exit_code == 2 and "--sigma" in result.output
    data.write_text("x,y,s\n1,2,0.1\n2,4,0\n3,6,0.1\n")
    result = invoke("fit", path, "--data", data, "--residual", "r", "--sigma", "s", "--json")
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 1 and "row 2" in error["message"] and "positive" in error["message"]
    assert "σ = 0.0;" in error["message"]   # (the number as written, not NumPy's repr np.float64(0.0))


def check_intervals(out, result, sigmas, labels):
    """Each bound's distance from the best value (the half-width) to 1e-3 of lmfit's."""
    with warnings.catch_warnings():  # lmfit warns where a side is open
        warnings.simplefilter("ignore")
        ci = result.conf_interval(sigmas=sigmas)
    for name, bounds in ci.items():
        best = result.params[name].value
        theirs = [value for _, value in bounds]
        mine = out["confidence"][name]
        ours = [mine[label][0] for label in reversed(labels)] + [out["parameters"][name]] + \
               [mine[label][1] for label in labels]
        for i, (a, b) in enumerate(zip(theirs, ours)):
            if i == len(labels):
                continue
            if not math.isfinite(a):
                assert b is None, (name, i)
                continue
            assert b - out["parameters"][name] == pytest.approx(a - best, rel=1e-3), (name, i)


def test_decay_intervals_against_conf_interval():
    out = fit_json(DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "1,2")
    t, y = np.loadtxt(DECAY_DATA, delimiter=",", skiprows=1, unpack=True)
    result = lmfit_result(lambda x, A, k, c: A * np.exp(-k * x) + c, t, y, {"A": 4, "k": 0.1, "c": 0})
    check_intervals(out, result, [1, 2], ["1σ", "2σ"])
    for name, by_level in out["confidence"].items():  # asymmetric, and the 1σ one near ± stderr
        low, high = by_level["1σ"]
        assert low < out["parameters"][name] < high
        assert (high - low) / 2 == pytest.approx(out["stderr"][name], rel=0.05)
    text = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "1,2").stdout
    assert "conf_interval" in text and "−2σ" in text and "+1σ" in text


def test_peak_intervals_as_a_probability_against_conf_interval(peak):
    path, data, x, y = peak
    out = fit_json(path, "--data", data, "--residual", "r", "--confidence", "0.95")
    assert set(out["confidence"]["mu"]) == {"95%"}
    start = {"a": 10, "mu": 4.8, "s": 1.5, "b0": 0.5, "b1": 0}
    result = lmfit_result(lambda x, a, mu, s, b0, b1: gaussian(x, a, mu, s, b0, b1), x, y, start)
    check_intervals(out, result, [0.95], ["95%"])


def test_interval_open_at_a_bound(tmp_path):
    """c fitted at its bound 0: its lower side is never reached (lmfit: -inf), so JSON says null."""
    rng = np.random.default_rng(3)
    t = np.linspace(0, 8, 30)
    data = write_csv(tmp_path / "d.csv", t=t, y=4 * np.exp(-0.4 * t) - 0.3 + rng.normal(0, 0.05, t.size))
    out = fit_json(DECAY, "--data", data, "--residual", "r", "--bounds", "c=0:inf", "--confidence", "1")
    low, high = out["confidence"]["c"]["1σ"]
    assert low is None and high > 0
    assert "open" in invoke("fit", DECAY, "--data", data, "--residual", "r", "--bounds", "c=0:inf",
                            "--confidence", "1").stdout


def test_confidence_errors():
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "x")
    assert result.exit_code == 1 and "not a number" in result.stderr
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "0")
    assert result.exit_code == 1 and "probability" in result.stderr
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--confidence", "1")
    assert result.exit_code == 2 and "--residual" in result.output
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "1,2,3,4,5,6", "--json")
    assert result.exit_code == 1 and "at most" in json.loads(result.stderr)["error"]["message"]


def test_confidence_is_bounded_in_parameters(tmp_path):
    from diffcli.commands import fit_intervals

    count = fit_intervals.MAX_PARAMETERS + 1
    names = [f"p{i}" for i in range(count)]
    text = "".join(f"{n} = 1\n" for n in names) + "r = " + " + ".join(f"{n}*x^{i % 3}" for i, n in enumerate(names)) + " - y\n"
    (tmp_path / "many.expr").write_text(text)
    data = write_csv(tmp_path / "d.csv", x=np.linspace(0, 1, count + 5), y=np.linspace(1, 2, count + 5))
    result = invoke("fit", tmp_path / "many.expr", "--data", data, "--residual", "r", "--confidence", "1")
    assert result.exit_code == 1 and f"over {count} parameters" in result.stderr
    assert result.stdout == ""  # refused before the fit


def test_the_plot_has_data_fit_residuals_and_a_legend(line):
    """fit --plot over a column: the data as points, the fitted curve (y + r here, as the model has
    no name of its own), the residual panel under them, a legend naming both; fixed field names."""
    from diffcli.commands import fit as fitting
    from diffcli.program import parse
    from diffcli.renderers import fitreport

    path, data, x, y, sigma = line
    program = parse(path.read_text())
    problem = fitting.Problem(program, ["m", "q"], residual="r", data={"x": x, "y": y})
    found = fitting.fit(problem, "least_squares", start={"m": 1, "q": 0})
    curve = fitting.curve(problem, found, "x")
    spec = fitreport.plot_spec(found, "x", curve)
    loss, right = spec["hconcat"]
    over, residual = right["vconcat"]
    points, fitted = over["layer"]
    assert points["mark"]["type"] == "point" and fitted["mark"]["type"] == "line"
    assert [row["y"] for row in points["data"]["values"]] == list(y)
    m, q = found.parameters["m"], found.parameters["q"]
    assert [row["y"] for row in fitted["data"]["values"]] == pytest.approx(list(m * x + q), rel=1e-12)
    assert fitted["encoding"]["color"]["scale"]["domain"] == ["y (data)", "fit (fit)"]
    drawn = residual["layer"][1]["data"]["values"]
    assert [row["r"] for row in drawn] == pytest.approx(list(m * x + q - y), abs=1e-12)
    for layer in over["layer"] + residual["layer"][1:]:
        assert set(layer["data"]["values"][0]) <= {"x", "y", "r", "series"}
    # the objective falls from ~1e4 to ~10 here: decades, so a log axis
    assert max(found.history) / min(found.history) > 100
    assert loss["encoding"]["y"]["scale"]["type"] == "log"
    flat = fitreport.plot_spec(fitting.Fit("gd", "x", 0, True, "", 1, 2, 1.0, {}, {}, {}, [2.0, 1.0]))
    assert flat["encoding"]["y"]["scale"]["type"] == "linear"


def test_the_plot_renders(tmp_path):
    out = tmp_path / "fit.svg"
    result = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--plot", out, "--x", "t")
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert "residual r" in svg and "model (fit)" in svg and "y (data)" in svg


@pytest.mark.parametrize("style, spec", [("plain", ".2uP"), ("pm", ".2u"), ("latex", ".2uL")])
def test_parameters_with_plus_minus_as_the_uncertainties_package(style, spec):
    from uncertainties import ufloat

    out = fit_json(DECAY, "--data", DECAY_DATA, "--residual", "r")
    text = invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--format", style).stdout
    rows = {line.split()[0]: line for line in text.split("parameters\n")[1].split("\n")[:3]}
    for name, value in out["parameters"].items():
        shown = format(ufloat(value, out["stderr"][name]), spec)
        assert f" {shown.replace('±', ' ± ')}  (" in rows[name], (name, rows[name])
    assert "4.976" in text and "0.025" in text
    assert out["parameters"]["A"] != 4.976  # JSON keeps every digit


def test_uncertainty_headline_format():
    pendulum = ROOT / "samples" / "pendulum.expr"
    assert "g = 9.78+/-0.10" in invoke("uncertainty", pendulum, "--format", "pm").stdout
    assert r"g = 9.78 \pm 0.10" in invoke("uncertainty", pendulum, "--format", "latex").stdout
    assert invoke("uncertainty", pendulum, "--format", "tex").exit_code == 2
