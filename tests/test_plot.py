"""`diffcli plot`: the Vega-Lite specification (plots.py), the files it is rendered to, the errors."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import diffcli
from diffcli.interpreters import batch
from diffcli.renderers import plots, render
from diffcli.commands import points
from diffcli.cli import app

runner = CliRunner()
# defined for x > -1 only: a sweep across -1 has failed points
PROGRAM = "k = 2\ns = sigmoid(k*x)\ng = s * log(x + 1)\n"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def program_file(tmp_path):
    path = tmp_path / "sig.expr"
    path.write_text(PROGRAM)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def line_spec(start=-3.0, stop=3.0, count=61):
    program = diffcli.parse(PROGRAM)
    xs = np.linspace(start, stop, count)
    result = batch.run(program, {"x": xs})
    return program, xs, plots.chart(result, [plots.Axis("x", xs)], {"k": 2.0})


# ---------------------------------------------------------------- the specification

def test_one_sweep_is_two_panels_sharing_x_labelled_with_the_output_and_its_derivative():
    program, xs, spec = line_spec(0.0, 2.0, 5)
    top, bottom = spec["vconcat"]
    assert spec["resolve"]["scale"]["x"] == "shared"
    assert top["layer"][-1]["encoding"]["y"]["title"] == "g"
    assert bottom["layer"][-1]["encoding"]["y"]["title"] == "∂g/∂x"
    assert bottom["layer"][-1]["encoding"]["x"]["axis"]["title"] == "x"
    assert spec["title"]["subtitle"] == ["with k = 2"]
    points = spec["datasets"]["points"]
    assert [p["x"] for p in points] == xs.tolist()
    for p in points:  # the numbers drawn are the single-point engine's
        reference = program.grad({"x": p["x"]})
        assert p["value"] == reference.value and p["slope"] == reference.gradients["x"]


def test_failed_points_leave_gaps_and_a_band():
    _, xs, spec = line_spec()  # x = -3 ... -1 fail (log of a number <= 0)
    points = spec["datasets"]["points"]
    assert min(p["x"] for p in points) > -1
    assert len(points) == sum(xs > -1)
    [band] = spec["datasets"]["failed"]
    assert band["count"] == sum(xs <= -1) and band["lo"] == -3.0
    assert -1.0 < band["hi"] < xs[xs > -1][0]  # halfway to the first good point
    assert "log" in band["error"]
    assert f"{band['count']} of 61 points failed" in spec["title"]["subtitle"][1]
    # each panel draws the band under its line
    assert all(panel["layer"][0]["data"] == {"name": "failed"} for panel in spec["vconcat"])


def test_a_hole_in_the_middle_splits_the_line_into_segments():
    program = diffcli.parse("g = 1 / x")  # fails at x = 0 only
    xs = np.linspace(-1, 1, 5)
    spec = plots.chart(batch.run(program, {"x": xs}), [plots.Axis("x", xs)])
    points = spec["datasets"]["points"]
    assert [p["x"] for p in points] == [-1.0, -0.5, 0.5, 1.0]
    assert [p["segment"] for p in points] == [0, 0, 1, 1]  # one line each side, not joined
    assert spec["vconcat"][0]["layer"][-1]["encoding"]["detail"] == {"field": "segment"}


def test_a_derivative_crossing_zero_gets_a_zero_rule():
    program = diffcli.parse("g = x^2")
    xs = np.linspace(-1, 1, 5)
    spec = plots.chart(batch.run(program, {"x": xs}), [plots.Axis("x", xs)])
    rules = [layer for layer in spec["vconcat"][1]["layer"] if layer["mark"]["type"] == "rule"]
    assert rules and rules[0]["encoding"]["y"]["datum"] == 0


def grid_spec(text, x, y):
    """The chart of `text` over the grid of the sweeps `x` and `y` (points.Sweep)."""
    program = diffcli.parse(text)
    grid = points.grid([x, y], program)
    [(_, columns)] = grid.chunks()
    result = batch.run(program, columns)
    return plots.chart(result, [plots.Axis(s.name, s.values(), s.log) for s in (x, y)])


def test_two_sweeps_are_heat_maps_of_the_output_and_the_gradients_length():
    spec = grid_spec("z = 3x + 4y", points.Sweep("x", -1, 1, 3), points.Sweep("y", 0, 2, 4))
    left, right = spec["hconcat"]
    assert left["layer"][0]["encoding"]["color"]["field"] == "value"
    assert right["layer"][0]["encoding"]["color"]["field"] == "norm"
    cells = spec["datasets"]["cells"]
    assert len(cells) == 12
    cell = next(c for c in cells if c["x"] == 1.0 and c["y"] == 2.0)
    assert cell["value"] == 11.0 and cell["norm"] == 5.0
    # cells tile the plane: each ends where the next begins
    assert cell["x0"] == 0.5 and cell["x1"] == 1.5 and cell["y0"] == pytest.approx(5 / 3)


@pytest.mark.parametrize("text, angle", [("z = x", 90), ("z = y", 0), ("z = -x", 270),
                                         ("z = -y", 180)])
def test_arrows_point_along_the_gradient(text, angle):
    spec = grid_spec(text, points.Sweep("x", -1, 1, 3), points.Sweep("y", -1, 1, 3))
    arrows = spec["datasets"]["arrows"]
    assert len(arrows) == 9
    assert all(a["angle"] == pytest.approx(angle) for a in arrows)


def test_arrows_on_a_stretched_axis_show_the_gradient_as_a_step_in_the_data():
    # x's cells span 1.5 on 300 pixels, y's span 15: a step (1, 1) along the gradient of x + y
    # moves 200 pixels right and 20 up
    spec = grid_spec("z = x + y", points.Sweep("x", 0, 1, 3), points.Sweep("y", 0, 10, 3))
    for arrow in spec["datasets"]["arrows"]:
        assert arrow["angle"] == pytest.approx(math.degrees(math.atan2(200, 20)))


def test_failed_cells_are_grey_and_counted():
    # fails where x + y <= -1.5: one corner
    spec = grid_spec("z = log(x + y + 1.5)", points.Sweep("x", -1, 1, 3), points.Sweep("y", -1, 1, 3))
    assert [(c["x"], c["y"]) for c in spec["datasets"]["failed"]] == [(-1.0, -1.0)]
    assert len(spec["datasets"]["cells"]) == 8
    assert "1 of 9 points failed" in spec["title"]["subtitle"][0]


def test_log_axes_have_geometric_cells():
    spec = grid_spec("z = x * y", points.Sweep("x", 1, 100, 3, log=True), points.Sweep("y", 0, 1, 2))
    cell = spec["datasets"]["cells"][0]
    assert cell["x1"] == pytest.approx(math.sqrt(10)) and cell["x0"] == pytest.approx(1 / math.sqrt(10))
    assert spec["hconcat"][0]["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"


def test_the_specification_is_plain_json():
    _, _, spec = line_spec()
    assert json.loads(json.dumps(spec, allow_nan=False)) == spec


# ---------------------------------------------------------------- the command and its files

def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("name, magic", [("p.png", b"\x89PNG\r\n\x1a\n"), ("p.svg", b"<svg"),
                                         ("p.pdf", b"%PDF-")])
def test_pictures_are_written(program_file, tmp_path, name, magic):
    out = tmp_path / name
    result = invoke("plot", program_file, "--sweep", "x=-3:3:41", "-o", out)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data.startswith(magic) and len(data) > 5000
    if name.endswith(".png"):
        width, height = png_size(data)
        assert width > 800 and height > 600  # two panels at twice the scale
    if name.endswith(".svg"):
        assert data.count(b"mark-line") >= 2  # the two lines
    if name.endswith(".pdf"):
        assert data.rstrip().endswith(b"%%EOF")
    assert "14 of 41 points failed" in result.stderr


def test_format_json_writes_the_specification(program_file, tmp_path):
    result = invoke("plot", program_file, "--sweep", "x=0:2:3", "--sweep", "k=1:2:2",
                    "-o", "-", "--format", "json")
    assert result.exit_code == 0, result.output
    spec = json.loads(result.stdout)
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert len(spec["datasets"]["cells"]) == 6 and "hconcat" in spec


def test_html_is_self_contained(program_file, tmp_path):
    out = tmp_path / "p.html"
    assert invoke("plot", program_file, "--sweep", "x=0:2:11", "-o", out).exit_code == 0
    html = out.read_text()
    assert "<script" in html and "vegaEmbed" in html
    # the scripts are inline: none is loaded from a URL (the browser test below proves it works)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", html, re.I)
    assert "cdn.jsdelivr.net" not in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium")
def test_html_renders_offline_in_chromium(program_file, tmp_path):
    out = tmp_path / "p.html"
    assert invoke("plot", program_file, "--sweep", "x=-3:3:41", "-o", out).exit_code == 0
    # no network at all: every host is unresolvable and every request goes to a dead proxy
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000",
         "--dump-dom", out.as_uri()],
        capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'class="marks"' in dom  # Vega drew its SVG
    assert dom.count("mark-line role-mark") == 2


@pytest.mark.parametrize("args, code", [
    (["--sweep", "x=-3:3", "-o", "p.png"], 2),                          # no NUM
    (["--sweep", "x=a:3:4", "-o", "p.png"], 2),
    (["--sweep", "x=0:1:0", "-o", "p.png"], 2),
    (["--sweep", "x=0:1:3", "--sweep", "k=0:1:3", "--sweep", "k=0:1:2", "-o", "p.png"], 2),
    (["--sweep", "x=0:1:3", "--sweep", "x=0:1:3", "-o", "p.png"], 1),   # the same input twice
    (["--sweep", "x=0:1:3", "--set", "x=1", "-o", "p.png"], 2),         # swept and set
    (["--sweep", "x=1:10:3:log", "--sweep", "k=0:1:3:lin", "-o", "p.png"], 2),
    (["--sweep", "x=-1:10:3:log", "-o", "p.png"], 2),                   # a log sweep across 0
    (["--sweep", "unused=0:1:3", "-o", "p.png"], 1),                     # not used by the program
    (["-o", "p.png"], 2),                                               # no sweep
    (["--sweep", "x=0:1:3"], 2),                                        # no -o
    (["--sweep", "x=0:1:3", "-o", "p.gif"], 1),                         # unknown extension
    (["--sweep", "xx=0:1:3", "-o", "p.png"], 1),                        # not an input
    (["--sweep", "s=0:1:3", "-o", "p.png"], 1),                         # computed
    (["--sweep", "x=0:1:300", "--sweep", "k=0:1:300", "-o", "p.png"], 1),  # too many points
    (["--sweep", "x=0:1:3", "--of", "q", "-o", "p.png"], 1),
])
def test_errors(program_file, tmp_path, args, code):
    result = runner.invoke(app, ["plot", str(program_file), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and not (tmp_path / "p.png").exists()


def test_errors_as_json(program_file, tmp_path):
    result = invoke("plot", program_file, "--sweep", "xx=0:1:3", "-o", tmp_path / "p.png", "--json")
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 1 and error["kind"] == "input" and "did you mean `x`" in error["help"]
    result = invoke("plot", program_file, "--sweep", "x=0:1:3", "-o", tmp_path / "no" / "p.png", "--json")
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 1 and error["kind"] == "io" and "cannot write" in error["message"]


def test_a_renderer_failure_is_a_diagnostic(program_file, tmp_path, monkeypatch):
    # vl-convert runs in a child process: break it there
    broken = "import vl_convert\ndef broken(*args, **kwargs):\n    raise ValueError('no fonts')\n" \
             "vl_convert.vegalite_to_png = broken\n"
    monkeypatch.setattr(render, "_VEGALITE_CHILD", render._VEGALITE_CHILD.replace("import vl_convert\n", broken, 1))
    monkeypatch.setattr(render, "_worker", None)  # a new worker, with that code
    result = invoke("plot", program_file, "--sweep", "x=0:1:3", "-o", tmp_path / "p.png", "--json")
    error = json.loads(result.stderr)["error"]
    assert result.exit_code == 1 and error["kind"] == "io" and "no fonts" in error["message"]
    assert not (tmp_path / "p.png").exists()


def test_no_data_is_fetched_while_rendering():
    spec = {"data": {"url": "https://example.com/data.csv"}, "mark": "point",
            "encoding": {"x": {"field": "a", "type": "quantitative"}}}
    with pytest.raises(diffcli.DiffcliError, match="not allowed"):
        render.vegalite(spec, "svg")


# ---------------------------------------------------------------- the renderer's own death

def test_under_a_memory_limit_the_renderer_s_crash_is_an_io_error(program_file, tmp_path):
    """V8 aborts the process when it cannot reserve its address space: under any `ulimit -v` plot
    died with "Fatal JavaScript out of memory", a native stack dump and exit 133."""
    from conftest import diffcli_command

    command = " ".join(f"'{part}'" for part in diffcli_command())
    done = subprocess.run(["bash", "-c", f"ulimit -v 4000000 && exec {command} plot '{program_file}' "
                           f"--sweep x=0:2:5 -o '{tmp_path / 'p.png'}' --json"],
                          capture_output=True, timeout=300)
    assert done.returncode == 1 and done.stdout == b"", done.stderr[-3000:]
    error = json.loads(done.stderr)["error"]  # the whole of standard error: one JSON object
    assert error["kind"] == "io" and "ran out of memory" in error["message"] and "ulimit -v" in error["help"]
    assert not (tmp_path / "p.png").exists()


def test_the_renderer_is_kept_and_started_again_after_it_died(program_file, tmp_path, monkeypatch):
    """The live page draws many plots with one worker: one that died is replaced, not asked again."""
    import signal

    assert invoke("plot", program_file, "--sweep", "x=0:2:5", "-o", tmp_path / "a.svg").exit_code == 0
    first = render._worker
    assert invoke("plot", program_file, "--sweep", "x=0:2:5", "-o", tmp_path / "b.svg").exit_code == 0
    assert render._worker is first  # kept
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert invoke("plot", program_file, "--sweep", "x=0:2:5", "-o", tmp_path / "c.svg").exit_code == 0
    assert render._worker is not first and (tmp_path / "c.svg").read_bytes().startswith(b"<svg")


@pytest.mark.parametrize("child, message", [
    ("import os; os.write(2, b'Fatal JavaScript out of memory: Reached heap limit'); os.abort()",
     "ran out of memory"),
    ("import os; os.kill(os.getpid(), 9)", "was killed by signal 9"),
])
def test_a_renderer_that_dies_or_fails_is_an_io_error(program_file, tmp_path, monkeypatch, child, message):
    monkeypatch.setattr(render, "_VEGALITE_CHILD", child)
    monkeypatch.setattr(render, "_worker", None)  # a new worker, with that code
    result = invoke("plot", program_file, "--sweep", "x=0:2:5", "-o", tmp_path / "p.png", "--json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)["error"]
    assert error["kind"] == "io" and message in error["message"] and not (tmp_path / "p.png").exists()
