"""Hand-edited variants of the generated C of samples/two_layer_network.expr, timed side by side
with the generated code, SymPy's `codegen(cse=True)` C and the three `tanh` calls alone, in one
binary, each round's order starting one function later (issue 23, part 1: which finiteness test of
the gradient is cheapest). Prints only: RESULTS.md is not touched.

    python benchmarks/c_variants.py [--rounds 63] [--calls 200000] [--cflags '-O2'] [--keep DIR]

Each variant is this checkout's generated function with its last test replaced (the forward tests
and the checked version it hands over to are the generated ones):
- `generated`: as written by `codegen --lang c` (the exception flags read once; the 8 gradient values
  that can overflow added up only where one is raised);
- `summed`: the same with DIFFCLI_NO_FLAGS (the sum of the 8 values always; the other variants are
  of this one);
- `no test`: no test of the gradient at all (a reference, not valid code: it misses an overflow);
- `fetestexcept`: the gradient tested only where `fetestexcept(FE_INVALID | FE_DIVBYZERO |
  FE_OVERFLOW)` says a flag is up after the stores (finite operands give inf or NaN only by
  raising one; the sum of the gradient read back from `gradient[]`, so that the caller's stale flags
  cost the old test, not the checked version);
- `stmxcsr`: the same with the SSE flags read by `stmxcsr` (inline asm, a memory clobber: after the
  stores);
- `bound`: one bound proven from the forward tests instead of the gradient's sum (this program
  only): |d_t37| · Σ_k |v_k| (1 + |x1| + |x2| + |w_k1| + |w_k2|) < 2^1000, the sum computed from the
  inputs before the `tanh` calls;
- `bound of d_t`: the same, after the calls, of the three adjoints that feed the 8 values:
  Σ_k |d_t_k| (|x1| + |x2| + |w_k1| + |w_k2|) < 2^1000 (a d_t_k not finite gives inf or NaN there).
Every variant is checked to give the generated code's value and gradient bit for bit at the sample's
inputs, and its result code where the gradient overflows (x1 = 1e308, w11 = 1e-308, v1 = 100: 3,
and 0 from `no test`, which misses it).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (this folder's: the peers' environment, SymPy's C, the sample as Python)

MASK = "(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW)"
OVERFLOW = {"x1": 1e308, "w11": 1e-308, "v1": 100.0}


def variants(source: str) -> dict:
    """name -> the function's text (named f_NAME), from the generated f_diffcli."""
    generated = re.search(r"^int f_diffcli\(.*?^}\n", source, re.S | re.M).group(0)
    # the variants are of the summed test (the code without the flags: DIFFCLI_NO_FLAGS's branch)
    fast = re.sub(r"#if DIFFCLI_FLAGS\n.*?#else\n(.*?)#endif\n", r"\1", generated, flags=re.S)
    parameters = re.search(r"f_diffcli\((.*?)\)\n", fast).group(1).split(", ")
    names = [p.split()[-1].lstrip("*").split("[")[0] for p in parameters]
    last = re.search(r"    (finite_\d+) = \1 \+ (\(.*\));\n", fast)
    total, tree = last.group(1), last.group(2)
    test = re.search(r"    if \(!isfinite\(" + total + r"\)\).*\n", fast).group(0)
    handover = f"{{ volatile int code = f_diffcli_checked({', '.join(names)}); return code; }}"
    stored = {m.group(2): m.group(1) for m in re.finditer(r"    (gradient\[\d+\]) = (\w+);", fast)}
    back = re.sub(r"\b(d_\w+)\b", lambda m: stored[m.group(1)], tree)  # the same sum, read back
    untested = fast.replace(last.group(0), "")
    forward = f"    if (!isfinite({total})) {handover}\n"
    early = ("    const double bound_x = fabs(x1) + fabs(x2);\n"
             "    const double bound_p = " + " + ".join(
                 f"fabs(v{k}) * (1.0 + (bound_x + (fabs(w{k}1) + fabs(w{k}2))))" for k in (1, 2, 3)) + ";\n")
    bound = untested.replace("    const double h1 = tanh(", early + "    const double h1 = tanh(", 1)
    late = ("    const double bound_x = fabs(x1) + fabs(x2);\n" + "".join(
        f"    const double bound_{k} = bound_x + (fabs(w{k}1) + fabs(w{k}2));\n" for k in (1, 2, 3)))
    late_bound = untested.replace("    const double h1 = tanh(", late + "    const double h1 = tanh(", 1)
    late_sum = " + ".join(f"fabs(d_t{t}) * bound_{k}" for k, t in ((1, 19), (2, 24), (3, 29)))
    csr = '    { unsigned csr; __asm__ __volatile__("stmxcsr %0" : "=m"(csr) : : "memory");\n'
    out = {
        "generated": generated,
        "summed": fast,
        "no test": untested,
        "fetestexcept": untested.replace(
            test, forward + f"    if (fetestexcept({MASK}) && !isfinite({back})) {handover}\n"),
        "stmxcsr": untested.replace(
            test, forward + csr + f"    if ((csr & 0xD) && !isfinite({back})) {handover} }}\n"),
        "bound": bound.replace(
            test, f"    if (!isfinite({total}) || !(fabs(d_t37) * bound_p < 0x1p1000)) {handover}\n"),
        "bound of d_t": late_bound.replace(
            test, f"    if (!isfinite({total}) || !({late_sum} < 0x1p1000)) {handover}\n"),
    }
    assert "bound_p" in out["bound"] and "d_t19" in late_sum and "bound_1" in out["bound of d_t"] and all(
        v != fast for k, v in out.items() if k != "summed") and "DIFFCLI_RAISED()" in generated
    return {k: v.replace("int f_diffcli(", f"int f_{ident(k)}(") for k, v in out.items()}


