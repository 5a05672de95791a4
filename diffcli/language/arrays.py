"""Arrays in the graph: literals, constructors and keyword calls checked; shapes inferred; implicit
broadcasting made explicit.

`graph.build` makes the program's graph with array nodes as they are written (a literal of
expressions is a `stack` node, `x[1:3]` an `index` node, `sum(x, axis=0)` a `sum` node with its
axis in `graph.attrs`, a constructor or a literal of numbers a constant leaf holding its array).
Once the inputs are bound, their shapes are known, and `lower` makes the graph the array engine
runs: every node with its shape, every shape error found and placed before any number is computed,
and every elementwise operation whose arguments differ in shape given `broadcast` nodes, so that
each elementwise node's arguments have its own shape (its partials are then elementwise too). A
program with no array syntax and only scalar inputs is never lowered: it keeps the float engine.
"""

from __future__ import annotations

import itertools
import math

from ..errors import DiffcliError, Source
from ..formatting import operator_span
from ..ops import (ARRAY_FUNCTIONS, ARRAY_OPS, CONSTRUCTORS, KEYWORDS, MAX_ELEMENTS, REDUCTIONS, ArrayOp,
                   ShapeProblem, broadcast_shape, construct, described, shape_text)
from .syntax import Array, Binary, Call, Expr, Index, Name, Paren, Unary, literal_number

SIZE_HELP = f"an array holds at most {MAX_ELEMENTS:,} elements"


def is_array_call(call: Call) -> bool:
    return call.func in ARRAY_FUNCTIONS or call.func in CONSTRUCTORS or bool(call.keywords) \
        or call.func in ("max", "min") and len(call.args) == 1


def _fail(kind, message, span, source, help=None, labels=None):
    return DiffcliError(kind, message, span, source=source, help=help, labels=labels)


# ---------------------------------------------------------------- literals and constructors

def constant(expr: Array | Call, source: Source):
    """The array of a literal of numbers or of a constructor call."""
    import numpy as np

    if isinstance(expr, Call):
        with np.errstate(over="ignore", invalid="ignore"):
            array = construct(expr.func, expr.sizes, _keyword_values(expr, source))
        finite = np.isfinite(array) if expr.func in ("uniform", "normal") else True
        if finite is not True and not finite.all():  # (low, high, mean and std near the largest double)
            index = np.unravel_index(int(np.argmin(finite)), array.shape)  # the first, row-major
            raise _fail("domain", f"`{expr.func}` overflows at element [{','.join(map(str, index))}]: "
                        "too large for a double", (expr.start, expr.name_end), source,
                        help="doubles reach about 1.8e308; give smaller keyword values")
        return array
    if expr.values is not None:  # numbers scanned as one token
        shape = expr.values_shape()
        _bounded(shape, (expr.start, expr.end), source)
        if expr.values.__class__ is not list:  # read into one array by the parser
            return expr.values
        numbers = itertools.chain.from_iterable(expr.values) if len(shape) == 2 else expr.values
        return np.fromiter(numbers, float, math.prod(shape)).reshape(shape)  # (np.array's nested lists cost more)
    shapes = [() if not isinstance(e, Array) else _constant_shape(e, source) for e in expr.elements]
    _literal_shape(expr, shapes, source)
    return np.array(expr.numbers(), dtype=float)


def _constant_shape(expr: Array, source: Source) -> tuple:
    if expr.values is not None:
        return expr.values_shape()
    shapes = [() if not isinstance(e, Array) else e.values_shape() if e.values is not None else
              (len(e.elements),) if not any(isinstance(x, Array) for x in e.elements) else (len(e.elements), 1, 1)
              for e in expr.elements]
    return _literal_shape(expr, shapes, source)


def _literal_shape(expr: Array, shapes: list[tuple], source: Source) -> tuple:
    """A literal's shape from its elements' (all scalars: a vector; all vectors of one length: a
    matrix), or the shape error placed at the first element whose shape differs from the first's."""
    if not expr.elements:
        raise _fail("shape", "an empty array `[]`", (expr.start, expr.end), source,
                    help="an array has at least one element")
    first = shapes[0]
    if len(first) > 1:
        element = expr.elements[0]
        raise _fail("shape", "an array literal's elements are numbers or vectors, not matrices",
                    (element.start, element.end), source, help="a value is a scalar, a vector or a matrix")
    for element, shape in zip(expr.elements, shapes):
        if shape != first:
            what = lambda s: "a scalar" if not s else f"a vector of {s[0]}" if len(s) == 1 else "a matrix"
            raise _fail("shape", f"this element is {what(shape)}, but the first is {what(first)}",
                        (element.start, element.end), source,
                        help="the rows of a matrix are vectors of one length; a vector's elements are scalars")
    shape = (len(shapes),) + first
    _bounded(shape, (expr.start, expr.end), source)
    return shape


