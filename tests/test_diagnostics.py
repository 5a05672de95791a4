"""Every kind of bad input gives a DiffcliError with the right kind, message, line and column,
rendered in rustc style."""

from __future__ import annotations

import json

import pytest

import diffcli
from diffcli.renderers.diagnostics import render_json, render_text


def error_of(text: str, **given) -> diffcli.DiffcliError:
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.parse(text, "model.expr").grad(given)
    return caught.value


# (source, kind, line, column, words in the message, words in the help)
CASES = [
    ("a = 1\nb = 2(a + 3))\n", "syntax", 2, 13, "unexpected `)`", "add the `(`"),
    ("a = 1 +\n", "syntax", 1, 8, "expected an expression after `+`", "expression"),
    ("a = \n", "syntax", 1, 4, "expected an expression after `=`", None),
    ("a = (1 + 2\nb = 3\n", "syntax", 1, 5, "never closed", "`)`"),
    ("a = (1 +\n 2\n", "syntax", 1, 5, "never closed", None),
    ("a = 1\nb = a c\n", "syntax", 2, 7, "missing operator between `a` and `c`", "`a*c`"),
    ("y = sin x\n", "syntax", 1, 9, "`sin` is a function", "`sin(x)`"),
    ("a = 2 3\n", "syntax", 1, 7, "number `3`", "`2*3`"),
    ("= 3\n", "syntax", 1, 1, "expected a name to assign", "name = expression"),
    ("a + b\n", "syntax", 1, 3, "expected `=` after `a`", None),
    ("a = 1 = 2\n", "syntax", 1, 7, "unexpected `=`", None),
    ("a = 1\nb = $a\n", "syntax", 2, 5, "unexpected character `$`", None),
    ("a = ()\n", "syntax", 1, 6, "empty parentheses", None),
    ("a = 1e999\n", "domain", 1, 5, "too large", None),
    ("a = 1 \r b\n", "syntax", 1, 7, "carriage return", None),
    ("y = sine(2)\n", "name", 1, 5, "unknown function `sine`", "did you mean `sin`?"),
    ("x = 1\ny = x(2)\n", "name", 2, 5, "`x` is a variable, not a function", "`x*(…)`"),
    ("y = sin(1, 2)\n", "name", 1, 5, "`sin` takes 1 argument, but 2 were given", "sin(x)"),
    ("y = atan2(1)\n", "name", 1, 5, "`atan2` takes 2 arguments, but 1 was given", None),
    ("y = max(1)\n", "name", 1, 5, "2 or more arguments", None),
    ("sin = 2\n", "name", 1, 1, "`sin` is a function and cannot be assigned", None),
    ("x = 1\npi = 3\n", "name", 2, 1, "`pi` is a constant", None),
    ("y = cos + 1\n", "name", 1, 5, "`cos` is a function, not a value", None),
    ("a = 1\nb = a + 1\na = 2\n", "name", 3, 1, "`a` is assigned twice", "line 1"),
    ("y = 2x + 1\n", "name", 1, 6, "`x` has no value", "--set x="),
    ("a = b + 1\nb = 2a\n", "cycle", 1, 1, "a -> b -> a", None),
    ("x = 1\na = c\nb = a\nc = b + x\n", "cycle", 2, 1, "a -> c -> b -> a", None),
    ("x = 0\ny = log(x) + 1\n", "domain", 2, 5, "log(0)", "x > 0"),
    ("x = -1\ny = sqrt(x)\n", "domain", 2, 5, "sqrt(-1)", None),
    ("x = 2\ny = asin(x)\n", "domain", 2, 5, "asin(2)", None),
    ("x = 1\ny = 3 / (x - 1)\n", "domain", 2, 7, "division by zero", None),
    ("x = -8\ny = x^(1/3)\n", "domain", 2, 6, "negative base", None),
    ("x = 0\ny = x^-1\n", "domain", 2, 6, "zero to a negative power", None),
    ("x = 800\ny = exp(x)\n", "domain", 2, 5, "overflows", None),
    ("x = 1e200\ny = x * x\n", "domain", 2, 7, "overflows", None),
    ("x = 0\ny = sqrt(x)\n", "domain", 2, 5, "derivative of `sqrt`", None),
    ("x = 1\ny = acos(x)\n", "domain", 2, 5, "derivative of `acos`", None),
    ("x = -2\nn = 2\ny = x^n\n", "domain", 3, 6, "exponent", None),
    ("x = 1e300\ny = 1e10 * x / 1e300 * x\n", "domain", 2, 10, "overflows", None),
    ("# nothing\n\n", "syntax", None, None, "no statements", None),
]


