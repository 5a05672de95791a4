"""The command line: parse arguments, call the library, print, map errors to exit codes.

Exit codes (SPEC section 2): 0 success; 1 a problem with the file, its values or a --set; 2 a
malformed command line (Typer/Click's usage errors, and --set values that do not parse).
"""

# No `from __future__ import annotations` here or in completion.py: Typer reads every command's
# annotations at each start, and annotations kept as strings it compiles and evaluates, twice.
import enum
import errno
import gc
import io
import math
import os
import sys
from contextlib import contextmanager, nullcontext
from functools import wraps
from typing import List, Optional

import typer

from . import __version__
from .completion import input_names, set_names, variable_names
from .errors import DiffcliError

app = typer.Typer(
    name="diffcli",
    help="Differentiate the expressions in a small program of assignments.\n\n"
    "Example: [bold]diffcli grad model.expr --set o=1[/bold] prints every variable's value and "
    "the gradient of the output with respect to it.",
    add_completion=True,  # --install-completion; completion.py completes the file's names
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        print(f"diffcli {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _main(
    context: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """Differentiate the expressions in a small program of assignments."""
    # a bare `diffcli` asks for help: print it and succeed (Click 8.2's no_args_is_help would
    # print it on standard output and exit 2, an error with output)
    if context.invoked_subcommand is None:
        typer.echo(context.get_help())
        raise typer.Exit()


# ---------------------------------------------------------------- shared options

UNCERTAINTY_MARKS = ("±", "+/-")  # `--set x=2.1±0.1`, as in the file


def parse_sets(values: Optional[List[str]], option: str = "--set") -> dict[str, float]:
    """`--set a=2 --set o=1` or `--set a=2,o=1` -> {"a": 2.0, "o": 1.0}; malformed -> exit 2."""
    from .language.parser import read_array, read_number, split_settings

    result: dict[str, float] = {}
    written: dict[str, str] = {}
    for item in values or []:
        for part in split_settings(item):
            part = part.strip()
            if not part:
                continue
            name, eq, text = part.partition("=")
            name, text = name.strip(), text.strip()
            if not eq or not name:
                raise typer.BadParameter(f"{part!r} is not NAME=VALUE (for example {option} o=1)",
                                         param_hint=option)
            if text.startswith("["):  # an array's uncertainty, x=[1,2]±0.1: only `uncertainty` reads it
                for mark in UNCERTAINTY_MARKS:
                    if mark in text:
                        text, _, amount = (piece.strip() for piece in text.partition(mark))
                        _check_uncertainty(amount, part, option)
                        break
            if text.startswith("[") or text.endswith("]"):  # an array: x=[1,2], W=[[1,2],[3,4]]
                array = read_array(text)
                if array is None:
                    raise typer.BadParameter(f"{text!r} is not an array (in {part!r}): a vector [1, 2, 3] or "
                                             "a matrix [[1, 2], [3, 4]] of numbers, rows of one length",
                                             param_hint=option)
                import numpy as np

                _once(result, written, name, np.array(array, dtype=float), part, option)
                continue

            for mark in UNCERTAINTY_MARKS:  # x=2.1±0.1: only `uncertainty` reads the ±; the rest take 2.1
                if mark in text:
                    text, _, amount = (piece.strip() for piece in text.partition(mark))
                    _check_uncertainty(amount, part, option)
                    break
            value = read_number(text)
            if value is None:
                raise typer.BadParameter(f"{text!r} is not a number (in {part!r}); numbers are "
                                         "written as in the language: 2, -0.5, 1e-3",
                                         param_hint=option)
            if not math.isfinite(value):
                raise typer.BadParameter(f"{text!r} is not a finite number", param_hint=option)
            _once(result, written, name, value, part, option)
    return result


def _once(result: dict, written: dict, name: str, value, part: str, option: str) -> None:
    """result[name] = value, unless another value was given for it: which one was meant? (The same
    value twice is harmless; a vector of one element is not the scalar it holds.)"""
    if name in result:
        before = result[name]
        same = (getattr(before, "shape", None) == getattr(value, "shape", None)
                and bool((before == value) if getattr(value, "shape", None) is None else (before == value).all()))
        if not same:
            raise typer.BadParameter(f"`{name}` is given twice ({written[name]} and {part}); give it once",
                                     param_hint=option)
    result[name], written[name] = value, part


def _check_uncertainty(amount: str, part: str, option: str) -> None:
    """The `0.1` of `--set x=2.1±0.1`: a number ≥ 0, a percentage, or (an array's) an array of
    numbers ≥ 0; else exit 2."""
    from .language.parser import read_array, read_number

    if amount.startswith("["):
        array = read_array(amount)
        if array is not None and all(math.isfinite(u) and u >= 0 for row in array
                                     for u in (row if isinstance(row, list) else [row])):
            return
        raise typer.BadParameter(f"{amount!r} is not an uncertainty (in {part!r}): an array of numbers ≥ 0, "
                                 "of the value's shape", param_hint=option)
    u = read_number(amount[:-1].strip() if amount.endswith("%") else amount)
    if u is None or not math.isfinite(u) or u < 0:
        raise typer.BadParameter(f"{amount!r} is not an uncertainty (in {part!r}): a number "
                                 "≥ 0, or a percentage such as 5%", param_hint=option)


class Given(dict):
    """The values of --inputs FILE.json and --set, and where each of those from the file came from
    (`origins`: name -> "--inputs FILE.json"), for the diagnostics that name them (_read)."""

    def __init__(self, values: dict, origins: dict[str, str]):
        super().__init__(values)
        self.origins = origins


def given_values(sets: Optional[List[str]], inputs_file: Optional[str]) -> dict:
    """--inputs FILE.json, then --set over it."""
    values = parse_sets(sets)
    if inputs_file is None:
        return values
    from .program import read_inputs

    from_file = read_inputs(inputs_file)
    return Given({**from_file, **values},
                 {name: f"--inputs {inputs_file}" for name in from_file if name not in values})


def parse_names(values: Optional[List[str]]) -> list[str]:
    """`--of y1,y2` or `--of y1 --of y2` -> ["y1", "y2"] (each once, in the order given)."""
    # an empty name stays, for the program to refuse as it refuses any name it does not have;
    # an element label's comma (`--wrt W[0,1]`) separates nothing
    from .language.parser import split_settings

    return list(dict.fromkeys(part.strip() for item in values or [] for part in split_settings(item)))
def parse_sweeps(texts: List[str], sets: dict[str, float]) -> list:
    """`--sweep x=-1:1:5 ...` -> points.Sweep each; malformed, or an input also given by --set -> exit 2."""
    from .commands import points

    sweeps = []
    for text in texts:
        try:
            sweeps.append(points.parse_sweep(text))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--sweep") from None
        if sweeps[-1].name in sets:
            name = sweeps[-1].name
            given = getattr(sets, "origins", {}).get(name, "--set")
            raise typer.BadParameter(f"{name} is both swept and {'in ' * (given != '--set')}{given}",
                                     param_hint="--sweep")
    return sweeps


FileArg = typer.Argument(..., metavar="FILE", help="The .expr file, or - for standard input.",
                         show_default=False)
SetOpt = typer.Option(None, "--set", metavar="NAME=VALUE", autocompletion=set_names,
                      help="Give an input a value; repeat it, or use a comma list: --set a=2,o=1.")
OfOpt = typer.Option(None, "--of", metavar="NAME", autocompletion=variable_names,
                     help="Differentiate this variable (default: the one assigned last).")
InputsOpt = typer.Option(None, "--inputs", metavar="FILE.json",
                         help="Set inputs from a JSON object, as grad --json prints them (arrays as nested lists); "
                         "--set wins over it.")
ElementsOpt = typer.Option(False, "--elements", help="One table row per element of each array (W[0,1]).")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts (errors too, on standard error).")
PrecisionOpt = typer.Option(6, "--precision", min=1, max=17, metavar="N",
                            help="Significant digits in the table (JSON always has every digit).")


class PlusMinus(str, enum.Enum):
    plain = "plain"
    pm = "pm"
    latex = "latex"


PlusMinusOpt = typer.Option(PlusMinus.plain, "--format", help="How a value with its uncertainty is "
                            "written: plain 4.976 ± 0.025, pm 4.976+/-0.025, latex 4.976 \\pm 0.025 "
                            "(two significant digits of the uncertainty; JSON keeps every digit).")


SweepOpt = typer.Option(None, "--sweep", metavar="NAME=START:STOP:NUM",
                        help="Run at NUM points from START to STOP (both included); repeated, a grid "
                        "(the last varies fastest). NAME=START:STOP:NUM:log spaces them evenly in log.")
PointsOpt = typer.Option(None, "--points", metavar="FILE",
                         help="Run at every row of FILE: CSV with a header of input names, or JSON "
                         "Lines of objects (- for standard input).")


class PointsFormat(str, enum.Enum):
    csv = "csv"
    jsonl = "jsonl"


PointsFormatOpt = typer.Option(None, "--points-format", show_default=False,
                               help="How --points is written (default: from its extension, else "
                               "JSON Lines if it starts with `{`, else CSV).")
CsvOpt = typer.Option(False, "--csv", help="With --sweep/--points: one CSV row per point.")
AllOpt = typer.Option(False, "--all", help="With --sweep/--points: every named variable's value "
                      "(and gradient), not only the output's.")


class Mode(str, enum.Enum):
    reverse = "reverse"
    forward = "forward"


# ---------------------------------------------------------------- running a command

# What main() keeps alive until the process exits (it then leaves without freeing anything): a
# large program and its results are millions of objects, 0.1 s to free when a command returns.
_kept: list | None = None


def _keep(thing):
    if _kept is not None:
        _kept.append(thing)
    return thing


def _read(file: str, as_json: bool = False, given: Optional[dict] = None):
    """The program of FILE; `given`, the values of given_values, labels their diagnostics."""
    from .program import load, parse, read_bytes, read_source

    if file == "-":
        try:
            if sys.stdin is None:
                raise OSError(errno.EBADF, "it is closed")
            data = read_bytes(sys.stdin.buffer, "standard input")
        except OSError as error:
            raise DiffcliError("io", f"cannot read standard input: {error.strerror or error}") from None
        program = parse(read_source(data, "<stdin>"), "<stdin>")
    else:
        program = load(file)
    _keep(program)
    program.given_from = getattr(given, "origins", {})
    if program.notes and not as_json:
        from .renderers import diagnostics

        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        for note in program.notes:
            sys.stderr.write(diagnostics.render_text(note, color=color, severity="note"))
    return program


def _report_error(error: DiffcliError, as_json: bool) -> None:
    from .renderers import diagnostics
    from .renderers.output import BrokenPipe

    if isinstance(error, BrokenPipe) and not as_json:
        return  # the reader stopped (`| head`): exit 1, quietly
    if as_json:
        sys.stderr.write(diagnostics.render_json(error))
    else:
        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        sys.stderr.write(diagnostics.render_text(error, color=color))


def command(function):
    """Turn a DiffcliError into a diagnostic and exit 1, and never let a traceback reach the user."""

    @wraps(function)
    def run(*args, **kwargs):
        as_json = bool(kwargs.get("as_json"))
        try:
            return function(*args, **kwargs)
        except DiffcliError as error:
            _report_error(error, as_json)
            raise typer.Exit(1)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except RecursionError:
            _report_error(DiffcliError("syntax", "the program is nested too deeply to process"), as_json)
            raise typer.Exit(1)
        except MemoryError:
            _report_error(DiffcliError("io", "out of memory"), as_json)
            raise typer.Exit(1)
        except Exception as error:  # a bug in diffcli: say so plainly, without a traceback
            if os.environ.get("DIFFCLI_DEBUG"):
                raise
            message = f"internal error in diffcli {__version__}: {type(error).__name__}: {error}"
            help = ("this is a bug; please report it with the file that caused it "
                    "(set DIFFCLI_DEBUG=1 for the traceback)")
            if as_json:  # (kind "internal": none of the kinds a user's input causes)
                from .formatting import json_text

                sys.stderr.write(json_text({"error": {"kind": "internal", "message": message,
                                                      "help": help}}) + "\n")
            else:
                sys.stderr.write(f"error: {message}\n  = help: {help}\n")
            raise typer.Exit(1)

    return run


def _warn_unused(result, program) -> None:
    _warn_names(result.unused, program)


def _warn_names(unused, program) -> None:
    """A warning for each name given a value (--set, --inputs) that the program does not have (SPEC)."""
    for name in unused:
        sys.stderr.write(f"warning: {program.given_label(name)}: the program does not use `{name}`\n")


@contextmanager
def _writing():
    """Around writing to standard output: a full, closed or broken one is an "io" error."""
    from .renderers.output import broken_pipe

    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise broken_pipe() from None
    except OSError as error:
        raise DiffcliError("io", f"cannot write to standard output: {error.strerror or error}") from None


def _print(text: str) -> None:
    with _writing():
        sys.stdout.write(text)


def _console(wide: bool = False):
    """Rich's console; `wide`: to a pipe or a file, 160 columns at least, so that long lines (a
    path in a title, the notes) are not folded into 80."""
    from rich.console import Console

    console = Console(highlight=False)
    if wide and not console.is_terminal:
        console.width = max(console.width, 160)
    return console


def _show(table, wide: bool = False) -> None:
    """Print a table from report: a Rich renderable, or plain text (for very long tables)."""
    if isinstance(table, str):
        return _print(table)
    with _writing():
        _console(wide).print(table)


# ---------------------------------------------------------------- many points

def _many_points(program, file, sweeps, points_file, points_format, values, of, *, gradients,
                 all_names, as_json, as_csv, precision):
    """grad/eval at every point of --sweep or --points: rows out, exit 1 if any point failed."""
    from .commands import points
    from .renderers import rows

    taken = set(values)
    if sweeps:
        parsed = parse_sweeps(sweeps, values)
        many = points.grid(parsed, program, values)
    else:
        if points_file == "-" and file == "-":
            raise typer.BadParameter("the program and the points cannot both come from standard input",
                                     param_hint="--points")
        many = _read_points(points_file, points_format.value if points_format else None, program, arrays=True)
        for name in many.names:
            if name in taken:
                given = program.given_from.get(name, "--set")
                raise DiffcliError("input", f"`{name}` is both a column of {points_file} and {'in ' * (given != '--set')}{given}",
                                   help=f"give each input one value: drop the column, or `{name}` from {given}")
    fmt = "jsonl" if as_json else "csv" if as_csv else "table"
    if program.base.arrays or program.has_arrays or getattr(many, "arrays", False) or \
            any(getattr(value, "shape", ()) for value in values.values()):  # (--set zz=[1,2], not used)
        from .renderers import array_rows as rows  # the batched array engine, rows with element labels
    with _writing():  # a full, closed or broken standard output: as for one point
        outcome = rows.run(program, many, values, of, gradients=gradients, all_names=all_names,
                           write=sys.stdout.write, fmt=fmt, precision=precision)
    for name in outcome.unused:
        where = (program.given_label(name) if name in taken else f"--sweep {name}" if sweeps
                 else f"column `{name}` of {'<stdin>' if points_file == '-' else points_file}")
        sys.stderr.write(f"warning: {where}: the program does not use `{name}`\n")
    if outcome.summary is not None:
        console = _console(wide=True)
        with _writing():
            console.print(outcome.summary.render(f"diffcli {'grad' if gradients else 'eval'} {file}"))
    if outcome.failed:
        sys.stdout.flush()
        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        sys.stderr.write(rows.failure_report(outcome, as_json, color))
        raise typer.Exit(1)


def _points_options(sweeps, points_file, as_json, as_csv, all_names) -> bool:
    """Whether this run is over many points; usage errors for options that need one."""
    many = bool(sweeps) or points_file is not None
    if sweeps and points_file is not None:
        raise typer.BadParameter("give --sweep or --points, not both", param_hint="--points")
    if as_json and as_csv:
        raise typer.BadParameter("give --json or --csv, not both", param_hint="--csv")
    if not many and (as_csv or all_names):
        raise typer.BadParameter("goes with --sweep or --points", param_hint="--csv" if as_csv else "--all")
    return many


# ---------------------------------------------------------------- grad, eval

@app.command(epilog="Examples:\n\n"
             "  diffcli grad samples/backprop_chain.expr --set o=1\n\n"
             "  diffcli grad model.expr --of loss --json\n\n"
             "  diffcli grad model.expr --mode forward --wrt a\n\n"
             "  diffcli grad model.expr --sweep x=-1:1:201 --csv > sweep.csv\n\n"
             "  diffcli grad model.expr --points data.csv --json")
@command
def grad(
    file: str = FileArg,
    of: Optional[List[str]] = typer.Option(
        None, "--of", metavar="NAME", autocompletion=variable_names,
        help="Differentiate this variable (default: the one assigned last); several outputs, "
        "repeated or as a comma list (--of y1,y2), give one column each."),
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
    mode: Optional[Mode] = typer.Option(None, "--mode", show_default="reverse",
                                        help="reverse: d(output)/d(every name). "
                                        "forward: d(every name)/d(--wrt)."),
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME", autocompletion=input_names,
                                      help="The input that forward mode differentiates with respect to "
                                      "(implies --mode forward)."),
    sweeps: Optional[List[str]] = SweepOpt,
    points_file: Optional[str] = PointsOpt,
    points_format: Optional[PointsFormat] = PointsFormatOpt,
    as_csv: bool = CsvOpt,
    all_names: bool = AllOpt,
    inputs_file: Optional[str] = InputsOpt,
    elements: bool = ElementsOpt,
):
    """Values and gradients of every variable (forward and reverse passes)."""
    values = given_values(sets, inputs_file)
    many = _points_options(sweeps, points_file, as_json, as_csv, all_names)
    if many and (wrt is not None or mode is Mode.forward):
        raise typer.BadParameter("--sweep and --points run reverse mode (every input's gradient)",
                                 param_hint="--wrt")
    outputs = parse_names(of)
    if many and len(outputs) > 1:
        raise typer.BadParameter("--sweep and --points differentiate one output", param_hint="--of")
    of = outputs[0] if len(outputs) == 1 else None
    if mode is Mode.forward and wrt is None:
        raise typer.BadParameter("--mode forward needs --wrt NAME", param_hint="--mode")
    if mode is Mode.reverse and wrt is not None:
        raise typer.BadParameter("--wrt goes with forward mode; reverse mode uses --of", param_hint="--wrt")
    if wrt is not None and outputs:
        raise typer.BadParameter("--of goes with reverse mode; forward mode uses --wrt", param_hint="--of")
    program = _read(file, as_json, values)
    if many:
        return _many_points(program, file, sweeps, points_file, points_format, values, of, gradients=True,
                            all_names=all_names, as_json=as_json, as_csv=as_csv, precision=precision)
    from .renderers import report

    if len(outputs) > 1:
        from .renderers import matrix_report

        result = _keep(program.jacobian(outputs, values))
        _warn_unused(result, program)
        if as_json:
            return _print(matrix_report.jacobian_json(result))
        return _show(matrix_report.jacobian_table(program, result, file, precision, elements))
    if wrt is not None:
        result = _keep(program.derivatives(wrt, values))
        _warn_unused(result, program)
        if as_json:
            return _print(report.forward_json(result))
        return _show(report.forward_table(program, result, file, precision, elements))
    result = _keep(program.grad(values, of))
    _warn_unused(result, program)
    if as_json:
        return _print(report.grad_json(result))
    _show(report.grad_table(program, result, file, precision, elements))


@app.command(name="eval", epilog="Examples:\n\n  diffcli eval samples/backprop_chain.expr --set o=1\n\n"
             "  diffcli eval model.expr --sweep x=1e-3:1e3:7:log --json")
@command
def evaluate(
    file: str = FileArg,
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
    sweeps: Optional[List[str]] = SweepOpt,
    points_file: Optional[str] = PointsOpt,
    points_format: Optional[PointsFormat] = PointsFormatOpt,
    as_csv: bool = CsvOpt,
    all_names: bool = AllOpt,
    inputs_file: Optional[str] = InputsOpt,
    elements: bool = ElementsOpt,
):
    """Values of every variable (forward pass only)."""
    values = given_values(sets, inputs_file)
    many = _points_options(sweeps, points_file, as_json, as_csv, all_names)
    program = _read(file, as_json, values)
    if many:
        return _many_points(program, file, sweeps, points_file, points_format, values, None, gradients=False,
                            all_names=all_names, as_json=as_json, as_csv=as_csv, precision=precision)
    from .renderers import report

    result = _keep(program.evaluate(values))
    _warn_unused(result, program)
    if as_json:
        return _print(report.eval_json(result))
    _show(report.eval_table(program, result, file, precision, elements))


# ---------------------------------------------------------------- hessian

@app.command(epilog="Examples:\n\n"
             "  diffcli hessian samples/neuron.expr\n\n"
             "  diffcli hessian model.expr --wrt x,y --json\n\n"
             "  diffcli hessian model.expr --hvp x=1,y=0.5\n\n"
             "  diffcli hessian net.expr --wrt W1,b1[0]\n\n"
             "  diffcli hessian net.expr --hvp-inputs direction.json")
@command
def hessian(
    file: str = FileArg,
    of: Optional[str] = OfOpt,
    wrt: Optional[List[str]] = typer.Option(
        None, "--wrt", metavar="NAME,...", autocompletion=input_names,
        help="The inputs of the matrix (default: every input the output depends on, in file order); "
        "an array's name takes every element, W[0,1] one."),
    sets: Optional[List[str]] = SetOpt,
    hvp: Optional[List[str]] = typer.Option(
        None, "--hvp", metavar="NAME=VALUE,...",
        help="Print the Hessian-vector product H·v instead of the matrix (names not given are 0; "
        "an array's direction as W=[[1,0],[0,1]])."),
    hvp_inputs: Optional[str] = typer.Option(
        None, "--hvp-inputs", metavar="FILE.json",
        help="The direction v of --hvp from a JSON object, in the --inputs format; --hvp wins over it."),
    inputs_file: Optional[str] = InputsOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
):
    """Second derivatives: the Hessian matrix of the output over its inputs, or H·v (exact)."""
    values = given_values(sets, inputs_file)
    vector = parse_sets(hvp, "--hvp") if hvp is not None else None
    if hvp_inputs is not None:
        from .program import read_inputs

        vector = {**read_inputs(hvp_inputs, "--hvp-inputs"), **(vector or {})}
    names = parse_names(wrt) or None
    if vector is not None and names is not None:
        raise typer.BadParameter("--hvp gives H·v over every input; it takes no --wrt", param_hint="--wrt")
    program = _read(file, as_json, values)
    from .renderers import matrix_report

    if vector is not None:
        option = f"--hvp-inputs {hvp_inputs}" if hvp_inputs is not None and hvp is None else "--hvp"
        result = _keep(program.hvp(vector, values, of, option=option))
        table = matrix_report.hvp_table
    else:
        result = _keep(program.hessian(values, of, names))
        table = matrix_report.hessian_table
    _warn_unused(result, program)
    if as_json:
        return _print(matrix_report.hessian_json(result))
    _show(table(result, file, precision), wide=program.has_arrays)


# ---------------------------------------------------------------- graph

class GraphFormat(str, enum.Enum):
    dot = "dot"
    svg = "svg"
    png = "png"
    pdf = "pdf"


class RankDir(str, enum.Enum):
    LR = "LR"
    TB = "TB"


@app.command(name="graph", epilog="Examples:\n\n"
             "  diffcli graph samples/backprop_chain.expr --set o=1 -o chain.png\n\n"
             "  diffcli graph model.expr --no-grad --format svg > model.svg\n\n"
             "  diffcli graph model.expr | dot -Tpng -o model.png")
@command
def draw_graph(
    file: str = FileArg,
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="OUT",
                                         help="Write the diagram here (default: standard output)."),
    fmt: Optional[GraphFormat] = typer.Option(None, "--format", show_default=False,
                                              help="dot, svg, png or pdf (default: from -o's "
                                              "extension, else dot)."),
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    rankdir: RankDir = typer.Option(RankDir.TB, "--rankdir",
                                    help="TB: inputs at the top. LR: inputs on the left, "
                                    "as micrograd draws it."),
    precision: int = typer.Option(6, "--precision", min=1, max=17, metavar="N",
                                  help="Significant digits of the values and gradients drawn."),
    no_grad: bool = typer.Option(False, "--no-grad", help="Draw values only (the forward pass)."),
    max_nodes: int = typer.Option(500, "--max-nodes", min=1, metavar="N",
                                  help="Refuse to render a picture of more nodes than this "
                                  "(DOT text has no limit)."),
    as_json: bool = typer.Option(False, "--json", help="Write the graph as JSON instead: its nodes "
                                 "(values, gradients, places in the file) and edges (errors too)."),
):
    """Draw the computation graph, every variable with its value and gradient (DOT, SVG, PNG, PDF)."""
    values = parse_sets(sets)
    from .renderers import drawing, render

    if as_json:
        if fmt is not None:
            raise typer.BadParameter("--json writes JSON: it takes no --format", param_hint="--json")
        program = _read(file, as_json)
        data = drawing.graph_json(program, values, of=of, gradients=not no_grad)
        _warn_unused(data, program)
        return render.write(data.source.encode("utf-8"), output, "json")
    format = render.choose_format(fmt.value if fmt else None, output)
    program = _read(file)

    if format != "dot" and drawing.count_nodes(program) > max_nodes:
        raise DiffcliError(
            "input", f"the graph has {drawing.count_nodes(program)} nodes, too many for a picture "
            f"(--max-nodes {max_nodes})",
            help="write the DOT text instead (--format dot), or raise --max-nodes",
        )
    diagram = drawing.draw(program, values, of=of, gradients=not no_grad,
                           rankdir=rankdir.value, precision=precision)
    _warn_unused(diagram, program)
    render.write(render.render(diagram.source, format), output, format)


