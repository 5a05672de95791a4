"""Several outputs at once: the Jacobian d(output)/d(name) of each output over every named variable.

Either one reverse sweep per output (a row each), or one forward sweep per named variable (a column
each: a tangent seeded at the variable's node carries d(node)/d(variable) forward, the same total
derivative the adjoint is). Whichever needs fewer sweeps is run; both give the same numbers to rounding.
Since the columns are every named variable, the forward sweeps win only when there are more outputs
than named variables, which a program cannot have: reverse is the choice unless `mode` says otherwise.
"""

from __future__ import annotations

from . import engine
from ..language.graph import Graph


def sweeps(graph: Graph, outputs: list[str]) -> str:
    """"reverse" or "forward": the mode that needs fewer sweeps for these outputs."""
    return "forward" if len(graph.names) < len(outputs) else "reverse"


def jacobian(graph: Graph, values: list[float], outputs: list[str], mode: str | None = None
             ) -> dict[str, dict[str, float]]:
    """{output: {name: d(output)/d(name)}} for every named variable, in file order."""
    mode = mode or sweeps(graph, outputs)
    names = graph.names
    out_nodes = [names[out] for out in outputs]
    if mode == "reverse":
        needs = engine.needs_gradient(graph)
        rows = [engine.reverse(graph, values, node, needs) for node in out_nodes]
        return {out: {name: row[node] for name, node in names.items()} for out, row in zip(outputs, rows)}
    columns = {name: engine.tangents(graph, values, node, needed=out_nodes) for name, node in names.items()}
    return {out: {name: columns[name][o] for name in names} for out, o in zip(outputs, out_nodes)}
