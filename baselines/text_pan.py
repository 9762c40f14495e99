"""text_pan: a training-free text-guided baseline that pans the whole mono mixture through KEMAR HRIRs in a room.

What it does, per clip:
1. Text -> sources. With dense (TASBench-style) text, each 0.1 s frame's text is parsed with
   baselines.common.prompt_parser.parse_prompt (see its UNDERSTOOD summary for the phrasings it
   knows); otherwise the clip prompt (SpatialTAS style) is parsed once for the whole clip. Only the
   TEXT is used: the model never sees the annotations' numeric positions or levels.
2. Sources -> one direction per frame: the energy-weighted mean of the parsed sources' unit vectors
   (weights 10^(level_db / 10) when the parser reports a level, else equal; sources on opposite
   sides with equal weight average to the front).
3. Rendering, as a source heard in a room: direct sound = the mono mixture (halved, the scale of one
   ear of L + R) convolved with the measured MIT KEMAR HRIR nearest to the frame's direction
   (tas_eval.data.builtin.hrir, resampled from 44.1 kHz to the clip's rate); reverberant part = the same
   signal with no interaural difference (Mono-Mono: mono / 2 in both ears); both at Mono-Mono's
   energy, mixed with amplitude weights sqrt(f) and sqrt(1 - f), f = 1 / (1 + 10^(-DRR_DB / 10)) the
   direct share of the energy for a direct-to-reverberant ratio of DRR_DB = -6 dB (a source about
   twice the critical distance away). Without the reverberant part the pan is as dry as an anechoic
   chamber, and its level differences are several times those of a recording made in a room.
   DRR_DB was chosen on the TRAIN part of split 1 of the small profile (60 clips; direct shares
   1, 0.3, 0.2, 0.15, 0.1, 0.05 compared on SPL distance and direction accuracy, generator versions
   1.0.0 and 1.1.0 alike: 0.15 to 0.2 gave the lowest SPL distance), never on test
   clips. Distances stated in prompts are not used: in that comparison a distance-dependent
   direct share (critical distance 1.6 m) did worse than a constant one. With dense text, frames are
   joined by raised-cosine crossfades of CROSSFADE_S seconds. The output's energy is set to
   Mono-Mono's and scaled down further if its peak would exceed 1.

Fallbacks: a non-empty text that the parser does not understand puts that frame (or the whole clip)
at the front (azimuth 0, elevation 0) and is counted. An empty frame text or "silence" (the dense
text of a frame in which nothing sounds) means nothing sounds in that frame: the previous frame's
direction is held (the next one's before the first), not counted. The counts are reported per item
through ``last_notes`` and summed into the results by the runner.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.signal import fftconvolve

from tas_eval.audio import resample
from tas_eval.data.prompts import SILENCE
from tas_eval.data.scene import azel_from_vector, direction_vector
from tas_eval.models import Model

log = logging.getLogger(__name__)

CROSSFADE_S = 0.02  # length of the raised-cosine crossfade between frames of different directions
CENTER = (0.0, 0.0)  # (azimuth, elevation) in degrees used when a text is not understood
DRR_DB = -6.0  # assumed direct-to-reverberant energy ratio (see the module docstring)
DIRECT_FRACTION = 1.0 / (1.0 + 10 ** (-DRR_DB / 10))  # direct share of the energy, 0.2008


def _parse(text: str):
    from baselines.common.prompt_parser import parse_prompt

    return parse_prompt(text)


def _weights(sources: list[dict]) -> np.ndarray:
    return np.array([10 ** (float(s["level_db"]) / 10) if s.get("level_db") is not None else 1.0 for s in sources])


def direction_of(sources: list[dict]) -> tuple[float, float] | None:
    """Energy-weighted mean direction (azimuth, elevation) in degrees of parsed sources; None if there are none."""
    if not sources:
        return None
    weights = _weights(sources)
    vecs = np.stack([direction_vector(float(s.get("azimuth", 0.0)), float(s.get("elevation", 0.0) or 0.0)) for s in sources])
    mean = (weights[:, None] * vecs).sum(axis=0) / weights.sum()
    if np.linalg.norm(mean) < 1e-9:
        return CENTER
    az, el, _ = azel_from_vector(mean)
    return float(az), float(el)


def frame_directions(texts: list[str]) -> tuple[list[tuple[float, float]], int]:
    """One (azimuth, elevation) per frame text and the number of non-empty texts that were not understood."""
    dirs: list[tuple[float, float] | None] = []
    fallbacks = 0
    for text in texts:
        if not text or not text.strip() or text.strip().lower() == SILENCE:
            dirs.append(None)  # nothing sounds: filled from the neighbours below
            continue
        d = direction_of(_parse(text))
        if d is None:
            fallbacks += 1
            d = CENTER
        dirs.append(d)
    known = [d for d in dirs if d is not None]
    if not known:
        return [CENTER] * len(dirs), fallbacks
    held = known[0]
    out = []
    for d in dirs:
        held = d if d is not None else held
        out.append(held)
    return out, fallbacks


def crossfade_weights(assign: np.ndarray, num_dirs: int, length: int) -> np.ndarray:
    """(num_dirs, T) weights from a per-sample direction index (T,): one-hot rows smoothed with a
    normalized raised-cosine window of ``length`` samples, so the rows sum to 1 at every sample."""
    onehot = np.zeros((num_dirs, len(assign)))
    onehot[assign, np.arange(len(assign))] = 1.0
    if length < 2 or num_dirs == 1:
        return onehot
    win = np.hanning(length + 2)[1:-1]
    win /= win.sum()
    left, right = (length - 1) // 2, length // 2
    padded = np.pad(onehot, ((0, 0), (left, right)), mode="edge")
    return np.stack([np.convolve(row, win, mode="valid") for row in padded])


class TextPan(Model):
    """Pan the mono mixture to the direction(s) the prompt names, through measured KEMAR HRIRs, in a room."""

    name = "text_pan"
    guidance = frozenset({"text"})
    paper = "training-free baseline of tas-eval: prompt parser + MIT KEMAR HRIR panning (Gardner & Martin 1995 measurements)"
    description = ("parses the prompt into directions and renders the mono mixture through the KEMAR HRIR there, "
                   "mixed with an undirected reverberant part (DRR -6 dB), frame by frame")
    trains = False
    configs = {"paper": {}, "small": {}}

    def __init__(self, sofa_path: str | None = None):
        self.sofa_path = sofa_path
        self._hrirs: dict[tuple[int, int], np.ndarray] = {}
        self.last_notes: list[dict] = []

    def save(self, path) -> None:
        """Nothing to save: the model has no parameters."""

    def load(self, path) -> None:
        """Nothing to load: the model has no parameters."""

    def _hrir(self, az: float, el: float, sr: int) -> np.ndarray:
        from tas_eval.data.builtin.hrir import DEFAULT_SOFA, HRIRSet

        hset = HRIRSet.load(self.sofa_path or DEFAULT_SOFA)
        idx = int(hset.nearest_index(az, el))
        key = (idx, sr)
        if key not in self._hrirs:
            self._hrirs[key] = resample(hset.irs[idx], hset.sr, sr)
        return self._hrirs[key]

    def render(self, mono: np.ndarray, sr: int, prompt: dict | None) -> tuple[np.ndarray, dict]:
        """(T,) mono at ``sr`` Hz and one prompt dict -> (2, T) binaural and notes {frames, fallbacks}."""
        num = len(mono)
        prompt = prompt or {}
        dense = prompt.get("frames")
        if dense:
            texts = [f.get("text", "") for f in dense]
            starts = [int(round(float(f["t0"]) * sr)) for f in dense]
        else:
            texts = [prompt.get("text") or ""]
            starts = [0]
        states, fallbacks = frame_directions(texts)
        if not dense and not texts[0].strip():
            fallbacks = 1  # no prompt at all: the clip is rendered at the front
        unique = sorted(set(states))
        index = {st: i for i, st in enumerate(unique)}
        assign = np.zeros(num, dtype=int)
        for k, st in enumerate(states):
            a = 0 if k == 0 else min(max(starts[k], 0), num)
            b = num if k + 1 == len(states) else min(max(starts[k + 1], 0), num)
            assign[a:b] = index[st]
        weights = crossfade_weights(assign, len(unique), int(round(CROSSFADE_S * sr)))
        half = mono.astype(np.float64) / 2
        dry = np.stack([half, half])  # Mono-Mono: the reverberant part, and the energy reference
        energy = np.sqrt(np.sum(dry**2))
        out = np.zeros((2, num))
        f = DIRECT_FRACTION
        for i, (az, el) in enumerate(unique):
            h = self._hrir(az, el, sr)
            direct = np.stack([fftconvolve(half, h[0])[:num], fftconvolve(half, h[1])[:num]])
            e = np.sqrt(np.sum(direct**2))
            direct = direct * (energy / e) if e > 0 else direct
            out += weights[i] * (np.sqrt(f) * direct + np.sqrt(1.0 - f) * dry)
        # Mono-Mono's energy, so that scale-sensitive metrics compare like with like.
        e = np.sqrt(np.sum(out**2))
        if e > 0:
            out *= energy / e
        peak = np.max(np.abs(out)) if out.size else 0.0
        if peak > 1.0:
            out *= 0.999 / peak
        return out.astype(np.float32), {"frames": len(texts), "fallbacks": fallbacks}

    def spatialize(self, mono: torch.Tensor, sr: int, prompts=None, frames=None) -> torch.Tensor:
        """(B, 1, T) mono -> (B, 2, T) panned binaural; per-item notes in ``self.last_notes``."""
        x = mono.detach().to("cpu", torch.float64).numpy()
        outs, notes = [], []
        for b in range(x.shape[0]):
            audio, note = self.render(x[b, 0], sr, prompts[b] if prompts else None)
            outs.append(audio)
            notes.append(note)
        self.last_notes = notes
        return torch.from_numpy(np.stack(outs)).to(mono.device)
