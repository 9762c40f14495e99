"""Spatial metrics: how far the prediction's interaural cues are from the reference's.

Every function takes (B, 2, T) predictions and references (channel 0 = left ear) and returns (B,)
float64 per-item values. Level differences are positive when the LEFT ear is louder and time
differences positive when the sound reaches the LEFT ear first, matching the azimuth convention
(+90 deg = left) of the benchmark.

spl (SAGM, eqs. 18-23; version 1). SPL_c(t) = 20 log10(||A_c(t)||_2 / 2e-5) over non-overlapping
frames of SPL_FRAME_S = 0.1 s (the paper gives no frame length; 0.1 s is the annotation frame of
TASBench, so the curves line up with the labels); a trailing partial frame is dropped; a frame's norm
is floored at NORM_FLOOR = 1e-8 (digital silence). SD(t) = SPL_L(t) - SPL_R(t) (dB);
distance = ||SD_ref - SD_pred||_2 over the frames (dB; it grows with the square root of the number
of frames, so compare clips of equal length). ``spl_profile`` returns the curves, the direction
(+1 left, -1 right, 0 middle) and the magnitude |SD| for plots.

The other spatial metrics work on 0.1 s blocks (BLOCK_S) of the FAIR-Play STFT (n_fft 512, hop 160,
win 400, Hann, zero padding; float64): a block gathers the STFT frames whose centre falls inside it.
A block counts when the reference's mean square over both channels in it is at least
ACTIVE_MEAN_SQUARE = 1e-6 (-60 dB re full scale after peak normalization); an item with no such
block gets NaN.

ild (version 1): per octave band (edges 62.5 * 2^k Hz up to sr/2: seven bands at 16 kHz) and block,
ILD = 10 log10((P_L + eps) / (P_R + eps)), P the band power summed over the block's frames,
eps = 1e-10 per bin and frame; the value is the mean |ILD_pred - ILD_ref| (dB) over bands and
counted blocks.

itd (version 1): GCC-PHAT per block. Per frame the cross-spectrum C = conj(S_L) S_R is divided by
max(|C|, 1e-6 max_f |C|) (PHAT, with a floor so that numerically empty bins do not count), summed
over the block's frames and inverse transformed with 4x zero-padding (lag step 1/(4 sr): 15.6 us at
16 kHz); the ITD is the lag of the largest correlation within +-ITD_MAX_LAG_S = 1 ms (a head's
interaural delay stays below 0.8 ms); a silent block has ITD 0. The value is the mean
|ITD_pred - ITD_ref| over counted blocks, in microseconds. A k-sample interaural delay gives k / sr.

ic (version 1): interaural coherence per block, the maximum over lags within +-1 ms of
|cross-correlation| / sqrt(energy_L energy_R) (the IACC of ISO 3382-1), computed from the same
cross-spectrum without PHAT weighting; 0 for a silent block. The value is the mean |IC_pred - IC_ref|
over counted blocks (dimensionless, 0..1).

direction_acc (version 1): the share of annotated 0.1 s frames in which the side of the
prediction's level difference SD = 20 log10(||L|| / ||R||) over the frame agrees with the annotated
left/center/right label of the frame (``frame_label``): the label of its dominant sounding source,
the one with the highest "level_db" when every source has one, else the nearest when every source
has a "distance". A frame whose sources carry neither (TASBench's annotations give only names and
labels) has a label only when all its sounding sources share one; a frame of sources on different
sides is then skipped, since it names no single side. Side: left when SD > DIRECTION_DEADBAND_DB =
1 dB (about the just-noticeable interaural level difference), right when SD < -1 dB, center in
between. Frames without a sounding source or not fully inside the clip are skipped; an item without
any such frame gets NaN. The references themselves score well below 1: a broadband level difference
is small for low-pitched sources and in reverberant rooms, and often misses the dominant source of a
mixture. It is not a ceiling either: a model that exaggerates level differences towards the labels
scores above the references, and an all-center output scores the share of center labels. Read it
beside the ground-truth row of the leaderboard (``tas-eval evaluate --ground-truth``). side_acc
(tas_eval.metrics.localization), which reads a learned binaural localizer on frames with one dominant
source at the ears, supersedes it; it is kept, unchanged, so that older results stay comparable.
"""

