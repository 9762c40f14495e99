"""TAS: the text-guided waveform diffusion model of seed 000 (Li et al., ACM MM 2024, section 3).

The model generates the difference signal a = A_l - A_r (eq. 2) from noise by a reverse diffusion
process conditioned on the mono mixture A_m = A_l + A_r (eq. 1) and the prompt T (eq. 4); the
binaural output follows from eq. 5: A_l = (A_m + a) / 2, A_r = (A_m - a) / 2.

Network (section 3.2, Figure 2):
  - audio encoder: two 1-D convolutions, mono (B, 1, L) -> f_a (B, d, L) (d = 512, L = 16000);
  - frozen text encoder -> f_t (B, d) through a learnable FC (the paper's treatment of BERT);
  - fusion of f_t and f_a into the conditioner f_at (B, d, L): the rows of Table 3
      ``none`` (Audio-Only: f_at = f_a), ``add`` (f_a + f_t), ``conv`` (a 1-D convolution over
      [f_t; f_a]), ``saf`` (the Semantic-Aware Fusion module, eqs. 6-8), and ``concat`` for the
      Table 1 row "Ours" (the model without SAF; see the model card for this reading);
      ``token_saf`` is our own token-level extension (a separate model, not in the paper);
  - spatialization network: 3 residual blocks of 10 dilated 1-D convolutions (dilation 1..512),
    the diffusion step encoded by two fully connected layers and f_at injected into every layer; the
    skip outputs of each block are summed and the outputs of the three blocks are concatenated
    before the output layers.

Inference slides a 1 s window with a 0.1 s hop over the clip (tas_eval.audio.sliding_window_inference);
all windows of a clip go through every diffusion step together, and each window is conditioned on
the dense text nearest its centre.
"""

from __future__ import annotations

import bisect
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.diffusion import GaussianDiffusion
from baselines.common.text_encoders import DEFAULT_TEXT_ENCODER, TextFeatures, load_text_encoder
from baselines.common.trained import TrainedModel
from baselines.common.training import CropSampler, train_loop
from tas_eval.audio import binaural_from_difference

log = logging.getLogger(__name__)

PAPER = "Li et al., TAS: Personalized Text-guided Audio Spatialization, ACM MM 2024 (seed 000), section 3"
FUSIONS = ("none", "concat", "add", "conv", "saf", "token_saf")


# ----------------------------------------------------------------------------------------- network


