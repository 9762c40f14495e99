"""SpatialTAS-style data (from the TASU paper, "In-the-wild Audio Spatialization with Flexible
Text-guided Localization"): clip prompts in a JSON-lines file, one binaural clip per prompt.

Each non-blank line of the prompt file is an object::

    {"id": "st000001", "audio": "audio/st000001.wav", "prompt": "the dog is on the right, behind, 5m away",
     "type": "doa_de_single"}

``audio`` (``audio_path`` is accepted too) is relative to the folder of the prompt file, or absolute;
``type`` is the prompt family (SpatialTAS has single-source direction/distance, two-source
direction/distance, relative direction and relative distance) and is kept as written. Other keys are
kept untouched. Ids must be unique.

As a dataset (``--dataset spatialtas``), ``--data-root DIR`` holds the audio and ``splits.json``, and
the prompt file is ``--prompts FILE`` (default ``DIR/prompts.jsonl``); every audio path must stay
inside DIR. ``splits.json`` maps ``"split1"``, ``"split2"``, ... to ``{"train": [ids], "val": [ids],
"test": [ids]}``; a file holding only ``{"train", "val", "test"}`` is split 1. An optional
``--annotations`` file adds TASBench-style dense frames (tas_eval.data.adapters.tasbench). Audio at
another rate than 16 kHz is resampled once and cached (tas_eval.data.files).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from tas_eval.audio import SAMPLE_RATE
from tas_eval.data import files
from tas_eval.data.adapters.tasbench import load_tasbench
from tas_eval.data.protocol import PARTS, DataOptions, Dataset, content_digest
from tas_eval.errors import UserError

REQUIRED = ("id", "audio", "prompt", "type")
ADAPTER_VERSION = "1"
DATASET_ID = "spatialtas"
SPLITS_FILE = "splits.json"
PROMPTS_FILE = "prompts.jsonl"


def load_spatialtas(path: str | Path, check_audio: bool = True, require_audio: bool = True,
                    root: str | Path | None = None) -> list[dict]:
    """Read a SpatialTAS-style JSON-lines prompt file: a list of {"id", "audio" (Path), "prompt", "type", ...}.

    Audio paths are resolved against the file's folder; with ``check_audio`` a missing audio file is
    refused; with ``require_audio`` False a line may omit it (the id then names the clip); with
    ``root`` an audio path that resolves outside that folder is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: prompt file does not exist.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: is not UTF-8 text.") from exc
    required = REQUIRED if require_audio else tuple(k for k in REQUIRED if k != "audio")
    inside = Path(root).resolve() if root is not None else None
    items, seen = [], set()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: is not valid JSON ({exc.msg}).") from exc
        if not isinstance(raw, dict):
            raise UserError(f"{where}: expected an object with {', '.join(required)}.")
        item = dict(raw)
        if "audio" not in item and "audio_path" in item:
            item["audio"] = item.pop("audio_path")
        for key in required:
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise UserError(f"{where}: '{key}' is missing or not a non-empty string.")
        if item["id"] in seen:
            raise UserError(f"{where}: id '{item['id']}' appears twice.")
        seen.add(item["id"])
        if isinstance(item.get("audio"), str) and item["audio"].strip():
            audio = Path(item["audio"])
            item["audio"] = audio if audio.is_absolute() else path.parent / audio
            if inside is not None and not item["audio"].resolve().is_relative_to(inside):
                raise UserError(f"{where}: audio path {item['audio']} leaves the data root {inside}.")
            if check_audio and not item["audio"].is_file():
                raise UserError(f"{where}: audio file {item['audio']} does not exist.")
        else:
            item.pop("audio", None)
        items.append(item)
    if not items:
        raise UserError(f"{path}: holds no prompts.")
    return items


