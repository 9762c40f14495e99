"""What the trained baselines share: seeded training crops and a resumable training loop.

Crops are drawn from a generator seeded by (seed, step), so a run that is killed and resumed from its
last checkpoint sees exactly the crops an uninterrupted run would have seen. Each crop is scaled by
the RMS of its mono signal, the same normalization ``tas_eval.audio.sliding_window_inference``
applies to every window at inference (the reference scripts normalize each training crop by its RMS
too: 2.5D-Visual-Sound data/audioVisual_dataset.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from tas_eval.audio import mono_from_binaural
from tas_eval.data.protocol import Dataset
from tas_eval.errors import UserError
from tas_eval.io import atomic_path
from tas_eval.models import text_at

log = logging.getLogger(__name__)

TRAIN_STATE = "train_state.pt"


class CropSampler:
    """Random training crops of one part of one split, deterministic in (seed, step)."""

    def __init__(self, dataset: Dataset, split: int, crop_s: float, seed: int, part: str = "train"):
        self.dataset = dataset
        self.ids = dataset.split_ids(split, part)
        self.sr = dataset.sample_rate
        self.length = int(round(crop_s * self.sr))
        self.seed = seed
        self._audio: dict[str, np.ndarray] = {}
        self._annotation: dict[str, dict] = {}
        self._renderers: dict[str, Callable] = {}

    def _clip(self, item_id: str) -> tuple[np.ndarray, dict]:
        if item_id not in self._audio:
            self._audio[item_id] = self.dataset.binaural(item_id)
            self._annotation[item_id] = self.dataset.annotation(item_id) or {}
        return self._audio[item_id], self._annotation[item_id]

    def dense_texts(self) -> list[str]:
        """Every distinct dense (per 0.1 s frame) text of the part, sorted: to encode once before training."""
        texts = set()
        for item_id in self.ids:
            annotation = self._clip(item_id)[1]
            texts.update(str(f.get("text", "")) for f in annotation.get("frames") or [])
            texts.add(text_at(annotation, 0.0))
        return sorted(texts)

    def batch(self, step: int, batch_size: int) -> dict:
        """Crops of training step ``step``.

        Returns ``mono`` (B, 1, W) = L + R and ``binaural`` (B, 2, W), both divided by the RMS of the
        mono crop; ``diff`` (B, 1, W) = L - R on the same scale; ``prompts`` (the dense text of the
        frame holding each crop's centre, as the TAS paper trains, else the clip prompt:
        tas_eval.models.text_at); ``item_ids`` and ``centres_s`` (crop centres in the clip, seconds).
        """
        rng = np.random.default_rng([self.seed, step])
        picks = rng.integers(0, len(self.ids), batch_size)
        crops, prompts, ids, centres = [], [], [], []
        for k in picks:
            item_id = self.ids[int(k)]
            audio, annotation = self._clip(item_id)
            total = audio.shape[1]
            start = int(rng.integers(0, max(1, total - self.length + 1)))
            crop = audio[:, start : start + self.length]
            if crop.shape[1] < self.length:
                crop = np.pad(crop, ((0, 0), (0, self.length - crop.shape[1])))
            centre = (start + self.length / 2) / self.sr
            crops.append(crop)
            prompts.append(text_at(annotation, centre))
            ids.append(item_id)
            centres.append(centre)
        binaural = torch.from_numpy(np.stack(crops)).float()
        mono = mono_from_binaural(binaural)
        scale = mono.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-8)
        binaural = binaural / scale
        mono = mono / scale
        return {"mono": mono, "binaural": binaural, "diff": binaural[:, 0:1] - binaural[:, 1:2], "prompts": prompts,
                "item_ids": ids, "centres_s": centres}

    def frames(self, item_ids: list[str], times_s: list[float], size: tuple[int, int]) -> np.ndarray:
        """uint8 (B, H, W, 3): the video frame of each item at its time (seconds into the clip)."""
        out = []
        for item_id, t in zip(item_ids, times_s):
            if item_id not in self._renderers:
                self._renderers[item_id] = self.dataset.frames(item_id)
            out.append(self._renderers[item_id]([t], size=size)[0])
        return np.stack(out)


def step_decay(optimizer: torch.optim.Optimizer, every: int, decay: float) -> Callable[[int], None]:
    """``on_step`` for train_loop: every rate of ``optimizer`` = its initial rate x ``decay`` ** (step // ``every``).

    The FAIR-Play reference scripts multiply the rates by a factor every k epochs; setting them from the step
    makes a resumed run exact.
    """
    base = [g["lr"] for g in optimizer.param_groups]

    def on_step(step: int) -> None:
        for g, lr in zip(optimizer.param_groups, base):
            g["lr"] = lr * decay ** (step // every)

    return on_step


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save through the one atomic writer (a killed run never leaves half a state)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train_loop(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_at: Callable[[int], torch.Tensor],
               steps: int, checkpoint_dir: str | Path | None, checkpoint_every: int = 50, desc: str = "training",
               on_step: Callable[[int], None] | None = None) -> list[float]:
    """Run ``steps`` optimizer steps of ``loss_at(step)``, resuming from ``checkpoint_dir`` if it holds a state.

    The network, optimizer, step and loss history are saved to ``checkpoint_dir/train_state.pt`` every
    ``checkpoint_every`` steps and at the end (atomically). ``on_step(step)`` runs before each step
    (e.g. a learning-rate schedule). Returns the loss of every step, the resumed ones included.
    """
    state_path = Path(checkpoint_dir) / TRAIN_STATE if checkpoint_dir else None
    start, losses = 0, []
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    if state_path is not None and state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=False)
            parts = (state["net"], state["optimizer"], int(state["step"]), list(state["losses"]))
        except Exception as exc:  # a damaged file: torch and pickle raise many types
            first = str(exc).splitlines()[0] if str(exc) else ""
            log.warning("%s: cannot be read (%s: %s); it is discarded and training starts from the first step",
                        state_path, type(exc).__name__, first)
            state_path.unlink()
        else:
            try:
                net.load_state_dict(parts[0])
                optimizer.load_state_dict(parts[1])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise UserError(f"{state_path}: does not fit this model ({str(exc).splitlines()[0]}); delete it to "
                                "train from the first step.") from exc
            start, losses = parts[2], parts[3]
            log.info("%s: resuming from step %d (%s)", desc, start, state_path)
    net.train()
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=desc, unit="step", disable=start >= steps)
    for step in bar:
        if on_step is not None:
            on_step(step)
        loss = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step + 1 == steps:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
        done = step + 1
        if state_path is not None and (done % checkpoint_every == 0 or done == steps):
            save_atomic({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "step": done,
                          "losses": losses}, state_path)
    if losses:
        log.info("%s: %d steps, loss %.4f -> %.4f (means of first/last 10)", desc, len(losses),
                 float(np.mean(losses[:10])), float(np.mean(losses[-10:])))
    net.eval()
    return losses
