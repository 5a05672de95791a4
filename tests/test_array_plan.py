"""The compiled array passes (interpreters/array_plan.py) against the interpreter they replace
(array_engine.py, through Program.run): the same values and gradients bit for bit, the same errors
at the same places, the same fits step for step; and the large sums of outer products against
NumPy by hand, within an ulp."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import diffcli
from diffcli import DiffcliError
from diffcli.commands import fit as fitting
from diffcli.interpreters import array_plan

from test_arrays import unrolled_programs

PROGRAMS = [
    "x = [0.5, -1.5, 2]\nW = [[1, 2, 3], [-1, 0.5, 2]]\nh = tanh(W @ x + [0.1, -0.2])\ny = sum(h^2) + 2 * sum(W)",
    "x = [0.5, -1.5, 2]\nW = [[1, 2, 3], [-1, 0.5, 2]]\ny = sum(softmax(W, axis=1) * W) + logsumexp(W @ x)",
    "x = [3, 1, 3, 2]\ny = max(x) + min(x) + sum(max(x, 2)) + mean(abs(x - 2.5)) + norm(x)",
    "u = [1, 2]\nv = [3, -4, 5]\nA = outer(u, v)\ny = sum(A * transpose(transpose(A))) + dot(v, v) + A[1, 2] + sum(A[0, 1:3])",
    "a = 2\nx = [0.5, 1.5]\nz = [a * x[0], x[1] / a, a]\ny = sum(z^3) - sum(exp(-x) / (1 + x)) + log(sum(x))",
    "X = [[1, 2], [3, 4], [5, 6]]\nw = [0.5, -0.25]\nb = 0.1\ns = X @ w + b\ny = mean(relu(1 - s)) + sum(sigmoid(s)) + sum(mean(X, axis=0) * w)",
    "x = [1, 2, 3]\nM = [[1, 2, 3], [4, 5, 6]]\ny = sum(M / x) + sum(x^x) + sum(sqrt(M)) + sum(M @ x) + sum(sum(M, axis=1))",
    "x = [-0.5, 0, 1.5, -2]\nh = relu(x * 0)\nk = relu(-x)\ny = sum(relu(x)) + sum(h * x) + sum(k * x) + sum(relu(x - 1)^2)",
    "x = [1, 2]\ns = sum([1, 2, 3]) * 2\nk = [3, 4] * s\ny = sum(k * x) + s",   # named constants get gradients
    "x = [1, 2]\nh = x^2\nk = 3 * x\ny = sum(h) + mean(k)",   # a named sum's argument: its gradient an array
    "x = [0.25, 0.5]\ny = sum(sin(x) * cos(x) + atan(x) + softplus(x) - sign(x) * x) + sum(min(x, 0.3, x * x))",
    "w = [1, 2]\nc = (2)\nb = ([0.5, -1])\ny = sum(w * c) + sum(b * w)",   # named constants that are no inputs
]


def test_a_named_constant_that_is_no_input_has_its_gradient():
    """`c = (2)` names a constant (not an input): the plan gave its gradient as 0 (it was left
    with the unnamed constants, whose adjoints nothing asks for)."""
    planned = diffcli.parse("w = [1, 2]\nc = (2)\nb = ([0.5, -1])\ny = sum(w * c) + sum(b * w)").grad()
    assert list(diffcli.parse("w = [1, 2]\nc = (2)\ny = sum(w * c)").inputs) == ["w"]
    assert planned.gradients["c"] == 3.0                      # sum(w)
    assert planned.gradients["b"].tolist() == [1.0, 2.0]       # w
    assert planned.gradients["w"].tolist() == [2.5, 1.0]       # c + b


def planned_and_interpreted(program, values=None, of=None):
    """(grad by the plan, the interpreter's Run) of one program at one point."""
    planned = program.grad(values, of)
    return planned, program.run(values, of)


def assert_same(planned, run, graph):
    for name, node in graph.names.items():
        for got, want in ((planned.values[name], run.values[node]), (planned.gradients[name], run.adjoints[node])):
            got, want = np.asarray(got), np.asarray(want)
            assert got.shape == want.shape and got.tobytes() == want.tobytes(), name
    assert planned.value == run.value


@pytest.mark.parametrize("text", PROGRAMS)
def test_the_plan_gives_the_interpreters_numbers_bit_for_bit(text):
    program = diffcli.parse(text)
    planned, run = planned_and_interpreted(program)
    assert array_plan.plan(program.graph, program.graph.names[program.output]) is not None
    assert_same(planned, run, program.graph)


@settings(max_examples=30, deadline=None)
@given(unrolled_programs())
def test_random_array_programs_bit_for_bit(p):
    last = p.array_lines[-2].split(" = ")[0]   # the last named step; its variant: used by one reduction
    variant = f"y = mean({last})" if p.arrays[last].ndim else f"y = 2 * {last}"
    for lines in (p.array_lines, p.array_lines[:-1] + [variant]):
        program = diffcli.parse("\n".join(lines))
        planned, run = planned_and_interpreted(program)
        assert_same(planned, run, program.graph)


ERRORS = [   # a NaN or an infinity that a later operation would hide; a domain error in an element
    "x = [1000, 1]\ny = sum(tanh(exp(x)))",
    "x = [1000, 1]\ny = sum(relu(-exp(x)))",
    "x = [1000, 1]\ny = sum(exp(-exp(x)))",
    "x = [1000, 1]\ny = sum(1 / exp(x))",
    "x = [1000, 1]\ny = sum(exp(x)^0)",
    "x = [1000, 1]\ny = exp(x)[1]",
    "x = [1, 2, 3, -0.2]\ny = sum(relu(log(x)))",
    "x = [1e-250]\ny = sum(1e200 * (1e200 * tanh(x)))",   # the value is finite, the gradient is not
    "x = [1, 0]\ny = norm(x - [1, 0])",
    "W = [[1e200, 1], [1, 1]]\nv = [1e200, 1]\ny = sum(tanh(W @ v))",
]


@pytest.mark.parametrize("text", ERRORS)
def test_errors_are_the_interpreters_at_the_same_place(text):
    program = diffcli.parse(text)
    with pytest.raises(DiffcliError) as planned:
        program.grad()
    with pytest.raises(DiffcliError) as interpreted:
        program.run()
    assert (planned.value.kind, planned.value.message, planned.value.span) == \
        (interpreted.value.kind, interpreted.value.message, interpreted.value.span)


def test_a_zero_adjoint_still_blocks_an_undefined_partial():
    program = diffcli.parse("x = [0, 4]\ny = sum(0 * sqrt(x)) + sum(x)")
    planned, run = planned_and_interpreted(program)
    assert_same(planned, run, program.graph)
    assert list(planned.gradients["x"]) == [1.0, 1.0]


BIG = "W = uniform(512, 512, seed=1)\nv = uniform(512, seed=2)\nh = tanh(W @ v)\nloss = sum(tanh(W @ h)^2)\n"


def test_a_large_matrixs_outer_products_against_numpy_by_hand_within_an_ulp():
    program = diffcli.parse(BIG)
    W, v = program.inputs["W"], program.inputs["v"]
    h = np.tanh(W @ v)
    t = np.tanh(W @ h)
    gb = 2 * t * (1 - t * t)
    ga = (W.T @ gb) * (1 - h * h)
    result = program.grad()
    run = program.run()
    assert result.value == np.sum(t * t)
    terms = np.abs(np.outer(gb, h)) + np.abs(np.outer(ga, v))   # rounding is relative to the terms' size
    for want in (np.outer(gb, h) + np.outer(ga, v), run.adjoints[program.graph.names["W"]]):
        assert np.all(np.abs(result.gradients["W"] - want) <= 2 * np.spacing(terms))
    assert result.gradients["v"].tobytes() == (W.T @ ga).tobytes()


def test_a_gradient_held_by_the_caller_is_never_written_over():
    program = diffcli.parse(BIG)
    first = program.grad()
    kept = first.gradients["W"].copy()
    row = first.gradients["W"][3]          # a view keeps the buffer held too
    second = program.grad({"v": np.linspace(-1, 1, 512)})
    assert first.gradients["W"].tobytes() == kept.tobytes() and row.tobytes() == kept[3].tobytes()
    assert second.gradients["W"] is not first.gradients["W"]
    assert not np.array_equal(second.gradients["W"], kept)
    del first, row
    third = program.grad({"v": np.linspace(-1, 1, 512)})   # reuses a free buffer: the same numbers
    assert third.gradients["W"].tobytes() == second.gradients["W"].tobytes()


NETWORK = ("X = [[1, 2], [-1, 0.5], [0.3, -2], [2, 1]]\ny = [1, -1, -1, 1]\n"
           "W1 = [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.2]]\nb1 = [0, 0.1, 0]\nw2 = [0.3, -0.1, 0.2]\nb2 = 0.05\n"
           "H = relu(X @ transpose(W1) + b1)\ns = H @ w2 + b2\nloss = mean(relu(1 - y * s)) + 1e-3 * (sum(W1^2) + b2^2)")


def fitted(text, method, interpreted, monkeypatch, **options):
    with monkeypatch.context() as patch:
        if interpreted:
            patch.setattr(array_plan, "plan", lambda *args, **kw: None)
        program = diffcli.parse(text)
        names = [n for n in ("W1", "b1", "w2", "b2", "w") if n in program.inputs]
        problem, start, _ = fitting.setup(program, names, {}, data={})
        result = fitting.fit(problem, method, start=start, **options)
        used = problem.__dict__.get("_plan")
    return result, used


@pytest.mark.parametrize("method", ["gd", "adam"])
def test_a_fit_by_the_plan_is_the_interpreters_step_for_step(method, monkeypatch):
    planned, used = fitted(NETWORK, method, False, monkeypatch, steps=30)
    interpreted, unused = fitted(NETWORK, method, True, monkeypatch, steps=30)
    assert used and not unused
    assert np.array(planned.history).tobytes() == np.array(interpreted.history).tobytes()
    for name in planned.parameters:
        assert np.asarray(planned.parameters[name]).tobytes() == np.asarray(interpreted.parameters[name]).tobytes()
        assert np.asarray(planned.gradient[name]).tobytes() == np.asarray(interpreted.gradient[name]).tobytes()


def test_a_fit_that_runs_away_stops_where_the_interpreter_stops(monkeypatch):
    text = "w = [0.5, 1]\nloss = sum(w^4)"
    planned, _ = fitted(text, "gd", False, monkeypatch, steps=20, lr=10.0)
    interpreted, _ = fitted(text, "gd", True, monkeypatch, steps=20, lr=10.0)
    assert planned.error is not None and planned.message == interpreted.message
    assert (planned.error.message, planned.error.span) == (interpreted.error.message, interpreted.error.span)
    assert planned.history == interpreted.history


def test_the_power_rule_of_a_square_is_two_x_with_pows_bits():
    """y·x^(y−1) of `W^2` is written 2·W (x^1 is x): the interpreter's bits (np.power's, whatever
    libm or SIMD pow NumPy uses here), on random values of every magnitude and sign."""
    rng = np.random.default_rng(19)
    x = np.concatenate([rng.standard_normal(20_000) * 10.0 ** rng.integers(-300, 300, 20_000),
                        [0.0, -0.0, 5e-324, -5e-324, 1.7e308, -1.7e308]])
    with np.errstate(over="ignore"):
        assert np.power(x, np.ones_like(x)).tobytes() == x.tobytes()
        assert (2.0 * np.power(x, np.ones_like(x))).tobytes() == (2.0 * x).tobytes()
    for scale in (1e-150, 1e-3, 1.0, 1e3, 1e150):
        W = rng.standard_normal((16, 16)) * scale
        w = rng.standard_normal(16) * scale
        program = diffcli.parse(f"W = {W.tolist()}\nw = {w.tolist()}\ny = sum(W^2) + sum(w^2) * 3 + sum(W @ w)")
        plan = array_plan.plan(program.graph, program.graph.names[program.output])
        assert plan is not None and plan.source.count("np.power") == 2   # the forward's W^2, w^2 only
        planned, run = planned_and_interpreted(program)
        assert_same(planned, run, program.graph)
    # g·(2·w) written (g·2)·w: where g·2 overflows and g·(2·w) does not, the interpreter's numbers
    program = diffcli.parse("w = [0.1, -0.2, 0.3]\nb = 0.25\ny = 1e308 * (sum(w^2) + b^2)")
    assert "* 2.0) * v" in array_plan.plan(program.graph, program.graph.names[program.output]).source
    planned, run = planned_and_interpreted(program)
    assert_same(planned, run, program.graph)
    assert np.isfinite(planned.gradients["w"]).all() and np.isfinite(planned.gradients["b"])