def _bounded(shape: tuple, span, source: Source) -> None:
    if math.prod(shape) > MAX_ELEMENTS:
        raise _fail("shape", f"an array of {shape_text(shape)} = {math.prod(shape):,} elements is too large",
                    span, source, help=SIZE_HELP)


def _keyword_values(call: Call, source: Source) -> dict:
    values = {}
    for keyword in call.keywords:
        if keyword.name == "seed":
            values["seed"] = int(keyword.text)
        elif keyword.name == "axis":
            values["axis"] = int(keyword.text)
        else:
            values[keyword.name] = keyword.value
    return values


def check_call(call: Call, source: Source, did_you_mean) -> None:
    """A call to an array function or with keywords: its arguments, keywords and sizes."""
    span = (call.start, call.name_end)
    name = call.func
    allowed = KEYWORDS.get(name, ())
    for keyword in call.keywords:
        at = (keyword.start, keyword.name_end)
        if keyword.name not in allowed:
            hint = did_you_mean(keyword.name, allowed)
            takes = f"`{name}` takes " + ", ".join(f"`{k}=`" for k in allowed) if allowed else \
                f"`{name}` takes no keywords"
            raise _fail("name", f"`{name}` has no keyword `{keyword.name}`", at, source,
                        help=f"{hint} {takes}" if hint else takes)
        value_at = (keyword.end - len(keyword.text), keyword.end)
        if keyword.name == "seed" and not (keyword.text.isdigit() and int(keyword.text) < 2**64):
            raise _fail("name", f"`seed` is an integer from 0 to 2^64 - 1 in decimal digits, not `{keyword.text}`",
                        value_at, source, help="write it like `seed=1`")
        if keyword.name == "axis":
            if not keyword.text.isdigit():
                raise _fail("name", f"`axis` is the integer 0 or 1, not `{keyword.text}`", value_at, source,
                            help="axis=0 reduces down the columns, axis=1 along the rows")
            if int(keyword.text) > 1:
                raise _fail("shape", f"axis {keyword.text} is out of range: a value has at most 2 axes",
                            value_at, source, help="axis=0 reduces down the columns, axis=1 along the rows")
    n = len(call.args)
    if name in CONSTRUCTORS:
        most = 1 if name == "eye" else 2
        if not 1 <= len(call.sizes) <= most:
            usage = f"`{name}(n)`" if most == 1 else f"`{name}(n)` or `{name}(m, n)`"
            raise _fail("name", f"`{name}` takes {'one size' if most == 1 else 'one or two sizes'}, "
                        f"but {len(call.sizes)} {'was' if len(call.sizes) == 1 else 'were'} given", span, source,
                        help=f"write it as {usage}")
        if any(size < 1 for size in call.sizes):
            raise _fail("shape", f"`{name}` needs sizes of at least 1", span, source,
                        help="a vector or a matrix has at least one element on each axis")
        shape = call.sizes * 2 if name == "eye" else call.sizes
        _bounded(shape, span, source)
        for required in ("seed",) if "seed" in allowed else ():
            if required not in {k.name for k in call.keywords}:
                raise _fail("name", f"`{name}` needs `{required}=`", span, source,
                            help=f"give it a seed, like `{name}({', '.join(map(str, call.sizes))}, seed=1)`: "
                            "the same seed gives the same numbers everywhere")
        return
    op = ARRAY_FUNCTIONS.get(name) or (REDUCTIONS.get(name) if n == 1 else None)
    if op is None:  # a scalar function given keywords
        return _scalar_with_keywords(call, source)
    low, high = op.positional
    if not low <= n <= high:
        count = "1 argument" if low == high == 1 else f"{low} arguments"
        usage = f"{name}(x)" if low == 1 else f"{name}(u, v)"
        raise _fail("name", f"`{name}` takes {count}, but {n} {'was' if n == 1 else 'were'} given", span, source,
                    help=f"write it as `{usage}`")


def _scalar_with_keywords(call: Call, source: Source) -> None:
    keyword = call.keywords[0]
    raise _fail("name", f"`{call.func}` has no keyword `{keyword.name}`", (keyword.start, keyword.name_end),
                source, help=f"`{call.func}` takes no keywords")


