"""PANNs Cnn14 (Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks", 2020), written here
from the published architecture so that the official checkpoints load into it.

panns-inference cannot be used: importing it downloads the AudioSet label list (and its model class
downloads weights). This module never downloads anything; the user gives a checkpoint file:

    16 kHz  Cnn14_16k_mAP=0.438.pth  sample_rate 16000, window 512, hop 160, 64 mel bins, 50-8000 Hz
    32 kHz  Cnn14_mAP=0.431.pth      sample_rate 32000, window 1024, hop 320, 64 mel bins, 50-14000 Hz

Both are ``{"model": state_dict, ...}`` (a bare state_dict is accepted too), with the key names of the
official module tree: ``spectrogram_extractor.stft.conv_{real,imag}.weight`` (the windowed DFT as a
Conv1d), ``logmel_extractor.melW`` (librosa's Slaney mel filters), ``bn0``, ``conv_block1..6.
{conv1,conv2,bn1,bn2}``, ``fc1``, ``fc_audioset``. Which of the two it is follows from the shape of
``logmel_extractor.melW``.

Outputs as audioldm_eval uses them: the embedding is relu(fc1(x)) (2048-d, "2048"), the logits are
fc_audioset of that embedding (527 AudioSet classes, before the sigmoid).
"""

from __future__ import annotations

import os

import librosa
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tas_eval.errors import UserError
from tas_eval.metrics.backbones import Backbone, load_state_dict_strict, read_checkpoint
from tas_eval.paths import file_sha256

# name -> (sample_rate, window_size, hop_size, mel_bins, fmin, fmax)
CONFIGS = {
    "16k": (16000, 512, 160, 64, 50.0, 8000.0),
    "32k": (32000, 1024, 320, 64, 50.0, 14000.0),
}
AUDIOSET_CLASSES = 527
AMIN = 1e-10  # floor of the mel power before the log (torchlibrosa's default, as Cnn14 uses it)


class _DFTConv(nn.Module):
    """The windowed DFT of the frames of a signal as two Conv1d (real, imaginary parts).

    Holds the parameter names of torchlibrosa's STFT (``conv_real``, ``conv_imag``) so that a PANNs
    checkpoint loads. Frames are centred (reflect padding of n_fft // 2 on both sides), with a
    periodic Hann window, as librosa.stft.
    """

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        n = np.arange(n_fft)
        k = np.arange(bins)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
        angle = -2 * np.pi * np.outer(k, n) / n_fft  # e^{-i 2 pi k n / N}
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(angle) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(np.sin(angle) * window)[:, None, :])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> real, imaginary parts (B, 1, frames, bins)."""
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return self.conv_real(x).transpose(1, 2)[:, None], self.conv_imag(x).transpose(1, 2)[:, None]


class _Spectrogram(nn.Module):
    """Power spectrogram |STFT|^2, (B, T) -> (B, 1, frames, bins); its DFT lives in ``stft``."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _DFTConv(n_fft, hop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        re, im = self.stft(x)
        return re * re + im * im


class _LogMel(nn.Module):
    """Power spectrogram -> log mel power in dB: 10 log10(max(mel, AMIN)) (reference power 1, no top_db)."""

    def __init__(self, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float):
        super().__init__()
        mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)  # Slaney, area-normalized
        self.melW = nn.Parameter(torch.from_numpy(mel.T.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=AMIN))


class LogMelFrontEnd(nn.Module):
    """(B, T) audio -> (B, 1, frames, mel_bins) log mel power in dB, Cnn14's input features."""

    def __init__(self, sr: int, n_fft: int, hop: int, n_mels: int, fmin: float, fmax: float):
        super().__init__()
        self.spectrogram_extractor = _Spectrogram(n_fft, hop)
        self.logmel_extractor = _LogMel(sr, n_fft, n_mels, fmin, fmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logmel_extractor(self.spectrogram_extractor(x))


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias) each followed by batch norm and ReLU, then 2-D average pooling."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor, pool: tuple[int, int] = (2, 2)) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool != (1, 1) else x


