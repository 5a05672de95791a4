"""Output files are written as the shell's `>` would write them (diffcli/renderers/output.py), through
`graph -o` and directly."""

from __future__ import annotations

import json
import os
import stat
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from diffcli.errors import DiffcliError
from diffcli.renderers.output import write_output

from conftest import run_diffcli

PROGRAM = "x = 2\ny = x*x\n"


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.expr"
    path.write_text(PROGRAM)
    return path


def _graph(model, output, *more):
    return run_diffcli("graph", model, "-o", output, "--format", "dot", *more)


def test_symlink_is_written_through(model, tmp_path):
    real = tmp_path / "real.dot"
    real.write_text("old")
    link = tmp_path / "l.dot"
    link.symlink_to(real.name)
    done = _graph(model, link)
    assert done.returncode == 0, done.stderr_text
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_text().startswith("digraph")


def test_dangling_symlink_creates_its_file(model, tmp_path):
    link = tmp_path / "l.dot"
    link.symlink_to("new.dot")
    assert _graph(model, link).returncode == 0
    assert link.is_symlink() and (tmp_path / "new.dot").read_text().startswith("digraph")


def test_existing_file_keeps_its_mode(model, tmp_path):
    out = tmp_path / "out.dot"
    out.write_text("old")
    out.chmod(0o600)
    assert _graph(model, out).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_text().startswith("digraph")


def test_new_file_gets_the_shells_mode(tmp_path):
    mask = os.umask(0o027)
    try:
        write_output(str(tmp_path / "new.dot"), b"data")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.dot").stat().st_mode) == 0o640


def test_read_only_file_is_treated_as_the_shell_treats_it(model, tmp_path):
    """Refused unless the shell's `>` may write it too (as root it may), and its mode stays."""
    shell_file, ours = tmp_path / "shell.dot", tmp_path / "ours.dot"
    for path in (shell_file, ours):
        path.write_text("old")
        path.chmod(0o444)
    shell = subprocess.run(["sh", "-c", f"printf new > '{shell_file}'"], capture_output=True)
    done = _graph(model, ours)
    assert (done.returncode == 0) == (shell.returncode == 0)
    assert stat.S_IMODE(ours.stat().st_mode) == 0o444
    if shell.returncode != 0:
        assert ours.read_text() == "old" and "Permission denied" in done.stderr_text


def test_read_only_file_is_refused_for_another_user():
    """As `nobody` (when the tests run as root and setpriv exists), as the shell refuses it."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    shared = Path(tempfile.mkdtemp(prefix="diffcli-test-"))  # where `nobody` can reach
    try:
        shared.chmod(0o777)
        target = shared / "out.dot"
        target.write_text("old")
        target.chmod(0o444)
        code = ("import sys\nfrom diffcli.renderers.output import write_output\n"
                "from diffcli.errors import DiffcliError\n"
                f"try: write_output({str(target)!r}, b'new')\n"
                "except DiffcliError as e: print(e.message); sys.exit(3)\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if done.returncode not in (0, 3):
            pytest.skip(f"cannot run Python as nobody: {done.stderr[-300:]}")
        assert done.returncode == 3 and "Permission denied" in done.stdout, done
        assert target.read_text() == "old"
    finally:
        shutil.rmtree(shared)


def test_fifo_is_written_not_replaced(model, tmp_path):
    fifo = tmp_path / "pipe.dot"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = _graph(model, fifo)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr_text
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received[0].startswith(b"digraph")


def test_dev_stdout_reaches_the_pipe(model, tmp_path):
    stdout = tmp_path / "stdout"  # a link like /dev/stdout: a test gone wrong replaces only it
    stdout.symlink_to("/proc/self/fd/1")
    done = _graph(model, stdout)
    assert done.returncode == 0 and done.stdout_text.startswith("digraph")


def _device(path, minor):
    """A private copy of /dev/null (minor 3) or /dev/full (minor 7): a test that goes wrong
    replaces it, not the system's."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        open(path, "rb").close()  # a file system mounted nodev refuses this
    except OSError:
        pytest.skip("cannot make a device here")
    return path


