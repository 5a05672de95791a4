"""`hessian` of array programs (issue 19 part 2): against the unrolled scalar program run through the
scalar Hessian, finite differences of `grad`, and NumPy by hand; element labels, --wrt elements,
--hvp with arrays and --hvp-inputs, the bound's refusal, bad directions; grad --of with several
outputs and check --order 2 on arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffcli
from diffcli import DiffcliError

from conftest import run_diffcli


def labels_of(name, shape):
    return [name] if not shape else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]


# ---------------------------------------------------------------- against the unrolled scalar program

def _network(rng, sizes):
    """A tanh network as an array program and, unrolled by hand, as a scalar one (W[i,j] is W_i_j)."""
    n_in, hidden = sizes
    x = rng.uniform(-1, 1, n_in)
    W1 = rng.uniform(-1, 1, (hidden, n_in))
    b1 = rng.uniform(-0.5, 0.5, hidden)
    v = rng.uniform(-1, 1, hidden)
    values = {"x": x, "W1": W1, "b1": b1, "v": v, "t": 0.3}

    def lit(a):
        return repr(float(a)) if np.ndim(a) == 0 else "[" + ", ".join(lit(e) for e in a) + "]"

    arrays = "".join(f"{n} = {lit(a)}\n" for n, a in values.items()) + (
        "h = tanh(W1 @ x + b1)\n"
        "s = softmax(h)\n"
        "f = (dot(v, h) - t)^2 + logsumexp(h)*norm(x) + sum(s*b1) + mean(exp(-x^2))\n")
    lines = [f"x_{i} = {float(x[i])!r}" for i in range(n_in)]
    lines += [f"W1_{i}_{j} = {float(W1[i, j])!r}" for i in range(hidden) for j in range(n_in)]
    lines += [f"b1_{i} = {float(b1[i])!r}" for i in range(hidden)] + [f"v_{i} = {float(v[i])!r}" for i in range(hidden)]
    lines.append("t = 0.3")
    for i in range(hidden):
        lines.append(f"h_{i} = tanh({' + '.join(f'W1_{i}_{j}*x_{j}' for j in range(n_in))} + b1_{i})")
    lines.append("z = " + " + ".join(f"exp(h_{i})" for i in range(hidden)))
    lines.append("r = sqrt(" + " + ".join(f"x_{j}^2" for j in range(n_in)) + ")")
    lines.append("f = (" + " + ".join(f"v_{i}*h_{i}" for i in range(hidden)) + " - t)^2 + log(z)*r + ("
                 + " + ".join(f"exp(h_{i})/z*b1_{i}" for i in range(hidden)) + ") + ("
                 + " + ".join(f"exp(-x_{j}^2)" for j in range(n_in)) + f")/{n_in}")
    scalar_names = {"x": [f"x_{i}" for i in range(n_in)],
                    "W1": [f"W1_{i}_{j}" for i in range(hidden) for j in range(n_in)],
                    "b1": [f"b1_{i}" for i in range(hidden)], "v": [f"v_{i}" for i in range(hidden)], "t": ["t"]}
    return arrays, "\n".join(lines) + "\n", scalar_names


@pytest.mark.parametrize("seed,sizes", [(0, (2, 3)), (1, (3, 4))])
def test_hessian_equals_the_unrolled_scalar_programs(seed, sizes):
    arrays, scalar, names = _network(np.random.default_rng(seed), sizes)
    ours = diffcli.parse(arrays).hessian()
    theirs = diffcli.parse(scalar).hessian(wrt=[n for group in names.values() for n in group])
    expected_labels = [label for name in names for label in labels_of(name, diffcli.parse(arrays).shape(name))]
    assert ours.wrt == expected_labels
    np.testing.assert_allclose(ours.matrix, theirs.matrix, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(list(ours.gradient.values()), list(theirs.gradient.values()), rtol=1e-12, atol=1e-14)
    assert ours.value == pytest.approx(theirs.value, rel=1e-13)
    # over some inputs only (the tangents of the others do not move)
    for some in (["W1"], ["x", "b1"], ["v", "W1[0,1]"]):
        part = diffcli.parse(arrays).hessian(wrt=some)
        index = [ours.wrt.index(label) for label in part.wrt]
        np.testing.assert_allclose(part.matrix, ours.matrix[np.ix_(index, index)], rtol=1e-12, atol=1e-14)
    # the mapping by label is the matrix
    assert ours.hessian["W1[1,0]"]["x[1]"] == ours.matrix[ours.wrt.index("W1[1,0]"), ours.wrt.index("x[1]")]
    # H·v along a random direction: the scalar program's H·v
    rng = np.random.default_rng(seed + 10)
    program = diffcli.parse(arrays)
    direction = {name: rng.uniform(-1, 1, program.shape(name)) if program.shape(name) else float(rng.uniform(-1, 1))
                 for name in names}
    product = program.hvp(direction)
    flat = {n: float(v) for name, group in names.items() for n, v in zip(group, np.ravel(direction[name]))}
    reference = diffcli.parse(scalar).hvp(flat)
    np.testing.assert_allclose([product.hvp[label] for label in expected_labels],
                               [reference.hvp[n] for group in names.values() for n in group], rtol=1e-11, atol=1e-12)


# ---------------------------------------------------------------- finite differences of grad

STRUCTURAL = """A = [[0.4, -0.2, 0.1], [0.3, 0.5, -0.6]]
B = [[0.2, 0.1], [-0.3, 0.4], [0.5, -0.1]]
u = [0.7, -0.4, 0.2]
c = 0.6
M = A @ B
P = sigmoid(M * c) / (1 + M^2)
q = transpose(A) @ [1, 2]
r = max(q, axis=0) + sum(P, axis=1)[0] + mean(P, axis=0)[1]
s = outer(u, [1, -1]) @ [0.5, 2]
f = r*c + sum(s * u) + P[1, 0]*exp(A[0, 1:]) @ [1, 1] + logsumexp(M, axis=1)[1] + norm(A)^3 + sum(softmax(u * c))^2
"""


def _flat_gradient(program, values, names):
    g = program.grad(values).gradients
    return np.concatenate([np.ravel(g[n]) for n in names])


def test_hessian_against_central_differences_of_grad():
    program = diffcli.parse(STRUCTURAL)
    h = program.hessian()
    names = ["A", "B", "u", "c"]
    base = {n: np.array(program.inputs[n], dtype=float) for n in names}
    sizes = [base[n].size for n in names]
    numeric = []
    step = 1e-5
    for n, size in zip(names, sizes):
        for e in range(size):
            up, down = {k: v.copy() for k, v in base.items()}, {k: v.copy() for k, v in base.items()}
            up[n].reshape(-1)[e] += step
            down[n].reshape(-1)[e] -= step
            values_up = {k: (v if v.ndim else float(v)) for k, v in up.items()}
            values_down = {k: (v if v.ndim else float(v)) for k, v in down.items()}
            numeric.append((_flat_gradient(program, values_up, names) - _flat_gradient(program, values_down, names))
                           / (2 * step))
    numeric = np.array(numeric)
    assert h.wrt[:6] == labels_of("A", (2, 3)) and h.wrt[-1] == "c"
    np.testing.assert_allclose(h.matrix, numeric, rtol=1e-6, atol=1e-7)
    assert np.array_equal(h.matrix, h.matrix.T)


# ---------------------------------------------------------------- NumPy by hand

def test_quadratic_forms_by_hand():
    rng = np.random.default_rng(3)
    A = rng.uniform(-1, 1, (4, 4))
    W = rng.uniform(-1, 1, (3, 4))
    y = rng.uniform(-1, 1, 3)
    text = "x = [0.1, -0.2, 0.3, 0.4]\nA = zeros(4, 4)\nW = zeros(3, 4)\ny = zeros(3)\n" \
           "f = x @ A @ x + sum((W @ x - y)^2)\n"
    program = diffcli.parse(text)
    h = program.hessian({"A": A, "W": W, "y": y}, wrt=["x"])
    assert h.wrt == labels_of("x", (4,))
    np.testing.assert_allclose(h.matrix, A + A.T + 2 * W.T @ W, rtol=1e-13, atol=1e-14)
    # d²f/dW[i,j]dx[l] by hand: 2(δ_il·... ) — against the formula 2(W x - y)_i δ_jl + 2 W[i,l] x_j
    x = np.array([0.1, -0.2, 0.3, 0.4])
    h = program.hessian({"A": A, "W": W, "y": y}, wrt=["W[1,2]", "x"])
    residual = W @ x - y
    expected = [2 * (residual[1] * (l == 2) + W[1, l] * x[2]) for l in range(4)]
    np.testing.assert_allclose(h.matrix[0, 1:], expected, rtol=1e-13, atol=1e-14)
    assert h.matrix[0, 0] == pytest.approx(2 * x[2] ** 2, rel=1e-13)


def test_wrt_elements_pick_the_full_matrix_entries():
    program = diffcli.parse(STRUCTURAL)
    full = program.hessian()
    some = program.hessian(wrt=["c", "B[2,1]", "u"])
    assert some.wrt == ["c", "B[2,1]", "u[0]", "u[1]", "u[2]"]
    index = [full.wrt.index(label) for label in some.wrt]
    np.testing.assert_allclose(some.matrix, full.matrix[np.ix_(index, index)], rtol=1e-12, atol=1e-14)
    for label in some.wrt:
        assert some.gradient[label] == pytest.approx(full.gradient[label], rel=1e-14, abs=1e-300)


def test_bad_wrt_and_directions_are_input_errors():
    program = diffcli.parse(STRUCTURAL)
    with pytest.raises(DiffcliError, match=r"`A` is a 2×3 matrix, which has no element \[2,0\]") as error:
        program.hessian(wrt=["A[2,0]"])
    assert error.value.kind == "input"
    with pytest.raises(DiffcliError, match="named twice"):
        program.hessian(wrt=["A", "A[0,0]"])
    with pytest.raises(DiffcliError, match="computed") as error:
        program.hessian(wrt=["M"])
    with pytest.raises(DiffcliError, match=r"`u` is a vector of 3, but the direction given is a vector of 2") as error:
        program.hvp({"u": np.array([1.0, 2.0])})
    assert error.value.kind == "input"
    with pytest.raises(DiffcliError, match="not a finite number"):
        program.hvp({"u": np.array([1.0, np.inf, 2.0])})


def test_hessian_of_an_array_output_is_a_shape_error():
    with pytest.raises(DiffcliError, match="gradient needs a scalar output") as error:
        diffcli.parse("x = [1, 2]\ny = x^2\n").hessian()
    assert error.value.kind == "shape"


def test_second_derivative_undefined_at_an_element_is_a_domain_error():
    program = diffcli.parse("x = [1, 0, 2]\nf = sum(x^1.5)\n")
    with pytest.raises(DiffcliError, match=r"second derivative of `\^`.* at 0 \^ 1.5 at x\[1\]") as error:
        program.hessian()
    assert error.value.kind == "domain" and error.value.line == 2
    # where it is not needed (the tangent of x[1] does not move), it is no error
    assert program.hessian(wrt=["x[0]"]).matrix[0, 0] == pytest.approx(0.75)
    # a second derivative that grows past the largest double on the way is an overflow, not the
    # operation's fault; the first derivative's own errors are grad's
    with pytest.raises(DiffcliError, match="a second derivative overflows") as error:
        diffcli.parse("x = [1, 0.5]\nf = sum(exp(x*700))\n").hessian()
    assert error.value.kind == "domain"
    with pytest.raises(DiffcliError) as error:
        diffcli.parse("x = [0, 1]\nf = sum(sqrt(x))\n").hessian()
    with pytest.raises(DiffcliError) as first:
        diffcli.parse("x = [0, 1]\nf = sum(sqrt(x))\n").grad()
    assert error.value.message == first.value.message


@pytest.mark.parametrize("array, scalar", [
    ("x = [0, 1]\ny = sum(0*sqrt(x))", "x0 = 0\nx1 = 1\ny = 0*sqrt(x0) + 0*sqrt(x1)"),
    ("x = [0, 1]\nz = sqrt(x)\ny = sum(0*z)", "x0 = 0\nx1 = 1\nz = sqrt(x0)\ny = 0*z + 0*sqrt(x1)"),
    ("x = [0, 0]\ny = 0*norm(x)", "x0 = 0\nx1 = 0\ny = 0*sqrt(x0^2 + x1^2)"),
    ("x = [0, 1]\ny = sum(relu(x - 1)*sqrt(x))", "x0 = 0\nx1 = 1\ny = relu(x0 - 1)*sqrt(x0) + relu(x1 - 1)*sqrt(x1)"),
    ("x = [1, 4]\nk = 0\ny = k*sum(sqrt(x - 1))", "x0 = 1\nx1 = 4\nk = 0\ny = k*(sqrt(x0 - 1) + sqrt(x1 - 1))"),
])
def test_an_undefined_partial_is_needed_where_the_scalar_hessian_needs_it(array, scalar):
    """A zero partial or adjoint blocks an undefined one (`0*sqrt(x)` at 0 has Hessian 0), in the
    tangents and the adjoints' tangents alike, as on floats; where it is needed, both refuse."""
    def outcome(text):
        try:
            return np.asarray(diffcli.parse(text).hessian().matrix).tolist()
        except DiffcliError as error:
            assert error.kind == "domain"
            return "domain"

    assert outcome(array) == outcome(scalar)
    size = len(diffcli.parse(array).inputs["x"])
    if outcome(scalar) != "domain":
        assert outcome(array) == [[0.0] * size] * size
        done = run_diffcli("check", "-", "--order", "2", "--json", input=array.encode())
        assert "Traceback" not in done.stderr_text and done.stdout_text, done.stderr_text