from __future__ import annotations

import numpy as np
import torch

from tas_eval.data.scene import FRAME_RATE
from tas_eval.errors import UserError
from tas_eval.metrics.base import Metric
from tas_eval.metrics.transforms import FAIRPLAY_STFT, cached_power, cached_stft, memo

SPL_FRAME_S = 0.1
SPL_REF = 2e-5
NORM_FLOOR = 1e-8
BLOCK_S = 0.1
ACTIVE_MEAN_SQUARE = 1e-6
OCTAVE_LOW_HZ = 62.5
ILD_EPS_PER_BIN = 1e-10
ITD_MAX_LAG_S = 1e-3
ITD_UPSAMPLE = 4
PHAT_FLOOR = 1e-6
DIRECTION_DEADBAND_DB = 1.0
SPATIAL_DTYPE = torch.float64


# ------------------------------------------------------------------------------------------ SPL (SAGM)


def _frame_norms(x: torch.Tensor, frame: int) -> torch.Tensor:
    """L2 norm of non-overlapping frames of ``frame`` samples, floored: (..., frames)."""
    n = x.shape[-1] // frame
    frames = x[..., : n * frame].double().reshape(*x.shape[:-1], n, frame)
    return frames.pow(2).sum(-1).sqrt().clamp_min(NORM_FLOOR)


def spl_difference(x: torch.Tensor, sr: int, frame_s: float = SPL_FRAME_S) -> torch.Tensor:
    """SD(t) = SPL_L(t) - SPL_R(t) in dB per frame of ``frame_s`` seconds: (B, 2, T) -> (B, frames)."""
    norms = _frame_norms(x, int(round(frame_s * sr)))
    return 20 * torch.log10(norms[:, 0] / norms[:, 1])


