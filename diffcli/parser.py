"""Text -> AST. The only module that knows Lark.

The grammar lives in `grammars/expr.lark` (packaged into the wheel as `diffcli/expr.lark`). The LALR
parser calls `_Builder` as it reduces, so the AST is built during the parse and no parse tree is ever
made. Every Lark exception is turned here into a `DiffcliError` of kind "syntax" written for a person.
"""

from __future__ import annotations

import math
from pathlib import Path

from lark import Lark, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from .errors import DiffcliError, Source
from .ops import FUNCTIONS
from .syntax import Assignment, Binary, Call, Name, Number, Paren, Unary

_BINARY_OPS = {"PLUS": "add", "MINUS": "sub", "STAR": "mul", "SLASH": "div", "POW": "pow"}
_UNARY_OPS = {"MINUS": "neg", "PLUS": "pos"}


def grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "expr.lark"
    return packaged if packaged.exists() else here.parent / "grammars" / "expr.lark"


class _ParenNewlines:
    """Post-lexer: a line break inside open parentheses does not end the statement."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for token in stream:
            kind = token.type
            if kind == "LPAR":
                depth += 1
            elif kind == "RPAR":
                if depth:
                    depth -= 1
            elif kind == "_SEP" and depth and ";" not in token:
                continue
            yield token


@v_args(inline=True)
class _Builder(Transformer):
    """Builds AST nodes as the parser reduces; positions come from the tokens."""

    text = ""  # the source being parsed, for the implicit-product diagnostic

    def number(self, token):
        value = float(token)
        if math.isinf(value):
            raise DiffcliError(
                "domain",
                f"the number `{token}` is too large for a double",
                (token.start_pos, token.end_pos),
                help="doubles reach about 1.8e308",
            )
        return Number(value, token.start_pos, token.end_pos)

    def name(self, token):
        return Name(token.value, token.start_pos, token.end_pos)

    def binary(self, left, op, right):
        return Binary(_BINARY_OPS[op.type], left, right, op.start_pos)

    def unary(self, op, operand):
        return Unary(_UNARY_OPS[op.type], operand, op.start_pos)

    def implicit(self, left, right):
        last = left
        while True:  # the rightmost piece of `left`: a loop, since nesting may be deep
            if isinstance(last, Binary):
                last = last.right
            elif isinstance(last, Unary):
                last = last.operand
            else:
                break
        if isinstance(last, Name):
            a = _short(self.text[last.start : last.end])
            b = _short(self.text[right.start : right.end])
            if last.id in FUNCTIONS:
                raise DiffcliError(
                    "syntax", f"`{a}` is a function: its argument goes in parentheses",
                    (right.start, right.end), help=f"write `{a}({b})`",
                )
            raise DiffcliError(
                "syntax",
                f"missing operator between `{a}` and `{b}`",
                (right.start, right.end),
                help=f"write `{a}*{b}` to multiply (only a number or `)` may stand right before a factor)",
            )
        return Binary("mul", left, right, right.start, implicit=True)

    def call(self, name, _lpar, args, rpar):
        return Call(name.value, args, name.start_pos, name.end_pos, rpar.end_pos)

    def arguments(self, *items):
        return [item for item in items if item is not None and not hasattr(item, "type")]

    def paren(self, lpar, inner, rpar):
        return Paren(inner, lpar.start_pos, rpar.end_pos)

    def stmt(self, name, _equals, expr):
        return Assignment(name.value, expr, name.start_pos, name.end_pos)

    def start(self, *statements):
        return list(statements)


def _short(text: str, limit: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_builder = _Builder()
_lark: Lark | None = None


def _parser() -> Lark:
    global _lark
    if _lark is None:
        _lark = Lark(
            grammar_path().read_text(encoding="utf-8"),
            parser="lalr",
            lexer="contextual",
            postlex=_ParenNewlines(),
            transformer=_builder,
            maybe_placeholders=True,
            cache=True,
        )
    return _lark


def parse(source: Source) -> list[Assignment]:
    """Parse a program's text into its assignments, in file order."""
    text = source.text
    _builder.text = text
    try:
        return _parser().parse(text)
    except DiffcliError as error:
        error.source = source
        raise
    except UnexpectedInput as error:
        raise _diagnose(error, source) from None
    finally:
        _builder.text = ""


# ---------------------------------------------------------------- diagnostics for syntax errors

_SYMBOLS = {
    "EQUALS": "`=`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`", "SLASH": "`/`", "POW": "`^`",
    "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`", "NUMBER": "a number", "NAME": "a name",
}
_OPERAND_STARTS = {"NUMBER", "NAME", "LPAR"}


