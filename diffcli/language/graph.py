"""AST -> computation graph: the program checks, then a flat, topologically ordered node list.

A node is an index. Leaves (inputs, constants) have no op; every other node has an `Op` from the
table and the indices of its arguments, all smaller than its own. Each named variable is one node.
Nothing here recurses on the program's size: expressions are walked with an explicit stack.
"""

from __future__ import annotations

import re

from ..errors import DiffcliError, Source
from ..formatting import number_text
from ..ops import (ARRAY_FUNCTIONS, ARRAY_NAMES, ARRAY_OPS, CONSTANTS, EXTENSIONS, FUNCTIONS, OPERATORS, RESERVED,
                   Op, arity_text, partials_for)
from . import arrays
from .syntax import Array, Assignment, Binary, Call, Expr, Index, Name, Number, Paren, Parsed, Unary, postorder

ASSIGNABLE = EXTENSIONS | ARRAY_NAMES  # function names a file may take for its variables


class Graph:
    """The program as nodes in topological order, with its names.

    op[i] is None for a leaf; value0[i] is a leaf's value (None for an input that has no default).
    expr[i] is the AST node behind node i (None for an input), for diagnostics and drawings.
    """

    def __init__(self, source: Source):
        self.source = source
        self.op: list[Op | None] = []
        self.args: list[tuple[int, ...]] = []
        self._partials: list[tuple] | None = None
        self.value0: list[float | None] = []
        self.expr: list[Expr | None] = []
        self.names: dict[str, int] = {}                 # every named variable -> its node, file order
        self.inputs: dict[str, float | None] = {}       # every input -> its default, file order
        self.definitions: dict[str, Assignment] = {}    # every assigned name -> its statement
        self.output = ""                                # the default output: the last statement's name
        self.first_use: dict[str, Name] = {}            # where each name is first used
        self.notes: list[DiffcliError] = []             # things worth saying that are not errors
        # inputs written `x = 2.1 ± 0.1` (0.1, False) or `x = 2.1 ± 5%` (0.05, True), file order; an
        # array input's amount is one float for every element or a NumPy array of its shape
        self.uncertainties: dict[str, tuple[float, bool]] = {}
        # arrays (see language/arrays.py): whether the file writes array syntax; a node's static data
        # (axis, index, keywords) by node; and, once lowered for its inputs' shapes, every node's shape
        self.arrays = False
        self.attrs: dict[int, dict] = {}
        self.shape: list[tuple] | None = None

    def __len__(self) -> int:
        return len(self.op)

    def add(self, op, args, expr, value=None) -> int:
        self.op.append(op)
        self.args.append(args)
        self.value0.append(value)
        self.expr.append(expr)
        self._partials = None
        return len(self.op) - 1

    @property
    def partials(self) -> list[tuple]:
        """partials[i]: node i's partial-derivative functions, one per argument (see ops.py)."""
        if self._partials is None:
            self._partials = [
                () if op is None else op.partials if op.arity else partials_for(op, len(args))
                for op, args in zip(self.op, self.args)
            ]
        return self._partials

    def is_input(self, name: str) -> bool:
        return name in self.inputs

    def feeds(self, out: int) -> list[bool]:
        """Whether each node is one that node `out` depends on."""
        feeds = [False] * len(self.op)
        feeds[out] = True
        for i in range(out, -1, -1):
            if feeds[i]:
                for j in self.args[i]:
                    feeds[j] = True
        return feeds

    def name_of(self) -> dict[int, str]:
        """Node index -> the variable it is."""
        return {node: name for name, node in self.names.items()}


def needs_gradient(graph: Graph, operations: list[int] | None = None) -> list[bool]:
    """Whether each node's adjoint is wanted: named variables and what depends on them.

    Unnamed constant subexpressions (the `2` in `x^2`) need none, so a partial that is undefined
    there (d(x^y)/dy for x < 0) is never asked for. `operations`: the nodes that have an op, in
    order, if the caller has them (only those are looked at: a leaf has no arguments).
    """
    needs = [False] * len(graph)
    for node in graph.names.values():
        needs[node] = True
    if operations is None:
        for i, a in enumerate(graph.args):
            if a and not needs[i]:
                for j in a:
                    if needs[j]:
                        needs[i] = True
                        break
        return needs
    args = graph.args
    for i in operations:
        if not needs[i]:
            for j in args[i]:
                if needs[j]:
                    needs[i] = True
                    break
    return needs


def _literal_value(expr: Expr, source: Source):
    """An input's default: a number, or the array of a literal or a constructor call."""
    if isinstance(expr, Unary):
        value = expr.operand.value
        return -value if expr.op == "neg" else value
    if isinstance(expr, (Array, Call)):
        return arrays.constant(expr, source)
    return expr.value


