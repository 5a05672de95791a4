"""The live page of `diffcli serve`: one program's results as the data the page shows, and the page itself.

`snapshot` turns a program (and its inputs) into one JSON-able dict: the source, the grad table's rows
(report.grad_rows, the same cells `grad` prints), the graph as SVG (drawing.draw and render.render,
the same picture `graph` makes) with each node's place in the source, and with sweeps the plot as SVG
(the same chart `plot` draws). `failure` is the dict for a program that does not load: the diagnostic
as `render_text` writes it, with its place. `changes` says which cells moved between two snapshots.

The page's HTML, script and style are files beside this module: the server sends them as they are,
and the page needs nothing from the network.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from ..errors import DiffcliError
from ..program import Program
from . import diagnostics, drawing, render, report

ASSETS = Path(__file__).parent / "page_assets"
FILES = {  # URL path -> (file, content type)
    "/": ("page.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
MAX_NODES = 500  # as `graph --max-nodes`: a bigger picture takes seconds to lay out


def asset(path: str) -> tuple[bytes, str] | None:
    """The bytes and content type of one of the page's own files, or None for any other path."""
    if path not in FILES:
        return None
    name, kind = FILES[path]
    return (ASSETS / name).read_bytes(), kind


def snapshot(program: Program, values: dict[str, float], of: str | None = None, sweeps=(), *,
             precision: int = 6, max_nodes: int = MAX_NODES) -> dict:
    """Everything the page shows about a program that loads: raises DiffcliError as `grad` would."""
    result = program.grad(values, of)
    filename = program.source.filename
    title, columns, rows, styles, caption = report.grad_rows(program, result, filename, precision)
    spans = _statement_spans(program)
    names = list(result.values)
    table = [{"name": name, "cells": row, "style": style, "span": spans.get(name),
              "input": program.is_input(name)} for name, row, style in zip(names, rows, styles)]
    state = {
        "ok": True, "file": filename, "source": program.source.text, "title": title,
        "columns": columns, "rows": table, "caption": caption, "output": result.output,
        # the inputs the page can change: the numbers (an array is changed in the file)
        "inputs": {name: result.inputs[name] for name in program.inputs
                   if not getattr(result.inputs[name], "shape", ())},
        "unused": result.unused, "notes": [diagnostics.render_text(n, severity="note") for n in program.notes],
        "svg": None, "nodes": {}, "graph_note": None, "plot": None, "plot_note": None,
    }
    count = drawing.count_nodes(program)
    if count > max_nodes:
        state["graph_note"] = (f"the graph has {count} nodes, more than the page draws "
                               f"(--max-nodes {max_nodes})")
    else:
        diagram = drawing.draw(program, values, of=of, precision=precision)
        try:
            state["svg"] = render.render(diagram.source, "svg").decode("utf-8")
            state["nodes"] = _node_places(program, spans)
        except DiffcliError as error:  # the layout failed (Graphviz's limits): the rest still shows
            state["graph_note"] = error.message
    if sweeps:
        from . import plots

        spec, swept = plots.sweep_chart(program, sweeps, values, of)
        state["plot"] = render.vegalite(spec, "svg").decode("utf-8")
        if swept.failed.any():
            state["plot_note"] = f"{int(swept.failed.sum())} of {swept.n} points failed (gaps in the plot)"
    return state


def failure(error: DiffcliError, text: str | None, filename: str) -> dict:
    """What the page shows for a program that does not load or run: the diagnostic and its place."""
    span = list(error.span) if error.span is not None and error.source is not None else None
    if error.source is not None:
        text = error.source.text
    return {"ok": False, "file": filename, "source": text, "diagnostic": diagnostics.render_text(error),
            "error": diagnostics.error_body(error), "span": span}


def changes(before: dict | None, after: dict) -> list[dict]:
    """The rows whose cells differ between two good snapshots: name, column, old and new text."""
    if not before or not before.get("ok") or not after.get("ok"):
        return []
    old = {row["name"]: row["cells"] for row in before["rows"]}
    moved = []
    for row in after["rows"]:
        previous = old.get(row["name"])
        if previous is None:
            moved.append({"name": row["name"], "column": None, "before": None, "after": None})
            continue
        for column, (was, now) in enumerate(zip(previous, row["cells"])):
            if column >= 2 and was != now:  # past name and definition: the numbers
                moved.append({"name": row["name"], "column": after["columns"][column],
                              "before": was, "after": now})
    return moved


def _statement_spans(program: Program) -> dict[str, list[int]]:
    """Each assigned name -> [start, end] of its statement in the source."""
    return {s.name: [s.start, s.end] for s in program.statements}


def _node_places(program: Program, spans: dict[str, list[int]]) -> dict[str, dict]:
    """Each node of the drawing (by its DOT id, which Graphviz writes as the SVG node's title) ->
    the row it belongs to and its span in the source."""
    graph = program.graph
    name_of = graph.name_of()
    starts = sorted((s.start, s.name) for s in program.statements)
    keys = [start for start, _ in starts]

    def enclosing(offset: int) -> str | None:
        at = bisect.bisect_right(keys, offset) - 1
        return starts[at][1] if at >= 0 else None

    places = {}
    for i in range(len(graph)):
        expr = graph.expr[i]
        name = name_of.get(i)
        if name is not None:
            span = spans.get(name)
            if span is None and name in graph.first_use:  # a free input: where it is first used
                use = graph.first_use[name]
                span = [use.start, use.end]
            places[f"v{i}"] = {"row": name, "span": span}
        elif expr is not None:
            places[f"v{i}"] = {"row": enclosing(expr.start), "span": [expr.start, expr.end]}
        if graph.op[i] is not None and expr is not None:
            places[f"op{i}"] = {"row": name or enclosing(expr.start), "span": [expr.start, expr.end]}
    return places
