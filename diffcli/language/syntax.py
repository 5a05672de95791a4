"""The abstract syntax tree of an .expr program.

Every node carries its source span as character offsets (`start`, `end`) into the program's text.
Nodes are plain slotted objects: a 100,000-statement file makes about a million of them.
"""

from __future__ import annotations

from typing import NamedTuple


class Expr:
    __slots__ = ("start", "end")

    def children(self) -> tuple[Expr, ...]:
        return ()


class Number(Expr):
    __slots__ = ("value",)

    def __init__(self, value: float, start: int, end: int):
        self.value = value
        self.start = start
        self.end = end


class Name(Expr):
    __slots__ = ("id",)

    def __init__(self, id: str, start: int, end: int):
        self.id = id
        self.start = start
        self.end = end


class Unary(Expr):
    """`-x` or `+x`; `op` is "neg" or "pos"."""

    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Expr, start: int):
        self.op = op
        self.operand = operand
        self.start = start
        self.end = operand.end

    def children(self):
        return (self.operand,)


class Binary(Expr):
    """`left OP right`; `op` is "add", "sub", "mul", "div" or "pow".

    `op_start` is the operator's offset (for an implicit product, the right operand's start) and
    `implicit` tells `3a` from `3*a`.
    """

    __slots__ = ("op", "left", "right", "op_start", "implicit")

    def __init__(self, op: str, left: Expr, right: Expr, op_start: int, implicit: bool = False):
        self.op = op
        self.left = left
        self.right = right
        self.op_start = op_start
        self.implicit = implicit
        self.start = left.start
        self.end = right.end

    def children(self):
        return (self.left, self.right)


class Call(Expr):
    """`func(args...)`; `name_end` ends the function's name.

    `keywords` are the arguments written `name=literal` (never graph nodes), and `sizes` a
    constructor's integer sizes (`zeros(2, 3)`: its positional arguments, which are then no `args`).
    """

    __slots__ = ("func", "args", "name_end", "keywords", "sizes")

    def __init__(self, func: str, args: list[Expr], start: int, name_end: int, end: int,
                 keywords: tuple = (), sizes: tuple = ()):
        self.func = func
        self.args = args
        self.start = start
        self.name_end = name_end
        self.end = end
        self.keywords = keywords
        self.sizes = sizes

    def children(self):
        return tuple(self.args)


class Keyword:
    """`name=value` inside a call's parentheses: `value` a signed number literal, `text` as written
    (a seed is read exactly from it); (`start`, `name_end`) the keyword's span, `end` the value's end."""

    __slots__ = ("name", "value", "text", "start", "name_end", "end")

    def __init__(self, name: str, value: float, text: str, start: int, name_end: int, end: int):
        self.name, self.value, self.text = name, value, text
        self.start, self.name_end, self.end = start, name_end, end


class Array(Expr):
    """`[e1, e2, ...]`. `constant`: every element is a signed number literal or such an array, whose
    nodes are then no graph nodes (the literal is one constant). A literal of numbers scanned as one
    token has its `values` (floats: a list, or for a matrix a list of rows of one length) and no
    element nodes."""

    __slots__ = ("elements", "constant", "values")

    def __init__(self, elements: list[Expr], start: int, end: int, constant: bool, values: list | None = None):
        self.elements = elements
        self.start = start
        self.end = end
        self.constant = constant
        self.values = values

    def children(self):
        return () if self.constant else tuple(self.elements)

    def values_shape(self) -> tuple:
        """The shape of `values` (which is not None)."""
        values = self.values
        if values.__class__ is not list:
            return values.shape
        return (len(values), len(values[0])) if values and values[0].__class__ is list else (len(values),)

    def numbers(self):
        """A constant literal's numbers as nested lists (no recursion: at most two levels are valid,
        and deeper ones are shape errors found before this is asked)."""
        if self.values is not None:
            return self.values if self.values.__class__ is list else self.values.tolist()
        return [e.numbers() if isinstance(e, Array) else literal_number(e) for e in self.elements]


def literal_number(expr: Expr) -> float:
    """The value of a signed number literal."""
    if isinstance(expr, Unary):
        return -expr.operand.value if expr.op == "neg" else expr.operand.value
    return expr.value


class Index(Expr):
    """`target[items]`: each item an int (an index) or a (low, high) pair of ints or None (a slice).
    `bracket` is the `[`'s offset."""

    __slots__ = ("target", "items", "bracket")

    def __init__(self, target: Expr, items: tuple, bracket: int, end: int):
        self.target = target
        self.items = items
        self.bracket = bracket
        self.start = target.start
        self.end = end

    def children(self):
        return (self.target,)


class Paren(Expr):
    """`( inner )`, kept so that spans, printing and the implicit-product rule see the parentheses."""

    __slots__ = ("inner",)

    def __init__(self, inner: Expr, start: int, end: int):
        self.inner = inner
        self.start = start
        self.end = end

    def children(self):
        return (self.inner,)


class Assignment:
    """`name = expr`; (`start`, `name_end`) is the name's span."""

    __slots__ = ("name", "expr", "start", "name_end")

    def __init__(self, name: str, expr: Expr, start: int, name_end: int):
        self.name = name
        self.expr = expr
        self.start = start
        self.name_end = name_end

    @property
    def end(self) -> int:
        return self.expr.end


def postorder(expr: Expr) -> list[Expr]:
    """An expression's nodes, children before parents, left to right, without recursion: a pre-order
    walk that takes right children first, reversed.

    The walk of `children()`, with each class's children read directly: a method call per node makes
    it 13% slower (chain 100,000: 204 ms against 236), and tests/test_syntax.py checks that the two agree.
    """
    nodes: list[Expr] = []
    stack = [expr]
    pop, push, visit = stack.pop, stack.append, nodes.append
    while stack:
        node = pop()
        visit(node)
        kind = node.__class__
        if kind is Binary:
            push(node.left)
            push(node.right)
        elif kind is Unary:
            push(node.operand)
        elif kind is Paren:
            push(node.inner)
        elif kind is Call:
            stack.extend(node.args)
        elif kind is Index:
            push(node.target)
        elif kind is Array and not node.constant:
            stack.extend(node.elements)
    nodes.reverse()
    return nodes
class UncertainAssignment(Assignment):
    """`name = literal ± amount` or `name = literal ± amount%`: an input with its standard
    uncertainty, absolute or (`relative`) a fraction of the value. `at` is the `±`'s span."""

    __slots__ = ("amount", "relative", "at")

    def __init__(self, name: str, expr: Expr, start: int, name_end: int,
                 amount: float, relative: bool, at: tuple[int, int]):
        super().__init__(name, expr, start, name_end)
        self.amount = amount
        self.relative = relative
        self.at = at


class Parsed(NamedTuple):
    """A program's statements, with what the graph builder needs of them, gathered while parsing
    (so that it does not walk the program's nodes once more)."""

    statements: list[Assignment]
    nodes: list[list[Expr]]  # each statement's expression nodes, children before parents
    uses: list[list[Name]]   # each statement's Name nodes, in the same order
    calls: list[Call]        # every call in the program
    arrays: bool = False     # whether the program writes any array syntax (then graph.py lowers it)


BINARY_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "^", "matmul": "@"}
