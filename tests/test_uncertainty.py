"""Uncertainty propagation against the `uncertainties` package, exact small cases, and the CLI."""

from __future__ import annotations

import json
import math
import random

import pytest
import uncertainties
from uncertainties import umath

import diffcli
from diffcli import DiffcliError
from diffcli.formatting import plus_minus
from diffcli.interpreters.uncertainty import propagate, shortest_interval

from conftest import SAMPLES, run_diffcli

# (diffcli's spelling, Python's over umath) of safe pieces: every argument kept in the domain
UNARY = [("sin({})", "umath.sin({})"), ("cos({})", "umath.cos({})"), ("exp({}/4)", "umath.exp({}/4)"),
         ("tanh({})", "umath.tanh({})"), ("atan({})", "umath.atan({})"),
         ("log(1 + ({})^2)", "umath.log(1 + ({})**2)"), ("sqrt(2 + sin({}))", "umath.sqrt(2 + umath.sin({}))"),
         ("-({})", "-({})")]
BINARY = [("({}) + ({})", "({}) + ({})"), ("({}) - ({})", "({}) - ({})"), ("({}) * ({})", "({}) * ({})"),
          ("({}) / (1.5 + cos({}))", "({}) / (1.5 + umath.cos({}))"),
          ("hypot({}, {})", "umath.hypot({}, {})"), ("atan2({}, 2 + ({})^2)", "umath.atan2({}, 2 + ({})**2)"),
          ("(1 + ({})^2)^(({})/3)", "(1 + ({})**2)**(({})/3)")]


def _formula(rng: random.Random, names: list[str], depth: int) -> tuple[str, str]:
    if depth == 0 or rng.random() < 0.2 and depth < 4:  # (never just a name at the top)
        name = rng.choice(names)
        return name, name
    if rng.random() < 0.35:
        ours, theirs = rng.choice(UNARY)
        a, b = _formula(rng, names, depth - 1)
        return ours.format(a), theirs.format(b)
    ours, theirs = rng.choice(BINARY)
    a1, a2 = _formula(rng, names, depth - 1)
    b1, b2 = _formula(rng, names, depth - 1)
    return ours.format(a1, b1), theirs.format(a2, b2)


def _reference(formula: str, values, u, correlation):
    """y with its standard uncertainty, and y's derivatives, by the `uncertainties` package (the
    derivatives from independent variables: with correlated ones it gives them with respect to
    the independent variables underneath)."""

    def run(variables):
        namespace = {"umath": umath, **dict(zip(NAMES, variables))}
        return eval(formula, namespace)  # the test's own generated formula, never file text

    independent = [uncertainties.ufloat(v, s) for v, s in zip(values, u)]
    plain = run(independent)
    y = plain if correlation is None else run(
        uncertainties.correlated_values_norm(list(zip(values, u)), correlation))
    return y, [plain.derivatives.get(x, 0.0) for x in independent]


NAMES = ["a", "b", "c", "d"]


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_the_uncertainties_package_on_random_formulas(seed):
    import numpy as np

    rng = random.Random(seed)
    ours, theirs = _formula(rng, NAMES, 4)
    values = [rng.uniform(-2, 2) for _ in NAMES]
    u = [rng.uniform(0.001, 0.3) for _ in NAMES]
    correlation = None
    given = {}
    if seed % 2:  # correlated: a random correlation matrix (positive definite by construction)
        m = np.array([[rng.gauss(0, 1) for _ in NAMES] for _ in NAMES])
        cov = m @ m.T + 0.1 * np.eye(len(NAMES))
        s = np.sqrt(np.diag(cov))
        correlation = cov / np.outer(s, s)
        given = {(NAMES[i], NAMES[j]): float(correlation[i, j])
                 for i in range(len(NAMES)) for j in range(i + 1, len(NAMES))}
    text = "".join(f"{n} = {v!r} ± {s!r}\n" for n, v, s in zip(NAMES, values, u)) + f"y = {ours}\n"
    result = propagate(diffcli.parse(text), correlations=given)
    y, derivatives = _reference(theirs, values, u, correlation)
    assert result.value == pytest.approx(y.nominal_value, rel=1e-12, abs=1e-300)
    assert result.uncertainty == pytest.approx(y.std_dev, rel=1e-12, abs=1e-15)
    sensitivity = {row.name: row.sensitivity for row in result.budget}
    for name, derivative in zip(NAMES, derivatives):
        if name in sensitivity:
            assert sensitivity[name] == pytest.approx(derivative, rel=1e-12, abs=1e-14), name
    assert math.fsum(row.share for row in result.budget) == pytest.approx(1.0, abs=1e-9)


