"""`diffcli explain`: the chain-rule derivation of a gradient, step by step, as written on paper.

The derivation is found by derivation.py (its numbers from the engine, its symbolic forms from
SymPy) and written by explain_writers.py as text, Markdown or LaTeX. SymPy is imported by these
modules alone, and only this command imports them.
"""

from __future__ import annotations

from ..commands.derivation import derive
from ..formatting import json_text
from .explain_writers import TextPrinter, render
from ..program import Program


def explain(program: Program, values=None, wrt=None, of=None, fmt="text", filename="", precision=6,
            elements: bool = False) -> str:
    arrays = program.base.arrays or program.has_arrays or _array_values(program, values)
    if elements and arrays:
        return _elements(program, values, wrt, of, fmt, filename, precision)
    if arrays:
        from .array_explain import explain_arrays

        return explain_arrays(program, values, wrt, of, fmt, filename, precision)
    derivation = derive(program, values, wrt, of, filename)
    if fmt == "json":
        return derivation_json(derivation)
    return render(derivation, fmt, precision)


def _elements(program: Program, values, wrt, of, fmt, filename, precision) -> str:
    """The scalar derivation of the program unrolled: its elements named W1_0_1 (`W1[0,1]`)."""
    from ..commands.array_derivation import unrolled_program
    from ..errors import DiffcliError

    scalar, element = unrolled_program(program, values, wrt, of, filename)
    try:
        return explain(scalar, None, element, of, fmt, filename, precision)
    except DiffcliError as error:  # (placed in the unrolled text, which the user never saw)
        raise DiffcliError(error.kind, f"explain --elements: {error.message}",
                           help="drop --elements for the derivation with shapes, or explain a smaller "
                           "program") from None


def _array_values(program: Program, values) -> bool:
    """Whether a value given for one of the program's inputs is an array."""
    return any(getattr(v, "shape", ()) for k, v in (values or {}).items() if program.is_input(k))


def derivation_json(d) -> str:
    """The derivation as data: each statement on the path with its local partials (their exact
    forms in the file's notation, None where none holds; their values, None where the partial does
    not exist), and the total derivative's exact form and value."""
    printer = TextPrinter()
    text = (lambda expr: None if expr is None else printer.text(expr))
    statements = [{
        "name": name, "definition": d.sources.get(name), "value": d.values[name],
        "gradient": d.gradients.get(name), "used_by": d.consumers.get(name, []),
        "partials": [{"wrt": p.wrt, "symbolic": text(p.symbolic), "value": p.value}
                     for p in d.partials.get(name, [])],
    } for name in d.statements]
    total = None if d.wrt is None else {
        "symbolic": text(d.total), "value": d.gradients.get(d.wrt), "why": d.why or None}
    return json_text({"output": d.output, "wrt": d.wrt, "file": d.filename, "inputs": d.inputs,
                      "given": [{"name": n, "value": d.values[n]} for n in d.given], "statements": statements, "total": total}) + "\n"
