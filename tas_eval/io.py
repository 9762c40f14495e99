"""The one way tas-eval writes a file, and the one way it keeps a second writer out of a folder.

Writing: to a temporary file beside the target, flushed to disk (fsync), then renamed over it. A
reader therefore sees either the old file or the whole new one, never a part, also after a crash or a
kill -9 at any point. Temporary files are named ``.tmp-<name>-<pid>-<random>`` in the target's
folder; a writer that dies leaves one behind, and the code that owns a folder removes such leftovers
(``remove_leftovers``) the next time it writes there. A leftover whose process is still alive is
kept: it is another writer's file in progress.

Locking: ``folder_lock`` holds an exclusive lock (flock on ``<folder>/.lock``) while a process writes
a folder that another process could write too (a run's checkpoints and predictions, a results
folder, a build). A second process is refused with a message naming the holder, or waits where the
writes are short. The kernel drops the lock of a process that dies, so a stale lock is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from tas_eval.errors import UserError

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
LOCK_FILE = ".lock"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is fsynced and renamed over ``path``.

    For writers that want a file name (torch.save, numpy, soundfile). The parent folder is created.
    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}-{os.getpid()}-")
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a published file gets the usual permissions
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON (sorted keys, a final newline) to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())


def is_temporary(name: str) -> bool:
    """Whether a file name is one of the temporary files this module writes."""
    return name.startswith(TMP_PREFIX)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _writer_pid(name: str) -> int | None:
    """The pid in ``.tmp-<name>-<pid>-<random>``, or None for a name of another form."""
    parts = name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Delete the temporary files that killed writers left in ``folder``; returns how many.

    A temporary file of a process that is still running (this one included) is another write in
    progress and is kept; one without a pid in its name predates that naming and is removed.
    """
    count = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for stale in folder.iterdir():
        if not is_temporary(stale.name) or not stale.is_file():
            continue
        pid = _writer_pid(stale.name)
        if pid is not None and _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            count += 1
    if count:
        log.info("%s: removed %d temporary file(s) of an interrupted write", folder, count)
    return count


_HELD: dict[str, int] = {}  # folders this process has locked -> nesting depth


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the block.

    When another live process holds it: a UserError naming the folder and that process, or, with
    ``wait``, block until it is free (for folders whose writes take a moment). Re-entrant within one
    process. The lock file is removed on release.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "a process"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserError(f"{folder}: another tas-eval process ({holder}) is writing here; wait until it "
                                "has finished, then run again.") from None
            raise
        try:  # the file may have been removed by the holder that released it just now: lock the current one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    if previous:
        log.info("%s: taking over the lock left by %s, which is gone", folder, previous)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