def read_splits_file(path: Path, known: set[str]) -> dict[tuple[int, str], list[str]]:
    """{(split, part): ids} of a SpatialTAS split file (format in the module docstring); UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: split file is missing; it maps split1.. to {{'train', 'val', 'test'}} id lists.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: is not valid JSON ({exc}).") from exc
    if isinstance(data, dict) and set(data) <= set(PARTS):
        data = {"split1": data}
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected an object mapping split1.. to {{'train', 'val', 'test'}} id lists.")
    out = {}
    for name, parts in data.items():
        if not (isinstance(name, str) and name.startswith("split") and name[5:].isdigit() and int(name[5:]) >= 1):
            raise UserError(f"{path}: '{name}' is not a split name like split1.")
        if not isinstance(parts, dict) or set(parts) - set(PARTS):
            raise UserError(f"{path}: '{name}' must map 'train', 'val' and 'test' to lists of ids.")
        for part, ids in parts.items():
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise UserError(f"{path}: '{name}.{part}' is not a list of ids.")
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise UserError(f"{path}: '{name}.{part}' names '{unknown[0]}', which the prompt file does not hold.")
            out[(int(name[5:]), part)] = list(ids)
    return out


class SpatialTAS(Dataset):
    """SpatialTAS-style data on disk (see the module docstring)."""

    name = "spatialtas"
    description = ("SpatialTAS-style clips: a JSON-lines prompt file with audio paths (--prompts, default "
                   "DIR/prompts.jsonl) and DIR/splits.json under --data-root DIR; optional --annotations")

    def __init__(self, root: str | Path, prompts: str | Path | None = None, annotations: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: SpatialTAS folder does not exist.")
        self.prompts_path = Path(prompts) if prompts else self.root / PROMPTS_FILE
        self.annotations_path = Path(annotations) if annotations else None
        self.splits_path = self.root / SPLITS_FILE
        items = load_spatialtas(self.prompts_path, root=self.root)
        self._items = {i["id"]: i for i in items}
        self._splits = read_splits_file(self.splits_path, set(self._items))
        self._headers = {i: files.binaural_header(item["audio"]) for i, item in self._items.items()}
        self._dense = load_tasbench(self.annotations_path) if self.annotations_path else {}
        files.refuse_unknown_ids(self.annotations_path, self._dense, set(self._items), str(self.prompts_path))

    @classmethod
    def open(cls, options: DataOptions, build_if_missing: bool = False) -> "SpatialTAS":
        if not options.root:
            raise UserError("--dataset spatialtas needs --data-root DIR, the folder holding the audio and splits.json.")
        return cls(options.root, options.prompts, options.annotations)

    @property
    def id(self) -> str:
        return DATASET_ID

    @cached_property
    def _sha256(self) -> dict[str, str]:
        named = {f"audio/{i}": Path(item["audio"]) for i, item in self._items.items()}
        named["<prompts>"] = self.prompts_path
        named["<splits>"] = self.splits_path
        if self.annotations_path:
            named["<annotations>"] = self.annotations_path
        return files.named_hashes(named, desc="spatialtas: hashing files")

    @property
    def content_hash(self) -> str:
        """sha256 over (name, sha256) of the prompt file, the split file, the audio and the annotation file."""
        return content_digest(self._sha256)

    def record(self) -> dict:
        record = {"id": self.id, "version": ADAPTER_VERSION, "manifest_sha256": self.content_hash, "profile": "full",
                  **files.audio_record(self._headers),
                  "prompts": {"file": self.prompts_path.name, "sha256": self._sha256["<prompts>"]}}
        if self.annotations_path:
            record["annotations"] = {"file": self.annotations_path.name, "sha256": self._sha256["<annotations>"]}
        return record

    def split_ids(self, split: int, part: str = "test") -> list[str]:
        if part not in PARTS:
            raise UserError(f"Unknown split part '{part}': use one of {', '.join(PARTS)}.")
        if (split, part) not in self._splits:
            raise UserError(f"{self.splits_path}: has no '{part}' part of split{split}.")
        return list(self._splits[(split, part)])

    def binaural(self, item_id: str) -> np.ndarray:
        item = self._items[item_id]
        return files.read_binaural(Path(item["audio"]), self._sha256[f"audio/{item_id}"], self._headers[item_id])

    def num_samples(self, item_id: str) -> int:
        return self._headers[item_id].frames_at(SAMPLE_RATE)

    def annotation(self, item_id: str) -> dict:
        item = self._items[item_id]
        out = {"item_id": item_id, "frame_rate": 10, "clip_prompts": [{"type": item["type"], "text": item["prompt"]}]}
        if item_id in self._dense:
            out["frames"] = self._dense[item_id]["frames"]
        return out

    def missing_guidance(self, item_id: str, kind: str) -> str | None:
        if kind == "text":
            return None  # every line of the prompt file carries a prompt
        return f"{self.prompts_path}: SpatialTAS clips have no video frames (item '{item_id}')."

    def frames(self, item_id: str):
        raise UserError(self.missing_guidance(item_id, "visual"))