def spl_profile(x: np.ndarray | torch.Tensor, sr: int, frame_s: float = SPL_FRAME_S) -> dict[str, np.ndarray]:
    """SAGM's spatial-perception curves of one binaural clip (2, T), for plots.

    Returns {"t": frame start times (s), "spl_left", "spl_right": SPL (dB re 2e-5), "sd": SPL_L - SPL_R
    (dB), "direction": +1 left / -1 right / 0 middle, "magnitude": |sd| (dB)}.
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    frame = int(round(frame_s * sr))
    spl = 20 * torch.log10(_frame_norms(x[None], frame)[0] / SPL_REF)
    sd = spl[0] - spl[1]
    return {
        "t": np.arange(sd.shape[-1]) * frame / sr,
        "spl_left": spl[0].numpy(),
        "spl_right": spl[1].numpy(),
        "sd": sd.numpy(),
        "direction": torch.sign(sd).numpy().astype(np.int64),
        "magnitude": sd.abs().numpy(),
    }


def spl_distance(pred, ref, sr, **ctx):
    """SAGM SPL distance: ||SD_ref - SD_pred||_2 over 0.1 s frames (dB)."""
    return (spl_difference(ref, sr) - spl_difference(pred, sr)).pow(2).sum(-1).sqrt()


# ------------------------------------------------------------------------- block-wise binaural cues


def _block_layout(num_samples: int, sr: int, device) -> tuple[int, int, torch.Tensor]:
    """(block length in samples, number of blocks, block index of every STFT frame; -1 = outside)."""
    block = int(round(BLOCK_S * sr))
    n_blocks = num_samples // block
    frames = torch.arange(1 + num_samples // FAIRPLAY_STFT.hop, device=device)
    index = (frames * FAIRPLAY_STFT.hop) // block
    index[index >= n_blocks] = -1
    return block, n_blocks, index


def _block_sum(x: torch.Tensor, index: torch.Tensor, n_blocks: int, block: int) -> torch.Tensor:
    """Sum over the frame axis (-2) into blocks: (..., frames, F) -> (..., n_blocks, F)."""
    if block % FAIRPLAY_STFT.hop == 0:
        # Every block holds the same consecutive frames (16 kHz: 10 frames of 10 ms per 0.1 s): a reshape.
        per_block = block // FAIRPLAY_STFT.hop
        head = x[..., : n_blocks * per_block, :]
        return head.reshape(*x.shape[:-2], n_blocks, per_block, x.shape[-1]).sum(-2)
    keep = index >= 0
    x = x[..., keep, :]
    out = x.new_zeros(*x.shape[:-2], n_blocks, x.shape[-1])
    return out.index_add_(x.dim() - 2, index[keep], x)


def _active_blocks(ref: torch.Tensor, block: int, n_blocks: int) -> torch.Tensor:
    """(B, n_blocks) bool: blocks where the reference's mean square over both channels reaches the threshold."""
    r = ref[..., : n_blocks * block].double().reshape(ref.shape[0], 2, n_blocks, block)
    return r.square().mean(dim=(1, 3)) >= ACTIVE_MEAN_SQUARE


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (B, n) where ``mask``; NaN for an item without any."""
    count = mask.sum(-1)
    total = torch.where(mask, values, 0.0).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.nan)


def octave_bands(sr: int, n_fft: int = FAIRPLAY_STFT.n_fft) -> torch.Tensor:
    """(bins, bands) 0/1 matrix of octave bands with edges 62.5 * 2^k Hz, the last band ending at sr/2."""
    edges = [OCTAVE_LOW_HZ]
    while edges[-1] * 2 < sr / 2:
        edges.append(edges[-1] * 2)
    edges.append(sr / 2)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sr / n_fft
    bands = torch.zeros(len(freqs), len(edges) - 1, dtype=torch.float64)
    for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = j == len(edges) - 2
        bands[:, j] = ((freqs >= lo) & ((freqs <= hi) if last else (freqs < hi))).double()
    return bands


def _binaural_cues(x: torch.Tensor, sr: int, cache) -> dict[str, torch.Tensor]:
    """Per item and 0.1 s block: "ild" (B, blocks, bands) dB, "itd" (B, blocks) s, "ic" (B, blocks)."""

    def compute():
        spec = cached_stft(x, FAIRPLAY_STFT, SPATIAL_DTYPE, cache)  # (B, 2, frames, F)
        power = cached_power(x, FAIRPLAY_STFT, SPATIAL_DTYPE, cache)
        block, n_blocks, index = _block_layout(x.shape[-1], sr, spec.device)

        bands = octave_bands(sr).to(power.device)
        block_power = _block_sum(power, index, n_blocks, block)  # (B, 2, blocks, F)
        band_power = block_power @ bands  # (B, 2, blocks, bands)
        frames_per_block = torch.bincount(index[index >= 0], minlength=n_blocks).double()
        eps = ILD_EPS_PER_BIN * frames_per_block[:, None] * bands.sum(0)[None, :]
        ild = 10 * torch.log10((band_power[:, 0] + eps) / (band_power[:, 1] + eps))

        # Cross-spectrum conj(S_L) S_R: its inverse transform peaks at a positive lag when the left ear leads.
        cross = spec[:, 0].conj() * spec[:, 1]
        size = ITD_UPSAMPLE * FAIRPLAY_STFT.n_fft
        max_lag = int(round(ITD_MAX_LAG_S * sr * ITD_UPSAMPLE))
        lags = torch.arange(-max_lag, max_lag + 1, device=spec.device)

        mag = (power[:, 0] * power[:, 1]).sqrt_()  # |cross|
        floor = (PHAT_FLOOR * mag.amax(-1, keepdim=True)).clamp_min(torch.finfo(mag.dtype).tiny)
        phat = torch.view_as_real(cross) / torch.maximum(mag, floor)[..., None]
        phat = torch.view_as_complex(_block_sum(phat.flatten(-2), index, n_blocks, block).unflatten(-1, (-1, 2)).contiguous())
        gcc = torch.fft.irfft(phat, n=size, dim=-1)[..., lags % size]
        peak, arg = gcc.max(-1)
        itd = torch.where(peak > 0, lags[arg].double() / (ITD_UPSAMPLE * sr), 0.0)

        # irfft(., n=size) weighs bin 0 once and every other bin twice: the energies use the same weights.
        weights = torch.full((spec.shape[-1],), 2.0 / size, dtype=power.dtype, device=power.device)
        weights[0] = 1.0 / size
        energy = block_power @ weights  # (B, 2, blocks)
        cross_sum = _block_sum(torch.view_as_real(cross).flatten(-2), index, n_blocks, block).unflatten(-1, (-1, 2))
        cc = torch.fft.irfft(torch.view_as_complex(cross_sum.contiguous()), n=size, dim=-1)[..., lags % size]
        norm = (energy[:, 0] * energy[:, 1]).sqrt()
        ic = torch.where(norm > 0, cc.abs().amax(-1) / norm.clamp_min(torch.finfo(norm.dtype).tiny), 0.0)
        return {"ild": ild, "itd": itd, "ic": ic}

    return memo(cache, (x,), ("binaural_cues", sr), compute)


def ild_error(pred, ref, sr, cache=None, **ctx):
    """Mean |ILD_pred - ILD_ref| (dB) over octave bands and active 0.1 s blocks."""
    block, n_blocks, _ = _block_layout(ref.shape[-1], sr, ref.device)
    err = (_binaural_cues(pred, sr, cache)["ild"] - _binaural_cues(ref, sr, cache)["ild"]).abs().mean(-1)
    return _masked_mean(err, _active_blocks(ref, block, n_blocks))


def itd_error(pred, ref, sr, cache=None, **ctx):
    """Mean |ITD_pred - ITD_ref| (microseconds) over active 0.1 s blocks; GCC-PHAT ITDs."""
    block, n_blocks, _ = _block_layout(ref.shape[-1], sr, ref.device)
    err = (_binaural_cues(pred, sr, cache)["itd"] - _binaural_cues(ref, sr, cache)["itd"]).abs() * 1e6
    return _masked_mean(err, _active_blocks(ref, block, n_blocks))


def ic_error(pred, ref, sr, cache=None, **ctx):
    """Mean |IC_pred - IC_ref| over active 0.1 s blocks; IC = max normalized |cross-correlation| within +-1 ms."""
    block, n_blocks, _ = _block_layout(ref.shape[-1], sr, ref.device)
    err = (_binaural_cues(pred, sr, cache)["ic"] - _binaural_cues(ref, sr, cache)["ic"]).abs()
    return _masked_mean(err, _active_blocks(ref, block, n_blocks))


# ------------------------------------------------------------------------------ direction accuracy


def dominant_source(sources: list[dict]) -> dict | None:
    """The loudest source ("level_db") when every source has a level, else the nearest when every source
    has a "distance"; None if there is no source or neither is known for every source."""
    if not sources:
        return None
    if all("level_db" in s for s in sources):
        return max(sources, key=lambda s: s["level_db"])
    if all("distance" in s for s in sources):
        return min(sources, key=lambda s: s["distance"])
    return None


def frame_label(sources: list[dict]) -> str | None:
    """The left/center/right label a frame's sounding sources give: the dominant source's, else the
    label all of them share; None (the frame is skipped) when they name no single side."""
    src = dominant_source(sources)
    if src is not None:
        return src["label"]
    labels = {s["label"] for s in sources}
    return labels.pop() if len(labels) == 1 else None


def side_of(sd_db: float, deadband_db: float = DIRECTION_DEADBAND_DB) -> str:
    """"left", "center" or "right" from a level difference SD = 20 log10(|L| / |R|) in dB."""
    if sd_db > deadband_db:
        return "left"
    if sd_db < -deadband_db:
        return "right"
    return "center"


def direction_accuracy(pred, ref, sr, annotations=None, **ctx):
    """Share of annotated 0.1 s frames whose predicted side (level difference) matches the dominant source's label."""
    if annotations is None:
        raise UserError("The metric 'direction_acc' needs the items' annotations (per-frame source labels).")
    if len(annotations) != pred.shape[0]:
        raise UserError(f"direction_acc got {len(annotations)} annotations for {pred.shape[0]} items.")
    out = torch.full((pred.shape[0],), torch.nan, dtype=torch.float64)
    num_samples = pred.shape[-1]
    for b, ann in enumerate(annotations):
        if not ann:
            continue
        length = int(round(sr / float(ann.get("frame_rate", FRAME_RATE))))
        starts, labels = [], []
        for frame in ann.get("frames") or []:
            label = frame_label(frame.get("sources", []))
            start = int(round(float(frame["t0"]) * sr))
            if label is None or start < 0 or start + length > num_samples:
                continue
            starts.append(start)
            labels.append(label)
        if not starts:
            continue
        idx = torch.as_tensor(starts, device=pred.device)[:, None] + torch.arange(length, device=pred.device)
        norms = pred[b][:, idx].double().pow(2).sum(-1).sqrt().clamp_min(NORM_FLOOR)  # (2, frames)
        sd = (20 * torch.log10(norms[0] / norms[1])).cpu().tolist()
        correct = sum(side_of(v) == lab for v, lab in zip(sd, labels))
        out[b] = correct / len(labels)
    return out.to(pred.device)


