"""diffcli: differentiate the expressions in a small program of assignments.

The library API (the command line is a thin layer over it):

    import diffcli
    program = diffcli.load("model.expr")        # or diffcli.parse(text, filename)
    result = program.grad({"o": 1.0})           # forward and reverse passes
    result.value, result.gradients["a"]
    program.evaluate({"o": 1.0}).values         # forward pass only
    program.derivatives("a", {"o": 1.0})        # forward mode: d(name)/da for every name

Every problem with a program or its values raises `diffcli.DiffcliError` (kind, message, line, column).
"""

__version__ = "0.1.0"

from .errors import DiffcliError
from .program import Derivatives, Evaluation, Gradients, Program, load, parse

__all__ = [
    "DiffcliError", "Derivatives", "Evaluation", "Gradients", "Program", "load", "parse", "__version__",
]
