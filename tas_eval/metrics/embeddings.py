"""How clips become the embeddings the set-level metrics compare: each ear (and optionally L - R)
embedded separately by a backbone, after peak normalization over both ears.

``EMBEDDING_VERSION`` names this procedure (normalization, channels, framing); it is part of the
statistics cache's keys (tas_eval.metrics.stats_cache), so a change of it never reuses old entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from tas_eval.errors import UserError

CHANNEL_MODES = {"lr": ("L", "R"), "lrs": ("L", "R", "L-R")}
DEFAULT_CHANNEL_MODE = "lr"
EMBEDDING_VERSION = "1"


@dataclass
class EmbeddingSet:
    """A set of clips as the backbone sees them, all float64.

    ``clip`` (N, K*D): per clip, its K channels' embeddings concatenated; ``frames`` (M, K*D): per
    0.96 s frame, its K channels' frame embeddings concatenated (all frames of all clips);
    ``logits`` (N, K, C) or None for a backbone without a classifier; ``channels`` the K channel names.
    """

    item_ids: list[str]
    channels: tuple[str, ...]
    clip: np.ndarray
    frames: np.ndarray
    logits: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.item_ids)


def channel_signals(item, channel_mode: str) -> np.ndarray:
    """(2, T) binaural clip -> (K, T) float64 channels of ``channel_mode``, after peak normalization over both ears."""
    a = np.asarray(item, dtype=np.float64)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    a = a / max(peak, 1e-20)
    chans = [a[0], a[1]]
    if channel_mode == "lrs":
        chans.append(a[0] - a[1])
    return np.stack(chans)


def embed_set(backbone, items: Sequence, sr: int, channel_mode: str = DEFAULT_CHANNEL_MODE,
              item_ids: Sequence[str] | None = None, batch_size: int = 8, desc: str = "embedding") -> EmbeddingSet:
    """Embed binaural clips (each (2, T) at ``sr`` Hz) with ``backbone``: see EmbeddingSet.

    Clips of equal length are embedded together in batches of ``batch_size`` clips.
    """
    from tas_eval.audio import resample
    from tas_eval.metrics.backbones import INPUT_SAMPLE_RATE

    if channel_mode not in CHANNEL_MODES:
        raise UserError(f"Unknown channel mode '{channel_mode}': use one of {', '.join(CHANNEL_MODES)}.")
    items = list(items)
    ids = list(item_ids) if item_ids is not None else [str(i) for i in range(len(items))]
    if len(ids) != len(items):
        raise ValueError(f"{len(ids)} item ids for {len(items)} clips")
    for item_id, x in zip(ids, items):
        shape = tuple(np.shape(x))
        if len(shape) != 2 or shape[0] != 2:
            raise UserError(f"Item '{item_id}': generative metrics need (2, samples) binaural audio, got {shape}.")
        if not np.all(np.isfinite(np.asarray(x))):
            raise UserError(f"Item '{item_id}': the audio has non-finite samples (NaN or inf).")
    k = len(CHANNEL_MODES[channel_mode])
    groups: dict[int, list[int]] = {}
    for i, x in enumerate(items):
        groups.setdefault(np.shape(x)[-1], []).append(i)
    batches = [idx[j : j + batch_size] for idx in groups.values() for j in range(0, len(idx), batch_size)]
    clip: list = [None] * len(items)
    frames: list = [None] * len(items)
    logits: list = [None] * len(items)
    for batch in tqdm(batches, desc=desc, unit="batch", disable=len(batches) < 3, leave=False):
        sig = np.concatenate([channel_signals(items[i], channel_mode) for i in batch])  # (b*K, T)
        if sr != INPUT_SAMPLE_RATE:
            sig = resample(sig, sr, INPUT_SAMPLE_RATE)
        audio = torch.from_numpy(np.ascontiguousarray(sig, dtype=np.float32))
        emb, lg = backbone.embed(audio)
        fr = backbone.embed_frames(audio)
        emb, fr = emb.numpy().reshape(len(batch), k, -1), fr.numpy().reshape(len(batch), k, fr.shape[1], -1)
        for j, i in enumerate(batch):
            clip[i] = emb[j].reshape(-1)  # [e(L), e(R)(, e(L-R))]
            frames[i] = fr[j].transpose(1, 0, 2).reshape(fr.shape[2], -1)  # per frame t: [f_t(L), f_t(R)]
            logits[i] = None if lg is None else lg.numpy().reshape(len(batch), k, -1)[j]
    return EmbeddingSet(
        item_ids=ids, channels=CHANNEL_MODES[channel_mode],
        clip=np.stack(clip).astype(np.float64),
        frames=np.concatenate(frames).astype(np.float64),
        logits=None if logits and logits[0] is None else np.stack(logits).astype(np.float64),
    )
