"""VGGish (Hershey et al., "CNN Architectures for Large-Scale Audio Classification", ICASSP 2017), the
embedding of FAD (Kilgour et al. 2019), written here from the published architecture.

frechet-audio-distance and torchvggish cannot be used: both fetch the weights (torch.hub) when the
model is built. This module never downloads anything; the user gives a checkpoint in torchvggish's
state_dict layout (e.g. vggish-10086976.pth):

    features.{0,3,6,8,11,13}.{weight,bias}   3x3 convolutions 1-64-128-256-256-512-512, ReLU, and
                                             2x2 max pooling after the 1st, 2nd, 4th and 6th
    embeddings.{0,2,4}.{weight,bias}         12288 -> 4096 -> 4096 -> 128, ReLU between

Keys of torchvggish's PCA post-processor (``pproc.*``) are ignored: FAD uses VGGish with PCA off and
the last ReLU removed, as frechet-audio-distance (use_pca=False, use_activation=False) and
audioldm_eval do.

Input features as the reference vggish_input / mel_features: 25 ms frames (400 samples) every 10 ms,
periodic Hann window, |rfft| over 512 points, 64 HTK-mel bands from 125 to 7500 Hz (triangles in the
mel domain, DC bin excluded), log(mel + 0.01), framed into non-overlapping examples of 96 frames
(0.96 s). A clip gives one 128-d embedding per whole example.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn

from tas_eval.errors import UserError
from tas_eval.metrics.backbones import Backbone, load_state_dict_strict, read_checkpoint
from tas_eval.paths import file_sha256

SAMPLE_RATE = 16000
WINDOW = 400  # samples, 25 ms
HOP = 160  # samples, 10 ms
FFT = 512  # 2 ** ceil(log2(WINDOW))
MEL_BANDS = 64
MEL_LOW_HZ, MEL_HIGH_HZ = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s
EMBEDDING_DIM = 128


def hz_to_htk_mel(f):
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_matrix(num_bins: int = FFT // 2 + 1, sr: int = SAMPLE_RATE, bands: int = MEL_BANDS,
               low: float = MEL_LOW_HZ, high: float = MEL_HIGH_HZ) -> np.ndarray:
    """(num_bins, bands) triangular weights, linear in HTK mel, on bins spaced linearly from 0 to sr/2."""
    bin_mel = hz_to_htk_mel(np.linspace(0.0, sr / 2, num_bins))
    edges = np.linspace(hz_to_htk_mel(low), hz_to_htk_mel(high), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bin_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # the DC bin takes part in no band (as HTK)
    return weights


def log_mel_examples(audio: torch.Tensor) -> torch.Tensor:
    """(B, T) audio at 16 kHz -> (B, E, 96, 64) log-mel examples, E = whole 0.96 s examples (>= 0)."""
    if audio.shape[-1] < WINDOW:
        return audio.new_zeros(audio.shape[0], 0, EXAMPLE_FRAMES, MEL_BANDS)
    frames = audio.unfold(-1, WINDOW, HOP)  # (B, F, 400), no padding: F = 1 + (T - 400) // 160
    n = torch.arange(WINDOW, device=audio.device, dtype=audio.dtype)
    window = 0.5 - 0.5 * torch.cos(2 * torch.pi * n / WINDOW)  # periodic Hann
    mag = torch.fft.rfft(frames * window, n=FFT).abs()
    mel = mag @ torch.from_numpy(mel_matrix()).to(audio.device, audio.dtype)
    logmel = torch.log(mel + LOG_OFFSET)
    e = (logmel.shape[1] - EXAMPLE_FRAMES) // EXAMPLE_FRAMES + 1 if logmel.shape[1] >= EXAMPLE_FRAMES else 0
    return logmel[:, : e * EXAMPLE_FRAMES].reshape(audio.shape[0], e, EXAMPLE_FRAMES, MEL_BANDS)


class VGGish(nn.Module):
    """VGGish without its last ReLU: (B, 1, 96, 64) log-mel examples -> (B, 128) embeddings."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, spec, 3, padding=1), nn.ReLU(inplace=True)]
                cin = spec
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(inplace=True),
                                        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, EMBEDDING_DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, 6, 4): (channels, time, frequency)
        # The TensorFlow original flattens in (time, frequency, channels) order; its weights expect that.
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return self.embeddings(x)


class VGGishBackbone(Backbone):
    """VGGish from a user-given checkpoint: 128-d frame embeddings; no classifier (so no KL or IS)."""

    id = "vggish"
    sample_rate = SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM
    num_classes = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None, device="cpu") -> "VGGishBackbone":
        if path is None:
            raise UserError("The vggish backbone needs a checkpoint in torchvggish's layout (vggish-10086976.pth): "
                            "pass it with --backbone-checkpoint FILE.")
        ckpt = read_checkpoint(path, "VGGish")
        state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
        network = VGGish()
        load_state_dict_strict(network, state, path, "VGGish", ignore_prefixes=("pproc.",))
        backbone = cls(network, device)
        backbone.weights_sha256 = file_sha256(path)
        backbone.checkpoint_path = str(path)
        return backbone

    def _examples(self, audio: torch.Tensor) -> torch.Tensor:
        ex = log_mel_examples(audio)
        if ex.shape[1] == 0:
            raise UserError(f"VGGish needs at least {(WINDOW + (EXAMPLE_FRAMES - 1) * HOP) / SAMPLE_RATE:.3f} s of audio "
                            f"per clip; got {audio.shape[-1] / SAMPLE_RATE:.3f} s.")
        return ex

    def _forward(self, audio: torch.Tensor):
        """Clip embedding: the mean of the clip's example embeddings (VGGish has no clip-level output)."""
        ex = self._examples(audio)
        b, e = ex.shape[:2]
        emb = self.network(ex.reshape(b * e, 1, EXAMPLE_FRAMES, MEL_BANDS)).reshape(b, e, -1)
        return emb.mean(dim=1), None

    @torch.inference_mode()
    def embed_frames(self, audio) -> torch.Tensor:
        """(N, T) at 16 kHz -> (N, E, 128): VGGish's own framing into 0.96 s examples (as FAD uses it)."""
        audio = self._check(audio).to(self.device, torch.float32)
        ex = self._examples(audio)
        b, e = ex.shape[:2]
        return self.network(ex.reshape(b * e, 1, EXAMPLE_FRAMES, MEL_BANDS)).reshape(b, e, -1).double().cpu()
