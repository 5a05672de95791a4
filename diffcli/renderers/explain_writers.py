"""The writers of a derivation (derivation.py): plain text, Markdown and LaTeX, with SymPy's
printers taught the file's notation (^, ·, −) and LaTeX's names for Greek letters."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.printer import Printer
from sympy.printing.str import StrPrinter

from .. import formatting
from ..commands.derivation import Derivation, fold, symbol
from ..errors import shown
from ..language.syntax import Array, Call, Index, Number, Paren, Unary

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


def _step(expr, bracket, at_least: str) -> str:
    """Heaviside(x, h) as Iverson brackets, its value at 0 included: [x > 0] (h = 0), [x ≥ 0]
    (h = 1), and where a tie splits evenly (h = 1/2, as min and max have it) their mean."""
    x = expr.args[0]
    at_zero = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
    if at_zero == 0:
        return bracket(x, ">")
    if at_zero == 1:
        return bracket(x, at_least)
    return f"({bracket(x, '>')} + {bracket(x, at_least)})/2"


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
        return _step(expr, lambda x, relation: f"[{self._print(x)} {relation} 0]", "≥")

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
        return _step(expr, lambda x, relation: rf"\left[{self._print(x)} {relation} 0\right]", r"\geq")


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
# a Greek letter's tonos and dialytika as math accents (`\text{ά}` fails under pdflatex)
_ACCENTS = {"\u0301": r"\acute", "\u0308": r"\ddot"}


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
        base, *marks = unicodedata.normalize("NFD", name)
        if marks and all(mark in _ACCENTS for mark in marks) and unicodedata.name(base, "").startswith("GREEK"):
            tex = tex_name(base)
            for mark in marks:
                tex = f"{_ACCENTS[mark]}{{{tex}}}"
            return tex
    base, underscore, sub = name.partition("_")
    if base and sub and "_" not in sub:
        return f"{tex_name(base)}_{{{tex_name(sub) if not sub.isdigit() else sub}}}"
    escaped = name.replace("_", r"\_")
    return rf"\mathit{{{escaped}}}" if name.isascii() else rf"\text{{{escaped}}}"


TEX_FUNCTIONS = {"sin", "cos", "tan", "sinh", "cosh", "tanh", "exp", "log", "ln"}


def tex_source(expr) -> str:
    """A statement's right side in LaTeX, as the user wrote it: their parentheses, their order,
    implicit products as juxtaposition."""
    return fold(expr, tex_leaf, tex_node)


def tex_leaf(node) -> str:
    if isinstance(node, Number):
        return tex_number(node.value)
    return r"\pi" if node.id == "pi" else tex_name(node.id)


def tex_node(node, args: list[str]) -> str:
    if isinstance(node, Paren):
        return rf"\left({args[0]}\right)"
    if isinstance(node, (Array, Index)) or isinstance(node, Call) and (node.keywords or node.sizes or not node.args):
        return _tex_array_node(node, args)
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
    if node.op == "matmul":  # the matrix product, written as a course writes it: W x
        return f"{left} {right}"
    return f"{left} {'+' if node.op == 'add' else '-'} {right}"


def _tex_array_node(node, args: list[str]) -> str:
    """Array syntax in LaTeX: a literal in brackets, an index as written, keywords in text."""
    if isinstance(node, Array):
        if node.constant:
            rows = node.numbers()
            items = [", ".join(map(tex_number, row)) if isinstance(row, list) else tex_number(row) for row in rows]
            if rows and isinstance(rows[0], list):
                items = [rf"\left[{row}\right]" for row in items]
            return rf"\left[{', '.join(items)}\right]"
        return rf"\left[{', '.join(args)}\right]"
    if isinstance(node, Index):
        return rf"{args[0]}\left[{tex_items(node.items)}\right]"
    parts = [*args, *map(str, node.sizes)] + [rf"\text{{{k.name}}}={tex_number(k.value) if k.name != 'seed' else k.text}"
                                              for k in node.keywords]
    name = "\\" + node.func if node.func in TEX_FUNCTIONS or node.func in ("max", "min") else \
        rf"\operatorname{{{node.func}}}"
    return rf"{name}\left({', '.join(parts)}\right)"


def items_text(items: tuple) -> str:
    """An index's items as written: `0`, `1:3`, `:`, `0, :`."""
    return ", ".join(str(item) if isinstance(item, int) else
                     f"{'' if item[0] is None else item[0]}:{'' if item[1] is None else item[1]}" for item in items)


def tex_items(items: tuple) -> str:
    return items_text(items).replace(":", "{:}")


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

    def __init__(self, precision: int = 6):
        self.printer = TextPrinter()
        self.precision = precision  # significant digits of the values (the exact forms keep theirs)

    def name(self, name: str) -> str:
        return name

    def number(self, x: float | None, in_product: bool = False) -> str:
        if x is None:
            return "undefined"
        text = formatting.number(x, self.precision).replace("-", "−")
        return f"({text})" if in_product and x < 0 else text

    def expr(self, expr: sp.Expr) -> str:
        return self.printer.text(expr)

    def partial(self, of: str, wrt: str) -> str:
        return f"∂{of}/∂{wrt}"

    def total(self, of: str, wrt: str) -> str:
        return f"d{of}/d{wrt}"


class TexNotation(Notation):
    times = r" \cdot "

    def __init__(self, names, precision: int = 6):
        self.precision = precision
        self.names = {n: tex_name(n) for n in names}
        self.printer = TexPrinter({symbol(n): t for n, t in self.names.items()})

    def name(self, name: str) -> str:
        return self.names[name]

    def number(self, x, in_product=False):
        text = tex_number(x, self.precision)
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


def render(d: Derivation, fmt: str = "text", precision: int = 6) -> str:
    notation = TexNotation(list(d.values), precision) if fmt == "latex" else Notation(precision)
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
