"""`tas-eval leaderboard`: results/ -> a static site (index.html, leaderboard.json, leaderboard.csv, audio/).

The site is a pure function of the results folder (plus display_schema.json and paper_rows.json):
no time stamps, no absolute paths, sorted inputs, so the same results give the same bytes.

Which numbers share a table. Results are grouped by dataset (id, version, manifest sha256, profile)
and split, and then by their metric signature: the set of (metric id, version) of every metric that
has no backbone. Results that differ in any of these are shown in separate tables, with the reason,
and are never sorted together. Metrics computed on a learned embedding (FD, FAD, KL, IS: their
entries carry "backbone": {"id", "sha256"}) get one column per (metric, version, backbone id,
weights sha256), so a value is only ever shown beside values from the same backbone weights.

The ground-truth row. A results file with extra.ground_truth = true (``tas-eval evaluate
--ground-truth``: the test references scored against themselves) is shown under every table of its
build and split, marked and never ranked, sorted or averaged: its distances are 0 by construction;
its direction_acc and IS are what real binaural audio scores, the yardstick for the models' values.

The mean over splits is shown for a model (a results folder name) that has results on at least two
splits of the same dataset and signature; models are ranked together only over the same set of splits.

Listening and plots: for a few items per split, the reference, its mono input and every model's
prediction (results.py's samples/ folders) become audio players (files copied to ``audio/`` next to
the page, named by content hash) and one embedded PNG per item with the interaural level
difference (SPL_L - SPL_R per SPL_FRAME_S frame, SAGM eq. 19) and the Hilbert envelopes of both ears.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from tas_eval.errors import UserError
from tas_eval.io import is_temporary, remove_leftovers, write_bytes_atomic
from tas_eval.results import (
    REFERENCE_DIR,
    REFERENCE_FILE,
    SAMPLES_DIR,
    ResultsError,
    iter_results,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DISPLAY_SCHEMA_PATH = HERE / "display_schema.json"
PAPER_ROWS_PATH = HERE / "paper_rows.json"
TEMPLATES_DIR = HERE / "templates"
LEADERBOARD_FORMAT = 1
MAX_SAMPLE_ITEMS = 3
# Frame of the level-difference curves on the page (display only; the spl metric has its own, versioned).
SPL_FRAME_S = 0.1
# Frames quieter than this RMS (about -100 dBFS) are floored, so silence does not plot as +-inf dB.
SPL_FLOOR_RMS = 1e-5
ENVELOPE_BLOCK_S = 0.01
SYNCED_FIELDS = ("version", "direction", "unit", "provenance", "definition")
ARROWS = {"lower": "\u2193", "higher": "\u2191"}


# ----------------------------------------------------------------------------------------- inputs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc}).") from exc


def load_display_schema(path: str | os.PathLike = DISPLAY_SCHEMA_PATH) -> dict:
    """The display schema: {"metrics": [{id, name, title, group, shown, version, direction, unit, provenance, definition}], ...}."""
    schema = _read_json(Path(path))
    if not isinstance(schema, dict) or not isinstance(schema.get("metrics"), list):
        raise UserError(f"{path}: is not a display schema (no 'metrics' list).")
    return schema


def load_paper_rows(path: str | os.PathLike = PAPER_ROWS_PATH) -> dict:
    """The seed papers' FAIR-Play tables as transcribed in paper_rows.json."""
    rows = _read_json(Path(path))
    if not isinstance(rows, dict) or not isinstance(rows.get("tables"), list):
        raise UserError(f"{path}: is not a paper rows file (no 'tables' list).")
    return rows


def _direction(value: Any) -> str:
    """'lower' or 'higher' from a metric's direction, whether a string or an Enum."""
    value = getattr(value, "value", value)
    text = str(value).lower()
    if text in ("lower", "min", "minimize"):
        return "lower"
    if text in ("higher", "max", "maximize"):
        return "higher"
    raise ValueError(f"unknown metric direction {value!r}")


