#!/usr/bin/env python3
"""The long fuzz run: bad input must never crash diffcli.

usage: python scripts/long_fuzz.py [LIBRARY_INPUTS] [APP_RUNS] [PROCESS_RUNS] [SEED]

Three layers, the same generators as tests/fuzzing.py:
  - LIBRARY_INPUTS inputs in-process through diffcli.parse / evaluate / grad / derivatives and the
    diagnostic renderers: only DiffcliError may escape (every 20,000th input is a huge one);
  - APP_RUNS in-process through the Typer app (CliRunner) with random, often malformed, command
    lines: exit 0, 1 or 2, no traceback, empty standard output on error, a diagnostic on stderr;
  - PROCESS_RUNS through the real `diffcli` command in a subprocess, with the same checks.
Prints its figures; each finding is written to long_fuzz_failures.txt.
"""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from typer.testing import CliRunner  # noqa: E402

import diffcli  # noqa: E402
from diffcli.cli import app  # noqa: E402
from fuzzing import check_cli_in_process, check_library, check_result, random_argv, random_input  # noqa: E402

FAILURES = Path("long_fuzz_failures.txt")


def report(layer: str, data: bytes, argv, error: BaseException) -> None:
    with FAILURES.open("a", encoding="utf-8") as out:
        out.write(f"--- {layer}: argv={argv!r}\n{data[:2000]!r}\n")
        out.write("".join(traceback.format_exception(error))[-3000:] + "\n")


def names_of(data: bytes) -> list[str]:
    try:
        return diffcli.parse(data.decode("utf-8")).names
    except (diffcli.DiffcliError, UnicodeDecodeError):
        return []


def main() -> None:
    numbers = [int(a) for a in sys.argv[1:]]
    library_inputs, app_runs, process_runs, seed = numbers + [1_000_000, 100_000, 1_000, 1][len(numbers):]
    rng = random.Random(seed)
    start = time.time()
    failed = collections.Counter()

    outcomes = collections.Counter()
    for i in range(1, library_inputs + 1):
        data = random_input(rng, extreme=i % 20_000 == 0)
        try:
            outcomes[check_library(data, rng)] += 1
        except Exception as error:  # noqa: BLE001 - anything but DiffcliError is a finding
            failed["library"] += 1
            report("library", data, None, error)
        if i % 100_000 == 0:
            print(f"library: {i} inputs, {failed['library']} failed, {time.time() - start:.0f} s", flush=True)

    runner = CliRunner()
    codes = collections.Counter()
    for i in range(1, app_runs + 1):
        data = random_input(rng)
        argv = random_argv(rng, names_of(data))
        try:
            codes[check_cli_in_process(runner, app, argv, data)] += 1
        except Exception as error:  # noqa: BLE001
            failed["app"] += 1
            report("app", data, argv, error)
        if i % 20_000 == 0:
            print(f"app: {i} runs, {failed['app']} failed, {time.time() - start:.0f} s", flush=True)

    command = [str(Path(sys.executable).parent / "diffcli")]
    environment = {k: v for k, v in os.environ.items() if k != "DIFFCLI_DEBUG"}
    process_codes = collections.Counter()
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(1, process_runs + 1):
            data = random_input(rng, extreme=i % 100 == 0)
            argv = random_argv(rng, names_of(data))
            if rng.random() < 0.5 and "-" in argv:  # half read a file, half standard input
                path = Path(scratch) / "fuzz.expr"
                path.write_bytes(data)
                argv = [str(path) if a == "-" else a for a in argv]
            try:
                done = subprocess.run(command + argv, input=data, capture_output=True, timeout=600,
                                      env=environment)
                check_result(done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))
                process_codes[done.returncode] += 1
            except Exception as error:  # noqa: BLE001
                failed["process"] += 1
                report("process", data, argv, error)

    print(f"library (in-process): {library_inputs} inputs, outcomes {dict(outcomes)}")
    print(f"Typer app (in-process, CliRunner): {app_runs} runs, exit codes {dict(codes)}")
    print(f"real command (subprocess): {process_runs} runs, exit codes {dict(process_codes)}")
    print(f"failed: {sum(failed.values())} {dict(failed)}")
    print(f"time: {time.time() - start:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
