"""Strict validation of a predictions directory, before anything is scored.

A predictions directory holds one stereo 16 kHz WAV per test item of a split, named
``<item_id>.wav``, exactly as long as the reference, plus an optional ``model.json`` (name,
version, description, guidance). Validation names every problem per file and never falls back:

- the exact set of item ids: a missing file and an extra file are both problems;
- each WAV: a regular file (a symbolic link is refused and never followed, wherever it points; a
  sub-folder, a FIFO or a device is refused), WAV format, 2 channels, the dataset's sample rate
  (16 kHz), the reference's length in samples (all read from the header before any sample is read),
  then finite samples and no clipping (any |x| > 1);
- a file name that is not ``<test item id>.wav`` or ``model.json`` is an extra file;
- an optional folder ``counterfactual/`` holds the same items predicted under their counterfactual
  (side-swapped) prompts, checked by the same rules (every item, nothing else);
- model.json: a JSON object of at most MODEL_JSON_MAX_BYTES with finite numbers, whose "name" (if
  given) is a folder name of 1 to 80 letters, digits, '.', '_', '+' or '-', "version" a string or an
  integer, "description" a string and "guidance" a list of "text" / "visual".

Nothing outside the directory is read: entries are listed without following links, and each file
is opened with O_NOFOLLOW and checked to be a regular file on the open descriptor, so a file swapped
for a link between the listing and the read is refused too. Nothing is written. ``require_valid``
returns the model.json that validation parsed, so evaluation never parses it again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import soundfile as sf

from tas_eval.data.protocol import GUIDANCE_KINDS, Dataset
from tas_eval.errors import UserError

log = logging.getLogger(__name__)

MODEL_JSON = "model.json"
COUNTERFACTUAL_DIR = "counterfactual"  # the same items predicted under their side-swapped prompts (optional)
MODEL_JSON_MAX_BYTES = 1_000_000
WAV_FORMATS = ("WAV", "WAVEX", "RF64")
# A model name becomes a folder name under results/: letters, digits and . _ + - only, no "..".
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,79}$")


def check_model_name(name: str) -> str | None:
    """None if ``name`` is usable as a results folder name, else what is wrong with it."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        shown = repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:57] + "...")
        return (f"model name {shown} is not allowed: use 1 to 80 letters, digits, '.', '_', '+' or '-', "
                "starting with a letter or digit, without '..'")
    return None


