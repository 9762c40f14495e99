"""The one atomic writer, leftovers of killed writers, and the folder lock (tas_eval/io.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tas_eval import io as tio
from tas_eval.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def _dead_pid() -> int:
    """A pid that no process has now."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_is_flushed_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append("rename"), real_replace(a, b))[1])
    tio.write_bytes_atomic(tmp_path / "x.json", b"{}")
    assert order == ["fsync", "rename"] and (tmp_path / "x.json").read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "x.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with tio.atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"] and (tmp_path / "x.txt").read_text() == "old"


def test_leftovers_of_dead_writers_go_and_writes_in_progress_stay(tmp_path):
    dead = tmp_path / f".tmp-results.json-{_dead_pid()}-abcdefgh"
    alive = tmp_path / f".tmp-items.jsonl-{os.getpid()}-abcdefgh"
    legacy = tmp_path / ".tmp-c00001.wav"  # the naming before pids: nobody can still be writing it
    kept = tmp_path / "results.json"
    for path in (dead, alive, legacy, kept):
        path.write_text("x")
    assert tio.remove_leftovers(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, kept.name])


def test_the_lock_refuses_a_second_process_and_is_taken_over_when_its_holder_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from tas_eval.io import folder_lock
            with folder_lock({str(folder)!r}):
                print("locked", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as err:
            with tio.folder_lock(folder):
                pass
        assert str(err.value).startswith(f"{folder}: another tas-eval process (pid {holder.pid}) is writing here")
    finally:
        holder.kill()  # dies holding the lock, as kill -9 leaves it
        holder.wait()
    assert (folder / tio.LOCK_FILE).exists()  # a stale lock file
    with tio.folder_lock(folder):
        assert (folder / tio.LOCK_FILE).read_text() == f"pid {os.getpid()}"
        with tio.folder_lock(folder):  # re-entrant within one process
            pass
    assert not (folder / tio.LOCK_FILE).exists()
