"""The table of operations: the one place where diffcli's math lives.

Each entry writes an operation's value and, beside it, its partial derivative with respect to each
argument (as PyTorch's derivatives.yaml does), once, against a small math namespace `m`:
`m.cos(x)`, `m.where(cond, a, b)` rather than Python's `if`. A partial is `rule(m, out, *args)`, a
function of the operation's result and its arguments. Every reader builds its own table from these
rules by applying them to its own namespace, once, at import (as JAX builds one rule table per
interpreter):

- floats (`math`): the rules printed as Python and compiled, so the hot scalar path calls plain
  functions (or `operator.add`, `math.sin` themselves) and pays nothing for the indirection;
- NumPy arrays (`backend("numpy")`), dual numbers for second derivatives (`backend("dual")`),
  SymPy for symbolic derivations (`backend("sympy")`);
- source printers for Python, C and JavaScript (`printer(lang)`), for generated code.

Adding an operation is one entry in `_ENTRIES` plus its test; every command picks it up.

Forward values raise ValueError, ZeroDivisionError or OverflowError outside their domain on floats
(the math module does this), and give inf/NaN on arrays; the engines turn either into a diagnostic.
At kinks the convention is PyTorch's: relu'(0) = abs'(0) = 0, ties in min/max share the gradient
evenly. 0^0 = 1, and d(x^y)/dx is 0 where y = 0. Second derivatives follow from the same rules (the
dual backend pushes tangents through the partials): relu'' = abs'' = 0 everywhere.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Callable, NamedTuple

# ================================================================ the rules, once

def _sigmoid(m, x):
    # 1/(1+e^-x), in a form that cannot overflow on either side
    return m.where(x >= 0.0, 1.0 / (1.0 + m.exp(-x)), m.exp(x) / (1.0 + m.exp(x)))


def _softplus(m, x):
    # log(1 + e^x) without overflow: x + log(1 + e^-x) for large x
    return m.where(x > 0.0, x + m.log1p(m.exp(-x)), m.log1p(m.exp(x)))


def _pow_dx(m, out, x, y):
    # y·x^(y-1), 0 at y = 0. On dual numbers (the second derivatives), 0 there is written y/x, so
    # that its own derivative in y, 1/x, is kept (∂²(x^y)/∂x∂y); at 0^0 the constant 0 (the divisor
    # guarded: both sides of a `where` are computed). Elsewhere (floats, NumPy, the printed code),
    # the constant 0, computed and printed as before.
    if getattr(type(m), "duals", False):  # (the class's: a namespace that writes text answers any name)
        return m.where(m.eq(y, 0.0), m.where(m.eq(x, 0.0), 0.0, y / m.where(m.eq(x, 0.0), 1.0, x)),
                       y * m.pow(x, y - 1.0))
    return m.where(m.eq(y, 0.0), 0.0, y * m.pow(x, y - 1.0))


def _pow_dy(m, out, x, y):
    # undefined (x < 0, or 0^y with y <= 0): NaN, an error only where this partial is needed
    return m.where(x > 0.0, out * m.log(x), m.where(m.both(m.eq(x, 0.0), y > 0.0), 0.0, m.nan))


def _tie_share(m, i, out, xs):
    """d min/max / d xs[i]: 1 split evenly among the arguments equal to the result."""
    return m.where(m.eq(xs[i], out), 1.0 / m.count_equal(xs, out), 0.0)


def _sign(m, x):
    return m.where(x > 0.0, 1.0, m.where(x < 0.0, -1.0, 0.0))


def _step(m, x):
    return m.where(x > 0.0, 1.0, 0.0)


def _zero(m, out, *xs):
    return 0.0


def _one(m, out, *xs):
    return 1.0


# -- why a value is outside the domain, for the diagnostics (floats only) ------------------------

def _division_problem(xs):
    if xs[1] == 0:
        return "division by zero in `{where}`", "the divisor is 0 here"
    return None


def _power_problem(xs):
    x, y = xs
    if x == 0 and y < 0:
        return "zero to a negative power in `{where}`: {shown}", None
    if x < 0 and math.isfinite(y) and y != int(y):
        return ("a negative base with a non-integer exponent in `{where}`: {shown}",
                "a real power of a negative number needs an integer exponent")
    return None


def _power_derivative_problem(n):
    if n == 1:
        return ("the derivative of `{where}` with respect to the exponent is undefined at {shown}",
                "d(x^y)/dy = x^y·ln(x) needs x > 0 (or x = 0 with y > 0)")
    return None


# -- kinks: where a derivative jumps, so that a finite difference disagrees by nature -------------
# Each tells whether a step that moves the arguments by `moves` (signed) from `xs` crosses the kink,
# and names it; None when it does not. A move of 0 never crosses: ties that move together stay tied.

def _kink_at_zero(name):
    def crossed(out, xs, moves):
        x, move = xs[0], moves[0]
        if move != 0 and abs(x) <= abs(move):
            return f"{name} at 0" if x == 0 else f"{name} near 0 (argument {x:.3g})"
        return None

    return crossed


def _kink_at_tie(name):
    def crossed(out, xs, moves):
        w = xs.index(out)  # an argument that is the result; any other that can reach it is a tie
        for i, x in enumerate(xs):
            gap, closing = abs(x - out), abs(moves[i] - moves[w])
            if i != w and closing != 0 and gap <= closing:
                what = "tie" if gap == 0 else f"near tie ({gap:.3g} apart)"
                return f"{name} {what} between arguments {min(i, w) + 1} and {max(i, w) + 1}"
        return None

    return crossed


class Op(NamedTuple):
    """One operation. `value` and `partials` are the float table's callables, the engine's hot path;
    `rule` and `partial_rules` are the backend-free definitions every other table is built from."""

    key: str                    # unique: "add", "neg", "power" (`^`), "pow" (the function), "sin", ...
    name: str                   # as a user writes it: "+", "-", "sin", "ln"
    arity: int                  # number of arguments; 0 means two or more (min, max)
    value: Callable[..., float]
    partials: tuple             # float partial(out, *args) per argument; () for variadic ops
    rule: Callable              # rule(m, *args)
    partial_rules: tuple        # rule(m, out, *args) per argument; variadic: (rule(m, i, out, args),)
    domain: str = ""            # where the operation is defined, for error messages
    infix: bool = False         # drawn and printed between its arguments
    commutative: bool = False   # a diagram need not say which argument is which
    glyph: str = ""             # how a picture writes it, if not as `name`
    kink: Callable | None = None        # kink(out, xs, moves) -> description or None (check)
    symbolic: str = "rule"      # SymPy form: "rule" (apply the value rule) or "named" (a function of its own)
    value_problem: Callable | None = None       # xs -> (message, help) for a domain error, or None
    derivative_problem: Callable | None = None  # n -> (message, help) for an undefined partial n


def _entry(key, name, arity, rule, partial_rules, **extra):
    return dict(key=key, name=name, arity=arity, rule=rule, partial_rules=tuple(partial_rules), **extra)


_ENTRIES: list[dict] = [
    _entry("add", "+", 2, lambda m, x, y: x + y, (_one, _one), infix=True, commutative=True),
    _entry("sub", "-", 2, lambda m, x, y: x - y, (_one, lambda m, out, x, y: -1.0), infix=True, glyph="−"),
    _entry("mul", "*", 2, lambda m, x, y: x * y,
           (lambda m, out, x, y: y, lambda m, out, x, y: x), infix=True, commutative=True, glyph="×"),
    _entry("div", "/", 2, lambda m, x, y: x / y,
           (lambda m, out, x, y: 1.0 / y, lambda m, out, x, y: -out / y), infix=True, glyph="÷",
           domain="a divisor other than 0", value_problem=_division_problem),
    _entry("power", "^", 2, lambda m, x, y: m.pow(x, y),
           (_pow_dx, _pow_dy), infix=True,
           domain="a base ≥ 0, or an integer exponent; no 0 to a negative power",
           value_problem=_power_problem, derivative_problem=_power_derivative_problem),
    _entry("neg", "-", 1, lambda m, x: -x, (lambda m, out, x: -1.0,), glyph="−"),
    _entry("pos", "+", 1, lambda m, x: x, (_one,)),
    # a named variable whose definition is another name (`b = a`) gets a node of its own
    _entry("id", "=", 1, lambda m, x: x, (_one,)),
    _entry("sin", "sin", 1, lambda m, x: m.sin(x), (lambda m, out, x: m.cos(x),)),
    _entry("cos", "cos", 1, lambda m, x: m.cos(x), (lambda m, out, x: -m.sin(x),)),
    _entry("tan", "tan", 1, lambda m, x: m.tan(x), (lambda m, out, x: 1.0 + out * out,)),
    _entry("asin", "asin", 1, lambda m, x: m.asin(x),
           (lambda m, out, x: 1.0 / m.sqrt(1.0 - x * x),), domain="-1 ≤ x ≤ 1"),
    _entry("acos", "acos", 1, lambda m, x: m.acos(x),
           (lambda m, out, x: -1.0 / m.sqrt(1.0 - x * x),), domain="-1 ≤ x ≤ 1"),
    _entry("atan", "atan", 1, lambda m, x: m.atan(x), (lambda m, out, x: 1.0 / (1.0 + x * x),)),
    _entry("sinh", "sinh", 1, lambda m, x: m.sinh(x), (lambda m, out, x: m.cosh(x),)),
    _entry("cosh", "cosh", 1, lambda m, x: m.cosh(x), (lambda m, out, x: m.sinh(x),)),
    _entry("tanh", "tanh", 1, lambda m, x: m.tanh(x), (lambda m, out, x: 1.0 - out * out,)),
    _entry("exp", "exp", 1, lambda m, x: m.exp(x), (lambda m, out, x: out,)),
    _entry("log", "log", 1, lambda m, x: m.log(x), (lambda m, out, x: 1.0 / x,), domain="x > 0"),
    _entry("log2", "log2", 1, lambda m, x: m.log2(x), (lambda m, out, x: 1.0 / (x * m.log(2.0)),), domain="x > 0"),
    _entry("log10", "log10", 1, lambda m, x: m.log10(x), (lambda m, out, x: 1.0 / (x * m.log(10.0)),),
           domain="x > 0"),
    _entry("sqrt", "sqrt", 1, lambda m, x: m.sqrt(x), (lambda m, out, x: 0.5 / out,), domain="x ≥ 0"),
    _entry("abs", "abs", 1, lambda m, x: m.fabs(x), (lambda m, out, x: _sign(m, x),),
           kink=_kink_at_zero("abs")),
    # -1, 0 or 1; as PyTorch: derivative 0 everywhere, a jump (a kink for `check`) at 0
    _entry("sign", "sign", 1, _sign, (_zero,), kink=_kink_at_zero("sign"), symbolic="named"),
    _entry("sigmoid", "sigmoid", 1, _sigmoid, (lambda m, out, x: out * (1.0 - out),), symbolic="named"),
    _entry("relu", "relu", 1, lambda m, x: m.where(x > 0.0, x, 0.0), (lambda m, out, x: _step(m, x),),
           kink=_kink_at_zero("relu"), symbolic="named"),
    _entry("softplus", "softplus", 1, _softplus, (lambda m, out, x: m.op("sigmoid", x),), symbolic="named"),
    _entry("atan2", "atan2", 2, lambda m, y, x: m.atan2(y, x),
           (lambda m, out, y, x: x / (x * x + y * y), lambda m, out, y, x: -y / (x * x + y * y))),
    _entry("hypot", "hypot", 2, lambda m, x, y: m.hypot(x, y),
           (lambda m, out, x, y: x / out, lambda m, out, x, y: y / out), commutative=True),
    _entry("min", "min", 0, lambda m, *xs: m.min(*xs), (_tie_share,), commutative=True,
           kink=_kink_at_tie("min")),
    _entry("max", "max", 0, lambda m, *xs: m.max(*xs), (_tie_share,), commutative=True,
           kink=_kink_at_tie("max")),
]

CONSTANTS = {"pi": math.pi}
_RULES: dict[str, Callable] = {}


# ================================================================ source printers

class Operators:
    """Python's arithmetic and comparison operators, each handed to `_binary(symbol, other, swap)`
    (a value that builds what the rules do with it: source text here, batch_plan's traced calls)."""

    __slots__ = ()

    __add__ = lambda s, o: s._binary("+", o)
    __radd__ = lambda s, o: s._binary("+", o, True)
    __sub__ = lambda s, o: s._binary("-", o)
    __rsub__ = lambda s, o: s._binary("-", o, True)
    __mul__ = lambda s, o: s._binary("*", o)
    __rmul__ = lambda s, o: s._binary("*", o, True)
    __truediv__ = lambda s, o: s._binary("/", o)
    __rtruediv__ = lambda s, o: s._binary("/", o, True)
    __gt__ = lambda s, o: s._binary(">", o)
    __ge__ = lambda s, o: s._binary(">=", o)
    __lt__ = lambda s, o: s._binary("<", o)
    __le__ = lambda s, o: s._binary("<=", o)


class Code(Operators, str):
    """A piece of source text in some language, which builds bigger pieces with Python's operators.
    Every compound piece is parenthesized, so that no precedence table is needed."""

    __slots__ = ()
    lang: "Printer"

    def _wrap(self, text):
        return self.lang.code(text)

    def _lift(self, other):
        return other if isinstance(other, Code) else self.lang.number(other)

    def _binary(self, symbol, other, swap=False):
        a, b = (self._lift(other), self) if swap else (self, self._lift(other))
        return self._wrap(f"({a} {symbol} {b})")

    __eq__ = lambda s, o: s._binary("==", o)
    __hash__ = str.__hash__

    def __neg__(self):
        return self._wrap(f"(-{self})")


_PRIMITIVES_1 = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log",
                 "log2", "log10", "log1p", "sqrt", "fabs")