def test_character_device_stays_a_device(model, tmp_path):
    null = _device(tmp_path / "null", 3)
    assert _graph(model, null).returncode == 0
    assert stat.S_ISCHR(null.stat().st_mode)


def test_full_device_is_an_io_error(model, tmp_path):
    full = _device(tmp_path / "full", 7)
    done = _graph(model, full)
    assert done.returncode == 1 and "No space left on device" in done.stderr_text
    assert stat.S_ISCHR(full.stat().st_mode)


def test_long_name_does_not_overflow(model, tmp_path):
    out = tmp_path / ("n" * 251 + ".dot")  # 255 bytes, the longest name a directory takes
    done = _graph(model, out)
    assert done.returncode == 0, done.stderr_text
    assert out.read_text().startswith("digraph")


def test_hard_link_shares_the_new_content(tmp_path):
    first, second = tmp_path / "a.dot", tmp_path / "b.dot"
    first.write_text("old")
    os.link(first, second)
    write_output(str(first), b"new")
    assert second.read_text() == "new"


def test_text_in_pieces_is_written_as_utf8_in_every_way(tmp_path):
    """Text given as pieces (codegen's) is the bytes of its UTF-8: to a new file, over an old one
    (renamed over it, its mode kept) and in place (a file with another hard link)."""
    pieces = ["x = 1\n", "θ = 2", "\n", ""]
    new, old, linked = tmp_path / "new.py", tmp_path / "old.py", tmp_path / "linked.py"
    old.write_text("old old old")
    old.chmod(0o640)
    linked.write_text("old")
    os.link(linked, tmp_path / "other.py")
    for path in (new, old, linked):
        write_output(str(path), pieces)
        assert path.read_bytes() == "x = 1\nθ = 2\n".encode("utf-8")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and (tmp_path / "other.py").read_text() == "x = 1\nθ = 2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked.py", "new.py", "old.py", "other.py"]


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "out.dot"
    out.write_text("old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(DiffcliError) as caught:
        write_output(str(out), b"new")
    assert caught.value.kind == "io" and "No space left" in caught.value.message
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.dot"]


def test_directory_and_missing_directory_are_io_errors(model, tmp_path):
    for target in (tmp_path, tmp_path / "no" / "such.dot"):
        done = _graph(model, target)
        assert done.returncode == 1 and "cannot write" in done.stderr_text
        assert "Traceback" not in done.stderr_text


def test_an_empty_file_name_is_refused_before_the_work_as_the_shell_refuses_it(tmp_path, monkeypatch):
    """`fit --save ''` passed the check (realpath('') is the working directory, whose parent
    exists), printed the fit, then failed `cannot write : Is a directory` with exit 1."""
    from diffcli.renderers.output import check_writable

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DiffcliError, match="cannot write '': No such file or directory") as refused:
        check_writable("")
    with pytest.raises(DiffcliError) as failed:
        write_output("", b"x")
    assert refused.value.kind == failed.value.kind == "io" and refused.value.message == failed.value.message
    assert list(tmp_path.iterdir()) == [] and list(tmp_path.parent.glob(".diffcli-*")) == []
    model = tmp_path / "m.expr"
    model.write_text("a = 1\ny = (a - 2)^2\n")
    done = run_diffcli("fit", str(model), "--wrt", "a", "--save", "", "--json")
    assert done.returncode == 1 and done.stdout_text == ""
    assert json.loads(done.stderr_text)["error"]["kind"] == "io"


def test_check_writable_refuses_what_write_output_refuses_and_changes_nothing(tmp_path):
    from diffcli.renderers.output import check_writable

    for target in (tmp_path, tmp_path / "no" / "such.json"):
        with pytest.raises(DiffcliError) as refused:
            check_writable(str(target))
        with pytest.raises(DiffcliError) as failed:
            write_output(str(target), b"x")
        assert refused.value.kind == "io" and refused.value.message == failed.value.message
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text("kept")
    for target in (old, new, "-", "/dev/null"):
        check_writable(str(target))
    assert old.read_text() == "kept" and not new.exists()
