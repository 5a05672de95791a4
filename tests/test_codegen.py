"""`diffcli codegen`: generated Python gives `grad`'s numbers exactly; generated C (gcc) and JavaScript
(node) within 1e-12; domain errors in all three; forward mode; programs large enough to be split."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

import diffcli
from diffcli.cli import parse_sets
from diffcli.renderers.codegen import generate

from conftest import SAMPLES, SHARED, run_diffcli

CONFORMANCE = SHARED / "conformance"
CASES = [path for path in sorted(CONFORMANCE.glob("*/*.expr"))
         if "expect" in json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))]
GCC = shutil.which("gcc") or shutil.which("cc")
NODE = shutil.which("node")
needs_gcc = pytest.mark.skipif(GCC is None, reason="no C compiler")
needs_node = pytest.mark.skipif(NODE is None, reason="no node")


def case_arguments(path):
    """(program, values, of) of a conformance case."""
    argv = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["argv"]
    of, sets = None, []
    for option, value in zip(argv[::2], argv[1::2]):
        if option == "--of":
            of = value
        else:
            sets.append(value)
    return diffcli.parse(path.read_bytes().decode("utf-8"), str(path)), parse_sets(sets), of


def run_python(source: str, function: str, *args, **kwargs):
    namespace: dict = {}
    exec(compile(source, "<generated>", "exec"), namespace)  # our own generated text
    return namespace[function](*args, **kwargs)


def call_values(program, values):
    """The arguments in the generated function's order: free inputs first, then the literals."""
    inputs, _ = program._inputs(values)
    free = [n for n, d in program.inputs.items() if d is None]
    return [inputs[n] for n in free + [n for n in program.inputs if n not in free]]


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300) or a == b


# ---------------------------------------------------------------- Python: bit for bit

@pytest.mark.skipif(not CASES, reason="../shared/conformance is not here")
@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_generated_python_is_grad_exactly(case):
    program, values, of = case_arguments(case)
    expected = program.grad(values, of)
    generated = generate(program, "python", of)
    value, gradient = run_python(generated.source, generated.function, *call_values(program, values))
    assert value == expected.value
    assert gradient == {name: expected.gradients[name] for name in program.inputs}
    assert list(gradient) == generated.parameters


def test_the_chain_sample_is_grad_json_exactly():
    done = run_diffcli("grad", SAMPLES / "backprop_chain.expr", "--set", "o=1", "--json")
    want = json.loads(done.stdout_text)
    generated = run_diffcli("codegen", SAMPLES / "backprop_chain.expr", "--lang", "python", "--name", "f")
    assert "def f(o, a=2.0):" in generated.stdout_text
    value, gradient = run_python(generated.stdout_text, "f", 1.0)
    assert value == want["value"] and gradient == {"o": want["gradients"]["o"], "a": want["gradients"]["a"]}



def test_the_readme_excerpt_is_the_generated_code():
    """The README's excerpt of the chain sample's Python: its lines, `...` aside, in the output in order."""
    readme = (SAMPLES.parent / "README.md").read_text(encoding="utf-8")
    excerpt = readme.split("## Code to embed", 1)[1].split("```python\n", 1)[1].split("```", 1)[0].splitlines()
    generated = generate(diffcli.load(SAMPLES / "backprop_chain.expr"), "python").source.splitlines()
    kept = [line for line in excerpt if line.strip() != "..."]
    assert len(kept) >= 10
    position = 0
    for line in kept:
        assert line in generated[position:], f"not in the generated code (after line {position}): {line}"
        position = generated.index(line, position) + 1

def test_value_only_and_forward_mode():
    program = diffcli.load(SAMPLES / "two_layer_network.expr")
    expected = program.grad()
    generated = generate(program, "python", value_only=True)
    assert run_python(generated.source, generated.function) == expected.value
    for wrt in ("w11", "x2", "v3"):
        generated = generate(program, "python", wrt=wrt)
        value, derivative = run_python(generated.source, generated.function)
        assert value == expected.value
        assert derivative == pytest.approx(expected.gradients[wrt], rel=1e-13)
        assert derivative == program.derivatives(wrt).derivatives["loss"]