def test_an_output_that_depends_on_no_input_has_an_empty_hessian_as_on_floats():
    """(It was an internal error: numpy's concatenate of no rows.)"""
    for text in ("x = [1, 2]\ny = sum([1, 2])", "x = [1, 2]\na = sqrt([0, 0]) + 1\ny = sum(a)"):
        done = run_diffcli("hessian", "-", "--json", input=text.encode())
        assert done.returncode == 0, done.stderr_text
        assert json.loads(done.stdout_text) == {"output": "y", "value": json.loads(done.stdout_text)["value"],
                                               "wrt": [], "gradient": {}, "hessian": {}}
    scalar = run_diffcli("hessian", "-", "--json", input=b"x = 1\ny = 2*3")
    assert json.loads(scalar.stdout_text)["hessian"] == {}


def test_calls_after_the_first_give_its_numbers_and_errors():
    # from a graph's second call on, its values come from the compiled forward pass (array_plan.py)
    # and the walk from the one compiled at the first: the same matrix, gradient and H·v, bit for bit,
    # with some of the elements asked for, and the same errors at the same places
    program = diffcli.parse(_network(np.random.default_rng(3), (3, 4))[0])
    for wrt in (None, ["W1", "b1"], ["W1[0,1]", "x[2]", "v[1]"]):
        first, again, third = (program.hessian(wrt=wrt) for _ in range(3))
        assert np.array_equal(first.matrix, again.matrix) and np.array_equal(first.matrix, third.matrix)
        assert first.gradient == again.gradient == third.gradient and first.wrt == again.wrt
    products = [program.hvp({"x": [1.0, 0.5, -1.0], "W1": np.ones((4, 3))}).hvp for _ in range(3)]
    assert products[0] == products[1] == products[2]
    for text in ("x = [1, 0, 2]\nf = sum(x^1.5)\n", "x = [1, 0.5]\nf = sum(exp(x*700))\n",
                 "x = [0, 1]\nf = sum(sqrt(x))\n", "x = [1, -1]\nf = sum(log(x))\n"):
        program = diffcli.parse(text)
        seen = []
        for _ in range(3):
            with pytest.raises(DiffcliError) as error:
                program.hessian()
            seen.append((error.value.kind, error.value.message, error.value.line))
        assert seen[0] == seen[1] == seen[2]


