"""AST -> .expr text, the inverse of the parser: parse(print(ast)) has the structure of ast.

`Paren` nodes print as the parentheses they were; any other parentheses a (hand-built) tree needs
are added from the precedence levels of SPEC section 1. Nothing recurses: a 100,000-term sum or
100,000 nested parentheses print with an explicit stack.
"""

from __future__ import annotations

import math

from ..formatting import number_text
from .syntax import BINARY_SYMBOLS, Array, Assignment, Binary, Call, Expr, Index, Name, Number, Paren, Unary

# binding levels, loosest first: sum, product, sign, power, atom
SUM, PRODUCT, SIGN, POWER, ATOM = 1, 2, 3, 4, 5


def _level(node: Expr) -> int:
    if isinstance(node, Binary):
        return {"add": SUM, "sub": SUM, "mul": PRODUCT, "div": PRODUCT, "matmul": PRODUCT}.get(node.op, POWER)
    if isinstance(node, Unary) or (isinstance(node, Number) and math.copysign(1.0, node.value) < 0):
        return SIGN
    return ATOM


def _operand_levels(node: Binary) -> tuple[int, int]:
    """The loosest level each side of a binary operator may hold without parentheses."""
    if node.op == "pow":
        return ATOM, SIGN  # right-associative; the exponent may carry a sign: a^-b
    if node.op in ("add", "sub"):
        return SUM, PRODUCT  # left-associative
    return PRODUCT, SIGN


def _implicit_right_ok(node: Expr) -> bool:
    """What may stand right of an implicit product: a name, a call, `( … )`, or one of those to a power."""
    if isinstance(node, Binary) and node.op == "pow":
        node = node.left
    return isinstance(node, (Name, Call, Paren))


def print_expr(expr: Expr) -> str:
    """The text of one expression."""
    out: list[str] = []
    # items: (node, wrap in parentheses), a piece of text, or (name,) where an implicit product
    # joins its sides and the right one starts with `name`: a space only where the sides would run
    # together (`2 e5`, which is not the number `2e5`)
    stack: list[object] = [(expr, False)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        if len(item) == 1:
            last, name = out[-1][-1] if out else " ", item[0]
            if (last.isalpha() or last == "_") or (
                (last.isdigit() or last == ".") and name[0] in "eE" and name[1:2].isdigit()
            ):
                out.append(" ")
            continue
        node, wrap = item
        if wrap:
            stack.append(")")
        kind = type(node)
        if kind is Number:
            stack.append(number_text(node.value))
        elif kind is Name:
            stack.append(node.id)
        elif kind is Paren:
            stack += [")", (node.inner, False), "("]
        elif kind is Unary:
            stack += [(node.operand, _level(node.operand) < SIGN), "-" if node.op == "neg" else "+"]
        elif kind is Call:
            # a constructor's sizes and any keywords are text, not nodes
            tail = [str(size) for size in node.sizes] + [f"{k.name}={k.text}" for k in node.keywords]
            stack.append(")")
            for i, text in reversed(list(enumerate(tail))):
                stack.append(text)
                if i or node.args:
                    stack.append(", ")
            for i in range(len(node.args) - 1, -1, -1):
                stack.append((node.args[i], False))
                if i:
                    stack.append(", ")
            stack.append(node.func + "(")
        elif kind is Array and node.values is not None:
            numbers = node.numbers()
            matrix = numbers[0].__class__ is list
            text = ", ".join("[" + ", ".join(map(number_text, row)) + "]" for row in (numbers if matrix else [numbers]))
            stack.append("[" + text + "]" if matrix else text)
        elif kind is Array:
            stack.append("]")
            for i in range(len(node.elements) - 1, -1, -1):
                stack.append((node.elements[i], False))
                if i:
                    stack.append(", ")
            stack.append("[")
        elif kind is Index:
            items = ", ".join(str(item) if isinstance(item, int) else
                              f"{'' if item[0] is None else item[0]}:{'' if item[1] is None else item[1]}"
                              for item in node.items)
            stack += [f"[{items}]", (node.target, _level(node.target) < ATOM or isinstance(node.target, Number))]
        else:
            left_level, right_level = _operand_levels(node)
            if node.implicit:
                right_wrap = not _implicit_right_ok(node.right)
                base = node.right.left if isinstance(node.right, Binary) else node.right
                if not right_wrap and isinstance(base, Name):
                    middle = (base.id,)
                elif not right_wrap and isinstance(base, Call):
                    middle = (base.func,)
                else:
                    middle = ""
            else:
                symbol = BINARY_SYMBOLS[node.op]
                middle = symbol if node.op == "pow" else f" {symbol} "
                right_wrap = _level(node.right) < right_level
            stack += [(node.right, right_wrap), middle, (node.left, _level(node.left) < left_level)]
        if wrap:
            stack.append("(")
    return "".join(out)


def print_program(statements: list[Assignment]) -> str:
    """The text of a program: one `name = expression` line per statement."""
    return "".join(f"{stmt.name} = {print_expr(stmt.expr)}\n" for stmt in statements)
