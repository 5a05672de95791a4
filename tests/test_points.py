"""grad and eval over many points: --sweep, --points, JSON Lines, CSV, the table, failures."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import diffcli
from diffcli.commands import points
from diffcli.cli import app

LOG = "x = 1\nw = 2\ny = w*log(x)\n"


def run(tmp_path, *arguments, program=LOG, input=None):
    path = tmp_path / "p.expr"
    path.write_text(program)
    return CliRunner().invoke(app, [arguments[0], str(path), *arguments[1:]], input=input)


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


def test_a_sweep_gives_num_points_both_ends_included(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=1:3:5", "--json")
    assert result.exit_code == 0, result.output
    rows = jsonl(result.stdout)
    assert [r["inputs"]["x"] for r in rows] == [1.0, 1.5, 2.0, 2.5, 3.0]
    program = diffcli.parse(LOG)
    for k, row in enumerate(rows):
        want = program.grad({"x": row["inputs"]["x"]})
        assert row == {"point": k, "inputs": {"x": row["inputs"]["x"], "w": 2.0}, "value": want.value,
                       "gradients": {"x": want.gradients["x"], "w": want.gradients["w"]}}
        assert list(row) == ["point", "inputs", "value", "gradients"]


def test_sweeps_form_a_grid_the_last_fastest(tmp_path):
    result = run(tmp_path, "eval", "--sweep", "x=1:2:2", "--sweep", "w=10:30:3", "--csv")
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["x", "w", "y", "error"]
    assert [(float(r[0]), float(r[1])) for r in table[1:]] == [
        (1, 10), (1, 20), (1, 30), (2, 10), (2, 20), (2, 30)]


def test_a_log_sweep_spans_decades_exactly(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=1e-3:1e3:7:log", "--csv")
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert [float(r[0]) for r in table[1:]] == pytest.approx([1e-3, 1e-2, 0.1, 1, 10, 100, 1000], rel=1e-15)
    assert table[1][0] == "0.001" and table[-1][0] == "1000.0"


def test_csv_numbers_read_back_to_the_exact_double(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=0.1:7.3:97", "--csv", "--set", "w=0.3")
    program = diffcli.parse(LOG)
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(table) == 97
    for row in table:
        want = program.grad({"x": float(row["x"]), "w": 0.3})
        assert float(row["y"]) == want.value and float(row["dy/dx"]) == want.gradients["x"]
        assert float(row["dy/dw"]) == want.gradients["w"] and row["error"] == ""


def test_a_failed_point_has_its_row_and_the_run_exits_1_after_every_row(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=-1:1:3", "--json")
    assert result.exit_code == 1
    rows = jsonl(result.stdout)
    assert [r["point"] for r in rows] == [0, 1, 2]
    assert rows[0]["error"] == {"kind": "domain", "message": "`log` is undefined at log(-1)", "operation": "log",
                                "file": str(tmp_path / "p.expr"), "line": 3, "column": 7,
                                "help": "log needs x > 0"}
    assert "value" not in rows[0] and rows[0]["inputs"] == {"x": -1.0, "w": 2.0}
    assert rows[2]["value"] == 0.0
    summary = json.loads(result.stderr)["error"]
    assert summary["failed"] == 2 and summary["point"] == 0 and summary["line"] == 3
    text = run(tmp_path, "grad", "--sweep", "x=-1:1:3", "--csv")
    assert text.exit_code == 1
    assert text.stdout.splitlines()[1] == "-1.0,2.0,,,,`log` is undefined at log(-1)"
    assert text.stderr.startswith("error: 2 of 3 points failed; the first is point 0\n")
    assert "--> " in text.stderr and "log(x)" in text.stderr


def test_all_adds_every_named_variable(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=1:2:2", "--json", "--all")
    row = jsonl(result.stdout)[1]
    assert list(row["values"]) == ["x", "w", "y"] and list(row["gradients"]) == ["x", "w", "y"]
    assert row["gradients"]["y"] == 1.0 and row["values"]["y"] == row["value"]
    header = run(tmp_path, "grad", "--sweep", "x=1:2:2", "--csv", "--all").stdout.splitlines()[0]
    assert header == "x,w,y,dy/dx,dy/dw,dy/dy,error"


def test_points_from_csv_jsonl_and_standard_input(tmp_path):
    (tmp_path / "pts.csv").write_text("x,w\n1,2\n2.5,-1\n\n")
    (tmp_path / "pts.jsonl").write_text('{"x": 1, "w": 2}\n{"x": 2.5, "w": -1}\n')
    outputs = [run(tmp_path, "grad", "--points", str(tmp_path / "pts.csv"), "--json").stdout,
               run(tmp_path, "grad", "--points", str(tmp_path / "pts.jsonl"), "--json").stdout,
               run(tmp_path, "grad", "--points", "-", "--json", input="x,w\n1,2\n2.5,-1\n").stdout,
               run(tmp_path, "grad", "--points", "-", "--json", input='{"x": 1, "w": 2}\n{"x": 2.5, "w": -1}').stdout]
    assert len(set(outputs)) == 1
    rows = jsonl(outputs[0])
    assert [r["inputs"] for r in rows] == [{"x": 1.0, "w": 2.0}, {"x": 2.5, "w": -1.0}]


def test_points_format_overrides_the_extension(tmp_path):
    (tmp_path / "pts.txt").write_text('{"x": 3}\n')
    result = run(tmp_path, "eval", "--points", str(tmp_path / "pts.txt"), "--points-format", "jsonl", "--json")
    assert result.exit_code == 0 and jsonl(result.stdout)[0]["inputs"]["x"] == 3.0


@pytest.mark.parametrize("text, message, line, column", [
    ("x,w\n1,2\n3,abc\n", "`abc` in column `w` is not a finite number", 3, 3),
    ("x,w\n1,2\n3\n", "row 3 has 1 value, fewer than the 2 columns", 3, 2),
    ("x,w\n1,2,5\n", "row 2 has 3 values, more than the 2 columns", 2, 4),
    ("x,w\n1,nan\n", "`nan` in column `w` is not a finite number", 2, 3),
    ("x,ww\n1,2\n", "column `ww` of", 1, 3),
    ("x,y\n1,2\n", "`y` is computed", 1, 3),
    ("x\n", "has no points", None, None),
])
def test_a_bad_row_is_a_diagnostic_with_its_place_and_nothing_is_written(tmp_path, text, message, line, column):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    result = run(tmp_path, "grad", "--points", str(path), "--json")
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert message in error["message"] and error["kind"] == "input"
    assert error.get("line") == line and error.get("column") == column
    if line is not None:
        assert error["file"] == str(path)


def test_a_bad_row_after_many_chunks_still_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(points, "CHUNK", 4)
    monkeypatch.setattr(points, "IN_MEMORY", 8)
    path = tmp_path / "late.csv"
    path.write_text("x\n" + "1\n" * 50 + "oops\n")
    result = run(tmp_path, "grad", "--points", str(path), "--csv")
    assert result.exit_code == 1 and result.stdout == ""
    assert "late.csv:52:1" in result.stderr and "oops" in result.stderr


def test_jsonl_rows_are_checked(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"x": 1}\n{"x": true}\n')
    result = run(tmp_path, "grad", "--points", str(path))
    assert result.exit_code == 1
    assert "`x` on line 2 is not a finite number: true" in result.stderr and result.stdout == ""
    path.write_text('{"x": 1}\n{"w": 1}\n')
    assert "line 2 has no `x`" in run(tmp_path, "grad", "--points", str(path)).stderr
    path.write_text('{"x": 1}\n[1]\n')
    assert "line 2 is not a JSON object" in run(tmp_path, "grad", "--points", str(path)).stderr


def test_an_unknown_column_close_to_a_name_is_refused_another_is_a_warning(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("x,zeta\n1,2\n")
    result = run(tmp_path, "grad", "--points", str(path), "--csv")
    assert result.exit_code == 0
    assert f"warning: column `zeta` of {path}: the program does not use `zeta`" in result.stderr
    assert result.stdout.splitlines()[0] == "x,w,zeta,y,dy/dx,dy/dw,dy/dzeta,error"
    path.write_text("wx\n1\n")
    result = run(tmp_path, "grad", "--points", str(path), "--csv", program="w = 1\nwy = 2\ny = w*wy\n")
    assert result.exit_code == 1 and "did you mean" in result.stderr


@pytest.mark.parametrize("arguments", [
    ["--sweep", "x=1:2"], ["--sweep", "x=1:2:0"], ["--sweep", "x=a:2:3"], ["--sweep", "x=-1:1:3:log"],
    ["--sweep", "x=1:2:2", "--points", "-"], ["--sweep", "x=1:2:2", "--json", "--csv"], ["--csv"], ["--all"],
    ["--sweep", "x=1:2:2", "--set", "x=1"], ["--sweep", "x=1:2:2", "--wrt", "x"],
])
def test_usage_errors_exit_2(tmp_path, arguments):
    result = run(tmp_path, "grad", *arguments)
    assert result.exit_code == 2, result.output


def test_a_sweep_of_a_computed_or_misspelt_name(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "y=1:2:2", "--json")
    assert result.exit_code == 1 and "--sweep y: `y` is computed" in json.loads(result.stderr)["error"]["message"]
    result = run(tmp_path, "grad", "--sweep", "ww=1:2:2")
    assert result.exit_code == 1 and "ww" in result.stderr


def test_the_table_shows_the_first_and_last_rows_and_the_count(tmp_path):
    result = run(tmp_path, "grad", "--sweep", "x=1:100:100")
    assert result.exit_code == 0
    lines = result.stdout
    assert "100 points, 80 not shown" in lines and "every point: w = 2" in lines
    assert "│     0 │" in lines and "│    99 │" in lines and "│    50 │" not in lines
    assert "dy/dw" not in lines and "dy/dx" in lines  # a fixed input's columns go to the caption


def test_chunks_and_the_spill_file_give_the_same_rows(tmp_path, monkeypatch):
    text = "x,w\n" + "".join(f"{k / 7!r},{k % 5}\n" for k in range(1, 60))
    (tmp_path / "pts.csv").write_text(text)
    whole = run(tmp_path, "grad", "--points", str(tmp_path / "pts.csv"), "--csv").stdout
    monkeypatch.setattr(points, "CHUNK", 4)
    monkeypatch.setattr(points, "IN_MEMORY", 8)
    chunked = run(tmp_path, "grad", "--points", str(tmp_path / "pts.csv"), "--csv").stdout
    assert chunked == whole and len(whole.splitlines()) == 60
    sweep = run(tmp_path, "eval", "--sweep", "x=1:2:11", "--sweep", "w=0:1:3", "--json").stdout
    assert [r["point"] for r in jsonl(sweep)] == list(range(33))


def test_the_grid_refuses_too_many_points():
    program = diffcli.parse(LOG)
    sweep = points.parse_sweep("x=1:2:100000")
    with pytest.raises(diffcli.DiffcliError, match="more than"):
        points.grid([sweep, points.parse_sweep("w=1:2:100000"), points.parse_sweep("q=1:2:10")], program)


def test_sweep_values_are_numpy_linspace_and_geomspace():
    assert (points.parse_sweep("x=-1:1:5").values() == np.array([-1, -0.5, 0, 0.5, 1])).all()
    assert points.parse_sweep("x=2:2:1").values().tolist() == [2.0]
    assert points.parse_sweep(" x = -8:-1:4:log ").values().tolist() == pytest.approx([-8, -4, -2, -1])


def test_the_progress_bar_waits_a_second_and_needs_a_terminal(monkeypatch):
    from diffcli.renderers import rows

    quiet = rows.Progress(100)
    quiet.enabled = False
    quiet.advance(50)
    assert quiet.bar is None
    bar = rows.Progress(100)
    bar.enabled = True
    bar.advance(10)
    assert bar.bar is None  # under a second: no bar
    bar.started -= 2
    bar.advance(50)
    assert bar.bar is not None and bar.bar.tasks[0].completed == 50
    bar.close()


def test_a_failed_rows_error_names_its_operation(tmp_path):
    """Issue 11: the row carries kind, message, operation, line and column."""
    import json as _json

    from conftest import run_diffcli

    (tmp_path / "m.expr").write_text("x = 1\ny = 2 + log(x)\n")
    done = run_diffcli("grad", tmp_path / "m.expr", "--sweep", "x=-1:1:3", "--json")
    rows = [_json.loads(line) for line in done.stdout_text.splitlines()]
    assert done.returncode == 1 and [("error" in row) for row in rows] == [True, True, False]
    error = rows[0]["error"]
    assert (error["kind"], error["operation"], error["line"], error["column"]) == ("domain", "log", 2, 9)
    single = _json.loads(run_diffcli("grad", tmp_path / "m.expr", "--set", "x=0", "--json").stderr_text)
    assert single["error"]["operation"] == "log"
    division = _json.loads(run_diffcli("grad", "-", "--json", input=b"x = 0\ny = 1/x\n").stderr_text)
    assert division["error"]["operation"] == "/"


def test_a_byte_order_mark_is_skipped(tmp_path):
    """Issue 21: Excel writes a UTF-8 BOM; the first column's name was `\\ufeffx`."""
    for name, text in (("bom.csv", "x,w\n4,3\n"), ("bom.jsonl", '{"x": 4, "w": 3}\n')):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        result = run(tmp_path, "grad", "--points", str(path), "--json")
        assert result.exit_code == 0 and result.stderr == "", result.output
        assert jsonl(result.stdout)[0]["inputs"] == {"x": 4.0, "w": 3.0}


