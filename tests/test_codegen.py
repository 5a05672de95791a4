"""`diffcli codegen`: generated Python gives `grad`'s numbers exactly; generated C (gcc) and JavaScript
(node) within 1e-12; domain errors in all three; forward mode; programs large enough to be split."""

from __future__ import annotations

import json
import math
import os
import platform
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
    # which way this compiler tests (the file's own condition): on x86-64 Linux's gcc and glibc, the flags
    from diffcli.renderers.codegen import FLAGS

    (tmp_path / "probe.c").write_text("\n".join(FLAGS + ["#if !DIFFCLI_FLAGS", "#error the sum", "#endif", "int x;", ""]),
                                      encoding="utf-8")
    reads = subprocess.run([GCC, "-std=c99", flags, "-c", str(tmp_path / "probe.c"), "-o", str(tmp_path / "probe.o")],
                           capture_output=True).returncode == 0
    assert reads == (flags != "-DDIFFCLI_NO_FLAGS") or platform.machine() != "x86_64" or sys.platform != "linux"
    with pytest.raises(diffcli.DiffcliError, match="the gradient overflows at `w11\\*x1`") as engine:
        program.grad(overflowing)
    line, column = engine.value.source.line_col(engine.value.span[0])
    assert numbers.split() == ["0", "0", "3", "3", "0", "1", "1", "1", "1"], numbers
    assert where.startswith(f"`w11*x1` (line {line}, column {column})"), where


@needs_node
def test_javascript_throws_a_domain_error(tmp_path):
    for k, (text, args, where, line, code) in enumerate(ERRORS):
        (tmp_path / f"bad_{k}.mjs").write_text(generate(diffcli.parse(text), "javascript", name="f").source)
    script = "".join(
        f"try {{ (await import('./bad_{k}.mjs')).f(); console.log('no error'); }} "
        f"catch (e) {{ console.log(e instanceof Error, e.name, e.message); }}\n" for k in range(len(ERRORS)))
    (tmp_path / "run.mjs").write_text(script)
    lines = subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True).stdout.splitlines()
    for (text, args, where, line, code), out in zip(ERRORS, lines):
        assert out.startswith("true Error") and f"`{where}` (line {line}," in out, out


# ---------------------------------------------------------------- names, sizes, the command line

def test_unicode_names_are_kept_in_python_and_javascript_and_mangled_in_c():
    program = diffcli.parse("θ = 0.5\nint = 2\ny = sin(θ) * int + p")
    python = generate(program, "python")
    assert "def grad_y(p, θ=0.5, int_2=2.0):" in python.source  # a builtin of Python, renamed
    c = generate(program, "c")
    assert "double u03b8" in c.source and "θ" in c.source  # the original in comments
    assert "double int_2" in c.source  # a keyword of C, renamed
    value, gradient = run_python(python.source, python.function, 1.5)
    assert gradient == {n: program.grad({"p": 1.5}).gradients[n] for n in ("p", "θ", "int")}


def chain(n: int) -> str:
    lines = ["x0 = 0.5", "x1 = 1.25"]
    for i in range(2, n):
        lines.append(f"x{i} = 0.9*x{i - 1} + 0.1*sin(x{i - 2}) + tanh(x{i - 1})*0.01")
    return "\n".join(lines)


@pytest.fixture
def split_program(monkeypatch):
    """A chain split into functions of 100 operations (as programs of more than SPLIT are: a C
    compiler takes its time over thousands of lines, so the split is tested small)."""
    monkeypatch.setattr(sys.modules["diffcli.renderers.codegen"], "SPLIT", 100)
    program = diffcli.parse(chain(80), "chain.expr")
    assert sum(op is not None for op in program.graph.op) > 300
    return program


def test_a_split_python_program_is_still_exact(split_program):
    expected = split_program.grad()
    generated = generate(split_program, "python")
    value, gradient = run_python(generated.source, generated.function)
    assert value == expected.value and gradient == {n: expected.gradients[n] for n in ("x0", "x1")}


def test_a_split_python_module_leaves_no_names_for_import_star(split_program):
    """The tables' set-up loop ran at module level as `for i, x in ...`: `from model import *`
    then bound `x` over the user's own."""
    generated = generate(split_program, "python")
    namespace: dict = {}
    exec(compile(generated.source, "<generated>", "exec"), namespace)
    public = {name for name, value in namespace.items()
              if not name.startswith("_") and type(value).__name__ != "module"}
    assert public == {generated.function, "DomainError"}


def test_a_split_programs_file_is_its_source_written_in_pieces(split_program, tmp_path):
    """A large program's source is kept as lines and written a few lines a piece (never joined
    whole): the file's bytes are the source's, and the pieces can be written twice (as output.py
    does when it starts over in place)."""
    from diffcli.renderers.output import write_output

    for lang in ("python", "c", "javascript"):
        generated = generate(split_program, lang)
        pieces = generated.pieces()
        assert len(list(pieces)) > 1 and list(pieces) == list(pieces)
        write_output(str(tmp_path / lang), pieces)
        assert (tmp_path / lang).read_bytes() == generated.source.encode("utf-8")
        assert "".join(generated.pieces()) == generated.source


