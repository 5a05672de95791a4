"""`diffcli explain`: the chain-rule derivation of a gradient, step by step, as written on paper.

For d(out)/d(wrt) it gives
  1. the statements on the paths from wrt to out, in order, with their values (and the values of the
     other names they use);
  2. each statement's local partial derivatives, symbolic in the file's own names, then as numbers;
  3. the reverse accumulation from out back to wrt, one line per variable, fan-out summed;
  4. the total derivative, symbolic in the named intermediates: the same accumulation done with the
     symbolic local partials (the sum over paths of their products), then simplified.

The numbers come from the engine (ops.py's partials, the reverse pass), so they are `grad`'s numbers;
SymPy only does the symbolic forms. SymPy is imported by this module alone, and only this command
imports it. Expressions are translated without recursion, and derivations longer than a person can
read are refused (MAX_STATEMENTS, MAX_OPERATIONS), which also bounds the depth SymPy recurses to.
"""

from __future__ import annotations

import heapq
import math
import re
import signal
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.printer import Printer
from sympy.printing.str import StrPrinter

from . import engine, formatting, ops
from .errors import DiffcliError, shown
from .program import Program
from .syntax import Binary, Call, Name, Number, Paren, Unary

MAX_STATEMENTS = 40    # statements on the paths from wrt to out
MAX_OPERATIONS = 400   # operations in those statements
MAX_DEPTH = 30         # operations nested in one statement (SymPy recurses on it)
MAX_TOTAL_SIZE = 300   # nodes in the symbolic total derivative, past which it is not worth reading
SYMBOLIC_SECONDS = 5   # SymPy's share of a derivation; past it, the numbers are shown alone
MAX_EXACT_BITS = 128   # a constant whose exact value needs longer integers is shown as its double


# ---------------------------------------------------------------- the functions, for SymPy

SYMPY = ops.backend("sympy")
CONSTANTS = {"pi": sp.pi}


def symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def fold(expr, leaf, combine):
    """Post-order evaluation of an AST expression without recursion: leaf(node) for numbers and
    names, combine(node, [results of its children]) for the rest (parentheses included)."""
    results: list = []
    stack = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, (Number, Name)):
            results.append(leaf(node))
        elif not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children()))
        else:
            n = len(node.children())
            args = results[-n:]
            del results[-n:]
            results.append(combine(node, args))
    return results[0]


def to_sympy(expr) -> sp.Expr:
    """An AST expression as a SymPy expression in the file's names.

    A part with no variable in it is a constant: kept exact where that is small and plain
    (`2pi`, `1/3`), otherwise the double the engine computes for it (`softplus(1)`, `sin(pi)`,
    `2^-2^20`), so that SymPy neither builds a number of a million digits nor sees an exact value
    (sin(pi) = 0) that the numbers beside it do not have."""
    return fold(expr, _sympy_leaf, _sympy_node)[0]


def _sympy_leaf(node):
    """(the SymPy form, the value if it is a constant, else None)."""
    if isinstance(node, Number):
        # a Float, not an exact Rational: 1.01^n would grow huge fractions and slow SymPy down
        value = node.value
        exact = value == int(value) and abs(value) < 2**53
        return (sp.Integer(int(value)) if exact else sp.Float(value)), value
    if node.id in CONSTANTS:
        return CONSTANTS[node.id], ops.CONSTANTS[node.id]
    return symbol(node.id), None


_EXACT = {"add", "sub", "mul", "div", "neg", "pos"}


def _sympy_node(node, args):
    if isinstance(node, Paren):
        return args[0]
    op = ops.FUNCTIONS[node.func] if isinstance(node, Call) else ops.OPERATORS[node.op]
    forms = [form for form, _ in args]
    constants = [value for _, value in args]
    if None not in constants:
        value = op.value(*constants)
        exponent = forms[-1]
        plain = isinstance(node, (Binary, Unary)) and (
            node.op in _EXACT or node.op == "pow" and exponent.is_Integer and abs(exponent) <= 64)
        if plain and all(form.is_Rational or form is sp.pi or not form.free_symbols for form in forms):
            exact = SYMPY.value(op, *forms)
            if all(max(r.p.bit_length(), r.q.bit_length()) <= MAX_EXACT_BITS
                   for r in exact.atoms(sp.Rational)):
                return exact, value
        return sp.Float(value), value
    if isinstance(node, Call) and node.func in ("min", "max") and constants.count(None) > 2:
        # SymPy compares every pair of arguments (48 s for 50): an opaque function instead, whose
        # derivative has no form that the numbers can check, so only the numbers are shown
        return sp.Function(node.func)(*forms), None
    return SYMPY.value(op, *forms), None


