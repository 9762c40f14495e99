"""SAGM, the Stereo Audio Generation Model (Li, Zhao, Yuan, arXiv 2311.07630; seeds 002 and 003): a
visually guided GAN that turns mono into binaural audio. The paper has no public code; every choice
it leaves open is made here and recorded in the model cards.

Generator: the mixture STFT M (Hann 400, hop 240, n_fft 448: 225 bins; a centred 1 s window has 67
frames, the first 64 are used) through the AudioNet encoder (5 strided convolutions) and 5
up-convolutions with skips, the guidance vector tiled at the bottleneck; the output, a complex
ratio mask in [-1, 1] (``MaskUNet``: 2 sigmoid - 1 = tanh of half its input, the paper's tanh up to
the scale of its input), multiplies M (top bin dropped) into the STFT of D = L - R; L = (M + D) / 2,
R = (M - D) / 2 after the inverse STFT.

Discriminator: the real or generated difference spectrogram through an AudioNet-like encoder to
1/32 of its size, the guidance tiled and concatenated as in the generator, two 3x3 convolutions and
an average pool to one logit; binary cross-entropy.

Guidance, shared by generator and discriminator ("updated alternately": both optimizers step it):
  - visual: 4 frames of the 1 s window (the centres of its quarters) through a C3D-shaped 3-D CNN
    (baselines/common/c3d.py; 512 x 1 x 7 x 7 for 224 x 224 frames), each side reducing the map
    with its own 1x1 convolution to 8 channels (batch norm, ReLU) before flattening, as
    Mono2Binaural does (the paper gives no reduction);
  - text: the frozen text encoder's pooled embedding of the dense prompt at the window's centre
    through one learnable linear projection, shared by both sides;
  - ``sagm_visual_noshare``: the discriminator has its own 3-D CNN (Table 4, "w/o shared");
  - ``sagm_novisual``: no guidance on either side (Table 4, "w/o V").

Training alternates a generator step (L1 between generated and true difference STFT, plus
``adv_weight`` x the non-saturating adversarial loss) and a discriminator step (BCE on the true
difference spectrogram as real and the generated one, detached, as fake), logs both, and keeps the
weights of the step with the lowest L1 on fixed crops of the validation part (every ``val_every``
steps). Inference slides 1 s windows with hop 0.1 s; the mask of the 64th frame is repeated over the
last 3 frames so that the whole window is masked.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from baselines.common.c3d import C3DFeatures
from baselines.common.text_encoders import DEFAULT_TEXT_ENCODER, load_text_encoder
from baselines.common.trained import TrainedModel
from baselines.common.training import TRAIN_STATE, CropSampler, save_atomic
from baselines.common.unet import MaskUNet, apply_complex_mask, down_block, init_like_reference, istft_ri, stft_ri
from baselines.common.visual import frames_to_tensor
from baselines.tas import window_text
from tas_eval.audio import SAMPLE_RATE, binaural_from_difference
from tas_eval.errors import UserError

log = logging.getLogger(__name__)

PAPER = ("Li, Zhao, Yuan, Cross-modal Generative Model for Visual-Guided Binaural Stereo Generation (SAGM), "
         "arXiv 2311.07630 (seeds 002 and 003)")
N_FFT, HOP, WIN = 448, 240, 400  # 28 ms FFT, 15 ms hop, 25 ms Hann window at 16 kHz
FRAMES = 64  # the paper's 225 x 64 spectrogram: the first 64 of a centred 1 s window's 67 frames
FPS = 4  # video frames per second of audio
TILE_CHANNELS = 8


def spectrogram(x: torch.Tensor) -> torch.Tensor:
    """(B, T) waveforms -> (B, 2, 225, frames): SAGM's STFT, real and imaginary parts."""
    return stft_ri(x, N_FFT, HOP, WIN)


