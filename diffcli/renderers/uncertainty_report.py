"""An uncertainty propagation -> JSON (SPEC "Uncertainty"), the budget table, and the Monte Carlo
histogram as a Vega-Lite chart."""

from __future__ import annotations

import math

from .report import _dumps, number
from ..formatting import plus_minus
from ..ops import shape_text
from ..interpreters.uncertainty import COVERAGE, Propagation

HISTOGRAM_BINS = 60


def to_json(result: Propagation) -> str:
    out = {
        "output": result.output, "value": result.value, "uncertainty": result.uncertainty,
        "budget": [{"name": row.name, "value": row.value, "u": row.u, "sensitivity": row.sensitivity,
                    "contribution": row.contribution, "share": row.share} for row in result.budget],
    }
    if result.groups:
        out["groups"] = [{"name": group.name, "contribution": group.contribution, "share": group.share}
                         for group in result.groups]
    if result.correlations:
        out["correlations"] = [{"a": a, "b": b, "r": r} for (a, b), r in result.correlations.items()]
    second = result.second_order
    if second is not None:
        out["second_order"] = {"uncertainty": second.uncertainty, "term": second.term,
                               "change": second.change, "mean_shift": second.mean_shift}
    mc = result.monte_carlo
    if mc is not None:
        out["monte_carlo"] = {"n": mc.n, "mean": mc.mean, "std": mc.std, "interval": list(mc.interval),
                              "failed": mc.failed, "agrees": mc.agrees}
    return _dumps(out)


def _size(shape: tuple) -> int:
    return math.prod(shape)


def _squared(u: float, precision: int) -> str:
    """u², or `(u)²` where u² underflows to 0 (u = 2e-320)."""
    return number(u * u, precision) if u * u > 0 or u == 0 else f"({number(u, precision)})²"


SHOWN_ELEMENTS = 6  # an array's largest elements in the table, unless --elements


