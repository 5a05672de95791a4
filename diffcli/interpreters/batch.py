"""The graph over many points at once: forward values, reverse gradients and forward tangents on
NumPy arrays, one pass per chunk of points.

The math is the op table's, applied to the NumPy namespace (`ops.backend("numpy")`); nothing here
writes an operation's formula. Values that stay the same at every point (constants, inputs given
one number) stay Python floats, so only what varies costs a pass over the points.

A point whose value or adjoint goes infinite or NaN anywhere is computed again by the single-point
engine: where that raises, the point fails with exactly the single-point error (its message, kind,
line and column) and the other points keep their results; where it does not (a zero adjoint meeting
an infinite partial, which the single-point engine never multiplies), its results are used. Either
way every point gets what `Program.grad` gives it.

    >>> import numpy as np, diffcli
    >>> from diffcli import batch
    >>> program = diffcli.parse("x = 1\\ny = log(x)")
    >>> result = batch.run(program, {"x": np.array([1.0, 0.0, np.e])})
    >>> result.value, result.gradients["x"], result.failed
    (array([ 0., nan,  1.]), array([1.        ,        nan, 0.36787944]), array([False,  True, False]))
"""

from __future__ import annotations

import functools
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import numpy as np

from .. import ops
from ..errors import DiffcliError
from .engine import needs_gradient

if TYPE_CHECKING:  # pragma: no cover
    from ..program import Program

CHUNK = 1 << 15  # points per pass: each node's array stays in the CPU's cache between passes


@dataclass
class BatchResult:
    """Results at n points. Arrays have one entry per point; where a point failed they hold NaN and
    `errors[point]` says why (the single-point engine's error)."""

    n: int
    output: str
    inputs: dict[str, np.ndarray]           # every input, as used at each point
    value: np.ndarray                       # the output's value
    gradients: dict[str, np.ndarray] | None  # d(output)/d(input) (every named variable if all_names)
    values: dict[str, np.ndarray] | None    # every named variable's value (all_names)
    failed: np.ndarray                      # bool
    errors: dict[int, DiffcliError]
    unused: list[str]                       # given names the program does not have (gradient 0)


@dataclass
class BatchDerivatives:
    """Forward mode at n points: d(name)/d(wrt) for every named variable."""

    n: int
    wrt: str
    inputs: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    derivatives: dict[str, np.ndarray]
    failed: np.ndarray
    errors: dict[int, DiffcliError]
    unused: list[str]


# ================================================================ the plan, built once per graph

class _Node:
    """What the passes need of one node: its value function, its arguments, and for each needed
    argument a way to get the partial (a constant, or a function of (out, *xs))."""

    __slots__ = ("index", "value", "args", "all_partials", "partials", "variadic")

    def __init__(self, index, value, args, all_partials, needs, variadic):
        self.index, self.value, self.args, self.variadic = index, value, args, variadic
        self.all_partials = all_partials  # forward mode needs each one
        self.partials = [p if needs[j] else None for p, j in zip(all_partials, args)]  # reverse mode