def metric_fields(metric: Any) -> dict:
    """The display-schema fields that come from a tas_eval.metrics Metric (id and SYNCED_FIELDS)."""
    return {
        "id": metric.id,
        "version": metric.version,
        "direction": _direction(metric.direction),
        "unit": metric.unit,
        "provenance": metric.provenance,
        "definition": metric.definition,
    }


def sync_display_schema(schema: dict, metrics: list) -> tuple[dict, list[str]]:
    """Bring the metric entries of ``schema`` in line with ``metrics`` (tas_eval.metrics.list_metrics()).

    Fields that belong to the metric (version, direction, unit, provenance, definition) are copied
    from it; editorial fields (name, title, group, shown) and the order are kept. New metrics are
    appended with their id as name; entries of metrics that no longer exist are removed. Returns the
    new schema and one line per change ([] when it was already in sync).
    """
    changes: list[str] = []
    current = {m.id: metric_fields(m) for m in metrics}
    entries = []
    for entry in schema["metrics"]:
        mid = entry.get("id")
        if mid not in current:
            changes.append(f"removed '{mid}' (not a metric of tas_eval.metrics)")
            continue
        new = dict(entry)
        for field in SYNCED_FIELDS:
            if new.get(field) != current[mid][field]:
                changes.append(f"{mid}.{field}: {entry.get(field)!r} -> {current[mid][field]!r}")
                new[field] = current[mid][field]
        entries.append(new)
    known = {e["id"] for e in entries}
    for mid, fields in current.items():
        if mid not in known:
            changes.append(f"added '{mid}'")
            entries.append({"id": mid, "name": mid, "title": mid, "group": "other", "shown": True,
                            **{f: fields[f] for f in SYNCED_FIELDS}})
    return {**schema, "metrics": entries}, changes


# ----------------------------------------------------------------------------------------- grouping


def _dataset_key(r: dict) -> tuple:
    d = r["dataset"]
    return (d["id"], str(d["version"]), d["manifest_sha256"], d["profile"])


def _signature(r: dict) -> tuple:
    """(metric id, version) of every metric without a backbone: results must agree on it to share a table."""
    return tuple(sorted((mid, str(m["version"])) for mid, m in r["metrics"].items() if "backbone" not in m))


def _column_key(mid: str, m: dict) -> str:
    key = f"{mid}@v{m['version']}"
    if "backbone" in m:
        key += f"@{m['backbone']['id']}@{m['backbone']['sha256']}"
    return key


def _fmt(value: float | None) -> str:
    """A value as the page shows it: three decimals, or three significant digits in scientific notation."""
    if value is None:
        return ""
    if value == 0 or 0.01 <= abs(value) < 1e5:
        return f"{value:.3f}"
    return f"{value:.3e}"


class _Schema:
    """Display names, groups and definitions by metric id, with fallbacks for metrics it does not know."""

    def __init__(self, schema: dict):
        self.order = [e["id"] for e in schema["metrics"]]
        self.by_id = {e["id"]: e for e in schema["metrics"]}
        self.sort_priority = list(schema.get("sort_priority", []))

    def rank(self, mid: str) -> tuple:
        return (self.order.index(mid), "") if mid in self.by_id else (len(self.order), mid)

    def column(self, mid: str, m: dict) -> dict:
        e = self.by_id.get(mid, {})
        direction = m["direction"]
        label = e.get("name", mid)
        parts = [f"{e.get('title', mid)} ({mid}, version {m['version']})",
                 f"{'Lower' if direction == 'lower' else 'Higher'} is better." + (f" Unit: {m['unit']}." if m["unit"] else "")]
        if e.get("definition"):
            parts.append(e["definition"])
            if str(e.get("version")) != str(m["version"]):
                parts.append(f"(This definition is of version {e.get('version')}; these values are of version {m['version']}.)")
        else:
            parts.append("(Not described in display_schema.json.)")
        if e.get("provenance"):
            parts.append(f"Provenance: {e['provenance']}")
        backbone = m.get("backbone")
        if backbone:
            label = f"{label} [{backbone['id']} {backbone['sha256'][:8]}]"
            parts.append(f"Computed on backbone {backbone['id']} with weights sha256 {backbone['sha256']}; "
                         "shown only beside values from the same weights.")
        return {
            "key": _column_key(mid, m), "metric": mid, "version": m["version"], "backbone": backbone,
            "direction": direction, "unit": m["unit"], "label": label, "arrow": ARROWS[direction],
            "title": "\n".join(parts), "shown": bool(e.get("shown", True)), "group": e.get("group", "other"),
        }


