"""Strict validation of a predictions directory, before anything is scored.

A predictions directory holds one stereo 16 kHz WAV per test item of a split, named
``<item_id>.wav``, exactly as long as the reference, plus an optional ``model.json`` (name,
description, guidance). Validation names every problem per file and never falls back:

- the exact set of item ids: a missing file and an extra file are both problems;
- each WAV: a regular file (a symbolic link is refused and never followed, wherever it points; a
  sub-folder, a FIFO or a device is refused), WAV format, 2 channels, the dataset's sample rate (16 kHz),
  the reference's length in samples, finite samples, no clipping (any |x| > 1);
- a file name that is not ``<test item id>.wav`` or ``model.json`` is an extra file;
- model.json: a JSON object whose "name" (if given) is a safe folder name.

Nothing outside the directory is read: entries are listed without following links, and each file
is opened with O_NOFOLLOW and checked to be a regular file on the open descriptor, so a file swapped
for a link between the listing and the read is refused too. Nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path

import numpy as np
import soundfile as sf

from tas_eval.data.protocol import Dataset
from tas_eval.errors import UserError

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
WAV_FORMATS = ("WAV", "WAVEX", "RF64")
# A model name becomes a folder name under results/: letters, digits and . _ + - only, no "..".
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


def check_model_name(name: str) -> str | None:
    """None if ``name`` is usable as a results folder name, else what is wrong with it."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        return (f"model name {name!r} is not allowed: use 1 to 80 letters, digits, '.', '_', '+' or '-', "
                "starting with a letter or digit, without '..'")
    return None


def _open_regular(directory_fd: int, name: str):
    """Open ``name`` inside the directory descriptor without following links; a binary file object or a problem string."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=directory_fd)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror})"
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return "is not a regular file"
    return os.fdopen(fd, "rb")


def _check_wav(fh, sr: int, length: int) -> list[str]:
    """Problems of one opened WAV file against the expected sample rate (Hz) and length (samples)."""
    try:
        with sf.SoundFile(fh) as f:
            fmt, channels, rate, frames = f.format, f.channels, f.samplerate, f.frames
            data = f.read(dtype="float32", always_2d=True) if fmt in WAV_FORMATS else None
    except (RuntimeError, sf.LibsndfileError) as exc:
        return [f"cannot be read as audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"]
    if fmt not in WAV_FORMATS:
        return [f"is not a WAV file (format {fmt})"]
    problems = []
    if channels != 2:
        problems.append(f"has {channels} channel{'s' if channels != 1 else ''}, expected 2 (left, right)")
    if rate != sr:
        problems.append(f"has sample rate {rate} Hz, expected {sr} Hz")
    if frames != length:
        problems.append(f"has {frames} samples, expected {length} (the reference's length)")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        problems.append(f"holds {bad} non-finite sample{'s' if bad != 1 else ''} (NaN or infinity)")
    peak = float(np.abs(np.where(finite, data, 0.0)).max()) if data.size else 0.0
    if peak > 1.0:
        problems.append(f"clips: peak |x| = {peak:.4g} > 1")
    return problems


def _check_model_json(fh) -> list[str]:
    try:
        with fh:
            info = json.loads(fh.read(1_000_000).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"is not valid JSON ({exc})"]
    if not isinstance(info, dict):
        return ["must hold a JSON object"]
    problems = []
    if "name" in info:
        wrong = check_model_name(info["name"])
        if wrong:
            problems.append(wrong)
    for key in ("description", "guidance"):
        if key in info and not isinstance(info[key], (str, list)):
            problems.append(f"field '{key}' must be a string or a list of strings")
    return problems


def validate_predictions(directory: str | os.PathLike, dataset: Dataset, split: int) -> list[str]:
    """Every problem of a predictions directory for the test part of ``split``, one string per problem,
    each starting with the file it concerns; an empty list means the directory can be scored."""
    directory = Path(directory)
    ids = dataset.split_ids(split, "test")
    expected = {f"{item_id}.wav": item_id for item_id in ids}
    if not directory.exists():
        return [f"{directory}: does not exist"]
    if not directory.is_dir():
        return [f"{directory}: is not a directory"]
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        return [f"{directory}: cannot be opened ({exc.strerror})"]
    problems: list[str] = []
    try:
        lengths = {item_id: dataset.num_samples(item_id) for item_id in ids}
        seen = set()
        with os.scandir(dir_fd) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            name = entry.name
            shown = ascii(name)[1:-1]  # never print raw control characters from a submission
            if entry.is_symlink():
                problems.append(f"{shown}: is a symbolic link; links are refused and not followed")
                continue
            if entry.is_dir(follow_symlinks=False):
                problems.append(f"{shown}: is a sub-folder; a predictions directory holds only files")
                continue
            if "/" in name or "\\" in name or ".." in name:
                problems.append(f"{shown}: the name holds a path separator or '..'")
                continue
            if name == MODEL_JSON:
                opened = _open_regular(dir_fd, name)
                found = [opened] if isinstance(opened, str) else _check_model_json(opened)
                problems += [f"{shown}: {p}" for p in found]
                continue
            if name not in expected:
                why = "not a .wav file" if not name.lower().endswith(".wav") else "not an item of the test split"
                problems.append(f"{shown}: extra file ({why} {split}); only <item_id>.wav and model.json belong here")
                continue
            seen.add(name)
            opened = _open_regular(dir_fd, name)
            if isinstance(opened, str):
                problems.append(f"{shown}: {opened}")
                continue
            with opened:
                problems += [f"{shown}: {p}" for p in _check_wav(opened, dataset.sample_rate, lengths[expected[name]])]
        for name in sorted(set(expected) - seen):
            problems.append(f"{name}: missing (test item '{expected[name]}' of split {split} has no prediction)")
    finally:
        os.close(dir_fd)
    return problems


def read_model_json(directory: str | os.PathLike) -> dict:
    """The parsed model.json of a VALIDATED predictions directory ({} when there is none)."""
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        opened = _open_regular(dir_fd, MODEL_JSON)
    finally:
        os.close(dir_fd)
    if isinstance(opened, str):
        return {}
    with opened:
        return json.loads(opened.read().decode("utf-8"))


def read_prediction(directory: str | os.PathLike, item_id: str) -> np.ndarray:
    """The (2, T) float32 prediction of ``item_id`` from a VALIDATED directory, read without following links."""
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        opened = _open_regular(dir_fd, f"{item_id}.wav")
    finally:
        os.close(dir_fd)
    if isinstance(opened, str):
        raise UserError(f"{Path(directory) / (item_id + '.wav')}: {opened}.")
    with opened, sf.SoundFile(opened) as f:
        return np.ascontiguousarray(f.read(dtype="float32", always_2d=True).T)


def require_valid(directory: str | os.PathLike, dataset: Dataset, split: int) -> None:
    """Raise a UserError listing every problem unless the directory validates."""
    problems = validate_predictions(directory, dataset, split)
    if problems:
        listing = "\n  ".join(problems)
        raise UserError(f"{directory}: {len(problems)} problem{'s' if len(problems) != 1 else ''}, nothing was scored:\n  {listing}")
