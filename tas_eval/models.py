"""The model contract and the model registry.

A model is a class (a baseline in ``baselines/`` or a user's package) that declares::

    name: str                  registry id, e.g. "text_pan"
    version: str               bump it whenever a change of the code changes the outputs: it is part
                               of the run key, so checkpoints and predictions of an older version
                               are never reused
    guidance: frozenset[str]   subset of {"text", "visual"}; empty = no guidance
    paper: str                 citation of the paper it reimplements
    description: str           one line for listings and model.json
    trains: bool               False = training-free (fit is a no-op)
    autocast_ok: bool          True = its networks may train and predict under bfloat16 autocast
                               (``--precision bf16``, the default on a GPU); False (the default) = float32
    configs: dict[str, dict]   training/inference settings per profile: "paper" (the paper's
                               settings) and "small" (a CPU profile) at least

and implements::

    fit(dataset, split, config, device, seed, checkpoint_dir)   train on the train part of a split
        of a dataset (tas_eval.data.protocol); resumable: it keeps its own intermediate checkpoints
        in checkpoint_dir and continues from the newest one when called again
    save(path) / load(path)    the trained state, one file
    to(device)                 move everything inference uses to the device (returns the model)
    spatialize(mono, sr, prompts, frames) -> binaural

``spatialize`` gets ``mono`` as a torch tensor (B, 1, T) (mono = L + R, the FAIR-Play convention)
at ``sr`` Hz and returns (B, 2, T) on any device. ``prompts`` is None for models without text
guidance, else a list of B prompt dicts that hold TEXT ONLY (never the annotations' numbers)::

    {"text": "the cello is on the left, front, 2m away.",   # the clip's direction prompt
                                                            # (SpatialTAS style), or None
     "clip_prompts": [{"type": "direction"|"relation"|"distance", "text": ..., "phrasing": ...}],
     "frames": [{"t0": 0.0, "text": "the cello on the left"}, ...] | None}   # dense text per
                                             # 0.1 s frame (TASBench style; "silence" when nothing sounds)

(built by ``prompt_from_annotation``). ``frames`` is None for models without visual guidance, else a
list of B callables ``frames[b](times_s, size=(224, 224)) -> uint8 (N, H, W, 3)`` rendering the
item's video frames at times in seconds on demand (the dataset's ``frames``).

How the runner uses a model: ``cls()`` (no arguments); if ``trains``: ``fit(...)`` then
``save(final)`` unless a matching checkpoint exists, then ``load(final)`` (so save must store
everything load needs: weights AND config); then ``to(device)`` for every model, so that inference
runs on the device the results record (a torch.nn.Module is also put in eval mode); ``spatialize``
runs under torch.inference_mode() on batches of test clips, ``mono`` on that device. ``fit`` and
``spatialize`` run inside ``tas_eval.device.autocast(device, precision)``. A model may
set ``last_notes`` (a list of B dicts of numbers) in spatialize: the runner sums them over the test
items into the results' extra field (text_pan reports its parser fallbacks this way).

The registry takes the built-ins below (imported lazily) and every entry point of the group
``tas_eval.models``: a user's package plugs in exactly as the baselines do, e.g. in its
pyproject.toml::

    [project.entry-points."tas_eval.models"]
    my_model = "my_package.model:MyModel"
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

import torch

from tas_eval.data.protocol import GUIDANCE_KINDS
from tas_eval.registry import Registry

log = logging.getLogger(__name__)


MODELS = Registry("model", "tas_eval.models")

# Built-in models, imported only when asked for.
_BUILTINS = {
    # training-free baselines
    "mono_mono": "baselines.mono_mono:MonoMono",
    "text_pan": "baselines.text_pan:TextPan",
    # published models, one line each: "name": "baselines.<module>:<Class>"
    "mono2binaural_visual": "baselines.mono2binaural:Mono2BinauralVisual",
    "mono2binaural_text": "baselines.mono2binaural:Mono2BinauralText",
    "apnet_visual": "baselines.apnet:APNetVisual",
    "apnet_text": "baselines.apnet:APNetText",
    "sepstereo_visual": "baselines.apnet:SepStereoVisual",
    "sepstereo_text": "baselines.apnet:SepStereoText",
    "pseudobinaural_visual": "baselines.pseudobinaural:PseudoBinauralVisual",
    "pseudobinaural_text": "baselines.pseudobinaural:PseudoBinauralText",
    "sagm_visual": "baselines.sagm:SAGMVisual",
    "sagm_text": "baselines.sagm:SAGMText",
    "sagm_visual_noshare": "baselines.sagm:SAGMVisualNoShare",
    "sagm_novisual": "baselines.sagm:SAGMNoVisual",
    "tasu": "baselines.tasu:TASUBandRatio",
    "tasu_notext": "baselines.tasu:TASUNoText",
    "tasu_noflip": "baselines.tasu:TASUNoFlip",
    "tasu_literal": "baselines.tasu:TASULiteral",
    "ours": "baselines.tas:Ours",
    "ours_saf": "baselines.tas:OursSAF",
    "audio_only": "baselines.tas:AudioOnly",
    "add": "baselines.tas:OursAdd",
    "conv": "baselines.tas:OursConv",
    "ours_saf_tokens": "baselines.tas:OursTokenSAF",
}
for _name, _target in _BUILTINS.items():
    MODELS.add_lazy(_name, _target)


class Model:
    """Base class of the model contract (see the module docstring); subclassing it is optional."""

    name: str = ""
    version: str = "1"
    guidance: frozenset[str] = frozenset()
    paper: str = ""
    description: str = ""
    trains: bool = False
    # Whether its networks may train and predict under bfloat16 autocast (``--precision``).
    autocast_ok: bool = False
    configs: dict[str, dict] = {"paper": {}, "small": {}}

    def fit(self, dataset, split: int, config: dict, device: str, seed: int, checkpoint_dir: Path) -> None:
        """Train on the train part of ``split`` of ``dataset``; training-free models do nothing."""

    def to(self, device) -> "Model":
        """Move what inference uses to ``device``; a model without tensors of its own has nothing to move."""
        return self

    def save(self, path: str | Path) -> None:
        """Write the trained state to ``path`` (one file)."""
        torch.save(self.state_dict() if hasattr(self, "state_dict") else {}, path)

    def load(self, path: str | Path) -> None:
        """Read the trained state written by ``save``."""
        if hasattr(self, "load_state_dict"):
            self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def spatialize(
        self,
        mono: torch.Tensor,
        sr: int,
        prompts: list[dict] | None = None,
        frames: list[Callable[[float], Any]] | None = None,
    ) -> torch.Tensor:
        """(B, 1, T) mono at ``sr`` Hz -> (B, 2, T) binaural."""
        raise NotImplementedError


def get_model_class(name: str) -> type:
    """The model class registered under ``name`` (UserError with suggestions if unknown)."""
    return MODELS.get(name)


def guidance_label(guidance) -> str:
    """'text', 'visual', 'text+visual' or 'none'."""
    kinds = [k for k in GUIDANCE_KINDS if k in set(guidance or ())]
    return "+".join(kinds) if kinds else "none"


def model_config(cls: type, profile: str) -> dict:
    """The config of ``profile`` declared by a model class; UserError naming the known profiles."""
    from tas_eval.errors import UserError

    configs = getattr(cls, "configs", None) or {}
    if profile not in configs:
        raise UserError(f"The model '{cls.name}' has no config profile '{profile}'; known: {', '.join(sorted(configs)) or 'none'}.")
    return dict(configs[profile])


def model_info(cls: type) -> dict:
    """The descriptive fields of a model class (for listings and model.json)."""
    return {
        "name": cls.name,
        "version": str(getattr(cls, "version", "1")),
        "guidance": guidance_label(getattr(cls, "guidance", ())),
        "paper": getattr(cls, "paper", ""),
        "description": getattr(cls, "description", ""),
        "trains": bool(getattr(cls, "trains", False)),
    }


def prompt_from_annotation(annotation: dict, held_out: bool = False, counterfactual: bool = False) -> dict:
    """The text guidance of one item: clip prompts and dense per-frame texts, nothing numeric.

    ``text`` is the clip's "direction" prompt (direction and distance of every source, SpatialTAS's
    DOA/DE prompt) in a training phrasing, or in a held-out phrasing with ``held_out=True`` (falling
    back to the first clip prompt of that phrasing set, then to any). ``clip_prompts`` lists every
    clip prompt of the chosen phrasing set as {"type", "text", "phrasing"}. ``frames`` is the dense
    TASBench-style text of every 0.1 s frame ("silence" when nothing sounds). With ``counterfactual``
    every text has its sides swapped (tas_eval.data.prompts.counterfactual: left <-> right), the
    prompt under which a model that follows its prompt moves every lateral source to the other side.
    This is the only place where the runner turns annotations into model input, so that no model sees
    the annotated positions at test time.
    """
    from tas_eval.data.prompts import counterfactual as swapped

    def turn(text):
        return swapped(text) if counterfactual and isinstance(text, str) else text
    clip = [p for p in annotation.get("clip_prompts") or [] if bool(p.get("held_out")) == held_out]
    chosen = next((p for p in clip if p.get("type") == "direction"), clip[0] if clip else None)
    if chosen is None and annotation.get("clip_prompts"):
        chosen = annotation["clip_prompts"][0]
    frames = annotation.get("frames")
    return {
        "text": turn(chosen["text"]) if chosen else None,
        "clip_prompts": [{"type": p.get("type"), "text": turn(p.get("text")), "phrasing": p.get("phrasing")} for p in clip],
        "frames": [{"t0": float(f["t0"]), "text": turn(str(f.get("text", "")))} for f in frames] if frames else None,
    }


def text_at(annotation: dict | None, t_s: float) -> str:
    """The text guiding the audio around ``t_s`` seconds: the dense (TASBench-style) text of the 0.1 s
    frame holding ``t_s`` (clamped to the annotated frames), else the clip's direction prompt, else ""."""
    from tas_eval.data.scene import FRAME_RATE

    frames = (annotation or {}).get("frames")
    if frames:
        k = int(min(max(math.floor(t_s * FRAME_RATE), 0), len(frames) - 1))
        return str(frames[k].get("text", ""))
    return prompt_from_annotation(annotation or {})["text"] or ""
