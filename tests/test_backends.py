"""Every backend built from the op table agrees with the float table, on every operation and partial.

ops.py writes each rule once; the float table is those rules printed as Python and compiled. Here
the NumPy, dual-number, SymPy and printer backends are checked against it at random points inside
each operation's domain and at the edge values (kinks, ties, zeros, domain ends), and the second
derivatives the dual backend derives are checked against finite differences of the first.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from diffcli import ops

# (low, high) for every argument of each operation, so that random points are inside its domain
DOMAINS = {
    "asin": [(-0.99, 0.99)], "acos": [(-0.99, 0.99)], "log": [(0.01, 50.0)], "ln": [(0.01, 50.0)],
    "log2": [(0.01, 50.0)], "log10": [(0.01, 50.0)], "sqrt": [(0.01, 50.0)],
    "power": [(0.01, 5.0), (-3.0, 3.0)], "pow": [(0.01, 5.0), (-3.0, 3.0)],
    "div": [(-5.0, 5.0), (0.1, 5.0)], "tan": [(-1.4, 1.4)],
    "sinh": [(-5.0, 5.0)], "cosh": [(-5.0, 5.0)], "exp": [(-20.0, 20.0)],
}
EDGES = {  # exact arguments where conventions decide the answer
    "abs": [(0.0,), (-0.0,)], "relu": [(0.0,), (-0.0,)], "sign": [(0.0,), (-0.0,)],
    "sigmoid": [(-1000.0,), (1000.0,), (0.0,)],
    "softplus": [(-1000.0,), (1000.0,), (0.0,)], "min": [(1.0, 1.0), (2.0, 2.0, 1.0), (3.0, 3.0, 3.0)],
    "max": [(1.0, 1.0), (2.0, 2.0, 3.0), (3.0, 3.0, 3.0)], "power": [(0.0, 0.0), (0.0, 2.0), (-2.0, 3.0)],
    "pow": [(0.0, 0.0), (0.0, 2.0), (-2.0, 3.0)], "asin": [(0.0,)], "hypot": [(3.0, 4.0)],
    "atan2": [(0.0, 1.0), (1.0, 0.0)], "div": [(0.0, 1.0)], "sqrt": [(1.0,)], "log": [(1.0,)],
}
KEYS = sorted(ops.OPS)


def points(key: str, n: int = 12, seed: int = 7):
    op = ops.OPS[key]
    rng = random.Random(f"{seed}{key}")
    arity = op.arity or 3
    domain = DOMAINS.get(key, [(-4.0, 4.0)] * arity)
    found = [tuple(rng.uniform(*domain[i % len(domain)]) for i in range(arity)) for _ in range(n)]
    return found + EDGES.get(key, [])


def float_partials(op, xs):
    """Each argument's partial from the float table, None where it raises (undefined)."""
    out = op.value(*xs)
    result = []
    for p in ops.partials_for(op, len(xs)):
        try:
            result.append(p(out, *xs))
        except (ValueError, ZeroDivisionError, OverflowError):
            result.append(None)
    return out, result


def close(a, b, ulps=2):
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return a == b or abs(a - b) <= ulps * math.ulp(max(abs(a), abs(b)))


def test_every_operation_has_its_parts():
    for key, op in ops.OPS.items():
        assert len(op.partial_rules) == (op.arity or 1), key
        assert op.rule is not None and op.name


@pytest.mark.parametrize("key", KEYS)
def test_numpy_agrees_with_floats(key):
    op, np_ = ops.OPS[key], ops.backend("numpy")
    cases = points(key)
    arity = len(cases[0]) if op.arity else None
    for xs in cases if arity is None else [cases]:
        batch = [xs] if arity is None else cases
        columns = [np.array([c[i] for c in batch]) for i in range(len(batch[0]))]
        with np.errstate(all="ignore"):
            values = ops.apply(op, np_, *columns)
            partials = [ops.apply_partial(op, np_, n, values, *columns) for n in range(len(columns))]
        for row, case in enumerate(batch):
            out, expected = float_partials(op, case)
            assert close(float(values[row]), out), (key, case)
            for n, want in enumerate(expected):
                got = float(np.broadcast_to(partials[n], values.shape)[row])
                if want is None or not math.isfinite(want):  # undefined: NaN or inf on arrays
                    assert not math.isfinite(got), (key, case, n, got)
                else:
                    assert close(got, want), (key, case, n, got, want)


