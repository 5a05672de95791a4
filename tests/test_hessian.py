"""Second derivatives (hessian.py): exact cases, edge values, and random programs against SymPy."""

from __future__ import annotations

import json
import math

import mpmath
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import diffcli
from conftest import SAMPLES
from diffcli.interpreters import hessian as second
from diffcli.errors import DiffcliError
from strategies import close, programs

ROSENBROCK = "x = 1\ny = 1\nf = (1 - x)^2 + 100(y - x^2)^2\n"


def test_rosenbrock_at_its_minimum_exactly():
    result = diffcli.parse(ROSENBROCK).hessian()
    assert result.wrt == ["x", "y"]
    assert result.value == 0.0 and result.gradient == {"x": 0.0, "y": 0.0}
    assert result.hessian == {"x": {"x": 802.0, "y": -400.0}, "y": {"x": -400.0, "y": 200.0}}


def test_hvp_is_the_hessian_times_the_vector():
    program = diffcli.parse(ROSENBROCK)
    assert program.hvp({"x": 1.0}).hvp == {"x": 802.0, "y": -400.0}
    assert program.hvp({"x": 1.0, "y": 0.5}).hvp == {"x": 602.0, "y": -300.0}
    assert program.hvp({}).hvp == {"x": 0.0, "y": 0.0}  # names missing from v are 0


def test_rows_are_symmetric_before_symmetrizing():
    program = diffcli.parse("a = 0.3\nb = -1.2\nc = 2\nf = sin(a*b)*exp(c/(1 + a^2)) + hypot(a, c)*log(c)\n")
    graph = program.graph
    values = diffcli.interpreters.engine.forward(graph, {"a": 0.3, "b": -1.2, "c": 2.0})
    nodes = [graph.names[n] for n in "abc"]
    rows = [second.second_order(graph, values, graph.names["f"], {node: 1.0}, nodes)[1] for node in nodes]
    for r, a in enumerate(nodes):
        for c, b in enumerate(nodes):
            assert rows[r][b] == pytest.approx(rows[c][a], rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("text, wrt, want", [
    ("x = 0\nf = relu(x)*x", "x", 0.0),          # relu'' = 0 at 0; (relu(x)x)'' = 2relu'(0) = 0
    ("x = 0\nf = abs(x)", "x", 0.0),
    ("x = 0\nf = abs(x)^2", "x", 0.0),           # 2(abs')² + 2abs·abs'' = 0 with abs'(0) = 0
    ("x = 2\nf = relu(x)^3", "x", 12.0),
    ("x = 0\nf = x^0", "x", 0.0),                # 0^0 = 1, a constant
    ("x = 0\nf = x^2", "x", 2.0),
    ("x = 0\nf = x^3", "x", 0.0),
    ("x = 0\nf = 0*sqrt(x)", "x", 0.0),          # not needed: nothing flows through sqrt
    ("x = 1\ny = 1\nf = max(x, y)^2", "x", 0.5),  # the tie splits the tangent and the adjoint
    ("x = 2\ny = 1\nf = max(x, y)^2", "x", 2.0),
    ("x = 2\ny = 1\nf = min(x, y)^2", "x", 0.0),
])
def test_edge_values_exactly(text, wrt, want):
    assert diffcli.parse(text).hessian(wrt=[wrt]).hessian[wrt][wrt] == want


@pytest.mark.parametrize("text", ["x = 2\ny = 0\nf = x^y", "x = 2\ny = 0\nf = pow(x, y)",
                                  "x = -0.5\ny = 0\nz = 2\nf = (x + z)^y"])
def test_a_zero_exponent_keeps_the_mixed_second_derivative(text):
    """d²(x^y)/dx dy = x^(y-1)(1 + y ln x) is 1/x at y = 0 (the partial y·x^(y-1) is 0 there, but
    not its derivative in y): every path (compiled, the sum, the walk, H·v) gives it."""
    program = diffcli.parse(text)
    base = 2.0 if "(x + z)" not in text else 1.5
    result = program.hessian(wrt=["x", "y"])
    assert result.hessian["x"]["y"] == result.hessian["y"]["x"] == 1 / base
    assert result.hessian["y"]["y"] == math.log(base) ** 2
    output, _, _, values = program._second_order_setup(None, None)
    walked = second.walk_matrix(program.graph, values, program.graph.names[output], ["x", "y"])
    assert walked[1][0][1] == walked[1][1][0] == 1 / base
    assert program.hvp({"y": 1.0}).hvp["x"] == 1 / base


@pytest.mark.parametrize("text, operation, column", [
    ("x = 0\nf = x^1.5", "`^`", 6),
    ("x = 1\nf = asin(x)", "`asin`", 5),   # the first derivative already
    ("x = 0\nf = sqrt(x)", "`sqrt`", 5),
    ("x = 0\ny = 1\nf = y*x^1.5", "`^`", 8),
])
def test_undefined_second_derivatives_are_domain_errors(text, operation, column):
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text).hessian()
    assert caught.value.kind == "domain" and operation in caught.value.message
    assert (caught.value.line, caught.value.column) == (text.count("\n") + 1, column)


