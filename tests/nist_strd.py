"""NIST's Statistical Reference Datasets for nonlinear regression (StRD): the 27 problems, their data
and certified values, read from the NIST_STRD/ folder that lmfit's source distribution ships; each
model written as a diffcli program; and the log relative error (LRE, McCullough's measure).

The data are NIST's (public domain). They are not kept in this repository: `strd_folder()` downloads
lmfit's source distribution from PyPI with pip (bounded by a timeout) into a private cache folder,
once, and reads the .dat files from there. tests/test_nist_strd.py and benchmarks/nist.py use it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOWNLOAD_SECONDS = 180
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffcli-nist-strd"

# y = model(x; b1..bk) + e, as NIST states each one; every program's residual is r = model - y
MODELS = {
    "Misra1a": "model = b1*(1 - exp(-b2*x))",
    "Chwirut2": "model = exp(-b1*x)/(b2 + b3*x)",
    "Chwirut1": "model = exp(-b1*x)/(b2 + b3*x)",
    "Lanczos3": "model = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Gauss1": "model = b1*exp(-b2*x) + b3*exp(-(x - b4)^2/b5^2) + b6*exp(-(x - b7)^2/b8^2)",
    "Gauss2": "model = b1*exp(-b2*x) + b3*exp(-(x - b4)^2/b5^2) + b6*exp(-(x - b7)^2/b8^2)",
    "DanWood": "model = b1*x^b2",
    "Misra1b": "model = b1*(1 - (1 + b2*x/2)^(-2))",
    "Kirby2": "model = (b1 + b2*x + b3*x^2)/(1 + b4*x + b5*x^2)",
    "Hahn1": "model = (b1 + b2*x + b3*x^2 + b4*x^3)/(1 + b5*x + b6*x^2 + b7*x^3)",
    "Nelson": "model = b1 - b2*x1*exp(-b3*x2)",   # log[y] = ...: the residual is model - log(y)
    "MGH17": "model = b1 + b2*exp(-x*b4) + b3*exp(-x*b5)",
    "Lanczos1": "model = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Lanczos2": "model = b1*exp(-b2*x) + b3*exp(-b4*x) + b5*exp(-b6*x)",
    "Gauss3": "model = b1*exp(-b2*x) + b3*exp(-(x - b4)^2/b5^2) + b6*exp(-(x - b7)^2/b8^2)",
    "Misra1c": "model = b1*(1 - (1 + 2*b2*x)^(-0.5))",
    "Misra1d": "model = b1*b2*x*(1 + b2*x)^(-1)",
    "Roszman1": "model = b1 - b2*x - atan(b3/(x - b4))/pi",
    "ENSO": ("model = b1 + b2*cos(2*pi*x/12) + b3*sin(2*pi*x/12) + b5*cos(2*pi*x/b4) + "
             "b6*sin(2*pi*x/b4) + b8*cos(2*pi*x/b7) + b9*sin(2*pi*x/b7)"),
    "MGH09": "model = b1*(x^2 + x*b2)/(x^2 + x*b3 + b4)",
    "Thurber": "model = (b1 + b2*x + b3*x^2 + b4*x^3)/(1 + b5*x + b6*x^2 + b7*x^3)",
    "BoxBOD": "model = b1*(1 - exp(-b2*x))",
    "Rat42": "model = b1/(1 + exp(b2 - b3*x))",
    "MGH10": "model = b1*exp(b2/(x + b3))",
    "Eckerle4": "model = (b1/b2)*exp(-0.5*((x - b3)/b2)^2)",
    "Rat43": "model = b1/(1 + exp(b2 - b3*x))^(1/b4)",
    "Bennett5": "model = b1*(b2 + x)^(-1/b3)",
}
# NIST's levels of difficulty
DIFFICULTY = {name: level for level, names in {
    "lower": "Misra1a Chwirut2 Chwirut1 Lanczos3 Gauss1 Gauss2 DanWood Misra1b",
    "average": "Kirby2 Hahn1 Nelson MGH17 Lanczos1 Lanczos2 Gauss3 Misra1c Misra1d Roszman1 ENSO",
    "higher": "MGH09 Thurber BoxBOD Rat42 MGH10 Eckerle4 Rat43 Bennett5"}.items() for name in names.split()}


@dataclass
class Problem:
    name: str
    parameters: list[str]
    starts: tuple[list[float], list[float]]
    certified: list[float]
    certified_stderr: list[float]
    columns: dict[str, np.ndarray]   # x (or x1, x2) and y
    residual_sum: float

    def program_text(self, start: int) -> str:
        """The model as a diffcli program, its parameters starting at NIST's start 1 or 2."""
        values = self.starts[start - 1]
        lines = [f"{p} = {v!r}" for p, v in zip(self.parameters, values)]
        lines.append(MODELS[self.name])
        lines.append("r = model - log(y)" if self.name == "Nelson" else "r = model - y")
        return "\n".join(lines) + "\n"

    def observed(self) -> np.ndarray:
        return np.log(self.columns["y"]) if self.name == "Nelson" else self.columns["y"]