def test_a_product_adds_relative_uncertainties_in_quadrature():
    result = propagate(diffcli.parse("a = 3 ± 2%\nb = -7 ± 0.21\ny = a b\n".replace("a b", "a*b")))
    assert result.value == -21.0
    assert result.uncertainty / abs(result.value) == pytest.approx(math.hypot(0.02, 0.03), rel=1e-14)
    assert [row.name for row in result.budget] == ["b", "a"]  # sorted by share: 0.03² > 0.02²
    assert result.budget[0].share == pytest.approx(9 / 13, rel=1e-14)


def test_gum_h1_style_linear_sum_with_full_correlation():
    # y = a - b with r = 1 and equal u: the uncertainties cancel (GUM 5.2.2 note 1)
    program = diffcli.parse("a = 50 ± 0.3\nb = 20 ± 0.3\ny = a - b\n")
    assert propagate(program, correlations={("a", "b"): 1.0}).uncertainty == pytest.approx(0.0, abs=1e-15)
    assert propagate(program, correlations={("a", "b"): -1.0}).uncertainty == pytest.approx(0.6, rel=1e-14)


GUM_H2 = """V = 4.9990 ± 0.0032      # volts
I = 19.6610 ± 0.0095     # milliamperes
phi = 1.04446 ± 0.00075  # radians
R = V/(I*1e-3) * cos(phi)
X = V/(I*1e-3) * sin(phi)
Z = V/(I*1e-3)
"""


@pytest.mark.parametrize("output, value, u", [("R", 127.732, 0.071), ("X", 219.847, 0.295),
                                              ("Z", 254.260, 0.236)])
def test_the_gum_h2_resistance_and_reactance_example(output, value, u):
    """GUM (JCGM 100:2008) H.2: three correlated inputs, its Table H.3's results. The GUM prints the
    inputs' uncertainties rounded to two digits, so u agrees to its last printed digit, ±1."""
    program = diffcli.parse(GUM_H2)
    result = propagate(program, of=output, correlations={("V", "I"): -0.36, ("V", "phi"): 0.86,
                                                         ("I", "phi"): -0.65})
    assert round(result.value, 3) == value
    assert abs(result.uncertainty - u) <= 0.0011
    # and the same numbers as the `uncertainties` package, correlations included
    V, I, phi = uncertainties.correlated_values_norm(
        [(4.9990, 0.0032), (19.6610, 0.0095), (1.04446, 0.00075)],
        [[1, -0.36, 0.86], [-0.36, 1, -0.65], [0.86, -0.65, 1]])
    reference = {"R": V / (I * 1e-3) * umath.cos(phi), "X": V / (I * 1e-3) * umath.sin(phi),
                 "Z": V / (I * 1e-3)}[output]
    assert result.uncertainty == pytest.approx(reference.std_dev, rel=1e-12)


