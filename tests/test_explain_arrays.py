"""`diffcli explain` of array programs: the chain rule with shapes. Each δ shown is `grad`'s number;
each backward expression, evaluated by this file's own NumPy reading of it (ᵀ, juxtaposition as
the matrix product, ⊙, ones, sums over an axis), gives that δ again, summed over the uses; the
shapes that each rule says fit are those of the values; the LaTeX is well formed; `--elements` is
the scalar explain of the unrolled program, whose numbers are `grad`'s elements."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("sympy")

from diffcli import ops  # noqa: E402
from diffcli.cli import app  # noqa: E402
from diffcli.commands.array_derivation import MAX_UNROLLED, derive_arrays, unrolled_source  # noqa: E402
from diffcli.program import parse  # noqa: E402
from test_explain import check_latex_structure  # noqa: E402
from conftest import SAMPLES  # noqa: E402

MLP = """# a 2-3-1 network on one point
x = [0.5, -1.2]
W1 = [[0.1, -0.3], [0.4, 0.2], [-0.5, 0.7]]
b1 = [0.1, 0, -0.1]
W2 = [[0.3, -0.6, 0.2]]
b2 = [0.05]
t = 1
z1 = W1 @ x + b1
h1 = relu(z1)
y = W2 @ h1 + b2
L = sum((y - t)^2)
"""
# every structural op, broadcasts, fan-out and a stack
EVERY_OP = """x = [0.5, -1.2, 2.0]
M = [[1, 2, 3], [0.5, -1, 4]]
u = [1, 2]
a = M @ x
b = transpose(M) @ u
c = sum(M, axis=0) + mean(M, axis=1)[0] + max(x) - min(x, axis=0) + sum(M * x, axis=1)[1]
d = logsumexp(x) + dot(x, b) + norm(outer(u, x)) + softmax(x)[1] + x[0:2] @ u + mean(softmax(M, axis=1)[0])
e = [c[0], d, a[1]]
F = outer(u, x) / (1 + M^2) - [x, 2x]
L = sum(e * e / 2) + sum(sqrt(x^2 + 1)) + max(a) + mean(F @ transpose(M)) + logsumexp(F, axis=0)[2]
"""
GREEK = """θ = [0.3, 0.5]
v = [1.5, -2]
w_1 = 2
q = atan2(θ, v) + hypot(θ, v) + max(θ, v, 0.4) + pow(v^2, θ) + abs(v) + sign(θ)*θ + exp(θ)/w_1 - log(v^2)
L = sum(q) + mean(θ*v) - 1/w_1
"""
# a stacked operand times a value stretched to its shape: the stretched factor is a row, not x
STRETCHED = """x = [1, 2, 3]
L = sum([x] * x) + sum([x, 2x] * x)
"""
BATCH = (SAMPLES / "arrays" / "two_layer_batch.expr").read_text()
MOONS = (SAMPLES / "moons" / "moons_mlp_arrays.expr").read_text()
PROGRAMS = {"mlp": (MLP, ["W1", "x", "b1", "W2"]), "every_op": (EVERY_OP, ["x", "M", "u"]),
            "batch": (BATCH, ["W1", "b1", "X", "W2"]), "greek": (GREEK, ["θ", "v", "w_1"]), "stretched": (STRETCHED, ["x"]), "moons": (MOONS, ["W1", "b1", "w3"])}


def invoke(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


# ---------------------------------------------------------------- reading a term with NumPy

class Row:
    """A vector transposed: 1×n, as a course writes xᵀ."""

    def __init__(self, v):
        self.v = v


def _plain(x):
    return x.v if isinstance(x, Row) else x


def _matmul(a, b):
    if np.ndim(_plain(a)) == 0 or np.ndim(_plain(b)) == 0:
        return _plain(a) * _plain(b)
    if isinstance(b, Row):
        assert np.ndim(a) == 1 or np.shape(a)[1] == 1
        return np.outer(a, b.v)
    if isinstance(a, Row):
        return a.v @ b
    return a @ b


def _axis_sum(x, axis):
    return np.sum(x) if axis is None or np.ndim(x) == 1 else np.sum(x, axis=axis)


def _softmax(x, axis):
    axis = None if axis is None or np.ndim(x) == 1 else axis
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def evaluate(term, d, values):
    """A term of explain as NumPy computes it, independently of ops.py's vjp rules."""
    kind = term[0]
    ev = lambda t: evaluate(t, d, values)  # noqa: E731
    if kind == "delta":
        return np.asarray(d.gradients[term[1]], float)
    if kind == "num":
        return term[1]
    if kind == "val":
        return values[term[1]]
    if kind == "ones":
        return np.ones(term[1])
    if kind == "T":
        inner = ev(term[1])
        return Row(inner) if np.ndim(_plain(inner)) == 1 and not isinstance(inner, Row) else \
            _plain(inner) if isinstance(inner, Row) else np.transpose(inner)
    if kind == "mm":
        return _matmul(ev(term[1]), ev(term[2]))
    if kind == "sum":
        return _axis_sum(_plain(ev(term[1])), term[2])
    if kind == "fn":
        axis = (term[3] or {}).get("axis")
        x = _plain(ev(term[2][0]))
        return {"softmax": lambda: _softmax(x, axis), "log": lambda: np.log(x)}[term[1]]()
    if kind == "prime":
        x = _plain(ev(term[2][0]))
        h = 1e-6 * np.maximum(1, np.abs(x))
        f = ops.FUNCTIONS[term[1]]
        m = ops.backend("numpy")
        # (relu at 0 has no central difference: its value's side is the engine's convention)
        return (f.rule(m, x + h) - f.rule(m, x - h)) / (2 * h)
    if kind == "partial":
        xs = [np.asarray(_plain(ev(a)), float) for a in term[3]]
        f, k, m = ops.FUNCTIONS[term[1]], term[2], ops.backend("numpy")
        h = 1e-6 * np.maximum(1, np.abs(xs[k]))
        up = [x + h if i == k else x for i, x in enumerate(xs)]
        down = [x - h if i == k else x for i, x in enumerate(xs)]
        return (f.rule(m, *up) - f.rule(m, *down)) / (2 * h)
    if kind == "tie":
        x = _plain(ev(term[1]))
        axis = (term[3] or {}).get("axis")
        axis = None if axis is None or x.ndim == 1 else axis
        top = getattr(np, term[2])(x, axis=axis, keepdims=True)
        tied = (x == top).astype(float)
        return tied / np.sum(tied, axis=axis, keepdims=True)
    if kind == "at":
        whole = np.zeros(term[3])
        whole[tuple(i if isinstance(i, int) else slice(*i) for i in term[2])] = _plain(ev(term[1]))
        return whole
    if kind == "item":
        return _plain(ev(term[1]))[term[2]]
    a = [_plain(ev(t)) if isinstance(t, tuple) else t for t in term[1:]]
    if kind in ("odot", "times"):
        return a[0] * a[1]
    if kind == "div":
        return a[0] / a[1]
    if kind == "neg":
        return -a[0]
    if kind == "minus":
        return a[0] - a[1]
    if kind == "pow":
        return a[0] ** a[1]
    raise AssertionError(kind)


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_delta_is_grads_and_every_backward_expression_gives_it_again(name):
    text, wrts = PROGRAMS[name]
    program = parse(text)
    grad = program.grad()
    for wrt in wrts:
        d = derive_arrays(program, wrt=wrt)
        values = program.run().values
        assert d.statements, wrt
        for var, uses in d.uses.items():
            assert np.shape(d.gradients[var]) == d.shapes[var]
            assert np.array_equal(d.gradients[var], grad.gradients[var])  # grad's numbers
            total = sum(np.asarray(_plain(evaluate(use.term, d, values)), float) for use in uses)
            total = np.broadcast_to(total, d.shapes[var])
            assert np.allclose(total, d.gradients[var], rtol=1e-5, atol=1e-7), (var, uses)