def _constant_text(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@functools.lru_cache(maxsize=None)
def _partial_constant(op_key: str, n: int, nargs: int) -> float | None:
    """The partial's value when it is the same everywhere (`1.0` for +, `-1.0` for -), read from the
    rule itself printed as text; None otherwise."""
    op = ops.OPS[op_key]
    python = ops.printer("python")
    xs = python.variables(*[f"x{k}" for k in range(nargs)])
    try:
        text = python._text(ops.apply_partial(op, python, n, python.code("out"), *xs))
    except Exception:  # noqa: BLE001 - a rule the printer cannot write is simply not constant
        return None
    return _constant_text(str(text))


class _Plan:
    """`wrt`: the inputs whose gradients are wanted (None: every named variable's); the reverse pass
    then takes only the partials on a path to them (a fit needs its parameters', not the data's)."""

    def __init__(self, program: Program, wrt: tuple[str, ...] | None = None):
        graph = program.graph
        numpy_math = ops.backend("numpy")
        self.graph = graph
        self.needs = needs_gradient(graph) if wrt is None else _depends_on(graph, wrt)
        self.nodes: list[_Node | None] = []
        for i, (op, args) in enumerate(zip(graph.op, graph.args)):
            if op is None:
                self.nodes.append(None)
                continue
            variadic = op.arity == 0
            partials = []
            for n in range(len(args)):
                constant = _partial_constant(op.key, n, len(args))
                if constant is not None:
                    partials.append(constant)
                elif variadic:
                    partials.append(functools.partial(op.partial_rules[0], numpy_math, n))
                else:
                    partials.append(functools.partial(op.partial_rules[n], numpy_math))
            self.nodes.append(_Node(i, functools.partial(op.rule, numpy_math), args, partials, self.needs, variadic))
        # the values to test: those whose non-finite entries no user carries on (ops.NONFINITE_PROPAGATES);
        # the adjoints to test: the leaves', where every other non-finite adjoint ends up (g·p is
        # not finite where g is not)
        self.tested = [op is not None for op in graph.op]
        for i, op in enumerate(graph.op):
            for position in ops.NONFINITE_PROPAGATES.get(op.key if op else "", ()):
                self.tested[graph.args[i][position]] = False
        self.leaf = [self.needs[i] and (node is None or all(p is None for p in node.partials))
                     for i, node in enumerate(self.nodes)]
        self.compiled: dict = {}   # batch_plan's compiled chunks, by what a call asks (_compiled_chunks)
        self.seen: dict = {}       # the points interpreted so far, by the same key, until compiled


def _depends_on(graph, wrt) -> list[bool]:
    """Whether each node depends on one of the inputs `wrt` (the inputs themselves included)."""
    depends = [False] * len(graph)
    for name in wrt:
        depends[graph.names[name]] = True
    for i, a in enumerate(graph.args):
        if a and not depends[i]:
            depends[i] = any(depends[j] for j in a)
    return depends


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _plan(program: Program, wrt: tuple[str, ...] | None = None) -> _Plan:
    plans = _PLANS.get(program.graph)
    if plans is None:
        plans = _PLANS[program.graph] = {}
    plan = plans.get(wrt)
    if plan is None:
        plan = plans[wrt] = _Plan(program, wrt)
    return plan


# ================================================================ the passes over one chunk

def _finite(x) -> bool:
    """Whether every entry is finite: a sum is finite only if no entry is inf or NaN (an overflow of
    the sum itself is a false alarm, settled by the exact test)."""
    if isinstance(x, float):
        return math.isfinite(x)
    if math.isfinite(np.add.reduce(x, axis=None)):
        return True
    return bool(np.isfinite(x).all())


def _mark(bad, x, size):
    """bad (a bool array or None) with the points where x is not finite added."""
    if isinstance(x, float) or x.ndim == 0:
        if math.isfinite(float(x)):
            return bad
        return np.ones(size, bool)
    worse = ~np.isfinite(x)
    return worse if bad is None else bad | worse


def _forward(plan: _Plan, leaves: list, size: int):
    """Every node's value (a float where it is the same at every point) and the failed points."""
    values = leaves
    bad = None
    tested = plan.tested
    for node in plan.nodes:
        if node is None:
            continue
        a = node.args
        try:
            if len(a) == 1:
                v = node.value(values[a[0]])
            elif len(a) == 2:
                v = node.value(values[a[0]], values[a[1]])
            else:
                v = node.value(*[values[j] for j in a])
        except (ZeroDivisionError, OverflowError):  # Python's floats: a value the same at every
            v = math.nan                            # point (1/(0/1)); its points are settled one by one
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = float(v)
        values[node.index] = v
        if tested[node.index] and not _finite(v):
            bad = _mark(bad, v, size)
    return values, bad


def _reverse(plan: _Plan, values: list, output: int, size: int, bad):
    """Every node's adjoint d(output)/d(node) (None where nothing flows), in the single-point engine's
    order of accumulation, so each point rounds as it does there."""
    adjoint: list = [None] * len(values)
    adjoint[output] = 1.0
    nodes, leaf = plan.nodes, plan.leaf
    owned = [False] * len(values)  # adjoint[j] is an array this pass made for j: add into it in place
    for i in range(output, -1, -1):
        g = adjoint[i]
        if g is None:
            continue
        if leaf[i] and not _finite(g):
            bad = _mark(bad, g, size)
        node = nodes[i]
        if node is None:
            continue
        a = node.args
        out = values[i]
        xs = None
        for n, j in enumerate(a):
            p = node.partials[n]
            if p is None:
                continue
            fresh = False
            if isinstance(p, float):
                contribution = g if p == 1.0 else -g if p == -1.0 else g * p
                fresh = contribution is not g
            else:
                if xs is None:
                    xs = [values[k] for k in a]
                try:
                    p = p(out, xs) if node.variadic else p(out, *xs)
                except (ZeroDivisionError, OverflowError):  # Python's floats: a number the same at
                    p = math.nan                            # every point (1/y at y = 0); its points are settled one by one
                if (type(p) is np.ndarray and p.ndim == 1 and p.dtype == np.float64
                        and (type(g) is float or g.shape == p.shape)
                        and p is not out and all(p is not x for x in xs)):
                    contribution = np.multiply(p, g, out=p)  # p is the rule's own new array
                else:
                    contribution = g * p
                fresh = True
            before = adjoint[j]
            if before is None:
                adjoint[j] = contribution
                owned[j] = fresh and type(contribution) is np.ndarray and contribution.ndim == 1
            elif owned[j] and (type(contribution) is float or contribution.shape == before.shape):
                np.add(before, contribution, out=before)
            else:
                adjoint[j] = before + contribution
                owned[j] = type(adjoint[j]) is np.ndarray and adjoint[j].ndim == 1
    return adjoint, bad


# ================================================================ the compiled passes (batch_plan)

PLAN_CHUNK = 1 << 13  # points per compiled chunk: its buffers stay in the CPU's L2 cache
PLAN_MIN = 1 << 11    # fewer points in a call are interpreted (binding costs more than it saves)
# compiled once the points asked for (by this call and the earlier ones) times the arrays a chunk's
# passes make (its values and adjoints that vary from point to point, as the interpreter's first
# chunk finds them) reach PLAN_WORK · (10 + the operations): compiling (about 0.3 ms and 0.03 ms an
# operation) then costs less than it saves. Below, it costs more: samples/backprop_chain.expr swept
# over `o` (one array of 12 operations) was 1.20x slower compiled on a first call of 10^6
# points; the samples' smallest gain at 10^6 points has 4 arrays of 5 operations (pendulum), 2.2x
# above the line, the largest loss 1 of 6 (decay over `y`), 1.9x below it.
PLAN_WORK = 120_000
_MEASURE = object()  # (_compiled_chunks: the arrays are not known yet: interpret a chunk first)
PLAN_FAILS = 2        # a call whose compiled chunks failed this often, and more than they passed,
                      # interprets the rest (points that fail everywhere: the work would be lost)
PLAN_KEYS = 32        # compiled chunks kept per plan (one per output, columns and outputs wanted)


class _Chunks:
    """A compiled chunk bound to one call: its numbers the same at every point, the columns and
    outputs by name, and a pool of buffers (this call's own). Called with (start, stop, value,
    grads, vals): True where the chunk's tests passed and its outputs are written; False where
    the interpreter must run on it (something not finite, or raised)."""

    def __init__(self, compiled, bound, columns, grads, vals):
        self.compiled, self.bound, self.columns = compiled, bound, columns
        self.grads, self.vals = grads, vals
        self.buffers = compiled.pool(PLAN_CHUNK)
        self.passed = self.failed = 0

    def __bool__(self):
        return True

    @property
    def trying(self) -> bool:
        return self.failed < PLAN_FAILS or self.failed <= self.passed

    def __call__(self, start, stop, value, grads, vals) -> bool:
        if not self.trying:
            return False
        if self._chunk(start, stop, value, grads, vals):
            self.passed += 1
            return True
        self.failed += 1
        return False

    def _chunk(self, start, stop, value, grads, vals) -> bool:
        size = stop - start
        pool = self.buffers if size == PLAN_CHUNK else [b[:size] for b in self.buffers]
        try:
            total = self.bound(pool, *[c[start:stop] for c in self.columns], value[start:stop],
                               *[grads[name][start:stop] for name in self.grads],
                               *[vals[name][start:stop] for name in self.vals])
        except Exception:  # noqa: BLE001 - the interpreter runs the chunk, and raises what it raises
            return False
        return math.isfinite(total)

    def done(self):
        self.compiled.give_back(self.buffers)


def _compiled_chunks(program: Program, plan: _Plan, out_node: int, used: dict, unused: list[str], wanted,
                     all_names: bool, gradients: bool, n: int, arrays: int | None = None) -> _Chunks | None:
    """The compiled chunk for this call (batch_plan.py), or None: the interpreter runs; or _MEASURE
    where it is not compiled yet and how many arrays a chunk makes (`arrays`) is not known."""
    if n < PLAN_MIN:
        return None
    from .batch_plan import compile_plan

    graph = program.graph
    leaves = _leaves(program, used, set(unused))
    rows = tuple(op is None and isinstance(v, np.ndarray) for op, v in zip(graph.op, leaves))
    names = graph.names
    grads = tuple((name, names[name]) for name in wanted)
    vals = tuple((name, node) for name, node in names.items()) if all_names else ()
    made, seen = plan.compiled, plan.seen
    key = (out_node, rows, grads, vals, gradients)
    if key not in made:
        work, known = seen.get(key, (0, arrays))
        if known is None:
            return _MEASURE
        work += n * known
        if work < PLAN_WORK * (10 + len(graph.op) - graph.op.count(None)):
            if len(seen) >= PLAN_KEYS:
                seen.clear()
            seen[key] = (work, known)
            return None
        seen.pop(key, None)
        if len(made) >= PLAN_KEYS:
            made.clear()
        made[key] = compile_plan(plan, out_node, rows, grads, vals, gradients, _finite)
    compiled = made[key]
    if compiled is None:
        return None
    try:
        bound = compiled.bind(*[leaves[j] for j in compiled.scalars])
    except Exception:  # noqa: BLE001 - the interpreter computes them, and raises what it raises
        return None
    if bound is None:
        return None
    return _Chunks(compiled, bound, [leaves[j] for j in compiled.rows], [name for name, _ in grads],
                   [name for name, _ in vals])


# ================================================================ the API

def _columns(program: Program, columns: Mapping[str, object]):
    """Check the given names as --set does; the number of points; every input's column (an array of
    that length, or a float)."""
    arrays = {}
    scalars = {}
    for name, column in columns.items():
        if isinstance(column, (int, float)) and not isinstance(column, bool):
            scalars[name] = float(column)
            continue
        array = np.asarray(column, dtype=float)
        if array.ndim == 0:
            scalars[name] = float(array)
        elif array.ndim != 1:
            raise DiffcliError("input", f"the values of `{name}` must be one number per point (a 1-D array)")
        else:
            arrays[name] = array
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise DiffcliError("input", "every column must have the same number of points: "
                           + ", ".join(f"{k}: {len(a)}" for k, a in arrays.items()))
    n = lengths.pop() if lengths else 1
    # the names are checked (did you mean, computed names, free inputs) as a single point's would be
    representative = {**scalars, **{name: 0.0 for name in arrays}}
    for name, value in scalars.items():
        if not math.isfinite(value):
            representative[name] = value  # refused there, as --set refuses it
    inputs, unused = program._inputs(representative)
    used = {name: arrays.get(name, inputs[name]) for name in inputs}
    return n, used, unused


def _leaves(program: Program, used: dict, unused) -> list:
    """Every leaf node's value over all the points: a column, or one number."""
    names = program.graph.names
    leaves = list(program.graph.value0)
    for name, column in used.items():
        if name not in unused:
            leaves[names[name]] = column
    return leaves


def _chunks(program: Program, used: dict, unused: list[str], n: int, trying=lambda: False):
    """(start, stop, leaves): each chunk of points, with every leaf node's value over it (PLAN_CHUNK
    points while a compiled chunk is tried, `trying()`, else CHUNK for the interpreter)."""
    whole = _leaves(program, used, set(unused))  # (a points file may have 100,000 columns the program does not use)
    start = 0
    while start < n:
        stop = min(n, start + (PLAN_CHUNK if trying() else CHUNK))
        yield start, stop, [v[start:stop] if isinstance(v, np.ndarray) else v for v in whole]
        start = stop


def _store(column: np.ndarray, start: int, stop: int, x) -> None:
    # + 0.0: the single-point engine starts each sum at +0.0, so that none of its zeros is -0.0
    np.add(x, 0.0, out=column[start:stop])


def _failing(tables, point: int) -> None:
    for table in tables:
        for column in (table or {}).values():
            column[point] = math.nan


def run(program: Program, columns: Mapping[str, object], of: str | None = None, *,
        gradients: bool = True, all_names: bool = False, wrt: Iterable[str] | None = None) -> BatchResult:
    """The output's value, and its gradient with respect to every input (every named variable with
    `all_names`, only the inputs `wrt` if given), at each point. `columns` gives each input an array
    (one value per point) or one number; the other inputs take their defaults. Names are checked as
    `Program.grad` checks them. With `wrt`, only the partials on a path to those inputs are taken,
    so a point fails only where one of their gradients does not exist."""
    if program.base.arrays or program.has_arrays:  # an array program: its own engine
        from .array_batch import scalar_columns

        return scalar_columns(program, columns, of, gradients=gradients, all_names=all_names)
    output = program.check_name(of, "--of") if of is not None else program.output
    n, used, unused = _columns(program, columns)
    wrt = None if wrt is None else tuple(wrt)
    plan = _plan(program, wrt)
    names = program.graph.names
    out_node = names[output]
    inputs = {name: np.broadcast_to(np.asarray(column, dtype=float), (n,)) for name, column in used.items()}
    value = np.empty(n)
    wanted = list(wrt) if wrt is not None else [name for name in (names if all_names else program.graph.inputs)]
    grads = {name: np.empty(n) for name in wanted} if gradients else None
    vals = {name: np.empty(n) for name in names} if all_names else None
    failed = np.zeros(n, bool)
    errors: dict[int, DiffcliError] = {}
    with np.errstate(all="ignore"):
        chunked = (program, plan, out_node, used, unused, wanted if gradients else (), all_names, gradients, n)
        compiled = _compiled_chunks(*chunked)
        measure = compiled is _MEASURE
        if measure:
            compiled = None
        # (the chunk measured is a compiled one's size: the rest of a small call can still be compiled)
        for start, stop, leaves in _chunks(program, used, unused, n,
                                           lambda: measure or compiled is not None and compiled.trying):
            if compiled and compiled(start, stop, value, grads, vals):
                continue   # the compiled chunk: every test passed, its outputs written
            node_values, bad = _forward(plan, leaves, stop - start)
            if gradients:
                adjoint, bad = _reverse(plan, node_values, out_node, stop - start, bad)
                for name in wanted:
                    g = adjoint[names[name]]
                    _store(grads[name], start, stop, 0.0 if g is None else g)
            if measure:  # the arrays this chunk made: whether compiling pays for the rest
                measure = False
                arrays = sum(isinstance(v, np.ndarray) for v, op in zip(node_values, program.graph.op) if op is not None)
                arrays += sum(isinstance(a, np.ndarray) for a in adjoint) if gradients else 0
                compiled = _compiled_chunks(*chunked, arrays=arrays)
                if compiled is _MEASURE:
                    compiled = None
            value[start:stop] = node_values[out_node]
            for name, column in (vals or {}).items():
                column[start:stop] = node_values[names[name]]
            for point in np.flatnonzero(bad) if bad is not None else ():
                point = start + int(point)
                given = {name: float(column[point]) for name, column in inputs.items()}
                try:
                    if gradients and wrt is not None:
                        result = _settled(program, given, output, plan.needs)
                    else:
                        result = program.grad(given, output) if gradients else program.evaluate(given)
                except DiffcliError as error:
                    failed[point] = True
                    errors[point] = error
                    _failing((grads, vals, {output: value}), point)
                    continue
                value[point] = result.values[output]
                for name, column in (grads or {}).items():
                    column[point] = result.gradients[name]
                for name, column in (vals or {}).items():
                    column[point] = result.values[name]
        if compiled:
            compiled.done()
    for name in unused:
        if grads is not None:
            grads[name] = np.where(failed, math.nan, 0.0)
        if vals is not None:
            vals[name] = np.where(failed, math.nan, inputs[name])
    return BatchResult(n, output, inputs, value, grads, vals, failed, errors, unused)


@dataclass
class _Settled:
    values: dict[str, float]
    gradients: dict[str, float]


def _settled(program: Program, given: dict[str, float], output: str, needs: list[bool]) -> _Settled:
    """One point by the single-point engine, its reverse pass taking only the partials `needs` marks
    (as Program.grad does, with the same errors at the same places, for those partials only)."""
    from . import engine

    point = program.run(given, output, adjoints=False)
    adjoint = engine.reverse(program.graph, point.values, point.output_node, needs)
    names = program.graph.names
    return _Settled({name: point.values[node] for name, node in names.items()},
                    {name: adjoint[node] for name, node in names.items()})


class Residuals:
    """A residual's values and its Jacobian with respect to some inputs (`wrt`), over fixed columns:
    the batch engine's passes for a fit, set up once. The names and the columns are checked here,
    as `run` checks them, the nodes that do not depend on `wrt` computed, and the rest compiled
    into two straight-line Python functions (`_compiled`): the forward pass, and a reverse pass over
    only the partials on a path from the output to `wrt`, calling the same rules on the same
    operands in `_reverse`'s order of accumulation. `residual(x)` (x: the wrt inputs' values, in
    order) gives the value at each point, `jacobian()` then the Jacobian (points × wrt) at that x,
    so that an optimizer that needs only the residuals somewhere pays only for the forward pass;
    `f(x)` gives both. Each is bit for bit what `run(..., wrt=wrt)` gives, or None where anything
    `run` tests is not finite (then `run` settles the points and says why). The caller runs it
    under np.errstate(all="ignore"), as `run` does (a fit runs all of it so)."""

    def __init__(self, program: Program, columns: Mapping[str, object], of: str, wrt: Iterable[str],
                 checked: bool = False):
        self.wrt = tuple(wrt)
        names = program.graph.names
        leaves = list(program.graph.value0)
        given = _checked_columns(names, columns, self.wrt) if checked else None
        if given is None:   # the names and the columns checked here, as `run` checks them
            output = program.check_name(of, "--of")
            n, used, unused = _columns(program, {**columns, **dict.fromkeys(self.wrt, 0.0)})
            names = program.graph.names
            leaves = list(program.graph.value0)
            for name, column in used.items():
                if name not in unused and name not in self.wrt:
                    leaves[names[name]] = column
        else:   # `checked`: the caller checked them as `_columns` does (a fit's setup): only placed here
            n, output = given, of
            for name, column in columns.items():
                if name in names and name not in self.wrt:
                    leaves[names[name]] = column
        self.n, plan = n, _plan(program, self.wrt)
        self.output = out = names[output]
        # an output made by + - * / of arrays is an array of its own (NumPy's operators never return an
        # operand): given as it is, where any other might be a column or a value the passes keep (copied)
        self.fresh = getattr(program.graph.op[out], "key", None) in _FRESH
        self.slots = [names[name] for name in self.wrt]
        # the nodes that do not depend on the parameters are the same at every call: computed here
        fixed, steps, tested, backward = _residual_plan(plan, out)
        if fixed:
            with np.errstate(all="ignore"):
                leaves, _ = _forward(_Subplan(fixed, plan.tested), leaves, n)
        self.fixed_finite = all(_finite(leaves[node.index]) for node in fixed if plan.tested[node.index])
        self._forward, self._backward = _compiled(plan, leaves, self.slots, steps, tested, backward, out, n)
        self._saved = None

    def residual(self, x, check_output: bool = True) -> np.ndarray | None:
        """The values at x; None where a value `run` tests is not finite. `check_output=False`: the
        output's own values are not tested here (the caller tests them: a fit by its sum of squares,
        which is finite only where they are, and then asks again with the test where it is not)."""
        try:
            value, total, self._saved = self._forward(*(x.tolist() if type(x) is np.ndarray and (
                (kind := x.dtype) is _FLOAT or kind == float) else np.asarray(x, float).tolist()))
        except (ZeroDivisionError, OverflowError):  # Python's floats (a parameter that divides, at 0):
            self._saved = None                       # `run` says what and where
            return None
        n = self.n
        if type(value) is np.ndarray and value.shape == (n,):
            if not (self.fresh and value.dtype is _FLOAT):
                value = np.array(value, float)
        else:
            value = np.full(n, value)
        if not (self.fixed_finite and math.isfinite(total)) or (check_output and not _finite(value)):
            self._saved = None
            return None
        return value

    def jacobian(self) -> np.ndarray | None:
        """The Jacobian at the point of the last `residual` (which gave values, not None)."""
        try:
            jacobian = self._backward(*self._saved)
        except (ZeroDivisionError, OverflowError):  # a partial of Python floats (1/c at c = 0)
            return None
        return jacobian if math.isfinite(np.add.reduce(jacobian, axis=None)) else None

    def __call__(self, x) -> tuple[np.ndarray, np.ndarray] | None:
        value = self.residual(x)
        jacobian = None if value is None else self.jacobian()
        return None if jacobian is None else (value, jacobian)


_FLOAT = np.dtype(float)
_FRESH = frozenset(("add", "sub", "mul", "div"))


def _checked_columns(names, columns: Mapping[str, object], wrt) -> int | None:
    """The number of points, for columns whose names a caller has checked as `_columns` checks them
    (Residuals(..., checked=True)): each a float or a 1-D float array of one length, the output and
    every name the program's. None where they are not so (then `_columns` checks them and says why)."""
    lengths = set()
    for name, column in columns.items():
        if type(column) is np.ndarray:
            if column.ndim != 1 or (column.dtype is not _FLOAT and column.dtype != float):
                return None
            lengths.add(len(column))
        elif type(column) is not float or name not in names or not math.isfinite(column):
            return None
    if len(lengths) > 1 or any(name not in names for name in wrt):
        return None
    return lengths.pop() if lengths else 1


def _compiled(plan: _Plan, leaves: list, slots: list[int], steps, tested, backward, out: int, n: int):
    """Residuals' two passes written out as Python source, from node numbers and the op table's
    rule functions only (never a file's text, as ops.py's float table): forward(*parameters) ->
    (the output's value, a sum over the tested values, the values the reverse pass reads), and
    backward(*those values) -> the Jacobian. Statically known adjoints are not computed: the
    output's is 1.0, and 1.0·p is p exactly (every float, NaN and -0.0 too). Compiled once per plan,
    output, parameters and which leaves are columns; each fit binds its own leaves."""
    rows = [type(v) is np.ndarray and v.ndim == 1 for v in leaves]
    for slot in slots:
        rows[slot] = False
    made = plan.__dict__.setdefault("compiled_residuals", {})
    key = (out, tuple(slots), tuple(rows))
    if key not in made:
        made[key] = _residual_source(rows, slots, steps, tested, backward, out)
    make, used = made[key]
    return make(n, *[leaves[j] for j in used])


def _residual_source(rows: list[bool], slots, steps, tested, backward, out):
    env = {"np": np, "ndarray": np.ndarray, "add_reduce": np.add.reduce, "empty": np.empty}
    lines, used = [], []
    computed = {i for i, *_ in steps} | set(slots)

    def value(j):
        if j in computed:
            return f"v{j}"
        if j not in used:
            used.append(j)
        return f"L{j}"

    rows = list(rows)
    for i, f, a in steps:
        rows[i] = any(rows[j] for j in a)
        env[f"F{i}"] = f
        lines.append(f"        v{i} = F{i}({', '.join(value(j) for j in a)})")
        if not rows[i]:   # a 0-d result of a value the same at every point: a float, as `_forward` makes
            lines.append(f"        if type(v{i}) is ndarray and v{i}.ndim == 0: v{i} = float(v{i})")
    # one statement a term: a single `a + b + …` of thousands nests as deep in CPython's compiler
    lines.append("        total = 0.0")
    lines += [f"        total += add_reduce({value(i)}, axis=None)" for i in tested if i != out]   # (the output: by `residual`)
    forward_lines, lines = lines, []

    adjoint: dict[int, str] = {out: "1.0"}   # each reached node's adjoint, as source
    read = set()
    for i, variadic, a, partials in backward:   # as _reverse, in its order of accumulation
        g = adjoint[i]
        for k, (j, p) in enumerate(partials):
            if type(p) is float:
                if p == 1.0:
                    contribution = g
                elif p == -1.0:
                    contribution = "-1.0" if g == "1.0" else f"(-{g})"
                else:
                    env[f"K{i}_{k}"] = p
                    contribution = f"K{i}_{k}" if g == "1.0" else f"({g} * K{i}_{k})"
            else:
                env[f"P{i}_{k}"] = p
                xs = ", ".join(value(m) for m in a)
                read.update(m for m in [i, *a] if m in computed)
                call = f"P{i}_{k}(v{i}, [{xs}])" if variadic else f"P{i}_{k}(v{i}, {xs})"
                contribution = call if g == "1.0" else f"({g} * {call})"
            before = adjoint.get(j)
            if before is None and contribution.replace("_", "").replace(".", "").replace("-", "").isalnum():
                adjoint[j] = contribution   # a name or a number: nothing to compute
                continue
            lines.append(f"        g{j}_{i}_{k} = {contribution if before is None else f'{before} + {contribution}'}")
            adjoint[j] = f"g{j}_{i}_{k}"
    lines.append(f"        jacobian = empty((n, {len(slots)}))")
    for k, slot in enumerate(slots):   # (+ 0.0, as _store: no -0.0)
        known = adjoint.get(slot, "0.0")
        try:
            number = float(known) + 0.0
        except ValueError:
            number = math.nan
        if math.isfinite(number):   # a number known here: the column filled with it
            lines.append(f"        jacobian[:, {k}] = {number!r}")
        else:
            lines.append(f"        np.add({known}, 0.0, out=jacobian[:, {k}])")
    lines.append("        return jacobian")
    saved = sorted(read)
    forward_lines.append(f"        return {value(out)}, total, ({''.join(f'v{j}, ' for j in saved)})")
    source = (f"def make(n, {''.join(f'L{j}, ' for j in used)}):\n"
              f"    def forward({', '.join(f'v{slot}' for slot in slots)}):\n" + "\n".join(forward_lines)
              + f"\n\n    def backward({', '.join(f'v{j}' for j in saved)}):\n" + "\n".join(lines)
              + "\n    return forward, backward\n")
    exec(compile(source, "<residual passes>", "exec"), env)  # noqa: S102
    return env["make"], used


def _residual_plan(plan: _Plan, out: int):
    """What Residuals needs of a plan (made once per plan and output): the nodes that do not depend
    on `wrt` (computed once per fit), the others' (index, value function, arguments), the tested
    ones among those, and for the reverse pass each node the output's adjoint reaches, with the
    partials it needs."""
    made = plan.__dict__.setdefault("residual_plans", {})
    if out in made:
        return made[out]
    nodes = [node for node in plan.nodes if node is not None]
    fixed = [node for node in nodes if not plan.needs[node.index]]
    steps = [(node.index, node.value, node.args) for node in nodes if plan.needs[node.index]]
    tested = [i for i, t in enumerate(plan.tested) if t and plan.needs[i]]
    reached = [False] * len(plan.nodes)
    reached[out] = True
    backward = []
    for i in range(out, -1, -1):
        node = plan.nodes[i]
        if not reached[i] or node is None:
            continue
        partials = [(j, p) for j, p in zip(node.args, node.partials) if p is not None]
        for j, _ in partials:
            reached[j] = True
        if partials:
            backward.append((i, node.variadic, node.args, partials))
    made[out] = fixed, steps, tested, backward
    return made[out]


class _Subplan:
    """Some of a plan's nodes, for `_forward`."""

    def __init__(self, nodes, tested):
        self.nodes, self.tested = nodes, tested


def tangents(program: Program, columns: Mapping[str, object], wrt: str) -> BatchDerivatives:
    """Forward mode at each point: d(name)/d(wrt) for every named variable, wrt being an input."""
    program.check_input(wrt, "--wrt")
    n, used, unused = _columns(program, columns)
    plan = _plan(program)
    names = program.graph.names
    inputs = {name: np.broadcast_to(np.asarray(column, dtype=float), (n,)) for name, column in used.items()}
    vals = {name: np.empty(n) for name in names}
    ders = {name: np.empty(n) for name in names}
    failed = np.zeros(n, bool)
    errors: dict[int, DiffcliError] = {}
    with np.errstate(all="ignore"):
        for start, stop, leaves in _chunks(program, used, unused, n):
            node_values, bad = _forward(plan, leaves, stop - start)
            tangent, bad = _tangents(plan, node_values, names[wrt], stop - start, bad)
            for name, node in names.items():
                vals[name][start:stop] = node_values[node]
                _store(ders[name], start, stop, tangent[node])
            for point in np.flatnonzero(bad) if bad is not None else ():
                point = start + int(point)
                given = {name: float(column[point]) for name, column in inputs.items()}
                try:
                    result = program.derivatives(wrt, given)
                except DiffcliError as error:
                    failed[point] = True
                    errors[point] = error
                    _failing((vals, ders), point)
                    continue
                for name in names:
                    vals[name][point] = result.values[name]
                    ders[name][point] = result.derivatives[name]
    for name in unused:
        vals[name] = np.where(failed, math.nan, inputs[name])
        ders[name] = np.where(failed, math.nan, 0.0)
    return BatchDerivatives(n, wrt, inputs, vals, ders, failed, errors, unused)


def _tangents(plan: _Plan, values, wrt, size, bad):
    """d(node)/d(wrt) for every node, in the single-point engine's order of summation. A partial is
    taken only where a tangent flows; a non-finite one that meets a flow marks the point, and the
    single-point engine then settles it."""
    tangent: list = [0.0] * len(values)
    tangent[wrt] = 1.0
    for i in range(wrt + 1, len(values)):
        node = plan.nodes[i]
        if node is None:
            continue
        total = None
        xs = None
        for n, j in enumerate(node.args):
            t = tangent[j]
            if isinstance(t, float) and t == 0.0:
                continue
            p = node.all_partials[n]
            if not isinstance(p, float):
                if xs is None:
                    xs = [values[k] for k in node.args]
                p = p(values[i], xs) if node.variadic else p(values[i], *xs)
            term = t * p
            total = term if total is None else total + term
        if total is None:
            continue
        if isinstance(total, np.ndarray) and total.ndim == 0:
            total = float(total)
        if not _finite(total):
            bad = _mark(bad, total, size)
        tangent[i] = total
    return tangent, bad


# ================================================================ a pure function for other schedulers

def kernel(program: Program, inputs: Iterable[str], of: str | None = None, *,
           gradients: bool = True) -> Callable[..., np.ndarray]:
    """A pure function of arrays: f(*columns) -> an (n, k) array whose columns are `f.columns`: the
    output's value, then d(output)/d(input) for every input of the program (NaN where a point
    failed). The given `inputs` are the arrays, in this order; the others take their defaults.
    Being pure and chunk-local, it maps over a Dask array with `dask.array.map_blocks`."""
    inputs = list(inputs)
    if program.base.arrays or program.has_arrays:  # an array program: its own engine
        from .array_batch import kernel as array_kernel

        return array_kernel(program, inputs, of, gradients=gradients)
    output = of or program.output
    run(program, {name: np.zeros(1) for name in inputs}, output, gradients=False)  # checks the names
    columns = [output] + ([f"d{output}/d{name}" for name in program.graph.inputs] if gradients else [])

    def f(*arrays):
        result = run(program, dict(zip(inputs, arrays)), output, gradients=gradients)
        parts = [result.value] + ([result.gradients[name] for name in program.graph.inputs] if gradients else [])
        return np.stack(parts, axis=-1)

    f.columns = columns
    return f
