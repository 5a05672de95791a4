"""`diffcli fit`: against closed-form minima, SciPy's curve_fit, and the update rules' own properties."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffcli.commands import fit as fitting
from diffcli.cli import app
from diffcli.program import parse

ROOT = Path(__file__).resolve().parent.parent
BOWL = "# a bowl\na = 3     # start\nb = -1e-3\nf = (a - 1)^2 + 10(b + 2)^2\n"


def invoke(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


@pytest.fixture
def bowl(tmp_path):
    path = tmp_path / "bowl.expr"
    path.write_text(BOWL)
    return path


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "CG", "Newton-CG"])
def test_scipy_methods_find_the_minimum(bowl, method):
    result = invoke("fit", bowl, "--method", method, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["converged"] is True and out["method"] == method
    assert out["parameters"] == pytest.approx({"a": 1.0, "b": -2.0}, abs=1e-5)
    assert out["history"][0] == pytest.approx(4 + 10 * 1.999**2) and out["history"][-1] == out["objective"]
    assert out["evaluations"] >= out["steps"] >= 1
    assert set(out) >= {"method", "converged", "message", "steps", "evaluations", "objective",
                        "parameters", "gradient", "history"}


def test_bounds_hold_the_parameter_at_its_edge(bowl):
    out = json.loads(invoke("fit", bowl, "--bounds", "a=2:inf", "--json").stdout)
    assert out["parameters"]["a"] == 2.0 and out["parameters"]["b"] == pytest.approx(-2.0, abs=1e-5)


def test_gradient_descent_follows_the_decaying_rate(tmp_path):
    """On f = (a - 1)², each step multiplies (a - 1) by (1 - 2·lr_k), lr_k = lr·(1 - 0.9k/steps)."""
    path = tmp_path / "q.expr"
    path.write_text("a = 3\nf = (a - 1)^2\n")
    out = json.loads(invoke("fit", path, "--method", "gd", "--lr", "0.1", "--steps", "7", "--json").stdout)
    gap = 2.0
    for k in range(7):
        gap *= 1 - 2 * 0.1 * (1 - 0.9 * k / 7)
    assert out["parameters"]["a"] == pytest.approx(1 + gap, rel=1e-12)
    assert out["steps"] == 7 and len(out["history"]) == 8 and out["converged"] is False


def test_adam_first_step_is_the_learning_rate_against_the_gradient(tmp_path):
    path = tmp_path / "q.expr"
    path.write_text("a = 3\nb = -2\nf = (a - 1)^2 + 5(b - 4)^2\n")
    out = json.loads(invoke("fit", path, "--method", "adam", "--lr", "0.5", "--steps", "1", "--json").stdout)
    assert out["parameters"] == pytest.approx({"a": 2.5, "b": -1.5}, rel=1e-7)
    many = json.loads(invoke("fit", path, "--method", "adam", "--lr", "0.5", "--steps", "300", "--json").stdout)
    assert many["objective"] < 1e-3 < out["objective"]


def test_report_and_json_agree(bowl):
    text = invoke("fit", bowl)
    assert text.exit_code == 0 and "converged     yes" in text.stdout and "evaluations" in text.stdout
    assert "a" in text.stdout and "start 3" in text.stdout


def test_write_replaces_only_the_literals(bowl):
    result = invoke("fit", bowl, "--write")
    assert result.exit_code == 0, result.output
    text = bowl.read_text()
    assert text.startswith("# a bowl\na = ") and " # start\nb = " in text
    assert text.endswith("f = (a - 1)^2 + 10(b + 2)^2\n")
    fitted = parse(text).inputs
    assert fitted["a"] == pytest.approx(1.0, abs=1e-5) and fitted["b"] == pytest.approx(-2.0, abs=1e-5)


def test_write_takes_exactly_the_literal_from_the_issue(tmp_path):
    """Issue 21: `a = 7#start` became `a = 4.57#start` (the literal's last character kept)."""
    path = tmp_path / "ns.expr"
    path.write_text("a = 7#start\nf = (a - 2)^2\n")
    result = invoke("fit", path, "--method", "gd", "--steps", "1", "--lr", "0.25", "--write")
    assert result.exit_code == 0, result.output
    assert path.read_text() == "a = 4.5#start\nf = (a - 2)^2\n"


# (layout before, the literal's text in it, layout after with {} for the new literal)
LAYOUTS = [
    ("a = 3#c\nf = (a - 1)^2\n", "a = {}#c\nf = (a - 1)^2\n"),
    ("a = 3        # start\nf = (a - 1)^2\n", "a = {}        # start\nf = (a - 1)^2\n"),
    ("a\t=\t3\t# tab\nf = (a - 1)^2\n", "a\t=\t{}\t# tab\nf = (a - 1)^2\n"),
    ("a = 3; f = (a - 1)^2", "a = {}; f = (a - 1)^2"),
    ("a = 3;f = (a - 1)^2\n", "a = {};f = (a - 1)^2\n"),
    ("a = 3 ± 0.5\nf = (a - 1)^2\n", "a = {} ± 0.5\nf = (a - 1)^2\n"),
    ("a = 3±5%\nf = (a - 1)^2\n", "a = {}±5%\nf = (a - 1)^2\n"),
    ("a = 3 +/- 0.5\nf = (a - 1)^2\n", "a = {} +/- 0.5\nf = (a - 1)^2\n"),
    ("a = 3\r\nf = (a - 1)^2\r\n", "a = {}\r\nf = (a - 1)^2\r\n"),
    ("\ufeffa = 3\nf = (a - 1)^2\n", "\ufeffa = {}\nf = (a - 1)^2\n"),
    ("a = 3.0E+00\nf = (a - 1)^2\n", "a = {}\nf = (a - 1)^2\n"),
    ("a = 1e-3#x\nf = (a - 1)^2\n", "a = {}#x\nf = (a - 1)^2\n"),
    ("a = -3#x\nf = (a - 1)^2\n", "a = {}#x\nf = (a - 1)^2\n"),
    ("a = - 3 # x\nf = (a - 1)^2\n", "a = {} # x\nf = (a - 1)^2\n"),
    ("a = +3\nf = (a - 1)^2", "a = {}\nf = (a - 1)^2"),
    ("f = (a - 1)^2\na = 3", "f = (a - 1)^2\na = {}"),
]
VALUES = [4.5, 0.1 + 0.2, 0.9999997662902743, -2.5, -0.0, 1e-300, 5e-324, -1.7976931348623157e308,
          1e16, 123456789012345.6, 2.0]


@pytest.mark.parametrize("before, after", LAYOUTS)
def test_write_replaces_exactly_the_literal_in_every_layout(before, after):
    from diffcli.formatting import number_text

    program = parse(before)
    for value in VALUES:
        text = fitting.written_back(program, {"a": value})
        assert text == after.format(number_text(value)), (value, text)
        again = parse(text).inputs["a"]
        assert again == value and math.copysign(1, again) == math.copysign(1, value)
        assert len(number_text(value)) <= len(repr(value))  # the shortest round-trip form


def test_write_keeps_the_bytes_around_the_literals(tmp_path):
    """The whole file byte for byte: a BOM, CRLF line ends and the other literals stay."""
    path = tmp_path / "crlf.expr"
    path.write_bytes("\ufeff# bowl\r\na = 3#x\r\nb = -1e-3\t; k = 10\r\nf = (a - 1)^2 + k*(b + 2)^2\r\n"
                     .encode())
    result = invoke("fit", path, "--wrt", "a,b", "--json", "--write")
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout)["parameters"]
    from diffcli.formatting import number_text

    assert path.read_bytes() == (f"\ufeff# bowl\r\na = {number_text(fitted['a'])}#x\r\n"
                                 f"b = {number_text(fitted['b'])}\t; k = 10\r\n"
                                 "f = (a - 1)^2 + k*(b + 2)^2\r\n").encode()
    assert {k: parse(path.read_text(encoding="utf-8-sig")).inputs[k] for k in "ab"} == fitted