@pytest.mark.parametrize("text, derivative", [("x = 0\nz = 0*sqrt(x)\n", 0.0), ("x = 0\nz = 2*sqrt(x)\n", None)])
def test_forward_mode_blocks_an_undefined_partial_as_the_engine_does(text, derivative, tmp_path):
    """sqrt's partial at 0 is undefined; a zero partial after it blocks it (derivative 0), as in
    `grad --wrt x`; otherwise it reaches the output and is an error, in Python and in C."""
    program = diffcli.parse(text)
    generated = generate(program, "python", wrt="x")
    if derivative is None:
        with pytest.raises(diffcli.DiffcliError):
            program.derivatives("x")
        with pytest.raises(ValueError, match="infinite or undefined"):
            run_python(generated.source, generated.function)
    else:
        assert program.derivatives("x").derivatives["z"] == derivative
        assert run_python(generated.source, generated.function) == (0.0, derivative)
    if GCC is None:
        return
    c = generate(program, "c", wrt="x", name="f").source + (
        '#include <stdio.h>\nint main(void) { double v, d; const char *e = 0; int r = f(0.0, &v, &d, &e);'
        ' printf("%d %.17g\\n", r, d); return 0; }\n')
    (tmp_path / "f.c").write_text(c)
    subprocess.run([GCC, "-std=c99", "-o", str(tmp_path / "f"), str(tmp_path / "f.c"), "-lm"], check=True)
    code, got = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True).stdout.split()
    assert (code, float(got)) == ("0", derivative) if derivative is not None else code == "2"


# ---------------------------------------------------------------- C and JavaScript: all cases at once

def _c_driver(cases):
    """One C file: every case's function (named case_k) and a main printing value and gradient."""
    parts, calls = ["#include <stdio.h>"], []
    for k, (program, values, of) in enumerate(cases):
        generated = generate(program, "c", of, f"case_{k}")
        parts.append(generated.source)
        args = "".join(f"{x!r}, " for x in call_values(program, values))
        n = max(len(generated.parameters), 1)
        calls.append(f"  {{ double v, g[{n}]; const char *e = 0; int r = case_{k}({args}&v, g, &e);\n"
                     f"    printf(\"%d %.17g\", r, v); for (int i = 0; i < {len(generated.parameters)}; i++)"
                     f" printf(\" %.17g\", g[i]); printf(\"\\n\"); }}")
    return "\n".join(parts) + "\nint main(void)\n{\n" + "\n".join(calls) + "\n  return 0;\n}\n"


def _check_lines(cases, lines):
    assert len(lines) == len(cases)
    for (program, values, of), line in zip(cases, lines):
        code, value, *gradient = line.split()
        expected = program.grad(values, of)
        assert code == "0"
        assert close(float(value), expected.value), (program.source.filename, value, expected.value)
        for name, got in zip([n for n in program.inputs if program.inputs[n] is None]
                             + [n for n in program.inputs if program.inputs[n] is not None], gradient):
            assert close(float(got), expected.gradients[name]), (program.source.filename, name)


@needs_gcc
@pytest.mark.skipif(not CASES, reason="../shared/conformance is not here")
def test_generated_c_matches_grad(tmp_path):
    cases = [case_arguments(case) for case in CASES]
    (tmp_path / "all.c").write_text(_c_driver(cases), encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O0", "-Wall", "-Werror", "-Wno-unused-variable",
                    "-o", str(tmp_path / "all"), str(tmp_path / "all.c"), "-lm"], check=True)
    done = subprocess.run([str(tmp_path / "all")], capture_output=True, text=True, check=True)
    _check_lines(cases, done.stdout.splitlines())


def _js_driver(tmp_path, cases, lang_options=None):
    imports, calls = [], []
    for k, (program, values, of) in enumerate(cases):
        generated = generate(program, "javascript", of, f"case_{k}")
        (tmp_path / f"case_{k}.mjs").write_text(generated.source, encoding="utf-8")
        imports.append(f"import {{ case_{k} }} from './case_{k}.mjs';")
        args = ", ".join(repr(x) for x in call_values(program, values))
        calls.append(f"{{ const r = case_{k}({args}); console.log(['0', r.value, ...Object.values(r.gradient)]"
                     ".map(x => typeof x === 'number' ? x.toPrecision(17) : x).join(' ')); }")
    (tmp_path / "all.mjs").write_text("\n".join(imports + calls) + "\n", encoding="utf-8")
    return subprocess.run([NODE, str(tmp_path / "all.mjs")], capture_output=True, text=True, check=True)


