"""What the trained baselines share: device moves, the one-file checkpoint, input checks."""

from __future__ import annotations

import torch

from baselines.common.inference import spatialize_clips
from baselines.common.visual import frames_to_tensor
from tas_eval.audio import SAMPLE_RATE
from tas_eval.errors import UserError
from tas_eval.models import Model


class TrainedModel(Model):
    """A baseline with a network ``net`` and an optional frozen ``text_encoder``.

    Subclasses implement ``fit``, ``window_predictor`` (the sliding-window predictor of one clip) and
    ``_build(config, loading=False)``, which sets ``config``, ``net`` and ``text_encoder`` from a config
    (``loading``: the weights will come from a checkpoint, so nothing else needs loading).
    """

    trains = True
    # Convolutions and matrix products: what bfloat16 autocast casts; each model's STFTs, masks, diffusion
    # schedule and losses stay float32 under it (tas_eval.device.autocast).
    autocast_ok = True
    # Windows per forward call on a CPU, in samples of window (baselines/common/inference.py:window_chunk);
    # None: every window of a clip in one call, as on a GPU.
    cpu_chunk_samples: int | None = None

    def __init__(self):
        self.config: dict | None = None
        self.net: torch.nn.Module | None = None
        self.text_encoder = None
        self.device = "cpu"
        self.losses: list[float] = []

    def to(self, device) -> "TrainedModel":
        self.device = str(device)
        if self.net is not None:
            self.net.to(device)
        if self.text_encoder is not None:
            self.text_encoder.to(device)
        return self

    def save(self, path) -> None:
        """One file: the config and the trained weights (the frozen text encoder is referenced, not stored)."""
        torch.save({"model": self.name, "config": self.config, "net": self.net.state_dict(), "losses": self.losses}, path)

    def load(self, path) -> None:
        """Rebuild from the saved config and load the weights written by ``save``."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("model") != self.name:
            raise UserError(f"{path}: holds a '{state.get('model')}' checkpoint, not '{self.name}'.")
        self._build(state["config"], loading=True)
        self.net.load_state_dict(state["net"])
        self.net.eval()
        self.losses = list(state.get("losses", []))
        self.to(self.device)

    def check_inputs(self, sr: int, prompts=None, frames=None) -> None:
        """UserError unless the model is trained or loaded, the audio is at 16 kHz and its guidance is given."""
        if self.net is None:
            raise UserError(f"The model '{self.name}' has not been trained or loaded.")
        if sr != SAMPLE_RATE:
            raise UserError(f"The model '{self.name}' works at {SAMPLE_RATE} Hz; got audio at {sr} Hz.")
        if "text" in self.guidance and prompts is None:
            raise UserError(f"The model '{self.name}' is text-guided and needs prompts.")
        if "visual" in self.guidance and frames is None:
            raise UserError(f"The model '{self.name}' is visually guided and needs frames.")

    def guidance_input(self, texts=None, images=None) -> torch.Tensor:
        """On the model's device: the frozen text encoder's pooled embeddings (B, d) of ``texts``, or else the
        normalized frames (B, 3, H, W) of uint8 ``images`` (B, H, W, 3)."""
        if texts is not None:
            return self.text_encoder.encode(list(texts)).pooled.to(self.device)
        return frames_to_tensor(images).to(self.device)

    def clip_predictor(self, prompt, frame_fn, sr: int):
        """The window predictor of one clip: ``window_predictor(prompt, frame_fn, sr)``; a diffusion model
        overrides it to draw the clip's noise seed."""
        return self.window_predictor(prompt, frame_fn, sr)

    @torch.no_grad()
    def spatialize(self, mono: torch.Tensor, sr: int, prompts=None, frames=None) -> torch.Tensor:
        """(B, 1, T) mono at 16 kHz -> (B, 2, T): each clip through the batched sliding window
        (``config["crop_s"]``, ``config["hop_s"]``), guided by its ``prompts`` and/or ``frames``."""
        self.check_inputs(sr, prompts, frames)
        self.net.eval()
        mono = mono.to(self.device).float()
        return spatialize_clips(mono, sr, self.config, lambda b: self.clip_predictor(
            prompts[b] if prompts is not None else None, frames[b] if frames is not None else None, sr),
            self.cpu_chunk_samples)
