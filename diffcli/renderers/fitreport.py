"""A fit for people (a report like lmfit's), for scripts (one JSON object), and as a picture
(Vega-Lite: the objective against the step; the data and the fitted output over one column)."""

from __future__ import annotations

import math

from ..commands.fit import Fit
from ..formatting import json_text
from .report import number


MAX_PARAMETER_ROWS, SHOWN_OF_MANY = 30, 8  # a network's hundreds of weights: the first few, and the count


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
    if fit.report:
        obj["report"] = fit.report
    if fit.warnings:
        obj["warnings"] = fit.warnings
    if fit.interrupted:
        obj["interrupted"] = True
    return json_text(obj, allow_nan=False) + "\n"


def fit_text(fit: Fit, file: str, precision: int = 6) -> str:
    """The report: method, convergence and why, counts, objective, then each parameter."""
    n = lambda x: number(x, precision)  # noqa: E731
    rows = [f"fit {file}: {fit.method}, minimizing the {fit.objective_text}"]
    state = "yes" if fit.converged else "interrupted" if fit.interrupted else "no"
    rows.append(f"  converged     {state}: {fit.message}")
    rows.append(f"  steps         {fit.steps}")
    rows.append(f"  evaluations   {fit.evaluations}")
    rows.append(f"  objective     {n(fit.objective)}   (start {n(fit.history[0])})")
    if fit.scale is not None:
        rows.append(f"  reduced χ²    {n(fit.scale)}   (sum of squares / (rows − parameters))")
    rows.append("parameters")
    table = []
    for name, value in fit.parameters.items():
        row = [name, n(value)]
        if fit.stderr is not None:
            error = fit.stderr[name]
            row.append(f"± {n(error)}" if math.isfinite(error) else "± unknown")
            row.append(f"({abs(error / value):.1%})" if value and math.isfinite(error) else "")
        gradient = "≈ 0" if fit.is_noise(name) else n(fit.gradient[name])  # (rounding noise)
        row += [f"start {n(fit.start[name])}", f"gradient {gradient}"]
        table.append(row)
    shown = table if len(table) <= MAX_PARAMETER_ROWS else table[:SHOWN_OF_MANY]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    for row in shown:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        rows.append("  " + "  ".join(cells).rstrip())
    if len(shown) < len(table):
        rows.append(f"  … and {len(table) - len(shown)} more (--json lists every one)")
    if fit.stderr is not None and fit.scale is not None:
        rows.append("  (standard errors from the Jacobian at the solution, scaled by the reduced χ²\n"
                    "   as curve_fit's default absolute_sigma=False does)")
    if fit.correlation is not None:
        pairs = [(a, b, c) for a, row in fit.correlation.items() for b, c in row.items()]
        pairs.sort(key=lambda p: -abs(p[2]))
        rows.append("correlations" + (" (those above 0.1)" if pairs else ": none above 0.1"))
        for a, b, c in pairs:
            rows.append(f"  {a}, {b}  {c:+.3f}")
    if fit.report:
        rows.append("after the fit" + (f" (means over {fit.rows} rows)" if fit.rows else ""))
        width = max(map(len, fit.report))
        for name, value in fit.report.items():
            rows.append(f"  {name:<{width}}  {n(value)}")
    return "\n".join(rows) + "\n"


def plot_spec(fit: Fit, x_column: str | None = None, curve=None) -> dict:
    """Vega-Lite: the objective against the step; with data and an x column, the data points and
    the fitted output over them. `curve`: {"x": [...], "data": (name, [...]) or None,
    "fitted": (name, [...])}."""
    positive = all(v > 0 for v in fit.history)
    loss = {
        "title": f"{fit.objective_text} ({fit.method})",
        "width": 420, "height": 260,
        "data": {"values": [{"step": i, "objective": v} for i, v in enumerate(fit.history)]},
        "mark": {"type": "line", "point": len(fit.history) <= 60},
        "encoding": {
            "x": {"field": "step", "type": "quantitative", "axis": {"tickMinStep": 1, "format": "d"}},
            "y": {"field": "objective", "type": "quantitative",
                  "scale": {"type": "log" if positive and _spread(fit.history) > 100 else "linear"}},
        },
    }
    if curve is None:
        return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **loss}
    fitted_name, fitted = curve["fitted"]
    layers = []
    if curve.get("data"):
        data_name, observed = curve["data"]
        layers.append({
            "data": {"values": [{x_column: a, data_name: b} for a, b in zip(curve["x"], observed)]},
            "mark": {"type": "point", "filled": True},
            "encoding": {"x": {"field": x_column, "type": "quantitative"},
                         "y": {"field": data_name, "type": "quantitative", "title": data_name}},
        })
    pairs = sorted(zip(curve["x"], fitted))
    layers.append({
        "data": {"values": [{x_column: a, fitted_name: b} for a, b in pairs]},
        "mark": {"type": "line", "color": "#d62728"},
        "encoding": {"x": {"field": x_column, "type": "quantitative"},
                     "y": {"field": fitted_name, "type": "quantitative"}},
    })
    over = {"title": f"{fitted_name} over {x_column} after the fit", "width": 420, "height": 260,
            "layer": layers}
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "hconcat": [loss, over]}


def _spread(values) -> float:
    return max(values) / min(values) if min(values) > 0 else 1.0


class Progress:
    """A live line on standard error: step, objective, gradient norm (at most ten updates a second)."""

    def __init__(self, method: str, console=None):
        from rich.console import Console
        from rich.live import Live

        self.method = method
        self.live = Live("", console=console or Console(stderr=True), transient=True, auto_refresh=False)
        self.last = 0.0

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        return self.live.__exit__(*exc)

    def __call__(self, step: int, objective: float, gradient_norm: float) -> None:
        import time

        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        self.live.update(f"[bold]{self.method}[/bold] step {step}  objective {objective:.6g}  "
                         f"|gradient| {gradient_norm:.3g}", refresh=True)
