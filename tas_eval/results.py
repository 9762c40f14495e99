"""The results schema: what one evaluated (model, dataset, split) records, how it is written and read back.

Layout (one folder per model, dataset and split)::

    results/<dataset id>/split<N>/<model>/results.json    the summary below (written LAST)
    results/<dataset id>/split<N>/<model>/items.jsonl     one JSON object per test item:
                                                          {"item_id": ..., "<metric id>": value, ...,
                                                           "tags": {family: subset(s)} (optional)}
    results/<dataset id>/split<N>/<model>/samples/<item_id>.wav    optional: a few predicted clips
    results/<dataset id>/split<N>/<model>/samples/<item_id>.counterfactual.wav   the same clip predicted
                                                          under its counterfactual prompt (where it differs)
    results/<dataset id>/split<N>/_reference/samples/<item_id>.wav        reference binaural clips
    results/<dataset id>/split<N>/_reference/samples/<item_id>.mono.wav   their mono input (L + R)
    results/<dataset id>/split<N>/_reference/reference.json               dataset they come from, and the
                                                                          prompts of those items

results.json (SCHEMA_VERSION 1)::

    schema_version     1
    harness            {"name": "tas-eval", "version": str, "git_commit": str (40 hex, or "unknown"),
                        "git_dirty": bool or null (optional: tracked code under tas_eval/ or
                        baselines/ differed from git_commit when the run wrote its results)}
    created_utc        ISO 8601 UTC time, e.g. "2026-11-22T03:20:04Z"
    model              str, the model's name (any characters; the folder name is separate)
    dataset            {"id": str, "version": str|int, "manifest_sha256": 64 hex, "profile": str}
    split              int >= 1
    config             dict, the model's config as used
    checkpoint_sha256  64 hex, or null for a model without weights
    seeds              {name: int}
    device             str, e.g. "cpu", "cuda:0 (NVIDIA H100)"
    libraries          {"python", "torch", "numpy", "scipy", "librosa", "soundfile": version str}
    timings            {name: seconds (number)}
    metrics            {metric id: {"value": finite number, "std": number|null, "stderr": number|null,
                                    "n": int >= 1, "direction": "lower"|"higher",
                                    "version": int|str, "unit": str,
                                    "backbone": {"id": str, "sha256": 64 hex}   (optional)}}
    subsets            (optional) {family: {subset: {metric id: {"value", "std", "stderr", "n"}}}}: the
                       per-item metrics over the items of each subset; families "visual_case" (none,
                       out_of_view, occluded, silent_object, distractor; an item may be in several),
                       "sources" ("1", "2", "3-4") and "motion" (static, moving)
    items              {"file": "items.jsonl", "sha256": 64 hex, "count": int}   (set by write_results)
    extra              dict (free-form, e.g. the prompt parser's fallback count; torch_threads, the torch
                       thread count of the run or the evaluation (--threads); for a trained model, trained_with {"device", "torch_threads",
                       "torch"} of its checkpoint, null when the checkpoint predates that record)

A results.json that exists means its run completed: write_results writes items.jsonl first and
results.json last, each to a temporary file that is renamed into place, and results.json records
the sha256 of the items.jsonl it belongs to.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import soundfile as sf

from tas_eval import __version__
from tas_eval import io as tio
from tas_eval.audio import mono_from_binaural
from tas_eval.errors import UserError

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
ITEMS_FILE = "items.jsonl"
SAMPLES_DIR = "samples"
REFERENCE_DIR = "_reference"
REFERENCE_FILE = "reference.json"
LIBRARIES = ("torch", "numpy", "scipy", "librosa", "soundfile")
DIRECTIONS = ("lower", "higher")
# Peak of the listening copies under samples/: evaluation peak-normalizes each binaural clip over
# both channels, so these copies sound (and plot) as they are scored, without clipping at 16 bit.
SAMPLE_PEAK = 0.9

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class ResultsError(UserError):
    """A results file that is missing, corrupt, foreign or of another schema version."""


# ----------------------------------------------------------------------------------------- building


def git_commit() -> str:
    """The commit of the tas-eval source tree (``git rev-parse HEAD``), or "unknown" outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else "unknown"


