"""`Program.fit(...)`: the fit command's Python front door, as cli.py is its command-line one.

    program = diffcli.load("samples/decay.expr")
    result = program.fit(data="samples/decay.csv", residual="r")
    result.parameters, result.stderr, result.covariance, result.statistics
    result.confidence([1, 2]); print(result.report()); result.write("fit.json")

It sits beside cli.py, above the commands and the renderers it joins; Program.fit imports it when
called (the one call from the front door up: see tests/test_layers.py).
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .errors import DiffcliError

if TYPE_CHECKING:  # pragma: no cover
    from .commands.fit import Fit, Problem
    from .program import Program


class NamedMatrix(np.ndarray):
    """A NumPy array whose rows and columns are named (`.names`): the covariance of the parameters."""

    names: list[str]

    def __new__(cls, values, names: Sequence[str]):
        matrix = np.asarray(values, float).view(cls)
        matrix.names = list(names)
        return matrix

    def __array_finalize__(self, obj):
        self.names = getattr(obj, "names", None)

    def __reduce__(self):  # a plain array when pickled: nothing of ours to load back
        return np.asarray(self).__reduce__()


class FitResult:
    """What `Program.fit` found: `.parameters`, `.stderr` (None without a residual), `.covariance`
    (a NamedMatrix, None without a residual), `.statistics`, `.converged`, `.message`, `.warnings`,
    and the whole record `.fit` (what `diffcli fit --json` prints)."""

    def __init__(self, fit: Fit, problem: Problem, bounds, filename: str):
        self._fit, self._problem, self._bounds, self._filename = fit, problem, bounds, filename
        self.parameters = dict(fit.parameters)
        self.stderr = dict(fit.stderr) if fit.stderr is not None else None
        self.covariance = NamedMatrix(fit.covariance, list(fit.stderr)) if fit.covariance is not None else None
        self.converged, self.message, self.warnings = fit.converged, fit.message, list(fit.warnings)

    @property
    def fit(self) -> Fit:
        """The whole record, its report's figures computed the first time it is asked for."""
        return self._fit.settled()

    @property
    def statistics(self) -> dict[str, float] | None:
        """χ², reduced χ², AIC, BIC, rows, parameters (and R² where the observed column is known);
        computed the first time they are asked for."""
        if "_statistics" not in self.__dict__:
            found = self.fit.statistics
            self._statistics = dict(found) if found is not None else None
        return self._statistics

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.6g}" if not getattr(v, "shape", ()) else f"{k}=<{'×'.join(map(str, v.shape))}>"
                          for k, v in list(self.parameters.items())[:6])
        return f"<FitResult {'converged' if self.converged else 'not converged'}: {shown}>"

    def _repr_html_(self):
        """In Jupyter: the report, as the fit record itself shows (diffcli.notebook draws it)."""
        from .display import draw

        return draw(self.fit, "html")

    def confidence(self, levels: str | float | Sequence[float] = (1, 2)) -> dict[str, dict[str, list]]:
        """Profile confidence intervals as lmfit's conf_interval: {name: {"1σ": [low, high], ...}};
        levels in σ (1, 2) or as probabilities (0.95 -> "95%"); an open side is None."""
        from .commands import fit_intervals

        if not self.fit.statistics:
            raise DiffcliError("input", "confidence intervals compare χ²: fit with residual=NAME")
        text = levels if isinstance(levels, str) else ",".join(
            repr(float(v)) for v in ([levels] if isinstance(levels, (int, float)) else levels))
        found = fit_intervals.intervals(self._problem, self.parameters, self.stderr or {},
                                        fit_intervals.levels(text), self._bounds)
        self.fit.confidence = found
        return found

    def report(self, precision: int = 6, style: str = "plain") -> str:
        """The text report `diffcli fit` prints (style "plain", "pm" or "latex" for the ± column)."""
        from .formatting import PLUS_MINUS
        from .renderers.fitreport import fit_text

        if style not in PLUS_MINUS:
            raise DiffcliError("input", f"style {style!r}: one of " + ", ".join(PLUS_MINUS))
        return fit_text(self.fit, self._filename, precision, style)

    def json(self) -> str:
        from .renderers.fitreport import fit_json

        return fit_json(self.fit)

    def write(self, path: str | os.PathLike, x: str | None = None) -> None:
        """Write the result to `path`, all or nothing, its kind by the name's ending: `.json` the JSON
        object, `.png`/`.svg`/`.pdf`/`.html` the plot (`x`: the data column of its x axis), `.expr`
        the program with the fitted values in its literals, anything else the text report."""
        from .commands.fit import curve, written_back
        from .renderers import fitreport, render
        from .renderers.output import write_output

        path = os.fspath(path)
        ending = os.path.splitext(path)[1].lower().lstrip(".")
        if ending == "json":
            data = self.json().encode()
        elif ending in ("png", "svg", "pdf", "html"):
            if x is not None and x not in self._problem.data:
                raise DiffcliError("input", f"x={x!r}: the data have no such column",
                                   help="columns: " + ", ".join(self._problem.data))
            shape = curve(self._problem, self.fit, x) if x is not None else None
            data = render.vegalite(fitreport.plot_spec(self.fit, x, shape), ending)
        elif ending == "expr":
            data = written_back(self._problem.program, self.parameters).encode()
        else:
            data = self.report().encode()
        write_output(path, data)


