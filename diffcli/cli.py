"""The command line: parse arguments, call the library, print, map errors to exit codes.

Exit codes (SPEC section 2): 0 success; 1 a problem with the file, its values or a --set; 2 a
malformed command line (Typer/Click's usage errors, and --set values that do not parse).
"""

from __future__ import annotations

import enum
import errno
import gc
import io
import math
import os
import sys
from contextlib import contextmanager
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
            from .parser import read_number

            value = read_number(text)
            if value is None:
                raise typer.BadParameter(f"{text!r} is not a number (in {part!r}); numbers are "
                                         "written as in the language: 2, -0.5, 1e-3",
                                         param_hint="--set")
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

# What main() keeps alive until the process exits (it then leaves without freeing anything): a
# large program and its results are millions of objects, 0.1 s to free when a command returns.
_kept: list | None = None


def _keep(thing):
    if _kept is not None:
        _kept.append(thing)
    return thing


def _read(file: str, as_json: bool = False):
    from .program import load, parse, read_source

    if file == "-":
        try:
            if sys.stdin is None:
                raise OSError(errno.EBADF, "it is closed")
            data = sys.stdin.buffer.read()
        except OSError as error:
            raise DiffcliError("io", f"cannot read standard input: {error.strerror or error}") from None
        program = parse(read_source(data, "<stdin>"), "<stdin>")
    else:
        program = load(file)
    _keep(program)
    if program.notes and not as_json:
        from . import diagnostics

        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        for note in program.notes:
            sys.stderr.write(diagnostics.render_text(note, color=color, severity="note"))
    return program


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
        sys.stderr.write(f"warning: --set {name}: the program does not use `{name}`\n")


@contextmanager
def _writing():
    """Around writing to standard output: a full, closed or broken one is an "io" error."""
    try:
        yield
        sys.stdout.flush()
    except OSError as error:
        raise DiffcliError("io", f"cannot write to standard output: {error.strerror or error}") from None


def _print(text: str) -> None:
    with _writing():
        sys.stdout.write(text)


def _console():
    from rich.console import Console

    return Console(highlight=False)


def _show(table) -> None:
    """Print a table from report: a Rich renderable, or plain text (for very long tables)."""
    if isinstance(table, str):
        return _print(table)
    with _writing():
        _console().print(table)


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
    mode: Optional[Mode] = typer.Option(None, "--mode", show_default="reverse",
                                        help="reverse: d(output)/d(every name). "
                                        "forward: d(every name)/d(--wrt)."),
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME",
                                      help="The input that forward mode differentiates with respect to "
                                      "(implies --mode forward)."),
):
    """Values and gradients of every variable (forward and reverse passes)."""
    values = parse_sets(sets)
    if mode is Mode.forward and wrt is None:
        raise typer.BadParameter("--mode forward needs --wrt NAME", param_hint="--mode")
    if mode is Mode.reverse and wrt is not None:
        raise typer.BadParameter("--wrt goes with forward mode; reverse mode uses --of", param_hint="--wrt")
    if wrt is not None and of is not None:
        raise typer.BadParameter("--of goes with reverse mode; forward mode uses --wrt", param_hint="--of")
    program = _read(file, as_json)
    from . import report

    if wrt is not None:
        result = _keep(program.derivatives(wrt, values))
        _warn_unused(result)
        if as_json:
            return _print(report.forward_json(result))
        return _show(report.forward_table(program, result, file, precision))
    result = _keep(program.grad(values, of))
    _warn_unused(result)
    if as_json:
        return _print(report.grad_json(result))
    _show(report.grad_table(program, result, file, precision))


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
    program = _read(file, as_json)
    from . import report

    result = _keep(program.evaluate(values))
    _warn_unused(result)
    if as_json:
        return _print(report.eval_json(result))
    _show(report.eval_table(program, result, file, precision))


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
):
    """Draw the computation graph, every variable with its value and gradient (DOT, SVG, PNG, PDF)."""
    values = parse_sets(sets)
    from . import drawing, render

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
    _warn_unused(diagram)
    render.write(render.render(diagram.source, format), output, format)


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
):
    """Verify every input's gradient: reverse mode vs forward mode vs a finite difference.

    Exits 1 if any row disagrees beyond its tolerance, or sits at a kink (unless --allow-kinks).
    """
    values = parse_sets(sets)
    program = _read(file, as_json)
    from . import report
    from .check import check as check_gradients

    result = check_gradients(program, values, of, rtol=rtol, atol=atol, allow_kinks=allow_kinks)
    _warn_unused(result)
    if as_json:
        _print(report.check_json(result))
    else:
        console = _console()
        if not console.is_terminal:  # a pipe or a file: don't fold the notes into narrow columns
            console.width = max(console.width, 160)
        with _writing():
            console.print(report.check_table(result, file))
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
    wrt: Optional[str] = typer.Option(None, "--wrt", metavar="NAME",
                                      help="Differentiate with respect to this variable (default: "
                                      "the first input the output depends on)."),
    of: Optional[str] = OfOpt,
    sets: Optional[List[str]] = SetOpt,
    fmt: Format = typer.Option(Format.text, "--format", help="text (Unicode), markdown or latex."),
):
    """Show the chain rule step by step: local partials, reverse accumulation, symbolic total."""
    values = parse_sets(sets)
    program = _read(file)
    from .explain import explain as derivation

    _print(derivation(program, values, wrt, of, fmt.value, "<stdin>" if file == "-" else file))