@pytest.mark.parametrize("text,kind,line,column,message,help", CASES, ids=[c[0][:24] for c in CASES])
def test_error(text, kind, line, column, message, help):
    error = error_of(text)
    assert (error.kind, error.line, error.column) == (kind, line, column), error.message
    assert message in error.message
    if help is not None:
        assert help in (error.help or "")
    rendered = render_text(error)
    assert rendered.startswith(f"error: {error.message}\n")
    assert "Traceback" not in rendered
    if line is not None:
        assert f" --> model.expr:{line}:{column}\n" in rendered
    body = json.loads(render_json(error))["error"]
    assert body["kind"] == kind and body.get("line") == line and body.get("column") == column


def test_gradient_overflow_while_values_are_finite():
    # y = 1e100, but dy/ds = 1e400
    error = error_of("x = 1\ns = 1e-300 * x\nt = 1e200 * s\ny = 1e200 * t\n")
    assert error.kind == "domain" and "gradient overflows" in error.message


def test_rustc_layout_with_caret_under_the_column():
    error = error_of("a = 1\nb = 2(a + 3))\n")
    assert render_text(error) == (
        "error: unexpected `)`\n"
        " --> model.expr:2:13\n"
        "  |\n"
        "2 | b = 2(a + 3))\n"
        "  |             ^\n"
        "  = help: remove it, or add the `(` it closes\n"
    )


def test_caret_counts_characters_and_shows_tabs_as_spaces():
    error = error_of("θ = 1\n\tb = θθ + $\n")
    assert (error.line, error.column) == (2, 11)
    lines = render_text(error).splitlines()
    source_line, caret_line = lines[3], lines[4]
    assert source_line == "2 |     b = θθ + $"
    assert caret_line.index("^") == source_line.index("$")


def test_reassignment_shows_both_lines():
    text = render_text(error_of("a = 1\nb = a + 1\na = 2\n"))
    assert "3 | a = 2" in text and "1 | a = 1" in text and "note: `a` is first assigned here" in text


def test_lines_count_from_one_and_long_line_numbers_align():
    text = "\n" * 120 + "a = (1\n"
    rendered = render_text(error_of(text))
    assert " --> model.expr:121:5\n" in rendered
    assert "    |\n121 | a = (1\n    |     ^\n" in rendered


def test_input_errors():
    program = diffcli.parse("a = 1\nw1 = 2a\n", "m.expr")
    with pytest.raises(diffcli.DiffcliError) as caught:
        program.grad({"w1": 3})
    assert caught.value.kind == "input" and "computed" in caught.value.message
    with pytest.raises(diffcli.DiffcliError) as caught:
        program.grad({"w": 3})
    assert caught.value.kind == "input" and "did you mean `w1`?" in caught.value.help
    with pytest.raises(diffcli.DiffcliError) as caught:
        program.grad(of="w2")
    assert caught.value.kind == "input" and caught.value.line is None
    with pytest.raises(diffcli.DiffcliError) as caught:
        program.derivatives("w1")
    assert caught.value.kind == "input"


def test_non_utf8_and_missing_files(tmp_path):
    bad = tmp_path / "bad.expr"
    bad.write_bytes(b"a = 1\nb = \xff\n")
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.load(bad)
    assert caught.value.kind == "io" and "line 2" in caught.value.message
    with pytest.raises(diffcli.DiffcliError) as caught:
        diffcli.load(tmp_path / "missing.expr")
    assert caught.value.kind == "io"


def test_exponent_note_beside_a_variable_e():
    program = diffcli.parse("e = 2\nx = 2e-3\ny = 2e + 1E-2 + 3e+1\n", "m.expr")
    notes = program.notes
    assert [(n.line, n.column) for n in notes] == [(2, 5), (3, 17)]
    assert notes[0].message == "`2e-3` is the number 0.002, not 2e - 3"
    assert "`2e - 3`" in notes[0].help
    assert render_text(notes[0], severity="note").startswith("note: `2e-3`")
    assert diffcli.parse("x = 2e-3\n").notes == []



