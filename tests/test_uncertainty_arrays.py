"""Uncertainty of array programs (SPEC "Arrays", issue 19 part 4): `x = [..] ± u`, `± [..]`,
`± 1%`, the budget by element with a group per array, element labels in --correlation, --order 2
and --monte-carlo. References: the `uncertainties` package (unumpy), the unrolled scalar program
run through the scalar propagation, and NumPy sampling by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import uncertainties
from uncertainties import unumpy

import diffcli
from diffcli import DiffcliError
from diffcli.formatting import plus_minus

from conftest import run_diffcli

X, UX = [1.2, 3.4, 0.7], [0.1, 0.2, 0.05]
W = [[1.0, 2.0, 0.5], [3.0, -1.0, 2.0]]
K, UK = 1.5, 0.1

ARRAYS = f"""# a measured vector, a matrix known to 2%, a scalar
x = {X} ± {UX}
W = {W} ± 2%
k = {K} ± {UK}
h = tanh(W @ x / 4)
y = k * sum(h^2) + log(norm(x)) + x[0] * x[2]
"""


def unrolled() -> str:
    """The same model written with scalars only: one input per element (x_0, W_0_1), the scalar
    engine's and the scalar propagation's."""
    lines = [f"x_{i} = {v!r} ± {u!r}" for i, (v, u) in enumerate(zip(X, UX))]
    lines += [f"W_{i}_{j} = {v!r} ± 2%" for i, row in enumerate(W) for j, v in enumerate(row)]
    lines.append(f"k = {K} ± {UK}")
    for i in range(2):
        lines.append(f"h_{i} = tanh((" + " + ".join(f"W_{i}_{j}*x_{j}" for j in range(3)) + ") / 4)")
    lines.append("y = k * (h_0^2 + h_1^2) + log(sqrt(x_0^2 + x_1^2 + x_2^2)) + x_0 * x_2")
    return "\n".join(lines) + "\n"


def scalar_label(label: str) -> str:
    return label.replace("[", "_").replace(",", "_").replace("]", "")


def by_name(result):
    return {row.name: row for row in result.budget}


# ---------------------------------------------------------------- against `uncertainties`

def test_the_budget_matches_the_uncertainties_package_element_by_element():
    x = unumpy.uarray(X, UX)
    w = unumpy.uarray(np.array(W), 0.02 * np.abs(np.array(W)))
    k = uncertainties.ufloat(K, UK)
    h = unumpy.tanh(w.dot(x) / 4)
    y = k * (h ** 2).sum() + unumpy.log(unumpy.sqrt((x ** 2).sum())) + x[0] * x[2]
    result = diffcli.parse(ARRAYS).uncertainty()
    assert result.value == pytest.approx(y.nominal_value, rel=1e-13)
    assert result.uncertainty == pytest.approx(y.std_dev, rel=1e-12)
    rows = by_name(result)
    variables = {f"x[{i}]": x[i] for i in range(3)}
    variables.update({f"W[{i},{j}]": w[i, j] for i in range(2) for j in range(3)})
    variables["k"] = k
    assert set(rows) == set(variables)  # every element, labelled row-major, and the scalar
    components = y.error_components()
    for label, variable in variables.items():
        assert rows[label].sensitivity == pytest.approx(y.derivatives[variable], rel=1e-11, abs=1e-14)
        assert rows[label].u == pytest.approx(variable.std_dev, rel=1e-15)
        assert rows[label].contribution == pytest.approx(components[variable], rel=1e-11, abs=1e-14)
    # a group: u(y) from its elements alone, and their shares summed
    groups = {group.name: group for group in result.groups}
    assert list(groups) == ["W", "x"] or list(groups) == ["x", "W"]
    for name, prefix in (("x", "x["), ("W", "W[")):
        own = math.sqrt(sum(components[v] ** 2 for label, v in variables.items() if label.startswith(prefix)))
        assert groups[name].contribution == pytest.approx(own, rel=1e-11)
        assert groups[name].share == pytest.approx(own ** 2 / y.std_dev ** 2, rel=1e-10)
    assert sum(row.share for row in result.budget) == pytest.approx(1.0, rel=1e-12)


def test_correlated_elements_and_a_scalar_match_the_uncertainties_package():
    text = "x = [2.0, 3.0] ± [0.1, 0.3]\nk = 1.5 ± 0.2\ny = x[0] * x[1] + k * sum(x)\n"
    r = [[1.0, 0.3, -0.4], [0.3, 1.0, 0.0], [-0.4, 0.0, 1.0]]
    a, b, k = uncertainties.correlated_values_norm([(2.0, 0.1), (3.0, 0.3), (1.5, 0.2)], r)
    y = a * b + k * (a + b)
    result = diffcli.parse(text).uncertainty(correlations={("x[0]", "x[1]"): 0.3, ("k", "x[-2]"): -0.4})
    assert result.uncertainty == pytest.approx(y.std_dev, rel=1e-12)
    assert result.correlations == {("x[0]", "x[1]"): 0.3, ("k", "x[0]"): -0.4}  # as the budget labels them
    assert sum(row.share for row in result.budget) == pytest.approx(1.0, rel=1e-12)


# ---------------------------------------------------------------- against the unrolled scalar program

@pytest.mark.parametrize("options", [{}, {"correlations": {("x[0]", "x[2]"): 0.5, ("W[1,2]", "k"): -0.3}},
                                     {"order": 2}, {"order": 2, "correlations": {("x[1]", "W[0,0]"): 0.4}}])
def test_the_array_program_propagates_as_its_unrolled_scalar_program(options):
    arrays = diffcli.parse(ARRAYS).uncertainty(**options)
    scalar_options = dict(options)
    if "correlations" in options:
        scalar_options["correlations"] = {(scalar_label(a), scalar_label(b)): r
                                          for (a, b), r in options["correlations"].items()}
    scalars = diffcli.parse(unrolled()).uncertainty(**scalar_options)
    assert arrays.value == pytest.approx(scalars.value, rel=1e-14)
    assert arrays.uncertainty == pytest.approx(scalars.uncertainty, rel=1e-12)
    reference = by_name(scalars)
    for row in arrays.budget:
        twin = reference[scalar_label(row.name)]
        assert (row.value, row.u) == pytest.approx((twin.value, twin.u), rel=1e-15)
        assert row.sensitivity == pytest.approx(twin.sensitivity, rel=1e-11, abs=1e-14)
        assert row.share == pytest.approx(twin.share, rel=1e-9, abs=1e-14)
    if options.get("order") == 2:  # (differences of exact gradients, where hessian takes no arrays)
        assert scalars.second_order.exact
        rel = 1e-12 if arrays.second_order.exact else 1e-8
        assert arrays.second_order.term == pytest.approx(scalars.second_order.term, rel=rel)
        assert arrays.second_order.mean_shift == pytest.approx(scalars.second_order.mean_shift, rel=rel)
        assert arrays.second_order.uncertainty == pytest.approx(scalars.second_order.uncertainty, rel=rel)


def test_the_difference_hessian_against_the_exact_one_of_the_unrolled_program():
    from diffcli.interpreters.uncertainty import _Elements, _difference_hessian

    program = diffcli.parse(ARRAYS)
    result = program.grad()
    given = dict(program.graph.uncertainties)
    elements = _Elements(program, list(given), result.inputs, given, result.gradients)
    ours = _difference_hessian(program, result.inputs, "y", elements, elements.u)
    scalar = diffcli.parse(unrolled())
    exact = scalar.hessian(None, "y", [scalar_label(label) for label in elements.labels])
    assert np.allclose(ours, exact.matrix if hasattr(exact, "matrix") else
                       [[exact.hessian[a][b] for b in exact.wrt] for a in exact.wrt], rtol=1e-7, atol=1e-9)


def test_the_budget_keeps_an_array_together_sorted_by_share():
    result = diffcli.parse(ARRAYS).uncertainty()
    order = [row.group or row.name for row in result.budget]
    runs = [key for i, key in enumerate(order) if i == 0 or order[i - 1] != key]
    assert len(runs) == len(set(runs)) == 3  # each array's elements in one run
    unit_share = {group.name: group.share for group in result.groups}
    unit_share.update({row.name: row.share for row in result.budget if row.group is None})
    assert [unit_share[key] for key in runs] == sorted(unit_share.values(), reverse=True)
    for group in result.groups:
        shares = [row.share for row in result.budget if row.group == group.name]
        assert shares == sorted(shares, reverse=True)


# ---------------------------------------------------------------- second order and Monte Carlo by hand

def test_the_second_order_of_a_quadratic_model_is_the_variance_numpy_sampling_finds():
    # degree two: u_c² + ½·tr((H·V)²) is y's exact variance for normal inputs
    text = "x = [1.0, -0.5] ± [0.3, 0.4]\nA = [[2, 1], [1, 3]]\ny = x @ (A @ x) + 0.5*x[0]\n"
    result = diffcli.parse(text).uncertainty(order=2)
    rng = np.random.default_rng(7)
    n = 400_000
    x = np.array([1.0, -0.5]) + rng.standard_normal((n, 2)) * [0.3, 0.4]
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    y = np.einsum("ni,ij,nj->n", x, a, x) + 0.5 * x[:, 0]
    std_error = y.std() / math.sqrt(2 * (n - 1))
    assert abs(result.second_order.uncertainty - y.std()) < 4 * std_error
    assert abs(result.uncertainty - y.std()) > 10 * std_error  # the first order alone falls short
    # the shift of the mean: ½·tr(H·V) = tr(A·V), exactly
    v = np.diag([0.09, 0.16])
    assert result.second_order.mean_shift == pytest.approx(float(np.trace(a @ v)), rel=1e-8)
    assert abs(y.mean() - result.value - result.second_order.mean_shift) < 4 * y.std() / math.sqrt(n)


def test_monte_carlo_runs_the_samples_numpy_draws_with_the_sample_axis_leading():
    text = "x = [1.2, 3.4] ± [0.1, 0.2]\nW = [[1, 2], [3, 4]] ± 1%\nk = 2 ± 0.2\ny = k * sum(tanh(W @ x / 8))\n"
    result = diffcli.parse(text).uncertainty(monte_carlo=20_000, seed=3)
    # the same draws by hand: SFC64(seed), one row per uncertain element in budget-label order
    # (x row-major, W row-major, k), scaled and shifted
    centre = np.array([1.2, 3.4, 1, 2, 3, 4, 2.0])
    scale = np.array([0.1, 0.2, 0.01, 0.02, 0.03, 0.04, 0.2])
    z = np.random.Generator(np.random.SFC64(3)).standard_normal((7, 20_000))
    s = (z * scale[:, None] + centre[:, None]).T
    x, w, k = s[:, 0:2], s[:, 2:6].reshape(-1, 2, 2), s[:, 6]
    y = k * np.tanh(np.einsum("nij,nj->ni", w, x) / 8).sum(axis=1)
    mc = result.monte_carlo
    assert mc.n == 20_000 and mc.failed == 0
    assert mc.mean == pytest.approx(y.mean(), rel=1e-12)
    assert mc.std == pytest.approx(y.std(ddof=1), rel=1e-10)
    assert mc.agrees


def test_monte_carlo_with_correlated_elements_matches_numpy_sampling():
    text = "x = [1.0, 2.0] ± [0.2, 0.1]\ny = sum(exp(x / 4))\n"
    result = diffcli.parse(text).uncertainty(monte_carlo=100_000, seed=1, correlations={("x[0]", "x[1]"): 0.8})
    cov = np.array([[0.04, 0.8 * 0.02], [0.8 * 0.02, 0.01]])
    x = np.random.default_rng(11).multivariate_normal([1.0, 2.0], cov, size=400_000)
    y = np.exp(x / 4).sum(axis=1)
    mc = result.monte_carlo
    assert abs(mc.mean - y.mean()) < 5 * y.std() * math.sqrt(1 / 100_000 + 1 / 400_000)
    assert abs(mc.std - y.std()) < 5 * y.std() * math.sqrt(1 / 200_000 + 1 / 800_000)


def test_monte_carlo_counts_the_samples_outside_a_domain():
    result = diffcli.parse("x = [1.0, 0.05] ± 0.1\ny = sum(log(x))\n").uncertainty(monte_carlo=2_000, seed=0)
    mc = result.monte_carlo
    assert 0 < mc.failed < 2_000
    assert "x[1]" in mc.first_error.message


# ---------------------------------------------------------------- amounts: the file, --set, --uncertainty

def test_one_amount_for_every_element_and_a_relative_one_of_each_value_used():
    program = diffcli.parse("x = [1.2, -3.4] ± 0.1\nW = [[1, -2], [3, 4]] ± 5%\ny = sum(W @ x)\n")
    rows = by_name(program.uncertainty())
    assert [rows[f"x[{i}]"].u for i in range(2)] == [0.1, 0.1]
    assert [rows[label].u for label in ("W[0,0]", "W[0,1]", "W[1,0]", "W[1,1]")] == [0.05, 0.1, 0.15000000000000002, 0.2]
    # --set keeps the file's uncertainty, as a scalar input's: absolute stays, relative follows the value
    rows = by_name(program.uncertainty({"x": [5.0, 6.0], "W": [[10, 20], [30, -40]]}))
    assert rows["x[1]"].u == 0.1 and rows["x[1]"].value == 6.0
    assert rows["W[1,1]"].u == pytest.approx(2.0) and rows["W[0,0]"].u == pytest.approx(0.5)


def test_the_uncertainty_option_takes_an_array_or_one_number():
    program = diffcli.parse("x = [1.0, 2.0]\nk = 3\ny = k * sum(x^2)\n")
    rows = by_name(program.uncertainty(uncertainties={"x": "[0.1, 0.3]", "k": "1%"}))
    assert (rows["x[0]"].u, rows["x[1]"].u, rows["k"].u) == (0.1, 0.3, 0.03)
    rows = by_name(program.uncertainty(uncertainties={"x": 0.2}))
    assert rows["x[0]"].u == rows["x[1]"].u == 0.2 and "k" not in rows
    rows = by_name(program.uncertainty(uncertainties={"x": np.array([0.5, 0.0])}))
    assert (rows["x[0]"].u, rows["x[1]"].u) == (0.5, 0.0)


def test_a_scalar_program_has_no_groups():
    result = diffcli.parse("a = 2 ± 0.1\nb = 3 ± 0.2\ny = a*b\n").uncertainty()
    assert result.groups is None
    assert "groups" not in json.loads(run_diffcli("uncertainty", "-", "--json", input=b"a = 2 +/- 0.1\ny = a^2\n").stdout_text)


# ---------------------------------------------------------------- bad input: located, bounded

@pytest.mark.parametrize("text, kind, line, column, message", [
    ("x = [1.2, 3.4] ± [0.1, 0.2, 0.3]\ny = sum(x)\n", "shape", 1, 16, "`±` needs an uncertainty of `x`'s shape"),
    ("W = [[1, 2], [3, 4]] ± [0.1, 0.2]\ny = sum(W)\n", "shape", 1, 22, "`±` needs an uncertainty of `W`'s shape"),
    ("a = 1\nx = [1.2, 3.4] ± [0.1, -0.2]\ny = sum(x)\n", "syntax", 2, 24, "an uncertainty is a number ≥ 0, not `-0.2`"),
    ("x = [1, 2] ± [[0.1, 0.2], [0.3]]\ny = sum(x)\n", "shape", 1, 27, "this row of uncertainties has 1 element"),
    ("x = 2 ± [0.1, 0.2]\ny = x\n", "shape", 1, 9, "`x` is a scalar, and its uncertainty an array"),
    ("x = 2*[1, 2] ± 0.1\ny = sum(x)\n", "syntax", 1, 14, "only an input's number can carry an uncertainty"),
    ("x = [1, 2] ± [0.1, 2*3]\ny = sum(x)\n", "syntax", 1, 14, "expected a number after `±`"),
    ("W = zeros(2, 2) ± 0.1\ny = sum(W)\n", "syntax", 1, 17, "only an input's number can carry an uncertainty"),
])
def test_bad_amounts_in_the_file_are_located_errors(text, kind, line, column, message):
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text).uncertainty()
    error = caught.value
    assert (error.kind, error.line, error.column) == (kind, line, column)
    assert error.message.startswith(message)
    done = run_diffcli("uncertainty", "-", "--json", input=text.encode())
    assert done.returncode == 1 and not done.stdout
    error = json.loads(done.stderr_text)["error"]
    assert (error["kind"], error["line"], error["column"]) == (kind, line, column)


@pytest.mark.parametrize("options, message", [
    ({"correlations": {("x[2]", "x[0]"): 0.3}}, "`x[2]` is not an element of `x` (a vector of 2)"),
    ({"correlations": {("W[0,2]", "x[0]"): 0.3}}, "`W[0,2]` is not an element of `W` (a 2×2 matrix)"),
    ({"correlations": {("W[0]", "x[0]"): 0.3}}, "`W[0]` is not an element of `W`"),
    ({"correlations": {("x", "k"): 0.3}}, "`x` is an array (a vector of 2): correlate its elements"),
    ({"correlations": {("x[0]", "x[0]"): 0.3}}, "an input's correlation with itself is 1"),
    ({"correlations": {("x[0]", "z[0]"): 0.3}}, "`z[0]` is not an input with an uncertainty"),
    ({"uncertainties": {"x": "[0.1, 0.2, 0.3]"}}, "--uncertainty x: `x` is a vector of 2, but its uncertainty is a vector of 3"),
    ({"uncertainties": {"k": "[0.1, 0.2]"}}, "--uncertainty k: `k` is a scalar, but its uncertainty is a vector of 2"),
    ({"uncertainties": {"x": "[0.1, -0.2]"}}, "holds a value that is not an uncertainty"),
    ({"uncertainties": {"x": "[0.1, 0.2"}}, "is not an uncertainty"),
])
def test_bad_options_are_input_errors(options, message):
    program = diffcli.parse("x = [1.0, 2.0] ± 0.1\nW = [[1, 2], [3, 4]] ± 1%\nk = 2 ± 0.1\ny = k * sum(W @ x)\n")
    with pytest.raises(DiffcliError) as caught:
        program.uncertainty(**options)
    assert caught.value.kind == "input"
    assert message in caught.value.message


def test_bounds_are_quick_refusals(monkeypatch):
    from diffcli.interpreters import uncertainty

    program = diffcli.parse("x = [1.0, 2.0, 3.0] ± 0.1\ny = sum(x^2)\n")
    monkeypatch.setattr(uncertainty, "MAX_SECOND_ORDER", 2)
    result = program.grad()
    given = dict(program.graph.uncertainties)
    elements = uncertainty._Elements(program, list(given), result.inputs, given, result.gradients)
    with pytest.raises(DiffcliError, match="too big"):
        uncertainty._difference_hessian(program, result.inputs, "y", elements, elements.u)
    monkeypatch.setattr(uncertainty, "MAX_CORRELATED", 2)
    with pytest.raises(DiffcliError, match="too many to correlate"):
        program.uncertainty(correlations={("x[0]", "x[1]"): 0.1})
    monkeypatch.setattr(uncertainty, "MAX_BUDGET", 2)
    with pytest.raises(DiffcliError, match="too many to list"):
        program.uncertainty()


# ---------------------------------------------------------------- the command line

FILE = "x = [1.2, 3.4] ± 0.1\nW = [[1, 2], [3, 4]] ± [[0.1, 0.2], [0.3, 0]]\nk = 2 ± 0.2\ny = k * sum(W @ x^2)\n"


def test_cli_json_lists_elements_and_one_group_per_array():
    done = run_diffcli("uncertainty", "-", "--json", "--correlation", "x[0],W[0, 1]=0.3",
                       "--correlation", "k,x[1]=-0.2", input=FILE.encode())
    assert done.returncode == 0, done.stderr_text
    out = json.loads(done.stdout_text)
    reference = diffcli.parse(FILE).uncertainty(correlations={("x[0]", "W[0,1]"): 0.3, ("k", "x[1]"): -0.2})
    assert [row["name"] for row in out["budget"]] == [row.name for row in reference.budget]
    assert {row["name"] for row in out["budget"]} == {"x[0]", "x[1]", "W[0,0]", "W[0,1]", "W[1,0]", "W[1,1]", "k"}
    assert [g["name"] for g in out["groups"]] == [g.name for g in reference.groups]
    assert set(out["groups"][0]) == {"name", "contribution", "share"}
    assert out["correlations"] == [{"a": "x[0]", "b": "W[0,1]", "r": 0.3}, {"a": "k", "b": "x[1]", "r": -0.2}]
    for group in out["groups"]:
        assert group["share"] == pytest.approx(sum(row["share"] for row in out["budget"]
                                                   if row["name"].startswith(group["name"] + "[")), rel=1e-12)


def test_cli_set_with_array_uncertainties_and_the_headline_formats():
    done = run_diffcli("uncertainty", "-", "--json", "--set", "x=[1,2]±[0.5,0.1],k=3", "--set", "W=[[1,0],[0,1]]+/-1%",
                       input=FILE.encode())
    assert done.returncode == 0, done.stderr_text
    rows = {row["name"]: row for row in json.loads(done.stdout_text)["budget"]}
    assert (rows["x[0]"]["u"], rows["x[1]"]["u"], rows["x[1]"]["value"]) == (0.5, 0.1, 2.0)
    assert rows["W[1,1]"]["u"] == 0.01 and rows["k"]["u"] == 0.2 and rows["k"]["value"] == 3.0
    result = diffcli.parse(FILE).uncertainty()
    for style in ("plain", "pm", "latex"):
        done = run_diffcli("uncertainty", "-", "--format", style, input=FILE.encode())
        assert done.returncode == 0, done.stderr_text
        first = done.stdout_text.splitlines()[0]
        assert first == f"diffcli uncertainty -: y = {plus_minus(result.value, result.uncertainty, style)}"
    # the others commands read the value and leave the uncertainty
    done = run_diffcli("grad", "-", "--json", "--set", "x=[1,2]±[0.5,0.1]", input=FILE.encode())
    assert json.loads(done.stdout_text)["inputs"]["x"] == [1.0, 2.0]


def test_cli_table_shows_each_array_as_a_group_of_its_elements():
    done = run_diffcli("uncertainty", "-", "--order", "2", "--monte-carlo", "2000", "--seed", "1", input=FILE.encode())
    assert done.returncode == 0, done.stderr_text
    lines = done.stdout_text.splitlines()
    label = [line.split("│")[1].rstrip() for line in lines if line.startswith("│")]
    assert " x (2)" in label and " W (2×2)" in label
    assert label.index(" x (2)") < label.index("   x[1]") and label.index(" W (2×2)") < label.index("   W[1,1]")
    exact = diffcli.parse(FILE).uncertainty(order=2).second_order.exact
    assert ("H the exact Hessian" if exact else "central differences of the exact") in done.stdout_text
    assert "Monte Carlo, 2,000 samples" in done.stdout_text


@pytest.mark.parametrize("arguments, message", [
    (["--correlation", "x[0],x[5]=0.3"], "`x[5]` is not an element of `x`"),
    (["--set", "x=[1,2]±[0.1]"], "its uncertainty is a vector of 1"),
    (["--uncertainty", "W=[[0.1],[0.2,0.3]]"], "is not an uncertainty"),
])
def test_cli_bad_element_options(arguments, message):
    done = run_diffcli("uncertainty", "-", "--json", *arguments, input=FILE.encode())
    assert done.returncode == 1 and not done.stdout
    error = json.loads(done.stderr_text)["error"]
    assert error["kind"] == "input" and message in error["message"]


def test_cli_negative_array_uncertainty_in_set_is_refused_as_a_scalar_ones_is():
    # `uncertainty` reads the ± as --uncertainty (an input error, exit 1); other commands' --set, exit 2
    done = run_diffcli("uncertainty", "-", "--set", "x=[1,2]±[0.1,-1]", input=FILE.encode())
    assert done.returncode == 1 and "holds a value that is not an uncertainty" in done.stderr_text
    scalar = run_diffcli("uncertainty", "-", "--set", "k=1±-1", input=FILE.encode())
    assert scalar.returncode == 1 and "is not an uncertainty" in scalar.stderr_text
    done = run_diffcli("grad", "-", "--set", "x=[1,2]±[0.1,-1]", input=FILE.encode())
    assert done.returncode == 2 and "is not an uncertainty" in done.stderr_text


def test_cli_table_shows_an_arrays_largest_elements_and_elements_shows_all():
    text = "W = uniform(4, 4, seed=3)\nx = [1, 2, 3, 4] ± 1%\ny = sum(tanh(W @ x / 4))\n"
    result = diffcli.parse(text).uncertainty(uncertainties={"W": 0.01})
    w_rows = [row for row in result.budget if row.group == "W"]
    done = run_diffcli("uncertainty", "-", "-u", "W=0.01", input=text.encode())
    assert done.returncode == 0, done.stderr_text
    labels = [line.split("│")[1].strip() for line in done.stdout_text.splitlines() if line.startswith("│")]
    assert [label for label in labels if label.startswith("W[")] == [row.name for row in w_rows[:6]]
    rest = sum(row.share for row in w_rows[6:])
    more = next(line for line in done.stdout_text.splitlines() if "… 10 more" in line)
    assert more.split("│")[-2].strip() == f"{100 * rest:.1f}%"
    assert "--elements lists every one" in done.stdout_text
    every = run_diffcli("uncertainty", "-", "-u", "W=0.01", "--elements", input=text.encode())
    labels = [line.split("│")[1].strip() for line in every.stdout_text.splitlines() if line.startswith("│")]
    assert [label for label in labels if label.startswith("W[")] == [row.name for row in w_rows]
    assert "more" not in every.stdout_text


def test_every_other_command_reads_an_uncertain_array_as_its_plain_literal():
    import re

    plain = re.sub(r" ± (\[[^\n]*\]|[0-9.]+%?)", "", ARRAYS)
    assert "±" not in plain
    ours, theirs = diffcli.parse(ARRAYS).grad(), diffcli.parse(plain).grad()
    assert ours.value == theirs.value
    for name in ("x", "W", "k"):
        assert np.array_equal(ours.gradients[name], theirs.gradients[name])


def test_monte_carlo_of_large_arrays_is_refused_by_its_work_at_once():
    """--monte-carlo takes up to 50,000,000 samples, about a minute for a scalar program; through a
    2000×2000 product 3,000 samples took 15 s (50,000,000: days), of 3,000 uncertain elements half
    an hour: refused before a draw, with the most samples the program can take."""
    # a product's samples count its inner size (this check first: without the bound it fails
    # in seconds, where the next one would run for half an hour)
    product = diffcli.parse("W = uniform(2000, 2000, seed=2)\nx = uniform(2000, seed=1)\ny = sum(tanh(W @ x))\n")
    with pytest.raises(DiffcliError, match="operations each") as error:
        product.uncertainty(uncertainties={"x": 0.01}, monte_carlo=3_000)
    assert error.value.kind == "input"
    assert int(error.value.help.split("at most ")[1].split()[0].replace(",", "")) == 10**10 // 4_004_001
    small = product.uncertainty(uncertainties={"x": 0.01}, monte_carlo=100, seed=1)
    assert small.monte_carlo.n == 100
    program = diffcli.parse("x = uniform(3000, seed=1)\ny = sum(x^2)\n")
    with pytest.raises(DiffcliError, match=r"--monte-carlo 50000000: .* about 6,001 operations each"):
        program.uncertainty(uncertainties={"x": 0.1}, monte_carlo=50_000_000)
