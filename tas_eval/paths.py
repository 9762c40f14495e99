"""Where tas-eval keeps built data, checkpoints, predictions and caches.

Everything lives under TAS_EVAL_HOME (default ``~/.cache/tas-eval``); results are written to
``results/`` of the current directory unless a command is told otherwise.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (manifests, checkpoints, backbone weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def home() -> Path:
    """The tas-eval working folder (env TAS_EVAL_HOME, default ~/.cache/tas-eval)."""
    return Path(os.environ.get("TAS_EVAL_HOME", Path.home() / ".cache" / "tas-eval"))


def data_root() -> Path:
    """Folder holding built benchmarks, one sub-folder per dataset id."""
    return home() / "data"


def runs_root() -> Path:
    """Folder holding checkpoints and predictions directories of `tas-eval run`."""
    return home() / "runs"


def cache_root() -> Path:
    """Folder holding metric caches (reference statistics keyed by content, never by folder name)."""
    return home() / "cache"