_PRIMITIVES_2 = ("pow", "atan2", "hypot")


class Printer:
    """A math namespace whose values are source text in one language."""

    def __init__(self, lang, call_prefix, renames, conditional, conjunction, nan, variadic):
        self.lang = lang
        self.call_prefix, self.renames = call_prefix, renames
        self.conditional, self.conjunction, self.nan_text, self.variadic = conditional, conjunction, nan, variadic
        self.code_class = type(f"Code_{lang}", (Code,), {"lang": self, "__slots__": ()})
        for f in _PRIMITIVES_1 + _PRIMITIVES_2:
            setattr(self, f, functools.partial(self._call, f))

    def code(self, text) -> Code:
        return self.code_class(text)

    def number(self, x) -> Code:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"no {self.lang} literal for {x}")
        return self.code(repr(x))

    def _call(self, f, *args):
        return self.code(f"{self.call_prefix}{self.renames.get(f, f)}({', '.join(map(self._text, args))})")

    def _text(self, x):
        return x if isinstance(x, Code) else self.number(x)

    @property
    def nan(self):
        return self.code(self.nan_text)

    def where(self, cond, a, b):
        return self.code(self.conditional.format(c=cond, a=self._text(a), b=self._text(b)))

    def both(self, a, b):
        return self.code(f"({a} {self.conjunction} {b})")

    def eq(self, a, b):
        return self.code(f"({self._text(a)} == {self._text(b)})")

    def count_equal(self, xs, out):
        if isinstance(xs, CodeSeq):  # the arguments as one sequence (the compiled float table)
            return self.code(f"sum(1.0 for _x in {xs.name} if _x == {out})")
        return self.code("(" + " + ".join(str(self.where(self.eq(x, out), 1.0, 0.0)) for x in xs) + ")")

    def min(self, *xs):
        return self.variadic("min", [self._text(x) for x in xs], self)

    def max(self, *xs):
        return self.variadic("max", [self._text(x) for x in xs], self)

    def op(self, key, *args):
        """Another operation's value, written out in place (its value rule, printed)."""
        return _RULES[key](self, *args)

    def variables(self, *names) -> list[Code]:
        return [self.code(n) for n in names]


class CodeSeq:
    """A sequence of arguments known by one name (`xs`), indexed by code (`xs[i]`)."""

    def __init__(self, lang: Printer, name: str):
        self.lang, self.name = lang, name

    def __getitem__(self, i):
        return self.lang.code(f"{self.name}[{i}]")


def _python_variadic(f, xs, p):
    return p.code(f"{f}({', '.join(xs)})")


def _c_variadic(f, xs, p):
    text = xs[0]
    for x in xs[1:]:
        text = f"f{f}({text}, {x})"
    return p.code(text)


def _js_variadic(f, xs, p):
    return p.code(f"Math.{f}({', '.join(xs)})")


def _numpy_variadic(f, xs, p):
    text = xs[0]
    for x in xs[1:]:  # as backend("numpy"): functools.reduce(np.minimum, xs)
        text = f"np.{f}imum({text}, {x})"
    return p.code(text)


PRINTERS = {
    "python": lambda: Printer("python", "math.", {}, "({a} if {c} else {b})", "and", "math.nan",
                              _python_variadic),
    "c": lambda: Printer("c", "", {}, "({c} ? {a} : {b})", "&&", "NAN", _c_variadic),
    "javascript": lambda: Printer("javascript", "Math.", {"fabs": "abs"}, "({c} ? {a} : {b})", "&&",
                                  "NaN", _js_variadic),
    # Python over NumPy arrays (generated code of array programs): the calls backend("numpy") makes
    "numpy": lambda: Printer("numpy", "np.", {"asin": "arcsin", "acos": "arccos", "atan": "arctan",
                                              "atan2": "arctan2", "pow": "power"},
                             "np.where({c}, {a}, {b})", "&", "np.nan", _numpy_variadic),
}


