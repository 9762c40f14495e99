"""Clip-level inference shared by the trained baselines."""

from __future__ import annotations

from typing import Callable

import torch

from tas_eval.audio import sliding_window_inference


def spatialize_clips(mono: torch.Tensor, sr: int, config: dict,
                     make_predictor: Callable[[int], Callable]) -> torch.Tensor:
    """(B, 1, T) mono -> (B, 2, T): each clip through the batched sliding window of tas_eval/audio.py.

    The window and hop come from ``config["crop_s"]`` and ``config["hop_s"]`` (seconds);
    ``make_predictor(b)`` returns the window predictor of clip ``b`` (its prompt, frames, noise seed).
    """
    window = int(round(float(config["crop_s"]) * sr))
    hop = int(round(float(config["hop_s"]) * sr))
    return torch.stack([
        sliding_window_inference(make_predictor(b), mono[b], window, hop, config.get("window_batch"))
        for b in range(mono.shape[0])
    ])
