"""Uncertainty propagation (GUM, JCGM 100:2008, and its Monte Carlo supplement, JCGM 101:2008).

The inputs' standard uncertainties come from the file (`x = 2.1 ± 0.1`, `x = 2.1 ± 5%`) or the
caller; correlation coefficients from the caller. The law of propagation (GUM 5.1.2, 5.2.2) takes
the sensitivities c_i = ∂y/∂x_i from one reverse pass:

    u_c² = Σ_i Σ_j c_i c_j u_i u_j r_ij

`order=2` adds, for normal inputs, the variance of the quadratic term of y's Taylor series from the
exact Hessian H: ½·tr((H·V)²) with V the inputs' covariance matrix. For uncorrelated inputs this is
Σ_i Σ_j ½·(∂²y/∂x_i∂x_j)²·u_i²·u_j², the first of the two terms of the note to GUM 5.1.2; the other,
∂y/∂x_i·∂³y/∂x_i∂x_j²·u_i²·u_j², needs third derivatives and is not included.

`monte_carlo=N` draws N normal samples of the inputs (correlated through a Cholesky factor of the
correlation matrix) and runs them through the batch engine in chunks; points outside a domain are
counted, not dropped silently.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from ..display import Displayed
from ..errors import DiffcliError

if TYPE_CHECKING:  # pragma: no cover
    from ..program import Program

# Monte Carlo: points per batch.run call, and how many standard errors of the simulation count as
# a disagreement with the linear result (3: a false alarm about once in 200 runs, mean and std)
CHUNK = 200_000
MAX_SAMPLES = 50_000_000  # the time they take (about a minute) is the bound: memory does not grow
EXACT_SAMPLES = 1_000_000  # up to this many outputs are kept (8 MB) and sorted: the interval exactly
FINE_BINS = 1 << 18        # past it, counted in this many bins over 2× the range kept so far (2 MB)
AGREEMENT_ERRORS = 3.0
COVERAGE = 0.95


@dataclass
class BudgetRow:
    """One uncertain input's part: its value, standard uncertainty u, sensitivity ∂y/∂x, the
    contribution |∂y/∂x|·u, and its share of the combined variance (0 to 1; with correlations,
    each covariance term is split evenly between its two inputs, so a share may be negative)."""

    name: str
    value: float
    u: float
    sensitivity: float
    contribution: float
    share: float


@dataclass
class SecondOrder:
    """The GUM's second-order term (see the module's docstring)."""

    term: float         # the variance it adds: ½·tr((H·V)²)
    uncertainty: float  # sqrt(u_c² + term)
    change: float       # uncertainty - the first-order u_c
    mean_shift: float   # ½·tr(H·V): the second-order shift of y's expectation, for information


@dataclass
class MonteCarlo:
    """JCGM 101: N samples through the model; the statistics are over the points that succeeded."""

    n: int
    mean: float
    std: float
    interval: tuple[float, float]  # the shortest 95% coverage interval
    failed: int
    first_error: DiffcliError | None  # the first failed point's error, to show
    agrees: bool  # mean and std within AGREEMENT_ERRORS standard errors of the linear result
    samples: object = field(repr=False, default=None)  # the successful outputs (an _Outputs)


@dataclass
class Propagation(Displayed):
    output: str
    value: float
    uncertainty: float
    budget: list[BudgetRow]  # sorted by share, largest first
    inputs: dict[str, float]  # every input, as used
    correlations: dict[tuple[str, str], float]
    unused: list[str]
    second_order: SecondOrder | None = None
    monte_carlo: MonteCarlo | None = None


def amount(given: str | float, what: str) -> tuple[float, bool]:
    """`0.1` -> (0.1, False), `"5%"` -> (0.05, True): a standard uncertainty as written, or given
    as a number."""
    from ..language.parser import read_number

    text = given.strip() if isinstance(given, str) else repr(given)
    relative = isinstance(given, str) and text.endswith("%")
    if isinstance(given, str):
        value = read_number(text[:-1].rstrip() if relative else text)
    else:
        value = float(given) if isinstance(given, (int, float)) and not isinstance(given, bool) else None
    if value is None:
        raise DiffcliError("input", f"{what}: {text!r} is not an uncertainty",
                           help="write a number (0.1) or a percentage (5%)")
    if not math.isfinite(value) or value < 0:
        raise DiffcliError("input", f"{what}: {text!r} is not an uncertainty",
                           help="an uncertainty is a finite number ≥ 0")
    return (value / 100 if relative else value), relative


def propagate(
    program: Program,
    values: Mapping[str, float] | None = None,
    of: str | None = None,
    *,
    uncertainties: Mapping[str, float | str] | None = None,
    correlations: Mapping[tuple[str, str], float] | None = None,
    order: int = 1,
    monte_carlo: int | None = None,
    seed: int | None = None,
) -> Propagation:
    """The output's value and combined standard uncertainty, with the budget; see the module.
    (`program.uncertainty(...)` calls this.)

    `uncertainties` adds to or overrides the file's: a standard uncertainty, or a string `"5%"` for
    a relative one (of the value used). `correlations` maps pairs of uncertain inputs to r.
    """
    if order not in (1, 2):
        raise DiffcliError("input", f"--order {order}: the order is 1 or 2")
    result = program.grad(values, of)
    inputs = result.inputs
    given = dict(program.graph.uncertainties)
    for name, u in (uncertainties or {}).items():
        program.check_input(name, "--uncertainty")
        given[name] = amount(u, f"--uncertainty {name}")
    if not given:
        raise DiffcliError(
            "input", "no input has an uncertainty",
            help="write one in the file, like `x = 2.1 ± 0.1` or `x = 2.1 ± 5%`, or give --uncertainty x=0.1",
        )
    names = [name for name in program.graph.inputs if name in given]  # file order
    u = [given[name][0] * abs(inputs[name]) if given[name][1] else given[name][0] for name in names]
    c = [result.gradients[name] for name in names]
    r = _correlation_matrix(names, correlations or {})

    # c_i u_i Σ_j r_ij c_j u_j: input i's part of the variance (each covariance split evenly), in
    # units of a power of two near the largest contribution (exact), so that u = 1e-320 does not
    # underflow to a variance of 0 nor u = 1e200 overflow
    cu = [ci * ui for ci, ui in zip(c, u)]
    largest = max((abs(x) for x in cu), default=0.0)
    if not math.isfinite(largest):
        raise DiffcliError("domain", "the combined variance overflows",
                           help="rescale the inputs or their uncertainties")
    exponent = math.frexp(largest)[1]
    cu = [math.ldexp(x, -exponent) for x in cu]
    if r is None:
        parts = [x * x for x in cu]
    else:
        parts = [cu[i] * math.fsum(r[i][j] * cu[j] for j in range(len(names))) for i in range(len(names))]
    variance = math.fsum(parts)
    if r is not None:
        # the rounding of the parts: a variance below it is an exact cancellation (y = a - 3b with
        # r(a, b) = 1 and u_a = 3u_b), 0 and not noise whose shares are ±10^17 %
        noise = 4 * sys.float_info.epsilon * math.fsum(
            abs(cu[i]) * math.fsum(abs(r[i][j] * cu[j]) for j in range(len(names))) for i in range(len(names)))
        variance = 0.0 if variance <= noise else variance
    uncertainty = math.ldexp(math.sqrt(variance), exponent)
    if not math.isfinite(uncertainty):
        raise DiffcliError("domain", "the combined variance overflows",
                           help="rescale the inputs or their uncertainties")
    budget = [
        BudgetRow(name, inputs[name], ui, ci, abs(ci) * ui, part / variance if variance > 0 else 0.0)
        for name, ui, ci, part in zip(names, u, c, parts)
    ]
    budget.sort(key=lambda row: -row.share)
    variance = uncertainty * uncertainty  # in the output's units, for the second order
    propagation = Propagation(
        result.output, result.value, uncertainty, budget, inputs,
        dict(correlations or {}), result.unused,
    )
    overflow = DiffcliError("domain", "the combined variance overflows", help="rescale the inputs or their "
                            "uncertainties (the second order and Monte Carlo work with variances)")
    import numpy as np

    if order == 2:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is the error below, no warning
            second = propagation.second_order = _second_order(program, inputs, result.output, names, u, r,
                                                              variance)
        if not all(map(math.isfinite, (variance, second.term, second.mean_shift))):
            raise overflow
    if monte_carlo is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            mc = propagation.monte_carlo = _monte_carlo(program, inputs, result.output, names, u, r,
                                                        monte_carlo, seed, propagation)
        if not all(map(math.isfinite, (variance, mc.mean, mc.std, *mc.interval))):
            raise overflow
    return propagation


def _correlation_matrix(names: list[str], correlations: Mapping[tuple[str, str], float]):
    """The inputs' correlation matrix (lists), or None when they are uncorrelated; checked: every
    pair names two different uncertain inputs, |r| ≤ 1, and the matrix is positive semidefinite."""
    if not correlations:
        return None
    index = {name: i for i, name in enumerate(names)}
    r = [[float(i == j) for j in range(len(names))] for i in range(len(names))]
    for (a, b), value in correlations.items():
        what = f"--correlation {a},{b}={value}"
        for name in (a, b):
            if name not in index:
                raise DiffcliError("input", f"{what}: `{name}` is not an input with an uncertainty",
                                   help="inputs with uncertainties: " + (", ".join(names) or "(none)"))
        if a == b:
            raise DiffcliError("input", f"{what}: an input's correlation with itself is 1",
                               help="name two different inputs")
        if not (isinstance(value, (int, float)) and -1 <= value <= 1):
            raise DiffcliError("input", f"{what}: a correlation coefficient lies in [-1, 1]")
        r[index[a]][index[b]] = r[index[b]][index[a]] = float(value)
    import numpy as np

    smallest = float(np.linalg.eigvalsh(np.array(r)).min())
    if smallest < -1e-10:
        raise DiffcliError(
            "input", "the correlation coefficients are inconsistent: their matrix is not positive "
            f"semidefinite (smallest eigenvalue {smallest:.3g})",
            help="no inputs can be correlated like that; check the signs and sizes of the coefficients",
        )
    return r


def _covariance(u: list[float], r):
    import numpy as np

    u = np.array(u)
    return np.diag(u * u) if r is None else np.array(r) * np.outer(u, u)


def _second_order(program, inputs, output, names, u, r, variance) -> SecondOrder:
    import numpy as np

    h = np.array(_hessian(program, inputs, output, names))
    hv = h @ _covariance(u, r)
    term = max(0.5 * float(np.trace(hv @ hv)), 0.0)
    total = math.sqrt(variance + term)
    return SecondOrder(term, total, total - math.sqrt(variance), 0.5 * float(np.trace(hv)))


def _hessian(program, inputs, output, names) -> list[list[float]]:
    """The exact Hessian of `output` with respect to `names`, at `inputs`."""
    result = program.hessian(inputs, output, names)
    return [[result.hessian[a][b] for b in names] for a in names]


def _monte_carlo(program, inputs, output, names, u, r, n, seed, linear: Propagation) -> MonteCarlo:
    import numpy as np

    from . import batch

    if not 2 <= n <= MAX_SAMPLES:
        raise DiffcliError("input", f"--monte-carlo {n}: between 2 and {MAX_SAMPLES:,} samples",
                           help="a million samples give the mean and the standard deviation to "
                           "about 0.1% of u")
    # SFC64: a generator that passes PractRand, and half again as fast as NumPy's default here,
    # where drawing the normals is most of the work besides the batch engine's
    rng = np.random.Generator(np.random.SFC64(seed))
    factor = None
    if r is not None:
        # a factor F with F·Fᵀ = the correlation matrix, through its eigenvalues: a Cholesky
        # factor up to rotation, which also takes a singular matrix (r = ±1)
        values, vectors = np.linalg.eigh(np.array(r))
        factor = vectors * np.sqrt(np.clip(values, 0.0, None))
    scale = np.array(u)[:, None]
    centre = np.array([inputs[name] for name in names])[:, None]
    columns = dict(inputs)  # the exact inputs stay at their values
    outputs, failed, first_error = _Outputs(), 0, None
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        x = rng.standard_normal((len(names), size))  # one contiguous row per input
        if factor is not None:
            x = factor @ x
        x *= scale
        x += centre
        columns.update(zip(names, x))
        chunk = batch.run(program, columns, output, gradients=False)
        outputs.add(chunk.value[~chunk.failed])
        failed += int(chunk.failed.sum())
        if first_error is None and chunk.errors:
            first_error = chunk.errors[min(chunk.errors)]
    m = outputs.m
    if m < 2:
        raise DiffcliError(
            "domain", f"{failed} of {n} Monte Carlo samples left a domain: no statistics to give",
            help=f"the first failure: {first_error.message}" if first_error else None,
        )
    mean, std = outputs.mean, math.sqrt(outputs.squares / (m - 1))
    interval = outputs.interval(COVERAGE)
    # the simulation's own standard errors: of the mean s/√m, of the standard deviation s/√(2(m-1))
    rounding = 1e-12 * (abs(linear.value) + linear.uncertainty)  # (when every u is 0)
    agrees = (abs(mean - linear.value) <= AGREEMENT_ERRORS * std / math.sqrt(m) + rounding
              and abs(std - linear.uncertainty) <= AGREEMENT_ERRORS * std / math.sqrt(2 * (m - 1)) + rounding)
    return MonteCarlo(n, mean, std, interval, failed, first_error, agrees, outputs)


class _Outputs:
    """The Monte Carlo outputs' statistics, gathered a chunk at a time in memory that does not grow
    with their number: the mean and the sum of squared deviations by Chan et al.'s pairwise update
    (each chunk's own by NumPy); the outputs themselves while there are at most EXACT_SAMPLES (the
    interval is then exact); past that, counts in FINE_BINS bins spanning twice the range of the
    outputs kept (outputs beyond it in two end bins, with the extremes kept exactly)."""

    def __init__(self):
        self.m, self.mean, self.squares = 0, 0.0, 0.0
        self.low, self.high = math.inf, -math.inf
        self.kept: list = []
        self.counts = None  # bin 0: below `start`; 1..FINE_BINS; FINE_BINS + 1: above

    def add(self, values) -> None:
        import numpy as np

        k = len(values)
        if not k:
            return
        mean = float(values.mean())
        squares = float(np.square(values - mean).sum())
        total = self.m + k
        delta = mean - self.mean
        self.squares += squares + delta * delta * self.m * k / total
        self.mean += delta * k / total
        self.m = total
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        if self.counts is None:
            self.kept.append(values.copy())
            if self.m > EXACT_SAMPLES:
                kept, self.kept = np.concatenate(self.kept), []
                span = (self.high - self.low) or max(abs(self.low), 1.0)
                self.start, self.width = self.low - span / 2, 2 * span / FINE_BINS
                self.counts = np.zeros(FINE_BINS + 2, np.int64)
                self._count(kept)
        else:
            self._count(values)

    def _count(self, values) -> None:
        import numpy as np

        where = np.floor((values - self.start) / self.width)
        bins = np.clip(where, -1, FINE_BINS).astype(np.int64) + 1
        self.counts += np.bincount(bins, minlength=FINE_BINS + 2)

    def sorted(self):
        import numpy as np

        return np.sort(np.concatenate(self.kept))

    def interval(self, coverage: float) -> tuple[float, float]:
        """The shortest interval holding `coverage` of the outputs (JCGM 101, 7.7.2): exactly, or
        from the bins (then it holds at least that share, and is at most two bins wider)."""
        import numpy as np

        if self.counts is None:
            return shortest_interval(self.sorted(), coverage)
        q = _window(self.m, coverage)
        counts = self.counts
        after = np.cumsum(counts)       # outputs in bins 0..j
        before = after - counts         # the rank of the first output in bin i
        lefts = self.start + (np.arange(FINE_BINS + 2) - 1) * self.width
        lefts[0] = self.low
        rights = lefts + self.width
        rights[0], rights[-1] = self.start, self.high
        starts = np.flatnonzero((counts > 0) & (before + q < self.m))
        ends = np.searchsorted(after, before[starts] + q, side="right")
        widths = rights[ends] - lefts[starts]
        best = int(np.argmin(widths))
        return float(max(lefts[starts[best]], self.low)), float(min(rights[ends[best]], self.high))

    def histogram(self, bins: int):
        """(counts, edges) of `bins` equal bins from the lowest output to the highest."""
        import numpy as np

        if self.counts is None:
            return np.histogram(self.sorted(), bins=bins)
        inside = np.flatnonzero(self.counts[1:-1])
        first, last = (inside[0], inside[-1] + 1) if len(inside) else (0, 1)
        groups = np.linspace(first, last, bins + 1).round().astype(np.int64)
        counts = np.add.reduceat(self.counts[1:-1], groups[:-1])
        counts[groups[:-1] == groups[1:]] = 0   # (reduceat's empty groups)
        counts[0] += self.counts[0]
        counts[-1] += self.counts[-1]
        edges = self.start + groups * self.width
        edges[0], edges[-1] = self.low, self.high
        return counts, edges


def _window(m: int, coverage: float) -> int:
    """The interval spans the ranks r..r+q of the sorted outputs."""
    return min(max(int(coverage * m + 0.5), 1), m - 1)


def shortest_interval(samples, coverage: float) -> tuple[float, float]:
    """The shortest interval holding `coverage` of the samples (JCGM 101, 7.7.2)."""
    import numpy as np

    y = np.sort(samples)
    m = len(y)
    q = _window(m, coverage)
    widths = y[q:] - y[: m - q]
    r = int(np.argmin(widths))
    return float(y[r]), float(y[r + q])
