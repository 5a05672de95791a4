"""The command line's own conventions: shell completion of the file's names, --precision, --json
on explain and graph (the fit's progress bar: test_fit.py)."""

from __future__ import annotations

import json
import os

from tests.conftest import SAMPLES, run_diffcli

CHAIN = str(SAMPLES / "backprop_chain.expr")


def complete(words: str) -> list[str]:
    """What bash completion offers after `words` (the last word is the one being completed)."""
    parts = words.split(" ")
    done = run_diffcli(env={"_DIFFCLI_COMPLETE": "complete_bash", "COMP_WORDS": words,
                            "COMP_CWORD": str(len(parts) - 1)})
    assert done.returncode == 0 and done.stderr_text == "", done.stderr_text
    return done.stdout_text.split()


def test_completion_offers_the_files_names():
    assert complete(f"diffcli grad {CHAIN} --set ") == ["a=", "o="]          # the inputs
    assert complete(f"diffcli grad {CHAIN} --set a=1,o") == ["a=1,o="]       # the last of a comma list
    assert complete(f"diffcli hessian {CHAIN} --of ") == list("abcdefgo")      # every variable
    assert complete(f"diffcli grad {CHAIN} --wrt ") == ["a", "o"]
    assert complete(f"diffcli grad --of g {CHAIN} --set ") == ["a=", "o="]
    assert complete(f"diffcli grad {os.devnull}x --set ") == []               # no file: nothing, quietly
    help_text = run_diffcli("--help", env={"COLUMNS": "200"}).stdout_text
    assert "--install-completion" in help_text and "--show-completion" in help_text


def test_check_and_explain_take_precision():
    three = run_diffcli("check", CHAIN, "--set", "o=1.123456789", "--precision", "3").stdout_text
    assert "-432 " in three and "-432.0000000" not in three
    text = run_diffcli("explain", CHAIN, "--set", "o=1.123456789", "--wrt", "o", "--precision", "3").stdout_text
    assert "o = 1.12 " in text
    assert "o = 1.12346 " in run_diffcli("explain", CHAIN, "--set", "o=1.123456789", "--wrt", "o").stdout_text


def test_explain_json_is_the_derivation_as_data():
    done = run_diffcli("explain", CHAIN, "--set", "o=1", "--json")
    assert done.returncode == 0, done.stderr_text
    data = json.loads(done.stdout_text)
    grad = json.loads(run_diffcli("grad", CHAIN, "--set", "o=1", "--json").stdout_text)
    assert data["output"] == "g" and data["wrt"] == "a"
    assert data["total"]["value"] == grad["gradients"]["a"] == -432
    by_name = {s["name"]: s for s in data["statements"]}
    assert [s["name"] for s in data["statements"]] == list("bcdefg")
    assert by_name["e"]["partials"] == [{"wrt": "c", "symbolic": "7", "value": 7.0},
                                        {"wrt": "d", "symbolic": "2·d", "value": 2.0}]
    assert all(s["gradient"] == grad["gradients"][s["name"]] for s in data["statements"])
    wrong = run_diffcli("explain", CHAIN, "--json")                 # errors as JSON too
    assert wrong.returncode == 1 and json.loads(wrong.stderr_text)["error"]["kind"] == "name"
    assert run_diffcli("explain", CHAIN, "--json", "--format", "latex").returncode == 2


def test_graph_json_has_the_drawings_nodes_and_edges():
    done = run_diffcli("graph", CHAIN, "--set", "o=1", "--json")
    assert done.returncode == 0, done.stderr_text
    data = json.loads(done.stdout_text)
    grad = json.loads(run_diffcli("grad", CHAIN, "--set", "o=1", "--json").stdout_text)
    named = {n["name"]: n for n in data["nodes"] if n["kind"] == "value" and n["name"]}
    assert {name: n["value"] for name, n in named.items()} == grad["values"]
    assert {name: n["gradient"] for name, n in named.items()} == grad["gradients"]
    assert named["a"]["input"] and named["g"]["output"] and named["e"]["line"] == 7
    ids = {n["id"] for n in data["nodes"]}
    assert all(e["from"] in ids and e["to"] in ids for e in data["edges"])
    operations = [n for n in data["nodes"] if n["kind"] == "operation"]
    assert "×3" in {n["label"] for n in operations}                  # 3a: the constant folded in, as drawn
    dot = run_diffcli("graph", CHAIN, "--set", "o=1").stdout_text
    assert len(operations) == dot.count("shape=ellipse")             # the same nodes as the drawing
    values_only = json.loads(run_diffcli("graph", CHAIN, "--set", "o=1", "--json", "--no-grad").stdout_text)
    assert all(n.get("gradient") is None for n in values_only["nodes"])
    assert run_diffcli("graph", CHAIN, "--json", "--format", "svg").returncode == 2