# ---------------------------------------------------------------- uncertainty

def _split_uncertain_sets(values: Optional[List[str]]) -> tuple[list[str], list[str]]:
    """`--set x=2.1±0.1` (or `+/-`) -> the value `x=2.1` for parse_sets and the uncertainty `x=0.1`."""
    plain, uncertain = [], []
    for item in values or []:
        for part in item.split(","):
            for mark in ("±", "+/-"):
                if mark in part:
                    part, _, u = part.partition(mark)
                    uncertain.append(f"{part.partition('=')[0]}={u}")
                    break
            plain.append(part)
    return plain, uncertain


def _pairs(values: Optional[List[str]], option: str, example: str) -> list[tuple[str, str]]:
    """`NAME=TEXT` items (comma lists too) -> [(name, text)]; malformed -> exit 2."""
    pairs = []
    for item in values or []:
        for part in item.split(","):
            name, eq, text = part.strip().partition("=")
            if not part.strip():
                continue
            if not eq or not name.strip() or not text.strip():
                raise typer.BadParameter(f"{part!r} is not {example}", param_hint=option)
            pairs.append((name.strip(), text.strip()))
    return pairs


def parse_correlations(values: Optional[List[str]]) -> dict[tuple[str, str], float]:
    """`--correlation a,b=0.3` (repeatable) -> {("a", "b"): 0.3}; malformed -> exit 2."""
    result = {}
    for item in values or []:
        names, eq, text = item.partition("=")
        pair = [name.strip() for name in names.split(",")]
        try:
            r = float(text)
        except ValueError:
            r = math.nan
        if not eq or len(pair) != 2 or not all(pair) or not math.isfinite(r):
            raise typer.BadParameter(f"{item!r} is not A,B=R (for example --correlation L,T=0.3)",
                                     param_hint="--correlation")
        result[pair[0], pair[1]] = r
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
    seed: Optional[int] = typer.Option(None, "--seed", metavar="S", help="Seed of the Monte Carlo samples."),
    plot: Optional[str] = typer.Option(
        None, "--plot", metavar="FILE",
        help="Draw the Monte Carlo histogram with the linear result's normal curve (.png, .svg, .pdf, .html)."),
    as_json: bool = JsonOpt,
    precision: int = PrecisionOpt,
):
    """Propagate the inputs' uncertainties to the output: the result, its budget, and checks."""
    plain, uncertain = _split_uncertain_sets(sets)
    values = parse_sets(plain)
    given = dict(_pairs(uncertain, "--set", "NAME=VALUE±U (for example --set x=2.1±0.1)"))
    given.update(_pairs(uncertainties, "--uncertainty", "NAME=U (for example --uncertainty x=0.1)"))
    pairs = parse_correlations(correlations)
    from . import uncertainty_report

    if plot is not None:
        plot_format = uncertainty_report.plot_format(plot)
        if plot_format is None:
            raise typer.BadParameter(f"{plot!r}: end the file's name with .png, .svg, .pdf or .html",
                                     param_hint="--plot")
        if monte_carlo is None:
            raise typer.BadParameter("--plot draws the Monte Carlo samples: give --monte-carlo N too",
                                     param_hint="--plot")
    program = _read(file, as_json)
    from .uncertainty import propagate

    result = _keep(propagate(program, values, of, uncertainties=given, correlations=pairs,
                             order=order, monte_carlo=monte_carlo, seed=seed))
    _warn_unused(result)
    if plot is not None:
        uncertainty_report.write_plot(result, plot, plot_format)
    if as_json:
        _print(uncertainty_report.to_json(result))
    else:
        _show(uncertainty_report.table(result, file, precision))
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


def _run(as_json: bool) -> int:
    """Run the command line; with --json a malformed one is a JSON error too (kind "input")."""
    if not as_json:
        app()
        return 0
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as error:
        _report_error(DiffcliError("input", error.format_message()), as_json=True)
        return error.exit_code
    except (typer.Abort, RuntimeError) as error:
        if type(error).__name__ != "Abort":
            raise
        _report_error(DiffcliError("io", "aborted"), as_json=True)
        return 1
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
    except OSError as error:  # writing --help or --version
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