@needs_node
@pytest.mark.skipif(not CASES, reason="../shared/conformance is not here")
def test_generated_javascript_matches_grad(tmp_path):
    cases = [case_arguments(case) for case in CASES]
    _check_lines(cases, _js_driver(tmp_path, cases).stdout.splitlines())


# ---------------------------------------------------------------- the straight-line code and its checked version

# programs where the straight-line C and JavaScript must hand over to the checked version (an adjoint
# of 0 meeting an infinite partial, which the engine never multiplies), or share a value
HANDOVER = [
    "x = 0\ny = 0 * sqrt(x) + x",
    "x = 1\ny = 0 * asin(x) + 2*x",
    "x = 0.5\na = sin(x)\nb = sin(x)\nc = a*b + (x + 1)*(1 + x)",
    "x = 1.5\nb = x\nc = +b * b - b / x\nd = max(c, c, x)",
    "x = 0\ny = 0 * hypot(x, x) + x",
]


def _straight_line_cases():
    return [(diffcli.parse(text, f"handover_{k}.expr"), {}, None) for k, text in enumerate(HANDOVER)]


def test_the_straight_line_code_shares_values_and_hands_over():
    program = diffcli.parse(HANDOVER[2])
    fast = generate(program, "c").source.split("straight-line", 1)[1]
    assert fast.count("sin(x)") == 1 and fast.count("(x + 1.0)") + fast.count("(1.0 + x)") == 1
    assert "_checked(" in fast and "isfinite" in fast and "DIFFCLI_RAISED()" in fast


# the straight-line C's last test: the exception flags where it can read them, else the sum of the gradient
FLAG_MODES = ["-DDIFFCLI_FLAGS_DEFAULT", "-DDIFFCLI_NO_FLAGS"]


def test_an_input_only_a_library_call_reads_is_tested_as_a_value():
    """The flags stand for the derivatives' tests only where every input is finite: one that no
    operation carries on (`tanh(x)`) is tested, one that a product carries on (`2*x`) is not."""
    def tested(text):
        fast = generate(diffcli.parse(text), "c").source.split("straight-line", 1)[1].split("#if", 1)[0]
        return re.findall(r"finite_\w+ = (?:finite_\w+ \+ )?(\w+);", fast)

    assert tested("x = 1\ny = tanh(x)") == ["x", "y"]
    assert tested("x = 1\ny = tanh(2*x)") == ["t2", "y"]


@needs_gcc
@pytest.mark.parametrize("flags", FLAG_MODES)
def test_generated_c_hands_over_to_its_checked_version(flags, tmp_path):
    cases = _straight_line_cases()
    for case in cases:  # the engine says: a result, no error
        case[0].grad()
    (tmp_path / "h.c").write_text(_c_driver(cases), encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O2", flags, "-Wall", "-Werror", "-Wno-unused-variable", "-o", str(tmp_path / "h"),
                    str(tmp_path / "h.c"), "-lm"], check=True)
    _check_lines(cases, subprocess.run([str(tmp_path / "h")], capture_output=True, text=True, check=True).stdout.splitlines())


@needs_node
def test_generated_javascript_hands_over_to_its_checked_version(tmp_path):
    cases = _straight_line_cases()
    _check_lines(cases, _js_driver(tmp_path, cases).stdout.splitlines())


# ---------------------------------------------------------------- domain errors at run time

ERRORS = [
    # (program, inputs, the operation, its line, C's return code)
    ("x = 1\ny = 2\nz = log(x - 1) + y", (), "log(x - 1)", 3, 1),
    ("x = 0\ny = sqrt(x) * 2", (), "sqrt(x)", 2, 2),
    ("x = 1e200\ny = x * x", (), "x * x", 2, 1),
    # an infinite derivative where only copies of one adjoint (`a`'s and `b`'s are `s`'s) reach the inputs
    ("a = 1e-160\nb = 0\ns = a + b\nout = 1e-10 / s", (), "1e-10 / s", 4, 2),
    # `d_w = d_t * 0.5` is no larger than d_t, but no other test covers d_t (infinite): w's is kept
    ("w = 1e-320\nt = w * 0.5\ny = log(t)", (), "log(t)", 3, 2),
    # a power's base (an exponent above 0 carries it on) is tested only through the power
    ("x = 1e200\ny = 2\nz = (x * x - y)^2", (), "x * x", 3, 1),
    # a value before a library call is tested there (tanh of it would be finite)
    ("x = 1e200\ny = 1\nz = tanh(x * x) + y", (), "x * x", 3, 1),
    # an overflow in the gradient where the forward values (one before a library call) are finite
    ("a = 1e-300\nb = 1e300\nz = (tanh(a) * b) * b", (), "tanh(a) * b", 3, 3),
]


