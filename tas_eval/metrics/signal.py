"""Signal metrics, each exactly as the reference script that produced the literature's numbers.

Every function takes peak-normalized (B, 2, T) predictions and references (``compute_metrics``
normalizes them, as the reference scripts do) and returns (B,) float64 per-item values. Channel 0 is
the left ear. Formulas and sources: docs/metrics.md, "Signal metrics". Where a script's result is
undefined, one convention is fixed: the angle of an exactly zero STFT bin is 0 (np.angle gives pi
for a bin of -0.0 real part, which digital silence produces in some bins).

Which AMP / PHA the leaderboard shows: the Richard variant (``amp_richard``, ``pha_richard``).
The TAS paper's AMP and PHA columns name no script, but they come as the triple WAV (x10^3), AMP,
PHA that BinauralSpeechSynthesis's evaluate.py prints (l2 x 1000, amplitude, phase), and only the
Richard definitions have the size of its numbers: TAS's Mono-Mono row has AMP 0.267 and PHA 0.592,
the size of the Richard values of the same baseline (both ears = the mix) on the built benchmark,
where the PseudoBinaural dB magnitude error is tens of times larger (compare the mono_mono rows of
the leaderboard). Both variants are computed and listed under their own ids;
``LEADERBOARD_AMP_PHA`` names the default pair.

The Richard STFT uses the sample counts of BinauralSpeechSynthesis's evaluate.py, which hard-codes
``sample_rate=48000`` (n_fft 2048, window 1920, hop 480) whatever the audio's rate: at 16 kHz that is a
120 ms window and a 30 ms hop. torch.stft's default reflect padding is kept, as in that script.

Precision: every STFT is computed in float64. In float32 the phases of quiet bins (PHA metrics) and
the log-magnitudes of quiet bins (mrstft's log term) are off by up to 1e-3 relative when the
prediction is close to the reference (e.g. a one-sample delay). The Hilbert envelope is computed in
float32: it only enters an RMS over the whole clip, where float32 rounding stays below 1e-7.
"""

from __future__ import annotations

import torch

from tas_eval.metrics.base import Metric
from tas_eval.metrics.transforms import (
    FAIRPLAY_STFT,
    STFTParams,
    cached_envelope,
    cached_power,
    cached_stft,
    frames,
    hann_window,
    item_chunks,
    memo,
    power,
    stft,
    whole_batches,
)

RICHARD_STFT = STFTParams(2048, 480, 1920, "reflect")
RICHARD_IGNORE_BELOW = 0.2  # phase error only on bins above 0.2 x the target's mean |Re| + |Im|
MRSTFT_STFTS = (
    STFTParams(1024, 120, 600, "reflect"),
    STFTParams(2048, 240, 1200, "reflect"),
    STFTParams(512, 50, 240, "reflect"),
)
MRSTFT_EPS = 1e-8  # auraloss: magnitude = sqrt(clamp(re^2 + im^2, min=1e-8))
MRSTFT_BLOCK = 64  # STFT frames per block on a CPU (see mrstft)
SNR_EPS = 1e-4
DB_AMIN = 1e-5  # librosa.amplitude_to_db defaults: ref=1.0, amin=1e-5, top_db=80
DB_TOP = 80.0

LEADERBOARD_AMP_PHA = ("amp_richard", "pha_richard")

# Compute dtypes (see the module docstring).
PHASE_DTYPE = torch.float64
MRSTFT_DTYPE = torch.float64
RICHARD_DTYPE = torch.float64
ENV_DTYPE = torch.float32


def _abs_angle(x: torch.Tensor) -> torch.Tensor:
    """|angle x| with the angle of an exact zero fixed at 0 (torch.angle(-0.0 + 0j) would be pi)."""
    return torch.where(x == 0, 0.0, torch.angle(x).abs())


