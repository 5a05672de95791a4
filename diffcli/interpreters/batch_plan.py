"""The batch engine's passes over one chunk of points, compiled once per graph into one straight-line
Python function of NumPy calls (issue 23), the interpreter's (batch.py) bit for bit.

batch.py walks the graph node by node for every chunk: each rule called through the NumPy
namespace, each result a new array, each value and adjoint tested by a reduction of its own. A
compiled chunk makes the same NumPy calls on the same operands in the same order, but:

- the rules (the op table's, ops.py) are traced once, with symbolic operands, into the calls they
  make; constants in them (a literal exponent, `y − 1` of the power rule) are computed then, with
  the same Python and NumPy operations the interpreter makes on them;
- each elementwise result of the chunk's length is written with `out=` into a buffer of a pool kept
  from one call to the next (a buffer is reused as soon as its value is dead, in place where an
  operand dies at that call), so a chunk allocates nothing and its arrays stay in the cache;
- the values that are the same at every point (inputs given one number, and what depends only on
  them) are computed once a call, by the interpreter's own functions;
- the tests are one running sum of the reductions the interpreter makes (the values whose NaN no
  user carries on, the leaves' adjoints): where it is not finite, or anything raises, the caller
  runs the interpreter on that chunk, which marks the points, settles them with the single-point
  engine and gives its errors exactly as before;
- three things are left out that change no bit: a product by the constant 1.0 (x·1 is x, NaN and
  −0.0 too), `where` of a condition known when tracing (the branch chosen is the same array), and
  x^1 of a literal exponent 1 (pow(x, 1) is x: np.power returns x itself, NaN and ±inf too;
  tests/test_batch_plan.py checks it on this machine's NumPy, as array_plan.py's test does).

Compiled per (plan, output, which leaves are columns, outputs wanted); None where a rule cannot be
traced (a Python `if` on a value, say), or the graph is larger than MAX_NODES: then the interpreter
runs, as before.
"""

from __future__ import annotations

import math
import operator
import re
import threading

import numpy as np

from .. import ops

MAX_NODES = 5_000   # larger graphs are interpreted (the source grows with the graph)


class _Unwritable(Exception):
    pass


# ufunc names of Python's operators on arrays (ndarray's own: `a - b` is np.subtract(a, b))
_UFUNC = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide",
          ">": "greater", ">=": "greater_equal", "<": "less", "<=": "less_equal"}
_COMPARISONS = {">", ">=", "<", "<="}
_OPERATOR = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
             ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
# NumPy functions of float64 arrays that give float64 arrays of the same length
_FLOAT_UFUNCS = {"add", "subtract", "multiply", "divide", "negative", "power", "sin", "cos", "tan", "arcsin",
                 "arccos", "arctan", "sinh", "cosh", "tanh", "exp", "log", "log2", "log10", "log1p", "sqrt",
                 "fabs", "arctan2", "hypot"}
_NUMPY_NAMES = {"pow": "power", "asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2"}


class _Sym(ops.Operators):
    """A traced value: an array over the chunk's points (kind "f": float64; "b": bool; "o": other),
    or "s", a number known only when a call starts."""

    __slots__ = ("tracer", "kind", "serial", "name", "__weakref__")
    __array_ufunc__ = None   # NumPy scalars hand their operators over to ours

    def __init__(self, tracer, kind, name=None):
        self.tracer, self.kind = tracer, kind
        self.serial = tracer.serial = tracer.serial + 1
        self.name = name or (f"s{self.serial}" if kind == "s" else f"t{self.serial}")

    @property
    def array(self):
        return self.kind != "s"

    def _binary(self, symbol, other, swap=False):
        return self.tracer.binary(symbol, *((other, self) if swap else (self, other)))

    def __neg__(self):
        return self.tracer.negative(self)

    def _refuse(self, *_):
        raise _Unwritable   # a rule that decides on a value in Python: not traceable

    __bool__ = __float__ = __int__ = __index__ = __eq__ = __ne__ = __abs__ = __pow__ = __rpow__ = _refuse
    __hash__ = object.__hash__