def call(node: Call, source: Source):
    """(op, constant value, attrs) for a call the scalar table does not make: an array function's
    node (value None), or a constructor's constant leaf (op None)."""
    if node.func in CONSTRUCTORS:
        return None, constant(node, source), None
    op = ARRAY_FUNCTIONS.get(node.func) or REDUCTIONS[node.func]
    attrs = _keyword_values(node, source)
    return op, None, attrs or None


# ---------------------------------------------------------------- lowering: shapes, broadcasts

def lower(graph, shapes: dict[str, tuple]):
    """The graph the array engine runs, for inputs of these shapes (see the module's docstring).

    Node i of the result has shape[i]; names, inputs and definitions are the program's. Raises the
    first shape error, placed.
    """
    source = graph.source
    low = type(graph)(source)
    for field in ("inputs", "definitions", "output", "first_use", "notes", "uncertainties"):
        setattr(low, field, getattr(graph, field))
    low.arrays = True
    low.shape = shape = []
    new = [0] * len(graph)  # the program's node -> the lowered graph's
    origin = low.origin = []  # the lowered node -> the program's (None for a broadcast)
    # (Graph.add, inlined, as graph._compile has it: this runs once per node)
    ops, arg_list, values, exprs, low_attrs = low.op, low.args, low.value0, low.expr, low.attrs
    broadcast = ARRAY_OPS["broadcast"]

    def add(op, args, expr, value, node_shape, attrs=None, base=None):
        if attrs:
            low_attrs[len(ops)] = attrs
        ops.append(op)
        arg_list.append(args)
        values.append(value)
        exprs.append(expr)
        shape.append(node_shape)
        origin.append(base)
        return len(ops) - 1

    input_shapes = {graph.names[name]: shapes[name] for name in graph.inputs}  # the inputs' nodes
    add_op, add_args, add_value, add_expr, add_shape, add_origin = (
        ops.append, arg_list.append, values.append, exprs.append, shape.append, origin.append)
    graph_exprs, graph_attrs, graph_values = graph.expr, graph.attrs, graph.value0
    for i, (op, args, expr) in enumerate(zip(graph.op, graph.args, graph_exprs)):
        new[i] = len(ops)
        if op is None:  # (add, inlined: a leaf)
            value = graph_values[i]
            add_op(None)
            add_args(())
            add_value(value)
            add_expr(expr)
            add_shape(input_shapes[i] if i in input_shapes else getattr(value, "shape", ()))
            add_origin(i)
            continue
        arg_nodes = [new[j] for j in args]
        arg_shapes = [shape[j] for j in arg_nodes]
        attrs = graph_attrs.get(i)
        if op.__class__ is ArrayOp:
            if op.key == "stack":
                node_shape = _literal_shape(expr, arg_shapes, source)
            else:
                if op.key in ("amax", "amin") and not arg_shapes[0]:
                    raise _fail("name", f"`{op.name}` takes 2 or more arguments, but 1 was given",
                                (expr.start, expr.name_end), source, help=f"write it as `{op.name}(a, b, …)`")
                try:
                    node_shape = op.shape(arg_shapes, attrs, _Texts(source, expr))
                except ShapeProblem as problem:
                    raise _placed(problem, op, expr, graph, args, source) from None
        elif len(arg_shapes) == 1:  # elementwise, of one argument: its shape
            node_shape = arg_shapes[0]
        else:  # elementwise: broadcast the arguments to one shape
            node_shape = ()
            for k, s in enumerate(arg_shapes):
                if s == node_shape or not s:
                    continue
                if not node_shape:  # (a scalar's broadcast to s is s)
                    node_shape = s
                    continue
                joined = broadcast_shape(node_shape, s)
                if joined is None:
                    raise _broadcast_error(op, expr, graph, args, arg_shapes, k, node_shape, source)
                node_shape = joined
            if node_shape and arg_shapes.count(node_shape) != len(arg_shapes):
                arg_nodes = [j if shape[j] == node_shape else
                             add(broadcast, (j,), graph_exprs[args[k]], None, node_shape, {"shape": node_shape})
                             for k, j in enumerate(arg_nodes)]
                new[i] = len(ops)
        if node_shape and math.prod(node_shape) > MAX_ELEMENTS:
            _bounded(node_shape, _place(op, expr), source)
        if attrs:  # (add, inlined)
            low_attrs[len(ops)] = attrs
        add_op(op)
        add_args(tuple(arg_nodes))
        add_value(None)
        add_expr(expr)
        add_shape(node_shape)
        add_origin(i)
    low._partials = None
    low.names = {name: new[node] for name, node in graph.names.items()}
    return low


