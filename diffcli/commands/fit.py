"""Fitting: minimize an output over some inputs, or fit a formula's parameters to data.

The objective is the program's output at one point, or with data its mean over the rows (value and
gradient from one pass of the batch engine per evaluation), or in residual mode the sum of squares
of a per-row residual, whose exact Jacobian (one row per data row) drives SciPy's least_squares.
SciPy's minimize does the rest of the methods with exact gradients; plain gradient descent and Adam
are written out here because they are what training is (micrograd's demo uses the first).

Nothing here prints: progress goes to a callback, and a `Fit` holds everything a report needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ..display import Displayed
from ..errors import DiffcliError
from ..language.graph import did_you_mean
from ..program import Program
from ..language.syntax import Binary, Name, Number, Paren, Unary

SCIPY_METHODS = ("L-BFGS-B", "BFGS", "CG", "Newton-CG")
METHODS = SCIPY_METHODS + ("least_squares", "gd", "adam")
BOUNDED = ("L-BFGS-B", "least_squares", "gd", "adam")
DEFAULT_STEPS = 100          # gd and adam; SciPy's methods use their own limits unless --steps
MAX_STEPS = 1_000_000        # the history keeps every step's objective: 32 MB at most
DEFAULT_LR = {"gd": 1.0, "adam": 0.01}
FINAL_LR_SHARE = 0.1         # the learning rate falls linearly to a tenth (micrograd: 1.0 -> 0.1)
CORRELATION_SHOWN = 0.1      # lmfit's default: smaller correlations are not reported
ILL_CONDITIONED = 1e10
# least_squares stops when a step changes χ² by less than TOL of itself, or the parameters by less
# than TOL of their size: both relative, so that the data's units do not matter. SciPy's third test
# (the gradient below an absolute gtol) is off: it stops early where the residuals are small (NIST's
# Lanczos1), and the gradient is judged relative to the residuals instead (STATIONARY).
DEFAULT_TOL, FIRST_TOL = 1e-15, 1e-10
POLISH_STEPS, POLISHED, ROUNDING_GROWTH = 3, 1e-12, 1e-12
STATIONARY = 1e-6      # the largest cosine between a column of J and the residual vector at a minimum
ROUNDING_LEVEL = 1000  # residuals within this many roundings of the values: χ² has few correct digits
MIN_EVALUATIONS, EVALUATIONS_PER_PARAMETER = 2000, 200       # condition number of JᵀJ above which the covariance is not trusted
MAX_RESIDUAL_PARAMETERS = 2_000   # an array residual's Jacobian: a forward pass per fitted element
GRADIENT_NOISE = 1e-9        # a gradient below this share of its terms' total size is rounding noise
TINY, EPS = float(np.finfo(float).tiny), float(np.finfo(float).eps)   # (Python floats: cheaper in scalar arithmetic)
RUNAWAY = 1e9                # a fall, and a parameter's move, this many times their start's size


@dataclass
class Fit(Displayed):
    """What a fit found, and how."""

    method: str
    objective_text: str          # what was minimized, in words
    rows: int                    # data rows (0 without --data)
    converged: bool
    message: str
    steps: int
    evaluations: int
    objective: float
    parameters: dict[str, float]
    start: dict[str, float]
    gradient: dict[str, float]
    history: list[float]
    stderr: dict[str, float] | None = None
    correlation: dict[str, dict[str, float]] | None = None   # every pair a < b, in file order
    covariance: np.ndarray | None = None   # scaled as stderr is; rows and columns in `parameters` order
    scale: float | None = None   # what the covariance is scaled by: the reduced χ², or 1 with absolute σ
    statistics: dict[str, float] | None = None   # residual fits: rows, parameters, χ², AIC, BIC, R²
    confidence: dict[str, dict[str, list[float]]] | None = None   # profile intervals, by level
    absolute_sigma: bool = False
    warnings: list[str] = field(default_factory=list)
    report: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    error: DiffcliError | None = None   # why it stopped early: the objective was not finite
    curve: dict[str, np.ndarray] | None = None  # per-row values at the solution, for the plot
    gradient_terms: dict[str, float] = field(default_factory=dict)  # Σ|each row's share| (see noise)

    def settled(self) -> Fit:
        """This fit with the figures that only a report reads computed (`gradient_terms`, and with a
        residual `correlation` and `statistics`): `fit(..., later=True)` leaves them for the first
        time they are asked for, as Program.fit's result does."""
        later = self.__dict__.pop("_later", None)
        if later is not None:
            import warnings

            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                later(self)
        return self

    def is_noise(self, name: str) -> bool:
        """Whether the gradient's component is at the level of rounding noise: a sum of terms that
        cancel keeps an error of a few ε times their total size, Σ|term| (more where each term has
        its own rounding), so a sum below GRADIENT_NOISE of it has no digit that means anything
        (and differs between machines). One term (no data) is never noise by this measure."""
        base, _, rest = name.partition("[")  # an element, `W[0,1]`, or a whole parameter
        gradient, terms = self.gradient[base], self.gradient_terms.get(base, 0.0)
        if rest:
            index = tuple(int(k) for k in rest.rstrip("]").split(","))
            gradient = np.asarray(gradient)[index]
            terms = np.asarray(terms)[index] if np.shape(terms) else terms
        return bool(np.all(np.abs(gradient) < GRADIENT_NOISE * terms))


@dataclass
class _Point:
    """The scalar engine's result in the batch engine's shape: one row."""

    value: float
    gradients: dict[str, float]
    values: dict[str, float]
    n: int = 1
    jacobian: np.ndarray | None = None   # an array residual's: its elements × the parameters'


class _Stop(Exception):
    """An evaluation failed (a domain error, or a non-finite objective): stop at the best point."""

    def __init__(self, error: DiffcliError):
        self.error = error


# ---------------------------------------------------------------- the problem

