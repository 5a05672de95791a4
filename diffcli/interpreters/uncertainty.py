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

An array input is as many inputs as it has elements (row-major, labelled `x[0]`, `W[0,1]`), each
with its own u (one for all, one per element, or a percentage of each); a group per array sums
its elements' shares and gives u(y) from them alone. On an array program the Monte Carlo runs
array_batch with the sample axis leading, and the second order's Hessian, where `Program.hessian`
does not take the program, is taken by central differences of the exact gradient
(`_difference_hessian`).
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
# arrays: uncertain elements in a budget, correlated (a dense matrix), in a second order (a Hessian
# of differences: 2k gradients); numbers of an array program's Monte Carlo drawn at a time (32 MB)
MAX_BUDGET = 100_000
MAX_CORRELATED = 1_000
MAX_SECOND_ORDER = 1_000
SAMPLE_NUMBERS = 1 << 22
MAX_SAMPLE_WORK = 10**10  # an array program's samples × operations on numbers per sample: about a minute


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
    group: str | None = None  # an element's array (`x` for `x[0]`); None for a scalar input


@dataclass
class Group:
    """An array input's elements together: the output's standard uncertainty from them alone
    (their covariances with one another included), and the sum of their shares."""

    name: str
    shape: tuple
    contribution: float
    share: float


@dataclass
class SecondOrder:
    """The GUM's second-order term (see the module's docstring)."""

    term: float         # the variance it adds: ½·tr((H·V)²)
    uncertainty: float  # sqrt(u_c² + term)
    change: float       # uncertainty - the first-order u_c
    mean_shift: float   # ½·tr(H·V): the second-order shift of y's expectation, for information
    exact: bool = True  # H exact (Program.hessian), or by differences where that takes no such program


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
    groups: list[Group] | None = None  # one per array input with an uncertainty, in budget order


def amount(given, what: str):
    """`0.1` -> (0.1, False), `"5%"` -> (0.05, True): a standard uncertainty as written, or given
    as a number; `"[0.1, 0.2]"` (or a list, or a NumPy array) -> (an array, False), one per element
    of an array input."""
    from ..language.parser import read_array, read_number

    if not isinstance(given, (str, int, float)) or isinstance(given, bool):
        return _amounts(given, what, repr(given))
    text = given.strip() if isinstance(given, str) else repr(given)
    if isinstance(given, str) and text.startswith("["):
        array = read_array(text)
        if array is None:
            raise DiffcliError("input", f"{what}: {text!r} is not an uncertainty",
                               help="write a number (0.1), a percentage (5%) or, for an array input, "
                               "an array of numbers ([0.1, 0.2])")
        return _amounts(array, what, text)
    relative = isinstance(given, str) and text.endswith("%")
    if isinstance(given, str):
        value = read_number(text[:-1].rstrip() if relative else text)
    else:
        value = float(given)
    if value is None:
        raise DiffcliError("input", f"{what}: {text!r} is not an uncertainty",
                           help="write a number (0.1) or a percentage (5%)")
    if not math.isfinite(value) or value < 0:
        raise DiffcliError("input", f"{what}: {text!r} is not an uncertainty",
                           help="an uncertainty is a finite number ≥ 0")
    return (value / 100 if relative else value), relative


