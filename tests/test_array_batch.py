"""The batched array engine (interpreters/array_batch.py) against the one-point array engine, point
by point, and against NumPy by hand; per-point failures; the mean/sum of gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffcli
from diffcli.interpreters import array_batch

# expressions over A (m×n), v (n), u (m), s (scalar): each a vector, matrix or scalar of known shape
PIECES = {
    "vector_n": ["v", "A @ u * 0 + v" , "tanh(u @ A)", "softmax(v)", "sum(A, axis=0)", "max(A, axis=0)",
                 "transpose(A)[:, 0] * s", "A[0] - v", "logsumexp(A, axis=0)", "[v[0], s, u[0]][0] + v",
                 "min(v, 0.3)", "mean(outer(u, v), axis=0)", "sigmoid(v) * s"],
    "vector_m": ["u", "A @ v", "sin(A @ tanh(v))", "softmax(A @ v)", "sum(A * v, axis=1)", "u * norm(v)",
                 "transpose(A) @ v * 0 + u", "mean(A, axis=1) + u", "exp(u) / sum(exp(u))", "u[0:1] + u"],
    "scalar": ["s", "dot(v, v)", "sum(A)", "norm(u)", "max(u)", "logsumexp(v)", "u @ A @ v", "A[0, 0]",
               "mean(tanh(A)) * s", "softplus(s) + min(v)", "sum(softmax(A, axis=1)^2)"],
}
# (`A @ u * 0 + v` and friends are shape errors unless m = n: only well-shaped programs are kept)


@st.composite
def programs(draw):
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lines = [f"A = {np.round(np.linspace(-1, 1, m * n), 3).reshape(m, n).tolist()}",
             f"v = {np.round(np.linspace(0.5, -0.4, n), 3).tolist()}", f"u = {np.round(np.linspace(-0.3, 0.7, m), 3).tolist()}",
             "s = 0.7"]
    names = []
    for k in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(sorted(PIECES)))
        lines.append(f"t{k} = {draw(st.sampled_from(PIECES[kind]))}")
        names.append(f"t{k}")
    lines.append(f"y = sum({names[0]}^2) + "
                 + " + ".join(f"0.5 * sum(sin({t}))" for t in names))
    return "\n".join(lines), m, n, draw(st.sets(st.sampled_from(["A", "v", "u", "s"]), min_size=1, max_size=4)), \
        draw(st.integers(1, 4)), draw(st.integers(0, 2**31))


def _parse(text):
    try:
        return diffcli.parse(text)
    except diffcli.DiffcliError as error:
        assert error.kind == "shape", error.message
        return None


@settings(max_examples=60, deadline=None)
@given(programs())
def test_batched_equals_the_one_point_engine_at_every_point(case):
    text, m, n, varying, count, seed = case
    program = _parse(text)
    if program is None:
        return
    rng = np.random.default_rng(seed)
    shapes = {"A": (m, n), "v": (n,), "u": (m,), "s": ()}
    points = {name: rng.uniform(-1, 1, (count,) + shapes[name]) for name in varying}
    result = array_batch.run(program, points, all_names=True)
    summed = array_batch.run(program, points, reduce="sum")
    assert not result.failed.any()
    for k in range(count):
        one = program.grad({name: column[k] for name, column in points.items()})
        assert result.value[k] == pytest.approx(one.value, rel=1e-12, abs=1e-12)
        for name in program.names:
            np.testing.assert_allclose(result.gradients[name][k], one.gradients[name], rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(result.values[name][k], one.values[name], rtol=1e-12, atol=1e-12)
    for name in shapes:
        np.testing.assert_allclose(summed.gradients[name], result.gradients[name].sum(axis=0), rtol=1e-10, atol=1e-11)


def test_a_two_layer_network_against_numpy_by_hand():
    program = diffcli.parse("W1 = uniform(4, 3, seed=1)\nb1 = zeros(4)\nW2 = uniform(2, 4, seed=2)\n"
                            "x = [0, 0, 0]\nt = [0, 1]\nh = tanh(W1 @ x + b1)\nz = W2 @ h\n"
                            "loss = logsumexp(z) - dot(t, z)")
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(50, 3)), np.eye(2)[rng.integers(0, 2, 50)]
    W1, W2 = program.inputs["W1"], program.inputs["W2"]
    H = np.tanh(X @ W1.T)
    Z = H @ W2.T
    top = Z.max(axis=1, keepdims=True)
    loss = top[:, 0] + np.log(np.exp(Z - top).sum(axis=1)) - (T * Z).sum(axis=1)
    dZ = np.exp(Z - top) / np.exp(Z - top).sum(axis=1, keepdims=True) - T
    dH = dZ @ W2 * (1 - H**2)
    mean = array_batch.run(program, {"x": X, "t": T}, reduce="mean")
    each = array_batch.run(program, {"x": X, "t": T})
    np.testing.assert_allclose(each.value, loss, rtol=1e-12)
    np.testing.assert_allclose(mean.gradients["W2"], dZ.T @ H / 50, rtol=1e-11)
    np.testing.assert_allclose(mean.gradients["W1"], dH.T @ X / 50, rtol=1e-11)
    np.testing.assert_allclose(each.gradients["x"], dH @ W1, rtol=1e-11)
    np.testing.assert_allclose(each.gradients["W1"], dH[:, :, None] * X[:, None, :], rtol=1e-11)


def test_a_failing_point_fails_alone_with_the_one_point_error():
    program = diffcli.parse("x = [1, 2, 3, 4]\nw = 2\ny = sum(w * log(x))")
    points = {"x": np.array([[1, 2, 3, 4], [1, 2, 3, -0.2], [1, 1, 1, 1.0]])}
    result = array_batch.run(program, points)
    assert result.failed.tolist() == [False, True, False]
    assert "`log`" in result.errors[1].message and "-0.2" in result.errors[1].message
    assert "x[3]" in result.errors[1].message and result.errors[1].kind == "domain"
    assert np.isnan(result.gradients["x"][1]).all() and np.isfinite(result.gradients["x"][[0, 2]]).all()
    mean = array_batch.run(program, points, reduce="mean")
    assert mean.failed.tolist() == [False, True, False]
    assert mean.gradients["w"] == pytest.approx((np.log(points["x"][0]).sum() + 0) / 2)
    np.testing.assert_allclose(mean.gradients["x"], (2 / points["x"][0] + 2 / points["x"][2]) / 2)


def test_a_derivative_that_does_not_exist_fails_its_point():
    program = diffcli.parse("x = [1, 2]\ny = norm(x)")
    result = array_batch.run(program, {"x": np.array([[3.0, 4.0], [0.0, 0.0]])})
    assert result.failed.tolist() == [False, True]
    assert "norm" in result.errors[1].message
    np.testing.assert_allclose(result.gradients["x"][0], [0.6, 0.8])


def test_inputs_fixed_and_checked_as_grad_checks_them():
    program = diffcli.parse("W = [[1, 2], [3, 4]]\nx = [0, 0]\ny = sum(W @ x)")
    result = array_batch.run(program, {"x": np.ones((3, 2))}, fixed={"W": np.eye(2)})
    np.testing.assert_allclose(result.value, [2, 2, 2])
    np.testing.assert_allclose(result.gradients["W"], np.ones((3, 2, 2)))
    with pytest.raises(diffcli.DiffcliError) as error:
        array_batch.run(program, {"x": np.ones((3, 3))})
    assert error.value.kind == "input"
    with pytest.raises(diffcli.DiffcliError) as error:
        array_batch.run(program, {"x": np.ones((3, 2))}, of="Wx")
    assert error.value.kind == "input"


def test_points_are_taken_in_passes_of_bounded_size(monkeypatch):
    monkeypatch.setattr(array_batch, "BUDGET", 500)
    program = diffcli.parse("W = uniform(10, 10, seed=1)\nx = zeros(10)\ny = sum(tanh(W @ x)^2)")
    X = np.random.default_rng(1).normal(size=(40, 10))
    whole = array_batch.run(program, {"x": X}, reduce="mean")
    assert array_batch.points_per_pass(program.graph, [True] * len(program.graph), True) == 1
    H = np.tanh(X @ program.inputs["W"].T)
    np.testing.assert_allclose(whole.gradients["W"], ((2 * H * (1 - H**2)).T @ X) / 40, rtol=1e-11)


def test_the_docstring_examples():
    import doctest

    assert doctest.testmod(array_batch).failed == 0