def git_dirty() -> bool | None:
    """Whether tracked files of the code that makes the numbers (tas_eval/, baselines/) differ from
    HEAD, so that a results file from a modified tree says so; None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "tas_eval", "baselines"], cwd=root,
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip())


def library_versions() -> dict[str, str]:
    """Versions of python and the numeric libraries, read from package metadata (nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a Z suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_results(
    *,
    model: str,
    dataset: dict,
    split: int,
    config: dict,
    checkpoint_sha256: str | None,
    seeds: dict,
    device: str,
    timings: dict,
    metrics: dict,
    extra: dict | None = None,
    subsets: dict | None = None,
) -> dict:
    """A results dict of the current schema, with harness version, git commit, library versions and time filled in.

    ``dataset`` is {"id", "version", "manifest_sha256", "profile"}; ``timings`` are seconds;
    ``metrics`` maps a metric id to {"value", "std", "stderr", "n", "direction", "version", "unit"}
    (plus "backbone": {"id", "sha256"} for metrics computed on a learned embedding). Raises
    ResultsError if a field has the wrong type, so that a bad run fails before anything is written.
    """
    results = {
        "schema_version": SCHEMA_VERSION,
        "harness": {"name": "tas-eval", "version": __version__, "git_commit": git_commit(),
                    "git_dirty": git_dirty()},
        "created_utc": utc_now(),
        "model": model,
        "dataset": dict(dataset),
        "split": split,
        "config": config,
        "checkpoint_sha256": checkpoint_sha256,
        "seeds": dict(seeds),
        "device": device,
        "libraries": library_versions(),
        "timings": dict(timings),
        "metrics": {k: dict(v) for k, v in metrics.items()},
        "extra": dict(extra or {}),
    }
    if subsets:
        results["subsets"] = subsets
    # JSON has no tuples or numpy scalars: normalise now so that the dict equals what is read back.
    results = _plain(results, where="new_results")
    problems = _problems(results, require_items=False)
    if problems:
        raise ResultsError(f"new_results: {problems[0]}")
    return results


# ----------------------------------------------------------------------------------------- validation


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _problems(r: Any, require_items: bool = True) -> list[str]:
    """Everything wrong with a parsed results dict, each as a phrase; [] when it is valid."""
    if not isinstance(r, dict):
        return [f"is not a tas-eval results file (a JSON {type(r).__name__}, not an object)"]
    if "schema_version" not in r:
        return ["is not a tas-eval results file (no 'schema_version' field)"]
    if r["schema_version"] != SCHEMA_VERSION:
        return [f"has schema_version {r['schema_version']!r}, but this tas-eval reads version {SCHEMA_VERSION}"]
    p: list[str] = []

    def need(field: str, ok: bool, what: str) -> None:
        if not ok:
            p.append(f"field '{field}' must be {what}")

    def obj(field: str, value: Any) -> bool:
        need(field, isinstance(value, dict), "an object")
        return isinstance(value, dict)

    for field in ("harness", "created_utc", "model", "dataset", "split", "config", "checkpoint_sha256",
                  "seeds", "device", "libraries", "timings", "metrics", "extra") + (("items",) if require_items else ()):
        if field not in r:
            p.append(f"field '{field}' is missing")
    if p:
        return p
    if obj("harness", r["harness"]):
        h = r["harness"]
        need("harness.name", h.get("name") == "tas-eval", "'tas-eval'")
        need("harness.version", isinstance(h.get("version"), str), "a string")
        need("harness.git_commit", isinstance(h.get("git_commit"), str), "a string")
        need("harness.git_dirty", h.get("git_dirty") is None or isinstance(h.get("git_dirty"), bool), "true, false or null")
    need("created_utc", isinstance(r["created_utc"], str) and bool(_UTC.match(r["created_utc"])),
         "an ISO 8601 UTC time like 2026-01-31T12:00:00Z")
    need("model", isinstance(r["model"], str) and r["model"].strip() != "", "a non-empty string")
    if obj("dataset", r["dataset"]):
        d = r["dataset"]
        for k in ("id", "profile"):
            need(f"dataset.{k}", isinstance(d.get(k), str) and d.get(k) != "", "a non-empty string")
        need("dataset.version", isinstance(d.get("version"), str) or _is_int(d.get("version")), "a string or an integer")
        need("dataset.manifest_sha256", isinstance(d.get("manifest_sha256"), str) and bool(_HEX64.match(d["manifest_sha256"])),
             "a sha256 (64 lowercase hex digits)")
    need("split", _is_int(r["split"]) and r["split"] >= 1, "an integer >= 1")
    obj("config", r["config"])
    c = r["checkpoint_sha256"]
    need("checkpoint_sha256", c is None or (isinstance(c, str) and bool(_HEX64.match(c))), "null or a sha256 (64 lowercase hex digits)")
    if obj("seeds", r["seeds"]):
        for k, v in r["seeds"].items():
            need(f"seeds.{k}", _is_int(v), "an integer")
    need("device", isinstance(r["device"], str) and r["device"] != "", "a non-empty string")
    if obj("libraries", r["libraries"]):
        for k, v in r["libraries"].items():
            need(f"libraries.{k}", isinstance(v, str), "a string")
    if obj("timings", r["timings"]):
        for k, v in r["timings"].items():
            need(f"timings.{k}", _is_number(v), "a number of seconds")
    if obj("metrics", r["metrics"]):
        need("metrics", len(r["metrics"]) > 0, "a non-empty object")
        for mid, m in r["metrics"].items():
            f = f"metrics.{mid}"
            if not obj(f, m):
                continue
            for k in ("value", "std", "stderr", "n", "direction", "version", "unit"):
                if k not in m:
                    p.append(f"field '{f}.{k}' is missing")
            need(f"{f}.value", _is_number(m.get("value")), "a finite number")
            for k in ("std", "stderr"):
                need(f"{f}.{k}", m.get(k) is None or _is_number(m.get(k)), "null or a finite number")
            need(f"{f}.n", _is_int(m.get("n")) and m.get("n") >= 1, "an integer >= 1")
            need(f"{f}.direction", m.get("direction") in DIRECTIONS, "'lower' or 'higher'")
            need(f"{f}.version", isinstance(m.get("version"), str) or _is_int(m.get("version")), "a string or an integer")
            need(f"{f}.unit", isinstance(m.get("unit"), str), "a string")
            if "backbone" in m:
                b = m["backbone"]
                need(f"{f}.backbone", isinstance(b, dict) and isinstance(b.get("id"), str)
                     and isinstance(b.get("sha256"), str) and bool(_HEX64.match(b.get("sha256", ""))),
                     "an object {id, sha256 (64 lowercase hex digits)}")
    if require_items and obj("items", r["items"]):
        it = r["items"]
        need("items.file", it.get("file") == ITEMS_FILE, f"'{ITEMS_FILE}'")
        need("items.sha256", isinstance(it.get("sha256"), str) and bool(_HEX64.match(it.get("sha256", ""))),
             "a sha256 (64 lowercase hex digits)")
        need("items.count", _is_int(it.get("count")) and it.get("count") >= 0, "an integer >= 0")
    obj("extra", r["extra"])
    if "subsets" in r and obj("subsets", r["subsets"]):
        for family, groups in r["subsets"].items():
            if not obj(f"subsets.{family}", groups):
                continue
            for subset, metrics in groups.items():
                if not obj(f"subsets.{family}.{subset}", metrics):
                    continue
                for mid, m in metrics.items():
                    f = f"subsets.{family}.{subset}.{mid}"
                    if obj(f, m):
                        need(f"{f}.value", _is_number(m.get("value")), "a finite number")
                        need(f"{f}.n", _is_int(m.get("n")) and m.get("n") >= 1, "an integer >= 1")
    return p


def validate_results(results: Any, where: str | os.PathLike = "results") -> None:
    """Raise ResultsError naming ``where`` and the first problem if ``results`` breaks the schema."""
    problems = _problems(results)
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ResultsError(f"{where}: {problems[0]}{more}.")


# ----------------------------------------------------------------------------------------- writing


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as JSON would give it back (numpy scalars to numbers, tuples to lists); NaN kept for validation to name."""
    try:
        return json.loads(json.dumps(obj, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"{where}: cannot be written as JSON ({exc}).") from exc


def _dumps(obj: Any, where: str) -> str:
    try:
        return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"{where}: cannot be written as JSON ({exc}).") from exc


def _json_default(x: Any) -> Any:
    # numpy and torch scalars reach here from metric code; anything else is a caller's bug.
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", None) == 0:
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serializable")


def items_bytes(items: list[dict]) -> bytes:
    """The items.jsonl content: one sorted-key JSON object per line, in the given order."""
    lines = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("item_id"), str):
            raise ResultsError(f"items.jsonl: item {i} must be an object with a string 'item_id'.")
        try:
            lines.append(json.dumps(item, sort_keys=True, allow_nan=False, default=_json_default))
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"items.jsonl: item '{item['item_id']}' cannot be written as JSON ({exc}).") from exc
    return ("\n".join(lines) + "\n").encode() if lines else b""


def write_results(folder: str | os.PathLike, results: dict, items: list[dict]) -> Path:
    """Write ``items.jsonl`` then ``results.json`` into ``folder`` atomically; returns the results.json path.

    An existing results.json is removed first, so that at no moment does a results.json sit beside
    an items.jsonl it does not describe; results.json is written last and records the sha256 and
    count of items.jsonl. Nothing is written if ``results`` or ``items`` are invalid (ResultsError).
    """
    folder = Path(folder)
    data = items_bytes(items)
    results = _plain(results, where=str(folder / RESULTS_FILE))
    results["items"] = {"file": ITEMS_FILE, "sha256": hashlib.sha256(data).hexdigest(), "count": len(items)}
    validate_results(results, folder / RESULTS_FILE)
    text = _dumps(results, where=str(folder / RESULTS_FILE))
    folder.mkdir(parents=True, exist_ok=True)
    tio.remove_leftovers(folder)
    (folder / RESULTS_FILE).unlink(missing_ok=True)
    tio.write_bytes_atomic(folder / ITEMS_FILE, data)
    tio.write_bytes_atomic(folder / RESULTS_FILE, (text + "\n").encode())
    return folder / RESULTS_FILE


# ----------------------------------------------------------------------------------------- reading


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a results.json (or the folder holding one); ResultsError naming the file if it is not valid."""
    path = Path(path)
    if path.is_dir() and path.name != RESULTS_FILE:
        path = path / RESULTS_FILE
    if path.is_dir():
        raise ResultsError(f"{path}: is a folder, not a results file.")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ResultsError(f"{path}: results file not found.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot be read ({exc}).") from exc
    try:
        # NaN/Infinity are not JSON; a file holding them was not written by write_results.
        results = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ResultsError(f"{path}: is not valid JSON ({exc}).") from exc
    validate_results(results, path)
    return results


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_items(folder: str | os.PathLike, results: dict | None = None) -> list[dict]:
    """Read items.jsonl of a results folder, checking it against the sha256 and count recorded in results.json."""
    folder = Path(folder)
    results = results if results is not None else load_results(folder)
    path = folder / ITEMS_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc}).") from exc
    if hashlib.sha256(data).hexdigest() != results["items"]["sha256"]:
        raise ResultsError(f"{path}: does not match the sha256 recorded in {folder / RESULTS_FILE}.")
    items = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
    if len(items) != results["items"]["count"]:
        raise ResultsError(f"{path}: holds {len(items)} items, {folder / RESULTS_FILE} says {results['items']['count']}.")
    return items