@pytest.mark.parametrize("name", PROGRAMS)
def test_each_rules_shapes_fit(name):
    """A matrix product's factors multiply (inner sizes equal) to the cotangent's shape; every
    step ends at the shape of the value it goes back to; the last at the name's own shape."""
    text, wrts = PROGRAMS[name]
    d = derive_arrays(parse(text), wrt=wrts[0])
    for var, uses in d.uses.items():
        for use in uses:
            assert use.steps[-1].result == d.shapes[var] if use.steps else True
            for step in use.steps:
                if step.rule == "matrix product" and all(step.factors):
                    left, right = step.factors
                    rows, inner = (left + (1,))[:2] if len(left) == 1 else left
                    assert inner == right[0]
                    assert np.zeros(left if len(left) == 2 else (left[0], 1)) @ np.zeros(right) is not None
                if step.rule == "elementwise":
                    assert step.factors == (step.result,)


def test_the_course_example_word_for_word():
    out = invoke("explain", "-", "--wrt", "W1", input=MLP).stdout
    assert "   δW1 = δz1 xᵀ\n      = 3×2: [−0.2391 0.57384; 0 0; 0 0]\n" in out
    assert "from z1 = W1 @ x + b1: matrix product: 3 · 1×2 → 3×2" in out
    assert "   δz1 = δh1 ⊙ relu′(z1)\n" in out
    assert "   δh1 = W2ᵀ δy\n" in out
    assert "from y = W2 @ h1 + b2: matrix product: 3×1 · 1 → 3" in out
    batch = invoke("explain", SAMPLES / "arrays" / "two_layer_batch.expr", "--wrt", "b1").stdout
    assert "δb1 = sum(δH ⊙ tanh′(X @ W1 + b1), axis=0)" in batch
    assert "broadcast, summed over the stretched axis: 4×5 → 5" in batch


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_json_is_the_scalar_explains_with_shapes(name):
    text, wrts = PROGRAMS[name]
    out = json.loads(invoke("explain", "-", "--wrt", wrts[0], "--json", input=text).stdout)
    grad = json.loads(invoke("grad", "-", "--json", input=text).stdout)
    assert set(out) == {"output", "wrt", "file", "inputs", "given", "statements", "total"}
    assert out["total"]["value"] == grad["gradients"][wrts[0]]
    assert out["total"]["shape"] == list(np.shape(grad["gradients"][wrts[0]]))
    for statement in out["statements"]:
        assert statement["gradient"] == grad["gradients"][statement["name"]]
        assert statement["value"] == grad["values"][statement["name"]]
        assert {"name", "definition", "shape", "value", "gradient", "used_by", "backward"} <= set(statement)
    assert out["inputs"] == grad["inputs"]


