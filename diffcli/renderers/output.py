"""Writing an output file (`-o`, and every other option that names a file to write) as the shell's
`>` would, and all-or-nothing where that is possible.

- `-` is standard output.
- A device, a FIFO or a socket, and `/dev/stdout` and its kind, are opened and written in place,
  never replaced: `-o /dev/null` stays a device, `-o /dev/stdout` reaches the pipe.
- A symbolic link is written through: the file it names gets the data, the link stays.
- A regular file gets the new bytes all at once: they go to a temporary file beside it, which is
  then renamed over it, so a failure leaves the old content whole. The file keeps its mode (and its
  owner); one that cannot be opened for writing (read-only, for one) is refused, as `>` refuses it.
  Where a rename would change what the shell would keep (a file with other hard links, an owner
  that cannot be given back, a directory that is not writable), it is written in place instead.
- A new file gets the mode 0666 less the umask, as the shell gives it.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterable

from ..errors import DiffcliError

# A short name of fixed length, so that a target name of up to 255 bytes still leaves room
_TEMP_PREFIX, _TEMP_SUFFIX = ".diffcli-", ".tmp"


def write_output(path: str, data: bytes | Iterable[str]) -> None:
    """Write `data` to `path` (`-`: standard output); any failure is a DiffcliError of kind "io".
    `data`: bytes, or text as pieces that can be iterated more than once (UTF-8, each encoded as it
    is written: a large file's text is never joined and encoded whole)."""
    if path == "-":
        return write_stdout(data)
    try:
        _write(path, data)
    except OSError as error:
        raise DiffcliError("io", f"cannot write {path or repr(path)}: {error.strerror or error}") from None


def check_writable(path: str) -> None:
    """Refuse, before anything is computed or printed, a `path` that write_output would refuse
    for certain: a directory, a missing directory on the way, a file that cannot be opened for
    writing. Nothing is created or changed (an existing file is opened without truncating it)."""
    if path == "-" or _names_a_descriptor(path):
        return
    try:
        if not path:  # (realpath("") is the working directory: the shell's `> ''` is refused)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
        try:
            info = os.stat(path)  # through symbolic links
        except FileNotFoundError:
            parent = os.path.dirname(os.path.realpath(path))
            if not os.path.isdir(parent):
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)) from None
            return
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if stat.S_ISREG(info.st_mode):
            os.close(os.open(path, os.O_WRONLY))  # refused here as `>` would refuse it
    except OSError as error:
        raise DiffcliError("io", f"cannot write {path or repr(path)}: {error.strerror or error}") from None


class BrokenPipe(DiffcliError):
    """Standard output's reader has gone (`| head`): an "io" error, exit 1 as for any output that cannot
    be written, but reported only with --json: the reader chose to stop, and `yes | head` stops quietly."""

    def __init__(self):
        super().__init__("io", "cannot write to standard output: Broken pipe")


def broken_pipe() -> BrokenPipe:
    """The error, with standard output pointed at /dev/null: nothing later (the final flush) fails on it."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return BrokenPipe()


def write_stdout(data: bytes | Iterable[str]) -> None:
    """Write `data` to standard output and flush it; a closed or full one is an "io" error."""
    stream = getattr(sys.stdout, "buffer", None)
    try:
        if stream is None:
            raise OSError(errno.EBADF, "it is closed")
        _put(stream, data)
        stream.flush()
    except BrokenPipeError:
        raise broken_pipe() from None
    except (OSError, ValueError) as error:  # ValueError: the stream was closed
        reason = getattr(error, "strerror", None) or "it is closed"
        raise DiffcliError("io", f"cannot write to standard output: {reason}") from None


def _put(file, data: bytes | Iterable[str]) -> None:
    if isinstance(data, bytes):
        file.write(data)
    else:
        for piece in data:
            file.write(piece.encode("utf-8"))


def _write(path: str, data: bytes | Iterable[str]) -> None:
    if not path:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    try:
        info = os.stat(path)  # through symbolic links
    except FileNotFoundError:
        info = None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if info is not None and not stat.S_ISREG(info.st_mode) or _names_a_descriptor(path):
        return _write_in_place(path, data)
    target = os.path.realpath(path)
    if info is None:
        mode = 0o666 & ~_umask()
    else:
        os.close(os.open(target, os.O_WRONLY))  # refused here as `>` would refuse it
        if info.st_nlink > 1:  # a rename would cut the other links off from the new content
            return _write_in_place(target, data)
        # the permission bits; set-user/group-ID are dropped, as writing to a file drops them
        mode = stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
    try:
        descriptor, temp = _temporary(os.path.dirname(target))
    except PermissionError:  # a directory we may not add to, holding a file we may write
        if info is None:
            raise
        return _write_in_place(target, data)
    try:
        with os.fdopen(descriptor, "wb") as file:
            _put(file, data)
            os.fchmod(file.fileno(), mode)
            if info is not None and (info.st_uid, info.st_gid) != _owner(file.fileno()):
                try:
                    os.fchown(file.fileno(), info.st_uid, info.st_gid)
                except PermissionError:  # the rename would give the file a new owner
                    os.unlink(temp)
                    temp = None
        if temp is None:
            return _write_in_place(target, data)
        os.replace(temp, target)
        temp = None
    finally:
        if temp is not None:
            try:
                os.unlink(temp)
            except OSError:
                pass


# as tempfile.mkstemp opens its file (not imported: a run that writes one file would spend more on
# importing it, and `random` with it, than on the file)
_TEMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))
_TEMP_TRIES = 10_000  # (tempfile.TMP_MAX)


def _temporary(directory: str) -> tuple[int, str]:
    """A new file beside the target, as tempfile.mkstemp makes one: created exclusively (never an
    existing file or link), mode 0600, a name not taken (_TEMP_PREFIX, 8 random characters,
    _TEMP_SUFFIX); (its descriptor, its path)."""
    for _ in range(_TEMP_TRIES):
        temp = os.path.join(directory, _TEMP_PREFIX + os.urandom(4).hex() + _TEMP_SUFFIX)
        try:
            return os.open(temp, _TEMP_FLAGS, 0o600), temp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name found")


def _write_in_place(path: str, data: bytes | Iterable[str]) -> None:
    with open(path, "wb") as file:  # O_WRONLY | O_CREAT | O_TRUNC, as `>` opens it
        _put(file, data)


def _names_a_descriptor(path: str) -> bool:
    """Whether `path`, or a link on the way to its file, is in /dev or /proc (`/dev/stdout`,
    `/dev/fd/1`): the file open there must be written, whatever kind of file it is."""
    for _ in range(40):
        absolute = os.path.abspath(path)
        if absolute.startswith(("/dev/", "/proc/")):
            return True
        if not os.path.islink(absolute):
            return False
        path = os.path.join(os.path.dirname(absolute), os.readlink(absolute))
    return False


def _owner(descriptor: int) -> tuple[int, int]:
    info = os.fstat(descriptor)
    return info.st_uid, info.st_gid


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