@functools.lru_cache(maxsize=None)
def printer(lang: str) -> Printer:
    """The math namespace that writes source text in `lang` ("python", "c", "javascript", or "numpy":
    Python over NumPy arrays)."""
    return PRINTERS[lang]()


# ================================================================ the float table, compiled

_PARAMETERS = {1: ("x",), 2: ("x", "y")}
# a rule that prints as exactly one of these is that C function itself: no Python frame at all
_BUILTIN = {"(x + y)": operator.add, "(x - y)": operator.sub, "(x * y)": operator.mul,
            "(x / y)": operator.truediv, "(-x)": operator.neg}


def _compile(name: str, parameters, body: str) -> Callable:
    builtin = _BUILTIN.get(body) if parameters == ("x", "y") or parameters == ("x",) else None
    if builtin is not None:
        return builtin
    call = f"math.{body[5:body.index('(')]}" if body.startswith("math.") else ""
    if call and body == f"{call}({', '.join(parameters)})" and parameters[0] == "x":
        return getattr(math, call[5:])
    namespace = {"math": math}
    # Our own rules' text, never a file's: this is how the table pays nothing for its indirection.
    exec(f"def {name}({', '.join(parameters)}):\n    return {body}\n", namespace)  # noqa: S102
    return namespace[name]


def _float_op(entry: dict) -> Op:
    python = printer("python")
    arity = entry["arity"]
    if arity == 0:  # variadic: `min(*xs)`; its partial takes the argument's index first
        value = {"min": min, "max": max}[entry["key"]]
        xs = CodeSeq(python, "xs")
        body = python._text(entry["partial_rules"][0](python, python.code("i"), python.code("out"), xs))
        partial = _compile(f"{entry['key']}_d", ("i", "out", "*xs"), str(body))
        return Op(value=value, partials=(partial,), **entry)
    params = _PARAMETERS[arity]
    xs = python.variables(*params)
    value = _compile(f"{entry['key']}_value", params, str(entry["rule"](python, *xs)))
    partials = tuple(
        _compile(f"{entry['key']}_d{n}", ("out",) + params,
                 str(python._text(rule(python, python.code("out"), *xs))))
        for n, rule in enumerate(entry["partial_rules"])
    )
    return Op(value=value, partials=partials, **entry)


OPS: dict[str, Op] = {}            # every operation by its unique key
OPERATORS: dict[str, Op] = {}      # the parser's operator names ("add", "pow", "neg") -> entries
FUNCTIONS: dict[str, Op] = {}      # function names -> entries
RESERVED: set[str] = set(CONSTANTS)  # names a program cannot assign


def define(key: str, name: str, arity: int, rule, partial_rules, *, operator: str | None = None,
           **extra) -> Op:
    """Add an operation to every table: the one way in, for the built-in entries and any other."""
    entry = _entry(key, name, arity, rule, partial_rules, **extra)
    _RULES[key] = rule
    op = OPS[key] = _float_op(entry)
    if operator is not None:
        OPERATORS[operator] = op
    elif name.isidentifier():
        FUNCTIONS[name] = op
        RESERVED.add(name)
    return op


def forget(key: str) -> None:
    """Remove an operation from every table (for tests that define one)."""
    op = OPS.pop(key)
    _RULES.pop(key, None)
    for table in (OPERATORS, FUNCTIONS):
        for name in [n for n, o in table.items() if o is op]:
            del table[name]
    if op.name not in FUNCTIONS and op.name not in CONSTANTS:
        RESERVED.discard(op.name)


_OPERATOR_NAMES = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "power": "pow",
                   "neg": "neg", "pos": "pos", "id": "id"}
for _e in _ENTRIES:
    define(**_e, operator=_OPERATOR_NAMES.get(_e["key"]))
    if _e["key"] == "log":  # `ln` is `log` under another name (so that messages say `ln`)
        define(**dict(_e, key="ln", name="ln"))
    if _e["key"] == "power":  # `pow(x, y)` is `x^y` written as a call
        define(**dict(_e, key="pow", name="pow", infix=False))

# Functions beyond SPEC.md's list: the SPEC reserves only its own function names, so a file may use
# these for its variables (`sign = -1`); such a file cannot also call them.
EXTENSIONS = frozenset({"sign"})
RESERVED -= EXTENSIONS


def partials_for(op: Op, nargs: int) -> tuple:
    """The float partial functions of `op` applied to `nargs` arguments."""
    if op.arity:
        return op.partials
    return _variadic_partials(op.key, nargs)


@functools.lru_cache(maxsize=64)
def _variadic_partials(key: str, nargs: int) -> tuple:
    partial = OPS[key].partials[0]
    return tuple(functools.partial(partial, i) for i in range(nargs))


def arity_text(op: Op) -> str:
    if op.arity == 0:
        return "2 or more arguments"
    return "1 argument" if op.arity == 1 else f"{op.arity} arguments"


def apply(op: Op, m, *args):
    """op's value in the namespace m."""
    return op.rule(m, *args)


def apply_partial(op: Op, m, n: int, out, *args):
    """op's partial with respect to argument n, in the namespace m."""
    if op.arity == 0:
        return op.partial_rules[0](m, n, out, args)
    return op.partial_rules[n](m, out, *args)


# ================================================================ other backends, built on demand

@functools.lru_cache(maxsize=None)
def backend(name: str):
    """The math namespace called `name`: "numpy", "dual", "sympy", or a printer's language. (NumPy
    and SymPy are imported only by the commands that need them.) The float table is `OPS` itself."""
    if name == "numpy":
        return _NumPy()
    if name == "dual":
        return _Duals()
    if name == "numpy-dual":
        return _ArrayDuals()
    if name == "sympy":
        return _SymPy()
    if name in PRINTERS:
        return printer(name)
    raise KeyError(name)


class _NumPy:
    """Arrays of points. Both sides of a `where` are computed (under np.errstate, by the caller), and
    the one chosen at each point is kept, so each point gets what the float table gives it."""

    def __init__(self):
        import numpy as np

        self.np = np
        self.nan = np.nan
        for f in _PRIMITIVES_1 + _PRIMITIVES_2:
            setattr(self, f, getattr(np, {"pow": "power", "asin": "arcsin", "acos": "arccos",
                                          "atan": "arctan", "atan2": "arctan2"}.get(f, f)))

    def where(self, cond, a, b):
        return self.np.where(cond, a, b)

    def both(self, a, b):
        return self.np.logical_and(a, b)

    def eq(self, a, b):
        return self.np.equal(a, b)

    def count_equal(self, xs, out):
        # a constant argument may meet an array result (max(x, 0)): compare with NumPy either way
        return sum(self.np.equal(x, out).astype(float) for x in xs)

    def min(self, *xs):
        return functools.reduce(self.np.minimum, xs)

    def max(self, *xs):
        return functools.reduce(self.np.maximum, xs)

    def op(self, key, *args):
        return OPS[key].rule(self, *args)


class Dual:
    """A value with a tangent (a float, or an array of several directions): x + t·ε, ε² = 0.
    Pushed through the partial rules, it gives the second derivatives from the first."""

    __slots__ = ("v", "t")

    def __init__(self, v, t=0.0):
        self.v, self.t = v, t

    @staticmethod
    def lift(x):
        return x if isinstance(x, Dual) else Dual(float(x), 0.0)

    def __add__(self, o):
        o = Dual.lift(o)
        return Dual(self.v + o.v, self.t + o.t)

    __radd__ = __add__

    def __sub__(self, o):
        o = Dual.lift(o)
        return Dual(self.v - o.v, self.t - o.t)

    def __rsub__(self, o):
        return Dual.lift(o) - self

    def __mul__(self, o):
        o = Dual.lift(o)
        return Dual(self.v * o.v, self.t * o.v + self.v * o.t)

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = Dual.lift(o)
        if o.v == 0.0:
            return Dual(math.nan, self.t * math.nan)
        v = self.v / o.v
        return Dual(v, (self.t - v * o.t) / o.v)

    def __rtruediv__(self, o):
        return Dual.lift(o) / self

    def __neg__(self):
        return Dual(-self.v, -self.t)

    # comparisons see the value only: a where() chooses a branch by the value, as on floats
    __gt__ = lambda s, o: s.v > Dual.lift(o).v
    __ge__ = lambda s, o: s.v >= Dual.lift(o).v
    __lt__ = lambda s, o: s.v < Dual.lift(o).v
    __le__ = lambda s, o: s.v <= Dual.lift(o).v
    __eq__ = lambda s, o: s.v == Dual.lift(o).v
    __hash__ = None

    def __repr__(self):
        return f"Dual({self.v!r}, {self.t!r})"


def _guarded(f, *xs) -> float:
    """f(*xs) on floats, NaN (or inf) where it is undefined rather than an exception: both sides of a
    where() are computed on duals, as on arrays, and only the chosen one must be defined."""
    try:
        return f(*xs)
    except OverflowError:
        return math.inf
    except (ValueError, ZeroDivisionError):
        return math.nan


