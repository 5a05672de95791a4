"""`diffcli check` (reverse vs forward vs finite difference) and forward mode (`grad --wrt`)."""

from __future__ import annotations

import json
import math

import pytest

import diffcli
from diffcli.commands.check import check
from conftest import SAMPLE_SETS, SAMPLES, SHARED, run_diffcli

SAMPLE_FILES = sorted(SAMPLES.glob("*.expr"))
KINK_FILE = "x = 0\ny = 1\nr = relu(x) + abs(x) + max(y, 1) + min(x, 0, 5)\n"


def load_sample(path):
    return diffcli.load(path), SAMPLE_SETS.get(path.stem, {})


# ---------------------------------------------------------------- forward mode

@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_forward_column_is_the_reverse_row_transposed(path):
    """d(out)/dx from forward mode (one column per input) equals reverse mode's row, entry by entry."""
    program, values = load_sample(path)
    row = program.grad(values).gradients
    for x in program.inputs:
        column = program.derivatives(x, values).derivatives
        assert math.isclose(column[program.output], row[x], rel_tol=1e-12, abs_tol=1e-15), x
        assert column[x] == 1.0


def test_forward_mode_on_the_chain_by_hand():
    program = diffcli.load(SAMPLES / "backprop_chain.expr")
    column = program.derivatives("a", {"o": 1}).derivatives
    # db/da = -3, dc/da = 2·(-3), dd/da = 5·(-3), de/da = 7·dc/da + 2d·dd/da, ...
    assert column == {"a": 1.0, "b": -3.0, "c": -6.0, "d": -15.0, "e": -72.0, "f": -144.0,
                      "g": -432.0, "o": 0.0}


def test_forward_mode_cli_json_and_table():
    path = SAMPLES / "backprop_chain.expr"
    done = run_diffcli("grad", path, "--set", "o=1", "--mode", "forward", "--wrt", "a", "--json")
    assert done.returncode == 0, done.stderr_text
    body = json.loads(done.stdout_text)
    assert list(body) == ["wrt", "inputs", "values", "derivatives"]
    assert body["wrt"] == "a" and body["derivatives"]["g"] == -432.0 and body["derivatives"]["b"] == -3.0
    done = run_diffcli("grad", path, "--set", "o=1", "--wrt", "o")
    assert done.returncode == 0 and "∂name/∂o" in done.stdout_text


@pytest.mark.parametrize("argv, code", [
    (["--mode", "forward"], 2),            # forward mode needs --wrt
    (["--wrt", "a", "--of", "g"], 2),      # --of is reverse mode's
    (["--wrt", "b"], 1),                   # a computed name
    (["--wrt", "zz"], 1),                  # no such name
])
def test_forward_mode_refuses_bad_requests(argv, code):
    done = run_diffcli("grad", SAMPLES / "backprop_chain.expr", "--set", "o=1", *argv)
    assert done.returncode == code and done.stdout == b"" and "Traceback" not in done.stderr_text


def test_forward_mode_needs_a_partial_only_where_something_flows():
    # like reverse mode: 0·sqrt(x) at 0 has derivative 0; sqrt'(0) is never needed
    program = diffcli.parse("x = 0\ny = 0*sqrt(x)\n")
    assert program.derivatives("x").derivatives["y"] == 0.0
    assert program.grad().gradients["x"] == 0.0
    # but a named sqrt(x) at 0 has no derivative, and forward mode reports every named variable
    with pytest.raises(diffcli.DiffcliError, match="sqrt"):
        diffcli.parse("x = 0\ns = sqrt(x)\ny = 0*s\n").derivatives("x")


# ---------------------------------------------------------------- check: passes where it should

