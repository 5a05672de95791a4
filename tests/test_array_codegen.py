"""`diffcli codegen` of array programs: C (gcc -Wall -Werror -O2, C99 and C11) and JavaScript (node)
loops, and Python over NumPy, each run untouched and compared with `grad` element by element (within
1e-12 relative) on every array case: the samples, the array conformance cases and a program using
every array operation; domain errors named with their element; the bound; scalar programs untouched."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import diffcli
from diffcli.cli import parse_sets
from diffcli.renderers import array_codegen, codegen
from diffcli.renderers.array_codegen import generate

from conftest import SAMPLES, SHARED, run_diffcli

GCC = shutil.which("gcc") or shutil.which("cc")
NODE = shutil.which("node")
needs_gcc = pytest.mark.skipif(GCC is None, reason="no C compiler")
needs_node = pytest.mark.skipif(NODE is None, reason="no node")

# every array operation at least once, with axes, views of views and literals of expressions
EVERY_OP = """\
W = [[0.5, -1.2, 0.3], [1.0, 0.4, -0.7]]
x = [0.2, -0.4, 0.9]
v = [1.5, -0.5]
a = 0.7
h = tanh(W @ x + v)
M = outer(h, x) * a
s1 = sum(M, axis=0)
s2 = mean(M, axis=1)
m0 = max(M, axis=0)
m1 = min(M, axis=1)
l0 = logsumexp(M, axis=0)
l1 = logsumexp(W, axis=1)
p = softmax(W, axis=1)
q = softmax(W, axis=0)
r = softmax(x)
z = [h[0], a*x[1], 2]
Z = [z, x]
y = dot(s1, x) + sum(s2^2) + sum(m0) - sum(m1) + max(l0) + min(l1) + sum(p * W) + sum(q[1, :]) + r[-1] + norm(W) + norm(transpose(W)[1:3, 0]) + sum(transpose(W) @ v) + v @ W @ x + sum(Z @ x) + mean(M[0]) + logsumexp(x) + max(x) + sum(max(W, 0.1)) + min(W) + sum(exp(-W^2)) / a + sum([[1, 2, 3], [4, 5, 6]] * W) + mean(M, axis=0) @ x + sum(abs(W[:, 1:]))
"""
# ties in max/min (the gradient split evenly), an input used through several views, a scalar output
# that is itself an element
TIES = "x = [1, 3, 3, 2]\nW = [[2, 2], [1, 2]]\ny = max(x) + sum(max(W, axis=1)) + min(W, axis=0)[1] * x[1]\n"
ELEMENT = "x = [0.5, 2]\ny = x[1]\n"
# names every target reserves or codegen uses itself (int, i, acc, np, d_np) and one C spells by code point
# logsumexp of huge ties: its gradient the softmax (exp(x - out) gave 1 for each of two at 1e16)
HUGE_TIES = "x = [1e16, 1e16, 3e15]\nW = [[1, 2], [3, 1e17]]\ny = logsumexp(x) + sum(logsumexp(W, axis=1))\n"
# norms of tiny and huge elements: scaled by the largest |x|, as the engine's (the squares alone
# under/overflow: a norm of 0 and an error where the engine has none)
SCALED_NORMS = ("x = [1e-200, 1e-200]\nW = [[1e200, 2e200], [3e200, -1e200]]\n"
                "y = norm(x) * 1e200 + norm(W) * 1e-200 + norm([3, 4] * x[0]) * 1e200\n")
# norm at 0 behind a zero adjoint: its undefined partial is not needed (0*sqrt(x) at 0, as grad has it)
ZERO_NORM = "x = [0, 0]\nk = [1, 2]\ny = 0*norm(x) + sum(k*x)\n"
NAMES = "θ = [1, 2]\nint = [[0.5, 1], [2, -1]]\ni = 0.3\nacc = θ * i\nnp = int @ acc\nd_np = 2\ny = sum(np^2) * d_np + sum(acc)\n"


def _cases():
    paths = sorted((SHARED / "arrays-conformance").glob("*.expr")) + sorted((SAMPLES / "arrays").glob("*.expr")) \
        + [SAMPLES / "moons" / "moons_mlp_arrays.expr"]
    cases = []
    for path in paths:
        spec = path.with_suffix(".json")
        argv = json.loads(spec.read_text(encoding="utf-8"))["argv"] if spec.exists() else []
        if spec.exists() and "expect" not in json.loads(spec.read_text(encoding="utf-8")):
            continue  # an error case
        sets = [value for option, value in zip(argv[::2], argv[1::2]) if option == "--set"]
        cases.append((path.stem, path.read_text(encoding="utf-8"), parse_sets(sets)))
    return cases + [("every_op", EVERY_OP, {}), ("ties", TIES, {}), ("element", ELEMENT, {}), ("names", NAMES, {}),
                    ("huge_ties", HUGE_TIES, {}), ("scaled_norms", SCALED_NORMS, {}),
                    ("zero_norm", ZERO_NORM, {})]


CASES = _cases()


def _program(text, values):
    program = diffcli.parse(text, "case.expr")
    inputs, _ = program._inputs(values)
    return program, inputs


def _arguments(generated, inputs):
    return [np.asarray(inputs[n], dtype=float) for n in generated.parameters]


def _compare(program, inputs, value, gradient):
    expected = program.grad(inputs)
    assert np.isclose(value, expected.value, rtol=1e-12, atol=0), (value, expected.value)
    assert sorted(gradient) == sorted(program.inputs)
    for name in program.inputs:
        want = np.asarray(expected.gradients[name], dtype=float)
        got = np.asarray(gradient[name], dtype=float).reshape(want.shape)
        assert np.allclose(got, want, rtol=1e-12, atol=0), (name, got, want)


def _run_python(source, function, *args):
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated text
    return namespace[function](*args)


@pytest.mark.parametrize("name, text, values", CASES, ids=[c[0] for c in CASES])
def test_generated_numpy_is_grad(name, text, values):
    program, inputs = _program(text, values)
    generated = generate(program, "python")
    value, gradient = _run_python(generated.source, generated.function, *_arguments(generated, inputs))
    _compare(program, inputs, value, gradient)
    # and the value alone; the defaults are the file's
    alone = generate(program, "python", value_only=True)
    if not values:
        assert _run_python(alone.source, alone.function) == value


def _c_initializer(value):
    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return repr(float(value))
    return "{" + ", ".join(_c_initializer(x) for x in value) + "}"


def _c_driver(cases):
    """One C file: every case's function (case_k) and a main printing each value and gradient."""
    parts, calls = ["#include <stdio.h>"], []
    for k, (program, inputs) in enumerate(cases):
        generated = generate(program, "c", name=f"case_{k}")
        parts.append(generated.source)
        args, outs = [], []
        for n, parameter in enumerate(generated.parameters):
            value = np.asarray(inputs[parameter], dtype=float)
            dims = "".join(f"[{d}]" for d in value.shape)
            parts.append(f"static const double case_{k}_in{n}{dims} = {_c_initializer(value)};")
            parts.append(f"static double case_{k}_out{n}{dims or '[1]'};")
            args.append(f"case_{k}_in{n}")
            outs.append((f"case_{k}_out{n}", value.size))
        printing = "".join(f' for (int q = 0; q < {size}; q++) printf(" %.17g", ((double *){out})[q]);'
                           for out, size in outs)
        calls.append(f"  {{ double v; long el = -2; const char *e = 0;\n"
                     f"    int r = case_{k}({''.join(a + ', ' for a in args)}&v, "
                     f"{''.join(o + ', ' for o, _ in outs)}&el, &e);\n"
                     f"    printf(\"%d %.17g\", r, v);{printing}\n    printf(\"\\n\"); }}")
    return "\n".join(parts) + "\nint main(void)\n{\n" + "\n".join(calls) + "\n  return 0;\n}\n"