def iter_results(results_root: str | os.PathLike) -> Iterator[tuple[Path, dict | ResultsError]]:
    """Every ``<dataset>/split<N>/<model>/results.json`` under ``results_root``, sorted, with its parsed dict or its error.

    A file that does not validate, or that sits in a folder not matching its dataset id or split,
    is yielded with a ResultsError instead of a dict; the caller decides whether to skip it.
    Folders whose names start with "_" or "." (reference samples) are not results.
    """
    root = Path(results_root)
    for path in sorted(root.glob(f"*/*/*/{RESULTS_FILE}")):
        dataset_dir, split_dir, model_dir = path.parent.parent.parent, path.parent.parent, path.parent
        if any(p.name.startswith(("_", ".")) for p in (dataset_dir, split_dir, model_dir)):
            continue
        try:
            results = load_results(path)
            if split_dir.name != f"split{results['split']}":
                raise ResultsError(f"{path}: lies in folder '{split_dir.name}' but records split {results['split']}.")
            if dataset_dir.name != results["dataset"]["id"]:
                raise ResultsError(f"{path}: lies in folder '{dataset_dir.name}' but records dataset '{results['dataset']['id']}'.")
        except ResultsError as exc:
            yield path, exc
            continue
        yield path, results


# ----------------------------------------------------------------------------------------- folders


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is safe as one folder or file name (letters, digits, . _ + -), else UserError."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise UserError(f"The {what} {name!r} cannot be used as a folder or file name: use letters, digits and . _ + - only.")
    return name