@pytest.mark.parametrize("key", KEYS)
def test_python_printer_is_the_float_table(key):
    """The float table is compiled from the Python printer's text: executing that text again gives
    the same bits (this is what generated Python relies on)."""
    op, py = ops.OPS[key], ops.printer("python")
    for xs in points(key):
        names = [f"x{i}" for i in range(len(xs))]
        scope = {"math": math, **dict(zip(names, xs))}
        args = py.variables(*names)
        out = eval(str(ops.apply(op, py, *args)), scope)  # noqa: S307 - our own printed rules
        assert out == op.value(*xs) or (out != out and op.value(*xs) != op.value(*xs))
        scope["out"] = out
        _, expected = float_partials(op, xs)
        for n, want in enumerate(expected):
            text = str(py._text(ops.apply_partial(op, py, n, py.code("out"), *args)))
            try:
                got = eval(text, scope)  # noqa: S307
            except (ValueError, ZeroDivisionError, OverflowError):
                got = None
            assert got == want or close(got, want, 0), (key, xs, n, text)


@pytest.mark.parametrize("key", KEYS)
def test_duals_give_the_first_derivative_and_agree_on_values(key):
    op, dual = ops.OPS[key], ops.backend("dual")
    for xs in points(key):
        out, expected = float_partials(op, xs)
        for n in range(len(xs)):
            args = [ops.Dual(x, 1.0 if i == n else 0.0) for i, x in enumerate(xs)]
            result = ops.Dual.lift(ops.apply(op, dual, *args))
            assert close(result.v, out), (key, xs)
            want = expected[n]
            if want is not None and math.isfinite(want):
                assert math.isclose(result.t, want, rel_tol=1e-12, abs_tol=1e-300), (key, xs, n)


@pytest.mark.parametrize("key", KEYS)
def test_second_partials_against_finite_differences_of_the_first(key):
    op, dual = ops.OPS[key], ops.backend("dual")
    for xs in points(key, n=6)[:6]:
        partials = ops.partials_for(op, len(xs))
        for n in range(len(xs)):
            for k in range(len(xs)):
                h = 1e-5 * max(1.0, abs(xs[k]))

                def first(at):
                    return partials[n](op.value(*at), *at)

                up = list(xs)
                down = list(xs)
                up[k] += h
                down[k] -= h
                numeric = (first(up) - first(down)) / (2 * h)
                args = [ops.Dual(x, 1.0 if i == k else 0.0) for i, x in enumerate(xs)]
                second = ops.Dual.lift(ops.apply_partial(op, dual, n, ops.apply(op, dual, *args), *args)).t
                assert math.isclose(second, numeric, rel_tol=1e-5, abs_tol=1e-6), (key, xs, n, k)


def test_second_derivative_conventions():
    dual = ops.backend("dual")
    for key in ("relu", "abs", "sign"):
        op = ops.OPS[key]
        for x in (0.0, 2.0, -3.0):
            d = ops.Dual(x, 1.0)
            assert ops.Dual.lift(ops.apply_partial(op, dual, 0, ops.apply(op, dual, d), d)).t == 0.0


@pytest.mark.parametrize("key", KEYS)
def test_sympy_agrees_with_floats(key):
    import sympy as sp

    op, sym = ops.OPS[key], ops.backend("sympy")
    for number, xs in enumerate(points(key, n=4)):
        edge = number >= 4  # at edges only our rules decide (SymPy's own diff has its conventions)
        symbols = [sp.Symbol(f"x{i}", real=True) for i in range(len(xs))]
        at = dict(zip(symbols, [sp.Float(x, 30) for x in xs]))
        out, expected = float_partials(op, xs)
        value = sym.value(op, *symbols)
        assert math.isclose(float(_evaluate(value, at)), out, rel_tol=1e-13, abs_tol=1e-300), (key, xs)
        for n, want in enumerate(expected):
            if want is None or not math.isfinite(want):
                continue
            ours = _evaluate(sym.partial(op, n, *symbols), at)
            assert math.isclose(float(ours), want, rel_tol=1e-12, abs_tol=1e-300), (key, xs, n)
            if not edge:
                got = _evaluate(sym.value(op, *symbols).diff(symbols[n]), at)
                assert math.isclose(float(got), want, rel_tol=1e-12, abs_tol=1e-300), (key, xs, n)


def _evaluate(expr, at):
    """A SymPy expression at a point, our named functions by their float values."""
    import sympy as sp

    expr = expr.subs(at)
    for key, function in ops.backend("sympy").named.items():
        expr = expr.replace(function, lambda *a, key=key: sp.Float(ops.OPS[key].value(*map(float, a)), 30))
    return sp.N(expr.doit(), 30)


def test_printers_write_every_language():
    for lang in ops.PRINTERS:
        p = ops.printer(lang)
        for key, op in ops.OPS.items():
            args = p.variables(*[f"x{i}" for i in range(op.arity or 3)])
            assert str(ops.apply(op, p, *args))
            for n in range(len(args)):
                assert str(p._text(ops.apply_partial(op, p, n, p.code("out"), *args)))


def test_the_float_table_costs_nothing_for_plain_operations():
    """Arithmetic and the math functions are the C functions themselves, not Python wrappers."""
    import operator

    assert ops.OPS["add"].value is operator.add and ops.OPS["mul"].value is operator.mul
    assert ops.OPS["sin"].value is math.sin and ops.OPS["power"].value is math.pow
