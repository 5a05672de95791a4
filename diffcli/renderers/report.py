"""Results -> JSON (for scripts) and Rich tables (for people).

JSON follows SPEC section 2: mappings in file order, numbers that round-trip to the exact double.
Rich is imported only when a table is printed.
"""

from __future__ import annotations


from ..errors import DiffcliError, shown
from ..formatting import json_text, number
from ..program import Derivatives, Evaluation, Gradients, Program


def grad_json(result: Gradients) -> str:
    return _dumps({
        "output": result.output, "value": result.value, "inputs": result.inputs,
        "values": result.values, "gradients": result.gradients,
    })


def eval_json(result: Evaluation) -> str:
    return _dumps({"inputs": result.inputs, "values": result.values})


def forward_json(result: Derivatives) -> str:
    return _dumps({
        "wrt": result.wrt, "inputs": result.inputs, "values": result.values,
        "derivatives": result.derivatives,
    })


def _dumps(obj) -> str:
    return json_text(obj, allow_nan=False, default=_nested) + "\n"


def _nested(value):
    """An array as JSON: nested lists, row-major (SPEC)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


TABLE_ELEMENTS = 6  # an array's cell lists at most this many elements, else its minimum and maximum


def cell(value, precision: int) -> str:
    """A value as a table shows it: a number; an array's shape (`3`, `2×3`) and its elements, or
    its shape with its minimum and maximum (`4×3: -1.2 to 1.1`)."""
    shape = getattr(value, "shape", ())
    if not shape:
        return number(value, precision)
    from ..ops import shape_text

    if value.size <= TABLE_ELEMENTS:
        rows = value.reshape(1, -1) if value.ndim == 1 else value
        text = "; ".join(" ".join(number(float(x), precision) for x in row) for row in rows)
        return f"{shape_text(shape)}: [{text}]"
    return (f"{shape_text(shape)}: {number(float(value.min()), precision)} to "
            f"{number(float(value.max()), precision)}")


def element_items(name: str, value):
    """(label, number) for each element of a value, row-major: `W[0,1]`; a scalar is its own."""
    shape = getattr(value, "shape", ())
    if not shape:
        yield name, value
        return
    import numpy as np

    for index in np.ndindex(*shape):
        yield f"{name}[{','.join(map(str, index))}]", float(value[index])


# Rich lays out a table at about a third of a millisecond a row: above this many rows a plain
# table (same columns, no colours or box) is printed instead: 100,000 rows in seconds, not 40.
PLAIN_TABLE_ROWS = 2000
MAX_ELEMENT_ROWS = 1_000_000  # --elements: 5 s and 1 GB of rows; 9,000,000 took a minute and 8 GB
DEFINITION_WIDTH = 34


def _table(title: str, columns: list[str], rows: list[list[str]], styles: list[str], caption: str = ""):
    """A Rich renderable, or for a very long table its plain text (a str). (A table of arrays keeps
    its names whole and its definitions short: the arrays' cells are the ones to cut.)"""
    title = shown(title)  # it holds the file's name
    if len(rows) > PLAIN_TABLE_ROWS:
        return _plain_table(title, columns, rows, caption)
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", expand=False)
    arrays = any(":" in cell for row in rows for cell in row[2:])
    names = min(24, max(len(row[0]) for row in rows)) if arrays and rows else None
    table.add_column(columns[0], no_wrap=True, overflow="fold", min_width=names)
    table.add_column(columns[1], overflow="ellipsis", no_wrap=True, style="dim",
                     max_width=DEFINITION_WIDTH if not arrays else DEFINITION_WIDTH // 2)
    for heading in columns[2:]:
        table.add_column(heading, justify="right", no_wrap=not arrays)  # an array's elements may wrap
    for row, style in zip(rows, styles):
        table.add_row(*row, style=style)
    parts = [Text(title, style="bold"), table]
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts)


def _plain_table(title: str, columns: list[str], rows: list[list[str]], caption: str) -> str:
    limit = DEFINITION_WIDTH - 2
    rows = [[row[0], row[1] if len(row[1]) <= limit else row[1][: limit - 1] + "…", *row[2:]]
            for row in rows]
    widths = [max(len(columns[i]), max(len(row[i]) for row in rows)) for i in range(len(columns))]

    def line(cells):
        left = [cell.ljust(width) for cell, width in zip(cells[:2], widths)]
        right = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:])]
        return "  ".join(left + right).rstrip()

    out = [title, line(columns), "  ".join("-" * width for width in widths)]
    out += [line(row) for row in rows]
    if caption:
        out.append(caption)
    return "\n".join(out) + "\n"


def _marked(program: Program, name: str, output: str | None) -> tuple[str, str]:
    if name == output:
        return f"{name} (output)", "bold"
    if program.is_input(name):
        return f"{name} (input)", "cyan"
    return name, ""


