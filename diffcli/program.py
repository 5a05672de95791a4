"""The library's front door: load a program, evaluate it, differentiate it.

    >>> import diffcli
    >>> program = diffcli.parse("a = 2\\nb = 5 - 3a\\ng = b^2 - o")
    >>> result = program.grad({"o": 1})
    >>> result.value, result.gradients["a"]
    (0.0, 6.0)

Every problem is raised as `diffcli.DiffcliError`. Nothing here prints.
"""

from __future__ import annotations

import gc
import math
import numbers
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .display import Displayed, draw
from .interpreters import engine
from .language import parser
from .errors import DiffcliError, Source
from .language.graph import Graph, build, did_you_mean
from .ops import CONSTANTS, RESERVED
from .language.syntax import Assignment


@dataclass
class Evaluation(Displayed):
    """Forward pass: the value actually used for every input, and every named variable's value."""

    inputs: dict[str, float]
    values: dict[str, float]
    unused: list[str]  # names given values that the program does not have (see Program.grad)


@dataclass
class Gradients(Evaluation):
    """Reverse pass: d(output)/d(name) for every named variable, 0 where the output does not depend on it."""

    output: str
    value: float
    gradients: dict[str, float]


@dataclass
class Derivatives(Evaluation):
    """Forward mode: d(name)/d(wrt) for every named variable."""

    wrt: str
    derivatives: dict[str, float]


@dataclass
class Run:
    """One forward pass and (unless not asked for) one reverse pass, node by node: what the commands
    that look inside the graph (check, graph, explain) read, rather than running the engine again."""

    inputs: dict[str, float]        # the value used for every input, then for every unused name
    unused: list[str]               # names given values that the program does not have
    output: str                     # the variable differentiated (or, without adjoints, the one asked for)
    output_node: int
    values: list[float]             # node -> its value
    adjoints: list[float] | None    # node -> d(output)/d(node); None when only values were asked for

    @property
    def value(self) -> float:
        value = self.values[self.output_node]
        return _plain(value) if self.values.__class__ is list and hasattr(value, "ndim") else value


@dataclass
class Jacobian(Evaluation):
    """Several outputs: d(output)/d(name) for each output and every named variable."""

    outputs: list[str]
    jacobian: dict[str, dict[str, float]]