# the cost of one read of the flags alone, back to back in a loop (x86: `stmxcsr`, the x87 `fnstsw`
# that fetestexcept also does, and a plain register move for the loop's own cost)
READS_C = r"""
#include <stdio.h>
#include <time.h>
static double now(void)
{
    struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}
int main(void)
{
    long n = 20000000, k; unsigned acc = 0; int r;
    for (r = 0; r < 3; r++) {
        double t0 = now(), t1, t2, t3;
        for (k = 0; k < n; k++) { unsigned csr; __asm__ __volatile__("stmxcsr %0" : "=m"(csr) : : "memory"); acc += csr & 0xD; }
        t1 = now();
        for (k = 0; k < n; k++) { unsigned short sw; __asm__ __volatile__("fnstsw %0" : "=am"(sw) : : "memory"); acc += sw & 0xD; }
        t2 = now();
        for (k = 0; k < n; k++) { unsigned x; __asm__ __volatile__("movl %1, %0" : "=r"(x) : "r"((unsigned)k) : "memory"); acc += x & 0xD; }
        t3 = now();
        printf("stmxcsr %.2f ns, fnstsw %.2f ns, a move %.2f ns\n", (t1 - t0) / n * 1e9, (t2 - t1) / n * 1e9, (t3 - t2) / n * 1e9);
    }
    return acc == 1;
}
"""


