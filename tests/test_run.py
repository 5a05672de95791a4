"""Program.run: one forward and one reverse pass, node by node, that check, graph and explain read."""

from __future__ import annotations

import math

import pytest

import diffcli
from diffcli.interpreters import engine
from diffcli.errors import DiffcliError

NEURON = "w = 0.5\nx = 2\nb = -1\nz = w*x + b\na = tanh(z)\nloss = (a - 0.25)^2\n"


def test_run_agrees_with_grad_node_by_node():
    program = diffcli.parse(NEURON)
    run = program.run({"x": 3})
    grad = program.grad({"x": 3})
    names = program.graph.names
    assert run.output == grad.output == "loss" and run.value == grad.value
    assert run.inputs == grad.inputs and run.unused == grad.unused == []
    for name, node in names.items():
        assert run.values[node] == grad.values[name]
        assert run.adjoints[node] == grad.gradients[name]
    assert len(run.values) == len(run.adjoints) == len(program.graph)
    assert run.adjoints[run.output_node] == 1.0


def test_run_of_another_variable_and_unused_names():
    program = diffcli.parse(NEURON)
    run = program.run({"x": 3, "unrelated": 7}, of="z")
    assert run.output == "z" and run.value == 0.5
    assert run.unused == ["unrelated"] and run.inputs["unrelated"] == 7.0
    assert run.adjoints[program.graph.names["w"]] == 3.0
    assert run.adjoints[program.graph.names["loss"]] == 0.0  # downstream of z


def test_values_only_run_needs_no_derivative():
    """sqrt at 0 has no derivative: the values-only run (graph --no-grad) must still work."""
    program = diffcli.parse("x = 0\ny = sqrt(x)\n")
    run = program.run(adjoints=False)
    assert run.adjoints is None and run.value == 0.0
    with pytest.raises(DiffcliError, match="derivative"):
        program.run()


def test_name_checks_are_public():
    program = diffcli.parse(NEURON)
    assert program.check_name("z", "--of") == "z"
    with pytest.raises(DiffcliError, match=r"--of zz: the program has no variable `zz`") as caught:
        program.check_name("zz", "--of")
    assert "did you mean `z`?" in caught.value.help
    assert program.check_input("w", "--wrt") == "w"
    with pytest.raises(DiffcliError, match=r"--wrt a: `a` is computed \(`a = tanh\(z\)`\), not an input"):
        program.check_input("a", "--wrt")


def test_reverse_stopped_at_names_gives_local_partials():
    """Explain's step 2: the reverse pass from one statement, not going past the names it uses."""
    program = diffcli.parse("a = 3\nb = 2a\ny = a*b + sin(b)\n")
    graph, run = program.graph, program.run()
    names = graph.names
    local = engine.reverse(graph, run.values, names["y"], stop=names.values())
    assert local[names["a"]] == 6.0                      # ∂y/∂a with b held: b
    assert local[names["b"]] == 3.0 + math.cos(6.0)      # ∂y/∂b: a + cos(b)
    assert run.adjoints[names["a"]] == 6.0 + 2 * (3.0 + math.cos(6.0))  # the total goes through b


def test_lenient_reverse_marks_undefined_partials_nan():
    program = diffcli.parse("x = 0\nu = sqrt(x)\ny = 0*u + x\n")
    graph, run = program.graph, program.run()
    names = graph.names
    local = engine.reverse(graph, run.values, names["u"], stop=names.values(), strict=False)
    assert math.isnan(local[names["x"]])
    with pytest.raises(DiffcliError):
        engine.reverse(graph, run.values, names["u"], stop=names.values())
    assert run.adjoints[names["x"]] == 1.0  # no gradient flows through u: its partial is not needed