def _amounts(given, what: str, text: str):
    """An array of standard uncertainties, checked: finite numbers ≥ 0, a vector or a matrix."""
    import numpy as np

    try:
        array = np.asarray(given, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim not in (1, 2) or not array.size:
        raise DiffcliError("input", f"{what}: {text[:40]!r} is not an uncertainty",
                           help="write a number (0.1), a percentage (5%) or an array of numbers ([0.1, 0.2])")
    if not (np.isfinite(array).all() and (array >= 0).all()):
        raise DiffcliError("input", f"{what}: {text[:40]!r} holds a value that is not an uncertainty",
                           help="an uncertainty is a finite number ≥ 0")
    return array, False


def _standard(name: str, value, given, what: str):
    """The standard uncertainties of an input's value (one float for a scalar, an array of the
    value's shape for an array) from its amount: absolute, relative to |value|, or per element."""
    amount, relative = given
    if isinstance(value, float) and isinstance(amount, float):  # the linear path keeps NumPy unimported
        return amount * abs(value) if relative else amount
    import numpy as np

    shape = np.shape(value)
    if np.ndim(amount) and np.shape(amount) != shape:
        from ..ops import shape_text

        words = lambda s: "a scalar" if not s else f"a vector of {s[0]}" if len(s) == 1 else f"a {shape_text(s)} matrix"
        raise DiffcliError("input", f"{what}: `{name}` is {words(shape)}, but its uncertainty is "
                           f"{words(np.shape(amount))}",
                           help=f"give one uncertainty for every element ({words(shape)}), or one number for all"
                           if shape else f"give {name} one uncertainty, like {name}=0.1")
    if not shape:
        return amount * abs(value) if relative else amount
    u = np.abs(np.asarray(value, dtype=float)) * amount if relative else np.broadcast_to(
        np.asarray(amount, dtype=float), shape)
    return np.array(u, dtype=float)


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
    a relative one (of the value used); for an array input, also one per element (a list, a NumPy
    array or a string `"[0.1, 0.2]"` of its shape). `correlations` maps pairs of uncertain inputs,
    or of an array's elements (`("x[0]", "k")`), to r. An array input's budget rows are its
    elements, and `groups` has one entry per array.
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
    elements = _Elements(program, names, inputs, given, result.gradients)
    labels, u, c = elements.labels, elements.u, elements.c
    correlations = elements.canonical(correlations or {})
    r = _correlation_matrix(labels, correlations, elements)

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
        parts = [cu[i] * math.fsum(r[i][j] * cu[j] for j in range(len(labels))) for i in range(len(labels))]
    variance = math.fsum(parts)
    if r is not None:
        # the rounding of the parts: a variance below it is an exact cancellation (y = a - 3b with
        # r(a, b) = 1 and u_a = 3u_b), 0 and not noise whose shares are ±10^17 %
        noise = 4 * sys.float_info.epsilon * math.fsum(
            abs(cu[i]) * math.fsum(abs(r[i][j] * cu[j]) for j in range(len(labels))) for i in range(len(labels)))
        variance = 0.0 if variance <= noise else variance
    uncertainty = math.ldexp(math.sqrt(variance), exponent)
    if not math.isfinite(uncertainty):
        raise DiffcliError("domain", "the combined variance overflows",
                           help="rescale the inputs or their uncertainties")
    budget = [
        BudgetRow(label, value, ui, ci, abs(ci) * ui, part / variance if variance > 0 else 0.0, group)
        for label, value, ui, ci, part, group in zip(labels, elements.values, u, c, parts, elements.groups)
    ]
    groups = elements.subtotals(budget, cu, r, exponent)
    budget = _grouped(budget, groups)
    variance = uncertainty * uncertainty  # in the output's units, for the second order
    propagation = Propagation(
        result.output, result.value, uncertainty, budget, inputs,
        dict(correlations or {}), result.unused, groups=groups or None,
    )
    overflow = DiffcliError("domain", "the combined variance overflows", help="rescale the inputs or their "
                            "uncertainties (the second order and Monte Carlo work with variances)")
    if order == 2 or monte_carlo is not None:
        import numpy as np
    if order == 2:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is the error below, no warning
            second = propagation.second_order = _second_order(program, inputs, result.output, elements, u, r,
                                                              variance)
        if not all(map(math.isfinite, (variance, second.term, second.mean_shift))):
            raise overflow
    if monte_carlo is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            mc = propagation.monte_carlo = _monte_carlo(program, inputs, result.output, elements, u, r,
                                                        monte_carlo, seed, propagation)
        if not all(map(math.isfinite, (variance, mc.mean, mc.std, *mc.interval))):
            raise overflow
    return propagation


class _Elements:
    """The uncertain inputs, one entry per scalar input and per element of an array input (row-major,
    labelled `x[0]`, `W[0,1]`), each with its value, standard uncertainty and sensitivity."""

    def __init__(self, program, names, inputs, given, gradients):
        self.names = names
        self.shapes: dict[str, tuple] = {}  # array inputs only
        self.spans: dict[str, tuple[int, int]] = {}  # every input: its entries' range
        self.labels, self.values, self.u, self.c, self.groups = [], [], [], [], []
        for name in names:
            value = inputs[name]
            u = _standard(name, value, given[name], f"--uncertainty {name}")
            start = len(self.labels)
            shape = tuple(getattr(value, "shape", ()))
            if not shape:
                self.labels.append(name)
                self.values.append(value)
                self.u.append(u)
                self.c.append(gradients[name])
                self.groups.append(None)
            else:
                import numpy as np

                if start + value.size > MAX_BUDGET:
                    raise DiffcliError("input", f"more than {MAX_BUDGET:,} uncertain elements, too many to list "
                                       "in a budget", help="give fewer inputs an uncertainty")
                from ..language.arrays import element_label

                self.shapes[name] = shape
                self.labels.extend(name + element_label(index) for index in np.ndindex(*shape))
                self.values.extend(np.asarray(value, dtype=float).ravel().tolist())
                self.u.extend(u.ravel().tolist())
                self.c.extend(np.asarray(gradients[name], dtype=float).ravel().tolist())
                self.groups.extend([name] * value.size)
            self.spans[name] = (start, len(self.labels))

    def listing(self) -> str:
        """The uncertain inputs, an array as its first and last element."""
        parts = [name if name not in self.shapes else
                 f"{self.labels[self.spans[name][0]]} … {self.labels[self.spans[name][1] - 1]}" for name in self.names]
        return ", ".join(parts) or "(none)"

    def canonical(self, correlations: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
        """The correlations with element labels written as the budget writes them (`W[0, 1]` ->
        `W[0,1]`, `x[-1]` -> `x[2]`); an array named whole, or an element out of range, refused."""
        if not self.shapes:
            return dict(correlations)
        return {(self._label(a, a, b, r), self._label(b, a, b, r)): r for (a, b), r in correlations.items()}

    def _label(self, label: str, a: str, b: str, r) -> str:
        from ..language.arrays import element_label

        what = f"--correlation {a},{b}={r}"
        name, bracket, rest = label.partition("[")
        name = name.strip()
        shape = self.shapes.get(name)
        if shape is None:
            return label
        words = f"a vector of {shape[0]}" if len(shape) == 1 else f"a {shape[0]}×{shape[1]} matrix"
        first, last = self.labels[self.spans[name][0]], self.labels[self.spans[name][1] - 1]
        if not bracket:
            raise DiffcliError("input", f"{what}: `{name}` is an array ({words}): correlate its elements",
                               help=f"name elements, like {first},{last}=0.3")
        parts = rest[:-1].split(",") if rest.endswith("]") else None
        try:
            index = [int(part) for part in parts] if parts else None
        except ValueError:
            index = None
        if index is None or len(index) != len(shape) or not all(-n <= i < n for i, n in zip(index, shape)):
            raise DiffcliError("input", f"{what}: `{label.strip()}` is not an element of `{name}` ({words})",
                               help=f"its elements are {first} … {last}")
        return name + element_label(tuple(i % n for i, n in zip(index, shape)))

    def subtotals(self, budget, cu, r, exponent) -> list[Group]:
        """Each array input's group: u from its elements alone, and their shares summed."""
        groups = []
        for name, shape in self.shapes.items():
            a, b = self.spans[name]
            if r is None:
                variance = math.fsum(x * x for x in cu[a:b])
            else:
                variance = math.fsum(cu[i] * math.fsum(r[i][j] * cu[j] for j in range(a, b)) for i in range(a, b))
            groups.append(Group(name, shape, math.ldexp(math.sqrt(max(variance, 0.0)), exponent),
                                math.fsum(row.share for row in budget[a:b])))
        return groups


def _grouped(budget: list[BudgetRow], groups: list[Group]) -> list[BudgetRow]:
    """The budget sorted by share, largest first, an array's elements kept together (the array
    placed by its group's share, its elements by theirs); ties in file order, then row-major.
    `groups` is put in the same order."""
    shares = {group.name: group.share for group in groups}
    units: dict[str, list[BudgetRow]] = {}
    for row in budget:
        units.setdefault(row.name if row.group is None else row.group, []).append(row)
    order = sorted(units, key=lambda key: -(shares[key] if key in shares else units[key][0].share))
    groups.sort(key=lambda group: order.index(group.name))
    out = []
    for key in order:
        out.extend(sorted(units[key], key=lambda row: -row.share))
    return out


def _correlation_matrix(names: list[str], correlations: Mapping[tuple[str, str], float], elements):
    """The inputs' correlation matrix (lists; an array's elements one by one), or None when they
    are uncorrelated; checked: every pair names two different uncertain inputs (or elements), |r| ≤ 1,
    and the matrix is positive semidefinite."""
    if not correlations:
        return None
    if len(names) > MAX_CORRELATED:
        raise DiffcliError("input", f"--correlation: {len(names):,} uncertain elements are too many to correlate "
                           f"(at most {MAX_CORRELATED:,}: the correlation matrix is dense)",
                           help="give fewer inputs an uncertainty, or leave them uncorrelated")
    index = {name: i for i, name in enumerate(names)}
    r = [[float(i == j) for j in range(len(names))] for i in range(len(names))]
    for (a, b), value in correlations.items():
        what = f"--correlation {a},{b}={value}"
        for name in (a, b):
            if name not in index:
                raise DiffcliError("input", f"{what}: `{name}` is not an input with an uncertainty",
                                   help="inputs with uncertainties: " + elements.listing())
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


def _second_order(program, inputs, output, elements, u, r, variance) -> SecondOrder:
    import numpy as np

    try:
        h, exact = np.array(_hessian(program, inputs, output, elements.labels)), True
    except DiffcliError as error:
        # an array program whose Hessian `hessian` does not take (not yet, or not so many elements:
        # the shapes are known good, the gradient ran): differences of its exact gradient instead
        if error.kind != "shape" or not program.has_arrays:
            raise
        h, exact = _difference_hessian(program, inputs, output, elements, u), False
    hv = h @ _covariance(u, r)
    term = max(0.5 * float(np.trace(hv @ hv)), 0.0)
    total = math.sqrt(variance + term)
    return SecondOrder(term, total, total - math.sqrt(variance), 0.5 * float(np.trace(hv)), exact)


def _hessian(program, inputs, output, names) -> list[list[float]]:
    """The exact Hessian of `output` with respect to `names`, at `inputs`."""
    result = program.hessian(inputs, output, names)
    return [[result.hessian[a][b] for b in names] for a in names]


def _difference_hessian(program, inputs, output, elements, u):
    """An array program's Hessian over the uncertain elements: central differences of its exact
    gradients, all 2k of them in one batched run (array_batch). The step, ε^(1/3)·max(|x|, u) per
    element, makes the error about ε^(2/3) relative (1e-11) for smooth models, and none for a model
    of degree two. Only the columns of elements with u > 0 are computed: the others meet a zero row
    and column of the covariance."""
    import numpy as np

    from . import array_batch

    k = len(elements.labels)
    if k > MAX_SECOND_ORDER:
        raise DiffcliError("input", f"--order 2: a Hessian over {k:,} uncertain elements is too big "
                           f"(at most {MAX_SECOND_ORDER:,})",
                           help="give fewer inputs an uncertainty, or use --monte-carlo N")
    x, us = np.array(elements.values), np.array(u)
    moving = np.flatnonzero(us > 0)
    matrix = np.zeros((k, k))
    if not len(moving):
        return matrix
    steps = np.cbrt(np.finfo(float).eps) * np.maximum(np.abs(x[moving]), us[moving])
    points = {}
    for name in elements.names:
        start, stop = elements.spans[name]
        shape = elements.shapes.get(name, ())
        column = np.repeat(np.asarray(inputs[name], dtype=float).reshape(1, -1), 2 * len(moving), axis=0)
        for n, (j, h) in enumerate(zip(moving, steps)):
            if start <= j < stop:
                column[2 * n, j - start] += h
                column[2 * n + 1, j - start] -= h
        points[name] = column.reshape((2 * len(moving),) + shape)
    fixed = {name: value for name, value in inputs.items() if name not in points and program.is_input(name)}
    run = array_batch.run(program, points, fixed, output)
    if run.failed.any():
        error = run.errors[int(np.flatnonzero(run.failed)[0])]
        raise DiffcliError("domain", f"--order 2: a step of the Hessian's differences leaves a domain: {error.message}",
                           help="the second order of an array program is taken by central differences of "
                           "the exact gradient, a step of about 6e-6·|x| from each element")
    grads = np.concatenate([run.gradients[name].reshape(2 * len(moving), -1) for name in elements.names], axis=1)
    matrix[:, moving] = (grads[0::2] - grads[1::2]).T / (2 * steps)
    keep = np.zeros(k, bool)
    keep[moving] = True
    matrix[~keep, :] = 0.0
    return (matrix + matrix.T) / 2


def _monte_carlo(program, inputs, output, elements, u, r, n, seed, linear: Propagation) -> MonteCarlo:
    import numpy as np

    from . import array_batch, batch

    names = elements.labels

    if not 2 <= n <= MAX_SAMPLES:
        raise DiffcliError("input", f"--monte-carlo {n}: between 2 and {MAX_SAMPLES:,} samples",
                           help="a million samples give the mean and the standard deviation to "
                           "about 0.1% of u")
    if program.has_arrays:  # (each sample costs as much as its arrays: MAX_SAMPLES alone takes hours)
        work = array_batch.work_per_point(program.graph, list(elements.spans))
        if n * work > MAX_SAMPLE_WORK:
            raise DiffcliError("input", f"--monte-carlo {n}: this program's samples take about {work:,} "
                               f"operations each, {n * work:,} in all, more than {MAX_SAMPLE_WORK:,} "
                               "(about a minute)", help=f"at most {MAX_SAMPLE_WORK // work:,} samples of it")
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
    centre = np.array(elements.values)[:, None]
    columns = dict(inputs)  # the exact inputs stay at their values
    arrays = program.has_arrays
    fixed = {name: value for name, value in inputs.items() if name not in elements.spans and program.is_input(name)}
    # (an array program's samples: at most about SAMPLE_NUMBERS numbers drawn at a time)
    step = CHUNK if not arrays else max(1, min(CHUNK, SAMPLE_NUMBERS // max(1, len(names))))
    outputs, failed, first_error = _Outputs(), 0, None
    for start in range(0, n, step):
        size = min(step, n - start)
        x = rng.standard_normal((len(names), size))  # one contiguous row per input
        if factor is not None:
            x = factor @ x
        x *= scale
        x += centre
        if arrays:  # the sample axis leading, each array's elements row-major after it
            points = {name: x[a:b].T.reshape((size,) + elements.shapes.get(name, ()))
                      for name, (a, b) in elements.spans.items()}
            chunk = array_batch.run(program, points, fixed, output, gradients=False)
        else:
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