def ident(name: str) -> str:
    return name.replace(" ", "_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=63)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "diffcli-peers")
    parser.add_argument("--keep", type=Path, help="a folder to keep the program in")
    parser.add_argument("--cflags", default="-O2", help="the compiler's options (default -O2)")
    options = parser.parse_args()
    sys.path.insert(0, str(peers.ROOT))
    import diffcli
    from diffcli.renderers.codegen import generate

    text, inputs, output = peers.python_program(peers.NETWORK)
    program = diffcli.load(peers.NETWORK)
    theirs = json.loads(subprocess.run([peers.peers_python(options.peers), "-c", peers.SYMPY_C],
                                       input=json.dumps([text, inputs, output]), capture_output=True,
                                       text=True, check=True).stdout)
    ours = generate(program, "c", name="f_diffcli").source
    table = variants(ours)
    n = len(inputs)
    args = ", ".join(f"in[{k}]" for k in range(n))
    values = ", ".join(repr(program.inputs[name]) for name in inputs)
    bad = ", ".join(repr(OVERFLOW.get(name, program.inputs[name])) for name in inputs)
    timed = [("sympy", "f_sympy", ""), ("floor", "f_floor", "")] + [(k, f"f_{ident(k)}", ", 0") for k in table]
    bad_args = ", ".join(f"bad[{j}]" for j in range(n))
    checks = "".join(
        f"    {{ double v2, g2[{n}];\n"
        f"      if (f_{ident(k)}({bad_args}, &v2, g2, 0) != {'0' if k == 'no test' else 'expected'}) return 11;\n"
        f"      if (f_{ident(k)}({args}, &v2, g2, 0) != 0 || v2 != v0) return 11;\n"
        f"      for (j = 0; j < {n}; j++) if (g2[j] != g0[j]) return 10; }}\n" for k in table)
    cases = "".join(f"            case {c}: TIME({f}({args}, &value, gradient{extra})); times[{c}] = took; break;\n"
                    for c, (_, f, extra) in enumerate(timed))
    main_c = f"""
#include <stdio.h>
#include <time.h>
static double now(void)
{{
    struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}}
static volatile double source[{n}] = {{{values}}};
static double total;
#define TIME(call) do {{ double in[{n}], value, gradient[{n}]; long k; int j; double t0 = now(); \\
    for (k = 0; k < {options.calls}L; k++) {{ for (j = 0; j < {n}; j++) in[j] = source[j]; call; total += gradient[0] + value; }} \\
    took = (now() - t0) / {options.calls}L * 1e9; }} while (0)
int main(void)
{{
    double in[{n}], bad[{n}] = {{{bad}}}, v0, g0[{n}], gb[{n}]; int j, r, expected;
    for (j = 0; j < {n}; j++) in[j] = source[j];
    if (f_diffcli({args}, &v0, g0, 0)) return 12;
    expected = f_diffcli({bad_args}, &v0, gb, 0);
    if (expected != 3 || f_diffcli({args}, &v0, g0, 0)) return 13;
{checks}    feclearexcept(FE_ALL_EXCEPT);  /* the checks' overflows raised flags: timed with none raised */
    printf("{' '.join(ident(k) for k, _, _ in timed)}\\n");
    for (r = 0; r < {options.rounds}; r++) {{  /* each round starts one function later: no fixed order */
        double took, times[{len(timed)}]; int s;
        for (s = 0; s < {len(timed)}; s++) {{
            switch ((s + r) % {len(timed)}) {{
{cases}            }}
        }}
        for (s = 0; s < {len(timed)}; s++) printf("%.4f ", times[s]);
        printf("\\n");
    }}
    return total == 12345.0;
}}
"""
    with tempfile.TemporaryDirectory() as scratch:
        folder = options.keep or Path(scratch)
        folder.mkdir(exist_ok=True)
        head, undefines = ours.split("\n#undef DIFFCLI_FAIL", 1)  # (the copies where the file's macros hold)
        (folder / "variants.c").write_text("#include <fenv.h>\n" + head + "\n" + "".join(table.values())
                                           + "#undef DIFFCLI_FAIL" + undefines + theirs["sympy"] + theirs["floor"] + main_c)
        compiler = shutil.which("gcc") or shutil.which("cc")
        subprocess.run([compiler, *options.cflags.split(), "-o", str(folder / "variants"), str(folder / "variants.c"),
                        "-lm"], check=True)
        (folder / "reads.c").write_text(READS_C)
        subprocess.run([compiler, "-O2", "-o", str(folder / "reads"), str(folder / "reads.c")], check=True)
        reads = subprocess.run([str(folder / "reads")], capture_output=True, text=True, check=True).stdout
        done = subprocess.run([str(folder / "variants")], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"a variant differs from the generated code (exit {done.returncode})")
        lines = done.stdout.split("\n")
    names = lines[0].split()
    rows = [[float(x) for x in line.split()] for line in lines[1:] if line.strip()]
    column = {name: [row[k] for row in rows] for k, name in enumerate(names)}
    print(f"gcc {options.cflags}, {options.rounds} rounds of {options.calls} calls, every function in turn, "
          f"each round starting one later; load average {peers.load()}")
    for name in names:
        ns = column[name]
        line = f"{name:14s} {statistics.median(ns):6.2f} ns ({min(ns):.2f}–{max(ns):.2f})"
        for against in ("sympy", "floor", "generated"):
            r = peers.round_ratios(ns, column[against])
            line += f"  / {against} {r['median']:.3f}× ({r['low']:.2f}–{r['high']:.2f})"
        print(line)
    print("one read of the flags, back to back:", "; ".join(reads.strip().splitlines()))


if __name__ == "__main__":
    main()