def test_errors_print_no_warnings(tmp_path):
    path = tmp_path / "e.expr"
    path.write_text("x = [1, 0.5]\nf = sum(exp(x*700))\n", encoding="utf-8")
    for extra in ([], ["--hvp", "x=[1,1]"]):
        done = run_diffcli("hessian", path, *extra)
        assert done.returncode == 1 and "Warning" not in done.stderr_text and "Traceback" not in done.stderr_text


# ---------------------------------------------------------------- the bound

def test_a_hessian_over_too_many_elements_is_refused_with_a_pointer_to_hvp(tmp_path):
    from diffcli.interpreters.array_hessian import MAX_ELEMENTS

    text = f"x = uniform({MAX_ELEMENTS + 1}, seed=1)\nf = sum(x^3)\n"
    program = diffcli.parse(text)
    with pytest.raises(DiffcliError, match="too big to compute whole") as error:
        program.hessian()
    assert error.value.kind == "shape" and "--hvp" in error.value.help
    # H·v is not bounded so: here 6 x
    product = program.hvp({"x": np.ones(MAX_ELEMENTS + 1)})
    x = np.array(program.inputs["x"])
    np.testing.assert_allclose([product.hvp[f"x[{i}]"] for i in range(5)], 6 * x[:5], rtol=1e-14)
    path = tmp_path / "big.expr"
    path.write_text(text, encoding="utf-8")
    done = run_diffcli("hessian", path, "--json")
    assert done.returncode == 1 and json.loads(done.stderr_text)["error"]["kind"] == "shape"


