"""A 3-D CNN in the shape of C3D (Tran et al., ICCV 2015) without its fully connected layers.

C3D: eight 3x3x3 convolutions (64, 128, 256, 256, 512, 512, 512, 512 channels) and five max pools,
the first spatial only. SAGM (seed 002) cuts the temporal downsampling from 16 to 4, so its 4
frames of a 1 s window come out as one temporal step: here the second and third pools halve time
and the fourth and fifth do not. (B, 3, 4, H, W) -> (B, 8w, 1, H/32, W/32) with ``width`` w (64 =
C3D's). No Sports-1M weights can be installed here; "C3D w/o pretrained" is a row of SAGM's Table 4.
A batch norm after every convolution (C3D has none) lets it train from scratch in few steps.
"""

from __future__ import annotations

import torch
from torch import nn

from tas_eval.device import float32_region

# (channels as a multiple of the width, pool after it: (time, height, width) or None)
_LAYERS = [(1, (1, 2, 2)), (2, (2, 2, 2)), (4, None), (4, (2, 2, 2)), (8, None), (8, (1, 2, 2)), (8, None),
           (8, (1, 2, 2))]


class C3DFeatures(nn.Module):
    """(B, 3, T, H, W) frames -> (B, 8 * width, T/4, H/32, W/32) features."""

    def __init__(self, width: int = 64):
        super().__init__()
        layers, in_ch = [], 3
        for mult, pool in _LAYERS:
            out_ch = mult * width
            layers += [nn.Conv3d(in_ch, out_ch, 3, padding=1), nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool3d(pool, pool))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.out_channels = in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # float32 whatever the precision of the model around it: under CPU bfloat16 autocast, training this
        # network twice from the same seed gave different weights, and NaN weights in some runs; in float32
        # it is deterministic (tests/unit/test_precision.py)
        with float32_region(frames.device):
            return self.features(frames.float())
