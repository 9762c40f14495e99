"""Audio I/O and the signal conventions of the FAIR-Play line of work.

Conventions (docs/metrics.md, "Audio conventions"): 16 kHz; mono = L + R; a model predicts D = L - R;
L = (mono + D) / 2, R = (mono - D) / 2. Arrays are channel-first: (channels, samples).
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from tas_eval.errors import UserError
from tas_eval.io import atomic_path

SAMPLE_RATE = 16000


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 (channels, samples) and its sample rate in Hz; UserError if unreadable."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise UserError(f"{path}: cannot be read as audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).") from exc
    return np.ascontiguousarray(data.T), int(sr)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int, subtype: str = "FLOAT") -> None:
    """Write (channels, samples) audio atomically (temporary file in the same folder, then rename).

    ``subtype`` is "FLOAT" (32-bit IEEE float) or "PCM_16". scipy writes the file because libsndfile
    adds a PEAK chunk with a timestamp to float WAVs, and the benchmark's files must be byte-identical
    from build to build.
    """
    from scipy.io import wavfile

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if subtype == "PCM_16":
        data = np.clip(np.round(audio.T * 32767.0), -32768, 32767).astype(np.int16)
    elif subtype == "FLOAT":
        data = np.ascontiguousarray(audio.T)
    else:
        raise ValueError(f"unsupported WAV subtype {subtype!r}")
    with atomic_path(path) as tmp:
        wavfile.write(tmp, sr, data)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis (deterministic; Kaiser window as scipy's default)."""
    if sr_in == sr_out:
        return audio
    g = math.gcd(sr_in, sr_out)
    return resample_poly(audio, sr_out // g, sr_in // g, axis=-1)


def peak_normalize(x: torch.Tensor | np.ndarray, eps: float = 1e-20):
    """Divide each item by its peak over ALL its channels together, ``x / max(eps, max|x|)``.

    Works on (C, T) or batched (B, C, T); the interaural level difference survives (docs/metrics.md).
    """
    if isinstance(x, np.ndarray):
        peak = np.abs(x).reshape(x.shape[0], -1).max(axis=1) if x.ndim == 3 else np.abs(x).max()
        peak = np.maximum(peak, eps)
        return x / (peak[:, None, None] if x.ndim == 3 else peak)
    if x.ndim == 3:
        peak = x.abs().flatten(1).amax(dim=1).clamp_min(eps)
        return x / peak[:, None, None]
    return x / x.abs().max().clamp_min(eps)


def rms(x: torch.Tensor, dim: int | tuple[int, ...] = -1, eps: float = 1e-8) -> torch.Tensor:
    """Root mean square over ``dim`` (keeps dims), floored at ``eps`` so that silence does not divide by 0."""
    return x.pow(2).mean(dim=dim, keepdim=True).sqrt().clamp_min(eps)


def mono_from_binaural(binaural: torch.Tensor | np.ndarray):
    """mono = L + R (the SUM of the ears, as FAIR-Play models use it), channel dim kept: (..., 1, T)."""
    return binaural[..., 0:1, :] + binaural[..., 1:2, :]


def binaural_from_difference(mono: torch.Tensor, diff: torch.Tensor) -> torch.Tensor:
    """L = (mono + D) / 2, R = (mono - D) / 2; inputs (..., 1, T), output (..., 2, T)."""
    return torch.cat([(mono + diff) / 2, (mono - diff) / 2], dim=-2)


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of sliding windows: 0, hop, 2*hop, ... plus one last window aligned to the clip end."""
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, hop))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts


def sliding_window_inference(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mono: torch.Tensor,
    window: int,
    hop: int,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Spatialize a whole clip by sliding a window over it, batched.

    ``predict(windows, starts)`` gets RMS-normalized mono windows (N, 1, window) and their start
    samples (N,), and returns binaural windows (N, 2, window). All windows of the clip go through in
    one call (or chunks of ``max_batch``). Each output window is scaled back by its input RMS;
    overlapping outputs are summed and divided by the per-sample count (plain averaging), as the
    FAIR-Play reference scripts do. ``mono`` is (1, T); the result is (2, T). A clip shorter than the
    window is zero-padded and cropped back.
    """
    num = mono.shape[-1]
    pad = max(0, window - num)
    if pad:
        mono = torch.nn.functional.pad(mono, (0, pad))
    total = mono.shape[-1]
    starts = window_starts(total, window, hop)
    idx = torch.as_tensor(starts, device=mono.device)[:, None] + torch.arange(window, device=mono.device)[None]
    windows = mono[0][idx].unsqueeze(1)  # (N, 1, window)
    scale = rms(windows, dim=(-2, -1))
    normed = windows / scale
    start_t = torch.as_tensor(starts, device=mono.device)
    outs = []
    step = max_batch or len(starts)
    for i in range(0, len(starts), step):
        outs.append(predict(normed[i : i + step], start_t[i : i + step]))
    out = torch.cat(outs) * scale  # (N, 2, window)
    acc = torch.zeros(2, total, dtype=out.dtype, device=out.device)
    count = torch.zeros(total, dtype=out.dtype, device=out.device)
    flat = idx.reshape(-1)
    acc.index_add_(1, flat, out.permute(1, 0, 2).reshape(2, -1))
    count.index_add_(0, flat, torch.ones_like(flat, dtype=out.dtype))
    return (acc / count.clamp_min(1))[:, :num]