@pytest.mark.parametrize("cell", ["1_000", "١", "٣.5", "0x10", "1e", "+-1", "1 2", "infinity"])
def test_cells_are_numbers_as_set_reads_them(tmp_path, cell):
    """Issue 21: CSV took `1_000` and Arabic-Indic digits (Python's float() does), which --set refuses."""
    from diffcli.language.parser import read_number

    assert read_number(cell.strip()) is None
    path = tmp_path / "p.csv"
    path.write_text(f"x,w\n1,2\n{cell},2\n", encoding="utf-8")
    result = run(tmp_path, "grad", "--points", str(path), "--json")
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["kind"] == "input" and "in column `x` is not a finite number" in error["message"]
    assert error["line"] == 3 and error["column"] == 1


def test_every_number_form_the_language_has_is_read_exactly(tmp_path):
    cells = ["1", "-0.5", "+2", "1.", ".25", "1e3", "2.5E-3", "-1e+2", " 7 ", "0.1", "1e-320"]
    path = tmp_path / "p.csv"
    path.write_text("x,w\n" + "".join(f"{c},1\n" for c in cells))
    result = run(tmp_path, "eval", "--points", str(path), "--json")
    assert [r["inputs"]["x"] for r in jsonl(result.stdout)] == [float(c) for c in cells]