def _check_lines(cases, lines):
    assert len(lines) == len(cases)
    for (program, inputs), line in zip(cases, lines):
        code, value, *numbers = line.split()
        assert code == "0", line
        gradient, at = {}, 0
        for name in program.inputs:
            size = int(np.asarray(inputs[name]).size)
            gradient[name] = [float(x) for x in numbers[at:at + size]]
            at += size
        # the generated order is free inputs first: these cases have none, so it is the file's
        _compare(program, inputs, float(value), gradient)


@needs_gcc
@pytest.mark.parametrize("standard", ["c99", "c11"])
def test_generated_c_matches_grad(standard, tmp_path):
    cases = [_program(text, values) for _, text, values in CASES]
    (tmp_path / "all.c").write_text(_c_driver(cases), encoding="utf-8")
    subprocess.run([GCC, f"-std={standard}", "-O2", "-Wall", "-Werror", "-o", str(tmp_path / "all"),
                    str(tmp_path / "all.c"), "-lm"], check=True)
    done = subprocess.run([str(tmp_path / "all")], capture_output=True, text=True, check=True)
    _check_lines(cases, done.stdout.splitlines())


def _js_driver(tmp_path, cases, calls_of=None):
    imports, calls = [], []
    for k, (program, inputs) in enumerate(cases):
        generated = generate(program, "javascript", name=f"case_{k}")
        (tmp_path / f"case_{k}.mjs").write_text(generated.source, encoding="utf-8")
        imports.append(f"import {{ case_{k} }} from './case_{k}.mjs';")
        args = ", ".join(f"new Float64Array({json.dumps(np.ravel(inputs[n]).tolist())})"
                         if np.ndim(inputs[n]) else repr(float(inputs[n])) for n in generated.parameters)
        calls.append(f"{{ const r = case_{k}({args}); console.log(['0', r.value, ...Object.values(r.gradient)"
                     ".flatMap(x => typeof x === 'number' ? [x] : Array.from(x))].map(x => typeof x === 'number' ? "
                     "x.toPrecision(17) : x).join(' ')); }")
    (tmp_path / "all.mjs").write_text("\n".join(imports + calls) + "\n", encoding="utf-8")
    return subprocess.run([NODE, str(tmp_path / "all.mjs")], capture_output=True, text=True, check=True)


