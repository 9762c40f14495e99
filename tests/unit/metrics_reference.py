"""Independent per-clip NumPy / librosa / scipy implementations of every metric, written the way the
reference scripts are (one clip at a time, librosa.stft, scipy.signal.hilbert, numpy), in float64.

Used by tests/unit/test_metrics_*.py (agreement to 1e-5 relative) and by benchmarks/metrics_speed.py
(the per-clip loop the batched suite is timed against). Each function takes one (2, T) clip pair,
already peak-normalized, and returns a float. Nothing here imports tas_eval.metrics.

Also: ``synthetic_binaural``, realistic synthetic binaural clips (harmonic and noise sources with
interaural delays, head shadow and a reverberant tail) for tests before/besides the built benchmark.
"""

from __future__ import annotations

import math

import librosa
import numpy as np
import scipy.signal

N_FFT, HOP, WIN = 512, 160, 400


def normalize(x):
    """The reference scripts' peak normalization over both channels."""
    return x / np.maximum(1e-20, np.max(np.abs(x)))


def spec(channel, n_fft=N_FFT, hop=HOP, win=WIN, pad_mode="constant"):
    return librosa.stft(np.asfortranarray(channel), n_fft=n_fft, hop_length=hop, win_length=win, center=True,
                        pad_mode=pad_mode)


# ------------------------------------------------------------------------------------ signal metrics


def stft_distance(pred, gt):
    total = 0.0
    for c in range(2):
        p, g = spec(pred[c]), spec(gt[c])
        p_ri = np.concatenate([np.real(p)[None], np.imag(p)[None]])
        g_ri = np.concatenate([np.real(g)[None], np.imag(g)[None]])
        total += np.mean((p_ri - g_ri) ** 2)
    return float(total)


def envelope_distance(pred, gt):
    total = 0.0
    for c in range(2):
        p_env = np.abs(scipy.signal.hilbert(pred[c]))
        g_env = np.abs(scipy.signal.hilbert(gt[c]))
        total += np.sqrt(np.mean((g_env - p_env) ** 2))
    return float(total)


def snr(pred, gt):
    mse = np.mean((pred - gt) ** 2)
    return float(10.0 * np.log10((np.mean(gt ** 2) + 1e-4) / (mse + 1e-4)))


def wave_l2(pred, gt):
    return float(np.mean((pred - gt) ** 2) * 1e3)


def magnitude_distance(pred, gt):
    return float(sum(np.mean(np.abs(spec(pred[c]) - spec(gt[c])) ** 2) for c in range(2)))


def _wrap(d):
    return np.minimum(d, np.clip(2 * math.pi - d, 0, 2 * math.pi))


def _angle(s):
    """np.angle with the angle of an exactly zero bin fixed at 0 (np.angle(-0.0 + 0j) would be pi)."""
    return np.where(s == 0, 0.0, np.angle(s))


def phase_diff_distance(pred, gt):
    _, p_phase = librosa.magphase(spec(pred[0] - pred[1]))
    _, g_phase = librosa.magphase(spec(gt[0] - gt[1]))
    return float(np.mean(_wrap(np.abs(_angle(p_phase) - _angle(g_phase)))))


def amp_pha_pseudobinaural(pred, gt):
    amp = pha = 0.0
    for c in range(2):
        p_mag, p_phase = librosa.magphase(spec(pred[c]))
        g_mag, g_phase = librosa.magphase(spec(gt[c]))
        p_db, g_db = librosa.amplitude_to_db(p_mag), librosa.amplitude_to_db(g_mag)
        amp += np.sqrt(np.mean((p_db - g_db) ** 2))
        pha += np.mean(_wrap(np.abs(_angle(p_phase) - _angle(g_phase))))
    return float(amp), float(pha)


def _richard_spec(x):
    # BinauralSpeechSynthesis evaluate.py: FourierTransform(sample_rate=48000) -> n_fft 2048, win 1920, hop 480;
    # torch.stft's centre padding is reflect.
    return np.stack([spec(x[c], 2048, 480, 1920, "reflect") for c in range(2)])


def amp_richard(pred, gt):
    return float(np.mean(np.abs(np.abs(_richard_spec(pred)) - np.abs(_richard_spec(gt)))))


