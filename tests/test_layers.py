"""diffcli's modules import one another in one direction: text -> syntax tree -> graph -> engine ->
program -> renderers and commands -> cli, with the op table, the syntax tree, the errors and the
formatting at the bottom. Read from the source with ast, lazy imports inside functions included;
imports under `if TYPE_CHECKING:` are left out (they name types for readers and never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import diffcli

PACKAGE = Path(diffcli.__file__).parent
MODULES = {path.stem for path in PACKAGE.glob("*.py")}

# The bottom of the data flow: these import only one another.
BOTTOM = {"errors", "syntax", "ops", "formatting"}
# The pipeline's known steps, lowest first: none imports one with a higher rank. (Modules not
# listed, the renderers and commands, may import any of these.)
RANK = {name: 0 for name in BOTTOM} | {"printer": 1, "diagnostics": 1, "parser": 1, "graph": 2,
                                      "engine": 3, "hessian": 3, "jacobian": 3, "batch": 3, "uncertainty": 3,
                                      "program": 4}


def imports(module: str) -> set[str]:
    """The diffcli modules a module imports (`__init__` for the package itself)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            relative = node.level == 1
            if relative or node.module == "diffcli" or (node.module or "").startswith("diffcli."):
                base = node.module if relative else (node.module or "").removeprefix("diffcli")
                base = (base or "").lstrip(".")
                if base:
                    found.add(base.split(".")[0])
                else:  # `from . import engine` names modules, or the package's own names
                    found |= {a.name if a.name in MODULES else "__init__" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("diffcli.")}
    return found & (MODULES | {"__init__"})


GRAPH = {module: imports(module) for module in MODULES}


def test_the_reader_sees_the_imports():
    """Not vacuous: known edges, lazy ones included, are found."""
    assert {"engine", "parser", "graph", "errors"} <= GRAPH["program"]
    assert {"formatting", "graph", "errors"} <= GRAPH["engine"]
    assert "explain" in GRAPH["cli"] and "__init__" in GRAPH["cli"]  # `from . import __version__`
    assert "uncertainty" in GRAPH["program"] and "batch" in GRAPH["uncertainty"]  # lazy, in functions
    assert "program" not in GRAPH["batch"]  # only under TYPE_CHECKING: annotations, not a dependency


def test_the_import_graph_has_no_cycle():
    done: set[str] = set()
    for start in sorted(GRAPH):
        path, stack = [start], [iter(sorted(GRAPH[start]))]  # depth-first, the path kept explicitly
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                done.add(path.pop())
                continue
            assert step not in path, "import cycle: " + " -> ".join(path[path.index(step):] + [step])
            if step not in done:
                path.append(step)
                stack.append(iter(sorted(GRAPH[step])))


def test_data_flows_one_way():
    for module, imported in GRAPH.items():
        if module in BOTTOM:
            assert imported <= BOTTOM, f"{module} imports {sorted(imported - BOTTOM)}, above the bottom layer"
        if module in RANK:
            above = {m for m in imported if RANK.get(m, 99) > RANK[module]}
            assert not above, f"{module} imports {sorted(above)}, above it in the data flow"
        if module != "__main__":
            assert "cli" not in imported, f"{module} imports cli: nothing but __main__ may"
