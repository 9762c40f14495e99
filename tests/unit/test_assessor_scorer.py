"""The assessor's scorer on hand-written answers, and its chance levels on hand-counted question sets."""

from __future__ import annotations

import numpy as np
import pytest

from tas_eval.metrics.assessor.scorer import (
    MODES,
    accuracies,
    chance_levels,
    is_right,
    p_above_chance,
    parse_category,
    parse_direction,
    parse_distance,
)

CATS = ["cello", "upright_bass", "singing_voice", "speech", "piano"]


def q(kind, truth, qtype):
    return {"kind": kind, "truth": truth, "type": qtype}


@pytest.mark.parametrize("answer, right", [
    ("left, front, level", True),
    ("Left, in front, level.", True),
    ("left, front, above", False),
    ("front, left, level", True),  # the order of the words does not matter, each group is read once
    ("left, back, level", False),
    ("on the left", False),  # missing parts are wrong
    ("", False),
])
def test_direction_answers(answer, right):
    assert is_right(q("doa", ["left", "front", "level"], "doa"), answer, CATS) is right


def test_direction_synonyms():
    assert parse_direction("centre, back, down") == ["center", "behind", "below"]
    assert parse_direction("middle") == ["center", None, None]


@pytest.mark.parametrize("answer, right", [("2.5m", True), ("3.0m", True), ("3.1 m", False), ("2 meters", True),
                                           ("about 1.99m", False), ("far", False)])
def test_distance_answers_count_within_half_a_metre(answer, right):
    assert is_right(q("de", 2.5, "de"), answer, CATS) is right


def test_parsers():
    assert parse_distance("It is 4.5m away") == 4.5
    assert parse_distance("none") is None
    assert parse_category("the upright bass", CATS) == "upright_bass"
    assert parse_category("Singing voice.", CATS) == "singing_voice"
    assert parse_category("a trumpet", CATS) is None


def test_choice_and_category_answers():
    assert MODES["left_right"] == "choice" and MODES["farther"] == "choice"
    assert is_right(q("left_right", "left", "direction"), "left", CATS)
    assert not is_right(q("left_right", "left", "direction"), "right", CATS)
    assert is_right(q("farther", "no", "distance"), "no", CATS)
    assert is_right(q("above", "upright_bass", "direction"), "upright bass", CATS)
    assert not is_right(q("below", "cello", "direction"), "piano", CATS)


def test_chance_is_the_best_constant_answer():
    questions = [q("left_right", "left", "direction")] * 3 + [q("left_right", "right", "direction")] \
        + [q("above", "piano", "direction")] * 2 \
        + [q("de", d, "de") for d in (1.0, 1.2, 1.4, 3.0)] \
        + [q("farther", "yes", "distance"), q("farther", "no", "distance")]
    chance = chance_levels(questions)
    # direction: 3 of 4 left/right by "left", 2 of 2 "above" by "piano": 5 of 6
    assert chance["direction"] == pytest.approx(100 * 5 / 6)
    # de: a constant 1.0 m or 1.5 m is within 0.5 m of 3 of the 4 distances
    assert chance["de"] == pytest.approx(75.0)
    assert chance["distance"] == pytest.approx(50.0)
    assert chance["doa"] is None
    acc = accuracies(questions, [True, False, True, True, False, True, True, True, True, True, False, False])
    assert acc["direction"] == {"accuracy": pytest.approx(100 * 4 / 6), "n": 6}
    assert acc["distance"] == {"accuracy": 0.0, "n": 2}
    assert "doa" not in acc


