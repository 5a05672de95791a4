"""diffcli's one exception type, and the source text it points into.

Every problem a user can cause (bad syntax, an unknown name, a value outside an operation's domain,
an unreadable file, a bad command-line value) is a `DiffcliError` with a `kind` from SPEC section 2.
Positions are character offsets into the source; line and column are computed only when asked for.
"""

from __future__ import annotations

import bisect
import itertools
import re

KINDS = ("syntax", "name", "cycle", "domain", "input", "io", "shape")

# Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts a command),
# DEL, zero-width and bidirectional formatting characters, line and paragraph separators, BOM.
# Tab is not among them: where it may appear, it is shown as spaces.
_UNSHOWABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e"
                         "\u2028\u2029\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]")
_COMMENT = re.compile("#[^\n]*")


def shown(text: str) -> str:
    """`text` safe to print to a terminal: each control or formatting character as its escape
    (`\\x1b`, `\\u202e`), so that text from a file cannot act on the terminal."""
    return _UNSHOWABLE.sub(lambda match: ascii(match.group())[1:-1], text)


class Source:
    """The text of one .expr file, with its name, for turning offsets into lines and columns."""

    __slots__ = ("text", "filename", "bom", "_line_starts")

    def __init__(self, text: str, filename: str = "<input>", bom: bool = False):
        self.text = text
        self.filename = filename
        self.bom = bom  # the file began with a UTF-8 byte-order mark (not part of `text`)
        self._line_starts: list[int] | None = None

    def _starts(self) -> list[int]:
        if self._line_starts is None:  # each line starts one after the end of the one before
            lines = map(len, self.text.split("\n"))
            self._line_starts = list(itertools.accumulate(map((1).__add__, lines), initial=0))[:-1]
        return self._line_starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column (in characters) of a character offset."""
        starts = self._starts()
        line = bisect.bisect_right(starts, offset) - 1
        return line + 1, offset - starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line ending."""
        starts = self._starts()
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end].rstrip("\r")

    def snippet(self, start: int, end: int) -> str:
        """Source text of a span, without its comments (inside parentheses), with runs of blanks
        and line breaks folded to one space, and safe to print (see `shown`)."""
        text = self.text[start:end]
        if "#" in text:
            text = _COMMENT.sub("", text)
        return shown(" ".join(text.split()))


class DiffcliError(Exception):
    """A problem with the user's file, values or command line.

    kind: one of KINDS. span: (start, end) character offsets into `source`, or None.
    help: a suggestion for the fix. notes: further (message, span) pairs, such as the first
    assignment of a reassigned name. labels: (span, text) pairs drawn under the same excerpt, such
    as each operand's shape beside a shape error's operator.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        span: tuple[int, int] | None = None,
        *,
        source: Source | None = None,
        help: str | None = None,
        notes: list[tuple[str, tuple[int, int] | None]] | None = None,
        operation: str | None = None,
        labels: list[tuple[tuple[int, int], str]] | None = None,
    ):
        super().__init__(message)
        assert kind in KINDS, kind
        self.kind = kind
        self.message = message
        self.span = span
        self.source = source
        self.help = help
        self.notes = notes or []
        self.operation = operation  # a domain error's operation, as written (`log`, `/`, `^`)
        self.labels = labels or []

    @property
    def filename(self) -> str | None:
        return self.source.filename if self.source else None

    @property
    def line(self) -> int | None:
        return self.source.line_col(self.span[0])[0] if self._placed else None

    @property
    def column(self) -> int | None:
        return self.source.line_col(self.span[0])[1] if self._placed else None

    @property
    def _placed(self) -> bool:
        return self.span is not None and self.source is not None

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}:{self.column}: " if self._placed else ""
        return f"{where}{self.message}"
