"""The spatial questions: drawn from the scene's geometry, fixed across runs, held-out phrasings apart."""

from __future__ import annotations

import copy
import math

from tas_eval.data import qa


def _source(category, az, el, dist, active=((0.0, 10.0),), trajectory=None):
    return {"category": category, "seed": 1, "gain_db": 0.0, "occluded": False, "active": [list(a) for a in active],
            "trajectory": trajectory or [{"t": 0.0, "azimuth": az, "elevation": el, "distance": dist}]}


def _scene(*sources, item_id="c00001"):
    return {"item_id": item_id, "group_id": item_id, "duration_s": 10.0, "seed": 7,
            "room": {"size_m": [8, 6, 3], "listener_m": [4, 3, 1.5], "rt60_s": 0.4},
            "sources": list(sources), "visual": {"cases": [], "objects": []}}


SCENE = _scene(_source("cello", 60.0, 0.0, 2.0), _source("piano", -45.0, 20.0, 4.2),
               _source("flute", 170.0, -5.0, 1.2))


def _by(questions, kind, **fields):
    return [q for q in questions if q["kind"] == kind and all(q.get(k) == v for k, v in fields.items())]


def test_answers_follow_the_geometry():
    questions = qa.item_questions(SCENE)
    doa = {q["sources"][0]: q["answer"] for q in _by(questions, "doa")}
    assert doa == {"cello": "left, front, level", "piano": "right, front, above", "flute": "center, behind, level"}
    de = {q["sources"][0]: q["answer"] for q in _by(questions, "de")}
    assert de == {"cello": "2.0m", "piano": "4.0m", "flute": "1.0m"}
    for q in _by(questions, "left_right"):
        a, b = q["sources"]
        lateral = {"cello": 60.0, "piano": math.degrees(math.asin(math.sin(math.radians(-45)) * math.cos(math.radians(20)))),
                   "flute": math.degrees(math.asin(math.sin(math.radians(170)) * math.cos(math.radians(-5))))}
        assert q["answer"] == ("left" if lateral[a] > lateral[b] else "right")
    for q in _by(questions, "farther"):
        a, b = q["sources"]
        dist = {"cello": 2.0, "piano": 4.2, "flute": 1.2}
        assert q["answer"] == ("yes" if dist[a] > dist[b] else "no")
    # the piano is the one source 15 degrees or more above the cello and the flute
    for q in _by(questions, "above"):
        assert q["answer"] == "piano" and q["truth"] == "piano"
    for q in _by(questions, "apart"):
        a, b = q["sources"]
        pos = {"cello": (60.0, 0.0, 2.0), "piano": (-45.0, 20.0, 4.2), "flute": (170.0, -5.0, 1.2)}
        va, vb = (qa.direction_vector(*pos[s][:2]) * pos[s][2] for s in (a, b))
        assert abs(q["truth"] - float(((va - vb) ** 2).sum() ** 0.5)) < 1e-3


def test_questions_are_fixed_and_phrasings_held_out():
    first = qa.item_questions(copy.deepcopy(SCENE))
    assert first == qa.item_questions(copy.deepcopy(SCENE))
    block = qa.qa_block([SCENE])
    assert block["sha256"] == qa.qa_block([copy.deepcopy(SCENE)])["sha256"]
    for q in first:
        train_templates, heldout = qa.TEMPLATES[q["kind"]]
        names = [qa.source_name(s) for s in q["sources"]]
        fill = {"a": "", "b": names[0]} if q["kind"] in ("above", "below") else dict(zip("ab", names + [""]))
        assert q["question_heldout"] == heldout.format(**fill)
        assert q["question"] in [t.format(**fill) for t in train_templates]
        assert q["type"] == qa.KIND_TYPE[q["kind"]]


def test_unclear_sources_and_pairs_are_not_asked():
    moving = _source("violin", 0, 0, 2.0, trajectory=[{"t": 0.0, "azimuth": 40.0, "elevation": 0.0, "distance": 2.0},
                                                         {"t": 10.0, "azimuth": -40.0, "elevation": 0.0, "distance": 2.0}])
    brief = _source("harp", 50.0, 0.0, 2.0, active=((0.0, 1.0),))
    twin_a, twin_b = _source("drum", 30.0, 0.0, 2.0), _source("drum", -30.0, 0.0, 3.0)
    close = [_source("cello", 10.0, 0.0, 2.0), _source("piano", 0.0, 0.0, 2.5)]
    questions = qa.item_questions(_scene(moving, brief, twin_a, twin_b, *close))
    asked = {s for q in questions for s in q["sources"]}
    assert asked == {"cello", "piano"}
    assert not _by(questions, "left_right")  # lateral angles 10 degrees apart
    assert not _by(questions, "farther")  # 0.5 m apart
    assert len(_by(questions, "doa")) == 2


def test_labels_of_the_three_words():
    assert qa.vertical_label(10.5) == "above" and qa.vertical_label(-10.5) == "below" and qa.vertical_label(3) == "level"
    assert qa.front_label(90.0) == "front" and qa.front_label(-91.0) == "behind"
    assert qa.distance_text(2.74) == "2.5m" and qa.distance_text(2.76) == "3.0m"