def table(result: Propagation, filename: str, precision: int, style: str = "plain", elements: bool = False):
    """The result line, the budget (sorted by share) and what --order 2 / --monte-carlo add. An
    array shows its group's row and its SHOWN_ELEMENTS largest elements (every one with `elements`),
    then one row for the rest."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    out = result.output
    parts = [Text(f"diffcli uncertainty {filename}: {out} = {plus_minus(result.value, result.uncertainty, style)}",
                  style="bold")]
    budget = Table(header_style="bold", expand=False)
    budget.add_column("input", no_wrap=True, overflow="fold")
    for heading in ("value", "u", f"∂{out}/∂input", "contribution", "share"):
        budget.add_column(heading, justify="right", no_wrap=True)
    groups = {group.name: group for group in result.groups or ()}
    rows = result.budget
    shown = 0
    for i, row in enumerate(rows):
        group = groups.get(row.group)
        if group is not None and (i == 0 or rows[i - 1].group != row.group):
            budget.add_row(f"{group.name} ({shape_text(group.shape)})", "", "", "",
                           number(group.contribution, precision), f"{100 * group.share:.1f}%", style="bold")
            shown = 0
        if group is not None:
            shown += 1
            if shown > SHOWN_ELEMENTS and not elements:
                if shown == SHOWN_ELEMENTS + 1:
                    rest = [other for other in rows[i:] if other.group == row.group]
                    budget.add_row(f"  … {len(rest):,} more", "", "", "", "",
                                   f"{100 * sum(other.share for other in rest):.1f}%", style="dim")
                continue
        budget.add_row(row.name if group is None else "  " + row.name, number(row.value, precision),
                       number(row.u, precision), number(row.sensitivity, precision),
                       number(row.contribution, precision), f"{100 * row.share:.1f}%")
    parts.append(budget)
    caption = (f"u: standard uncertainty; contribution: |∂{out}/∂input|·u\n"
               f"share: of the combined variance u({out})² = {_squared(result.uncertainty, precision)}")
    if groups:
        caption += (f"\nan array's row (its shape): its elements together, u({out}) from them alone and "
                    "their shares summed")
        if not elements and any(group.shape and _size(group.shape) > SHOWN_ELEMENTS for group in groups.values()):
            caption += f"\n(each array's {SHOWN_ELEMENTS} largest elements; --elements lists every one)"
    if result.correlations:
        pairs = ", ".join(f"r({a},{b}) = {r:g}" for (a, b), r in result.correlations.items())
        caption += f"\ncorrelations: {pairs}\n(a covariance term's share is split evenly between its two inputs)"
    parts.append(Text(caption, style="dim"))
    second = result.second_order
    if second is not None:
        change = 100 * second.change / result.uncertainty if result.uncertainty else 0.0
        hessian = ("H the exact Hessian, V the inputs' covariance;\n" if second.exact else
                   "H the Hessian, from central differences of the exact\n  gradient, V the inputs' covariance;\n")
        parts.append(Text(
            f"second order: {out} = {plus_minus(result.value, second.uncertainty, style)}; u({out}) = "
            f"{number(second.uncertainty, precision)}, {change:+.2g}% of the first-order u\n"
            f"  (+½·tr((H·V)²) to the variance: {hessian}"
            "  the GUM's ∂f/∂xi·∂³f/∂xi∂xj² terms need third derivatives: not included)\n"
            f"  the expectation of {out} moves by ½·tr(H·V) = {number(second.mean_shift, precision)}"))
    mc = result.monte_carlo
    if mc is not None:
        low, high = mc.interval
        parts.append(Text(
            f"Monte Carlo, {mc.n:,} samples: mean {number(mc.mean, precision)}, "
            f"std {number(mc.std, precision)}\n  shortest {100 * COVERAGE:g}% interval "
            f"[{number(low, precision)}, {number(high, precision)}]"
            + (f"; {mc.failed:,} failed (outside a domain)" if mc.failed else "")))
    return Group(*parts)


def warnings(result: Propagation) -> list[str]:
    """What standard error should say beside the result."""
    out = []
    mc = result.monte_carlo
    if mc is not None and mc.failed:
        first = f": {mc.first_error.message}" if mc.first_error is not None else ""
        out.append(f"{mc.failed} of {mc.n} Monte Carlo samples left a domain and were not counted{first}")
    if mc is not None and not mc.agrees:
        m = mc.n - mc.failed
        mean_error, std_error = mc.std / math.sqrt(m), mc.std / math.sqrt(2 * (m - 1))
        shift, spread = mc.mean - result.value, mc.std - result.uncertainty
        out.append(
            "Monte Carlo and the linear result disagree by more than the simulation's own error: "
            f"mean - {result.output} = {number(shift, 2)} ({abs(shift) / mean_error:.1f} standard errors), "
            f"std - u = {number(spread, 2)} ({abs(spread) / std_error:.1f} standard errors); "
            "the model is not linear over the inputs' spread (--order 2 shows the second-order part)")
    return out


def histogram_spec(result: Propagation) -> dict:
    """Vega-Lite: the Monte Carlo samples' density, with the linear result's normal curve over it."""
    import numpy as np

    mc = result.monte_carlo
    counts, edges = mc.samples.histogram(HISTOGRAM_BINS)
    width = edges[1] - edges[0]
    density = counts / (counts.sum() * width)
    bars = [{"from": float(a), "to": float(b), "density": float(d)}
            for a, b, d in zip(edges[:-1], edges[1:], density)]
    y, u = result.value, result.uncertainty
    xs = np.linspace(edges[0], edges[-1], 200)
    curve = [{"x": float(x), "density": float(math.exp(-0.5 * ((x - y) / u) ** 2) / (u * math.sqrt(2 * math.pi)))}
             for x in xs] if u > 0 else []
    out = result.output
    axis = {"title": out}
    low, high = mc.interval
    x = {"type": "quantitative", "scale": {"zero": False, "domain": [float(edges[0]), float(edges[-1])]}}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": {"text": f"{out}: {mc.n - mc.failed:,} Monte Carlo samples and the linear result",
                  "subtitle": f"bars: the samples' density; red: normal({number(y, 6)}, {number(u, 6)}); "
                              f"dashed: the shortest {100 * COVERAGE:g}% interval"},
        "width": 520, "height": 300,
        "layer": [
            {"data": {"values": bars}, "mark": {"type": "rect", "color": "#9ecae1"},
             "encoding": {"x": {"field": "from", **x, "axis": axis}, "x2": {"field": "to"},
                          "y": {"field": "density", "type": "quantitative", "title": "density"}}},
            {"data": {"values": curve}, "mark": {"type": "line", "color": "#d62728", "strokeWidth": 2},
             "encoding": {"x": {"field": "x", **x}, "y": {"field": "density", "type": "quantitative"}}},
            {"data": {"values": [{"x": low}, {"x": high}]},
             "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#444444"},
             "encoding": {"x": {"field": "x", **x}}},
        ],
    }


PLOT_FORMATS = ("png", "svg", "pdf", "html")


def plot_format(path: str) -> str | None:
    """The picture's format, from its file's extension (None if it names none)."""
    extension = path.rpartition(".")[2].lower() if "." in path else ""
    return extension if extension in PLOT_FORMATS else None


def write_plot(result: Propagation, path: str, format: str) -> None:
    """Render the histogram (render.vegalite: nothing fetched) and write it as `>` would."""
    from .output import write_output
    from .render import vegalite

    write_output(path, vegalite(histogram_spec(result), format))
