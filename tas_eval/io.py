"""The one way tas-eval writes a file: to a temporary file beside it, flushed to disk, then renamed.

A reader therefore sees either the old file or the whole new one, never a part, also after a crash
or a kill -9 at any point. Temporary files are named ``.tmp-<name>-<random>`` in the target's
folder; a writer that dies leaves one behind, and the code that owns a folder removes such leftovers
on its next run (they are never taken for items).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is fsynced and renamed over ``path``.

    For writers that want a file name (torch.save, numpy, soundfile). The parent folder is created.
    If the block raises, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}-")
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


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 1) -> None:
    """Write ``obj`` as JSON (sorted keys, a final newline) to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Delete the temporary files that a killed writer left in ``folder``; returns how many."""
    count = 0
    for stale in Path(folder).glob(f"{TMP_PREFIX}*"):
        if stale.is_file():
            stale.unlink()
            count += 1
    return count