def _moves(t) -> bool:
    """Whether a tangent is not (all) zero: a partial is only needed where something flows."""
    if isinstance(t, float):
        return t != 0.0
    return bool((t != 0).any())


def _scaled(p, t):
    """p·t, where p may be undefined (inf or NaN) only at directions whose t is 0."""
    if isinstance(t, float):
        return p * t
    import numpy as np

    with np.errstate(all="ignore"):
        return np.where(t != 0, p * t, 0.0)


class _Duals:
    """Dual numbers. Each primitive is lifted with its own first derivative; those of the primitives
    that are operations come from the table (so `sin`'s derivative is written once, in sin's entry)."""

    nan = math.nan
    duals = True  # (read by a rule whose second derivative needs a form of its own: _pow_dx)

    def __init__(self):
        for f in _PRIMITIVES_1 + _PRIMITIVES_2:
            key = {"pow": "power", "fabs": "abs"}.get(f, f)
            if key in OPS:
                partials = OPS[key].partials
            else:  # log1p, the one primitive that is no operation of the language
                partials = (lambda out, x: 1.0 / (1.0 + x),)
            setattr(self, f, self._lifted(getattr(math, f), partials))

    @staticmethod
    def _lifted(value, partials):
        def f(*args):
            args = [Dual.lift(a) for a in args]
            xs = [a.v for a in args]
            out = _guarded(value, *xs)
            t = 0.0
            for p, a in zip(partials, args):
                if _moves(a.t):
                    t = t + _scaled(_guarded(p, out, *xs), a.t)
            return Dual(out, t)

        return f

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    @staticmethod
    def both(a, b):
        return a and b

    @staticmethod
    def eq(a, b):
        return Dual.lift(a).v == Dual.lift(b).v

    @staticmethod
    def count_equal(xs, out):
        return float(sum(1 for x in xs if x == out))

    def _select(self, pick, *xs):
        xs = [Dual.lift(x) for x in xs]
        best = pick(x.v for x in xs)
        tied = [x.t for x in xs if x.v == best]
        return Dual(best, functools.reduce(operator.add, tied) / len(tied) if len(tied) > 1 else tied[0])

    def min(self, *xs):
        return self._select(min, *xs)

    def max(self, *xs):
        return self._select(max, *xs)

    def op(self, key, *args):
        return OPS[key].rule(self, *args)


class ArrayDual:
    """A NumPy array with a tangent of its shape (or a scalar one): Dual's arithmetic, elementwise.
    The array Hessian (interpreters/array_hessian.py) pushes it through an elementwise operation's
    partial rules with a unit tangent on one argument, which gives that partial's derivative, the
    second derivative, at every element at once."""

    __slots__ = ("v", "t")

    def __init__(self, v, t=0.0):
        self.v, self.t = v, t

    @staticmethod
    def lift(x):
        return x if x.__class__ is ArrayDual else ArrayDual(x, 0.0)

    def __add__(self, o):
        o = ArrayDual.lift(o)
        return ArrayDual(self.v + o.v, self.t + o.t)

    __radd__ = __add__

    def __sub__(self, o):
        o = ArrayDual.lift(o)
        return ArrayDual(self.v - o.v, self.t - o.t)

    def __rsub__(self, o):
        return ArrayDual.lift(o) - self

    def __mul__(self, o):
        o = ArrayDual.lift(o)
        return ArrayDual(self.v * o.v, self.t * o.v + self.v * o.t)

    __rmul__ = __mul__

    def __truediv__(self, o):  # (x/0: inf or NaN, under the caller's np.errstate)
        o = ArrayDual.lift(o)
        v = self.v / o.v
        return ArrayDual(v, (self.t - v * o.t) / o.v)

    def __rtruediv__(self, o):
        return ArrayDual.lift(o) / self

    def __neg__(self):
        return ArrayDual(-self.v, -self.t)

    # comparisons see the value only (arrays of booleans, for where())
    __gt__ = lambda s, o: s.v > ArrayDual.lift(o).v
    __ge__ = lambda s, o: s.v >= ArrayDual.lift(o).v
    __lt__ = lambda s, o: s.v < ArrayDual.lift(o).v
    __le__ = lambda s, o: s.v <= ArrayDual.lift(o).v
    __eq__ = lambda s, o: s.v == ArrayDual.lift(o).v
    __hash__ = None


class _ArrayDuals:
    """ArrayDuals: each primitive lifted with its first derivative from the table, on NumPy arrays
    (as _Duals lifts them on floats)."""

    duals = True  # (as _Duals')

    def __init__(self):
        import numpy as np

        self.np = np
        self.nan = np.nan
        numeric = backend("numpy")
        for f in _PRIMITIVES_1 + _PRIMITIVES_2:
            key = {"pow": "power", "fabs": "abs"}.get(f, f)
            value = getattr(numeric, f) if f != "log1p" and f != "fabs" else getattr(np, {"fabs": "abs"}.get(f, f))
            if key in OPS:
                op = OPS[key]
                partials = tuple(functools.partial(apply_partial, op, numeric, n) for n in range(op.arity))
            else:  # log1p, the one primitive that is no operation of the language
                partials = (lambda out, x: 1.0 / (1.0 + x),)
            setattr(self, f, self._lifted(value, partials))

    @staticmethod
    def _lifted(value, partials):
        def f(*args):
            args = [ArrayDual.lift(a) for a in args]
            xs = [a.v for a in args]
            out = value(*xs)
            t = 0.0
            for p, a in zip(partials, args):
                if a.t.__class__ is not float or a.t != 0.0:
                    t = t + p(out, *xs) * a.t
            return ArrayDual(out, t)

        return f

    def where(self, cond, a, b):
        a, b = ArrayDual.lift(a), ArrayDual.lift(b)
        return ArrayDual(self.np.where(cond, a.v, b.v), self.np.where(cond, a.t, b.t))

    def both(self, a, b):
        return self.np.logical_and(a, b)

    def eq(self, a, b):
        return self.np.equal(ArrayDual.lift(a).v, ArrayDual.lift(b).v)

    def count_equal(self, xs, out):
        return sum(self.np.equal(ArrayDual.lift(x).v, ArrayDual.lift(out).v).astype(float) for x in xs)

    def _select(self, pick, *xs):
        xs = [ArrayDual.lift(x) for x in xs]
        best = functools.reduce(pick, [x.v for x in xs])
        tied = [self.np.equal(x.v, best).astype(float) for x in xs]
        count = sum(tied)
        return ArrayDual(best, sum(m * x.t for m, x in zip(tied, xs)) / count)

    def min(self, *xs):
        return self._select(self.np.minimum, *xs)

    def max(self, *xs):
        return self._select(self.np.maximum, *xs)

    def op(self, key, *args):
        return OPS[key].rule(self, *args)


class _SymPy:
    """SymPy expressions: exact symbolic values and derivatives, for `explain`. `sigmoid`, `relu` and
    `softplus` stay named functions, differentiated by their own partial rules."""

    def __init__(self):
        import sympy as sp

        self.sp = sp
        self.nan = sp.nan
        renames = {"asin": sp.asin, "acos": sp.acos, "atan": sp.atan, "fabs": sp.Abs, "pow": sp.Pow,
                   "log1p": lambda x: sp.log(1 + x), "log2": lambda x: sp.log(x, 2),
                   "log10": lambda x: sp.log(x, 10), "hypot": lambda x, y: sp.sqrt(x**2 + y**2)}
        for f in _PRIMITIVES_1 + _PRIMITIVES_2:
            setattr(self, f, renames.get(f) or getattr(sp, f))
        self.min, self.max = sp.Min, sp.Max
        self.named = {key: self._named_function(op) for key, op in OPS.items() if op.symbolic == "named"}

    def _named_function(self, op: Op):
        namespace = self

        def fdiff(self, argindex=1):
            return namespace.partial(op, argindex - 1, *self.args)

        return type(op.key, (self.sp.Function,), {"fdiff": fdiff})

    def where(self, cond, a, b):
        sp = self.sp
        if cond is sp.true or cond is True:
            return a
        if cond is sp.false or cond is False:
            return b
        # a step, as SymPy writes it: b + (a − b)·H(x), H(0) being the side the comparison takes
        step = {sp.StrictGreaterThan: (1, 0), sp.GreaterThan: (1, 1),
                sp.StrictLessThan: (-1, 0), sp.LessThan: (-1, 1)}.get(type(cond))
        if step is not None and sp.sympify(a).is_finite and sp.sympify(b).is_finite:
            sign, at_zero = step
            return b + (a - b) * sp.Heaviside(sign * (cond.lhs - cond.rhs), at_zero)
        return sp.Piecewise((a, cond), (b, True))

    def both(self, a, b):
        return self.sp.And(a, b)

    def eq(self, a, b):
        return self.sp.Eq(a, b)

    def count_equal(self, xs, out):
        return self.sp.Add(*[self.where(self.sp.Eq(x, out), 1, 0) for x in xs])

    def op(self, key, *args):
        return self.value(OPS[key], *args)

    def exact(self, rule, *args):
        """rule(self, *args), its own float literals (1.0, 0.5) made the exact rationals they are,
        and the arguments' numbers left as they are."""
        sp = self.sp
        dummies = [sp.Dummy(real=True) for _ in args]
        expr = sp.sympify(rule(self, *dummies))
        expr = expr.xreplace({f: sp.Rational(f) for f in expr.atoms(sp.Float)})
        return expr.xreplace(dict(zip(dummies, args)))

    def value(self, op: Op, *args):
        """op applied to SymPy arguments: its named function, or its value rule."""
        if op.key in self.named:
            return self.named[op.key](*args)
        return self.exact(op.rule, *args)

    def partial(self, op: Op, n: int, *args):
        """op's partial with respect to argument n, at SymPy arguments."""
        out = self.value(op, *args)
        return self.exact(lambda m, *xs: apply_partial(op, m, n, out, *xs), *args)


