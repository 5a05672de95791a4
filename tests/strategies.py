"""Random valid .expr programs, each with an answer computed without diffcli's engine.

`generate(chooser)` writes a program in the full language (every operator and function, implicit
multiplication, `^` and `**`, signs, statements in any order, comments, `;`, `\\r\\n`, line breaks
inside parentheses, Unicode names, free inputs given a value as with `--set`, `--of`) and builds,
beside its text, the same program as SymPy expressions. Values come from mpmath at 40 digits and
gradients from `sympy.diff` of each statement, chained over the named variables (the total
derivative, summed over every path). Only the text reaches diffcli; its parser, op table and engine
play no part in the answer.

The programs keep away from domain edges, kinks, ties, cancellation and overflow: where a drawn
operation would land near one, the generator keeps its operand instead. Those places are tested
exactly in test_numerics.py.

The chooser makes every random decision, so the same generator runs under hypothesis
(`programs()`, which shrinks failures) and under `random.Random` (scripts/long_differential.py).
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal

import mpmath
import sympy
from hypothesis import strategies as st

mp = mpmath.mp
mp.dps = 40

SUM, PRODUCT, SIGN, POWER, ATOM = 1, 2, 3, 4, 5
NAMES = ["a", "b", "c", "x", "y", "w_1", "loss2", "e", "E1", "e2x", "θ", "λ_0", "μ", "ñame", "Ωmega",
         "変数", "x_θ", "_t", "delta", "Σ"]
ONE_ARG = ["sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log", "ln",
           "log2", "log10", "sqrt", "abs", "sigmoid", "relu", "softplus"]
TWO_ARG = ["pow", "atan2", "hypot"]
MANY_ARG = ["min", "max"]
NUMBER_TEXTS = ["0", "1", "2", "3", "7", "2.", ".5", "0.25", "1.5", "3.25", "1e-1", "2.5E1", "6.02e-1",
                "10", "0.125", "4.75"]
BIG = mpmath.mpf(10) ** 6      # no value beyond this: keeps doubles far from overflow
SMALL = mpmath.mpf(10) ** -4   # no value this close to 0 (exact zeros aside): no cancellation
ERR_LIMIT = 1e4                # ill-conditioned: rounding could reach 2^-53 * 1e4 = 1e-12 relative


# ---------------------------------------------------------------- random choices

class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class DrawChooser:
    def __init__(self, draw):
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))


def _pick(chooser, items):
    return items[chooser.integer(0, len(items) - 1)]


def _chance(chooser, percent: int) -> bool:
    return chooser.integer(0, 99) < percent


# ---------------------------------------------------------------- pieces of expression text

@dataclass
class Piece:
    """An expression as text, as SymPy, and its value; `level` is how tightly its text binds."""

    text: str
    level: int
    sym: object
    value: object               # mpmath.mpf
    starts: str                 # first token: "name", "call", "lpar", "num" or "sign"
    ends: str                   # last token: "name", "num" or "rpar"
    implicit_right: bool        # may stand right of an implicit product (name, call, paren, or one to a power)
    literal: bool = False       # a plain number with an optional sign: an input's definition
    err: float = 1.0            # a bound on its relative rounding error in doubles, in units of 2^-53


def _paren(chooser, p: Piece) -> Piece:
    inner = p.text
    if _chance(chooser, 15):  # a line break inside parentheses does not end the statement
        inner = _pick(chooser, ["\n    ", "\r\n  ", " # inside\n   "]) + inner
    if _chance(chooser, 10):
        inner += _pick(chooser, ["\n", " \n"])
    return Piece(f"({inner})", ATOM, p.sym, p.value, "lpar", "rpar", True, err=p.err)


def _need(chooser, p: Piece, level: int) -> Piece:
    return p if p.level >= level else _paren(chooser, p)


def _space(chooser) -> str:
    return _pick(chooser, [" ", " ", "", "\t", "  "])


def _ok(value) -> bool:
    """Far from overflow, and not so close to 0 that rounding dominates (exact 0 is fine)."""
    return value == 0 or SMALL <= abs(value) <= BIG


def _sum_err(a, b, value) -> float:
    return float((abs(a.value) * a.err + abs(b.value) * b.err) / abs(value)) + 1 if value else 0.0


def _binary(chooser, op: str, a: Piece, b: Piece) -> Piece | None:
    """`a op b` as text, SymPy and value, or None if the value is out of bounds."""
    x, y = a.value, b.value
    if op in ("+", "-"):
        value = x + y if op == "+" else x - y
        if value == 0 and not (a.text == b.text or x == y == 0):
            return None  # 0 here, but maybe not in doubles
        err = _sum_err(a, b, value)
        left, right = _need(chooser, a, SUM), _need(chooser, b, PRODUCT)
        sym = a.sym + b.sym if op == "+" else a.sym - b.sym
        s = _space(chooser)
        return _checked(Piece(f"{left.text}{s}{op}{s}{right.text}", SUM, sym, value, left.starts,
                              right.ends, False, err=err))
    if op in ("*", "/", "implicit"):
        if op == "/":
            if abs(y) < mpmath.mpf("0.01"):
                return None
            value, sym = x / y, a.sym / b.sym
        else:
            value, sym = x * y, a.sym * b.sym
        err = a.err + b.err + 1
        left = _need(chooser, a, PRODUCT)
        if op == "implicit":
            if left.ends == "name":
                left = _paren(chooser, left)
            right = b if b.implicit_right else _paren(chooser, b)
            # `2 e5` needs its space: `2e5` is a number
            glue = " " if right.text[:1] in "eE" and right.text[1:2].isdigit() else _pick(chooser, ["", "", " "])
            return _checked(Piece(f"{left.text}{glue}{right.text}", PRODUCT, sym, value, left.starts,
                                  right.ends, False, err=err))
        right = _need(chooser, b, SIGN)
        s = _space(chooser)
        return _checked(Piece(f"{left.text}{s}{op}{s}{right.text}", PRODUCT, sym, value, left.starts,
                              right.ends, False, err=err))
    raise AssertionError(op)


def _checked(p: Piece) -> Piece | None:
    return p if _ok(p.value) and p.err <= ERR_LIMIT else None


def _number(chooser) -> Piece:
    text = _pick(chooser, NUMBER_TEXTS)
    exact = sympy.Rational(str(Decimal(text)))
    return Piece(text, ATOM, exact, mpmath.mpf(text), "num", "num", False, literal=True)


def _power(chooser, base: Piece, exponent: Piece, spelled_as_call: bool) -> Piece | None:
    x, y = base.value, exponent.value
    if x > mpmath.mpf("0.05"):
        if abs(y) > 8:
            return None
        value = mpmath.power(x, y)
        err = abs(y) * base.err + abs(y * mpmath.log(x)) * exponent.err + 1
    else:
        # a base near 0 or below it: only a small integer literal exponent, as `x^2` or `x^-1`
        n = chooser.integer(-2, 4)
        if n < 0 and abs(x) < mpmath.mpf("0.05"):
            n = -n
        text = str(n) if n >= 0 else _pick(chooser, [f"-{-n}", f"(-{-n})"])
        exponent = Piece(text, SIGN if text[0] == "-" else ATOM, sympy.Integer(n), mpmath.mpf(n),
                         {"-": "sign", "(": "lpar"}.get(text[0], "num"), "rpar" if text[0] == "(" else "num",
                         False)
        value = mpmath.power(x, n)
        err = abs(n) * base.err + 1
    sym = sympy.Pow(base.sym, exponent.sym)
    if spelled_as_call:
        return _checked(_call_piece("pow", [base, exponent], sym, value, err=float(err)))
    left, right = _need(chooser, base, ATOM), _need(chooser, exponent, SIGN)
    caret = _pick(chooser, ["^", "**", "^"])
    return _checked(Piece(f"{left.text}{caret}{right.text}", POWER, sym, value, left.starts, right.ends,
                          left.starts in ("name", "call", "lpar"), err=float(err)))


def _call_piece(func: str, args: list[Piece], sym, value, chooser=None, err=1.0) -> Piece:
    sep = ", "
    if chooser is not None:
        sep = _pick(chooser, [", ", ",", " , ", ",\n  "])
    return Piece(f"{func}({sep.join(a.text for a in args)})", ATOM, sym, value, "call", "rpar", True,
                 err=err)


def _function(chooser, func: str, a: Piece) -> Piece | None:
    """A one-argument function of `a`, or None near its domain edges, kinks and poles."""
    x, s = a.value, a.sym
    m = mpmath
    far = lambda lo: x > m.mpf(lo)  # noqa: E731
    table = {
        "sin": (True, m.sin, sympy.sin),
        "cos": (True, m.cos, sympy.cos),
        "tan": (abs(m.cos(x)) > 0.05, m.tan, sympy.tan),
        "asin": (abs(x) < 0.95, m.asin, sympy.asin),
        "acos": (abs(x) < 0.95, m.acos, sympy.acos),
        "atan": (True, m.atan, sympy.atan),
        "sinh": (abs(x) < 12, m.sinh, sympy.sinh),
        "cosh": (abs(x) < 12, m.cosh, sympy.cosh),
        "tanh": (True, m.tanh, sympy.tanh),
        "exp": (x < 12, m.exp, sympy.exp),
        "log": (far("0.01"), m.log, sympy.log),
        "ln": (far("0.01"), m.log, sympy.log),
        "log2": (far("0.01"), lambda v: m.log(v, 2), lambda v: sympy.log(v, 2)),
        "log10": (far("0.01"), m.log10, lambda v: sympy.log(v, 10)),
        "sqrt": (far("0.01"), m.sqrt, sympy.sqrt),
        "abs": (abs(x) > SMALL, abs, sympy.Abs),
        "sigmoid": (abs(x) < 30, lambda v: 1 / (1 + m.exp(-v)), lambda v: 1 / (1 + sympy.exp(-v))),
        "relu": (abs(x) > SMALL, lambda v: v if v > 0 else m.mpf(0), lambda v: sympy.Max(0, v)),
        "softplus": (abs(x) < 30, lambda v: m.log(1 + m.exp(v)), lambda v: sympy.log(1 + sympy.exp(v))),
    }
    allowed, value_of, sym_of = table[func]
    if not allowed:
        return None
    value = value_of(x)
    # how rounding in x grows through f, and through f' (which the gradient uses)
    d1, d2 = mpmath.diff(value_of, x, 1), mpmath.diff(value_of, x, 2)
    cond = max(abs(x * d1 / value) if value else 0, abs(x * d2 / d1) if d1 else 0)
    err = float(cond) * a.err + 1 if value else 0.0
    return _checked(_call_piece(func, [a], sym_of(s), value, chooser, err))


def _two_arg(chooser, func: str, a: Piece, b: Piece) -> Piece | None:
    y, x = a.value, b.value
    if func == "atan2":
        if mpmath.hypot(x, y) < 0.01 or (x < 0 and abs(y) < 0.01):  # the origin; the branch cut
            return None
        value = mpmath.atan2(y, x)
        if value == 0:
            return None
        err = float(abs(x * y) / (x * x + y * y) / abs(value)) * max(a.err, b.err) + 1
        return _checked(_call_piece(func, [a, b], sympy.atan2(a.sym, b.sym), value, chooser, err))
    if func == "hypot":
        value = mpmath.hypot(y, x)
        if value < 0.01:
            return None
        return _checked(_call_piece(func, [a, b], sympy.sqrt(a.sym**2 + b.sym**2), value, chooser,
                                    max(a.err, b.err) + 1))
    return _power(chooser, a, b, spelled_as_call=True)


def _min_max(chooser, func: str, args: list[Piece]) -> Piece | None:
    values = sorted(a.value for a in args)
    if any(v2 - v1 <= mpmath.mpf("1e-6") * (1 + abs(v2)) for v1, v2 in zip(values, values[1:])):
        return None  # a tie, or nearly: the gradient's kink
    sym = (sympy.Min if func == "min" else sympy.Max)(*[a.sym for a in args])
    value = values[0] if func == "min" else values[-1]
    return _call_piece(func, args, sym, value, chooser, max(a.err for a in args))


def _sign(chooser, a: Piece) -> Piece:
    op = _pick(chooser, ["-", "-", "+"])
    operand = _need(chooser, a, SIGN)
    value, sym = (-a.value, -a.sym) if op == "-" else (a.value, a.sym)
    return Piece(f"{op}{operand.text}", SIGN, sym, value, "sign", operand.ends, False,
                 literal=a.literal and a.level == ATOM, err=a.err)


class _Names(dict):
    """The names defined so far (name -> Piece); each use gets a SymPy symbol of its own."""

    def __init__(self):
        super().__init__()
        self.occurrences: dict[object, str] = {}

    def use(self, name: str) -> Piece:
        symbol = sympy.Symbol(f"{name}#{len(self.occurrences)}", real=True)
        self.occurrences[symbol] = name
        return dataclasses.replace(self[name], sym=symbol)


def _expression(chooser, env: _Names, budget: int) -> Piece:
    """A random expression over the names in `env` (name -> Piece of that name)."""
    if budget <= 1 or _chance(chooser, 25):
        kind = chooser.integer(0, 9)
        if kind < 6 and env:
            return env.use(_pick(chooser, sorted(env)))
        if kind == 6:
            return Piece("pi", ATOM, sympy.pi, +mpmath.pi, "name", "name", True)
        return _number(chooser)
    kind = chooser.integer(0, 13)
    a = _expression(chooser, env, budget // 2)
    if kind <= 5:
        b = _expression(chooser, env, budget // 2)
        op = ["+", "-", "*", "/", "implicit", "implicit"][kind]
        return _binary(chooser, op, a, b) or a
    if kind == 6:
        b = _expression(chooser, env, budget // 2)
        return _power(chooser, a, b, spelled_as_call=False) or a
    if kind <= 9:
        return _function(chooser, _pick(chooser, ONE_ARG), a) or a
    if kind == 10:
        return _sign(chooser, a)
    if kind == 11:
        b = _expression(chooser, env, budget // 2)
        return _two_arg(chooser, _pick(chooser, TWO_ARG), a, b) or a
    if kind == 12:
        args = [a] + [_expression(chooser, env, budget // 3) for _ in range(chooser.integer(1, 3))]
        return _min_max(chooser, _pick(chooser, MANY_ARG), args) or a
    return _paren(chooser, a)


# ---------------------------------------------------------------- programs

@dataclass
class Case:
    """A generated program, the values to run it with, and the independent answer."""

    text: str
    sets: dict[str, float]          # what --set gives (free inputs, and some overridden defaults)
    of: str | None                  # --of, or None for the last statement's name
    output: str
    names: list[str]                # every named variable
    values: dict[str, object]       # name -> mpf
    definitions: dict[str, object] = field(repr=False, default_factory=dict)  # computed name -> SymPy
    order: list[str] = field(repr=False, default_factory=list)  # computed names, dependencies first
    occurrences: dict[object, str] = field(repr=False, default_factory=dict)  # SymPy symbol -> name

    def gradients(self) -> dict[str, tuple[object, object]]:
        """name -> (d output/d name, the same summed in absolute values: the scale of its rounding).

        Reverse accumulation over the named variables with each statement's local partials from
        sympy.diff, evaluated at 40 digits: the total derivative, summed over every path.
        """
        subs = {symbol: sympy.Float(self.values[n], 45) for symbol, n in self.occurrences.items()
                if n in self.values}  # (uses in pieces the generator dropped are in no definition)
        adjoint = {n: mpmath.mpf(0) for n in self.names}
        scale = {n: mpmath.mpf(0) for n in self.names}
        adjoint[self.output] = scale[self.output] = mpmath.mpf(1)
        for name in reversed(self.order):
            if adjoint[name] == 0 and scale[name] == 0:
                continue
            expr = self.definitions[name]
            # each use of a name is a symbol of its own, so that SymPy cannot cancel `x*(1/x)` before
            # differentiating, and the scale sums the uses' contributions in absolute value
            for use in sorted(expr.free_symbols, key=str):
                # xreplace, not evalf(subs=): evalf leaves a cancelled `0.e-193` that Max cannot compare
                d = sympy.diff(expr, use).xreplace(subs).evalf(45)
                partial = mpmath.mpf(str(d))
                dep = self.occurrences[use]
                adjoint[dep] += adjoint[name] * partial
                scale[dep] += scale[name] * abs(partial)
        return {n: (adjoint[n], scale[n]) for n in self.names}


def _literal_text(chooser, value_text: str) -> str:
    return _pick(chooser, ["", "", "-", "+"]) + value_text


def generate(chooser) -> Case:
    pool = list(NAMES)
    names = []
    for _ in range(chooser.integer(2, 8)):
        name = pool.pop(chooser.integer(0, len(pool) - 1))
        names.append(name)
    n_inputs = chooser.integer(1, min(3, len(names) - 1))
    inputs, computed = names[:n_inputs], names[n_inputs:]
    env = _Names()
    values: dict[str, object] = {}
    statements: list[tuple[str, str]] = []   # (name, right side text)
    sets: dict[str, float] = {}
    for name in inputs:
        text = _pick(chooser, NUMBER_TEXTS[1:]) if _chance(chooser, 70) else \
            f"{chooser.integer(-3000, 3000) / 1000:g}".replace("-", "")
        literal = _literal_text(chooser, text)
        value = float(mpmath.mpf(text)) * (-1 if literal.startswith("-") else 1)
        if value == 0 or abs(value) < 1e-3:
            value, literal = 1.0, "1"
        how = chooser.integer(0, 9)
        if how < 3:          # a free input, given with --set
            sets[name] = value
        else:
            statements.append((name, literal))
            if how == 3:     # a default that --set overrides
                value = chooser.integer(-20, 20) / 4 or 0.5
                sets[name] = value
        values[name] = mpmath.mpf(value)
        env[name] = Piece(name, ATOM, None, mpmath.mpf(value), "name", "name", True, err=0.0)

    definitions, order = {}, []
    for name in computed:
        piece = _expression(chooser, env, chooser.integer(1, 12))
        if piece.literal:  # `c = 2` would make c an input; keep it computed
            piece = _paren(chooser, piece)
        statements.append((name, piece.text))
        definitions[name] = piece.sym
        order.append(name)
        values[name] = piece.value
        env[name] = Piece(name, ATOM, None, piece.value, "name", "name", True, err=piece.err)

    # statements in any order: a few swaps
    for _ in range(chooser.integer(0, 3)):
        i, j = chooser.integer(0, len(statements) - 1), chooser.integer(0, len(statements) - 1)
        statements[i], statements[j] = statements[j], statements[i]
    last = statements[-1][0]
    of = _pick(chooser, names) if _chance(chooser, 20) else None
    # every named variable diffcli reports: assigned names and free inputs that are used
    used = {n for n, _ in statements}
    for _, rhs in statements:  # names in the text: SymPy may have simplified some away (`b/b`)
        used |= set(_names_in(rhs)) - set(ONE_ARG + TWO_ARG + MANY_ARG + ["pi"])
    for name in [n for n in sets if n not in used]:  # a free input nothing uses is not in the program
        del sets[name]
    names = [n for n in names if n in used]
    if of is not None and of not in names:
        of = None
    text = _layout(chooser, statements)
    return Case(text, sets, of, of or last, names, {n: values[n] for n in names}, definitions, order,
                env.occurrences)


_TOKEN = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|([^\W\d]\w*)")


def _names_in(text: str) -> list[str]:
    text = re.sub(r"#[^\n]*", "", text)
    return [m.group(3) for m in _TOKEN.finditer(text) if m.group(3)]


def _layout(chooser, statements) -> str:
    out = []
    if _chance(chooser, 20):
        out.append(_pick(chooser, ["# generated\n", "\n", "  \n# two\n\n"]))
    for k, (name, rhs) in enumerate(statements):
        s = _space(chooser)
        out.append(f"{name}{s}={_space(chooser) or ' '}{rhs}")
        if _chance(chooser, 15):
            out.append(_pick(chooser, ["  # note", " #θ", "\t# x = 1"]))
        last = k == len(statements) - 1
        if last and _chance(chooser, 20):
            continue  # no line break at the end of the file
        sep = _pick(chooser, ["\n", "\n", "\n", "\r\n", ";", " ; ", ";\n", "\n\n", "\n# c\n"])
        if out[-1].lstrip().startswith("#") and ";" in sep:
            sep = "\n"  # a `;` after a comment is part of the comment
        out.append(sep)
    return "".join(out)


@st.composite
def programs(draw) -> Case:
    return generate(DrawChooser(draw))


# ---------------------------------------------------------------- comparing with diffcli

REL, ABS = mpmath.mpf("1e-9"), mpmath.mpf("1e-12")


def close(got: float, want, scale=0) -> bool:
    """Within a relative 1e-9 of the answer, or of `scale` (the size of what was summed into it)."""
    error = abs(mpmath.mpf(got) - want)
    return error <= REL * max(abs(want), scale) + ABS * max(1, scale)


def mismatches(case: Case, result) -> list[str]:
    """How diffcli's Gradients result differs from the independent answer (empty if it does not)."""
    problems = []
    if result.output != case.output:
        problems.append(f"output {result.output} != {case.output}")
    if set(result.values) != set(case.names):
        problems.append(f"names {sorted(result.values)} != {sorted(case.names)}")
        return problems
    for name in case.names:
        if not close(result.values[name], case.values[name]):
            problems.append(f"value of {name}: {result.values[name]!r} != {mpmath.nstr(case.values[name], 17)}")
    for name, (want, scale) in case.gradients().items():
        got = result.gradients[name]
        if not math.isfinite(got) or not close(got, want, scale):
            problems.append(f"d{case.output}/d{name}: {got!r} != {mpmath.nstr(want, 17)}")
    return problems
