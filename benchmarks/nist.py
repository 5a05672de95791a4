"""NIST StRD nonlinear regression: all 27 problems from both starting points (54 runs), diffcli's
`fit --residual` beside lmfit (Model.fit, leastsq) and SciPy's curve_fit (its default, lm), each as a
user would call it (the peers with their default finite-difference Jacobians).

    python benchmarks/nist.py            # prints the table and writes it into benchmarks/RESULTS.md

A run is good when every parameter has LRE ≥ 6 and every standard error LRE ≥ 4 (log relative error
against NIST's certified values, McCullough's measure). A run the method calls converged is counted
as stopped short with a parameter at 1 ≤ LRE < 6, and as a wrong answer below 1 (not one digit). The peers evaluate the model with diffcli's batch engine (the same
residuals, values only), so that the comparison is of the optimizers, not of the model code. The
data come from lmfit's source distribution (tests/nist_strd.py downloads it); lmfit is in diffcli's
`test` extra.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import nist_strd  # noqa: E402
from diffcli.commands import fit as fitting  # noqa: E402
from diffcli.program import parse  # noqa: E402

RESULTS = HERE / "RESULTS.md"
BEGIN, END = "<!-- nist: begin -->", "<!-- nist: end -->"


def residual_function(problem: fitting.Problem):
    def residuals(x):
        try:
            return np.asarray(problem.values(np.asarray(x, float), ["r"])["r"], float)
        except fitting._Stop:
            return np.full(problem.rows, np.nan)
    return residuals


def run_diffcli(text, parameters, columns):
    problem, start, _ = fitting.setup(parse(text), parameters, {}, residual="r", data=columns)
    began = time.perf_counter()
    found = fitting.fit(problem, "least_squares", start=start)
    seconds = time.perf_counter() - began
    errors = [found.stderr[p] for p in parameters] if found.stderr else [np.nan] * len(parameters)
    return ([found.parameters[p] for p in parameters], errors, found.converged, found.evaluations, seconds,
            any("rounding" in w for w in found.warnings))


def run_lmfit(text, parameters, columns):
    import lmfit

    problem, start, _ = fitting.setup(parse(text), parameters, {}, residual="r", data=columns)
    residuals = residual_function(problem)
    params = lmfit.Parameters()
    for name, value in start.items():
        params.add(name, value=value)
    began = time.perf_counter()
    try:
        result = lmfit.minimize(lambda p: residuals([p[n].value for n in parameters]), params)
    except Exception:  # lmfit raises on NaN residuals (its nan_policy='raise')
        return [np.nan] * len(parameters), [np.nan] * len(parameters), False, 0, time.perf_counter() - began, False
    seconds = time.perf_counter() - began
    values = [result.params[n].value for n in parameters]
    errors = [result.params[n].stderr if result.params[n].stderr is not None else np.nan for n in parameters]
    return values, errors, bool(result.success), result.nfev, seconds, False


def run_curve_fit(text, parameters, columns):
    from scipy.optimize import OptimizeWarning, curve_fit

    problem, start, _ = fitting.setup(parse(text), parameters, {}, residual="r", data=columns)
    residuals = residual_function(problem)
    rows = problem.rows
    began = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            # residual = model - y: fit "model" = residual + 0 against ydata 0
            values, covariance, info, *_ = curve_fit(lambda _, *b: residuals(b), np.zeros(rows), np.zeros(rows),
                                                     p0=list(start.values()), full_output=True)
        converged = True
        evaluations = info["nfev"]
    except (RuntimeError, ValueError):  # curve_fit raises when lm does not converge (or meets NaN)
        return [np.nan] * len(parameters), [np.nan] * len(parameters), False, 0, time.perf_counter() - began, False
    seconds = time.perf_counter() - began
    return list(values), list(np.sqrt(np.diag(covariance))), converged, evaluations, seconds, False


RUNNERS = {"diffcli": run_diffcli, "lmfit": run_lmfit, "curve_fit": run_curve_fit}


def main() -> None:
    folder = nist_strd.strd_folder()
    rows, totals = [], {name: {"good": 0, "values": 0, "short": 0, "wrong": 0, "said": 0, "seconds": 0.0, "nfev": 0}
                        for name in RUNNERS}
    for name in nist_strd.MODELS:
        problem = nist_strd.read(folder, name)
        for start in (1, 2):
            text = problem.program_text(start)
            cells = [f"{name} ({nist_strd.DIFFICULTY[name]})", str(start)]
            for runner_name, runner in RUNNERS.items():
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    values, errors, converged, nfev, seconds, said = runner(text, problem.parameters,
                                                                            problem.columns)
                lre = min(nist_strd.lre(v, c) for v, c in zip(values, problem.certified))
                lre_errors = min(nist_strd.lre(e, c) for e, c in zip(errors, problem.certified_stderr))
                total = totals[runner_name]
                total["values"] += lre >= 6
                total["good"] += lre >= 6 and lre_errors >= 4
                total["short"] += converged and 1 <= lre < 6
                total["wrong"] += converged and lre < 1
                total["said"] += said
                total["seconds"] += seconds
                total["nfev"] += nfev
                mark = "" if converged else " (not converged)"
                cells.append(f"{lre:.1f} / {lre_errors:.1f}{mark}")
            rows.append(cells)
            print(" | ".join(cells), flush=True)
    table = ["| problem | start | diffcli: LRE values / stderr | lmfit | curve_fit |",
             "| --- | --- | --- | --- | --- |"] + ["| " + " | ".join(r) + " |" for r in rows]
    summary = ["| | diffcli | lmfit | curve_fit |", "| --- | --- | --- | --- |"]
    for label, key in (("runs with every parameter at LRE ≥ 6", "values"),
                       ("… and every standard error at LRE ≥ 4", "good"),
                       ("reported as converged with 1 to 6 correct digits", "short"),
                       ("reported as converged with no correct digit (another answer)", "wrong"),
                       ("runs warned: residuals at the rounding level", "said"),
                       ("evaluations of the residuals, all 54", "nfev")):
        summary.append(f"| {label} | " + " | ".join(str(totals[n][key]) for n in RUNNERS) + " |")
    summary.append("| in-process seconds, all 54 | " + " | ".join(f"{totals[n]['seconds']:.2f}" for n in RUNNERS) + " |")
    section = "\n".join([BEGIN, "## NIST StRD nonlinear regression (issue 22)", "",
                         "`python benchmarks/nist.py`: the 27 problems from both of NIST's starting points, "
                         "LRE = correct significant digits against the certified values (at most 11). The "
                         "peers run with their defaults and finite-difference Jacobians on the same residuals "
                         "(diffcli's batch engine, values only); their evaluation counts include those "
                         "differences.", "", *summary, "",
                         "Where diffcli's standard errors fall short of LRE 4 it is Lanczos1 (both starts): "
                         "its certified χ² is 1.4e-25, residuals a few hundred roundings of y, so the reduced "
                         "χ² that scales the errors has two or three correct digits in double precision; the "
                         "fit says so in a warning (the parameters are right to 10.6 digits).", "",
                         *table, END])
    print("\n".join(summary))
    text = RESULTS.read_text(encoding="utf-8")
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