# Where an operation's result cannot be finite unless the argument at each of these positions is
# (inf·0 and inf − inf are NaN): testing the result then tests the argument (the batch engine's and
# generated code's finiteness tests use it to test fewer values).
NONFINITE_PROPAGATES = {"add": (0, 1), "sub": (0, 1), "mul": (0, 1), "neg": (0,), "div": (0,)}
# Operations whose result is at most 1 in magnitude whatever the argument (NaN where it is NaN or,
# for sin and cos, infinite): a product with one is no larger than the other factor (generated
# code need not test it where that factor is tested).
BOUNDED_BY_ONE = {"sin", "cos", "tanh"}
# Powers that carry their base's non-finite value on where the exponent is a constant above 0
# (c > 0: (±inf)^c is ±inf and NaN^c is NaN; c = 0 would give 1): their base need not be tested
# where the power is.
BASE_PROPAGATES_IF_EXPONENT_POSITIVE = {"power", "pow"}


# ================================================================ arrays: the structural operations
# Elementwise operations on arrays are the entries above, applied to NumPy arrays through
# backend("numpy"): their partials are elementwise too. The operations below change shapes; each
# writes its shape rule, its value, its vector-Jacobian product (reverse mode: the cotangent of
# every argument from the output's) and its Jacobian-vector product (forward mode: the output's
# tangent from the arguments'), once, against NumPy (`np`). Implicit broadcasting is no rule of
# the elementwise entries: the graph makes it an explicit `broadcast` node (as JAX's autodidax
# does), whose reverse rule sums over the stretched axes, so every elementwise node's arguments
# have its own shape.

MAX_ELEMENTS = 10_000_000  # SPEC: an array of more elements, intermediates included, is a shape error


class ShapeProblem(Exception):
    """A shape rule's refusal: message, help, and labels {argument index: text} for the operands
    (the graph places it and them)."""

    def __init__(self, message: str, help: str | None = None, labels: dict | None = None):
        super().__init__(message)
        self.message, self.help, self.labels = message, help, labels or {}


def shape_text(shape: tuple) -> str:
    """`3` for a vector, `2×3` for a matrix, `scalar` for ()."""
    return "×".join(map(str, shape)) if shape else "scalar"


def described(name: str, shape: tuple) -> str:
    """`x has 3 elements`, `W1 is 16×2`, `2 is a scalar`: an operand and its shape, for labels."""
    if not shape:
        return f"{name} is a scalar"
    if len(shape) == 1:
        return f"{name} has {shape[0]} element{'s' if shape[0] != 1 else ''}"
    return f"{name} is {shape_text(shape)}"


def broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    """NumPy's broadcast of two shapes (aligned on the right), or None if they do not broadcast."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and x != 1 and y != 1:
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


def unbroadcast(np, g, shape: tuple):
    """The cotangent of a value of `shape` broadcast to g's shape: g summed over the stretched axes."""
    if g.shape == shape:
        return g
    if not shape:
        return g.sum()
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=stretched, keepdims=True) if stretched else g


class ArrayOp(NamedTuple):
    """A structural operation. `positional` is (fewest, most) positional arguments; `keywords` the
    keyword names it takes (`required` among them); attrs is the node's static data (axis, index,
    target shape, keyword values). shape(shapes, attrs, names) -> the result's shape, or raises
    ShapeProblem; value(np, attrs, *xs); vjp(np, attrs, g, out, *xs) -> a cotangent per argument;
    jvp(np, attrs, out, ts, *xs) -> the tangent, ts holding None for an argument that does not move."""

    key: str
    name: str
    positional: tuple
    shape: Callable
    value: Callable
    vjp: Callable
    jvp: Callable
    keywords: tuple = ()
    required: tuple = ()
    glyph: str = ""
    infix: bool = False
    commutative: bool = False
    domain: str = ""
    fresh: bool = False  # its vjp's cotangents are new arrays, held by nothing else
    arity: int = -1      # (never read by the scalar engine: array graphs are run by the array one)
    partials: tuple = ()
    kink: Callable | None = None  # kink(np, attrs, out, x, moves) -> (description, indexes) or None (check)
    value_problem: Callable | None = None
    derivative_problem: Callable | None = None
    # second order (interpreters/array_hessian.py): "linear" (the vjp does not depend on the
    # arguments), "bilinear" (each argument's cotangent is linear in the other argument: @, dot,
    # outer), "piecewise" (the vjp's dependence on the arguments is a step: max, min), or
    # curvature(np, attrs, g, out, x, t, tout): the tangent of x's cotangent g·∂out/∂x along x's
    # tangent t (tout: the result's), every tangent with leading axes of directions
    second: object = "linear"
    # explain's rule (commands/array_derivation.py): explain(k, g, xs, shapes, out, attrs) -> (term,
    # factors): argument k's cotangent written as a term (see "explain's terms" below) from the
    # output's cotangent term g, the arguments' value terms xs, their shapes (shapes[-1]: the
    # output's), the output's value term; factors: the shapes the term multiplies, for the line
    # that shows how they fit
    explain: Callable | None = None
    rule: str = ""   # what explain calls the rule: "matrix product", "reduction", "index", …
    # the op on the elements written as scalar expressions (explain --elements unrolls a program):
    # unrolled(np, attrs, *xs) with xs object arrays of expression texts (0-d for a scalar), each
    # text parenthesized unless it is a name or a plain number -> the result's texts, likewise
    unrolled: Callable | None = None


# -- explain's terms: the backward expressions written with shapes, as a course writes them; plain
# tuples here (the writers in renderers/explain_writers.py print them as text or LaTeX):
# ("val", node) a node's value (its name, else its source), ("T", a) transpose, ("mm", a, b) a
# matrix product written as juxtaposition, ("odot", a, b) elementwise, ("times", a, b) a product by
# a scalar, ("div", a, b), ("neg", a), ("minus", a, b), ("ones", shape) 𝟏, ("sum", a, axis) a
# reduction (axis None: every element), ("fn", name, args, attrs) a function as the file writes it,
# ("tie", x, name, attrs) [x = max(x)] ties shared, ("at", a, items, shape) a placed in zeros,
# ("item", a, k) a's k-th element or row, ("num", x).

def spread_term(g, shape: tuple, attrs):
    """A reduction's cotangent g spread back over its argument's shape: g·𝟏 with no axis (or a
    vector's axis 0), 𝟏 gᵀ for axis=0 of a matrix, g 𝟏ᵀ for axis=1."""
    axis = _axis(attrs)
    if axis is None or len(shape) == 1:
        return ("times", g, ("ones", shape))
    if axis == 0:
        return ("mm", ("ones", (shape[0],)), ("T", g))
    return ("mm", g, ("T", ("ones", (shape[1],))))


def _reduction_explain(scale=None):
    def explain(k, g, xs, shapes, out, attrs):
        spread = spread_term(g, shapes[0], attrs)
        if scale == "mean":
            over = _axis(attrs)
            count = math.prod(shapes[0]) if over is None or len(shapes[0]) == 1 else shapes[0][over]
            spread = ("div", spread, ("num", count))
        elif scale == "logsumexp":
            spread = ("odot", spread, ("fn", "softmax", [xs[0]], attrs))
        return spread, (shapes[-1], shapes[0])

    return explain


def _extreme_explain(name):
    def explain(k, g, xs, shapes, out, attrs):
        return ("odot", spread_term(g, shapes[0], attrs), ("tie", xs[0], name, attrs)), (shapes[-1], shapes[0])

    return explain