@pytest.mark.parametrize("literal, number, column", [("[2e-3, 1]", "2e-3", 6), ("[[1, 2], [.5e-1, 1]]", ".5e-1", 15),
                                                     ("[1, -2E+1]", "2E+1", 10)])
def test_exponent_note_inside_a_literal_of_numbers(literal, number, column):
    """A literal of numbers is read as one token, without a node per number: its numbers get the
    note as well (there was none)."""
    notes = diffcli.parse(f"e = 2\nE = 3\nx = {literal}\ny = sum(x) * e * E\n", "m.expr").notes
    assert [(n.line, n.column) for n in notes] == [(3, column)]
    assert notes[0].message.startswith(f"`{number}` is the number ")

# ---------------------------------------------------------------- text from the file is shown, not obeyed

ESC = "\x1b"


def test_control_characters_from_the_file_are_escaped(tmp_path):
    from conftest import run_diffcli

    model = tmp_path / "m.expr"
    model.write_text(f"x = 1\ny = (x + # {ESC}[31mred{ESC}[0m \u202e\n 2)\nz = y $ {ESC}[2J\n")
    done = run_diffcli("grad", model)  # the error excerpt
    assert done.returncode == 1 and ESC not in done.stderr_text
    assert "z = y $ \\x1b[2J" in done.stderr_text
    model.write_text(f"x = 1\ny = (x + # {ESC}[31mred{ESC}[0m \u202e\n 2)\n")
    for args in (["grad"], ["eval"], ["check"], ["explain"], ["explain", "--format", "markdown"]):
        done = run_diffcli(*args, model)
        assert done.returncode == 0, done.stderr_text
        assert ESC not in done.stdout_text and "\u202e" not in done.stdout_text, args
    assert "(x + 2)" in run_diffcli("grad", model).stdout_text  # the comment is no part of it



def test_json_escapes_the_c1_controls_a_terminal_may_obey(tmp_path):
    """JSON keeps UTF-8 as it is, but not U+009B (a CSI to some terminals) from a file's name."""
    import json

    from conftest import run_diffcli

    model = tmp_path / "a\u009b2J\u007f.expr"
    model.write_text("x = 1\ny = x $\n")
    done = run_diffcli("grad", model, "--json")
    assert done.returncode == 1
    assert "\u009b" not in done.stderr_text and "\x7f" not in done.stderr_text
    assert "\\u009b2J\\u007f" in done.stderr_text
    assert json.loads(done.stderr_text)["error"]["file"] == str(model)
    model.write_text("x = 1\ny = 2x\n")
    done = run_diffcli("grad", model, "--json")
    assert done.returncode == 0 and json.loads(done.stdout_text)["value"] == 2

def test_a_file_name_cannot_act_on_the_terminal_or_on_tex(tmp_path):
    from conftest import run_diffcli

    name = f"a{ESC}[31m\n\\input{{evil}}.expr"
    model = tmp_path / name
    model.write_text("x = 1\ny = 2x\n")
    latex = run_diffcli("explain", model, "--format", "latex")
    assert latex.returncode == 0
    first, *rest = latex.stdout_text.split("\n")
    assert first.startswith("% diffcli explain") and rest[0].startswith("\\paragraph")
    assert not any("\\input{evil}" in line for line in rest)  # in the comment only
    for args in (["grad"], ["check"], ["explain"]):
        done = run_diffcli(*args, model)
        assert ESC not in done.stdout_text and f"{ESC}" not in done.stderr_text, args
    (tmp_path / name).write_text("y = $\n")
    done = run_diffcli("grad", model)
    assert done.returncode == 1 and ESC not in done.stderr_text and "\\x1b[31m\\n" in done.stderr_text


def test_a_long_line_is_cut_around_the_place_in_the_excerpt():
    text = "y = " + "+".join(["x"] * 50_000) + " + )\n"
    rendered = render_text(error_of(text))
    assert len(rendered) < 600
    line, carets = [row for row in rendered.split("\n") if row.startswith(("1 |", "  |"))][1:3]
    assert line.startswith("1 | …") and line.endswith("x + )")
    assert carets.index("^") == line.index(")")