@pytest.mark.parametrize("name", PROGRAMS)
@pytest.mark.parametrize("fmt", ["latex", "markdown", "text"])
def test_every_format_is_well_formed(name, fmt):
    text, wrts = PROGRAMS[name]
    for wrt in wrts[:2]:
        result = invoke("explain", "-", "--wrt", wrt, "--format", fmt, input=text)
        assert result.exit_code == 0, result.output
        out = result.stdout
        if fmt == "latex":
            check_latex_structure(out, extra={"odot", "top", "mathbb", "mathbf", "colon", "to", "times", "delta",
                                              "in", "usepackage"})
            body = "\n".join(line for line in out.splitlines() if not line.startswith("%"))
            assert body.isascii(), {c for c in body if not c.isascii()}
        if fmt == "markdown":
            assert out.count("`") % 2 == 0


def test_a_scalar_program_keeps_its_explain_byte_for_byte():
    chain = SAMPLES / "backprop_chain.expr"
    from diffcli.renderers.explain import explain as scalar
    from diffcli.program import load

    assert invoke("explain", chain, "--set", "o=1").stdout == \
        scalar(load(chain), {"o": 1.0}, filename=str(chain))


# ---------------------------------------------------------------- --elements

TINY = "x = [0.5, -1.2]\nw = [0.3, 0.8]\nb = 0.1\nz = w @ x + b\ny = [sigmoid(z), z]\nL = sum(y^2)\n"
TINY_BY_HAND = ("x_0 = 0.5\nx_1 = -1.2\nw_0 = 0.3\nw_1 = 0.8\nb = 0.1\nz = (w_0*x_0 + w_1*x_1) + b\n"
                "y_0 = sigmoid(z)\ny_1 = z\nL = (y_0^2) + (y_1^2)\n")


@pytest.mark.parametrize("fmt", ["text", "latex", "json"])
def test_elements_is_the_scalar_explain_of_the_program_unrolled(fmt):
    options = ["--json"] if fmt == "json" else ["--format", fmt]
    mine = invoke("explain", "-", "--elements", "--wrt", "w[1]", *options, input=TINY)
    theirs = invoke("explain", "-", "--wrt", "w_1", *options, input=TINY_BY_HAND)
    assert mine.exit_code == 0, mine.output
    assert mine.stdout == theirs.stdout


@pytest.mark.parametrize("name, wrt", [("mlp", "W1[0,1]"), ("every_op", "x[2]"), ("batch", "W1[2,4]")])
def test_the_unrolled_derivation_ends_at_grads_element(name, wrt):
    text = PROGRAMS[name][0]
    result = invoke("explain", "-", "--elements", "--wrt", wrt, "--json", input=text)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    grad = json.loads(invoke("grad", "-", "--json", input=text).stdout)
    array, index = wrt[:-1].split("[")
    expected = np.asarray(grad["gradients"][array])[tuple(map(int, index.split(",")))]
    assert out["total"]["value"] == pytest.approx(float(expected), rel=1e-12, abs=1e-15)
    # the unrolled program computes the array program's values, element by element
    unrolled = parse(unrolled_source(parse(text))).evaluate().values
    for var, value in grad["values"].items():
        for k, element in np.ndenumerate(np.asarray(value)):
            label = "_".join([var, *map(str, k)])
            assert unrolled[label] == pytest.approx(element, rel=1e-12, abs=1e-14)