@needs_gcc
def test_a_split_c_program_compiles_and_matches(split_program, tmp_path):
    cases = [(split_program, {}, None)]
    (tmp_path / "chain.c").write_text(_c_driver(cases))
    subprocess.run([GCC, "-std=c99", "-O0", "-o", str(tmp_path / "chain"), str(tmp_path / "chain.c"), "-lm"],
                   check=True)
    _check_lines(cases, subprocess.run([str(tmp_path / "chain")], capture_output=True, text=True).stdout.splitlines())


@needs_node
def test_a_split_javascript_program_matches(split_program, tmp_path):
    cases = [(split_program, {}, None)]
    _check_lines(cases, _js_driver(tmp_path, cases).stdout.splitlines())


# a split chain that then fails: a value, a derivative, the gradient overflowing (the engine's line:column)
SPLIT_ERRORS = [("y = log(x79 - 100) + x3", "81:5"), ("z = x5 + sqrt(x79 - x79)", "81:10"),
                ("s = 1e-320 + 0*x79\nz = 1e200 * sqrt(s) + x2", "82:13")]


def _split_failing(k):
    program = diffcli.parse(chain(80) + "\n" + SPLIT_ERRORS[k][0], "bad.expr")
    with pytest.raises(diffcli.DiffcliError) as raised:
        program.grad()
    line, column = SPLIT_ERRORS[k][1].split(":")
    assert f"bad.expr:{line}:{column}:" in str(raised.value)
    return program, f"(line {line}, column {column})"


def _c_errors(tmp_path, programs) -> list[str]:
    """`code *error` of each program (inputs x0 = 0.5, x1 = 1.25), compiled with -Wall -Werror."""
    parts, calls = ["#include <stdio.h>"], []
    for k, program in enumerate(programs):
        parts.append(generate(program, "c", name=f"bad_{k}").source)
        calls.append(f'  {{ double v, g[2]; const char *e = "none"; int r = bad_{k}(0.5, 1.25, &v, g, &e);'
                     f' printf("%d %s\\n", r, e); }}')
    (tmp_path / "bad.c").write_text("\n".join(parts) + "\nint main(void)\n{\n" + "\n".join(calls)
                                    + "\n  return 0;\n}\n", encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O1", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", str(tmp_path / "bad"),
                    str(tmp_path / "bad.c"), "-lm"], check=True)
    return subprocess.run([str(tmp_path / "bad")], capture_output=True, text=True,
                          encoding="utf-8").stdout.splitlines()


@needs_gcc
def test_a_split_c_program_fails_where_the_unsplit_one_does(monkeypatch, tmp_path):
    """Above SPLIT, the operations are tables and each pass one loop: the code and the place of an
    error are the checked straight-line code's (the reference, tested against the engine above)."""
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    outputs = []
    for split in (codegen_module.SPLIT, 100):
        monkeypatch.setattr(codegen_module, "SPLIT", split)
        outputs.append(_c_errors(tmp_path, [_split_failing(k)[0] for k in range(len(SPLIT_ERRORS))]))
    assert outputs[0] == outputs[1]
    for k, out in enumerate(outputs[1]):
        assert out.split()[0] == "123"[k] and _split_failing(k)[1] in out, out


@needs_gcc
def test_a_split_c_programs_long_tables_are_rows_of_short_literals(monkeypatch, tmp_path):
    """A string literal beyond 4,095 characters is more than ISO C promises (gcc -pedantic refuses
    it, MSVC stops near 16,000): a large program's long tables and the file's text are rows of
    short literals. Rows of 16 characters here, so that every read and the places' slices cross
    them: the same numbers, the same errors and places."""
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    monkeypatch.setattr(codegen_module, "SPLIT", 100)
    failing = [_split_failing(k)[0] for k in range(len(SPLIT_ERRORS))]
    expected = _c_errors(tmp_path, failing)
    monkeypatch.setattr(codegen_module, "_C_ROW_BITS", 4)
    monkeypatch.setattr(codegen_module, "_C_ROW", 16)
    assert generate(failing[0], "c", name="f").source.count("[][17] = {") >= 3
    assert _c_errors(tmp_path, failing) == expected
    program = diffcli.parse(chain(80), "chain.expr")
    cases = [(program, {}, None)]
    (tmp_path / "chain.c").write_text(_c_driver(cases))
    subprocess.run([GCC, "-std=c99", "-O0", "-Wall", "-Wextra", "-pedantic", "-Werror", "-o", str(tmp_path / "chain"),
                    str(tmp_path / "chain.c"), "-lm"], check=True)
    _check_lines(cases, subprocess.run([str(tmp_path / "chain")], capture_output=True, text=True).stdout.splitlines())


