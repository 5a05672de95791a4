"""Profile confidence intervals of a least-squares fit, as lmfit's `conf_interval` computes them.

For each parameter and each side, the parameter is held at trial values stepping away from the best
fit, the others are fitted again (least_squares on the exact Jacobian's other columns), and the
F-test compares the two χ²: P = F_cdf((χ²_held/χ²_best − 1)·(N − P), 1, N − P). The bound at a level
is where P reaches it (1σ: erf(1/√2) = 0.6827; `0.95`: 0.95), found by Brent's method between the
best value and the first step past the highest level. A side that never reaches a level (a bound of
the parameter, or a χ² that flattens out) is unbounded there: None.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..errors import DiffcliError

MAX_STEPS = 200            # lmfit's maxiter: steps out from the best value, on each side
FLAT = 1e-5                # lmfit's min_rel_change: the probability stops growing, the side is open
ROOT_TOLERANCE = 1e-10     # of the bound, relative to its step (lmfit: 5e-5; tighter here, as cheap)
REFIT_TOLERANCE = 1e-12
MAX_PARAMETERS = 40        # each bound is a root of refits over the other parameters: a network's
MAX_LEVELS = 5             # hundreds would take hours; the covariance's stderr is the quick answer


def levels(text: str, parameters: list[str] = ()) -> list[tuple[str, float]]:
    """`1,2` (in σ) or `0.95` (a probability) -> [(label, probability)]: ("1σ", 0.6827...), ("95%", 0.95);
    refused before any work where there are too many levels or parameters."""
    _check_size(parameters)
    result = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = float(part)
        except ValueError:
            raise DiffcliError("input", f"--confidence {part!r}: not a number (1,2 in σ, or 0.95)") from None
        if not (math.isfinite(value) and 0 < value <= 10):
            raise DiffcliError("input", f"--confidence {part}: give levels in σ (1, 2, 3: at most 10) "
                               "or as a probability between 0 and 1 (0.95)")
        if value < 1:
            result.append((f"{100 * value:g}%", value))
        else:
            result.append((f"{value:g}σ", math.erf(value / math.sqrt(2))))
    if len(result) > MAX_LEVELS:
        raise DiffcliError("input", f"--confidence: {len(result)} levels; at most {MAX_LEVELS}")
    return sorted(dict(result).items(), key=lambda item: item[1])


def _check_size(parameters) -> None:
    """parameters: one label per fitted element (`a`, `W[0,1]`): each is profiled, and each profile
    refits all the others many times."""
    if len(parameters) > MAX_PARAMETERS:
        what = "fitted elements" if any("[" in p for p in parameters) else "parameters"
        raise DiffcliError("input", f"--confidence over {len(parameters)} {what}: at most {MAX_PARAMETERS} "
                           "(each bound refits all the others many times)",
                           help="fit fewer inputs (--wrt), or use the standard errors")


class _Profile:
    """χ² with one parameter held, the others fitted again from the best point."""

    def __init__(self, problem, best: np.ndarray, low: np.ndarray, high: np.ndarray):
        self.problem, self.best, self.low, self.high = problem, best, low, high
        chi_square, _, r, _ = problem.evaluate(best)
        self.chi_square, self.free = chi_square, len(r) - len(best)

    def chi_square_held(self, index: int, value: float) -> float:
        from scipy.optimize import least_squares

        others = [i for i in range(len(self.best)) if i != index]
        x = self.best.copy()
        x[index] = value
        if not others:
            return self.problem.evaluate(x)[0]

        def full(free):
            x[others] = free
            return x

        start = np.clip(self.best[others], self.low[others], self.high[others])
        result = least_squares(lambda free: self.problem.evaluate(full(free))[2], start,
                               jac=lambda free: self.problem.evaluate(full(free))[3][:, others],
                               bounds=(self.low[others], self.high[others]), ftol=REFIT_TOLERANCE,
                               xtol=REFIT_TOLERANCE, gtol=REFIT_TOLERANCE, max_nfev=1000)
        return float(result.cost * 2.0)

    def probability(self, index: int, value: float) -> float:
        from scipy.stats import f

        change = self.chi_square_held(index, value) / self.chi_square - 1.0
        return float(f.cdf(max(change, 0.0) * self.free, 1, self.free))


def intervals(problem, parameters: Mapping[str, float], stderr: Mapping[str, float],
              wanted: list[tuple[str, float]], bounds: Mapping[str, tuple[float, float]] | None = None,
              names: list[str] | None = None) -> dict[str, dict[str, list[float | None]]]:
    """{label: {level: [low, high]}} for each fitted parameter (or those in `names`), an array's
    elements each by its label (`W[0,1]`, row-major), as the standard errors are."""
    from scipy.optimize import brentq

    from .fit import _Stop

    order = problem.labels
    best = problem.flatten(parameters)
    ranges = [(bounds or {}).get(label.partition("[")[0], (-math.inf, math.inf)) for label in order]
    low, high = np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])
    _check_size(order)
    if len(problem.evaluate(best)[2]) <= len(order):
        raise DiffcliError("input", "--confidence needs more data rows than parameters")
    profile = _Profile(problem, best, low, high)
    if profile.chi_square <= 0:
        raise DiffcliError("input", "--confidence: the fit is exact (χ² = 0), so the F-test has nothing "
                           "to compare: no interval")
    top = max(p for _, p in wanted)
    result = {}
    for index, name in enumerate(order):
        if names is not None and name not in names and name.partition("[")[0] not in names:
            continue
        value, error = best[index], stderr.get(name, math.nan)
        step = error if 0 < error < abs(value) else max(abs(value) * 0.2, 0.001)  # lmfit's first step
        sides = []
        for direction in (-1.0, 1.0):
            trace = [(value, 0.0)]
            edge = low[index] if direction < 0 else high[index]
            for _ in range(MAX_STEPS):
                trial = value + direction * step * len(trace)
                at_bound = (trial - edge) * direction >= 0
                trial = edge if at_bound else trial
                try:
                    prob = profile.probability(index, trial)
                except _Stop:
                    break  # undefined beyond here: the side stays open past the last good trial
                previous = trace[-1][1]
                trace.append((trial, prob))
                if prob >= top or at_bound or (prob - previous) / max(prob, previous, 1e-12) < FLAT:
                    break
            bounds_here = []
            for _, target in wanted:
                bracket = next(((a, b) for (a, pa), (b, pb) in zip(trace, trace[1:]) if pa < target <= pb), None)
                if bracket is None:
                    bounds_here.append(None)
                    continue
                a, b = bracket
                bounds_here.append(float(brentq(lambda v: profile.probability(index, v) - target, a, b,
                                                xtol=ROOT_TOLERANCE * step, rtol=4 * np.finfo(float).eps)))
            sides.append(bounds_here)
        result[name] = {label: [lo, hi] for (label, _), lo, hi in zip(wanted, *sides)}
    problem.evaluate(best)  # leave the problem at the solution
    return result
