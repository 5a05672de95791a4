"""`diffcli explain` of an array program: the chain rule with shapes (commands/array_derivation.py),
written as text, Markdown, LaTeX or JSON.

A backward expression (a term) is printed here in two notations: the text one (δz1 xᵀ, ⊙, ′,
ones(4), sum(…, axis=0)) and LaTeX (\\delta_{z_{1}} x^{\\top}, \\odot, \\mathbf{1}_{4},
\\mathbb{R}^{16\\times 2}). Terms nest no deeper than the statement they come from, whose depth
explain bounds (derivation.MAX_DEPTH), so printing them recursively is bounded too.
"""

from __future__ import annotations

import re

from ..commands.array_derivation import ArrayDerivation, Use, derive_arrays
from ..errors import shown
from ..formatting import json_text, number
from ..language.syntax import Array, Call, Index, Name, Number, Paren
from ..ops import shape_text
from ..commands.derivation import fold
from .explain_writers import (TEX_FUNCTIONS, items_text, tex_escape, tex_items, tex_leaf, tex_name, tex_node,
                              tex_number)
from .report import TABLE_ELEMENTS

SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
ATOM, MATRIX, PRODUCT, SIGNED, SUM = 5, 4, 3, 2, 1  # how tightly a printed term binds


class TextTerms:
    """Terms in the text notation."""

    tex = False
    odot, times, minus, prime, top = " ⊙ ", "·", " − ", "′", "ᵀ"

    def __init__(self, d: ArrayDerivation, precision: int):
        self.d, self.graph, self.precision = d, d.graph, precision
        self.named = {node: name for name, node in d.graph.names.items()}

    def name(self, name: str) -> str:
        return name

    def delta(self, name: str) -> str:
        return f"δ{name}"

    def number(self, x: float) -> str:
        return number(x, self.precision).replace("-", "−")

    def shape(self, shape: tuple) -> str:
        return shape_text(shape)

    def source(self, expr) -> str:
        return self.graph.source.snippet(expr.start, expr.end)

    def call(self, name: str, args: list[str], axis=None) -> str:
        extra = [] if axis is None else [f"axis={axis}"]
        return f"{name}({', '.join(args + extra)})"

    # the forms of the simple terms: {0}, {1} their parts
    forms = {"ones": "ones({0})", "power": "{0}^{1}", "placed": "({0} at [{1}], 0 elsewhere)", "item": "{0}[{1}]",
             "div": "{0}/{1}", "paren": "({0})"}
    size_joint, items = ", ", staticmethod(items_text)

    def form(self, kind: str, *parts) -> str:
        return self.forms[kind].format(*parts)

    def tie(self, x: str, name: str, axis) -> str:
        return f"[{x} = {self.call(name, [x], axis)}]"

    def partial(self, name: str, k: int, args: list[str]) -> str:
        return f"∂{str(k + 1).translate(SUBSCRIPTS)}{self.call(name, args)}"

    def paren(self, text: str) -> str:
        return self.form("paren", text)

    # -- a term, with its binding
    def term(self, t) -> str:
        return self._term(t)[0]

    def _wrap(self, t, at_least: int) -> str:
        text, binding = self._term(t)
        return text if binding >= at_least else self.paren(text)

    def _term(self, t):
        kind = t[0]
        if kind == "delta":
            return self.delta(t[1]), ATOM
        if kind == "num":
            return self.number(t[1]), ATOM if t[1] >= 0 else SIGNED
        if kind == "val":
            return self._value(t[1])
        if kind == "ones":
            return self.form("ones", self.size_joint.join(map(str, t[1]))), ATOM
        if kind == "T":
            return self._wrap(t[1], ATOM) + self.top, ATOM
        if kind == "mm":
            return f"{self._wrap(t[1], MATRIX)} {self._wrap(t[2], ATOM)}", MATRIX
        if kind == "odot":
            return self._wrap(t[1], MATRIX) + self.odot + self._wrap(t[2], MATRIX), PRODUCT
        if kind == "times":
            return self._wrap(t[1], PRODUCT) + self.times + self._wrap(t[2], MATRIX), PRODUCT
        if kind == "div":
            return self.form("div", self._wrap(t[1], PRODUCT), self._wrap(t[2], ATOM)), PRODUCT
        if kind == "neg":
            return self.minus.strip() + self._wrap(t[1], PRODUCT), SIGNED
        if kind == "minus":
            return self._wrap(t[1], SUM) + self.minus + self._wrap(t[2], PRODUCT), SUM
        if kind == "pow":
            return self.form("power", self._wrap(t[1], ATOM), self._wrap(t[2], ATOM)), ATOM
        if kind == "sum":
            return self.call("sum", [self.term(t[1])], t[2]), ATOM
        if kind == "fn":
            return self.call(t[1], [self.term(a) for a in t[2]], (t[3] or {}).get("axis")), ATOM
        if kind == "prime":
            return self.call(self.function(t[1]) + self.prime, [self.term(a) for a in t[2]]), ATOM
        if kind == "partial":
            return self.partial(t[1], t[2], [self.term(a) for a in t[3]]), ATOM
        if kind == "tie":
            return self.tie(self.term(t[1]), t[2], (t[3] or {}).get("axis")), ATOM
        if kind == "at":
            return self.form("placed", self.term(t[1]), self.items(t[2])), ATOM
        if kind == "item":
            return self.form("item", self._wrap(t[1], ATOM), t[2]), ATOM
        raise AssertionError(f"no printing for the term {kind}")

    def function(self, name: str) -> str:
        return name

    def _value(self, node: int):
        if node in self.named:
            return self.name(self.named[node]), ATOM
        expr = self.graph.expr[node]
        atomic = isinstance(expr, (Name, Number, Call, Index, Paren, Array))
        if isinstance(expr, Number) and expr.value < 0:
            atomic = False
        return self.source(expr), ATOM if atomic else SUM