_FAMILY = {"add": "add", "sub": "add", "mul": "mul", "div": "mul"}


def _size(expr) -> tuple[int, int]:
    """The operations in an expression, and how deeply they nest as SymPy sees them: a run of sums
    (a + b - c + …) or of products is one level, as SymPy flattens it."""
    count, deepest, stack = 0, 0, [(expr, 0, None)]
    while stack:
        node, depth, parent = stack.pop()
        family = _FAMILY.get(node.op) if isinstance(node, Binary) else None
        if isinstance(node, (Binary, Unary, Call)):
            count += 1
            depth += family is None or family != parent
            deepest = max(deepest, depth)
        stack.extend((child, depth, family) for child in node.children())
    return count, deepest


# ---------------------------------------------------------------- the derivation

@dataclass
class Partial:
    wrt: str
    symbolic: sp.Expr | None  # None where no symbolic form holds at these values
    value: float | None       # None where the partial does not exist (sqrt at 0)


@dataclass
class Derivation:
    output: str
    wrt: str | None                   # None when the output depends on no input
    filename: str
    inputs: dict[str, float]
    values: dict[str, float]
    gradients: dict[str, float]       # d(output)/d(name), from the reverse pass
    given: list[str]                  # names used on the paths but not computed on them, file order
    statements: list[str]             # names computed on the paths, in evaluation order
    sources: dict[str, str]           # name -> its definition's source text
    definitions: dict                 # name -> its definition's AST
    partials: dict[str, list[Partial]] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)  # name -> statements using it
    total: sp.Expr | None = sp.Integer(0)  # None when there is none to show: `why` says why
    why: str = ""


def derive(program: Program, values=None, wrt: str | None = None, of: str | None = None,
           filename: str = "") -> Derivation:
    run = program.run(values, of)
    graph = program.graph
    out = run.output
    if wrt is not None:
        program.check_name(wrt, "--wrt")
    position = graph.names  # name -> node; node order is evaluation order
    uses = {name: _names_used(stmt.expr, position) for name, stmt in graph.definitions.items()
            if name not in graph.inputs}

    feeds_out = {out}
    for name in sorted(position, key=position.get, reverse=True):
        if name in feeds_out:
            feeds_out.update(uses.get(name, ()))
    if wrt is None:  # default: the first input, in file order, that the output depends on
        wrt = next((name for name in graph.inputs if name in feeds_out), None)
    on_path = set()
    if wrt is not None and wrt in feeds_out:
        depends = {wrt}
        for name in sorted(position, key=position.get):
            if any(u in depends for u in uses.get(name, ())):
                depends.add(name)
        on_path = depends & feeds_out
    # wrt's own statement is not on its paths: wrt is given, like an input
    statements = _in_file_order([name for name in on_path if name in uses and name != wrt], uses,
                                graph.definitions)
    _refuse_if_too_long(graph, statements, out, wrt)

    given_set = {u for name in statements for u in uses[name]} - set(statements)
    d = Derivation(out, wrt, filename, {k: run.inputs[k] for k in graph.inputs},
                   {k: run.values[i] for k, i in position.items()},
                   {k: run.adjoints[i] for k, i in position.items()},
                   [n for n in position if n in given_set], statements,
                   {name: program.definition(name) for name in statements},
                   {name: graph.definitions[name].expr for name in statements})
    named, needs = graph.names.values(), engine.needs_gradient(graph)
    for name in statements:
        # the engine's reverse pass from this statement, stopped at the names it uses
        numbers = engine.reverse(graph, run.values, position[name], needs, stop=named, strict=False)
        d.partials[name] = [Partial(u, None, _defined(numbers[position[u]])) for u in uses[name]]
        for u in uses[name]:
            if u in on_path:
                d.consumers.setdefault(u, []).append(name)
    if wrt is None:
        return d
    try:  # the numbers are all there; SymPy adds the symbolic forms if it can in time
        with _time_limit(SYMBOLIC_SECONDS):
            _symbolic(d)
    except _OutOfTime:
        for partial in (p for ps in d.partials.values() for p in ps):
            partial.symbolic = None
        d.total, d.why = None, f"SymPy took over {SYMBOLIC_SECONDS} s on the symbolic forms"
    return d