# ---------------------------------------------------------------- the command line

NET = "W = [[0.5, -0.3], [0.2, 0.8]]\nx = [1.5, -0.5]\nf = sum(tanh(W @ x)^2)\n"


def test_cli_labels_wrt_elements_and_hvp_arrays(tmp_path):
    path = tmp_path / "net.expr"
    path.write_text(NET, encoding="utf-8")
    program = diffcli.parse(NET)
    full = program.hessian()
    done = run_diffcli("hessian", path, "--wrt", "x,W[0,1]", "--json")
    assert done.returncode == 0, done.stderr_text
    data = json.loads(done.stdout_text)
    assert data["wrt"] == ["x[0]", "x[1]", "W[0,1]"] and list(data["gradient"]) == data["wrt"]
    assert data["hessian"]["x[1]"]["W[0,1]"] == full.hessian["x[1]"]["W[0,1]"]
    table = run_diffcli("hessian", path)
    assert table.returncode == 0 and "W[1,0]" in table.stdout_text and "∂f/∂row" in table.stdout_text
    direction = {"W": np.array([[1.0, 0.0], [0.5, -1.0]]), "x": np.array([0.0, 2.0])}
    expected = program.hvp(direction).hvp
    done = run_diffcli("hessian", path, "--hvp", "W=[[1,0],[0.5,-1]],x=[0,2]", "--json")
    assert done.returncode == 0, done.stderr_text
    assert json.loads(done.stdout_text)["hvp"] == expected
    file = tmp_path / "v.json"
    file.write_text(json.dumps({"W": [[1, 0], [0.5, -1]], "x": [0, 2]}), encoding="utf-8")
    data = json.loads(run_diffcli("hessian", path, "--hvp-inputs", file, "--json").stdout_text)
    assert data["hvp"] == expected and data["wrt"] == labels_of("W", (2, 2)) + labels_of("x", (2,))
    # --hvp wins over the file, name by name
    data = json.loads(run_diffcli("hessian", path, "--hvp-inputs", file, "--hvp", "x=[0,0]", "--json").stdout_text)
    assert data["hvp"] == program.hvp({"W": direction["W"]}).hvp
    # H·v is the matrix times v
    v = np.concatenate([direction["W"].ravel(), direction["x"]])
    np.testing.assert_allclose(list(expected.values()), full.matrix @ v, rtol=1e-13, atol=1e-15)