class TexTerms(TextTerms):
    tex = True
    odot, times, minus, prime, top = r" \odot ", r" \cdot ", " - ", "'", r"^{\top}"

    def name(self, name: str) -> str:
        return array_tex_name(name)

    def delta(self, name: str) -> str:
        return rf"\delta_{{{array_tex_name(name)}}}"

    def number(self, x: float) -> str:
        return tex_number(x, self.precision)

    def shape(self, shape: tuple) -> str:
        return r"\mathbb{R}" if not shape else r"\mathbb{R}^{" + r"\times ".join(map(str, shape)) + "}"

    def source(self, expr) -> str:
        return fold(expr, self._leaf, tex_node)

    def _leaf(self, node) -> str:
        return self.name(node.id) if isinstance(node, Name) and node.id != "pi" else tex_leaf(node)

    def function(self, name: str) -> str:
        return "\\" + name if name in TEX_FUNCTIONS or name in ("max", "min") else rf"\operatorname{{{name}}}"

    def call(self, name: str, args: list[str], axis=None) -> str:
        head = name if name.startswith("\\") else self.function(name)
        extra = [] if axis is None else [rf"\text{{axis}}={axis}"]
        return rf"{head}\left({', '.join(args + extra)}\right)"

    forms = {"ones": r"\mathbf{{1}}_{{{0}}}", "power": "{{{0}}}^{{{1}}}",
             "placed": r"\left({0} \text{{ at }} \left[{1}\right]\text{{, 0 elsewhere}}\right)",
             "item": "{{{0}}}_{{[{1}]}}", "div": "{0} / {1}", "paren": r"\left({0}\right)"}
    size_joint, items = r"\times ", staticmethod(tex_items)

    def tie(self, x: str, name: str, axis) -> str:
        return rf"\left[{x} = {self.call(name, [x], axis)}\right]"

    def partial(self, name: str, k: int, args: list[str]) -> str:
        return rf"\partial_{{{k + 1}}} {self.call(name, args)}"