def _symbolic(d: Derivation) -> None:
    """The symbolic local partials and total of a derivation whose numbers are known; each kept
    only where, at the values of the derivation, it equals the number beside it."""
    rhs = {name: to_sympy(d.definitions[name]) for name in d.statements}
    at = {symbol(name): value for name, value in d.values.items()}
    for name in d.statements:
        for partial in d.partials[name]:
            form = _local_symbolic(rhs[name], name, partial.wrt)
            partial.symbolic = form if _agrees(form, partial.value, at) else None
    d.total, d.why = _total(d)
    if d.total is not None and not _agrees(d.total, d.gradients[d.wrt], at):
        d.total, d.why = None, "SymPy's form does not hold at these values"


class _OutOfTime(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Raise _OutOfTime in the block after `seconds` (where the platform has SIGALRM and this is the
    main thread; elsewhere the size limits alone bound SymPy's work)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _agrees(form: sp.Expr, value: float | None, at: dict) -> bool:
    """Whether `form`, at the values `at`, is the number `value` (to 1e-7, relative), or like it
    has no finite value there (value None: 1/(2·s) at s = 0)."""
    found = evaluate(form, at)
    if value is None or found is None:
        return value is None and found is None
    return not form.has(sp.nan) and math.isclose(found, value, rel_tol=1e-7, abs_tol=1e-300)


def evaluate(form: sp.Expr, at: dict) -> float | None:
    """`form` at the values `at` (symbol -> double), to 30 digits; None if it is not a finite real
    number there. The named functions (sigmoid, relu, softplus) take the engine's values."""
    try:
        numeric = form.xreplace({s: sp.Float(v, 30) for s, v in at.items()})
        numeric = numeric.replace(lambda e: type(e).__name__ in SYMPY.named and e.args
                                  and all(a.is_Number for a in e.args),
                                  lambda e: sp.Float(ops.OPS[type(e).__name__].value(
                                      *[float(a) for a in e.args]), 30))
        found = complex(numeric.evalf(30))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return None
    if found.imag != 0 or not math.isfinite(found.real):
        return None
    return found.real


def _in_file_order(names: list[str], uses, definitions) -> list[str]:
    """A dependency order that keeps the file's order where the dependencies allow (Kahn's algorithm,
    always taking the earliest ready statement), as a person reads the program."""
    chosen = set(names)
    waiting = {name: {u for u in uses[name] if u in chosen} for name in names}
    users: dict[str, list[str]] = {}
    for name, needs in waiting.items():
        for u in needs:
            users.setdefault(u, []).append(name)
    ready = [(definitions[name].start, name) for name, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    ordered = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(name)
        for user in users.get(name, ()):
            waiting[user].discard(name)
            if not waiting[user]:
                heapq.heappush(ready, (definitions[user].start, user))
    return ordered


def _names_used(expr, position) -> list[str]:
    """Variables an expression uses, each once, in order of first use."""
    found: dict[str, None] = {}
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name) and node.id in position:
            found.setdefault(node.id)
        stack.extend(reversed(node.children()))
    return list(found)


def _refuse_if_too_long(graph, statements, out, wrt):
    sizes = {name: _size(graph.definitions[name].expr) for name in statements}
    for name, (_, depth) in sizes.items():
        if depth > MAX_DEPTH:
            stmt = graph.definitions[name]
            raise DiffcliError(
                "input", f"`{name}` nests {depth} operations deep, too deep to explain "
                f"(explain shows up to {MAX_DEPTH})", (stmt.start, stmt.name_end), source=graph.source,
                help="give parts of it names of their own (`u = …`), and narrow with --of and --wrt",
            )
    operations = sum(count for count, _ in sizes.values())
    if len(statements) <= MAX_STATEMENTS and operations <= MAX_OPERATIONS:
        return
    middle = statements[len(statements) // 2]
    raise DiffcliError(
        "input",
        f"the derivation of d{out}/d{wrt} runs through {len(statements)} statements and "
        f"{operations} operations, too many to read (explain shows up to {MAX_STATEMENTS} statements "
        f"and {MAX_OPERATIONS} operations)",
        help=f"narrow it with --of and --wrt to a part of the program, for example "
             f"--of {middle} (d{middle}/d{wrt}) or --wrt {middle} (d{out}/d{middle})",
    )


def _local_symbolic(rhs: sp.Expr, name: str, u: str) -> sp.Expr:
    partial = sp.diff(rhs, symbol(u))
    if isinstance(rhs, sp.Function) or (rhs.is_Pow and not rhs.exp.is_Integer):
        # y = tanh(x): write dy/dx as 1 - y^2 rather than 1 - tanh(x)^2
        partial = partial.subs(rhs, symbol(name))
    return _tidy(partial)


def _defined(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _total(d: Derivation) -> tuple[sp.Expr | None, str]:
    """d(out)/d(wrt) symbolically: reverse accumulation of the symbolic local partials; or None,
    and why."""
    if d.wrt == d.output:
        return sp.Integer(1), ""
    adjoint = {d.output: sp.Integer(1)}
    for name in reversed(d.statements):
        if name not in adjoint:
            continue
        for partial in d.partials[name]:
            if partial.wrt in d.consumers:
                if partial.symbolic is None:
                    return None, (f"∂{name}/∂{partial.wrt} has no symbolic form that holds at "
                                  "these values")
                adjoint[partial.wrt] = adjoint.get(partial.wrt, 0) + adjoint[name] * partial.symbolic
    total = simplest(adjoint.get(d.wrt, sp.Integer(0)))
    if total is None:
        return None, (f"the symbolic form is too long to read (over {MAX_TOTAL_SIZE} terms and "
                      "factors); narrow it with --of and --wrt")
    return total, ""


def tree_size(expr: sp.Expr) -> int:
    """Nodes in an expression as printed (a tree), counted over its shared parts without recursion."""
    sizes: dict[int, int] = {}
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        if id(e) in sizes:
            continue
        if done:
            sizes[id(e)] = 1 + sum(sizes[id(a)] for a in e.args)
        else:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if id(a) not in sizes)
    return sizes[id(expr)]


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Floats that are whole, up to rounding, as integers: x^1.0000000000000002 (from (x^1.01)^(1/1.01))
    prints as x. The expression is for reading; the numbers come from the engine."""
    # (a small number is never "whole" zero: 1e-13 stays 1e-13)
    whole = {f: sp.Integer(round(f)) for f in expr.atoms(sp.Float)
             if 0 < abs(round(f)) <= 10**6 and abs(f - round(f)) <= 1e-12 * abs(float(f))}
    return expr.xreplace(whole) if whole else expr


def simplest(expr: sp.Expr) -> sp.Expr | None:
    """The shorter of the expanded form and the product with common factors pulled out (the expanded
    one on a tie): -252 - 180·d for the chain, 2·k·yhat·(1 - yhat)·(yhat - y) for a neuron.
    None when even the shorter is too long to read. Expanding is skipped where it would make more
    terms than that (a product of 40 sums has 2^40): SymPy would take hours and gigabytes."""
    if tree_size(expr) > MAX_TOTAL_SIZE:
        return None
    candidates = [_tidy(sp.factor_terms(expr))]
    if expanded_terms(expr) <= MAX_TOTAL_SIZE:
        expanded = sp.expand(expr, multinomial=False, power_base=False, power_exp=False, log=False)
        candidates.insert(0, _tidy(expanded))
    best = min(candidates, key=tree_size)
    return best if tree_size(best) <= MAX_TOTAL_SIZE else None


def expanded_terms(expr: sp.Expr) -> int:
    """An upper bound on the terms that expanding products (not powers) makes, here or inside any
    function's argument, counted without expanding and without recursion (capped past the limit)."""
    cap = MAX_TOTAL_SIZE + 1
    terms: dict[int, int] = {}
    worst = 1
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        if id(e) in terms:
            continue
        if not done:
            stack.append((e, True))
            stack.extend((a, False) for a in e.args if id(a) not in terms)
            continue
        parts = [terms[id(a)] for a in e.args]
        if e.is_Add:
            count = min(cap, sum(parts))
        elif e.is_Mul:
            count = 1
            for part in parts:
                count = min(cap, count * part)
        else:
            count = 1
        terms[id(e)] = count
        worst = max(worst, count)
    return worst


# ---------------------------------------------------------------- printing

def _is_terminating(q: int) -> bool:
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def _terms_as_written(printer, expr, order=None):
    """Terms of a sum as a person orders them: the constant first (14 + 10·d, 1 - y^2,
    -252 - 180·d), unless it is negative and a positive term can lead instead (yhat - 1); no leading
    minus sign where a positive term can lead (yhat - y)."""
    terms = list(Printer._as_ordered_terms(printer, expr, order=order))
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    constant = next((t for t in terms if t.is_Number), None)
    if constant is not None and (constant > 0 or not positive):
        first = constant
    elif terms and terms[0].could_extract_minus_sign() and positive:
        first = positive[0]
    else:
        return terms
    terms.remove(first)
    return [first] + terms


class TextPrinter(StrPrinter):
    """SymPy expressions in the file's own notation: ^ for powers, · for products, − for minus."""

    _as_ordered_terms = _terms_as_written

    def _print_Rational(self, expr):
        if _is_terminating(expr.q) and len(str(expr.q)) <= 8:
            return formatting.number(float(expr), 17)
        return super()._print_Rational(expr)

    def _print_Float(self, expr):
        return formatting.number(float(expr), 12)

    def _print_Heaviside(self, expr):
        return f"[{self._print(expr.args[0])} > 0]"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Exp1(self, expr):
        return "exp(1)"

    def text(self, expr) -> str:
        shown = self.doprint(expr).replace("**", "^").replace("*", "·")
        return re.sub(r"(?<![0-9.]e)-", "−", shown)


class TexPrinter(LatexPrinter):
    _as_ordered_terms = _terms_as_written

    def __init__(self, names: dict):
        super().__init__({"symbol_names": names})

    def _print_Rational(self, expr):
        if _is_terminating(expr.q) and len(str(expr.q)) <= 8:
            return tex_number(float(expr))
        return super()._print_Rational(expr)

    def _print_Float(self, expr):
        return tex_number(float(expr), 12)

    def _print_Heaviside(self, expr, exp=None):
        return rf"\left[{self._print(expr.args[0])} > 0\right]"


# The Greek letters by their Unicode names, as LaTeX spells them (Unicode's LAMDA is \lambda);
# capitals that look like Latin ones have no command of their own in LaTeX
_GREEK_SMALL = {name.upper(): "\\" + name for name in (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau "
    "upsilon phi chi psi omega").split()}
_GREEK_SMALL.update({"LAMDA": r"\lambda", "OMICRON": "o", "FINAL SIGMA": r"\varsigma"})
_GREEK_CAPITAL = {"ALPHA": "A", "BETA": "B", "EPSILON": "E", "ZETA": "Z", "ETA": "H", "IOTA": "I",
                  "KAPPA": "K", "MU": "M", "NU": "N", "OMICRON": "O", "RHO": "P", "TAU": "T",
                  "CHI": "X", "LAMDA": r"\Lambda"}
_GREEK_CAPITAL.update({name.upper(): "\\" + name for name in
                       "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split()})
_GREEK_SYMBOLS = {"GREEK THETA SYMBOL": r"\vartheta", "GREEK PHI SYMBOL": r"\phi",
                  "GREEK PI SYMBOL": r"\varpi", "GREEK RHO SYMBOL": r"\varrho",
                  "GREEK LUNATE EPSILON SYMBOL": r"\epsilon", "GREEK KAPPA SYMBOL": r"\kappa"}


def tex_name(name: str) -> str:
    """A variable's name in LaTeX: x, \\theta, w_{1}, \\mathit{loss}, \\text{é}."""
    if re.fullmatch(r"[A-Za-z]", name):
        return name
    if len(name) == 1:
        unicode_name = unicodedata.name(name, "")
        greek = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER ([A-Z ]+)", unicode_name)
        letters = _GREEK_SMALL if greek and greek[1] == "SMALL" else _GREEK_CAPITAL
        if greek and greek[2] in letters:
            return letters[greek[2]]
        if unicode_name in _GREEK_SYMBOLS:
            return _GREEK_SYMBOLS[unicode_name]
    base, underscore, sub = name.partition("_")
    if base and sub and "_" not in sub:
        return f"{tex_name(base)}_{{{tex_name(sub) if not sub.isdigit() else sub}}}"
    escaped = name.replace("_", r"\_")
    return rf"\mathit{{{escaped}}}" if name.isascii() else rf"\text{{{escaped}}}"


TEX_FUNCTIONS = {"sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "log", "ln"}


def tex_source(expr) -> str:
    """A statement's right side in LaTeX, as the user wrote it: their parentheses, their order,
    implicit products as juxtaposition."""
    return fold(expr, _tex_leaf, _tex_node)


def _tex_leaf(node) -> str:
    if isinstance(node, Number):
        return tex_number(node.value)
    return r"\pi" if node.id == "pi" else tex_name(node.id)


def _tex_node(node, args: list[str]) -> str:
    if isinstance(node, Paren):
        return rf"\left({args[0]}\right)"
    if isinstance(node, Unary):
        return ("-" if node.op == "neg" else "+") + args[0]
    if isinstance(node, Call):
        if node.func == "sqrt":
            return rf"\sqrt{{{args[0]}}}"
        if node.func == "abs":
            return rf"\left|{args[0]}\right|"
        name = "\\" + node.func if node.func in TEX_FUNCTIONS else rf"\operatorname{{{node.func}}}"
        return rf"{name}\left({', '.join(args)}\right)"
    left, right = args
    if node.op == "div":  # a fraction's bar groups its parts: drop their outer parentheses
        return rf"\frac{{{_unwrapped(node.left, left)}}}{{{_unwrapped(node.right, right)}}}"
    if node.op == "pow":
        return f"{{{left}}}^{{{_unwrapped(node.right, right)}}}"
    if node.op == "mul":
        return f"{left} {right}" if node.implicit else rf"{left} \cdot {right}"
    return f"{left} {'+' if node.op == 'add' else '-'} {right}"


def _unwrapped(node, text: str) -> str:
    if isinstance(node, Paren) and text.startswith(r"\left(") and text.endswith(r"\right)"):
        return text[len(r"\left("):-len(r"\right)")]
    return text


def tex_number(x: float | None, precision: int = 6) -> str:
    if x is None:
        return r"\text{undefined}"
    text = formatting.number(x, precision)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = ("" if mantissa == "1" else mantissa + r" \cdot ") + f"10^{{{int(exponent)}}}"
    return text


def tex_escape(text: str) -> str:
    specials = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                "%": r"\%", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(specials.get(c, c) for c in text)


class Notation:
    """How one format writes names, numbers, derivatives and expressions."""

    times = " · "

    def __init__(self):
        self.printer = TextPrinter()

    def name(self, name: str) -> str:
        return name

    def number(self, x: float | None, in_product: bool = False) -> str:
        if x is None:
            return "undefined"
        text = formatting.number(x, 6).replace("-", "−")
        return f"({text})" if in_product and x < 0 else text

    def expr(self, expr: sp.Expr) -> str:
        return self.printer.text(expr)

    def partial(self, of: str, wrt: str) -> str:
        return f"∂{of}/∂{wrt}"

    def total(self, of: str, wrt: str) -> str:
        return f"d{of}/d{wrt}"


class TexNotation(Notation):
    times = r" \cdot "

    def __init__(self, names):
        self.names = {n: tex_name(n) for n in names}
        self.printer = TexPrinter({symbol(n): t for n, t in self.names.items()})

    def name(self, name: str) -> str:
        return self.names[name]

    def number(self, x, in_product=False):
        text = tex_number(x)
        return rf"\left({text}\right)" if in_product and x is not None and x < 0 else text

    def expr(self, expr):
        return self.printer.doprint(expr)

    def partial(self, of, wrt):
        return rf"\frac{{\partial {self.name(of)}}}{{\partial {self.name(wrt)}}}"

    def total(self, of, wrt):
        return rf"\frac{{d {self.name(of)}}}{{d {self.name(wrt)}}}"


@dataclass
class Line:
    sides: list[str]          # an equation chain: the sides joined by =
    note: str | None = None   # said beside it ("input")
    label: str | None = None  # the statement it belongs to, shown before its first line


def steps(d: Derivation, n: Notation, tex: bool = False) -> list[list[Line]]:
    """Steps 1-3 of the derivation as lines of equations, in notation n."""
    out = d.output
    off_path = f"computed, not on a path from {d.wrt}"
    graph = [Line([n.name(name), n.number(d.values[name])], "input" if name in d.inputs else off_path)
             for name in d.given]
    for name in d.statements:
        definition = tex_source(d.definitions[name]) if tex else d.sources[name]
        graph.append(Line([n.name(name), definition, n.number(d.values[name])]))

    partials = []
    for name in d.statements:
        for k, p in enumerate(d.partials[name]):
            form = [] if p.symbolic is None else [n.expr(p.symbolic)]
            sides = _dedupe([n.partial(name, p.wrt), *form, n.number(p.value)])
            partials.append(Line(sides, label=None if k else f"{name} = {d.sources[name]}"))

    accumulation = []
    for name in _accumulation_order(d):
        symbolic, numeric = [], []
        for user in d.consumers[name]:
            local = next(p.value for p in d.partials[user] if p.wrt == name)
            if user == out:
                symbolic.append(n.partial(out, name))
                numeric.append(n.number(local))
            else:
                symbolic.append(n.total(out, user) + n.times + n.partial(user, name))
                numeric.append(n.number(d.gradients[user], True) + n.times + n.number(local, True))
        total = n.number(d.gradients[name])
        if d.consumers[name] == [out]:  # d(out)/d(name) is the local partial itself, given in step 2
            accumulation.append(Line([n.total(out, name), total]))
        else:
            accumulation.append(Line(_dedupe([n.total(out, name), " + ".join(symbolic),
                                               " + ".join(numeric), total])))
    return [graph, partials, accumulation]


def _accumulation_order(d: Derivation) -> list[str]:
    """Every variable on the paths but the output, from the output back to wrt."""
    names = [name for name in reversed(d.statements) if name != d.output]
    return names + [d.wrt] if d.wrt in d.consumers else names


def _dedupe(sides: list[str]) -> list[str]:
    kept = [sides[0]]
    for side in sides[1:]:
        if side != kept[-1]:
            kept.append(side)
    return kept


# ---------------------------------------------------------------- the three formats

HEADINGS = ("1. The graph, in order",
            "2. Local partial derivatives of each statement",
            "3. Reverse accumulation, from {out} back to {wrt}, fan-out summed",
            "4. The total derivative, over every path from {wrt} to {out}, in the named intermediates")


def render(d: Derivation, fmt: str = "text") -> str:
    notation = TexNotation(list(d.values)) if fmt == "latex" else Notation()
    lines = steps(d, notation, tex=fmt == "latex")
    headings = [h.format(out=d.output, wrt=d.wrt) for h in HEADINGS]
    if d.wrt is None:
        verdict = f"{d.output} depends on no input: there is no derivative to explain."
    elif d.wrt == d.output:
        verdict = f"d{d.output}/d{d.output} = 1: the output itself."
    elif not d.statements and d.wrt != d.output:
        verdict = f"{d.output} does not depend on {d.wrt}: d{d.output}/d{d.wrt} = 0."
    else:
        verdict = None
    writer = {"latex": _latex, "markdown": _markdown}.get(fmt, _text)
    return writer(d, notation, headings, lines, verdict)


def _title(d: Derivation) -> str:
    what = f"d{d.output}/d{d.wrt}" if d.wrt else d.output
    return f"{what} by the chain rule"


def _given(d: Derivation, n: Notation) -> str:
    return ", ".join(f"{n.name(k)} = {n.number(d.values[k])}" for k in d.given)


def _total_value(d: Derivation, n: Notation) -> str:
    return f"{n.number(d.gradients[d.wrt])} at the values above, as step 3 found"


def _text(d, n, headings, steps_, verdict) -> str:
    at = f" at {_given(d, n)}" if d.given else ""
    out = [f"{_title(d)}, for {shown(d.filename)}{at}", ""]
    if verdict:
        return "\n".join(out + [verdict, ""])
    graph, partials, accumulation = steps_
    width = max(len(" = ".join(line.sides[:2])) for line in graph)
    out.append(headings[0])
    for line in graph:
        last = line.note if line.note else f"= {line.sides[-1]}"
        out.append(f"   {' = '.join(line.sides[:2]).ljust(width)}   {last}")
    out += ["", headings[1]]
    width = max((len(line.label) for line in partials if line.label), default=0)
    for line in partials:
        out.append(f"   {(line.label or '').ljust(width)}   {' = '.join(line.sides)}")
    out += ["", headings[2]]
    out += [f"   {' = '.join(line.sides)}" for line in accumulation]
    out += ["", headings[3], f"   ({_total_value(d, n)})", f"   {_total_line(d, n)}", ""]
    return "\n".join(out)


def _total_line(d: Derivation, n: Notation) -> str:
    if d.total is None:
        return f"{n.total(d.output, d.wrt)}: no symbolic form: {d.why}"
    return f"{n.total(d.output, d.wrt)} = {n.expr(d.total)}"


def _markdown(d, n, headings, steps_, verdict) -> str:
    at = f" at {_given(d, n)}" if d.given else ""
    out = [f"### {_title(d)}", "", f"`{shown(d.filename)}`{at}", ""]
    if verdict:
        return "\n".join(out + [verdict, ""])
    for heading, lines in zip(headings, steps_):
        out += [f"**{heading}**", ""]
        for k, line in enumerate(lines):
            equation = f"`{' = '.join(line.sides)}`"
            if line.label:  # a statement's partials share its bullet
                out.append(f"- `{line.label}`: {equation}")
            elif heading == headings[1] and k:
                out[-1] += f", {equation}"
            else:
                out.append(f"- {equation}" + (f" ({line.note})" if line.note else ""))
        out.append("")
    total = _total_line(d, n)
    out += [f"**{headings[3]}**", "", f"({_total_value(d, n)})", "",
            f"`{total}`" if d.total is not None else total, ""]
    return "\n".join(out)


def _latex(d, n, headings, steps_, verdict) -> str:
    name = shown(d.filename)  # a line break would end the `%` comment and start live TeX
    out = [f"% diffcli explain {name}; needs \\usepackage{{amsmath}}",
           rf"\paragraph{{{_tex_heading(_title(d), n)}}} For \texttt{{{tex_escape(name)}}}"
           + (f" at ${_given(d, n)}$." if d.given else "."), ""]
    if verdict:
        return "\n".join(out + [tex_escape(verdict), ""])
    for heading, lines in zip(headings, steps_):
        rows = [f"{line.sides[0]} &= " + " = ".join(line.sides[1:])
                + (rf" && \text{{{line.note}}}" if line.note else "") for line in lines]
        out += [rf"\paragraph{{{_tex_heading(heading, n)}}}", r"\begin{align*}", " \\\\\n".join(rows),
                r"\end{align*}", ""]
    value, said = _total_value(d, n).split(" ", 1)
    out += [rf"\paragraph{{{_tex_heading(headings[3], n)}}}", f"(${value}$ {said})"]
    if d.total is None:
        note = _total_line(d, Notation()).split(": ", 1)[1]
        return "\n".join(out + [f"${n.total(d.output, d.wrt)}$: " + tex_escape(note).replace("--", "-{}-"), ""])
    out += [r"\[", f"{n.total(d.output, d.wrt)} = {n.expr(d.total)}", r"\]", ""]
    return "\n".join(out)


def _tex_heading(heading: str, n: TexNotation) -> str:
    """A heading with its names and derivatives in math mode, the rest escaped text."""
    words = []
    for word in heading.split(" "):
        core = word.rstrip(":,.")
        total = re.fullmatch(r"d(\S+)/d(\S+)", core)
        if core in n.names:
            words.append(f"${n.names[core]}$" + word[len(core):])
        elif total and total[1] in n.names and total[2] in n.names:
            words.append(f"${n.total(total[1], total[2])}$" + word[len(core):])
        else:
            words.append(tex_escape(word))
    return " ".join(words)


def explain(program: Program, values=None, wrt=None, of=None, fmt="text", filename="") -> str:
    return render(derive(program, values, wrt, of, filename), fmt)
