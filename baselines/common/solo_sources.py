"""Isolated dry sources of a dataset's train part: separation pairs (Sep-Stereo) and pseudo scenes
(PseudoBinaural) are made from them.

The built-in benchmark re-synthesizes every source of its scenes on demand (``Dataset.dry_sources``);
a recorded dataset holds mixtures only, so the models that need solo sources refuse it with one
sentence. Crops are drawn from a generator seeded by (seed, step, stream), so resuming is exact.
"""

from __future__ import annotations

import numpy as np

from tas_eval.data.builtin.benchmark import crop_sounding
from tas_eval.data.prompts import noun
from tas_eval.errors import UserError

SEPARATION_STREAM = 1
PSEUDO_STREAM = 2
SOLO_FRAME_DISTANCE_M = 2.0  # a solo source is pictured straight ahead at this distance


class SoloSources:
    """The dry sources of the train part of ``split``, at the dataset's sample rate."""

    def __init__(self, dataset, split: int, crop_s: float, seed: int, model_name: str):
        pool = dataset.dry_sources(split, "train", dataset.sample_rate)
        if pool is None:
            raise UserError(f"{dataset.id}: holds mixtures only, no isolated sources, and '{model_name}' trains on "
                            "isolated sources; use the built-in benchmark or a dataset that provides them.")
        self.pool = [e for e in pool if np.any(e["sounding"])]
        if len({e["category"] for e in self.pool}) < 2:
            raise UserError(f"{dataset.id}: split {split} has fewer than two categories of sounding sources in its "
                            f"train part; '{model_name}' needs pairs of different sources.")
        self.sr = dataset.sample_rate
        self.crop_s = crop_s
        self.seed = seed
        self._frames: dict = {}

    def rng(self, step: int, stream: int) -> np.random.Generator:
        """The generator of training step ``step`` for one use (``SEPARATION_STREAM``, ``PSEUDO_STREAM``)."""
        return np.random.default_rng([self.seed, step, stream])

    def draw(self, rng: np.random.Generator, count: int) -> tuple[list[str], np.ndarray]:
        """``count`` sources of distinct categories (categories, (count, W) crops, each scaled to RMS 1)."""
        cats = sorted({e["category"] for e in self.pool})
        chosen = rng.choice(len(cats), size=min(count, len(cats)), replace=False)
        names, crops = [], []
        for c in chosen:
            entries = [e for e in self.pool if e["category"] == cats[int(c)]]
            crop = crop_sounding(entries[int(rng.integers(len(entries)))], rng, self.crop_s, self.sr)
            level = float(np.sqrt(np.mean(crop ** 2)))
            crops.append(crop / level if level > 0 else crop)
            names.append(cats[int(c)])
        return names, np.stack(crops)

    def separation_batch(self, step: int, batch_size: int) -> dict:
        """Sep-Stereo's separation examples: two solo sources as "left = first, right = second".

        ``mono`` (B, 1, W) = s1 + s2 and ``diff`` (B, 1, W) = s1 - s2, both divided by the RMS of the mix
        (the scale of every training crop and inference window); ``categories`` [(first, second)] and
        ``prompts`` [("the <noun>", "the <noun>")] of each pair.
        """
        rng = self.rng(step, SEPARATION_STREAM)
        mono, diff, cats = [], [], []
        for _ in range(batch_size):
            names, (s1, s2) = self.draw(rng, 2)
            mix = s1 + s2
            scale = max(float(np.sqrt(np.mean(mix ** 2))), 1e-8)
            mono.append(mix / scale)
            diff.append((s1 - s2) / scale)
            cats.append(tuple(names))
        return {"mono": np.stack(mono)[:, None].astype(np.float32), "diff": np.stack(diff)[:, None].astype(np.float32),
                "categories": cats, "prompts": [tuple(f"the {noun(c)}" for c in pair) for pair in cats]}

    def solo_frame(self, category: str, size: tuple[int, int]) -> np.ndarray:
        """uint8 (H, W, 3): the source's object alone, straight ahead, in the default room."""
        from tas_eval.data.builtin.frames import render_frames

        key = (category, tuple(size))
        if key not in self._frames:
            scene = {"sources": [{"category": category, "trajectory": [
                {"t": 0.0, "azimuth": 0.0, "elevation": 0.0, "distance": SOLO_FRAME_DISTANCE_M}]}]}
            self._frames[key] = render_frames(scene, [0.0], size)[0]
        return self._frames[key]
