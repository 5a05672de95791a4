"""A program's computation graph as Graphviz DOT, drawn the way a person draws it by hand.

Every named variable is one record `name | value | grad` (micrograd's layout); every operation is
its own small node, with edges in data-flow order from its arguments to its result. Unnamed
intermediate values get a record without a name. Constant operands are folded into their operation's
label (`3a` draws as `a -> ×3`), so numbers never clutter the picture. Rendering is render.py's job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping

from ..errors import shown
from ..formatting import json_text
from ..formatting import number as _number
from ..ops import Op
from ..program import Program
from ..language.syntax import Call, Name, Number

FONT = "Courier"  # Graphviz's WebAssembly build measures text with Courier's exact metrics
INPUT_FILL, OUTPUT_FILL, OP_FILL = "#dbeafe", "#fde68a", "#f3f4f6"
# A label longer than this is cut (the full text goes in the node's tooltip, which SVG shows on
# hover), and the picture is scaled down to fit this many inches a side: without both, one long
# name or one folded sum of 5,000 terms made a PNG 300,000 pixels wide and took gigabytes to draw.
LABEL_LIMIT = 40
TITLE_LIMIT = 120
CANVAS_INCHES = 50


@dataclass
class Diagram:
    source: str          # the DOT text
    nodes: int           # how many nodes the picture has (records and operations)
    unused: list[str]    # --set names the program does not have (see Program.grad)


def record_text(text: str) -> str:
    """Text for one field of a record label: DOT's and the record syntax's special characters escaped."""
    return "".join("\\" + c if c in '{}|<>"\\ ' else c for c in text)


def elide(text: str, limit: int = LABEL_LIMIT) -> str:
    """`text`, cut to `limit` characters with `…` where it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_text(text: str) -> str:
    """Text for an ordinary (escString) label: backslashes and quotes are literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def draw(program: Program, values: Mapping[str, float] | None = None, *, of: str | None = None,
         gradients: bool = True, rankdir: str = "TB", precision: int = 6) -> Diagram:
    """The DOT source of the program's graph, with every node's value and, unless `gradients` is
    false, d(output)/d(node)."""
    run = program.run(values, of, adjoints=gradients)
    graph = program.graph  # (after the run: an array program's graph is lowered for its inputs)
    output, node_values, adjoint = run.output, run.values, run.adjoints
    number = _number if graph.shape is None else _array_number  # an array's shape and elements

    import graphviz

    name_of = graph.name_of()
    constant = _constant_nodes(graph, name_of)
    output_node = run.output_node
    legend = {"blue: input": None, "yellow: output": None}  # more keys as the picture needs them
    dot = graphviz.Digraph(
        "diffcli",
        graph_attr={"rankdir": rankdir, "ranksep": "0.35", "nodesep": "0.25", "fontname": FONT,
                    "labelloc": "t", "labeljust": "l", "size": f"{CANVAS_INCHES},{CANVAS_INCHES}"},
        node_attr={"fontname": FONT, "fontsize": "14", "shape": "record", "style": "filled",
                   "fillcolor": "white"},
        edge_attr={"fontname": FONT, "fontsize": "11", "fontcolor": "#555555", "arrowsize": "0.7"},
    )
    # record fields run across the rank direction: braces turn them to read left to right in LR
    opens, closes = ("{", "}") if rankdir == "LR" else ("", "")
    count = 0
    for i in range(len(graph)):
        if constant[i]:
            continue
        name = name_of.get(i)
        fields = [] if name is None else [name]
        fields.append(number(node_values[i], precision))
        if adjoint is not None:
            fields.append("grad " + number(adjoint[i], precision))
        label = opens + " | ".join(record_text(elide(f)) for f in fields) + closes
        if name is not None and len(name) > LABEL_LIMIT:
            style_tip = {"tooltip": plain_text(name)}
        else:
            style_tip = {}
        if i == output_node:
            style = {"fillcolor": OUTPUT_FILL, "penwidth": "2"}
        elif name is not None and graph.op[i] is None:
            style = {"fillcolor": INPUT_FILL}
        elif name is None:
            style = {"style": "filled,dashed", "color": "#777777"}
            legend["dashed: unnamed value"] = None
        else:
            style = {}
        dot.node(f"v{i}", graphviz.nohtml(label), **style, **style_tip)
        count += 1
        op = graph.op[i]
        if op is None:
            continue
        args = graph.args[i]
        texts = [_constant_text(program, j) if constant[j] else None for j in args]
        text = _op_label(op, texts, graph.attrs.get(i))
        tip = {"tooltip": plain_text(text)} if len(text) > LABEL_LIMIT else {}
        dot.node(f"op{i}", graphviz.nohtml(plain_text(elide(text))), shape="ellipse",
                 fillcolor=OP_FILL, margin="0.04,0.02", height="0.3", **tip)
        count += 1
        variables = [(n, j) for n, j in enumerate(args) if not constant[j]]
        numbered = len(variables) > 1 and not op.commutative  # say which argument is which
        if numbered:  # beside the arrowhead, where it cannot be read as another edge's
            for n, j in variables:
                dot.edge(f"v{j}", f"op{i}", headlabel=str(n + 1), labeldistance="1.6")
            legend["edge numbers: argument order"] = None
        else:  # one edge per argument, `×k` on it where it comes k times (`max(x, x, …)`)
            times = Counter(j for _, j in variables)
            for j, k in times.items():
                dot.edge(f"v{j}", f"op{i}", **({"label": f"×{k}"} if k > 1 else {}))
        dot.edge(f"op{i}", f"v{i}")
    title = _title(program, output, number(node_values[output_node], precision), gradients)
    # \l ends a line of the title flush left
    dot.graph_attr["label"] = graphviz.nohtml(
        plain_text(title) + "\\l" + plain_text("    ".join(legend)) + "\\l")
    return Diagram(dot.source, count, run.unused)


def graph_json(program: Program, values: Mapping[str, float] | None = None, *, of: str | None = None,
               gradients: bool = True) -> Diagram:
    """The drawing's nodes and edges as JSON: each variable's record (`v<node>`: name or null,
    value, gradient, line and column) and each operation (`op<node>`: its name and the label drawn,
    constants folded in), the edges from arguments (numbered in order) to results."""
    run = program.run(values, of, adjoints=gradients)
    graph = program.graph  # (after the run, as in draw)
    name_of = graph.name_of()
    constant = _constant_nodes(graph, name_of)
    nodes, edges = [], []
    for i in range(len(graph)):
        if constant[i]:
            continue
        name = name_of.get(i)
        place = graph.definitions.get(name) if name is not None else graph.expr[i]
        if place is None and name in graph.first_use:
            place = graph.first_use[name]
        line, column = program.source.line_col(place.start) if place is not None else (None, None)
        nodes.append({"id": f"v{i}", "kind": "value", "name": name, "value": run.values[i],
                      "gradient": run.adjoints[i] if gradients else None,
                      "input": name is not None and graph.op[i] is None, "output": i == run.output_node,
                      "line": line, "column": column})
        op = graph.op[i]
        if op is None:
            continue
        texts = [_constant_text(program, j) if constant[j] else None for j in graph.args[i]]
        nodes.append({"id": f"op{i}", "kind": "operation", "operation": op.name,
                      "label": _op_label(op, texts, graph.attrs.get(i)), "line": line, "column": column})
        edges += [{"from": f"v{j}", "to": f"op{i}", "argument": n + 1}
                  for n, j in enumerate(graph.args[i]) if not constant[j]]
        edges.append({"from": f"op{i}", "to": f"v{i}", "argument": None})
    data = {"output": run.output, "value": run.value, "gradients": gradients, "nodes": nodes, "edges": edges}
    return Diagram(json_text(data, allow_nan=False, default=lambda array: array.tolist()) + "\n", len(nodes),
                   run.unused)


def _array_number(value, precision: int) -> str:
    from .report import cell

    return cell(value, precision)


def count_nodes(program: Program) -> int:
    """How many nodes the picture of the program has (records and operations), before drawing it."""
    graph = program.graph
    constant = _constant_nodes(graph, graph.name_of())
    return sum(1 + (op is not None) for op, c in zip(graph.op, constant) if not c)


def _constant_nodes(graph, name_of) -> list[bool]:
    """Unnamed nodes that depend on no variable: numbers, `pi`, and expressions of them."""
    constant = [False] * len(graph)
    for i, args in enumerate(graph.args):
        if i not in name_of:
            constant[i] = all(constant[j] for j in args)  # a leaf that is not a name: a number
    return constant


def _constant_text(program: Program, node: int) -> str:
    expr = program.graph.expr[node]
    text = program.source.snippet(expr.start, expr.end)
    return text if isinstance(expr, (Number, Name, Call)) else f"({text})"


def _op_label(op: Op, constants: list[str | None], attrs: dict | None = None) -> str:
    """An operation's label, with constant operands folded in and `·` standing for a variable; an
    index with its items as written (`[0, 1:]`), a reduction or softmax with its axis
    (`max(·, axis=1)`)."""
    attrs = attrs or {}
    if "items" in attrs:
        return "[" + ", ".join(_index_text(item) for item in attrs["items"]) + "]"
    if "axis" in attrs:
        return f"{op.glyph or op.name}({', '.join('·' if c is None else c for c in constants)}, axis={attrs['axis']})"
    symbol = op.glyph or op.name
    if op.infix and len(constants) == 2:
        left, right = constants
        if left is None and right is None:
            return symbol
        if left is None:
            return symbol + right                     # 3a -> ×3, d^2 -> ^2, x - 1 -> −1
        if right is None:
            if op.commutative:
                return symbol + left
            return f"{left} {symbol} ·"               # 5 - 3a -> 5 − ·
        return f"{left} {symbol} {right}"
    if len(constants) == 1 and op.key in ("neg", "pos", "id"):  # signs, and `b = a`
        return symbol + (constants[0] or "")
    if all(c is None for c in constants):
        return symbol
    return f"{symbol}({', '.join('·' if c is None else c for c in constants)})"


def _index_text(item) -> str:
    """An index's item as written: `0`, `-1`, or a slice `1:`, `:-1`, `:`."""
    if isinstance(item, tuple):
        return ":".join("" if bound is None else str(bound) for bound in item)
    return str(item)


def _title(program: Program, output: str, value: str, gradients: bool) -> str:
    head = elide(f"{shown(program.source.filename)}: {elide(output)} = {value}",
                 TITLE_LIMIT)
    if not gradients:
        return f"{head}    (values only: the forward pass)"
    return f"{head}    grad = ∂{output}/∂node (reverse mode)"

