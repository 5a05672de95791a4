"""Rich display in Jupyter: each object's `_repr_*_` methods, and the same through IPython's own
display formatter and the `%%diffcli` cell magic (an InteractiveShell in this process)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import pytest

import diffcli
from diffcli.commands.check import check
from diffcli.commands.derivation import derive

CHAIN = "a = 2\nb = 5 - 3a\nc = b^2\ng = c - o\n"


class Cells(HTMLParser):
    """The text of every <td> of an HTML table, row by row."""

    def __init__(self, text: str):
        super().__init__()
        self.rows, self._in = [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        self._in = tag in ("td", "th")
        if self._in:
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        self._in = False if tag in ("td", "th") else self._in

    def handle_data(self, data):
        if self._in:
            self.rows[-1][-1] += data


def svg_texts(svg: str) -> list[str]:
    root = ElementTree.fromstring(svg[svg.index("<svg"):])  # well-formed XML, or this raises
    return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]


@pytest.fixture(scope="module")
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "diffcli")
    yield shell
    InteractiveShell.clear_instance()


def test_grad_results_are_html_tables_of_their_numbers():
    result = diffcli.parse(CHAIN).grad({"o": 1})
    rows = Cells(result._repr_html_()).rows
    assert rows[0] == ["name", "value", "∂g/∂name"]
    assert ["a (input)", "2", "6"] in rows and ["g (output)", "0", "1"] in rows  # dg/da = -6(5 - 3a)
    assert result._repr_svg_() is None and result._repr_latex_() is None  # only what it has


def test_a_program_shows_its_graph_and_values():
    program = diffcli.parse("a = 2\nb = 5 - 3a\nc = b^2\n")
    texts = svg_texts(program._repr_svg_())
    assert "grad 6" in texts and "c" in texts
    assert ["a (input)", "2", "6"] in Cells(program._repr_html_()).rows
    assert svg_texts(diffcli.parse(CHAIN).graph_svg({"o": 1}, precision=3))  # free input: given here
    free = diffcli.parse(CHAIN)
    assert free._repr_svg_() is None and "give a value to <code>o</code>" in free._repr_html_()


def test_every_result_displays_itself(shell):
    program = diffcli.parse("x = 2 ± 0.1\ny = 3\nf = x^2 y\n")
    formatter = shell.display_formatter
    for thing, expected in [
        (program.evaluate(), "12"),
        (program.derivatives("x"), "12"),          # df/dx = 2xy
        (program.jacobian(["f", "y"]), "12"),
        (program.hessian(), "6"),                   # d²f/dx² = 2y
        (program.hvp({"x": 1}), "6"),
        (program.uncertainty(), "1.2"),             # |df/dx| u(x) = 12 · 0.1
        (check(program), "12"),
    ]:
        data, _ = formatter.format(thing)
        assert "text/html" in data, type(thing)
        assert expected in data["text/html"], (type(thing), data["text/html"][:400])
    derivation = derive(program, None, "x")
    data, _ = formatter.format(derivation)
    assert "\\frac{d f}{d x}" in data["text/latex"] and "df/dx" in data["text/markdown"]
    assert derivation._repr_latex_() == data["text/latex"]
    data, _ = formatter.format(program)
    assert "image/svg+xml" in data and "text/html" in data


def test_a_fit_displays_its_report(shell):
    from diffcli.commands import fit as fitting

    program = diffcli.parse("p = 0\nloss = (p - 3)^2\n")
    problem, start, _ = fitting.setup(program, [], {}, data={})
    result = fitting.fit(problem, "L-BFGS-B", start=start)
    html = shell.display_formatter.format(result)[0]["text/html"]
    assert html.startswith("<pre>") and "p" in html and "3" in html


def test_the_cell_magic(shell):
    result = shell.run_cell_magic("diffcli", "grad --set o=1", CHAIN)
    assert ["a (input)", "2", "6"] in Cells(shell.display_formatter.format(result)[0]["text/html"]).rows
    picture = shell.run_cell_magic("diffcli", "graph --set o=1", CHAIN)
    assert "grad 6" in svg_texts(shell.display_formatter.format(picture)[0]["image/svg+xml"])
    explained = shell.run_cell_magic("diffcli", "explain --set o=1 --wrt a", CHAIN)
    assert "\\frac{d g}{d a}" in shell.display_formatter.format(explained)[0]["text/latex"]
    # an error is the diagnostic, not a traceback
    wrong = shell.run_cell_magic("diffcli", "grad", "a = 2\nb = a +\n")
    assert repr(wrong).startswith("error: ") and " --> <cell>:2:" in repr(wrong)
    # anything else runs the command line on the cell
    generated = shell.run_cell_magic("diffcli", "codegen --lang python", CHAIN)
    assert "def grad_g(" in repr(generated)
    uncertain = shell.run_cell_magic("diffcli", "uncertainty --set a=2±0.1 --set o=1", CHAIN)
    assert "Traceback" not in repr(uncertain) and "0.6" in repr(uncertain)   # |dg/da| u(a) = 6 · 0.1


def test_a_program_with_an_array_output_displays_its_values():
    # `eval` takes any output: the display shows the values (there is no gradient), it does not raise
    program = diffcli.parse("x = [1, 2]\ny = x*2\n")
    assert ["y", "2: [2 4]"] in Cells(program._repr_html_()).rows
    assert "2: [2 4]" in program._repr_svg_() and "grad" not in program._repr_svg_()


def test_a_program_whose_defaults_leave_a_domain_displays_the_diagnostic():
    # its _repr_html_ and _repr_svg_ raised the DiffcliError (IPython prints a formatter's traceback)
    program = diffcli.parse("x = -1\ny = log(x)\n")
    html = program._repr_html_()
    assert "error: `log` is undefined at log(-1)" in html and "Traceback" not in html
    assert program._repr_svg_() is None


def test_a_huge_table_is_cut_with_a_note():
    program = diffcli.parse("x0 = 1\n" + "".join(f"x{i} = x{i - 1} + 1\n" for i in range(1, 2500)))
    html = program._repr_html_()
    assert len(Cells(html).rows) == 2001 and "… and 500 more rows" in html   # the header and 2,000
    assert "too big to draw" in html


def test_an_array_program_displays_its_shapes():
    program = diffcli.parse("x = [1, 2, 3]\nw = 2\ny = w*x\nloss = mean(y^2)\n")
    rows = Cells(program.grad()._repr_html_()).rows
    assert ["y", "3: [2 4 6]", "3: [1.33333 2.66667 4]"] in rows     # d(mean y²)/dy = 2y/3
    assert "3: [2 4 6]" in program._repr_svg_() and "3: [2 4 6]" in program._repr_html_()  # graph's drawing