def test_hvp_needs_only_what_flows():
    # d²f/dx² at 0 is undefined, but along v = (0, 1) it is never needed
    program = diffcli.parse("x = 0\ny = 1\nf = x^1.5 + y^2\n")
    assert program.hvp({"y": 1.0}).hvp == {"x": 0.0, "y": 2.0}
    with pytest.raises(DiffcliError):
        program.hvp({"x": 1.0})


def test_wrt_and_vector_name_inputs():
    program = diffcli.parse(ROSENBROCK)
    for call in (lambda: program.hessian(wrt=["f"]), lambda: program.hessian(wrt=["z"]),
                 lambda: program.hvp({"f": 1.0})):
        with pytest.raises(DiffcliError) as caught:
            call()
        assert caught.value.kind == "input"


def test_wrt_as_a_string_is_one_name_or_a_comma_list_as_fit_takes_it():
    """hessian(wrt="x,y") iterated the string: its characters `x`, `,`, `y` (and wrt="xy" was x
    and y). A string is one name or a comma list, as `--wrt` and Program.fit take it."""
    program = diffcli.parse("x = 1\ny = 2\nf = x^2*y^3\n")
    whole = program.hessian(wrt=["x", "y"])
    for wrt in ("x,y", "x, y", ("x", "y"), {"x": 0, "y": 0}.keys()):
        assert program.hessian(wrt=wrt).hessian == whole.hessian, wrt
    assert program.hessian(wrt="y").wrt == ["y"] and program.hessian(wrt="y").hessian == {"y": {"y": 12.0}}  # 6x²y
    for wrt, words in (("xy", "no variable `xy`"), ("x,zz", "no variable `zz`"), (5, "wrt=5"),
                       ([1], "wrt=[1]")):
        with pytest.raises(DiffcliError) as caught:
            program.hessian(wrt=wrt)
        assert caught.value.kind == "input" and words in caught.value.message, wrt
    arrays = diffcli.parse("W = [[1, 2], [3, 4]]\nf = sum(W^3)\n")   # an element label's comma separates nothing
    assert arrays.hessian(wrt="W[0,1], W[1,1]").wrt == ["W[0,1]", "W[1,1]"]
    assert arrays.hessian(wrt="W[0,1]").hessian == {"W[0,1]": {"W[0,1]": 12.0}}


def test_values_and_directions_that_are_no_doubles_are_input_errors():
    """The Python API takes any object: an int past the largest double (10**400) raised
    OverflowError out of grad, hessian and hvp, and a string direction ValueError out of hvp."""
    program = diffcli.parse(ROSENBROCK)
    for call in (lambda: program.grad({"x": 10**400}), lambda: program.hessian({"x": 10**400}),
                 lambda: program.grad({"x": [10**400, 1]}), lambda: program.hvp({"x": 10**400}),
                 lambda: program.hvp({"x": "a"}), lambda: program.hvp({"y": None})):
        with pytest.raises(DiffcliError) as caught:
            call()
        assert caught.value.kind == "input" and "not a finite number" in caught.value.message
    assert program.hvp({"x": 1, "y": 0}).hvp == {"x": 802.0, "y": -400.0}  # ints are numbers
    arrays = diffcli.parse("x = [1, 2]\nk = 2\nf = sum(x^2)*k\n")
    with pytest.raises(DiffcliError) as caught:
        arrays.hvp({"k": 10**400})
    assert caught.value.kind == "input" and "not a finite number" in caught.value.message
    assert arrays.hvp({"k": 3}).hvp == {"x[0]": 6.0, "x[1]": 12.0, "k": 0.0}