@needs_node
def test_a_split_javascript_program_fails_where_the_unsplit_one_does(monkeypatch, tmp_path):
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    outputs = []
    for split in (codegen_module.SPLIT, 100):
        monkeypatch.setattr(codegen_module, "SPLIT", split)
        for k in range(len(SPLIT_ERRORS)):
            (tmp_path / f"bad_{split}_{k}.mjs").write_text(generate(_split_failing(k)[0], "javascript", name="f").source)
        script = "".join(f"try {{ (await import('./bad_{split}_{k}.mjs')).f(); console.log('no error'); }} "
                         f"catch (e) {{ console.log(e instanceof Error, e.name, e.message); }}\n"
                         for k in range(len(SPLIT_ERRORS)))
        (tmp_path / "run.mjs").write_text(script)
        outputs.append(subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True).stdout.splitlines())
    assert outputs[0] == outputs[1] and len(outputs[1]) == len(SPLIT_ERRORS)
    for k, out in enumerate(outputs[1]):
        assert out.startswith("true Error") and _split_failing(k)[1] in out, out


def test_a_split_python_program_fails_where_the_unsplit_one_does(monkeypatch):
    """Above SPLIT, Python's program is tables read by loops too: the same messages, places and all."""
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    messages = []
    for split in (codegen_module.SPLIT, 100):
        monkeypatch.setattr(codegen_module, "SPLIT", split)
        messages.append([])
        for k in range(len(SPLIT_ERRORS)):
            program, place = _split_failing(k)
            generated = generate(program, "python")
            assert ("_OPS" in generated.source) == (split == 100)
            with pytest.raises(ValueError) as raised:
                run_python(generated.source, generated.function)
            assert place in str(raised.value)
            messages[-1].append(str(raised.value))
    assert messages[0] == messages[1]


# places that are not the file's text as it is: a comment and a line break inside (folded), and a text
# longer than a message quotes (cut); min and max, of any number of arguments
FOLDED_ERRORS = ["y = max(x79, x3, x5) + log((x79  # a comment\n - 100))",
                 "z = min(x5, x4) + sqrt(x79 - 100 + 0.000000001 + 0.00000000002 + 0.000000003)"]


def _messages_of_split_programs(monkeypatch, tmp_path, lang: str) -> list[list[str]]:
    """Each FOLDED_ERRORS program's error, generated unsplit and split, in `lang`."""
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    programs = [diffcli.parse(chain(80) + "\n" + text, "folded.expr") for text in FOLDED_ERRORS]
    outputs = []
    for split in (codegen_module.SPLIT, 100):
        monkeypatch.setattr(codegen_module, "SPLIT", split)
        if lang == "python":
            messages = []
            for program in programs:
                generated = generate(program, "python")
                with pytest.raises(ValueError) as raised:
                    run_python(generated.source, generated.function)
                messages.append(str(raised.value))
        elif lang == "c":
            messages = _c_errors(tmp_path, programs)
        else:
            for k, program in enumerate(programs):
                (tmp_path / f"folded_{split}_{k}.mjs").write_text(generate(program, "javascript", name="f").source,
                                                                  encoding="utf-8")
            script = "".join(f"try {{ (await import('./folded_{split}_{k}.mjs')).f(); console.log('no error'); }} "
                             f"catch (e) {{ console.log(e.message); }}\n" for k in range(len(programs)))
            (tmp_path / "run.mjs").write_text(script)
            messages = subprocess.run([NODE, str(tmp_path / "run.mjs")], capture_output=True, text=True,
                                      encoding="utf-8").stdout.splitlines()
        outputs.append(messages)
    return outputs


@pytest.mark.parametrize("lang", ["python", pytest.param("c", marks=needs_gcc),
                                  pytest.param("javascript", marks=needs_node)])
def test_a_split_program_quotes_folded_and_cut_places_as_the_unsplit_one(monkeypatch, tmp_path, lang):
    unsplit, split = _messages_of_split_programs(monkeypatch, tmp_path, lang)
    assert unsplit == split and len(split) == len(FOLDED_ERRORS)
    assert "`log((x79 - 100))` (line 81, column 24)" in split[0]
    assert "`sqrt(x79 - 100 + 0.000000001 + 0.000000…` (line 81, column 19)" in split[1]
    for text, column in zip(FOLDED_ERRORS, (24, 19)):  # the engine's places
        with pytest.raises(diffcli.DiffcliError) as raised:
            diffcli.parse(chain(80) + "\n" + text, "folded.expr").grad()
        assert f"folded.expr:81:{column}:" in str(raised.value)