def _is_array_input(expr: Expr) -> bool:
    kind = expr.__class__
    return kind is Array and expr.constant or kind is Call and bool(expr.sizes)


def did_you_mean(word: str, candidates) -> str | None:
    import difflib  # only for an error

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def build(statements: list[Assignment], source: Source, parsed: Parsed | None = None) -> Graph:
    """Check a parsed program and compile it into a graph.

    `parsed`, if given, is what parser.parse_with_nodes gathered about these statements (else it
    is found here).
    """
    if not statements:
        raise DiffcliError(
            "syntax", "the program has no statements", source=source,
            help="write one assignment per line, like `y = 2x + 1`",
        )
    graph = Graph(source)

    def fail(kind, message, span, help=None, notes=None):
        return DiffcliError(kind, message, span, source=source, help=help, notes=notes)

    if parsed is None:
        parsed = _gather(statements)
    postorders = parsed.nodes
    # names -> their place in file order of first appearance; assignments
    order: dict[str, int] = {}
    first_use: dict[str, Name] = {}
    definitions = graph.definitions
    used_before_assigned: list[str] = []  # (or never assigned: free inputs)
    literals: list[str] = []  # names assigned a plain number with an optional sign: inputs
    for stmt, uses in zip(statements, parsed.uses):
        name = stmt.name
        if name in RESERVED:
            what = "a function" if name in FUNCTIONS else "a constant"
            raise fail("name", f"`{name}` is {what} and cannot be assigned",
                       (stmt.start, stmt.name_end), help="choose another name")
        if name in definitions:
            previous = definitions[name]
            line = source.line_col(previous.start)[0]
            raise fail(
                "name", f"`{name}` is assigned twice", (stmt.start, stmt.name_end),
                help=f"each name is assigned once; rename one of them (first assigned on line {line})",
                notes=[(f"`{name}` is first assigned here", (previous.start, previous.name_end))],
            )
        if name not in order:
            order[name] = len(order)
        for node in uses:
            used = node.id
            if used not in first_use:
                if used in CONSTANTS:
                    continue
                first_use[used] = node
                if used not in order:
                    order[used] = len(order)
            if used not in definitions:
                used_before_assigned.append(used)
        definitions[name] = stmt
        kind = stmt.expr.__class__
        if kind is Number or kind is Unary and stmt.expr.operand.__class__ is Number or \
                (kind is Array or kind is Call) and _is_array_input(stmt.expr):
            literals.append(name)
            if stmt.__class__ is not Assignment:
                amount = stmt.amount
                if amount.__class__ is list:  # `± [0.1, 0.2]`: one per element
                    import numpy as np

                    amount = np.array(amount, dtype=float)
                graph.uncertainties[name] = (amount, stmt.relative)

    functions = FUNCTIONS
    wrong = [call for call in parsed.calls  # calls that do not name a function with as many arguments as it takes
             if call.keywords or (op := functions.get(call.func)) is None and not _right_array_call(call)
             or op is not None and (len(call.args) != op.arity if op.arity else len(call.args) < 2)]
    wrong.sort(key=lambda call: call.start)  # outer calls first: `foo(bar(x))` names foo
    for call in wrong:
        _check_call(call, graph, order, fail)
    if not first_use.keys().isdisjoint(FUNCTIONS):
        for name, node in first_use.items():
            if name in FUNCTIONS and name not in EXTENSIONS:
                raise fail("name", f"`{name}` is a function, not a value", (node.start, node.end),
                           help=f"call it with an argument: `{name}(x)`")
    for call in parsed.calls:  # an extension function's name taken by the file for a variable
        if call.func in ASSIGNABLE and (call.func in definitions or call.func in first_use):
            place = definitions[call.func] if call.func in definitions else first_use[call.func]
            raise fail("name", f"`{call.func}` is a variable in this file, so it cannot be called",
                       (call.start, call.name_end), help=f"rename the variable `{call.func}` to use the function",
                       notes=[(f"`{call.func}` is a variable here",
                               (place.start, getattr(place, "name_end", place.end)))])

    # inputs: literals and free names, in file order
    free = {name for name in used_before_assigned if name not in definitions}
    inputs = graph.inputs
    for name in sorted(free.union(literals), key=order.__getitem__):
        inputs[name] = _literal_value(definitions[name].expr, source) if name in definitions else None

    if any(name in definitions for name in used_before_assigned):
        uses = [[node.id for node in names if node.id not in CONSTANTS] for names in parsed.uses]
        statement_order = _topological_order(statements, uses, graph, fail)
    else:
        statement_order = range(len(statements))  # already in dependency order, as most files are

    # compile: inputs first (their nodes are leaves), then each computed statement in dependency order
    for name, value in inputs.items():
        graph.names[name] = graph.add(None, (), None, value)
    if isinstance(statement_order, range):
        _compile(statements, postorders, graph)
    else:
        _compile([statements[i] for i in statement_order], [postorders[i] for i in statement_order], graph)
    if list(graph.names) != list(order):
        graph.names = {name: graph.names[name] for name in order}
    graph.output = statements[-1].name
    graph.first_use = first_use
    graph.arrays = parsed.arrays
    graph.notes = _exponent_notes(statements, order, source)
    return graph