def test_cli_bad_hvp_inputs(tmp_path):
    path = tmp_path / "net.expr"
    path.write_text(NET, encoding="utf-8")
    file = tmp_path / "v.json"
    file.write_text(json.dumps({"x": [1, 2, 3]}), encoding="utf-8")
    done = run_diffcli("hessian", path, "--hvp-inputs", file, "--json")
    error = json.loads(done.stderr_text)["error"]
    assert done.returncode == 1 and error["kind"] == "input"
    assert "vector of 2" in error["message"] and "vector of 3" in error["message"] and "--hvp-inputs" in error["message"]
    file.write_text('{"W": [[1, 0],\n  [0 1]]}', encoding="utf-8")
    done = run_diffcli("hessian", path, "--hvp-inputs", file)
    assert done.returncode == 1 and "Traceback" not in done.stderr_text
    assert "not JSON" in done.stderr_text and f"{file}:2:6" in done.stderr_text
    done = run_diffcli("hessian", path, "--hvp-inputs", file, "--json")
    error = json.loads(done.stderr_text)["error"]
    assert error["kind"] == "input" and error["line"] == 2
    done = run_diffcli("hessian", path, "--hvp-inputs", tmp_path / "missing.json", "--json")
    assert done.returncode == 1 and json.loads(done.stderr_text)["error"]["kind"] == "io"


