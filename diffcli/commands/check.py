"""Verify a gradient three ways: reverse mode, forward mode, and a central finite difference.

For every input x the reverse-mode gradient d(out)/dx is compared with
  - forward mode: `engine.tangents`, a separate interpreter propagating tangents through the same
    operation table. The two differ only by the order of rounding, so they must agree to
    AD_RTOL (relative) + atol.
  - a central difference D(h) = (f(x+h) - f(x-h)) / 2h with h = eps^(1/3)·max(1, |x|), the step
    that balances truncation (∝ h²) against rounding (∝ eps/h), refined by Richardson extrapolation,
    D(h/2) + (D(h/2) - D(h))/3, which cancels the h² term: steep functions (sin of a cube) need it.
    They must agree to atol + rtol·max(|reverse|, |numeric|) + the difference's own rounding noise,
    estimated generously as ROUNDING·eps·|out|/h.

Near a kink (relu or abs at 0, a min/max tie; in an array program also a tie among the elements of
a slice of a `max`/`min` reduction and `norm` at 0: each operation's `kink` in ops.py) the
difference disagrees by nature; the row
names the kink and fails, unless kinks are allowed, which waives the finite difference for that row.
A kink counts when the step moves the kink's arguments across it, estimated to first order from the
forward-mode tangents: argument j moves by tangent[j]·h.

Nothing here prints: `check` returns rows; report.py renders them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Mapping

from ..display import Displayed
from ..interpreters import engine
from ..errors import DiffcliError
from ..language.arrays import element_label, operand_label
from ..ops import ArrayOp
from ..program import Program

EPS = sys.float_info.epsilon
RTOL = 1e-6      # finite difference vs reverse mode, relative
ATOL = 1e-8      # finite difference vs reverse mode (and forward vs reverse), absolute
AD_RTOL = 1e-12  # forward vs reverse mode, relative: the same math, rounded in another order
ROUNDING = 16    # safety factor on the finite difference's rounding noise eps·|out|/h


@dataclass
class Row:
    name: str
    analytic: float            # reverse mode
    forward: float             # forward mode
    numeric: float | None      # central difference; None when a step left the domain
    abs_error: float | None    # |analytic - numeric|
    rel_error: float | None    # abs_error / max(|analytic|, |numeric|), 0 when both are 0
    ok: bool
    kink: str | None = None    # the kink the step crosses, e.g. "relu at 0 (line 3)"
    reason: str | None = None  # why the row failed, in a sentence


@dataclass
class CheckResult(Displayed):
    output: str
    value: float
    ok: bool
    rows: list[Row]
    unused: list[str]
    rtol: float
    atol: float
    order: int = 1  # 2: rows are second derivatives (check_second.py)
    sampled: str | None = None  # arrays: which elements were checked, when not all of them


# An array program is checked element by element (a forward-mode pass and two differences each);
# above this many elements in all, a seeded sample of this many, said in the output.
MAX_ELEMENTS_CHECKED = 200
SAMPLE_SEED = 0


def check(program: Program, values: Mapping[str, float] | None = None, of: str | None = None,
          rtol: float = RTOL, atol: float = ATOL, allow_kinks: bool = False) -> CheckResult:
    """Compare reverse mode with forward mode and a finite difference, for every input."""
    run, inputs, node_values, out, _, kinks = setup(program, values, of)
    graph = program.graph
    if graph.shape is not None:
        return _check_arrays(program, run, inputs, node_values, out, kinks, rtol, atol, allow_kinks)
    rows = []
    for name, x in inputs.items():
        tangent = engine.tangents(graph, node_values, graph.names[name], needed=[out])
        h = EPS ** (1 / 3) * max(1.0, abs(x))
        row = Row(name, run.adjoints[graph.names[name]], tangent[out], None, None, None, True)
        row.kink = _kink(graph, node_values, tangent, h, kinks)
        central = lambda step, name=name: _central(graph, inputs, name, out, step)  # noqa: E731
        _compare(row, central, h, node_values[out], f"{name} = {x:g}", rtol, atol, allow_kinks)
        rows.append(row)
    return CheckResult(run.output, run.value, all(r.ok for r in rows), rows, run.unused, rtol, atol)


def setup(program: Program, values, of):
    """The run (which checks the names and values), the inputs, the node values, the output
    node, which nodes feed it, and the kinks among them as (node, test)."""
    run = program.run(values, of)  # checks the names and values; the forward and reverse passes
    graph = program.graph
    inputs = {name: run.inputs[name] for name in graph.inputs}
    node_values, out = run.values, run.output_node
    feeds = graph.feeds(out)
    kinks = [(i, op.kink) for i, op in enumerate(graph.op)
             if op is not None and op.kink is not None and feeds[i]]
    return run, inputs, node_values, out, feeds, kinks


def _compare(row, central, h, value, where, rtol, atol, allow_kinks):
    """Judge row.analytic against central(step), a central difference, at `where` ("x = 2")."""
    a, f = row.analytic, row.forward
    n = None
    try:
        # Richardson extrapolation of central differences at h and h/2 cancels the h² error term
        coarse, fine = (central(step) for step in (h, h / 2))
    except DiffcliError as error:
        row.ok = False
        place = f" (line {error.line})" if error.line else ""
        row.reason = (f"the finite-difference step {where} ± {h:.2g} leaves the domain: "
                      f"{error.message}{place}; check at a point farther from the edge")
    else:
        n = fine + (fine - coarse) / 3
        if not math.isfinite(n) or not math.isfinite(a - n):
            row.ok = False
            row.reason = f"the finite difference overflows at {where} ± {h:.2g}; rescale the inputs"
            n = None
    if n is not None:
        row.numeric = n
        row.abs_error = abs(a - n)
        scale = max(abs(a), abs(n))
        row.rel_error = row.abs_error / scale if scale else 0.0
    if row.reason is None and row.kink is not None and not allow_kinks:
        row.ok = False
        row.reason = (f"kink: {row.kink}: a finite difference cannot check a gradient there "
                      "(pass --allow-kinks to accept it)")
    elif row.reason is None and row.kink is None:
        noise = ROUNDING * EPS * max(abs(value), 1e-300) / h
        allowed = atol + rtol * max(abs(a), abs(row.numeric)) + noise
        if not row.abs_error <= allowed:
            row.ok = False
            row.reason = (f"reverse mode {a!r} and the finite difference {row.numeric!r} differ by "
                          f"{row.abs_error:.3g} (allowed {allowed:.3g})")
    ad_allowed = AD_RTOL * max(abs(a), abs(f)) + atol
    if not abs(a - f) <= ad_allowed:
        row.ok = False
        row.reason = (f"reverse mode {a!r} and forward mode {f!r} differ by {abs(a - f):.3g} "
                      f"(allowed {ad_allowed:.3g}); this is a bug in diffcli")


def _central(graph, inputs, name, out, h) -> float:
    x = inputs[name]
    up, down = (engine.forward(graph, {**inputs, name: x + s})[out] for s in (h, -h))
    return (up - down) / ((x + h) - (x - h))  # the step actually taken, after rounding x ± h


def _check_arrays(program, run, inputs, node_values, out, kinks, rtol, atol, allow_kinks) -> CheckResult:
    """check on an array program: a row per element of every input (`W[0,1]`), or a seeded sample."""
    import numpy as np

    graph = program.graph
    elements = [(name, index) for name, x in inputs.items() for index in np.ndindex(*np.shape(x))]
    sampled = None
    if len(elements) > MAX_ELEMENTS_CHECKED:
        chosen = np.random.default_rng(SAMPLE_SEED).choice(len(elements), MAX_ELEMENTS_CHECKED, replace=False)
        sampled = (f"{MAX_ELEMENTS_CHECKED} of the inputs' {len(elements):,} elements, a sample drawn "
                   f"with seed {SAMPLE_SEED}")
        elements = [elements[k] for k in sorted(chosen)]
    rows = []
    for name, index in elements:
        x = inputs[name]
        label = name + ("[" + ",".join(map(str, index)) + "]" if index else "")
        seed = None
        if index:
            seed = np.zeros(np.shape(x))
            seed[index] = 1.0
        tangent = engine.tangents(graph, node_values, graph.names[name], needed=[out], seed=seed)
        here = float(np.asarray(x)[index]) if index else float(x)
        h = EPS ** (1 / 3) * max(1.0, abs(here))
        analytic = float(np.asarray(run.adjoints[graph.names[name]])[index]) if index else float(run.adjoints[graph.names[name]])
        row = Row(label, analytic, float(tangent[out]), None, None, None, True)
        row.kink = _array_kink(graph, node_values, tangent, h, kinks)

        def central(step, name=name, index=index, x=x):
            values = []
            for s in (step, -step):
                moved = np.array(x, dtype=float)
                moved[index] += s
                values.append(float(engine.forward(graph, {**inputs, name: moved})[out]))
            return (values[0] - values[1]) / ((here + step) - (here - step))

        _compare(row, central, h, float(node_values[out]), f"{label} = {here:g}", rtol, atol, allow_kinks)
        rows.append(row)
    return CheckResult(run.output, float(run.value), all(r.ok for r in rows), rows, run.unused, rtol, atol,
                       sampled=sampled)


def _array_kink(graph, values, tangent, h, kinks) -> str | None:
    """The first kink a node crosses at some element, for a step of h (as _kink): an elementwise
    node's at one of its elements, a reduction's between the elements of its argument (a tie in
    `max`/`min` within a slice, `norm` at 0)."""
    import numpy as np

    for i, crossed in kinks:
        args = graph.args[i]
        if graph.op[i].__class__ is ArrayOp:
            x = np.asarray(values[args[0]], dtype=float)
            moves = np.broadcast_to(np.asarray(tangent[args[0]], dtype=float) * h, x.shape)
            found = crossed(np, graph.attrs.get(i), np.asarray(values[i]), x, moves)
            if found is not None:
                what, indexes = found
                name = operand_label(graph, args[0])
                line = graph.source.line_col(graph.expr[i].start)[0]
                return what.format(*(name + element_label(index) for index in indexes), x=name) + f" (line {line})"
            continue
        moves = [np.broadcast_to(np.asarray(tangent[j]) * h, np.shape(values[i])) for j in args]
        moving = np.flatnonzero(np.any([m != 0 for m in moves], axis=0))
        for k in moving[:10_000]:
            index = np.unravel_index(k, np.shape(values[i])) if np.ndim(values[i]) else ()
            at = lambda v: float(np.asarray(v)[index]) if np.ndim(v) else float(v)  # noqa: E731
            what = crossed(at(values[i]), [at(values[j]) for j in args], [at(m) for m in moves])
            if what is not None:
                line = graph.source.line_col(graph.expr[i].start)[0]
                return f"{what} (line {line})"
    return None


def _kink(graph, values, tangent, h, kinks) -> str | None:
    """The first of the kinks (node, test) that a step of h in this input crosses, or None."""
    for i, crossed in kinks:
        args = graph.args[i]
        what = crossed(values[i], [values[j] for j in args], [tangent[j] * h for j in args])
        if what is not None:
            line = graph.source.line_col(graph.expr[i].start)[0]
            return f"{what} (line {line})"
    return None