def _describe(token) -> str:
    kind = token.type
    if kind == "$END":
        return "end of file"
    if kind == "_SEP":
        return "`;`" if ";" in token else "end of line"
    if kind in ("NUMBER", "NAME"):
        return f"{'number' if kind == 'NUMBER' else 'name'} `{token}`"
    return f"`{token}`"


def _tokens_before(source: Source, offset: int) -> list:
    """The tokens that precede `offset`, as the parser saw them (line breaks in parentheses dropped)."""
    tokens = []
    try:
        for token in _ParenNewlines().process(_parser().lex(source.text)):
            if token.start_pos >= offset:
                break
            tokens.append(token)
    except UnexpectedInput:
        pass
    return tokens


def _open_parens(tokens) -> list:
    stack = []
    for token in tokens:
        if token.type == "LPAR":
            stack.append(token)
        elif token.type == "RPAR" and stack:
            stack.pop()
    return stack


def _diagnose(error: UnexpectedInput, source: Source) -> DiffcliError:
    text = source.text
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream
        char = text[pos]
        help = None
        if char == "\r":
            message = "a carriage return that does not end a line"
            help = "lines end with `\\n` or `\\r\\n`"
        elif char in "!%&|<>~`'\"?$@\\[]{}:":
            message = f"unexpected character `{char}`"
            help = "the operators are + - * / ^ ** and functions are called like sin(x)"
        else:
            name = f"U+{ord(char):04X}" if not char.isprintable() else f"`{char}`"
            message = f"unexpected character {name}"
        return DiffcliError("syntax", message, (pos, pos + 1), source=source, help=help)

    if not isinstance(error, UnexpectedToken):  # UnexpectedEOF: LALR reports $END as a token instead
        end = len(text)
        return DiffcliError("syntax", "unexpected end of file", (end, end + 1), source=source)
    token = error.token
    kind = token.type
    expected = set(error.expected)
    at_end = kind in ("$END", "_SEP")
    pos = len(text) if kind == "$END" else token.start_pos
    tokens = _tokens_before(source, pos)
    previous = tokens[-1] if tokens else None
    if kind == "_SEP" and ";" not in token and previous is not None:
        pos = previous.end_pos  # point just past the last token of the line
    elif kind == "$END" and previous is not None:
        pos = previous.end_pos
    span = (pos, pos + 1)

    def fail(message, help=None, at=span):
        return DiffcliError("syntax", message, at, source=source, help=help)

    open_parens = _open_parens(tokens)
    ends_operand = previous is not None and previous.type in ("NUMBER", "NAME", "RPAR")
    at_statement_start = previous is None or previous.type == "_SEP"
    if kind == "RPAR" and not open_parens:
        return fail("unexpected `)`", "remove it, or add the `(` it closes")
    if open_parens and (at_end or kind == "EQUALS"):
        lpar = open_parens[-1]
        return fail(
            "this `(` is never closed",
            "add the `)` that closes it",
            at=(lpar.start_pos, lpar.end_pos),
        )
    if at_statement_start:
        return fail(
            f"expected a name to assign, found {_describe(token)}",
            "a statement is `name = expression`",
        )
    if "EQUALS" in expected:
        return fail(
            f"expected `=` after `{previous}`, found {_describe(token)}",
            f"a statement assigns a name: `{previous} = expression`",
        )
    if kind == "NUMBER" and ends_operand:
        return fail(
            f"unexpected {_describe(token)}: a number cannot follow `{previous}` directly",
            f"write `*` to multiply: `{previous}*{token}`",
        )
    if kind == "EQUALS":
        return fail(
            "unexpected `=`: a statement assigns one name",
            "end the previous statement with a new line or `;`",
        )
    if expected & _OPERAND_STARTS and not ends_operand:
        if previous.type == "LPAR" and kind == "RPAR":
            return fail("empty parentheses", "put an expression inside, or remove them")
        return fail(
            f"expected an expression after {_describe(previous)}, found {_describe(token)}",
            "an expression is a number, a name, a call like sin(x), or one in parentheses",
        )
    if kind == "LPAR":
        return fail(f"unexpected `(` after {_describe(previous)}", "write `*` to multiply")
    wanted = sorted(_SYMBOLS.get(name, name) for name in expected if name in _SYMBOLS)
    help = f"expected {', '.join(wanted)}" if wanted else None
    return fail(f"unexpected {_describe(token)}", help)
