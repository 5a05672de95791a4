"""Every case in ../shared/conformance and ../shared/arrays-conformance, through the real `diffcli`
command (SPEC's contract). Arrays are nested lists, compared element by element.

Skipped only where ../shared does not exist (a user's own checkout).
"""

from __future__ import annotations

import json
import math

import pytest

from conftest import SHARED, run_diffcli

CONFORMANCE = SHARED / "conformance"
ARRAYS = SHARED / "arrays-conformance"
CASES = (sorted(CONFORMANCE.glob("*/*.expr")) if CONFORMANCE.exists() else []) + \
    (sorted(ARRAYS.glob("*.expr")) if ARRAYS.exists() else [])

pytestmark = pytest.mark.skipif(not CONFORMANCE.exists(), reason="../shared/conformance is not here")


def close(actual, expected) -> bool:
    if isinstance(expected, list):  # an array: the same shape, every element close
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            close(a, e) for a, e in zip(actual, expected))
    return not isinstance(actual, list) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def assert_mapping(actual: dict, expected: dict, what: str, subset: bool = False):
    if subset:  # the array cases list the inputs' gradients only: those, in file order
        assert [key for key in actual if key in expected] == list(expected), what
    else:
        assert list(actual) == list(expected) or set(actual) == set(expected), what
        assert set(actual) == set(expected), f"{what}: keys {list(actual)} != {list(expected)}"
    for key, value in expected.items():
        assert close(actual[key], value), f"{what}[{key}]: {actual[key]!r} != {value!r}"


def test_array_cases_are_here():
    """The array cases are run, not silently skipped (where ../shared is here at all)."""
    assert any(case.parent == ARRAYS for case in CASES) == ARRAYS.exists()


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_case(case):
    spec = json.loads(case.with_suffix(".json").read_text(encoding="utf-8"))
    argv = spec["argv"]
    if "expect" in spec:
        done = run_diffcli("grad", case, *argv, "--json")
        assert done.returncode == 0, done.stderr_text
        got, want = json.loads(done.stdout_text), spec["expect"]
        assert got["output"] == want["output"]
        assert close(got["value"], want["value"]), (got["value"], want["value"])
        for key in ("inputs", "values", "gradients"):
            if key in want:  # (the array cases give no `values`)
                assert_mapping(got[key], want[key], key, subset=case.parent == ARRAYS)
        return

    error = spec["error"]
    for as_json in (False, True):
        done = run_diffcli("grad", case, *argv, *(["--json"] if as_json else []))
        assert done.returncode == error["exit"], done.stderr_text
        assert done.stdout == b""
        assert done.stderr_text.strip(), "no message on standard error"
        assert "Traceback" not in done.stderr_text
        if as_json and error["exit"] == 1:
            body = json.loads(done.stderr_text)["error"]
            for key in ("kind", "line", "column"):
                if key in error:
                    assert body.get(key) == error[key], (key, body)
        elif not as_json and error["exit"] == 1:
            assert done.stderr_text.startswith("error: ")