# ---------------------------------------------------------------- plot

class PlotFormat(str, enum.Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"
    html = "html"
    json = "json"


@app.command(epilog="Examples:\n\n"
             "  diffcli plot samples/neuron.expr --sweep x=-6:6:201 --of yhat -o neuron.png\n\n"
             "  diffcli plot model.expr --sweep x=-2:2:41 --sweep y=-2:2:41 -o map.html")
@command
def plot(
    file: str = FileArg,
    sweep_texts: List[str] = typer.Option(..., "--sweep", metavar="NAME=START:STOP:NUM",
                                          show_default=False,
                                          help="Sweep an input over NUM points from START to STOP "
                                          "(NAME=START:STOP:NUM:log: evenly in log). Once: the "
                                          "output and its derivative against it; twice: heat maps "
                                          "over the grid."),
    output: str = typer.Option(..., "-o", "--output", metavar="OUT", show_default=False,
                               help="Write the plot here (- for standard output)."),
    fmt: Optional[PlotFormat] = typer.Option(None, "--format", show_default=False,
                                             help="png, svg, pdf, html (interactive, works "
                                             "offline) or json (the Vega-Lite specification); "
                                             "default: from -o's extension."),
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = typer.Option(False, "--json", help="Report errors as JSON on standard error."),
    max_points: int = typer.Option(20_000, "--max-points", min=1, metavar="N",
                                   help="Refuse to plot more points than this (a 141 × 141 "
                                   "heat map takes about 10 s to draw)."),
):
    """Plot the output over a sweep of one input (with its derivative) or two (heat maps)."""
    values = parse_sets(sets)
    import numpy as np

    from .renderers import plots, render

    sweeps = parse_sweeps(sweep_texts, values)
    if len(sweeps) > 2:
        raise typer.BadParameter("give one --sweep (a line chart) or two (heat maps)",
                                 param_hint="--sweep")
    for sweep in sweeps:
        if plots.undrawable(sweep.start, sweep.stop, sweep.log):
            raise typer.BadParameter(f"{sweep.name}: {plots.undrawable(sweep.start, sweep.stop, sweep.log)}",
                                     param_hint="--sweep")
    format = render.choose_format(fmt.value if fmt else None, output, render.PLOT_EXTENSIONS, None)
    count = math.prod(s.num for s in sweeps)
    if count > max_points:
        raise DiffcliError("input", f"the sweep has {count} points, too many for a plot "
                           f"(--max-points {max_points})", help="take fewer points, or raise --max-points")
    program = _read(file, as_json)
    spec, result = plots.sweep_chart(program, sweeps, values, of)
    render.write(render.vegalite(spec, format), output, format)
    if result.failed.any():
        first = int(np.argmax(result.failed))
        sys.stderr.write(f"warning: {int(result.failed.sum())} of {result.n} points failed "
                         f"(gaps in the plot); the first: {result.errors[first].message}\n")


# ---------------------------------------------------------------- serve

@app.command(epilog="Examples:\n\n"
             "  diffcli serve samples/backprop_chain.expr --set o=1 --open\n\n"
             "  diffcli serve samples/neuron.expr --of yhat --sweep x=-6:6:121")
@command
def serve(
    file: str = typer.Argument(..., metavar="FILE", help="The .expr file to watch.", show_default=False),
    sets: Optional[List[str]] = SetOpt,
    of: Optional[str] = OfOpt,
    sweep_texts: Optional[List[str]] = typer.Option(None, "--sweep", metavar="NAME=START:STOP:NUM",
                                                    help="Also plot the output over a sweep (one or "
                                                    "two, as `plot`)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, metavar="N",
                             help="The port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="H",
                             help="The address to serve on; anything but loopback shows the page "
                             "to other machines (a warning says so)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the web browser."),
    precision: int = PrecisionOpt,
    max_nodes: int = typer.Option(500, "--max-nodes", min=1, metavar="N",
                                  help="Draw the graph only up to this many nodes."),
):
    """A live page of FILE: source, values and gradients, graph (and plot), redrawn on every save."""
    values = parse_sets(sets)
    sweeps = parse_sweeps(sweep_texts or [], values)
    if len(sweeps) > 2:
        raise typer.BadParameter("give one --sweep (a line chart) or two (heat maps)", param_hint="--sweep")
    if file == "-":
        raise typer.BadParameter("serve watches a file: give its path, not -", param_hint="FILE")
    from . import server

    server.run(file, values, of, sweeps, host=host, port=port, precision=precision, max_nodes=max_nodes,
               open_browser=open_browser)


# ---------------------------------------------------------------- check, explain

@app.command(epilog="Examples:\n\n"
             "  diffcli check samples/backprop_chain.expr --set o=1\n\n"
             "  diffcli check model.expr --json --rtol 1e-5")
@command
def check(
    file: str = FileArg,
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    rtol: float = typer.Option(1e-6, "--rtol", min=0.0, metavar="R",
                               help="Relative tolerance against the finite difference."),
    atol: float = typer.Option(1e-8, "--atol", min=0.0, metavar="A",
                               help="Absolute tolerance (finite difference, and forward vs reverse)."),
    allow_kinks: bool = typer.Option(False, "--allow-kinks",
                                     help="Accept rows whose finite difference crosses a kink "
                                     "(relu or abs at 0, a min/max tie)."),
    order: int = typer.Option(1, "--order", min=1, max=2, metavar="1|2",
                              help="2: check the Hessian (H·v for a random v above 20 inputs) against "
                              "central differences of the gradient."),
    precision: int = typer.Option(10, "--precision", min=1, max=17, metavar="N",
                                  help="Significant digits of the three columns (the errors keep 2)."),
    inputs_file: Optional[str] = InputsOpt,
):
    """Verify every input's gradient: reverse mode vs forward mode vs a finite difference.

    Exits 1 if any row disagrees beyond its tolerance, or sits at a kink (unless --allow-kinks).
    """
    for hint, tolerance in (("--rtol", rtol), ("--atol", atol)):
        if math.isnan(tolerance):   # (nan passes min=0.0, and no row can be within it)
            raise typer.BadParameter("nan: a tolerance is a number ≥ 0", param_hint=hint)
    values = given_values(sets, inputs_file)
    program = _read(file, as_json, values)
    from .renderers import report
    if order == 2:
        from .commands.check_second import check_second as check_gradients
    else:
        from .commands.check import check as check_gradients

    result = check_gradients(program, values, of, rtol=rtol, atol=atol, allow_kinks=allow_kinks)
    _warn_unused(result, program)
    if as_json:
        _print(report.check_json(result))
    else:
        console = _console(wide=True)
        with _writing():
            console.print(report.check_table(result, file, precision))
        for row in result.rows:
            if not row.ok:
                sys.stderr.write(f"check failed: {row.name}: {row.reason}\n")
    if not result.ok:
        raise typer.Exit(1)


class Format(str, enum.Enum):
    text = "text"
    markdown = "markdown"
    latex = "latex"


@app.command(epilog="Examples:\n\n"
             "  diffcli explain samples/backprop_chain.expr --set o=1\n\n"
             "  diffcli explain model.expr --of h --wrt x --format latex > derivation.tex")
@command
def explain(
    file: str = FileArg,
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME", autocompletion=variable_names,
                                      help="Differentiate with respect to this variable (default: "
                                      "the first input the output depends on)."),
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    fmt: Format = typer.Option(Format.text, "--format", help="text (Unicode), markdown or latex."),
    as_json: bool = typer.Option(False, "--json", help="Print the derivation as JSON: each statement's "
                                 "partials (exact form and value) and the total (errors too)."),
    precision: int = PrecisionOpt,
    inputs_file: Optional[str] = InputsOpt,
    elements: bool = typer.Option(False, "--elements", help="An array program: the element-wise "
                                  "derivation (the scalar one of the program unrolled), for small programs."),
):
    """Show the chain rule step by step: local partials, reverse accumulation, symbolic total.

    For an array program: the chain rule with shapes (δW1 = δz1 xᵀ), each step with its rule."""
    values = given_values(sets, inputs_file)
    if as_json and fmt is not Format.text:
        raise typer.BadParameter("--json is the derivation as data: it takes no --format", param_hint="--json")
    program = _read(file, as_json, values)
    from .renderers.explain import explain as derivation

    text = derivation(program, values, wrt, of, "json" if as_json else fmt.value,
                      "<stdin>" if file == "-" else file, precision, elements=elements)
    _warn_names([name for name in values if name not in program.names], program)  # (a typo failed above)
    _print(text)


