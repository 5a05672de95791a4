"""Jacobians and Hessians -> JSON and tables (SPEC: several outputs, `hessian`)."""

from __future__ import annotations

from ..errors import shown
from ..interpreters.hessian import Hessian, HessianVector
from ..program import Jacobian, Program
from .report import PLAIN_TABLE_ROWS, _dumps, _plain_table, _table, _variable_rows, cell, element_items, number


def jacobian_json(result: Jacobian) -> str:
    return _dumps({"outputs": result.outputs, "inputs": result.inputs, "values": result.values,
                   "jacobian": result.jacobian})


def jacobian_table(program: Program, result: Jacobian, filename: str, precision: int, elements: bool = False):
    first, *others = result.outputs
    rows, styles = _variable_rows(program, result, None, precision, result.jacobian[first], elements)
    # the variable of each row and, with `elements`, its element (as _variable_rows lays them out)
    of_rows = [(name, element) for name, value in result.values.items()
               for element in ([label for label, _ in element_items(name, value)]
                               if elements and getattr(value, "shape", ()) else [None])]
    for row, (name, element) in zip(rows, of_rows):
        row += [cell(result.jacobian[out][name], precision) if element is None
                else number(dict(element_items(name, result.jacobian[out][name]))[element], precision)
                for out in others]
        if name in result.outputs:
            row[0] = f"{name} (output)"
    columns = ["name", "definition", "value"] + [f"∂{out}/∂name" for out in result.outputs]
    return _table(f"diffcli grad {filename}: {', '.join(result.outputs)}", columns, rows, styles,
                  "each column: the total derivative of one output with respect to each variable")


def hessian_json(result: Hessian | HessianVector) -> str:
    data = {"output": result.output, "value": result.value}
    if isinstance(result, HessianVector):
        data.update(wrt=list(result.gradient), gradient=result.gradient, hvp=result.hvp)
    else:
        data.update(wrt=result.wrt, gradient=result.gradient, hessian=result.hessian)
    return _dumps(data)


def hessian_table(result: Hessian, filename: str, precision: int):
    """The matrix: the inputs as rows and columns, with the gradient beside it."""
    out = result.output
    rows = [[name, number(result.gradient[name], precision)]
            + [number(result.hessian[name][other], precision) for other in result.wrt]
            for name in result.wrt]
    columns = ["∂²/∂row∂col", f"∂{out}/∂row"] + list(result.wrt)
    return _matrix(f"diffcli hessian {filename}: {out} = {number(result.value, precision)}", columns, rows,
                   f"the Hessian of {out}, symmetric (each entry the mean of H[a][b] and H[b][a])")


def hvp_table(result: HessianVector, filename: str, precision: int):
    out = result.output
    rows = [[name, number(result.vector[name], precision), number(result.gradient[name], precision),
             number(result.hvp[name], precision)] for name in result.hvp]
    return _matrix(f"diffcli hessian {filename}: {out} = {number(result.value, precision)}",
                   ["input", "v", f"∂{out}/∂input", "(H·v)"], rows,
                   f"H·v, H being the Hessian of {out} over every input")


def _matrix(title: str, columns: list[str], rows: list[list[str]], caption: str):
    title = shown(title)  # it holds the file's name
    if len(rows) > PLAIN_TABLE_ROWS:
        return _plain_table(title, columns, rows, caption)
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(header_style="bold", expand=False)
    table.add_column(columns[0], no_wrap=True, style="cyan")
    for heading in columns[1:]:
        table.add_column(heading, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return Group(Text(title, style="bold"), table, Text(caption, style="dim"))
