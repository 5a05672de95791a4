"""Pictures of a sweep: the batch engine's results -> a Vega-Lite specification (a dict), nothing else.

One sweep: two panels sharing the x axis, the output and its derivative with respect to the swept
input; a failed point leaves a gap in both lines, and a shaded band marks where points failed.
Two sweeps: two heat maps over the grid, the output (with arrows along its gradient) and the
gradient's length; failed cells are grey. Rendering the specification is render.vegalite's job.

Fields in the data have fixed names ("x", "value", ...): the program's names appear only in titles,
so that no name is ever read by Vega-Lite as a field path or an expression.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
LINE_SIZE = (520, 200)    # width, height of each panel of a line chart
MAP_SIZE = (300, 300)     # each heat map
MAX_ARROWS = 13           # per axis of a heat map
DOTS_UP_TO = 60           # mark every point of a line with fewer points than this
FAILED_COLOR = "#d62728"
FAILED_CELL = "#bdbdbd"
# each cell reaches half a pixel into the next: no hairline seams where neighbours meet
OVERLAP = {"x2Offset": 0.5, "y2Offset": -0.5}
CONFIG = {"view": {"stroke": "#ddd"}, "font": "sans-serif", "title": {"font": "sans-serif"}}


SMALLEST_SPAN = 1e-300    # Vega's ticks take 10^-(the step's exponent): past 10^308 that overflows


def undrawable(start: float, stop: float, log: bool) -> str | None:
    """Why a sweep from start to stop cannot be an axis, or None."""
    if log and min(abs(start), abs(stop)) < SMALLEST_SPAN:
        return f"a log axis cannot reach below {SMALLEST_SPAN:g} in size"
    if not log and start != stop and abs(stop / 2 - start / 2) < SMALLEST_SPAN / 2:
        return f"an axis shorter than {SMALLEST_SPAN:g} cannot be drawn"
    return None


@dataclass(frozen=True)
class Axis:
    """One swept input: its name, its values in sweep order, and whether they are log-spaced."""

    name: str
    values: Sequence[float]
    log: bool = False


def chart(result, axes: Sequence[Axis], fixed: dict[str, float] | None = None) -> dict:
    """The Vega-Lite specification for `result` (a batch.BatchResult over the grid of `axes`, the
    last axis varying fastest). `fixed`: the inputs that were not swept, named in the subtitle."""
    if len(axes) == 1:
        spec = _line_chart(result, axes[0])
    elif len(axes) == 2:
        spec = _heat_maps(result, axes[0], axes[1])
    else:
        raise ValueError("a chart has one or two axes")
    subtitle = [_fixed_note(fixed or {}), _failure_note(result, axes)]
    spec["title"] = {"text": spec["title"], "subtitle": [s for s in subtitle if s],
                     "anchor": "start", "fontSize": 15, "subtitleColor": "#555"}
    return {"$schema": SCHEMA, **spec, "config": CONFIG}


def sweep_chart(program, sweeps, values: dict[str, float], of: str | None):
    """Run `program` over the grid of `sweeps` (points.Sweep, one or two) and chart it: (spec, result)."""
    from ..commands import points
    from ..errors import DiffcliError
    from ..interpreters import batch

    for sweep in sweeps:
        array = sweep.name in program.graph.inputs and program.shape(sweep.name)
        if "[" in sweep.name or array:  # (points.grid's help for an array names an element's sweep)
            element = f"{sweep.name}[{','.join('0' * len(array))}]" if array else sweep.name
            raise DiffcliError("input", f"--sweep {sweep.name}: plot sweeps scalar inputs, not "
                               + (f"an array (`{sweep.name}` is {points.shape_words(array)})" if array else "an array's elements"),
                               help=f"sweep a scalar input, or tabulate the element with grad --sweep '{element}=…' --csv")
    grid = points.grid(sweeps, program)  # checks the names as --set does
    for sweep in sweeps:
        if sweep.name not in program.inputs:  # a flat line against an unused name helps nobody
            raise DiffcliError("input", f"--sweep {sweep.name}: the program does not use `{sweep.name}`",
                               help="inputs: " + ", ".join(program.inputs))
    chunks = [columns for _, columns in grid.chunks()]
    swept = {name: np.concatenate([c[name] for c in chunks]) for name in grid.names}
    result = batch.run(program, {**values, **swept}, of)
    fixed = {name: float(np.ravel(column)[0]) for name, column in result.inputs.items()
             if name not in swept}
    return chart(result, [Axis(s.name, s.values(), s.log) for s in sweeps], fixed), result


def derivative_label(output: str, name: str) -> str:
    return f"∂{output}/∂{name}"


# ---------------------------------------------------------------- one sweep

def _line_chart(result, axis: Axis) -> dict:
    out, x = result.output, axis.name
    xs = _floats(axis.values)
    values = _floats(result.value)
    slopes = _floats(result.gradients[x]) if result.gradients else [None] * len(xs)
    failed = _failed(result)
    points, segment = [], 0
    for i, xi in enumerate(xs):
        if failed[i]:
            segment += 1
            continue
        lone = (i == 0 or failed[i - 1]) and (i == len(xs) - 1 or failed[i + 1])
        points.append({"x": xi, "value": values[i], "slope": slopes[i], "segment": segment,
                       "lone": lone})
    bands = _failed_bands(result, xs, failed, axis.log)
    x_encoding = {"field": "x", "type": "quantitative", "title": x,
                  "scale": _scale(xs, axis.log)}
    tooltip = [{"field": "x", "type": "quantitative", "title": x, "format": ".6~g"},
               {"field": "value", "type": "quantitative", "title": out, "format": ".6~g"},
               {"field": "slope", "type": "quantitative", "title": derivative_label(out, x),
                "format": ".6~g"}]

    def panel(field: str, title: str, color: str, bottom: bool) -> dict:
        axis_x = {**x_encoding, "axis": {"title": x} if bottom else {"title": None, "labels": False}}
        y = {"field": field, "type": "quantitative", "title": title, "scale": {"zero": False}}
        layers = []
        if bands:
            layers.append(_band_layer(axis_x))
        if field == "slope" and _crosses_zero(p["slope"] for p in points):
            layers.append({"mark": {"type": "rule", "color": "#999", "strokeDash": [4, 3]},
                           "encoding": {"y": {"datum": 0, "type": "quantitative"}}})
        line = {"type": "line", "color": color, "strokeWidth": 2}
        if len(xs) < DOTS_UP_TO:
            line["point"] = {"color": color}
        # in the HTML page: drag to pan and scroll to zoom along x, both panels together
        zoom = {"name": f"zoom_{field}", "select": {"type": "interval", "encodings": ["x"]},
                "bind": "scales"}
        layers.append({"data": {"name": "points"}, "mark": line, "params": [zoom],
                       "encoding": {"x": axis_x, "y": y, "detail": {"field": "segment"},
                                    "tooltip": tooltip}})
        if len(xs) >= DOTS_UP_TO and any(p["lone"] for p in points):
            layers.append({"data": {"name": "points"}, "transform": [{"filter": "datum.lone"}],
                           "mark": {"type": "point", "filled": True, "color": color},
                           "encoding": {"x": axis_x, "y": y, "tooltip": tooltip}})
        return {"width": LINE_SIZE[0], "height": LINE_SIZE[1], "layer": layers}

    datasets = {"points": points}
    if bands:
        datasets["failed"] = bands
    return {
        "title": f"{out} and {derivative_label(out, x)} against {x}",
        "datasets": datasets,
        # a layer with a `datum` only (the zero rule) still needs a row to draw
        "data": {"values": [{}]},
        "vconcat": [panel("value", out, "#1f77b4", False),
                    panel("slope", derivative_label(out, x), "#ff7f0e", True)],
        "spacing": 8,
        "resolve": {"scale": {"x": "shared"}},
    }


def _band_layer(x_encoding: dict) -> dict:
    return {"data": {"name": "failed"},
            "mark": {"type": "rect", "color": FAILED_COLOR, "opacity": 0.12},
            "encoding": {"x": {**x_encoding, "field": "lo"}, "x2": {"field": "hi"},
                         "tooltip": [{"field": "count", "title": "failed points"},
                                     {"field": "error", "title": "first error"}]}}


def _failed_bands(result, xs: list, failed: list[bool], log: bool) -> list[dict]:
    """One band per run of consecutive failed points, reaching halfway to the points beside it."""
    bands, i, n = [], 0, len(xs)
    while i < n:
        if not failed[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and failed[j + 1]:
            j += 1
        lo = _middle(xs[i - 1], xs[i], log) if i > 0 else xs[i]
        hi = _middle(xs[j], xs[j + 1], log) if j < n - 1 else xs[j]
        bands.append({"lo": lo, "hi": hi, "count": j - i + 1, "error": _message(result, i)})
        i = j + 1
    return bands


# ---------------------------------------------------------------- two sweeps

def _heat_maps(result, x_axis: Axis, y_axis: Axis) -> dict:
    out, x, y = result.output, x_axis.name, y_axis.name
    xs, ys = _floats(x_axis.values), _floats(y_axis.values)
    x_edges, y_edges = _edges(xs, x_axis.log), _edges(ys, y_axis.log)
    values = _floats(result.value)
    gx = _floats(result.gradients[x]) if result.gradients else [None] * len(values)
    gy = _floats(result.gradients[y]) if result.gradients else [None] * len(values)
    failed = _failed(result)
    cells, bad = [], []
    for i in range(len(xs)):
        for j in range(len(ys)):
            k = i * len(ys) + j
            cell = {"x": xs[i], "y": ys[j], "x0": x_edges[i], "x1": x_edges[i + 1],
                    "y0": y_edges[j], "y1": y_edges[j + 1]}
            if failed[k]:
                bad.append({**cell, "error": _message(result, k)})
            else:
                norm = math.hypot(gx[k], gy[k]) if None not in (gx[k], gy[k]) else None
                cells.append({**cell, "value": values[k], "gx": gx[k], "gy": gy[k], "norm": norm})
    arrows = _arrows(cells, xs, ys, x_edges, y_edges, x_axis.log, y_axis.log)

    x_encoding = {"field": "x0", "type": "quantitative", "title": x,
                  "scale": _scale(x_edges, x_axis.log), "axis": {"grid": False}}
    y_encoding = {"field": "y0", "type": "quantitative", "title": y,
                  "scale": _scale(y_edges, y_axis.log), "axis": {"grid": False}}
    places = [{"field": "x", "type": "quantitative", "title": x, "format": ".6~g"},
              {"field": "y", "type": "quantitative", "title": y, "format": ".6~g"}]
    tooltip = [*places, *({"field": f, "type": "quantitative", "title": t, "format": ".6~g"}
                          for f, t in (("value", out), ("gx", derivative_label(out, x)),
                                       ("gy", derivative_label(out, y)), ("norm", f"|∇{out}|")))]
    rectangle = {"x": x_encoding, "x2": {"field": "x1"}, "y": y_encoding, "y2": {"field": "y1"}}

    def heat_map(field: str, title: str, scheme: str, legend: str, with_arrows: bool) -> dict:
        color = {"field": field, "type": "quantitative", "title": legend,
                 "scale": _color_scale(scheme, field, cells)}
        layers = [{"data": {"name": "cells"}, "mark": {"type": "rect", **OVERLAP},
                   "encoding": {**rectangle, "tooltip": tooltip, "color": color}}]
        if bad:
            layers.append({"data": {"name": "failed"}, "mark": {"type": "rect", "color": FAILED_CELL,
                                                                  **OVERLAP},
                           "encoding": {**rectangle, "tooltip": [
                               *places, {"field": "error", "title": "failed"}]}})
        if with_arrows and arrows:
            layers.append({"data": {"name": "arrows"},
                           "mark": {"type": "point", "shape": "arrow", "filled": True,
                                    "color": "white", "stroke": "black", "strokeWidth": 0.5,
                                    "size": 110, "opacity": 0.9},
                           "encoding": {"x": {**x_encoding, "field": "x"},
                                        "y": {**y_encoding, "field": "y"},
                                        "angle": {"field": "angle", "type": "quantitative",
                                                  "scale": None},
                                        "tooltip": tooltip}})
        return {"title": title, "width": MAP_SIZE[0], "height": MAP_SIZE[1], "layer": layers}

    datasets = {"cells": cells, "arrows": arrows}
    if bad:
        datasets["failed"] = bad
    return {
        "title": f"{out} over {x} × {y}",
        "datasets": datasets,
        # (titles drawn in pictures avoid ∇: the default fonts lack it and fall back to a serif)
        "hconcat": [heat_map("value", f"{out}, arrows along its gradient", "viridis", out, True),
                    heat_map("norm", f"the length of the gradient of {out}", "magma",
                             "length", False)],
        "spacing": 24,
        "resolve": {"scale": {"color": "independent"}},
    }


def _color_scale(scheme: str, field: str, cells: list[dict]) -> dict:
    """A linear scale, unless a few cells are far larger than the typical one (a gradient near a
    singularity): then a symmetric log scale, linear up to the typical size, so that they do not
    wash the rest out."""
    sizes = np.abs([c[field] for c in cells if c[field] is not None])
    typical = float(np.median(sizes)) if sizes.size else 0.0
    if typical > 0 and sizes.max() > 20 * typical:
        return {"scheme": scheme, "type": "symlog", "constant": typical}
    return {"scheme": scheme}


def _arrows(cells, xs, ys, x_edges, y_edges, x_log: bool, y_log: bool) -> list[dict]:
    """At most MAX_ARROWS × MAX_ARROWS cells, evenly spread, each with the angle on screen of its
    gradient (degrees clockwise from up): the gradient as a step in (x, y), seen through the axes'
    scales, so that an arrow points where a small step along the gradient goes on the map."""
    keep_x, keep_y = set(_spread(len(xs))), set(_spread(len(ys)))
    x_index = {v: i for i, v in enumerate(xs)}
    y_index = {v: j for j, v in enumerate(ys)}
    x_pixels = _pixels_per_unit(x_edges, x_log, MAP_SIZE[0])
    y_pixels = _pixels_per_unit(y_edges, y_log, MAP_SIZE[1])
    arrows = []
    for cell in cells:
        if x_index[cell["x"]] not in keep_x or y_index[cell["y"]] not in keep_y:
            continue
        if not cell["norm"]:
            continue  # no gradient, or a flat point: no direction to show
        right = cell["gx"] * x_pixels(cell["x"])
        up = cell["gy"] * y_pixels(cell["y"])
        if not (math.isfinite(right) and math.isfinite(up)) or right == up == 0:
            continue
        arrows.append({**cell, "angle": math.degrees(math.atan2(right, up)) % 360})
    return arrows


def _spread(n: int) -> list[int]:
    if n <= MAX_ARROWS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_ARROWS - 1)) for i in range(MAX_ARROWS)})


def _pixels_per_unit(edges: list, log: bool, size: int):
    lo, hi = min(edges), max(edges)
    if log:
        span = math.log10(abs(hi)) - math.log10(abs(lo))  # (a log axis may be all negative)
        return lambda v: size / (span * v * math.log(10)) if span else 0.0
    return lambda v: size / (hi - lo) if hi != lo else 0.0


# ---------------------------------------------------------------- shared pieces

def _floats(values) -> list:
    """Plain floats for JSON, None where a value is missing or not finite."""
    array = np.broadcast_to(np.asarray(values, dtype=float), np.shape(values) or (1,)).ravel()
    return [float(v) if math.isfinite(v) else None for v in array.tolist()]


def _failed(result) -> list[bool]:
    return np.asarray(result.failed, dtype=bool).tolist()


def _message(result, point: int) -> str:
    error = result.errors.get(point)
    return error.message if error is not None else "not a finite number"


def _middle(a: float, b: float, log: bool) -> float:
    """Halfway between a and b (geometrically on a log axis, whose values share a sign), computed
    so that it cannot overflow or underflow where a and b do not."""
    if log:
        return math.copysign(math.sqrt(abs(a)) * math.sqrt(abs(b)), a)
    return a / 2 + b / 2


def _edges(values: list, log: bool) -> list:
    """Cell boundaries: halfway between neighbours (geometrically on a log axis), and as far
    outside the first and last as their neighbours are; one value gets a cell of width 1 (a
    decade on a log axis)."""
    if len(values) == 1:
        v = values[0]
        return [v / math.sqrt(10), v * math.sqrt(10)] if log else [v - 0.5, v + 0.5]
    inner = [_middle(a, b, log) for a, b in zip(values, values[1:])]
    first = values[0] * (values[0] / inner[0]) if log else values[0] - (inner[0] - values[0])
    last = values[-1] * (values[-1] / inner[-1]) if log else values[-1] + (values[-1] - inner[-1])
    return [_drawable(first, log), *inner, _drawable(last, log)]


def _drawable(x: float, log: bool) -> float:
    """An outer edge kept where an axis can reach: within ±1.8e308, and on a log axis no nearer
    to 0 than SMALLEST_SPAN (an edge beyond overflowed or underflowed)."""
    if log:
        return math.copysign(min(max(abs(x), SMALLEST_SPAN), sys.float_info.max), x)
    return x if math.isfinite(x) else math.copysign(sys.float_info.max, x)


def _scale(values: list, log: bool) -> dict:
    finite = [v for v in values if v is not None]
    scale = {"domain": [min(finite), max(finite)], "nice": False, "zero": False}
    if log:
        scale["type"] = "log"
    return scale


def _crosses_zero(values) -> bool:
    finite = [v for v in values if v is not None]
    return bool(finite) and min(finite) <= 0 <= max(finite)


def _fixed_note(fixed: dict[str, float]) -> str:
    if not fixed:
        return ""
    return "with " + ", ".join(f"{name} = {value:.6g}" for name, value in fixed.items())


def _failure_note(result, axes: Sequence[Axis]) -> str:
    failed = _failed(result)
    count = sum(failed)
    if not count:
        return ""
    first = failed.index(True)
    where = ", ".join(f"{axis.name} = {float(np.ravel(result.inputs[axis.name])[first]):.6g}"
                      for axis in axes)
    shown = "grey cells" if len(axes) == 2 else "shaded, the lines break"
    return (f"{count} of {len(failed)} points failed ({shown}); the first, at {where}: "
            f"{_message(result, first)}")
