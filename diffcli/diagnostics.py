"""DiffcliError -> what a person reads (rustc style) or what a script reads (one JSON object)."""

from __future__ import annotations

import json

from .errors import DiffcliError, Source

TAB = "    "


def render_text(error: DiffcliError, color: bool = False, severity: str = "error") -> str:
    """
    error: unexpected `)`
     --> model.expr:3:13
      |
    3 | c = 2(b + 3))
      |             ^
      = help: remove it, or add the `(` it closes
    """
    bold = (lambda s: f"\x1b[1m{s}\x1b[0m") if color else (lambda s: s)
    red = (lambda s: f"\x1b[1;31m{s}\x1b[0m") if color else (lambda s: s)
    blue = (lambda s: f"\x1b[1;34m{s}\x1b[0m") if color else (lambda s: s)

    places = []
    if error.source is not None and error.span is not None:
        places.append(error.source.line_col(error.span[0])[0])
    for _, span in error.notes:
        if span is not None and error.source is not None:
            places.append(error.source.line_col(span[0])[0])
    gutter = " " * len(str(max(places))) if places else " "

    label = red(severity) if severity == "error" else bold(severity)
    lines = [label + bold(f": {error.message}")]
    if error.source is not None:
        lines += _excerpt(error.source, error.span, gutter, blue, red)
    for note, span in error.notes:
        lines.append(blue("note") + f": {note}")
        if error.source is not None:
            lines += _excerpt(error.source, span, gutter, blue, blue)
    if error.help:
        lines.append(f"{gutter} {blue('=')} help: {error.help}")
    return "\n".join(lines) + "\n"


def _excerpt(source: Source, span, gutter: str, blue, mark) -> list[str]:
    if span is None:
        return [f"{gutter}{blue('-->')} {source.filename}"]
    start, end = span
    line, column = source.line_col(start)
    text = source.line_text(line)
    # show tabs as spaces, and count the caret's place in what is shown
    shown = text.replace("\t", TAB)
    before = text[: column - 1]
    pad = len(before) + before.count("\t") * (len(TAB) - 1)
    width = max(1, min(end, start + len(text) - (column - 1)) - start)
    underline = text[column - 1 : column - 1 + width]
    width = max(1, len(underline) + underline.count("\t") * (len(TAB) - 1))
    number = str(line).rjust(len(gutter))
    return [
        f"{gutter}{blue('-->')} {source.filename}:{line}:{column}",
        f"{gutter} {blue('|')}",
        f"{blue(number)} {blue('|')} {shown}",
        f"{gutter} {blue('|')} {' ' * pad}{mark('^' * width)}",
    ]


def render_json(error: DiffcliError) -> str:
    return json.dumps({"error": error_body(error)}, ensure_ascii=False) + "\n"


def error_body(error: DiffcliError) -> dict:
    """The error object of SPEC's "Errors": kind, message, and file, line, column where placed."""
    body = {"kind": error.kind, "message": error.message}
    if error.filename is not None:
        body["file"] = error.filename
    if error.line is not None:
        body["line"] = error.line
        body["column"] = error.column
    if error.help:
        body["help"] = error.help
    return body