def angle_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """|angle x - angle y| folded onto [0, pi], per complex element; the angle of an exact zero is 0.

    Computed as |angle(x conj(y))| (one arctangent instead of two; the same circular distance), with
    atan2 on the real and imaginary parts: torch.angle of a complex tensor is several times slower.
    """
    xv, yv = torch.view_as_real(x), torch.view_as_real(y)
    xr, xi, yr, yi = xv[..., 0], xv[..., 1], yv[..., 0], yv[..., 1]
    zr = xr * yr + xi * yi
    zi = xi * yr - xr * yi
    err = torch.atan2(zi, zr).abs_()
    zero = (zr == 0) & (zi == 0)
    if bool(zero.any()):  # x or y is exactly 0 there: the distance is the other one's |angle|
        err[zero] = _abs_angle(x[zero]) + _abs_angle(y[zero])
    return err


def _fairplay_stft(x: torch.Tensor, cache) -> torch.Tensor:
    return cached_stft(x, FAIRPLAY_STFT, PHASE_DTYPE, cache)


def _fairplay_pair_stats(pred: torch.Tensor, ref: torch.Tensor, cache) -> dict[str, torch.Tensor]:
    """Everything the FAIR-Play STFT gives for a pair, in one pass over the spectra (shared through ``cache``).

    "sq_err": (B, 2) mean |S_pred - S_ref|^2 per channel; "amp_pb", "pha_pb", "phase_diff": (B,).
    """

    def compute():
        sp, sr_ = _fairplay_stft(pred, cache), _fairplay_stft(ref, cache)  # (B, 2, frames, bins)
        pp = cached_power(pred, FAIRPLAY_STFT, PHASE_DTYPE, cache)
        pr = cached_power(ref, FAIRPLAY_STFT, PHASE_DTYPE, cache)
        bins = (-2, -1)
        diff = torch.view_as_real(sp) - torch.view_as_real(sr_)
        sq_err = diff.square().sum(dim=(-3, -2, -1)) / (sp.shape[-2] * sp.shape[-1])
        # amplitude_to_db: 10 log10(max(P, amin^2)) floored at its maximum - top_db, i.e. P floored at
        # max(amin^2, max P * 10^(-top_db / 10)); the dB difference is then one log of a ratio.
        scale = 10 ** (-DB_TOP / 10)
        floor_p = (pp.amax(dim=bins, keepdim=True) * scale).clamp_min(DB_AMIN**2)
        floor_r = (pr.amax(dim=bins, keepdim=True) * scale).clamp_min(DB_AMIN**2)
        db = 10 * torch.log10(torch.maximum(pp, floor_p) / torch.maximum(pr, floor_r))
        amp = db.square().mean(dim=bins).sqrt().sum(-1)
        pha = angle_error(sp, sr_).mean(dim=bins).sum(-1)
        phase_diff = angle_error(sp[:, 0] - sp[:, 1], sr_[:, 0] - sr_[:, 1]).mean(dim=bins)
        return {"sq_err": sq_err, "amp_pb": amp, "pha_pb": pha, "phase_diff": phase_diff}

    return memo(cache, (pred, ref), ("fairplay_pair",), compute)


def stft_distance(pred, ref, sr, cache=None, **ctx):
    """2.5D-Visual-Sound STFT distance: sum_c mean over {Re, Im} x F x T of (S_pred - S_ref)^2."""
    return _fairplay_pair_stats(pred, ref, cache)["sq_err"].sum(-1) / 2


def magnitude_distance(pred, ref, sr, cache=None, **ctx):
    """PseudoBinaural "Magnitude distance": sum_c mean |S_pred - S_ref|^2 (exactly 2 x stft)."""
    return _fairplay_pair_stats(pred, ref, cache)["sq_err"].sum(-1)


def envelope_distance(pred, ref, sr, cache=None, **ctx):
    """2.5D-Visual-Sound envelope distance: sum_c sqrt(mean_t (|hilbert(ref_c)| - |hilbert(pred_c)|)^2)."""
    e_ref = cached_envelope(ref, ENV_DTYPE, cache)
    e_pred = cached_envelope(pred, ENV_DTYPE, cache)
    return (e_ref - e_pred).square().mean(-1, dtype=torch.float64).sqrt().sum(-1)