def read(folder: Path, name: str) -> Problem:
    """A .dat file: its line numbers are significant (lmfit's reader does the same)."""
    lines = (folder / f"{name}.dat").read_text().splitlines()
    count = int(lines[31].split()[0])
    parameters, start1, start2, certified, errors = [], [], [], [], []
    for text in lines[40:40 + count]:
        words = text.replace("=", " ").split()
        parameters.append(words[0])
        start1.append(float(words[1]))
        start2.append(float(words[2]))
        certified.append(float(words[3]))
        errors.append(float(words[4]))
    residual_sum = float(lines[40 + count + 1].split()[-1])
    header = lines[59].split()[1:]
    rows = np.array([[float(word) for word in line.split()] for line in lines[60:] if line.strip()])
    names = {"y": "y", "x": "x", "x1": "x1", "x2": "x2"}
    columns = {names[h]: rows[:, i] for i, h in enumerate(header)}
    return Problem(name, parameters, (start1, start2), certified, errors, columns, residual_sum)


def lre(estimate: float, certified: float, digits: int = 11) -> float:
    """McCullough's log relative error: about the number of correct significant digits, at most the
    certified value's (NIST gives 11)."""
    if not math.isfinite(estimate):
        return 0.0
    if estimate == certified:
        return float(digits)
    error = abs(estimate - certified) / (abs(certified) if certified else 1.0)
    return max(0.0, min(float(digits), -math.log10(error)))


def strd_folder(timeout: float = DOWNLOAD_SECONDS) -> Path:
    """The NIST_STRD folder of lmfit's source distribution: from the cache, or downloaded by pip
    (`pip download --no-deps --no-binary lmfit lmfit`) and unpacked there. Raises RuntimeError with
    the reason when it cannot be had."""
    folder = CACHE / "NIST_STRD"
    if len(list(folder.glob("*.dat"))) >= len(MODELS):
        return folder
    CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
    if CACHE.stat().st_uid != os.getuid() or CACHE.stat().st_mode & 0o022:
        raise RuntimeError(f"{CACHE} is not a private folder of this user: not read")
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        # (--no-binary lmfit, not :all:: pip then builds only lmfit's metadata, its build tools come
        # as wheels: 9 s from a cold cache instead of 60)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", "lmfit",
                   "--dest", scratch, "lmfit"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pip download of lmfit's source took more than {timeout:g} s") from None
        archives = list(Path(scratch).glob("lmfit-*.tar.gz"))
        if done.returncode or not archives:
            raise RuntimeError("pip could not download lmfit's source distribution: "
                               + (done.stderr.strip().splitlines() or ["no archive"])[-1])
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            members = [m for m in archive.getmembers()
                       if m.isfile() and "/NIST_STRD/" in m.name and m.name.endswith(".dat")]
            for member in members:
                target = unpacked / Path(member.name).name
                unpacked.mkdir(exist_ok=True)
                with archive.extractfile(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
        if not unpacked.exists() or len(list(unpacked.glob("*.dat"))) < len(MODELS):
            raise RuntimeError("lmfit's source distribution has no NIST_STRD folder with the 27 problems")
        shutil.rmtree(folder, ignore_errors=True)
        unpacked.rename(folder)
    return folder
