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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from ..display import Displayed
from ..errors import DiffcliError

if TYPE_CHECKING:  # pragma: no cover
    from ..program import Program

# Monte Carlo: points per batch.run call, and how many standard errors of the simulation count as
# a disagreement with the linear result (3: a false alarm about once in 200 runs, mean and std)
CHUNK = 200_000
MAX_SAMPLES = 50_000_000  # their outputs are kept (for the interval): 400 MB
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
    samples: object = field(repr=False, default=None)  # the successful outputs (NumPy array)


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

    # c_i u_i Σ_j r_ij c_j u_j: input i's part of the variance (each covariance split evenly)
    cu = [ci * ui for ci, ui in zip(c, u)]
    if r is None:
        parts = [x * x for x in cu]
    else:
        parts = [cu[i] * math.fsum(r[i][j] * cu[j] for j in range(len(names))) for i in range(len(names))]
    variance = math.fsum(parts)
    if not math.isfinite(variance):
        raise DiffcliError("domain", "the combined variance overflows",
                           help="rescale the inputs or their uncertainties")
    variance = max(variance, 0.0)  # rounding, with strong negative correlations
    budget = [
        BudgetRow(name, inputs[name], ui, ci, abs(ci) * ui, part / variance if variance > 0 else 0.0)
        for name, ui, ci, part in zip(names, u, c, parts)
    ]
    budget.sort(key=lambda row: -row.share)
    propagation = Propagation(
        result.output, result.value, math.sqrt(variance), budget, inputs,
        dict(correlations or {}), result.unused,
    )
    if order == 2:
        propagation.second_order = _second_order(program, inputs, result.output, names, u, r, variance)
    if monte_carlo is not None:
        propagation.monte_carlo = _monte_carlo(program, inputs, result.output, names, u, r,
                                               monte_carlo, seed, propagation)
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
    outputs, failed, first_error = [], 0, None
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        x = rng.standard_normal((len(names), size))  # one contiguous row per input
        if factor is not None:
            x = factor @ x
        x *= scale
        x += centre
        columns.update(zip(names, x))
        chunk = batch.run(program, columns, output, gradients=False)
        outputs.append(chunk.value[~chunk.failed])
        failed += int(chunk.failed.sum())
        if first_error is None and chunk.errors:
            first_error = chunk.errors[min(chunk.errors)]
    samples = np.concatenate(outputs)
    m = len(samples)
    if m < 2:
        raise DiffcliError(
            "domain", f"{failed} of {n} Monte Carlo samples left a domain: no statistics to give",
            help=f"the first failure: {first_error.message}" if first_error else None,
        )
    mean, std = float(samples.mean()), float(samples.std(ddof=1))
    interval = shortest_interval(samples, COVERAGE)
    # the simulation's own standard errors: of the mean s/√m, of the standard deviation s/√(2(m-1))
    rounding = 1e-12 * (abs(linear.value) + linear.uncertainty)  # (when every u is 0)
    agrees = (abs(mean - linear.value) <= AGREEMENT_ERRORS * std / math.sqrt(m) + rounding
              and abs(std - linear.uncertainty) <= AGREEMENT_ERRORS * std / math.sqrt(2 * (m - 1)) + rounding)
    return MonteCarlo(n, mean, std, interval, failed, first_error, agrees, samples)


def shortest_interval(samples, coverage: float) -> tuple[float, float]:
    """The shortest interval holding `coverage` of the samples (JCGM 101, 7.7.2)."""
    import numpy as np

    y = np.sort(samples)
    m = len(y)
    q = min(max(int(coverage * m + 0.5), 1), m - 1)
    widths = y[q:] - y[: m - q]
    r = int(np.argmin(widths))
    return float(y[r]), float(y[r + q])


def gum_text(value: float, u: float) -> str:
    """`47.0 ± 3.2`: the uncertainty to two significant digits, the value to the same decimal
    place (GUM 7.2.6); a power of ten factored out when the numbers are very large or small."""
    if u == 0 or not math.isfinite(u):
        return f"{value:.6g} ± 0"
    exponent = math.floor(math.log10(u))
    if round(u, 1 - exponent) >= 10 ** (exponent + 1):  # 9.96 rounds to 10: two digits are "10"
        exponent += 1
    scale = max(abs(value), u)
    power = math.floor(math.log10(scale))
    if -4 <= power <= 5 and exponent >= -6:
        if exponent >= 1:  # u ≥ 10: round both to u's second digit, a power of ten ≥ 1
            step = 10 ** (exponent - 1)
            return f"{_fixed(round(value / step) * step, 0)} ± {_fixed(round(u / step) * step, 0)}"
        return f"{_fixed(value, 1 - exponent)} ± {_fixed(u, 1 - exponent)}"
    decimals = max(1 - exponent + power, 0)
    return f"({_fixed(value / 10 ** power, decimals)} ± {_fixed(u / 10 ** power, decimals)})e{power}"


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no `-0.0`