def step_encoding(t: torch.Tensor, dim: int = 128) -> torch.Tensor:
    """Sinusoidal encoding of integer diffusion steps (N,) -> (N, dim), as DiffWave encodes them."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(1, half - 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResidualLayer(nn.Module):
    """One gated dilated convolution layer with step and conditioner inputs (DiffWave-style)."""

    def __init__(self, channels: int, cond_dim: int, emb_dim: int, dilation: int):
        super().__init__()
        self.step_proj = nn.Linear(emb_dim, channels)
        self.dilated = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.cond_proj = nn.Conv1d(cond_dim, 2 * channels, 1)
        self.out = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated(x + self.step_proj(emb)[:, :, None]) + self.cond_proj(cond)
        gate, filt = y.chunk(2, dim=1)
        y = self.out(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class SpatializationNet(nn.Module):
    """``blocks`` residual blocks of ``layers`` dilated convolutions; block outputs concatenated."""

    def __init__(self, channels: int, cond_dim: int, blocks: int = 3, layers: int = 10, emb_dim: int = 512):
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.step_mlp = nn.Sequential(nn.Linear(128, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.blocks = nn.ModuleList(
            nn.ModuleList(ResidualLayer(channels, cond_dim, emb_dim, 2 ** i) for i in range(layers)) for _ in range(blocks)
        )
        self.head = nn.Sequential(nn.Conv1d(blocks * channels, channels, 1), nn.ReLU(), nn.Conv1d(channels, 1, 1))
        # DiffWave starts from a zero output layer: the first prediction is exactly 0.
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        emb = self.step_mlp(step_encoding(t))
        h = F.relu(self.inp(x))
        outs = []
        for block in self.blocks:
            skips = 0
            for layer in block:
                h, skip = layer(h, emb, cond)
                skips = skips + skip
            outs.append(skips / math.sqrt(len(block)))
        return self.head(torch.cat(outs, dim=1))


class SAF(nn.Module):
    """Semantic-Aware Fusion (eqs. 6-8): text-aware pooling of the audio features, gated by the text."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(2 * dim, dim, 3, padding=1)

    def forward(self, f_a: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        d = f_a.shape[1]
        # eq. 6: weights over the L audio positions, softmax(f_t f_a^T / sqrt(d)), then f'_a = sum_l w_l f_a^l.
        w = torch.softmax(torch.einsum("bd,bdl->bl", f_t, f_a) / math.sqrt(d), dim=-1)
        pooled = torch.einsum("bl,bdl->bd", w, f_a)
        # eq. 7: f'_at = f_t * (FC(f'_a) + f'_a).
        f_at = f_t * (self.fc(pooled) + pooled)
        # eq. 8: repeat over L, concatenate with f_a, fuse by a 1-D convolution.
        return self.conv(torch.cat([f_at[:, :, None].expand_as(f_a), f_a], dim=1))


class TokenSAF(nn.Module):
    """Token-level fusion (our extension): every audio position attends over the prompt's tokens.

    Pooled sentence embeddings of side-swapped prompts are nearly identical (benchmarks/text_swap.py),
    while contextual token states keep "cello ... left" and "piano ... right" apart; the attended token
    context then enters eq. 8 in place of the repeated f'_at.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.q = nn.Conv1d(dim, dim, 1)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.conv = nn.Conv1d(2 * dim, dim, 3, padding=1)

    def forward(self, f_a: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        d = f_a.shape[1]
        scores = torch.einsum("bdl,bkd->blk", self.q(f_a), self.k(tokens)) / math.sqrt(d)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        context = torch.einsum("blk,bkd->bdl", torch.softmax(scores, dim=-1), self.v(tokens))
        return self.conv(torch.cat([context, f_a], dim=1))


class TASNet(nn.Module):
    """Audio encoder + text projection + fusion + spatialization network (see the module docstring)."""

    def __init__(self, fusion: str, text_dim: int, audio_dim: int, channels: int, blocks: int, layers: int,
                 emb_dim: int, encoder_kernel: int = 3):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}")
        self.fusion = fusion
        pad = encoder_kernel // 2
        self.audio_encoder = nn.Sequential(nn.Conv1d(1, audio_dim, encoder_kernel, padding=pad), nn.ReLU(),
                                           nn.Conv1d(audio_dim, audio_dim, encoder_kernel, padding=pad))
        cond_dim = audio_dim
        if fusion != "none":
            self.text_proj = nn.Linear(text_dim, audio_dim)
        if fusion == "concat":
            cond_dim = 2 * audio_dim
        elif fusion == "conv":
            self.fuse = nn.Conv1d(2 * audio_dim, audio_dim, 3, padding=1)
        elif fusion == "saf":
            self.fuse = SAF(audio_dim)
        elif fusion == "token_saf":
            self.fuse = TokenSAF(audio_dim)
        self.spatializer = SpatializationNet(channels, cond_dim, blocks, layers, emb_dim)

    def condition(self, mono: torch.Tensor, text: TextFeatures | None) -> torch.Tensor:
        """The conditioner f_at (B, cond_dim, L) of mono (B, 1, L) and the prompts' features."""
        f_a = self.audio_encoder(mono)
        if self.fusion == "none":
            return f_a
        if self.fusion == "token_saf":
            return self.fuse(f_a, self.text_proj(text.tokens), text.mask)
        f_t = self.text_proj(text.pooled)
        tiled = f_t[:, :, None].expand_as(f_a)
        if self.fusion == "add":
            return f_a + tiled
        if self.fusion == "concat":
            return torch.cat([tiled, f_a], dim=1)
        if self.fusion == "conv":
            return self.fuse(torch.cat([tiled, f_a], dim=1))
        return self.fuse(f_a, f_t)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's prediction (noise or clean signal) for x_t (B, 1, L) at steps t (B,)."""
        return self.spatializer(x_t, t, cond)


# ----------------------------------------------------------------------------------------- prompts


def window_text(prompt, t_s: float) -> str:
    """The text guiding a window centred at ``t_s`` seconds: the dense frame text covering ``t_s``
    (the nearest 0.1 s frame), else the clip-level text, else ""."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    frames = prompt.get("frames")
    if frames:
        starts = [float(f["t0"]) for f in frames]
        k = min(max(bisect.bisect_right(starts, t_s) - 1, 0), len(frames) - 1)
        return str(frames[k].get("text", ""))
    return str(prompt.get("text") or "")


# ----------------------------------------------------------------------------------------- model


_PAPER_CONFIG = {
    # section 4.2: batch 12, 3000 steps, Adam 2e-4, 1 s crops at 16 kHz, inference hop 0.1 s
    "batch_size": 12, "steps": 3000, "lr": 2e-4, "crop_s": 1.0, "hop_s": 0.1,
    # section 3.2: d = 512, 3 residual blocks x 10 dilated convolutions
    "audio_dim": 512, "blocks": 3, "layers_per_block": 10,
    # not given by the paper: DiffWave (base) sizes and step count; beta_end 0.25 instead of DiffWave's 0.05
    # so that abar_N = 1e-3: our windows are RMS-normalized (unit scale), and with 0.05 abar_N = 0.28
    # leaves half the signal in x_N, which sampling from pure noise never sees (see the model card)
    "residual_channels": 64, "step_embed_dim": 512, "diffusion_steps": 50, "beta_start": 1e-4, "beta_end": 0.25,
    "parameterization": "eps", "sampler": "ddpm", "sample_steps": 50,
    # CLIP's text tower cannot be downloaded here: the packaged MiniLM (or a local folder)
    "text_encoder": DEFAULT_TEXT_ENCODER,
    "window_batch": None, "inference_batch": 4, "checkpoint_every": 100,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "batch_size": 16, "steps": 300, "lr": 2e-3, "crop_s": 0.25, "hop_s": 0.125,
    "audio_dim": 16, "residual_channels": 16, "layers_per_block": 4, "step_embed_dim": 128,
    # One diffusion step (abar_1 = 1e-3): the small profile samples in one step from pure noise, and
    # training all 50 steps spent 98% of it on steps that sampler never queries, where x_t already
    # holds L - R and the prompt lowers no loss; the model then ignored the prompt (see the model card)
    "diffusion_steps": 1, "beta_start": 0.999, "beta_end": 0.999,
    "parameterization": "x0", "sampler": "ddim", "sample_steps": 1,
    "window_batch": None, "inference_batch": 4, "checkpoint_every": 25,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "batch_size": 4, "steps": 12, "lr": 3e-3, "crop_s": 0.25, "hop_s": 0.25,
    "audio_dim": 8, "residual_channels": 8, "layers_per_block": 3, "step_embed_dim": 32,
    "diffusion_steps": 20, "beta_start": 1e-4, "beta_end": 0.5, "sample_steps": 2, "checkpoint_every": 5,
}


class TASModel(TrainedModel):
    """The TAS diffusion model with one fusion of Table 3 (subclasses set ``fusion``)."""

    fusion = "saf"
    paper = PAPER
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}
    # 16 windows of the small profile's 0.25 s per call on a CPU: with every window of a clip in one call
    # the gated-convolution activations fall out of cache (benchmarks/models_speed.py times the three ways).
    cpu_chunk_samples = 65536

    # -- building --------------------------------------------------------------------------

    def _build(self, config: dict, loading: bool = False) -> None:
        self.config = dict(config)
        text_dim = 1
        if self.fusion != "none":
            self.text_encoder = load_text_encoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
            text_dim = self.text_encoder.dim
        self.net = TASNet(self.fusion, text_dim, int(config["audio_dim"]), int(config["residual_channels"]),
                          int(config["blocks"]), int(config["layers_per_block"]), int(config["step_embed_dim"]))
        self.diffusion = GaussianDiffusion(int(config["diffusion_steps"]), float(config["beta_start"]),
                                           float(config["beta_end"]), config["parameterization"])

    def _text(self, texts: list[str]) -> TextFeatures | None:
        if self.fusion == "none":
            return None
        return self.text_encoder.encode(texts).to(self.device)

    # -- training --------------------------------------------------------------------------

    def training_loss(self, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The diffusion loss of one batch from ``CropSampler.batch`` (drawn steps and noise from ``generator``)."""
        mono = batch["mono"].to(self.device)
        cond = self.net.condition(mono, self._text(batch["prompts"]))
        return self.diffusion.loss(lambda x, t: self.net.denoise(x, t, cond), batch["diff"].to(self.device), generator)

    def batch_loss(self, sampler: CropSampler, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss of a ``sampler.batch(...)`` (the common signature of the trained baselines)."""
        return self.training_loss(batch, generator)

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split``; resumes from ``checkpoint_dir`` when it holds a state."""
        torch.manual_seed(seed)
        self._build(config)
        self.to(device)
        sampler = CropSampler(dataset, split, float(config["crop_s"]), seed)
        if self.text_encoder is not None:
            self.text_encoder.encode(sampler.dense_texts())  # fills the encoder's cache once
        optimizer = torch.optim.Adam(self.net.parameters(), lr=float(config["lr"]))
        batch_size = int(config["batch_size"])

        def loss_at(step: int) -> torch.Tensor:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
            return self.training_loss(sampler.batch(step, batch_size), generator)

        self.losses = train_loop(self.net, optimizer, loss_at, int(config["steps"]), checkpoint_dir,
                                 int(config.get("checkpoint_every", 100)), desc=f"training {self.name}")

    # -- inference -------------------------------------------------------------------------

    def window_predictor(self, prompt, sr: int, base_seed: int):
        """``predict(windows (N,1,W), starts (N,)) -> (N,2,W)`` for sliding_window_inference.

        One diffusion sampling run for all the windows together; window i draws its noise from a
        generator seeded by ``base_seed + start_i``, so the result does not depend on the batching.
        """
        config = self.config

        @torch.no_grad()
        def predict(windows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            width = windows.shape[-1]
            texts = [window_text(prompt, (int(s) + width / 2) / sr) for s in starts.tolist()]
            cond = self.net.condition(windows, self._text(texts))
            seeds = [base_seed + int(s) for s in starts.tolist()]
            diff = self.diffusion.sample(lambda x, t: self.net.denoise(x, t, cond), windows.shape, seeds,
                                         config["sampler"], config.get("sample_steps"), device=windows.device)
            return binaural_from_difference(windows, diff)

        return predict

    def clip_predictor(self, prompt, frame_fn, sr: int):
        """The clip's window predictor with its noise seed, drawn from torch's generator (one per clip, in clip order)."""
        base_seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return self.window_predictor(prompt, sr, base_seed)


class Ours(TASModel):
    name = "ours"
    guidance = frozenset({"text"})
    fusion = "concat"
    description = "TAS text-guided waveform diffusion without SAF (Table 1 'Ours'): text feature concatenated to the audio features"


class OursSAF(TASModel):
    name = "ours_saf"
    guidance = frozenset({"text"})
    fusion = "saf"
    description = "TAS text-guided waveform diffusion with the Semantic-Aware Fusion module (Table 1 'Ours+SAF')"


class AudioOnly(TASModel):
    name = "audio_only"
    guidance = frozenset()
    fusion = "none"
    description = "TAS diffusion guided by the mono audio only, no text (Table 3 'Audio-Only')"


class OursAdd(TASModel):
    name = "add"
    guidance = frozenset({"text"})
    fusion = "add"
    description = "TAS diffusion, text and audio fused by element-wise addition (Table 3 'Add')"


class OursConv(TASModel):
    name = "conv"
    guidance = frozenset({"text"})
    fusion = "conv"
    description = "TAS diffusion, text and audio fused by a 1-D convolution (Table 3 'Conv')"


class OursTokenSAF(TASModel):
    name = "ours_saf_tokens"
    guidance = frozenset({"text"})
    fusion = "token_saf"
    paper = PAPER + "; token-level fusion is this project's extension, not the paper's"
    description = "TAS diffusion with token-level fusion: each audio position attends over the prompt's token states (our extension)"
