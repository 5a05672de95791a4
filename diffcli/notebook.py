"""Jupyter and IPython: how diffcli's objects draw themselves, and the `%%diffcli` cell magic.

`import diffcli` registers the drawings (see display.py for why they are registered rather than
imported by the objects): a Program shows its graph (the picture `diffcli graph` draws) and its
values; the results of grad, eval, hessian, uncertainty, fit and check show the tables the command
line prints, as HTML; a derivation (`explain`) shows as Markdown and LaTeX. The renderers are
imported only when something is drawn.

`%load_ext diffcli`, then a cell

    %%diffcli grad --set o=1
    a = 2
    g = 3a - o

runs the command on the cell's text and displays the result. grad, eval, hessian, uncertainty,
check, explain and graph with --set, --of and --wrt give the rich displays above; any other
command or option runs the command line itself on the cell (as FILE `-`) and shows what it prints.
"""

from __future__ import annotations

import io

from .display import register
from .errors import DiffcliError
from .formatting import number

PRECISION = 6
NAME = "<cell>"
MAX_ROWS = 2000  # a notebook cell of a huge program's table would take the browser minutes


# ---------------------------------------------------------------- the drawings

def _rich_html(renderable) -> str:
    """What a renderer's Rich table (or its plain text) looks like in a terminal, as HTML."""
    if isinstance(renderable, str):
        return _pre(renderable)
    from rich.console import Console

    console = Console(record=True, width=120, file=io.StringIO(), color_system="truecolor")
    console.print(renderable)
    return console.export_html(inline_styles=True, code_format='<pre style="line-height:1.3">{code}</pre>')


def _escape(text: str) -> str:
    from html import escape  # its entity table costs every command a millisecond at start-up

    return escape(text)


def _pre(text: str) -> str:
    return f"<pre>{_escape(text)}</pre>"


def _table(head: list[str], rows: list[list[str]], marks: list[str]) -> str:
    cells = "".join(f"<th>{_escape(h)}</th>" for h in head)
    body = "".join(
        f'<tr class="{mark}">' + "".join(
            f'<td style="text-align:{"left" if i == 0 else "right"}">{_escape(c)}</td>'
            for i, c in enumerate(row)) + "</tr>"
        for row, mark in zip(rows, marks))
    return f'<table class="diffcli"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


def _result_html(result) -> str:
    """Evaluation, Gradients, Derivatives and Jacobian: name, value and each derivative column
    (an array as the command line's table writes it: its shape, and its elements or their range)."""
    from .renderers.report import cell

    output = getattr(result, "output", None)
    columns: list[tuple[str, dict]] = []
    if hasattr(result, "gradients"):
        columns.append((f"∂{output}/∂name", result.gradients))
    elif hasattr(result, "derivatives"):
        columns.append((f"∂name/∂{result.wrt}", result.derivatives))
    elif hasattr(result, "jacobian"):
        columns += [(f"∂{out}/∂name", result.jacobian[out]) for out in result.outputs]
    rows, marks = [], []
    names = list(result.values)
    for name in names[:MAX_ROWS]:
        value = result.values[name]
        label = name + (" (output)" if name == output else " (input)" if name in result.inputs else "")
        rows.append([label, cell(value, PRECISION)] + [cell(c[name], PRECISION) for _, c in columns])
        marks.append("output" if name == output else "input" if name in result.inputs else "")
    title = f"<p><b>{_escape(output)} = {number(result.value, PRECISION)}</b></p>" if output else ""
    more = f"<p>… and {len(names) - MAX_ROWS:,} more rows</p>" if len(names) > MAX_ROWS else ""
    return title + _table(["name", "value"] + [c for c, _ in columns], rows, marks) + more


def _graph_svg(program, values=None, of=None, precision: int = PRECISION, gradients: bool = True) -> str:
    from .renderers import drawing, render

    diagram = drawing.draw(program, values, of=of, gradients=gradients, precision=precision)
    return render.render(diagram.source, "svg").decode("utf-8")


def _program_svg(program):
    if any(default is None for default in program.inputs.values()):
        return None  # a free input has no value to draw: program.graph_svg({...}) gives one
    from .renderers import drawing, page

    if drawing.count_nodes(program) > page.MAX_NODES:  # seconds to lay out: not for every display
        return None
    try:
        if program.shape(program.output):  # an array output has no gradient: its values, as `eval`
            return _graph_svg(program, gradients=False)
        return program.graph_svg()
    except DiffcliError:  # (a domain error at the defaults: the HTML display says it)
        return None


def _program_html(program) -> str:
    free = [name for name, default in program.inputs.items() if default is None]
    head = (f"<p><b>{_escape(program.source.filename)}</b>: {len(program.names)} variables, "
            f"output <code>{_escape(program.output)}</code>")
    if free:
        return head + ("; give a value to " + ", ".join(f"<code>{_escape(n)}</code>" for n in free)
                       + " to see the values and the graph (<code>program.grad({...})</code>)</p>")
    try:
        result = program.evaluate() if program.shape(program.output) else program.grad()
    except DiffcliError as error:  # a display shows the diagnostic, as a cell of the magic does
        from .renderers import diagnostics

        return head + "</p>" + _pre(diagnostics.render_text(error))
    svg = _program_svg(program)
    picture = svg[svg.index("<svg"):] if svg else "<p>(the graph is too big to draw here)</p>"
    return head + "</p>" + _result_html(result) + picture  # the SVG without its XML prolog


