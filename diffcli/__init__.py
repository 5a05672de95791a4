"""diffcli: differentiate the expressions in a small program of assignments.

The library API (the command line is a thin layer over it):

    import diffcli
    program = diffcli.load("model.expr")        # or diffcli.parse(text, filename)
    result = program.grad({"o": 1.0})           # forward and reverse passes
    result.value, result.gradients["a"]
    program.evaluate({"o": 1.0}).values         # forward pass only
    program.derivatives("a", {"o": 1.0})        # forward mode: d(name)/da for every name
    diffcli.codegen(program, "c")               # the program and its gradient as C (or python, javascript)

Every problem with a program or its values raises `diffcli.DiffcliError` (kind, message, line, column).
"""

__version__ = "0.1.0"

from .errors import DiffcliError
from .program import Derivatives, Evaluation, Gradients, Program, load, parse


from .notebook import load_ipython_extension  # `%load_ext diffcli`; and every object's rich display


def codegen(program: Program, lang: str, of: str | None = None, name: str | None = None, **options) -> str:
    """The program and its gradient as self-contained source in `lang` ("python", "c", "javascript");
    options: value_only=True, wrt=NAME (forward mode). See diffcli.renderers.codegen.generate for the C header."""
    from .renderers import array_codegen  # only when asked: every command pays for what it imports at start

    return array_codegen.generate(program, lang, of, name, **options).source  # scalar programs: codegen.py

__all__ = [
    "DiffcliError", "Derivatives", "codegen", "Evaluation", "Gradients", "Program", "load", "parse", "__version__",
]
