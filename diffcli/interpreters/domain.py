"""Why a value or a derivative is outside an operation's domain, in words: the messages of the
float engine and the array engine alike."""

from __future__ import annotations

import math

from ..formatting import applied_text, number_text

_FAILURES = (ArithmeticError, ValueError)


def domain_message(op, xs: list[float], where: str) -> tuple[str, str | None]:
    """Why op at the numbers xs is an error: (message, help)."""
    shown = applied_text(op, xs)
    problem = op.value_problem(xs) if op.value_problem else None
    if problem is not None:
        message, help = problem
        message = message.format(where=where, shown=shown)
    else:
        try:
            result = op.value(*xs)
        except OverflowError:
            result = math.inf
        except _FAILURES:
            result = None
        if result is None:
            message = f"`{op.name}` is undefined at {shown}"
            help = f"{op.name} needs {op.domain}" if op.domain else None
        else:
            message = f"`{where}` overflows: {shown} is too large for a double"
            help = "doubles reach about 1.8e308; rescale the inputs"
    return message, help


def derivative_message(op, xs: list[float], n: int, where: str) -> tuple[str, str]:
    """Why op's partial n at the numbers xs does not exist: (message, help)."""
    which = "" if len(xs) == 1 else f" with respect to its {_ordinal(n)} argument"
    problem = op.derivative_problem(n) if op.derivative_problem else None
    if problem is not None:
        message, help = problem
        return message.format(where=where, shown=applied_text(op, xs)), help
    return (f"the derivative of `{op.name}`{which} is infinite or undefined at {applied_text(op, xs)}",
            "the gradient does not exist here; evaluate at another point")


# -- inside an array: the element is named as SPEC's "Arrays" has it, ``log` of -0.2 at x[3]`
# (a scalar's messages above stay as they are)

def element_domain_message(op, xs: list[float], where: str, label: str) -> tuple[str, str | None]:
    """domain_message for the element `label` (`x[3]`, `(W @ x - 1)[3]`) of an elementwise node."""
    message, help = domain_message(op, xs, where)
    if op.value_problem is not None and op.value_problem(xs) is not None:
        return f"{message} at {label}", help  # `division by zero in `x / y` at y[2]`
    if message.startswith(f"`{where}` overflows"):
        return f"`{where}` overflows at {label}: {applied_text(op, xs)} is too large for a double", help
    return f"`{op.name}` of {_arguments(xs)} at {label}", help


def element_derivative_message(op, xs: list[float], n: int, where: str, label: str) -> tuple[str, str]:
    """derivative_message for the element `label` of an elementwise node."""
    which = "" if len(xs) == 1 else f" with respect to its {_ordinal(n)} argument"
    problem = op.derivative_problem(n) if op.derivative_problem else None
    if problem is not None:
        message, help = problem
        message = message.replace(" at {shown}", ": {shown}")
        return f"{message.format(where=where, shown=applied_text(op, xs))} at {label}", help
    return (f"the derivative of `{op.name}`{which} is infinite or undefined: `{op.name}` of {_arguments(xs)} at {label}",
            "the gradient does not exist here; evaluate at another point")


def _arguments(xs: list[float]) -> str:
    """`-0.2`, or `(0, -1)` for several."""
    shown = ", ".join(number_text(x) for x in xs)
    return shown if len(xs) == 1 else f"({shown})"


def _ordinal(n: int) -> str:
    return ("first", "second", "third")[n] if n < 3 else f"{n + 1}th"