@pytest.mark.parametrize("text", ["x=١:2:3", "x=1_0:2:3", "x=1:2:1_0", "x=1:2:٣", "x=1:inf:3", "x=1:2:3.0"])
def test_sweeps_read_numbers_as_set_does(tmp_path, text):
    result = run(tmp_path, "eval", "--sweep", text)
    assert result.exit_code == 2 and "--sweep" in result.output


def test_a_sweep_takes_the_number_forms_of_the_language(tmp_path):
    result = run(tmp_path, "eval", "--sweep", "x=+.5:1.e1:3", "--json")
    assert [r["inputs"]["x"] for r in jsonl(result.stdout)] == [0.5, 5.25, 10.0]


def test_a_key_twice_in_a_json_line_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1, "w": 2}\n{"x": 1, "w": 2, "x": 5}\n')
    result = run(tmp_path, "grad", "--points", str(path), "--json")
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert "line 2 gives `x` twice" in error["message"] and error["line"] == 2 and error["column"] == 18
    path.write_text('{"x": 1, "x": 2}\n')
    assert "line 1 gives `x` twice" in run(tmp_path, "grad", "--points", str(path)).stderr


def test_a_json_line_nested_too_deeply_is_the_points_files_error(tmp_path):
    """json's RecursionError reached the command's last resort: `the program is nested too deeply`,
    a syntax error of the program, with no file or line."""
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1, "w": 2}\n{"x": ' + "[" * 100_000 + "]" * 100_000 + ', "w": 2}\n')
    for program in (LOG, "x = [1, 2]\nw = 1\ny = sum(log(x)) * w\n"):
        result = run(tmp_path, "grad", "--points", str(path), "--json", program=program)
        assert result.exit_code == 1 and result.stdout == ""
        error = json.loads(result.stderr)["error"]
        assert error["kind"] == "input" and error["file"] == str(path) and error["line"] == 2, error
        assert "line 2 is nested too deeply" in error["message"]


