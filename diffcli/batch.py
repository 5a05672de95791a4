"""PROVISIONAL stand-in for the batch engine (branch `batch` replaces this whole file on merge).

It offers the interface in the helpers' brief — run(program, columns, of) -> BatchResult, and the
--sweep parser — by looping over Program.grad, so that `diffcli plot` can be built and tested
before the vectorized engine lands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import DiffcliError


@dataclass
class BatchResult:
    n: int
    output: str
    inputs: dict
    value: np.ndarray
    gradients: dict | None
    values: dict | None
    failed: np.ndarray
    errors: dict


def run(program, columns: Mapping[str, np.ndarray | float], of: str | None = None, *,
        gradients: bool = True, all_names: bool = False) -> BatchResult:
    n = max((np.size(v) for v in columns.values()), default=1)
    inputs = {k: np.broadcast_to(np.asarray(v, dtype=float), (n,)) for k, v in columns.items()}
    output = of if of is not None else program.output
    value, failed, errors = np.full(n, np.nan), np.zeros(n, dtype=bool), {}
    grads: dict | None = None
    for i in range(n):
        try:
            result = program.grad({k: float(c[i]) for k, c in inputs.items()}, of)
        except DiffcliError as error:
            if error.kind != "domain":
                raise
            failed[i], errors[i] = True, error
            continue
        if grads is None:
            grads = {k: np.full(n, np.nan) for k in result.inputs}
        value[i] = result.value
        for k in grads:
            grads[k][i] = result.gradients[k]
    if grads is None:
        grads = {k: np.full(n, np.nan) for k in inputs}
    return BatchResult(n, output, inputs, value, grads if gradients else None, None, failed, errors)


@dataclass(frozen=True)
class Sweep:
    name: str
    values: np.ndarray
    log: bool = False


def parse_sweep(text: str) -> Sweep:
    """NAME=START:STOP:NUM, or NAME=log:START:STOP:NUM; ValueError with the reason if malformed."""
    name, eq, rest = text.partition("=")
    name = name.strip()
    if not eq or not name:
        raise ValueError(f"{text!r} is not NAME=START:STOP:NUM (for example --sweep x=-1:1:5)")
    parts = [p.strip() for p in rest.split(":")]
    log = parts[0] == "log"
    if log:
        parts = parts[1:]
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not NAME=START:STOP:NUM (for example --sweep x=-1:1:5)")
    try:
        start, stop = float(parts[0]), float(parts[1])
        count = int(parts[2])
    except ValueError:
        raise ValueError(f"{text!r}: START and STOP must be numbers and NUM a whole number") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or count < 1:
        raise ValueError(f"{text!r}: START and STOP must be finite and NUM at least 1")
    if log and (start <= 0 or stop <= 0):
        raise ValueError(f"{text!r}: a log sweep needs START and STOP above 0")
    values = np.geomspace(start, stop, count) if log else np.linspace(start, stop, count)
    return Sweep(name, values, log)


def grid(sweeps) -> dict[str, np.ndarray]:
    """The columns of the grid the sweeps form, the last varying fastest."""
    mesh = np.meshgrid(*(s.values for s in sweeps), indexing="ij")
    return {s.name: m.ravel() for s, m in zip(sweeps, mesh)}
