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
import unicodedata
from dataclasses import dataclass, field

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.printer import Printer
from sympy.printing.str import StrPrinter

from . import engine, formatting, ops
from .errors import DiffcliError
from .program import Program
from .syntax import Binary, Call, Name, Number, Paren, Unary

MAX_STATEMENTS = 40    # statements on the paths from wrt to out
MAX_OPERATIONS = 400   # operations in those statements
MAX_DEPTH = 30         # operations nested in one statement (SymPy recurses on it)
MAX_TOTAL_SIZE = 300   # nodes in the symbolic total derivative, past which it is not worth reading


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
    """An AST expression as a SymPy expression in the file's names."""
    return fold(expr, _sympy_leaf, _sympy_node)


def _sympy_leaf(node):
    if isinstance(node, Number):
        # a Float, not an exact Rational: 1.01^n would grow huge fractions and slow SymPy down
        return sp.Integer(int(node.value)) if node.value == int(node.value) else sp.Float(node.value)
    return CONSTANTS[node.id] if node.id in CONSTANTS else symbol(node.id)


def _sympy_node(node, args):
    if isinstance(node, Paren):
        return args[0]
    op = ops.FUNCTIONS[node.func] if isinstance(node, Call) else ops.OPERATORS[node.op]
    return SYMPY.value(op, *args)


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
    symbolic: sp.Expr
    value: float | None  # None where the partial does not exist (sqrt at 0)


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
    rhs: dict[str, sp.Expr]
    partials: dict[str, list[Partial]] = field(default_factory=dict)
    consumers: dict[str, list[str]] = field(default_factory=dict)  # name -> statements using it
    total: sp.Expr | None = sp.Integer(0)  # None when too long to read


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

    rhs = {name: to_sympy(graph.definitions[name].expr) for name in statements}
    given_set = {u for name in statements for u in uses[name]} - set(statements)
    d = Derivation(out, wrt, filename, {k: run.inputs[k] for k in graph.inputs},
                   {k: run.values[i] for k, i in position.items()},
                   {k: run.adjoints[i] for k, i in position.items()},
                   [n for n in position if n in given_set], statements,
                   {name: program.definition(name) for name in statements},
                   {name: graph.definitions[name].expr for name in statements}, rhs)
    named, needs = graph.names.values(), engine.needs_gradient(graph)
    for name in statements:
        # the engine's reverse pass from this statement, stopped at the names it uses
        numbers = engine.reverse(graph, run.values, position[name], needs, stop=named, strict=False)
        d.partials[name] = [Partial(u, _local_symbolic(rhs[name], name, u), _defined(numbers[position[u]]))
                            for u in uses[name]]
        for u in uses[name]:
            if u in on_path:
                d.consumers.setdefault(u, []).append(name)
    d.total = _total(d) if wrt is not None else sp.Integer(0)
    return d


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


def _total(d: Derivation) -> sp.Expr:
    """d(out)/d(wrt) symbolically: reverse accumulation of the symbolic local partials."""
    if d.wrt == d.output:
        return sp.Integer(1)
    adjoint = {d.output: sp.Integer(1)}
    for name in reversed(d.statements):
        if name not in adjoint:
            continue
        for partial in d.partials[name]:
            if partial.wrt in d.consumers:
                adjoint[partial.wrt] = adjoint.get(partial.wrt, 0) + adjoint[name] * partial.symbolic
    return simplest(adjoint.get(d.wrt, sp.Integer(0)))


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
    whole = {f: sp.Integer(round(f)) for f in expr.atoms(sp.Float)
             if abs(f - round(f)) <= 1e-12 * max(1.0, abs(float(f)))}
    return expr.xreplace(whole) if whole else expr


def simplest(expr: sp.Expr) -> sp.Expr | None:
    """The shorter of the expanded form and the product with common factors pulled out (the expanded
    one on a tie): -252 - 180·d for the chain, 2·k·yhat·(1 - yhat)·(yhat - y) for a neuron.
    None when even the shorter is too long to read (then expanding could take SymPy minutes)."""
    if tree_size(expr) > MAX_TOTAL_SIZE:
        return None
    expanded = sp.expand(expr, multinomial=False, power_base=False, power_exp=False, log=False)
    candidates = [_tidy(expanded), _tidy(sp.factor_terms(expr))]
    best = min(candidates, key=tree_size)
    return best if tree_size(best) <= MAX_TOTAL_SIZE else None


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


# Greek capitals that look like Latin ones have no command of their own in LaTeX
_GREEK_AS_LATIN = {"alpha": "A", "beta": "B", "epsilon": "E", "zeta": "Z", "eta": "H", "iota": "I",
                   "kappa": "K", "mu": "M", "nu": "N", "omicron": "O", "rho": "P", "tau": "T",
                   "chi": "X"}


def tex_name(name: str) -> str:
    """A variable's name in LaTeX: x, \\theta, w_{1}, \\mathit{loss}, \\text{é}."""
    if re.fullmatch(r"[A-Za-z]", name):
        return name
    greek = len(name) == 1 and re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER ([A-Z]+)",
                                            unicodedata.name(name, ""))
    if greek:
        letter = greek[2].lower()
        if greek[1] == "CAPITAL":
            return _GREEK_AS_LATIN.get(letter) or "\\" + letter.capitalize()
        return "o" if letter == "omicron" else "\\" + letter
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
            sides = _dedupe([n.partial(name, p.wrt), n.expr(p.symbolic), n.number(p.value)])
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
    out = [f"{_title(d)}, for {d.filename}{at}", ""]
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
        return (f"{n.total(d.output, d.wrt)}: the symbolic form is too long to read (over {MAX_TOTAL_SIZE} "
                "terms and factors); narrow it with --of and --wrt")
    return f"{n.total(d.output, d.wrt)} = {n.expr(d.total)}"


def _markdown(d, n, headings, steps_, verdict) -> str:
    at = f" at {_given(d, n)}" if d.given else ""
    out = [f"### {_title(d)}", "", f"`{d.filename}`{at}", ""]
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
    out = [f"% diffcli explain {d.filename}; needs \\usepackage{{amsmath}}",
           rf"\paragraph{{{_tex_heading(_title(d), n)}}} For \texttt{{{tex_escape(d.filename)}}}"
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