def _matmul_explain(k, g, xs, shapes, out, attrs):
    (a, b, o), (x, y) = shapes, xs
    t = lambda s: tuple(reversed(s))  # noqa: E731
    if len(a) == 1 and len(b) == 1:      # u @ v: a scalar
        return ("times", g, xs[1 - k]), ((), shapes[1 - k])
    if k == 0:
        if len(b) == 1:                  # (m×n) @ n: δA = g yᵀ, m and n give m×n
            return ("mm", g, ("T", y)), (o, (1, b[0]))
        if len(a) == 1:                  # n @ (n×k): δx = Y g
            return ("mm", y, g), (b, o)
        return ("mm", g, ("T", y)), (o, t(b))
    if len(a) == 1:                      # n @ (n×k): δY = x gᵀ
        return ("mm", x, ("T", g)), ((a[0], 1), (1,) + o)
    return ("mm", ("T", x), g), (t(a), o)


def _dot_explain(k, g, xs, shapes, out, attrs):
    return ("times", g, xs[1 - k]), ((), shapes[1 - k])


def _outer_explain(k, g, xs, shapes, out, attrs):
    if k == 0:   # u vᵀ: δu = g v
        return ("mm", g, xs[1]), (shapes[-1], shapes[1])
    return ("mm", ("T", g), xs[0]), (tuple(reversed(shapes[-1])), shapes[0])


def _softmax_explain(k, g, xs, shapes, out, attrs):
    inner = ("sum", ("odot", g, out), _axis(attrs) if len(shapes[0]) == 2 else None)
    if _axis(attrs) is not None and len(shapes[0]) == 2:
        inner = spread_term(inner, shapes[0], attrs)
    return ("odot", out, ("minus", g, inner)), (shapes[0], shapes[0])


def _broadcast_explain(k, g, xs, shapes, out, attrs):
    """A stretched value's cotangent: summed over the axes it was stretched along."""
    (x, o) = shapes
    if not x:
        return ("sum", g, None), (o,)
    lead = len(o) - len(x)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(x) if n == 1 and o[lead + i] != 1)
    return ("sum", g, axes[0] if len(axes) == 1 else None), (o,)


def _unary_explain(make):
    return lambda k, g, xs, shapes, out, attrs: (make(g, xs, out), (shapes[-1],))


def _axis(attrs):
    return attrs.get("axis") if attrs else None


# -- unrolled: the scalar expressions of a structural op's elements

def grouped(text: str) -> str:
    """An element's text as an operand: a name, an unsigned number or a text in parentheses as it
    is, else in parentheses."""
    return text if text.replace("_", "a").replace(".", "0").isalnum() and not text[0].isdigit() \
        or _plain_number(text) or bare(text) != text else f"({text})"


def bare(text: str) -> str:
    """A text without the parentheses around the whole of it (if they are)."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for k, c in enumerate(text):
        depth += c == "("
        depth -= c == ")"
        if depth == 0 and k < len(text) - 1:
            return text
    return text[1:-1]


def _plain_number(text: str) -> bool:
    try:
        return float(text) >= 0 and text[0].isdigit()
    except ValueError:
        return False


def _texts(np, items, shape):
    out = np.empty(shape, dtype=object)
    for index, text in zip(np.ndindex(*shape), items):
        out[index] = grouped(text)
    return out if shape else out[()]


def _joined(np, x, attrs, combine):
    """A reduction of texts: combine(list of element texts) over every element, or along an axis."""
    x = np.asarray(x, dtype=object)
    over = _over(attrs, x)
    if over is None:
        return grouped(combine(list(x.ravel())))
    lines = x.T if over == 0 else x
    return _texts(np, [combine(list(line)) for line in lines], (len(lines),))


def _plus(items):
    return " + ".join(items)


def _extreme_texts(name):
    return lambda items: items[0] if len(items) == 1 else f"{name}({', '.join(items)})"


def _softmax_texts(np, attrs, x):
    x = np.asarray(x, dtype=object)
    over = _over(attrs, x)
    if over is None:
        total = grouped(_plus([f"exp({e})" for e in x.ravel()]))
        return _texts(np, [f"exp({e})/{total}" for e in x.ravel()], x.shape)
    out = np.empty(x.shape, dtype=object)
    for index in np.ndindex(*x.shape):
        line = x[:, index[1]] if over == 0 else x[index[0], :]
        out[index] = grouped(f"exp({x[index]})/" + grouped(_plus([f"exp({e})" for e in line])))
    return out


def _matmul_texts(np, attrs, x, y):
    x, y = np.asarray(x, dtype=object), np.asarray(y, dtype=object)
    a = x.reshape(1, -1) if x.ndim == 1 else x
    b = y.reshape(-1, 1) if y.ndim == 1 else y
    out = np.empty((a.shape[0], b.shape[1]), dtype=object)
    for i, j in np.ndindex(*out.shape):
        out[i, j] = grouped(_plus([f"{a[i, k]}*{b[k, j]}" for k in range(a.shape[1])]))
    shape = (x.shape[:-1]) + (y.shape[1:])
    return out.reshape(shape) if shape else out[0, 0]


def _outer_texts(np, attrs, x, y):
    return _texts(np, [f"{a}*{b}" for a in x for b in y], (len(x), len(y)))


def _needs_array(name, shapes, names):
    for i, s in enumerate(shapes):
        if not s:
            raise ShapeProblem(f"`{name}` needs an array, but {names[i]} is a scalar",
                               f"{name} takes a vector or a matrix", {i: described(names[i], s)})


def _reduced_shape(name):
    def shape(shapes, attrs, names):
        _needs_array(name, shapes, names)
        (s,), axis = shapes, _axis(attrs)
        if axis is None or len(s) == 1 and axis == 0:
            return ()
        if axis == 1 and len(s) == 1:
            raise ShapeProblem(f"`{name}(…, axis=1)` needs a matrix, but {names[0]} is a vector",
                               "a vector has one axis: axis=0, or no axis",
                               {0: described(names[0], s)})
        return (s[1],) if axis == 0 else (s[0],)

    return shape


def _keep(np, x, out, attrs):
    """A reduction's result with the reduced axes back as size 1, to broadcast against x."""
    axis = _axis(attrs)
    if axis is None or x.ndim == 1:
        return np.reshape(out, (1,) * x.ndim)
    return np.expand_dims(out, axis)


def _over(attrs, x):
    axis = _axis(attrs)
    return None if axis is None or x.ndim == 1 else axis


def _sum_value(np, attrs, x):
    return np.sum(x, axis=_over(attrs, x))


def _spread(np, attrs, g, x):
    """g of a reduction's shape, broadcast back over x's."""
    return stretched(np, _keep(np, x, g, attrs), x.shape)


def stretched(np, x, shape):
    """x broadcast to `shape`, as an array of its own: NumPy's broadcast_to view is written in
    Python and costs about three times as much to make as filling a new array of a network's size
    (moons: a third of the forward pass went to its broadcasts)."""
    out = np.empty(shape)
    out[...] = x
    return out


def _count(attrs, x):
    over = _over(attrs, x)
    return x.size if over is None else x.shape[over]


def _extreme(pick):
    def value(np, attrs, x):
        return pick(np)(x, axis=_over(attrs, x))

    def shares(np, attrs, out, x):
        # ties split evenly in each slice (PyTorch's convention)
        tied = (x == _keep(np, x, out, attrs)).astype(float)
        return tied / np.sum(tied, axis=_over(attrs, x), keepdims=True)

    vjp = lambda np, attrs, g, out, x: (_spread(np, attrs, g, x) * shares(np, attrs, out, x),)
    jvp = lambda np, attrs, out, ts, x: np.sum(ts[0] * shares(np, attrs, out, x), axis=_over(attrs, x))
    return value, vjp, jvp


# -- kinks of the reductions, for `check` (as _kink_at_tie and _kink_at_zero on floats): each takes
# the node's value, its argument and how a step moves the argument's elements (`moves`, x's shape),
# and returns None or (a description whose `{0}`, `{1}` are the elements `indexes` of the argument,
# which the caller labels: `max tie between x[1] and x[2]`, indexes).

def _tie_kink(name):
    def crossed(np, attrs, out, x, moves):
        over = _over(attrs, x)
        keep = _keep(np, x, out, attrs)
        winner = x == keep
        if over is None:  # one slice: the first element that is the result
            w = int(np.argmax(winner.ravel()))
            moved_w = moves.ravel()[w]
        else:
            w = np.argmax(winner, axis=over, keepdims=True)
            moved_w = np.take_along_axis(moves, w, axis=over)
        gap, closing = np.abs(x - keep), np.abs(moves - moved_w)
        crossing = np.flatnonzero((closing != 0) & (gap <= closing))
        if not len(crossing):
            return None
        k = int(crossing[0])
        index = tuple(int(i) for i in np.unravel_index(k, x.shape))
        if over is None:
            other = tuple(int(i) for i in np.unravel_index(w, x.shape))
        else:
            other = list(index)
            other[over] = int(w[tuple(0 if a == over else i for a, i in enumerate(index))])
            other = tuple(other)
        apart = float(gap.ravel()[k])
        what = "tie" if apart == 0 else f"near tie ({apart:.3g} apart)"
        return f"{name} {what} between {{0}} and {{1}}", tuple(sorted((index, other)))

    return crossed