def array_tex_name(name: str) -> str:
    """A name in LaTeX, a letter and digits as a subscript (W1: W_{1}, as a course writes a layer's
    weights); any other name as the scalar explain writes it."""
    match = re.fullmatch(r"([A-Za-z])([0-9]+)", name)
    return f"{match[1]}_{{{match[2]}}}" if match else tex_name(name)


OPERATIONS = {"^": "power", "*": "product", "/": "quotient", "-": "negation"}  # in LaTeX's text


# ---------------------------------------------------------------- the lines

def value_text(value, n: TextTerms) -> str:
    """A value as explain shows it: a number, an array's shape with its elements (up to 6), or its
    shape with its least and greatest element."""
    shape = getattr(value, "shape", ())
    if not shape:
        return n.number(value)
    if value.size <= TABLE_ELEMENTS:
        rows = value.reshape(1, -1) if value.ndim == 1 else value
        inner = ("; " if not n.tex else r"; ").join(" ".join(n.number(float(x)) for x in row) for row in rows)
        if n.tex:
            inner = inner.replace(" ", r"\ ")
            return rf"{n.shape(shape)}\colon \left[{inner}\right]"
        return f"{n.shape(shape)}: [{inner}]"
    low, high = n.number(float(value.min())), n.number(float(value.max()))
    if n.tex:
        return rf"{n.shape(shape)}\colon {low} \text{{ to }} {high}"
    return f"{n.shape(shape)}: {low} to {high}"


def step_text(step, n: TextTerms) -> str:
    """How one operation's rule fits the shapes: `matrix product: 16 · 1×2 → 16×2`."""
    arrow, dot = (r" \to ", r" \cdot ") if n.tex else (" → ", " · ")
    shape = (lambda s: r"\times ".join(map(str, s)) or r"\text{scalar}") if n.tex else \
        (lambda s: shape_text(s) if s else "scalar")
    op = step.op if not n.tex else OPERATIONS.get(step.op, step.op)
    if step.rule == "elementwise":
        prime = "′" if step.op.isidentifier() else ""
        text = f"elementwise {op}{prime}"
        return rf"\text{{{tex_escape(text).replace('′', chr(39))}}}, {shape(step.result)}" if n.tex \
            else f"{text}, {shape(step.result)}"
    rule = step.rule
    if step.rule in ("matrix product", "dot product", "outer product"):
        fit = dot.join(shape(s) for s in step.factors)
    else:
        fit = shape(step.factors[0])
        rule = f"{rule} {op}" if step.rule not in ("index", "stack") and step.op not in step.rule else rule
    if n.tex:
        return rf"\text{{{tex_escape(rule)}}}\colon {fit}{arrow}{shape(step.result)}"
    return f"{rule}: {fit}{arrow}{shape(step.result)}"


def backward_lines(d: ArrayDerivation, n: TextTerms, code: bool = False) -> list[tuple[str, str, str, list[str]]]:
    """(δ name, its expression, its value, the rules its uses take) per name, output to wrt."""
    lines = []
    for name in _order(d):
        shares = d.uses.get(name, [])
        expression = " + ".join(n.term(use.term) for use in shares)
        rules = [_rules(d, use, n, first=all(u.user != use.user for u in shares[:k]), code=code)
                 for k, use in enumerate(shares)]
        lines.append((n.delta(name), expression, value_text(d.gradients[name], n), rules))
    return lines


def _rules(d: ArrayDerivation, use: Use, n: TextTerms, first: bool = True, code: bool = False) -> str:
    """The steps of one use, after the statement it is in (its source the first time it is named)."""
    steps = "; ".join(step_text(step, n) for step in use.steps) or ("passed through" if not n.tex else
                                                                     r"\text{passed through}")
    if n.tex:
        return rf"\text{{from }} {n.name(use.user)}\colon {steps}"
    statement = f"{use.user} = {d.sources[use.user]}" if first else use.user
    return f"from `{statement}`: {steps}" if code else f"from {statement}: {steps}"