def _row(folder: str, path: str, r: dict, columns: list[dict]) -> dict:
    cells = {}
    for col in columns:
        m = r["metrics"].get(col["metric"])
        if m is not None and _column_key(col["metric"], m) == col["key"]:
            cells[col["key"]] = {k: m[k] for k in ("value", "std", "stderr", "n", "n_missing") if k in m}
    return {
        "model": r["model"], "folder": folder, "file": path, "split": r["split"],
        "device": r["device"], "created_utc": r["created_utc"], "harness": r["harness"],
        "checkpoint_sha256": r["checkpoint_sha256"], "trained_with": r.get("extra", {}).get("trained_with"),
        "cells": cells,
    }


def _columns(schema: _Schema, runs: list[dict], warnings: list[str]) -> list[dict]:
    found: dict[str, dict] = {}
    for run in runs:
        for mid, m in run["results"]["metrics"].items():
            key = _column_key(mid, m)
            if key not in found:
                found[key] = schema.column(mid, m)
            elif found[key]["direction"] != m["direction"] or found[key]["unit"] != m["unit"]:
                warnings.append(f"{run['file']}: metric '{mid}' version {m['version']} has direction/unit "
                                f"{m['direction']}/{m['unit']!r}, other results of the same version say "
                                f"{found[key]['direction']}/{found[key]['unit']!r}; the first is shown.")
    return sorted(found.values(), key=lambda c: (schema.rank(c["metric"]), str(c["version"]), c["key"]))


def _sort_rows(rows: list[dict], columns: list[dict], schema: _Schema) -> str | None:
    """Sort rows best-first by the first metric of sort_priority that every row has; returns that column key."""
    for mid in schema.sort_priority + [c["metric"] for c in columns]:
        for col in columns:
            if col["metric"] == mid and all(col["key"] in row["cells"] for row in rows):
                sign = 1 if col["direction"] == "lower" else -1
                rows.sort(key=lambda row: (sign * row["cells"][col["key"]]["value"], row["model"], row["folder"]))
                return col["key"]
    rows.sort(key=lambda row: (row["model"], row["folder"]))
    return None


def _why_separate(first: dict, other: dict) -> str:
    """One sentence on why ``other`` is not ranked with ``first`` (same dataset id and split)."""
    reasons = []
    for i, name in ((1, "dataset version"), (2, "dataset manifest sha256"), (3, "dataset profile")):
        if first["dataset_key"][i] != other["dataset_key"][i]:
            reasons.append(f"{name} {other['dataset_key'][i]} here, {first['dataset_key'][i]} there")
    a, b = dict(first["signature"]), dict(other["signature"])
    for mid in sorted(set(a) | set(b)):
        if mid not in b:
            reasons.append(f"no '{mid}' here")
        elif mid not in a:
            reasons.append(f"'{mid}' only here")
        elif a[mid] != b[mid]:
            reasons.append(f"'{mid}' version {b[mid]} here, {a[mid]} there")
    return f"Not ranked with table {first['id']}: " + "; ".join(reasons) + "."


