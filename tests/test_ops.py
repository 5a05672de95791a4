"""Each operation's partial derivatives against central finite differences, at several points.

The table in diffcli/ops.py is the one place the math lives; this checks every entry of it directly,
argument by argument, away from kinks and domain edges.
"""

from __future__ import annotations

import math

import pytest

from diffcli.ops import FUNCTIONS, OPERATORS, partials_for

# points inside each operation's domain, away from kinks; one tuple of arguments each
POINTS = {
    "add": [(1.5, -2.0), (0.3, 7.0)],
    "sub": [(1.5, -2.0), (-0.3, 7.0)],
    "mul": [(1.5, -2.0), (0.3, 7.0)],
    "div": [(1.5, -2.0), (0.3, 7.0), (-4.0, 0.5)],
    "pow": [(1.5, 2.0), (0.3, -1.5), (2.0, 0.5), (-2.0, 3.0)],
    "neg": [(1.5,), (-0.2,)],
    "pos": [(1.5,), (-0.2,)],
    "id": [(1.5,), (-0.2,)],
    "sin": [(0.3,), (2.0,), (-1.0,)],
    "cos": [(0.3,), (2.0,), (-1.0,)],
    "tan": [(0.3,), (1.2,), (-1.0,)],
    "asin": [(0.3,), (-0.9,), (0.0,)],
    "acos": [(0.3,), (-0.9,), (0.0,)],
    "atan": [(0.3,), (5.0,), (-2.0,)],
    "sinh": [(0.3,), (2.0,), (-1.0,)],
    "cosh": [(0.3,), (2.0,), (-1.0,)],
    "tanh": [(0.3,), (2.0,), (-1.0,)],
    "exp": [(0.3,), (2.0,), (-1.0,)],
    "log": [(0.3,), (2.0,), (100.0,)],
    "ln": [(0.3,), (2.0,)],
    "log2": [(0.3,), (2.0,), (100.0,)],
    "log10": [(0.3,), (2.0,), (100.0,)],
    "sqrt": [(0.3,), (2.0,), (100.0,)],
    "abs": [(0.3,), (-2.0,)],
    "sigmoid": [(0.3,), (-4.0,), (6.0,)],
    "relu": [(0.3,), (-2.0,), (5.0,)],
    "sign": [(0.3,), (-2.0,)],
    "softplus": [(0.3,), (-4.0,), (6.0,)],
    "atan2": [(1.0, 2.0), (-0.5, -1.5), (2.0, -0.1)],
    "hypot": [(1.0, 2.0), (-0.5, -1.5)],
    "min": [(1.0, 2.0), (3.0, -1.0, 2.0)],
    "max": [(1.0, 2.0), (3.0, -1.0, 2.0)],
}
OPS = {**OPERATORS, **{name: op for name, op in FUNCTIONS.items() if name != "pow"}}
OPS["pow()"] = FUNCTIONS["pow"]
POINTS["pow()"] = POINTS["pow"]


def test_every_operation_is_checked():
    assert set(OPS) == set(POINTS)


def central_difference(f, args, i):
    x = args[i]
    h = 1e-6 * max(1.0, abs(x))
    up = list(args)
    down = list(args)
    up[i] += h
    down[i] -= h
    return (f(*up) - f(*down)) / (up[i] - down[i])


CASES = [(name, point) for name, points in POINTS.items() for point in points]


@pytest.mark.parametrize("name,args", CASES, ids=[f"{n}{a}" for n, a in CASES])
def test_partials_match_central_differences(name, args):
    op = OPS[name]
    out = op.value(*args)
    for i, partial in enumerate(partials_for(op, len(args))):
        if name in ("pow", "pow()") and i == 1 and args[0] < 0:
            continue  # d(x^y)/dy does not exist for x < 0 (tested in test_engine)
        analytic = partial(out, *args)
        numeric = central_difference(op.value, args, i)
        assert math.isclose(analytic, numeric, rel_tol=1e-6, abs_tol=1e-8), (name, args, i, analytic, numeric)


def test_values_are_floats():
    for name, points in POINTS.items():
        for args in points:
            assert type(OPS[name].value(*args)) is float, name


@pytest.mark.parametrize("name", ["relu", "abs", "sign"])
def test_kinks_follow_pytorch(name):
    op = FUNCTIONS[name]
    assert op.partials[0](op.value(0.0), 0.0) == 0.0


def test_min_max_split_ties_evenly():
    for name in ("min", "max"):
        op = FUNCTIONS[name]
        args = (2.0, 2.0, 2.0, 5.0 if name == "min" else -5.0)
        out = op.value(*args)
        shares = [p(out, *args) for p in partials_for(op, len(args))]
        assert shares == [1 / 3, 1 / 3, 1 / 3, 0.0]


def test_stable_sigmoid_and_softplus():
    sigmoid, softplus = FUNCTIONS["sigmoid"], FUNCTIONS["softplus"]
    assert sigmoid.value(-1000.0) == 0.0 and sigmoid.value(1000.0) == 1.0
    assert softplus.value(1000.0) == 1000.0 and softplus.value(-1000.0) == 0.0
    for x in (-1000.0, 1000.0):
        assert math.isfinite(sigmoid.partials[0](sigmoid.value(x), x))
        assert math.isfinite(softplus.partials[0](softplus.value(x), x))


def test_pow_conventions():
    pow_ = OPERATORS["pow"]
    dx, dy = pow_.partials
    assert pow_.value(0.0, 0.0) == 1.0
    assert dx(1.0, 0.0, 0.0) == 0.0          # x^0 is constant in x
    assert dy(0.0, 0.0, 2.0) == 0.0          # d(0^y)/dy = 0 for y > 0
    assert math.isnan(dy(-8.0, -2.0, 3.0))   # undefined for x < 0: an error only where needed
    assert pow_.value(-2.0, 3.0) == -8.0     # integer-valued float exponents take negative bases


def test_sign_values():
    sign = FUNCTIONS["sign"]
    assert [sign.value(x) for x in (-3.0, -0.0, 0.0, 2.5)] == [-1.0, 0.0, 0.0, 1.0]
