"""What `tas-eval ls` lists: registered models, datasets (and built benchmarks), metrics; one opened dataset."""

from __future__ import annotations

import json

from tas_eval.errors import UserError


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
    """[name, kind, description] of every registered dataset, then of every built benchmark under the
    data root and of the built-in profiles not built yet."""
    from tas_eval.data.builtin.build import PROFILES, dataset_id
    from tas_eval.data.registry import dataset_classes
    from tas_eval.paths import data_root

    rows = [[name, "dataset", getattr(cls, "description", "")] for name, cls in dataset_classes().items()]
    built = {}
    root = data_root()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if (p / "manifest.json").is_file()):
            try:
                m = json.loads((folder / "manifest.json").read_text())
                built[m.get("dataset_id", folder.name)] = (f"built at {folder} (manifest {str(m.get('manifest_sha256', ''))[:12]}, "
                                                           f"profile {m.get('profile', '?')}, seed {m.get('seed', '?')})")
            except (OSError, json.JSONDecodeError) as exc:
                built[folder.name] = f"unreadable manifest ({exc})"
    for prof in PROFILES.values():
        built.setdefault(dataset_id(prof.name, 0), f"not built: {prof.num_clips} clips of {prof.duration_s:g} s "
                                                   f"(tas-eval data build --profile {prof.name})")
    return rows + [[k, "builtin build", v] for k, v in sorted(built.items())]


def dataset_summary(dataset) -> list[list[str]]:
    """[field, value] rows describing an opened dataset: id, content hash, items per split part, guidance."""
    from tas_eval.data.protocol import NUM_SPLITS, PARTS

    rows = [["id", dataset.id], ["content sha256", dataset.content_hash]]
    for key, value in sorted(dataset.record().items()):
        if key not in ("id", "manifest_sha256"):
            rows.append([key, json.dumps(value) if not isinstance(value, str) else value])
    for split in range(1, NUM_SPLITS + 1):
        counts = []
        for part in PARTS:
            try:
                counts.append(f"{part} {len(dataset.split_ids(split, part))}")
            except UserError:
                continue
        if not counts:
            continue
        test = dataset.split_ids(split, "test") if any(c.startswith("test") for c in counts) else []
        text = sum(dataset.missing_guidance(i, "text") is None for i in test)
        frames = sum(dataset.missing_guidance(i, "visual") is None for i in test)
        rows.append([f"split{split}", f"{', '.join(counts)}; test items with text {text}, with frames {frames}"])
    return rows


def metric_rows() -> list[list[str]]:
    """[id, direction, unit, version, provenance, definition] for every registered metric."""
    from tas_eval.metrics import list_metrics

    return [[m.id, m.direction, m.unit, str(m.version), m.provenance, m.definition] for m in list_metrics()]