def collect(results_root: str | os.PathLike, display_schema: dict | None = None) -> dict:
    """Read every results file under ``results_root`` and arrange the leaderboard data (JSON-ready, no rendering).

    Returns {"tables", "means", "samples", "warnings"}; a file that does not validate is named in
    "warnings" (and the log) and skipped.
    """
    root = Path(results_root)
    schema = _Schema(display_schema or load_display_schema())
    warnings: list[str] = []
    runs: list[dict] = []
    for path, res in iter_results(root):
        rel = path.relative_to(root).as_posix()
        if isinstance(res, ResultsError):
            warnings.append(f"skipped: {res}")  # build_site cuts the machine's paths from every warning
            log.warning("skipped %s", res)
            continue
        runs.append({"file": rel, "folder": path.parent.name, "results": res})
    # The references scored against themselves (tas-eval evaluate --ground-truth) are shown under each
    # table of their build and split as the ground-truth row, never ranked or averaged with models.
    ground_truths = [run for run in runs if _is_ground_truth(run["results"])]
    runs = [run for run in runs if not _is_ground_truth(run["results"])]

    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        r = run["results"]
        groups.setdefault((r["dataset"]["id"], r["split"], _dataset_key(r), _signature(r)), []).append(run)
    # Per dataset id and split: the biggest group first; the others say why they stand apart.
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], -len(kv[1]), kv[0][2], kv[0][3]))
    tables, firsts = [], {}
    for (dataset_id, split, dkey, sig), members in ordered:
        columns = _columns(schema, members, warnings)
        rows = [_row(m["folder"], m["file"], m["results"], columns) for m in members]
        sorted_by = _sort_rows(rows, columns, schema)
        gt = [c for c in ground_truths if (c["results"]["dataset"]["id"], c["results"]["split"],
                                           _dataset_key(c["results"])) == (dataset_id, split, dkey)]
        table = {
            "id": f"T{len(tables) + 1}", "dataset_id": dataset_id, "split": split, "dataset_key": list(dkey),
            "dataset": members[0]["results"]["dataset"], "signature": [list(s) for s in sig],
            "columns": columns, "rows": rows, "sorted_by": sorted_by, "note": None,
            "ground_truth": _row(gt[0]["folder"], gt[0]["file"], gt[0]["results"], columns) if gt else None,
        }
        first = firsts.setdefault((dataset_id, split), table)
        if first is not table:
            table["note"] = _why_separate(first, table)
        tables.append(table)

    means = _means(schema, runs, warnings)
    samples = _samples(root, tables, warnings)
    return {"tables": tables, "means": means, "samples": samples, "warnings": list(dict.fromkeys(warnings))}


def _is_ground_truth(results: dict) -> bool:
    """Whether a results file holds the references scored against themselves (the ground-truth row)."""
    return (results.get("extra") or {}).get("ground_truth") is True


def _means(schema: _Schema, runs: list[dict], warnings: list[str]) -> list[dict]:
    """Mean over splits for every results folder name with >= 2 splits of one dataset and signature."""
    by_model: dict[tuple, list[dict]] = {}
    for run in runs:
        r = run["results"]
        by_model.setdefault((_dataset_key(r), _signature(r), run["folder"]), []).append(run)
    groups: dict[tuple, list[dict]] = {}
    for (dkey, sig, folder), model_runs in by_model.items():
        if len(model_runs) < 2:
            continue
        model_runs.sort(key=lambda run: run["results"]["split"])
        splits = tuple(run["results"]["split"] for run in model_runs)
        groups.setdefault((dkey, sig, splits), []).append({"folder": folder, "runs": model_runs})
    means = []
    for (dkey, sig, splits), models in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[0][2]), kv[0][2], kv[0][1])):
        # A column is averaged only where every split of a model has it (same version and backbone).
        all_runs = [run for m in models for run in m["runs"]]
        columns = _columns(schema, all_runs, warnings)
        rows = []
        for m in models:
            cells = {}
            for col in columns:
                vals = []
                for run in m["runs"]:
                    entry = run["results"]["metrics"].get(col["metric"])
                    if entry is not None and _column_key(col["metric"], entry) == col["key"]:
                        vals.append(entry["value"])
                if len(vals) == len(m["runs"]):
                    arr = np.asarray(vals, dtype=np.float64)
                    std = float(arr.std(ddof=1))
                    cells[col["key"]] = {"value": float(arr.mean()), "std": std,
                                         "stderr": std / math.sqrt(len(arr)), "n": len(arr)}
            names = sorted({run["results"]["model"] for run in m["runs"]})
            rows.append({"model": " / ".join(names), "folder": m["folder"], "cells": cells,
                         "files": [run["file"] for run in m["runs"]]})
        columns = [c for c in columns if any(c["key"] in row["cells"] for row in rows)]
        sorted_by = _sort_rows(rows, columns, schema)
        means.append({
            "id": f"M{len(means) + 1}", "dataset_id": dkey[0], "dataset_key": list(dkey), "splits": list(splits),
            "signature": [list(s) for s in sig], "columns": columns, "rows": rows, "sorted_by": sorted_by,
        })
    return means