class Program(Displayed):
    """A parsed and checked .expr program, compiled into a computation graph. In Jupyter it displays
    its graph (and its values, where every input has one)."""

    def __init__(self, source: Source, statements: list[Assignment], graph: Graph):
        self.source = source
        self.statements = statements
        # `graph` is the program's graph, lowered (language/arrays.py) for the shapes of the inputs
        # last bound when the program has arrays; `base` is the graph as the file is written
        self.base = self.graph = graph
        self._lowered: dict[tuple, Graph] = {}
        # where a given value came from, for its diagnostics: name -> "--inputs in.json" (the CLI
        # sets it); a name not here was given with --set
        self.given_from: dict[str, str] = {}
        if graph.arrays and all(value is not None for value in graph.inputs.values()):
            self._bind(dict(graph.inputs))  # every shape is known: shape errors now, at load

    # -- what the program is
    @property
    def names(self) -> list[str]:
        """Every named variable, in file order of first appearance."""
        return list(self.graph.names)

    @property
    def inputs(self) -> dict[str, float | None]:
        """Every input and its default (None for a free input, which needs a value)."""
        return dict(self.graph.inputs)

    @property
    def output(self) -> str:
        """The default output: the name assigned by the file's last statement."""
        return self.graph.output

    @property
    def notes(self) -> list[DiffcliError]:
        """Remarks on the source that are not errors, such as `2e-3` beside a variable `e`."""
        return self.graph.notes

    def given_label(self, name: str, named: bool = False) -> str:
        """How a diagnostic names the value given for `name`: `--set x`, or `--inputs in.json`
        (`named`: for a message that does not name `x` itself, `--inputs in.json: `x``)."""
        if name not in self.given_from:
            return f"--set {name}"
        return f"{self.given_from[name]}: `{name}`" if named else self.given_from[name]

    def is_input(self, name: str) -> bool:
        return name in self.graph.inputs

    def definition(self, name: str) -> str:
        """The source text of a computed name's right side, or "input"."""
        if name in self.graph.inputs:
            return "input"
        if name not in self.graph.definitions:
            return "input (not used)"
        expr = self.graph.definitions[name].expr
        return self.source.snippet(expr.start, expr.end)

    def graph_svg(self, values: Mapping[str, float] | None = None, of: str | None = None,
                  precision: int = 6) -> str:
        """The drawing `diffcli graph --format svg` makes, as SVG text."""
        return draw(self, "graph_svg", values, of, precision)

    # -- what it computes
    def run(self, values: Mapping[str, float] | None = None, of: str | None = None, *,
            adjoints: bool = True) -> Run:
        """The forward pass and, if `adjoints`, the reverse pass of `of` (default: the output), once:
        every node's value and d(of)/d(node).

        `values` may name an input the program does not have, unless a name it has is close to it
        (then it is taken for a typo and refused): such an input is listed in `unused`.
        """
        output = self.check_name(of, "--of") if of is not None else self.output
        inputs, unused = self._inputs(values)
        if adjoints:
            self._scalar_output(output)
        node = self.graph.names[output]
        node_values = engine.forward(self.graph, inputs)
        adjoint = engine.reverse(self.graph, node_values, node) if adjoints else None
        return Run(inputs, unused, output, node, node_values, adjoint)

    def evaluate(self, values: Mapping[str, float] | None = None) -> Evaluation:
        run = self.run(values, adjoints=False)
        return Evaluation(run.inputs, self._by_name(run.values, run.inputs, run.unused), run.unused)

    def grad(self, values: Mapping[str, float] | None = None, of: str | None = None) -> Gradients:
        """Forward and reverse passes: every named variable's value and d(of)/d(name); an unused
        name in `values` (see `run`) has gradient 0."""
        if self.base.arrays or self.graph.shape is not None:
            fast = self._planned_grad(values, of)
            if fast is not None:
                return fast
        run = self.run(values, of)
        zeros = _unused_zeros(run.inputs, run.unused)
        return Gradients(
            run.inputs, self._by_name(run.values, run.inputs, run.unused), run.unused, run.output,
            run.value, self._by_name(run.adjoints, zeros, run.unused),
        )

    def derivatives(self, wrt: str, values: Mapping[str, float] | None = None) -> Derivatives:
        """Forward mode: d(name)/d(wrt) for every named variable, wrt being an input (or one element
        of an array input: `x[1]`, `W[0,1]`)."""
        name, index = self._element_of(wrt, "--wrt")  # (an element that is not there: its own error)
        run = self.run(values, adjoints=False)
        seed = None
        shape = self.shape(name)
        if shape:
            import numpy as np

            if index is None:
                from .ops import shape_text

                raise DiffcliError("input", f"--wrt {wrt}: `{name}` is {_shape_words(shape)}; forward mode "
                                   "differentiates with respect to one of its elements",
                                   help=f"name an element, like --wrt {name}[{','.join('0' * max(1, len(shape)))}]"
                                   + (f" (shape {shape_text(shape)})" if shape else ""))
            seed = np.zeros(shape)
            seed[index] = 1.0
        tangent = engine.tangents(self.graph, run.values, self.graph.names[name], seed=seed)
        zeros = _unused_zeros(run.inputs, run.unused)
        return Derivatives(run.inputs, self._by_name(run.values, run.inputs, run.unused), run.unused,
                           wrt, self._by_name(tangent, zeros, run.unused))

    def jacobian(self, outputs: list[str], values: Mapping[str, float] | None = None,
                 mode: str | None = None) -> Jacobian:
        """Every output's gradient over every named variable (see jacobian.py for the sweeps;
        `mode` "reverse" or "forward" forces one)."""
        from .interpreters import jacobian

        outputs = [self.check_name(name, "--of") for name in dict.fromkeys(outputs)]
        outputs.sort(key=list(self.graph.names).index)  # SPEC: every mapping in file order
        inputs, unused = self._inputs(values)
        node_values = engine.forward(self.graph, inputs)
        if self.has_arrays:  # a reverse sweep per output, each a scalar (SPEC), on the array engine
            zeros = _unused_zeros(inputs, unused)
            rows = {}
            for output in outputs:
                self._scalar_output(output)
                adjoint = engine.reverse(self.graph, node_values, self.graph.names[output])
                rows[output] = {name: value for name, value in self._by_name(adjoint, zeros, unused).items()
                                if name in self.graph.names}
        else:
            rows = jacobian.jacobian(self.graph, node_values, outputs, mode)
        for row in rows.values():
            row.update(_unused_zeros(inputs, unused))
        return Jacobian(inputs, self._by_name(node_values, inputs, unused), unused, outputs, rows)

    def uncertainty(self, values: Mapping[str, float] | None = None, of: str | None = None, **options):
        """The output's value and combined standard uncertainty, with the budget: see
        diffcli.uncertainty.propagate for the options (uncertainties, correlations, order,
        monte_carlo, seed)."""
        from .interpreters.uncertainty import propagate

        return propagate(self, values, of, **options)

    def fit(self, wrt=None, data=None, **options):
        """Fit inputs to data as `diffcli fit` does: `wrt` the inputs to fit (default: every input
        with a literal value that the data do not set); `data` a CSV or JSON Lines path, a mapping
        of columns, or a pandas DataFrame; options residual, of, sigma, absolute_sigma, observed,
        method, bounds ({name: (low, high)}), values (like --set), steps, lr, tol. Returns a
        diffcli.fit_api.FitResult: .parameters, .stderr, .covariance, .statistics, .confidence(),
        .report(), .write(path)."""
        from . import fit_api  # the one call up from the front door (tests/test_layers.py)

        return fit_api.fit(self, wrt, data, **options)

    def hessian(self, values: Mapping[str, float] | None = None, of: str | None = None,
                wrt: list[str] | str | None = None):
        """Second derivatives d²(of)/d(a)d(b) over the inputs `wrt` (default: every input the output
        depends on, in file order; a list of names, or one string: a name or a comma list, see
        wrt_names), exact, by forward-over-reverse (see hessian.py). On an array
        program the rows and columns are elements, labelled `W[0,1]`; `wrt` takes array names (every
        element) and element labels (array_hessian.py)."""
        from .interpreters import hessian

        wrt = wrt_names(wrt)
        output, inputs, unused, node_values = self._second_order_setup(values, of)
        if self.has_arrays:
            return self._array_hessian(output, inputs, unused, node_values, wrt)
        if wrt is None:
            feeds = self.graph.feeds(self.graph.names[output])
            wrt = [name for name in self.graph.inputs if feeds[self.graph.names[name]]]
        else:
            wrt = [self.check_input(name, "--wrt") for name in dict.fromkeys(wrt)]
        if len(wrt) > hessian.MAX_MATRIX:
            raise DiffcliError(
                "input", f"a Hessian over {len(wrt)} inputs is too big to compute whole "
                f"(at most {hessian.MAX_MATRIX}: each node carries a tangent per input)",
                help="choose the inputs with --wrt a,b,..., or ask for H·v with --hvp",
            )
        numbers = len(wrt) * len(self.graph)   # the tangents: a row of the matrix on every node
        if numbers > hessian.MAX_TANGENTS:
            raise DiffcliError(
                "input", f"a Hessian over {len(wrt)} inputs of a program of {len(self.graph):,} nodes is too "
                f"big to compute whole (its tangents would hold {numbers:,} numbers, more than "
                f"{hessian.MAX_TANGENTS:,})",
                help="choose fewer inputs with --wrt a,b,..., or ask for H·v with --hvp",
            )
        gradient, matrix = hessian.hessian_matrix(self.graph, node_values, self.graph.names[output], wrt)
        return hessian.Hessian(inputs, unused, output, node_values[self.graph.names[output]], wrt,
                               gradient, matrix)

    def _array_hessian(self, output, inputs, unused, node_values, wrt):
        from .interpreters import array_hessian, hessian

        graph = self.graph
        chosen = self._hessian_plan(output, wrt)
        labels = chosen.labels
        node = graph.names[output]
        gradient, matrix = array_hessian.hessian_matrix(graph, node_values, node, chosen)
        return hessian.Hessian(inputs, unused, output, float(node_values[node]), labels,
                               dict(zip(labels, gradient.tolist())), matrix)

    def _hessian_plan(self, output, wrt):
        """The array Hessian's Plan for `wrt` (default: every input the output depends on), checked
        against the bounds; kept on the graph (the same checks would pass again)."""
        from .interpreters import array_hessian

        graph = self.graph
        kept = graph.__dict__.setdefault("_hessian_plans", {})
        key = (output, None if wrt is None else tuple(wrt))
        if key in kept:
            return kept[key]
        if wrt is None:
            feeds = graph.feeds(graph.names[output])
            entries = [(name, None) for name in graph.inputs if feeds[graph.names[name]]]
        else:
            entries = [self._element_of(label, "--wrt") for label in dict.fromkeys(wrt)]
        entries = list(dict.fromkeys(entries))
        # the bound first, from the shapes alone (the plan holds k × k seeds)
        k = sum(math.prod(graph.shape[graph.names[name]]) if index is None else 1 for name, index in entries)
        numbers = k * sum(max(1, math.prod(s)) for s in graph.shape)
        if k > array_hessian.MAX_ELEMENTS or numbers > array_hessian.MAX_TANGENTS:
            why = (f"at most {array_hessian.MAX_ELEMENTS:,}: each node carries a tangent per element"
                   if k > array_hessian.MAX_ELEMENTS else f"its tangents would hold {numbers:,} numbers, more "
                   f"than {array_hessian.MAX_TANGENTS:,}")
            raise DiffcliError(
                "shape", f"a Hessian over {k:,} elements is too big to compute whole ({why})",
                help="choose some with --wrt W1,b1 or --wrt W1[0,1],..., or ask for H·v with --hvp "
                "(or --hvp-inputs FILE.json)")
        chosen = array_hessian.plan(graph, entries)
        if chosen.repeated is not None:
            raise DiffcliError("input", f"--wrt: the element {chosen.repeated} is named twice (once by its array's "
                               "name)", help="name an array whole, or some of its elements, not both")
        if len(kept) > 16:
            kept.clear()
        kept[key] = chosen
        return chosen

    def _element_of(self, label: str, option: str) -> tuple[str, tuple | None]:
        """`W[0,1]` -> ("W", (0, 1)), `W` -> ("W", None), checked against the inputs' shapes."""
        name, index = _element(label)
        if index is None and "[" in label:
            raise DiffcliError("input", f"{option} {label}: not an input or an element of one",
                               help="write an element as W[0,1] or x[2]: integers, row-major")
        self.check_input(name, option)
        shape = self.shape(name)
        if index is not None and (len(index) != len(shape) or not all(0 <= k < n for k, n in zip(index, shape))):
            from .ops import shape_text

            raise DiffcliError("input", f"{option} {label}: `{name}` is {_shape_words(shape)}, which has no "
                               f"element {label[len(name):]}",
                               help=f"an element of {name}: {name}[{','.join('0' * len(shape))}]"
                               + (f" (shape {shape_text(shape)})" if shape else "") if shape else
                               f"{name} is a scalar: write --wrt {name}")
        return name, index

    def hvp(self, vector: Mapping[str, float], values: Mapping[str, float] | None = None,
            of: str | None = None, *, option: str = "--hvp"):
        """The Hessian-vector product H·v over every input (names missing from v are 0). On an array
        program v maps each array input to an array of its shape, and the result is by element
        label (`W[0,1]`)."""
        from .interpreters import hessian

        output, inputs, unused, node_values = self._second_order_setup(values, of)
        if self.has_arrays:
            return self._array_hvp(output, inputs, unused, node_values, vector, option)
        given, vector = vector, {}
        for name, v in given.items():
            name = self.check_input(name, "--hvp")
            try:
                vector[name] = v = float(v)
            except (TypeError, ValueError, OverflowError):  # (the Python API: any object)
                v = math.nan
            if not math.isfinite(v):
                raise DiffcliError("input", f"--hvp {name}: {_short_repr(given[name])} is not a finite number")
        gradient, product = hessian.hessian_vector(self.graph, node_values, self.graph.names[output], vector)
        for name in unused:
            gradient[name] = product[name] = 0.0
        return hessian.HessianVector(inputs, unused, output, node_values[self.graph.names[output]],
                                     {name: vector.get(name, 0.0) for name in inputs}, gradient, product)

    def _array_hvp(self, output, inputs, unused, node_values, vector, option):
        import numpy as np

        from .interpreters import array_hessian, hessian
        from .ops import shape_text

        graph = self.graph
        direction = {}
        for name, v in vector.items():
            self.check_input(name, option)
            shape = self.shape(name)
            where = f"{option} {name}" if option == "--hvp" else f"{option}: {name}"
            array = _array_value(name, v, where) if _shape(v) or not isinstance(v, (int, float)) else v
            if isinstance(array, (int, float)) and not (abs(array) <= sys.float_info.max):  # (10**400 too)
                raise DiffcliError("input", f"{where}: {_short_repr(array)} is not a finite number")
            if _shape(array) != shape:
                raise DiffcliError("input", f"{where if option == '--hvp' else option}: `{name}` is {_shape_words(shape)}, but the direction "
                                   f"given is {_shape_words(_shape(array))}",
                                   help=f"give {name} a direction of shape {shape_text(shape)}")
            direction[graph.names[name]] = np.asarray(array, dtype=float)
        node = graph.names[output]
        adjoint, product = array_hessian.hessian_vector(graph, node_values, node, direction)
        labels, gradient, hvp, used = [], {}, {}, {}
        for name in graph.inputs:
            n = graph.names[name]
            v = direction.get(n, np.zeros(graph.shape[n]))
            for (label, g), (_, h), (_, x) in zip(_element_items(name, adjoint[n]), _element_items(name, product[n]),
                                                  _element_items(name, v)):
                gradient[label], hvp[label], used[label] = g, h, x
        for name in unused:
            gradient[name] = hvp[name] = used[name] = 0.0
        return hessian.HessianVector(inputs, unused, output, float(node_values[node]), used, gradient, hvp)

    def _second_order_setup(self, values, of):
        output = self.check_name(of, "--of") if of is not None else self.output
        inputs, unused = self._inputs(values)
        self._scalar_output(output)
        node_values = self._planned_values(inputs, output) if self.has_arrays else None
        if node_values is None:
            node_values = engine.forward(self.graph, inputs)
        return output, inputs, unused, node_values

    def _planned_values(self, inputs, output: str) -> list | None:
        """Every node's value by the compiled forward pass (array_plan.py), from a graph's second
        call on (a single call is cheaper interpreted than compiled); None where its checks find a
        value that is not finite (then the interpreter runs, and raises its located error)."""
        graph = self.graph
        calls = graph.__dict__["_forward_calls"] = graph.__dict__.get("_forward_calls", 0) + 1
        if calls < 2:
            return None
        from .interpreters import array_plan

        compiled = array_plan.plan(graph, graph.names[output], wanted=(), keep=tuple(range(len(graph))))
        done = compiled.run(inputs) if compiled is not None else None
        if done is None:
            return None
        import numpy as np

        # the interpreter's types: a scalar as a 0-d array (the plan's are NumPy scalars)
        return [np.asarray(v) for v in map(done[0].__getitem__, range(len(graph)))]

    def _planned_grad(self, values, of) -> Gradients | None:
        """grad on an array graph by its compiled plan (interpreters/array_plan.py), or None where
        the plan's checks find a value that is not finite: then the interpreter runs, and raises
        its located error (or gives the gradient its checked pass gives)."""
        output = self.check_name(of, "--of") if of is not None else self.output
        inputs, unused = self._inputs(values)
        if self.graph.shape is None:
            return None
        self._scalar_output(output)
        from .interpreters import array_plan

        graph = self.graph
        compiled = array_plan.plan(graph, graph.names[output])
        done = compiled.run(inputs) if compiled is not None else None
        if done is None:
            return None
        node_values, adjoints = done
        import numpy as np

        seen = set()
        for j, g in adjoints.items():   # no two names share one gradient array
            if id(g) in seen:
                adjoints[j] = g.copy()
            seen.add(id(g))
        for j in compiled.zeros:
            adjoints[j] = np.zeros(graph.shape[j])
        named = {name: _plain(node_values[node]) for name, node in graph.names.items()}
        gradients = {name: _plain(adjoints[node]) for name, node in graph.names.items()}
        for name, zero in _unused_zeros(inputs, unused).items():
            named[name], gradients[name] = inputs[name], zero
        return Gradients(inputs, named, unused, output, _plain(node_values[graph.names[output]]), gradients)

    # -- arrays
    @property
    def has_arrays(self) -> bool:
        """Whether the program, as last bound, computes with arrays (its graph is then lowered)."""
        return self.graph.shape is not None

    def shape(self, name: str) -> tuple:
        """A named variable's shape, as last bound: () for a scalar."""
        graph = self.graph
        return () if graph.shape is None else graph.shape[graph.names[name]]

    def _bind(self, inputs: dict) -> None:
        """Use the graph lowered for these inputs' shapes (or the base graph, for scalars only)."""
        if not self.base.arrays and all(type(value) is float for value in inputs.values()):   # (numbers only)
            self.graph = self.base
            return
        shapes = {name: tuple(getattr(value, "shape", ())) for name, value in inputs.items() if name in self.base.inputs}
        if not self.base.arrays and not any(shapes.values()):
            self.graph = self.base
            return
        key = tuple(shapes.items())
        if key not in self._lowered:
            from .language.arrays import lower

            self._lowered[key] = lower(self.base, shapes)
        self.graph = self._lowered[key]

    def _scalar_output(self, output: str) -> None:
        shape = self.shape(output)
        if shape:
            from .ops import shape_text

            what = f"a vector of {shape[0]}" if len(shape) == 1 else f"a {shape_text(shape)} matrix"
            raise DiffcliError("shape", f"the output `{output}` is {what}, and a gradient needs a scalar output",
                               help=f"differentiate a scalar made of it, like sum({output}) or {output}[i] "
                               f"(with --of NAME, or as the last statement)")

    # -- checks the commands share
    def check_name(self, name: str, option: str, where: str | None = None) -> str:
        """`name`, if the program has such a variable; else the error that `option` names it wrongly
        (`where`: the label that starts the message, if not `{option} {name}`)."""
        where = where or f"{option} {name}"
        if name in RESERVED:
            what = "a constant" if name in CONSTANTS else "a function"
            raise DiffcliError("input", f"{where}: `{name}` is {what}, not a variable",
                               help="variables: " + _list(self.graph.names))
        if name not in self.graph.names:
            hint = did_you_mean(name, self.graph.names)
            raise DiffcliError(
                "input", f"{where}: the program has no variable `{name}`",
                help=hint or "variables: " + _list(self.graph.names),
            )
        return name

    def check_input(self, name: str, option: str) -> str:
        """`name`, if it is one of the program's inputs; else the error saying what it is."""
        self.check_name(name, option)
        if name not in self.graph.inputs:
            raise DiffcliError(
                "input", f"{option} {name}: `{name}` is computed (`{name} = {self.definition(name)}`), not an input",
                help="inputs: " + _list(self.graph.inputs),
            )
        return name

    # -- helpers
    def _by_name(self, per_node: list[float], extra: dict[str, float], unused: list[str]) -> dict[str, float]:
        if self.graph.shape is not None:  # scalars back to floats; arrays stay NumPy arrays
            named = {name: _plain(per_node[node]) for name, node in self.graph.names.items()}
        else:
            named = {name: per_node[node] for name, node in self.graph.names.items()}
        for name in unused:
            named[name] = extra[name]
        return named

    def _inputs(self, given: Mapping[str, float] | None) -> tuple[dict[str, float], list[str]]:
        """The value of every input (defaults, overridden by `given`), and the given names the
        program does not have."""
        given = dict(given or {})
        unused = []
        for name, value in given.items():
            if name in RESERVED or name not in self.graph.names and (
                    not name.isidentifier() or did_you_mean(name, self.graph.names)):
                self.check_name(name, "--set", self.given_label(name))
            if name not in self.graph.names:
                unused.append(name)
            elif name not in self.graph.inputs:
                raise DiffcliError(
                    "input",
                    f"{self.given_label(name)}: `{name}` is computed (`{name} = {self.definition(name)}`), not an input",
                    help="only inputs can be set: " + _list(self.graph.inputs),
                )
            if not isinstance(value, (int, float)) and (isinstance(value, numbers.Real) or (
                    hasattr(value, "dtype") and _shape(value) == () and value.dtype.kind in "iuf")):
                value = given[name] = float(value)  # a NumPy scalar or 0-d array (np.float32(2), w[0]) is a number
            try:
                number = isinstance(value, (int, float)) and math.isfinite(value)
            except OverflowError:  # an int past the largest double (the Python API takes ints)
                number = False
            if not number:
                given[name] = _array_value(name, value, self.given_label(name, named=True))
        inputs = {}
        for name, default in self.base.inputs.items():
            value = given.get(name, default)
            if type(value) is float and (default is None or type(default) is float):   # (a number for a number)
                inputs[name] = value
                continue
            if value is None:
                use = self.graph.first_use[name]
                raise DiffcliError(
                    "name", f"`{name}` has no value", (use.start, use.end), source=self.source,
                    help=f"assign it in the file (`{name} = 1`) or give it with --set {name}=VALUE",
                )
            if default is not None and value is not default and _shape(value) != _shape(default):
                from .ops import shape_text

                raise DiffcliError("input", f"{self.given_label(name)}: `{name}` is {_shape_words(_shape(default))} in the file, "
                                   f"but the value given is {_shape_words(_shape(value))}",
                                   help=f"give {name} a value of shape {shape_text(_shape(default))}")
            inputs[name] = value if _shape(value) else float(value)
        for name in unused:
            inputs[name] = given[name] if _shape(given[name]) else float(given[name])
        self._bind(inputs)
        return inputs, unused