def _order(d: ArrayDerivation) -> list[str]:
    names = [name for name in reversed(d.statements) if name != d.output]
    return names + [d.wrt] if d.wrt in d.uses else names


def _verdict(d: ArrayDerivation) -> str | None:
    if d.wrt is None:
        return f"{d.output} depends on no input: there is no derivative to explain."
    if d.wrt == d.output:
        return f"d{d.output}/d{d.output} = 1: the output itself."
    if not d.statements:
        return f"{d.output} does not depend on {d.wrt}: d{d.output}/d{d.wrt} = 0."
    return None


HEADINGS = ("1. The graph, in order, with shapes",
            "2. Backward, from {out} to {wrt}: δv is ∂{out}/∂v, of v's shape",
            "3. The gradient, as grad computes it")


def render(d: ArrayDerivation, fmt: str, precision: int) -> str:
    n = TexTerms(d, precision) if fmt == "latex" else TextTerms(d, precision)
    writer = {"latex": _latex, "markdown": _markdown}.get(fmt, _text)
    return writer(d, n)


def _title(d: ArrayDerivation) -> str:
    return (f"∂{d.output}/∂{d.wrt}" if d.wrt else d.output) + " by the chain rule, with shapes"


def _graph_lines(d: ArrayDerivation, n: TextTerms) -> list[tuple[str, str, str, str | None]]:
    """(name, definition or None for a given name, value, note) in the order of the graph."""
    off_path = f"computed, not on a path from {d.wrt}"
    rows = [(n.name(name), None, value_text(d.values[name], n), "input" if name in d.inputs else off_path)
            for name in d.given]
    for name in d.statements:
        definition = n.source(d.definitions[name]) if n.tex else d.sources[name]
        rows.append((n.name(name), definition, value_text(d.values[name], n), None))
    return rows


def _text(d: ArrayDerivation, n: TextTerms) -> str:
    out = [f"{_title(d)}, for {shown(d.filename)}", ""]
    verdict = _verdict(d)
    if verdict:
        return "\n".join(out + [verdict, ""])
    headings = [h.format(out=d.output, wrt=d.wrt) for h in HEADINGS]
    rows = [(f"{a} = {value}", note) if b is None else (f"{a} = {b}", f"= {value}")
            for a, b, value, note in _graph_lines(d, n)]
    width = max(len(left) for left, _ in rows)
    out.append(headings[0])
    out += [f"   {left.ljust(width)}   {right}" for left, right in rows]
    out += ["", headings[1]]
    for left, expression, value, rules in backward_lines(d, n):
        out.append(f"   {left} = {expression}")
        out.append(f"      = {value}")
        out += [f"      {rule}" for rule in rules]
    gradient = d.gradients[d.wrt]
    out += ["", headings[2], f"   ∂{d.output}/∂{d.wrt} = δ{d.wrt} = {value_text(gradient, n)}", ""]
    return "\n".join(out)


def _markdown(d: ArrayDerivation, n: TextTerms) -> str:
    out = [f"### {_title(d)}", "", f"`{shown(d.filename)}`", ""]
    verdict = _verdict(d)
    if verdict:
        return "\n".join(out + [verdict, ""])
    headings = [h.format(out=d.output, wrt=d.wrt) for h in HEADINGS]
    out += [f"**{headings[0]}**", ""]
    out += [f"- `{a}` = {value} ({note})" if b is None else f"- `{a} = {b}` = {value}"
            for a, b, value, note in _graph_lines(d, n)]
    out += ["", f"**{headings[1]}**", ""]
    for left, expression, value, rules in backward_lines(d, n, code=True):
        out.append(f"- `{left} = {expression}` = {value}")
        out += [f"  - {rule}" for rule in rules]
    out += ["", f"**{headings[2]}**", "", f"`∂{d.output}/∂{d.wrt} = δ{d.wrt}` = {value_text(d.gradients[d.wrt], n)}", ""]
    return "\n".join(out)


