"""`Program.fit(...)`: the fit command's options from Python, the same numbers as `diffcli fit --json`,
and a result with .parameters, .stderr, .covariance (ndarray with .names), .statistics,
.confidence(), .report() and .write(path); `Program.hessian()`'s `.matrix`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffcli
from diffcli.fit_api import NamedMatrix

from test_fit import ROOT, invoke

DECAY = ROOT / "samples" / "decay.expr"
DECAY_DATA = ROOT / "samples" / "decay.csv"


@pytest.fixture(scope="module")
def cli():
    return json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--json").stdout)


@pytest.fixture(scope="module")
def columns():
    t, y = np.loadtxt(DECAY_DATA, delimiter=",", skiprows=1, unpack=True)
    return {"t": t, "y": y}


def check_same_as_the_command(result, cli):
    assert result.parameters == cli["parameters"] and result.stderr == cli["stderr"]
    assert result.statistics == cli["statistics"] and result.converged
    assert isinstance(result.covariance, np.ndarray) and isinstance(result.covariance, NamedMatrix)
    assert result.covariance.names == ["A", "k", "c"]
    for i, a in enumerate(result.covariance.names):
        for j, b in enumerate(result.covariance.names):
            assert result.covariance[i, j] == cli["covariance"][a][b]


def test_data_as_a_path_a_mapping_and_a_data_frame(cli, columns):
    import pandas

    program = diffcli.load(DECAY)
    check_same_as_the_command(program.fit(data=str(DECAY_DATA), residual="r"), cli)
    check_same_as_the_command(program.fit(data=DECAY_DATA, residual="r"), cli)
    check_same_as_the_command(program.fit(["A", "k", "c"], columns, residual="r"), cli)
    check_same_as_the_command(program.fit("A,k,c", pandas.DataFrame(columns), residual="r"), cli)
    check_same_as_the_command(program.fit(data={k: list(v) for k, v in columns.items()}, residual="r"), cli)


def test_options_as_the_command_has_them(columns, tmp_path):
    program = diffcli.load(DECAY)
    sigma = 0.02 + 0.01 * columns["t"]
    data = dict(columns, s=sigma)
    path = tmp_path / "d.csv"
    path.write_text("t,y,s\n" + "".join(f"{float(a)!r},{float(b)!r},{float(c)!r}\n"
                                        for a, b, c in zip(columns["t"], columns["y"], sigma)))
    cli = json.loads(invoke("fit", DECAY, "--data", path, "--residual", "r", "--sigma", "s",
                            "--absolute-sigma", "--bounds", "c=0:0.4", "--json").stdout)
    result = program.fit(data=data, residual="r", sigma="s", absolute_sigma=True, bounds={"c": (0, 0.4)})
    assert result.parameters == pytest.approx(cli["parameters"], rel=1e-12)
    assert result.stderr == pytest.approx(cli["stderr"], rel=1e-12)
    assert result.parameters["c"] == pytest.approx(0.4)
    held = program.fit(["A", "k"], columns, residual="r", values={"c": 0.5})
    assert list(held.parameters) == ["A", "k"]
    bowl = diffcli.parse("a = 3\nb = -1\nf = (a - 1)^2 + 10(b + 2)^2\n").fit(method="BFGS")
    assert bowl.parameters == pytest.approx({"a": 1, "b": -2}, abs=1e-5) and bowl.stderr is None


@pytest.mark.parametrize("name, low, high", [("k", -np.inf, 0.3003029), ("k", 0.30030298, np.inf),
                                             ("c", -np.inf, 0.5118929)])
def test_a_bound_just_short_of_the_optimum_holds(columns, name, low, high):
    # (the optimum: k 0.300302976…, c 0.511896…; least_squares stops short of the bound without
    # holding the parameter there, and the Gauss-Newton steps after it must stay inside the bounds)
    result = diffcli.load(DECAY).fit(data=columns, residual="r", bounds={name: (low, high)})
    assert low <= result.parameters[name] <= high
    assert result.parameters[name] == pytest.approx(high if np.isfinite(high) else low, rel=1e-6)


def test_confidence_report_and_write(cli, columns, tmp_path):
    program = diffcli.load(DECAY)
    result = program.fit(data=columns, residual="r")
    intervals = result.confidence([1, 2])
    shown = json.loads(invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r", "--confidence", "1,2",
                              "--json").stdout)["confidence"]
    assert intervals == shown
    assert set(result.confidence(0.95)["k"]) == {"95%"}
    assert r"\pm" in result.report(style="latex")
    result.write(tmp_path / "fit.json")
    assert json.loads((tmp_path / "fit.json").read_text())["parameters"] == result.parameters
    result.write(tmp_path / "fit.txt")
    assert (tmp_path / "fit.txt").read_text().startswith("fit ")
    result.write(tmp_path / "fit.svg", x="t")
    assert "residual r" in (tmp_path / "fit.svg").read_text()
    result.write(tmp_path / "fitted.expr")
    assert diffcli.load(tmp_path / "fitted.expr").inputs["A"] == result.parameters["A"]


def test_the_report_is_the_command_s():
    result = diffcli.load(DECAY).fit(data=DECAY_DATA, residual="r")
    assert result.report() == invoke("fit", DECAY, "--data", DECAY_DATA, "--residual", "r").stdout


@pytest.mark.parametrize("options, message", [
    ({"data": 3, "residual": "r"}, "not a path"),
    ({"data": {"t": [1, 2], "y": [1]}, "residual": "r"}, "same length"),
    ({"data": {"t": [1, "x"], "y": [1, 2]}, "residual": "r"}, "not numbers"),
    ({"data": {"t": [1, float("nan")], "y": [1, 2]}, "residual": "r"}, "row 2 is nan, not a finite"),
    ({"data": {"t": [1, 2], "y": [1, 2]}, "method": "newton"}, "one of"),
    ({"data": {"t": [1, 2], "y": [1, 2]}, "method": "least_squares"}, "residual"),
    ({"data": {"t": [1, 2], "y": [1, 2]}, "residual": "r", "bounds": {"k": (1, 0)}}, "exceed"),
    ({"data": {"t": [1, 2], "y": [1, 2]}, "residual": "r", "absolute_sigma": True}, "sigma"),
    ({"data": "no-such-file.csv", "residual": "r"}, "cannot read"),
])
def test_errors_are_diffcli_errors(options, message):
    with pytest.raises(diffcli.DiffcliError, match=message):
        diffcli.load(DECAY).fit(**options)
    bowl = diffcli.parse("a = 3\nf = (a - 1)^2\n").fit()
    with pytest.raises(diffcli.DiffcliError, match="residual"):
        bowl.confidence()


def test_hessian_matrix():
    program = diffcli.parse("x = 1.5\ny = -2\nf = x^3*y + sin(x*y)\n")
    h = program.hessian()
    assert isinstance(h.matrix, np.ndarray) and h.matrix.shape == (2, 2)
    assert h.matrix.tolist() == [[h.hessian[a][b] for b in h.wrt] for a in h.wrt]


def test_the_result_shows_its_report_in_jupyter():
    result = diffcli.load(DECAY).fit(data=DECAY_DATA, residual="r")
    html = result._repr_html_()
    assert "4.976 ± 0.025" in html and "R²" in html
