"""A torch Dataset over any dataset of the protocol (tas_eval.data.protocol), for training loops."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from tas_eval.audio import mono_from_binaural
from tas_eval.data.protocol import Dataset
from tas_eval.data.scene import FRAME_RATE


class TASDataset(TorchDataset):
    """Items of one part of one split.

    Each item is a dict: ``item_id``; ``mono`` (1, T) = L + R; ``binaural`` (2, T); ``sr`` (Hz);
    ``prompt`` (the text guiding the centre of the returned audio, tas_eval.models.text_at);
    ``prompts`` (the dense text of every 0.1 s frame of the returned audio, [] without dense frames);
    ``clip_prompts`` (SpatialTAS-style prompts; held-out phrasings dropped unless ``held_out_prompts``);
    ``annotation`` (the whole annotation dict, {} when the item has none); ``offset_s`` (start of the
    returned audio in the clip) and ``frames`` (a function of times in seconds, relative to the
    returned audio, that renders or reads RGB frames on demand).

    With ``crop_s`` set, every access returns a random crop of that length (training); the crop
    positions are drawn from a generator seeded by ``seed`` and the access count, so a run that
    iterates in the same order sees the same crops.
    """

    def __init__(self, dataset: Dataset, split: int, part: str = "train", crop_s: float | None = None,
                 seed: int = 0, held_out_prompts: bool = False):
        self.dataset = dataset
        self.ids = dataset.split_ids(split, part)
        self.crop_s = crop_s
        self.held_out_prompts = held_out_prompts
        self.sr = dataset.sample_rate
        self._rng = np.random.default_rng(seed)
        self._audio: dict[str, np.ndarray] = {}
        self._annotations: dict[str, dict] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, item_id: str) -> tuple[np.ndarray, dict]:
        # Clips are small (10 s stereo at 16 kHz is 1.3 MB): keep them after the first read.
        if item_id not in self._audio:
            self._audio[item_id] = self.dataset.binaural(item_id)
            self._annotations[item_id] = self.dataset.annotation(item_id) or {}
        return self._audio[item_id], self._annotations[item_id]

    def __getitem__(self, index: int) -> dict:
        from tas_eval.models import text_at

        item_id = self.ids[index]
        binaural, annotation = self._load(item_id)
        total = binaural.shape[1]
        start = 0
        if self.crop_s:
            length = int(round(self.crop_s * self.sr))
            start = int(self._rng.integers(0, max(1, total - length + 1)))
            binaural = binaural[:, start : start + length]
        offset = start / self.sr
        length_s = binaural.shape[1] / self.sr
        first = int(np.floor(offset * FRAME_RATE))
        last = int(np.ceil((offset + length_s) * FRAME_RATE))
        clip_prompts = [p for p in annotation.get("clip_prompts") or [] if self.held_out_prompts or not p.get("held_out")]
        audio = torch.from_numpy(np.ascontiguousarray(binaural))
        return {
            "item_id": item_id,
            "mono": mono_from_binaural(audio),
            "binaural": audio,
            "sr": self.sr,
            "prompt": text_at(annotation, offset + length_s / 2),
            "prompts": [f["text"] for f in (annotation.get("frames") or [])[first:last]],
            "clip_prompts": clip_prompts,
            "annotation": annotation,
            "offset_s": offset,
            "frames": self.frame_renderer(item_id, offset),
        }

    def frame_renderer(self, item_id: str, offset_s: float = 0.0) -> Callable[..., np.ndarray]:
        """A function ``times_s -> uint8 (N, H, W, 3)`` of the item's video frames, times relative to ``offset_s``."""
        opened: list[Callable[..., np.ndarray]] = []  # opened on first use: a dataset may have no frames

        def shifted(times_s, size=(224, 224)) -> np.ndarray:
            if not opened:
                opened.append(self.dataset.frames(item_id))
            return opened[0](np.asarray(times_s, dtype=float) + offset_s, size)

        return shifted


def collate(items: list[dict]) -> dict:
    """Batch items of equal length: audio stacked, everything else kept as lists."""
    out = {key: [item[key] for item in items] for key in items[0]}
    out["mono"] = torch.stack(out["mono"])
    out["binaural"] = torch.stack(out["binaural"])
    return out
