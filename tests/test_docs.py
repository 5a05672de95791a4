"""The README and docs/ stay true: every `$ diffcli ...` (and `$ cat ...`) in a code block prints
what the page shows beneath it, every relative link leads to a file, and the README's two commands
are the ones CI runs."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import ROOT, run_diffcli

PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _examples():
    """(page, line, command, expected output) for each `$ ` line in a fenced block."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").split("\n")
        fenced, current = False, None
        for number, line in enumerate(lines, 1):
            if line.lstrip().startswith("```"):
                if fenced and current:
                    yield current
                fenced, current = not fenced, None
                indent = len(line) - len(line.lstrip())
                continue
            if not fenced:
                continue
            text = line[indent:]
            if text.startswith("$ "):
                if current:
                    yield current
                current = (page.relative_to(ROOT).as_posix(), number, text[2:], [])
            elif current:
                current[3].append(text)


EXAMPLES = list(_examples())


def test_the_pages_have_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("page, line, command, expected", EXAMPLES,
                         ids=[f"{page}:{line}" for page, line, _, _ in EXAMPLES])
def test_example_output(page, line, command, expected):
    argv = shlex.split(command)
    if argv[0] == "cat":
        shown = (ROOT / argv[1]).read_text(encoding="utf-8")
    else:
        assert argv[0] == "diffcli", f"{page}:{line}: only `diffcli` and `cat` examples are run"
        done = run_diffcli(*argv[1:], cwd=ROOT, env={"COLUMNS": "80", "NO_COLOR": "1"})
        shown = done.stdout_text + done.stderr_text
    assert shown.rstrip("\n").split("\n") == expected, f"{page}:{line}: `{command}` prints otherwise"


def test_relative_links_lead_to_files():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("pip install . && diffcli grad samples/backprop_chain.expr --set o=1",
                    "pip install '.[test]' && python -m pytest"):
        assert f"\n{command}\n" in readme and f"\n{command}\n" in ci, command
