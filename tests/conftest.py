"""Shared helpers: the real `diffcli` executable, and where the shared contract lives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the shared contract (SPEC, conformance cases): $DIFFCLI_SHARED, else `shared` beside the checkout or
# beside one of its parents (a worktree in ../wt/NAME)
SHARED = next((p for p in ([Path(os.environ["DIFFCLI_SHARED"])] if os.environ.get("DIFFCLI_SHARED") else [])
               + [folder / "shared" for folder in ROOT.parents] if p.is_dir()), ROOT.parent / "shared")
SAMPLES = ROOT / "samples"
# values for the samples' free inputs (decay's t and y come from each row of its data)
SAMPLE_SETS = {"backprop_chain": {"o": 1.0}, "decay": {"t": 1.0, "y": 4.0}}


def diffcli_command() -> list[str]:
    """The installed console script beside this Python, else `python -m diffcli`."""
    script = Path(sys.executable).parent / "diffcli"
    if script.exists():
        return [str(script)]
    found = shutil.which("diffcli")
    return [found] if found else [sys.executable, "-m", "diffcli"]


def run_diffcli(*args: str, input: bytes | None = None, cwd: Path | None = None, env=None):
    """Run the real command; returns CompletedProcess with text stdout/stderr."""
    environment = dict(os.environ, **(env or {}))
    environment.pop("DIFFCLI_DEBUG", None)
    done = subprocess.run(
        diffcli_command() + [str(a) for a in args], input=input, capture_output=True,
        cwd=cwd, env=environment, timeout=600,
    )
    done.stdout_text = done.stdout.decode("utf-8")
    done.stderr_text = done.stderr.decode("utf-8")
    return done


@pytest.fixture
def diffcli_run():
    return run_diffcli


# hypothesis: `ci` (the default) is reproducible and bounded; HYPOTHESIS_PROFILE=dev explores more
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
