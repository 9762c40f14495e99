"""`tas-eval ls models|datasets|metrics`: what is registered, built or known."""

from __future__ import annotations

import json
import logging

from tas_eval.errors import UserError

log = logging.getLogger(__name__)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def model_rows() -> list[list[str]]:
    """[name, guidance, trains, paper] for every registered model; a model that cannot be imported says why."""
    from tas_eval.models import MODELS, model_info

    rows = []
    for name in MODELS.names():
        try:
            info = model_info(MODELS.get(name))
            rows.append([name, info["guidance"], "yes" if info["trains"] else "no", info["paper"]])
        except UserError as exc:
            rows.append([name, "?", "?", f"(cannot be loaded: {exc})"])
    return rows


def dataset_rows() -> list[list[str]]:
    """[dataset id, status, clips, description] for the known datasets and every built benchmark under the data root.

    Known datasets come from tas_eval.data.build.DATASETS (a list of {"id", "description", "clips"}
    or a dict id -> such a dict), else from the built-in profiles with seed 0.
    """
    from tas_eval.data import build
    from tas_eval.paths import data_root

    rows: dict[str, list[str]] = {}
    known = getattr(build, "DATASETS", None)
    if isinstance(known, dict):  # {id: {"description", "clips"}} or {id: description}
        known = [{"id": k, **(v if isinstance(v, dict) else {"description": str(v)})} for k, v in known.items()]
    if known:
        for info in known:
            rows[info["id"]] = [info["id"], "not built", str(info.get("clips", "")), str(info.get("description", ""))]
    else:
        for prof in build.PROFILES.values():
            ds_id = build.dataset_id(prof.name, 0)
            rows[ds_id] = [ds_id, "not built", str(prof.num_clips),
                           f"built-in benchmark, profile {prof.name}: {prof.num_clips} clips of {prof.duration_s:g} s"]
    root = data_root()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
            try:
                m = json.loads((folder / "manifest.json").read_text())
                ds_id = m.get("dataset_id", folder.name)
                row = rows.get(ds_id, [ds_id, "", str(m.get("num_clips", "")), f"profile {m.get('profile', '?')}, seed {m.get('seed', '?')}"])
                row[1] = f"built at {folder} (manifest {str(m.get('manifest_sha256', ''))[:12]})"
                rows[ds_id] = row
            except (OSError, json.JSONDecodeError) as exc:
                rows[folder.name] = [folder.name, f"unreadable manifest ({exc})", "", ""]
    return list(rows.values())


def metric_rows() -> list[list[str]]:
    """[id, direction, unit, version, definition] for every registered metric."""
    from tas_eval.metrics import list_metrics

    return [[m.id, m.direction, m.unit, str(m.version), m.definition] for m in list_metrics()]


def cli_ls(args) -> int:
    """`tas-eval ls WHAT`."""
    if args.what == "models":
        print(_table([["name", "guidance", "trains", "paper"]] + model_rows()))
    elif args.what == "datasets":
        print(_table([["dataset", "status", "clips", "description"]] + dataset_rows()))
    else:
        print(_table([["metric", "direction", "unit", "version", "definition"]] + metric_rows()))
    return 0