def _samples(root: Path, tables: list[dict], warnings: list[str]) -> list[dict]:
    """Listening items per (dataset, split): reference, mono and each model's prediction, as source paths."""
    out = []
    seen = set()
    builds = {(t["dataset_id"], t["split"], tuple(t["dataset_key"])) for t in tables}
    for table in tables:
        key = (tuple(table["dataset_key"]), table["split"])
        if key in seen:
            continue
        seen.add(key)
        split_dir = root / table["dataset_id"] / f"split{table['split']}"
        models = [row for t in tables if (tuple(t["dataset_key"]), t["split"]) == key for row in t["rows"]]
        ref_dir = split_dir / REFERENCE_DIR
        item_ids: list[str] = []
        ref_ok = False
        if (ref_dir / REFERENCE_FILE).is_file():
            try:
                info = json.loads((ref_dir / REFERENCE_FILE).read_text(encoding="utf-8"))
                d = info["dataset"]
                ref_key = (d["id"], str(d["version"]), d["manifest_sha256"], d["profile"])
                ref_ok = ref_key == key[0]
                if ref_ok:
                    item_ids = [i for i in info["items"] if isinstance(i, str)]
                elif (table["dataset_id"], table["split"], ref_key) not in builds:
                    # Only worth a warning when no table of this split can use them.
                    warnings.append(f"{(ref_dir / REFERENCE_FILE).relative_to(root).as_posix()}: reference samples "
                                    f"come from another build of {d['id']} (manifest {d['manifest_sha256'][:12]}); "
                                    "not shown beside these results.")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                warnings.append(f"{(ref_dir / REFERENCE_FILE).relative_to(root).as_posix()}: unreadable ({exc}); reference samples skipped.")
        if not ref_ok:
            # Without a reference, listen to whatever predictions there are (sorted, the same ids for all).
            ids = set()
            for row in models:
                ids |= {p.stem for p in (split_dir / row["folder"] / SAMPLES_DIR).glob("*.wav") if not is_temporary(p.name)}
            item_ids = sorted(ids)
        items = []
        for item_id in sorted(item_ids)[:MAX_SAMPLE_ITEMS]:
            tracks = []
            if ref_ok:
                for kind, name in (("reference", f"{item_id}.wav"), ("mono", f"{item_id}.mono.wav")):
                    if (ref_dir / SAMPLES_DIR / name).is_file():
                        tracks.append({"kind": kind, "label": kind, "source": ref_dir / SAMPLES_DIR / name})
            for row in sorted(models, key=lambda r: (r["model"], r["folder"])):
                path = split_dir / row["folder"] / SAMPLES_DIR / f"{item_id}.wav"
                if path.is_file():
                    tracks.append({"kind": "model", "label": row["model"], "folder": row["folder"], "source": path})
            if tracks:
                items.append({"item_id": item_id, "tracks": tracks})
        if items:
            out.append({"dataset_id": table["dataset_id"], "dataset_key": list(key[0]), "split": table["split"], "items": items})
    return out


# ----------------------------------------------------------------------------------------- plots


def level_difference(audio: np.ndarray, sr: int, frame_s: float = SPL_FRAME_S) -> tuple[np.ndarray, np.ndarray]:
    """SPL_L - SPL_R in dB per non-overlapping frame of ``frame_s`` seconds (SAGM eq. 19; p_ref cancels).

    Returns (frame centre times in seconds, level difference in dB); frame RMS is floored at
    SPL_FLOOR_RMS so that silence stays finite. Positive = louder in the left ear.
    """
    n = max(1, int(round(frame_s * sr)))
    frames = audio.shape[-1] // n
    x = np.asarray(audio[:2, : frames * n], dtype=np.float64).reshape(2, frames, n)
    level = np.sqrt(np.maximum(np.mean(x**2, axis=-1), SPL_FLOOR_RMS**2))
    times = (np.arange(frames) + 0.5) * n / sr
    return times, 20 * np.log10(level[0]) - 20 * np.log10(level[1])


