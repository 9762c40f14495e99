"""APNet and Sep-Stereo (Zhou et al., "Sep-Stereo", ECCV 2020), guided by video frames or by text.

The Mono2Binaural UNet (baselines/common/unet.py) predicts a complex mask giving the STFT of L - R
from the mixture L + R, with the guidance map reduced to 8 channels, flattened and tiled at its
bottleneck; APNet's associative pyramid head (baselines/common/apnet.py) fuses the guidance map with
the UNet's four decoder levels and predicts complex masks for L and for R. Training minimizes the
stereo loss crit(D^, D) plus the fusion loss crit(2 L^ - M, D) / 2 + crit(M - 2 R^, D) / 2 (crit: MSE
for APNet, L1 for Sep-Stereo); inference takes L and R from the head's two masks, over 0.63 s windows
normalized by their RMS, as the reference's test script does.

Guidance map (512 channels x h x w positions):
  - visual: the frame at the window's centre through a ResNet-18 whose last stage is dilated, then
    a 2x2 average pool (7 x 14 for 224 x 448 frames);
  - text (TAS Table 1 retrained APNet with text; how is not stated): the frozen text encoder's pooled
    embedding of the dense prompt at the window's centre through a learnable Linear(d, 512 h w),
    reshaped into a pseudo visual map that feeds the tiling and every fusion block alike.

Sep-Stereo adds a separation task: two isolated TRAIN sources s1 and s2, treated as left = s1 and
right = s2 (mix s1 + s2, target s1 - s2), with a guidance map that holds s1's map max-pooled over its
width in its leftmost column and s2's in its rightmost (zeros elsewhere). A first stage trains on
separation alone; the second starts from its weights and trains on stereo plus 0.4 x separation.
For text, each source's map is the text map of "the <noun>".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from baselines.common.apnet import VISUAL_CHANNELS, APNetHead, apnet_losses, side_columns
from baselines.common.solo_sources import SoloSources
from baselines.common.text_encoders import DEFAULT_TEXT_ENCODER, load_text_encoder
from baselines.common.trained import TrainedModel
from baselines.common.training import CropSampler, step_decay, train_loop
from baselines.common.unet import MaskUNet, apply_complex_mask, init_like_reference, istft_ri, stft_ri
from baselines.common.visual import ResNet18Features, load_resnet18_weights
from baselines.tas import window_text
from tas_eval.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

PAPER = "Zhou et al., Sep-Stereo: Visually Guided Stereophonic Audio Generation by Associating Source Separation, ECCV 2020"
TILE_CHANNELS = 8  # the reference reduces the guidance map to 8 channels before tiling it at the bottleneck
CRITERIA = {"mse": nn.functional.mse_loss, "l1": nn.functional.l1_loss}


def map_size(config: dict) -> tuple[int, int]:
    """(h, w) positions of the guidance map: ``map_hw`` of a text config, else the frame size over 32 (7 x 14
    for 224 x 448)."""
    if "map_hw" in config:
        h, w = (int(x) for x in config["map_hw"])
        return h, w
    h, w = (int(x) for x in config["image_size"])
    return h // 32, w // 32


class APNetNet(nn.Module):
    """Guidance network, mask UNet and APNet head; ``forward(mix_spec, guidance_map) -> (D, L, R) masks``."""

    def __init__(self, kind: str, ngf: int, map_hw: tuple[int, int], text_dim: int = 0, norm: str = "batch",
                 dilated: bool = True, visual_weights: str | None = None):
        super().__init__()
        self.kind = kind
        self.map_hw = tuple(map_hw)
        positions = self.map_hw[0] * self.map_hw[1]
        if kind == "visual":
            self.visual = ResNet18Features(dilated=dilated)
            if visual_weights:
                load_resnet18_weights(self.visual, visual_weights)
        else:
            self.text_map = nn.Linear(text_dim, VISUAL_CHANNELS * positions)
            init_like_reference(self.text_map)
        self.reduce = nn.Sequential(nn.Conv2d(VISUAL_CHANNELS, TILE_CHANNELS, 1), nn.BatchNorm2d(TILE_CHANNELS),
                                    nn.ReLU(inplace=True))
        self.reduce.apply(init_like_reference)
        self.unet = MaskUNet(TILE_CHANNELS * positions, ngf, norm)
        self.head = APNetHead(ngf, positions, norm)

    def guidance_map(self, guidance_input: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, H, W) or pooled text embeddings (B, d) -> (B, 512, h, w)."""
        if self.kind == "visual":
            return self.visual(guidance_input)
        return self.text_map(guidance_input).view(-1, VISUAL_CHANNELS, *self.map_hw)

    def forward(self, mix: torch.Tensor, vmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        diff_mask, features = self.unet(mix, self.reduce(vmap).flatten(1), return_features=True)
        left_mask, right_mask = self.head(features, vmap)
        return diff_mask, left_mask, right_mask

    def parameter_groups(self) -> dict[str, list]:
        """The reference's three learning-rate groups; the text map (trained from scratch) goes with the audio."""
        guide = list(self.visual.parameters()) if self.kind == "visual" else []
        audio = list(self.unet.parameters()) + list(self.reduce.parameters())
        if self.kind == "text":
            audio += list(self.text_map.parameters())
        return {"visual": guide, "audio": audio, "fusion": list(self.head.parameters())}


def _waveform(mix: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """Masked mixture STFT back to (B, length) samples; the dropped top bin comes back as zeros."""
    spec = nn.functional.pad(apply_complex_mask(mix, mask), (0, 0, 0, 1))
    return istft_ri(spec, length)


# Settings read from the reference's scripts (scripts/stereo/APNet_train.sh and the options); epochs are
# written as steps of FAIR-Play's 1497 training clips (6 steps an epoch at batch 256).
_PAPER_CONFIG = {
    "batch_size": 256, "steps": 6000, "lr_visual": 1e-4, "lr_audio": 1e-3, "lr_fusion": 1e-3, "beta1": 0.9,
    "weight_decay": 5e-4, "lr_decay": 0.94, "lr_decay_every": 60, "loss": "mse", "norm": "batch", "dilated": True,
    "crop_s": 0.63, "hop_s": 0.1, "ngf": 64, "image_size": [224, 448], "visual_weights": None,
    "text_encoder": DEFAULT_TEXT_ENCODER, "window_batch": None, "checkpoint_every": 200,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "batch_size": 16, "steps": 300, "lr_decay_every": 100, "ngf": 16, "image_size": [64, 128], "checkpoint_every": 50,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "batch_size": 4, "steps": 10, "lr_visual": 1e-3, "lr_audio": 3e-3, "lr_fusion": 3e-3, "hop_s": 0.63, "ngf": 4,
    "image_size": [32, 64], "checkpoint_every": 5,
}


class APNet(TrainedModel):
    """APNet guided by ``kind`` ("visual" or "text"); Sep-Stereo subclasses add the separation stage."""

    kind = "visual"
    paper = PAPER
    separation = False
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}

    def _build(self, config: dict, loading: bool = False) -> None:
        self.config = dict(config)
        text_dim = 0
        if self.kind == "text":
            self.text_encoder = load_text_encoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
            text_dim = self.text_encoder.dim
        weights = None if loading else config.get("visual_weights")
        self.net = APNetNet(self.kind, int(config["ngf"]), map_size(config), text_dim, config.get("norm", "batch"),
                            bool(config.get("dilated", True)), weights)

    # -- guidance ------------------------------------------------------------------------------

    def _crop_map(self, sampler: CropSampler, batch: dict) -> torch.Tensor:
        """Guidance map of real training crops: the frame or the dense text at each crop's centre."""
        if self.kind == "text":
            return self.net.guidance_map(self.guidance_input(texts=batch["prompts"]))
        frames = sampler.frames(batch["item_ids"], batch["centres_s"], self.config["image_size"])
        return self.net.guidance_map(self.guidance_input(images=frames))

    def _separation_map(self, solo: SoloSources, batch: dict) -> torch.Tensor:
        """Sep-Stereo's two-column map of each separation pair (``SoloSources.separation_batch``)."""
        maps = []
        for k in (0, 1):
            if self.kind == "text":
                inp = self.guidance_input(texts=[p[k] for p in batch["prompts"]])
            else:
                size = tuple(self.config["image_size"])
                inp = self.guidance_input(images=np.stack([solo.solo_frame(c[k], size) for c in batch["categories"]]))
            maps.append(self.net.guidance_map(inp))
        return side_columns(maps[0], maps[1])

    # -- losses --------------------------------------------------------------------------------

    def _loss(self, mono: torch.Tensor, diff: torch.Tensor, vmap: torch.Tensor) -> torch.Tensor:
        """Stereo + fusion loss of crops ``mono`` and ``diff`` (B, 1, W) under guidance maps ``vmap``."""
        mix = stft_ri(mono[:, 0].to(self.device))
        target = stft_ri(diff[:, 0].to(self.device))[:, :, :-1]
        stereo, fusion = apnet_losses(mix, target, *self.net(mix, vmap), CRITERIA[self.config["loss"]])
        return stereo + fusion

    def batch_loss(self, sampler: CropSampler, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The stereo training loss of a ``sampler.batch(...)`` (the common signature of the trained baselines)."""
        return self._loss(batch["mono"], batch["diff"], self._crop_map(sampler, batch))

    def separation_loss(self, solo: SoloSources, step: int, batch_size: int) -> torch.Tensor:
        """Stereo + fusion loss on the separation pairs of training step ``step``."""
        batch = solo.separation_batch(step, batch_size)
        return self._loss(torch.from_numpy(batch["mono"]), torch.from_numpy(batch["diff"]), self._separation_map(solo, batch))

    # -- training ------------------------------------------------------------------------------

    def _optimizer(self, config: dict, prefix: str = ""):
        """(Adam over the reference's three rate groups, its step-decay schedule) for stage ``prefix``."""
        groups = [{"params": params, "lr": float(config[f"{prefix}lr_{name}"])}
                  for name, params in self.net.parameter_groups().items() if params]  # text models have no visual group
        optimizer = torch.optim.Adam(groups, betas=(float(config["beta1"]), 0.999), weight_decay=float(config["weight_decay"]))
        return optimizer, step_decay(optimizer, int(config[f"{prefix}lr_decay_every"]), float(config[f"{prefix}lr_decay"]))

    def _prepare(self, dataset, split: int, config: dict, device: str, seed: int) -> CropSampler:
        torch.manual_seed(seed)
        self._build(config)
        self.to(device)
        sampler = CropSampler(dataset, split, float(config["crop_s"]), seed)
        if self.text_encoder is not None:
            self.text_encoder.encode(sampler.dense_texts())  # fills the encoder's cache once
        return sampler

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split``; resumes from ``checkpoint_dir`` when it holds a state."""
        sampler = self._prepare(dataset, split, config, device, seed)
        optimizer, schedule = self._optimizer(config)
        batch = int(config["batch_size"])

        def loss_at(step: int) -> torch.Tensor:
            return self.batch_loss(sampler, sampler.batch(step, batch))

        self.losses = train_loop(self.net, optimizer, loss_at, int(config["steps"]), checkpoint_dir,
                                 int(config.get("checkpoint_every", 100)), desc=f"training {self.name}",
                                 on_step=schedule)

    # -- inference -----------------------------------------------------------------------------

    def window_predictor(self, prompt=None, frame_fn=None, sr: int = SAMPLE_RATE):
        """``predict(windows (N,1,W), starts (N,)) -> (N,2,W)`` for sliding_window_inference: L and R from the heads."""

        @torch.no_grad()
        def predict(windows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            width = windows.shape[-1]
            centres = [(int(s) + width / 2) / sr for s in starts.tolist()]
            if self.kind == "text":
                inp = self.guidance_input(texts=[window_text(prompt, c) for c in centres])
            else:
                inp = self.guidance_input(images=frame_fn(np.asarray(centres), size=tuple(self.config["image_size"])))
            mix = stft_ri(windows[:, 0])
            _, left_mask, right_mask = self.net(mix, self.net.guidance_map(inp))
            return torch.stack([_waveform(mix, left_mask, width), _waveform(mix, right_mask, width)], dim=1)

        return predict


class APNetVisual(APNet):
    name = "apnet_visual"
    guidance = frozenset({"visual"})
    kind = "visual"
    description = "APNet (Sep-Stereo paper): mask UNet + associative pyramid head guided by the frame (ResNet-18 from scratch)"


def text_configs(configs: dict) -> dict:
    """The text variant's configs of visual configs: no frame settings, a text map of the visual map's size."""
    # The text map has the positions the visual map has at the same profile (7 x 14 at the paper's).
    return {p: {k: v for k, v in c.items() if k not in ("visual_weights", "dilated", "image_size", "lr_visual",
                                                         "sep_lr_visual")} | {"map_hw": list(map_size(c))}
            for p, c in configs.items()}


class APNetText(APNet):
    name = "apnet_text"
    guidance = frozenset({"text"})
    kind = "text"
    paper = PAPER + ", re-trained with text guidance as in TAS (Li et al., ACM MM 2024, seed 000) Table 1"
    description = "APNet re-trained with text guidance (TAS Table 1): pooled MiniLM prompt -> linear pseudo visual map"
    configs = text_configs(APNet.configs)


# Sep-Stereo: scripts/sep/APNet_train.sh (separation: batch 256, 200 epochs, lr 1e-4 / 1e-3 / 1e-3, x0.94 every
# 2 epochs) then scripts/sepstereo/APNet_train.sh (batch 144, 100 epochs, lr 1e-5 / 5e-4 / 1e-3, x0.9 every 5
# epochs, separation weight 0.4), both L1. Epochs as steps: 6 an epoch at batch 256, 10.4 at batch 144.
_SEP_PAPER = {
    **_PAPER_CONFIG,
    "loss": "l1",
    "sep_batch_size": 256, "sep_steps": 1200, "sep_lr_visual": 1e-4, "sep_lr_audio": 1e-3, "sep_lr_fusion": 1e-3,
    "sep_lr_decay": 0.94, "sep_lr_decay_every": 12,
    "batch_size": 144, "steps": 1040, "lr_visual": 1e-5, "lr_audio": 5e-4, "lr_fusion": 1e-3, "lr_decay": 0.9,
    "lr_decay_every": 52, "sep_weight": 0.4,
}
_SEP_SMALL = {
    **_SEP_PAPER,
    "ngf": 16, "image_size": [64, 128], "checkpoint_every": 50,
    "sep_batch_size": 16, "sep_steps": 100, "sep_lr_decay_every": 50,
    "batch_size": 16, "steps": 200, "lr_decay_every": 100,
}
_SEP_TINY = {
    **_SEP_SMALL,
    "sep_batch_size": 4, "sep_steps": 4, "sep_lr_visual": 1e-3, "sep_lr_audio": 3e-3, "sep_lr_fusion": 3e-3,
    "batch_size": 4, "steps": 8, "lr_visual": 1e-3, "lr_audio": 3e-3, "lr_fusion": 3e-3, "hop_s": 0.63, "ngf": 4,
    "image_size": [32, 64], "checkpoint_every": 4,
}


class SepStereo(APNet):
    """APNet pre-trained on separation of isolated train sources, then trained on stereo + 0.4 separation."""

    separation = True
    configs = {"paper": _SEP_PAPER, "small": _SEP_SMALL, "tiny": _SEP_TINY}

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Stage 1 (separation only) in ``checkpoint_dir/separation``, stage 2 (stereo + separation) from its
        weights in ``checkpoint_dir/stereo``; each resumes from its own state."""
        sampler = self._prepare(dataset, split, config, device, seed)
        solo = SoloSources(dataset, split, float(config["crop_s"]), seed, self.name)
        checkpoint_dir = Path(checkpoint_dir)
        every = int(config.get("checkpoint_every", 100))

        optimizer, schedule = self._optimizer(config, prefix="sep_")
        sep_batch = int(config["sep_batch_size"])
        self.separation_losses = train_loop(
            self.net, optimizer, lambda step: self.separation_loss(solo, step, sep_batch), int(config["sep_steps"]),
            checkpoint_dir / "separation", every, desc=f"training {self.name}: separation", on_step=schedule)

        optimizer, schedule = self._optimizer(config)
        batch, weight = int(config["batch_size"]), float(config["sep_weight"])
        offset = int(config["sep_steps"])  # the second stage's separation pairs are new ones

        def loss_at(step: int) -> torch.Tensor:
            stereo = self.batch_loss(sampler, sampler.batch(step, batch))
            return stereo + weight * self.separation_loss(solo, offset + step, batch)

        self.losses = train_loop(self.net, optimizer, loss_at, int(config["steps"]), checkpoint_dir / "stereo", every,
                                 desc=f"training {self.name}: stereo + separation", on_step=schedule)


class SepStereoVisual(SepStereo):
    name = "sepstereo_visual"
    guidance = frozenset({"visual"})
    kind = "visual"
    description = "Sep-Stereo: APNet pre-trained on separating two solo train sources, then stereo + separation; frames"


class SepStereoText(SepStereo):
    name = "sepstereo_text"
    guidance = frozenset({"text"})
    kind = "text"
    paper = PAPER + ", re-trained with text guidance as in TAS (Li et al., ACM MM 2024, seed 000) Table 1"
    description = "Sep-Stereo re-trained with text guidance: per-source prompts in the left and right columns of the map"
    configs = text_configs(SepStereo.configs)
