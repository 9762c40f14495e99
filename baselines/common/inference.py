"""Clip-level inference shared by the trained baselines."""

from __future__ import annotations

from typing import Callable

import torch

from tas_eval.audio import sliding_window_inference


def window_chunk(config: dict, window: int, device: torch.device, cpu_chunk_samples: int | None) -> int | None:
    """Windows per forward call (None: all of a clip's windows in one call); the outputs do not depend on it.

    ``config["window_batch"]`` wins when set. Otherwise a GPU gets every window at once, and a CPU
    gets ``cpu_chunk_samples // window`` windows when the model sets ``cpu_chunk_samples`` (samples):
    the TAS network's activations fall out of cache when all windows go in one call, which made it
    slower than one window at a time (see the model's attribute and benchmarks/models_speed.py).
    """
    if config.get("window_batch"):
        return int(config["window_batch"])
    if device.type == "cpu" and cpu_chunk_samples:
        return max(1, cpu_chunk_samples // window)
    return None


def spatialize_clips(mono: torch.Tensor, sr: int, config: dict, make_predictor: Callable[[int], Callable],
                     cpu_chunk_samples: int | None = None) -> torch.Tensor:
    """(B, 1, T) mono -> (B, 2, T): each clip through the batched sliding window of tas_eval/audio.py.

    The window and hop come from ``config["crop_s"]`` and ``config["hop_s"]`` (seconds);
    ``make_predictor(b)`` returns the window predictor of clip ``b`` (its prompt, frames, noise seed);
    ``cpu_chunk_samples`` bounds the windows per call on a CPU (``window_chunk``).
    """
    window = int(round(float(config["crop_s"]) * sr))
    hop = int(round(float(config["hop_s"]) * sr))
    chunk = window_chunk(config, window, mono.device, cpu_chunk_samples)
    return torch.stack([
        sliding_window_inference(make_predictor(b), mono[b], window, hop, chunk)
        for b in range(mono.shape[0])
    ])