def test_default_wrt_is_the_inputs_the_output_depends_on():
    program = diffcli.parse("a = 1\nb = 2\nc = 3\ny = a*c\nz = b\n")
    assert program.hessian(of="y").wrt == ["a", "c"]
    assert program.hessian(of="y").hessian == {"a": {"a": 0.0, "c": 1.0}, "c": {"a": 1.0, "c": 0.0}}


# ---------------------------------------------------------------- the sum over the nodes and the walk

@settings(max_examples=40, deadline=None)
@given(programs())
def test_the_sum_over_the_nodes_is_the_walk(case):
    """The Hessian by the sum over the nodes (taken wherever everything is finite) against the
    forward-over-reverse walk it falls back on, on random programs; and where it gives up, the walk
    alone answers (or names the error)."""
    program = diffcli.parse(case.text, "generated.expr")
    inputs = [n for n in case.names if program.is_input(n)]
    if not inputs or case.output in inputs:
        return
    try:
        output, _, _, values = program._second_order_setup(case.sets, case.of)
    except diffcli.DiffcliError:
        return
    node = program.graph.names[output]
    try:
        walked = second.walk_matrix(program.graph, values, node, inputs)
    except diffcli.DiffcliError:
        return
    try:
        summed = second._edge_sum(program.graph, values, node, inputs)
    except (ArithmeticError, ValueError):
        summed = None
    # the same sum compiled to straight-line code (what hessian_matrix runs first): where it does
    # not give up (to the sum), the same gradient bit for bit and the same matrix
    compiled = second._compiled_sum(program.graph, node, tuple(inputs))
    straight = compiled(values) if compiled is not None else None
    if summed is None:
        return
    scale = max(1.0, float(abs(walked[1]).max()))
    for found in (summed, straight or summed):
        assert found[0] == walked[0]
        assert abs(found[1] - walked[1]).max() <= 1e-12 * scale, case.text
        assert (found[1] == found[1].T).all()


def test_the_samples_take_the_sum_over_the_nodes():
    for name in ("two_layer_network", "neuron", "micrograd_lecture"):
        program = diffcli.load(SAMPLES / f"{name}.expr")
        output, _, _, values = program._second_order_setup(None, None)
        wrt = program.hessian().wrt
        summed = second._edge_sum(program.graph, values, program.graph.names[output], wrt)
        assert summed is not None, name
        compiled = second._compiled_sum(program.graph, program.graph.names[output], tuple(wrt))
        straight = compiled(values)
        assert straight[0] == summed[0], name
        assert abs(straight[1] - summed[1]).max() <= 1e-13 * max(1.0, float(abs(summed[1]).max())), name


# ---------------------------------------------------------------- random programs vs SymPy

def reference_hessian(case, inputs):
    """d²out/da db from SymPy: the output composed into one expression of the inputs, differentiated
    twice, evaluated at 45 digits."""
    symbols = {name: sympy.Symbol(f"in_{k}", real=True) for k, name in enumerate(inputs)}
    full = dict(symbols)
    for name in case.order:
        full[name] = case.definitions[name].xreplace(
            {use: full[case.occurrences[use]] for use in case.definitions[name].free_symbols})
    out = full[case.output]
    at = {symbols[n]: sympy.Float(case.values[n], 45) for n in inputs}
    return {a: {b: mpmath.mpf(str(sympy.diff(out, symbols[a], symbols[b]).xreplace(at).evalf(45)))
                for b in inputs} for a in inputs}


@settings(max_examples=60, deadline=None)
@given(programs())
def test_hessians_of_random_programs_match_sympy(case):
    program = diffcli.parse(case.text, "generated.expr")
    inputs = [n for n in case.names if program.is_input(n)]
    if not inputs or case.output in inputs:
        return
    result = program.hessian(case.sets, of=case.of, wrt=inputs)
    want = reference_hessian(case, inputs)
    scale = max([abs(v) for row in want.values() for v in row.values()] + [mpmath.mpf(1)])
    for a in inputs:
        for b in inputs:
            got = result.hessian[a][b]
            assert close(got, want[a][b], scale), (a, b, got, mpmath.nstr(want[a][b], 17), case.text)
    # H·v for a random v agrees with the matrix
    v = {name: (k + 1) * 0.5 for k, name in enumerate(inputs)}
    product = program.hvp(v, case.sets, of=case.of).hvp
    for a in inputs:
        want_a = sum(result.hessian[a][b] * v[b] for b in inputs)
        assert math.isclose(product[a], want_a, rel_tol=1e-9, abs_tol=1e-9 * float(scale))


