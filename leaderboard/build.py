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
A model's ``samples/<item_id>.counterfactual.wav`` (the clip predicted under its side-swapped prompt)
gets a player and a curve beside its prediction, as in the TAS paper's Fig. 7. The plots are small
multiples, one panel per model with the reference as a thin grey line, so that they stay readable
with many models. The clip prompt and the dense (timed) text of reference.json's "prompts" are shown
beside the players.

Paired intervals. In every table, for each metric with per-item values (items.jsonl; not the
set-level backbone metrics), the best row by the metric's direction is compared with every other
row on the items both scored (matched by item_id, nulls dropped): the mean difference (row - best)
and its 95% percentile bootstrap interval (tas_eval.stats, BOOTSTRAP_RESAMPLES resamples, seed
BOOTSTRAP_SEED). A row whose interval contains 0 is marked as not distinguishable from the best. In
the mean over splits, each mean also gets its own interval (items resampled within each split) and
the paired interval against the best model on the items both have in every split.

Subsets. A results file's optional "subsets" (per-item metrics over the items of each visual case,
source count and motion) are shown per table as one small table per family, for a few headline
metrics (SUBSET_METRICS after the first metric of the display schema's sort_priority).
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
from typing import Any, Callable

import numpy as np
import soundfile as sf

from tas_eval.errors import UserError
from tas_eval.io import is_temporary, remove_leftovers, write_bytes_atomic
from tas_eval.results import (
    ITEMS_FILE,
    REFERENCE_DIR,
    REFERENCE_FILE,
    SAMPLES_DIR,
    ResultsError,
    iter_results,
    load_items,
)
from tas_eval.stats import bootstrap_mean_over_splits, contains_zero

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
# The bootstrap behind every interval on the page (tas_eval.stats): fixed, so the site is a pure function of results/.
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
BOOTSTRAP_LEVEL = 0.95
# With a single item a bootstrap interval has zero width whatever the data: it says nothing.
MIN_ITEMS = 2
# Subset families of results.json's "subsets", in display order, with their subsets' order.
SUBSET_FAMILIES = {
    "visual_case": ("visual case", ("none", "out_of_view", "occluded", "silent_object", "distractor")),
    "sources": ("number of sources", ("1", "2", "3-4")),
    "motion": ("motion", ("static", "moving")),
}
# Shown in the subset tables after the first metric of sort_priority, when the results have them.
SUBSET_METRICS = ("side_acc", "direction_acc")
COUNTERFACTUAL_SUFFIX = ".counterfactual"
MONO_SUFFIX = ".mono"
# Small multiples: panels per row, one panel's size in inches, and the resolution (pixels per inch).
PANEL_COLUMNS = 3
PANEL_SIZE_IN = (3.5, 1.75)
PLOT_DPI = 96


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

    def subset_metrics(self) -> list[str]:
        """The headline metric ids of the subset tables: the first of sort_priority (or of the schema), then SUBSET_METRICS."""
        first = (self.sort_priority or self.order)[:1]
        return list(dict.fromkeys(first + list(SUBSET_METRICS)))

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
            details = m.get("details") or {}
            if "accuracy_prediction" in details:  # a question-answering gap: show the accuracies behind it
                cells[col["key"]]["qa"] = {k: details.get(k) for k in
                                           ("accuracy_ground_truth", "accuracy_prediction", "chance", "questions")}
    return {
        "model": r["model"], "folder": folder, "file": path, "split": r["split"],
        "device": r["device"], "created_utc": r["created_utc"], "harness": r["harness"],
        "checkpoint_sha256": r["checkpoint_sha256"], "trained_with": r.get("extra", {}).get("trained_with"),
        "cells": cells, "subsets": r.get("subsets"),
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
    for run in runs:
        run["values"] = _item_values(root, run, warnings)

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
        values = {m["folder"]: m["values"] for m in members}
        _paired_intervals(rows, columns, lambda row, mid: _split_values(values[row["folder"]], mid))
        gt = [c for c in ground_truths if (c["results"]["dataset"]["id"], c["results"]["split"],
                                           _dataset_key(c["results"])) == (dataset_id, split, dkey)]
        gt_row = _row(gt[0]["folder"], gt[0]["file"], gt[0]["results"], columns) if gt else None
        table = {
            "id": f"T{len(tables) + 1}", "dataset_id": dataset_id, "split": split, "dataset_key": list(dkey),
            "dataset": members[0]["results"]["dataset"], "signature": [list(s) for s in sig],
            "columns": columns, "rows": rows, "sorted_by": sorted_by, "note": None,
            "ground_truth": gt_row,
            "subset_families": _subset_families(schema, columns, rows + ([gt_row] if gt_row else [])),
            "qa_withheld": _qa_withheld(members + gt[:1]),
        }
        first = firsts.setdefault((dataset_id, split), table)
        if first is not table:
            table["note"] = _why_separate(first, table)
        tables.append(table)

    means = _means(schema, runs, warnings)
    samples = _samples(root, tables, warnings)
    return {"tables": tables, "means": means, "samples": samples, "warnings": list(dict.fromkeys(warnings))}


def _qa_withheld(runs: list[dict]) -> list[dict]:
    """The question-answering gaps that runs of one table withhold (the assessor at chance on the references),
    once per metric and assessor, with the references' accuracy, the chance level and the reason."""
    found: dict[tuple, dict] = {}
    for run in runs:
        for mid, w in sorted(((run["results"].get("extra") or {}).get("question_answering_withheld") or {}).items()):
            key = (mid, (w.get("backbone") or {}).get("sha256"))
            found.setdefault(key, {"metric": mid, **{k: w.get(k) for k in (
                "why", "accuracy_ground_truth", "chance", "questions", "p_above_chance")}})
    return list(found.values())


def _item_values(root: Path, run: dict, warnings: list[str]) -> dict[str, dict[str, float]] | None:
    """Per-item values of a run's per-item metrics, {metric id: {item_id: value}}; None (and a warning) if unreadable.

    Only metrics of results.json without a backbone count (set-level metrics have no per-item
    values); null and non-numeric values are dropped, so an item missing a value is not paired.
    """
    folder = root / Path(run["file"]).parent
    rel = (Path(run["file"]).parent / ITEMS_FILE).as_posix()
    try:
        items = load_items(folder, run["results"])
    except ResultsError as exc:
        warnings.append(f"{str(exc).rstrip('.')}; its rows get no bootstrap intervals.")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        warnings.append(f"{rel}: is not JSON lines ({exc}); its rows get no bootstrap intervals.")
        return None
    wanted = {mid for mid, m in run["results"]["metrics"].items() if "backbone" not in m}
    values: dict[str, dict[str, float]] = {}
    seen: set[str] = set()
    for item in items:
        item_id = item.get("item_id") if isinstance(item, dict) else None
        if not isinstance(item_id, str) or item_id in seen:
            what = "an item without a string item_id" if not isinstance(item_id, str) else f"item '{item_id}' twice"
            warnings.append(f"{rel}: holds {what}; its rows get no bootstrap intervals.")
            return None
        seen.add(item_id)
        for key, value in item.items():
            # "item_id" and "tags" ({family: subset(s)}) are not metrics of results.json, so never wanted.
            if key in wanted and _is_number(value):
                values.setdefault(key, {})[item_id] = float(value)
    return values


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a per-item metric value must be to be paired."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _split_values(values: dict | None, mid: str) -> list[dict[str, float]] | None:
    """One split's per-item values of ``mid`` as a one-element list (the shape _paired_intervals takes), or None."""
    per_item = (values or {}).get(mid)
    return [per_item] if per_item else None


def _best_row(rows: list[dict], key: str, direction: str) -> dict:
    """The row with the best value of column ``key`` (ties: model, then folder name)."""
    sign = 1 if direction == "lower" else -1
    return min(rows, key=lambda row: (sign * row["cells"][key]["value"], row["model"], row["folder"]))


PerItem = Callable[[dict, str], "list[dict[str, float]] | None"]


def _paired_intervals(rows: list[dict], columns: list[dict], per_item: PerItem, own_interval: bool = False) -> None:
    """Mark each per-item column's best row and give every other row the bootstrap interval of (row - best).

    ``per_item(row, metric id)`` returns the row's per-item values, one {item_id: value} dict per
    split (the same splits, in the same order, for every row), or None. Adds to the cells, in place:
    "best": true on the best row; on the others "vs_best" {"best" (its folder), "best_model",
    "mean", "low", "high", "n", "indistinguishable"}: the mean difference (row - best, in the
    metric's unit) over the items both rows scored in every split, its 95% interval, the number of
    pairs over all splits and whether the interval contains 0. With ``own_interval`` also
    "interval" {"mean", "low", "high", "n"}: the interval of the row's own mean of split means.
    """
    for col in columns:
        if col["backbone"]:
            continue  # set-level metrics (FD, FAD, KL, IS) have no per-item values to resample
        key, mid = col["key"], col["metric"]
        holders = [row for row in rows if key in row["cells"]]
        if own_interval:
            for row in holders:
                splits = per_item(row, mid)
                if splits and all(len(s) >= MIN_ITEMS for s in splits):
                    arrays = [[s[i] for i in sorted(s)] for s in splits]
                    mean, low, high = bootstrap_mean_over_splits(
                        arrays, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED, level=BOOTSTRAP_LEVEL)
                    row["cells"][key]["interval"] = {"mean": mean, "low": low, "high": high,
                                                     "n": sum(len(a) for a in arrays)}
        if len(holders) < 2:
            continue
        best = _best_row(holders, key, col["direction"])
        best_splits = per_item(best, mid)
        if not best_splits:
            continue
        best["cells"][key]["best"] = True
        for row in holders:
            splits = per_item(row, mid) if row is not best else None
            if not splits or len(splits) != len(best_splits):
                continue
            diffs = []
            for mine, theirs in zip(splits, best_splits):
                common = sorted(set(mine) & set(theirs))
                diffs.append([mine[i] - theirs[i] for i in common])
            if any(len(d) < MIN_ITEMS for d in diffs):
                continue
            mean, low, high = bootstrap_mean_over_splits(
                diffs, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED, level=BOOTSTRAP_LEVEL)
            row["cells"][key]["vs_best"] = {
                "best": best["folder"], "best_model": best["model"], "mean": mean, "low": low, "high": high,
                "n": sum(len(d) for d in diffs), "indistinguishable": contains_zero(low, high),
            }


def _subset_order(family: str, names: set[str]) -> list[str]:
    """A family's subsets in their documented order, then any others sorted."""
    known = SUBSET_FAMILIES.get(family, ("", ()))[1]
    return [s for s in known if s in names] + sorted(names - set(known))


def _subset_families(schema: _Schema, columns: list[dict], rows: list[dict]) -> list[dict]:
    """The subset view of a table: per family, its subsets and the headline metrics some row has there.

    Returns [{"family", "name", "subsets", "metrics": [{"metric", "label", "title", "direction", "arrow"}]}];
    the numbers stay in each row's "subsets" (as results.json gives them).
    """
    holders = [row for row in rows if row.get("subsets")]
    found = sorted({f for row in holders for f in row["subsets"]})
    families = [f for f in SUBSET_FAMILIES if f in found] + [f for f in found if f not in SUBSET_FAMILIES]
    directions = {c["metric"]: c for c in columns if not c["backbone"]}
    out = []
    for family in families:
        groups = [row["subsets"].get(family) or {} for row in holders]
        subsets = _subset_order(family, {name for g in groups for name in g})
        present = {mid for g in groups for entry in g.values() for mid in entry}
        metrics = []
        for mid in schema.subset_metrics():
            col = directions.get(mid)
            if mid in present and col is not None:
                metrics.append({"metric": mid, "label": col["label"], "title": col["title"],
                                "direction": col["direction"], "arrow": col["arrow"]})
        if subsets and metrics:
            out.append({"family": family, "name": SUBSET_FAMILIES.get(family, (family,))[0],
                        "subsets": subsets, "metrics": metrics})
    return out


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
        runs_of = {m["folder"]: m["runs"] for m in models}
        _paired_intervals(rows, columns, lambda row, mid: _splits_values(runs_of[row["folder"]], mid), own_interval=True)
        means.append({
            "id": f"M{len(means) + 1}", "dataset_id": dkey[0], "dataset_key": list(dkey), "splits": list(splits),
            "signature": [list(s) for s in sig], "columns": columns, "rows": rows, "sorted_by": sorted_by,
        })
    return means


def _splits_values(runs: list[dict], mid: str) -> list[dict[str, float]] | None:
    """Per-item values of ``mid`` in each of a model's runs (split order), or None unless every split has them."""
    splits = [(run["values"] or {}).get(mid) for run in runs]
    return splits if all(splits) else None


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
        prompts: Any = {}
        ref_ok = False
        if (ref_dir / REFERENCE_FILE).is_file():
            try:
                info = json.loads((ref_dir / REFERENCE_FILE).read_text(encoding="utf-8"))
                d = info["dataset"]
                ref_key = (d["id"], str(d["version"]), d["manifest_sha256"], d["profile"])
                ref_ok = ref_key == key[0]
                if ref_ok:
                    item_ids = [i for i in info["items"] if isinstance(i, str)]
                    prompts = info.get("prompts") or {}
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
                ids |= {p.stem for p in (split_dir / row["folder"] / SAMPLES_DIR).glob("*.wav")
                        if not is_temporary(p.name) and not p.stem.endswith((COUNTERFACTUAL_SUFFIX, MONO_SUFFIX))}
            item_ids = sorted(ids)
        ref_rel = (ref_dir / REFERENCE_FILE).relative_to(root).as_posix()
        if not isinstance(prompts, dict):
            warnings.append(f"{ref_rel}: 'prompts' is not an object; prompts not shown.")
            prompts = {}
        items = []
        for item_id in sorted(item_ids)[:MAX_SAMPLE_ITEMS]:
            tracks = []
            if ref_ok:
                for kind, name in (("reference", f"{item_id}.wav"), ("mono", f"{item_id}{MONO_SUFFIX}.wav")):
                    if (ref_dir / SAMPLES_DIR / name).is_file():
                        tracks.append({"kind": kind, "label": kind, "source": ref_dir / SAMPLES_DIR / name})
            for row in sorted(models, key=lambda r: (r["model"], r["folder"])):
                for kind, name in (("model", f"{item_id}.wav"), ("counterfactual", f"{item_id}{COUNTERFACTUAL_SUFFIX}.wav")):
                    path = split_dir / row["folder"] / SAMPLES_DIR / name
                    if path.is_file():
                        tracks.append({"kind": kind, "label": row["model"], "folder": row["folder"], "source": path})
            if tracks:
                prompt = _prompt(prompts.get(item_id), f"{ref_rel}: the prompts of item '{item_id}'", warnings)
                items.append({"item_id": item_id, "tracks": tracks, "prompt": prompt})
        if items:
            out.append({"dataset_id": table["dataset_id"], "dataset_key": list(key[0]), "split": table["split"], "items": items})
    return out


def _prompt(entry: Any, where: str, warnings: list[str]) -> dict | None:
    """An item's prompts from reference.json, {"clip": str or None, "dense": [[t0 s, t1 s, text], ...]}, or None.

    Anything else is named in the warnings and not shown.
    """
    if entry is None:
        return None
    clip = entry.get("clip") if isinstance(entry, dict) else None
    dense = entry.get("dense", []) if isinstance(entry, dict) else None
    ok = isinstance(entry, dict) and (clip is None or isinstance(clip, str)) and isinstance(dense, list) and all(
        isinstance(d, list) and len(d) == 3 and _is_number(d[0]) and _is_number(d[1]) and isinstance(d[2], str)
        for d in dense)
    if not ok:
        warnings.append(f"{where} are not {{\"clip\": text or null, \"dense\": [[start s, end s, text], ...]}}; not shown.")
        return None
    return {"clip": clip, "dense": [[float(t0), float(t1), text] for t0, t1, text in dense]}


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


# A track to plot: (audio as a (2, samples) array, sample rate in Hz).
Track = tuple[np.ndarray, int]


def _panel_figure(n_panels: int, ylabel: str):
    """A figure with ``n_panels`` small panels, PANEL_COLUMNS per row, sharing both axes; returns (figure, axes).

    Sizes are fixed per panel (PANEL_SIZE_IN at PLOT_DPI), so a panel reads the same with 2 or 15 models.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, min(PANEL_COLUMNS, n_panels))
    rows = max(1, math.ceil(n_panels / cols))
    # Margins in inches (1 in each direction, whole pixels at PLOT_DPI): room for the legend on top,
    # the axis label and tick labels on the left and at the bottom.
    top, bottom, left, right = 0.55, 0.45, 0.8, 0.2
    width = left + right + cols * PANEL_SIZE_IN[0]
    height = top + bottom + rows * PANEL_SIZE_IN[1]
    fig = Figure(figsize=(width, height), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=0.08, hspace=0.35)
    fig.supylabel(ylabel, x=0.15 / width, fontsize=8)
    fig.supxlabel("time (s)", y=0.08 / height, fontsize=8)
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    for i, ax in enumerate(flat[:n_panels]):
        # The last shown panel of each column carries the x tick labels (a hidden panel would hold them).
        ax.tick_params(labelsize=7, labelbottom=i + cols >= n_panels)
    return fig, flat[:n_panels]


def _png(fig) -> bytes:
    """The figure as PNG bytes (the same figure gives the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version or time stamp in the bytes
    return buf.getvalue()


def plot_level_differences(reference: Track | None, models: list[tuple[str, Track | None, Track | None]]) -> bytes:
    """Small multiples of SPL_L - SPL_R (dB per SPL_FRAME_S frame) over time (s), one panel per model (TAS Fig. 7).

    Each panel shows the reference (thin grey), the model's prediction and its prediction under the
    counterfactual (side-swapped) prompt (dashed); ``models`` is [(label, prediction, counterfactual)]
    with None for a missing track. Without models, one panel shows the reference alone.
    """
    panels = models or [("reference", None, None)]
    fig, axes = _panel_figure(len(panels), "SPL L \u2212 R (dB), + = louder left")
    handles = {}
    for ax, (label, prediction, counterfactual) in zip(axes, panels):
        for name, track, style in (("reference", reference, {"color": "0.6", "linewidth": 1.0}),
                                   ("prediction", prediction, {"color": "C0", "linewidth": 1.4}),
                                   ("counterfactual prompt", counterfactual, {"color": "C3", "linewidth": 1.2, "linestyle": "--"})):
            if track is not None:
                t, sd = level_difference(track[0], track[1])
                (handles[name],) = ax.plot(t, sd, **style)
        ax.axhline(0.0, color="0.8", linewidth=0.5, zorder=0)
        ax.set_title(_legend_label(label), fontsize=8, loc="left")
    names = [n for n in ("reference", "prediction", "counterfactual prompt") if n in handles]
    fig.legend([handles[n] for n in names], names, loc="upper center", ncol=3, fontsize=8, frameon=False)
    return _png(fig)


def plot_envelopes(reference: Track | None, models: list[tuple[str, Track | None]]) -> bytes:
    """Small multiples of the Hilbert envelope of each ear over time (s), one panel per model.

    Each panel shows the reference's left and right envelopes (thin grey, solid and dashed) and the
    model's prediction's (left blue, right orange); ``models`` is [(label, prediction or None)].
    Without models, one panel shows the reference alone.
    """
    panels = models or [("reference", None)]
    fig, axes = _panel_figure(len(panels), "Hilbert envelope")
    handles = {}
    for ax, (label, prediction) in zip(axes, panels):
        for who, track, styles in (
                ("reference", reference, ({"color": "0.6", "linewidth": 0.9}, {"color": "0.6", "linewidth": 0.9, "linestyle": "--"})),
                ("prediction", prediction, ({"color": "C0", "linewidth": 1.2}, {"color": "C1", "linewidth": 1.2}))):
            if track is None:
                continue
            t, env = envelope(track[0], track[1])
            for ear, channel, style in (("left", 0, styles[0]), ("right", 1, styles[1])):
                (handles[f"{who}, {ear}"],) = ax.plot(t, env[channel], **style)
        ax.set_title(_legend_label(label), fontsize=8, loc="left")
    names = [n for n in ("reference, left", "reference, right", "prediction, left", "prediction, right") if n in handles]
    fig.legend([handles[n] for n in names], names, loc="upper center", ncol=4, fontsize=8, frameon=False)
    return _png(fig)


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
    """Copy audio, draw plots; returns the samples with page-relative audio paths, player rows and PNG data URIs.

    Each item gets "tracks" (flat, as in leaderboard.json), "players" (one row per reference, mono
    and model: {"kind", "label", "folder", "main", "counterfactual"}) and "plots" ([{"kind", "src"}]).
    """
    audio_dir = out / "audio"
    used = set()
    rendered = []
    for group in samples:
        items = []
        for item in group["items"]:
            tracks, audio_of = [], {}
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
                    audio_of[(track["kind"], track.get("folder"))] = (audio.T, sr)
            if tracks:
                items.append({"item_id": item["item_id"], "prompt": item.get("prompt"), "tracks": tracks,
                              "players": _players(tracks), "plots": _item_plots(tracks, audio_of)})
        if items:
            rendered.append({**{k: v for k, v in group.items() if k != "items"}, "items": items})
    if audio_dir.is_dir():
        # Stale copies from an earlier build would make the site depend on more than results/.
        for path in audio_dir.glob("*.wav"):
            if path.name not in used:
                path.unlink()
    return rendered


def _players(tracks: list[dict]) -> list[dict]:
    """The player rows of an item: reference, mono, then one row per model with its prediction and counterfactual."""
    rows: dict[tuple, dict] = {}
    for track in tracks:
        kind = "model" if track["kind"] in ("model", "counterfactual") else track["kind"]
        row = rows.setdefault((kind, track["folder"]), {"kind": kind, "label": track["label"], "folder": track["folder"],
                                                        "main": None, "counterfactual": None})
        row["counterfactual" if track["kind"] == "counterfactual" else "main"] = track
    return list(rows.values())


def _item_plots(tracks: list[dict], audio_of: dict) -> list[dict]:
    """The item's PNGs as data URIs: level differences with counterfactuals, and envelopes, one panel per model."""
    reference = audio_of.get(("reference", None))
    folders = list(dict.fromkeys(t["folder"] for t in tracks if t["kind"] in ("model", "counterfactual")))
    label = {t["folder"]: t["label"] for t in tracks if t["folder"] is not None}
    levels = [(label[f], audio_of.get(("model", f)), audio_of.get(("counterfactual", f))) for f in folders]
    levels = [panel for panel in levels if panel[1] is not None or panel[2] is not None]
    envelopes = [(label[f], audio_of[("model", f)]) for f in folders if ("model", f) in audio_of]
    plots = []
    if reference is not None or levels:
        plots.append({"kind": "level_difference", "src": _data_uri(plot_level_differences(reference, levels))})
    if reference is not None or envelopes:
        plots.append({"kind": "envelope", "src": _data_uri(plot_envelopes(reference, envelopes))})
    return plots


def _data_uri(png: bytes) -> str:
    """A PNG embedded in the page (no file, no request)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _csv_text(value: Any) -> Any:
    # A spreadsheet runs cells starting with these as formulas: keep submitted names inert.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


CSV_HEADER = ["view", "table", "dataset_id", "dataset_version", "manifest_sha256", "profile", "split", "model",
              "folder", "metric", "metric_version", "backbone", "backbone_sha256", "direction", "unit",
              "value", "std", "stderr", "n", "subset", "value_ci95_low", "value_ci95_high", "is_best",
              "diff_vs_best", "diff_vs_best_ci95_low", "diff_vs_best_ci95_high", "diff_vs_best_n",
              "not_distinguishable_from_best"]


def _number(value: Any) -> str:
    """A number as the CSV writes it (repr: every digit), or "" for none."""
    return "" if value is None else repr(value)


def _interval_fields(cell: dict) -> list:
    """The CSV's interval columns of a cell: own interval (means), best flag, difference to the best row."""
    own = cell.get("interval") or {}
    vs = cell.get("vs_best") or {}
    return [_number(own.get("low")), _number(own.get("high")), "true" if cell.get("best") else "",
            _number(vs.get("mean")), _number(vs.get("low")), _number(vs.get("high")), vs.get("n", ""),
            "" if not vs else str(vs["indistinguishable"]).lower()]


def _write_csv(path: Path, data: dict) -> None:
    """leaderboard.csv: one line per (view, table, row, metric[, subset]), with the intervals of the cell."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
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
                        col["unit"], repr(cell["value"]), _number(cell["std"]), _number(cell["stderr"]), cell["n"], "",
                        *_interval_fields(cell))])
            if view == "split":
                _write_subset_rows(writer, t)
    write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def _write_subset_rows(writer, t: dict) -> None:
    """One CSV line per (row, family, subset, metric) of a table's results "subsets".

    The view is "subset" (or "ground_truth_subset"), the subset column reads "family/subset"; the
    metric's version, direction and unit are those of the table's column of that metric.
    """
    columns = {c["metric"]: c for c in t["columns"] if not c["backbone"]}
    for row in t["rows"] + ([t["ground_truth"]] if t.get("ground_truth") else []):
        view = "ground_truth_subset" if row is t.get("ground_truth") else "subset"
        for family, groups in sorted((row.get("subsets") or {}).items()):
            for subset in _subset_order(family, set(groups)):
                for mid, entry in sorted(groups[subset].items()):
                    col = columns.get(mid, {"version": "", "direction": "", "unit": ""})
                    writer.writerow([_csv_text(v) for v in (
                        view, t["id"], *t["dataset_key"][:3], t["dataset_key"][3], t["split"], row["model"], row["folder"],
                        mid, col["version"], "", "", col["direction"], col["unit"], repr(entry["value"]),
                        _number(entry.get("std")), _number(entry.get("stderr")), entry["n"], f"{family}/{subset}",
                        "", "", "", "", "", "", "", "")])


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
    env.filters["pct"] = lambda v: "" if v is None else f"{v:.1f}"  # accuracies in percent
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
        "samples": [{**g, "items": [{k: v for k, v in it.items() if k not in ("plots", "players")} for it in g["items"]]}
                    for g in samples],
        "bootstrap": {"method": "percentile bootstrap over items (tas_eval.stats)", "level": BOOTSTRAP_LEVEL,
                      "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED, "min_items": MIN_ITEMS},
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
