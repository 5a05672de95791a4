"""A fit for people (a report like lmfit's), for scripts (one JSON object), and as a picture
(Vega-Lite: the objective against the step; the data and the fitted output over one column)."""

from __future__ import annotations

import math

import numpy as np

from ..commands.fit import CORRELATION_SHOWN, Fit
from ..formatting import json_text, plus_minus
from .plots import CONFIG, SCHEMA
from .report import _nested, element_items, number


MAX_PLOTTED_STEPS = 5_000  # more points than the picture has pixels across
MAX_PARAMETER_ROWS, SHOWN_OF_MANY = 30, 8  # a network's hundreds of weights: the first few, and the count
DATA_COLOR, FIT_COLOR = "#1f77b4", "#d62728"


def fit_json(fit: Fit) -> str:
    obj = {
        "method": fit.method, "converged": fit.converged, "message": fit.message, "steps": fit.steps,
        "evaluations": fit.evaluations, "objective": fit.objective, "parameters": fit.parameters,
        "gradient": fit.gradient, "history": fit.history,
    }
    if fit.stderr is not None:
        obj["stderr"] = {k: (v if math.isfinite(v) else None) for k, v in fit.stderr.items()}
        obj["correlation"] = fit.correlation or {}
        obj["scale"] = fit.scale
        if fit.covariance is not None:
            names = list(fit.stderr)   # element labels (W[0,1]) where a parameter is an array
            obj["covariance"] = {a: dict(zip(names, map(float, row))) for a, row in zip(names, fit.covariance)}
        obj["absolute_sigma"] = fit.absolute_sigma
    if fit.statistics is not None:
        obj["statistics"] = fit.statistics
    if fit.confidence is not None:
        obj["confidence"] = fit.confidence
    if fit.report:
        obj["report"] = fit.report
    if fit.warnings:
        obj["warnings"] = fit.warnings
    if fit.interrupted:
        obj["interrupted"] = True
    return json_text(obj, allow_nan=False, default=_nested) + "\n"


def _array_summary(value, n) -> str:
    """An array parameter in one cell: its shape, its least and greatest element and its norm."""

    from ..ops import shape_text

    return (f"{shape_text(value.shape)}: {n(float(value.min()))} to {n(float(value.max()))}, "
            f"norm {n(float(np.linalg.norm(value)))}")


def _parameter_rows(fit: Fit, elements: bool):
    """(label, value, start, gradient) per parameter, or with `elements` per element of an array
    (`W[0,1]`); an array otherwise is one row, of arrays."""
    for name, value in fit.parameters.items():
        if getattr(value, "shape", ()) and elements:
            for (label, v), (_, start), (_, gradient) in zip(
                    *(element_items(name, x) for x in (value, fit.start[name], fit.gradient[name]))):
                yield label, v, start, gradient
        else:
            yield name, value, fit.start[name], fit.gradient[name]


