"""`check --order 2`: the Hessian against central differences of the reverse gradient."""

from __future__ import annotations

import json
import math

import diffcli
from conftest import SAMPLE_SETS, SAMPLES, run_diffcli
from diffcli.commands.check_second import MATRIX_INPUTS, check_second


def test_every_sample_passes():
    for path in sorted(SAMPLES.glob("*.expr")):
        values = SAMPLE_SETS.get(path.stem, {})
        result = check_second(diffcli.load(path), values)
        assert result.ok and result.order == 2, [r.reason for r in result.rows if not r.ok]
        k = len(diffcli.load(path).hessian(values).wrt)
        assert len(result.rows) == k * (k + 1) // 2  # the upper triangle with the diagonal


def test_a_wrong_second_derivative_is_caught():
    """The Hessian pushes tangents through the partial rules; break sin's rule (not the float
    partial the gradient uses) and the difference of the gradient disagrees."""
    program = diffcli.parse("x = 0.7\ny = sin(x) * x\n")
    graph = program.graph
    node = next(i for i, op in enumerate(graph.op) if op is not None and op.name == "sin")
    graph.op[node] = graph.op[node]._replace(partial_rules=(lambda m, out, x: 2 * m.cos(x),))
    row = check_second(program).rows[0]
    assert not row.ok and "the finite difference" in row.reason
    assert math.isclose(row.numeric, -math.sin(0.7) * 0.7 + 2 * math.cos(0.7), rel_tol=1e-8)


def test_kinks_fail_unless_allowed(tmp_path):
    path = tmp_path / "kink.expr"
    path.write_text("x = 0\ny = 1\nf = relu(x)^2 + max(x, y)*y\n")
    done = run_diffcli("check", path, "--order", "2")
    assert done.returncode == 1 and "check failed: x,x: kink: relu at 0 (line 3)" in done.stderr_text
    allowed = run_diffcli("check", path, "--order", "2", "--allow-kinks", "--json")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["ok"] is True


def test_large_programs_check_one_random_direction():
    n = MATRIX_INPUTS + 5
    text = "".join(f"x{i} = {0.1 * i - 1}\n" for i in range(n))
    text += "f = " + " + ".join(f"sin(x{i})*x{i + 1}^2" for i in range(n - 1)) + "\n"
    program = diffcli.parse(text)
    result = check_second(program)
    assert result.ok and [r.name for r in result.rows] == [f"x{i}" for i in range(n)]


def test_order_is_1_or_2():
    assert run_diffcli("check", SAMPLES / "neuron.expr", "--order", "3").returncode == 2