@pytest.mark.parametrize("text, where", [
    # a statement over two lines in a file of plain text: its places looked at one by one
    ("y = log((x79 +\n(0 - 100)))", "`log((x79 + (0 - 100)))` (line 81, column 5)"),
    # every statement on a line of its own: no operation's text holds a line break
    ("y = log(x79 - 100)", "`log(x79 - 100)` (line 81, column 5)"),
])
def test_a_split_program_of_plain_text_quotes_its_places_as_the_unsplit_one(monkeypatch, text, where):
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    program = diffcli.parse(chain(80) + "\n" + text, "plain.expr")
    messages = []
    for split in (codegen_module.SPLIT, 100):
        monkeypatch.setattr(codegen_module, "SPLIT", split)
        generated = generate(program, "python")
        with pytest.raises(ValueError) as raised:
            run_python(generated.source, generated.function)
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and where in messages[1]


def test_the_places_of_statements_on_lines_of_their_own_are_those_looked_at_one_by_one(monkeypatch):
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    monkeypatch.setattr(codegen_module, "SPLIT", 100)
    program = diffcli.parse(chain(80) + "\ny = log((x79 +\n(0 - 100)))\nz = y + 1", "plain.expr")
    writer = codegen_module._Python(program, "z", "reverse", None, None, "plain.expr")
    assert codegen_module._own_lines(program.statements[:80], program.source._starts(), program.source.text)
    assert not codegen_module._own_lines(program.statements, program.source._starts(), program.source.text)
    found = writer.place_table()
    assert len(found.folded) == 2 and found.extras == ["x79 + (0 - 100)", "log((x79 + (0 - 100)))"]
    plain = diffcli.parse(chain(80), "plain.expr")
    proved = codegen_module._Python(plain, "x79", "reverse", None, None, "plain.expr").places
    monkeypatch.setattr(codegen_module, "_own_lines", lambda *arguments: False)  # each operation looked at
    looked_at = codegen_module._Python(plain, "x79", "reverse", None, None, "plain.expr").places
    assert proved == looked_at and not proved.folded and len(proved.at) > 300


@pytest.mark.parametrize("values", [[], [0], [-3, 7], list(range(-1000, 1001, 3)), [2**40, -2**40] * 600])
@pytest.mark.parametrize("per_line", [1, 2, 500])
def test_ints_are_written_as_a_lists_text(values, per_line):
    from diffcli.renderers.codegen import _int_text

    expected = [str(values[k:k + per_line])[1:-1] for k in range(0, len(values), per_line)]
    assert _int_text(values, per_line, ",\n") == ",\n".join(expected)


@pytest.mark.parametrize("text", ["a", "a\nb", "x" * 1000, "x" * 1001, "x\n" + "y" * 1000 + "\nz",
                                  "x\n" + "y" * 1001, "y" * 1001 + "\n", "\n\n", "a\n" * 3000])
def test_the_long_line_test_from_the_lines_starts_is_the_texts(text):
    from diffcli.errors import Source
    from diffcli.renderers.codegen import _LONG_LINE, _lines_within, _short_lines

    assert _lines_within(Source(text)._starts(), len(text), _LONG_LINE) == _short_lines(text)


@pytest.mark.parametrize("text", ["a = 1\n" * 900, "a?b\n" * 900, 'say "x"\n' * 700, "a\\b\n" * 900,
                                  "x" * 5000, "x" * 900 + "\n" + "y?" * 2000])
def test_c_rows_without_escapes_are_the_rows_escaped(text):
    from diffcli.renderers.codegen import _C_ROW, _c_literal, _c_rows, _short_lines

    short = _short_lines(text) or None
    rows = [_c_literal(text[k:k + _C_ROW], short) for k in range(0, len(text), _C_ROW)]
    expected = f"static const char t[][{_C_ROW + 1}] = {{\n" + ",\n".join(rows) + "};"
    assert _c_rows("t", text) == expected == _c_rows("t", text, _short_lines(text))


def test_a_kept_writer_writes_the_same_source(split_program):
    kept: list = []
    generated = generate(split_program, "c", keep=kept)
    assert len(kept) == 1 and kept[0].places.at and generated.source == generate(split_program, "c").source


@pytest.mark.parametrize("sizes", [[1], [70000], [3, 70000], [70000, 3], [5] * 200, [5] * 130 + [70000] * 2 + [0] * 3,
                                   [0, 0], [65535, 65536, 65537]])
def test_pieces_are_the_lines_joined_and_a_large_line_is_one_as_it_is(sizes):
    from diffcli.renderers.codegen import _LARGE_LINE, _Pieces

    lines = [str(k % 10) * size for k, size in enumerate(sizes)]
    pieces = _Pieces(lines)
    assert "".join(pieces) == "\n".join(lines) == "".join(pieces)  # (made again for a second reading)
    large = [line for line in lines if len(line) >= _LARGE_LINE]
    assert [piece for piece in pieces if any(piece is line for line in large)] == large
    assert all(len(piece) < 200 * 2 for piece in pieces if len(piece) < _LARGE_LINE and max(sizes) < 10)


