"""TASU (Pan, Liu, Huang, Tang, Wu, "In-the-wild Audio Spatialization with Flexible Text-guided
Localization", seed 001): latent diffusion of the channel difference, guided by text, with a
flipped-channel coherence module. Its repository holds no spatialization code; this is our own.

Read literally (``tasu_literal``), the model diffuses the VAE latent of the mel spectrogram of
d = L - R, conditioned on the VAE latent of the mel spectrogram of m = L + R (concatenated along
channels) and on text tokens (cross-attention), and a vocoder turns the generated mel back into d.
That model cannot tell left from right: mel(-d) = mel(d), so mirrored scenes share one target, and
the vocoder's phase follows the mel only, so the generated d is uncorrelated with m and the
expected level difference between the ears is zero. It is packaged as the ablation that shows it.

``tasu`` diffuses a signed, mono-anchored representation instead: the complex ratio D / M per mel
band (baselines/common/band_ratio.py), 2 channels, with the log-mel of m as the condition
(concatenated along channels), decoded as a complex mask on the mono STFT (no VAE, no vocoder).
Everything else is the paper's: a UNet with 4 down and 4 up blocks and a bottleneck, cross-attention
(8 heads) in the last 3 encoder and first 3 decoder blocks (diffusers ``UNet2DConditionModel``),
epsilon prediction with T = 1000 linear betas 0.0015 -> 0.0195, the (text, mono) pair replaced by
zeros with probability 0.1 for classifier-free guidance (scale 2.5), DDIM sampling, AdamW.

The flipped-channel coherence module: a classifier takes binaural features (the band ratios of the
true crop, or of the crop with its ears swapped: the ratios negated) and the text features, and
predicts by BCE whether they match; its loss, added to the diffusion loss with ``coherence_weight``,
trains the text adapter (the trainable text side: the frozen encoder's token states through a
linear layer, which the UNet's cross-attention also reads). Ablations of TASU Table 2:
``tasu_notext`` (no text at all), ``tasu_noflip`` (no coherence module).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common.band_ratio import band_ratio, clip_ratio, log_mel, ratio_mask
from baselines.common.diffusion import GaussianDiffusion
from baselines.common.latent_audio import HIFIGAN, Vocoder, hifigan_vocoder, load_audioldm2, small_vae
from baselines.common.text_encoders import DEFAULT_TEXT_ENCODER, load_text_encoder
from baselines.common.trained import TrainedModel
from baselines.common.training import CropSampler, train_loop
from baselines.common.unet import istft_ri, stft_ri
from baselines.tas import window_text
from tas_eval.audio import SAMPLE_RATE, binaural_from_difference

log = logging.getLogger(__name__)

PAPER = ("Pan, Liu, Huang, Tang, Wu, In-the-wild Audio Spatialization with Flexible Text-guided Localization "
         "(TASU, seed 001)")
COND_SCALE = 0.2  # the mono log-mel (natural log, RMS-normalized windows) times this is about unit scale
LATENT_CHANNELS = 8


def complex_spec(x: torch.Tensor, config: dict) -> torch.Tensor:
    """(B, T) audio -> complex STFT (B, bins, frames) with the model's STFT (AudioLDM2's: 1024 / 160 / 1024)."""
    s = stft_ri(x, int(config["n_fft"]), int(config["stft_hop"]), int(config["n_fft"]))
    return torch.complex(s[:, 0], s[:, 1])


class Coherence(nn.Module):
    """Binaural features (B, 2, frames, bands) and a text vector (B, d) -> logit that they match (B,)."""

    def __init__(self, text_dim: int, width: int):
        super().__init__()
        self.audio = nn.Sequential(nn.Conv2d(2, width, 3, 2, 1), nn.SiLU(), nn.Conv2d(width, 2 * width, 3, 2, 1),
                                   nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(2 * width + text_dim, 2 * width), nn.SiLU(), nn.Linear(2 * width, 1))

    def forward(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.audio(features), text], dim=1))[:, 0]


class TASUNet(nn.Module):
    """Text adapter, diffusion UNet, coherence classifier and (literal reading) the mel VAE."""

    def __init__(self, config: dict, in_channels: int, out_channels: int, text_dim: int, use_text: bool,
                 coherence: bool, vae: nn.Module | None = None):
        super().__init__()
        from diffusers import UNet2DConditionModel

        cross = int(config["cross_dim"])
        self.cross_dim = cross
        self.text_adapter = nn.Linear(text_dim, cross) if use_text else None
        self.unet = UNet2DConditionModel(
            sample_size=None, in_channels=in_channels, out_channels=out_channels,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
            up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
            block_out_channels=tuple(int(c) for c in config["channels"]), layers_per_block=int(config["layers_per_block"]),
            cross_attention_dim=cross, attention_head_dim=int(config["heads"]), norm_num_groups=int(config["groups"]))
        self.coherence = Coherence(cross, int(config["coherence_width"])) if (use_text and coherence) else None
        self.vae = vae
        # Set from the training data before training (literal reading): log-mel mean and std, latent scale.
        self.register_buffer("mel_mean", torch.zeros(()))
        self.register_buffer("mel_std", torch.ones(()))
        self.register_buffer("latent_scale", torch.ones(()))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, context: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        return self.unet(torch.cat([x_t, cond], dim=1), t, encoder_hidden_states=context,
                         encoder_attention_mask=mask).sample

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the diffusion stage trains: everything but the VAE."""
        parts = [self.unet, self.text_adapter, self.coherence]
        return [p for m in parts if m is not None for p in m.parameters()]