def results_dir(results_root: str | os.PathLike, dataset_id: str, split: int, model: str) -> Path:
    """``<results_root>/<dataset_id>/split<split>/<model>``, refusing names that could leave results_root."""
    return Path(results_root) / check_name(dataset_id, "dataset id") / f"split{int(split)}" / check_name(model, "model name")


def reference_dir(results_root: str | os.PathLike, dataset_id: str, split: int) -> Path:
    """The folder of one split's reference and mono samples, ``<results_root>/<dataset_id>/split<N>/_reference``."""
    return Path(results_root) / check_name(dataset_id, "dataset id") / f"split{int(split)}" / REFERENCE_DIR


def pick_sample_items(item_ids: list[str], k: int = 3) -> list[str]:
    """The ``k`` items whose audio is kept for listening: the first ``k`` ids in sorted order, the same for every model."""
    return sorted(item_ids)[:k]


def _write_sample(path: Path, audio: np.ndarray, sr: int) -> None:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 1:
        audio = audio[None]
    if not np.all(np.isfinite(audio)):
        raise UserError(f"{path}: the sample holds non-finite values.")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    audio = audio * (SAMPLE_PEAK / peak) if peak > 0 else audio
    with tio.atomic_path(path) as tmp:
        sf.write(tmp, audio.T.astype(np.float32), int(sr), subtype="PCM_16", format="WAV")


