#!/usr/bin/env python3
"""The long differential run: many random programs, diffcli against SymPy/mpmath at 40 digits.

usage: python scripts/long_differential.py [PROGRAMS] [SEED] [--cli-every N]

The same generator as tests/strategies.py, driven by random.Random(SEED) instead of hypothesis.
Every program runs through the library (values, reverse-mode gradients, forward mode for each
input); every N-th also through the command line in-process (Typer's CliRunner, --json). Prints
its figures at the end; each failing program is written to long_differential_failures.txt.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from typer.testing import CliRunner  # noqa: E402

import diffcli  # noqa: E402
from diffcli.cli import app  # noqa: E402
from strategies import RandomChooser, close, generate, mismatches  # noqa: E402


def check(case, runner, with_cli: bool) -> tuple[list[str], int]:
    """The problems found with one program, and how many numbers were compared."""
    try:
        program = diffcli.parse(case.text, "generated.expr")
        result = program.grad(case.sets, of=case.of)
    except Exception as error:  # noqa: BLE001 - any error on a valid program is a finding
        return [f"{type(error).__name__}: {error}"], 0
    try:
        problems = mismatches(case, result)
    except Exception as error:  # noqa: BLE001 - the reference failed: count it, keep going
        return [f"reference (SymPy) failed: {type(error).__name__}: {error}"], 0
    compared = 2 * len(case.names)
    gradients = case.gradients()
    for name in case.names:
        if program.is_input(name):
            try:
                got = program.derivatives(name, case.sets).derivatives[case.output]
            except Exception as error:  # noqa: BLE001
                problems.append(f"forward mode wrt {name}: {type(error).__name__}: {error}")
                continue
            compared += 1
            if not close(got, *gradients[name]):
                problems.append(f"forward mode d{case.output}/d{name}: {got!r}")
    if with_cli:
        args = ["grad", "-", "--json"]
        if case.sets:
            args += ["--set", ",".join(f"{n}={v!r}" for n, v in case.sets.items())]
        if case.of is not None:
            args += ["--of", case.of]
        done = runner.invoke(app, args, input=case.text.encode("utf-8"))
        if done.exit_code != 0:
            problems.append(f"CLI exit {done.exit_code}: {done.stderr}")
        else:
            got = json.loads(done.stdout)
            cli_result = diffcli.Gradients(got["inputs"], got["values"], [], got["output"], got["value"],
                                           got["gradients"])
            problems += [f"CLI: {p}" for p in mismatches(case, cli_result)]
    return problems, compared


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("programs", type=int, nargs="?", default=100_000)
    options.add_argument("seed", type=int, nargs="?", default=1)
    options.add_argument("--cli-every", type=int, default=20)
    args = options.parse_args()

    rng = random.Random(args.seed)
    runner = CliRunner()
    failures_file = Path("long_differential_failures.txt")
    failed = compared = cli_runs = 0
    start = time.time()
    for i in range(1, args.programs + 1):
        case = generate(RandomChooser(rng))
        with_cli = i % args.cli_every == 0
        cli_runs += with_cli
        problems, n = check(case, runner, with_cli)
        compared += n
        if problems:
            failed += 1
            with failures_file.open("a", encoding="utf-8") as out:
                out.write(f"--- program {i} (seed {args.seed}) sets={case.sets!r} of={case.of!r}\n"
                          f"{case.text}\n" + "".join(f"  {p}\n" for p in problems))
        if i % 5000 == 0:
            print(f"{i} programs, {failed} failed, {time.time() - start:.0f} s", flush=True)
    print(f"programs: {args.programs} (seed {args.seed}); through the command line: {cli_runs}")
    print(f"values and gradients compared: {compared}")
    print(f"failed programs: {failed}")
    print(f"time: {time.time() - start:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
