"""The Mono2Binaural spectrogram UNet (Gao & Grauman, CVPR 2019, "2.5D Visual Sound") and its STFT.

Shapes follow the public reference (facebookresearch/2.5D-Visual-Sound, models/networks.py), read
for its layer sizes only: the input is the mixture STFT as 2 channels (real, imaginary) of
257 bins x 64 frames for a 0.63 s window (n_fft 512, hop 160, win 400 at 16 kHz); five
down-convolutions (kernel 4, stride 2, padding 1; batch norm; LeakyReLU 0.2) with widths
ngf, 2ngf, 4ngf, 8ngf, 8ngf; the guidance vector tiled over the bottleneck's 8 x 2 positions and
concatenated to it; five up-convolutions with skip connections (batch norm; ReLU), the last one a
sigmoid mapped to [-1, 1]. The output is a complex mask (real, imaginary) of 256 bins x 64 frames
that multiplies the mixture STFT (its top bin dropped) to give the STFT of L - R.
"""

from __future__ import annotations

import torch
from torch import nn

N_FFT = 512
HOP = 160
WIN = 400


def stft_ri(x: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN) -> torch.Tensor:
    """(B, T) waveforms -> (B, 2, n_fft/2 + 1, frames) real and imaginary STFT (Hann ``win``, hop ``hop``, centred).

    The defaults are the FAIR-Play line's (257 bins). The centre padding is zeros, as librosa >= 0.9 pads
    (docs/metrics.md, "Known pain points of the reference tools").
    """
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop, win, window, center=True, pad_mode="constant", return_complex=True)
    return torch.stack([spec.real, spec.imag], dim=1)


def istft_ri(spec: torch.Tensor, length: int, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN) -> torch.Tensor:
    """(B, 2, n_fft/2 + 1, frames) real/imaginary STFT -> (B, length) waveforms (inverse of ``stft_ri``)."""
    window = torch.hann_window(win, device=spec.device, dtype=spec.dtype)
    return torch.istft(torch.complex(spec[:, 0], spec[:, 1]), n_fft, hop, win, window, center=True, length=length)


def apply_complex_mask(mix: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Complex product of the mixture STFT (B, 2, F, T) without its top bin and a mask (B, 2, F-1, T)."""
    mr, mi = mix[:, 0, :-1], mix[:, 1, :-1]
    kr, ki = mask[:, 0], mask[:, 1]
    return torch.stack([mr * kr - mi * ki, mr * ki + mi * kr], dim=1)


NORMS = {"batch": nn.BatchNorm2d, "instance": nn.InstanceNorm2d}


def down_block(in_ch: int, out_ch: int, norm: str = "batch") -> nn.Sequential:
    """Convolution (kernel 4, stride 2: half the size) + norm + LeakyReLU 0.2."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1), NORMS[norm](out_ch), nn.LeakyReLU(0.2, inplace=True))


def up_block(in_ch: int, out_ch: int, last: bool = False, norm: str = "batch") -> nn.Sequential:
    """Transposed convolution (kernel 4, stride 2: twice the size) + norm + ReLU, or + sigmoid when ``last``."""
    if last:
        return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.Sigmoid())
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), NORMS[norm](out_ch), nn.ReLU(inplace=True))


class MaskUNet(nn.Module):
    """5-level UNet: mixture STFT (B, 2, 257, T) and guidance (B, cond_dim) -> complex mask (B, 2, 256, T).

    ``T`` must be a multiple of 32 (64 frames for the paper's 0.63 s window). ``norm``: "batch" as
    Mono2Binaural and APNet, or "instance" as PseudoBinaural's training scripts.
    """

    def __init__(self, cond_dim: int, ngf: int = 64, norm: str = "batch"):
        super().__init__()
        widths = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8]
        self.downs = nn.ModuleList()
        in_ch = 2
        for w in widths:
            self.downs.append(down_block(in_ch, w, norm))
            in_ch = w
        # Up path: the first takes bottleneck + tiled guidance, the others their input + the skip.
        self.ups = nn.ModuleList([
            up_block(widths[4] + cond_dim, widths[3], norm=norm),
            up_block(widths[3] * 2, widths[2], norm=norm),
            up_block(widths[2] * 2, widths[1], norm=norm),
            up_block(widths[1] * 2, widths[0], norm=norm),
            up_block(widths[0] * 2, 2, last=True),
        ])
        self.apply(init_like_reference)

    def forward(self, mix: torch.Tensor, cond: torch.Tensor, return_features: bool = False):
        """The mask; with ``return_features`` also the outputs of the first four up-convolutions
        (8ngf, 4ngf, 2ngf, ngf channels, from the coarsest), which APNet's head fuses."""
        skips = []
        x = mix
        for down in self.downs:
            x = down(x)
            skips.append(x)
        tiled = cond[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        x = self.ups[0](torch.cat([x, tiled], dim=1))
        features = [x]
        for up, skip in zip(self.ups[1:], reversed(skips[:-1])):
            x = up(torch.cat([x, skip], dim=1))
            features.append(x)
        mask = x * 2 - 1
        return (mask, features[:-1]) if return_features else mask


def init_like_reference(m: nn.Module) -> None:
    """Convolutions N(0, 0.02), batch-norm scales N(1, 0.02), as the FAIR-Play reference code initializes."""
    # The reference initializes convolutions N(0, 0.02) and batch-norm scales N(1, 0.02).
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
