"""Mono-Mono: the papers' lower bound, binaural audio without any spatial information.

The TAS paper (Table 1, "w/o Modality") and TASU (Table 2) describe it as "fake binaural audio
created by channel duplication of mono audio". Under the FAIR-Play convention mono = L + R, so the
prediction here is L = R = mono / 2: the difference channel D = L - R is zero and L + R gives back
the input. The metrics peak-normalize both signals by default (docs/metrics.md), and then L = R = mono
and L = R = mono / 2 score identically; halving also keeps the output inside [-1, 1] whenever the
reference is, so the prediction never clips.
"""

from __future__ import annotations

import torch

from tas_eval.models import Model


class MonoMono(Model):
    """Both ears get the mono signal (halved so that L + R = mono)."""

    name = "mono_mono"
    guidance = frozenset()
    paper = "Lower bound of TAS (Li et al., ACM MM 2024) Table 1 and TASU Table 2: channel duplication of mono audio"
    description = "L = R = mono / 2: no spatial information (the papers' Mono-Mono row)"
    trains = False
    configs = {"paper": {}, "small": {}}

    def save(self, path) -> None:
        """Nothing to save: the model has no parameters."""

    def load(self, path) -> None:
        """Nothing to load: the model has no parameters."""

    def spatialize(self, mono: torch.Tensor, sr: int, prompts=None, frames=None) -> torch.Tensor:
        """(B, 1, T) -> (B, 2, T) with both channels equal to mono / 2."""
        half = mono / 2
        return torch.cat([half, half], dim=1)