def wrt_names(wrt) -> list[str] | None:
    """The API's `wrt` (Program.hessian, Program.fit), as `--wrt` takes it: a name or a comma list
    in one string ("x", "x, y", "W[0,1],b": commas inside brackets separate nothing), or a list (any
    iterable) of names; None stays None (the default)."""
    if wrt is None:
        return None
    if isinstance(wrt, str):
        return [part.strip() for part in parser.split_settings(wrt)]
    if not isinstance(wrt, (bytes, Mapping)):
        try:
            names = list(wrt)
        except TypeError:
            names = None
        if names is not None and all(isinstance(name, str) for name in names):
            return names
    raise DiffcliError("input", f"wrt={_short_repr(wrt)}: not a name, a comma list of names or a list of names",
                       help='write wrt="x", wrt="x,y" or wrt=["x", "y"]')


def _element(label: str) -> tuple[str, tuple | None]:
    """`W[0,1]` -> ("W", (0, 1)); `x` -> ("x", None)."""
    name, bracket, rest = label.partition("[")
    if not bracket or not rest.endswith("]"):
        return label, None
    parts = rest[:-1].split(",")
    if not all(part.strip().isascii() and part.strip().isdigit() for part in parts):  # (not `²`, `٢`)
        return label, None
    return name.strip(), tuple(int(part) for part in parts)