def fit_text(fit: Fit, file: str, precision: int = 6, style: str = "plain", elements: bool = False) -> str:
    """The report: method, convergence and why, counts, objective, then each parameter (with its
    standard error, rounded as the GUM recommends, written in `style`: formatting.plus_minus)."""
    n = lambda x: number(x, precision)  # noqa: E731
    rows = [f"fit {file}: {fit.method}, minimizing the {fit.objective_text}"]
    state = "yes" if fit.converged else "interrupted" if fit.interrupted else "no"
    rows.append(f"  converged     {state}: {fit.message}")
    rows.append(f"  steps         {fit.steps}")
    rows.append(f"  evaluations   {fit.evaluations}")
    rows.append(f"  objective     {n(fit.objective)}   (start {n(fit.history[0])})")
    stats = fit.statistics
    if stats is not None:
        rows.append(f"  χ²            {n(stats['chi_square'])}   ({stats['rows']} rows, "
                    f"{stats['parameters']} parameters)")
        rows.append(f"  reduced χ²    {n(stats['reduced_chi_square'])}   (χ² / (rows − parameters))")
        rows.append(f"  AIC           {n(stats['aic'])}   (N·ln(χ²/N) + 2P, as lmfit)")
        rows.append(f"  BIC           {n(stats['bic'])}   (N·ln(χ²/N) + ln(N)·P)")
        if "r_squared" in stats:
            rows.append(f"  R²            {n(stats['r_squared'])}")
    rows.append("parameters")
    table = []
    arrays = {}   # an array's row, by its place among the rows: summaries, aligned among themselves
    for name, value, start, gradient in _parameter_rows(fit, elements):
        if getattr(value, "shape", ()):
            arrays[len(table)] = [name, _array_summary(value, n), f"start norm {n(float(np.linalg.norm(start)))}",
                                  f"gradient norm {n(float(np.linalg.norm(gradient)))}"]
            table.append(None)
            continue
        row = [name, n(value)]
        if fit.stderr is not None:
            error = fit.stderr[name]
            row[1] = plus_minus(value, error, style)
            row.append(f"({abs(error / value):.1%})" if value and math.isfinite(error) else "")
        noise = name.partition("[")[0] in fit.gradient and fit.is_noise(name)   # (rounding noise)
        row += [f"start {n(start)}", f"gradient {'≈ 0' if noise else n(gradient)}"]
        table.append(row)
    shown = table if len(table) <= MAX_PARAMETER_ROWS or elements else table[:SHOWN_OF_MANY]
    scalars = [row for row in shown if row is not None]
    widths = [max(len(row[i]) for row in scalars) for i in range(len(scalars[0]))] if scalars else []
    array_widths = [max(len(row[i]) for row in arrays.values()) for i in range(4)] if arrays else []
    for k, row in enumerate(shown):
        if row is None:
            rows.append("  " + "  ".join(c.ljust(w) for c, w in zip(arrays[k], array_widths)).rstrip())
            continue
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        rows.append("  " + "  ".join(cells).rstrip())
    if len(shown) < len(table):
        rows.append(f"  … and {len(table) - len(shown)} more (--json lists every one)")
    if fit.stderr is not None and fit.scale is not None:
        rows.append("  (standard errors from the Jacobian at the solution, with σ taken as absolute\n"
                    "   as curve_fit's absolute_sigma=True does)" if fit.absolute_sigma else
                    "  (standard errors from the Jacobian at the solution, scaled by the reduced χ²\n"
                    "   as curve_fit's default absolute_sigma=False does)")
    if fit.correlation is not None:
        pairs = [(a, b, c) for a, row in fit.correlation.items() for b, c in row.items()
                 if abs(c) > CORRELATION_SHOWN]
        # by the value as printed, ties in the parameters' order: not by noise in the last bits
        pairs.sort(key=lambda p: -abs(float(f"{p[2]:.3f}")))
        rows.append("correlations" + (" (those above 0.1; --json has every pair)" if pairs
                                      else ": none above 0.1"))
        for a, b, c in pairs:
            rows.append(f"  {a}, {b}  {c:+.3f}")
    if fit.confidence:
        rows += _confidence_rows(fit, n)
    if fit.report:
        rows.append("after the fit" + (f" (means over {fit.rows} rows)" if fit.rows else ""))
        width = max(map(len, fit.report))
        for name, value in fit.report.items():
            rows.append(f"  {name:<{width}}  {_array_summary(value, n) if np.shape(value) else n(value)}")
    return "\n".join(rows) + "\n"


def _confidence_rows(fit: Fit, n) -> list[str]:
    """Each parameter's profile interval at each level, lowest bound first (lmfit's report_ci order)."""
    labels = list(next(iter(fit.confidence.values())))
    edge = lambda v: "open" if v is None else n(v)  # noqa: E731
    header = ["", *[f"−{label}" for label in reversed(labels)], "best", *[f"+{label}" for label in labels]]
    table = [header]
    best = dict(item for name, value in fit.parameters.items() for item in element_items(name, value))
    for name, by_level in fit.confidence.items():
        table.append([name, *[edge(by_level[label][0]) for label in reversed(labels)],
                      n(best[name]), *[edge(by_level[label][1]) for label in labels]])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    rows = ["confidence intervals (profile χ² with the F-test, as lmfit's conf_interval; "
            "open: not reached)"]
    for row in table:
        rows.append("  " + "  ".join([row[0].ljust(widths[0])] +
                                     [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]).rstrip())
    return rows


