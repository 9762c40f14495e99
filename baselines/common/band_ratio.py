"""The complex ratio D / M of the channel difference to the mono signal, per mel band: a signed,
mono-anchored representation of binaural audio that a diffusion model can generate.

For each mel band b and STFT frame t, the ratio is the least-squares complex gain that maps the mono
STFT M onto the difference STFT D = STFT(L - R) within the band, with the band's triangular weights
w_bf:  r_b(t) = sum_f w_bf D(f,t) conj(M(f,t)) / (sum_f w_bf |M(f,t)|^2 + floor).
Swapping the ears turns D into -D, so r into -r: the representation knows left from right, unlike
a mel spectrogram of D (mel(-D) = mel(D)). It is decoded into a complex mask on the mono STFT
(each linear bin gets the weighted mean of the ratios of the bands that cover it), so D comes back
with the mono signal's own phase and no vocoder: a source that the ratio puts fully left (r = 1)
gives L = M, R = 0.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch

from tas_eval.device import float32_region

RATIO_LIMIT = 2.0  # |r| is clipped here: |D| > 2 |M| only where L and R nearly cancel in the mono mix
FLOOR = 1e-3  # the energy floor, relative to the mean band energy of the window


@functools.lru_cache(maxsize=8)
def _filters(sr: int, n_fft: int, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """(bands, bins) analysis weights (librosa's Slaney mel filters, 0 to sr/2) and (bands, bins) synthesis
    weights (each bin's column summing to 1; a bin no filter covers goes to the band of the nearest centre)."""
    w = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=bands, fmin=0.0, fmax=sr / 2, norm=None).astype(np.float64)
    synth = w.copy()
    centres = librosa.mel_frequencies(bands + 2, fmin=0.0, fmax=sr / 2)[1:-1]
    freqs = np.linspace(0, sr / 2, w.shape[1])
    for f in np.nonzero(synth.sum(axis=0) <= 0)[0]:
        synth[int(np.argmin(np.abs(centres - freqs[f]))), f] = 1.0
    return w, synth / synth.sum(axis=0, keepdims=True)


def band_ratio(mono_spec: torch.Tensor, diff_spec: torch.Tensor, sr: int, bands: int) -> torch.Tensor:
    """Complex STFTs (B, bins, frames) of M and D -> the band ratios as (B, 2, frames, bands) real/imaginary."""
    w, _ = _filters(sr, 2 * (mono_spec.shape[1] - 1), bands)
    w = torch.as_tensor(w, dtype=mono_spec.real.dtype, device=mono_spec.device)
    with float32_region(mono_spec.device):
        cross = torch.einsum("bf,nft->ntb", w.to(mono_spec.dtype), diff_spec * mono_spec.conj())
        energy = torch.einsum("bf,nft->ntb", w, mono_spec.abs() ** 2)
    floor = FLOOR * energy.mean(dim=(1, 2), keepdim=True) + 1e-12
    ratio = cross / (energy + floor)
    return clip_ratio(torch.stack([ratio.real, ratio.imag], dim=1))


def clip_ratio(ratio: torch.Tensor) -> torch.Tensor:
    """Band ratios (B, 2, frames, bands) with their magnitudes clipped at RATIO_LIMIT (the range of the data)."""
    magnitude = ratio.pow(2).sum(dim=1, keepdim=True).sqrt()
    return ratio * torch.clamp(RATIO_LIMIT / magnitude.clamp_min(1e-12), max=1.0)


def ratio_mask(ratio: torch.Tensor, sr: int, n_fft: int) -> torch.Tensor:
    """Band ratios (B, 2, frames, bands) -> complex mask (B, bins, frames) on the mono STFT."""
    _, synth = _filters(sr, n_fft, ratio.shape[-1])
    ratio = ratio.float()  # a ratio sampled under bfloat16 autocast: the mask is built in float32
    synth = torch.as_tensor(synth, dtype=ratio.dtype, device=ratio.device)
    with float32_region(ratio.device):
        real = torch.einsum("bf,ntb->nft", synth, ratio[:, 0])
        imag = torch.einsum("bf,ntb->nft", synth, ratio[:, 1])
    return torch.complex(real, imag)


def log_mel(spec: torch.Tensor, sr: int, bands: int) -> torch.Tensor:
    """Complex STFT (B, bins, frames) -> (B, 1, frames, bands) natural log of the mel magnitudes (floor 1e-5),
    AudioLDM's "dynamic range compression" of the mono signal, the model's condition."""
    w, _ = _filters(sr, 2 * (spec.shape[1] - 1), bands)
    w = torch.as_tensor(w, dtype=spec.real.dtype, device=spec.device)
    with float32_region(spec.device):
        return torch.log(torch.einsum("bf,nft->ntb", w, spec.abs()).clamp_min(1e-5))[:, None]