class Language(str, enum.Enum):
    python = "python"
    c = "c"
    javascript = "javascript"


@app.command(epilog="Examples:\n\n"
             "  diffcli codegen samples/backprop_chain.expr --lang python\n\n"
             "  diffcli codegen model.expr --lang c -o model.c   (also writes model.h)\n\n"
             "  diffcli codegen model.expr --lang javascript --forward --wrt a -o model.mjs")
@command
def codegen(
    file: str = FileArg,
    lang: Language = typer.Option(..., "--lang", help="python, c or javascript."),
    of: Optional[str] = OfOpt,
    name: Optional[str] = typer.Option(None, "--name", metavar="FUNC",
                                       help="The generated function's name (default: grad_<output>)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="OUT",
                                         help="Write the source here (default: standard output). "
                                         "For C, a .c path: the header goes beside it (OUT with .h)."),
    value_only: bool = typer.Option(False, "--value-only", help="Only the output's value, no gradient."),
    forward: bool = typer.Option(False, "--forward", help="Forward mode: the derivative along --wrt."),
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME", autocompletion=input_names,
                                      help="The input that --forward differentiates with respect to."),
    as_json: bool = typer.Option(False, "--json", help="Errors as one JSON object on standard error."),
):
    """Write the program and its gradient as source code in Python, C or JavaScript."""
    if forward != (wrt is not None):
        raise typer.BadParameter("--forward and --wrt NAME go together", param_hint="--forward")
    if value_only and forward:
        raise typer.BadParameter("--value-only and --forward exclude each other", param_hint="--value-only")
    program = _read(file, as_json)
    kept = {}
    if program.base.arrays or program.has_arrays:
        from .renderers.array_codegen import generate
    else:  # (array_codegen.generate hands these on to codegen.py: its module not imported for them)
        from .renderers.codegen import generate

        kept = {"keep": _kept}  # (the writer's tables live to the end, as every object of the run)
    generated = generate(program, lang.value, of, name, value_only=value_only, wrt=wrt,
                         filename="<stdin>" if file == "-" else os.path.basename(file), **kept)
    if output is None or output == "-":
        return _print(generated.source)
    from .renderers.codegen import header_path
    from .renderers.output import check_writable, write_output

    header = header_path(output) if generated.header is not None else None  # checked before writing
    for target in (output, header):  # both, before either is written
        if target is not None:
            check_writable(target)
    write_output(output, generated.pieces())
    if header is not None:
        write_output(header, generated.header.encode("utf-8"))
