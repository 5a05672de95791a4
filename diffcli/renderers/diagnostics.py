"""DiffcliError -> what a person reads (rustc style) or what a script reads (one JSON object)."""

from __future__ import annotations


from ..errors import DiffcliError, Source, shown
from ..formatting import json_text

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
    lines = [label + bold(f": {shown(error.message)}")]
    labels = error.labels if error.source is not None and error.span is not None else []
    line_of = (lambda span: error.source.line_col(span[0])[0]) if labels else None
    beside = [(span, text) for span, text in labels if line_of(span) == line_of(error.span)]
    if error.source is not None:
        lines += _excerpt(error.source, error.span, gutter, blue, red, beside)
    notes = list(error.notes) + [(text, span) for span, text in labels if (span, text) not in beside]
    for note, span in notes:
        lines.append(blue("note") + f": {shown(note)}")
        if error.source is not None:
            lines += _excerpt(error.source, span, gutter, blue, blue)
    if error.help:
        lines.append(f"{gutter} {blue('=')} help: {shown(error.help)}")
    return "\n".join(lines) + "\n"


EXCERPT_CONTEXT = 60  # characters shown either side of the place in a long line


def _excerpt(source: Source, span, gutter: str, blue, mark, labels=()) -> list[str]:
    name = shown(source.filename)
    if span is None:
        return [f"{gutter}{blue('-->')} {name}"]
    start, end = span
    line, column = source.line_col(start)
    text = source.line_text(line)
    at = column - 1  # the place, as an index into the line
    width = max(1, min(end - start, len(text) - at, 2 * EXCERPT_CONTEXT))
    # a long line is cut to a window around the place
    low, high = max(0, at - EXCERPT_CONTEXT), min(len(text), at + width + EXCERPT_CONTEXT)
    before = ("…" if low else "") + _visible(text[low:at])
    marked = _visible(text[at : at + width])
    after = _visible(text[at + width : high]) + ("…" if high < len(text) else "")
    number = str(line).rjust(len(gutter))
    head = [
        f"{gutter}{blue('-->')} {name}:{line}:{column}",
        f"{gutter} {blue('|')}",
        f"{blue(number)} {blue('|')} {before}{marked}{after}",
    ]
    if labels:
        return head + _labelled(source, line, low, before, at, max(1, len(marked)), labels, gutter, blue, mark)
    return head + [f"{gutter} {blue('|')} {' ' * len(before)}{mark('^' * max(1, len(marked)))}"]


def _labelled(source, line, low, before, at, width, labels, gutter, blue, mark) -> list[str]:
    """The marks under a line that has secondary labels, as rustc draws them: `^` at the place,
    `-` under each labelled span; the rightmost label's text on the marks' line, the others' below,
    each hanging from a `|`.
    """
    shift = len(before) - (at - low)  # the `…` that a cut line begins with
    placed = []
    for (start, end), text in labels:
        column = source.line_col(start)[1] - 1
        if low <= column and column + (end - start) <= low + 2 * EXCERPT_CONTEXT + width:
            placed.append((column - low + shift, max(1, min(end - start, 2 * EXCERPT_CONTEXT)), text))
    if not placed:
        return [f"{gutter} {blue('|')} {' ' * len(before)}{mark('^' * width)}"]
    placed.sort()
    cells = {}
    for column, length, _ in placed:
        for k in range(length):
            cells[column + k] = blue("-")
    for k in range(width):
        cells[len(before) + k] = mark("^")
    marks = "".join(cells.get(k, " ") for k in range(max(cells) + 1))
    lines = [f"{gutter} {blue('|')} {marks} {blue(shown(placed[-1][2]))}"]
    hanging = placed[:-1]
    while hanging:
        bars = "".join(blue("|") if any(c == k for c, _, _ in hanging) else " "
                       for k in range(hanging[-1][0] + 1))
        lines.append(f"{gutter} {blue('|')} {bars}")
        column, _, text = hanging.pop()
        rest = "".join(blue("|") if any(c == k for c, _, _ in hanging) else " " for k in range(column))
        lines.append(f"{gutter} {blue('|')} {rest}{blue(shown(text))}")
    return lines


def _visible(text: str) -> str:
    """Tabs as spaces and control characters escaped, so that the caret lines up below."""
    return shown(text.replace("\t", TAB))


def render_json(error: DiffcliError) -> str:
    return json_text({"error": error_body(error)}) + "\n"


def error_body(error: DiffcliError) -> dict:
    """The error object of SPEC's "Errors": kind, message, and file, line, column where placed."""
    body = {"kind": error.kind, "message": error.message}
    if error.operation is not None:
        body["operation"] = error.operation
    if error.filename is not None:
        body["file"] = error.filename
    if error.line is not None:
        body["line"] = error.line
        body["column"] = error.column
    if error.help:
        body["help"] = error.help
    return body