@needs_node
def test_generated_javascript_matches_grad(tmp_path):
    cases = [_program(text, values) for _, text, values in CASES]
    _check_lines(cases, _js_driver(tmp_path, cases).stdout.splitlines())


@needs_node
def test_javascript_writes_into_the_callers_arrays_and_checks_lengths(tmp_path):
    program, inputs = _program(EVERY_OP, {})
    generated = generate(program, "javascript", name="f")
    (tmp_path / "f.mjs").write_text(generated.source, encoding="utf-8")
    (tmp_path / "run.mjs").write_text(
        "import { f } from './f.mjs';\n"
        "const W = new Float64Array(6).fill(7);\n"
        "const r = f(undefined, undefined, undefined, undefined, {W});\n"
        "console.log(r.gradient.W === W, Array.from(W).join(' '));\n"
        "try { f(new Float64Array(5)); } catch (e) { console.log(e.constructor.name, e.message); }\n")
    out = subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True, check=True).stdout
    first, second = out.splitlines()
    assert first.split()[0] == "true"
    want = np.ravel(program.grad().gradients["W"])
    assert np.allclose([float(x) for x in first.split()[1:]], want, rtol=1e-12, atol=0)
    assert second == "TypeError W: 6 numbers (2×3, row-major), not 5"


# ---------------------------------------------------------------- domain errors, with the element

DOMAIN = [
    ("x = [1, 4, -2, 3]\ny = sum(log(x))\n", "`log(x)` (line 2, column 9): undefined or overflows", "x", (2,)),
    ("W = [[1, 2], [3, 800]]\ny = sum(exp(W))\n", "`exp(W)` (line 2, column 9): undefined or overflows", "W", (1, 1)),
    ("x = [1, 0, 3]\ny = sum(sqrt(x))\n", "the derivative of `sqrt(x)` (line 2, column 9) is infinite or undefined",
     "x", (1,)),
    # a NaN that relu would hide, and one the fast C code leaves to the sum to show
    ("x = [1, -2]\ny = sum(relu(log(x)))\n", "`log(x)` (line 2, column 14): undefined or overflows", "x", (1,)),
    ("x = [1, -2]\ny = sum(2 * log(x))\n", "`log(x)` (line 2, column 13): undefined or overflows", "x", (1,)),
]


