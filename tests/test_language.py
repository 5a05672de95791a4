"""The language as SPEC section 1 defines it, through the library API."""

from __future__ import annotations

import math

import pytest

import diffcli
from diffcli.language.syntax import Binary, Name, Number, Paren


def values(text: str, **given) -> dict:
    return diffcli.parse(text).evaluate(given).values


def grad(text: str, of=None, **given):
    return diffcli.parse(text).grad(given, of)


@pytest.mark.parametrize("expr,expected", [
    ("2^3^2", 512.0),
    ("2**3**2", 512.0),
    ("-3^2", -9.0),
    ("2^-1", 0.5),
    ("1/2a", 1.5),              # (1/2)*a
    ("2^3a", 24.0),             # (2^3)*a
    ("3a^2", 27.0),             # 3*(a^2)
    ("2(a+1)(a-1)", 16.0),
    ("(a+1)(a-1)", 8.0),
    ("(a+1)a", 12.0),
    ("2sin(0)", 0.0),
    ("2pi", 2 * math.pi),
    ("- -a", 3.0),
    ("2 * -a", -6.0),
    ("+a", 3.0),
    ("8 / 4 / 2", 1.0),
    ("8 - 4 - 2", 2.0),
    ("a ^ 2 ^ -1", math.sqrt(3.0)),
    ("(4) a", 12.0),
    ("1e-1a", 0.30000000000000004),
    ("2.5E0", 2.5),
    (".5 + 2.", 2.5),
    ("min(a, 1, 2)", 1.0),
    ("max(a, 1, 2, 7)", 7.0),
    ("ln(exp(2))", 2.0),
])
def test_expression_values(expr, expected):
    assert values(f"a = 3\ny = {expr}\n")["y"] == pytest.approx(expected, rel=1e-15)


def test_scientific_notation_versus_e():
    got = values("e = 2\nx = 2e-3\ny = 2e\nz = 2E+2e\n")
    assert got["x"] == 0.002 and got["y"] == 4.0 and got["z"] == 400.0


def test_layout_semicolons_comments_continuations_crlf_bom_unicode():
    text = "\ufeff# comment\r\nout = h*θ - w1 / (1 +  # inside\r\n   h^2)\r\nh = tanh(w1*θ + w_2)\r\nw1 = 0.5;\tθ = -1.25 ; w_2 = 0.1;\r\n\r\n"
    program = diffcli.parse(text)
    assert program.names == ["out", "h", "θ", "w1", "w_2"]
    assert program.output == "w_2"
    result = program.grad(of="out")
    assert result.value == pytest.approx(0.19605692142199488, rel=1e-12)
    assert result.gradients["θ"] == pytest.approx(-1.083486648483803, rel=1e-12)


def test_inputs_are_literals_with_an_optional_sign_and_free_names():
    program = diffcli.parse("a = 2\nlr = -1e-3\np = +4\nc = (2)\nd = 2*1\ny = a + lr + p + c + d + z\n")
    assert program.inputs == {"a": 2.0, "lr": -0.001, "p": 4.0, "z": None}
    assert not program.is_input("c") and not program.is_input("d")


def test_statements_in_any_order():
    result = grad("y = 3x\nx = 2w\nw = 1\n", of="y")
    assert result.values == {"y": 6.0, "x": 2.0, "w": 1.0}
    assert result.gradients == {"y": 1.0, "x": 3.0, "w": 6.0}


def test_gradients_are_total_derivatives_over_every_path():
    result = grad("a = 2\nb = a^2\nc = a*b\nd = b + c\n")
    # d = a^2 + a^3 -> dd/da = 2a + 3a^2 = 16; dd/db = 1 + a = 3; dd/dc = 1
    assert result.gradients == {"a": 16.0, "b": 3.0, "c": 1.0, "d": 1.0}


def test_alias_has_its_own_gradient():
    # b = a gets a node of its own: dd/db counts only the paths through b
    result = grad("a = 2\nb = a\nd = 3b + a\n")
    assert result.gradients == {"a": 4.0, "b": 3.0, "d": 1.0}


def test_constant_only_computed_name_has_a_gradient():
    result = grad("t = .25 * 8\nx = 3\ny = t * x\n")
    assert result.gradients["t"] == 3.0


def test_output_choice_and_unrelated_names():
    result = grad("a = 1.5\nu = 4\nb = a^3\nc = b + u\nd = 2c\n", of="c", u=-2)
    assert result.output == "c" and result.value == 1.375
    assert result.gradients == {"a": 6.75, "u": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}


