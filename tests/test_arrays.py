"""Arrays (SPEC "Arrays: vectors and matrices"): every operation against NumPy by hand, random array
programs against their unrolled scalar versions run by the scalar engine, shape errors with their
places, broadcasting both ways, ties, the generator's exact numbers, and the issue's bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffcli
from diffcli import DiffcliError
from diffcli.ops import MAX_ELEMENTS, splitmix64_uniforms

from conftest import run_diffcli


def grad(text, values=None, of=None):
    return diffcli.parse(text).grad(values, of)


def numeric_gradient(text, name, values=None, h=1e-6):
    """Central differences of the output in each element of the input `name`."""
    program = diffcli.parse(text)
    base = {key: np.array(v, dtype=float) if np.ndim(v) else v
            for key, v in {**program.inputs, **(values or {})}.items()}
    x = np.array(base[name], dtype=float)
    out = np.zeros(x.shape)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += h
        down[index] -= h
        out[index] = (program.evaluate({**base, name: up}).values[program.output]
                      - program.evaluate({**base, name: down}).values[program.output]) / (2 * h)
    return out


# ---------------------------------------------------------------- every operation, by hand

W = [[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]]
X3 = [0.3, -0.7, 1.1]
X2 = [0.6, -0.4]


def test_matrix_vector_product_and_its_gradients():
    r = grad(f"W = {W}\nx = {X3}\ny = sum((W @ x)^2)")
    w, x = np.array(W), np.array(X3)
    h = w @ x
    assert r.value == pytest.approx(float(h @ h), rel=1e-14)
    np.testing.assert_allclose(r.gradients["W"], 2 * np.outer(h, x), rtol=1e-14)
    np.testing.assert_allclose(r.gradients["x"], 2 * w.T @ h, rtol=1e-14)


@pytest.mark.parametrize("left, right", [("v3", "v3"), ("M23", "v3"), ("v2", "M23"), ("M23", "M32")])
def test_every_kind_of_at(left, right):
    values = {"v3": np.array(X3), "v2": np.array(X2), "M23": np.array(W), "M32": np.array(W).T * 0.5}
    total = "sin(a @ b)" if left == right == "v3" else "sum(sin(a @ b))"  # (n·n is a scalar: no sum)
    text = f"a = {values[left].tolist()}\nb = {values[right].tolist()}\ny = {total}"
    r = grad(text)
    assert r.value == pytest.approx(float(np.sum(np.sin(values[left] @ values[right]))), rel=1e-13)
    for name in "ab":
        np.testing.assert_allclose(r.gradients[name], numeric_gradient(text, name), rtol=1e-6, atol=1e-8)


REDUCTIONS = {
    "sum(M)": lambda m: m.sum(), "sum(M, axis=0)": lambda m: m.sum(axis=0),
    "sum(M, axis=1)": lambda m: m.sum(axis=1), "mean(M)": lambda m: m.mean(),
    "mean(M, axis=1)": lambda m: m.mean(axis=1), "max(M)": lambda m: m.max(),
    "min(M, axis=0)": lambda m: m.min(axis=0), "max(M, axis=1)": lambda m: m.max(axis=1),
    "logsumexp(M)": lambda m: np.log(np.exp(m).sum()),
    "logsumexp(M, axis=0)": lambda m: np.log(np.exp(m).sum(axis=0)),
    "softmax(M)": lambda m: np.exp(m) / np.exp(m).sum(),
    "softmax(M, axis=1)": lambda m: np.exp(m) / np.exp(m).sum(axis=1, keepdims=True),
    "transpose(M)": lambda m: m.T, "norm(M)": lambda m: np.sqrt((m * m).sum()),
    "M[1]": lambda m: m[1], "M[:, 1:]": lambda m: m[:, 1:], "M[-1, -2]": lambda m: m[-1, -2],
    "M[0:1, :]": lambda m: m[0:1, :], "M[1][2]": lambda m: m[1, 2],
    "outer(M[0], M[1][0:2])": lambda m: np.outer(m[0], m[1][0:2]), "dot(M[0], M[1])": lambda m: m[0] @ m[1],
    "[M[0, 0], M[1, 1]]": lambda m: np.array([m[0, 0], m[1, 1]]), "[M[1], M[0]]": lambda m: m[[1, 0]],
    "M + [1, 2, 3]": lambda m: m + [1, 2, 3], "transpose(M) * [10, 20]": lambda m: m.T * [10, 20],
    "max(M, [0, 1, 0.5], 0.2)": lambda m: np.maximum(np.maximum(m, [0, 1, 0.5]), 0.2),
    "[1, 2, 3] / [[2], [4]]": lambda m: np.array([1, 2, 3]) / np.array([[2], [4]]) + 0 * m.sum(),
}


@pytest.mark.parametrize("expression", list(REDUCTIONS))
def test_structural_operations_against_numpy(expression):
    """The value by NumPy, and the gradient of a weighted sum of it against central differences."""
    m = np.array(W)
    expected = np.asarray(REDUCTIONS[expression](m), dtype=float)
    weights = np.arange(1, expected.size + 1, dtype=float).reshape(expected.shape) / 7
    text = f"M = {W}\nz = {expression}\ny = sum(z * {weights.tolist()})" if expected.ndim else \
        f"M = {W}\nz = {expression}\ny = z * {float(weights)}"
    program = diffcli.parse(text)
    r = program.grad()
    np.testing.assert_allclose(r.values["z"], expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(r.gradients["M"], numeric_gradient(text, "M"), rtol=1e-6, atol=1e-8)
    # forward mode, element by element, is the same gradient
    for index in [(0, 0), (1, 2)]:
        label = f"M[{index[0]},{index[1]}]"
        assert program.derivatives(label).derivatives["y"] == pytest.approx(r.gradients["M"][index], rel=1e-12,
                                                                            abs=1e-14)


def test_broadcasting_both_ways_sums_over_the_stretched_axes():
    r = grad("c = [[1], [2]]\nv = [10, 20, 30]\ny = sum(c * v)")
    np.testing.assert_allclose(r.values["y"], 180.0)
    np.testing.assert_allclose(r.gradients["c"], [[60.0], [60.0]])
    np.testing.assert_allclose(r.gradients["v"], [3.0, 3.0, 3.0])
    r = grad("s = 2\nv = [1, 2]\ny = sum(s * v + v / s)")
    assert r.gradients["s"] == pytest.approx(3.0 - 3.0 / 4)


def test_ties_split_evenly_in_each_slice():
    r = grad("x = [1, 3, 3]\ny = max(x)")
    np.testing.assert_allclose(r.gradients["x"], [0, 0.5, 0.5])
    r = grad("M = [[1, 5], [1, 2], [3, 2]]\ny = sum(min(M, axis=0) * [1, 10])")
    np.testing.assert_allclose(r.gradients["M"], [[0.5, 0], [0.5, 5], [0, 5]])
    r = grad("x = [2, 2]\ny = sum(max(x, [2, 1], 2))")  # the elementwise max of three: thirds, halves
    np.testing.assert_allclose(r.gradients["x"], [1 / 3, 0.5])


def test_logsumexp_and_softmax_do_not_overflow():
    r = grad("x = [1000, 1000, -1000]\ny = logsumexp(x)")
    assert r.value == pytest.approx(1000 + math.log(2))
    np.testing.assert_allclose(r.gradients["x"], [0.5, 0.5, 0])
    r = grad("x = [-1000, 1000]\ny = softmax(x)[1]")
    assert r.value == 1.0
    with pytest.raises(DiffcliError) as caught:  # an element that underflows to 0 is valid; its log is not
        grad("x = [-1000, 1000]\ny = log(softmax(x)[0])")
    assert caught.value.kind == "domain"


def test_logsumexp_gradient_of_huge_ties_is_the_softmax():
    # exp(x - out) lost out's log(2) to rounding at 1e16 and up: the gradient summed to 2
    for big in (1e16, 1e300):
        r = grad(f"x = [{big}, {big}]\ny = logsumexp(x)")
        np.testing.assert_allclose(r.gradients["x"], [0.5, 0.5])
    r = grad("M = [[1e300, 1e300], [1e300, 1]]\ny = sum(logsumexp(M, axis=1) * [1, 2])")
    np.testing.assert_allclose(r.gradients["M"], [[0.5, 0.5], [2, 0]])


def test_norm_of_tiny_and_huge_elements_is_scaled_as_hypot():
    # the squares alone underflowed to 0 (a false "no gradient at 0") or overflowed
    for tiny in (1e-200, 1e200):
        r = grad(f"x = [{tiny}, {tiny}]\ny = norm(x)")
        assert r.value == pytest.approx(math.sqrt(2) * tiny)
        np.testing.assert_allclose(r.gradients["x"], [2 ** -0.5, 2 ** -0.5])
    r = grad("x = [0, 3e-200, 4e-200]\ny = norm(x)")
    np.testing.assert_allclose(r.gradients["x"], [0, 0.6, 0.8])


def test_domain_errors_name_the_first_bad_element():
    with pytest.raises(DiffcliError) as caught:
        grad("x = [1, 2, 3, -0.2, -5]\ny = sum(log(x))")
    error = caught.value
    assert error.kind == "domain" and "-0.2" in error.message and "x[3]" in error.message
    assert (error.line, error.column) == (2, 9)
    with pytest.raises(DiffcliError) as caught:
        grad("W = [[1, 0], [0, 1]]\nx = [1, 2]\ny = sum(sqrt(W @ x - 1.5))")
    assert "(W @ x - 1.5)[0]" in caught.value.message


def _first_bad(values):
    """The row-major index (as a label) and the value of the first element outside (0, inf)."""
    flat = np.asarray(values, dtype=float).ravel()
    k = int(np.flatnonzero(~(flat > 0))[0])
    index = np.unravel_index(k, np.shape(values))
    return "[" + ",".join(map(str, index)) + "]", flat[k]


def _number(x):
    return f"{x:g}" if x != int(x) else str(int(x))


def test_element_domain_errors_read_as_the_spec_has_them():
    """SPEC "Arrays": ``log` of -0.2 at x[3]``, `(W @ x - 1)[3]`; the bad element found by NumPy."""
    x = np.array([1, 2, 0.5, -0.2, -3])
    label, bad = _first_bad(x)
    with pytest.raises(DiffcliError) as caught:
        grad(f"x = {x.tolist()}\ny = sum(log(x))")
    assert caught.value.message == f"`log` of {_number(bad)} at x{label}"
    W, v = np.array([[2, 2], [3, 4], [0, 1], [1, -6]]), np.array([0.5, 0.25])
    label, bad = _first_bad(W @ v - 1)
    with pytest.raises(DiffcliError) as caught:
        grad(f"W = {W.tolist()}\nx = {v.tolist()}\ny = sum(log(W @ x - 1))")
    assert caught.value.message == f"`log` of {_number(bad)} at (W @ x - 1){label}" and label == "[2]"
    # a matrix operand by name, through a broadcast of a vector over its rows: the matrix's element
    M, b = np.array([[1, 2], [3, -1]]), np.array([1, 0])
    label, bad = _first_bad(M + b)
    with pytest.raises(DiffcliError) as caught:
        grad(f"M = {M.tolist()}\nb = {b.tolist()}\nh = M + b\ny = sum(log(h))")
    assert caught.value.message == f"`log` of {_number(bad)} at h{label}" and label == "[1,1]"
    # the divisor is named, not the dividend
    with pytest.raises(DiffcliError) as caught:
        grad("x = [1, 2, 3]\nd = [1, 0, 2]\ny = sum(x / d)")
    assert caught.value.message == "division by zero in `x / d` at d[1]"
    with pytest.raises(DiffcliError) as caught:  # a reverse-pass error names its element too
        grad("x = [1, 0, 4]\ny = sum(sqrt(x))")
    assert caught.value.message == "the derivative of `sqrt` is infinite or undefined: `sqrt` of 0 at x[1]"


def test_a_scalars_domain_error_in_an_array_program_keeps_its_words():
    """A scalar's message is byte for byte what the scalar engine says."""
    with pytest.raises(DiffcliError) as scalar:
        grad("k = -0.2\ny = log(k)")
    with pytest.raises(DiffcliError) as mixed:
        grad("x = [1, 2]\nk = -0.2\ny = sum(x) + log(k)")
    assert mixed.value.message == scalar.value.message == "`log` is undefined at log(-0.2)"


def test_norm_has_no_gradient_at_zero():
    assert grad("x = [3, 4]\ny = norm(x)").value == 5.0
    with pytest.raises(DiffcliError) as caught:
        grad("x = [0, 0]\ny = norm(x)")
    assert caught.value.kind == "domain" and "norm" in caught.value.message


def test_norm_at_zero_behind_a_zero_adjoint_has_gradient_zero_as_sqrt():
    """`0*sqrt(x)` at 0 has gradient 0 (a zero adjoint blocks the undefined partial): so has
    `0*norm(x)`, in grad and at many points alike (both were the norm's domain error)."""
    text = "x = [0, 0]\nk = 2\ny = 0*norm(x) + k"
    assert grad(text).gradients["x"].tolist() == [0.0, 0.0]
    done = run_diffcli("grad", "-", "--sweep", "k=0:1:2", "--json", input=text.encode())
    assert done.returncode == 0, done.stderr_text
    assert [json.loads(line)["gradients"]["x"] for line in done.stdout_text.splitlines()] == [[0.0, 0.0]] * 2


@pytest.mark.parametrize("text, wrt", [
    ("x = [0, 1]\ny = sum(0*sqrt(x))", "x[0]"),
    ("x = [0, 1]\ny = sum(relu(x - 1) * sqrt(x))", "x[0]"),  # a mask that is 0 where sqrt' is not finite
    ("x = [0, 0]\ny = 0*norm(x)", "x[1]"),
])
def test_forward_mode_on_arrays_needs_a_partial_only_where_something_flows(text, wrt):
    """As on floats (`0*sqrt(x)` at 0 has derivative 0): a zero partial blocks an undefined one,
    element by element, in forward mode (and so in check) too."""
    program = diffcli.parse(text)
    assert program.derivatives(wrt).derivatives["y"] == 0.0
    done = run_diffcli("check", "-", "--json", input=text.encode())
    assert "Traceback" not in done.stderr_text
    row = {r["name"]: r for r in json.loads(done.stdout_text)["rows"]}[wrt]
    assert row["forward"] == 0.0


@pytest.mark.parametrize("text, wrt, words", [
    ("x = [0, 1]\ny = sum(sqrt(x))", "x[0]", "`sqrt` of 0 at x[0]"),
    ("x = [0, 1]\nz = sqrt(x)\ny = sum(0*z)", "x[0]", "`sqrt` of 0 at x[0]"),  # z is named: needed
    ("x = [0, 0]\ny = norm(x)", "x[0]", "`norm`"),
    ("x = [1, 1]\ny = sum(1e300*sin(1e300*x))", "x[1]", "overflows"),
])
def test_forward_mode_on_arrays_refuses_a_partial_that_is_needed(text, wrt, words):
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text).derivatives(wrt)
    assert caught.value.kind == "domain" and words in caught.value.message


@pytest.mark.parametrize("wrt, words, hint", [
    ("x[2]", "has no element [2]", "x[0]"),
    ("x[0,0]", "has no element [0,0]", "x[0]"),
    ("k[0]", "`k` is a scalar, which has no element [0]", "--wrt k"),  # (its help was `--wrt k[0]`)
    ("x", "one of its elements", "--wrt x[0]"),
])
def test_forward_modes_wrt_names_an_element_that_is_there(wrt, words, hint):
    program = diffcli.parse("x = [1, 2]\nk = 1\ny = sum(k*x^2)")
    with pytest.raises(DiffcliError) as caught:
        program.derivatives(wrt)
    assert caught.value.kind == "input" and words in caught.value.message and hint in caught.value.help
    assert "k[0]" not in caught.value.help


# ---------------------------------------------------------------- the generator's exact numbers

def splitmix64_by_hand(seed, count):
    mask, state, out = 2**64 - 1, seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append((z ^ (z >> 31)) >> 11)
    return [d * 2.0**-53 for d in out]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1])
def test_the_generator_is_splitmix64_exactly(seed):
    assert splitmix64_uniforms(seed, 50).tolist() == splitmix64_by_hand(seed, 50)
    u = splitmix64_by_hand(seed, 12)
    uniform = diffcli.parse(f"W = uniform(2, 3, seed={seed}, low=-2, high=3)\ny = sum(W)").inputs["W"]
    assert uniform.tolist() == [[-2 + 5 * x for x in u[k:k + 3]] for k in (0, 3)]
    normal = diffcli.parse(f"v = normal(6, seed={seed}, mean=1, std=2)\ny = sum(v)").inputs["v"]
    by_hand = [1 + 2 * math.sqrt(-2 * math.log(1 - u[2 * k])) * math.cos(2 * math.pi * u[2 * k + 1])
               for k in range(6)]
    np.testing.assert_allclose(normal, by_hand, rtol=1e-15, atol=1e-15)


def test_constructors():
    program = diffcli.parse("Z = zeros(2, 3)\nO = ones(2)\nI = eye(3)\ny = sum(Z) + sum(O) + sum(I)")
    assert program.grad().value == 5.0
    np.testing.assert_array_equal(program.inputs["I"], np.eye(3))


@pytest.mark.parametrize("text, usage", [("y = zeros(1, 2, 3)", "write it as `zeros(n)` or `zeros(m, n)`"),
                                         ("y = uniform(seed=1)", "write it as `uniform(n)` or `uniform(m, n)`"),
                                         ("y = eye(2, 2)", "write it as `eye(n)`")])
def test_a_constructor_given_too_many_sizes_is_shown_its_two_forms(text, usage):
    with pytest.raises(DiffcliError) as caught:
        grad(text)
    assert caught.value.kind == "name" and caught.value.help == usage  # (was `zeros(n) or zeros(m, n)`)


# ---------------------------------------------------------------- random programs: the unrolled oracle

class Unrolled:
    """A random array program written twice: as arrays, and unrolled into one scalar statement per
    element (names `x_0_1`), which the scalar engine runs. Built together, so neither reads the other."""

    def __init__(self, draw):
        self.draw = draw
        self.array_lines, self.scalar_lines = [], []
        self.arrays = {}  # name -> numpy array of the scalar names of its elements
        self.count = 0

    def scalar(self, expression):
        self.count += 1
        name = f"s{self.count}"
        self.scalar_lines.append(f"{name} = {expression}")
        return name

    def add_input(self, name, shape):
        values = np.array(self.draw(st.lists(st.integers(-20, 20), min_size=math.prod(shape),
                                             max_size=math.prod(shape)))).reshape(shape) / 10
        self.array_lines.append(f"{name} = {values.tolist()}")
        names = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            element = f"{name}_{'_'.join(map(str, index))}"
            self.scalar_lines.append(f"{element} = {float(values[index])!r}")
            names[index] = element
        self.arrays[name] = names

    def assign(self, name, text, elements):
        self.array_lines.append(f"{name} = {text}")
        out = np.empty(elements.shape, dtype=object)
        for index in np.ndindex(*elements.shape):
            out[index] = self.scalar(elements[index])
        self.arrays[name] = out


@st.composite
def unrolled_programs(draw):
    p = Unrolled(draw)
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    p.add_input("A", (m, n))
    p.add_input("v", (n,))
    p.add_input("u", (m,))
    names = ["A", "v", "u"]
    for step in range(draw(st.integers(1, 4))):
        target = f"t{step}"
        kind = draw(st.sampled_from(["matvec", "broadcast", "unary", "reduce", "index", "vecmat"]))
        if kind == "matvec":
            a, b = p.arrays["A"], p.arrays["v"]
            elements = np.array([" + ".join(f"{a[i, j]}*{b[j]}" for j in range(n)) for i in range(m)], dtype=object)
            p.assign(target, "A @ v", elements)
        elif kind == "vecmat":
            a, b = p.arrays["u"], p.arrays["A"]
            elements = np.array([" + ".join(f"{a[i]}*{b[i, j]}" for i in range(m)) for j in range(n)], dtype=object)
            p.assign(target, "u @ A", elements)
        elif kind == "broadcast":
            op = draw(st.sampled_from(["+", "-", "*"]))
            left = draw(st.sampled_from(names))
            right = draw(st.sampled_from(["v", "u", "A"]))
            a, b = p.arrays[left], p.arrays[right]
            try:
                shape = np.broadcast_shapes(a.shape, b.shape)
            except ValueError:
                continue
            a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
            elements = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                elements[index] = f"({a[index]}) {op} ({b[index]})"
            p.assign(target, f"{left} {op} {right}", elements)
        elif kind == "unary":
            f = draw(st.sampled_from(["sin", "tanh", "sigmoid", "softplus"]))
            source = draw(st.sampled_from(names))
            a = p.arrays[source]
            elements = np.empty(a.shape, dtype=object)
            for index in np.ndindex(*a.shape):
                elements[index] = f"{f}({a[index]})"
            p.assign(target, f"{f}({source})", elements)
        elif kind == "reduce":
            source = draw(st.sampled_from([s for s in names if p.arrays[s].ndim == 2] or ["A"]))
            a = p.arrays[source]
            axis = draw(st.sampled_from([0, 1]))
            kept = a.sum(axis=axis) if False else None
            rows = a.T if axis == 0 else a
            elements = np.array([" + ".join(row) for row in rows], dtype=object)
            p.assign(target, f"sum({source}, axis={axis})", elements)
        else:
            source = draw(st.sampled_from(names))
            a = p.arrays[source]
            k = draw(st.integers(-a.shape[0], a.shape[0] - 1))
            p.assign(target, f"{source}[{k}]", a[k] if a.ndim == 2 else np.array(a[k], dtype=object))
        names.append(target)
    last = p.arrays[names[-1]]
    p.array_lines.append(f"y = sum({names[-1]}^2)" if last.ndim else f"y = {names[-1]}^2")
    p.scalar_lines.append("y = " + " + ".join(f"({e})^2" for e in last.ravel()))
    return p


@settings(max_examples=40, deadline=None)
@given(unrolled_programs())
def test_random_array_programs_against_their_unrolled_scalar_versions(p):
    arrays = diffcli.parse("\n".join(p.array_lines)).grad()
    scalars = diffcli.parse("\n".join(p.scalar_lines)).grad()
    assert arrays.value == pytest.approx(scalars.value, rel=1e-12, abs=1e-12)
    for name in ("A", "v", "u"):
        names = p.arrays[name]
        expected = np.array([scalars.gradients[e] for e in names.ravel()]).reshape(names.shape)
        np.testing.assert_allclose(arrays.gradients[name], expected, rtol=1e-11, atol=1e-12)


# ---------------------------------------------------------------- shape errors, with their places

SHAPE_ERRORS = [
    ("M = [[1], [2, 3]]\ny = sum(M)", 1, 11, "shape"),
    ("a = [1, 2]\nb = [[1, 2, 3]]\ny = sum(a @ b)", 3, 11, "shape"),
    ("x = [1, 2, 3]\nM = [[1, 2], [3, 4]]\ny = sum(M + x)", 3, 11, "shape"),
    ("x = [1, 2]\ny = x[2]", 2, 6, "shape"),
    ("x = [1, 2]\ny = x[0, 1]", 2, 6, "shape"),
    ("x = [1, 2]\ny = sum(x[2:2])", 2, 10, "shape"),
    ("x = [1, 2]\ny = sum(x[0:3])", 2, 10, "shape"),
    ("x = [1, 2]\ny = sum(x, axis=1)", 2, 5, "shape"),
    ("x = [1, 2]\ny = sum(x, axis=2)", 2, 17, "shape"),
    ("a = 2\ny = sum(a)", 2, 5, "shape"),
    ("a = 2\ny = a[0]", 2, 6, "shape"),
    ("x = [1, 2]\ny = sum(2 @ x)", 2, 11, "shape"),
    ("x = [[1, 2]]\ny = dot(x, x)", 2, 5, "shape"),
    ("x = [1, 2]\ny = sum([x, 1])", 2, 13, "shape"),
    ("y = sum([])", 1, 9, "shape"),
    ("x = [1, 2]\ny = sum(x + [])", 2, 13, "shape"),  # `[]` after another operand (was an IndexError)
    ("x = 1 + []\ny = sum(x)", 1, 9, "shape"),
    ("y = sum([[], []])", 1, 10, "shape"),
    ("y = sum([[[1]]])", 1, 10, "shape"),
    ("W = zeros(100000, 100000)\ny = sum(W)", 1, 5, "shape"),
    ("x = uniform(4000, seed=1)\ny = sum(outer(x, x))", 2, 9, "shape"),
    ("x = uniform(3, sed=1)\ny = sum(x)", 1, 16, "name"),
    ("x = uniform(3)\ny = sum(x)", 1, 5, "name"),
    ("x = uniform(3, seed=1, seed=2)\ny = sum(x)", 1, 24, "name"),
    ("x = uniform(3, seed=1e3)\ny = sum(x)", 1, 21, "name"),
    ("x = uniform(3, seed=18446744073709551616)\ny = sum(x)", 1, 21, "name"),
    ("x = [1, 2]\ny = x[a]", 2, 7, "syntax"),
    ("x = [1, 2]\ny = 2[1, 2]", 2, 6, "syntax"),
    ("x = [1, 2]\ny = sum([1, 2]x)", 2, 15, "syntax"),
    ("y = max(2)", 1, 5, "name"),
]


@pytest.mark.parametrize("text, line, column, kind", SHAPE_ERRORS)
def test_errors_are_placed(text, line, column, kind):
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text).grad()
    error = caught.value
    assert (error.kind, error.line, error.column) == (kind, line, column), error.message


def test_the_spec_example_is_drawn_with_both_labels():
    from diffcli.renderers.diagnostics import render_text

    text = "W1 = uniform(16, 2, seed=1)\nb1 = zeros(16)\nx = [1, 2, 3]\n\n\n\nh1 = relu(W1 @ x + b1)\ny = sum(h1)"
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text, "mlp.expr")
    assert render_text(caught.value) == (
        "error: `@` needs as many columns on its left as elements on its right\n"
        " --> mlp.expr:7:14\n"
        "  |\n"
        "7 | h1 = relu(W1 @ x + b1)\n"
        "  |           -- ^ - x has 3 elements\n"
        "  |           |\n"
        "  |           W1 is 16×2\n"
        "  = help: W1 @ x needs x of 2 elements\n")


def test_an_array_output_needs_sum_or_an_element_for_grad_but_not_for_eval():
    program = diffcli.parse("x = [1, 2]\ny = 2x")
    with pytest.raises(DiffcliError) as caught:
        program.grad()
    assert caught.value.kind == "shape" and caught.value.line is None
    assert "sum(y)" in caught.value.help and "y[i]" in caught.value.help
    np.testing.assert_array_equal(program.evaluate().values["y"], [2.0, 4.0])


def test_function_names_may_be_variables_as_sign_may():
    assert grad("sum = 2\ny = 3sum").value == 6.0
    with pytest.raises(DiffcliError) as caught:
        grad("sum = [1, 2]\ny = sum(sum)")
    assert caught.value.kind == "name"


def test_the_callable_array_functions_are_the_specs():
    """SPEC's new names, no more: the graph's own operations (`broadcast`, inserted where shapes
    stretch) are not functions of the language (`broadcast(x)` was an internal error)."""
    from diffcli.ops import ARRAY_NAMES

    assert ARRAY_NAMES == set("sum mean logsumexp softmax dot outer transpose norm zeros ones eye uniform "
                              "normal".split())
    for text in ("y = broadcast([1, 2])", "x = [1, 2]\ny = sum(broadcast(x))"):
        with pytest.raises(DiffcliError) as caught:
            grad(text)
        assert caught.value.kind == "name" and "unknown function `broadcast`" in caught.value.message
    assert grad("broadcast = 2\ny = 3broadcast").value == 6.0


@pytest.mark.parametrize("text, suggestion", [
    ("x = [1, 2]\ny = summ(x)", "did you mean `sum`?"),
    ("x = [1, 2]\ny = softmx(x, axis=0)", "did you mean `softmax`?"),  # (was: `softmx` has no keyword)
    ("y = unifrm(2, seed=1)", "did you mean `uniform`?"),
    ("y = foo(2)", "logsumexp"),  # the list of the functions holds the array ones
])
def test_an_unknown_function_is_told_of_the_array_functions_too(text, suggestion):
    with pytest.raises(DiffcliError) as caught:
        grad(text)
    assert caught.value.kind == "name" and caught.value.message.startswith("unknown function")
    assert suggestion in caught.value.help


@pytest.mark.parametrize("text", ["x = [1, 2]\ny = x[0]2", "x = [1, 2]\ny = x[ 0 ] 2", "y = [1, 2]2"])
def test_a_number_after_an_index_is_told_to_follow_a_star(text):
    with pytest.raises(DiffcliError) as caught:
        grad(text)
    error = caught.value
    assert error.kind == "syntax" and "cannot follow `]` directly" in error.message, error.message
    assert error.help == "write `*` to multiply: `]*2`"  # (it was `[0]*2`: the index token's text)


@pytest.mark.parametrize("expression, scaled", [("2 @ x", "2*x"), ("x @ x @ x", "(x @ x)*x"),
                                                ("sum(x) @ (x + 1)", "sum(x)*(x + 1)")])
def test_a_scalar_left_of_at_is_told_to_use_a_star(expression, scaled):
    """On the right, parentheses may be what was meant (`W @ 2x`); on the left none help."""
    with pytest.raises(DiffcliError) as caught:
        grad(f"x = [1, 2]\ny = sum({expression})")
    assert caught.value.kind == "shape" and caught.value.help == f"to scale by a scalar, use `*`: {scaled}"
    with pytest.raises(DiffcliError) as caught:
        grad("W = [[1, 2]]\nx = [1, 2]\ny = sum(W @ 2x)")
    assert "W @ (2x)" in caught.value.help


def test_rows_without_a_comma_are_an_index_whose_help_says_so():
    """`[[1, 2] [3, 4]]` is `[1, 2][3, 4]` by the grammar (an index after `]`, blanks allowed): the
    shape error says that a `,` may have been meant; an index written close up is not told so."""
    with pytest.raises(DiffcliError) as caught:
        grad("y = sum([[1, 2] [3, 4]])")
    assert caught.value.kind == "shape" and "put a `,` before its `[`" in caught.value.help
    with pytest.raises(DiffcliError) as caught:
        grad("y = sum([[1, 2][3, 4]])")
    assert "`,`" not in caught.value.help


def test_language_details():
    # newlines inside brackets, trailing commas, `@` binds like `*`, indexing binds tighter than `^`
    r = grad("M = [\n  [1, 2],\n  [3, 4],\n]\nx = [1, -1]\ny = -x[0]^2 + 2x[1] + (M @ x)[1] + sum(M @ (2x))")
    with pytest.raises(DiffcliError) as caught:  # `W @ 2x` is (W @ 2)·x
        grad("M = [[1, 2], [3, 4]]\nx = [1, -1]\ny = sum(M @ 2x)")
    assert caught.value.kind == "shape" and "parentheses" not in caught.value.message
    assert r.value == -1 - 2 + -1 + 2 * (-1 - 1)
    # a literal inside an expression is a constant; `[pi, 1]` and `-[1, 2]` are computed
    program = diffcli.parse("a = 2\nv = [a, 2]\nw = -[1, 2]\nz = [pi, 1]\ny = sum(max(v, [0, 6]) * w) + z[0]")
    assert list(program.inputs) == ["a"]
    assert program.grad().value == pytest.approx(-2 - 12 + math.pi)


# ---------------------------------------------------------------- the command line: bad input

def _json_error(*args):
    done = run_diffcli(*args, "--json")
    assert "Traceback" not in done.stderr_text
    assert done.stdout == b""
    return done.returncode, (json.loads(done.stderr_text)["error"] if done.returncode == 1 else None)


def test_set_takes_arrays_and_refuses_bad_ones(tmp_path):
    program = tmp_path / "p.expr"
    program.write_text("x = [0, 0]\nW = [[1, 0], [0, 1]]\ny = sum(W @ exp(x)) + k\n", encoding="utf-8")
    done = run_diffcli("grad", str(program), "--set", "x=[1,-1],W=[[1,2],[3,4]]", "--set", "k=0", "--json")
    assert done.returncode == 0, done.stderr_text
    got = json.loads(done.stdout_text)
    assert got["inputs"]["W"] == [[1.0, 2.0], [3.0, 4.0]] and got["inputs"]["x"] == [1.0, -1.0]
    e = np.exp([1.0, -1.0])
    assert got["gradients"]["x"] == pytest.approx((np.array([[1, 2], [3, 4]]).T @ [1, 1] * e).tolist())
    for bad in ("x=[1,2", "x=[]", "x=[[1],[2,3]]", "x=[1,a]", "x=[[[1]]]", "x=1,2]"):
        assert _json_error("grad", str(program), "--set", bad, "--set", "k=0")[0] == 2, bad
    code, error = _json_error("grad", str(program), "--set", "x=[1,2,3]", "--set", "k=0")
    assert code == 1 and error["kind"] == "input" and "2" in error["message"] and "3" in error["message"]
    code, error = _json_error("grad", str(program), "--set", "k=[1]")
    assert code == 1 and error["kind"] == "shape"  # a free input takes its value's shape: sum needs... k + sum
    code, error = _json_error("grad", str(program), "--set", "x=5", "--set", "k=0")
    assert code == 1 and error["kind"] == "input"


def test_bad_input_from_the_issue_is_a_located_diagnostic(tmp_path):
    for text, _line, _column, kind in SHAPE_ERRORS:
        path = tmp_path / "bad.expr"
        path.write_text(text, encoding="utf-8")
        code, error = _json_error("grad", str(path))
        assert code == 1 and error["kind"] == kind, text
    path = tmp_path / "out.expr"
    path.write_text("x = [1, 2]\ny = x\n", encoding="utf-8")
    assert _json_error("grad", str(path))[1]["kind"] == "shape"
    assert _json_error("check", str(path))[1]["kind"] == "shape"
    done = run_diffcli("eval", str(path), "--json")
    assert json.loads(done.stdout_text)["values"]["y"] == [1.0, 2.0]


def test_size_bound_is_checked_before_allocating():
    assert MAX_ELEMENTS == 10_000_000
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse("W = ones(3163, 3163)\ny = sum(W)")
    assert caught.value.kind == "shape"


def test_tables_show_shapes_and_elements(tmp_path):
    path = tmp_path / "t.expr"
    path.write_text("W = [[1, 2, 3], [4, 5, 6]]\nv = uniform(50, seed=3)\ny = sum(W) + sum(v)\n", encoding="utf-8")
    text = run_diffcli("grad", str(path)).stdout_text
    assert "2×3: [1 2 3; 4 5 6]" in text
    assert "50: -0.965319 to 0.8714" in text
    text = run_diffcli("grad", str(path), "--elements").stdout_text
    assert "W[1,2] (input)" in text and "v[49] (input)" in text


def test_elements_lists_every_element_with_several_outputs(tmp_path):
    # `grad --of a,b --elements` printed the arrays whole, as without --elements
    path = tmp_path / "j.expr"
    path.write_text("x = [1, 2]\nk = 3\na = sum(x^2)\nb = x[0]*k\n", encoding="utf-8")
    text = run_diffcli("grad", str(path), "--of", "a,b", "--elements").stdout_text
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["x[0] (input)"] == ["input", "1", "2", "3"]     # d(x·x)/dx0 = 2, d(x0 k)/dx0 = k
    assert rows["x[1] (input)"] == ["input", "2", "4", "0"]
    assert rows["b (output)"] == ["x[0]*k", "3", "0", "1"]


def test_inputs_file(tmp_path):
    path = tmp_path / "p.expr"
    path.write_text("x = [0, 0]\ny = sum(x * k)\n", encoding="utf-8")
    values = tmp_path / "in.json"
    values.write_text(json.dumps({"x": [1, 2], "k": 3}), encoding="utf-8")
    got = json.loads(run_diffcli("grad", str(path), "--inputs", str(values), "--json").stdout_text)
    assert got["value"] == 9.0
    got = json.loads(run_diffcli("grad", str(path), "--inputs", str(values), "--set", "k=1", "--json").stdout_text)
    assert got["value"] == 3.0  # --set wins
    values.write_text("[1, 2]", encoding="utf-8")
    code, error = _json_error("grad", str(path), "--inputs", str(values))
    assert code == 1 and error["kind"] == "input"
    code, error = _json_error("grad", str(path), "--inputs", str(tmp_path / "missing.json"))
    assert code == 1 and error["kind"] == "io"
    # NaN, Infinity and 1e400 parse as JSON: named as the file's (they were blamed on `--set x`)
    for text in ('{"x": [1, NaN], "k": 3}', '{"x": [1, 2], "k": Infinity}', '{"x": [1, 2], "k": 1e400}'):
        values.write_text(text, encoding="utf-8")
        code, error = _json_error("grad", str(path), "--inputs", str(values))
        assert code == 1 and error["kind"] == "input" and error["message"].startswith(f"--inputs {values}")
        assert "not a finite number" in error["message"]


def test_inputs_file_a_key_twice_or_an_integer_of_thousands_of_digits(tmp_path):
    """A key given twice was the last one's value, silently (a --points line refuses it); an
    integer of 5,000 digits was Python's message (`use sys.set_int_max_str_digits()`)."""
    path = tmp_path / "p.expr"
    path.write_text("x = [0, 0]\nk = 3\ny = sum(x * k)\n", encoding="utf-8")
    values = tmp_path / "in.json"
    values.write_text('{"x": [1, 2], "k": 1, "k": 2}', encoding="utf-8")
    code, error = _json_error("grad", str(path), "--inputs", str(values))
    assert code == 1 and error["kind"] == "input" and "`k` is given twice" in error["message"]
    assert (error["line"], error["column"]) == (1, 23)
    values.write_text('{"k": 1' + "0" * 5000 + "}", encoding="utf-8")
    code, error = _json_error("grad", str(path), "--inputs", str(values))
    assert code == 1 and error["kind"] == "input" and "not a finite number" in error["message"]
    assert "sys." not in error["message"]
    values.write_text('{"x": [1, 2], "k": 2}', encoding="utf-8")  # integers still read as numbers
    assert json.loads(run_diffcli("grad", str(path), "--inputs", str(values), "--json").stdout_text)["value"] == 6.0


def test_inputs_file_values_are_named_by_the_file_not_as_set(tmp_path):
    """A value from --inputs FILE.json is named `--inputs FILE.json` in its error (it was `--set x`,
    an option the user never gave); a --set over it keeps `--set x`."""
    path = tmp_path / "p.expr"
    path.write_text("x = [0, 0]\nk = 3\ny = sum(x * k)\n", encoding="utf-8")
    values = tmp_path / "in.json"
    for text, words in (('{"x": [1, 2, 3]}', "`x` is a vector of 2 in the file"),   # another shape
                        ('{"k": [1, 2]}', "`k` is a scalar in the file"),
                        ('{"y": 1}', "`y` is computed"),
                        ('{"kk": 1}', "the program has no variable `kk`"),           # a typo
                        ('{"x": [[1, 2], [3]]}', "`x`: [[1, 2], [3]] is not")):     # ragged
        values.write_text(text, encoding="utf-8")
        code, error = _json_error("grad", str(path), "--inputs", str(values))
        assert code == 1 and error["kind"] == "input", text
        assert error["message"].startswith(f"--inputs {values}: {words}"), error["message"]
        assert "--set" not in error["message"]
    values.write_text('{"k": 1}', encoding="utf-8")
    code, error = _json_error("grad", str(path), "--inputs", str(values), "--set", "k=[1,2]")
    assert code == 1 and error["message"].startswith("--set k: `k` is a scalar in the file")


def test_a_name_of_the_inputs_file_the_program_lacks_is_warned_of_as_the_files(tmp_path):
    path = tmp_path / "p.expr"
    path.write_text("a = 1\nb = 2\ny = (x - a)^2 + b\n", encoding="utf-8")
    values = tmp_path / "in.json"
    values.write_text('{"x": 3, "zz": 4}', encoding="utf-8")
    for args in (["grad"], ["eval"], ["grad", "--sweep", "b=0:1:2"], ["fit", "--wrt", "a"]):
        done = run_diffcli(args[0], str(path), *args[1:], "--inputs", str(values), "--json")
        assert done.returncode == 0, done.stderr_text
        assert done.stderr_text == f"warning: --inputs {values}: the program does not use `zz`\n", args
    done = run_diffcli("grad", str(path), "--sweep", "x=0:1:2", "--inputs", str(values), "--json")
    assert done.returncode == 2 and f"x is both swept and in --inputs {values}" in done.stderr_text


def test_check_rows_per_element_and_a_sample_above_the_bound(tmp_path):
    path = tmp_path / "p.expr"
    path.write_text("W = uniform(3, 2, seed=1)\nx = [0.5, -1]\ny = sum(tanh(W @ x))\n", encoding="utf-8")
    got = json.loads(run_diffcli("check", str(path), "--json").stdout_text)
    assert got["ok"] and [row["name"] for row in got["rows"]][:3] == ["W[0,0]", "W[0,1]", "W[1,0]"]
    assert len(got["rows"]) == 8 and "sampled" not in got
    path.write_text("W = uniform(30, 20, seed=1)\nx = uniform(20, seed=2)\ny = sum(tanh(W @ x))\n", encoding="utf-8")
    got = json.loads(run_diffcli("check", str(path), "--json").stdout_text)
    assert got["ok"] and len(got["rows"]) == 200 and "seed" in got["sampled"]


def test_the_moons_network_as_arrays_is_the_scalar_one_averaged_over_the_rows():
    """samples/moons/moons_mlp_arrays.expr against moons_mlp.expr run per row of moons.csv by the
    scalar engine (many points): the same loss and, parameter by parameter, the same gradient."""
    import csv
    import io

    from conftest import SAMPLES

    arrays = diffcli.load(SAMPLES / "moons" / "moons_mlp_arrays.expr").grad()
    done = run_diffcli("grad", str(SAMPLES / "moons" / "moons_mlp.expr"), "--points",
                       str(SAMPLES / "moons" / "moons.csv"), "--csv")
    rows = list(csv.DictReader(io.StringIO(done.stdout_text)))
    mean = lambda column: sum(float(row[column]) for row in rows) / len(rows)  # noqa: E731
    assert arrays.value == pytest.approx(mean("loss"), rel=1e-12)
    for layer, (weights, biases) in enumerate([("W1", "b1"), ("W2", "b2")], 1):
        w, b = arrays.gradients[weights], arrays.gradients[biases]
        for j, i in [(0, 0), (3, 1), (15, 1)]:
            assert w[j, i] == pytest.approx(mean(f"dloss/dw{layer}_{j}_{i}"), rel=1e-9, abs=1e-15)
        assert b[5] == pytest.approx(mean(f"dloss/db{layer}_5"), rel=1e-9, abs=1e-15)
    assert arrays.gradients["w3"][7] == pytest.approx(mean("dloss/dw3_0_7"), rel=1e-9, abs=1e-15)


def test_graph_draws_one_node_per_array_operation_with_its_shape():
    from conftest import SAMPLES

    from diffcli.renderers import drawing

    program = diffcli.load(SAMPLES / "moons" / "moons_mlp_arrays.expr")
    diagram = drawing.draw(program)
    assert diagram.nodes < 100  # records and operations (the scalar moons network draws thousands)
    assert 'label="X | 100×2:' in diagram.source and '"@"' in diagram.source
    assert "broadcast" in diagram.source  # b1 over the rows of X @ transpose(W1), drawn as a node
    small = drawing.draw(diffcli.parse("x = [1, 2]\ny = sum(x^2)")).source
    assert r'v0 [label="x | 2:\ [1\ 2] | grad\ 2:\ [2\ 4]"' in small
    data = json.loads(drawing.graph_json(diffcli.parse("x = [1, 2]\ny = sum(x^2)")).source)
    assert data["nodes"][0]["value"] == [1.0, 2.0] and data["nodes"][0]["gradient"] == [2.0, 4.0]
    values_only = drawing.draw(diffcli.parse("x = [1, 2]\ny = 2x"), gradients=False).source  # was a ValueError
    assert "y = 2: [2 4]" in values_only and 'label="y | 2:\\ [2\\ 4]' in values_only


TOKENS = ["x", "W", "s", "1", "2", "-1", "0.5", "[", "]", ",", ":", "@", "+", "*", "-", "/", "^", "(", ")",
          "sum(", "max(", "mean(", "softmax(", "dot(", "outer(", "transpose(", "norm(", "logsumexp(",
          "log(", "exp(", "sqrt(", "uniform(2, seed=1)", "zeros(2, 2)", ", axis=0", ", axis=1", ", axis=2",
          "x[0]", "W[1, :]", "x[1:]", "[x, x]", "[[1, 2]]", " "]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_random_array_text_is_a_result_or_a_diagnostic(tokens):
    """Never anything but a DiffcliError: no traceback, whatever the array syntax."""
    text = "x = [1, 2]\nW = [[1, 2], [3, 4]]\ns = 3\ny = " + "".join(tokens)
    try:
        program = diffcli.parse(text)
        program.evaluate()
        try:
            program.grad()
        except DiffcliError as error:
            assert error.kind in ("shape", "domain"), error.message
    except DiffcliError as error:
        assert error.kind in ("syntax", "name", "shape", "domain", "cycle"), error.message


# ---------------------------------------------------------------- literals of numbers, read fast

_SPELLINGS = st.sampled_from(["{!r}", "{:.3e}", "{:.0f}", "{:+.2f}", "{:.17g}"])


@st.composite
def number_texts(draw):
    x = draw(st.floats(-1e300, 1e300, allow_nan=False) | st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324]))
    text = draw(_SPELLINGS).format(x)
    if draw(st.booleans()) and "." in text and "e" not in text:  # `1.` and `.5`: no JSON spellings
        text = text.rstrip("0") if draw(st.booleans()) else text.replace("0.", ".", 1)
    return text


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.data())
def test_literals_of_numbers_read_as_float_reads_each(rows, columns, data):
    """A matrix or vector literal of numbers (whichever path reads it: JSON's decoder or the
    tokenizer's) holds exactly float() of each number's text, in place; the printer writes it back."""
    from diffcli.language.printer import print_program

    texts = [[data.draw(number_texts()) for _ in range(columns)] for _ in range(rows)]
    comma = data.draw(st.sampled_from(["", ","]))  # a trailing comma is allowed
    matrix = "[" + ",\n  ".join("[" + ", ".join(row) + comma + "]" for row in texts) + "]"
    vector = "[" + ", ".join(texts[0]) + comma + "]"
    program = diffcli.parse(f"W = {matrix}\nv = {vector}\ny = sum(W) + sum(v)\n")
    want = np.array([[float(t) for t in row] for row in texts])
    got = program.inputs["W"]
    assert got.shape == want.shape and (np.signbit(got) == np.signbit(want)).all()
    assert (got == want).all() and (program.inputs["v"] == want[0]).all()
    again = diffcli.parse(print_program(program.statements))
    assert (again.inputs["W"] == got).all() and (again.inputs["v"] == want[0]).all()


def test_a_literal_too_large_or_ragged_is_placed_whichever_path_reads_it():
    for text, kind, column in [("W = [[1, 2], [3, 1e999]]", "domain", 18), ("W = [[1, 2], [3]]", "shape", 14),
                               ("v = [1, -2e400]", "domain", 9), ("W = [[1., 2], [.5]]", "shape", 15)]:
        with pytest.raises(DiffcliError) as caught:
            diffcli.parse(text + "\ny = sum(" + text[0] + ")\n")
        assert (caught.value.kind, caught.value.column) == (kind, column), (text, caught.value.message)


def test_a_literal_nested_deeper_than_the_json_decoder_goes_is_placed():
    """JSON's decoder gives up on a literal nested thousands deep (RecursionError): it is then the
    scanner's, and the error is the one for three levels, placed at the third `[`."""
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse("x = " + "[" * 5000 + "1" + "]" * 5000 + "\ny = sum(x)\n")
    assert (caught.value.kind, caught.value.line, caught.value.column) == ("shape", 1, 7), caught.value.message


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["[", "]", ",", " ", "\n", "1", "23", ".", "-", "+", "e", "E", "0", "[1, 2]", "x"]),
                max_size=24).map("".join))
def test_the_scanners_possessive_numbers_match_as_the_grammars(text):
    """The fast scanner's NUMBERS (quantifiers made possessive) matches exactly what the grammar's
    pattern matches, at every start."""
    import re
    import sys

    from diffcli.language import parser

    grammar = parser._parser().get_terminal("NUMBERS").pattern.to_regexp()
    fast = parser._possessive(grammar)
    assert (fast != grammar) == (sys.version_info >= (3, 11))
    plain, possessive = re.compile(grammar), re.compile(fast)
    for start in range(len(text) + 1):
        a, b = plain.match(text, start), possessive.match(text, start)
        assert (a and a.span()) == (b and b.span()), (text, start)


_PIECES = ["[", "]", "[1, 2]", "[[1, 2], [3, 4]]", "[[1], [2, 3]]", "[1e999]", "[1,]", "[.5, 01]", ",", " ", "\t",
           "\n", "\r\n", "# a [1, 2] comment\n", "x", "y = ", "2", "-", "1.5", "e3", ":", "(", ")", "±", "[-0]",
           "[[[1]]]", "[]", "[true]", "[NaN]", "[1, [2]]", "W[0, 1]", "[ \n 3 ,\n 4 ]"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=16).map("".join))
def test_the_scanner_reads_literals_as_the_regex_does(text):
    """The fast parser's tokens (JSON's decoder reading literals of numbers) are the regex scanner's,
    token for token: kind, span and leading blanks; and a literal's numbers are float()'s."""
    from diffcli.language import parser

    fast = parser._FastParser.get()
    ours = [(t.lastindex, t.span(t.lastindex), t.start()) for t in fast._tokens(text)]
    regex = [(t.lastindex, t.span(t.lastindex), t.start()) for t in iter(fast.regex.scanner(text).match, None)]
    assert ours == regex
    for token in fast._tokens(text):
        if isinstance(token, parser._Literal) and token.values is not None:
            numbers = [float(n) for n in parser._SIGNED_NUMBER.findall(token.group(token.lastindex))]
            assert np.array(token.values).ravel().tolist() == numbers


@pytest.mark.parametrize("k", [np.float32(2.0), np.int64(2), np.array(2.0)])
def test_the_api_takes_a_numpy_scalar_for_a_number(k):
    # a NumPy scalar (from an array: w[0], a float32 model) is a number; it was refused as "not a finite number"
    for source in ("x = [1, 2]\nk = 1\ny = sum(k * x^2)\n", "x = 1\nk = 1\ny = k * x^2\n"):
        program = diffcli.parse(source)
        result = program.grad({"k": k})
        assert result.inputs["k"] == 2.0 and type(result.inputs["k"]) is float
        assert np.asarray(result.gradients["x"]).tolist() == ([4.0, 8.0] if "[" in source else 4.0)
        assert program.evaluate({"k": k}).values["y"] == (10.0 if "[" in source else 2.0)


@pytest.mark.parametrize("call", ["normal(3, seed=1, mean=1e308, std=1e308)", "uniform(3, seed=1, low=-1e308, high=1e308)"])
def test_a_constructor_whose_elements_overflow_is_a_domain_error_at_its_name(call, tmp_path):
    # the infinite elements went on: eval --json was an internal error (inf is no JSON), with NumPy's warning
    path = tmp_path / "c.expr"
    path.write_text(f"x = {call}\ny = x[1]\n", encoding="utf-8")
    for command in ("eval", "grad"):
        done = run_diffcli(command, str(path), "--json")
        error = json.loads(done.stderr_text.strip().splitlines()[-1])["error"]
        assert done.returncode == 1 and done.stdout_text == "" and "Warning" not in done.stderr_text
        assert error["kind"] == "domain" and (error["line"], error["column"]) == (1, 5)
        assert "overflows" in error["message"] and call.split("(")[0] in error["message"]


def test_an_unused_array_input_has_a_gradient_of_its_shape():
    # `--set zz=[1,2]` that the program does not use: its gradient was the scalar 0, not [0, 0]
    for source in ("k = 1\ny = k*2\n", "x = [1, 2]\nk = 1\ny = sum(x) * k\n"):
        program = diffcli.parse(source)
        given = {"k": 1.0, "zz": [[1.0, 2.0]]}
        assert np.asarray(program.grad(given).gradients["zz"]).tolist() == [[0.0, 0.0]]
        assert np.asarray(program.derivatives("k", given).derivatives["zz"]).tolist() == [[0.0, 0.0]]
        assert np.asarray(program.jacobian(["y", "k"], given).jacobian["y"]["zz"]).tolist() == [[0.0, 0.0]]
        assert program.grad({"zz": 2.0}).gradients["zz"] == 0.0     # a number keeps its 0


def test_an_elements_table_past_a_million_rows_is_refused_at_once(tmp_path):
    """grad --elements of a 3000×3000 input built 9,000,003 rows of strings: a minute and 8 GB of
    memory for a table no one reads; --json still lists every element."""
    path = tmp_path / "big.expr"
    path.write_text("W = zeros(1000, 1000)\nx = ones(1000)\ny = sum(W @ x) + sum(x)\n", encoding="utf-8")
    for command in ("grad", "eval"):
        done = run_diffcli(command, str(path), "--elements")
        assert done.returncode == 1 and done.stdout == b"", done.stderr_text
        assert "--elements: the table would have 1,001,001 rows, more than 1,000,000" in done.stderr_text
    done = run_diffcli("grad", str(path), "--json")
    assert done.returncode == 0 and len(json.loads(done.stdout_text)["gradients"]["W"]) == 1000
    small = tmp_path / "small.expr"
    small.write_text("x = [1, 2]\ny = sum(x^2)\n", encoding="utf-8")
    assert "x[1] (input)" in run_diffcli("grad", str(small), "--elements").stdout_text