class Reduce(nn.Module):
    """3-D CNN features (B, C, 1, h, w) -> (B, 8 h w): a 1x1 convolution to 8 channels, batch norm, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, TILE_CHANNELS, 1), nn.BatchNorm2d(TILE_CHANNELS),
                                  nn.ReLU(inplace=True))
        self.conv.apply(init_like_reference)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features.mean(dim=2)).flatten(1)  # the time axis is 1 long: mean = squeeze


class Discriminator(nn.Module):
    """Difference spectrogram (B, 2, F, 64) and guidance (B, cond_dim) -> real/fake logit (B,)."""

    def __init__(self, cond_dim: int, ngf: int):
        super().__init__()
        widths = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8]
        layers, in_ch = [], 2
        for w in widths:
            layers.append(down_block(in_ch, w))
            in_ch = w
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(in_ch + cond_dim, ngf * 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ngf * 4, 1, 3, 1, 1))
        self.apply(init_like_reference)

    def forward(self, spec: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.encoder(spec)
        tiled = cond[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.head(torch.cat([x, tiled], dim=1)).mean(dim=(1, 2, 3))


def cond_dim_of(kind: str, config: dict) -> int:
    """Length of the guidance vector tiled at both bottlenecks: 8 x h/32 x w/32 for frames (392 at 224 x 224)."""
    if kind == "none":
        return 0
    if kind == "text":
        return int(config["cond_dim"])
    h, w = (int(x) for x in config["image_size"])
    return TILE_CHANNELS * (h // 32) * (w // 32)


class SAGMNet(nn.Module):
    """Guidance (shared or not), generator and discriminator of one SAGM variant."""

    def __init__(self, kind: str, config: dict, text_dim: int = 0, share: bool = True):
        super().__init__()
        self.kind, self.share = kind, share
        ngf, cond = int(config["ngf"]), cond_dim_of(kind, config)
        if kind == "visual":
            self.video = C3DFeatures(int(config["c3d_width"]))
            self.reduce_g = Reduce(self.video.out_channels)
            self.reduce_d = Reduce(self.video.out_channels)
            if not share:
                self.video_d = C3DFeatures(int(config["c3d_width"]))
        elif kind == "text":
            self.text_proj = nn.Linear(text_dim, cond)
            init_like_reference(self.text_proj)
        self.generator = MaskUNet(cond, ngf)
        self.discriminator = Discriminator(cond, ngf)

    def cond_g(self, guidance_input: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The generator's guidance vector (B, cond_dim) from frames (B, 3, 4, H, W) or text embeddings (B, d)."""
        if self.kind == "visual":
            return self.reduce_g(self.video(guidance_input))
        if self.kind == "text":
            return self.text_proj(guidance_input)
        return torch.zeros(batch, 0, device=self.generator.ups[0][0].weight.device)

    def cond_d(self, guidance_input: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The discriminator's guidance vector: the shared (or its own) guidance network."""
        if self.kind == "visual":
            return self.reduce_d((self.video if self.share else self.video_d)(guidance_input))
        return self.cond_g(guidance_input, batch)

    def generate(self, mix: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Mixture STFT (B, 2, 225, 64) -> generated difference STFT (B, 2, 224, 64)."""
        return apply_complex_mask(mix, self.generator(mix, cond))

    def parameters_of(self, side: str) -> list[nn.Parameter]:
        """What the generator's ("g") or the discriminator's ("d") optimizer steps; shared guidance in both."""
        names = {"g": ("generator", "reduce_g", "video", "text_proj"),
                 "d": ("discriminator", "reduce_d", "video" if self.share else "video_d", "text_proj")}[side]
        return [p for name in names if hasattr(self, name) for p in getattr(self, name).parameters()]


_PAPER_CONFIG = {
    # Section 4: 1 s crops, 4 frames a second at 224 x 224, batch 24, Adam with lr 1e-3 for every part,
    # 1000 epochs (of FAIR-Play's 1497 training clips: 62.4 steps an epoch), inference hop 0.1 s.
    # Not given, chosen here: betas (0.5, 0.999) as most GANs, adversarial weight 0.01 against the L1 term,
    # discriminator widths those of the AudioNet encoder, validation every 1000 steps on 8 fixed batches.
    "batch_size": 24, "steps": 62400, "lr": 1e-3, "beta1": 0.5, "adv_weight": 0.01, "crop_s": 1.0,
    "hop_s": 0.1, "ngf": 64, "c3d_width": 64, "image_size": [224, 224], "text_encoder": DEFAULT_TEXT_ENCODER,
    "val_every": 1000, "val_batches": 8, "window_batch": None, "checkpoint_every": 500,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "batch_size": 16, "steps": 2000, "ngf": 16, "c3d_width": 16, "image_size": [64, 64], "val_every": 100,
    "val_batches": 4, "checkpoint_every": 50,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "batch_size": 4, "steps": 10, "lr": 3e-3, "ngf": 4, "c3d_width": 2, "image_size": [32, 32], "val_every": 5,
    "val_batches": 1, "checkpoint_every": 5,
}


class SAGM(TrainedModel):
    """Shared code of the SAGM variants: ``kind`` "visual", "text" or "none"; ``share`` the guidance with D."""

    kind = "visual"
    share = True
    paper = PAPER
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}

    def __init__(self):
        super().__init__()
        self.training_log: dict = {}

    def _build(self, config: dict, loading: bool = False) -> None:
        self.config = dict(config)
        text_dim = 0
        if self.kind == "text":
            self.text_encoder = load_text_encoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
            text_dim = self.text_encoder.dim
        self.net = SAGMNet(self.kind, config, text_dim, self.share)

    # -- guidance ------------------------------------------------------------------------------

    def _frames_input(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 (B, 4, H, W, 3) -> (B, 3, 4, H, W) normalized frames on the model's device."""
        b, t = frames.shape[:2]
        x = frames_to_tensor(frames.reshape(b * t, *frames.shape[2:]))
        return x.view(b, t, *x.shape[1:]).transpose(1, 2).to(self.device)

    def _crop_guidance(self, sampler: CropSampler, batch: dict) -> torch.Tensor | None:
        """Guidance input of training crops: the 4 frames of each crop, or the dense text at its centre."""
        if self.kind == "text":
            return self.text_encoder.encode(batch["prompts"]).pooled.to(self.device)
        if self.kind == "none":
            return None
        crop = float(self.config["crop_s"])
        times = [[c - crop / 2 + (k + 0.5) / FPS for k in range(FPS)] for c in batch["centres_s"]]
        ids = [i for i in batch["item_ids"] for _ in range(FPS)]
        frames = sampler.frames(ids, [t for row in times for t in row], self.config["image_size"])
        return self._frames_input(frames.reshape(len(batch["item_ids"]), FPS, *frames.shape[1:]))

    def _tensors(self, sampler: CropSampler, batch: dict):
        mix = spectrogram(batch["mono"][:, 0].to(self.device))[..., :FRAMES]
        target = spectrogram(batch["diff"][:, 0].to(self.device))[:, :, :-1, :FRAMES]
        return mix, target, self._crop_guidance(sampler, batch)

    def batch_loss(self, sampler: CropSampler, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The generator's L1 on a ``sampler.batch(...)`` (the common signature of the trained baselines)."""
        mix, target, guidance = self._tensors(sampler, batch)
        fake = self.net.generate(mix, self.net.cond_g(guidance, mix.shape[0]))
        return F.l1_loss(fake, target)

    # -- training ------------------------------------------------------------------------------

    def _gan_step(self, sampler: CropSampler, batch: dict, opt_g, opt_d, adv_weight: float) -> dict:
        mix, target, guidance = self._tensors(sampler, batch)
        n = mix.shape[0]
        fake = self.net.generate(mix, self.net.cond_g(guidance, n))
        l1 = F.l1_loss(fake, target)
        fooled = self.net.discriminator(fake, self.net.cond_d(guidance, n))
        adv = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        opt_g.zero_grad(set_to_none=True)
        (l1 + adv_weight * adv).backward()
        opt_g.step()
        cond = self.net.cond_d(guidance, n)  # after the generator's step: the shared guidance was just updated
        real_logit = self.net.discriminator(target, cond)
        fake_logit = self.net.discriminator(fake.detach(), cond)
        d_loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                  + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))) / 2
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        return {"g_l1": float(l1.detach()), "g_adv": float(adv.detach()), "d": float(d_loss.detach())}

    @torch.no_grad()
    def validation_l1(self, val: CropSampler, batches: int, batch_size: int) -> float:
        """Mean generator L1 over ``batches`` fixed batches of the validation part (eval mode)."""
        self.net.eval()
        value = float(np.mean([float(self.batch_loss(val, val.batch(k, batch_size))) for k in range(batches)]))
        self.net.train()
        return value

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Alternating GAN training on the train part of ``split``; keeps the weights of the best validation L1.

        Resumes from ``checkpoint_dir/train_state.pt`` (both networks, both optimizers, the logs, the best
        weights so far), written atomically every ``checkpoint_every`` steps and at the end.
        """
        torch.manual_seed(seed)
        self._build(config)
        self.to(device)
        sampler = CropSampler(dataset, split, float(config["crop_s"]), seed)
        val = CropSampler(dataset, split, float(config["crop_s"]), seed, part="val")
        if not val.ids:
            raise UserError(f"{dataset.id}: split {split} has no validation items, which '{self.name}' keeps its "
                            "best weights by.")
        if self.text_encoder is not None:
            self.text_encoder.encode(sampler.dense_texts() + val.dense_texts())  # fills the encoder's cache once
        betas = (float(config["beta1"]), 0.999)
        opt_g = torch.optim.Adam(self.net.parameters_of("g"), lr=float(config["lr"]), betas=betas)
        opt_d = torch.optim.Adam(self.net.parameters_of("d"), lr=float(config["lr"]), betas=betas)
        steps, batch = int(config["steps"]), int(config["batch_size"])
        every, val_every = int(config["checkpoint_every"]), int(config["val_every"])
        state_path = Path(checkpoint_dir) / TRAIN_STATE
        state_path.parent.mkdir(parents=True, exist_ok=True)
        start = 0
        logs = {"g_l1": [], "g_adv": [], "d": [], "val_l1": []}
        best = {"val_l1": math.inf, "step": 0, "net": None}
        if state_path.is_file():
            state = torch.load(state_path, map_location="cpu", weights_only=False)
            self.net.load_state_dict(state["net"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            start, logs, best = int(state["step"]), state["logs"], state["best"]
            log.info("training %s: resuming from step %d (%s)", self.name, start, state_path)
        self.net.train()
        bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"training {self.name}", unit="step",
                   disable=start >= steps)
        for step in bar:
            out = self._gan_step(sampler, sampler.batch(step, batch), opt_g, opt_d, float(config["adv_weight"]))
            for key, value in out.items():
                logs[key].append(value)
            done = step + 1
            if done % val_every == 0 or done == steps:
                value = self.validation_l1(val, int(config["val_batches"]), batch)
                logs["val_l1"].append([done, value])
                if value < best["val_l1"]:
                    best = {"val_l1": value, "step": done, "net": copy.deepcopy(self.net.state_dict())}
                bar.set_postfix(l1=f"{np.mean(logs['g_l1'][-10:]):.4f}", d=f"{np.mean(logs['d'][-10:]):.3f}",
                                val=f"{value:.4f}")
            if done % every == 0 or done == steps:
                save_atomic({"net": self.net.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                             "step": done, "logs": logs, "best": best}, state_path)
        if best["net"] is not None:
            self.net.load_state_dict(best["net"])
        self.net.eval()
        self.losses = [a + float(config["adv_weight"]) * b for a, b in zip(logs["g_l1"], logs["g_adv"])]
        self.training_log = {**logs, "best_step": best["step"], "best_val_l1": best["val_l1"]}
        log.info("training %s: generator L1 %.4f -> %.4f, discriminator %.3f -> %.3f (means of first/last 10); "
                 "best validation L1 %.4f at step %d", self.name, np.mean(logs["g_l1"][:10]),
                 np.mean(logs["g_l1"][-10:]), np.mean(logs["d"][:10]), np.mean(logs["d"][-10:]), best["val_l1"],
                 best["step"])

    def save(self, path) -> None:
        """One file: the config, the kept weights and the training logs of both networks."""
        torch.save({"model": self.name, "config": self.config, "net": self.net.state_dict(), "losses": self.losses,
                    "training_log": self.training_log}, path)

    def load(self, path) -> None:
        super().load(path)
        self.training_log = dict(torch.load(path, map_location="cpu", weights_only=False).get("training_log") or {})

    # -- inference -----------------------------------------------------------------------------

    def window_predictor(self, prompt=None, frame_fn=None, sr: int = SAMPLE_RATE):
        """``predict(windows (N,1,W), starts (N,)) -> (N,2,W)`` for sliding_window_inference."""

        @torch.no_grad()
        def predict(windows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            n, width = windows.shape[0], windows.shape[-1]
            begins = [int(s) / sr for s in starts.tolist()]
            if self.kind == "text":
                guidance = self.text_encoder.encode([window_text(prompt, b + width / sr / 2) for b in begins])
                guidance = guidance.pooled.to(self.device)
            elif self.kind == "visual":
                times = np.array([[b + (k + 0.5) / FPS for k in range(FPS)] for b in begins])
                frames = frame_fn(times.ravel(), size=tuple(self.config["image_size"]))
                guidance = self._frames_input(frames.reshape(n, FPS, *frames.shape[1:]))
            else:
                guidance = None
            mix = spectrogram(windows[:, 0])
            mask = self.net.generator(mix[..., :FRAMES], self.net.cond_g(guidance, n))
            mask = F.pad(mask, (0, mix.shape[-1] - FRAMES, 0, 0), mode="replicate")  # the last frames' mask
            spec = F.pad(apply_complex_mask(mix, mask), (0, 0, 0, 1))  # the dropped top bin comes back as zeros
            diff = istft_ri(spec, width, N_FFT, HOP, WIN)[:, None]
            return binaural_from_difference(windows, diff)

        return predict


class SAGMVisual(SAGM):
    name = "sagm_visual"
    guidance = frozenset({"visual"})
    kind = "visual"
    description = "SAGM: visually guided GAN (C3D-shaped VideoNet from scratch shared by generator and discriminator)"


class SAGMVisualNoShare(SAGM):
    name = "sagm_visual_noshare"
    guidance = frozenset({"visual"})
    kind = "visual"
    share = False
    description = "SAGM w/o shared (Table 4): the discriminator has its own VideoNet"


class SAGMNoVisual(SAGM):
    name = "sagm_novisual"
    guidance = frozenset()
    kind = "none"
    description = "SAGM w/o V (Table 4): the GAN without any guidance"
    configs = {p: {k: v for k, v in c.items() if k not in ("image_size", "c3d_width", "text_encoder")}
               for p, c in SAGM.configs.items()}


class SAGMText(SAGM):
    name = "sagm_text"
    guidance = frozenset({"text"})
    kind = "text"
    paper = PAPER + ", with text guidance in place of the frames"
    description = "SAGM with text: the pooled MiniLM prompt projected, tiled and shared by generator and discriminator"
    # The projected text vector has the size the reduced visual one has at the same profile (392 at the paper's).
    configs = {p: {k: v for k, v in c.items() if k not in ("image_size", "c3d_width")}
               | {"cond_dim": cond_dim_of("visual", c)} for p, c in SAGM.configs.items()}