def _gather(statements: list[Assignment]) -> Parsed:
    """What the parser gathers for build(), found by walking the statements."""
    nodes = [postorder(stmt.expr) for stmt in statements]
    uses = [[node for node in stmt_nodes if node.__class__ is Name] for stmt_nodes in nodes]
    calls = [node for stmt_nodes in nodes for node in stmt_nodes if node.__class__ is Call]
    array_syntax = any(node.__class__ in (Array, Index) or node.__class__ is Call and arrays.is_array_call(node)
                       or node.__class__ is Binary and node.op == "matmul"
                       for stmt_nodes in nodes for node in stmt_nodes)
    return Parsed(statements, nodes, uses, calls, array_syntax)


def _exponent_notes(statements, names, source: Source) -> list[DiffcliError]:
    """`2e-3` is a number even where the file has a variable `e`: say so, since 2·e - 3 was maybe meant."""
    letters = [letter for letter in "eE" if letter in names]
    notes = []
    for stmt in statements if letters else ():
        for node in postorder(stmt.expr):
            if isinstance(node, Number):
                numbers = [(node.start, node.end, node.value)]
            elif isinstance(node, Array) and node.constant:  # a literal of numbers: its numbers are no nodes
                numbers = [(node.start + m.start(), node.start + m.end(), float(m.group()))
                           for m in re.finditer(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-][0-9]+",
                                                source.text[node.start : node.end])]
            else:
                continue
            for start, end, value in numbers:
                text = source.text[start:end]
                for letter in letters:
                    mantissa, _, exponent = text.partition(letter)
                    if exponent[:1] in ("+", "-"):
                        product = f"{mantissa}{letter} {exponent[0]} {exponent[1:]}"
                        notes.append(DiffcliError(
                            "syntax", f"`{text}` is the number {number_text(value)}, not {product}",
                            (start, end), source=source,
                            help=f"to use the variable `{letter}`, write `{product}`",
                        ))
    return notes


def _is_name(expr: Expr) -> bool:
    while isinstance(expr, Paren):
        expr = expr.inner
    return isinstance(expr, Name)


def _right_array_call(call: Call) -> bool:
    """Whether a call without keywords names an array function and gives it as many arguments as it
    takes (then nothing more is checked)."""
    op = ARRAY_FUNCTIONS.get(call.func)
    return op is not None and op.positional[0] <= len(call.args) <= op.positional[1]


def _check_call(call: Call, graph: Graph, order, fail) -> None:
    span = (call.start, call.name_end)
    op = FUNCTIONS.get(call.func)
    if op is None and call.func not in ARRAY_NAMES:  # (with keywords too: `summ(x, axis=0)`)
        if call.func in CONSTANTS or call.func in order:
            what = "a constant" if call.func in CONSTANTS else "a variable"
            raise fail("name", f"`{call.func}` is {what}, not a function", span,
                       help=f"to multiply, write `{call.func}*(…)`")
        callable_names = sorted(FUNCTIONS.keys() | ARRAY_NAMES)  # (the array ones too: `summ(x)`)
        suggestion = did_you_mean(call.func, callable_names)
        multiply = f"to multiply, write `{call.func}*(…)`"
        raise fail("name", f"unknown function `{call.func}`", span,
                   help=f"{suggestion} Or, {multiply}" if suggestion else f"{multiply}; "
                   "the functions are " + ", ".join(callable_names))
    if call.func in ARRAY_NAMES or call.keywords or call.func in ("max", "min") and len(call.args) == 1:
        return arrays.check_call(call, graph.source, did_you_mean)
    n = len(call.args)
    if (op.arity and n != op.arity) or (not op.arity and n < 2):
        raise fail("name", f"`{call.func}` takes {arity_text(op)}, but {n} {'was' if n == 1 else 'were'} given",
                   span, help=f"write it as `{_usage(call.func, op)}`")