def _norm_kink(np, attrs, out, x, moves):
    step = float(np.sqrt(np.sum(moves * moves)))
    if step != 0 and float(out) <= step:
        return ("norm at 0" if out == 0 else f"norm near 0 (norm({{x}}) = {float(out):.3g})"), ()
    return None


def _logsumexp_value(np, attrs, x):
    over = _over(attrs, x)
    top = np.max(x, axis=over, keepdims=True)
    return np.reshape(top, np.shape(np.sum(x, axis=over))) + np.log(np.sum(np.exp(x - top), axis=over))


def _softmax_value(np, attrs, x):
    over = _over(attrs, x)
    e = np.exp(x - np.max(x, axis=over, keepdims=True))
    return e / np.sum(e, axis=over, keepdims=True)


def _softmax_shape(shapes, attrs, names):
    _reduced_shape("softmax")(shapes, attrs, names)
    return shapes[0]


def _softmax_back(np, attrs, g, out, x):
    return out * (g - np.sum(g * out, axis=_over(attrs, x), keepdims=True))


def _factor_text(text: str) -> str:
    """An operand's source text as a factor of `*`: in parentheses unless it is one already (a
    number, a name, an index of one, a group in parentheses)."""
    import re

    if re.fullmatch(r"[\w.]+(\[[^\]]*\])*", text):
        return text
    call = re.match(r"\w*(?=\()", text)  # a call, or a group: what its first `(` closes must end it
    depth = 0
    for k, ch in enumerate(text[call.end():] if call else "?", start=call.end() if call else 0):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and (k < len(text) - 1 or ch != ")"):
            return f"({text})"
    return text


def _matmul_shape(shapes, attrs, names):
    a, b = shapes
    if a and b and a[-1] == b[0]:
        return a[:-1] + b[1:]
    (left, right) = names  # (an error: only now are the operands named)
    labels = {0: described(left, a), 1: described(right, b)}
    if not a:  # (no parentheses make a scalar on the left an array)
        scaled = "*".join(map(_factor_text, (left, right)))
        raise ShapeProblem(f"`@` needs arrays on both sides, but {left} is a scalar",
                           f"to scale by a scalar, use `*`: {scaled}", labels)
    if not b:
        raise ShapeProblem(f"`@` needs arrays on both sides, but {right} is a scalar",
                           "`@` binds like `*`: `W @ 2x` is (W @ 2)·x; write W @ (2x), or use `*` "
                           "to scale", labels)
    inner_left, inner_right = a[-1], b[0]
    if inner_left != inner_right:
        what_left = "columns on its left" if len(a) == 2 else "elements on its left"
        what_right = "rows on its right" if len(b) == 2 else "elements on its right"
        if len(a) == 1 and len(b) == 1:
            message = "`@` needs two vectors of the same length"
        else:
            message = f"`@` needs as many {what_left} as {what_right}"
        need = f"{right} of {inner_left} {'rows' if len(b) == 2 else 'elements'}"
        raise ShapeProblem(message, f"{left} @ {right} needs {need}", labels)
    return a[:-1] + b[1:]


def _matmul_vjp(np, attrs, g, out, x, y):
    if x.ndim == 1 and y.ndim == 1:
        return g * y, g * x
    if y.ndim == 1:
        return np.outer(g, y), x.T @ g
    if x.ndim == 1:
        return y @ g, np.outer(x, g)
    return g @ y.T, x.T @ g


def _product_jvp(product):
    def jvp(np, attrs, out, ts, x, y):
        tx, ty = ts
        total = 0.0
        if tx is not None:
            total = total + product(np, tx, y)
        if ty is not None:
            total = total + product(np, x, ty)
        return total

    return jvp


def _vectors(name):
    def shape(shapes, attrs, names):
        labels = {i: described(n, s) for i, (n, s) in enumerate(zip(names, shapes))}
        for n, s in zip(names, shapes):
            if len(s) != 1:
                raise ShapeProblem(f"`{name}` takes vectors, but {described(n, s)}", None, labels)
        if name == "dot":
            if shapes[0] != shapes[1]:
                raise ShapeProblem("`dot` needs two vectors of the same length",
                                   f"{names[0]} and {names[1]} must have as many elements", labels)
            return ()
        return (shapes[0][0], shapes[1][0])

    return shape


def _transpose_shape(shapes, attrs, names):
    _needs_array("transpose", shapes, names)
    return tuple(reversed(shapes[0]))


def _norm_value(np, x):
    """sqrt(sum(x²)) scaled by the largest |x| (as hypot): the squares alone underflow to 0 below
    about 1e-154 (a norm of 0 and no gradient) and overflow above about 1e154."""
    top = np.max(np.abs(x))
    if not 0 < top < np.inf:
        return np.sqrt(np.sum(x * x))
    return top * np.sqrt(np.sum((x / top) ** 2))


def _norm_vjp(np, attrs, g, out, x):
    # a zero adjoint blocks the undefined partial at 0 (0*norm(x) has gradient 0 there, as 0*sqrt(x))
    with np.errstate(all="ignore"):
        return (np.where(g != 0, g * x / out, 0.0),)


def _index_shape(shapes, attrs, names):
    (s,), items = shapes, attrs["items"]
    if not s:
        raise ShapeProblem(f"{names[0]} is a scalar: it has no elements to index", None,
                           {0: described(names[0], s)})
    if len(items) > len(s):
        raise ShapeProblem(f"{len(items)} indexes on {'a vector' if len(s) == 1 else 'a matrix'}: "
                           f"{described(names[0], s)}", f"a {'vector' if len(s) == 1 else 'matrix'} takes "
                           f"at most {len(s)} index{'es' if len(s) == 2 else ''}", {0: described(names[0], s)})
    out = []
    for axis, (item, n) in enumerate(zip(items + (None,) * (len(s) - len(items)), s)):
        where = f" on axis {axis}" if len(s) == 2 else ""
        if item is None:
            out.append(n)
        elif isinstance(item, int):
            if not -n <= item < n:
                raise ShapeProblem(f"index {item} is out of range{where}: {described(names[0], s)}",
                                   f"an index runs from {-n} to {n - 1}", {0: described(names[0], s)})
        else:
            low, high = item
            for bound in (low, high):
                if bound is not None and not -n <= bound <= n:
                    raise ShapeProblem(f"slice bound {bound} is out of range{where}: {described(names[0], s)}",
                                       f"a slice's bounds run from {-n} to {n}", {0: described(names[0], s)})
            size = len(range(n)[slice(low, high)])
            if size == 0:
                raise ShapeProblem(f"the slice {'' if low is None else low}:{'' if high is None else high} "
                                   f"of {names[0]} is empty{where}", "a slice keeps at least one element",
                                   {0: described(names[0], s)})
            out.append(size)
    return tuple(out)


def _index_key(attrs):
    return tuple(item if isinstance(item, int) else slice(*item) for item in attrs["items"])


def _index_vjp(np, attrs, g, out, x):
    whole = np.zeros(np.shape(x))
    whole[_index_key(attrs)] = g
    return (whole,)


def _broadcast_vjp(np, attrs, g, out, x):
    return (unbroadcast(np, g, np.shape(x)),)


def _stack_shape(shapes, attrs, names):
    raise AssertionError("literals are shaped by the graph, which places the element that differs")


def _stack_jvp(np, attrs, out, ts, *xs):
    return np.stack([np.zeros(np.shape(x)) if t is None else np.broadcast_to(t, np.shape(x))
                     for t, x in zip(ts, xs)])


def _one_tangent(rule):
    return lambda np, attrs, out, ts, x: rule(np, attrs, ts[0], x, out)


def _tail(attrs, x):
    """The axes a reduction of x runs over, counted from the end (so that leading axes of
    directions, on tangents, are left alone)."""
    over = _over(attrs, x)
    return tuple(range(-x.ndim, 0)) if over is None else (over - x.ndim,)


def _logsumexp_curvature(np, attrs, g, out, x, t, tout):
    ax = _tail(attrs, x)
    share = _softmax_value(np, attrs, x)  # (exp(x - out) loses out's log n to rounding at |x| ≥ 1e16)
    return np.expand_dims(g, ax) * share * (t - np.expand_dims(tout, ax))


def _softmax_curvature(np, attrs, g, out, x, t, tout):
    ax = _tail(attrs, x)
    return tout * (g - np.sum(g * out, axis=ax, keepdims=True)) - out * np.sum(g * tout, axis=ax, keepdims=True)


def _norm_curvature(np, attrs, g, out, x, t, tout):
    ax = _tail(attrs, x)
    return (g / out) * t - (g / (out * out)) * x * np.expand_dims(tout, ax)