def _element_items(name: str, value):
    """(label, float) for each element, row-major: `W[0,1]`; a scalar is its own."""
    import numpy as np

    value = np.asarray(value, dtype=float)
    if not value.shape:
        yield name, float(value)
        return
    for index, x in zip(np.ndindex(*value.shape), value.reshape(-1).tolist()):
        yield f"{name}[{','.join(map(str, index))}]", x


def _unused_zeros(inputs: dict, unused: list[str]) -> dict:
    """The gradient 0 of each given name the program does not use, of its value's shape (SPEC)."""
    zeros = dict.fromkeys(unused, 0.0)
    for name in unused:
        if _shape(inputs[name]):  # an array (NumPy is loaded already; a scalar command never imports it)
            import numpy as np

            zeros[name] = np.zeros(_shape(inputs[name]))
    return zeros


def _shape(value) -> tuple:
    return tuple(getattr(value, "shape", ()))


def _shape_words(shape: tuple) -> str:
    if not shape:
        return "a scalar"
    return f"a vector of {shape[0]}" if len(shape) == 1 else f"a {shape[0]}×{shape[1]} matrix"


def _plain(value):
    """A 0-d value as a float; an array as it is."""
    return float(value) if getattr(value, "ndim", 0) == 0 else value


def _array_value(name: str, value, where: str | None = None):
    """A value given for an input that is no number: a finite vector or matrix (nested lists or a
    NumPy array), as a float array; else an input error."""
    import numpy as np

    from .ops import MAX_ELEMENTS

    where = where or f"--set {name}"
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError, OverflowError):
        array = None
    if array is None or array.ndim not in (1, 2) or array.size == 0 or isinstance(value, (bool, str)):
        raise DiffcliError("input", f"{where}: {_short_repr(value)} is not a finite number, vector or matrix")
    if array.size > MAX_ELEMENTS:
        raise DiffcliError("shape", f"{where}: an array of {array.size:,} elements is too large",
                           help=f"an array holds at most {MAX_ELEMENTS:,} elements")
    if not np.isfinite(array).all():
        raise DiffcliError("input", f"{where}: the array holds a value that is not a finite number")
    return array