def plot_spec(fit: Fit, x_column: str | None = None, curve=None) -> dict:
    """Vega-Lite: the objective against the step (a log axis where it spans decades); with data and
    an x column, the data points and the fitted curve over that column, with a legend, and under
    them the residual at each row. `curve`: fitting.curve's {"x", "data", "fitted", "residual"}.
    The data use fixed field names; the program's names appear only as titles and legend entries
    (as in plots.py, so that no name is read by Vega-Lite as a field path)."""
    positive = all(v > 0 for v in fit.history)
    every = -(-len(fit.history) // MAX_PLOTTED_STEPS)  # (a million steps: every 200th, and the last)
    shown = sorted({*range(0, len(fit.history), every), len(fit.history) - 1})
    loss = {
        "title": f"{fit.objective_text} ({fit.method})",
        "width": 420, "height": 260,
        "data": {"values": [{"step": i, "objective": fit.history[i]} for i in shown]},
        "mark": {"type": "line", "point": len(fit.history) <= 60},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "axis": {"tickMinStep": 1, "format": "d"}},
            "y": {"field": "objective", "type": "quantitative", "title": "objective",
                  "scale": {"type": "log" if positive and _spread(fit.history) >= 100 else "linear"}},
        },
    }
    if curve is None:
        return {"$schema": SCHEMA, "config": CONFIG, **loss}
    fitted_name, fitted = curve["fitted"]
    x_axis = {"field": "x", "type": "quantitative", "title": x_column, "scale": {"zero": False}}
    series, colors, layers = [], [], []
    if curve.get("data"):
        data_name, observed = curve["data"]
        series.append(f"{data_name} (data)")
        colors.append(DATA_COLOR)
        layers.append({
            "data": {"values": [{"x": a, "y": b, "series": series[-1]} for a, b in zip(curve["x"], observed)]},
            "mark": {"type": "point", "filled": True, "size": 30},
            "encoding": {"x": x_axis, "y": {"field": "y", "type": "quantitative", "title": data_name,
                                            "scale": {"zero": False}},
                         "color": {"field": "series", "type": "nominal"}},
        })
    series.append(f"{fitted_name} (fit)")
    colors.append(FIT_COLOR)
    layers.append({
        "data": {"values": [{"x": a, "y": b, "series": series[-1]} for a, b in sorted(zip(curve["x"], fitted))]},
        "mark": {"type": "line", "strokeWidth": 2},
        "encoding": {"x": x_axis, "y": {"field": "y", "type": "quantitative"},
                     "color": {"field": "series", "type": "nominal"}},
    })
    for layer in layers:
        layer["encoding"]["color"]["scale"] = {"domain": series, "range": colors}
        layer["encoding"]["color"]["legend"] = {"title": None, "orient": "top-right"}
    over = {"title": f"{fitted_name} over {x_column} after the fit", "width": 420, "height": 200,
            "layer": layers}
    panels = [over]
    if curve.get("residual"):
        residual_name, residual = curve["residual"]
        panels.append({
            "title": f"residual {residual_name}", "width": 420, "height": 100,
            "layer": [
                {"mark": {"type": "rule", "color": "#999", "strokeDash": [4, 3]},
                 "data": {"values": [{}]}, "encoding": {"y": {"datum": 0, "type": "quantitative"}}},
                {"data": {"values": [{"x": a, "r": b} for a, b in zip(curve["x"], residual)]},
                 "mark": {"type": "point", "filled": True, "size": 20, "color": DATA_COLOR},
                 "encoding": {"x": x_axis, "y": {"field": "r", "type": "quantitative", "title": residual_name}}},
            ],
        })
    return {"$schema": SCHEMA, "config": CONFIG,
            "hconcat": [loss, {"vconcat": panels, "spacing": 8, "resolve": {"scale": {"x": "shared"}}}],
            "resolve": {"legend": {"color": "independent"}}}


def _spread(values) -> float:
    return max(values) / min(values) if min(values) > 0 else 1.0


class Progress:
    """A live bar on standard error, as the sweeps' is: the steps taken of `total` with the time
    left, the objective and the gradient's norm (at most ten updates a second). `total` None (a
    SciPy method's own limit, which it rarely reaches): the steps and the time so far."""

    def __init__(self, method: str, total: int | None = None, console=None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.method, self.total = method, total
        counted = [MofNCompleteColumn(), TimeRemainingColumn()] if total else [
            TextColumn("step {task.completed}"), TimeElapsedColumn()]
        self.bar = Bar(TextColumn(f"[bold]{method}[/bold]"), BarColumn(), *counted,
                       TextColumn("{task.fields[objective]}"),
                       console=console or Console(stderr=True), transient=True, auto_refresh=False)
        self.task = self.bar.add_task(method, total=total, objective="")
        self.last = 0.0

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()
        return False

    def __call__(self, step: int, objective: float, gradient_norm: float) -> None:
        import time

        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        self.bar.update(self.task, completed=step,
                        objective=f"objective {objective:.6g}  |gradient| {gradient_norm:.3g}")
        self.bar.refresh()