def test_needs_gradient_of_the_operations_alone_is_that_of_every_node():
    from diffcli.language.graph import needs_gradient

    graph = diffcli.parse("x = 1\na = 2*3 + x\nb = -(4 - 1)^2\nc = a*b + exp(2) + max(1, 2, x)", "n.expr").graph
    operations = [i for i, op in enumerate(graph.op) if op is not None]
    needs = needs_gradient(graph)
    assert needs == needs_gradient(graph, operations)
    assert not all(needs[i] for i in operations) and any(needs[i] for i in operations)


def test_a_split_program_of_min_and_max_is_still_exact(monkeypatch):
    monkeypatch.setattr(sys.modules["diffcli.renderers.codegen"], "SPLIT", 100)
    program = diffcli.parse(chain(80) + "\ny = max(x79, x3, x5) + min(x1, x79) * max(x2, x4)", "minmax.expr")
    expected = program.grad()
    generated = generate(program, "python")
    assert "_OPS" in generated.source
    value, gradient = run_python(generated.source, generated.function)
    assert value == expected.value and gradient == {n: expected.gradients[n] for n in ("x0", "x1")}


def test_a_python_program_of_several_full_size_functions_compiles_and_is_exact():
    """Above 2*SPLIT operations, at the real SPLIT: forward mode's functions of the split are each as
    large as they get at any size (a bigger program only has more of them, as the small split above
    has), and CPython compiles and runs them to the engine's bits; reverse mode and the value are
    tables read by loops, to the same bits."""
    codegen_module = sys.modules["diffcli.renderers.codegen"]
    program = diffcli.parse(chain(3000), "chain.expr")
    assert sum(op is not None for op in program.graph.op) > 2 * codegen_module.SPLIT
    expected = program.grad()
    generated = generate(program, "python", wrt="x1")
    assert generated.source.count("\ndef _forward_") >= 3
    value, derivative = run_python(generated.source, generated.function)
    assert value == expected.value and derivative == program.derivatives("x1").derivatives["x2999"]
    generated = generate(program, "python")
    assert "_forward_" not in generated.source and "_OPS" in generated.source
    value, gradient = run_python(generated.source, generated.function)
    assert value == expected.value and gradient == {n: expected.gradients[n] for n in ("x0", "x1")}
    generated = generate(program, "python", value_only=True)
    assert run_python(generated.source, generated.function) == expected.value


def test_the_command_writes_c_and_its_header(tmp_path):
    target = tmp_path / "model.c"
    done = run_diffcli("codegen", SAMPLES / "backprop_chain.expr", "--lang", "c", "-o", target)
    assert done.returncode == 0, done.stderr_text
    assert "int grad_g(double o, double a, double *value, double gradient[2], const char **error);" in (
        tmp_path / "model.h").read_text()
    assert "int grad_g(" in target.read_text()


