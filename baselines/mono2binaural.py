"""Mono2Binaural (Gao & Grauman, "2.5D Visual Sound", CVPR 2019), guided by video frames or by text.

The network predicts a complex mask that multiplies the STFT of the mono mixture (L + R) to give the
STFT of the difference L - R (baselines/common/unet.py); the loss is the mean squared error against
the true difference STFT; the waveform comes back through the inverse STFT and L = (mono + D) / 2,
R = (mono - D) / 2. Training crops are 0.63 s, each normalized by its RMS; inference slides the
0.63 s window over the clip (hop 0.05 s in the reference demo) and averages the overlaps.

Guidance enters at the UNet bottleneck as one vector tiled over its positions:
  - ``mono2binaural_visual``: the frame nearest the window's centre -> ResNet-18 features
    (512 x H/32 x W/32) -> 1x1 conv to 8 channels (batch norm, ReLU) -> flattened (8 x 7 x 14 = 784
    for the paper's 224 x 448 frames), as the reference does;
  - ``mono2binaural_text``: the TAS paper's re-trained text variant (Table 1, "Text Modality"): the
    frozen text encoder's pooled embedding of the dense prompt nearest the window's centre ->
    a learnable linear layer to the same size as the visual vector (784 at the paper's settings).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from baselines.common.text_encoders import DEFAULT_TEXT_ENCODER, load_text_encoder
from baselines.common.trained import TrainedModel
from baselines.common.training import CropSampler, step_decay, train_loop
from baselines.common.unet import MaskUNet, apply_complex_mask, istft_ri, stft_ri
from baselines.common.visual import ResNet18Features, load_resnet18_weights
from baselines.tas import window_text
from tas_eval.audio import SAMPLE_RATE, binaural_from_difference

log = logging.getLogger(__name__)

PAPER = "Gao & Grauman, 2.5D Visual Sound, CVPR 2019 (MONO2BINAURAL)"
VISUAL_CHANNELS = 8  # the reference's 1x1 reduction of the ResNet features


class VisualGuidance(nn.Module):
    """Frame (B, 3, H, W) -> guidance vector (B, 8 * H/32 * W/32)."""

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.backbone = ResNet18Features()
        if weights:
            load_resnet18_weights(self.backbone, weights)
        self.reduce = nn.Sequential(nn.Conv2d(ResNet18Features.out_channels, VISUAL_CHANNELS, 1),
                                    nn.BatchNorm2d(VISUAL_CHANNELS), nn.ReLU(inplace=True))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.backbone(images)).flatten(1)


class Mono2BinauralNet(nn.Module):
    """Guidance network + mask UNet; ``forward(mix_spec, guidance_input) -> mask``."""

    def __init__(self, kind: str, cond_dim: int, ngf: int, text_dim: int = 0, visual_weights: str | None = None):
        super().__init__()
        self.kind = kind
        if kind == "visual":
            self.guide = VisualGuidance(visual_weights)
        else:
            self.guide = nn.Linear(text_dim, cond_dim)
        self.unet = MaskUNet(cond_dim, ngf)

    def forward(self, mix: torch.Tensor, guidance_input: torch.Tensor) -> torch.Tensor:
        return self.unet(mix, self.guide(guidance_input))


_PAPER_CONFIG = {
    # 2.5D-Visual-Sound README/options: batch 256, Adam (0.9, 0.999), lr 1e-3 (UNet) and 1e-4 (visual),
    # weight decay 5e-4, 1000 epochs with lr x0.94 every 10 epochs (1497 clips / 256 = 6 steps an
    # epoch: 6000 steps, decay every 60), 0.63 s crops, ngf 64, frames 224 x 448, inference hop 0.05 s.
    "batch_size": 256, "steps": 6000, "lr": 1e-3, "lr_visual": 1e-4, "beta1": 0.9, "weight_decay": 5e-4,
    "lr_decay_every": 60, "lr_decay": 0.94, "crop_s": 0.63, "hop_s": 0.05, "ngf": 64,
    "image_size": [224, 448], "visual_weights": None, "text_encoder": DEFAULT_TEXT_ENCODER,
    "window_batch": None, "inference_batch": 4, "checkpoint_every": 200,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "batch_size": 16, "steps": 300, "lr_decay_every": 100, "hop_s": 0.1, "ngf": 16, "image_size": [64, 128],
    "inference_batch": 2, "checkpoint_every": 50,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "batch_size": 4, "steps": 10, "lr": 3e-3, "lr_visual": 1e-3, "hop_s": 0.63, "ngf": 4, "image_size": [32, 64],
    "checkpoint_every": 5,
}


def _cond_dim(kind: str, config: dict) -> int:
    if kind == "text":
        return int(config["cond_dim"])
    h, w = (int(x) for x in config["image_size"])
    return VISUAL_CHANNELS * (-(-h // 32)) * (-(-w // 32))


class Mono2Binaural(TrainedModel):
    """Shared code of the visual and text variants (``kind`` = "visual" or "text")."""

    kind = "visual"
    paper = PAPER
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}

    def _build(self, config: dict, loading: bool = False) -> None:
        self.config = dict(config)
        text_dim = 0
        if self.kind == "text":
            self.text_encoder = load_text_encoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
            text_dim = self.text_encoder.dim
        weights = None if loading else config.get("visual_weights")
        self.net = Mono2BinauralNet(self.kind, _cond_dim(self.kind, config), int(config["ngf"]), text_dim, weights)

    # -- training --------------------------------------------------------------------------

    def _batch_guidance(self, sampler: CropSampler, batch: dict) -> torch.Tensor:
        if self.kind == "text":
            return self.guidance_input(texts=batch["prompts"])
        return self.guidance_input(images=sampler.frames(batch["item_ids"], batch["centres_s"], self.config["image_size"]))

    def training_loss(self, batch: dict, guidance_input: torch.Tensor) -> torch.Tensor:
        """MSE between the masked mixture STFT and the STFT of L - R (top bin dropped, as the reference)."""
        mix = stft_ri(batch["mono"][:, 0].to(self.device))
        target = stft_ri(batch["diff"][:, 0].to(self.device))[:, :, :-1]
        mask = self.net(mix, guidance_input)
        return torch.mean((apply_complex_mask(mix, mask) - target) ** 2)

    def batch_loss(self, sampler: CropSampler, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss of a ``sampler.batch(...)`` (the common signature of the trained baselines)."""
        return self.training_loss(batch, self._batch_guidance(sampler, batch))

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split``; resumes from ``checkpoint_dir`` when it holds a state."""
        torch.manual_seed(seed)
        self._build(config)
        self.to(device)
        sampler = CropSampler(dataset, split, float(config["crop_s"]), seed)
        if self.text_encoder is not None:
            self.text_encoder.encode(sampler.dense_texts())  # fills the encoder's cache once
        betas = (float(config["beta1"]), 0.999)
        if self.kind == "visual":
            groups = [{"params": self.net.guide.parameters(), "lr": float(config["lr_visual"])},
                      {"params": self.net.unet.parameters(), "lr": float(config["lr"])}]
        else:
            groups = [{"params": self.net.parameters(), "lr": float(config["lr"])}]
        optimizer = torch.optim.Adam(groups, betas=betas, weight_decay=float(config["weight_decay"]))
        schedule = step_decay(optimizer, int(config["lr_decay_every"]), float(config["lr_decay"]))

        def loss_at(step: int) -> torch.Tensor:
            return self.batch_loss(sampler, sampler.batch(step, int(config["batch_size"])))

        self.losses = train_loop(self.net, optimizer, loss_at, int(config["steps"]), checkpoint_dir,
                                 int(config.get("checkpoint_every", 100)), desc=f"training {self.name}", on_step=schedule)

    # -- inference -------------------------------------------------------------------------

    def window_predictor(self, prompt=None, frame_fn=None, sr: int = SAMPLE_RATE):
        """``predict(windows (N,1,W), starts (N,)) -> (N,2,W)`` for sliding_window_inference."""

        @torch.no_grad()
        def predict(windows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            width = windows.shape[-1]
            centres = [(int(s) + width / 2) / sr for s in starts.tolist()]
            if self.kind == "text":
                guidance = self.guidance_input(texts=[window_text(prompt, c) for c in centres])
            else:
                guidance = self.guidance_input(images=frame_fn(np.asarray(centres), size=tuple(self.config["image_size"])))
            mix = stft_ri(windows[:, 0])
            spec = apply_complex_mask(mix, self.net(mix, guidance))
            spec = torch.nn.functional.pad(spec, (0, 0, 0, 1))  # the dropped top bin comes back as zeros
            diff = istft_ri(spec, width)[:, None]
            return binaural_from_difference(windows, diff)

        return predict


class Mono2BinauralVisual(Mono2Binaural):
    name = "mono2binaural_visual"
    guidance = frozenset({"visual"})
    kind = "visual"
    description = "MONO2BINAURAL: complex-mask STFT UNet guided by the video frame (ResNet-18 trained from scratch)"


class Mono2BinauralText(Mono2Binaural):
    name = "mono2binaural_text"
    guidance = frozenset({"text"})
    kind = "text"
    paper = PAPER + ", re-trained with text guidance as in TAS (Li et al., ACM MM 2024, seed 000) Table 1"
    description = "MONO2BINAURAL re-trained with text guidance (TAS Table 1): pooled MiniLM prompt embedding tiled at the bottleneck"
    # The text vector has the size the visual one has at the same profile (784 = 8 x 7 x 14 at the paper's).
    configs = {p: {k: v for k, v in c.items() if k not in ("lr_visual", "image_size", "visual_weights")}
               | {"cond_dim": _cond_dim("visual", c)} for p, c in Mono2Binaural.configs.items()}