@pytest.mark.parametrize("text, args, where, line, code", ERRORS)
def test_python_raises_a_value_error_naming_the_operation(text, args, where, line, code):
    program = diffcli.parse(text, "bad.expr")
    with pytest.raises(diffcli.DiffcliError):
        program.grad()
    generated = generate(program, "python")
    with pytest.raises(ValueError, match=re.escape(f"`{where}` (line {line},")):
        run_python(generated.source, generated.function, *args)


@needs_gcc
@pytest.mark.parametrize("flags", FLAG_MODES)
@pytest.mark.parametrize("optimize", ["-O0", "-O2"])  # -O2: the straight-line code, its results written early
def test_c_returns_a_code_and_a_message(optimize, flags, tmp_path):
    parts, calls = ["#include <stdio.h>"], []
    for k, (text, args, where, line, code) in enumerate(ERRORS):
        parts.append(generate(diffcli.parse(text, "bad.expr"), "c", name=f"bad_{k}").source)
        calls.append(f'  {{ double v, g[2]; const char *e = "none"; int r = bad_{k}(1.0, 1.0, &v, g, &e);'
                     f' printf("%d %s\\n", r, e); }}')
    # inputs are their defaults: pass them explicitly
    calls = [c.replace("(1.0, 1.0, ", "(" + ", ".join(repr(x) for x in call_values(
        diffcli.parse(ERRORS[k][0]), {})) + ", ") for k, c in enumerate(calls)]
    (tmp_path / "bad.c").write_text("\n".join(parts) + "\nint main(void)\n{\n" + "\n".join(calls)
                                    + "\n  return 0;\n}\n", encoding="utf-8")
    subprocess.run([GCC, "-std=c99", optimize, flags, "-o", str(tmp_path / "bad"), str(tmp_path / "bad.c"), "-lm"],
                   check=True)
    lines = subprocess.run([str(tmp_path / "bad")], capture_output=True, text=True).stdout.splitlines()
    for (text, args, where, line, code), out in zip(ERRORS, lines):
        assert out.startswith(f"{code} ") and f"`{where}` (line {line}," in out, out


FLAGS_DRIVER = r"""
#include <fenv.h>
#include <stdio.h>
#include <string.h>
%(source)s
#define RAISED() fetestexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW)
int main(void)
{
    double v0, g0[16], v1, g1[16], v2, g2[16], v3, g3[16];
    const char *e2 = "none", *e3 = "none";
    int r0 = f(%(args)s, &v0, g0, 0), clean = RAISED();
    int r2 = f(%(bad)s, &v2, g2, &e2), raised = RAISED() == FE_OVERFLOW;  /* an overflow in the gradient */
    /* with the overflow's flag still raised: the same numbers (added up), the same error */
    int r1 = f(%(args)s, &v1, g1, 0), kept = RAISED() == FE_OVERFLOW;
    int r3 = f(%(bad)s, &v3, g3, &e3);
    printf("%%d %%d %%d %%d %%d %%d %%d %%d %%d|%%s|%%s\n", r0, r1, r2, r3, clean, raised, kept,
           v0 == v1 && memcmp(g0, g1, sizeof g0) == 0, strcmp(e2, e3) == 0, e2, e3);
    return 0;
}
"""