# ---------------------------------------------------------------- fit

class FitMethod(str, enum.Enum):
    lbfgsb = "L-BFGS-B"
    bfgs = "BFGS"
    cg = "CG"
    newton_cg = "Newton-CG"
    least_squares = "least_squares"
    gd = "gd"
    adam = "adam"


def parse_bounds(values: Optional[List[str]]) -> dict[str, tuple[float, float]]:
    """`--bounds k=0:inf,A=-1:1` -> {"k": (0, inf), "A": (-1, 1)}; an empty end is unbounded."""
    result = {}
    for item in values or []:
        for part in item.split(","):
            if not part.strip():
                continue
            name, eq, text = part.partition("=")
            low, colon, high = text.partition(":")
            try:
                if not eq or not colon or not name.strip():
                    raise ValueError
                ends = (float(low) if low.strip() else -math.inf, float(high) if high.strip() else math.inf)
            except ValueError:
                raise typer.BadParameter(f"{part!r} is not NAME=LOW:HIGH (for example k=0:inf)",
                                         param_hint="--bounds") from None
            if math.isnan(ends[0]) or math.isnan(ends[1]) or ends[0] > ends[1]:
                raise typer.BadParameter(f"{part!r}: LOW must not exceed HIGH", param_hint="--bounds")
            result[name.strip()] = ends
    return result