# ---------------------------------------------------------------- several outputs, check --order 2

TWO = "W = [[0.5, -0.3], [0.2, 0.8]]\nx = [1.5, -0.5]\nh = tanh(W @ x)\nloss = sum(h^2)\nreg = 0.1*sum(W^2) + h[0]\n"


def test_grad_of_several_outputs_on_arrays(tmp_path):
    program = diffcli.parse(TWO)
    result = program.jacobian(["reg", "loss"])
    assert result.outputs == ["loss", "reg"]
    for out in result.outputs:
        alone = program.grad(of=out).gradients
        for name, g in alone.items():
            np.testing.assert_array_equal(result.jacobian[out][name], g)
    path = tmp_path / "two.expr"
    path.write_text(TWO, encoding="utf-8")
    data = json.loads(run_diffcli("grad", path, "--of", "reg,loss", "--json").stdout_text)
    assert data["jacobian"]["reg"]["W"] == program.grad(of="reg").gradients["W"].tolist()
    assert data["jacobian"]["loss"]["loss"] == 1.0 and data["jacobian"]["loss"]["reg"] == 0.0
    table = run_diffcli("grad", path, "--of", "reg,loss")
    assert table.returncode == 0 and "∂reg/∂name" in table.stdout_text
    done = run_diffcli("grad", path, "--of", "h,loss", "--json")
    assert done.returncode == 1 and json.loads(done.stderr_text)["error"]["kind"] == "shape"