def write_samples(folder: str | os.PathLike, items: dict[str, np.ndarray], sr: int, suffix: str = "") -> list[Path]:
    """Write listening copies ``<folder>/samples/<item_id>.wav`` of a few predicted clips ((2, T) arrays at ``sr`` Hz).

    ``folder`` is the model's results folder; ``suffix`` goes between the id and ".wav" (e.g.
    ".counterfactual" for the clip predicted under its counterfactual prompt). Each clip is scaled so that its peak over both
    channels is SAMPLE_PEAK (the scoring normalization, so level differences between ears are kept)
    and stored as 16-bit PCM, which every browser plays.
    """
    out = Path(folder) / SAMPLES_DIR
    out.mkdir(parents=True, exist_ok=True)
    tio.remove_leftovers(out)
    paths = []
    for item_id, audio in items.items():
        audio = np.asarray(audio)
        if audio.ndim != 2 or audio.shape[0] != 2:
            raise UserError(f"{out / (item_id + '.wav')}: a sample must be (2, samples), got {audio.shape}.")
        path = out / f"{check_name(item_id, 'item id')}{suffix}.wav"
        _write_sample(path, audio, sr)
        paths.append(path)
    return paths


def write_reference_samples(
    results_root: str | os.PathLike, dataset: dict, split: int, references: dict[str, np.ndarray], sr: int,
    prompts: dict[str, dict] | None = None,
) -> list[Path]:
    """Write the reference binaural clips and their mono inputs for one split's listening section.

    ``references`` maps item id to the ground-truth (2, T) audio at ``sr`` Hz; ``dataset`` is the
    same dict given to new_results. Writes ``_reference/samples/<id>.wav`` (binaural),
    ``_reference/samples/<id>.mono.wav`` (one channel, L + R: the models' input) and
    ``_reference/reference.json`` naming the dataset, so that the page never pairs them with
    results of another build, and the items' ``prompts`` ({item_id: {"clip": str or None, "dense":
    [[t0, t1, text], ...]}}, seconds) when given, to show beside the players.
    """
    folder = reference_dir(results_root, dataset["id"], split)
    with tio.folder_lock(folder, wait=True):  # shared by every model of the split; the writes are short
        tio.remove_leftovers(folder)
        paths = write_samples(folder, references, sr)
        for item_id, audio in references.items():
            audio = np.asarray(audio)
            path = folder / SAMPLES_DIR / f"{item_id}.mono.wav"
            _write_sample(path, mono_from_binaural(audio), sr)
            paths.append(path)
        info = {"dataset": dict(dataset), "split": int(split), "items": sorted(references)}
        if prompts:
            info["prompts"] = {k: prompts[k] for k in sorted(prompts) if k in references}
        tio.write_bytes_atomic(folder / REFERENCE_FILE, (_dumps(info, where=str(folder / REFERENCE_FILE)) + "\n").encode())
    return paths
