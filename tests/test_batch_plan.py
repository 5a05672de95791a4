"""The batch engine's compiled chunks (interpreters/batch_plan.py) give what its interpreter gives:
the same bits at every point, the same failed points and the same errors at the same places."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import diffcli
from diffcli import ops
from diffcli.interpreters import batch

from test_backends import points
from test_batch import _program_for

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "samples").glob("*.expr"))


@pytest.fixture
def small_chunks(monkeypatch):
    # compiled from the first call, in chunks of 16 points (the last one shorter)
    monkeypatch.setattr(batch, "PLAN_WORK", 0)
    monkeypatch.setattr(batch, "PLAN_MIN", 0)
    monkeypatch.setattr(batch, "PLAN_CHUNK", 16)


def _both(monkeypatch, program, columns, **options):
    """(compiled, interpreted) results of one call; the first must have run compiled."""
    program_b = diffcli.parse(program.source.text)   # its own graph: its own plan, nothing shared
    tried = []
    with monkeypatch.context() as m:  # (each compiled chunk tried: the first chunk is interpreted, measured)
        chunk = batch._Chunks.__call__
        m.setattr(batch._Chunks, "__call__", lambda self, *a: tried.append(self.trying) or chunk(self, *a))
        compiled = batch.run(program, columns, **options)
    wrt = options.get("wrt")
    plan = batch._plan(program, None if wrt is None else tuple(wrt))
    assert any(c is not None for c in plan.compiled.values()) and any(tried), "the compiled chunk did not run"
    with monkeypatch.context() as m:
        m.setattr(batch, "PLAN_MIN", float("inf"))
        interpreted = batch.run(program_b, columns, **options)
    assert not batch._plan(program_b, None if wrt is None else tuple(wrt)).compiled
    return compiled, interpreted


def _assert_same(a, b):
    def bits(x):
        return np.ascontiguousarray(x).tobytes()

    assert bits(a.value) == bits(b.value)
    assert bits(a.failed) == bits(b.failed)
    for table in ("gradients", "values"):
        x, y = getattr(a, table), getattr(b, table)
        assert (x is None) == (y is None)
        if x is not None:
            assert list(x) == list(y)
            for name in x:
                assert bits(x[name]) == bits(y[name]), (table, name)
    assert sorted(a.errors) == sorted(b.errors)
    for point, error in a.errors.items():
        other = b.errors[point]
        assert (error.kind, error.message, error.span) == (other.kind, other.message, other.span)


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_every_sample_gives_the_interpreters_bits(sample, small_chunks, monkeypatch):
    program = diffcli.load(str(sample))
    rng = np.random.default_rng(7)
    names = list(program.graph.inputs)
    columns = {name: rng.uniform(-2, 2, 16 * 5 + 3) for name in names}
    columns[names[-1]] = 0.75   # one input given one number: the same at every point
    for options in ({}, {"all_names": True}, {"gradients": False}, {"wrt": names[:1]}):
        _assert_same(*_both(monkeypatch, program, columns, **options))


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_points_outside_the_domain_fail_as_the_interpreter_says(sample, small_chunks, monkeypatch):
    program = diffcli.load(str(sample))
    rng = np.random.default_rng(8)
    columns = {name: rng.uniform(-2, 2, 16 * 6) for name in program.graph.inputs}
    for column in columns.values():
        column[20] = 1e308     # overflows (or a domain error) in one chunk
        column[21] = np.nan
        column[50] = -1e308
        column[51] = 0.0
    compiled, interpreted = _both(monkeypatch, program, columns, all_names=True)
    _assert_same(compiled, interpreted)
    assert compiled.failed[20] and compiled.failed[21]      # NaN given: fails everywhere
    assert not compiled.failed[:16].any()                   # the chunks before are not touched


def test_a_domain_error_keeps_its_message_and_place(small_chunks, monkeypatch):
    program = diffcli.parse("x = 1\ny = 2\nf = log(x) * y + sqrt(y - x)\n")
    xs = np.linspace(-1, 3, 16 * 4 + 5)
    compiled, interpreted = _both(monkeypatch, program, {"x": xs, "y": 2.0})
    _assert_same(compiled, interpreted)
    assert compiled.failed.any() and not compiled.failed.all()
    first = compiled.errors[int(np.flatnonzero(compiled.failed)[0])]
    assert first.span is not None and program.source.text[first.span[0]:first.span[1]].startswith("log")


@pytest.mark.parametrize("key", sorted(ops.OPS))
def test_every_operation(key, small_chunks, monkeypatch):
    cases = points(key, n=40)
    arity = len(cases[0]) if ops.OPS[key].arity else 3
    cases = [c for c in cases if len(c) == arity]
    text, names = _program_for(key, arity)
    program = diffcli.parse(text)
    columns = {name: np.array([c[i] for c in cases]) for i, name in enumerate(names)}
    compiled = batch.run(program, columns, all_names=True)
    with monkeypatch.context() as m:
        m.setattr(batch, "PLAN_MIN", float("inf"))
        interpreted = batch.run(diffcli.parse(text), columns, all_names=True)
    _assert_same(compiled, interpreted)


def test_most_operations_compile(small_chunks):
    compiled = []
    for key in sorted(ops.OPS):
        cases = points(key, n=4)
        arity = len(cases[0]) if ops.OPS[key].arity else 3
        text, names = _program_for(key, arity)
        program = diffcli.parse(text)
        batch.run(program, {name: np.linspace(0.1, 0.9, 40) for name in names})
        compiled.append(any(c is not None for c in batch._plan(program).compiled.values()))
    assert sum(compiled) >= 0.8 * len(compiled), [k for k, c in zip(sorted(ops.OPS), compiled) if not c]


def test_power_one_is_its_base_bit_for_bit():
    # batch_plan leaves x^1 out (a literal exponent 1): NumPy's power gives x itself
    x = np.array([0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, np.nan, 5e-324, 1e308])
    assert np.power(x, 1.0).tobytes() == x.tobytes()


def test_small_calls_are_interpreted_until_enough_points(monkeypatch):
    monkeypatch.setattr(batch, "PLAN_MIN", 0)
    monkeypatch.setattr(batch, "PLAN_WORK", 20)  # 4 arrays (2 values, 2 adjoints) of 2 operations: 20 · 12 / 4 = 60 points
    program = diffcli.parse("x = 1\nf = sin(x) * x\n")
    batch.run(program, {"x": np.linspace(0, 1, 50)})
    assert not batch._plan(program).compiled            # 50 points: not compiled
    batch.run(program, {"x": np.linspace(0, 1, 50)})
    assert any(c is not None for c in batch._plan(program).compiled.values())   # 100: compiled


def test_a_call_whose_points_vary_little_is_interpreted():
    """Compiling pays by the arrays a chunk's passes make: a sweep of one input that only one
    operation of many reads (its adjoint 1, a number) is interpreted at 10^6 points, one that every
    operation reads is compiled; the results are the same either way."""
    text = "a = 2\nb = 5 - 3a\nc = exp(b) * sin(a) + cos(a)^2\nd = c * c - a\ng = d * b + c - o\n"
    program = diffcli.parse(text)
    swept = batch.run(program, {"o": np.linspace(0, 1, 10**6)})
    assert not batch._plan(program).compiled             # one array of 12 operations
    assert swept.gradients["o"].tolist()[:3] == [-1.0, -1.0, -1.0]
    program = diffcli.parse(text)
    batch.run(program, {"a": np.linspace(0, 1, 10**6), "o": 1.0})
    assert any(c is not None for c in batch._plan(program).compiled.values())  # all of them vary


def test_chunks_failing_everywhere_go_back_to_the_interpreter(small_chunks, monkeypatch):
    program = diffcli.parse("x = 1\nf = log(x)\n")
    xs = np.linspace(0.5, 2, 16 * 8)
    xs[::16] = -1.0   # a domain error in every chunk
    compiled, interpreted = _both(monkeypatch, program, {"x": xs})
    _assert_same(compiled, interpreted)
    assert compiled.failed.sum() == 8
