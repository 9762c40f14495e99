"""APNet's associative pyramid head and the losses of the FAIR-Play line after Mono2Binaural.

Zhou et al., "Sep-Stereo: Visually Guided Stereophonic Audio Generation by Associating Source
Separation", ECCV 2020; shapes read from the public reference (SheldonTsui/SepStereo_ECCV2020,
models/networks.py and train.py), the code is our own.

The head sits on the decoder of the mask UNet (baselines/common/unet.py). At each of its four
levels an associative fusion block turns the guidance map (512 channels x P positions: 7 x 14 for
the paper's 224 x 448 frames) through a 1x1 convolution and a ReLU into one kernel per position
over the level's audio channels, and applies each as a 1x1 convolution to the audio features: P
output channels, one per visual position. Each fused map is upsampled (transposed convolution, norm,
ReLU) and concatenated with the next level's (P -> 2P channels); two last transposed convolutions
(sigmoid mapped to [-1, 1]) give complex masks that multiply the mixture STFT into the STFTs of the
left and the right channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.unet import apply_complex_mask, init_like_reference, up_block

VISUAL_CHANNELS = 512


class FusionBlock(nn.Module):
    """Guidance map (B, 512, h, w) and audio features (B, C, H, W) -> (B, h*w, H, W)."""

    def __init__(self, audio_channels: int, vision_channels: int = VISUAL_CHANNELS):
        super().__init__()
        self.kernels = nn.Conv1d(vision_channels, audio_channels, 1)

    def forward(self, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        b, c, h, w = audio.shape
        kernels = torch.relu(self.kernels(vision.flatten(2)))  # (B, C, P): a 1x1 kernel per visual position
        return torch.bmm(kernels.transpose(1, 2), audio.flatten(2)).view(b, -1, h, w)


class APNetHead(nn.Module):
    """The four fusion levels over the UNet's up-features (8ngf, 4ngf, 2ngf, ngf channels) -> masks of L and R.

    ``positions`` is the number of positions of the guidance map (h * w).
    """

    def __init__(self, ngf: int, positions: int, norm: str = "batch"):
        super().__init__()
        p = positions
        self.fusions = nn.ModuleList([FusionBlock(ngf * k) for k in (8, 4, 2, 1)])
        self.ups = nn.ModuleList([up_block(p, p, norm=norm), up_block(2 * p, p, norm=norm),
                                  up_block(2 * p, p, norm=norm)])
        self.left = up_block(2 * p, 2, last=True)
        self.right = up_block(2 * p, 2, last=True)
        self.apply(init_like_reference)

    def forward(self, features: list[torch.Tensor], vision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.ups[0](self.fusions[0](features[0], vision))
        for fusion, up, feat in zip(self.fusions[1:3], self.ups[1:], features[1:3]):
            x = up(torch.cat([fusion(feat, vision), x], dim=1))
        x = torch.cat([self.fusions[3](features[3], vision), x], dim=1)
        return self.left(x) * 2 - 1, self.right(x) * 2 - 1


def side_columns(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Sep-Stereo's guidance map for two solo sources treated as left and right.

    Each source's map (B, 512, h, w) is max-pooled over its width; the first fills the leftmost column
    and the second the rightmost column of an all-zero (B, 512, h, w) map.
    """
    out = torch.zeros_like(first)
    out[..., 0] = F.adaptive_max_pool2d(first, (first.shape[2], 1))[..., 0]
    out[..., -1] = F.adaptive_max_pool2d(second, (second.shape[2], 1))[..., 0]
    return out


def apnet_losses(mix: torch.Tensor, target_diff: torch.Tensor, diff_mask: torch.Tensor, left_mask: torch.Tensor,
                 right_mask: torch.Tensor, criterion) -> tuple[torch.Tensor, torch.Tensor]:
    """(stereo loss, fusion loss) of the reference's training script.

    ``mix`` (B, 2, 257, T) is the STFT of L + R and ``target_diff`` (B, 2, 256, T) the STFT of L - R
    without its top bin. Stereo: crit(D^, D); fusion: crit(2 L^ - M, D) / 2 + crit(M - 2 R^, D) / 2.
    """
    m = mix[:, :, :-1]
    stereo = criterion(apply_complex_mask(mix, diff_mask), target_diff)
    left, right = apply_complex_mask(mix, left_mask), apply_complex_mask(mix, right_mask)
    fusion = criterion(2 * left - m, target_diff) / 2 + criterion(m - 2 * right, target_diff) / 2
    return stereo, fusion
