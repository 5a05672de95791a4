"""The chain rule of an array program, with shapes, as a course teaches backpropagation: what
`diffcli explain` shows for an array program, before any format.

For d(out)/d(wrt) it finds the statements on the paths from wrt to out (derivation.paths), their
shapes and values, and, walking each statement's expression from its result back to the names it
uses, the backward expression of each use: δu = (W2ᵀ δz2) ⊙ relu′(z1), where δv stands for
∂out/∂v and has v's shape. Each operation on the way contributes one rule: an elementwise partial
(this module's table, as the scalar table's partials apply elementwise), or a structural op's
`explain` entry in ops.py (matrix product, reduction, broadcast summed over the stretched axis,
index, stack, …), so that adding an op stays one entry. The numbers (every δ) are the engine's
reverse pass, so they are `grad`'s. The walk is over one statement's nodes with an explicit stack;
the statement's depth and the derivation's length are bounded as the scalar explain bounds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..display import Displayed
from ..errors import DiffcliError
from ..formatting import number_text
from ..ops import ArrayOp, bare, described
from ..program import Program
from .derivation import prepare


MAX_TERM = 400  # terms and factors in one backward expression, as printed


@dataclass
class Step:
    """One operation on a path back through a statement."""

    rule: str         # "elementwise", "matrix product", "reduction", "broadcast, …", "index", …
    op: str           # the operation as the file writes it: "relu", "@", "sum", "^"
    factors: tuple    # the shapes the backward expression multiplies (how they fit)
    result: tuple     # the shape of the cotangent it gives


@dataclass
class Use:
    """One statement's share of a name's δ: `term`, from the statement's δ, through `steps`."""

    user: str
    term: tuple
    steps: list[Step]


@dataclass
class ArrayDerivation(Displayed):
    output: str
    wrt: str | None
    filename: str
    graph: object                     # the lowered graph (terms name its nodes)
    inputs: dict
    shapes: dict[str, tuple]
    values: dict                      # name -> float or array
    gradients: dict                   # name -> d(output)/d(name), of its shape (grad's numbers)
    given: list[str]
    statements: list[str]
    sources: dict[str, str]
    definitions: dict
    uses: dict[str, list[Use]] = field(default_factory=dict)  # name -> its shares, statement order


def derive_arrays(program: Program, values=None, wrt: str | None = None, of: str | None = None,
                  filename: str = "") -> ArrayDerivation:
    run, wrt, statements, uses, on_path, given = prepare(program, values, wrt, of)
    graph, out, position = program.graph, run.output, program.graph.names
    plain = lambda v: float(v) if getattr(v, "ndim", 1) == 0 else v  # noqa: E731
    d = ArrayDerivation(out, wrt, filename, graph, {k: plain(run.inputs[k]) for k in graph.inputs},
                        {k: graph.shape[i] for k, i in position.items()},
                        {k: plain(run.values[i]) for k, i in position.items()},
                        {k: plain(run.adjoints[i]) for k, i in position.items()},
                        given, statements,
                        {name: program.definition(name) for name in statements},
                        {name: graph.definitions[name].expr for name in statements})
    targets = {position[name]: name for name in on_path}
    reaches = _reaching(graph, set(targets))
    for name in statements:
        _backward(d, graph, name, targets, reaches)
    return d


def _reaching(graph, targets: set[int]) -> list[bool]:
    """Whether each node is a target, or an unnamed node with a target below it (within its statement)."""
    named = set(graph.names.values())
    reach = [False] * len(graph)
    for i, args in enumerate(graph.args):
        reach[i] = i in targets or (i not in named and any(reach[j] for j in args))
    return reach


def delta(name: str, output: str) -> tuple:
    return ("num", 1.0) if name == output else ("delta", name)


def value_term(graph, node: int) -> tuple:
    """A node's value as a term: through the broadcasts the graph added, to the operand as written."""
    while graph.op[node] is not None and graph.op[node].key == "broadcast":
        node = graph.args[node][0]
    return ("val", node)