def _usage(name: str, op: Op) -> str:
    if op.arity == 0:
        return f"{name}(a, b, …)"
    return f"{name}({', '.join('xyz'[: op.arity])})"


def _topological_order(statements, uses, graph: Graph, fail) -> list[int]:
    """Statements' indices ordered so that each comes after those it uses (Kahn's algorithm, stable)."""
    index = {stmt.name: i for i, stmt in enumerate(statements)}
    deps = [sorted({index[n] for n in used if n in index}) for used in uses]
    users: list[list[int]] = [[] for _ in statements]
    missing = [len(d) for d in deps]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    ready = [i for i, m in enumerate(missing) if m == 0]
    ready.reverse()
    done: list[int] = []
    while ready:
        i = ready.pop()
        done.append(i)
        for u in users[i]:
            missing[u] -= 1
            if missing[u] == 0:
                ready.append(u)
    if len(done) < len(statements):
        cycle = _find_cycle([i for i, m in enumerate(missing) if m], deps)
        names = [statements[i].name for i in cycle]
        first = statements[cycle[0]]
        raise fail(
            "cycle", "these statements depend on themselves: " + " -> ".join(names + names[:1]),
            (first.start, first.name_end),
            help="a name cannot be used, directly or through others, in its own definition",
        )
    return done


def _find_cycle(stuck: list[int], deps: list[list[int]]) -> list[int]:
    """A cycle among statements that could not be ordered: follow stuck dependencies until one repeats."""
    stuck_set = set(stuck)
    node = stuck[0]
    seen: dict[int, int] = {}
    path: list[int] = []
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d in stuck_set)
    cycle = path[seen[node]:]
    # start the cycle at its first statement in the file, for a stable message
    k = cycle.index(min(cycle))
    return cycle[k:] + cycle[:k]


def _compile(statements: list[Assignment], postorders: list[list[Expr]], graph: Graph) -> None:
    """Compile computed statements, in this order, given each one's nodes children first.

    (Graph.add, inlined: this runs once per node of the program.)
    """
    names, inputs = graph.names, graph.inputs
    ops, args, value0, exprs = graph.op, graph.args, graph.value0, graph.expr
    add_op, add_args, add_value, add_expr = ops.append, args.append, value0.append, exprs.append
    # `@` among the (scalar) operators, so that compiling a Binary is one look-up
    operators, functions, constants = {**OPERATORS, "matmul": ARRAY_OPS["matmul"]}, FUNCTIONS, CONSTANTS
    results: list[int] = []
    push, pop = results.append, results.pop
    graph._partials = None
    for stmt, nodes in zip(statements, postorders):
        if stmt.name in inputs:
            continue
        for node in nodes:
            kind = node.__class__
            if kind is Name:
                name = node.id
                if name not in constants:
                    push(names[name])
                    continue
                add_op(None)
                add_args(())
                add_value(constants[name])
            elif kind is Binary:
                right = pop()
                add_op(operators[node.op])
                add_args((pop(), right))
                add_value(None)
            elif kind is Number:
                add_op(None)
                add_args(())
                add_value(node.value)
            elif kind is Unary:
                add_op(operators[node.op])
                add_args((pop(),))
                add_value(None)
            elif kind is Call:
                n = len(node.args)
                op = functions.get(node.func)
                if op is None or n == 1 and not op.arity or node.keywords:
                    op, value, attrs = arrays.call(node, graph.source)
                    if attrs:
                        graph.attrs[len(ops)] = attrs
                    if op is None:
                        add_op(None)
                        add_args(())
                        add_value(value)
                        add_expr(node)
                        push(len(ops) - 1)
                        continue
                add_op(op)
                add_args(tuple(results[-n:]) if n else ())
                if n:
                    del results[-n:]
                add_value(None)
            elif kind is Paren:  # a Paren adds no node: its value is its inner expression's
                continue
            elif kind is Array:
                if node.constant or not node.elements:  # (`[]`: its shape error, not a stack of nothing)
                    add_op(None)
                    add_args(())
                    add_value(arrays.constant(node, graph.source))
                else:
                    n = len(node.elements)
                    add_op(ARRAY_OPS["stack"])
                    add_args(tuple(results[-n:]))
                    del results[-n:]
                    add_value(None)
            else:  # an Index
                graph.attrs[len(ops)] = {"items": node.items}
                add_op(ARRAY_OPS["index"])
                add_args((pop(),))
                add_value(None)
            add_expr(node)
            push(len(ops) - 1)
        root = pop()
        if kind is Name or kind is Paren and _is_name(stmt.expr):  # `b = a`: b needs a node of its own
            root = graph.add(OPERATORS["id"], (root,), stmt.expr)
        names[stmt.name] = root
