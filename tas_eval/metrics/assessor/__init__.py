"""The spatial question-answering assessor: answers questions about where sounds are, from binaural audio.

TASU's understanding metrics (seed 001, section 4 and Appendix C) ask an LLM fine-tuned on spatial
questions the same questions about the ground-truth audio and about a model's audio; the loss of
accuracy from one to the other, per question type, is the metric. BAT (Spatial-AST) built such an
assessor's encoder and data but published no scorer, and TASU published neither; this is tas-eval's:

    binaural clip -> the localizer (frozen, tas_eval.metrics.localizer)
                  -> per source heard or named by the question, and for the pair it compares, a line of
                     soft words (a fixed projector, model.py)
                  -> a frozen Llama-architecture LM with LoRA adapters (llm.py; default SmolLM2-135M-Instruct)
                  -> an answer, scored against the scene's geometry (scorer.py)

The questions are the build's (tas_eval.data.qa, stored in its manifest). ``tas_qa`` (weights/tas_qa.pt:
the LoRA adapters, and the projector's fixed word embeddings; trained by `tas-eval assessor train`, see
weights/README.md) is the packaged assessor; ``load_assessor(path)`` loads a user's checkpoint of the
same format, whose LM is the one named in it (SmolLM2, or a local Hugging Face Llama folder) unless
``llm`` overrides it.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from tas_eval.errors import UserError
from tas_eval.metrics.assessor.llm import DEFAULT_LLM, LLMUnavailable, llm_available, load_llm
from tas_eval.metrics.assessor.model import RELATIONS, AssessorNet, AudioTokens, clip_tokens, for_question
from tas_eval.metrics.assessor.scorer import CHOICES, MAX_NEW_TOKENS, MODES
from tas_eval.paths import file_sha256

log = logging.getLogger(__name__)

ASSESSOR_ID = "tas_qa"
WEIGHTS = Path(__file__).resolve().parent / "weights" / "tas_qa.pt"
ANSWER_BATCH = 16  # questions answered per forward pass

__all__ = ["ASSESSOR_ID", "Assessor", "LLMUnavailable", "LocalizerMismatch", "WEIGHTS", "load_assessor",
           "llm_available"]


class LocalizerMismatch(UserError):
    """The assessor was trained on another localizer's encoder than the one given: its answers would read
    tokens it never learned."""


class Assessor:
    """A loaded assessor: ``describe()`` for results, ``encode`` audio, ``answer`` questions about it."""

    def __init__(self, network: AssessorNet, localizer, config: dict, weights_sha256: str, llm_info: dict):
        self.network = network.eval()
        self.localizer = localizer
        self.config = dict(config)
        self.id = str(config.get("id", ASSESSOR_ID))
        self.weights_sha256 = weights_sha256
        self.llm_info = dict(llm_info)

    def describe(self) -> dict:
        """What a result records of the assessor: its id and weights' sha256, its LM's and its encoder's."""
        return {"id": self.id, "sha256": self.weights_sha256, "llm": self.llm_info,
                "localizer": self.localizer.describe()}

    def encode(self, items) -> list[AudioTokens]:
        """Audio tokens (model.AudioTokens: a line per category) of each (2, T) clip at 16 kHz (numpy or torch)."""
        return clip_tokens(self.localizer, items)

    def answer(self, tokens: list[AudioTokens], questions: list[dict], field: str = "question_heldout") -> list[str]:
        """The assessor's answer to each question (its ``field`` text), asked about the audio tokens of the
        same row (the lines ``for_question`` picks for it): the chosen candidate for a "choice" kind, the greedy
        free answer for a "generate" kind."""
        answers = [""] * len(questions)
        for mode in ("choice", "generate"):
            rows = [k for k, q in enumerate(questions) if MODES[q["kind"]] == mode]
            for start in range(0, len(rows), ANSWER_BATCH):
                chunk = rows[start : start + ANSWER_BATCH]
                toks = [for_question(tokens[k], questions[k]["sources"]) for k in chunk]
                texts = [questions[k][field] for k in chunk]
                if mode == "choice":
                    got = self.network.choose(toks, texts, [CHOICES[questions[k]["kind"]] for k in chunk])
                else:
                    got = self.network.generate(toks, texts, MAX_NEW_TOKENS)
                for k, a in zip(chunk, got):
                    answers[k] = a
        return answers


def build_assessor_network(llm_source: str):
    """(a fresh AssessorNet on the LM of ``llm_source``, the LM's {"id", "sha256"})."""
    llm, tokenizer, info = load_llm(llm_source)
    return AssessorNet(llm, tokenizer), info


def load_assessor(path: str | os.PathLike | None = None, llm: str | None = None, localizer: str | None = None,
                  device: str | torch.device = "cpu") -> Assessor:
    """The assessor of checkpoint ``path`` (default: the packaged tas_qa weights) on the LM it names (or
    ``llm``, which must be the same weights) and the localizer it was trained on (the packaged one, or
    ``localizer``); cached. LLMUnavailable when the LM is not installed; LocalizerMismatch when it was trained
    on another localizer; UserError naming the file when the checkpoint does not fit."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise UserError(f"{path}: the assessor checkpoint does not exist"
                        + ("; train one with `tas-eval assessor train`." if path == WEIGHTS else "."))
    return _load(str(path.resolve()), file_sha256(path), llm, localizer, str(device))


@functools.lru_cache(maxsize=2)
def _load(path: str, sha256: str, llm: str | None, localizer: str | None, device: str) -> Assessor:
    from tas_eval.metrics.backbones import read_checkpoint
    from tas_eval.metrics.localizer import load_localizer

    ckpt = read_checkpoint(path, "assessor")
    config = ckpt.get("config")
    if not isinstance(config, dict) or not {"llm", "llm_sha256", "localizer_sha256"} <= set(config) \
            or not {"projector", "lora"} <= set(ckpt):
        raise UserError(f"{path}: is not an assessor checkpoint (needs 'projector', 'lora' and a 'config' with llm, "
                        "llm_sha256 and localizer_sha256).")
    if "presence" not in config:
        raise UserError(f"{path}: was trained on audio tokens of 0.5 s, not on the per-source tokens this version "
                        "reads; retrain it with `tas-eval assessor train`.")
    if not config.get("named_sources") or config.get("relations") != list(RELATIONS):
        raise UserError(f"{path}: was trained on other audio-token lines than this version writes (the heard sources, "
                        "the sources the question names and their relation); retrain it with `tas-eval assessor train`.")
    located = load_localizer(localizer, device)
    if located.weights_sha256 != config["localizer_sha256"]:
        raise LocalizerMismatch(f"{path}: was trained on the localizer with sha256 {config['localizer_sha256'][:12]}, "
                                f"not on {located.path} (sha256 {located.weights_sha256[:12]}); give that localizer, or "
                                "an assessor trained on this one (`tas-eval assessor train --localizer-checkpoint`).")
    source = llm or config["llm"]
    network, info = build_assessor_network(source)
    if info["sha256"] != config["llm_sha256"]:
        raise UserError(f"{path}: was trained on the LM with sha256 {config['llm_sha256'][:12]}; {source} has sha256 "
                        f"{info['sha256'][:12]}.")
    try:
        network.load_trainable({"projector": ckpt["projector"], "lora": ckpt["lora"]})
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: its weights do not fit the LM {source} ({str(exc).splitlines()[0]}).") from exc
    log.info("assessor %s, weights %s (sha256 %s), LM %s", config.get("id", ASSESSOR_ID), path, sha256[:12], info["id"])
    return Assessor(network.to(device), located, config, sha256, info)