def test_forward_mode_is_a_jacobian_column():
    program = diffcli.parse("a = 2\nb = 5 - 3a\nc = 2b + 3\nd = 5b + 6\ne = 7c + d^2\nf = 2e\ng = 3f - o\n")
    column = program.derivatives("a", {"o": 1}).derivatives
    assert column == {"a": 1.0, "b": -3.0, "c": -6.0, "d": -15.0, "e": -72.0, "f": -144.0, "g": -432.0, "o": 0.0}
    for name in program.names:
        assert program.grad({"o": 1}, of=name).gradients["a"] == column[name]


def test_ast_keeps_spans_and_parentheses():
    program = diffcli.parse("y = (a + 1)*2\na = 1\n")
    expr = program.statements[0].expr
    assert isinstance(expr, Binary) and expr.op == "mul"
    assert isinstance(expr.left, Paren) and (expr.left.start, expr.left.end) == (4, 11)
    assert isinstance(expr.right, Number) and expr.right.value == 2.0
    inner = expr.left.inner
    assert isinstance(inner.left, Name) and inner.left.id == "a" and inner.left.start == 5
    assert expr.op_start == 11


def test_implicit_product_is_marked():
    expr = diffcli.parse("y = 3a\na = 1\n").statements[0].expr
    assert isinstance(expr, Binary) and expr.implicit and expr.op == "mul"


def test_unused_set_name_is_an_extra_input():
    result = grad("y = 2x\n", x=1, s=0.5)
    assert result.inputs == {"x": 1.0, "s": 0.5}
    assert result.gradients["s"] == 0.0 and result.unused == ["s"]


def test_api_docstring_example():
    import doctest

    import diffcli.program

    assert doctest.testmod(diffcli.program).failed == 0


def test_nested_min_over_unicode_names_in_odd_layout():
    """The program on which the long differential run's SymPy reference failed (SymPy's own error):
    y is the outer min's third argument, Ωmega = _t, so dy/d_t = 1 and nothing else matters."""
    from conftest import ROOT

    program = diffcli.load(ROOT / "tests" / "data" / "nested_min_unicode.expr")
    result = program.grad({"loss2": -3.25, "_t": -4.75})
    assert result.value == -4.75
    assert result.gradients == {"loss2": 0.0, "_t": 1.0, "Ωmega": 1.0, "μ": 0.0, "ñame": 0.0,
                                "w_1": 0.0, "λ_0": 1.0, "y": 1.0}
    assert result.values["w_1"] == pytest.approx(-4.75 * -4.75 / 3)


def test_a_semicolon_in_a_comment_does_not_end_a_statement():
    """A comment runs to the end of its line, whatever it holds (a `;` included)."""
    assert values("x = 1\ny = (x + # note; more\n2)\n")["y"] == 3.0
    assert values("x = 1 # a; b = 2\ny = x # ;;\n") == {"x": 1.0, "y": 1.0}
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.parse("x = 1\ny = x + # note; more\n2\n")
    assert caught.value.message == "expected an expression after `+`, found end of line"
    with pytest.raises(diffcli.DiffcliError) as caught:  # a real `;` still ends it
        diffcli.parse("x = 1\ny = (x + 2; z = 3)\n")
    assert caught.value.message == "this `(` is never closed"


def test_sign_is_a_function_a_file_may_use_as_a_name():
    """SPEC.md reserves only its own functions; `sign` is diffcli's addition, so `sign = -1` is a
    valid program (and then `sign(x)` in it is an error pointing at both places)."""
    result = diffcli.parse("sign = -1\ny = 3sign^2\n").grad()
    assert result.value == 3.0 and result.gradients["sign"] == -6.0
    free = diffcli.parse("y = 2*sign\n").grad({"sign": 4.0})
    assert free.value == 8.0 and free.gradients["sign"] == 2.0
    assert diffcli.parse("x = -2\ny = sign(x)*x\n").grad().value == 2.0
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.parse("sign = 2\nx = 1\ny = sign(x)\n")
    assert caught.value.kind == "name" and "`sign` is a variable in this file" in caught.value.message
    assert (caught.value.line, caught.value.column) == (3, 5)
    for spec_function in ("sin", "relu", "min"):  # the SPEC's own stay reserved
        with pytest.raises(diffcli.DiffcliError, match="cannot be assigned"):
            diffcli.parse(f"{spec_function} = 1\ny = 2\n")