def snr(pred, ref, sr, **ctx):
    """PseudoBinaural SNR (dB): 10 log10((mean ref^2 + 1e-4) / (mean (pred - ref)^2 + 1e-4)), both channels."""
    p, r = pred.double(), ref.double()
    mse = (p - r).square().mean(dim=(-2, -1))
    return 10 * torch.log10((r.square().mean(dim=(-2, -1)) + SNR_EPS) / (mse + SNR_EPS))


def wave_l2(pred, ref, sr, **ctx):
    """Wave L2 x 1e3: mean (pred - ref)^2 over both channels, times 1000."""
    return (pred.double() - ref.double()).square().mean(dim=(-2, -1)) * 1e3


def phase_diff_distance(pred, ref, sr, cache=None, **ctx):
    """PseudoBinaural "Phase distance": mean over bins of the wrapped angle error of STFT(L - R).

    STFT(L - R) is taken as S_L - S_R (the STFT is linear), which reuses the per-channel transform.
    """
    return _fairplay_pair_stats(pred, ref, cache)["phase_diff"]


def amp_pseudobinaural(pred, ref, sr, cache=None, **ctx):
    """PseudoBinaural Mag_Phase_distance, magnitude part: sum_c sqrt(mean (dB|S_pred| - dB|S_ref|)^2)."""
    return _fairplay_pair_stats(pred, ref, cache)["amp_pb"]


def pha_pseudobinaural(pred, ref, sr, cache=None, **ctx):
    """PseudoBinaural Mag_Phase_distance, phase part: sum_c mean wrapped |angle S_pred - angle S_ref|."""
    return _fairplay_pair_stats(pred, ref, cache)["pha_pb"]


def _richard_stats(pred: torch.Tensor, ref: torch.Tensor, cache) -> dict[str, torch.Tensor]:
    """Amplitude and phase errors of BinauralSpeechSynthesis from one pair of STFTs: {"amp", "pha"} (B,)."""

    def compute():
        amp = torch.zeros(pred.shape[0], dtype=torch.float64, device=pred.device)
        pha = torch.full_like(amp, torch.nan)
        for part in item_chunks(pred.shape[0], pred.device):
            sp, st = stft(pred[part], RICHARD_STFT, RICHARD_DTYPE), stft(ref[part], RICHARD_STFT, RICHARD_DTYPE)
            bins = st[0].numel()  # channels x frames x bins of one item
            amp[part] = (power(sp).sqrt_() - power(st).sqrt_()).abs_().flatten(1).sum(-1, dtype=torch.float64) / bins
            e_t = (st.real.abs() + st.imag.abs()).flatten(1)
            e_p = (sp.real.abs() + sp.imag.abs()).flatten(1)
            threshold = RICHARD_IGNORE_BELOW * e_t.sum(-1, dtype=torch.float64) / bins
            keep = (e_t > threshold[:, None]) & (e_p > threshold[:, None])
            # Every bin's error, then the kept ones summed: faster than gathering the kept bins first.
            err = torch.where(keep, angle_error(sp.flatten(1), st.flatten(1)), 0.0)
            count = keep.sum(-1)
            pha[part] = torch.where(count > 0, err.sum(-1, dtype=torch.float64) / count.clamp_min(1), torch.nan)
        return {"amp": amp, "pha": pha}

    return memo(cache, (pred, ref), ("richard_pair",), compute)


def amp_richard(pred, ref, sr, cache=None, **ctx):
    """BinauralSpeechSynthesis amplitude error: mean over channels, bins, frames of ||S_pred| - |S_ref||."""
    return _richard_stats(pred, ref, cache)["amp"]