# ---------------------------------------------------------------- the command line

def _run(*args, input=None):
    from typer.testing import CliRunner

    from diffcli.cli import app

    return CliRunner().invoke(app, list(args), input=input)


def test_hessian_command_json_follows_the_spec(tmp_path):
    path = tmp_path / "rosenbrock.expr"
    path.write_text(ROSENBROCK)
    done = _run("hessian", str(path), "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout) == {
        "output": "f", "value": 0.0, "wrt": ["x", "y"], "gradient": {"x": 0.0, "y": 0.0},
        "hessian": {"x": {"x": 802.0, "y": -400.0}, "y": {"x": -400.0, "y": 200.0}}}
    done = _run("hessian", str(path), "--json", "--hvp", "y=1", "--set", "x=0")
    assert json.loads(done.stdout) == {"output": "f", "value": 101.0, "wrt": ["x", "y"],
                                       "gradient": {"x": -2.0, "y": 200.0}, "hvp": {"x": 0.0, "y": 200.0}}
    done = _run("hessian", str(path), "--wrt", "y")
    assert done.exit_code == 0 and "200" in done.stdout and "802" not in done.stdout


@pytest.mark.parametrize("args, code, kind", [
    (["--hvp", "x"], 2, None), (["--hvp", "x=1", "--wrt", "x"], 2, None), (["--wrt", "f"], 1, "input"),
    (["--hvp", "q=1"], 1, "input"), (["--set", "x=0", "--of", "nope"], 1, "input"),
])
def test_hessian_command_errors(tmp_path, args, code, kind):
    path = tmp_path / "rosenbrock.expr"
    path.write_text(ROSENBROCK)
    done = _run("hessian", str(path), "--json", *args)
    assert done.exit_code == code and done.stdout == ""
    if kind:
        assert json.loads(done.stderr)["error"]["kind"] == kind
    assert "Traceback" not in done.stderr


def test_domain_error_at_second_order_has_its_place():
    done = _run("hessian", "-", "--json", input="x = 0\nf = x^1.5\n")
    error = json.loads(done.stderr)["error"]
    assert done.exit_code == 1 and error["kind"] == "domain" and (error["line"], error["column"]) == (2, 6)


def test_too_many_inputs_for_a_matrix_is_refused():
    text = "\n".join(f"x{i} = 1" for i in range(second.MAX_MATRIX + 1)) + "\nf = " + \
        "+".join(f"x{i}" for i in range(second.MAX_MATRIX + 1)) + "\n"
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text).hessian()
    assert caught.value.kind == "input" and "--hvp" in caught.value.help


def test_a_hessian_whose_tangents_exceed_the_bound_is_refused_before_it_is_computed(monkeypatch):
    """k inputs on a long program: k tangents on every node (a 100,000-line chain over 300 inputs
    took 2.6 GB before answering); refused from the sizes alone, as an array program's is, while
    fewer inputs and H·v still answer."""
    text = "x = 0.5\ny = 0.25\n" + "".join(f"s{k} = tanh({'x' if k == 0 else f's{k - 1}'}) * y\n"
                                            for k in range(50))
    program = diffcli.parse(text)
    nodes = len(program.graph)
    monkeypatch.setattr(second, "MAX_TANGENTS", 2 * nodes - 1)
    with pytest.raises(DiffcliError) as caught:
        program.hessian()
    assert caught.value.kind == "input" and "--wrt" in caught.value.help and f"{nodes:,} nodes" in caught.value.message
    assert program.hessian(wrt=["x"]).wrt == ["x"]
    assert set(program.hvp({"x": 1.0}).hvp) == {"x", "y"}


# ---------------------------------------------------------------- several outputs

CHAIN = "a = 2\nb = 5 - 3a\nc = 2b + 3\nd = 5b + 6\ne = 7c + d^2\nf = 2e\ng = 3f - o\n"


