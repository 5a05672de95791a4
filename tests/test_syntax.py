"""syntax.postorder, the one walk over an expression, against the walk `Expr.children()` defines."""

from __future__ import annotations

import pytest

import diffcli
from diffcli.language.syntax import postorder
from conftest import SAMPLES

NESTED = "x = 1\ny = max(-x, (x + 2)^3, sin(x)*2x, +x) / (1 - x) - x\n"


def by_children(expr):
    """Post-order, children left to right, as children() gives them (recursive: small trees only)."""
    nodes = []
    for child in expr.children():
        nodes += by_children(child)
    return nodes + [expr]


@pytest.mark.parametrize("text", [NESTED] + [path.read_text() for path in sorted(SAMPLES.glob("*.expr"))])
def test_postorder_is_the_walk_children_define(text):
    for stmt in diffcli.parse(text).statements:
        assert [id(node) for node in postorder(stmt.expr)] == [id(node) for node in by_children(stmt.expr)]


def test_every_kind_of_node_is_walked():
    kinds = {type(node).__name__ for stmt in diffcli.parse(NESTED).statements for node in postorder(stmt.expr)}
    assert kinds == {"Number", "Name", "Unary", "Binary", "Call", "Paren"}