def _backward(d: ArrayDerivation, graph, name: str, targets: dict, reaches: list) -> None:
    """Walk the statement `name` from its result back to the names on the paths it uses."""
    root = graph.names[name]
    stack = [(root, delta(name, d.output), [])]
    simplify = Simplifier(graph)
    while stack:
        i, g, steps = stack.pop()
        if i != root and i in targets:
            d.uses.setdefault(targets[i], []).append(Use(name, g, steps))
            continue
        op = graph.op[i]
        if op is None:
            continue
        args = graph.args[i]
        xs = [value_term(graph, j) for j in args]
        shapes = [graph.shape[j] for j in args] + [graph.shape[i]]
        for k, j in reversed(list(enumerate(args))):
            if not reaches[j]:
                continue
            if op.__class__ is ArrayOp:
                term, factors = op.explain(k, g, xs, shapes, ("val", i), graph.attrs.get(i))
                step = Step(op.rule, op.name, tuple(factors), graph.shape[j])
            else:
                term, step = elementwise(op, k, g, xs, graph, args, graph.shape[i])
            term = simplify(term)
            if term_size(term, MAX_TERM) > MAX_TERM:
                raise DiffcliError("input", f"the backward expression through `{name}` grows past {MAX_TERM} "
                                   "terms and factors, too long to read", help="give parts of it names of their "
                                   "own (`u = …`), and narrow with --of and --wrt")
            stack.append((j, term, steps + [step] if step else steps))


def _number(graph, term) -> float | None:
    """The number a value term stands for, if it is a constant written as a number."""
    if term[0] == "val" and graph.op[term[1]] is None and term[1] not in graph.names.values():
        value = graph.value0[term[1]]
        return None if getattr(value, "shape", ()) else float(value)
    return None


def elementwise(op, k: int, g, xs, graph, args, shape):
    """Argument k's share of an elementwise operation's cotangent g: g times the scalar partial,
    elementwise (⊙; · where the values are scalars)."""
    key = op.key
    product = "times" if not shape else "odot"
    if key in ("add", "pos", "id"):
        return g, None
    if key == "sub":
        return (g if k == 0 else ("neg", g)), None
    if key == "neg":
        return ("neg", g), None
    step = Step("elementwise", op.name, (shape,), shape)
    x = xs[0]
    if key == "mul":
        factor = xs[1 - k]
        scalar = not graph.shape[factor[1]]
        return (("times", factor, g) if scalar else (product, g, factor)), step
    if key == "div":
        if k == 0:
            return ("div", g, xs[1]), step
        return ("neg", ("div", (product, g, xs[0]), ("pow", xs[1], ("num", 2.0)))), step
    if key == "power":
        exponent = _number(graph, xs[1])
        if k == 0:
            if exponent is not None:
                local = ("times", ("num", exponent), ("pow", x, ("num", exponent - 1)))
            else:
                local = ("times", xs[1], ("pow", x, ("minus", xs[1], ("num", 1.0))))
            return (product, g, local), step
        return (product, g, ("times", ("pow", x, xs[1]), ("fn", "log", [x], None))), step
    if len(xs) == 1:
        return (product, g, ("prime", op.name, [x])), step
    return (product, g, ("partial", op.name, k, xs)), step