_PAPER_CONFIG = {
    # TASU section 3 / 4 and the repository's optimizer (AdamW 1e-4, betas (0.95, 0.999), eps 1e-6, wd 1e-3).
    # Not given, chosen here: the UNet's widths (128, 256, 512, 512), the batch (16), 1 layer a block,
    # the coherence weight (0.1) and classifier width; 10.24 s windows (1024 frames) as AudioLDM2.
    "crop_s": 10.24, "hop_s": 5.12, "n_fft": 1024, "stft_hop": 160, "bands": 64, "frames": 1024,
    "channels": [128, 256, 512, 512], "layers_per_block": 1, "heads": 8, "groups": 32, "cross_dim": 512,
    "diffusion_steps": 1000, "beta_start": 0.0015, "beta_end": 0.0195, "parameterization": "eps",
    "sample_steps": 200, "guidance_scale": 2.5, "p_uncond": 0.1, "coherence_weight": 0.1, "coherence_width": 64,
    "batch_size": 16, "steps": 500000, "lr": 1e-4, "betas": [0.95, 0.999], "eps": 1e-6, "weight_decay": 1e-3,
    "text_encoder": DEFAULT_TEXT_ENCODER, "window_batch": None, "checkpoint_every": 1000,
}
_SMALL_CONFIG = {
    **_PAPER_CONFIG,
    "crop_s": 0.64, "hop_s": 0.32, "bands": 32, "frames": 64, "channels": [32, 32, 64, 64], "groups": 8,
    "cross_dim": 64, "coherence_width": 16, "batch_size": 8, "steps": 1200, "lr": 1e-3, "checkpoint_every": 100,
    # One diffusion step predicting the clean target from pure noise, as TAS's small profile: 1200 CPU steps of
    # the paper's 1000-step epsilon schedule gave samples of about twice the true difference's level (split 1:
    # STFT 2.18 against mono_mono's 1.067; see the card). With one step, guidance s would scale the prediction by
    # about s (the unconditional one is about 0), so the small profile samples unguided.
    "diffusion_steps": 1, "beta_start": 0.999, "beta_end": 0.999, "parameterization": "x0", "sample_steps": 1,
    "guidance_scale": 1.0,
}
_TINY_CONFIG = {
    **_SMALL_CONFIG,
    "bands": 16, "channels": [8, 8, 16, 16], "groups": 4, "cross_dim": 16, "coherence_width": 4, "sample_steps": 3,
    "batch_size": 4, "steps": 8, "lr": 2e-3, "hop_s": 0.64, "checkpoint_every": 4,
}
# The literal reading: a mel VAE in the HiFi-GAN vocoder's domain (22.05 kHz, 80 bands), its mel padded to
# 96 bands and the frames to a multiple of 32 so that the VAE (x4) and the UNet (x8) divide them.
_LITERAL_EXTRA = {"audioldm2": None, "pad_bands": 96, "vae_channels": [128, 256, 512], "vae_steps": 20000,
                  "vae_lr": 1e-4, "kl_weight": 1e-6, "vae_groups": 32}