def test_p_above_chance_against_enumerating_every_outcome():
    """Two kinds of one type (3 left/right questions, 2 of them "left"; 2 "above" questions, both "piano"),
    a doa kind of 4 with 2 alike: the exact tail probability against summing every right/wrong pattern."""
    import itertools

    questions = [q("left_right", t, "direction") for t in ("left", "left", "right")] \
        + [q("above", "piano", "direction")] * 2 \
        + [q("doa", t, "doa") for t in (["left", "front", "level"],) * 2 + (["right", "front", "level"],
                                                                              ["center", "behind", "above"])]
    rates = [2 / 3] * 3 + [1.0] * 2 + [0.5] * 4

    def enumerate_tail(rows, observed):
        total = 0.0
        for pattern in itertools.product([0, 1], repeat=len(rows)):
            if sum(pattern) >= observed:
                total += float(np.prod([r if x else 1 - r for x, r in zip(pattern, (rates[i] for i in rows))]))
        return total

    for right in ([True, False, True, True, True, True, True, False, False],
                  [True, True, True, True, True, False, False, False, False],
                  [False] * 9):
        got = p_above_chance(questions, right)
        assert got["direction"] == pytest.approx(enumerate_tail(range(5), sum(right[:5])), abs=1e-12)
        assert got["doa"] == pytest.approx(enumerate_tail(range(5, 9), sum(right[5:])), abs=1e-12)
        assert set(got) == {"direction", "doa"}
    # the best constant answer itself: 2 + 2 of 5 direction questions right is likely at chance
    assert p_above_chance(questions, [True, True, False, True, True] + [False] * 4)["direction"] > 0.5