def _hessian_html(result) -> str:
    from .renderers import matrix_report

    table = matrix_report.hessian_table if hasattr(result, "hessian") else matrix_report.hvp_table
    return _rich_html(table(result, NAME, PRECISION))


def _uncertainty_html(result) -> str:
    from .renderers import uncertainty_report

    return _rich_html(uncertainty_report.table(result, NAME, PRECISION))


def _check_html(result) -> str:
    from .renderers import report

    return _rich_html(report.check_table(result, NAME))


def _fit_html(result) -> str:
    from .renderers import fitreport

    return _pre(fitreport.fit_text(result, NAME, PRECISION))


def _derivation(format: str):
    def write(derivation) -> str:
        from .renderers.explain_writers import render

        return render(derivation, format)
    return write


def _array_derivation(format: str):
    def write(derivation) -> str:
        from .renderers.array_explain import render

        return render(derivation, format, PRECISION)
    return write


register("Program", "graph_svg", _graph_svg)
register("Program", "svg", _program_svg)
register("Program", "html", _program_html)
register("Evaluation", "html", _result_html)
register("Hessian", "html", _hessian_html)
register("HessianVector", "html", _hessian_html)
register("Propagation", "html", _uncertainty_html)
register("CheckResult", "html", _check_html)
register("Fit", "html", _fit_html)
register("Derivation", "markdown", _derivation("markdown"))
register("Derivation", "latex", _derivation("latex"))
register("ArrayDerivation", "markdown", _array_derivation("markdown"))
register("ArrayDerivation", "latex", _array_derivation("latex"))


# ---------------------------------------------------------------- the cell magic

class Shown:
    """What a cell shows: text (a diagnostic, or what the command line printed), or a picture."""

    def __init__(self, text: str = "", svg: str | None = None):
        self.text, self.svg = text, svg

    def __repr__(self) -> str:
        return self.text.rstrip("\n") if self.svg is None else "<diffcli graph>"

    def _repr_html_(self):
        return None if self.svg is not None else _pre(self.text)

    def _repr_svg_(self):
        return self.svg


RICH = {"grad", "eval", "hessian", "uncertainty", "check", "explain", "graph"}


def run_cell(line: str, cell: str):
    """`%%diffcli COMMAND OPTIONS` on the cell's text: a result that displays itself, or Shown."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError as error:
        return Shown(f"error: {error} in `%%diffcli {line}`\n")
    if not words:
        return Shown("error: name a command: %%diffcli grad --set o=1 (or eval, hessian, uncertainty, "
                     "check, explain, graph, fit, codegen, ...)\n")
    command, options = words[0], _options(words[1:])
    if command not in RICH or options is None:
        return _command_line(words, cell)
    from . import program as programs

    try:
        program = programs.parse(cell, NAME)
        values, of, wrt = options
        if command == "grad":
            return program.derivatives(wrt, values) if wrt else program.grad(values, of)
        if command == "eval":
            return program.evaluate(values)
        if command == "hessian":
            return program.hessian(values, of, wrt.split(",") if wrt else None)
        if command == "uncertainty":
            return program.uncertainty(values, of)
        if command == "check":
            from .commands.check import check

            return check(program, values, of)
        if command == "explain" and (program.base.arrays or program.has_arrays):
            from .commands.array_derivation import derive_arrays

            return derive_arrays(program, values, wrt, of, NAME)
        if command == "explain":
            from .commands.derivation import derive

            return derive(program, values, wrt, of, NAME)
        return Shown(svg=program.graph_svg(values, of))
    except DiffcliError as error:
        from .renderers import diagnostics

        return Shown(diagnostics.render_text(error))


def _options(words: list[str]):
    """--set/--of/--wrt (each NAME=VALUE a plain number) -> (values, of, wrt); None for anything else."""
    from .language.parser import read_number

    values, of, wrt = {}, None, None
    it = iter(words)
    for word in it:
        key, eq, given = word.partition("=") if word.startswith("--") else (word, "", "")
        if key not in ("--set", "--of", "--wrt"):
            return None
        text = given if eq else next(it, None)
        if text is None:
            return None
        if key == "--of":
            of = text
        elif key == "--wrt":
            wrt = text
        else:
            for part in filter(None, (p.strip() for p in text.split(","))):
                name, eq, number_text = part.partition("=")
                value = read_number(number_text.strip())
                if not eq or value is None:
                    return None  # `x=2.1±0.1` and the like: the command line reads them
                values[name.strip()] = value
    return values, of, wrt


def _command_line(words: list[str], cell: str) -> Shown:
    """Run the real command line on the cell's text (FILE `-`), and show everything it prints."""
    import os
    import subprocess
    import sys

    command, rest = words[0], words[1:]
    environment = dict(os.environ, NO_COLOR="1", COLUMNS="120")
    done = subprocess.run([sys.executable, "-m", "diffcli", command, "-", *rest], input=cell.encode(),
                          capture_output=True, env=environment, timeout=600)
    text = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
    return Shown(text)


def load_ipython_extension(ipython) -> None:
    """`%load_ext diffcli`: the `%%diffcli` cell magic."""
    ipython.register_magic_function(run_cell, magic_kind="cell", magic_name="diffcli")
