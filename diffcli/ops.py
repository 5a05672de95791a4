"""The table of operations: the one place where diffcli's math lives.

Each entry gives an operation's value and, side by side, its partial derivative with respect to each
argument (as PyTorch's derivatives.yaml does). A partial is a function of the operation's result and
its arguments, `partial(out, *args)`. Every interpreter (forward values, reverse adjoints, forward
tangents, the graph's labels) reads this table; adding an operation is one entry plus its test.

Forward functions raise ValueError, ZeroDivisionError or OverflowError outside their domain (the math
module does this for us); the engine turns that, or a result that is not finite, into a diagnostic
using `domain`. At kinks the convention is PyTorch's: relu'(0) = abs'(0) = 0, ties in min/max share
the gradient evenly. 0^0 = 1, and d(x^y)/dx is 0 where y = 0.
"""

from __future__ import annotations

import math
import operator
from typing import Callable, NamedTuple

inf, nan = math.inf, math.nan
LN2, LN10 = math.log(2.0), math.log(10.0)


class Op(NamedTuple):
    name: str                   # as a user writes it: "+", "sin", ...
    arity: int                  # number of arguments; 0 means two or more (min, max)
    value: Callable[..., float]
    partials: tuple             # one partial(out, *args) per argument; for variadic ops, a factory
    domain: str = ""            # where the operation is defined, for error messages


# -- value helpers: stable forms, and results that must be floats --------------------------------

def _sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _softplus(x):
    # log(1 + e^x) without overflow: x + log(1 + e^-x) for large x
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _relu(x):
    return x if x > 0 else 0.0


def _pow_dx(out, x, y):
    return 0.0 if y == 0 else y * math.pow(x, y - 1)


def _pow_dy(out, x, y):
    if x > 0:
        return out * math.log(x)
    if x == 0 and y > 0:
        return 0.0
    return nan  # undefined (x < 0, or 0^y with y <= 0): an error only if this partial is needed


def _tie_share(i):
    """Partial of min/max for argument i: 1 split evenly among the arguments equal to the result."""

    def partial(out, *args):
        if args[i] != out:
            return 0.0
        return 1.0 / sum(1 for a in args if a == out)

    return partial


def _unit(out, x, y=None):  # (no `*args`: a call without a tuple is faster)
    return 1.0


# -- the table ------------------------------------------------------------------------------------

# (the operator module's functions are the same arithmetic as `x + y`, called faster)
OPERATORS = {
    "add": Op("+", 2, operator.add, (_unit, _unit)),
    "sub": Op("-", 2, operator.sub, (_unit, lambda out, x, y: -1.0)),
    "mul": Op("*", 2, operator.mul, (lambda out, x, y: y, lambda out, x, y: x)),
    "div": Op("/", 2, operator.truediv, (lambda out, x, y: 1.0 / y, lambda out, x, y: -out / y),
              "a divisor other than 0"),
    "pow": Op("^", 2, math.pow, (_pow_dx, _pow_dy),
              "a base ≥ 0, or an integer exponent; no 0 to a negative power"),
    "neg": Op("-", 1, operator.neg, (lambda out, x: -1.0,)),
    "pos": Op("+", 1, lambda x: x, (_unit,)),
    # a named variable whose definition is another name (`b = a`) gets a node of its own
    "id": Op("=", 1, lambda x: x, (_unit,)),
}

FUNCTIONS = {
    "sin": Op("sin", 1, math.sin, (lambda out, x: math.cos(x),)),
    "cos": Op("cos", 1, math.cos, (lambda out, x: -math.sin(x),)),
    "tan": Op("tan", 1, math.tan, (lambda out, x: 1.0 + out * out,)),
    "asin": Op("asin", 1, math.asin, (lambda out, x: 1.0 / math.sqrt(1.0 - x * x),), "-1 ≤ x ≤ 1"),
    "acos": Op("acos", 1, math.acos, (lambda out, x: -1.0 / math.sqrt(1.0 - x * x),), "-1 ≤ x ≤ 1"),
    "atan": Op("atan", 1, math.atan, (lambda out, x: 1.0 / (1.0 + x * x),)),
    "sinh": Op("sinh", 1, math.sinh, (lambda out, x: math.cosh(x),)),
    "cosh": Op("cosh", 1, math.cosh, (lambda out, x: math.sinh(x),)),
    "tanh": Op("tanh", 1, math.tanh, (lambda out, x: 1.0 - out * out,)),
    "exp": Op("exp", 1, math.exp, (lambda out, x: out,)),
    "log": Op("log", 1, math.log, (lambda out, x: 1.0 / x,), "x > 0"),
    "log2": Op("log2", 1, math.log2, (lambda out, x: 1.0 / (x * LN2),), "x > 0"),
    "log10": Op("log10", 1, math.log10, (lambda out, x: 1.0 / (x * LN10),), "x > 0"),
    "sqrt": Op("sqrt", 1, math.sqrt, (lambda out, x: 0.5 / out,), "x ≥ 0"),
    "abs": Op("abs", 1, math.fabs, (lambda out, x: 1.0 if x > 0 else (-1.0 if x < 0 else 0.0),)),
    "sigmoid": Op("sigmoid", 1, _sigmoid, (lambda out, x: out * (1.0 - out),)),
    "relu": Op("relu", 1, _relu, (lambda out, x: 1.0 if x > 0 else 0.0,)),
    "softplus": Op("softplus", 1, _softplus, (lambda out, x: _sigmoid(x),)),
    "pow": OPERATORS["pow"]._replace(name="pow"),
    "atan2": Op("atan2", 2, math.atan2, (lambda out, y, x: x / (x * x + y * y),
                                         lambda out, y, x: -y / (x * x + y * y))),
    "hypot": Op("hypot", 2, math.hypot, (lambda out, x, y: x / out, lambda out, x, y: y / out)),
    "min": Op("min", 0, min, _tie_share),
    "max": Op("max", 0, max, _tie_share),
}
FUNCTIONS["ln"] = FUNCTIONS["log"]._replace(name="ln")

CONSTANTS = {"pi": math.pi}
RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS)


# -- kinks: where an operation's derivative jumps, so that a finite difference disagrees by nature ---
# Each entry tells whether a step that moves the arguments by `moves` (signed) from `xs` crosses the
# kink, and names it; None when it does not. A move of 0 never crosses: ties that move together stay
# tied, and the function is smooth along that step.

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


KINKS = {"abs": _kink_at_zero("abs"), "relu": _kink_at_zero("relu"),
         "min": _kink_at_tie("min"), "max": _kink_at_tie("max")}


def partials_for(op: Op, nargs: int) -> tuple:
    """The per-argument partial functions of `op` applied to `nargs` arguments."""
    if op.arity:
        return op.partials
    return tuple(op.partials(i) for i in range(nargs))


def arity_text(op: Op) -> str:
    if op.arity == 0:
        return "2 or more arguments"
    return "1 argument" if op.arity == 1 else f"{op.arity} arguments"