@pytest.mark.parametrize("correlations, message", [
    ({("a", "b"): 1.5}, "lies in [-1, 1]"),
    ({("a", "a"): 0.5}, "with itself"),
    ({("a", "z"): 0.5}, "`z` is not an input with an uncertainty"),
    ({("a", "b"): 0.9, ("a", "c"): 0.9, ("b", "c"): -0.9}, "not positive semidefinite"),
])
def test_inconsistent_correlations_are_refused(correlations, message):
    program = diffcli.parse("a = 1 ± 0.1\nb = 2 ± 0.1\nc = 3 ± 0.1\ny = a + b + c\n")
    with pytest.raises(DiffcliError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        propagate(program, correlations=correlations)
    assert caught.value.kind == "input"


def test_no_uncertainty_anywhere_is_an_error_with_help():
    with pytest.raises(DiffcliError, match="no input has an uncertainty") as caught:
        propagate(diffcli.parse("x = 2\ny = x^2\n"))
    assert "--uncertainty" in caught.value.help


def test_api_uncertainties_override_the_file_and_relative_follows_the_value_used():
    program = diffcli.parse("x = 2 ± 0.1\ny = 3x\n")
    assert propagate(program, uncertainties={"x": 0.2}).uncertainty == pytest.approx(0.6)
    assert propagate(program, {"x": 4}, uncertainties={"x": "10%"}).uncertainty == pytest.approx(1.2)
    with pytest.raises(DiffcliError, match="computed"):
        propagate(program, uncertainties={"y": 0.1})


@pytest.mark.parametrize("value, u, text", [
    (47.0123, 3.24, "47.0 ± 3.2"), (47.0123, 0.0996, "47.01 ± 0.10"), (9.7893, 0.0271, "9.789 ± 0.027"),
    (47123.0, 324.0, "(4.712 ± 0.032)×10⁴"), (-0.001, 0.03, "-0.001 ± 0.030"), (-0.01, 3.0, "-0.0 ± 3.0"),
    (4.7123e-9, 3.2e-11, "(4.712 ± 0.032)×10⁻⁹"), (1.5, 0.0, "1.5 ± 0"),
    (10.0, 2e-320, "10.0 ± 2e-320"),  # below the value's last digit: not 330 digits of zeros
])
def test_gum_rounding(value, u, text):
    assert plus_minus(value, u) == text


def test_plus_minus_prints_as_the_uncertainties_package():
    """Two significant digits of u, in the three styles, against format(ufloat, ".2uP" / ".2u" / ".2uL")
    over values and uncertainties spread across 24 decades."""
    import random

    from uncertainties import ufloat

    rng = random.Random(2026)
    cases = [(4.97597, 0.0253652), (5, 0.0999), (9.99, 0.0996), (123456, 789), (12345678.0, 12.0),
             (0.0, 0.01), (0.05, 3), (1.2e10, 3.4e8), (2e-5, 3e-5)]
    for _ in range(1000):
        value = rng.choice([-1, 1]) * 10 ** rng.uniform(-12, 12)
        cases.append((value, abs(value) * 10 ** rng.uniform(-9, 2)))
    for value, u in cases:
        x = ufloat(value, u)
        assert plus_minus(value, u, "plain") == format(x, ".2uP").replace("±", " ± "), (value, u)
        assert plus_minus(value, u, "pm") == format(x, ".2u"), (value, u)
        assert plus_minus(value, u, "latex") == format(x, ".2uL"), (value, u)
    assert plus_minus(4.97597, 0.0253652, "latex") == r"4.976 \pm 0.025"


def test_the_same_correlation_twice_is_harmless():
    done = run_diffcli("uncertainty", SAMPLES / "pendulum.expr", "--correlation", "L,T=0.5",
                       "--correlation", "T,L=0.5", "--json")
    assert done.returncode == 0, done.stderr_text
    assert json.loads(done.stdout_text)["correlations"] == [{"a": "L", "b": "T", "r": 0.5}]


def test_an_exact_cancellation_has_no_uncertainty_and_no_shares_of_noise():
    """y = a - 3b, r(a, b) = 1, u_a = 3u_b: the variance is 0 but for rounding (3e-33), whose shares
    were printed as ±5.4e17 %."""
    program = diffcli.parse("a = 0.1 ± 0.3\nb = 0.7 ± 0.1\ny = a - 3*b\n")
    result = propagate(program, correlations={("a", "b"): 1.0})
    assert result.uncertainty == 0 and [row.share for row in result.budget] == [0.0, 0.0]
    rng = random.Random(3)
    for _ in range(200):
        ua, k = rng.uniform(0.01, 1), rng.uniform(0.5, 5)
        program = diffcli.parse(f"a = 0.1 ± {ua!r}\nb = 0.7 ± {ua / k!r}\ny = a - {k!r}*b\n")
        result = propagate(program, correlations={("a", "b"): 1.0})
        assert result.uncertainty < 1e-14 * ua and all(abs(row.share) <= 1 for row in result.budget)
    # a small variance that is not a cancellation keeps its shares
    program = diffcli.parse("a = 0.1 ± 0.3\nb = 0.7 ± 0.1\ny = a - 2.9*b\n")
    result = propagate(program, correlations={("a", "b"): 1.0})
    assert result.uncertainty == pytest.approx(0.01) and sum(row.share for row in result.budget) == pytest.approx(1)


@pytest.mark.parametrize("u", [1e-320, 1e-200, 1e200])
def test_a_tiny_or_huge_uncertainty_neither_underflows_nor_overflows(u):
    """x = 5 ± 1e-320 gave u(y) = 0 beside a contribution of 2e-320."""
    result = propagate(diffcli.parse(f"x = 5 ± {u!r}\nz = 1 ± {u!r}\ny = 2*x + z\n"))
    contributions = [row.contribution for row in result.budget]
    assert result.uncertainty == pytest.approx(math.hypot(*[c / u for c in contributions]) * u, rel=1e-12)
    assert result.uncertainty > 0 and sum(row.share for row in result.budget) == pytest.approx(1)
    done = run_diffcli("uncertainty", "-", input=f"x = 5 ± {u!r}\ny = 2*x\n".encode())
    assert done.returncode == 0 and "± 0\n" not in done.stdout_text and len(done.stdout_text) < 2000


@pytest.mark.parametrize("text, option", [("x = 5 ± 1e200\ny = 2*x\n", "--order 2"),
                                          ("x = 5 ± 1e150\ny = 2*x^2\n", "--order 2"),
                                          ("x = 5 ± 1e200\ny = 2*x\n", "--monte-carlo 100")])
def test_variances_that_overflow_in_the_second_order_or_monte_carlo_are_a_domain_error(text, option):
    done = run_diffcli("uncertainty", "-", *option.split(), "--json", input=text.encode())
    assert done.returncode == 1 and done.stdout == b"", done.stderr_text
    assert json.loads(done.stderr_text)["error"]["message"] == "the combined variance overflows"


def test_shortest_interval_of_a_skewed_sample_is_shorter_than_the_central_one():
    import numpy as np

    samples = np.random.default_rng(1).exponential(size=100_000)
    low, high = shortest_interval(samples, 0.95)
    assert low == samples.min()  # the density is largest at 0
    central = np.quantile(samples, [0.025, 0.975])
    assert high - low < central[1] - central[0]
    assert np.mean((samples >= low) & (samples <= high)) == pytest.approx(0.95, abs=1e-4)


def test_cli_budget_text_and_json(tmp_path):
    done = run_diffcli("uncertainty", SAMPLES / "pendulum.expr")
    assert done.returncode == 0, done.stderr_text
    assert "g = 9.78 ± 0.10" in done.stdout_text
    done = run_diffcli("uncertainty", SAMPLES / "pendulum.expr", "--json", "--set", "L=1±0.1",
                       "--uncertainty", "T=1%")
    out = json.loads(done.stdout_text)
    assert list(out) == ["output", "value", "uncertainty", "budget"]
    assert [row["name"] for row in out["budget"]] == ["L", "T"]
    assert out["budget"][0]["u"] == 0.1 and out["budget"][1]["u"] == pytest.approx(0.02003)


@pytest.mark.parametrize("arguments, code, message", [
    (["--correlation", "L,T"], 2, "A,B=R"),
    (["--set", "L=1±"], 2, "NAME=VALUE±U"),
    (["--uncertainty", "L=-1"], 1, "--uncertainty L: '-1' is not an uncertainty"),
    (["--set", "L=1±-0.1"], 1, "--set L: '-0.1' is not an uncertainty"),  # (it said --uncertainty L)
    (["--set", "L=1+/-x"], 1, "--set L: 'x' is not an uncertainty"),
    (["--uncertainty", "g=1"], 1, "computed"),
    (["--correlation", "L,T=2"], 1, "[-1, 1]"),
    (["--plot", "x.txt", "--monte-carlo", "10"], 2, ".png"),
    (["--correlation", "L,T=0.5", "--correlation", "T,L=-0.4"], 2, "given twice"),  # the last won
    (["--correlation", "L,T=0.5", "--correlation", "L,T=0.3"], 2, "given twice"),
    (["--correlation", "L,T=1_0"], 2, "A,B=R"),  # numbers as --set reads them
])
def test_cli_errors(arguments, code, message):
    done = run_diffcli("uncertainty", SAMPLES / "pendulum.expr", *arguments, "--json")
    assert done.returncode == code and done.stdout_text == ""
    assert message in done.stderr_text
    if code == 1:
        assert json.loads(done.stderr_text)["error"]["kind"] == "input"


# ---------------------------------------------------------------- Monte Carlo


LINEAR = "a = 1.5 ± 0.2\nb = -2 ± 3%\nc = 4 ± 0.5\ny = 3a - 2b + c/4 + 1\n"


@pytest.mark.parametrize("correlations", [{}, {("a", "b"): 0.6, ("b", "c"): -0.3}])
def test_monte_carlo_on_a_linear_model_is_within_its_confidence_interval(correlations):
    result = propagate(diffcli.parse(LINEAR), correlations=correlations, monte_carlo=200_000, seed=7)
    mc = result.monte_carlo
    m = mc.n - mc.failed
    assert mc.n == 200_000 and mc.failed == 0
    # 4 standard errors: a false failure about once in 16,000 runs (and the seed is fixed)
    assert abs(mc.mean - result.value) <= 4 * mc.std / math.sqrt(m)
    assert abs(mc.std - result.uncertainty) <= 4 * mc.std / math.sqrt(2 * (m - 1))
    low, high = mc.interval
    assert low == pytest.approx(result.value - 1.96 * result.uncertainty, rel=0.01)
    assert high == pytest.approx(result.value + 1.96 * result.uncertainty, rel=0.01)
    assert mc.agrees


def test_monte_carlo_is_repeatable_with_a_seed_and_counts_domain_failures():
    program = diffcli.parse("x = 0.5 ± 0.3\ny = log(x)\n")
    first = propagate(program, monte_carlo=50_000, seed=3).monte_carlo
    again = propagate(program, monte_carlo=50_000, seed=3).monte_carlo
    assert (first.mean, first.std, first.interval, first.failed) == (again.mean, again.std, again.interval,
                                                                     again.failed)
    # P(x ≤ 0) for x ~ N(0.5, 0.3): about 4.8%
    assert first.failed / first.n == pytest.approx(0.0478, abs=0.005)
    assert "log" in first.first_error.message
    assert not first.agrees  # log is far from linear over that spread


def test_monte_carlo_of_a_nonlinear_model_warns(tmp_path):
    path = tmp_path / "square.expr"
    path.write_text("x = 1 ± 0.5\ny = x^2\n")
    done = run_diffcli("uncertainty", path, "--monte-carlo", "20000", "--seed", "1", "--json")
    assert done.returncode == 0, done.stderr_text
    mc = json.loads(done.stdout_text)["monte_carlo"]
    assert list(mc) == ["n", "mean", "std", "interval", "failed", "agrees"]
    assert mc["agrees"] is False and mc["mean"] == pytest.approx(1.25, rel=0.02)  # E[x²] = 1 + 0.25
    assert "disagree by more than the simulation's own error" in done.stderr_text


@pytest.mark.parametrize("extension, starts", [("svg", b"<svg"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("html", b"<!DOCTYPE html>")])
def test_plot(tmp_path, extension, starts):
    path = tmp_path / f"g.{extension}"
    done = run_diffcli("uncertainty", SAMPLES / "pendulum.expr", "--monte-carlo", "2000", "--seed", "1",
                       "--plot", path)
    assert done.returncode == 0, done.stderr_text
    assert path.read_bytes().lstrip().startswith(starts)


# ---------------------------------------------------------------- --order 2

def test_second_order_of_a_product_adds_the_product_of_the_variances():
    # y = a·b, uncorrelated normal inputs: Var(y) = b²u_a² + a²u_b² + u_a²u_b² exactly
    result = propagate(diffcli.parse("a = 3 ± 0.5\nb = -2 ± 0.25\ny = a*b\n"), order=2)
    second = result.second_order
    assert second.term == pytest.approx(0.5**2 * 0.25**2, rel=1e-14)
    assert second.uncertainty == pytest.approx(math.sqrt(4 * 0.25 + 9 * 0.0625 + 0.25 * 0.0625), rel=1e-14)
    assert second.change == pytest.approx(second.uncertainty - result.uncertainty, rel=1e-14)
    assert second.mean_shift == 0.0


@pytest.mark.parametrize("r", [0.0, 0.4, -0.9])
def test_second_order_of_a_quadratic_form_is_its_exact_variance(r):
    # y = x² + x·z with correlated normal inputs: the Taylor series ends at the second order, so
    # u_c² + ½·tr((H·V)²) is y's exact variance, here from the moments of independent standard
    # normals w1, w2 (E[w] = 0, E[w²] = 1, E[w³] = 0, E[w⁴] = 3) with SymPy
    import sympy

    mx, mz, ux, uz = 1.5, -0.5, 0.3, 0.2
    text = f"x = {mx} ± {ux}\nz = {mz} ± {uz}\ny = x^2 + x*z\n"
    result = propagate(diffcli.parse(text), correlations={("x", "z"): r} if r else {}, order=2)
    w1, w2 = sympy.symbols("w1 w2")
    x = mx + ux * w1
    z = mz + uz * (r * w1 + math.sqrt(1 - r * r) * w2)
    moments = {0: 1, 1: 0, 2: 1, 3: 0, 4: 3}

    def expectation(expr):
        poly = sympy.Poly(sympy.expand(expr), w1, w2)
        return math.fsum(float(c) * moments[i] * moments[j] for (i, j), c in poly.terms())

    y = x**2 + x * z
    variance = expectation(y**2) - expectation(y) ** 2
    assert result.second_order.uncertainty == pytest.approx(math.sqrt(variance), rel=1e-12)
    assert result.value + result.second_order.mean_shift == pytest.approx(expectation(y), rel=1e-12)


def test_cli_set_with_uncertainties_in_a_comma_list_and_stdin():
    done = run_diffcli("uncertainty", "-", "--set", "L=1±0.1,T=2+/-1%", "--json",
                       input=b"L = 0.5\nT = 1\ng = 4pi^2 L / T^2\n")
    assert done.returncode == 0, done.stderr_text
    budget = {row["name"]: row for row in json.loads(done.stdout_text)["budget"]}
    assert budget["L"]["value"] == 1.0 and budget["L"]["u"] == 0.1
    assert budget["T"]["value"] == 2.0 and budget["T"]["u"] == pytest.approx(0.02)


def test_cli_no_uncertainty_is_an_error_with_help():
    done = run_diffcli("uncertainty", SAMPLES / "backprop_chain.expr", "--set", "o=1")
    assert done.returncode == 1 and done.stdout_text == ""
    assert "error: no input has an uncertainty" in done.stderr_text and "help:" in done.stderr_text


def test_monte_carlo_agrees_with_the_second_order_where_the_first_order_fails():
    # y = x·z + x²: the second order is y's exact variance; Monte Carlo agrees with it, not with u_c
    result = propagate(diffcli.parse("x = 1 ± 0.4\nz = 0.5 ± 0.3\ny = x*z + x^2\n"),
                       order=2, monte_carlo=400_000, seed=11)
    mc, second = result.monte_carlo, result.second_order
    se = mc.std / math.sqrt(2 * (mc.n - 1))
    assert abs(mc.std - second.uncertainty) <= 4 * se
    assert abs(mc.std - result.uncertainty) > 10 * se
    assert abs(mc.mean - (result.value + second.mean_shift)) <= 4 * mc.std / math.sqrt(mc.n)


def test_the_program_method_gives_the_same_numbers():
    import diffcli
    from diffcli.interpreters.uncertainty import propagate

    program = diffcli.parse("L = 0.9937 ± 0.0005\nT = 2.003 ± 0.01\ng = 4pi^2 L/T^2\n")
    via_method = program.uncertainty(order=2)
    direct = propagate(program, order=2)
    assert via_method.uncertainty == direct.uncertainty and via_method.value == direct.value


def test_monte_carlo_memory_does_not_grow_with_the_samples(monkeypatch):
    """Issue 21: --monte-carlo 20000000 held every sample (539 MB). Past EXACT_SAMPLES the outputs
    are counted in bins: five times the samples take no more memory at their peak."""
    import tracemalloc

    from diffcli.interpreters import uncertainty

    monkeypatch.setattr(uncertainty, "EXACT_SAMPLES", 100_000)
    program = diffcli.parse("x = 1 ± 0.1\ny = x\n")
    peaks = {}
    for n in (600_000, 3_000_000):
        tracemalloc.start()
        try:
            mc = propagate(program, monte_carlo=n, seed=5).monte_carlo
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[3_000_000] < 1.2 * peaks[600_000] < 3_000_000 * 8, peaks  # (the samples: 24 MB)
    assert mc.mean == pytest.approx(1, abs=4 * 0.1 / math.sqrt(3e6))
    assert mc.std == pytest.approx(0.1, rel=4 / math.sqrt(6e6))
    assert mc.interval == pytest.approx((1 - 1.959964 * 0.1, 1 + 1.959964 * 0.1), abs=5e-3)  # (its ends drift)


@pytest.mark.parametrize("draw", ["normal", "exponential", "bimodal"])
def test_the_binned_interval_against_the_exact_one(monkeypatch, draw):
    """The same outputs both ways: from the bins the interval holds at least 95% of them, its ends
    are within two bins of the exact ones (where one interval is clearly shortest); the mean and the standard deviation match NumPy's."""
    import numpy as np

    from diffcli.interpreters import uncertainty

    rng = np.random.default_rng(4)
    values = {"normal": lambda: rng.normal(3, 2, 600_000), "exponential": lambda: rng.exponential(1, 600_000),
              "bimodal": lambda: rng.permutation(np.concatenate([rng.normal(0, 1, 400_000),
                                                                rng.normal(9, 0.5, 200_000)]))}[draw]()
    monkeypatch.setattr(uncertainty, "EXACT_SAMPLES", 50_000)
    binned = uncertainty._Outputs()
    for start in range(0, len(values), 70_000):
        binned.add(values[start:start + 70_000])
    assert binned.counts is not None and binned.counts.sum() == len(values)
    assert binned.mean == pytest.approx(values.mean(), rel=1e-12, abs=1e-12)
    assert binned.squares == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-10)
    exact = shortest_interval(values, 0.95)
    low, high = binned.interval(0.95)
    assert np.mean((values >= low) & (values <= high)) >= 0.95
    assert (high - low) <= (exact[1] - exact[0]) + 2 * binned.width
    if draw != "bimodal":  # (there two intervals are about as short: either may be taken)
        assert abs(low - exact[0]) <= 2 * binned.width and abs(high - exact[1]) <= 2 * binned.width
    counts, edges = binned.histogram(60)
    assert counts.sum() == len(values) and edges[0] == values.min() and edges[-1] == values.max()


def test_the_headline_stays_on_one_line_under_a_long_path(tmp_path):
    """To a pipe, a path over about 40 characters folded `9.78 \\pm 0.10` across two lines."""
    deep = tmp_path / ("d" * 30)
    deep.mkdir()
    (deep / "pendulum.expr").write_bytes((SAMPLES / "pendulum.expr").read_bytes())
    done = run_diffcli("uncertainty", deep / "pendulum.expr", "--format", "latex")
    assert done.returncode == 0, done.stderr_text
    assert done.stdout_text.splitlines()[0].endswith(r"g = 9.78 \pm 0.10")
