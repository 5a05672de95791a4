"""`x = 2.1 ± 0.1` and `x = 2.1 ± 5%`: an input's standard uncertainty, written in the file."""

from __future__ import annotations

import pytest

import diffcli
from diffcli import DiffcliError


def test_uncertainties_are_carried_per_input_and_nothing_else_changes():
    text = "L = 0.5 ± 0.002\nT = 1.42 +/- 0.5%\nk = -3 ± 1\nc = 2\ng = k + 4pi^2 L/T^2 + c\n"
    program = diffcli.parse(text)
    assert program.graph.uncertainties == {"L": (0.002, False), "T": (0.005, True), "k": (1.0, False)}
    plain = diffcli.parse(text.replace(" ± 0.002", "").replace(" +/- 0.5%", "").replace(" ± 1", ""))
    assert program.inputs == plain.inputs == {"L": 0.5, "T": 1.42, "k": -3.0, "c": 2.0}
    assert program.grad().gradients == plain.grad().gradients
    assert program.definition("L") == "input"


@pytest.mark.parametrize("text, message, column", [
    ("y = a ± 1", "only an input's number can carry an uncertainty", 7),
    ("x = (2) ± 1", "only an input's number can carry an uncertainty", 9),
    ("y = sin(x ± 1)", "`±` can only follow the number of an input", 11),
    ("x = 2 ± 1 ± 2", "`±` can only follow the number of an input", 11),
    ("x = 2 ± a", "expected a number after `±`, found name `a`", 9),
    ("x = 2 ± -1", "expected a number after `±`", 9),
    ("y = 5 % 3", "`%` only marks a relative uncertainty", 7),
    ("y = (5 % 3)", "`%` only marks a relative uncertainty", 8),
    ("x = 2 +/- 1\ny = x +/- 1", "only an input's number can carry an uncertainty", 7),
])
def test_misplaced_uncertainty_is_a_syntax_error_with_help(text, message, column):
    with pytest.raises(DiffcliError) as caught:
        diffcli.parse(text)
    error = caught.value
    assert error.kind == "syntax" and message in error.message and error.help
    assert error.source.line_col(error.span[0])[1] == column


def test_an_uncertain_program_round_trips_through_lark_too():
    """The fast parser and Lark agree on what is a syntax error: Lark must accept `±` too."""
    from diffcli.language import parser

    text = "x = 2 ± 0.1; y = -1 +/- 3%\nz = x y\n"
    with pytest.raises(DiffcliError, match="missing operator"):
        diffcli.parse(text)
    parser._parser().parse("x = 2 ± 0.1; y = -1 +/- 3%\nz = x*y\n")