def relation(value) -> str:
    """How LaTeX joins a name to its value's text: = a number, \\in an array's space (ℝ^{3×2}: …)."""
    return r"\in" if getattr(value, "shape", ()) else "="


def _latex(d: ArrayDerivation, n: TexTerms) -> str:
    name = shown(d.filename)
    what = rf"\frac{{\partial {n.name(d.output)}}}{{\partial {n.name(d.wrt)}}}" if d.wrt else n.name(d.output)
    out = [f"% diffcli explain {name}; needs \\usepackage{{amsmath,amssymb}}",
           rf"\paragraph{{${what}$ by the chain rule, with shapes}} For \texttt{{{tex_escape(name)}}}.", ""]
    verdict = _verdict(d)
    if verdict:
        return "\n".join(out + [tex_escape(verdict), ""])
    rows = [rf"{a} &{relation(d.values[name])} {value} && \text{{{tex_escape(note)}}}" if b is None
            else rf"{a} &= {b} && {value}"
            for (a, b, value, note), name in zip(_graph_lines(d, n), d.given + d.statements)]
    out += [r"\paragraph{The graph, in order, with shapes}", r"\begin{align*}", " \\\\\n".join(rows),
            r"\end{align*}", ""]
    backward = []
    for left, expression, value, rules in backward_lines(d, n):
        backward.append(rf"{left} &= {expression} && {value}")
        backward += [rf"& && {rule}" for rule in rules]
    out += [rf"\paragraph{{Backward, from ${n.name(d.output)}$ to ${n.name(d.wrt)}$: "
            rf"$\delta_{{v}} = \partial {n.name(d.output)} / \partial v$, of $v$'s shape}}",
            r"\begin{align*}", " \\\\\n".join(backward), r"\end{align*}", ""]
    out += [r"\paragraph{The gradient, as grad computes it}",
            rf"\[ \frac{{\partial {n.name(d.output)}}}{{\partial {n.name(d.wrt)}}} = {n.delta(d.wrt)} "
            rf"{relation(d.gradients[d.wrt])} {value_text(d.gradients[d.wrt], n)} \]", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- JSON

def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def array_json(d: ArrayDerivation) -> str:
    """As the scalar explain's JSON (output, wrt, file, inputs, given, statements, total), each
    value and gradient a nested list, each statement with its shape and, in `backward`, the share of
    each name it uses: its expression and the rules on the way, with their shapes."""
    n = TextTerms(d, 17)
    shares: dict[str, list] = {}
    for name, uses in d.uses.items():
        for use in uses:
            shares.setdefault(use.user, []).append({
                "wrt": name, "symbolic": n.term(use.term),
                "rules": [{"rule": s.rule, "op": s.op, "shapes": [list(f) for f in s.factors],
                           "result": list(s.result)} for s in use.steps]})
    statements = [{
        "name": name, "definition": d.sources[name], "shape": list(d.shapes[name]),
        "value": _plain(d.values[name]), "gradient": _plain(d.gradients[name]),
        "used_by": list(dict.fromkeys(u.user for u in d.uses.get(name, []))), "backward": shares.get(name, []),
    } for name in d.statements]
    total = None if d.wrt is None else {
        "symbolic": " + ".join(n.term(u.term) for u in d.uses.get(d.wrt, [])) or None,
        "value": _plain(d.gradients[d.wrt]), "shape": list(d.shapes[d.wrt]), "why": None}
    return json_text({"output": d.output, "wrt": d.wrt, "file": d.filename,
                      "inputs": {k: _plain(v) for k, v in d.inputs.items()},
                      "given": [{"name": g, "shape": list(d.shapes[g]), "value": _plain(d.values[g])}
                                for g in d.given],
                      "statements": statements, "total": total}) + "\n"


def explain_arrays(program, values=None, wrt=None, of=None, fmt="text", filename="", precision=6) -> str:
    d = derive_arrays(program, values, wrt, of, filename)
    return array_json(d) if fmt == "json" else render(d, fmt, precision)