@settings(max_examples=40, deadline=None)
@given(programs(), st.data())
def test_jacobian_by_reverse_and_forward_sweeps_agree(case, data):
    program = diffcli.parse(case.text, "generated.expr")
    outputs = data.draw(st.lists(st.sampled_from(case.names), min_size=1, max_size=3, unique=True))
    reverse = program.jacobian(outputs, case.sets, mode="reverse").jacobian
    forward = program.jacobian(outputs, case.sets, mode="forward").jacobian
    in_file_order = [name for name in program.graph.names if name in outputs]
    assert list(reverse) == in_file_order and list(forward) == in_file_order
    for out in outputs:
        assert list(reverse[out]) == list(forward[out])
        for name, d in reverse[out].items():
            assert math.isclose(d, forward[out][name], rel_tol=1e-12, abs_tol=1e-12), (out, name)
        assert reverse[out] == program.grad(case.sets, of=out).gradients


def test_grad_with_several_outputs_json():
    done = _run("grad", "-", "--json", "--set", "o=1", "--of", "g,e", input=CHAIN)
    got = json.loads(done.stdout)
    assert list(got) == ["outputs", "inputs", "values", "jacobian"]
    assert got["outputs"] == list(got["jacobian"]) == ["e", "g"]  # file order, whatever --of's order
    assert got["jacobian"]["g"]["a"] == -432.0 and got["jacobian"]["e"]["a"] == -72.0
    assert got["jacobian"]["e"]["g"] == 0.0
    again = _run("grad", "-", "--json", "--set", "o=1", "--of", "g", "--of", "e", input=CHAIN)
    assert json.loads(again.stdout) == got
    single = json.loads(_run("grad", "-", "--json", "--set", "o=1", "--of", "e", input=CHAIN).stdout)
    assert list(single) == ["output", "value", "inputs", "values", "gradients"]
    table = _run("grad", "-", "--set", "o=1", "--of", "g,e", input=CHAIN).stdout
    assert "∂g/∂name" in table and "∂e/∂name" in table
    bad = _run("grad", "-", "--json", "--set", "o=1", "--of", "g,zz", input=CHAIN)
    assert bad.exit_code == 1 and json.loads(bad.stderr)["error"]["kind"] == "input"


def test_an_overflowing_second_derivative_is_a_domain_error_not_a_warning(capfd):
    program = diffcli.parse("x = 1.9\nf = 1e308/6*x^3\n")  # f and f' finite (barely), f'' is not
    for call in (program.hessian, lambda: program.hvp({"x": 1.0})):
        with pytest.raises(DiffcliError) as caught:
            call()
        assert caught.value.kind == "domain" and "overflows" in caught.value.message
    assert capfd.readouterr().err == ""
    assert diffcli.parse("x = 1.9\nf = 1e307*x^3\n").hessian().hessian["x"]["x"] == pytest.approx(1.14e308)
    # H·v of a huge v overflows where the second derivative itself exists (x^2's is 2): an overflow,
    # not "the second derivative of `^` is infinite or undefined"; at 0^1.5 it is undefined still
    for text, vector, words in [("x = 1.5\nf = x^2\n", {"x": 1e308}, "a second derivative overflows at `x^2`"),
                                ("x = 1\ny = 1\nf = max(x, y)^2\n", {"x": 1e308, "y": 1e308}, "overflows"),
                                ("x = 0\nf = x^1.5\n", {"x": 1e308}, "infinite or undefined")]:
        with pytest.raises(DiffcliError) as caught:
            diffcli.parse(text).hvp(vector)
        assert caught.value.kind == "domain" and words in caught.value.message, text


@pytest.mark.parametrize("text, operation, message", [
    ("x = 1e-310\ny = sqrt(x)\n", "sqrt", "the second derivative of `sqrt` is infinite or undefined"),
    ("x = 1\nk = 1e160\ny = sin(k*x)\n", "*", "a second derivative overflows at `k*x`"),
])
def test_a_second_order_domain_error_names_its_operation_in_json(text, operation, message):
    """As the first order's do: `"operation"` was missing from the second order's errors."""
    from diffcli.renderers import diagnostics

    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.parse(text, "f.expr").hessian()
    error = json.loads(diagnostics.render_json(caught.value))["error"]
    assert error["kind"] == "domain" and error["operation"] == operation and error["message"].startswith(message)