def envelope(audio: np.ndarray, sr: int, block_s: float = ENVELOPE_BLOCK_S) -> tuple[np.ndarray, np.ndarray]:
    """Hilbert envelope |analytic signal| of each channel, averaged over ``block_s`` blocks: (times s, (C, blocks))."""
    from scipy.signal import hilbert

    env = np.abs(hilbert(np.asarray(audio, dtype=np.float64), axis=-1))
    n = max(1, int(round(block_s * sr)))
    blocks = env.shape[-1] // n
    env = env[:, : blocks * n].reshape(env.shape[0], blocks, n).mean(axis=-1)
    return (np.arange(blocks) + 0.5) * n / sr, env


def _legend_label(text: str) -> str:
    # Matplotlib parses $...$ as mathtext (a bad one raises) and hides labels starting with "_".
    text = text if len(text) <= 40 else text[:39] + "\u2026"
    text = text.replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def plot_item(tracks: list[tuple[str, np.ndarray, int]]) -> bytes:
    """One PNG: level difference over time and both ears' envelopes for (label, (2, T) audio, sr) tracks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 6.0), dpi=72)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True)
    for i, (label, audio, sr) in enumerate(tracks):
        style = {"color": "black", "linewidth": 2.0} if i == 0 and label == "reference" else {"linewidth": 1.2}
        t, sd = level_difference(audio, sr)
        axes[0].plot(t, sd, label=_legend_label(label), **style)
        te, env = envelope(audio, sr)
        axes[1].plot(te, env[0], **style)
        axes[2].plot(te, env[1], **style)
    axes[0].axhline(0.0, color="grey", linewidth=0.5)
    axes[0].set_ylabel("SPL L - R (dB)")
    axes[1].set_ylabel("envelope, left")
    axes[2].set_ylabel("envelope, right")
    axes[2].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# ----------------------------------------------------------------------------------------- output


def _copy_audio(source: Path, audio_dir: Path) -> str:
    """Copy a WAV next to the page under a content-hash name; returns its page-relative path."""
    data = source.read_bytes()
    name = hashlib.sha256(data).hexdigest()[:16] + ".wav"
    target = audio_dir / name
    if not target.is_file():
        write_bytes_atomic(target, data)
    return f"{audio_dir.name}/{name}"


def _render_samples(samples: list[dict], out: Path, root: Path, warnings: list[str]) -> list[dict]:
    """Copy audio, draw plots; returns the samples with page-relative audio paths and PNG data URIs."""
    audio_dir = out / "audio"
    used = set()
    rendered = []
    for group in samples:
        items = []
        for item in group["items"]:
            tracks, plot_tracks = [], []
            for track in item["tracks"]:
                source = track["source"]
                rel_source = source.relative_to(root).as_posix()
                try:
                    audio, sr = sf.read(str(source), dtype="float32", always_2d=True)
                except (RuntimeError, OSError, sf.LibsndfileError) as exc:
                    warnings.append(f"{rel_source}: not a readable WAV ({str(exc).splitlines()[0] if str(exc) else exc}); skipped.")
                    continue
                src = _copy_audio(source, audio_dir)
                used.add(src.split("/")[-1])
                tracks.append({"kind": track["kind"], "label": track["label"], "folder": track.get("folder"),
                               "src": src, "file": rel_source})
                if audio.shape[1] == 2 and track["kind"] != "mono":
                    plot_tracks.append((track["label"], audio.T, sr))
            plot = None
            if plot_tracks:
                plot = "data:image/png;base64," + base64.b64encode(plot_item(plot_tracks)).decode("ascii")
            if tracks:
                items.append({"item_id": item["item_id"], "tracks": tracks, "plot": plot})
        if items:
            rendered.append({**{k: v for k, v in group.items() if k != "items"}, "items": items})
    if audio_dir.is_dir():
        # Stale copies from an earlier build would make the site depend on more than results/.
        for path in audio_dir.glob("*.wav"):
            if path.name not in used:
                path.unlink()
    return rendered


def _csv_text(value: Any) -> Any:
    # A spreadsheet runs cells starting with these as formulas: keep submitted names inert.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(path: Path, data: dict) -> None:
    header = ["view", "table", "dataset_id", "dataset_version", "manifest_sha256", "profile", "split", "model",
              "folder", "metric", "metric_version", "backbone", "backbone_sha256", "direction", "unit",
              "value", "std", "stderr", "n"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for view, tables in (("split", data["tables"]), ("mean", data["means"])):
        for t in tables:
            split = t["split"] if view == "split" else " ".join(str(s) for s in t["splits"])
            for row in t["rows"] + ([t["ground_truth"]] if t.get("ground_truth") else []):
                row_view = "ground_truth" if row is t.get("ground_truth") else view
                for col in t["columns"]:
                    cell = row["cells"].get(col["key"])
                    if cell is None:
                        continue
                    b = col["backbone"] or {}
                    writer.writerow([_csv_text(v) for v in (
                        row_view, t["id"], *t["dataset_key"][:3], t["dataset_key"][3], split, row["model"], row["folder"],
                        col["metric"], col["version"], b.get("id", ""), b.get("sha256", ""), col["direction"],
                        col["unit"], repr(cell["value"]), "" if cell["std"] is None else repr(cell["std"]),
                        "" if cell["stderr"] is None else repr(cell["stderr"]), cell["n"])])
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def _jinja_env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,  # every string from a results file is escaped, in text and in attributes
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    return env


def _without_machine_paths(text: str, root: Path) -> str:
    """A warning with the results folder's path (as given, and absolute) cut from the paths inside it, so the
    site never shows where results/ lies on the machine that built it."""
    forms = sorted({str(root), str(root.resolve()), str(root.absolute())}, key=len, reverse=True)
    for prefix in forms:
        text = re.sub(r"(?<![\w./-])" + re.escape(prefix + os.sep), "", text)
    for prefix in forms:
        if os.path.isabs(prefix):
            text = re.sub(r"(?<![\w./-])" + re.escape(prefix) + r"(?![\w.-])", ".", text)
    return text


def build_site(results_root: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write the leaderboard site for ``results_root`` into ``out_dir``; returns [index.html, leaderboard.json, leaderboard.csv].

    Never fails on a bad results file: it is named in the page's warnings and in the log, and skipped.
    """
    root = Path(results_root)
    if not root.is_dir():
        raise UserError(f"{root}: results folder not found.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "audio"):
        remove_leftovers(folder)
    schema = load_display_schema()
    paper = load_paper_rows()
    data = collect(root, schema)
    samples = _render_samples(data["samples"], out, root, data["warnings"])
    data["warnings"] = [_without_machine_paths(w, root) for w in data["warnings"]]

    public = {
        "format": LEADERBOARD_FORMAT,
        "tables": data["tables"],
        "means": data["means"],
        "samples": [{**g, "items": [{k: v for k, v in it.items() if k != "plot"} for it in g["items"]]} for g in samples],
        "paper_rows": paper,
        "warnings": data["warnings"],
    }
    html = _jinja_env().get_template("index.html").render(
        tables=data["tables"], means=data["means"], samples=samples, paper=paper,
        warnings=data["warnings"], groups=schema.get("groups", []), schema_metrics=schema["metrics"],
        arrows=ARROWS, data_json=public,
    )
    paths = [out / "index.html", out / "leaderboard.json", out / "leaderboard.csv"]
    write_bytes_atomic(paths[0], html.encode("utf-8"))
    write_bytes_atomic(paths[1], (json.dumps(public, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    _write_csv(paths[2], public)
    return paths
