"""The localizer network: binaural features -> per 0.1 s frame, posteriors over azimuth, elevation,
distance and source category.

A small convolutional encoder in Spatial-AST's spirit, sized to train on two CPU cores: blocks of two
3x3 convolutions (batch norm, ReLU) followed by 2x average pooling over mel bands only, so every 10 ms
frame keeps its own embedding; a linear layer per frame; the frames of each 0.1 s annotation frame
averaged; two 1-D convolutions over annotation frames (context +-0.2 s); four linear heads.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from tas_eval.metrics.localizer.features import FRAMES_PER_LABEL, N_MELS


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.AvgPool2d((1, 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LocalizerNet(nn.Module):
    """(B, 4, frames, N_MELS) features -> {"azimuth", "elevation", "distance", "category"}: logits
    (B, frames // FRAMES_PER_LABEL, classes) per 0.1 s frame."""

    def __init__(self, sizes: dict, widths: tuple[int, ...] = (16, 32, 64), hidden: int = 128):
        super().__init__()
        chans = (4,) + tuple(widths)
        self.blocks = nn.Sequential(*[_Block(chans[i], chans[i + 1]) for i in range(len(widths))])
        bands = N_MELS // 2 ** len(widths)
        self.frame = nn.Sequential(nn.Linear(widths[-1] * bands, hidden), nn.ReLU())
        self.context = nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU(),
                                     nn.Conv1d(hidden, hidden, 3, padding=1), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in sizes.items()})

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 4, frames, N_MELS) features -> (B, frames // FRAMES_PER_LABEL, hidden): the embedding of each
        0.1 s frame that the heads read (the encoder's output)."""
        b, _, t, _ = features.shape
        labels = t // FRAMES_PER_LABEL
        x = self.blocks(features[:, :, : labels * FRAMES_PER_LABEL])  # (B, C, frames, bands)
        x = self.frame(x.permute(0, 2, 1, 3).flatten(2))  # (B, frames, hidden)
        x = x.reshape(b, labels, FRAMES_PER_LABEL, -1).mean(dim=2)  # (B, labels, hidden)
        return x + self.context(x.transpose(1, 2)).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.embed(features)
        return {name: head(x) for name, head in self.heads.items()}