class Cnn14(nn.Module):
    """Cnn14: log mel -> bn0 over mel bins -> 6 conv blocks (64..2048 channels, avg-pooled 2x2 except the
    last) -> mean over frequency -> max + mean over time -> fc1 (2048) -> fc_audioset (527).

    ``forward`` returns (embedding = relu(fc1(.)), logits = fc_audioset(embedding)). Dropout and
    SpecAugment are training-time only and are left out: this module only runs inference.
    """

    def __init__(self, config: str = "16k", classes_num: int = AUDIOSET_CLASSES):
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"unknown Cnn14 config {config!r}; known: {', '.join(CONFIGS)}")
        sr, window, hop, mels, fmin, fmax = CONFIGS[config]
        self.config = config
        front = LogMelFrontEnd(sr, window, hop, mels, fmin, fmax)
        # The official module tree has the two extractors at the top level.
        self.spectrogram_extractor = front.spectrogram_extractor
        self.logmel_extractor = front.logmel_extractor
        self.bn0 = nn.BatchNorm2d(mels)
        widths = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)
        for fc in (self.fc1, self.fc_audioset):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) -> log mel (B, 1, frames, mel_bins) normalized per mel bin by bn0."""
        x = self.logmel_extractor(self.spectrogram_extractor(audio))
        return self.bn0(x.transpose(1, 3).contiguous()).transpose(1, 3).contiguous()

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(audio)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=(2, 2) if i < 6 else (1, 1))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        emb = F.relu(self.fc1(x))
        return emb, self.fc_audioset(emb)


def config_of_state(state: dict, path) -> str:
    """'16k' or '32k' from the shape of ``logmel_extractor.melW`` (n_fft // 2 + 1 rows)."""
    melw = state.get("logmel_extractor.melW")
    if melw is None:
        raise UserError(f"{path}: is not a PANNs Cnn14 checkpoint (no 'logmel_extractor.melW').")
    for name, (_, window, _, mels, _, _) in CONFIGS.items():
        if tuple(melw.shape) == (window // 2 + 1, mels):
            return name
    raise UserError(f"{path}: 'logmel_extractor.melW' has shape {tuple(melw.shape)}, which is neither the 16 kHz "
                    f"(257, 64) nor the 32 kHz (513, 64) Cnn14.")


class PannsCnn14Backbone(Backbone):
    """Cnn14 from a user-given checkpoint: 2048-d embeddings, 527 AudioSet logits."""

    id = "panns_cnn14"
    embedding_dim = 2048
    num_classes = AUDIOSET_CLASSES

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None, device="cpu") -> "PannsCnn14Backbone":
        if path is None:
            raise UserError("The panns_cnn14 backbone needs a checkpoint: download Cnn14_16k_mAP=0.438.pth (PANNs, "
                            "Zenodo record 3987831) and pass it with --backbone-checkpoint FILE.")
        ckpt = read_checkpoint(path, "PANNs Cnn14")
        state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
        config = config_of_state(state, path)
        classes = state.get("fc_audioset.weight")
        network = Cnn14(config, classes_num=int(classes.shape[0]) if classes is not None else AUDIOSET_CLASSES)
        load_state_dict_strict(network, state, path, f"PANNs Cnn14 ({config})")
        backbone = cls(network, device)
        backbone.sample_rate = CONFIGS[config][0]
        backbone.num_classes = int(network.fc_audioset.out_features)
        backbone.weights_sha256 = file_sha256(path)
        backbone.checkpoint_path = str(path)
        return backbone

    def _forward(self, audio: torch.Tensor):
        # Cnn14 needs at least 32 frames (5 poolings of 2); pad very short inputs with silence.
        min_len = 32 * CONFIGS[self.network.config][2]
        if audio.shape[-1] < min_len:
            audio = F.pad(audio, (0, min_len - audio.shape[-1]))
        return self.network(audio)