def _benchmark_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "assessor_by_data.py"
    spec = importlib.util.spec_from_file_location("assessor_by_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fixed_rule_reads_each_named_source_from_its_own_frames():
    """benchmarks/assessor_by_data.py's rule (no LM) on a clip whose first half is a cello at 60 degrees
    (left), 2 m, level and whose second half a piano at -60 degrees (right), 5 m, 30 degrees up."""
    import torch

    module = _benchmark_module()
    frames = 10
    p = torch.zeros(1, frames, len(CATS), dtype=torch.float64)
    p[0, :5, CATS.index("cello")] = 1.0
    p[0, 5:, CATS.index("piano")] = 1.0
    half = lambda a, b: torch.tensor([[a] * 5 + [b] * 5], dtype=torch.float64)  # noqa: E731
    located = {"p_category": p, "azimuth": half(60.0, -60.0), "elevation": half(0.0, 30.0),
               "distance": half(2.0, 5.0), "lateral": half(60.0, -60.0)}

    def ask(kind, sources):
        return module.rule_answer(located, CATS, {"kind": kind, "sources": sources})

    assert ask("doa", ["cello"]) == "left, front, level"
    assert ask("doa", ["piano"]) == "right, front, above"
    assert ask("de", ["piano"]) == "5.0m"
    assert ask("left_right", ["cello", "piano"]) == "left" and ask("left_right", ["piano", "cello"]) == "right"
    assert ask("farther", ["cello", "piano"]) == "no" and ask("farther", ["piano", "cello"]) == "yes"
    assert ask("above", ["cello"]) == "piano" and ask("below", ["piano"]) == "cello"
    # 2 m at azimuth 60 and 5 m at azimuth -60, elevation 30: their straight-line distance
    from tas_eval.data.scene import direction_vector
    apart = np.linalg.norm(direction_vector(60.0, 0.0) * 2.0 - direction_vector(-60.0, 30.0) * 5.0)
    assert ask("apart", ["cello", "piano"]) == f"{round(apart / 0.5) * 0.5:.1f}m"


def test_questions_whose_answer_the_tokens_lack_are_counted_as_unanswerable():
    """Tokens hearing the cello and the piano, the harp faintly: a question about the harp reads its line, but a
    question whose answer is the harp cannot (only the named sources join the heard ones)."""
    import torch

    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.assessor.model import AudioTokens
    from tas_eval.metrics.localizer import DISTANCE_CLASSES, azimuth_centres

    module = _benchmark_module()
    names = category_names()
    bins = len(azimuth_centres())
    flat = {"azimuth": torch.full((3, bins), 1 / bins, dtype=torch.float64),
            "distance": torch.full((3, DISTANCE_CLASSES), 1 / DISTANCE_CLASSES, dtype=torch.float64)}
    tokens = {"c1": AudioTokens(torch.tensor([names.index(c) for c in ("cello", "piano", "harp")]), {},
                                torch.tensor([0.6, 0.3, 0.001]), flat)}
    questions = {"c1": [{"kind": "doa", "sources": ["cello"], "truth": ["left", "front", "level"]},
                        {"kind": "left_right", "sources": ["cello", "piano"], "truth": "left"},
                        {"kind": "farther", "sources": ["harp", "piano"], "truth": "yes"},
                        {"kind": "above", "sources": ["cello"], "truth": "piano"},
                        {"kind": "below", "sources": ["piano"], "truth": "harp"}],
                 "c2": [{"kind": "doa", "sources": ["cello"], "truth": ["left", "front", "level"]}]}
    assert module.unheard_share(tokens, questions, ["c1"]) == (1, 5)


def test_accuracy_per_kind():
    from tas_eval.metrics.assessor.scorer import kind_accuracies

    qs = [{"kind": "doa"}, {"kind": "doa"}, {"kind": "left_right"}, {"kind": "doa"}]
    got = kind_accuracies(qs, [True, False, True, True])
    assert got == {"doa": {"accuracy": pytest.approx(200 / 3), "n": 3}, "left_right": {"accuracy": 100.0, "n": 1}}


def test_the_audio_tokens_read_without_an_lm():
    """benchmarks/assessor_by_data.py's token reader on tokens of a cello (left, front, level, 2.0m, pooled far
    left and near) and a piano (right, behind, above, 4.5m, pooled far right and far): each kind's answer is
    the one the lines state."""
    import torch

    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.scene import lateral_angle
    from tas_eval.metrics.assessor.model import SLOTS, AudioTokens, slot_words
    from tas_eval.metrics.localizer import DISTANCE_CLASSES, azimuth_centres

    module = _benchmark_module()
    names, words = category_names(), slot_words()
    said = [{"side": "left", "front": "front", "vertical": "level", "distance": "2.0m"},
            {"side": "right", "front": "behind", "vertical": "above", "distance": "4.5m"}]
    onehot = {s: torch.stack([torch.nn.functional.one_hot(torch.tensor(words[s].index(w[s])), len(words[s])).float()
                              for w in said]) for s in SLOTS}
    lateral = [lateral_angle(float(a), 0.0) for a in azimuth_centres()]
    pooled = {"azimuth": torch.zeros(2, len(lateral), dtype=torch.float64),
              "distance": torch.zeros(2, DISTANCE_CLASSES, dtype=torch.float64)}
    pooled["azimuth"][0, lateral.index(max(lateral))] = pooled["azimuth"][1, lateral.index(min(lateral))] = 1.0
    pooled["distance"][0, 4] = pooled["distance"][1, 9] = 1.0
    tokens = AudioTokens(torch.tensor([names.index("cello"), names.index("piano")]), onehot,
                         torch.tensor([0.6, 0.4]), pooled)

    def ask(kind, sources):
        return module.token_answer(tokens, {"kind": kind, "sources": sources})

    assert ask("doa", ["cello"]) == "left, front, level" and ask("doa", ["piano"]) == "right, behind, above"
    assert ask("de", ["piano"]) == "4.5m"
    assert ask("left_right", ["cello", "piano"]) == "left" and ask("left_right", ["piano", "cello"]) == "right"
    assert ask("farther", ["cello", "piano"]) == "no" and ask("farther", ["piano", "cello"]) == "yes"
    assert ask("above", ["cello"]) == "piano" and ask("below", ["piano"]) == "cello"
    assert ask("apart", ["cello", "piano"]) is None


class _FixedAssessor:
    """Stands in for a loaded assessor: answers from a table {question id: (about the reference, about the prediction)}
    keyed by whether the audio is the reference (all zeros) or the prediction (all ones)."""

    config: dict = {}

    def __init__(self, table):
        self.table = table

    def describe(self):
        return {"id": "tas_qa", "sha256": "0" * 64}

    def encode(self, clips):
        return ["reference" if float(np.abs(c).max()) == 0.0 else "prediction" for c in clips]

    def answer(self, tokens, questions):
        return [self.table[q["id"]][0 if t == "reference" else 1] for t, q in zip(tokens, questions)]


def test_a_gap_is_withheld_where_the_references_are_answered_at_chance(monkeypatch):
    """Four left/right questions (two "left", two "right": chance 50 %) answered "left" about the references:
    50 %, at chance, so qa_direction is withheld with its accuracies. Three doa questions (chance 1 of 3)
    answered right about the references and one of them about the prediction: qa_doa = 100 - 33.3."""
    import tas_eval.metrics.assessor as assessor_pkg
    from tas_eval.metrics.question_answering import AssessorOptions, compute_qa

    lr = [dict(q("left_right", t, "direction"), id=f"lr{k}") for k, t in enumerate(["left", "left", "right", "right"])]
    doa = [dict(q("doa", t, "doa"), id=f"d{k}") for k, t in enumerate(
        [["left", "front", "level"], ["right", "front", "level"], ["center", "behind", "above"]])]
    table = {x["id"]: ("left", "right") for x in lr}
    table.update({x["id"]: (", ".join(x["truth"]), ", ".join(x["truth"]) if k == 0 else "nowhere")
                  for k, x in enumerate(doa)})
    monkeypatch.setattr(assessor_pkg, "load_assessor", lambda *args, **kwargs: _FixedAssessor(table))
    questions = {"items": {"c1": lr[:2] + doa[:2], "c2": lr[2:] + doa[2:]}, "sha256": "f" * 64}
    refs, preds = [np.zeros((2, 8))] * 2, [np.ones((2, 8))] * 2
    records, answers, note, withheld = compute_qa(preds, refs, item_ids=["c1", "c2"], questions=questions,
                                                  options=AssessorOptions(checkpoint="fixed"))
    assert note is None and set(records) == {"qa_doa"} and set(withheld) == {"qa_direction"}
    assert records["qa_doa"].value == pytest.approx(100.0 - 100.0 / 3)
    assert records["qa_doa"].details["p_above_chance"] == pytest.approx((1 / 3) ** 3)
    w = withheld["qa_direction"]
    assert w["accuracy_ground_truth"] == 50.0 and w["chance"] == 50.0 and w["accuracy_prediction"] == 50.0
    assert w["questions"] == 4 and w["p_above_chance"] == pytest.approx(11 / 16)
    assert "no better than chance" in w["why"] and w["backbone"]["id"] == "tas_qa"
    assert len(answers["c1"]) == 4 and len(answers["c2"]) == 3


def test_items_seen_in_training_count_only_on_the_build_the_assessor_trained_on():
    """Every build numbers its clips from c00000: the same id in another build (another question bank) is
    another scene, never one the assessor heard."""
    from tas_eval.metrics.question_answering import items_seen_in_training

    config = {"questions_sha256": "a" * 64, "train_items": ["c00001", "c00002"]}
    ids = ["c00001", "c00003"]
    assert items_seen_in_training(config, {"sha256": "a" * 64}, ids) == 1
    assert items_seen_in_training(config, {"sha256": "b" * 64}, ids) == 0
    assert items_seen_in_training(config, {"sha256": "a" * 64}, ["c00003"]) == 0


def test_the_references_scored_against_themselves_are_asked_once(monkeypatch):
    """The ground-truth row: predictions equal to the references get the references' answers without
    asking the assessor again, so its gaps are 0 by construction."""
    import tas_eval.metrics.assessor as assessor_pkg
    from tas_eval.metrics.question_answering import AssessorOptions, compute_qa

    doa = [dict(q("doa", t, "doa"), id=f"d{k}") for k, t in enumerate(
        [["left", "front", "level"], ["right", "front", "level"]])]
    fixed = _FixedAssessor({x["id"]: (", ".join(x["truth"]), "nowhere") for x in doa})
    calls = []
    answer = fixed.answer
    fixed.answer = lambda tokens, questions: calls.append(len(questions)) or answer(tokens, questions)
    monkeypatch.setattr(assessor_pkg, "load_assessor", lambda *args, **kwargs: fixed)
    refs = [np.zeros((2, 8)), np.zeros((2, 8))]
    records, _, note, _ = compute_qa([r.copy() for r in refs], refs, item_ids=["c1", "c2"],
                                     questions={"items": {"c1": doa[:1], "c2": doa[1:]}, "sha256": "f" * 64},
                                     options=AssessorOptions(checkpoint="fixed"))
    assert note is None and calls == [2]
    assert records["qa_doa"].value == 0.0 and records["qa_doa"].details["accuracy_prediction"] == 100.0