_SPATIAL = "docs/metrics.md#spatial-metrics"

SPL = Metric(
    id="spl", version="1", direction="lower", unit="dB",
    provenance=f"{_SPATIAL} (spl: SAGM paper, eqs. 18-23)",
    definition="||SD_ref - SD_pred||_2 over 0.1 s frames, SD = 20 log10(||L|| / ||R||) per frame, frame norms floored at 1e-8",
    fn=spl_distance,
)
ILD = Metric(
    id="ild", version="1", direction="lower", unit="dB",
    provenance=f"{_SPATIAL} (ild: tas-eval's own; interaural level difference per octave band)",
    definition="mean |ILD_pred - ILD_ref| over octave bands (62.5 Hz to sr/2) and active 0.1 s blocks of the FAIR-Play STFT, 1e-10 per-bin floor",
    fn=ild_error,
)
ITD = Metric(
    id="itd", version="1", direction="lower", unit="us",
    provenance=f"{_SPATIAL} (itd: tas-eval's own; GCC-PHAT interaural time difference)",
    definition="mean |ITD_pred - ITD_ref| over active 0.1 s blocks; GCC-PHAT of the FAIR-Play STFT, 4x interpolated, lags within +-1 ms",
    fn=itd_error,
)
IC = Metric(
    id="ic", version="1", direction="lower", unit="a.u. (0-1)",
    provenance=f"{_SPATIAL} (ic: tas-eval's own; interaural coherence, the IACC of ISO 3382-1)",
    definition="mean |IC_pred - IC_ref| over active 0.1 s blocks; IC = max over lags within +-1 ms of |normalized cross-correlation|",
    fn=ic_error,
)
DIRECTION_ACC = Metric(
    id="direction_acc", version="1", direction="higher", unit="fraction",
    provenance=f"{_SPATIAL} (direction_acc: tas-eval's own; TASBench-style per-frame left/center/right labels)",
    definition="share of annotated 0.1 s frames where the side of 20 log10(||L||/||R||) (+-1 dB = center) matches the frame's label (dominant source's; with labels only, the one all sources share); superseded by side_acc, kept for comparability",
    fn=direction_accuracy,
    needs=("annotations",),
)

ALL = [SPL, ILD, ITD, IC, DIRECTION_ACC]