def _is_array(x) -> bool:
    return isinstance(x, _Sym) and x.kind != "s"


class _Statement:
    """One call of the chunk: `result = function(*args)`; `pooled`: written with out= into a buffer."""

    __slots__ = ("result", "function", "args", "pooled", "text")

    def __init__(self, result, function, args, pooled=False, text=None):
        self.result, self.function, self.args, self.pooled, self.text = result, function, args, pooled, text


class _Tracer:
    """The numpy backend's namespace (ops._NumPy), recording its calls: what is known when tracing is
    computed at once, by the same operations; what is known when a call starts goes to the
    prologue; what varies over the points goes to the chunk."""

    def __init__(self):
        self.serial = 0
        self.env: dict = {"ndarray": np.ndarray, "math": math}
        self.prologue: list[str] = []
        self.body: list[_Statement] = []
        self.nan = np.nan
        self.numpy = ops.backend("numpy")
        for f in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "exp", "log", "log2",
                  "log10", "log1p", "sqrt", "fabs", "pow", "atan2", "hypot"):
            setattr(self, f, (lambda name: lambda *xs: self.call(name, *xs))(_NUMPY_NAMES.get(f, f)))

    # -- names in the generated source
    def constant(self, value) -> str:
        name = f"K{len(self.env)}"
        self.env[name] = value
        return name

    def text(self, x) -> str:
        if isinstance(x, _Sym):
            return x.name
        if type(x) is float and math.isfinite(x):
            return repr(x)
        return self.constant(x)

    def function(self, f) -> str:
        name = f"F_{getattr(f, '__name__', 'f')}_{len(self.env)}"
        self.env[name] = f
        return name

    def args_text(self, args) -> str:
        """Arguments as source; a list (a variadic rule's xs) as a list."""
        return ", ".join("[" + ", ".join(self.text(x) for x in a) + "]" if isinstance(a, list) else self.text(a)
                         for a in args)

    # -- the calls
    def negative(self, x):
        """`-x`: np.negative on an array, Python's minus on a number (as the interpreter's `-x`)."""
        if _is_array(x):
            return self.call("negative", x)
        return self.scalar(f"-{x.name}") if isinstance(x, _Sym) else -x

    def scalar(self, expression: str) -> _Sym:
        s = _Sym(self, "s")
        self.prologue.append(f"    {s.name} = {expression}")
        return s

    def binary(self, symbol, a, b):
        if not isinstance(a, _Sym) and not isinstance(b, _Sym):
            return _OPERATOR[symbol](a, b)
        if not (_is_array(a) or _is_array(b)):
            return self.scalar(f"{self.text(a)} {symbol} {self.text(b)}")
        if symbol in _COMPARISONS:
            return self.generic(np.__dict__[_UFUNC[symbol]], (a, b), "b")
        return self.call(_UFUNC[symbol], a, b)

    def call(self, name, *xs):
        f = getattr(np, name)
        if not any(isinstance(x, _Sym) for x in xs):
            return f(*xs)
        if name == "power" and type(xs[1]) in (float, np.float64) and xs[1] == 1.0 \
                and _is_array(xs[0]) and xs[0].kind == "f":
            return xs[0]   # x^1 is x itself (see the module's docstring)
        if not any(_is_array(x) for x in xs):
            return self.scalar(f"{self.function(f)}({', '.join(self.text(x) for x in xs)})")
        if name in _FLOAT_UFUNCS and all(x.kind == "f" for x in xs if _is_array(x)) \
                and all(isinstance(x, _Sym) or type(x) in (float, np.float64) for x in xs):
            result = _Sym(self, "f")
            self.body.append(_Statement(result, name, list(xs), pooled=True))
            return result
        return self.generic(f, xs, "o")

    def generic(self, f, xs, kind):
        """A call as the interpreter makes it, its result a new array (no out=)."""
        if not any(isinstance(x, _Sym) for x in xs):
            return f(*xs)
        if not any(_is_array(x) for x in xs):
            return self.scalar(f"{self.function(f)}({', '.join(self.text(x) for x in xs)})")
        result = _Sym(self, kind)
        self.body.append(_Statement(result, self.function(f), list(xs)))
        return result

    def where(self, cond, a, b):
        if not isinstance(cond, _Sym) and isinstance(cond, (bool, np.bool_)):
            chosen = a if cond else b
            if _is_array(chosen) and chosen.kind == "f" and not _is_array(cond):
                other = b if cond else a
                if not _is_array(other) or other.kind == "f":
                    return chosen   # np.where would copy it: the same numbers
        kind = "f" if all((_is_array(x) and x.kind == "f") or type(x) in (float, np.float64) for x in (a, b)) \
            and any(_is_array(x) for x in (cond, a, b)) else "o"
        return self.generic(np.where, (cond, a, b), kind)

    def both(self, a, b):
        return self.generic(np.logical_and, (a, b), "b")

    def eq(self, a, b):
        return self.generic(np.equal, (a, b), "b")

    def count_equal(self, xs, out):
        return self._backend_call("count_equal", list(xs), out)

    def min(self, *xs):
        return self._backend_call("min", *xs)

    def max(self, *xs):
        return self._backend_call("max", *xs)

    def _backend_call(self, name, *args):
        """One of the namespace's own helpers, called as the interpreter calls it (lists flattened
        into the source as lists)."""
        method = getattr(self.numpy, name)
        flat = [x for a in args for x in (a if isinstance(a, list) else [a])]
        if not any(isinstance(x, _Sym) for x in flat):
            return method(*args)
        call = f"{self.function(method)}({self.args_text(args)})"
        if not any(_is_array(x) for x in flat):
            return self.scalar(call)
        result = _Sym(self, "o")
        self.body.append(_Statement(result, None, flat, text=call))
        return result

    def op(self, key, *args):
        return ops.OPS[key].rule(self, *args)