def test_a_named_constant_unrolls_computed_not_as_an_input():
    """`d = c` with `c = (2)` unrolled as `d = 2`, which reads back as an input (SPEC: `(2)` is a
    constant): explain --elements listed d as an input. It is computed, as grad has it."""
    text = "x = [1, 2]\nc = (2)\nd = c\ne = [c, 3]\ny = sum(x^2) * d + sum(e)\n"
    program = parse(text)
    unrolled = parse(unrolled_source(program))
    assert set(unrolled.inputs) == {"x_0", "x_1"} and set(program.inputs) == {"x"}
    assert unrolled.evaluate().values["y"] == program.evaluate().values["y"]
    out = json.loads(invoke("explain", "-", "--elements", "--wrt", "x[0]", "--json", input=text).stdout)
    assert set(out["inputs"]) == {"x_0", "x_1"}, out["inputs"]


def test_elements_refuses_a_whole_array_and_a_large_program_quickly():
    whole = invoke("explain", "-", "--elements", "--wrt", "W1", "--json", input=MLP)
    error = json.loads(whole.output)["error"]
    assert whole.exit_code == 1 and "with respect to one element" in error["message"]
    assert "--wrt W1[0,0]" in error["help"]
    large = invoke("explain", SAMPLES / "moons" / "moons_mlp_arrays.expr", "--elements", "--json")
    error = json.loads(large.output)["error"]
    assert error["kind"] == "input" and f"at most {MAX_UNROLLED:,}" in error["message"]
    long = invoke("explain", "-", "--elements", "--wrt", "x[0]", "--json",
                  input="x = [0.5, 1, 2]\nW = ones(45, 3)\nh = tanh(W @ x)\nL = sum(h * h)\n")
    error = json.loads(long.output)["error"]
    assert long.exit_code == 1 and error["message"].startswith("explain --elements: the derivation of dL/dx_0 runs")
    assert "drop --elements" in error["help"]


def test_in_a_notebook_an_array_derivation_shows_as_markdown_and_latex():
    from diffcli import notebook  # noqa: F401  (registers the displays)

    d = derive_arrays(parse(MLP), wrt="W1")
    assert "`δW1 = δz1 xᵀ` = 3×2" in d._repr_markdown_()
    assert r"\delta_{W_{1}} &= \delta_{z_{1}} x^{\top}" in d._repr_latex_()
    shown = notebook.run_cell("explain --wrt W1", MLP)
    assert "δW1 = δz1 xᵀ" in shown._repr_markdown_()


def test_a_backward_expression_too_long_to_read_is_refused():
    """softmax's rule uses its cotangent twice: ten nested would print 2^10 copies."""
    nested = "x"
    for _ in range(10):
        nested = f"softmax({nested})"
    result = invoke("explain", "-", "--json", input=f"x = [1, 2, 3]\ns = {nested}\nL = s[0]\n")
    error = json.loads(result.output)["error"]
    assert result.exit_code == 1 and "grows past 400 terms and factors" in error["message"]
    assert "give parts of it names" in error["help"]


@pytest.mark.parametrize("wrt, said", [("x[7]", "--wrt x[7]: x has 2 elements, and no such element"),
                                       ("t[0]", "--wrt t[0]: t is a scalar, and no such element"),
                                       ("W1[0]", "--wrt W1[0]: W1 is 3×2, and no such element")])
def test_elements_names_an_element_that_is_not_there(wrt, said):
    result = invoke("explain", "-", "--elements", "--wrt", wrt, "--json", input=MLP)
    assert result.exit_code == 1 and json.loads(result.output)["error"]["message"] == said


@pytest.mark.parametrize("text, wrt, said", [
    ("x = [1, 2]\nL = sum([3, 4])\n", None, "L depends on no input: there is no derivative to explain."),
    ("x = [1, 2]\ny = [3, 4]\nL = sum(y)\n", "x", "L does not depend on x: dL/dx = 0."),
    (MLP, "L", "dL/dL = 1: the output itself.")])
@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_nothing_to_explain_is_said_in_every_format(text, wrt, said, fmt):
    result = invoke("explain", "-", "--format", fmt, *(["--wrt", wrt] if wrt else []), input=text)
    assert result.exit_code == 0 and said in result.stdout
    if fmt == "latex":
        check_latex_structure(result.stdout, extra={"usepackage"})