def _place(op, expr: Expr):
    """Where an operation's error points: the operator, the function's name, the bracket."""
    return None if expr is None else operator_span(None, expr) if not isinstance(expr, Binary) else \
        (expr.op_start, expr.op_start + 1)


def _operands(expr: Expr | None) -> list:
    """The AST of each argument of an operation, as written (for the labels' places)."""
    if isinstance(expr, Binary):
        return [expr.left, expr.right]
    if isinstance(expr, Call):
        return list(expr.args)
    if isinstance(expr, Unary):
        return [expr.operand]
    if isinstance(expr, Index):
        return [expr.target]
    if isinstance(expr, Array):
        return list(expr.elements)
    return []


def _texts(source: Source, expr) -> list[str]:
    """How a message names each operand: its source text, shortened."""
    texts = []
    for operand in _operands(expr):
        text = source.snippet(operand.start, operand.end)
        texts.append(text if len(text) <= 24 else text[:23] + "…")
    return texts


class _Texts:
    """_texts(source, expr), made when a shape rule first reads it (most never do: only an error
    names its operands)."""

    __slots__ = ("source", "expr", "texts")

    def __init__(self, source: Source, expr):
        self.source, self.expr, self.texts = source, expr, None

    def _made(self) -> list[str]:
        if self.texts is None:
            self.texts = _texts(self.source, self.expr)
        return self.texts

    def __getitem__(self, i):
        return self._made()[i]

    def __iter__(self):
        return iter(self._made())

    def __len__(self) -> int:
        return len(self._made())


def _placed(problem: ShapeProblem, op, expr, graph, args, source) -> DiffcliError:
    operands = _operands(expr)
    labels = [((operands[k].start, operands[k].end), text) for k, text in sorted(problem.labels.items())
              if k < len(operands)]
    help = problem.help
    if isinstance(expr, Index) and isinstance(expr.target, Array) and expr.bracket > expr.target.end \
            and source.text[expr.target.end:expr.bracket].strip() == "":  # `[[1, 2] [3, 4]]`: a `,` was meant?
        help = f"{help + '; ' if help else ''}to write the next row of a literal, put a `,` before its `[`"
    return _fail("shape", problem.message, _place(op, expr), source, help=help, labels=labels)


def _broadcast_error(op, expr, graph, args, arg_shapes, k, joined, source) -> DiffcliError:
    symbol = op.name
    texts = _texts(source, expr)
    operands = _operands(expr)
    if len(args) == 2:
        left, right = texts
        message = (f"`{symbol}` cannot combine {left} ({shape_text(arg_shapes[0])}) and {right} "
                   f"({shape_text(arg_shapes[1])}): their shapes do not broadcast")
    else:
        message = (f"`{symbol}` cannot combine {texts[k]} ({shape_text(arg_shapes[k])}) with the shape "
                   f"{shape_text(joined)} of the arguments before it: they do not broadcast")
    labels = [((operands[n].start, operands[n].end), described(texts[n], arg_shapes[n]))
              for n in range(min(k + 1, len(operands)))]
    return _fail("shape", message, _place(op, expr), source,
                 help="aligned on the right, each axis's sizes must be equal or one of them 1 "
                 "(a vector of n counts as 1×n); a scalar combines with anything", labels=labels)


def first_name(graph, node: int) -> str | None:
    """The variable a lowered node is, if any."""
    for name, n in graph.names.items():
        if n == node:
            return name
    return None


def element_label(index: tuple) -> str:
    """`[3]`, `[0,1]`: an element's place, row-major, no spaces (SPEC)."""
    return "[" + ",".join(map(str, index)) + "]"


def operand_label(graph, node: int) -> str:
    """How a domain error names an array: its variable, else its source text in parentheses."""
    while graph.op[node] is not None and graph.op[node].key in ("broadcast", "id"):
        node = graph.args[node][0]
    name = first_name(graph, node)
    if name is not None:
        return name
    expr = graph.expr[node]
    while isinstance(expr, Paren):
        expr = expr.inner
    if isinstance(expr, Name):
        return expr.id
    return f"({graph.source.snippet(expr.start, expr.end)})" if expr is not None else "the array"


def shape_of(value) -> tuple:
    return getattr(value, "shape", ())


__all__ = ["lower", "constant", "check_call", "call", "is_array_call", "element_label", "operand_label",
           "shape_of", "literal_number", "Array", "Index", "Unary"]
