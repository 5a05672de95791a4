"""The chain-rule derivation of a gradient, as data: what `diffcli explain` shows, before any format.

For d(out)/d(wrt) it finds
  1. the statements on the paths from wrt to out, in order, with their values (and the values of the
     other names they use);
  2. each statement's local partial derivatives, as numbers and, where SymPy finds them in time and
     they equal the numbers, symbolic in the file's own names;
  3. the reverse accumulation from out back to wrt (the engine's adjoints);
  4. the total derivative, symbolic in the named intermediates: the same accumulation done with the
     symbolic local partials (the sum over paths of their products), then simplified.

The numbers come from the engine (Program.run, and its reverse pass stopped at named nodes for the
local partials), so they are `grad`'s numbers; SymPy only does the symbolic forms. Expressions are
translated without recursion (one walk, syntax.postorder), and derivations longer than a person can
read are refused (MAX_STATEMENTS, MAX_OPERATIONS), which also bounds the depth SymPy recurses to.
The writers (text, Markdown, LaTeX) are in explain_writers.py.
"""

from __future__ import annotations

import heapq
import math
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import sympy as sp

from ..display import Displayed
from ..interpreters import engine
from .. import ops
from ..errors import DiffcliError
from ..program import Program
from ..language.syntax import Binary, Call, Name, Number, Paren, Unary, postorder

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
    for node in postorder(expr):
        kind = node.__class__
        if kind is Number or kind is Name:
            results.append(leaf(node))
        else:
            n = len(node.children())  # (0 for a constant array literal or a constructor)
            args = results[len(results) - n:]
            del results[len(results) - n:]
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
    count = sum(isinstance(node, (Binary, Unary, Call)) for node in postorder(expr))
    return count, fold(expr, lambda node: 0, _nesting)


def _nesting(node, below: list[int]) -> int:
    """The levels on the deepest path down from an operation (or parentheses), given its children's."""
    family = _FAMILY.get(node.op) if isinstance(node, Binary) else None
    deepest = 0
    for child, levels in zip(node.children(), below):
        same_run = family is not None and isinstance(child, Binary) and _FAMILY.get(child.op) == family
        deepest = max(deepest, levels - same_run)  # a sum inside a sum is no new level
    return deepest + (not isinstance(node, Paren))


# ---------------------------------------------------------------- the derivation

@dataclass
class Partial:
    wrt: str
    symbolic: sp.Expr | None  # None where no symbolic form holds at these values
    value: float | None       # None where the partial does not exist (sqrt at 0)


@dataclass
class Derivation(Displayed):
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
    run, wrt, statements, uses, on_path, given = prepare(program, values, wrt, of)
    graph, out, position = program.graph, run.output, program.graph.names
    d = Derivation(out, wrt, filename, {k: run.inputs[k] for k in graph.inputs},
                   {k: run.values[i] for k, i in position.items()},
                   {k: run.adjoints[i] for k, i in position.items()},
                   given, statements,
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


def prepare(program: Program, values, wrt: str | None, of: str | None):
    """The run, and what `paths` finds (refused if too long to read), and the names given to the
    statements on the paths, in file order: what both derivations (scalar, arrays) start from."""
    run = program.run(values, of)
    graph = program.graph
    if wrt is not None:
        program.check_name(wrt, "--wrt")
    wrt, statements, uses, on_path = paths(graph, run.output, wrt)
    _refuse_if_too_long(graph, statements, run.output, wrt)
    given_set = {u for name in statements for u in uses[name]} - set(statements)
    return run, wrt, statements, uses, on_path, [n for n in graph.names if n in given_set]


def paths(graph, out: str, wrt: str | None):
    """(wrt, the statements on the paths from wrt to out in dependency order, each statement's names
    used, the names on those paths). wrt None: the first input, in file order, that out depends on
    (None if there is none)."""
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
    return wrt, statements, uses, on_path


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
    return list(dict.fromkeys(node.id for node in postorder(expr)
                              if node.__class__ is Name and node.id in position))


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
