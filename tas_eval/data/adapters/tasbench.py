"""TASBench-style dense annotations (Li et al., "TAS", ACM MM 2024): the format tas-eval accepts.

TASBench annotates every 0.1 s frame of a FAIR-Play clip with the SOUNDING objects and their
left/center/right position (silent objects are not listed), and a text that names them from left to
right. The original files are not distributed in a documented layout, so tas-eval accepts this one:

* JSON lines (``.jsonl``; any other extension than ``.json`` is read as JSON lines): one item per
  line, blank lines ignored::

      {"id": "000001", "frames": [
          {"t": 0.0, "objects": [{"name": "cello", "position": "left"},
                                 {"name": "piano", "position": "right"}],
           "text": "the cello on the left, the piano on the right"},
          {"t": 0.1, "objects": []},
          ...]}

* JSON (``.json``): either a list of such items, or a mapping from item id to ``{"frames": [...]}``
  (or directly to the list of frames).

Per item: ``id`` (a string; ``item_id`` is accepted too) and ``frames``. Per frame: ``t`` (or ``t0``),
the frame's start in seconds, a non-negative multiple of 0.1, strictly increasing (optional: frame i
defaults to i * 0.1 s);
``objects``, a list of ``{"name": str, "position": "left" | "center" | "right"}`` (``category`` and
``label`` are accepted as the keys of our own annotations); ``text`` (optional: when absent it is
written from the objects, left to right, with the built benchmark's words, e.g. "the cello on the
left, the upright bass on the right", and "silence" for a frame with no sounding object).

Names become the built benchmark's category ids ("Upright Bass" -> "upright_bass", "speaker" ->
"speech", tas_eval.data.prompts.category_id), so texts and labels read as the built benchmark's do.
``load_tasbench`` returns, per item id, the keys our built benchmark's annotations use for their
dense frames (which add azimuth, elevation, distance and level that TASBench does not have)::

    {"item_id": "000001", "frame_rate": 10,
     "frames": [{"t0": 0.0, "sources": [{"category": "cello", "label": "left"}, ...], "text": "..."}]}

with the sources of each frame ordered left, center, right (stable within one position).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tas_eval.data.prompts import category_id, dense_text
from tas_eval.data.scene import FRAME_RATE, LABELS
from tas_eval.errors import UserError


def _normalize_item(item, where: str) -> tuple[str, dict]:
    """Check one item and bring it to our keys; ``where`` names the file and line or entry for errors."""
    if not isinstance(item, dict):
        raise UserError(f"{where}: expected an object with 'id' and 'frames', found {type(item).__name__}.")
    item_id = item.get("id", item.get("item_id"))
    if not isinstance(item_id, str) or not item_id:
        raise UserError(f"{where}: the item has no string 'id'.")
    frames = item.get("frames")
    if not isinstance(frames, list):
        raise UserError(f"{where}: item '{item_id}' has no list 'frames'.")
    out, last_t = [], -math.inf
    for i, frame in enumerate(frames):
        at = f"{where}: item '{item_id}', frame {i}"
        if not isinstance(frame, dict):
            raise UserError(f"{at} is not an object.")
        t = frame.get("t", frame.get("t0", i / FRAME_RATE))
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise UserError(f"{at} has time t={t!r}; expected seconds >= 0.")
        if abs(t * FRAME_RATE - round(t * FRAME_RATE)) > 1e-6:
            raise UserError(f"{at} has time t={t}, which is not on the 0.1 s frame grid.")
        if t <= last_t:
            raise UserError(f"{at} has time t={t}, not after the previous frame's {last_t}.")
        last_t = t
        objects = frame.get("objects", [])
        if not isinstance(objects, list):
            raise UserError(f"{at}: 'objects' is not a list.")
        sources = []
        for obj in objects:
            name = obj.get("name", obj.get("category")) if isinstance(obj, dict) else None
            position = obj.get("position", obj.get("label")) if isinstance(obj, dict) else None
            if not isinstance(name, str) or not name.strip():
                raise UserError(f"{at}: an object has no 'name'.")
            if not isinstance(position, str) or position.strip().lower() not in LABELS:
                raise UserError(f"{at}: object '{name}' has position {position!r}; expected one of {', '.join(LABELS)}.")
            sources.append({"category": category_id(name), "label": position.strip().lower()})
        sources.sort(key=lambda s: LABELS.index(s["label"]))
        text = frame.get("text")
        if text is not None and not isinstance(text, str):
            raise UserError(f"{at}: 'text' is not a string.")
        out.append({"t0": round(float(t) * FRAME_RATE) / FRAME_RATE, "sources": sources,
                    "text": dense_text(sources) if text is None else text})
    return item_id, {"item_id": item_id, "frame_rate": FRAME_RATE, "frames": out}


def load_tasbench(path: str | Path) -> dict[str, dict]:
    """Read a TASBench-style annotation file (format in the module docstring): item id -> annotation."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: annotation file does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: is not UTF-8 text.") from exc
    entries: list[tuple[object, str]] = []  # (raw item, where)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {exc.lineno} is not valid JSON ({exc.msg}).") from exc
        if isinstance(data, list):
            entries = [(item, f"{path}: entry {i}") for i, item in enumerate(data)]
        elif isinstance(data, dict):
            for key, value in data.items():
                item = {"frames": value} if isinstance(value, list) else value
                if isinstance(item, dict):
                    item = {**item, "id": item.get("id", key)}
                entries.append((item, f"{path}: item '{key}'"))
        else:
            raise UserError(f"{path}: expected a list of items or a mapping from item id to frames.")
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((json.loads(line), f"{path}, line {lineno}"))
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}, line {lineno}: is not valid JSON ({exc.msg}).") from exc
    result: dict[str, dict] = {}
    for raw, where in entries:
        item_id, annotation = _normalize_item(raw, where)
        if item_id in result:
            raise UserError(f"{where}: item '{item_id}' appears twice.")
        result[item_id] = annotation
    if not result:
        raise UserError(f"{path}: holds no annotated items.")
    return result