@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_check_passes_on_every_sample(path):
    sets = ",".join(f"{k}={v}" for k, v in SAMPLE_SETS.get(path.stem, {}).items())
    done = run_diffcli("check", path, "--json", *(["--set", sets] if sets else []))
    assert done.returncode == 0, done.stdout_text + done.stderr_text
    body = json.loads(done.stdout_text)
    program, values = load_sample(path)
    assert body["ok"] is True and body["output"] == program.output
    assert [row["name"] for row in body["rows"]] == list(program.inputs)
    gradients = program.grad(values).gradients
    for row in body["rows"]:
        assert list(row) == ["name", "analytic", "forward", "numeric", "abs_error", "rel_error", "ok",
                             "kink", "reason"]
        assert row["analytic"] == gradients[row["name"]]
        assert math.isclose(row["forward"], row["analytic"], rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(row["numeric"], row["analytic"], rel_tol=1e-6, abs_tol=1e-8)
        assert row["abs_error"] == abs(row["analytic"] - row["numeric"])
        assert row["ok"] is True and row["kink"] is None and row["reason"] is None


def conformance_cases():
    cases = []
    for path in sorted((SHARED / "conformance").glob("*/*.expr")):
        spec = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if "expect" in spec and "kink" not in path.stem:
            cases.append(pytest.param(path, spec["argv"], id=f"{path.parent.name}/{path.stem}"))
    return cases


@pytest.mark.skipif(not (SHARED / "conformance").exists(), reason="../shared is not here")
@pytest.mark.parametrize("path, argv", conformance_cases())
def test_check_agrees_on_the_conformance_programs(path, argv):
    """Steep programs too (sin of a cube): the Richardson-refined difference keeps up."""
    values, of, options = {}, None, iter(argv)
    for option in options:
        if option == "--set":
            for item in next(options).split(","):
                name, _, value = item.partition("=")
                values[name] = float(value)
        elif option == "--of":
            of = next(options)
    result = check(diffcli.load(path), values, of)
    assert result.ok, [(r.name, r.reason) for r in result.rows if not r.ok]


def test_table_shows_the_three_columns_and_the_tolerances():
    done = run_diffcli("check", SAMPLES / "backprop_chain.expr", "--set", "o=1")
    assert done.returncode == 0 and done.stderr == b""
    for word in ("reverse", "forward", "numeric", "abs error", "rel error", "-432", "all agree"):
        assert word in done.stdout_text


# ---------------------------------------------------------------- check: fails where it should

def test_a_kink_at_the_evaluation_point_fails_with_the_reason(tmp_path):
    path = tmp_path / "kinks.expr"
    path.write_text(KINK_FILE)
    done = run_diffcli("check", path)
    assert done.returncode == 1
    assert "kink: relu at 0 (line 3)" in done.stdout_text and "FAIL" in done.stdout_text
    assert "check failed: x: kink: relu at 0 (line 3)" in done.stderr_text
    assert "check failed: y: kink: max tie between arguments 1 and 2" in done.stderr_text
    assert "--allow-kinks" in done.stderr_text
    allowed = run_diffcli("check", path, "--allow-kinks", "--json")
    assert allowed.returncode == 0, allowed.stderr_text
    rows = json.loads(allowed.stdout_text)["rows"]
    assert [row["kink"] for row in rows] == ["relu at 0 (line 3)", "max tie between arguments 1 and 2 (line 3)"]
    assert all(row["ok"] for row in rows)


def test_json_of_a_failed_check_is_on_stdout_and_exits_1(tmp_path):
    path = tmp_path / "kinks.expr"
    path.write_text(KINK_FILE)
    done = run_diffcli("check", path, "--json")
    assert done.returncode == 1 and done.stderr == b""
    body = json.loads(done.stdout_text)
    assert body["ok"] is False and all(not row["ok"] and row["reason"] for row in body["rows"])


@pytest.mark.parametrize("text, kink", [
    ("x = 1e-7\ny = relu(x)\n", "relu near 0 (argument 1e-07) (line 2)"),     # within the step
    ("x = 3\nz = 3\ny = abs(x - z)^3 + abs(2x - 6)\n", "abs at 0 (line 3)"),  # the first kink found
    ("x = 1\ny = min(x, 2 - x)\n", "min tie between arguments 1 and 2 (line 2)"),
    ("x = 1\ny = max(x, 1.000000001)\n", "max near tie (1e-09 apart) between arguments 1 and 2 (line 2)"),
])
def test_kinks_are_found_at_and_near_the_point(text, kink):
    row = check(diffcli.parse(text)).rows[0]
    assert row.kink == kink and not row.ok


@pytest.mark.parametrize("text", [
    "x = 1\ny = relu(x) + abs(x - 0.5)\n",         # far from the kinks
    "x = 0\nc = 0\ny = relu(c) * x\n",             # at relu's kink, but x does not move it
    "x = 0\ny = 2\nr = relu(y - 2)\nout = 3x\n",   # at a kink that does not feed the output
    "x = 1\ny = max(x, x) + min(2x, 2x)\n",        # tied arguments that move together stay tied
])
def test_no_kink_where_the_step_cannot_cross_one(text):
    row = check(diffcli.parse(text)).rows[0]  # x's row
    assert row.name == "x" and row.ok and row.kink is None, row.reason


def test_a_wrong_derivative_is_caught_by_the_finite_difference():
    """Reverse and forward mode share the op table, so a wrong partial fools both: only the
    finite difference can catch it. Break sin's partial and watch check fail."""
    program = diffcli.parse("x = 0.7\ny = sin(x) * x\n")
    graph = program.graph
    node = next(i for i, op in enumerate(graph.op) if op is not None and op.name == "sin")
    graph.partials[node] = (lambda out, x: 2 * math.cos(x),)
    row = check(program).rows[0]
    assert math.isclose(row.analytic, row.forward, rel_tol=1e-12)
    assert not row.ok and "the finite difference" in row.reason
    assert math.isclose(row.numeric, math.cos(0.7) * 0.7 + math.sin(0.7), rel_tol=1e-9)


def test_tolerances_are_options(tmp_path):
    # sin(1000x): the difference is good to ~1e-11 relative, not to the last bit
    path = tmp_path / "steep.expr"
    path.write_text("x = 1\ny = sin(1000x)\n")
    assert run_diffcli("check", path).returncode == 0
    strict = run_diffcli("check", path, "--rtol", "0", "--atol", "0")
    assert strict.returncode == 1 and "check failed: x: reverse mode" in strict.stderr_text
    assert run_diffcli("check", path, "--rtol", "-1").returncode == 2
    # nan passed `min=0`, and then no row was within it: every check failed, exit 1
    for option in ("--rtol", "--atol"):
        done = run_diffcli("check", path, option, "nan", "--json")
        assert done.returncode == 2 and done.stdout_text == ""
        assert json.loads(done.stderr_text)["error"]["kind"] == "input"


def test_a_step_that_leaves_the_domain_is_reported_in_the_row(tmp_path):
    path = tmp_path / "edge.expr"
    path.write_text("x = 1e-7\ny = log(x) + 2x\n")
    done = run_diffcli("check", path, "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr_text
    row = json.loads(done.stdout_text)["rows"][0]
    assert row["numeric"] is None and row["abs_error"] is None and not row["ok"]
    assert "leaves the domain" in row["reason"] and "log" in row["reason"] and "line 2" in row["reason"]
    assert row["analytic"] == row["forward"] == 1 / 1e-7 + 2


def test_check_errors_are_diagnostics():
    done = run_diffcli("check", SAMPLES / "backprop_chain.expr", "--json")  # o has no value
    assert done.returncode == 1 and done.stdout == b""
    assert json.loads(done.stderr_text)["error"]["kind"] == "name"
    done = run_diffcli("check", SAMPLES / "backprop_chain.expr", "--set", "o=1", "--of", "zz")
    assert done.returncode == 1 and done.stderr_text.startswith("error: ")


def test_check_of_another_output():
    result = check(diffcli.load(SAMPLES / "backprop_chain.expr"), {"o": 1}, of="d")
    assert result.ok and result.output == "d"
    assert [(r.name, r.analytic) for r in result.rows] == [("a", -15.0), ("o", 0.0)]


# ---------------------------------------------------------------- kinks in array programs

def _tied_pairs(x, axis, pick):
    """By hand: for each slice of x (all of it, or along axis), the elements tied at its max/min,
    as {the row's label: the pair its note names}: the first tied element and each other one."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    label = lambda index: "x[" + ",".join(map(str, index)) + "]"
    slices = [list(np.ndindex(*x.shape))] if axis is None else [
        [(i, j) if axis == 0 else (j, i) for i in range(x.shape[axis])] for j in range(x.shape[1 - axis])]
    flagged = {}
    for cells in slices:
        best = pick([x[c] for c in cells])
        tied = [c for c in cells if x[c] == best]
        for c in tied[1:]:  # (the first one's step crosses the tie with the next one first)
            flagged.setdefault(label(tied[0]), (label(tied[0]), label(c)))
            flagged[label(c)] = (label(tied[0]), label(c))
    return flagged


@pytest.mark.parametrize("x, axis, pick", [
    ([1, 3, 3, 2], None, max),
    ([4, 1, 1, 7, 1], None, min),
    ([[1, 5], [1, 2], [0, 5]], 0, max),
    ([[1, 5, 1], [2, 2, 0], [3, 4, 3]], 1, min),
    ([[1, 5], [5, 2]], None, max),
])
def test_a_tie_in_a_max_or_min_reduction_is_a_kink(x, axis, pick):
    """Every element tied with its slice's max/min (found by NumPy by hand) has a row at a kink,
    named by the pair; the other rows are checked by the finite difference as before."""
    name = pick.__name__
    text = f"x = {x}\ny = {name}(x{'' if axis is None else f', axis={axis}'})\nz = {'y' if axis is None else 'sum(y)'} + 0.1 * sum(x^2)\n"
    result = check(diffcli.parse(text))
    flagged = _tied_pairs(x, axis, pick)
    assert flagged  # (each case has a tie)
    for row in result.rows:
        if row.name in flagged:
            first, other = sorted(flagged[row.name])
            assert row.kink == f"{name} tie between {first} and {other} (line 2)" and not row.ok, row
        else:
            assert row.kink is None and row.ok, row
    allowed = check(diffcli.parse(text), allow_kinks=True)
    assert allowed.ok and [r.kink for r in allowed.rows] == [r.kink for r in result.rows]


def test_array_kinks_near_the_point_and_where_none_is_crossed():
    near = check(diffcli.parse("x = [1, 3, 3.0000001]\ny = max(x)\n"))
    assert [r.kink for r in near.rows] == [None] + ["max near tie (1e-07 apart) between x[1] and x[2] (line 2)"] * 2
    norm = check(diffcli.parse("x = [1e-7, 0]\ny = norm(x)\n"))
    assert all(r.kink == "norm near 0 (norm(x) = 1e-07) (line 2)" and not r.ok for r in norm.rows)
    # tied elements that move together stay tied; a tie the output does not see is no kink
    together = check(diffcli.parse("u = 2\nz = [u, u, 1]\nw = [5, 5]\nm = max(w)\ny = max(z) + 0*u\n"))
    assert together.ok and all(r.kink is None for r in together.rows), together.rows
    assert check(diffcli.parse("x = [1, 3, 2]\ny = max(x) + norm(x)\n")).ok  # no tie, far from 0


def test_an_array_kink_in_the_cli(tmp_path):
    path = tmp_path / "tie.expr"
    path.write_text("W = [[1, 5], [1, 2]]\ny = sum(max(W, axis=0))\n")
    done = run_diffcli("check", path, "--json")
    assert done.returncode == 1
    rows = {row["name"]: row for row in json.loads(done.stdout_text)["rows"]}
    assert rows["W[0,0]"]["kink"] == rows["W[1,0]"]["kink"] == "max tie between W[0,0] and W[1,0] (line 2)"
    assert rows["W[0,1]"]["ok"] and rows["W[0,1]"]["kink"] is None
    assert run_diffcli("check", path, "--allow-kinks").returncode == 0
