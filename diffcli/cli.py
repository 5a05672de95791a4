"""The command line: parse arguments, call the library, print, map errors to exit codes.

Exit codes (SPEC section 2): 0 success; 1 a problem with the file, its values or a --set; 2 a
malformed command line (Typer/Click's usage errors, and --set values that do not parse).
"""

from __future__ import annotations

import enum
import math
import os
import sys
from functools import wraps
from typing import List, Optional

import typer

from . import __version__
from .errors import DiffcliError

app = typer.Typer(
    name="diffcli",
    help="Differentiate the expressions in a small program of assignments.\n\n"
    "Example: [bold]diffcli grad model.expr --set o=1[/bold] prints every variable's value and "
    "the gradient of the output with respect to it.",
    add_completion=False,
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

def parse_sets(values: Optional[List[str]]) -> dict[str, float]:
    """`--set a=2 --set o=1` or `--set a=2,o=1` -> {"a": 2.0, "o": 1.0}; malformed -> exit 2."""
    result: dict[str, float] = {}
    for item in values or []:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, eq, text = part.partition("=")
            name, text = name.strip(), text.strip()
            if not eq or not name:
                raise typer.BadParameter(f"{part!r} is not NAME=VALUE (for example --set o=1)",
                                         param_hint="--set")
            try:
                value = float(text)
            except ValueError:
                raise typer.BadParameter(f"{text!r} is not a number (in {part!r})",
                                         param_hint="--set") from None
            if not math.isfinite(value):
                raise typer.BadParameter(f"{text!r} is not a finite number", param_hint="--set")
            result[name] = value
    return result


FileArg = typer.Argument(..., metavar="FILE", help="The .expr file, or - for standard input.",
                         show_default=False)
SetOpt = typer.Option(None, "--set", metavar="NAME=VALUE",
                      help="Give an input a value; repeat it, or use a comma list: --set a=2,o=1.")
OfOpt = typer.Option(None, "--of", metavar="NAME",
                     help="Differentiate this variable (default: the one assigned last).")
JsonOpt = typer.Option(False, "--json", help="Print JSON for scripts (errors too, on standard error).")
PrecisionOpt = typer.Option(6, "--precision", min=1, max=17, metavar="N",
                            help="Significant digits in the table (JSON always has every digit).")


class Mode(str, enum.Enum):
    reverse = "reverse"
    forward = "forward"


# ---------------------------------------------------------------- running a command

def _read(file: str):
    from .program import parse, read_source

    if file == "-":
        return parse(read_source(sys.stdin.buffer.read(), "<stdin>"), "<stdin>")
    from .program import load

    return load(file)


def _report_error(error: DiffcliError, as_json: bool) -> None:
    from . import diagnostics

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
            sys.stderr.write(
                f"error: internal error in diffcli {__version__}: {type(error).__name__}: {error}\n"
                "  = help: this is a bug; please report it with the file that caused it "
                "(set DIFFCLI_DEBUG=1 for the traceback)\n"
            )
            raise typer.Exit(1)

    return run


def _warn_unused(result) -> None:
    for name in result.unused:
        sys.stderr.write(f"warning: --set {name}: the program does not use `{name}` "
                         "(it is reported as an input with gradient 0)\n")


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _console():
    from rich.console import Console

    return Console(highlight=False)


# ---------------------------------------------------------------- grad, eval

@app.command(epilog="Examples:\n\n"
             "  diffcli grad samples/backprop_chain.expr --set o=1\n\n"
             "  diffcli grad model.expr --of loss --json\n\n"
             "  diffcli grad model.expr --mode forward --wrt a")
@command
def grad(
    file: str = FileArg,
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
    mode: Mode = typer.Option(Mode.reverse, "--mode",
                              help="reverse: d(output)/d(every name). forward: d(every name)/d(--wrt)."),
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME",
                                      help="The input that forward mode differentiates with respect to "
                                      "(implies --mode forward)."),
):
    """Values and gradients of every variable (forward and reverse passes)."""
    values = parse_sets(sets)
    if mode is Mode.forward and wrt is None:
        raise typer.BadParameter("--mode forward needs --wrt NAME", param_hint="--mode")
    if wrt is not None and of is not None:
        raise typer.BadParameter("--of goes with reverse mode; forward mode uses --wrt", param_hint="--of")
    program = _read(file)
    from . import report

    if wrt is not None:
        result = program.derivatives(wrt, values)
        _warn_unused(result)
        if as_json:
            return _print(report.forward_json(result))
        return _console().print(report.forward_table(program, result, file, precision))
    result = program.grad(values, of)
    _warn_unused(result)
    if as_json:
        return _print(report.grad_json(result))
    _console().print(report.grad_table(program, result, file, precision))


@app.command(name="eval", epilog="Example:\n\n  diffcli eval samples/backprop_chain.expr --set o=1")
@command
def evaluate(
    file: str = FileArg,
    sets: Optional[List[str]] = SetOpt,
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
):
    """Values of every variable (forward pass only)."""
    values = parse_sets(sets)
    program = _read(file)
    from . import report

    result = program.evaluate(values)
    _warn_unused(result)
    if as_json:
        return _print(report.eval_json(result))
    _console().print(report.eval_table(program, result, file, precision))


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    app()


if __name__ == "__main__":
    main()