def test_a_json_integer_of_thousands_of_digits_is_a_diagnostic(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"x": 1}\n{"x": ' + "9" * 5000 + "}\n")
    result = run(tmp_path, "grad", "--points", str(path), "--json")
    assert result.exit_code == 1 and "not a finite number" in json.loads(result.stderr)["error"]["message"]
    path.write_text('{"x": 12345678901234567890123}\n')
    assert jsonl(run(tmp_path, "eval", "--points", str(path), "--json").stdout)[0]["inputs"]["x"] == \
        float("12345678901234567890123")


@pytest.mark.parametrize("separator", ["\t", ";"])
def test_a_tsv_file_gets_a_help_line(tmp_path, separator):
    path = tmp_path / "p.tsv"
    path.write_text(f"x{separator}w\n1{separator}2\n")
    result = run(tmp_path, "grad", "--points", str(path), "--json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)["error"]
    assert "the header is one column" in error["message"] and "separated by commas" in error["help"]


def test_100000_columns(tmp_path):
    """Issue 21: 100,000 columns took 89 s (each name looked up in lists of names); now linear."""
    n = 100_000
    path = tmp_path / "wide.csv"
    path.write_text(",".join(["x"] + [f"c{k}" for k in range(n)]) + "\n"
                    + ",".join(["4"] + ["1"] * n) + "\n" + ",".join(["9"] + ["2"] * n) + "\n")
    program = diffcli.parse("x = 1\ny = sqrt(x)\n")
    with open(path) as stream:
        many = points.read_points(stream, str(path), None, program)
    assert many.n == 2 and len(many.names) == n + 1
    from diffcli.interpreters import batch

    (_, columns), = many.chunks()
    result = batch.run(program, columns)
    assert list(result.value) == [2.0, 3.0] and list(result.gradients["x"]) == [0.25, 1 / 6]


def test_a_scalar_programs_points_read_as_an_array_file_run_as_scalars(tmp_path):
    """A quote or a bracket on the first line sends a points file to the array reader; for a scalar
    program that ran the array engine, which has no shapes for it: an internal error. Now the scalar
    engine runs its rows, a point of the wrong shape is the file's input error, and a free input
    shaped by the file still takes the array engine."""
    program = tmp_path / "sq.expr"
    program.write_text("x = 1\ny = x^2\n")
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('"x"\n1\n3\n')
    done = CliRunner().invoke(app, ["grad", str(program), "--points", str(quoted), "--csv"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == ["x,y,dy/dx,error", "1.0,1.0,2.0,", "3.0,9.0,6.0,"]
    shaped = tmp_path / "shaped.jsonl"
    shaped.write_text('{"x": [1]}\n{"x": 2}\n')
    done = CliRunner().invoke(app, ["grad", str(program), "--points", str(shaped), "--json"])
    assert done.exit_code == 1 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["kind"] == "input" and "`x` is a scalar, but the value given is a vector of 1" in error["message"]
    free = tmp_path / "free.expr"
    free.write_text("y = o*2\n")
    arrays = tmp_path / "arrays.jsonl"
    arrays.write_text('{"o": [1, 2]}\n')
    done = CliRunner().invoke(app, ["eval", str(free), "--points", str(arrays), "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["value"] == [2.0, 4.0]


def test_an_unused_array_set_on_a_scalar_program_stays_one_value(tmp_path):
    # --set zz=[1,2] with --sweep: the array was read as a column, zz = 1 at point 0 and 2 at point 1
    from conftest import run_diffcli

    path = tmp_path / "s.expr"
    path.write_text("k = 1\ny = k*2\n", encoding="utf-8")
    done = run_diffcli("grad", path, "--set", "zz=[1,2]", "--sweep", "k=0:1:2", "--json")
    lines = [json.loads(line) for line in done.stdout_text.splitlines()]
    assert done.returncode == 0 and [line["inputs"]["zz"] for line in lines] == [[1.0, 2.0], [1.0, 2.0]]
    assert [line["gradients"]["zz"] for line in lines] == [[0.0, 0.0], [0.0, 0.0]]