def fit(program: Program, wrt: Sequence[str] | str | None = None, data=None, *, residual: str | None = None,
        of: str | None = None, sigma: str | None = None, absolute_sigma: bool = False,
        observed: str | None = None, method: str | None = None,
        bounds: Mapping[str, tuple[float, float]] | None = None, values: Mapping[str, float] | None = None,
        steps: int | None = None, lr: float | None = None, tol: float | None = None) -> FitResult:
    """Fit as `diffcli fit` does; see Program.fit."""
    from .commands import fit as fitting
    from .program import wrt_names

    wrt = wrt_names(wrt) or []
    chosen = method or ("least_squares" if residual else "L-BFGS-B")
    if chosen not in fitting.METHODS:
        raise DiffcliError("input", f"method {chosen!r}: one of " + ", ".join(fitting.METHODS))
    if chosen == "least_squares" and not residual:
        raise DiffcliError("input", "least_squares needs residual=NAME")
    if bounds and chosen not in fitting.BOUNDED:
        raise DiffcliError("input", f"{chosen} takes no bounds; use " + ", ".join(fitting.BOUNDED))
    if absolute_sigma and sigma is None:
        raise DiffcliError("input", "absolute_sigma=True takes sigma=COLUMN as absolute: give sigma")
    ranges = {}
    for name, pair in (bounds or {}).items():
        low, high = (float(v) for v in pair)
        if math.isnan(low) or math.isnan(high) or low > high:
            raise DiffcliError("input", f"bounds {name}: {pair!r}: low must not exceed high")
        ranges[name] = (low, high)
    columns, data_name = _columns(program, data)
    problem, start, notes = fitting.setup(program, wrt, dict(values or {}), of=of, residual=residual,
                                      data=columns, data_name=data_name, bounds=ranges, sigma=sigma,
                                      observed=observed)
    result = fitting.fit(problem, chosen, start=start, steps=steps, lr=lr, bounds=ranges,
                         absolute_sigma=absolute_sigma, tol=tol, later=True)
    if result.error is not None:
        raise result.error
    result.warnings[:0] = notes
    return FitResult(result, problem, ranges, program.source.filename)


def _columns(program: Program, data) -> tuple[dict[str, np.ndarray], str]:
    """The data as whole columns: a path (CSV or JSON Lines, read as --data reads it), a mapping of
    names to sequences of numbers, or a pandas DataFrame (when pandas is importable)."""
    if data is None:
        return {}, "the data"
    if isinstance(data, (str, os.PathLike)):
        from .commands import fit as fitting
        from .commands import points

        path = os.fspath(data)
        try:
            with open(path, encoding="utf-8", newline="") as stream:
                rows = points.read_points(stream, path, None, program)
        except OSError as error:
            raise DiffcliError("io", f"cannot read {path}: {error.strerror or error}") from None
        except UnicodeDecodeError:
            raise DiffcliError("io", f"{path} is not UTF-8 text", help="save it as UTF-8") from None
        return fitting.gather(rows.names, [chunk for _, chunk in rows.chunks()]), path
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        data = {str(name): data[name].to_numpy() for name in data.columns}
    if not isinstance(data, Mapping):
        raise DiffcliError("input", f"data: {type(data).__name__} is not a path, a mapping of columns or "
                           "a pandas DataFrame")
    columns, length = {}, None
    for name, column in data.items():
        try:
            array = np.asarray(column, dtype=float)
        except (TypeError, ValueError):
            raise DiffcliError("input", f"data column `{name}` is not numbers") from None
        if array.ndim != 1 or (length is not None and len(array) != length):
            raise DiffcliError("input", f"data column `{name}`: every column must be one sequence of the "
                               "same length")
        if not math.isfinite(np.add.reduce(array)) and not np.isfinite(array).all():   # (a finite sum: all are)
            bad = np.flatnonzero(~np.isfinite(array))
            raise DiffcliError("input", f"data column `{name}`: row {bad[0] + 1} is {float(array[bad[0]])!r}, "
                               "not a finite number")
        length = len(array)
        columns[str(name)] = array
    if length == 0:
        raise DiffcliError("input", "data: the columns have no rows")
    return columns, "the data"