def _short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _list(names) -> str:
    names = list(names)
    return ", ".join(names[:12]) + (", …" if len(names) > 12 else "") if names else "(none)"


def parse(text: str, filename: str = "<input>") -> Program:
    """Parse and check a program's text."""
    bom = text.startswith("\ufeff")
    source = Source(text[1:] if bom else text, filename, bom)
    # A large program makes millions of objects and no garbage: pause the cycle collector, which
    # would otherwise scan them all again and again as they are made.
    collecting = gc.isenabled()
    gc.disable()
    try:
        parsed = parser.parse_with_nodes(source)
        return Program(source, parsed.statements, build(parsed.statements, source, parsed))
    finally:
        if collecting:
            gc.enable()


def read_source(data: bytes, filename: str) -> str:
    """Decode a file's bytes as UTF-8, or say where they are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DiffcliError(
            "io", f"{filename} is not UTF-8 text: byte 0x{data[error.start]:02x} on line {line} "
            f"(byte offset {error.start})", help="save the file as UTF-8",
        ) from None


MAX_FILE_BYTES = 256 * 2**20  # ten times the largest generated program: /dev/zero is refused


def read_bytes(file, filename: str) -> bytes:
    """All of an open binary file, refused past MAX_FILE_BYTES (a device or a pipe may never end)."""
    data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DiffcliError("io", f"{filename} is larger than {MAX_FILE_BYTES // 2**20} MiB, more than "
                           "diffcli reads", help="a program of a million statements is about 30 MiB")
    return data


class _Twice(ValueError):
    def __init__(self, key: str):
        self.key = key


def read_inputs(path: str | Path, option: str = "--inputs") -> dict:
    """`--inputs FILE.json` (or `--hvp-inputs`, `option`): an object of input values (numbers, or
    nested lists for arrays), shaped like the `inputs` that `grad --json` prints; read bounded, as
    program files are. Text that is not JSON is an error placed where the JSON parser stopped."""
    import json

    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = read_bytes(file, str(path))
    except OSError as error:
        raise DiffcliError("io", f"cannot read {path}: {error.strerror or error}") from None
    text = read_source(data, str(path))

    def once(pairs):  # (a key given twice is an error, as in a --points line, not the last one's value)
        values = dict(pairs)
        if len(values) < len(pairs):
            seen = set()
            raise _Twice(next(key for key, _ in pairs if key in seen or seen.add(key)))
        return values

    def integer(digits):  # (one past the doubles is inf, named below: not Python's error at 4,300 digits)
        return int(digits) if len(digits) < 320 else float(digits)

    try:
        values = json.loads(text, object_pairs_hook=once, parse_int=integer)
    except _Twice as error:
        key = json.dumps(error.key, ensure_ascii=False)
        at = text.find(key, text.find(key) + 1)
        raise DiffcliError("input", f"{option} {path}: `{error.key}` is given twice",
                           (at, at + len(key)) if at >= 0 else None, source=Source(text, str(path)),
                           help="give each input once") from None
    except json.JSONDecodeError as error:
        raise DiffcliError("input", f"{option} {path}: not JSON: {error.msg}", (error.pos, min(error.pos + 1, len(text))),
                           source=Source(text, str(path)), help='write {"x": [1, 2], "a": 0.5}, as grad --json '
                           'prints its inputs') from None
    except ValueError as error:
        raise DiffcliError("input", f"{option} {path}: not JSON: {error}") from None
    except RecursionError:
        raise DiffcliError("input", f"{option} {path}: nested too deeply") from None
    if not isinstance(values, dict):
        raise DiffcliError("input", f"{option} {path}: the file holds a JSON {type(values).__name__}, not an object",
                           help='write {"x": [1, 2], "a": 0.5}, as grad --json prints its inputs')
    for name, value in values.items():
        if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
            raise DiffcliError("input", f"{option} {path}: `{name}` is {json.dumps(value)[:40]}, not a number or an array")
        pending = [value]   # (NaN, Infinity and 1e400 are JSON to Python: named here, not as --set's)
        while pending:
            item = pending.pop()
            if isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, float) and not math.isfinite(item):
                raise DiffcliError("input", f"{option} {path}: `{name}` holds {item}, not a finite number")
    return values


def load(path: str | Path) -> Program:
    """Read and parse an .expr file."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = read_bytes(file, str(path))
    except OSError as error:
        reason = error.strerror or str(error)
        raise DiffcliError("io", f"cannot read {path}: {reason}") from None
    return parse(read_source(data, str(path)), str(path))