@pytest.mark.parametrize("text, message, array, index", DOMAIN)
def test_domain_errors_name_the_element_as_grad_does(text, message, array, index, tmp_path):
    program = diffcli.parse(text, "bad.expr")
    with pytest.raises(diffcli.DiffcliError) as engine:
        program.grad()
    label = f"{array}[{','.join(map(str, index))}]"
    assert f" at {label}" in engine.value.message
    generated = generate(program, "python")
    with pytest.raises(ValueError) as raised:
        _run_python(generated.source, generated.function)
    assert str(raised.value) == f"{message} at {label}"
    if NODE is not None:
        (tmp_path / "f.mjs").write_text(generate(program, "javascript", name="f").source, encoding="utf-8")
        (tmp_path / "run.mjs").write_text("import { f } from './f.mjs';\n"
                                          "try { f(); } catch (e) { console.log(e.message); }\n")
        out = subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"{message} at {label}"
    if GCC is not None:
        generated = generate(program, "c", name="f")
        size = int(np.asarray(program.inputs[array]).size)
        dims = "".join(f"[{d}]" for d in np.shape(program.inputs[array]))
        driver = generated.source + (
            f"#include <stdio.h>\nstatic const double in{dims} = {_c_initializer(program.inputs[array])};\n"
            f"static double out{dims};\nint main(void) {{ double v; long k = -2; const char *e = 0;\n"
            f"  int r = f(in, &v, out, &k, &e); printf(\"%d %ld %s\\n\", r, k, e); return {size} < 0; }}\n")
        (tmp_path / "f.c").write_text(driver, encoding="utf-8")
        subprocess.run([GCC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", str(tmp_path / "f"), str(tmp_path / "f.c"),
                        "-lm"], check=True)
        out = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True, check=True).stdout
        code, element, where = out.strip().split(" ", 2)
        assert code == ("2" if "derivative" in message else "1")
        assert int(element) == int(np.ravel_multi_index(index, np.shape(program.inputs[array])))
        assert where == f"{message} at {array}"


def test_a_free_input_is_a_scalar_argument():
    program = diffcli.parse("W = [1, 2]\ny = sum(W * x)\n")
    generated = generate(program, "python")
    assert generated.parameters == ["x", "W"]
    value, gradient = _run_python(generated.source, generated.function, 1.5)
    _compare(program, program._inputs({"x": 1.5})[0], value, gradient)


def test_the_gradient_of_norm_at_zero_is_an_error():
    program = diffcli.parse("x = [0, 0]\ny = norm(x)\n")
    with pytest.raises(diffcli.DiffcliError, match="derivative of `norm` is undefined"):
        program.grad()
    generated = generate(program, "python")
    with pytest.raises(ValueError, match=r"the derivative of `norm\(x\)` \(line 2, column 5\) is undefined"):
        _run_python(generated.source, generated.function)


@needs_gcc
def test_the_fast_c_code_sees_a_nan_a_maximum_would_hide(tmp_path):
    """log(-1) flows into a literal (which passes it on) and then into max (which would hide it)."""
    program = diffcli.parse("a = [1, -1]\nv = [log(a[1]), 2]\ny = max(v)\n")
    with pytest.raises(diffcli.DiffcliError):
        program.grad()
    driver = generate(program, "c", name="f").source + (
        "#include <stdio.h>\nstatic const double a[2] = {1.0, -1.0};\nint main(void) { double v, g[2]; long k;\n"
        "  const char *e = 0; int r = f(a, &v, g, &k, &e); printf(\"%d %s\\n\", r, e); return 0; }\n")
    (tmp_path / "f.c").write_text(driver, encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", str(tmp_path / "f"), str(tmp_path / "f.c"), "-lm"],
                   check=True)
    out = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 `log(a[1])` (line 2, column 6): undefined or overflows"


def test_a_zero_adjoint_blocks_an_undefined_partial_as_in_grad():
    program = diffcli.parse("x = [1, 0, 3]\ny = sum(0 * sqrt(x) + x)\n")
    generated = generate(program, "python")
    value, gradient = _run_python(generated.source, generated.function)
    _compare(program, program._inputs({})[0], value, gradient)