@pytest.mark.parametrize("target", ["model.h", "/dev/null", "model", "model.C", "dir.c"])
def test_c_writes_nothing_where_its_header_path_is_not_beside_a_regular_c_file(target, tmp_path):
    """`-o model.h` wrote the source, then the header over it (exit 0); `-o /dev/null` created /dev/null.h."""
    (tmp_path / "dir.c").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    out = target if target.startswith("/") else tmp_path / target
    done = run_diffcli("codegen", SAMPLES / "backprop_chain.expr", "--lang", "c", "-o", out, "--json")
    assert done.returncode == 1 and done.stdout == b"", done.stderr_text
    error = json.loads(done.stderr_text)["error"]
    assert error["kind"] == "input" and "ending in .c" in error["message"] and "-o -" in error["help"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not os.path.exists("/dev/null.h")


def test_c_writes_neither_file_when_its_header_cannot_be_written(tmp_path):
    """`-o model.c` with model.h a directory wrote model.c, then failed on the header: both are
    checked before either is written; an existing model.c keeps its content."""
    (tmp_path / "model.h").mkdir()
    for existing in (None, "old"):
        if existing is not None:
            (tmp_path / "model.c").write_text(existing)
        done = run_diffcli("codegen", SAMPLES / "backprop_chain.expr", "--lang", "c", "-o", tmp_path / "model.c",
                           "--json")
        assert done.returncode == 1 and done.stdout == b"", done.stderr_text
        error = json.loads(done.stderr_text)["error"]
        assert error["kind"] == "io" and error["message"] == f"cannot write {tmp_path / 'model.h'}: Is a directory"
        assert sorted(p.name for p in tmp_path.iterdir()) == (["model.c"] if existing else []) + ["model.h"]
        assert existing is None or (tmp_path / "model.c").read_text() == existing
        assert list((tmp_path / "model.h").iterdir()) == []


@pytest.mark.parametrize("arguments, code", [
    (["--lang", "fortran"], 2), (["--lang", "c", "--forward"], 2), (["--lang", "c", "--of", "zz"], 1),
    (["--lang", "c", "--forward", "--wrt", "b"], 1), (["--lang", "c", "--name", "int"], 1),
])
def test_bad_options(arguments, code):
    done = run_diffcli("codegen", SAMPLES / "backprop_chain.expr", *arguments, "--json")
    assert done.returncode == code and done.stdout == b"" and "Traceback" not in done.stderr_text



def test_the_tie_count_of_min_and_max_is_printed_once_per_operation(monkeypatch):
    """n partials share one count: printing it per partial made max of 5,000 arguments take 2 minutes."""
    from diffcli import ops

    codegen_module = sys.modules["diffcli.renderers.codegen"]  # (`diffcli.renderers.codegen` is the function)
    calls = []
    printer_class = type(ops.printer("c"))
    original = printer_class.count_equal
    monkeypatch.setattr(printer_class, "count_equal", lambda self, xs, out: calls.append(1) or original(self, xs, out))
    codegen_module._templates.cache_clear()
    try:
        names = [f"x{i}" for i in range(40)]
        program = diffcli.parse("".join(f"{n} = {i % 3}\n" for i, n in enumerate(names))
                                + f"y = max({', '.join(names)})\n")
        generated = generate(program, "c")
    finally:
        codegen_module._templates.cache_clear()
    assert len(calls) == 1 and generated.source.count("double n") <= 1


# ---------------------------------------------------------------- names the target language reserves

def _reserved_program(lang: str):
    """A program whose every variable is a name `lang` reserves (where .expr allows it): the first
    half inputs, the second computed from them, the output the last."""
    from diffcli.renderers import target_names

    names = []
    for name in sorted(target_names.RESERVED[lang]):
        try:
            diffcli.parse(f"{name} = 1\ny = {name}\n")
        except diffcli.DiffcliError:
            continue  # a function of the .expr language (`sin`): no variable can be named so
        names.append(name)
    half = len(names) // 2
    lines = [f"{name} = {0.5 + k / 1000!r}" for k, name in enumerate(names[:half])]
    computed = names[half:-1]
    for k, name in enumerate(computed):
        lines.append(f"{name} = {names[k]}*{names[(k + 1) % half]} + sin({names[k]})")
    lines.append(f"{names[-1]} = {' + '.join(computed)}")
    return diffcli.parse("\n".join(lines) + "\n", "reserved.expr"), names


@pytest.fixture(params=[False, True], ids=["one function", "split"])
def split_mode(request, monkeypatch):
    """Small programs, and programs above SPLIT (which use malloc/free in C, Float64Array in JS)."""
    if request.param:
        monkeypatch.setattr(sys.modules["diffcli.renderers.codegen"], "SPLIT", 50)
    return request.param


def test_python_renames_its_keywords_and_builtins(split_mode):
    program, names = _reserved_program("python")
    assert {"__debug__", "ArithmeticError", "ValueError", "float", "math"} <= set(names)
    generated = generate(program, "python")
    value, gradient = run_python(generated.source, generated.function)
    expected = program.grad()
    assert value == expected.value and gradient == {name: expected.gradients[name] for name in program.inputs}


def test_python_keeps_its_exception_classes_from_a_variable_named_after_them():
    """`except (ArithmeticError, ValueError)` with a parameter ArithmeticError = 3.0 raised TypeError."""
    program = diffcli.parse("ArithmeticError = 3\nValueError = 1\ny = log(ArithmeticError - 3) * ValueError\n")
    generated = generate(program, "python")
    with pytest.raises(ValueError, match=re.escape("`log(ArithmeticError - 3)` (line 3,")):
        run_python(generated.source, generated.function)


def test_python_docstring_keeps_a_backslash_of_the_file_name():
    program = diffcli.parse("x = 1\ny = 2*x\n", "C:\\new\\N\\model.expr\\")
    generated = generate(program, "python")
    namespace: dict = {}
    exec(compile(generated.source, "<generated>", "exec"), namespace)
    assert "from C:\\new\\N\\model.expr\\:" in namespace["__doc__"]


@needs_gcc
@pytest.mark.parametrize("split, standard", [(False, "gnu17"), (False, "c2x"), (True, "gnu17"), (True, "c99")])
def test_c_renames_keywords_predefined_macros_and_library_names(split, standard, tmp_path, monkeypatch):
    """gnu17 predefines `linux` and `unix`, c2x makes `typeof` a keyword, a split program calls malloc."""
    if split:
        monkeypatch.setattr(sys.modules["diffcli.renderers.codegen"], "SPLIT", 50)
    program, names = _reserved_program("c")
    assert {"linux", "unix", "asm", "typeof", "malloc", "free", "NAN", "y0", "errno"} <= set(names)
    generated = generate(program, "c", name="model")
    (tmp_path / "model.c").write_text(generated.source, encoding="utf-8")
    (tmp_path / "model.h").write_text(generated.header, encoding="utf-8")
    (tmp_path / "header_alone.c").write_text('#include "model.h"\n', encoding="utf-8")
    n = len(generated.parameters)
    prototype = f"int model({'double, ' * n}double *, double *, const char **);"
    (tmp_path / "main.c").write_text(
        "#include <stdio.h>\n" + prototype + "\nint main(void)\n{\n"
        f"    double x[{n}] = {{{', '.join(repr(x) for x in call_values(program, {}))}}}, v, g[{n}];\n"
        f"    const char *e = 0;\n    int r = model({', '.join(f'x[{k}]' for k in range(n))}, &v, g, &e);\n"
        f"    printf(\"%d %.17g\", r, v);\n    for (int i = 0; i < {n}; i++) printf(\" %.17g\", g[i]);\n"
        "    printf(\"\\n\");\n    return 0;\n}\n", encoding="utf-8")
    flags = [GCC, f"-std={standard}", "-O0", "-Wall", "-Werror"]
    subprocess.run(flags + ["-c", "-o", str(tmp_path / "header_alone.o"), str(tmp_path / "header_alone.c")],
                   check=True, cwd=tmp_path)
    subprocess.run(flags + ["-o", str(tmp_path / "model"), str(tmp_path / "model.c"), str(tmp_path / "main.c"),
                            "-lm"], check=True, cwd=tmp_path)
    lines = subprocess.run([str(tmp_path / "model")], capture_output=True, text=True, check=True).stdout.splitlines()
    _check_lines([(program, {}, None)], lines)


@needs_node
def test_javascript_renames_reserved_words_and_globals(split_mode, tmp_path):
    program, names = _reserved_program("javascript")
    assert {"Float64Array", "Math", "Number", "arguments", "undefined"} <= set(names)
    _check_lines([(program, {}, None)], _js_driver(tmp_path, [(program, {}, None)]).stdout.splitlines())


@needs_node
def test_javascript_keeps_the_gradient_of_proto(tmp_path):
    """`{"__proto__": 4}` in an object literal sets the prototype: the gradient of __proto__ was lost."""
    program = diffcli.parse("__proto__ = 2\nconstructor = 3\ny = __proto__ * constructor\n")
    generated = generate(program, "javascript", name="model")
    (tmp_path / "model.mjs").write_text(generated.source, encoding="utf-8")
    (tmp_path / "main.mjs").write_text("import { model } from './model.mjs';\nconst r = model();\n"
                                       "console.log(JSON.stringify([Object.keys(r.gradient), r.gradient.__proto__,"
                                       " Object.getPrototypeOf(r.gradient) === Object.prototype]));\n")
    done = subprocess.run([NODE, str(tmp_path / "main.mjs")], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [["__proto__", "constructor"], 3.0, True]


@needs_gcc
def test_the_c_list_has_every_macro_of_the_included_headers(tmp_path):
    """Every macro gcc defines with <math.h>, <stddef.h>, <stdlib.h>, <stdio.h> and <string.h> (a large
    program's file includes the last two) and <complex.h> (a caller's may), in the default, strict and
    _GNU_SOURCE modes, outside the `_` namespace (which the namer never gives): a macro cannot be shadowed."""
    from diffcli.renderers import target_names

    (tmp_path / "headers.c").write_text("".join(f"#include <{h}.h>\n" for h in
                                                ("math", "stddef", "stdlib", "stdio", "string", "complex")))
    missing = set()
    for mode in (["-std=gnu17"], ["-std=c99"], ["-std=c2x"], ["-D_GNU_SOURCE"]):
        done = subprocess.run([GCC, *mode, "-dM", "-E", str(tmp_path / "headers.c")], capture_output=True,
                              text=True, check=True)
        for line in done.stdout.splitlines():
            name = re.match(r"#define (\w+)", line).group(1)
            if not name.startswith("_") and name not in target_names.C:
                missing.add(name)
    assert not missing, sorted(missing)


@needs_node
def test_the_javascript_list_has_every_global_of_ecmascript():
    from diffcli.renderers import target_names

    done = subprocess.run([NODE, "-e", "console.log(JSON.stringify(require('vm').runInNewContext("
                           "'Object.getOwnPropertyNames(globalThis)')))"], capture_output=True, text=True, check=True)
    missing = {name for name in json.loads(done.stdout) if name.isidentifier()} - target_names.JAVASCRIPT
    assert not missing, sorted(missing)


def test_the_places_of_a_long_statement_read_only_the_heads_of_its_spans(monkeypatch):
    """Every operation of one long statement has a span of most of it (n nested calls, or a sum of
    n terms): each place was searched and cut from its whole span, n² characters (a 40,000-term sum
    took 20 s). Now a long span is read to its head only, with the same excerpt as before."""
    from diffcli.errors import Source
    from diffcli.formatting import EXCERPT_WIDTH, excerpt
    from diffcli.renderers import codegen

    text = ("x = 0.5\nθ = 0.25\nf = " + "sin(" * 200 + "x*θ  +  (x # ü\n + θ)" + ")" * 200 + " + "
            + " + ".join(["x*θ"] * 200) + "\n")
    program = diffcli.parse(text)
    source = program.source
    for expr in program.graph.expr:   # the excerpt from the head alone is excerpt()'s, long or short
        if expr is not None:
            assert codegen._head_excerpt(source, expr.start, expr.end, EXCERPT_WIDTH) == excerpt(source, expr)
    spans = []
    snippet = Source.snippet
    monkeypatch.setattr(Source, "snippet", lambda self, a, b: spans.append(b - a) or snippet(self, a, b))
    generated = codegen.generate(program, "c")
    assert sum(spans) <= 4 * len(text) and "`sin(sin(sin(" in "".join(generated.source)


NAMED_CONSTANT = "x0 = ( 0.5 )\nx1 = 1.25\nc = (2)\ny = x0*x1 + c*x1^c\n"


@pytest.mark.parametrize("split", [False, True], ids=["straight", "split"])
def test_a_named_constant_that_is_no_input_is_its_number(split, monkeypatch, tmp_path):
    """`x0 = ( 0.5 )` names a constant, not an input: the generated code used `x0` and never set it
    (Python: NameError; a large program's forward mode: an internal KeyError)."""
    if split:
        monkeypatch.setattr(sys.modules["diffcli.renderers.codegen"], "SPLIT", 2)
    program = diffcli.parse(NAMED_CONSTANT, "named.expr")
    assert list(program.inputs) == ["x1"]
    expected = program.grad()
    generated = generate(program, "python")
    value, gradient = run_python(generated.source, generated.function)
    assert value == expected.value and gradient == {"x1": expected.gradients["x1"]}
    forward = generate(program, "python", wrt="x1")
    assert run_python(forward.source, forward.function)[1] == expected.gradients["x1"]
    cases = [(program, {}, None)]
    if GCC is not None:
        (tmp_path / "named.c").write_text(_c_driver(cases))
        subprocess.run([GCC, "-std=c99", "-O0", "-o", str(tmp_path / "named"), str(tmp_path / "named.c"), "-lm"],
                       check=True)
        _check_lines(cases, subprocess.run([str(tmp_path / "named")], capture_output=True,
                                           text=True).stdout.splitlines())
    if NODE is not None:
        _check_lines(cases, _js_driver(tmp_path, cases).stdout.splitlines())


def _engine_outcome(program, values):
    """(C's return code, the line and column of the place, value, gradient) of the engine's answer."""
    try:
        result = program.grad(values)
    except diffcli.DiffcliError as error:
        message = error.message
        code = 3 if "the gradient overflows" in message else 2 if "derivative" in message else 1
        return code, program.source.line_col(error.span[0]), None, None
    return 0, None, result.value, result.gradients


@needs_gcc
@pytest.mark.parametrize("flags", FLAG_MODES)
def test_random_programs_at_the_edges_give_the_engines_answer_or_error_in_c(flags, tmp_path):
    """Programs of edge values (overflow and domain errors forward and backward, and none): the
    generated C, its fast code tested by the flags or by the sum, answers as `grad` does: the same
    numbers within 1e-12, or the same code at the same place."""
    from fuzzing import _random_program

    rng = random.Random(23)
    cases, outcomes = [], []
    while len(cases) < 150:
        program = diffcli.parse(_random_program(rng), "edge.expr")
        if program.graph.inputs and all(v is not None for v in program.inputs.values()):
            cases.append(program)
            outcomes.append(_engine_outcome(program, {}))
    parts, calls = ["#include <stdio.h>"], []
    for k, program in enumerate(cases):
        generated = generate(program, "c", name=f"case_{k}")
        parts.append(generated.source)
        args = "".join(f"{x!r}, " for x in call_values(program, {}))
        n = len(generated.parameters)
        calls.append(f'  {{ double v, g[{max(n, 1)}]; const char *e = "-"; int r = case_{k}({args}&v, g, &e);\n'
                     f'    printf("%d %.17g", r, v); for (int i = 0; i < {n}; i++) printf(" %.17g", g[i]);'
                     f' printf("|%s\\n", e); }}')
    (tmp_path / "edge.c").write_text("\n".join(parts) + "\nint main(void)\n{\n" + "\n".join(calls) + "\n  return 0;\n}\n",
                                     encoding="utf-8")
    subprocess.run([GCC, "-std=c99", "-O2", flags, "-o", str(tmp_path / "edge"), str(tmp_path / "edge.c"), "-lm"],
                   check=True)
    lines = subprocess.run([str(tmp_path / "edge")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(lines) == len(cases)
    failing = 0
    for program, (code, place, value, gradients), line in zip(cases, outcomes, lines):
        numbers, where = line.split("|", 1)
        got = numbers.split()
        assert int(got[0]) == code, (program.source.text, line, code, place)
        if code:
            failing += 1
            assert f"(line {place[0]}, column {place[1]})" in where, (program.source.text, where, place)
            continue
        assert close(float(got[1]), value), (program.source.text, got[1], value)
        for name, text in zip(list(program.inputs), got[2:]):
            assert close(float(text), gradients[name]), (program.source.text, name, text, gradients[name])
    assert 10 < failing < len(cases) - 10  # both kinds of answer, many of each


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