def test_check_order_2_on_arrays(tmp_path):
    from diffcli.commands.check_second import check_second

    result = check_second(diffcli.parse(NET))
    labels = labels_of("W", (2, 2)) + labels_of("x", (2,))
    assert result.ok and len(result.rows) == 6 * 7 // 2
    full = diffcli.parse(NET).hessian()
    for row in result.rows:
        a, b = _split_pair(row.name)
        assert a in labels and b in labels
        assert row.analytic == pytest.approx(full.hessian[a][b], rel=1e-12, abs=1e-14)
        assert row.numeric == pytest.approx(row.analytic, rel=1e-6, abs=1e-8)
    kinked = tmp_path / "k.expr"
    kinked.write_text("x = [0, 1, -0.5]\nf = sum(relu(x)^2) + x[1]*x[2]\n", encoding="utf-8")
    done = run_diffcli("check", kinked, "--order", "2")
    assert done.returncode == 1 and "kink: relu at 0" in done.stdout_text
    assert "check failed: x[0],x[0]" in done.stderr_text
    assert run_diffcli("check", kinked, "--order", "2", "--allow-kinks").returncode == 0
    # above the matrix's bound: H·v along a random direction, a row per element
    wide = tmp_path / "wide.expr"
    wide.write_text("x = uniform(30, seed=2)\nf = sum(exp(x)*x) + logsumexp(x)^2\n", encoding="utf-8")
    data = json.loads(run_diffcli("check", wide, "--order", "2", "--json").stdout_text)
    assert data["ok"] and [row["name"] for row in data["rows"]] == labels_of("x", (30,))
    # above 200 elements, a seeded sample of them (said in the output)
    wide.write_text("x = uniform(5000, seed=2)\nf = sum(exp(x)*x) + logsumexp(x)^2\n", encoding="utf-8")
    data = json.loads(run_diffcli("check", wide, "--order", "2", "--json").stdout_text)
    assert data["ok"] and len(data["rows"]) == 200 and "sample" in data["sampled"]


def _split_pair(name):
    """`W[0,1],x[1]` -> ("W[0,1]", "x[1]"): the comma outside brackets."""
    depth = 0
    for i, char in enumerate(name):
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            return name[:i], name[i + 1:]
    raise ValueError(name)


def test_the_hessian_of_logsumexp_at_huge_ties_is_the_softmaxs():
    """Its curvature took the share exp(x - out), which loses out's log n at |x| ≥ 1e16 (a share of
    1 for each of two ties: [[0.5, -0.5], [-0.5, 0.5]])."""
    h = diffcli.parse("x = [1e16, 1e16]\ny = logsumexp(x)\n").hessian()
    assert np.asarray(h.matrix).tolist() == [[0.25, -0.25], [-0.25, 0.25]]


def test_an_element_label_takes_ascii_digits_only():
    """`x[²]` is no element (str.isdigit took it, then int() raised: an internal error), nor is
    `x[٢]`, an Arabic-Indic two: the labels are row-major integers as the tables print them."""
    program = diffcli.parse("x = [1, 2, 3]\ny = sum(x^2)\n")
    for label in ("x[²]", "x[٢]"):
        with pytest.raises(DiffcliError, match="not an input or an element") as error:
            program.hessian(wrt=[label])
        assert error.value.kind == "input"
        with pytest.raises(DiffcliError) as error:
            program.derivatives(label)
        assert error.value.kind == "input"
    for command in (["grad", "--wrt", "x[²]"], ["hessian", "--wrt", "x[²]"]):
        result = run_diffcli(*command, "-", "--json", input=b"x = [1, 2, 3]\ny = sum(x^2)\n")
        assert result.returncode == 1, result.stderr_text
        assert json.loads(result.stderr_text)["error"]["kind"] == "input"


def test_forward_mode_names_an_element_out_of_range_as_such():
    """grad --wrt x[5] on a vector of 3 said to name one of its elements, which it did."""
    program = diffcli.parse("x = [1, 2, 3]\nW = [[1, 2], [3, 4]]\ny = sum(x^2) + sum(W)\n")
    for label, words in (("x[5]", r"`x` is a vector of 3, which has no element \[5\]"),
                         ("W[1]", r"`W` is a 2×2 matrix, which has no element \[1\]"),
                         ("W", "forward mode differentiates with respect to one of its elements")):
        with pytest.raises(DiffcliError, match=words) as error:
            program.derivatives(label)
        assert error.value.kind == "input"
    assert program.derivatives("x[2]").derivatives["y"] == pytest.approx(6.0)