# ---------------------------------------------------------------- the command, bounds, scalar programs

def test_the_command_writes_c_and_its_header(tmp_path):
    done = run_diffcli("codegen", SAMPLES / "moons" / "moons_mlp_arrays.expr", "--lang", "c", "-o",
                       tmp_path / "moons.c")
    assert done.returncode == 0, done.stderr_text
    header = (tmp_path / "moons.h").read_text(encoding="utf-8")
    assert "int grad_loss(const double X[100][2], const double y[100], const double W1[16][2]" in header
    assert "double d_W1[16][2]" in header and "d_W1 = dloss/dW1" in header


def test_a_program_over_the_bound_is_refused_quickly():
    program = diffcli.parse(f"x = zeros({array_codegen.MAX_ELEMENTS + 1})\ny = sum(x^2)\n")
    for lang in ("c", "javascript", "python"):
        with pytest.raises(diffcli.DiffcliError, match="above the bound") as refused:
            generate(program, lang)
        assert refused.value.kind == "shape"
    done = run_diffcli("codegen", "-", "--lang", "c", input=f"W = ones(500, 500)\ny = sum(W @ W)\n".encode())
    assert done.returncode != 0 and "above the bound of 200,000" in done.stderr_text


def test_forward_mode_of_an_array_program_is_refused():
    program = diffcli.parse("x = [1, 2]\ny = sum(x^2)\n")
    with pytest.raises(diffcli.DiffcliError, match="reverse mode"):
        generate(program, "c", wrt="x")
    done = run_diffcli("codegen", SAMPLES / "arrays" / "softmax_layer.expr", "--lang", "c", "--forward", "--wrt", "x",
                       "--json")
    assert done.returncode == 1 and done.stdout_text == ""
    assert json.loads(done.stderr_text)["error"]["kind"] == "input"


def test_an_array_output_is_a_shape_error():
    program = diffcli.parse("x = [1, 2]\ny = x^2\n")
    with pytest.raises(diffcli.DiffcliError) as refused:
        generate(program, "javascript")
    assert refused.value.kind == "shape"


def test_scalar_programs_are_codegen_py_s_own():
    program = diffcli.load(SAMPLES / "backprop_chain.expr")
    for lang in ("python", "c", "javascript"):
        assert generate(program, lang).source == codegen.generate(program, lang).source
    with pytest.raises(diffcli.DiffcliError, match="scalar programs"):
        codegen.generate(diffcli.parse("x = [1, 2]\ny = sum(x)\n"), "c")




def test_of_another_output():
    program = diffcli.parse("x = [1, 2, 3]\nm = mean(x^2)\nv = x * m\ny = m + sum(v)\n")
    expected = program.grad(None, "m")
    for lang in ("python", "javascript"):
        generated = generate(program, lang, of="m")
        assert generated.function == "grad_m"
    value, gradient = _run_python(generate(program, "python", of="m").source, "grad_m")
    assert value == expected.value and np.allclose(gradient["x"], expected.gradients["x"], rtol=1e-12, atol=0)
    with pytest.raises(diffcli.DiffcliError) as refused:
        generate(program, "c", of="v")  # a vector: grad's shape error
    assert refused.value.kind == "shape"


def test_the_places_of_a_long_statement_read_only_the_heads_of_its_spans(monkeypatch):
    """As codegen's: each operation's place of one long statement was cut from its whole span (a
    16,000-term sum took 13 s); now from its head, with the same text."""
    import diffcli
    from diffcli.errors import Source

    text = "x = [0.5, 1]\nθ = 0.25\nf = " + " + ".join(["sum(x*θ)"] * 300) + "\n"
    program = diffcli.parse(text)
    spans = []
    snippet = Source.snippet
    monkeypatch.setattr(Source, "snippet", lambda self, a, b: spans.append(b - a) or snippet(self, a, b))
    source = "".join(generate(program, "c").source)
    # (whole spans only for each statement's comment: a few; each place reads a head of 160 at most)
    assert sum(1 for n in spans if n > 160) <= 8 and "`sum(x*θ) + sum(x*θ) + sum(x*θ) + sum(x*…`" in source