# ================================================================ compiling a plan

class Compiled:
    """`bind(*scalars)` -> a chunk function, or None where a value the same at every point is not
    finite (the interpreter then marks every point); `chunk(pool, *columns, *outputs)` -> the sum of
    the tested reductions (finite: the chunk's outputs are written). `pools` hands each caller a
    pool of its own (threads running batch.run at once on one program get one each)."""

    def __init__(self, bind, buffers, rows, scalars, source):
        self.bind, self.buffers, self.rows, self.scalars, self.source = bind, buffers, rows, scalars, source
        self._free: list = []
        self._lock = threading.Lock()

    def pool(self, size: int) -> list:
        """`buffers` arrays of `size` numbers, the caller's alone until given back."""
        with self._lock:
            while self._free:
                pool = self._free.pop()
                if not pool or len(pool[0]) == size:
                    return pool
        return [np.empty(size) for _ in range(self.buffers)]

    def give_back(self, pool) -> None:
        with self._lock:
            if len(self._free) < 4:
                self._free.append(pool)


def compile_plan(plan, out_node: int, rows: tuple, grads: tuple, vals: tuple, gradients: bool, finite):
    """The compiled chunk for `plan` (batch._Plan): `rows[j]`: whether leaf j is a column; `grads`
    and `vals`: the (name, node) whose gradient and value are stored (in that order, after V, the
    output's value). `finite`: batch._finite (the interpreter's test of a value the same at every
    point). None if it cannot be traced."""
    graph = plan.graph
    if len(graph) > MAX_NODES:
        return None
    try:
        return _compile(plan, out_node, rows, grads, vals, gradients, finite)
    except (_Unwritable, ArithmeticError, ValueError, TypeError):
        return None