def pha_richard(pred, gt, ignore_below=0.2):
    p, g = _richard_spec(pred).ravel(), _richard_spec(gt).ravel()
    g_energy = np.abs(g.real) + np.abs(g.imag)
    p_energy = np.abs(p.real) + np.abs(p.imag)
    keep = (g_energy > ignore_below * g_energy.mean()) & (p_energy > ignore_below * g_energy.mean())
    loss = np.abs(np.arctan2(p.real[keep], p.imag[keep]) - np.arctan2(g.real[keep], g.imag[keep]))
    return float(np.mean(np.pi - np.abs(loss - np.pi)))


def mrstft(pred, gt):
    total = 0.0
    for n_fft, hop, win in ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)):
        x = np.stack([np.sqrt(np.maximum(np.abs(spec(pred[c], n_fft, hop, win, "reflect")) ** 2, 1e-8)) for c in range(2)])
        y = np.stack([np.sqrt(np.maximum(np.abs(spec(gt[c], n_fft, hop, win, "reflect")) ** 2, 1e-8)) for c in range(2)])
        sc = np.linalg.norm((y - x).ravel()) / np.linalg.norm(y.ravel())
        total += sc + np.mean(np.abs(np.log(x) - np.log(y)))
    return float(total / 3)


# ----------------------------------------------------------------------------------- spatial metrics