def test_a_free_input_cannot_be_written_back(tmp_path):
    path = tmp_path / "free.expr"
    path.write_text("a = 1\nf = (a - 2)^2 + (o - 3)^2\n")
    result = invoke("fit", path, "--wrt", "a,o", "--set", "o=0", "--write")
    assert result.exit_code == 1 and "free input" in result.stderr
    assert path.read_text() == "a = 1\nf = (a - 2)^2 + (o - 3)^2\n"
    free = json.loads(invoke("fit", path, "--wrt", "a,o", "--set", "o=0", "--json").stdout)
    assert free["parameters"] == pytest.approx({"a": 2.0, "o": 3.0}, abs=1e-5)


def test_wrt_of_a_computed_name_is_refused(bowl):
    result = invoke("fit", bowl, "--wrt", "f", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert json.loads(result.stderr)["error"]["kind"] == "input" and "computed" in result.stderr
    typo = invoke("fit", bowl, "--wrt", "aa")
    assert typo.exit_code == 1 and "did you mean `a`" in typo.stderr


def test_a_non_finite_objective_stops_at_the_last_good_point(tmp_path):
    """gd with too large a rate overflows: the report is of the last finite point, nothing is written."""
    path = tmp_path / "steep.expr"
    source = "a = 3\nf = exp(a^2)\n"
    path.write_text(source)
    result = invoke("fit", path, "--method", "gd", "--lr", "1", "--steps", "50", "--write", "--json")
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["converged"] is False and math.isfinite(out["objective"])
    assert out["parameters"]["a"] == 3.0  # the only finite point: the first step overflows
    assert json.loads(result.stderr)["error"]["kind"] == "domain"
    assert path.read_text() == source


def test_ctrl_c_reports_the_best_point(bowl):
    program = parse(BOWL)
    problem = fitting.Problem(program, ["a", "b"])

    def progress(step, objective, norm):
        if step == 3:
            raise KeyboardInterrupt

    result = fitting.fit(problem, "gd", start={"a": 3, "b": -1e-3}, lr=0.01, steps=100, progress=progress)
    assert result.interrupted and not result.converged and result.steps == 3
    assert result.objective == min(result.history) < result.history[0]


def test_bad_command_lines_exit_2(bowl):
    for args in (["--bounds", "a=3"], ["--bounds", "a=2:1"], ["--method", "CG", "--bounds", "a=0:1"],
                 ["--lr", "0.1"], ["--method", "least_squares"], ["--plot", "x.gif"], ["--x", "t"],
                 ["--method", "gd", "--lr", "nan"], ["--method", "adam", "--lr", "inf"]):
        assert invoke("fit", bowl, *args).exit_code == 2, args


def test_the_loss_plot(bowl, tmp_path):
    out = tmp_path / "loss.svg"
    result = invoke("fit", bowl, "--plot", out)
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith("<svg")


def test_set_is_checked_as_grad_checks_it(bowl):
    unused = invoke("fit", bowl, "--set", "zzz=1,a=2", "--json")
    assert unused.exit_code == 0 and "does not use `zzz`" in unused.stderr
    assert json.loads(unused.stdout)["history"][0] == pytest.approx(1 + 10 * 1.999**2)
    typo = invoke("fit", bowl, "--set", "aa=1")
    assert typo.exit_code == 1 and "did you mean `a`" in typo.stderr
    computed = invoke("fit", bowl, "--set", "f=1")
    assert computed.exit_code == 1 and "computed" in computed.stderr


def test_a_free_input_without_a_value_is_named_with_its_place(tmp_path):
    path = tmp_path / "free.expr"
    path.write_text("a = 1\nf = (a - o)^2\n")
    result = invoke("fit", path)
    assert result.exit_code == 1 and "`o` has no value" in result.stderr and ":2:" in result.stderr


def test_the_progress_bar_is_live_and_transient():
    import io
    import re

    from rich.console import Console

    from diffcli.renderers.fitreport import Progress

    for total, expected in ((100, "3/100"), (None, "step 3")):  # gd's steps; a SciPy method's own limit
        stream = io.StringIO()
        with Progress("gd", total, console=Console(file=stream, force_terminal=True, width=100)) as progress:
            progress(3, 0.25, 1.5)
        raw = stream.getvalue()
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
        assert "gd" in text and expected in text and "objective 0.25  |gradient| 1.5" in text, text
        assert re.search(r"(-:--:--|\d:\d\d:\d\d)", text) and "━" in text  # the time (left, or so far), the bar
        assert raw.endswith("\x1b[2K")  # erased at the end


def test_newton_cg_with_exact_hessian_vector_products_is_exact_on_a_quadratic(bowl):
    from diffcli.program import Program

    if not hasattr(Program, "hvp"):
        pytest.skip("the Hessian-vector products are not merged yet")
    out = json.loads(invoke("fit", bowl, "--method", "Newton-CG", "--json").stdout)
    assert out["parameters"] == {"a": 1.0, "b": -2.0} and out["objective"] == 0.0
    assert "finite differences" not in out["message"]


@pytest.mark.parametrize("residual", [True, False])
def test_hessian_vector_products_over_data_are_exact(residual):
    """Over data rows, for a mean and for a sum of squares (2·Σ ∇r ∇rᵀv + r ∇²r v): H·v against
    central differences of the objective's exact gradient."""
    import numpy as np

    program = parse("A = 4\nk = 0.1\nc = 0\nmodel = A*exp(-k*t) + c\nr = model - y\n")
    data = {"t": np.linspace(0.0, 10.0, 12), "y": 5 * np.exp(-0.3 * np.linspace(0.0, 10.0, 12)) + 0.5}
    problem = fitting.Problem(program, ["A", "k", "c"], of=None if residual else "model",
                              residual="r" if residual else None, data=data)
    x, v = np.array([4.2, 0.25, 0.3]), np.array([0.3, -1.0, 0.7])
    h = 1e-6
    numeric = (problem.evaluate(x + h * v)[1] - problem.evaluate(x - h * v)[1]) / (2 * h)
    exact = problem.hessian_vector(x, v)
    assert np.allclose(exact, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())
    # and Newton-CG on the decay fit takes them, not SciPy's differences
    done = invoke("fit", Path(__file__).parent.parent / "samples" / "decay.expr", "--data",
                  Path(__file__).parent.parent / "samples" / "decay.csv", "--residual", "r",
                  "--method", "Newton-CG", "--json")
    out = json.loads(done.stdout)
    assert done.exit_code == 0 and "finite differences" not in out["message"]
    assert out["parameters"]["k"] == pytest.approx(0.3003, abs=1e-3)


@pytest.mark.parametrize("model, warning", [
    ("r = A*B*t - y", "the covariance cannot be estimated: the Jacobian is singular"),
    ("r = A*t + B*(t + 1e-7*t^2) - y", "the covariance is ill-conditioned"),
])
def test_standard_errors_that_cannot_be_trusted_say_so(model, warning, tmp_path):
    (tmp_path / "m.expr").write_text(f"A = 1\nB = 2\n{model}\n")
    (tmp_path / "d.csv").write_text("t,y\n1,2\n2,4.1\n3,5.9\n4,8.2\n")
    done = invoke("fit", tmp_path / "m.expr", "--data", tmp_path / "d.csv", "--residual", "r", "--json")
    out = json.loads(done.stdout)
    assert done.exit_code == 0 and any(w.startswith(warning) for w in out["warnings"]), out["warnings"]
    text = invoke("fit", tmp_path / "m.expr", "--data", tmp_path / "d.csv", "--residual", "r")
    assert warning in " ".join(text.output.split())  # (the table may wrap it)


def test_too_few_rows_give_no_standard_errors(tmp_path):
    (tmp_path / "m.expr").write_text("A = 1\nB = 2\nr = A*t + B - y\n")
    (tmp_path / "d.csv").write_text("t,y\n1,2\n2,4.1\n")
    out = json.loads(invoke("fit", tmp_path / "m.expr", "--data", tmp_path / "d.csv", "--residual", "r",
                            "--json").stdout)
    assert any("no standard errors: 2 rows for 2 parameters" in w for w in out["warnings"])


def test_micrograds_moons_demo_trains_to_full_accuracy():
    """The README's demo: 100 steps of gradient descent on the 337-parameter network reach ≥ 99%."""
    samples = Path(__file__).parent.parent / "samples" / "moons"
    done = invoke("fit", samples / "moons_mlp.expr", "--data", samples / "moons.csv", "--method", "gd",
                  "--steps", "100", "--report", "accuracy", "--json")
    out = json.loads(done.stdout)
    assert done.exit_code == 0 and out["report"]["accuracy"] >= 0.99
    assert out["history"][-1] < out["history"][0] / 10


def test_the_polish_keeps_a_bounded_fit_inside_its_bounds():
    """The polish's Gauss-Newton step is clipped to the bounds where there are bounds (a slip
    once clipped it only where there were none): r = x - 5 from 0.5, bounded to [-1, 1]."""
    import numpy as np

    from diffcli.commands import fit as fit_module

    class Line:
        factored = None

        def evaluate(self, x):
            r = x - 5.0
            return float(r @ r), None, r, np.ones((1, 1))

    x, _ = fit_module._polish(Line(), np.array([0.5]), np.array([True]), np.array([-1.0]), np.array([1.0]),
                              lambda x: None, {"steps": 0})
    assert x.tolist() == [1.0]


def test_equal_bounds_with_least_squares_are_a_diagnostic(tmp_path):
    """--bounds a=1:1 fixes a: L-BFGS-B takes it, SciPy's least_squares needs LOW < HIGH (it
    raised, and the user saw an internal error)."""
    path = tmp_path / "line.expr"
    path.write_text("a = 1\nb = 0\nr = a*x + b - y\n")
    data = tmp_path / "line.csv"
    data.write_text("x,y\n0,1\n1,3\n2,5\n3,7.1\n")
    done = invoke("fit", path, "--data", data, "--residual", "r", "--bounds", "a=1:1", "--json")
    assert done.exit_code == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "input" and "--bounds a" in error["message"]
    held = invoke("fit", path, "--data", data, "--residual", "r", "--bounds", "a=1:1", "--method", "L-BFGS-B",
                  "--json")
    assert held.exit_code == 0 and json.loads(held.stdout)["parameters"]["a"] == 1.0


def test_a_nan_trial_step_of_the_trust_region_is_a_rejected_step(tmp_path):
    """One row, two parameters: SciPy's trust region reaches r = 0 and then tries NaN points; each is
    a rejected step (it was evaluated, and the user saw `--set a: nan is not a finite number`)."""
    path = tmp_path / "line.expr"
    path.write_text("a = 1\nb = 0\nr = a*x + b - y\n")
    data = tmp_path / "one.csv"
    data.write_text("x,y\n0,1\n")
    for bounds in ([], ["--bounds", "a=-10:10"]):
        done = invoke("fit", path, "--data", data, "--residual", "r", *bounds, "--json")
        assert done.exit_code == 0, done.output
        out = json.loads(done.stdout)
        assert out["objective"] == 0.0 and out["parameters"] == {"a": 1.0, "b": 1.0}


def test_the_statistics_are_of_the_point_reported_when_lm_stops_early(tmp_path):
    """--steps 1 ends at the start; χ² and the reduced χ² that scales the standard errors are of
    that point's residuals (MINPACK wrote its next point's residuals into the array it was given
    first, the cached residuals at the start, so χ² was the solution's while the objective was not)."""
    path = tmp_path / "line.expr"
    path.write_text("a = 1\nb = 0\nr = a*x + b - y\n")
    data = tmp_path / "line.csv"
    data.write_text("x,y\n0,1\n1,3\n2,5\n3,7.1\n")
    done = invoke("fit", path, "--data", data, "--residual", "r", "--steps", "1", "--json")
    out = json.loads(done.stdout)
    assert out["parameters"] == {"a": 1.0, "b": 0.0} and out["objective"] == pytest.approx(30.81)
    assert out["statistics"]["chi_square"] == out["objective"]
    assert out["scale"] == pytest.approx(30.81 / 2)


def test_a_parameter_that_divides_at_zero_is_a_domain_error_not_an_internal_one(tmp_path):
    """The fit's compiled passes take the parameters as Python floats: 1/c at c = 0 raised
    ZeroDivisionError out of them (an internal error from every method); now the interpreter says
    where, as for any undefined value."""
    data = tmp_path / "line.csv"
    data.write_text("x,y\n0,1\n1,3\n2,5\n3,7.1\n")
    path = tmp_path / "zero.expr"
    for text, options in [("a = 1\nc = 0\nr = a*x + 1/c - y\n", ["--residual", "r"]),
                          ("a = 1\nc = 0\nr = (a*x + 1/c - y)^2\n", []),
                          ("a = 1\nc = 0\nr = (a*x + 1/c - y)^2\n", ["--method", "gd"])]:
        path.write_text(text)
        done = invoke("fit", path, "--data", data, *options, "--json")
        assert done.exit_code == 1, done.output
        error = json.loads(done.stderr)["error"]
        assert error["kind"] == "domain" and "division by zero in `1/c`" in error["message"]


def test_observed_values_all_equal_have_no_r_squared(tmp_path):
    """R² = 1 − Σ(y − ŷ)²/Σ(y − ȳ)² has no value where every y is the same (one row, or constant
    data): it was -inf, which --json could not write (an internal error)."""
    path = tmp_path / "flat.expr"
    path.write_text("a = 2\nb = 2\nr = max(2*t, 0.5) - y\n")
    for rows in ("3,-0.189\n", "1,2\n2,2\n3,2\n"):
        data = tmp_path / "flat.csv"
        data.write_text("t,y\n" + rows)
        done = invoke("fit", path, "--data", data, "--residual", "r", "--json")
        assert done.exit_code == 0, done.output
        statistics = json.loads(done.stdout)["statistics"]
        assert "r_squared" not in statistics and statistics["chi_square"] > 0
