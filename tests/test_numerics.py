"""Numerical edge cases, each checked exactly: overflow (forward and reverse), underflow, -0.0,
subnormals, powers of negative bases, x^0 and 0^0, ties in min/max, kinks and saturating functions.

The conventions are in docs/conventions.md and diffcli/ops.py.
"""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

import diffcli
from diffcli.cli import app


def grad(text: str, of: str | None = None, **values: float):
    return diffcli.parse(text).grad(values, of)


def domain_error(text: str, *, forward_wrt: str | None = None, **values: float) -> diffcli.DiffcliError:
    program = diffcli.parse(text)
    with pytest.raises(diffcli.DiffcliError) as caught:
        if forward_wrt:
            program.derivatives(forward_wrt, values)
        else:
            program.grad(values)
    assert caught.value.kind == "domain"
    return caught.value


def same(a: float, b: float) -> bool:
    """Equal as doubles, sign of zero included."""
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


# ---------------------------------------------------------------- overflow

@pytest.mark.parametrize("text, column, words", [
    ("x = 710\ny = exp(x)", 5, "`exp(x)` overflows"),
    ("x = 1000\ny = cosh(x)", 5, "`cosh(x)` overflows"),
    ("x = 1e200\ny = x*x", 6, "overflows"),
    ("x = 1.5e308\ny = hypot(x, x)", 5, "overflows"),
    ("x = -2\ny = x^1e20", 6, "overflows"),
    ("x = 1e-310\ny = 1/x", 6, "overflows"),
    # an overflow that a later function raises on (math.sin(inf)): named where it happened, not
    # "`sin` is undefined at sin(inf)"
    ("x = 1e200\ny = sin(x*x)", 10, "`x*x` overflows"),
    ("x = 1e200\ny = 1 + cos(2x*x)", 15, "`2x*x` overflows"),
])
def test_overflow_in_the_forward_pass(text, column, words):
    error = domain_error(text)
    assert (error.line, error.column) == (2, column) and words in error.message


def test_gradient_overflows_where_the_value_does_not():
    text = "x = 1\ny = 1e300 * sin(1e300 * x)"
    assert math.isfinite(diffcli.parse(text).evaluate().values["y"])
    error = domain_error(text)
    assert "gradient overflows at `1e300 * x`" in error.message and (error.line, error.column) == (2, 23)
    assert "derivative overflows" in domain_error(text, forward_wrt="x").message


def test_gradient_overflows_when_paths_add_up():
    """Each path's gradient is 1e308; their sum is not a double."""
    text = "x = 1e-300\ny = 1e308*x + 1e308*x"
    assert diffcli.parse(text).evaluate().values["y"] == 2e8
    assert "gradient overflows" in domain_error(text).message
    assert "derivative overflows" in domain_error(text, forward_wrt="x").message


def test_a_local_derivative_that_overflows():
    error = domain_error("x = 1e-310\ny = log(x)")  # value -713.8, derivative 1e310
    assert "derivative of `log` is infinite or undefined at log(1e-310)" in error.message


# ---------------------------------------------------------------- underflow, -0.0, subnormals

def test_underflow_to_zero_is_not_an_error():
    result = grad("x = 1\ny = exp(-1000x)")
    assert same(result.value, 0.0) and result.gradients["x"] == 0.0
    result = grad("x = 1e-200\ny = x*x")
    assert same(result.value, 0.0) and result.gradients["x"] == 2e-200
    result = grad("x = 1e-400\ny = 3x")  # a literal below the smallest subnormal reads as 0
    assert same(result.values["x"], 0.0) and result.gradients["x"] == 3.0
    result = grad("x = -0.5\ny = x^1e20")
    assert same(result.value, 0.0) and result.gradients["x"] == 0.0


def test_negative_zero():
    result = grad("y = -x", x=0.0)
    assert same(result.value, -0.0) and result.gradients["x"] == -1.0
    result = grad("y = relu(x) + abs(x) + x^0 + max(x, 0)", x=-0.0)
    assert same(result.values["x"], -0.0) and result.value == 1.0
    assert result.gradients["x"] == 0.5  # relu'(0) = abs'(0) = d(x^0)/dx = 0; max(-0, 0) is a tie
    assert "division by zero" in domain_error("y = 1/x", x=-0.0).message
    assert "derivative of `sqrt` is infinite or undefined at sqrt(-0)" in domain_error("y = sqrt(x)", x=-0.0).message
    assert "`log` is undefined at log(-0)" in domain_error("y = log(x)", x=-0.0).message


def test_negative_zero_and_subnormals_survive_json():
    done = CliRunner().invoke(app, ["grad", "-", "--json", "--set", "x=-0,s=5e-324"],
                              input=b"y = -x + 0*s\nz = 2s\n")
    assert done.exit_code == 0, done.stderr
    got = json.loads(done.stdout)
    assert same(got["inputs"]["x"], -0.0) and got["inputs"]["s"] == 5e-324
    done = CliRunner().invoke(app, ["grad", "-", "--json"], input=b"s = 5e-324\nz = 2s\n")
    got = json.loads(done.stdout)
    assert got["values"]["z"] == 1e-323 and got["gradients"]["s"] == 2.0