class Problem:
    """The objective and its exact gradient as functions of the parameter vector."""

    def __init__(self, program: Program, parameters: list[str], *, of: str | None = None,
                 residual: str | None = None, data: Mapping[str, np.ndarray] | None = None,
                 fixed: Mapping[str, float] | None = None, data_name: str = "the data",
                 sigma: np.ndarray | None = None, observed: str | None = None):
        self.program, self.parameters = program, parameters
        self.sigma = sigma          # each row's residual is divided by its σ (weighted least squares)
        self.observed = observed    # the data column the residual compares with, for R²
        self.residual = residual
        self.output = residual or of or program.output
        self.data = dict(data or {})
        self.data_name = data_name
        self.rows = len(next(iter(self.data.values()))) if self.data else 0
        self.fixed = dict(fixed or {})
        self.evaluations = 0
        self.best: tuple[float, np.ndarray] | None = None
        self._last: tuple[bytes, tuple] | None = None
        self._pending: tuple[bytes, np.ndarray, float] | None = None   # (x, r, χ²) of `residuals`, its Jacobian not yet taken
        self.columns = {**self.fixed, **self.data}
        self.shapes: dict[str, tuple] = {}    # each parameter's shape (() a scalar), set by `start`
        self.residual_size = 1                # without data: the residual's elements
        self.arrays = bool(getattr(program, "base", None) is not None and program.base.arrays)
        self._passes = None   # the batch engine's passes set up for this fit (see `_rows`), once
        self.factored = None  # (a Jacobian, its `factored` SVD): the polish's last, for the covariance
        self.checked = False  # the names of `columns` checked as the batch engine checks them (by setup)

    # -- the parameter vector: arrays flattened row-major, in --wrt order
    def start(self, start: Mapping[str, object]) -> np.ndarray:
        """The starting vector, and each parameter's shape taken from its starting value."""
        self.shapes = {name: () if type(v := start[name]) is float else tuple(np.shape(v)) for name in self.parameters}
        self.arrays = self.arrays or any(self.shapes.values())
        return self.flatten(start)

    def flatten(self, named: Mapping[str, object]) -> np.ndarray:
        if len(self.shapes) == len(self.parameters) and not any(self.shapes.values()):   # scalars
            return np.array([named[p] for p in self.parameters], float)
        return np.concatenate([np.ravel(np.asarray(named[p], float)) for p in self.parameters]) \
            if self.parameters else np.zeros(0)

    def unflatten(self, x: np.ndarray) -> dict:
        """Each parameter's value from the vector: a float, or an array of its shape."""
        if len(self.shapes) == len(self.parameters) == x.size and not any(self.shapes.values()):   # scalars
            return dict(zip(self.parameters, x.tolist()))
        named, k = {}, 0
        for name in self.parameters:
            shape = self.shapes.get(name, ())
            size = math.prod(shape)
            named[name] = float(x[k]) if not shape else x[k:k + size].reshape(shape).copy()
            k += size
        return named

    @property
    def labels(self) -> list[str]:
        """One label per element of the vector: `a`, `W[0,1]` (SPEC: row-major, no spaces)."""
        if not any(self.shapes.values()):   # (scalars: their names)
            return list(self.parameters)
        labels = []
        for name in self.parameters:
            shape = self.shapes.get(name, ())
            labels += [name] if not shape else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]
        return labels

    def describe(self) -> str:
        rows = f" over {self.rows} rows" if self.rows else ""
        if self.residual:
            return f"sum of squares of {self.residual}{rows}"
        return f"mean of {self.output}{rows}" if self.rows else f"value of {self.output}"

    def _run(self, x: np.ndarray, of: str | None = None, *, gradients: bool = True, all_names=False):
        """One pass at x: over the rows by the batch engine, or at the one point by the scalar one."""
        columns = dict(self.columns)
        columns.update(self.unflatten(x))
        of = of or self.output
        if not self.rows:
            try:
                if of == self.residual and self.arrays and gradients:
                    return self._array_residual(columns)
                point = self.program.grad(columns, of) if gradients else self.program.evaluate(columns)
            except DiffcliError as error:
                raise _Stop(error) from None
            return _Point(point.values[of] if not gradients else point.value,
                          point.gradients if gradients else {}, point.values)
        if self.arrays:   # one pass of the batched array engine, the rows leading
            from ..interpreters import array_batch

            reduce = "mean" if gradients and not self.residual else None
            result = array_batch.run(self.program, self.data, {**self.fixed, **self.unflatten(x)}, of,
                                     gradients=gradients, reduce=reduce, all_names=all_names)
        else:
            from ..interpreters import batch

            result = batch.run(self.program, columns, of, gradients=gradients, all_names=all_names,
                               wrt=self.parameters if gradients and not all_names else None)
        if result.failed.any():
            row = int(np.flatnonzero(result.failed)[0])
            error = result.errors.get(row) or DiffcliError("domain", f"`{of}` is not finite")
            raise _Stop(DiffcliError(
                error.kind, f"{error.message} (data row {row + 1} of {self.data_name})", error.span,
                source=error.source, help=error.help, notes=error.notes, operation=error.operation))
        return result

    def _planned(self, x: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The objective and its gradient (flattened as x is) at x by the program's compiled plan
        (interpreters/array_plan.py), for an array program without data: the inputs checked once,
        at the first point, and at each only the parameters' gradients and the values they need
        computed. None where the plan cannot run, or where x or a value is not finite: then the
        interpreter's pass runs and says why."""
        plan = self.__dict__.get("_plan")
        if plan is False or not x.size or not ((total := float(x.sum())) - total == 0.0):
            return None
        if plan is None:
            self._plan = False
            if self.rows or not self.arrays or self.residual:
                return None
            from ..interpreters import array_plan

            program = self.program
            try:
                self._plan_inputs = program._inputs({**self.columns, **self.unflatten(x)})[0]
            except DiffcliError:
                return None
            graph = program.graph
            if graph.shape is None or graph.shape[graph.names[self.output]]:
                return None
            self._nodes = [graph.names[p] for p in self.parameters]
            plan = array_plan.plan(graph, graph.names[self.output], wanted=tuple(sorted(set(self._nodes))),
                                   keep=(), checked=False)
            if plan is None:
                return None
            # the plan's arguments: the fixed inputs once; each array parameter, a view made once of
            # a buffer that each point is copied into (the plan's results never alias its inputs);
            # a scalar one, a NumPy scalar taken from the point
            self._plan_args = plan.arguments(self._plan_inputs)
            self._plan_buffer = np.empty(x.size)
            self._plan_scalars, k = [], 0
            for name in self.parameters:
                shape = self.shapes.get(name, ())
                size = math.prod(shape)
                if shape:
                    self._plan_args[plan.inputs.index(name)] = self._plan_buffer[k:k + size].reshape(shape)
                else:
                    self._plan_scalars.append((plan.inputs.index(name), k))
                k += size
            self._plan_pieces = [(node, np.zeros(max(1, math.prod(graph.shape[node])))) for node in self._nodes]
            self._plan, self._plan_output = plan, graph.names[self.output]
            self._plan_failures = array_plan.FAILURES
        arguments = self._plan_args
        self._plan_buffer[...] = x
        for position, k in self._plan_scalars:
            arguments[position] = x[k]
        try:
            done = plan.function(*arguments)   # (fit runs under np.errstate(all="ignore"))
        except self._plan_failures:   # (none is expected: the interpreter then says what it is)
            return None
        if done is None:
            return None
        values, adjoints = done
        flat = np.concatenate([adjoints[node].ravel() if node in adjoints else zero for node, zero in self._plan_pieces])
        if not ((total := float(flat.sum())) - total == 0.0 or np.isfinite(flat).all()):
            return None   # the interpreter's reverse pass: its error, or its zero-blocked gradient
        return float(values[self._plan_output]), flat

    def _array_residual(self, columns) -> _Point:
        """Without data, a residual that is an array (`r = A @ X - Y`): its elements are the rows of
        the least squares, and its Jacobian comes by forward mode, one tangent pass per parameter
        element (at most MAX_RESIDUAL_PARAMETERS of them)."""
        from ..interpreters import engine

        program = self.program
        run = program.run(columns, self.residual, adjoints=False)
        graph, node = program.graph, program.graph.names[self.residual]
        if not graph.shape[node]:   # a scalar: as any other output
            point = program.grad(columns, self.residual)
            return _Point(point.value, point.gradients, point.values)
        if len(self.labels) > MAX_RESIDUAL_PARAMETERS:
            raise DiffcliError("input", f"--residual {self.residual} of an array: its Jacobian takes a pass per "
                               f"fitted element, and {len(self.labels):,} are more than {MAX_RESIDUAL_PARAMETERS:,}",
                               help="minimize a scalar loss instead (sum of squares: --of with sum(r^2))")
        columns_of_j = []
        for name in self.parameters:
            shape = self.shapes[name]
            for index in np.ndindex(*shape) if shape else [()]:
                seed = None
                if shape:
                    seed = np.zeros(shape)
                    seed[index] = 1.0
                tangent = engine.tangents(graph, run.values, graph.names[name], seed=seed)
                columns_of_j.append(np.ravel(np.broadcast_to(tangent[node], graph.shape[node])))
        r = np.ravel(run.values[node])
        self.residual_size = r.size
        return _Point(r, {}, {}, n=r.size, jacobian=np.column_stack(columns_of_j))

    def evaluate(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """The objective, its gradient, and the per-row output and Jacobian (rows × parameters)."""
        key = x.tobytes()
        last = self._last
        if last is not None and last[0] == key:
            return last[1]
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == key:   # `residuals` ran here: its Jacobian now
            _, r, f = pending
            jacobian = self._passes.jacobian()
            if jacobian is None:
                r, jacobian = self._interpreted(x)
                if self.sigma is not None:
                    r = r / self.sigma
                f = float(r.dot(r))
            elif self.sigma is None:   # (both made contiguous by the passes: transposed_product's call)
                g = 2.0 * r.dot(jacobian)
                # (f finite, tested by `residuals`, and the best point updated there; g as _evaluated tests it)
                if (total := sum(g.tolist())) - total == 0.0 or np.isfinite(g).all():
                    found = self._last = (key, (f, g, r, jacobian))
                    return found[1]
                return self._evaluated(key, x, f, g, r, jacobian)
            if self.sigma is not None:
                jacobian = jacobian / self.sigma[:, None]
            return self._evaluated(key, x, f, 2.0 * transposed_product(jacobian, r), r, jacobian)
        self.evaluations += 1
        passes = self._passes
        if passes and self.residual:   # the passes set up: r, tested by χ² as `residuals` tests it, then J
            r = passes.residual(x, check_output=False)
            if r is not None:
                if self.sigma is not None:
                    r = r / self.sigma
                f = float(r.dot(r))
                jacobian = passes.jacobian() if math.isfinite(f) else None
                if jacobian is not None:
                    if self.sigma is not None:
                        jacobian = jacobian / self.sigma[:, None]
                    return self._evaluated(key, x, f, 2.0 * transposed_product(jacobian, r), r, jacobian)
            # (something not finite: the passes again below, and the engine's pass says what and where)
        planned = self._planned(x)
        if planned is not None:   # one point: r its value, the Jacobian its gradient (as below)
            f, g = planned   # (both finite: checked by the plan)
            return self._evaluated(key, x, f, g, np.array([f]), g[None, :], checked=True)
        rows = self._rows(x)
        if rows is not None:   # the passes set up for this fit, everything finite
            r, jacobian = rows
        else:
            r, jacobian = self._interpreted(x)
        if self.residual:
            if self.sigma is not None:
                r, jacobian = r / self.sigma, jacobian / self.sigma[:, None]
            f, g = float(r.dot(r)), 2.0 * transposed_product(jacobian, r)
        else:
            f, g = float(r.mean()), jacobian.mean(axis=0)
        return self._evaluated(key, x, f, g, r, jacobian)

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """The per-row residual at x, its Jacobian left for `evaluate` to finish there if asked (an
        optimizer's trial points need only the residual). As `evaluate` where there are no passes
        set up for this fit, or where something is not finite (then `evaluate` says what and where)."""
        key = x.tobytes()
        if self._last is not None and self._last[0] == key:
            return self._last[1][2]
        if self._pending is not None and self._pending[0] == key:
            return self._pending[1]
        passes = self._passes
        r = passes.residual(x, check_output=False) if passes and self.residual else None
        if r is None:
            return self.evaluate(x)[2]
        raw = r
        if self.sigma is not None:
            r = r / self.sigma
        f = float(r.dot(r))   # (finite only where r is: the residuals' own test)
        if not math.isfinite(f):
            if not np.isfinite(raw).all():   # `evaluate` says what and where
                return self.evaluate(x)[2]
            self.evaluations += 1
            self._evaluated(key, x, f, None, r, None)   # (raises, as `evaluate` does)
        self.evaluations += 1
        if self.best is None or f < self.best[0]:
            self.best = (f, x.copy())
        self._pending = (key, r, f)
        return r

    def _evaluated(self, key, x, f, g, r, jacobian, checked=False):
        # g finite: its sum is (inf or NaN otherwise), or, where a sum of finite ones overflows, each is
        # (a few entries summed as Python floats: only whether the sum is finite matters)
        if not checked and not (math.isfinite(f) and ((total := sum(g.tolist()) if g.size <= 8 else float(np.add.reduce(g)))
                                                      - total == 0.0 or np.isfinite(g).all())):
            raise _Stop(DiffcliError(
                "domain", f"the objective ({self.describe()}) is not finite at this point",
                help="bound the parameters (--bounds), start elsewhere, or lower --lr"))
        if self.best is None or f < self.best[0]:
            self.best = (f, x.copy())
        self._last = (key, (f, g, r, jacobian))
        return f, g, r, jacobian

    def _rows(self, x: np.ndarray):
        """(r, Jacobian) over the rows of a scalar program from the passes set up once for this fit
        (the names and columns checked then, the parameters' partials only); None where there are no
        such passes (arrays, no data) or something is not finite (`_run` then says what and where)."""
        passes = self._passes
        if passes is None:
            if not self.rows or self.arrays or not hasattr(self.program, "base") or self.program.has_arrays:
                self._passes = False
                return None
            from ..interpreters import batch

            passes = self._passes = batch.Residuals(self.program, self.columns, self.output, self.parameters,
                                                    checked=self.checked)
        return passes(x) if passes else None

    def _interpreted(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(r, Jacobian) by one pass of an engine (`_run`), raising _Stop where it fails."""
        result = self._run(x)
        n = max(result.n, 1)
        r = _column(result.value, n)
        if getattr(result, "jacobian", None) is not None:   # an array residual's, at one point
            jacobian = result.jacobian
        elif getattr(result, "reduce", None) == "mean":  # the batched array engine's mean gradient
            jacobian = self.flatten(result.gradients)[None, :]   # (no rows' shares: never noise)
        elif self.rows and self.arrays:   # each row's gradient, arrays flattened: rows × elements
            jacobian = np.column_stack([np.reshape(result.gradients[p], (n, -1)) for p in self.parameters])
        elif self.rows:
            jacobian = np.column_stack([_column(result.gradients[p], n) for p in self.parameters])
        else:  # one point: the gradient, arrays flattened as the vector is
            jacobian = self.flatten(result.gradients)[None, :]
        return r, jacobian

    @property
    def has_hessian_vector(self) -> bool:
        """Exact H·v from the program's forward-over-reverse pass (a Program has it)."""
        return hasattr(self.program, "hvp") and not self.arrays

    def hessian_vector(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """H·v of the objective, exact, row by row: the mean of each row's H·v, or for the sum of
        squares of r, 2·Σ (∇r (∇r·v) + r ∇²r·v) (the Gauss-Newton part plus the curvature of r)."""
        columns = dict(self.columns)
        columns.update(zip(self.parameters, map(float, x)))
        vector = dict(zip(self.parameters, map(float, v)))
        total = np.zeros(len(self.parameters))
        for row in range(max(self.rows, 1)):
            if self.rows:
                columns.update((name, float(column[row])) for name, column in self.data.items())
            try:
                result = self.program.hvp(vector, columns, self.output)
            except DiffcliError as error:
                raise _Stop(error) from None
            product = np.array([result.hvp[p] for p in self.parameters])
            if self.residual:
                gradient = np.array([result.gradient[p] for p in self.parameters])
                product = 2.0 * (gradient * float(gradient @ v) + result.value * product)
                if self.sigma is not None:  # r/σ: both terms carry 1/σ²
                    product /= self.sigma[row] ** 2
            total += product
        return total if self.residual else total / max(self.rows, 1)

    def values(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Each named variable's value per row at x (for --report and the plot)."""
        result = self._run(x, gradients=False, all_names=True)
        if not self.rows:   # one point: each value as it is (an array stays one)
            return {name: np.atleast_1d(result.values[name]) if not np.shape(result.values[name])
                    else result.values[name] for name in names}
        n = max(result.n, 1)   # each row's value: (rows,) + the variable's shape
        return {name: np.broadcast_to(result.values[name], (n,) + self.program.shape(name)) for name in names}


def _column(values, n: int) -> np.ndarray:
    """A row-per-entry float array (np.broadcast_to costs more than the fit's own arithmetic here)."""
    values = np.asarray(values, float)
    return values if values.shape == (n,) else np.full(n, values)


def gather(names: list[str], chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A points file's chunks as whole columns: a fit passes over every row at each evaluation."""
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in names}


def setup(program: Program, wrt: list[str], values: dict[str, float], *, of: str | None = None,
          residual: str | None = None, data: Mapping[str, np.ndarray], data_name: str = "the data",
          bounds: Mapping[str, tuple[float, float]] | None = None, report: list[str] = (),
          x_column: str | None = None, write: bool = False, sigma: str | None = None,
          observed: str | None = None) -> tuple[Problem, dict[str, float], list[str]]:
    """Check a fit's names before any work: the problem, the parameters' starting values, and
    warnings (names given values that the program does not use). `sigma` and `observed` name data
    columns: each row's σ (the residual is divided by it), and the measured values (for R²)."""
    warnings = [f"column `{name}` of {data_name}: the program does not use `{name}`"
                for name in data if name not in program.graph.names and name not in (sigma, observed)]
    for option, column in (("--sigma", sigma), ("--observed", observed)):
        if column is None:
            continue
        if residual is None:
            raise DiffcliError("input", f"{option} goes with --residual NAME (a least-squares fit)")
        if column not in data:
            raise DiffcliError("input", f"{option} {column}: {data_name} has no column `{column}`",
                               help=did_you_mean(column, data) or "columns: " + ", ".join(data) or None)
    weights = None
    if sigma is not None:
        weights = np.asarray(data[sigma], float)
        bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))
        if bad.size:
            raise DiffcliError("input", f"--sigma {sigma}: row {bad[0] + 1} of {data_name} has σ = "
                               f"{float(weights[bad[0]])!r}; every σ must be a positive finite number")
    # (a scalar program's data columns are checked here too, as the batch engine checks them: its
    # passes for this fit then need not check them again, see Problem._rows)
    scalar = not program.base.arrays
    warnings += [f"{program.given_label(name)}: the program does not use `{name}`"
                 for name in check_sets(program, values, data, columns_too=scalar)]
    if x_column is not None and x_column not in data:
        raise DiffcliError("input", f"--x {x_column}: {data_name} has no column `{x_column}`",
                           help=did_you_mean(x_column, data) or "columns: " + ", ".join(data))
    for option, names in (("--residual", [residual] if residual else []), ("--of", [of] if of else []),
                          ("--report", report)):
        check_names(program, names, option)
    parameters = choose_parameters(program, wrt, data, write)
    for name in bounds or {}:
        if name not in parameters:
            raise DiffcliError("input", f"--bounds {name}: `{name}` is not one of the fitted inputs",
                               help="fitted: " + ", ".join(parameters))
    inputs = program.inputs   # (a copy each time it is asked for)
    start = {name: values.get(name, inputs.get(name)) for name in parameters}
    if any(v is None for v in start.values()):
        program.evaluate({**dict.fromkeys(data, 0.0), **values})  # says which has no value, and where
    if write:   # a literal that cannot be rewritten is refused before the fit, not after
        written_back(program, start)
    fixed = {name: v for name, v in values.items() if name not in parameters}
    problem = Problem(program, parameters, of=of, residual=residual, data=data, fixed=fixed,
                      data_name=data_name, sigma=weights, observed=observed)
    problem.checked = scalar
    if residual is not None and observed is None:
        problem.observed = compared(problem)[1]
    return problem, start, warnings


def choose_parameters(program: Program, wrt: list[str] | None, data_columns, write: bool) -> list[str]:
    """The inputs to fit: --wrt checked, or every input with a literal value that no data column sets."""
    inputs = program.inputs
    if not wrt:
        chosen = [n for n, default in inputs.items() if default is not None and n not in data_columns]
        if not chosen:
            raise DiffcliError("input", "nothing to fit: the program has no input with a literal value "
                               "that the data does not set", help="name the inputs to fit with --wrt")
        return chosen
    for name in wrt:
        if name not in program.graph.names:
            raise DiffcliError("input", f"--wrt {name}: the program has no variable `{name}`",
                               help=did_you_mean(name, program.graph.names) or
                               "inputs: " + ", ".join(inputs))
        if name not in inputs:
            raise DiffcliError(
                "input", f"--wrt {name}: `{name}` is computed (`{name} = {program.definition(name)}`), "
                "not an input: only inputs can be fitted", help="inputs: " + ", ".join(inputs))
        if name in data_columns:
            raise DiffcliError("input", f"--wrt {name}: `{name}` is a column of the data, set by each row",
                               help="fit the inputs the data does not give")
        if write and inputs[name] is None:
            use = program.graph.first_use[name]
            raise DiffcliError(
                "input", f"--write: `{name}` is a free input (the file never assigns it), so its fitted "
                "value has nowhere to go", (use.start, use.end), source=program.source,
                help=f"give it a starting value in the file (`{name} = 1`) to write it back, or drop --write")
    if len(set(wrt)) != len(wrt):
        raise DiffcliError("input", "--wrt names an input twice")
    return list(wrt)


def fit(problem: Problem, method: str = "L-BFGS-B", *, start: Mapping[str, float],
        steps: int | None = None, lr: float | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        progress: Callable[[int, float, float], None] | None = None,
        absolute_sigma: bool = False, tol: float | None = None, later: bool = False) -> Fit:
    """Minimize the problem's objective from `start`; stops cleanly on Ctrl-C and on a failure.
    NumPy's and SciPy's floating-point warnings stay inside: a trial point that overflows is a
    rejected step or an error with its place, never a warning on standard error. `later`: the
    figures only a report reads are computed when first asked for (Fit.settled), not here."""
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = _fit(problem, method, start=start, steps=steps, lr=lr, bounds=bounds, progress=progress,
                      absolute_sigma=absolute_sigma, tol=tol)
        return result if later else result.settled()


def _fit(problem, method, *, start, steps, lr, bounds, progress, absolute_sigma, tol) -> Fit:
    x0 = problem.start(start)
    names = problem.parameters
    if bounds:
        ranges = {n: bounds.get(n, (-math.inf, math.inf)) for n in names}
        low = problem.flatten({n: np.full(problem.shapes[n], ranges[n][0]) if problem.shapes[n] else ranges[n][0]
                               for n in names})
        high = problem.flatten({n: np.full(problem.shapes[n], ranges[n][1]) if problem.shapes[n] else ranges[n][1]
                                for n in names})
        x0 = np.clip(x0, low, high)
        fixed = [n for n in names if ranges[n][0] == ranges[n][1]]
        if method == "least_squares" and fixed:   # (SciPy's least_squares needs low < high)
            raise DiffcliError("input", f"--bounds {fixed[0]}: least_squares needs LOW below HIGH, "
                               f"and {fixed[0]} has both {ranges[fixed[0]][0]:g}",
                               help=f"to keep {fixed[0]} fixed, leave it out of --wrt (--set it instead), "
                                    "or use L-BFGS-B")
    else:   # (clipping to ±inf changes nothing)
        low, high = np.array([-math.inf] * x0.size), np.array([math.inf] * x0.size)
    history: list[float] = []
    state = {"x": x0, "steps": 0}

    def step_done(x: np.ndarray) -> None:
        f, g, *_ = problem.evaluate(x)
        record(x, f, g)

    def record(x: np.ndarray, f: float, g: np.ndarray) -> None:   # a step at x, evaluated: f and g there
        history.append(f)
        state["x"] = x.copy()
        if progress is not None:
            progress(len(history) - 1, f, float(np.linalg.norm(g)))
        if f < 0 and x.size and _runaway(history[0], f, lambda: float((np.abs(x - x0) / np.maximum(1.0, np.abs(x0))).max())):
            raise _Runaway   # (a sum of squares never falls below 0: no test per step)

    step_done.record = record

    interrupted, error, converged, message = False, None, False, ""
    try:
        step_done(x0)  # the start: history[0], and a failure here has no good point to report
    except _Stop as stop:
        raise stop.error from None
    try:
        if method in ("gd", "adam"):
            converged, message = _descend(problem, method, x0, low, high, steps or DEFAULT_STEPS,
                                          DEFAULT_LR[method] if lr is None else lr, step_done, state)
        elif method == "least_squares":
            converged, message = _least_squares(problem, x0, low, high, steps, step_done, state, tol)
        else:
            converged, message = _minimize(problem, method, x0, low, high, steps, step_done, state)
    except KeyboardInterrupt:
        interrupted, message = True, "interrupted (Ctrl-C): the best point so far"
    except _Runaway:
        message = "stopped: the objective falls without bound (the error says more)"
    except _Stop as stop:
        error = stop.error
        message = ("stopped where the objective is undefined or not finite (the error says where); "
                   "this is the best point before it")

    if interrupted or error is not None:
        _, x = problem.best
    else:
        x = state["x"]
    f, g, r, jacobian = problem.evaluate(x)
    if not history or history[-1] != f:
        history.append(f)
    result = Fit(
        method=method, objective_text=problem.describe(), rows=problem.rows, converged=converged,
        message=message, steps=state["steps"], evaluations=problem.evaluations, objective=f,
        parameters=problem.unflatten(x), start=problem.unflatten(x0),
        gradient=problem.unflatten(g), history=history, interrupted=interrupted, error=error,
    )
    names = problem.labels if problem.residual else None
    if problem.residual:
        _uncertainties(result, r, jacobian, names, absolute_sigma, getattr(problem, "factored", None), f)
        if result.stderr and not absolute_sigma and at_rounding_level(problem, r, f):
            result.warnings.append(
                "the residuals are at the level of rounding in the data (χ² ≈ "
                f"{float(r @ r):.2g}): the reduced χ² that scales the standard errors has only a few "
                "correct digits, so the standard errors have too; with known σ, use --sigma and --absolute-sigma")

    def figures(result: Fit) -> None:   # what only a report reads: see Fit.settled
        result.gradient_terms = problem.unflatten(_gradient_terms(problem, r, jacobian))
        if problem.residual:
            if result.covariance is not None:
                result.correlation = correlations(result.covariance, list(result.stderr.values()), names)
            observed = problem.data.get(problem.observed) if problem.observed else None
            result.statistics = statistics(r, len(names), observed, problem.sigma)

    result._later = figures
    if error is None and not interrupted:
        result.error = unbounded(problem, result)
    return result


def unbounded(problem: Problem, fit: Fit) -> DiffcliError | None:
    """The objective looks unbounded below: it fell to far below its start's size (RUNAWAY times)
    while a parameter ran as far away from its start. A finite minimum so far off is no answer."""
    start, fell = fit.history[0], fit.objective
    if not fell < 0:   # (_runaway needs a fall below 0: a sum of squares never is)
        return None
    moved = {name: float(np.max(np.abs(np.subtract(fit.parameters[name], x0)) / np.maximum(1.0, np.abs(x0))))
             for name, x0 in fit.start.items()}  # (an array parameter: its element that ran furthest)
    away = max(moved, key=moved.get, default=None)
    if away is None or not _runaway(start, fell, moved[away]):
        return None
    from ..formatting import number

    residual = _residual_like(problem)
    return DiffcliError(
        "input", f"the objective ({problem.describe()}) is unbounded below: it fell to "
        f"{number(fell, 3)} from {number(start, 6)} while `{away}` ran "
        + (f"to {number(fit.parameters[away], 3)} from {number(fit.start[away], 6)}" if np.ndim(fit.start[away]) == 0
           else f"{number(moved[away], 3)} times its start's size away"),
        help=(f"`{residual}` looks like a residual, and its mean has no minimum: fit it to the data "
              f"by least squares with --residual {residual}") if residual else
        "this output has no minimum: bound the parameters (--bounds), or minimize another (--of)")


def _runaway(start: float, f: float, moved) -> bool:
    """Fallen RUNAWAY times the start's size below it, with a parameter moved RUNAWAY times its own
    (`moved`: that relative move, or a function giving it, asked only once the objective has fallen)."""
    return bool(f < 0 and f < start - RUNAWAY * max(1.0, abs(start))
                and (moved() if callable(moved) else moved) > RUNAWAY)


class _Runaway(Exception):
    """The objective fell without bound: stop, and say so."""


def _residual_like(problem: Problem) -> str | None:
    """The minimized output's name, when it is a residual: a difference with a data column
    (`r = model - y`), or named like one (r, res, resid, residual, err, error)."""
    name = problem.output
    statement = problem.program.graph.definitions.get(name)
    expr = statement.expr if statement is not None else None
    while isinstance(expr, Paren):
        expr = expr.inner
    if isinstance(expr, Binary) and expr.op == "sub" and any(
            isinstance(side, Name) and side.id in problem.data for side in (expr.left, expr.right)):
        return name
    import re

    return name if re.fullmatch(r"(r|res|resid|residuals?|errs?|errors?)(_\w*|\d*)", name) else None


def _gradient_terms(problem: Problem, r: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """Σ over the rows of |each row's share of the gradient|: 2|r ∇r| for a sum of squares, |∇r|/n
    for a mean (the one gradient itself without data)."""
    if problem.residual:
        return 2.0 * np.abs(jacobian * r[:, None]).sum(axis=0)
    return np.abs(jacobian).mean(axis=0)


def _bounded(low: np.ndarray, high: np.ndarray) -> bool:
    """Whether any bound is finite (a few as Python floats: np.isfinite(…).any() costs more)."""
    if low.size <= 8:
        return any(map(math.isfinite, low.tolist() + high.tolist()))
    return bool(np.isfinite(low).any() or np.isfinite(high).any())


def _minimize(problem, method, x0, low, high, steps, step_done, state):
    from scipy.optimize import Bounds, minimize

    def objective(x):
        f, g, *_ = problem.evaluate(x)
        return f, g

    def callback(intermediate_result):
        state["steps"] += 1
        step_done(np.asarray(intermediate_result.x, float))

    options = {"maxiter": steps} if steps else {}
    extra = {}
    if method == "L-BFGS-B" and (np.isfinite(low).any() or np.isfinite(high).any()):
        extra["bounds"] = Bounds(low, high)
    exact_hvp = method == "Newton-CG" and problem.has_hessian_vector
    if exact_hvp:
        extra["hessp"] = problem.hessian_vector
    result = minimize(objective, x0, jac=True, method=method, callback=callback, options=options, **extra)
    state["x"] = np.asarray(result.x, float)
    state["steps"] = int(getattr(result, "nit", state["steps"]))
    message = str(result.message)
    if method == "Newton-CG" and not exact_hvp:  # (an object without `hvp` that stands for a Program)
        message += " (Hessian-vector products by finite differences of the exact gradient)"
    return bool(result.success), message


def _least_squares(problem, x0, low, high, steps, step_done, state, tol=None):
    """SciPy's trust-region least squares on the exact Jacobian. A trial point where a residual is
    undefined or not finite is a rejected step (the trust region shrinks), not the end of the fit;
    the tolerances are relative (on χ², on the step against the parameters, on the gradient's
    cosine with the residual vector, see `converged_cosine`)."""
    def residuals(x):
        try:
            if not np.isfinite(x).all():   # (SciPy's trial step from an exact fit can be NaN: rejected)
                raise _Stop(None)
            return problem.evaluate(x)[2]
        except _Stop:
            return np.full(problem.rows or problem.residual_size, np.nan)

    def jacobian(x):
        return problem.evaluate(x)[3]

    def callback(intermediate_result):
        state["steps"] += 1
        step_done(np.asarray(intermediate_result.x, float))

    cap = steps or max(MIN_EVALUATIONS, EVALUATIONS_PER_PARAMETER * len(x0))
    if tol is None and not _bounded(low, high):
        used = problem.evaluations
        found = _minpack(problem, x0, cap, step_done, state)
        if found is not None:
            return found
        state["x"], state["steps"] = x0, 0   # (the history keeps lm's points: they were evaluated)
        if steps:   # --steps caps the evaluations of both together
            cap -= problem.evaluations - used
            if cap <= 0:
                return False, f"the {steps} evaluations asked for were used up (raise --steps, or start nearer)"
    from scipy.optimize import least_squares

    # By default: to FIRST_TOL, then a few Gauss-Newton steps (each kept only if χ² does not grow),
    # and on to DEFAULT_TOL only where one more such step would still move a parameter by more than
    # FIRST_TOL of itself: most fits end after the first stage and a step or two.
    for stage_tol in ([tol] if tol is not None else [FIRST_TOL, DEFAULT_TOL]):
        result = least_squares(residuals, x0, jac=jacobian, bounds=(low, high), ftol=stage_tol,
                               xtol=stage_tol, gtol=None, max_nfev=cap, callback=callback)
        state["x"] = x = x0 = np.asarray(result.x, float)
        cap -= result.nfev
        if not result.success or cap <= 0:
            return False, f"{result.message} (raise --steps, or start nearer)"
        if tol is not None:
            break
        before = state["steps"]
        x, change = _polish(problem, x, result.active_mask == 0, low, high, step_done, state)
        state["x"] = x0 = x
        polished = state["steps"] - before
        if change <= FIRST_TOL:
            break
    _, _, r, jacobian_matrix = problem.evaluate(x)
    cosine = stationarity(r, jacobian_matrix, result.active_mask == 0)
    if cosine > STATIONARY and not at_rounding_level(problem, r):
        return False, (f"{result.message} But the gradient is not zero there: a column of the Jacobian "
                       f"makes a cosine of {cosine:.1g} with the residuals (at a minimum, about 0). Start "
                       "nearer, or rescale the parameters")
    message = str(result.message)
    if tol is None and polished:
        message += f" Then {polished} Gauss-Newton step{'s' if polished > 1 else ''} to full precision."
    return True, message


MINPACK_MESSAGES = {1: "`ftol` termination condition is satisfied.",
                    2: "`xtol` termination condition is satisfied.",
                    3: "`ftol` and `xtol` termination conditions are satisfied."}


def _minpack(problem, x0, cap, step_done, state):
    """An unbounded fit by MINPACK's Levenberg-Marquardt (compiled: a few times cheaper per step than
    SciPy's trust region written in Python), to FIRST_TOL then polished as `_least_squares` does.
    None where lm is not to be trusted here: a trial point that is not finite (lm cannot reject a
    step), a stop other than on ftol/xtol, or a point that is not stationary; the caller then runs
    the trust region from the start."""
    evaluate, record = problem.evaluate, step_done.record

    def residuals(x):   # a copy: MINPACK keeps the first array it is given as its own, and writes
        return problem.residuals(x).copy()   # later points' residuals into it (the cached r at x0)

    def jacobian(x):   # lm asks for the Jacobian once per accepted step: the history's points
        f, g, _, found = evaluate(x)
        if x.tolist() != state["x"].tolist():   # ((x != state["x"]).any(), for a few floats)
            state["steps"] += 1
            record(x, f, g)   # (as step_done(x), its evaluation the one just made)
        return found

    if problem.rows <= len(x0) or not len(x0) or cap < 1:   # lm's "improper input": not for lm
        return None
    try:   # (x and MINPACK's info: not full_output, whose covariance is not used)
        x, info = _lmder(residuals, jacobian, x0, cap)
    except _Stop:
        return None
    if info not in MINPACK_MESSAGES:
        return None
    x = np.asarray(x, float)
    free = np.array([True] * len(x))
    before = state["steps"]
    try:
        x, change = _polish(problem, x, free, None, None, step_done, state)
        f, g, r, jacobian_matrix = problem.evaluate(x)
    except _Stop:
        return None
    known = problem.factored   # (its column lengths are the norms, but where a zero one was taken as 1)
    norms = known[1][0] if known is not None and known[0] is jacobian_matrix else None
    if norms is not None and 1.0 in norms.tolist():
        norms = None
    if change > FIRST_TOL or (stationarity(r, jacobian_matrix, norms=norms, evaluated=(f, g)) > STATIONARY
                              and not at_rounding_level(problem, r)):
        return None
    state["x"] = x
    polished = state["steps"] - before
    message = MINPACK_MESSAGES[info]
    if polished:
        message += f" Then {polished} Gauss-Newton step{'s' if polished > 1 else ''} to full precision."
    return True, message


_LMDER = None   # SciPy's MINPACK lmder, once looked up (False: not there)


def _lmder(residuals, jacobian, x0, cap):
    """MINPACK's lmder as SciPy's leastsq(residuals, x0, Dfun=jacobian, ftol=xtol=FIRST_TOL, gtol=0,
    maxfev=cap) calls it, without the wrapper's checks (its shapes are ours: rows × parameters, more
    rows than parameters) and its two extra calls at x0: (x, info)."""
    global _LMDER
    if _LMDER is None:
        from scipy.optimize import _minpack

        _LMDER = getattr(_minpack, "_lmder", False)
    lmder = _LMDER
    if not lmder:   # (SciPy's private name: through the public wrapper where it is gone)
        from scipy.optimize import leastsq

        return leastsq(residuals, x0, Dfun=jacobian, ftol=FIRST_TOL, xtol=FIRST_TOL, gtol=0.0, maxfev=cap)
    return lmder(residuals, jacobian, np.array(x0, float), (), 0, 0, FIRST_TOL, FIRST_TOL, 0.0, cap, 100, None)


def _polish(problem, x, free, low, high, step_done, state):
    """Up to POLISH_STEPS Gauss-Newton steps from x, until one would move no parameter by more than
    POLISHED of itself, each kept only if χ² does not grow (beyond rounding), clipped to the bounds
    low and high (None: unbounded); returns the point and how far one more step would move it."""
    f, _, r, jacobian = problem.evaluate(x)
    change = math.inf
    every = all(free.tolist())
    record = getattr(step_done, "record", None)   # (_fit's: a step evaluated, recorded as it is)
    bounded = low is not None   # (None: no bounds, nothing to clip)
    for _ in range(POLISH_STEPS + 1):
        factors = factored(jacobian) if every else None
        step, change = gauss_newton_step(r, jacobian, x, free, factors)
        if every:   # (the covariance at the point where the polish ends solves with these again)
            problem.factored = (jacobian, factors)
        if change <= POLISHED or _ == POLISH_STEPS:
            break
        trial = np.clip(x - step, low, high) if bounded else x - step
        try:
            f_trial, g_trial, r_trial, jacobian_trial = problem.evaluate(trial)
        except _Stop:
            break
        if f_trial > f * (1 + ROUNDING_GROWTH):  # (at a minimum χ² moves only by rounding)
            break
        x, f, r, jacobian = trial, f_trial, r_trial, jacobian_trial
        state["steps"] += 1
        if record is not None:   # (as step_done(x), its evaluation the one just made)
            record(x, f, g_trial)
        else:
            step_done(x)
    return x, change


def gauss_newton_step(r: np.ndarray, jacobian: np.ndarray, x: np.ndarray, free: np.ndarray, factors=None):
    """The Gauss-Newton step δ = argmin ‖J δ − r‖ over the free parameters (the columns scaled to unit
    length for the solve: by their SVD, `factored`, the minimum-norm solution with lstsq's cutoff),
    and how far it moves them relative to their size: max_i |δ_i|/|x_i|. `factors`: the SVD of these
    columns where already known."""
    every = all(free.tolist())
    if not every and not free.any():
        return np.zeros_like(x), 0.0
    lengths, u, singular, vt = factors or factored(jacobian if every else jacobian[:, free])
    values = singular.tolist()   # (Python floats: the same IEEE arithmetic as NumPy's scalars)
    if not values or not values[0] > 0:
        return np.zeros_like(x), 0.0
    cutoff = EPS * max(u.shape) * values[0]   # lstsq's rcond=None
    if all(v > cutoff for v in values):
        found = (transposed_product(vt, transposed_product(u, r) / singular)) / lengths
    else:
        keep = singular > cutoff
        found = (vt[keep].T @ ((u[:, keep].T @ r) / singular[keep])) / lengths
    if every:
        return found, _largest_ratio(found.tolist(), x.tolist())
    step = np.zeros_like(x)
    step[free] = found
    size = np.maximum(np.abs(x[free]), TINY)
    return step, float(np.max(np.abs(found) / size))


def transposed_product(matrix: np.ndarray, v: np.ndarray) -> np.ndarray:
    """matrix.T @ v, by the same BLAS call as NumPy's matmul makes where both are contiguous
    (ndarray.dot, with less wrapping: the same bits)."""
    if v.flags.c_contiguous and (matrix.flags.c_contiguous or matrix.flags.f_contiguous):
        return v.dot(matrix)
    return matrix.T @ v


def _largest_ratio(steps: list[float], sizes: list[float]) -> float:
    """max_i |δ_i| / max(|x_i|, TINY), as np.maximum.reduce(np.abs(δ) / np.maximum(np.abs(x), TINY))
    computes it, over a few Python floats."""
    return _largest([abs(d) / (a if (a := abs(v)) > TINY or a != a else TINY) for d, v in zip(steps, sizes)])


def _largest(values: list[float]) -> float:
    """The largest of some Python floats ≥ 0 (or NaN), NaN if any is (as np.maximum.reduce): their
    sum is NaN exactly where one is (no -inf among them to meet +inf)."""
    total = sum(values)
    return max(values) if total == total else math.nan


_gesdd = None


def factored(jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Jacobian's columns' lengths (a zero column taken as 1) and the thin SVD U·diag(s)·Vᵀ of
    the columns scaled to unit length: what the Gauss-Newton step and the covariance both solve with."""
    lengths = np.sqrt(np.add.reduce(jacobian * jacobian, axis=0))   # np.linalg.norm(jacobian, axis=0)
    if not all(lengths.tolist()):
        lengths[lengths == 0] = 1.0
    global _gesdd
    if _gesdd is None:   # (LAPACK's gesdd as np.linalg.svd calls it, without its wrapping)
        from scipy.linalg import lapack

        _gesdd = lapack.dgesdd
    u, singular, vt, info = _gesdd(jacobian / lengths, 1, 0)   # (compute_uv=1, full_matrices=0)
    if info != 0:   # (not converged, or a NaN: NumPy's says so as it always has)
        u, singular, vt = np.linalg.svd(jacobian / lengths, full_matrices=False)
    return lengths, u, singular, vt


def stationarity(r: np.ndarray, jacobian: np.ndarray, free: np.ndarray | None = None,
                 norms: np.ndarray | None = None, evaluated: tuple[float, np.ndarray] | None = None) -> float:
    """max_j |J_jᵀr| / (‖J_j‖·‖r‖) over the parameters not held at a bound (`free`): 0 at a minimum
    whatever the units of the data and the parameters. `norms`: the ‖J_j‖ where already known;
    `evaluated`: (χ², the gradient 2Jᵀr) as Problem.evaluate gave them here (rᵀr and Jᵀr exactly:
    halving is exact, and the gradient is finite)."""
    if norms is None:
        norms = np.sqrt(np.add.reduce(jacobian * jacobian, axis=0))
    lengths = norms * math.sqrt(float(r.dot(r)) if evaluated is None else evaluated[0])
    if lengths.size <= 8:   # (a few: as Python floats, the same IEEE arithmetic)
        sizes = lengths.tolist()
        products = transposed_product(jacobian, r).tolist() if evaluated is None else \
            [0.5 * v for v in evaluated[1].tolist()]
        kept = free.tolist() if free is not None else [True] * len(sizes)
        cosines = [abs(c) / size for c, size, k in zip(products, sizes, kept) if size > 0 and k]
        return _largest(cosines) if cosines else 0.0
    judged = lengths > 0
    if free is not None:
        judged &= free
    cosines = np.abs(jacobian.T @ r)
    cosines = cosines / lengths if all(judged.tolist()) else cosines[judged] / lengths[judged]
    return float(np.maximum.reduce(cosines)) if cosines.size else 0.0   # (.max())


def at_rounding_level(problem: Problem, r: np.ndarray, chi_square: float | None = None) -> bool:
    """Whether the residuals are within ROUNDING_LEVEL roundings of the values they are differences
    of (for r = model - y: of y), so that χ² is mostly rounding noise (`chi_square`: rᵀr where known)."""
    if not problem.observed or problem.observed not in problem.data:
        return False
    rounding = problem.__dict__.get("_rounding")
    if rounding is None:   # (the data's: the same at every point of the fit)
        y = problem.data[problem.observed]   # (|y|² is y², sign and all)
        if problem.sigma is not None:
            y = y / problem.sigma
        rounding = problem._rounding = EPS * math.sqrt(float(np.add.reduce(y * y)) / y.size)   # (np.mean's sum)
    return math.sqrt((float(r.dot(r)) if chi_square is None else chi_square) / r.size) < ROUNDING_LEVEL * rounding


def _descend(problem, method, x, low, high, steps, lr, step_done, state):
    """Plain gradient descent, or Adam, with a learning rate falling linearly from lr to lr/10 (as
    micrograd's demo: lr_k = lr·(1 − 0.9·k/steps)); bounds are kept by clipping."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    bounded = bool(np.isfinite(low).any() or np.isfinite(high).any())
    for k in range(steps):
        _, g, *_ = problem.evaluate(x)
        if not g.any():
            return True, f"the gradient is zero after {k} steps"
        rate = lr * (1.0 - (1.0 - FINAL_LR_SHARE) * k / steps)
        if method == "gd":
            x = x - rate * g
        else:
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            x = x - rate * (m / (1 - beta1 ** (k + 1))) / (np.sqrt(v / (1 - beta2 ** (k + 1))) + eps)
        if bounded:   # (clipping to ±inf changes nothing)
            x = np.clip(x, low, high)
        state["steps"] = k + 1
        step_done(x)
    name = "gradient descent" if method == "gd" else "Adam"
    return False, f"ran the {steps} steps asked for ({name} has no convergence test)"


def _uncertainties(result: Fit, r: np.ndarray, jacobian: np.ndarray, names: list[str],
                   absolute_sigma: bool = False, factors_of=None, chi_square: float | None = None) -> None:
    """Standard errors, the covariance and correlations from the Jacobian at the solution, as
    curve_fit does: cov = (JᵀJ)⁻¹, times Σr²/(rows − parameters) unless σ is absolute. The columns
    of J are scaled to unit length first, so that the condition number judges the problem and not
    the parameters' units. `factors_of`: (a Jacobian, its `factored` SVD), used where it is this one;
    `chi_square`: rᵀr where known."""
    rows, count = jacobian.shape
    if rows <= count and not absolute_sigma:
        result.warnings.append(f"no standard errors: {rows} rows for {count} parameters "
                               "(more rows than parameters are needed)")
        return
    known = factors_of is not None and factors_of[0] is jacobian
    lengths, _, singular, vt = factors_of[1] if known else factored(jacobian)
    values = singular.tolist()   # (Python floats: the same IEEE arithmetic as NumPy's scalars)
    tiny = EPS * max(jacobian.shape) * (values[0] if values else 0.0)
    if not values or values[-1] <= tiny:
        result.warnings.append("the covariance cannot be estimated: the Jacobian is singular at the "
                               "solution (some parameters do not change the residual independently)")
        result.stderr = dict.fromkeys(names, math.inf)
        return
    condition = (values[0] / values[-1]) ** 2
    if condition > ILL_CONDITIONED:
        result.warnings.append(f"the covariance is ill-conditioned (condition number of JᵀJ {condition:.2g}, "
                               "its columns scaled to unit length): the standard errors and correlations "
                               "are not reliable")
    scale = 1.0 if absolute_sigma else (float(r.dot(r)) if chi_square is None else chi_square) / (rows - count)
    covariance = (vt.T / singular**2) @ vt / (lengths[:, None] * lengths) * scale   # (np.outer's product)
    covariance = (covariance + covariance.T) / 2  # exactly symmetric, not to the last bit
    errors = np.sqrt(covariance.diagonal())
    result.scale, result.absolute_sigma = scale, absolute_sigma
    result.covariance = covariance
    result.stderr = dict(zip(names, errors.tolist()))


def correlations(covariance: np.ndarray, sizes: list[float], names: list[str]) -> dict[str, dict[str, float]]:
    """Every pair's correlation a < b (in `names` order) from the covariance and the standard errors."""
    correlation: dict[str, dict[str, float]] = {}
    entries = covariance.tolist()   # (Python floats: the same IEEE arithmetic)
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            c = entries[i][j] / (sizes[i] * sizes[j]) if sizes[i] and sizes[j] else 0.0
            correlation.setdefault(a, {})[names[j]] = c
    return correlation


def statistics(r: np.ndarray, count: int, observed: np.ndarray | None = None,
               weights: np.ndarray | None = None) -> dict[str, float]:
    """lmfit's goodness-of-fit figures for the (weighted) residuals r of a fit of `count` parameters:
    χ² = Σr², reduced χ² = χ²/(N − P), AIC = N·ln(χ²/N) + 2P, BIC = N·ln(χ²/N) + ln(N)·P, and where the
    observed values y are known R² = 1 − Σ(y − ŷ)²/Σ(y − ȳ)² (unweighted, as lmfit's rsquared)."""
    rows = len(r)
    chi_square = float(r.dot(r))
    log_likelihood = rows * math.log(max(chi_square, 1e-250 * rows) / rows)  # lmfit's floor at a perfect fit
    result = {"rows": rows, "parameters": count, "chi_square": chi_square,
              "reduced_chi_square": chi_square / max(1, rows - count),
              "aic": log_likelihood + 2 * count, "bic": log_likelihood + math.log(rows) * count}
    if observed is not None:
        raw = r * weights if weights is not None else r
        mean = float(np.add.reduce(observed)) / observed.size   # (np.mean's and np.sum's arithmetic)
        spread = float(np.add.reduce((observed - mean) ** 2))
        r_squared = 1.0 - float(raw.dot(raw)) / max(spread, TINY)
        if math.isfinite(r_squared):   # (observed values all equal: no R², as where there are none)
            result["r_squared"] = r_squared
    return result


# ---------------------------------------------------------------- after the fit

def check_sets(program: Program, values: Mapping[str, float], data_columns, columns_too: bool = False) -> list[str]:
    """--set as in grad: a typo or a computed name is an error; a name the program lacks entirely is
    returned (to warn about) and dropped from `values`. `columns_too`: the data columns' names are
    checked as well, as the batch engine checks them (a typo, a computed name: the same errors)."""
    unused = [name for name in values if name not in program.graph.names and name.isidentifier()
              and not did_you_mean(name, program.graph.names)]
    for name in unused:
        del values[name]
    defaults = {name: 0.0 if default is None else default for name, default in program.inputs.items()}
    columns = dict.fromkeys(data_columns, 0.0) if columns_too else {}
    program._inputs({**defaults, **columns, **values})  # the same checks as grad's (an array keeps its shape)
    for name in values:
        if name in data_columns:
            raise DiffcliError("input", f"{program.given_label(name)}: `{name}` is a column of the data, set by each row")
    return unused


def check_names(program: Program, names: list[str], option: str) -> None:
    for name in names:
        if name not in program.graph.names:
            raise DiffcliError("input", f"{option} {name}: the program has no variable `{name}`",
                               help=did_you_mean(name, program.graph.names) or
                               "variables: " + ", ".join(list(program.graph.names)[:12]))


def means(problem: Problem, x: Mapping[str, float], names: list[str]) -> dict[str, float]:
    """Each named variable's mean over the rows (its value, without data) at the fitted point."""
    check_names(problem.program, names, "--report")
    values = problem.values(problem.flatten(x), names)
    if not problem.rows:
        return {name: float(v[0]) if np.shape(v) == (1,) and not problem.program.shape(name) else v
                for name, v in values.items()}
    return {name: float(v.mean()) if v.ndim == 1 else v.mean(axis=0) for name, v in values.items()}


def compared(problem: Problem) -> tuple[str | None, str | None]:
    """The fitted variable and the data column a residual compares it with: for `r = model - y` (or
    `y - model`) with `y` a data column, (model, y); for `r = a*x + b - y`, (None, y); otherwise
    (the output, None)."""
    statement = problem.program.graph.definitions.get(problem.residual or "")
    expr = statement.expr if statement is not None else None
    while isinstance(expr, Paren):
        expr = expr.inner
    if isinstance(expr, Binary) and expr.op == "sub":
        sides = [side.inner if isinstance(side, Paren) else side for side in (expr.left, expr.right)]
        names = [side.id if isinstance(side, Name) else None for side in sides]
        for mine, theirs in (names, names[::-1]):
            if theirs in problem.data and mine not in problem.data:
                return mine, theirs
    return problem.output, None


def curve(problem: Problem, fit: Fit, x_column: str) -> dict:
    """What the plot draws over the x column: the data the residual compares with (for `r = model - y`,
    y's points), the fitted curve (model, or y + r when the model has no name of its own) and the
    residual; otherwise the output at each row."""
    fitted, observed = compared(problem)
    x = problem.flatten(fit.parameters)
    residual = problem.values(x, [problem.output])[problem.output] if problem.residual else None
    if fitted is None:  # r = (expression) - y: the curve is y + r; r = y - (expression): y - r
        statement = problem.program.graph.definitions[problem.residual].expr
        while isinstance(statement, Paren):
            statement = statement.inner
        right = statement.right.inner if isinstance(statement.right, Paren) else statement.right
        sign = 1.0 if isinstance(right, Name) and right.id == observed else -1.0
        fitted, curve_values = "fit", problem.data[observed] + sign * residual
    else:
        curve_values = problem.values(x, [fitted])[fitted]
    return {"x": problem.data[x_column].tolist(),
            "data": (observed, problem.data[observed].tolist()) if observed else None,
            "fitted": (fitted, np.asarray(curve_values, float).tolist()),
            "residual": (problem.output, np.asarray(residual, float).tolist()) if residual is not None else None}


MAX_WRITTEN_ELEMENTS = 100_000   # --write of a larger array would make a file no one reads; --save


def written_back(program: Program, fitted: Mapping[str, object], notes: list[str] | None = None) -> str:
    """The program's text with each fitted input's literal (its sign included) replaced by the
    shortest text that reads back as the fitted double, and an array's literal (or the constructor
    call that made it) by a literal laid out one matrix row per line, columns aligned; every other
    character, line endings and a byte-order mark included, stays as it was. What the user should
    be told (a constructor call replaced) is added to `notes`."""
    from ..formatting import number_text
    from ..language.syntax import Array, Call

    text = program.source.text
    newline = "\r\n" if "\r\n" in text else "\n"
    edits, notes = [], [] if notes is None else notes
    for name, value in fitted.items():
        statement = program.graph.definitions.get(name)
        expr = statement.expr if statement is not None else None
        if not np.shape(value):
            if not isinstance(expr, (Number, Unary)):
                raise DiffcliError("input", f"--write: `{name}` has no literal assignment to write into")
            edits.append((expr.start, expr.end, number_text(value)))
            continue
        if np.size(value) > MAX_WRITTEN_ELEMENTS:
            raise DiffcliError("input", f"--write: `{name}` has {np.size(value):,} elements, more than "
                               f"{MAX_WRITTEN_ELEMENTS:,} that a program's literal should hold; nothing was written",
                               help=f"keep the fitted values in a file of their own with --save {name}.json "
                               "(read back with --inputs)")
        if isinstance(expr, Call):
            notes.append(f"--write: `{name} = {program.source.text[expr.start:expr.end]}` is now the "
                         "literal of its fitted values")
        elif not isinstance(expr, Array):
            raise DiffcliError("input", f"--write: `{name}` has no literal assignment to write into")
        elif "#" in text[expr.start:expr.end]:   # a comment between its rows: no place to keep it
            line, column = program.source.line_col(expr.start + text[expr.start:expr.end].index("#"))
            raise DiffcliError("input", f"--write: the literal of `{name}` holds a comment (line {line}), "
                               "which a rewritten literal has no place for; nothing was written",
                               help=f"move the comment above `{name} = ...`, or keep the fitted values "
                               "with --save FILE.json")
        line_start = text.rfind("\n", 0, expr.start) + 1
        indent = "".join(c if c == "\t" else " " for c in text[line_start:expr.start])
        edits.append((expr.start, expr.end, array_literal(np.asarray(value, float), indent, newline)))
    pieces, done = [], 0
    for start, end, replacement in sorted(edits):
        pieces += [text[done:start], replacement]
        done = end
    pieces.append(text[done:])
    return ("\ufeff" if program.source.bom else "") + "".join(pieces)


def array_literal(value: np.ndarray, indent: str = "", newline: str = "\n") -> str:
    """A vector as `[1, -0.5, 2]`; a matrix one row per line under the first, each column's numbers
    right-aligned (`indent`: what stands left of the literal on its first line)."""
    from ..formatting import number_text

    if value.ndim == 1:
        return "[" + ", ".join(number_text(float(v)) for v in value) + "]"
    cells = [[number_text(float(v)) for v in row] for row in value]
    widths = [max(len(row[j]) for row in cells) for j in range(value.shape[1])]
    rows = ["[" + ", ".join(cell.rjust(w) for cell, w in zip(row, widths)) + "]" for row in cells]
    return "[" + ("," + newline + indent + " ").join(rows) + "]"


def saved_inputs(fitted: Mapping[str, object]) -> str:
    """--save: the fitted inputs as `--inputs` reads them (arrays as nested lists, row-major)."""
    from ..formatting import json_text

    lines = [f" {json_text(name)}: {json_text(np.asarray(v).tolist() if np.shape(v) else v, allow_nan=False)}"
             for name, v in fitted.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"