def _compile(plan, out_node, rows, grads, vals, gradients, finite):
    graph = plan.graph
    tracer = _Tracer()
    env = tracer.env
    env["finite"] = finite
    values: list = [None] * len(graph)
    row_leaves, scalar_leaves = [], []
    literal = set(range(len(graph))) - set(graph.names.values())
    for j, op in enumerate(graph.op):
        if op is not None:
            continue
        if rows[j]:
            values[j] = _Sym(tracer, "f", f"L{j}")
            row_leaves.append(j)
        elif j in literal:
            values[j] = graph.value0[j]   # a number written in the program: known now
        else:
            values[j] = _Sym(tracer, "s", f"S{j}")
            scalar_leaves.append(j)
    tests: list = []           # arrays whose reductions are summed (in the interpreter's order)
    prologue_tests: list[str] = []
    stores: dict[int, list] = {}   # after which body statement (its count) each store comes
    grad_slot = {name: f"G{k}" for k, (name, _) in enumerate(grads)}
    val_slot = {name: f"W{k}" for k, (name, _) in enumerate(vals)}

    def test(x):
        if _is_array(x):
            tracer.body.append(_Statement(None, "test", [x]))
        elif isinstance(x, _Sym):
            prologue_tests.append(x.name)
        elif not finite(x):
            raise _Unwritable   # never finite: the interpreter says where

    def store(target, x, plus_zero):
        tracer.body.append(_Statement(None, "store+0" if plus_zero else "store", [x], text=target))

    def scalar_call(f, args, convert):
        s = tracer.scalar(f"{tracer.function(f)}({tracer.args_text(args)})")
        if convert:
            tracer.prologue.append(f"    if type({s.name}) is ndarray and {s.name}.ndim == 0: {s.name} = float({s.name})")
        return s

    # ---- forward, as batch._forward
    for node in plan.nodes:
        if node is None:
            continue
        i, args = node.index, [values[j] for j in node.args]
        if any(_is_array(a) for a in args):
            v = graph.op[i].rule(tracer, *args)
        elif any(isinstance(a, _Sym) for a in args):
            v = scalar_call(node.value, args, convert=True)
        else:
            v = node.value(*args)
            if isinstance(v, np.ndarray) and v.ndim == 0:
                v = float(v)
        values[i] = v
        if plan.tested[i]:
            test(v)
    store("V", values[out_node], False)
    for name, node in vals:
        store(val_slot[name], values[node], False)
    # ---- reverse, as batch._reverse
    if gradients:
        adjoint: list = [None] * len(graph)
        adjoint[out_node] = 1.0
        stored = set()
        by_node: dict[int, list] = {}
        for name, node in grads:
            by_node.setdefault(node, []).append(name)
        # a leaf's adjoint is complete once its last user (the lowest) has added to it: tested and
        # stored then, so that its buffer is free for the rest of the pass (the interpreter tests
        # it when it reaches the leaf; the sum of the tests is the same test in another order)
        last_user = {}
        for i in range(out_node, -1, -1):
            for j in graph.args[i]:
                last_user[j] = i
        done = set()

        def complete(j):
            g = adjoint[j]
            done.add(j)
            if g is None:
                return
            if plan.leaf[j]:
                test(g)
            for name in by_node.get(j, ()):
                store(grad_slot[name], g, True)
                stored.add(name)

        for i in range(out_node, -1, -1):
            if i not in done:
                complete(i)
            g = adjoint[i]
            if g is None:
                continue
            node = plan.nodes[i]
            if node is None:
                continue
            a = node.args
            out = values[i]
            xs = [values[k] for k in a]
            traced = any(_is_array(x) for x in [out, *xs])
            for n, j in enumerate(a):
                p = node.partials[n]
                if p is None:
                    continue
                if isinstance(p, float):
                    contribution = g if p == 1.0 else _neg(tracer, g) if p == -1.0 else _mul(tracer, g, p)
                else:
                    mark = tracer.serial
                    if traced:
                        rule = graph.op[i].partial_rules
                        p = rule[0](tracer, n, out, xs) if node.variadic else rule[n](tracer, out, *xs)
                    elif any(isinstance(x, _Sym) for x in [out, *xs]):
                        p = scalar_call(p, [out, xs] if node.variadic else [out, *xs], convert=False)
                    else:
                        p = p(out, xs) if node.variadic else p(out, *xs)
                    fresh = _is_array(p) and p.kind == "f" and p.serial > mark
                    if not isinstance(g, _Sym) and type(g) is float and g == 1.0 \
                            and ((_is_array(p) and p.kind == "f") or type(p) is float):
                        contribution = p   # 1.0·p is p (the interpreter multiplies: the same bits)
                    else:
                        contribution = _mul(tracer, p, g) if fresh else _mul(tracer, g, p)
                before = adjoint[j]
                adjoint[j] = contribution if before is None else tracer.binary("+", before, contribution) \
                    if isinstance(before, _Sym) or isinstance(contribution, _Sym) else before + contribution
            for j in a:
                if last_user[j] == i and plan.leaf[j] and j not in done:
                    complete(j)
        for name, _ in grads:
            if name not in stored:
                store(grad_slot[name], 0.0, True)
    return _emit(tracer, row_leaves, scalar_leaves, grads, vals, prologue_tests, rows)