class Simplifier:
    """Terms with products by 1 dropped (δ of the output is 1), 𝟏 ⊙ b as b, double signs cancelled
    and powers of 1 written as their base. Each term is simplified once (a term shares its parts
    with the terms it was built from, so simplifying them again would cost 2^depth); the ones done
    are kept, by identity, for the derivation's length."""

    def __init__(self, graph=None):
        self.done: dict[int, tuple] = {}
        self.graph = graph  # the shapes of value terms: 𝟏 ⊙ x is x only where x has 𝟏's shape

    def __call__(self, term):
        if id(term) in self.done:
            return term
        kind = term[0]
        if kind in ("times", "odot", "mm", "div", "minus", "neg", "T", "pow"):
            parts = tuple(self(p) if isinstance(p, tuple) else p for p in term[1:])
            if any(p is not q for p, q in zip(parts, term[1:])):
                term = (kind, *parts)
            term = self._top(term)
        self.done[id(term)] = term
        return term

    def _top(self, term):
        """The rules at the top of a term whose parts are simplified."""
        kind = term[0]
        one = ("num", 1.0)
        if kind in ("times", "odot", "mm"):
            a, b = term[1], term[2]
            if a == one:
                return b
            if b == one:
                return a
        if kind == "odot" and term[1][0] == "ones" and self._fits(term[2], term[1][1]):  # 𝟏 ⊙ b is b
            return term[2]
        if kind == "odot" and term[1][0] == "times" and term[1][2][0] == "ones" and \
                self._fits(term[2], term[1][2][1]):  # (a·𝟏) ⊙ b is a·b
            return self._top(("times", term[1][1], term[2]))
        if kind == "odot" and term[1][0] == "div" and term[1][1][0] == "ones":  # (𝟏/n) ⊙ b is b/n
            return self._top(("div", term[2], term[1][2]))
        if kind == "div" and term[2] == one:
            return term[1]
        if kind == "neg" and term[1][0] == "neg":
            return term[1][1]
        if kind == "pow" and term[2] == one:
            return term[1]
        if kind == "T" and term[1][0] == "num":
            return term[1]
        return term


    def _fits(self, term, shape: tuple) -> bool:
        """Whether `term` has `shape`, as far as it is known: a value term written for a value the
        graph stretched (value_term) has the shape of the operand as written, not 𝟏's."""
        return self.graph is None or term[0] != "val" or tuple(self.graph.shape[term[1]]) == tuple(shape)


def term_size(term, cap: int) -> int:
    """Nodes in a term as printed (a tree, its shared parts counted each time), counted without
    recursion and stopping past `cap`."""
    count, stack = 0, [term]
    while stack and count <= cap:
        t = stack.pop()
        count += 1
        for part in t[1:]:
            if isinstance(part, tuple) and part and isinstance(part[0], str):
                stack.append(part)
            elif isinstance(part, list):
                stack.extend(part)
    return count


# ---------------------------------------------------------------- --elements: the program unrolled

MAX_UNROLLED = 2000  # element statements: past this no element-wise derivation could be read

_TEMPLATES = {"add": "{0} + {1}", "sub": "{0} - {1}", "mul": "{0}*{1}", "div": "{0}/{1}", "power": "{0}^{1}",
              "neg": "-{0}", "pos": "{0}", "id": "{0}"}


def element_name(name: str, index: tuple) -> str:
    """The unrolled program's name of an element: W1[0,1] is W1_0_1."""
    return "_".join([name, *map(str, index)]) if index else name