_ARRAY_ENTRIES = [
    ArrayOp("matmul", "@", (2, 2), _matmul_shape, lambda np, attrs, x, y: x @ y, _matmul_vjp,
            _product_jvp(lambda np, a, b: a @ b), glyph="@", infix=True, fresh=True, second="bilinear",
            explain=_matmul_explain, rule="matrix product", unrolled=_matmul_texts),
    ArrayOp("sum", "sum", (1, 1), _reduced_shape("sum"), _sum_value,
            lambda np, attrs, g, out, x: (_spread(np, attrs, g, x),),
            _one_tangent(lambda np, attrs, t, x, out: _sum_value(np, attrs, t)), keywords=("axis",),
            explain=_reduction_explain(), rule="reduction",
            unrolled=lambda np, attrs, x: _joined(np, x, attrs, _plus)),
    ArrayOp("mean", "mean", (1, 1), _reduced_shape("mean"),
            lambda np, attrs, x: _sum_value(np, attrs, x) / _count(attrs, x),
            lambda np, attrs, g, out, x: (_spread(np, attrs, g, x) / _count(attrs, x),),
            _one_tangent(lambda np, attrs, t, x, out: _sum_value(np, attrs, t) / _count(attrs, x)),
            keywords=("axis",), explain=_reduction_explain("mean"), rule="reduction",
            unrolled=lambda np, attrs, x: _joined(np, x, attrs, lambda items: f"({_plus(items)})/{len(items)}")),
    ArrayOp("amax", "max", (1, 1), _reduced_shape("max"), *_extreme(lambda np: np.max), keywords=("axis",),
            explain=_extreme_explain("max"), rule="reduction, ties share",
            unrolled=lambda np, attrs, x: _joined(np, x, attrs, _extreme_texts("max")),
            kink=_tie_kink("max"), second="piecewise"),
    ArrayOp("amin", "min", (1, 1), _reduced_shape("min"), *_extreme(lambda np: np.min), keywords=("axis",),
            explain=_extreme_explain("min"), rule="reduction, ties share",
            unrolled=lambda np, attrs, x: _joined(np, x, attrs, _extreme_texts("min")),
            kink=_tie_kink("min"), second="piecewise"),
    ArrayOp("logsumexp", "logsumexp", (1, 1), _reduced_shape("logsumexp"), _logsumexp_value,
            lambda np, attrs, g, out, x: (_spread(np, attrs, g, x) * _softmax_value(np, attrs, x),),
            _one_tangent(lambda np, attrs, t, x, out: _sum_value(np, attrs, t * _softmax_value(np, attrs, x))),
            keywords=("axis",), explain=_reduction_explain("logsumexp"), rule="reduction",
            unrolled=lambda np, attrs, x: _joined(np, x, attrs,
                                                   lambda items: f"log({_plus([f'exp({e})' for e in items])})"),
            second=_logsumexp_curvature),
    ArrayOp("softmax", "softmax", (1, 1), _softmax_shape, _softmax_value,
            lambda np, attrs, g, out, x: (_softmax_back(np, attrs, g, out, x),),
            _one_tangent(lambda np, attrs, t, x, out: _softmax_back(np, attrs, t, out, x)), keywords=("axis",),
            explain=_softmax_explain, rule="softmax", unrolled=_softmax_texts, second=_softmax_curvature),
    ArrayOp("dot", "dot", (2, 2), _vectors("dot"), lambda np, attrs, x, y: np.dot(x, y),
            lambda np, attrs, g, out, x, y: (g * y, g * x), _product_jvp(lambda np, a, b: np.dot(a, b)),
            commutative=True, explain=_dot_explain, rule="dot product",
            unrolled=lambda np, attrs, x, y: grouped(_plus([f"{a}*{b}" for a, b in zip(x, y)])), second="bilinear"),
    ArrayOp("outer", "outer", (2, 2), _vectors("outer"), lambda np, attrs, x, y: np.outer(x, y),
            lambda np, attrs, g, out, x, y: (g @ y, x @ g), _product_jvp(lambda np, a, b: np.outer(a, b)),
            fresh=True, explain=_outer_explain, rule="outer product", unrolled=_outer_texts, second="bilinear"),
    ArrayOp("transpose", "transpose", (1, 1), _transpose_shape, lambda np, attrs, x: np.transpose(x),
            lambda np, attrs, g, out, x: (np.transpose(g),),
            _one_tangent(lambda np, attrs, t, x, out: np.transpose(t)),
            explain=_unary_explain(lambda g, xs, out: ("T", g)), rule="transpose",
            unrolled=lambda np, attrs, x: np.transpose(np.asarray(x, dtype=object))),
    ArrayOp("norm", "norm", (1, 1), _reduced_shape("norm"), lambda np, attrs, x: _norm_value(np, x),
            _norm_vjp, _one_tangent(lambda np, attrs, t, x, out: np.sum(t * x) / out), domain="x ≠ 0",
            explain=_unary_explain(lambda g, xs, out: ("times", g, ("div", xs[0], out))), rule="norm",
            unrolled=lambda np, attrs, x: grouped(f"sqrt({_plus([f'{e}^2' for e in np.ravel(x)])})"),
            kink=_norm_kink, second=_norm_curvature),
    # not functions: the graph makes these nodes
    ArrayOp("broadcast", "broadcast", (1, 1), lambda shapes, attrs, names: attrs["shape"],
            lambda np, attrs, x: stretched(np, x, attrs["shape"]), _broadcast_vjp,
            _one_tangent(lambda np, attrs, t, x, out: stretched(np, t, attrs["shape"])),
            explain=_broadcast_explain, rule="broadcast, summed over the stretched axis",
            unrolled=lambda np, attrs, x: np.broadcast_to(np.asarray(x, dtype=object), attrs["shape"])),
    ArrayOp("index", "[]", (1, 1), _index_shape, lambda np, attrs, x: x[_index_key(attrs)], _index_vjp,
            _one_tangent(lambda np, attrs, t, x, out: np.asarray(t)[_index_key(attrs)]), fresh=True,
            explain=lambda k, g, xs, shapes, out, attrs: (("at", g, attrs["items"], shapes[0]), (shapes[-1],)),
            rule="index", unrolled=lambda np, attrs, x: np.asarray(x, dtype=object)[_index_key(attrs)]),
    ArrayOp("stack", "[…]", (1, MAX_ELEMENTS), _stack_shape, lambda np, attrs, *xs: np.stack(xs),
            lambda np, attrs, g, out, *xs: tuple(g[k] for k in range(len(xs))), _stack_jvp,
            explain=lambda k, g, xs, shapes, out, attrs: (("item", g, k), (shapes[-1],)), rule="stack",
            unrolled=lambda np, attrs, *xs: np.stack([np.asarray(x, dtype=object) for x in xs])),
]
ARRAY_OPS: dict[str, ArrayOp] = {op.key: op for op in _ARRAY_ENTRIES}
# the functions a file may call: not `broadcast`, which the graph inserts where shapes stretch
ARRAY_FUNCTIONS: dict[str, ArrayOp] = {op.name: op for op in _ARRAY_ENTRIES
                                       if op.name.isidentifier() and op.name not in ("max", "min", "broadcast")}
# `max(x)`, `min(x)` of one argument: the reductions; of two or more, the elementwise entries above
REDUCTIONS = {"max": ARRAY_OPS["amax"], "min": ARRAY_OPS["amin"]}


# -- the constructors: their values are leaves of the graph, made once when the file is loaded

CONSTRUCTORS = {"zeros": (), "ones": (), "eye": (), "uniform": ("seed", "low", "high"),
                "normal": ("seed", "mean", "std")}
CONSTRUCTOR_DEFAULTS = {"low": -1.0, "high": 1.0, "mean": 0.0, "std": 1.0}
ARRAY_NAMES = frozenset(ARRAY_FUNCTIONS) | frozenset(CONSTRUCTORS)  # assignable, as `sign`
KEYWORDS = {**{name: op.keywords for name, op in ARRAY_FUNCTIONS.items()}, **CONSTRUCTORS,
            "max": ("axis",), "min": ("axis",)}

_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64_uniforms(seed: int, count: int):
    """u_1 … u_count of SPEC's generator: SplitMix64 from state `seed`, u = (draw >> 11)·2^-53.
    (The k-th state is seed + k·golden mod 2^64, so all draws are made at once, in uint64.)"""
    import numpy as np

    k = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = k * np.uint64(_GOLDEN) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def construct(name: str, sizes: tuple, keywords: dict):
    """A constructor's array (the sizes and bound already checked)."""
    import numpy as np

    count = math.prod(sizes)
    if name == "zeros":
        return np.zeros(sizes)
    if name == "ones":
        return np.ones(sizes)
    if name == "eye":
        return np.eye(sizes[0])
    get = lambda key: keywords.get(key, CONSTRUCTOR_DEFAULTS.get(key))
    if name == "uniform":
        low, high = get("low"), get("high")
        return (low + (high - low) * splitmix64_uniforms(keywords["seed"], count)).reshape(sizes)
    u = splitmix64_uniforms(keywords["seed"], 2 * count)
    u1, u2 = u[0::2], u[1::2]
    return (get("mean") + get("std") * np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * math.pi * u2)).reshape(sizes)