def spl_curve(x, sr, frame_s=0.1):
    """SPL_L - SPL_R (dB) per non-overlapping frame."""
    frame = int(round(frame_s * sr))
    out = []
    for k in range(x.shape[1] // frame):
        seg = x[:, k * frame : (k + 1) * frame]
        spl = [20 * np.log10(max(np.linalg.norm(seg[c]), 1e-8) / 2e-5) for c in range(2)]
        out.append(spl[0] - spl[1])
    return np.array(out)


def spl_distance(pred, gt, sr):
    return float(np.linalg.norm(spl_curve(gt, sr) - spl_curve(pred, sr)))


def _blocks(num_samples, sr):
    """[(block start sample, [STFT frame indices whose centre lies in the block])] of 0.1 s blocks."""
    block = int(round(0.1 * sr))
    n_blocks = num_samples // block
    members = [[] for _ in range(n_blocks)]
    for t in range(1 + num_samples // HOP):
        if t * HOP // block < n_blocks:
            members[t * HOP // block].append(t)
    return [(b * block, members[b]) for b in range(n_blocks)], block


def _active(gt, start, block):
    return np.mean(gt[:, start : start + block] ** 2) >= 1e-6


def ild_error(pred, gt, sr):
    freqs = np.arange(N_FFT // 2 + 1) * sr / N_FFT
    edges = [62.5]
    while edges[-1] * 2 < sr / 2:
        edges.append(edges[-1] * 2)
    edges.append(sr / 2)
    bands = []
    for j in range(len(edges) - 1):
        hi_ok = freqs <= edges[j + 1] if j == len(edges) - 2 else freqs < edges[j + 1]
        bands.append(np.where((freqs >= edges[j]) & hi_ok)[0])

    def ilds(powers, frames):
        pl, pr = powers
        out = []
        for band in bands:
            eps = 1e-10 * len(band) * len(frames)
            out.append(10 * np.log10((pl[np.ix_(band, frames)].sum() + eps) / (pr[np.ix_(band, frames)].sum() + eps)))
        return np.array(out)

    p_pow = [np.abs(spec(pred[c])) ** 2 for c in range(2)]
    g_pow = [np.abs(spec(gt[c])) ** 2 for c in range(2)]
    blocks, block = _blocks(gt.shape[1], sr)
    errs = [np.mean(np.abs(ilds(p_pow, f) - ilds(g_pow, f))) for s, f in blocks if _active(gt, s, block)]
    return float(np.mean(errs)) if errs else float("nan")


def _cues(specs, frames, sr):
    """(GCC-PHAT ITD in seconds, IACC) of one block; ``specs`` = (STFT left, STFT right)."""
    sl, sr_ = specs
    size, max_lag = 4 * N_FFT, int(round(1e-3 * sr * 4))
    lags = np.arange(-max_lag, max_lag + 1)
    phat_sum = np.zeros(N_FFT // 2 + 1, dtype=complex)
    cross_sum = np.zeros(N_FFT // 2 + 1, dtype=complex)
    el = er = 0.0
    weights = np.full(N_FFT // 2 + 1, 2.0)
    weights[0] = 1.0
    for t in frames:
        c = np.conj(sl[:, t]) * sr_[:, t]
        floor = max(1e-6 * np.abs(c).max(), np.finfo(float).tiny)
        phat_sum += c / np.maximum(np.abs(c), floor)
        cross_sum += c
        el += np.sum(weights * np.abs(sl[:, t]) ** 2) / size
        er += np.sum(weights * np.abs(sr_[:, t]) ** 2) / size
    gcc = np.fft.irfft(phat_sum, n=size)[lags % size]
    itd = lags[np.argmax(gcc)] / (4 * sr) if gcc.max() > 0 else 0.0
    cc = np.fft.irfft(cross_sum, n=size)[lags % size]
    ic = np.abs(cc).max() / np.sqrt(el * er) if el * er > 0 else 0.0
    return itd, ic


def itd_ic_errors(pred, gt, sr):
    """(mean |ITD error| in microseconds, mean |IC error|) over active blocks."""
    blocks, block = _blocks(gt.shape[1], sr)
    p_specs, g_specs = (spec(pred[0]), spec(pred[1])), (spec(gt[0]), spec(gt[1]))
    itd_errs, ic_errs = [], []
    for s, frames in blocks:
        if not _active(gt, s, block):
            continue
        (ip, cp), (ig, cg) = _cues(p_specs, frames, sr), _cues(g_specs, frames, sr)
        itd_errs.append(abs(ip - ig) * 1e6)
        ic_errs.append(abs(cp - cg))
    if not itd_errs:
        return float("nan"), float("nan")
    return float(np.mean(itd_errs)), float(np.mean(ic_errs))


def direction_accuracy(pred, annotation, sr, deadband_db=1.0):
    length = int(round(sr / annotation.get("frame_rate", 10)))
    hits = total = 0
    for frame in annotation["frames"]:
        sources = frame["sources"]
        if not sources:
            continue
        if all("level_db" in s for s in sources):
            dominant = max(sources, key=lambda s: s["level_db"])
        else:
            dominant = min(sources, key=lambda s: s["distance"])
        start = int(round(frame["t0"] * sr))
        if start + length > pred.shape[1]:
            continue
        seg = pred[:, start : start + length]
        sd = 20 * np.log10(max(np.linalg.norm(seg[0]), 1e-8) / max(np.linalg.norm(seg[1]), 1e-8))
        side = "left" if sd > deadband_db else "right" if sd < -deadband_db else "center"
        hits += side == dominant["label"]
        total += 1
    return hits / total if total else float("nan")


def signal_metrics(pred, gt):
    """Every signal metric of one clip pair (already normalized), as {id: value}."""
    amp_pb, pha_pb = amp_pha_pseudobinaural(pred, gt)
    return {
        "stft": stft_distance(pred, gt),
        "env": envelope_distance(pred, gt),
        "wav": wave_l2(pred, gt),
        "snr": snr(pred, gt),
        "mag": magnitude_distance(pred, gt),
        "phase_diff": phase_diff_distance(pred, gt),
        "amp_richard": amp_richard(pred, gt),
        "pha_richard": pha_richard(pred, gt),
        "amp_pb": amp_pb,
        "pha_pb": pha_pb,
        "mrstft": mrstft(pred, gt),
    }


def spatial_metrics(pred, gt, sr, annotation=None):
    """Every spatial metric of one clip pair (already normalized), as {id: value}."""
    itd, ic = itd_ic_errors(pred, gt, sr)
    out = {"spl": spl_distance(pred, gt, sr), "ild": ild_error(pred, gt, sr), "itd": itd, "ic": ic}
    if annotation is not None:
        out["direction_acc"] = direction_accuracy(pred, annotation, sr)
    return out


def all_metrics(pred, gt, sr, annotation=None):
    """Every metric of one clip pair (already normalized), as {id: value}."""
    return {**signal_metrics(pred, gt), **spatial_metrics(pred, gt, sr, annotation)}


# -------------------------------------------------------------------------------- synthetic clips


def _fractional_delay(x, delay):
    """Delay ``x`` by ``delay`` samples (any real number) with an FFT phase ramp (circular, zero-padded)."""
    n = len(x) + 64
    spec_ = np.fft.rfft(x, n)
    k = np.arange(len(spec_))
    return np.fft.irfft(spec_ * np.exp(-2j * np.pi * k * delay / n), n)[: len(x)]


def synthetic_binaural(seed: int, seconds: float = 2.0, sr: int = 16000, n_sources: int = 2) -> np.ndarray:
    """A realistic binaural clip (2, T) float64: harmonic notes and noise bursts at different sides.

    Each source gets an interaural delay (fractional samples, up to 0.7 ms), a frequency-dependent
    head shadow on the far ear, a reverberant tail, and the mix is low-passed at 7.5 kHz as a
    resampled recording would be. Some sources are silent for a while.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    mix = np.zeros((2, n))
    for s in range(n_sources):
        if s % 2 == 0:  # harmonic notes with vibrato and note envelopes
            f0 = rng.uniform(110, 440)
            sig = np.zeros(n)
            for h in range(1, 12):
                sig += rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * h * f0 * (t + 0.002 * np.sin(2 * np.pi * 5 * t))
                                                        + rng.uniform(0, 2 * np.pi))
            notes = (np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)) > -0.3).astype(float)
            sig *= scipy.signal.lfilter([0.02], [1, -0.98], notes)
        else:  # filtered noise bursts, like a drum
            sig = rng.standard_normal(n)
            b, a = scipy.signal.butter(2, [rng.uniform(200, 800), rng.uniform(2000, 6000)], "bandpass", fs=sr)
            sig = scipy.signal.lfilter(b, a, sig)
            period = int(rng.uniform(0.2, 0.5) * sr)
            env = np.exp(-(np.arange(n) % period) / (0.05 * sr))
            sig *= env
        silent = rng.uniform(0, seconds - 0.5)
        sig[int(silent * sr) : int((silent + 0.3) * sr)] = 0.0  # the source falls silent for 0.3 s
        lateral = rng.uniform(-1, 1)  # -1 = right, +1 = left
        itd = 0.7e-3 * lateral * sr  # samples; positive = left ear leads
        near, far = sig, _fractional_delay(sig, abs(itd))
        cutoff = 8000 * (1 - 0.75 * abs(lateral)) + 500
        b, a = scipy.signal.butter(1, min(cutoff, 7000), fs=sr)
        far = (1 - 0.3 * abs(lateral)) * scipy.signal.lfilter(b, a, far)
        left, right = (near, far) if lateral >= 0 else (far, near)
        mix += rng.uniform(0.3, 1.0) * np.stack([left, right])
    tail = rng.standard_normal((2, int(0.3 * sr))) * np.exp(-np.arange(int(0.3 * sr)) / (0.06 * sr)) * 0.05
    mix = mix + np.stack([scipy.signal.fftconvolve(mix[c], tail[c])[:n] for c in range(2)])
    b, a = scipy.signal.butter(8, 7500, fs=sr)
    mix = scipy.signal.lfilter(b, a, mix, axis=-1)
    return mix / np.abs(mix).max() * 0.8


def shift(x, k):
    """Delay (k > 0) or advance (k < 0) every channel of ``x`` by k samples, zero-filled, same length."""
    out = np.zeros_like(x)
    if k >= 0:
        out[..., k:] = x[..., : x.shape[-1] - k]
    else:
        out[..., :k] = x[..., -k:]
    return out


PERTURBATIONS = ("identical", "gain", "interaural_gain", "delay", "right_delay", "noise", "swap", "mono")


def perturbed_pairs(clips, seed=0, kinds=PERTURBATIONS):
    """(name, prediction, reference) triples: each clip against itself and against typical model errors."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ref in enumerate(clips):
        noise = rng.standard_normal(ref.shape) * np.sqrt(np.mean(ref ** 2)) * 0.1  # 20 dB SNR
        preds = {
            "identical": ref.copy(),
            "gain": 0.5 * ref,
            "interaural_gain": ref * np.array([[1.0], [0.6]]),
            "delay": shift(ref, 3),
            "right_delay": np.stack([ref[0], shift(ref[1], 5)]),
            "noise": ref + noise,
            "swap": ref[::-1].copy(),
            "mono": np.repeat(ref.mean(0, keepdims=True), 2, axis=0),
        }
        out += [(f"{i}:{k}", preds[k], ref) for k in kinds]
    return out