def pha_richard(pred, ref, sr, cache=None, **ctx):
    """BinauralSpeechSynthesis phase error (rad) on the bins where target and prediction are energetic.

    Energy of a bin is |Re| + |Im|; a bin counts when both the target's and the prediction's energy
    exceed 0.2 x the mean target energy over all bins of both channels; the error of a bin is the
    angle difference folded onto [0, pi] (the script's pi - ||d| - pi|). NaN for an item with no such bin.
    """
    return _richard_stats(pred, ref, cache)["pha"]


def mrstft(pred, ref, sr, **ctx):
    """auraloss MultiResolutionSTFTLoss (defaults): mean over resolutions of SC + log-magnitude L1.

    Per resolution: SC = ||Y - X||_F / ||Y||_F over both channels, log term = mean |log X - log Y|,
    with X, Y the prediction's and reference's magnitudes sqrt(clamp(re^2 + im^2, 1e-8)). On a CPU
    the spectra are computed and reduced MRSTFT_BLOCK frames at a time, so that the temporaries stay
    in the caches (benchmarks/metrics_speed.py); no other metric shares them.
    """
    total = torch.zeros(pred.shape[0], dtype=torch.float64, device=pred.device)
    whole = whole_batches(pred.device)
    for part in item_chunks(pred.shape[0], pred.device):
        items = len(range(pred.shape[0])[part])
        for params in MRSTFT_STFTS:
            window = hann_window(params, MRSTFT_DTYPE, pred.device)
            fx, fy = frames(pred[part], params, MRSTFT_DTYPE), frames(ref[part], params, MRSTFT_DTYPE)
            n = fx.shape[-2]
            sums = torch.zeros(4, items, dtype=torch.float64, device=pred.device)
            step = n if whole else MRSTFT_BLOCK
            for start in range(0, n, step):
                block = slice(start, start + step)
                px = power(torch.fft.rfft(fx[:, block] * window)).clamp_min_(MRSTFT_EPS).reshape(items, -1)
                py = power(torch.fft.rfft(fy[:, block] * window)).clamp_min_(MRSTFT_EPS).reshape(items, -1)
                sums[0] += py.sum(-1)
                sums[1] += px.sum(-1)
                sums[2] += torch.mul(px, py).sqrt_().sum(-1)
                sums[3] += py.div_(px).log_().abs_().sum(-1)
            sum_y2, sum_x2, cross, log_sum = sums
            # ||Y - X||^2 = sum Y^2 + sum X^2 - 2 sum XY, with X = sqrt(px), Y = sqrt(py).
            sc = (sum_y2 + sum_x2 - 2 * cross).clamp_min(0).sqrt() / sum_y2.sqrt()
            count = pred.shape[1] * n * (params.n_fft // 2 + 1)
            total[part] += sc + 0.5 * log_sum / count
    return total / len(MRSTFT_STFTS)


_FAIRPLAY = "FAIR-Play STFT: n_fft 512, hop 160, win 400, Hann, centred, zero padding"
_RICHARD = "STFT n_fft 2048, win 1920, hop 480 samples, Hann, centred, reflect padding"
_SIGNAL = "docs/metrics.md#signal-metrics"

STFT = Metric(
    id="stft", version="1", direction="lower", unit="a.u.",
    provenance=f"{_SIGNAL} (stft: facebookresearch/2.5D-Visual-Sound evaluate.py STFT_L2_distance)",
    definition=f"sum over L,R of mean over Re/Im x F x T of (S_pred - S_ref)^2; {_FAIRPLAY}",
    fn=stft_distance,
)
ENV = Metric(
    id="env", version="1", direction="lower", unit="a.u.",
    provenance=f"{_SIGNAL} (env: facebookresearch/2.5D-Visual-Sound evaluate.py Envelope_distance)",
    definition="sum over L,R of sqrt(mean_t (|hilbert(ref)| - |hilbert(pred)|)^2), Hilbert over the whole clip",
    fn=envelope_distance,
)
SNR = Metric(
    id="snr", version="1", direction="higher", unit="dB",
    provenance=f"{_SIGNAL} (snr: SheldonTsui/PseudoBinaural_CVPR2021 evaluate.py SNR)",
    definition="10 log10((mean ref^2 + 1e-4) / (mean (pred - ref)^2 + 1e-4)), both channels together",
    fn=snr,
)
WAV = Metric(
    id="wav", version="1", direction="lower", unit="x1e-3",
    provenance=f"{_SIGNAL} (wav: PseudoBinaural (first commit) MSE_distance; Richard et al. ICLR 2021 (l2 x 10^3))",
    definition="1000 x mean (pred - ref)^2 over both channels and all samples",
    fn=wave_l2,
)
MAG = Metric(
    id="mag", version="1", direction="lower", unit="a.u.",
    provenance=f"{_SIGNAL} (mag: PseudoBinaural_CVPR2021 evaluate.py Magnitude_distance)",
    definition=f"sum over L,R of mean |S_pred - S_ref|^2 (= 2 x stft); {_FAIRPLAY}",
    fn=magnitude_distance,
)
PHASE_DIFF = Metric(
    id="phase_diff", version="1", direction="lower", unit="rad",
    provenance=f"{_SIGNAL} (phase_diff: PseudoBinaural_CVPR2021 evaluate.py Angle_Diff_distance)",
    definition=f"mean over bins of min(d, 2pi - d), d = |angle STFT(L-R)_pred - angle STFT(L-R)_ref| (angle of 0 is 0); {_FAIRPLAY}",
    fn=phase_diff_distance,
)
AMP_PB = Metric(
    id="amp_pb", version="1", direction="lower", unit="dB",
    provenance=f"{_SIGNAL} (amp_pb: PseudoBinaural first commit Mag_Phase_distance)",
    definition=f"sum over L,R of sqrt(mean (dB|S_pred| - dB|S_ref|)^2), librosa.amplitude_to_db (ref 1, amin 1e-5, top_db 80); {_FAIRPLAY}",
    fn=amp_pseudobinaural,
)
PHA_PB = Metric(
    id="pha_pb", version="1", direction="lower", unit="rad",
    provenance=f"{_SIGNAL} (pha_pb: PseudoBinaural first commit Mag_Phase_distance)",
    definition=f"sum over L,R of mean over bins of min(d, 2pi - d), d = |angle S_pred - angle S_ref| (angle of 0 is 0); {_FAIRPLAY}",
    fn=pha_pseudobinaural,
)
AMP_RICHARD = Metric(
    id="amp_richard", version="1", direction="lower", unit="a.u.",
    provenance=f"{_SIGNAL} (amp_richard: facebookresearch/BinauralSpeechSynthesis evaluate.py AmplitudeLoss)",
    definition=f"mean over L,R, bins, frames of | |S_pred| - |S_ref| |; {_RICHARD}",
    fn=amp_richard,
)
PHA_RICHARD = Metric(
    id="pha_richard", version="1", direction="lower", unit="rad",
    provenance=f"{_SIGNAL} (pha_richard: facebookresearch/BinauralSpeechSynthesis evaluate.py PhaseLoss(ignore_below=0.2))",
    definition=f"mean of pi - ||d| - pi|, d = angle S_pred - angle S_ref, over bins whose |Re|+|Im| exceeds 0.2 x the reference's mean in both signals; {_RICHARD}",
    fn=pha_richard,
)
MRSTFT = Metric(
    id="mrstft", version="1", direction="lower", unit="a.u.",
    provenance=f"{_SIGNAL} (mrstft: csteinmetz1/auraloss freq.py MultiResolutionSTFTLoss defaults)",
    definition="mean over (n_fft, hop, win) = (1024,120,600), (2048,240,1200), (512,50,240) of ||Y-X||_F/||Y||_F + mean |log X - log Y|, X = sqrt(max(|S|^2, 1e-8)), Hann, reflect padding",
    fn=mrstft,
)

ALL = [STFT, ENV, WAV, SNR, MAG, PHASE_DIFF, AMP_RICHARD, PHA_RICHARD, AMP_PB, PHA_PB, MRSTFT]