@needs_gcc
@pytest.mark.parametrize("flags", FLAG_MODES)
def test_c_reads_the_exception_flags_and_adds_up_the_gradient_where_one_is_raised(flags, tmp_path):
    """Where the compiler and library allow, the fast code's last test is the exception flags (only
    read): an overflow of the gradient alone (every value finite) is found by its flag; with a flag
    raised before the call, the gradient is added up as without the flags (the same numbers, the
    same error); the flags are never cleared."""
    program = diffcli.load(SAMPLES / "two_layer_network.expr")
    source = generate(program, "c", name="f").source
    assert "DIFFCLI_RAISED()" in source
    args = call_values(program, {})
    # every value finite (w11·x1 = 1, loss ≈ 1e20), d/dw11 = 2(yhat - target)·v1·(1 - h1²)·x1 ≈ 1e320
    overflowing = {"x1": 1e300, "w11": 1e-300, "v1": 1e10}
    bad = call_values(program, overflowing)
    (tmp_path / "f.c").write_text(FLAGS_DRIVER % {"source": source, "args": ", ".join(map(repr, args)),
                                                  "bad": ", ".join(map(repr, bad))}, encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O2", flags, "-pedantic", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "f"),
                    str(tmp_path / "f.c"), "-lm"], check=True)
    numbers, where, again = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True,
                                           check=True).stdout.strip().split("|")
    with pytest.raises(diffcli.DiffcliError, match="the gradient overflows at `w11\\*x1`") as engine:
        program.grad(overflowing)
    line, column = engine.value.source.line_col(engine.value.span[0])
    assert numbers.split() == ["0", "0", "3", "3", "0", "1", "1", "1", "1"], numbers
    assert where.startswith(f"`w11*x1` (line {line}, column {column})"), where


# programs with no operation, or whose output an input is, or that --wrt does not reach: the code
# has no pass to write (C once wrote `double  = 1.0;`, Python an empty `try:`)
NO_PASS = [("v0 = 3", ["", "--value-only", "--forward --wrt v0"]),
           ("v0 = 3\nv1 = 2", ["", "--value-only", "--forward --wrt v0", "--forward --wrt v1"]),
           ("x = 1\ny = 2\nz = y * 2", ["--forward --wrt x", "--value-only"])]


@pytest.mark.parametrize("text, options", [(t, o) for t, os_ in NO_PASS for o in os_])
@pytest.mark.parametrize("lang", ["python", pytest.param("c", marks=needs_gcc), pytest.param("javascript", marks=needs_node)])
def test_code_with_no_pass_to_write_runs_and_gives_grads_answer(text, options, lang, tmp_path):
    program = diffcli.parse(text, "none.expr")
    wrt = options.split()[-1] if "--wrt" in options else None
    generated = generate(program, lang, value_only="--value-only" in options, wrt=wrt, name="f")
    value = program.grad().value
    derivative = program.derivatives(wrt).derivatives[program.output] if wrt else None
    gradients = program.grad().gradients
    if lang == "python":
        got = run_python(generated.source, "f")
        if wrt:
            assert got == (value, derivative)
        elif "--value-only" in options:
            assert got == value
        else:
            assert got == (value, gradients)
        return
    if lang == "javascript":
        (tmp_path / "f.mjs").write_text(generated.source, encoding="utf-8")
        done = subprocess.run([NODE, "-e", "import('./f.mjs').then(m => console.log(JSON.stringify(m.f())))"],
                              cwd=tmp_path, capture_output=True, text=True, check=True)
        got = json.loads(done.stdout)
        assert (got if "--value-only" in options else got["value"]) == value
        if wrt:
            assert got["derivative"] == derivative
        elif "--value-only" not in options:
            assert got["gradient"] == gradients
        return
    n = len(generated.parameters)
    args = "".join(f"{x!r}, " for x in call_values(program, {}))
    extra = "&d, " if wrt else "" if "--value-only" in options else "g, "
    main = (f"#include <stdio.h>\n{generated.source}\nint main(void)\n{{\n    double v, d = -1, g[{n}] = {{0}};\n"
            f"    int r = f({args}&v, {extra}0);\n    printf(\"%d %.17g %.17g\", r, v, d);\n"
            f"    for (int i = 0; i < {n}; i++) printf(\" %.17g\", g[i]);\n    return 0;\n}}\n")
    (tmp_path / "f.c").write_text(main, encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-pedantic", "-Wall", "-Werror", "-o", str(tmp_path / "f"), str(tmp_path / "f.c"),
                    "-lm"], check=True)
    code, v, d, *g = subprocess.run([str(tmp_path / "f")], capture_output=True, text=True, check=True).stdout.split()
    assert (int(code), float(v)) == (0, value)
    if wrt:
        assert float(d) == derivative
    elif "--value-only" not in options:
        assert [float(x) for x in g] == [gradients[name] for name in generated.parameters]
