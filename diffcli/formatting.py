"""How numbers and places in the source are written, for every reader: the engine's messages, the
graph's notes, the printer, the tables, the drawings and the derivations.

It sits at the bottom of the data flow with errors.py, syntax.py and ops.py, and imports nothing above
syntax.py, so that every module may use it.
"""

from __future__ import annotations

import json
import math

from .errors import Source
from .language.syntax import Binary, Call, Expr, Index, Unary

EXCERPT_WIDTH = 40  # characters of an expression quoted in a message


# ---------------------------------------------------------------- numbers

def number_text(x: float) -> str:
    """A number as a person writes it, with every digit needed to read back the same double:
    2 rather than 2.0, 1e20 rather than 1e+20, and -0 for negative zero."""
    if math.isfinite(x) and x == int(x) and abs(x) < 1e16:
        return "-0" if x == 0 and math.copysign(1.0, x) < 0 else str(int(x))
    return repr(x).replace("e+", "e")


def number(x: float, precision: int) -> str:
    """`precision` significant digits; integers without a decimal point; no `-0`; 1e-7, not 1e-07."""
    if x == 0:
        return "0"
    text = f"{x:.{precision}g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


PLUS_MINUS = {"plain": " ± ", "pm": "+/-", "latex": r" \pm "}
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def plus_minus(value: float, u: float, style: str = "plain") -> str:
    """`4.976 ± 0.025` (style "plain"), `4.976+/-0.025` ("pm"), `4.976 \\pm 0.025` ("latex"): the
    uncertainty to two significant digits and the value to the same decimal place (GUM 7.2.6), as
    the `uncertainties` package prints format(x, ".2uP"), ".2u" and ".2uL". A power of ten is factored
    out where "g" formatting would use one: (1.200 ± 0.034)×10¹⁰."""
    mark = PLUS_MINUS[style]
    if not math.isfinite(value):
        return f"{value}{mark}{u}"
    if not (math.isfinite(u) and u > 0):
        return f"{number(value, 6)}{mark}{'0' if u == 0 else 'unknown'}"
    last = math.floor(math.log10(u)) - 1  # the place of u's second significant digit
    rounded = float(f"{u:.1e}")
    if rounded >= 10.0 ** (last + 2):  # 0.0996 rounds to 0.10: its digits are "10"
        last += 1
    power = math.floor(math.log10(max(abs(round(value, -last)), rounded)))
    digits = power - last + 1
    if digits > 17:  # u below the value's last digit (5 ± 1e-320): the value as it is, not 330 zeros
        return f"{value!r}{mark}{u:.2g}"
    if -4 <= power < digits:
        decimals = max(-last, 0)
        return f"{_fixed(value, decimals)}{mark}{_fixed(u, decimals)}"
    decimals = power - last
    inner = f"{_fixed(value / 10.0 ** power, decimals)}{mark}{_fixed(u / 10.0 ** power, decimals)}"
    if style == "latex":
        return rf"\left({inner}\right) \times 10^{{{power}}}"
    if style == "plain":
        return f"({inner})×10{str(power).translate(SUPERSCRIPT)}"
    return f"({inner})e{power:+03d}"


def _fixed(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def applied_text(op, xs: list[float]) -> str:
    """An operation applied to numbers, as written: `1 / 0`, `-(2)`, `sqrt(-1)`."""
    shown = [number_text(x) for x in xs]
    if op.infix:
        return f"{shown[0]} {op.name} {shown[1]}"
    if op.key == "neg":
        return f"-({shown[0]})"
    return f"{op.name}({', '.join(shown)})"


# ---------------------------------------------------------------- places

def excerpt(source: Source, expr: Expr) -> str:
    """An expression's source text on one line, cut to EXCERPT_WIDTH characters."""
    text = source.snippet(expr.start, expr.end)
    return text if len(text) <= EXCERPT_WIDTH else text[: EXCERPT_WIDTH - 1] + "…"


def operator_span(source: Source, expr: Expr) -> tuple[int, int]:
    """Where an expression's own operation is written: its operator, sign or function name."""
    if isinstance(expr, Binary):
        width = 0 if expr.implicit else (2 if source.text.startswith("**", expr.op_start) else 1)
        return expr.op_start, expr.op_start + max(width, 1)
    if isinstance(expr, Unary):
        return expr.start, expr.start + 1
    if isinstance(expr, Call):
        return expr.start, expr.name_end
    if isinstance(expr, Index):
        return expr.bracket, expr.bracket + 1
    return expr.start, expr.end


# JSON keeps UTF-8 as it is, but DEL and the C1 controls (U+0080-U+009F; U+009B is a CSI to some
# terminals) come from file text and file names: escape them, as JSON allows anywhere in a string.
_CONTROLS = {c: f"\\u{c:04x}" for c in [0x7F, *range(0x80, 0xA0)]}


def json_text(obj, **options) -> str:
    """`json.dumps(obj, ensure_ascii=False, **options)` with DEL and the C1 controls escaped."""
    return json.dumps(obj, ensure_ascii=False, **options).translate(_CONTROLS)
