"""The batch engine gives, at every point, what the single-point engine gives there.

Bit for bit wherever NumPy and the math module round an operation the same (found out here, on this
machine, by comparing them), and within a few ulps of the operations' own differences otherwise;
failed points carry exactly the single-point error, and the other points their results.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import diffcli
from diffcli.interpreters import batch
from diffcli import ops
from diffcli.errors import DiffcliError

from strategies import programs
from test_backends import points

ARGUMENT_NAMES = ["x", "y", "z"]


def _same_rounding(key: str) -> bool:
    """Whether NumPy computes op `key` and its partials bit for bit as the float table does, on
    arrays and on 0-d values, at a thousand random points in its domain."""
    op, np_ = ops.OPS[key], ops.backend("numpy")
    cases = points(key, n=1000, seed=3)
    cases = [c for c in cases if len(c) == len(cases[0])]
    arity = len(cases[0])
    columns = [np.array([c[i] for c in cases]) for i in range(arity)]
    with np.errstate(all="ignore"):
        for args in (columns, [c[:1].reshape(()) for c in columns]):
            value = ops.apply(op, np_, *args)
            got = [value] + [ops.apply_partial(op, np_, n, value, *args) for n in range(arity)]
            got = [np.broadcast_to(g, args[0].shape).ravel() for g in got]
            for row in range(got[0].size):
                out = op.value(*cases[row])
                want = [out] + [p(out, *cases[row]) for p in ops.partials_for(op, arity)]
                if any(g[row] != w and not (g[row] != g[row] and w != w) for g, w in zip(got, want)):
                    return False
    return True


EXACT = {key for key in ops.OPS if _same_rounding(key)}


def _program_for(key: str, arity: int) -> str:
    op = ops.OPS[key]
    names = ARGUMENT_NAMES[:arity] if arity <= 3 else [f"x{i}" for i in range(arity)]
    defaults = "\n".join(f"{n} = 1" for n in names)
    if op.infix:
        body = f"{names[0]} {op.name} {names[1]}"
    elif op.key == "neg":
        body = f"-{names[0]}"
    elif op.key in ("pos", "id"):
        body = f"+{names[0]}" if op.key == "pos" else names[0]
    else:
        body = f"{op.name}({', '.join(names)})"
    # a second use of every argument, so that adjoints are sums, and a product after the op
    return f"{defaults}\nf = {body}\nout = 3f*{names[0]} + f\n", names


def assert_agrees(program, columns, result, exact, of=None):
    n = result.n
    for point in range(n):
        given = {name: float(np.broadcast_to(c, (n,))[point]) for name, c in columns.items()}
        try:
            want = program.grad(given, of)
        except DiffcliError as error:
            assert result.failed[point], (point, given, error)
            got = result.errors[point]
            assert (got.kind, got.message, got.span) == (error.kind, error.message, error.span)
            assert math.isnan(result.value[point])
            continue
        assert not result.failed[point], (point, given, result.errors.get(point))
        pairs = [(result.value[point], want.value)] + [
            (result.gradients[name][point], want.gradients[name]) for name in result.gradients]
        # where NumPy and libm round an operation differently (by ulps), a cancellation downstream
        # (1 - tanh² near 1) may magnify the difference relative to that entry, not to the point's scale
        scale = 1e-12 * max(abs(e) for _, e in pairs)
        for got, expected in pairs:
            if exact:
                assert got == expected and math.copysign(1, got) == math.copysign(1, expected), (
                    point, given, got, expected)
            else:
                assert got == pytest.approx(expected, rel=1e-12, abs=scale), (point, given)


def _operation_case(key: str):
    """The program of one operation (see _program_for), its argument names, and 40 points."""
    cases = points(key, n=40)
    arity = len(cases[0]) if ops.OPS[key].arity else 3
    cases = [c for c in cases if len(c) == arity]
    text, names = _program_for(key, arity)
    return diffcli.parse(text), names, cases


@pytest.mark.parametrize("key", sorted(ops.OPS))
def test_every_operation_at_random_points_and_edges(key):
    program, names, cases = _operation_case(key)
    columns = {name: np.array([c[i] for c in cases]) for i, name in enumerate(names)}
    result = batch.run(program, columns, all_names=True)
    assert_agrees(program, columns, result, exact=key in EXACT)


def test_adjoints_added_into_in_place_stay_apart():
    # `+` hands its adjoint on to both arguments as the same array; the sums into each (in place,
    # where the pass made the array) must not reach the other, nor the named variables' own adjoints
    program = diffcli.parse("x = 1\ny = 2\na = x + y\nb = a + a\nc = b * x + a + b - y / x + a * b")
    columns = {"x": np.linspace(-2, 2, 9), "y": np.linspace(3, -1, 9)}
    result = batch.run(program, columns, all_names=True)
    assert_agrees(program, columns, result, exact=True)


def test_arithmetic_and_sqrt_round_as_the_single_point_engine():
    # the operations every libm and NumPy round correctly: these must agree to the bit
    assert {"add", "sub", "mul", "div", "neg", "sqrt", "abs", "relu", "min", "max"} <= EXACT


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_random_programs_at_many_points(case):
    program = diffcli.parse(case.text)
    rng = np.random.default_rng(len(case.text))
    base = program._inputs(case.sets)[0]
    # the generated point, and points moved a little around it (some may leave a domain: fine)
    columns = {name: value * (1 + 1e-3 * rng.standard_normal(8)) for name, value in base.items()}
    columns = {name: np.concatenate([[base[name]], c]) for name, c in columns.items()}
    result = batch.run(program, columns, case.of, all_names=True)
    assert not result.failed[0]
    assert_agrees(program, columns, result, exact=False, of=case.of)


def test_a_point_outside_the_domain_fails_alone_with_the_single_point_error():
    program = diffcli.parse("x = 1\nz = 2\ny = log(x) + sqrt(z)\n")
    result = batch.run(program, {"x": np.array([1.0, 0.0, -1.0, 2.0]), "z": np.array([1.0, 1.0, 1.0, -4.0])})
    assert list(result.failed) == [False, True, True, True]
    assert set(result.errors) == {1, 2, 3}
    assert result.errors[1].message == "`log` is undefined at log(0)"
    assert result.errors[3].message.startswith("`sqrt` is undefined")
    assert result.value[0] == 1.0 and result.gradients["x"][0] == 1.0
    assert np.isnan(result.value[1:]).all() and np.isnan(result.gradients["z"][1:]).all()
    assert_agrees(program, {"x": result.inputs["x"], "z": result.inputs["z"]}, result, exact=True)


@pytest.mark.parametrize("body", ["x / y", "x / (y*y)", "log(y) * x", "x/y + y/x"])
def test_a_number_the_same_at_every_point_that_divides_by_zero_fails_each_point(body):
    """A partial of Python floats (1/y at y = 0, y given as one number) raised ZeroDivisionError
    out of the reverse pass: `grad --sweep x=0:1:3 --set y=0` was an internal error."""
    program = diffcli.parse(f"x = 1\ny = 1\nz = {body}\n", "z.expr")
    result = batch.run(program, {"x": np.array([1.0, 2.0, 3.0]), "y": 0.0})
    assert list(result.failed) == [True, True, True]
    with pytest.raises(DiffcliError) as single:
        program.grad({"x": 1.0, "y": 0.0})
    assert str(result.errors[0]) == str(single.value)


@pytest.mark.parametrize("body", ["x + 1/y", "x + 1/(0/1)", "x*(2 - 1)/(y*y)"])
def test_a_value_the_same_at_every_point_that_divides_by_zero_fails_each_point(body):
    """The forward pass too: 1/y of Python floats (y given one number, or a constant of the file)
    raised ZeroDivisionError out of it (`eval --sweep x=0:1:3 --set y=0`, a fit with such a constant:
    internal errors)."""
    program = diffcli.parse(f"x = 1\ny = 1\nz = {body}\n", "z.expr")
    for gradients in (True, False):
        result = batch.run(program, {"x": np.array([1.0, 2.0, 3.0]), "y": 0.0}, gradients=gradients)
        assert list(result.failed) == [True, True, True]
        with pytest.raises(DiffcliError) as single:
            program.evaluate({"x": 1.0, "y": 0.0})
        assert str(result.errors[0]) == str(single.value)


def test_a_derivative_error_and_a_zero_adjoint_that_blocks_it():
    # sqrt'(0) is infinite: an error where it is needed, nothing where 0 flows through it
    program = diffcli.parse("x = 1\nk = 1\ny = k*sqrt(x)\n")
    result = batch.run(program, {"x": np.array([0.0, 0.0, 4.0]), "k": np.array([1.0, 0.0, 1.0])})
    assert list(result.failed) == [True, False, False]
    assert result.errors[0].kind == "domain"
    assert "derivative" in result.errors[0].message
    assert result.gradients["x"][1] == 0.0 and result.gradients["k"][1] == 0.0
    assert result.gradients["x"][2] == 0.25


def test_an_overflow_fails_its_point():
    program = diffcli.parse("x = 1\ny = exp(x)\n")
    result = batch.run(program, {"x": np.array([1.0, 1000.0])})
    assert list(result.failed) == [False, True]
    assert "overflows" in result.errors[1].message


def test_kinks_and_ties_follow_the_conventions():
    program = diffcli.parse("x = 0\ny = 0\nf = relu(x) + abs(x) + max(x, y, 0)\n")
    result = batch.run(program, {"x": np.array([0.0, 0.0, 1.0, -1.0]), "y": np.array([0.0, 1.0, 1.0, -2.0])})
    assert list(result.gradients["x"]) == [1 / 3, 0.0, 2.5, -1.0]
    assert list(result.gradients["y"]) == [1 / 3, 1.0, 0.5, 0.0]


def test_scalar_columns_defaults_and_unused_names():
    program = diffcli.parse("a = 2\nb = 3\ny = a*b + o\n")
    result = batch.run(program, {"a": np.arange(3.0), "o": 1.0, "zzz": 5.0}, all_names=True)
    assert result.n == 3 and result.unused == ["zzz"]
    assert list(result.value) == [1.0, 4.0, 7.0]
    assert list(result.gradients["a"]) == [3.0, 3.0, 3.0] and list(result.gradients["b"]) == [0.0, 1.0, 2.0]
    assert list(result.gradients["zzz"]) == [0.0] * 3 and list(result.inputs["zzz"]) == [5.0] * 3
    assert list(result.values["y"]) == list(result.value)
    assert list(result.inputs) == ["a", "b", "o", "zzz"]


def test_names_are_checked_as_set_checks_them():
    program = diffcli.parse("alpha = 2\ny = alpha^2 + o\n")
    with pytest.raises(DiffcliError, match="no variable `alpa`") as caught:
        batch.run(program, {"alpa": np.zeros(2), "o": 1.0})
    assert "alpha" in caught.value.help
    with pytest.raises(DiffcliError, match="computed"):
        batch.run(program, {"y": np.zeros(2), "o": 1.0})
    with pytest.raises(DiffcliError, match="has no value"):
        batch.run(program, {"alpha": np.zeros(2)})
    with pytest.raises(DiffcliError, match="same number"):
        batch.run(program, {"alpha": np.zeros(2), "o": np.zeros(3)})


def test_eval_only_and_another_output():
    program = diffcli.parse("x = 1\nu = x^2\ny = log(u)\n")
    result = batch.run(program, {"x": np.array([1.0, 0.0, 2.0])}, gradients=False)
    assert result.gradients is None and list(result.failed) == [False, True, False]
    result = batch.run(program, {"x": np.array([1.0, 0.0, 2.0])}, of="u")
    # as for a single point, every statement is computed: log(0) fails the point even for u
    assert list(result.value[[0, 2]]) == [1.0, 4.0] and list(result.gradients["x"][[0, 2]]) == [2.0, 4.0]
    assert list(result.failed) == [False, True, False]


def test_chunks_join_seamlessly(monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 7)
    program = diffcli.parse("x = 1\ny = 1/x + x^3\n")
    xs = np.linspace(-2, 2, 51)  # x = 0 is point 25, in the middle of a chunk
    result = batch.run(program, {"x": xs})
    assert list(np.flatnonzero(result.failed)) == [25]
    assert_agrees(program, {"x": xs}, result, exact=True)


def test_forward_tangents_agree_with_forward_mode():
    program = diffcli.parse("x = 1\ny = 2\nk = 1\nf = k*sqrt(x)*y + log(y)\n")
    columns = {"x": np.array([1.0, 0.0, 0.0, 4.0]), "y": np.array([2.0, 2.0, 1.0, -1.0]),
               "k": np.array([1.0, 1.0, 0.0, 1.0])}
    result = batch.tangents(program, columns, "x")
    for point in range(4):
        given = {name: float(c[point]) for name, c in columns.items()}
        try:
            want = program.derivatives("x", given)
        except DiffcliError as error:
            assert result.failed[point] and result.errors[point].message == error.message
            continue
        assert not result.failed[point]
        for name in program.names:
            assert result.derivatives[name][point] == want.derivatives[name]
            assert result.values[name][point] == want.values[name]
    assert list(result.failed) == [False, True, False, True]


def test_the_kernel_is_a_pure_function_of_arrays():
    program = diffcli.parse("x = 1\nw = 2\ny = w*x^2\n")
    f = batch.kernel(program, ["x"])
    assert f.columns == ["y", "dy/dx", "dy/dw"]
    out = f(np.array([1.0, 2.0]))
    assert out.tolist() == [[2.0, 4.0, 1.0], [8.0, 8.0, 4.0]]


def test_dask_maps_the_kernel_over_blocks():
    da = pytest.importorskip("dask.array")
    import dask

    program = diffcli.parse(open("samples/two_layer_network.expr").read())
    x1 = da.linspace(-2, 2, 1000, chunks=300)
    x2 = da.linspace(1, -1, 1000, chunks=300)
    f = batch.kernel(program, ["x1", "x2"])
    table = da.map_blocks(f, x1, x2, new_axis=1, chunks=(x1.chunks[0], (len(f.columns),)), dtype=float)
    with dask.config.set(scheduler="threads"):  # the local scheduler, blocks in parallel
        got = table.compute()
    want = f(x1.compute(), x2.compute())
    assert got.shape == (1000, 17) and (got == want).all()
    point = program.grad({"x1": float(x1[0].compute()), "x2": float(x2[0].compute())})
    assert got[0, 0] == pytest.approx(point.value, rel=1e-12)  # tanh: NumPy's and libm's differ by ulps
    assert got[0, 1] == pytest.approx(point.gradients["x1"], rel=1e-12)


def test_dask_runs_the_kernel_on_a_cluster_of_worker_processes():
    """A real scheduler with workers in other processes: the kernel is pickled, sent and run there."""
    import logging

    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")

    program = diffcli.parse(open("samples/two_layer_network.expr").read())
    f = batch.kernel(program, ["x1", "x2"])
    x1, x2 = da.linspace(-2, 2, 600, chunks=150), da.linspace(1, -1, 600, chunks=150)
    table = da.map_blocks(f, x1, x2, new_axis=1, chunks=(x1.chunks[0], (len(f.columns),)), dtype=float)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster, timeout="60s") as client:
        workers = client.run(os.getpid, wait=True)  # {address: pid}, bounded by the client's timeout
        with distributed.get_task_stream(client) as stream:
            got = client.compute(table).result(timeout=120)
    ran_on = {task["worker"] for task in stream.data}
    assert len(workers) == 2 and os.getpid() not in workers.values() and ran_on and ran_on <= set(workers)
    want = f(x1.compute(), x2.compute())
    assert got.shape == (600, 17) and (got == want).all()


def test_each_program_gets_its_own_plan():
    add, double = diffcli.parse("x = 1\ny = x + 1\n"), diffcli.parse("x = 1\ny = x * 2\n")
    for _ in range(2):
        assert batch.run(add, {"x": np.ones(2)}).gradients["x"].tolist() == [1.0, 1.0]
        assert batch.run(double, {"x": np.ones(2)}).gradients["x"].tolist() == [2.0, 2.0]


def test_random_big_sweep_matches_a_loop_over_grad():
    program = diffcli.parse(open("samples/two_layer_network.expr").read())
    rng = random.Random(5)
    columns = {name: np.array([rng.uniform(-2, 2) for _ in range(300)]) for name in program.inputs}
    result = batch.run(program, columns)
    assert_agrees(program, columns, result, exact="tanh" in EXACT)


# ---------------------------------------------------------------- a fit's passes, set up once

def assert_residuals_agree(program, columns, wrt, x, of=None):
    """batch.Residuals at x gives, bit for bit, the full batch pass's value and the wrt inputs'
    gradients (the data's own gradients not taken); where it gives None, that pass found something
    not finite. With `checked=True` (the columns' names checked by a fit's setup) the same bits."""
    residuals = batch.Residuals(program, columns, of or program.output, wrt)
    with np.errstate(all="ignore"):
        found = residuals(x)
        again = batch.Residuals(program, columns, of or program.output, wrt, checked=True)(x)
    assert (found is None) == (again is None)
    if found is not None:
        assert all(a.tobytes() == b.tobytes() for a, b in zip(found, again))
    full = batch.run(program, {**columns, **dict(zip(wrt, map(float, x)))}, of, all_names=True)
    if found is None:
        assert full.failed.any() or not all(np.isfinite(v).all() for v in [full.value, *full.values.values(),
                                                                            *full.gradients.values()])
        return False
    value, jacobian = found
    assert value.tobytes() == full.value.tobytes()
    for k, name in enumerate(wrt):
        assert np.ascontiguousarray(jacobian[:, k]).tobytes() == (full.gradients[name] + 0.0).tobytes(), name
    return True


@pytest.mark.parametrize("key", sorted(ops.OPS))
def test_a_fits_passes_agree_with_the_batch_pass_for_every_operation(key):
    program, names, cases = _operation_case(key)
    columns = {name: np.array([c[i] for c in cases]) for i, name in enumerate(names[1:])}
    # the first argument a parameter (one value for every row), at two of the cases' values
    for case in cases[:2]:
        assert_residuals_agree(program, columns, names[:1], np.array([case[0]]))
    if len(names) > 1:   # and the first argument alone a column, the others parameters
        assert_residuals_agree(program, {names[0]: np.array([c[0] for c in cases])}, names[1:],
                               np.array(cases[0][1:]))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(programs())
def test_a_fits_passes_agree_on_random_programs(case):
    program = diffcli.parse(case.text)
    rng = np.random.default_rng(len(case.text))
    base = program._inputs(case.sets)[0]
    inputs = list(base)
    wrt, data = inputs[::2], inputs[1::2]
    columns = {name: base[name] * (1 + 1e-3 * rng.standard_normal(8)) for name in data}
    assert_residuals_agree(program, columns, wrt, np.array([base[name] for name in wrt]), case.of)


def test_a_fits_passes_check_columns_that_are_not_as_setup_leaves_them():
    # checked=True places floats and 1-D float arrays of one length; anything else is checked as
    # `run` checks it, with the same errors
    program = diffcli.parse("A = 1\nr = A*t - y\n")
    with pytest.raises(DiffcliError, match="the same number of points"):
        batch.Residuals(program, {"t": np.ones(3), "y": np.ones(2)}, "r", ["A"], checked=True)
    with pytest.raises(DiffcliError, match="one number per point"):
        batch.Residuals(program, {"t": np.ones((2, 2)), "y": np.ones(2)}, "r", ["A"], checked=True)
    # (the names are the caller's to check: a fit's setup checks them as `run` would, the same error)
    from diffcli.commands import fit as fitting

    with pytest.raises(DiffcliError, match="no variable `yy`") as at_setup:
        fitting.setup(program, ["A"], {}, residual="r", data={"t": np.ones(2), "yy": np.ones(2)})
    with pytest.raises(DiffcliError, match="no variable `yy`") as in_a_pass:
        batch.run(program, {"t": np.ones(2), "yy": np.ones(2), "A": 1.0}, "r")
    assert at_setup.value.message == in_a_pass.value.message and "`y`" in at_setup.value.help
    listed = batch.Residuals(program, {"t": [1, 2], "y": [0, 1]}, "r", ["A"], checked=True)   # (ints: converted)
    value, jacobian = listed(np.array([3.0]))
    assert value.tolist() == [3.0, 5.0] and jacobian[:, 0].tolist() == [1.0, 2.0]


def test_a_fits_residual_is_its_own_array():
    # an output that is another value (`r = m`) is copied: the reverse pass reads m (exp's partial is
    # its own value), and what a caller does with the residuals reaches nothing the passes read
    program = diffcli.parse("A = 1\nm = exp(A*t)\nr = m\n")
    passes = batch.Residuals(program, {"t": np.ones(3)}, "r", ["A"], checked=True)
    value = passes.residual(np.array([2.0]))
    assert value.tolist() == [math.exp(2.0)] * 3
    value[:] = 0.0
    assert passes.jacobian()[:, 0].tolist() == [math.exp(2.0)] * 3


def test_a_fit_needs_no_gradient_of_its_data():
    # sqrt'(0) is infinite, but d/dt is no part of the fit: A is fitted through a row at t = 0
    # (least squares in closed form: A = Σ√t·y / Σt, and its standard error as curve_fit's)
    from scipy.optimize import curve_fit

    from diffcli.commands import fit as fitting

    program = diffcli.parse("A = 1\nr = A*sqrt(t) - y\n")
    t = np.array([0.0, 1.0, 4.0, 9.0, 16.0])
    y = np.array([0.1, 2.1, 3.9, 6.2, 7.8])
    assert batch.run(program, {"t": t, "y": y}, "r").failed[0]   # every gradient: d/dt fails there
    assert not batch.run(program, {"t": t, "y": y}, "r", wrt=["A"]).failed.any()
    problem, start, _ = fitting.setup(program, ["A"], {}, residual="r", data={"t": t, "y": y})
    found = fitting.fit(problem, "least_squares", start=start)
    assert found.converged and found.error is None
    assert found.parameters["A"] == pytest.approx(np.sum(np.sqrt(t) * y) / np.sum(t), rel=1e-12)
    popt, pcov = curve_fit(lambda t, A: A * np.sqrt(t), t, y, p0=[1.0])
    assert found.stderr["A"] == pytest.approx(math.sqrt(pcov[0, 0]), rel=1e-6)


def test_a_fits_passes_leave_a_failure_to_the_batch_pass():
    # a row where the model overflows: None, and the batch pass names the row and the place
    program = diffcli.parse("A = 1\nk = 1\nr = A*exp(k*t) - y\n")
    columns = {"t": np.array([0.0, 1.0, 800.0]), "y": np.zeros(3)}
    assert not assert_residuals_agree(program, columns, ["A", "k"], np.array([1.0, 1.0]))
    assert assert_residuals_agree(program, columns, ["A", "k"], np.array([1.0, 0.5]))
    failed = batch.run(program, {**columns, "A": 1.0, "k": 1.0}, "r", wrt=["A", "k"])
    assert list(failed.failed) == [False, False, True] and "overflows" in failed.errors[2].message


def test_a_fits_passes_compute_the_data_alone_once_and_test_it():
    # log(t) does not depend on A: computed when the passes are set up; where it is not finite
    # (t = 0), every call leaves the row to the batch pass, which names it
    program = diffcli.parse("A = 1\nr = A*log(t) - y\n")
    good, bad = {"t": np.array([1.0, 2.0, 3.0]), "y": np.zeros(3)}, {"t": np.array([1.0, 0.0]), "y": np.zeros(2)}
    assert assert_residuals_agree(program, good, ["A"], np.array([2.0]))
    assert not assert_residuals_agree(program, bad, ["A"], np.array([2.0]))
    failed = batch.run(program, {**bad, "A": 2.0}, "r", wrt=["A"])
    assert list(failed.failed) == [False, True] and failed.errors[1].message == "`log` is undefined at log(0)"
