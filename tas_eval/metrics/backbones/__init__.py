"""Backbones of the generative metrics (FD, FAD, KL, IS): networks that turn mono 16 kHz audio into
embeddings and, for classifiers, class logits.

Built-ins (registered lazily, so that importing this module loads no network):

    tas_cnn      a Cnn14-style classifier of the benchmark's 12 source categories, trained here
                 (`tas-eval backbone train`); its weights ship in weights/tas_cnn.pt. The default.
    panns_cnn14  PANNs Cnn14 (Kong et al. 2020) from a checkpoint the user gives, the 16 kHz one
                 (Cnn14_16k_mAP=0.438.pth, as TASU and audioldm_eval use) or the 32 kHz one.
    vggish       VGGish (Hershey et al. 2017) from a checkpoint the user gives in torchvggish's
                 state_dict layout; embeddings only (no classifier, so no KL or IS).

Third-party packages add theirs through the ``tas_eval.backbones`` entry-point group; an entry
points to a Backbone subclass.

The interface (``Backbone``): ``id``, ``sample_rate`` (Hz the network runs at), ``embedding_dim``,
``num_classes`` (None without a classifier), ``weights_sha256`` (sha256 of the checkpoint file) and

    embed(audio)        (N, T) mono float tensor at 16 kHz -> (embeddings (N, D), logits (N, C) or None)
    embed_frames(audio) (N, T) -> (N, F, D): one embedding per non-overlapping 0.96 s frame
                        (VGGish's example framing; a trailing part shorter than a frame is dropped)

Both return float64 tensors on the CPU; the networks run in float32 on the backbone's device.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from tas_eval.errors import UserError
from tas_eval.registry import Registry

log = logging.getLogger(__name__)

INPUT_SAMPLE_RATE = 16000  # Hz of the audio given to embed / embed_frames
FRAME_SECONDS = 0.96  # VGGish's example length (96 frames of 10 ms), the frame of FAD for every backbone
FRAME_SAMPLES = int(round(FRAME_SECONDS * INPUT_SAMPLE_RATE))

BACKBONES = Registry("backbone", "tas_eval.backbones")
_BUILTIN = {
    "tas_cnn": "tas_eval.metrics.backbones.tas_cnn:TasCnnBackbone",
    "panns_cnn14": "tas_eval.metrics.backbones.panns:PannsCnn14Backbone",
    "vggish": "tas_eval.metrics.backbones.vggish:VGGishBackbone",
}
for _id, _target in _BUILTIN.items():
    BACKBONES.add_lazy(_id, _target)


def read_checkpoint(path: str | os.PathLike, what: str) -> dict:
    """A checkpoint file read with ``torch.load(weights_only=True)``; UserError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: the {what} checkpoint does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (pickle, zip, runtime) for a bad file
        raise UserError(f"{path}: cannot be read as a {what} checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}).") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path}: is not a {what} checkpoint (a {type(obj).__name__}, not a state_dict).")
    return obj


def write_checkpoint(checkpoint: dict, path: str | os.PathLike) -> dict:
    """Save a trained network's checkpoint with torch.save, atomically; returns {"sha256", "bytes"} of the file."""
    from tas_eval.io import atomic_path
    from tas_eval.paths import file_sha256

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def load_state_dict_strict(module: torch.nn.Module, state: dict, path, what: str, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state`` into ``module`` requiring exactly its keys and shapes; UserError naming the file otherwise."""
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. '{missing[0]}'")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. '{unexpected[0]}'")
        raise UserError(f"{path}: is not a {what} state_dict ({'; '.join(parts)}).")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{path}: '{k}' has shape {tuple(state[k].shape)}, a {what} needs {tuple(v.shape)}.")
    module.load_state_dict(state, strict=True)


class Backbone:
    """Base class of a backbone (see the module docstring). Subclasses set the attributes and ``_forward``."""

    id: str = ""
    sample_rate: int = INPUT_SAMPLE_RATE
    embedding_dim: int = 0
    num_classes: int | None = None
    weights_sha256: str = ""
    checkpoint_path: str = ""

    def __init__(self, network: torch.nn.Module, device: str | torch.device = "cpu"):
        self.network = network.to(device).eval()
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None, device: str | torch.device = "cpu") -> "Backbone":
        """The backbone with the weights of ``path`` (None: the backbone's default, where it has one)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """{"id", "sha256", "sample_rate", "embedding_dim", "num_classes"}: what results record."""
        return {"id": self.id, "sha256": self.weights_sha256, "sample_rate": int(self.sample_rate),
                "embedding_dim": int(self.embedding_dim), "num_classes": self.num_classes}

    def _forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, T) float32 at ``sample_rate`` on the device -> (embeddings (N, D), logits (N, C) or None)."""
        raise NotImplementedError

    def _to_network_rate(self, audio: torch.Tensor) -> torch.Tensor:
        if self.sample_rate == INPUT_SAMPLE_RATE:
            return audio
        from tas_eval.audio import resample

        return torch.from_numpy(np.ascontiguousarray(resample(audio.cpu().double().numpy(), INPUT_SAMPLE_RATE, self.sample_rate)))

    def _check(self, audio) -> torch.Tensor:
        audio = torch.as_tensor(audio)
        if audio.ndim != 2:
            raise ValueError(f"{self.id}: expected (N, T) mono audio, got shape {tuple(audio.shape)}")
        if not torch.isfinite(audio).all():
            raise ValueError(f"{self.id}: the audio has non-finite samples")
        return audio

    @torch.inference_mode()
    def embed(self, audio) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, T) mono audio at 16 kHz -> (embeddings (N, D), logits (N, C) or None), float64 on the CPU."""
        audio = self._to_network_rate(self._check(audio))
        emb, logits = self._forward(audio.to(self.device, torch.float32))
        return emb.double().cpu(), (None if logits is None else logits.double().cpu())

    @torch.inference_mode()
    def embed_frames(self, audio) -> torch.Tensor:
        """(N, T) mono audio at 16 kHz -> (N, F, D) float64: embeddings of the F = T // 15360 whole 0.96 s frames."""
        audio = self._check(audio)
        n, t = audio.shape
        f = t // FRAME_SAMPLES
        if f == 0:
            raise UserError(f"Clips of {t / INPUT_SAMPLE_RATE:.2f} s are shorter than one {FRAME_SECONDS} s frame of FAD.")
        frames = audio[:, : f * FRAME_SAMPLES].reshape(n * f, FRAME_SAMPLES)
        emb, _ = self.embed(frames)
        return emb.reshape(n, f, -1)


def get_backbone_class(backbone_id: str) -> type:
    """The Backbone class registered under ``backbone_id`` (UserError with "did you mean" otherwise)."""
    return BACKBONES.get(backbone_id)


def list_backbones() -> list[str]:
    """Ids of every registered backbone."""
    return BACKBONES.names()


def load_backbone(backbone_id: str, checkpoint: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> Backbone:
    """The backbone ``backbone_id`` with the weights of ``checkpoint`` (None: its default weights)."""
    cls = get_backbone_class(backbone_id)
    backbone = cls.from_checkpoint(checkpoint, device)
    log.info("backbone %s, weights %s (sha256 %s)", backbone.id, backbone.checkpoint_path, backbone.weights_sha256[:12])
    return backbone