def _read_points(path: str, fmt: Optional[str], program, limit: Optional[int] = None, *, arrays: bool = False):
    """A points file (CSV or JSON Lines; `-` is standard input), read and checked to its end (with
    `arrays`, as --points reads it: array inputs by element columns or JSON arrays)."""
    from .commands import points

    if arrays:
        from .commands import array_points as points  # its read_points reads scalar files as points does

    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            if sys.stdin is None:
                raise OSError(errno.EBADF, "it is closed")
            return points.read_points(sys.stdin, "<stdin>", fmt, program, limit or points.MAX_POINTS_TEXT)
        with open(path, encoding="utf-8", newline="") as stream:
            return points.read_points(stream, path, fmt, program, limit or points.MAX_POINTS_TEXT)
    except OSError as error:
        raise DiffcliError("io", f"cannot read {name}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise DiffcliError("io", f"{name} is not UTF-8 text", help="save it as UTF-8") from None


@app.command(name="fit", epilog="Examples:\n\n"
             "  diffcli fit samples/decay.expr --data samples/decay.csv --residual r --method least_squares\n\n"
             "  diffcli fit moons_mlp.expr --data moons.csv --method gd --steps 100 --report accuracy\n\n"
             "  diffcli fit model.expr --wrt a,b --bounds a=0:inf --write")
@command
def fit_command(
    file: str = FileArg,
    wrt: Optional[List[str]] = typer.Option(None, "--wrt", metavar="NAME,...", autocompletion=input_names,
                                            help="The inputs to fit (default: every input with a "
                                            "literal value that the data does not set)."),
    of: Optional[str] = typer.Option(None, "--of", metavar="NAME", autocompletion=variable_names,
                                     help="Minimize this variable (default: the one assigned last)."),
    data: Optional[str] = typer.Option(None, "--data", metavar="FILE",
                                       help="CSV with a header, or JSON Lines (- for standard input): "
                                       "each row sets inputs; the objective is the mean over the rows."),
    residual: Optional[str] = typer.Option(None, "--residual", metavar="NAME",
                                           help="Minimize the sum of squares of NAME over the rows "
                                           "(reports standard errors and correlations)."),
    method: Optional[FitMethod] = typer.Option(None, "--method", show_default="L-BFGS-B, or "
                                               "least_squares with --residual",
                                               help="SciPy's minimize methods, SciPy's least_squares, "
                                               "or plain gradient descent (gd) and Adam."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, metavar="RATE",
                                       help="gd and adam: the first learning rate, falling linearly to "
                                       "a tenth of it (default 1 for gd as micrograd's demo, 0.01 for adam)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, metavar="N",
                                        help="gd and adam: steps to take (default 100); others: the "
                                        "most iterations (least_squares: evaluations)."),
    bounds: Optional[List[str]] = typer.Option(None, "--bounds", metavar="NAME=LOW:HIGH",
                                               help="Keep a parameter within bounds: k=0:inf "
                                               "(L-BFGS-B, least_squares, gd, adam)."),
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
    plot: Optional[str] = typer.Option(None, "--plot", metavar="FILE",
                                       help="Draw the objective against the step (and with --x, the "
                                       "data and the fit): .png, .svg, .pdf or .html."),
    x_column: Optional[str] = typer.Option(None, "--x", metavar="COLUMN",
                                           help="With --data and --plot: the column for the x axis."),
    write: bool = typer.Option(False, "--write", help="Write the fitted values into FILE's literal "
                               "assignments, in place (comments and layout kept)."),
    report_names: Optional[List[str]] = typer.Option(None, "--report", metavar="NAME,...",
                                                     help="After the fit, print these variables' "
                                                     "means over the rows (e.g. an accuracy)."),
    sigma: Optional[str] = typer.Option(None, "--sigma", metavar="COLUMN",
                                        help="With --residual: each row's σ, a data column (the "
                                        "residual is divided by it)."),
    absolute_sigma: bool = typer.Option(False, "--absolute-sigma", help="Take --sigma as absolute: "
                                        "no rescaling by the reduced χ² (curve_fit's absolute_sigma=True)."),
    observed: Optional[str] = typer.Option(None, "--observed", metavar="COLUMN",
                                           help="The measured column, for R² (default: the data column "
                                           "in `r = model - y`)."),
    tol: Optional[float] = typer.Option(None, "--tol", metavar="T",
                                        help="least_squares: stop when a step changes χ² or the "
                                        "parameters by less than T of their size (default 1e-15)."),
    style: PlusMinus = PlusMinusOpt,
    confidence: Optional[str] = typer.Option(None, "--confidence", metavar="LEVELS",
                                             help="With --residual: profile confidence intervals, as "
                                             "lmfit's conf_interval, at levels in σ (1,2) or as a "
                                             "probability (0.95)."),
    inputs_file: Optional[str] = InputsOpt,
    elements: bool = ElementsOpt,
    save: Optional[str] = typer.Option(None, "--save", metavar="FILE.json", help="Write the fitted "
                                       "inputs to FILE.json, as --inputs reads them."),
):
    """Fit inputs to minimize an output, or a formula's parameters to data (exact gradients)."""
    values = given_values(sets, inputs_file)
    chosen = (method.value if method else None) or ("least_squares" if residual else "L-BFGS-B")
    bound_ranges = parse_bounds(bounds)
    if bound_ranges and chosen not in ("L-BFGS-B", "least_squares", "gd", "adam"):
        raise typer.BadParameter(f"{chosen} takes no bounds; use L-BFGS-B, least_squares, gd or adam",
                                 param_hint="--bounds")
    if chosen == "least_squares" and not residual:
        raise typer.BadParameter("least_squares needs --residual NAME", param_hint="--method")
    from .commands.fit import MAX_STEPS

    if steps is not None and steps > MAX_STEPS:
        raise typer.BadParameter(f"at most {MAX_STEPS:,} steps (each one's objective is kept)",
                                 param_hint="--steps")
    if lr is not None and chosen not in ("gd", "adam"):
        raise typer.BadParameter("--lr goes with --method gd or adam", param_hint="--lr")
    if lr is not None and not math.isfinite(lr):
        raise typer.BadParameter(f"{lr}: a learning rate is a finite number ≥ 0", param_hint="--lr")
    if write and file == "-":
        raise typer.BadParameter("--write needs FILE to be a file, not standard input", param_hint="--write")
    if data == "-" and file == "-":
        raise typer.BadParameter("FILE and --data cannot both be standard input", param_hint="--data")
    plot_format = None
    if plot is not None:
        plot_format = os.path.splitext(plot)[1].lower().lstrip(".")
        if plot_format not in ("png", "svg", "pdf", "html"):
            raise typer.BadParameter(f"{plot!r}: the picture's name must end in .png, .svg, .pdf or .html",
                                     param_hint="--plot")
    if of is not None and residual is not None:
        raise typer.BadParameter("--residual NAME is what is minimized: leave out --of", param_hint="--of")
    if tol is not None and chosen != "least_squares":
        raise typer.BadParameter("--tol goes with least_squares (--residual)", param_hint="--tol")
    if tol is not None and not sys.float_info.epsilon <= tol < 1:
        raise typer.BadParameter(f"{tol:g}: a relative tolerance between the machine epsilon "
                                 f"({sys.float_info.epsilon:.3g}) and 1", param_hint="--tol")
    if confidence is not None and residual is None:
        raise typer.BadParameter("profile intervals compare χ²: they need --residual NAME",
                                 param_hint="--confidence")
    if absolute_sigma and sigma is None:
        raise typer.BadParameter("--absolute-sigma takes --sigma COLUMN as absolute: give --sigma",
                                 param_hint="--absolute-sigma")
    if x_column is not None and data is None:
        raise typer.BadParameter("--x names a data column: it needs --data", param_hint="--x")
    from .renderers.output import check_writable, write_output

    for target in (plot, save, file if write else None):  # refused now, not after the result is printed
        if target is not None:
            check_writable(target)
    program = _read(file, as_json, values)
    from .commands import fit as fitting
    from .renderers import fitreport, render

    data_name = "<stdin>" if data == "-" else data
    columns = {}
    if data is not None:
        from .commands.points import MAX_DATA_TEXT

        rows = _read_points(data, None, program, MAX_DATA_TEXT)
        columns = fitting.gather(rows.names, [chunk for _, chunk in rows.chunks()])
    report_list = parse_names(report_names)
    problem, start, warnings = fitting.setup(
        program, parse_names(wrt), values, of=of, residual=residual, data=columns, data_name=data_name,
        bounds=bound_ranges, report=report_list, x_column=x_column, write=write, sigma=sigma,
        observed=observed)
    for warning in warnings:
        sys.stderr.write(f"warning: {warning}\n")
    from .commands import fit_intervals

    wanted = fit_intervals.levels(confidence, problem.labels) if confidence is not None else None
    live = sys.stderr.isatty()  # a transient line, erased before anything else is written
    total = (steps or fitting.DEFAULT_STEPS) if chosen in ("gd", "adam") else steps
    progress = fitreport.Progress(chosen, total) if live else None
    with progress or nullcontext():
        result = fitting.fit(problem, chosen, start=start, steps=steps, lr=lr, bounds=bound_ranges,
                             progress=progress, absolute_sigma=absolute_sigma, tol=tol)
    if report_list and result.error is None:
        result.report = fitting.means(problem, result.parameters, report_list)
    if wanted and result.error is None and not result.interrupted:
        result.confidence = fit_intervals.intervals(problem, result.parameters, result.stderr or {},
                                                    wanted, bound_ranges)
    for warning in result.warnings:
        if not as_json:
            sys.stderr.write(f"warning: {warning}\n")
    _print(fitreport.fit_json(result) if as_json else fitreport.fit_text(result, file, precision, style.value, elements))
    if result.error is not None:
        raise result.error
    if plot is not None:
        curve = None
        if x_column is not None:
            curve = fitting.curve(problem, result, x_column)
        write_output(plot, render.vegalite(fitreport.plot_spec(result, x_column, curve), plot_format))
    if save is not None:
        write_output(save, fitting.saved_inputs(result.parameters).encode())
    if write:
        notes: list[str] = []
        text = fitting.written_back(program, result.parameters, notes)
        write_output(file, text.encode())
        for note in notes:
            sys.stderr.write(f"note: {note}\n")
    if result.interrupted:
        raise typer.Exit(130)
# ---------------------------------------------------------------- uncertainty

def _split_uncertain_sets(values: Optional[List[str]]) -> tuple[list[str], list[str]]:
    """`--set x=2.1±0.1` (or `+/-`) -> the value `x=2.1` for parse_sets and the uncertainty `x=0.1`."""
    from .language.parser import split_settings

    plain, uncertain = [], []
    for item in values or []:
        for part in split_settings(item):
            for mark in UNCERTAINTY_MARKS:
                if mark in part:
                    part, _, u = part.partition(mark)
                    uncertain.append(f"{part.partition('=')[0]}={u}")
                    break
            plain.append(part)
    return plain, uncertain


def _pairs(values: Optional[List[str]], option: str, example: str) -> list[tuple[str, str]]:
    """`NAME=TEXT` items (comma lists too) -> [(name, text)]; malformed -> exit 2."""
    from .language.parser import split_settings

    pairs = []
    for item in values or []:
        for part in split_settings(item):
            name, eq, text = part.strip().partition("=")
            if not part.strip():
                continue
            if not eq or not name.strip() or not text.strip():
                raise typer.BadParameter(f"{part!r} is not {example}", param_hint=option)
            pairs.append((name.strip(), text.strip()))
    return pairs


def parse_correlations(values: Optional[List[str]]) -> dict[tuple[str, str], float]:
    """`--correlation a,b=0.3` (repeatable) -> {("a", "b"): 0.3}; malformed -> exit 2."""
    from .language.parser import read_number, split_settings

    result, written = {}, {}
    for item in values or []:
        names, eq, text = item.partition("=")
        pair = [name.strip() for name in split_settings(names)]  # x[0],W[0,1]=0.3: commas in brackets stay
        r = read_number(text.strip())  # as --set reads numbers
        if not eq or len(pair) != 2 or not all(pair) or r is None or not math.isfinite(r):
            raise typer.BadParameter(f"{item!r} is not A,B=R (for example --correlation L,T=0.3)",
                                     param_hint="--correlation")
        key = frozenset(pair)  # L,T and T,L are one coefficient
        if key in written and result[written[key][0]] != r:  # which one was meant? (the same twice is harmless)
            raise typer.BadParameter(f"the correlation of {pair[0]} and {pair[1]} is given twice "
                                     f"({written[key][1]} and {item}); give it once", param_hint="--correlation")
        if key not in written:
            result[pair[0], pair[1]], written[key] = r, ((pair[0], pair[1]), item)
    return result


@app.command(epilog="Examples:\n\n"
             "  diffcli uncertainty samples/pendulum.expr\n\n"
             "  diffcli uncertainty model.expr --set x=2.1±0.1 --uncertainty y=5% --correlation x,y=0.3\n\n"
             "  diffcli uncertainty samples/pendulum.expr --order 2 --monte-carlo 100000 --plot g.png")
@command
def uncertainty(
    file: str = FileArg,
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = typer.Option(
        None, "--set", metavar="NAME=VALUE[±U]",
        help="Give an input a value, and optionally its standard uncertainty: --set x=2.1±0.1 "
        "(or +/-, or ±5%)."),
    uncertainties: Optional[List[str]] = typer.Option(
        None, "--uncertainty", "-u", metavar="NAME=U",
        help="Give an input a standard uncertainty, absolute (x=0.1) or relative (x=5%); "
        "overrides the file's."),
    correlations: Optional[List[str]] = typer.Option(
        None, "--correlation", metavar="A,B=R", help="Correlate two uncertain inputs (-1 ≤ R ≤ 1); repeat it."),
    order: int = typer.Option(1, "--order", min=1, max=2,
                              help="2 adds the GUM's second-order term from the exact Hessian."),
    monte_carlo: Optional[int] = typer.Option(
        None, "--monte-carlo", min=2, metavar="N",
        help="Also propagate N normal samples of the inputs through the model (JCGM 101)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, metavar="S",
                                       help="Seed of the Monte Carlo samples (a whole number ≥ 0)."),
    plot: Optional[str] = typer.Option(
        None, "--plot", metavar="FILE",
        help="Draw the Monte Carlo histogram with the linear result's normal curve (.png, .svg, .pdf, .html)."),
    elements: bool = typer.Option(False, "--elements", help="List every element of each array in the budget "
                                  "(else its 6 largest; JSON lists every one)."),
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
    style: PlusMinus = PlusMinusOpt,
):
    """Propagate the inputs' uncertainties to the output: the result, its budget, and checks."""
    plain, uncertain = _split_uncertain_sets(sets)
    values = parse_sets(plain)
    given = dict(_pairs(uncertain, "--set", "NAME=VALUE±U (for example --set x=2.1±0.1)"))
    from .interpreters.uncertainty import amount

    for name, u in given.items():  # (read again by propagate, whose errors say --uncertainty)
        amount(u, f"--set {name}")
    given.update(_pairs(uncertainties, "--uncertainty", "NAME=U (for example --uncertainty x=0.1)"))
    pairs = parse_correlations(correlations)
    from .renderers import uncertainty_report

    if plot is not None:
        plot_format = uncertainty_report.plot_format(plot)
        if plot_format is None:
            raise typer.BadParameter(f"{plot!r}: end the file's name with .png, .svg, .pdf or .html",
                                     param_hint="--plot")
        if monte_carlo is None:
            raise typer.BadParameter("--plot draws the Monte Carlo samples: give --monte-carlo N too",
                                     param_hint="--plot")
    program = _read(file, as_json)
    from .interpreters.uncertainty import propagate

    result = _keep(propagate(program, values, of, uncertainties=given, correlations=pairs,
                             order=order, monte_carlo=monte_carlo, seed=seed))
    _warn_unused(result, program)
    if plot is not None:
        uncertainty_report.write_plot(result, plot, plot_format)
    if as_json:
        _print(uncertainty_report.to_json(result))
    else:
        _show(uncertainty_report.table(result, file, precision, style.value, elements), wide=True)
        sys.stdout.flush()
    for warning in uncertainty_report.warnings(result):  # after the result they are about
        sys.stderr.write(f"warning: {warning}\n")


class _ClosedStream(io.TextIOBase):
    """Standard output when the process started with it closed: every write fails, as a write to
    a closed descriptor does."""

    encoding = "utf-8"

    def write(self, text):
        raise OSError(errno.EBADF, "it is closed")


# Click's own error types, which Typer may vendor: found by name on what Typer raises
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _fail(error: DiffcliError, as_json: bool) -> int:
    try:
        _report_error(error, as_json)
    except OSError:  # standard error is gone too: the exit code is all that is left
        pass
    return 1


def _only_the_named_command(arguments: list[str]) -> None:
    """Typer builds every command's options at each start (5% of `diffcli grad FILE`); when the first
    word names a command, that one is the only one that can run, so it is the only one built.
    Anything else (--help, --version, shell completion, a misspelt command) gets them all."""
    named = [info for info in app.registered_commands
             if arguments and (info.name or info.callback.__name__.replace("_", "-")) == arguments[0]]
    if named:
        app.registered_commands = named


def _run(as_json: bool) -> int:
    """Run the command line; with --json a malformed one is a JSON error too (kind "input")."""
    _only_the_named_command(sys.argv[1:])
    if not as_json:
        app()
        return 0
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as error:
        _report_error(DiffcliError("input", error.format_message()), as_json=True)
        return error.exit_code
    return code if isinstance(code, int) else 0


def main() -> None:
    global _kept
    # One short run: its objects live until it exits, so the cycle collector only costs time
    # (a third of the run on a 100,000-statement file).
    gc.disable()
    _kept = []
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    arguments = sys.argv[1:]
    as_json = "--json" in arguments[: arguments.index("--")] if "--" in arguments else "--json" in arguments
    try:
        code = _run(as_json)
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = 130
    except BrokenPipeError:  # writing --help or --version
        from .renderers.output import broken_pipe

        code = _fail(broken_pipe(), as_json)
    except OSError as error:
        code = _fail(DiffcliError("io", f"cannot write to standard output: {error.strerror or error}"),
                     as_json)
    if not isinstance(code, int):
        if code is not None:
            sys.stderr.write(f"{code}\n")
        code = 0 if code is None else 1
    # Leave without freeing every object one by one (0.1 s after a 100,000-statement file);
    # nothing else is pending at this point but the buffered output.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from .renderers.output import broken_pipe

        if not code:
            code = _fail(broken_pipe(), as_json)
    except (OSError, ValueError) as error:
        if not code:
            code = _fail(DiffcliError("io", "cannot write to standard output: "
                                      f"{getattr(error, 'strerror', None) or error}"), as_json)
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    main()