def _variable_rows(program: Program, result: Evaluation, output: str | None, precision: int,
                   column: dict[str, float] | None = None, elements: bool = False):
    """One row per named variable: name (inputs and the output marked), definition, value[, column].
    `elements`: one row per element of each array instead (`W[0,1]`)."""
    if elements:
        count = sum(max(1, getattr(value, "size", 1)) for value in result.values.values())
        if count > MAX_ELEMENT_ROWS:  # (a row of strings each: about 1 KB of memory a row)
            raise DiffcliError("input", f"--elements: the table would have {count:,} rows, more than "
                               f"{MAX_ELEMENT_ROWS:,}", help="--json gives every element; without "
                               "--elements the table shows each array's shape and range")
    rows, styles = [], []
    for name, value in result.values.items():
        label, style = _marked(program, name, output)
        definition = program.definition(name)
        if elements and getattr(value, "shape", ()):
            others = None if column is None else dict(element_items(name, column[name]))
            for element, x in element_items(name, value):
                row = [label.replace(name, element, 1), definition, number(x, precision)]
                if others is not None:
                    row.append(number(others[element], precision))
                rows.append(row)
                styles.append(style)
            continue
        row = [label, definition, cell(value, precision)]
        if column is not None:
            row.append(cell(column[name], precision))
        rows.append(row)
        styles.append(style)
    return rows, styles


def grad_rows(program: Program, result: Gradients, filename: str, precision: int, elements: bool = False):
    """The grad table's title, columns, rows, row styles and caption (the live page shows them too)."""
    out = result.output
    rows, styles = _variable_rows(program, result, out, precision, result.gradients, elements)
    title = f"diffcli grad {filename}: {out} = {number(result.value, precision)}"
    return (title, ["name", "definition", "value", f"∂{out}/∂name"], rows, styles,
            f"∂{out}/∂name: the total derivative of {out} with respect to each variable")


def grad_table(program: Program, result: Gradients, filename: str, precision: int, elements: bool = False):
    return _table(*grad_rows(program, result, filename, precision, elements))


def eval_table(program: Program, result: Evaluation, filename: str, precision: int, elements: bool = False):
    rows, styles = _variable_rows(program, result, None, precision, elements=elements)
    return _table(f"diffcli eval {filename}", ["name", "definition", "value"], rows, styles)


def forward_table(program: Program, result: Derivatives, filename: str, precision: int, elements: bool = False):
    wrt = result.wrt
    rows, styles = _variable_rows(program, result, None, precision, result.derivatives, elements)
    return _table(f"diffcli grad {filename} --mode forward --wrt {wrt}",
                  ["name", "definition", "value", f"∂name/∂{wrt}"], rows, styles,
                  f"∂name/∂{wrt}: forward mode, the derivative of each variable with respect to {wrt}")


def check_json(result) -> str:
    rows = [{"name": r.name, "analytic": r.analytic, "forward": r.forward, "numeric": r.numeric,
             "abs_error": r.abs_error, "rel_error": r.rel_error, "ok": r.ok, "kink": r.kink,
             "reason": r.reason} for r in result.rows]
    body = {"output": result.output, "ok": result.ok, "rows": rows}
    if getattr(result, "sampled", None):
        body["sampled"] = result.sampled
    return _dumps(body)


def check_table(result, filename: str, precision: int = 10):
    """One row per input; wide precision (10 by default), since the columns are compared digit by digit."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", expand=False)
    second = getattr(result, "order", 1) == 2
    table.add_column("entry" if second else "input", no_wrap=True, overflow="fold")
    for heading in ((r"H\[a]\[b]", r"H\[b]\[a]") if second else ("reverse", "forward")) + (
            "numeric", "abs error", "rel error"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("ok")
    table.add_column("note", style="dim")
    for r in result.rows:
        if r.kink:
            note = f"kink: {r.kink}"
        elif r.numeric is None:
            note = "the step leaves the domain"
        else:
            note = "" if r.ok else "differs"
        errors = ["–"] * 3 if r.numeric is None else [
            number(r.numeric, precision), number(r.abs_error, 2), number(r.rel_error, 2)]
        table.add_row(r.name, number(r.analytic, precision), number(r.forward, precision), *errors,
                      "ok" if r.ok else "FAIL", note, style="" if r.ok else "bold red")
    failed = sum(not r.ok for r in result.rows)
    kinks = sum(bool(r.kink) for r in result.rows)
    if not result.ok:
        verdict = f"{failed} of {len(result.rows)} failed"
    else:
        verdict = f"all pass ({kinks} at a kink, allowed)" if kinks else "all agree"
    out = result.output
    if getattr(result, "sampled", None):
        verdict += f"; checked {result.sampled}"
    if second:
        heading = f"∂²{out}/∂a∂b against differences of the gradient"
        legend = ("H[a][b]: forward-over-reverse (row a,b; row a alone: (H·v)[a] for a random v); "
                  "H[b][a]: the other order; numeric: central difference of ∂" + out + "/∂a along b (or v)")
    else:
        heading = f"∂{out}/∂input three ways"
        legend = "reverse: reverse mode; forward: forward mode; numeric: central difference"
    return Group(
        Text(shown(f"diffcli check {filename}: {heading}: {verdict}"), style="bold"), table,
        Text(f"{legend}\nallowed: |reverse - numeric| ≤ {result.atol:g} + {result.rtol:g}·|reverse| + rounding noise",
             style="dim"),
    )
