"""diffcli's modules import one another in one direction, and its folders show that flow:
language/ (text -> syntax tree -> graph) -> interpreters/ (values, adjoints, tangents, batches) ->
program.py (the front door) -> commands/ (check, fit, derivations, points in) -> renderers/ (tables,
JSON, diagrams, plots, code) -> cli.py, with the op table, the errors and the formatting at the
bottom. Read from the source with ast, lazy imports inside functions included; imports under
`if TYPE_CHECKING:` are left out (they name types for readers and never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import diffcli

PACKAGE = Path(diffcli.__file__).parent
# every module by its stem (stems are unique across the folders), and its folder ('' at the top)
# (the folders' own __init__ files hold only a docstring)
FOLDER = {path.stem: (path.parent.name if path.parent != PACKAGE else "")
          for path in PACKAGE.rglob("*.py") if path.parent == PACKAGE or path.stem != "__init__"}
MODULES = set(FOLDER)
FOLDERS = {"language", "interpreters", "commands", "renderers"}

# The bottom of the data flow: these import only one another.
BOTTOM = {"errors", "syntax", "ops", "formatting", "display"}
# The pipeline's known steps, lowest first: none imports one with a higher rank. (Modules not
# listed, the renderers and commands, may import any of these.)
RANK = {name: 0 for name in BOTTOM} | {"printer": 1, "parser": 1, "arrays": 2, "graph": 2, "domain": 3, "array_engine": 3, "array_plan": 3, "batch_plan": 3,
                                      "engine": 3, "hessian": 3, "jacobian": 3, "batch": 3, "array_batch": 3, "array_hessian": 3,
                                      "uncertainty": 3,
                                      "program": 4}
# The folders in the order of the data flow: a module imports none of a later folder.
FOLDER_RANK = {"language": 1, "interpreters": 2, "commands": 3, "renderers": 4}


def _source(module: str) -> Path:
    folder = FOLDER[module]
    return PACKAGE / folder / f"{module}.py" if folder else PACKAGE / f"{module}.py"


def imports(module: str) -> set[str]:
    """The diffcli modules a module imports (`__init__` for the package itself)."""
    tree = ast.parse(_source(module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    here = ["diffcli"] + ([FOLDER[module]] if FOLDER[module] else [])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif (node.module or "").split(".")[0] == "diffcli":
                base = node.module.split(".")
            else:
                continue
            if base[-1] in MODULES:
                found.add(base[-1])
            else:  # `from .language import graph` names modules, or the package's own names
                found |= {a.name if a.name in MODULES else "__init__" for a in node.names
                          if a.name in MODULES or base == ["diffcli"]}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[-1] for a in node.names if a.name.startswith("diffcli.")}
    return found & (MODULES | {"__init__"})


# Calls up the flow, each by name and why: Program.fit is the fit command's Python front door, and
# imports fit_api (beside cli.py, above the commands and renderers it joins) when it is called.
UPWARD_CALLS = {("program", "fit_api")}
GRAPH = {module: imports(module) - {b for a, b in UPWARD_CALLS if a == module} for module in MODULES}


def test_the_reader_sees_the_imports():
    """Not vacuous: known edges, lazy ones included, are found."""
    assert {"engine", "parser", "graph", "errors"} <= GRAPH["program"]
    assert {"formatting", "graph", "errors"} <= GRAPH["engine"]
    assert "explain" in GRAPH["cli"] and "__init__" in GRAPH["cli"]  # `from . import __version__`
    assert "uncertainty" in GRAPH["program"] and "batch" in GRAPH["uncertainty"]  # lazy, in functions
    assert "program" not in GRAPH["batch"]  # only under TYPE_CHECKING: annotations, not a dependency
    assert all(b in imports(a) for a, b in UPWARD_CALLS)  # each named call up is really made


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


def test_the_folders_show_the_flow():
    assert set(FOLDER.values()) == FOLDERS | {""}, "a folder was added or removed: name its place here"
    for folder in FOLDERS:  # a folder's __init__ is its docstring, never a shortcut around the layers
        body = ast.parse((PACKAGE / folder / "__init__.py").read_text(encoding="utf-8")).body
        assert [type(node) for node in body] == [ast.Expr], f"{folder}/__init__.py holds code"
    for module, imported in GRAPH.items():
        rank = FOLDER_RANK.get(FOLDER[module], 0)
        later = {m for m in imported - {"__init__"} if FOLDER_RANK.get(FOLDER[m], 0) > rank}
        if FOLDER[module]:
            assert not later, f"{FOLDER[module]}/{module} imports {sorted(later)}, from a later folder"


# Beside cli.py, over the renderers: the live page's server, the Jupyter displays, shell completion.
TOP = {"cli", "__main__", "server", "notebook", "completion"}


def test_the_top_is_imported_by_no_folder():
    assert TOP <= MODULES
    for module, imported in GRAPH.items():
        if FOLDER[module] or module in BOTTOM or module in RANK:
            assert not imported & TOP, f"{module} imports {sorted(imported & TOP)}, from the top"
