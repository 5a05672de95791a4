"""The printer writes an AST back as .expr text that parses to the same tree (Paren nodes included)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import diffcli
from diffcli.formatting import number_text
from diffcli.language.printer import print_expr, print_program
from diffcli.language.syntax import Assignment, Binary, Call, Name, Number, Paren, Unary
from strategies import programs

_FIELDS = {Number: ("value",), Name: ("id",), Unary: ("op",), Binary: ("op", "implicit"),
           Call: ("func",), Paren: ()}


def same_tree(a, b) -> bool:
    """Structural equality of two ASTs (spans aside), with a stack: deep trees break recursive __eq__."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, Assignment):
            if x.name != y.name:
                return False
            stack.append((x.expr, y.expr))
            continue
        if any(getattr(x, f) != getattr(y, f) for f in _FIELDS[type(x)]):
            return False
        if type(x) is Number and math.copysign(1, x.value) != math.copysign(1, y.value):
            return False
        cx, cy = x.children(), y.children()
        if len(cx) != len(cy):
            return False
        stack.extend(zip(cx, cy))
    return True


def same_program(a: list, b: list) -> bool:
    return len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b))


def reparse(statements):
    return diffcli.parse(print_program(statements)).statements


@settings(max_examples=300)
@given(programs())
def test_generated_programs_round_trip(case):
    statements = diffcli.parse(case.text).statements
    text = print_program(statements)
    assert same_program(diffcli.parse(text).statements, statements), (case.text, text)
    assert print_program(diffcli.parse(text).statements) == text  # printing is a fixed point


def test_same_tree_tells_trees_apart():
    one = diffcli.parse("y = 2(a + 1)\n").statements
    for other in ["y = 2*(a + 1)", "y = 2(a - 1)", "y = 2((a + 1))", "y = 3(a + 1)", "z = 2(a + 1)",
                  "y = 2(b + 1)", "y = 2(a + 1.5)"]:
        assert not same_program(diffcli.parse(other).statements, one), other
    assert same_program(diffcli.parse("y=2 ( a+1 )").statements, one)


def test_printer_spelling():
    cases = {
        "y = 5 - 3a": "y = 5 - 3a\n",
        "y = 2 e5 + 2e": "y = 2 e5 + 2e\n",              # `2e5` would be a number
        "y = 2^3^2 + a**-b": "y = 2^3^2 + a^-b\n",
        "y = -a^2 - -b": "y = -a^2 - -b\n",
        "y = (a+1)(a-1)/2sin(x)": "y = (a + 1)(a - 1) / 2sin(x)\n",
        "y = max(a,b , c)+1e-3+6.02E23+.5+2.": "y = max(a, b, c) + 0.001 + 6.02e23 + 0.5 + 2\n",
        "y = (\n a +\n b)": "y = (a + b)\n",
    }
    for text, printed in cases.items():
        assert print_program(diffcli.parse(text).statements) == printed


def test_hand_built_trees_get_the_parentheses_they_need():
    a, b, c = Name("a", 0, 0), Name("b", 0, 0), Name("c", 0, 0)
    assert print_expr(Binary("mul", Binary("add", a, b, 0), c, 0)) == "(a + b) * c"
    assert print_expr(Binary("sub", a, Binary("sub", b, c, 0), 0)) == "a - (b - c)"
    assert print_expr(Binary("pow", Binary("pow", a, b, 0), c, 0)) == "(a^b)^c"
    assert print_expr(Binary("pow", Unary("neg", a, 0), b, 0)) == "(-a)^b"
    assert print_expr(Binary("mul", Number(2, 0, 0), Unary("neg", a, 0), 0, implicit=True)) == "2(-a)"
    assert print_expr(Binary("pow", Number(-2.0, 0, 0), b, 0)) == "(-2)^b"


def test_numbers_print_back_to_the_same_double():
    for x in [0.0, 1.0, 0.1, 1 / 3, 2.5e-300, 5e-324, 1.7976931348623157e308, 1e16, 123456789012345680.0]:
        assert diffcli.parse(f"y = {number_text(x)}").statements[0].expr.value == x


@settings(max_examples=200)
@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_any_double_prints_back_exactly(x):
    assert diffcli.parse(f"y = {number_text(x)}").statements[0].expr.value == x


def test_deep_and_wide_trees_print_without_recursion():
    """100,000 nested parentheses and a 100,000-term sum print (and compare) with no recursion."""
    depth = 100_000
    deep = Name("x", 0, 0)
    for _ in range(depth):
        deep = Paren(Binary("add", Binary("mul", deep, Number(0.5, 0, 0), 0), Number(1, 0, 0), 0), 0, 0)
    text = print_expr(deep)
    assert text.startswith("(" * depth + "x * 0.5 + 1)") and text.endswith(" * 0.5 + 1)")
    assert same_tree(deep, deep)

    wide = Name("t0", 0, 0)
    for i in range(1, depth):
        wide = Binary("add", wide, Binary("pow", Name(f"t{i}", 0, 0), Number(2, 0, 0), 0), 0)
    text = print_expr(wide)
    assert text.count(" + ") == depth - 1 and text.endswith("t99999^2")


def test_deep_and_wide_programs_round_trip_through_the_parser():
    depth = 5_000  # 5 times Python's recursion limit; the parser's speed bounds it here
    text = "x = 0.5\ny = " + "(" * depth + "x" + " * 0.999 + 0.001)" * depth + "\n"
    statements = diffcli.parse(text).statements
    assert same_program(reparse(statements), statements)
    terms = " + ".join(f"({i % 7} - (w*{i} + b))^2" for i in range(depth))
    statements = diffcli.parse(f"w = 0.5\nb = 0.1\nloss = {terms}\n").statements
    assert same_program(reparse(statements), statements)
