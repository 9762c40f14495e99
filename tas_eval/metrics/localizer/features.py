"""The localizer's input: Spatial-AST's binaural features, at 16 kHz.

Spatial-AST (BAT) feeds its encoder, per 10 ms frame, the log-mel spectrum of each ear and the cosine
and sine of the interaural phase difference (IPD) projected through the same mel filterbank: four
channels of frames x mel bins. Here at 16 kHz: STFT N_FFT = 512 (32 ms), hop 160 (10 ms), periodic
Hann window, centred with zero padding; N_MELS = 64 Slaney mel bands from 50 Hz to 8 kHz (Spatial-AST:
n_fft 1024, hop 320 at 32 kHz, 128 bands up to 14 kHz; half the rate keeps the same 32 ms window and
10 ms hop); log mel = ln(mel power + 1e-8). The IPD of a bin is the angle of S_L conj(S_R); its cosine
and sine are averaged over each band with the filterbank's weights (each band's weights normalized to
sum 1), so they stay in [-1, 1] as the bin values do.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 160
N_MELS = 64
FMIN_HZ, FMAX_HZ = 50.0, 8000.0
LOG_FLOOR = 1e-8
FRAMES_PER_LABEL = 10  # 10 ms frames in one 0.1 s annotation frame


@functools.lru_cache(maxsize=4)
def _filterbank(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    import librosa

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN_HZ, fmax=FMAX_HZ)
    mel = torch.from_numpy(fb.astype(np.float32)).to(device)
    return mel, mel / mel.sum(dim=1, keepdim=True).clamp_min(1e-12)


def binaural_features(audio: torch.Tensor) -> torch.Tensor:
    """(B, 2, T) binaural audio at 16 kHz -> (B, 4, frames, N_MELS) float32: log mel of the left and right
    ear, then the band averages of cos(IPD) and sin(IPD); frame j is centred on sample j * HOP."""
    b, _, t = audio.shape
    x = audio.reshape(b * 2, t).float()
    window = torch.hann_window(N_FFT, periodic=True, device=x.device)
    spec = torch.stft(x, N_FFT, HOP, N_FFT, window=window, center=True, pad_mode="constant", return_complex=True)
    spec = spec.reshape(b, 2, spec.shape[-2], spec.shape[-1])  # (B, 2, F, frames)
    mel, mel_avg = _filterbank(str(x.device))
    logmel = torch.log(torch.einsum("mf,bcft->bctm", mel, spec.real**2 + spec.imag**2) + LOG_FLOOR)
    cross = spec[:, 0] * spec[:, 1].conj()
    phase = torch.angle(cross)
    ipd = torch.stack([torch.einsum("mf,bft->btm", mel_avg, torch.cos(phase)),
                       torch.einsum("mf,bft->btm", mel_avg, torch.sin(phase))], dim=1)
    return torch.cat([logmel, ipd], dim=1)
