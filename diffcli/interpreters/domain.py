"""Why a value or a derivative is outside an operation's domain, in words: the messages of the
float engine and the array engine alike."""

from __future__ import annotations

import math

from ..formatting import applied_text

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


def _ordinal(n: int) -> str:
    return ("first", "second", "third")[n] if n < 3 else f"{n + 1}th"
