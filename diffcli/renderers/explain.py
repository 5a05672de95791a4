"""`diffcli explain`: the chain-rule derivation of a gradient, step by step, as written on paper.

The derivation is found by derivation.py (its numbers from the engine, its symbolic forms from
SymPy) and written by explain_writers.py as text, Markdown or LaTeX. SymPy is imported by these
modules alone, and only this command imports them.
"""

from __future__ import annotations

from ..commands.derivation import derive
from .explain_writers import render
from ..program import Program


def explain(program: Program, values=None, wrt=None, of=None, fmt="text", filename="") -> str:
    return render(derive(program, values, wrt, of, filename), fmt)