def test_subnormals():
    result = grad("x = 5e-324\ny = 2x\nz = sqrt(x)\nw = x/2")
    assert result.values == {"x": 5e-324, "y": 1e-323, "z": math.sqrt(5e-324), "w": 0.0}
    assert result.gradients["x"] == 0.5  # w = x/2 underflows to 0; its derivative is still 1/2
    result = grad("x = 5e-324\nz = sqrt(x)")
    assert result.gradients["x"] == 0.5 / math.sqrt(5e-324)
    assert "infinite or undefined at log(5e-324)" in domain_error("x = 5e-324\ny = log(x)").message


# ---------------------------------------------------------------- powers

def test_negative_base_with_integer_exponents():
    result = grad("x = -2\ny = x^3 + x^-1 + pow(x, 2.0) + x**4")
    assert result.value == -8 - 0.5 + 4 + 16
    assert result.gradients["x"] == 3 * 4 - 0.25 + 2 * -2 + 4 * -8


def test_negative_base_with_a_named_exponent():
    """The exponent's derivative, x^y·ln(x), does not exist for x < 0: an error once it is needed."""
    error = domain_error("x = -2\nk = 2\ny = x^k")
    assert "with respect to the exponent is undefined at -2 ^ 2" in error.message
    assert (error.line, error.column) == (3, 6)
    assert grad("x = -2\nk = 2\ny = x^k", of="x").gradients == {"x": 1.0, "k": 0.0, "y": 0.0}


def test_negative_base_with_a_non_integer_exponent():
    error = domain_error("x = -8\ny = x^(1/3)")
    assert "negative base with a non-integer exponent" in error.message


@pytest.mark.parametrize("x", [0.0, -3.0, 2.5, -0.0])
def test_x_to_the_zero(x):
    result = grad("y = x^0 + pow(x, 0)", x=x)
    assert result.value == 2.0 and same(result.gradients["x"], 0.0)


def test_zero_to_the_zero():
    """0^0 = 1 and d(x^y)/dx = 0 where y = 0; d(x^y)/dy at (0, 0) does not exist (0^y jumps from 1
    to 0 as y leaves 0), so it is an error where it is needed."""
    result = grad("x = 0\ny = x^0")
    assert (result.value, result.gradients["x"]) == (1.0, 0.0)
    assert "undefined at 0 ^ 0" in domain_error("x = 0\nk = 0\ny = x^k").message
    assert grad("x = 0\nk = 0\ny = 2 + 0*x^k").gradients["x"] == 0.0  # not needed: no error


def test_zero_to_positive_and_negative_powers():
    assert grad("x = 0\nk = 2\ny = x^k").gradients == {"x": 0.0, "k": 0.0, "y": 1.0}
    assert grad("x = 0\nk = 1\ny = x^k").gradients == {"x": 1.0, "k": 0.0, "y": 1.0}
    assert "infinite or undefined at 0 ^ 0.5" in domain_error("x = 0\nk = 0.5\ny = x^k").message
    assert "zero to a negative power" in domain_error("x = 0\ny = x^-1").message


# ---------------------------------------------------------------- ties and kinks

def test_three_way_tie_splits_evenly():
    result = grad("a = 1\nb = 1\nc = 1\ny = max(a, b, c)")
    assert result.gradients == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3, "y": 1.0}
    result = grad("a = 1\nb = 1\nc = 1\ny = min(a, b, c)")
    assert result.gradients == {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3, "y": 1.0}


def test_ties_among_some_arguments():
    result = grad("a = 1\nb = 3\nc = 2\nd = 3\ny = max(a, b, c, d) + min(b, c, a, a, d)")
    assert result.gradients == {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.5, "y": 1.0}
    assert grad("a = 2\nb = 1\ny = max(a, a, b)").gradients == {"a": 1.0, "b": 0.0, "y": 1.0}
    assert grad("a = 0\nb = 0\ny = max(a, b)", b=-0.0).gradients["a"] == 0.5  # 0 and -0 tie


def test_kinks_and_undefined_derivatives():
    assert grad("x = 0\ny = relu(x) + abs(x)").gradients["x"] == 0.0
    for text, words in [("x = 1\ny = asin(x)", "`asin` is infinite or undefined at asin(1)"),
                        ("x = 0\ny = hypot(x, x)", "`hypot` with respect to its first argument"),
                        ("x = 0\ny = atan2(x, x)", "`atan2` with respect to its first argument")]:
        assert words in domain_error(text).message


def test_saturating_functions_stay_finite():
    result = grad("y = sigmoid(x) + softplus(-x) + softplus(x)", x=-1000.0)
    assert result.value == 1000.0 and result.gradients["x"] == -1.0
    result = grad("y = sigmoid(x) + softplus(x)", x=1000.0)
    assert result.value == 1001.0 and result.gradients["x"] == 1.0
