"""SpatialTAS-style prompt files (from the TASU paper, "In-the-wild Audio Spatialization with Flexible
Text-guided Localization"): one clip prompt per JSON line.

Each non-blank line is an object::

    {"id": "st000001", "audio": "audio/st000001.wav", "prompt": "the dog is on the right, behind, 5m away",
     "type": "doa_de_single"}

``audio`` (``audio_path`` is accepted too) is relative to the folder of the prompt file, or absolute;
``type`` is the prompt family (SpatialTAS has single-source direction/distance, two-source
direction/distance, relative direction and relative distance) and is kept as written. Other keys are
kept untouched. Ids must be unique.
"""

from __future__ import annotations

import json
from pathlib import Path

from tas_eval.errors import UserError

REQUIRED = ("id", "audio", "prompt", "type")


def load_spatialtas(path: str | Path, check_audio: bool = True) -> list[dict]:
    """Read a SpatialTAS-style JSON-lines prompt file: a list of {"id", "audio" (Path), "prompt", "type", ...}.

    Audio paths are resolved against the file's folder; with ``check_audio`` a missing audio file is
    refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: prompt file does not exist.")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: is not UTF-8 text.") from exc
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
            raise UserError(f"{where}: expected an object with {', '.join(REQUIRED)}.")
        item = dict(raw)
        if "audio" not in item and "audio_path" in item:
            item["audio"] = item.pop("audio_path")
        for key in REQUIRED:
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise UserError(f"{where}: '{key}' is missing or not a non-empty string.")
        if item["id"] in seen:
            raise UserError(f"{where}: id '{item['id']}' appears twice.")
        seen.add(item["id"])
        audio = Path(item["audio"])
        item["audio"] = audio if audio.is_absolute() else path.parent / audio
        if check_audio and not item["audio"].is_file():
            raise UserError(f"{where}: audio file {item['audio']} does not exist.")
        items.append(item)
    if not items:
        raise UserError(f"{path}: holds no prompts.")
    return items