def unrolled_source(program: Program, values=None, of: str | None = None) -> str:
    """The program written with scalars: one statement per element of every named array (`h_1 =
    relu(z_1)`), each input element given its value, the output kept; refused above MAX_UNROLLED
    statements or where an element's name is taken."""
    import numpy as np

    from ..ops import grouped

    run = program.run(values, of, adjoints=False)
    graph = program.graph
    named = {node: name for name, node in graph.names.items()}
    total = sum(max(1, int(np.prod(s))) for s in (graph.shape[i] for i in named))
    if total > MAX_UNROLLED:
        raise DiffcliError("input", f"explain --elements: the program has {total:,} elements in its named "
                           f"variables, too many to unroll (at most {MAX_UNROLLED:,})",
                           help="drop --elements for the derivation with shapes")
    texts: list = [None] * len(graph)
    lines: list[str] = []
    taken = set(graph.names)
    for i, op in enumerate(graph.op):
        shape = graph.shape[i]
        if i in named and (op is None and named[i] in graph.inputs or op is not None):
            name = named[i]
            if op is not None:
                body = _elements(np, graph, i, texts)
            if shape:
                out = np.empty(shape, dtype=object)
                for index in np.ndindex(*shape):
                    element = element_name(name, index)
                    if element in taken:
                        raise DiffcliError("input", f"explain --elements: `{element}` (an element of {name}) "
                                           "is a name of the program too", help="rename that variable")
                    taken.add(element)
                    rhs = _number_text(run.values[i][index]) if op is None else _computed(str(body[index]))
                    lines.append(f"{element} = {rhs}")
                    out[index] = element
                texts[i] = out
            else:
                lines.append(f"{name} = {_number_text(run.values[i]) if op is None else _computed(str(body[()]))}")
                texts[i] = np.asarray(name, dtype=object)
        elif op is None:
            value = graph.value0[i]
            expr = graph.expr[i]
            if not shape and expr is not None and getattr(expr, "id", None) in ("pi",):
                texts[i] = np.asarray("pi", dtype=object)
            else:
                texts[i] = np.vectorize(lambda v: grouped(_number_text(v)), otypes=[object])(np.asarray(value))
        else:
            texts[i] = _elements(np, graph, i, texts)
    return "\n".join(lines) + "\n"


def _elements(np, graph, i: int, texts: list):
    from ..ops import grouped

    op = graph.op[i]
    xs = [texts[j] for j in graph.args[i]]
    if op.__class__ is ArrayOp:
        return np.asarray(op.unrolled(np, graph.attrs.get(i), *xs), dtype=object)
    template = _TEMPLATES.get(op.key)
    if template is None:
        combine = lambda *parts: grouped(f"{op.name}({', '.join(bare(p) for p in parts)})")  # noqa: E731
    else:
        combine = lambda *parts: grouped(template.format(*parts))  # noqa: E731
    return np.vectorize(combine, otypes=[object])(*xs) if xs else None


def _computed(text: str) -> str:
    """A computed element's right side: bare, or `(2)` where it is a plain number (`d = c` with
    `c = (2)`), which the unrolled program would read back as an input with that default (SPEC)."""
    from ..language.parser import read_number

    text = bare(text)
    return f"({text})" if read_number(text) is not None else text


def _number_text(value) -> str:
    """A number as the unrolled program writes it, exactly (the shortest text that reads back)."""
    return number_text(float(value))


def _first(shape: tuple) -> str:
    return "[" + ",".join("0" * len(shape)) + "]"


def unrolled_program(program: Program, values=None, wrt: str | None = None, of: str | None = None,
                     filename: str = "") -> tuple[Program, str | None]:
    """The program unrolled (unrolled_source), parsed, and wrt as its element's name there: `W1[0,1]`
    or `W1_0_1` is W1_0_1; a scalar's name is itself; an array of more than one element is refused."""
    from ..program import _element, parse

    program.run(values, of)  # the array program's own errors first, placed in its file
    if wrt is not None:
        name, index = _element(wrt)
        if name in program.graph.names and index is None:
            shape = program.shape(name)
            if shape and any(n > 1 for n in shape):
                raise DiffcliError("input", f"explain --elements: {name} is {'×'.join(map(str, shape))}; "
                                   "the element-wise derivation is with respect to one element",
                                   help=f"give one: --wrt {name}{_first(shape)}")
            index = (0,) * len(shape)
        if name in program.graph.names:
            program.check_name(name, "--wrt")
            shape = program.shape(name)
            if index is not None and (len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape))):
                raise DiffcliError("input", f"--wrt {wrt}: {described(name, shape)}, and no such element",
                                   help=f"give --wrt {name}" if not shape else "elements are counted from 0, "
                                   f"row-major: {name}{_first(shape)} is the first")
            wrt = element_name(name, index or ())
    return parse(unrolled_source(program, values, of), filename or "<input>"), wrt