def sf_error(exc: Exception) -> str:
    """libsndfile's own words for why a file cannot be read, without the file object's repr."""
    text = getattr(exc, "error_string", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return re.sub(r"\s*<_io\.\w+ name=[^>]*>:?", "", text).strip() or type(exc).__name__


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
    """Problems of one opened WAV file against the expected sample rate (Hz) and length (samples).

    The header (format, channels, rate, length) is checked before any sample is read, so a header
    that declares a huge file costs nothing.
    """
    try:
        with sf.SoundFile(fh) as f:
            fmt, channels, rate, frames = f.format, f.channels, f.samplerate, f.frames
            if fmt not in WAV_FORMATS:
                return [f"is not a WAV file (format {fmt})"]
            problems = []
            if channels != 2:
                problems.append(f"has {channels} channel{'s' if channels != 1 else ''}, expected 2 (left, right)")
            if rate != sr:
                problems.append(f"has sample rate {rate} Hz, expected {sr} Hz")
            if frames != length:
                problems.append(f"has {frames} samples, expected {length} (the reference's length)")
            if problems:
                return problems
            data = f.read(dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        return [f"cannot be read as audio ({sf_error(exc)})"]
    if data.shape[0] != length:
        return [f"holds {data.shape[0]} samples, although its header declares {length}"]
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        problems.append(f"holds {bad} non-finite sample{'s' if bad != 1 else ''} (NaN or infinity)")
    peak = float(np.abs(np.where(finite, data, 0.0)).max()) if data.size else 0.0
    if peak > 1.0:
        problems.append(f"clips: peak |x| = {peak:.4g} > 1")
    return problems


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is not finite")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a finite number")


def parse_model_json(fh) -> tuple[dict, list[str]]:
    """(the parsed model.json, []) or ({}, its problems); the rules are in the module docstring."""
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MODEL_JSON_MAX_BYTES:
            return {}, [f"is too large ({size} bytes; a model.json holds at most {MODEL_JSON_MAX_BYTES})"]
        raw = fh.read(MODEL_JSON_MAX_BYTES + 1)
    try:
        info = json.loads(raw.decode("utf-8"), parse_float=_finite_float, parse_constant=_refuse_constant)
    except RecursionError:
        return {}, ["nests too deeply to be a model description"]
    except UnicodeDecodeError:
        return {}, ["is not UTF-8 text"]
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, and so are the refused numbers
        return {}, [f"is not valid JSON ({exc})"]
    if not isinstance(info, dict):
        return {}, ["must hold a JSON object"]
    problems = []
    if "name" in info:
        wrong = check_model_name(info["name"])
        if wrong:
            problems.append(wrong)
    version = info.get("version", "")
    if not (isinstance(version, str) or (isinstance(version, int) and not isinstance(version, bool))):
        problems.append("field 'version' must be a string or an integer")
    if not isinstance(info.get("description", ""), str):
        problems.append("field 'description' must be a string")
    guidance = info.get("guidance", [])
    if not isinstance(guidance, list) or not all(isinstance(g, str) and g in GUIDANCE_KINDS for g in guidance):
        problems.append("field 'guidance' must be a list of 'text' and 'visual' (empty for none)")
    return ({}, problems) if problems else (info, [])


def _inspect_folder(directory: Path, expected: dict[str, str], lengths: dict[str, int], sr: int, split: int,
                    top: bool) -> tuple[list[str], dict]:
    """(problems, parsed model.json) of one folder of a predictions directory; ``top``: the directory
    itself (it may hold model.json and a counterfactual/ folder, which is inspected apart)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | (0 if top else os.O_NOFOLLOW))
    except OSError as exc:
        return [f"{directory}: cannot be opened ({exc.strerror})"], {}
    problems: list[str] = []
    model_json: dict = {}
    try:
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
                if not (top and name == COUNTERFACTUAL_DIR):
                    problems.append(f"{shown}: is a sub-folder; a predictions directory holds only files"
                                    + (f" and {COUNTERFACTUAL_DIR}/" if top else ""))
                continue
            if "/" in name or "\\" in name or ".." in name:
                problems.append(f"{shown}: the name holds a path separator or '..'")
                continue
            if name == MODEL_JSON and top:
                opened = _open_regular(dir_fd, name)
                if isinstance(opened, str):
                    problems.append(f"{shown}: {opened}")
                    continue
                model_json, found = parse_model_json(opened)
                problems += [f"{shown}: {p}" for p in found]
                continue
            if name not in expected:
                why = "not a .wav file" if not name.lower().endswith(".wav") else f"not an item of the test split {split}"
                problems.append(f"{shown}: extra file ({why}); only <item_id>.wav"
                                + (" and model.json belong here" if top else " belong here"))
                continue
            seen.add(name)
            opened = _open_regular(dir_fd, name)
            if isinstance(opened, str):
                problems.append(f"{shown}: {opened}")
                continue
            with opened:
                problems += [f"{shown}: {p}" for p in _check_wav(opened, sr, lengths[expected[name]])]
        for name in sorted(set(expected) - seen):
            problems.append(f"{name}: missing (test item '{expected[name]}' of split {split} has no prediction)")
    finally:
        os.close(dir_fd)
    return problems, model_json


def _inspect(directory: Path, dataset: Dataset, split: int) -> tuple[list[str], dict]:
    """(every problem, the parsed model.json or {}) of a predictions directory and its counterfactual/ folder."""
    ids = dataset.split_ids(split, "test")
    expected = {f"{item_id}.wav": item_id for item_id in ids}
    if not directory.exists():
        return [f"{directory}: does not exist"], {}
    if not directory.is_dir():
        return [f"{directory}: is not a directory"], {}
    lengths = {item_id: dataset.num_samples(item_id) for item_id in ids}
    problems, model_json = _inspect_folder(directory, expected, lengths, dataset.sample_rate, split, top=True)
    counterfactual = directory / COUNTERFACTUAL_DIR
    if counterfactual.is_dir() and not counterfactual.is_symlink():
        found, _ = _inspect_folder(counterfactual, expected, lengths, dataset.sample_rate, split, top=False)
        problems += [f"{COUNTERFACTUAL_DIR}/{p}" for p in found]
    return problems, model_json


def has_counterfactual(directory: str | os.PathLike) -> bool:
    """Whether a predictions directory carries predictions made under the counterfactual prompts."""
    folder = Path(directory) / COUNTERFACTUAL_DIR
    return folder.is_dir() and not folder.is_symlink()


def validate_predictions(directory: str | os.PathLike, dataset: Dataset, split: int) -> list[str]:
    """Every problem of a predictions directory for the test part of ``split``, one string per problem,
    each starting with the file it concerns; an empty list means the directory can be scored."""
    return _inspect(Path(directory), dataset, split)[0]


def require_valid(directory: str | os.PathLike, dataset: Dataset, split: int) -> dict:
    """The parsed model.json ({} when there is none) of a directory that validates; else a UserError
    listing every problem."""
    problems, model_json = _inspect(Path(directory), dataset, split)
    if problems:
        listing = "\n  ".join(problems)
        raise UserError(f"{directory}: {len(problems)} problem{'s' if len(problems) != 1 else ''}, nothing was scored:\n  {listing}")
    return model_json


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