_LITERAL = {
    "paper": {**_PAPER_CONFIG, **_LITERAL_EXTRA, "pad_frames": 896},
    "small": {**_SMALL_CONFIG, **_LITERAL_EXTRA, "pad_frames": 64, "vae_channels": [16, 32, 64], "vae_steps": 300,
              "vae_lr": 1e-3, "vae_groups": 8},
    "tiny": {**_TINY_CONFIG, **_LITERAL_EXTRA, "pad_frames": 64, "vae_channels": [4, 8, 8], "vae_steps": 4,
             "vae_lr": 2e-3, "vae_groups": 4},
}


class TASU(TrainedModel):
    """Shared code: ``literal`` (mel VAE + vocoder) or the band-ratio model; ``use_text``; ``coherence``."""

    guidance = frozenset({"text"})
    paper = PAPER
    literal = False
    use_text = True
    coherence = True
    configs = {"paper": _PAPER_CONFIG, "small": _SMALL_CONFIG, "tiny": _TINY_CONFIG}

    def __init__(self):
        super().__init__()
        self.diffusion: GaussianDiffusion | None = None
        self.vocoder: Vocoder | None = None
        self.vae_losses: list[float] = []
        self.seed = 0

    # -- building ------------------------------------------------------------------------------

    def _build(self, config: dict, loading: bool = False) -> None:
        self.config = dict(config)
        text_dim = 1
        if self.use_text:
            self.text_encoder = load_text_encoder(config.get("text_encoder", DEFAULT_TEXT_ENCODER))
            text_dim = self.text_encoder.dim
        vae = None
        if self.literal:
            if config.get("audioldm2"):
                vae, self.vocoder = load_audioldm2(config["audioldm2"])
            else:
                vae = small_vae(list(config["vae_channels"]), LATENT_CHANNELS, int(config["vae_groups"]))
            channels_in, channels_out = 2 * vae.config.latent_channels, vae.config.latent_channels
        else:
            channels_in, channels_out = 3, 2
        self.net = TASUNet(config, channels_in, channels_out, text_dim, self.use_text, self.coherence, vae)
        self.diffusion = GaussianDiffusion(int(config["diffusion_steps"]), float(config["beta_start"]),
                                           float(config["beta_end"]), config.get("parameterization", "eps"))

    def _vocoder(self) -> Vocoder:
        if self.vocoder is None:
            self.vocoder = Vocoder(HIFIGAN, hifigan_vocoder(self.device))
        return self.vocoder

    def to(self, device) -> "TASU":
        super().to(device)
        if self.vocoder is not None:
            self.vocoder.to(device)
        return self

    # -- representations -----------------------------------------------------------------------

    def _context(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Adapted text tokens (B, L, d), their mask (B, L) and their masked mean (B, d); zeros without text."""
        n = len(texts)
        if not self.use_text:
            zeros = torch.zeros(n, 1, self.net.cross_dim, device=self.device)
            return zeros, torch.ones(n, 1, device=self.device), zeros[:, 0]
        feats = self.text_encoder.encode(list(texts)).to(self.device)
        context = self.net.text_adapter(feats.tokens)
        mask = feats.mask.float()
        mean = (context * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return context, mask, mean

    def _mel_image(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) audio -> the VAE's input: normalized log-mel padded to (pad_frames, pad_bands)."""
        domain = self.vocoder.domain if self.config.get("audioldm2") else HIFIGAN
        mel = domain.log_mel(audio)
        floor = float(torch.log(torch.tensor(domain.floor)))
        bands = mel.shape[-1] if self.config.get("audioldm2") else int(self.config["pad_bands"])
        mel = F.pad(mel, (0, bands - mel.shape[-1], 0, int(self.config["pad_frames"]) - mel.shape[-2]), value=floor)
        return (mel - self.net.mel_mean) / self.net.mel_std

    def _latent(self, audio: torch.Tensor) -> torch.Tensor:
        return self.net.vae.encode(self._mel_image(audio)).latent_dist.mode() * self.net.latent_scale

    def encode_batch(self, mono: torch.Tensor, diff: torch.Tensor | None):
        """(target x0 or None, condition, band-ratio features or None) of crops (B, T) of m and d."""
        frames = int(self.config["frames"])
        spec_m = complex_spec(mono, self.config)
        features = None
        if diff is not None:
            features = band_ratio(spec_m, complex_spec(diff, self.config), SAMPLE_RATE, int(self.config["bands"]))
            features = features[:, :, :frames]
        if self.literal:
            target = self._latent(diff) if diff is not None else None
            return target, self._latent(mono), features
        cond = log_mel(spec_m, SAMPLE_RATE, int(self.config["bands"]))[:, :, :frames] * COND_SCALE
        return features, cond, features

    # -- training ------------------------------------------------------------------------------

    def _step_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(step))

    def batch_loss(self, sampler: CropSampler, batch: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion loss (with the classifier-free dropping) plus the weighted coherence loss of a crop batch."""
        mono, diff = batch["mono"][:, 0].to(self.device), batch["diff"][:, 0].to(self.device)
        with torch.no_grad() if self.literal else torch.enable_grad():
            x0, cond, features = self.encode_batch(mono, diff)
        context, mask, text_vec = self._context(batch["prompts"])
        n = x0.shape[0]
        keep = (torch.rand(n, generator=generator) >= float(self.config["p_uncond"])).float().to(self.device)
        cond_in, context_in = cond * keep[:, None, None, None], context * keep[:, None, None]
        loss = self.diffusion.loss(lambda x, t: self.net.denoise(x, t, cond_in, context_in, mask), x0, generator)
        if self.net.coherence is not None:
            true = self.net.coherence(features, text_vec)
            swapped = self.net.coherence(-features, text_vec)
            coherence = (F.binary_cross_entropy_with_logits(true, torch.ones_like(true))
                         + F.binary_cross_entropy_with_logits(swapped, torch.zeros_like(swapped))) / 2
            loss = loss + float(self.config["coherence_weight"]) * coherence
        return loss

    def _fit_vae(self, sampler: CropSampler, checkpoint_dir: Path) -> None:
        """Normalization from the data, then the mel VAE on log-mels of d and m (L1 + kl_weight x KL)."""
        probe = sampler.batch(10**6, 32)  # crops no training step draws
        with torch.no_grad():
            mels = torch.cat([self._mel_image(probe["diff"][:, 0]), self._mel_image(probe["mono"][:, 0])])
            self.net.mel_mean.fill_(float(mels.mean()))
            self.net.mel_std.fill_(float(mels.std()))
        vae, config = self.net.vae, self.config
        optimizer = torch.optim.AdamW(vae.parameters(), lr=float(config["vae_lr"]))

        def loss_at(step: int) -> torch.Tensor:
            batch = sampler.batch(step, int(config["batch_size"]))
            with torch.no_grad():
                x = torch.cat([self._mel_image(batch["diff"][:, 0].to(self.device)),
                               self._mel_image(batch["mono"][:, 0].to(self.device))])
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=self._step_generator(step))).sample
            return F.l1_loss(recon, x) + float(config["kl_weight"]) * posterior.kl().mean()

        self.vae_losses = train_loop(vae, optimizer, loss_at, int(config["vae_steps"]), checkpoint_dir,
                                     int(config["checkpoint_every"]), desc=f"training {self.name}: mel VAE")

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split`` (literal reading: the VAE first, unless a checkpoint is given)."""
        torch.manual_seed(seed)
        self.seed = seed
        self._build(config)
        self.to(device)
        checkpoint_dir = Path(checkpoint_dir)
        sampler = CropSampler(dataset, split, float(config["crop_s"]), seed)
        if self.text_encoder is not None:
            self.text_encoder.encode(sampler.dense_texts())  # fills the encoder's cache once
        if self.literal:
            if not config.get("audioldm2"):
                self._fit_vae(sampler, checkpoint_dir / "vae")
            self.net.vae.eval().requires_grad_(False)
            with torch.no_grad():
                probe = sampler.batch(10**6 + 1, 32)
                latents = self.net.vae.encode(self._mel_image(probe["diff"][:, 0].to(self.device))).latent_dist.mode()
                self.net.latent_scale.fill_(1.0 / float(latents.std()))
        betas = tuple(float(b) for b in config["betas"])
        optimizer = torch.optim.AdamW(self.net.trained_parameters(), lr=float(config["lr"]), betas=betas,
                                      eps=float(config["eps"]), weight_decay=float(config["weight_decay"]))
        batch = int(config["batch_size"])

        def loss_at(step: int) -> torch.Tensor:
            return self.batch_loss(sampler, sampler.batch(step, batch), self._step_generator(step))

        self.losses = train_loop(self.net, optimizer, loss_at, int(config["steps"]),
                                 checkpoint_dir / "diffusion" if self.literal else checkpoint_dir,
                                 int(config["checkpoint_every"]), desc=f"training {self.name}")

    def save(self, path) -> None:
        """One file: the config, the weights (the VAE's included), the losses of each stage."""
        torch.save({"model": self.name, "config": self.config, "net": self.net.state_dict(), "losses": self.losses,
                    "vae_losses": self.vae_losses}, path)

    # -- inference -----------------------------------------------------------------------------

    def window_predictor(self, prompt, sr: int, base_seed: int):
        """``predict(windows (N,1,W), starts (N,)) -> (N,2,W)``: one guided DDIM run for all windows; window i
        draws its noise from a generator seeded by ``base_seed + start_i``."""
        config = self.config
        scale = float(config["guidance_scale"])

        @torch.no_grad()
        def predict(windows: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
            n, width = windows.shape[0], windows.shape[-1]
            mono = windows[:, 0]
            _, cond, _ = self.encode_batch(mono, None)
            texts = [window_text(prompt, (int(s) + width / 2) / sr) for s in starts.tolist()]
            context, mask, _ = self._context(texts)

            def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                if scale == 1.0:
                    return self.net.denoise(x, t, cond, context, mask)
                both = self.net.denoise(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]),
                                        torch.cat([context, torch.zeros_like(context)]), torch.cat([mask, mask]))
                guided, free = both.chunk(2)
                return free + scale * (guided - free)

            shape = (n,) + tuple(cond.shape[1:]) if self.literal else (n, 2) + tuple(cond.shape[2:])
            seeds = [base_seed + int(s) for s in starts.tolist()]
            x = self.diffusion.sample(denoise, shape, seeds, "ddim", int(config["sample_steps"]), device=windows.device)
            if self.literal:
                mel = self.net.vae.decode(x / self.net.latent_scale).sample * self.net.mel_std + self.net.mel_mean
                vocoder = self.vocoder if config.get("audioldm2") else self._vocoder()
                true_frames = vocoder.domain.frames(width)
                diff = vocoder(mel[:, :, :true_frames, : vocoder.domain.bands], width)
            else:
                spec_m = complex_spec(mono, config)
                mask_c = ratio_mask(clip_ratio(x), SAMPLE_RATE, int(config["n_fft"]))
                mask_c = torch.cat([mask_c, mask_c[..., -1:].expand(-1, -1, spec_m.shape[-1] - mask_c.shape[-1])], -1)
                spec_d = mask_c * spec_m
                diff = istft_ri(torch.stack([spec_d.real, spec_d.imag], 1), width, int(config["n_fft"]),
                                int(config["stft_hop"]), int(config["n_fft"]))
            return binaural_from_difference(windows, diff[:, None])

        return predict

    def clip_predictor(self, prompt, frame_fn, sr: int):
        """The clip's window predictor with its noise seed, drawn from torch's generator (one per clip, in clip order)."""
        base_seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return self.window_predictor(prompt, sr, base_seed)


class TASUBandRatio(TASU):
    name = "tasu"
    description = "TASU on a signed mono-anchored latent: DDIM diffusion of the mel-band ratio D/M, text cross-attention, flipped-channel coherence"


class TASUNoText(TASU):
    name = "tasu_notext"
    guidance = frozenset()
    use_text = False
    description = "TASU w/o text (Table 2): the band-ratio diffusion conditioned on the mono signal only"
    configs = {p: {k: v for k, v in c.items() if k != "text_encoder"} for p, c in TASU.configs.items()}


class TASUNoFlip(TASU):
    name = "tasu_noflip"
    coherence = False
    description = "TASU w/o flipper (Table 2): the band-ratio diffusion without the flipped-channel coherence module"


class TASULiteral(TASU):
    name = "tasu_literal"
    literal = True
    description = "TASU as written: latent diffusion of mel(L-R) with a mel VAE and the HiFi-GAN vocoder (cannot tell left from right)"
    configs = copy.deepcopy(_LITERAL)