def _neg(tracer, g):
    return tracer.negative(g)


def _mul(tracer, a, b):
    return tracer.binary("*", a, b) if isinstance(a, _Sym) or isinstance(b, _Sym) else a * b


# ================================================================ buffers and source

def _emit(tracer, row_leaves, scalar_leaves, grads, vals, prologue_tests, rows):
    env, body = tracer.env, tracer.body
    env.update({name: getattr(np, name) for name in _FLOAT_UFUNCS})
    env["add_reduce"] = np.add.reduce
    env["zero_d"], env["ZERO"] = _zero_d, np.array(0.0)
    body = _tests_needed(body)
    tested = [st for st in body if st.function == "test"]
    # the last statement that reads each array
    last: dict[int, int] = {}
    for k, st in enumerate(body):
        for x in st.args:
            if _is_array(x):
                last[id(x)] = k
    names: dict[int, str] = {}    # each array's name in the source, its buffer's where pooled
    owner: dict[int, int] = {}    # the buffer an array lives in
    free: list[int] = []
    count = 1 if len(tested) > 1 else 0   # B0: the running sum of the tested arrays
    zero_d: dict[str, str] = {}   # a number's name as a 0-d array (NumPy's cheaper operand)
    lines = []
    first_test = True
    for k, st in enumerate(body):
        args = st.args
        dying = {id(x): x for x in args if _is_array(x) and last.get(id(x)) == k and id(x) in owner}
        # (a pooled result may take the buffer of an operand that dies here: NumPy writes in place)
        texts = [names.get(id(x), x.name) if isinstance(x, _Sym) else tracer.text(x) for x in args]
        if st.function == "test":
            if len(tested) == 1:
                lines.append(f"        total = add_reduce({texts[0]}, None)")
            elif first_test:
                lines.append(f"        add({texts[0]}, ZERO, B0)")
            else:
                lines.append(f"        add(B0, {texts[0]}, B0)")
            first_test = False
        elif st.function in ("store", "store+0"):
            target = st.text
            if st.function == "store+0":
                lines.append(f"        add({texts[0]}, ZERO, {target})")   # no -0.0, as batch._store
            else:
                lines.append(f"        {target}[...] = {texts[0]}")
        elif st.pooled:
            buffer = next((owner[key] for key in dying), None)
            if buffer is None:
                if free:
                    buffer = free.pop()
                else:
                    buffer, count = count, count + 1
            if st.function in _EXACT:   # a number as a 0-d array: the same float64 operation, sooner
                texts = [_zero_d_name(tracer, x, t, zero_d) if not _is_array(x) else t for x, t in zip(args, texts)]
            lines.append(f"        {st.function}({', '.join(texts)}, B{buffer})")
            reused = next((key for key, x in dying.items() if owner[key] == buffer), None)
            if reused is not None:
                del dying[reused], owner[reused]
            if id(st.result) in last:
                owner[id(st.result)] = buffer
                names[id(st.result)] = f"B{buffer}"
            else:
                free.append(buffer)
        elif st.text is not None:
            lines.append(f"        {st.result.name} = {_substitute(st, names)}")
        else:
            lines.append(f"        {st.result.name} = {st.function}({', '.join(texts)})")
        for x in dying.values():
            free.append(owner.pop(id(x)))
    if len(tested) > 1:
        lines.append("        total = add_reduce(B0, None)")
    elif not tested:
        lines.append("        total = 0.0")
    columns = [f"L{j}" for j in row_leaves]
    outputs = ["V"] + [f"G{k}" for k in range(len(grads))] + [f"W{k}" for k in range(len(vals))]
    unpack = f"        {''.join(f'B{b}, ' for b in range(count))}= pool\n" if count else ""
    checks = (f"    if not ({' and '.join(f'finite({t})' for t in prologue_tests)}):\n        return None\n"
              if prologue_tests else "")
    prologue = tracer.prologue + [f"    {name} = zero_d({scalar})" for scalar, name in zero_d.items()
                                  if scalar.startswith(("S", "s"))]
    source = (f"def bind({''.join(f'S{j}, ' for j in scalar_leaves)}):\n"
              + "".join(line + "\n" for line in prologue) + checks
              + f"    def chunk(pool, {''.join(c + ', ' for c in columns)}{', '.join(outputs)}):\n"
              + unpack + "".join(line + "\n" for line in lines)
              + "        return total\n    return chunk\n")
    # our own text, made from node numbers and the op table's rules, never a file's (as ops.py's)
    exec(compile(source, "<batch chunk>", "exec"), env)  # noqa: S102
    return Compiled(env["bind"], count, row_leaves, scalar_leaves, source)


# the correctly rounded operations: a float64 number gives the same result as a Python float or as
# a 0-d array operand (NumPy takes the latter without converting it each call)
_EXACT = {"add", "subtract", "multiply", "divide"}
# a NaN or infinity in these arguments makes the result's element one (x/inf = 0: the numerator only)
_CARRIES = {"add": (0, 1), "subtract": (0, 1), "multiply": (0, 1), "negative": (0,), "divide": (0,)}


def _zero_d(x):
    return np.array(x) if type(x) in (float, np.float64) else x


def _zero_d_name(tracer, x, text, made) -> str:
    if text not in made:
        if isinstance(x, _Sym):   # known when a call starts: made 0-d in the prologue
            made[text] = f"Z{text}"
        elif type(x) in (float, np.float64):
            made[text] = tracer.constant(np.array(x))
        else:
            made[text] = text
    return made[text]


def _tests_needed(body: list) -> list:
    """The statements without the tests that another test makes: an array that flows, through
    operations that carry a NaN or an infinity into the same point of their result, into a tested
    array is tested there (the last such array in the chain keeps its test)."""
    tested = {id(st.args[0]) for st in body if st.function == "test"}
    covered = set()
    for st in reversed(body):
        if st.pooled and st.function in _CARRIES and (id(st.result) in tested or id(st.result) in covered):
            for position in _CARRIES[st.function]:
                x = st.args[position]
                if _is_array(x):
                    covered.add(id(x))
    return [st for st in body if not (st.function == "test" and id(st.args[0]) in covered)]


def _substitute(st, names) -> str:
    """A helper's call text, each array named as it is now (its buffer, where pooled)."""
    text = st.text
    for x in sorted((x for x in st.args if _is_array(x)), key=lambda x: -len(x.name)):
        if id(x) in names:
            text = _replace_name(text, x.name, names[id(x)])
    return text


def _replace_name(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, text)
