"""Prompt text (tas_eval.data.prompts) and the text_pan prompt parser (baselines.common.prompt_parser)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from baselines.common.prompt_parser import ELEVATION_DEG, LABEL_AZIMUTH, RELATIVE_AZIMUTH_DEG, UNDERSTOOD, parse_prompt
from tas_eval.data import prompts
from tas_eval.data.prompts import (HELD_OUT_PHRASINGS, NOUNS, PHRASINGS, SILENCE, TRAIN_PHRASINGS, clip_prompts,
                                   counterfactual, dense_text)
from tas_eval.data.scene import LABELS, direction_vector, lateral_angle, side_label

CATEGORIES = ["cello", "guitar", "piano", "upright_bass", "speech", "singing", "drum", "xylophone", "tin_whistle"]


def _src(cat, az, el=0.0, dist=2.0, **kw):
    return {"category": cat, "azimuth": az, "elevation": el, "distance": dist, "label": side_label(az, el), **kw}


def random_sources(rng: np.random.Generator) -> list[dict]:
    """1 to 4 sources anywhere around the listener; categories drawn with replacement (so sometimes two of one
    kind), one of them unknown to NOUNS; a fifth of them moving between two different sides."""
    out = []
    for _ in range(int(rng.integers(1, 5))):
        s = _src(str(rng.choice(CATEGORIES)), float(rng.uniform(-180, 180)), float(rng.uniform(-40, 60)),
                 float(rng.uniform(0.3, 10.0)))
        if rng.random() < 0.2:
            start, end = rng.choice(LABELS, size=2, replace=False)
            s.update(moving=True, start_label=str(start), end_label=str(end))
        out.append(s)
    return out


def many_clips(n=300, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        sources = random_sources(rng)
        yield sources, clip_prompts(sources, rng)


# ------------------------------------------------------------------------------------------------ dense text


def test_dense_text_orders_left_to_right_and_words():
    frame = [_src("piano", -40.0), _src("cello", 50.0), _src("guitar", 3.0)]
    assert dense_text(frame) == "the cello on the left, the guitar in the center, the piano on the right"
    assert dense_text([_src("upright_bass", 70.0), _src("speech", -70.0)]) == \
        "the upright bass on the left, the speaker on the right"
    assert dense_text([_src("singing", 0.0)]) == "the singer in the center"
    assert dense_text([_src("tin_whistle", -90.0)]) == "the tin whistle on the right"
    assert dense_text([]) == SILENCE == "silence"


def test_dense_text_orders_by_lateral_angle_not_azimuth():
    # azimuth 150 (behind, left) has lateral angle 30: less left than azimuth 60 (lateral 60), more than 20.
    frame = [_src("harp", 20.0), _src("cello", 150.0), _src("piano", 60.0)]
    assert [s["category"] for s in sorted(frame, key=lambda s: -lateral_angle(s["azimuth"], 0.0))] == \
        ["piano", "cello", "harp"]
    assert dense_text(frame) == "the piano on the left, the cello on the left, the harp on the left"
    # elevation shrinks the lateral angle: (80, 70) has lateral ~20 < (40, 0) with ~40.
    assert dense_text([_src("drum", 80.0, 70.0), _src("violin", 40.0)]).startswith("the violin on the left, the drum")


def test_dense_text_two_of_one_category():
    assert dense_text([_src("cello", -60.0), _src("cello", 60.0)]) == "a cello on the left, another cello on the right"
    text = dense_text([_src("cello", -60.0), _src("piano", 0.0), _src("cello", 60.0)])
    assert text == "a cello on the left, the piano in the center, another cello on the right"
    parsed = parse_prompt(text)
    assert [p["category"] for p in parsed] == ["cello", "piano", "cello"]
    assert [p["azimuth"] for p in parsed] == [LABEL_AZIMUTH["left"], LABEL_AZIMUTH["center"], LABEL_AZIMUTH["right"]]


def test_dense_text_round_trips_through_parser():
    rng = np.random.default_rng(4)
    for _ in range(200):
        frame = [_src(str(rng.choice(CATEGORIES)), float(rng.uniform(-180, 180)), float(rng.uniform(-40, 60)))
                 for _ in range(int(rng.integers(0, 5)))]
        parsed = parse_prompt(dense_text(frame))
        ordered = sorted(frame, key=lambda s: -lateral_angle(s["azimuth"], s["elevation"]))
        assert len(parsed) == len(ordered)
        for p, s in zip(parsed, ordered):
            assert p["category"] == (None if s["category"] not in NOUNS else s["category"])
            assert p["azimuth"] == LABEL_AZIMUTH[s["label"]]
            assert p["basis"] == "absolute"


def test_every_noun_maps_back_to_its_category():
    for cat in NOUNS:
        assert parse_prompt(f"the {prompts.noun(cat)} is on the right")[0]["category"] == cat
        assert parse_prompt(f"the {cat.replace('_', ' ')} is on the right")[0]["category"] == cat


# ----------------------------------------------------------------------------------------- counterfactual


def test_counterfactual_known_answers():
    assert counterfactual("the cello on the left, the piano on the right") == "the cello on the right, the piano on the left"
    assert counterfactual("the guitar in the center") == "the guitar in the center"
    assert counterfactual("the cello is to the left of the piano.") == "the cello is to the right of the piano."
    assert counterfactual("the violin moves from the left to the right, behind, 3m away.") == \
        "the violin moves from the right to the left, behind, 3m away."
    assert counterfactual("the drum is on the left-hand side of the harp.") == "the drum is on the right-hand side of the harp."


def test_counterfactual_is_an_involution_and_mirrors_the_parse():
    for sources, clip in many_clips(80, seed=1):
        for p in clip:
            cf = counterfactual(p["text"])
            assert counterfactual(cf) == p["text"]
            words, cf_words = re.findall(r"[a-z]+", p["text"]), re.findall(r"[a-z]+", cf)
            assert words.count("left") == cf_words.count("right") and words.count("right") == cf_words.count("left")
            assert words.count("center") == cf_words.count("center")
            a, b = parse_prompt(p["text"]), parse_prompt(cf)
            assert len(a) == len(b)
            for x, y in zip(a, b):
                assert math.isclose(lateral_angle(x["azimuth"], 0), -lateral_angle(y["azimuth"], 0), abs_tol=1e-9)
                assert x["elevation"] == y["elevation"] and x["distance"] == y["distance"]


# ----------------------------------------------------------------------------------------------- phrasings


def test_phrasing_lists():
    assert set(TRAIN_PHRASINGS).isdisjoint(HELD_OUT_PHRASINGS)
    assert set(TRAIN_PHRASINGS) | set(HELD_OUT_PHRASINGS) == set(PHRASINGS)
    for type_ in ("direction", "relation", "distance"):
        assert any(PHRASINGS[p].type == type_ for p in TRAIN_PHRASINGS)
        assert any(PHRASINGS[p].type == type_ for p in HELD_OUT_PHRASINGS)
    for kind, type_ in (("lateral", "relation"), ("vertical", "relation"), ("order", "distance"), ("between", "distance")):
        for ids in (TRAIN_PHRASINGS, HELD_OUT_PHRASINGS):
            assert any(kind in PHRASINGS[p].kinds and PHRASINGS[p].type == type_ for p in ids)


def test_clip_prompts_use_each_phrasing_and_flag_held_out():
    used = set()
    for _, clip in many_clips(300):
        for p in clip:
            assert p["held_out"] == (p["phrasing"] in HELD_OUT_PHRASINGS)
            assert p["type"] == PHRASINGS[p["phrasing"]].type
            assert p["text"] == p["text"].lower()
            used.add(p["phrasing"])
    assert used == set(PHRASINGS)


def test_held_out_phrasings_use_words_never_seen_in_training():
    train_words, held_words = set(), {p: set() for p in HELD_OUT_PHRASINGS}
    for _, clip in many_clips(300):
        for p in clip:
            words = set(re.findall(r"[a-z]+", p["text"]))
            (held_words[p["phrasing"]] if p["held_out"] else train_words).update(words)
    for pid, words in held_words.items():
        assert words - train_words, pid


def test_clip_prompts_are_deterministic():
    a = list(many_clips(40, seed=7))
    b = list(many_clips(40, seed=7))
    assert a == b
    c = list(many_clips(40, seed=8))
    assert [x[1] for x in a] != [x[1] for x in c]


def test_clip_prompt_slots():
    rng = np.random.default_rng(0)
    assert clip_prompts([], rng) == []
    one = clip_prompts([_src("cello", 60.0, 0.0, 3.0)], rng)
    assert [(p["type"], p["held_out"]) for p in one] == [("direction", False), ("direction", True)]
    # A pair 5 degrees apart at the same height and distance: no relation prompt; only the distance between.
    pair = clip_prompts([_src("cello", 40.0, 0.0, 3.0), _src("piano", 35.0, 0.0, 3.2)], rng)
    assert [p["type"] for p in pair] == ["direction", "direction", "distance", "distance"]
    assert all(PHRASINGS[p["phrasing"]].kinds == ("between",) for p in pair[2:])
    # A moving source has no single side: never "left of" it, never a distance between.
    mov = _src("violin", 0.0, 0.0, 3.0, moving=True, start_label="left", end_label="right")
    pair = clip_prompts([mov, _src("piano", -80.0, 0.0, 3.0)], rng)
    assert [p["type"] for p in pair] == ["direction", "direction"]


def test_direction_words_and_deadbands():
    def direction_text(s, phrasing="dir_located"):
        return PHRASINGS[phrasing].make(prompts._describe([s]))

    assert direction_text(_src("trumpet", -150.0, -30.0, 5.1)) == "the trumpet is located right, behind, below, 5m away."
    assert direction_text(_src("cello", 80.0, 10.0, 4.74)) == "the cello is located left, 4.5m away."
    assert direction_text(_src("cello", 20.0, 16.0, 4.76)) == "the cello is located left, front, above, 5m away."
    assert direction_text(_src("harp", 0.0, 0.0, 0.1)) == "the harp is located center, front, 0.5m away."
    mov = _src("violin", 10.0, 0.0, 3.0, moving=True, start_label="left", end_label="right")
    assert direction_text(mov, "dir_on_the") == "the violin moves from the left to the right, in front, 3m away."
    assert direction_text(_src("piano", 0.0, 0.0, 1.0), "dir_there_is") == \
        "in the middle, ahead, about 1 meter away, there is a piano."


# ------------------------------------------------------------------------------------------------- parser


def _sign(x: float) -> int:
    return 0 if abs(x) < 1e-9 else (1 if x > 0 else -1)


_LABEL_SIGN = {"left": 1, "center": 0, "right": -1}


def test_every_phrasing_round_trips_through_the_parser():
    for sources, clip in many_clips(300, seed=2):
        descs = prompts._describe(sources)
        for p in clip:
            parsed = parse_prompt(p["text"])
            assert len(parsed) == len(p["sources"]), p["text"]
            truth = [sources[i] for i in p["sources"]]
            for q, s in zip(parsed, truth):
                assert q["category"] == (s["category"] if s["category"] in NOUNS else None), p["text"]
            if p["type"] == "direction":
                for q, s, d in zip(parsed, truth, descs):
                    assert q["basis"] == "absolute"
                    if d.move:
                        assert _sign(lateral_angle(q["start_azimuth"], 0)) == _LABEL_SIGN[d.move[0]], p["text"]
                        assert _sign(lateral_angle(q["end_azimuth"], 0)) == _LABEL_SIGN[d.move[1]], p["text"]
                    else:
                        assert _sign(lateral_angle(q["azimuth"], q["elevation"])) == _LABEL_SIGN[s["label"]], p["text"]
                    assert (abs(q["azimuth"]) > 90) == (d.front_back == "behind"), p["text"]
                    assert _sign(q["elevation"]) == {"above": 1, None: 0, "below": -1}[d.up_down], p["text"]
                    assert q["distance"] == float(d.distance)
            elif p["type"] == "relation":
                (qa, qb), (sa, sb) = parsed, truth
                lat_q = lateral_angle(qa["azimuth"], 0) - lateral_angle(qb["azimuth"], 0)
                el_q = qa["elevation"] - qb["elevation"]
                assert (lat_q != 0) != (el_q != 0), p["text"]  # exactly one relation is stated
                if lat_q:
                    assert {qa["basis"], qb["basis"]} == {"relative"}
                    lat_s = lateral_angle(sa["azimuth"], sa["elevation"]) - lateral_angle(sb["azimuth"], sb["elevation"])
                    assert _sign(lat_q) == _sign(lat_s), p["text"]
                    assert abs(qa["azimuth"]) == abs(qb["azimuth"]) == RELATIVE_AZIMUTH_DEG
                else:
                    assert _sign(el_q) == _sign(sa["elevation"] - sb["elevation"]), p["text"]
                    assert abs(qa["elevation"]) == ELEVATION_DEG
            else:
                (qa, qb), (sa, sb) = parsed, truth
                assert qa["basis"] == qb["basis"] == "none"
                if qa["distance"] is None:  # the distance between them: a number, assigned to neither
                    assert qb["distance"] is None
                    sep = np.linalg.norm(direction_vector(sa["azimuth"], sa["elevation"]) * sa["distance"]
                                         - direction_vector(sb["azimuth"], sb["elevation"]) * sb["distance"])
                    assert re.search(rf"\b{prompts._fmt_m(float(sep))} ?m", p["text"]), p["text"]
                else:
                    assert _sign(qa["distance"] - qb["distance"]) == _sign(sa["distance"] - sb["distance"]), p["text"]


def test_parser_known_answers_spatialtas_examples():
    # The examples of the SpatialTAS paper's Table 1 (their nouns are not categories of ours).
    (a,) = parse_prompt("The emergency vehicle is located right, behind, below, 5m away.")
    assert (a["category"], a["azimuth"], a["elevation"], a["distance"]) == (None, -120.0, -30.0, 5.0)
    a, b = parse_prompt("The music is located left, behind, below, 8.5m away. "
                        "And the whip is located right, behind, below, 5m away.")
    assert (a["azimuth"], a["distance"], b["azimuth"], b["distance"]) == (120.0, 8.5, -120.0, 5.0)
    a, b = parse_prompt("The sound from the scratching originates on the left, "
                        "and the sound from the children playing originates on the right.")
    assert (a["azimuth"], b["azimuth"]) == (60.0, -60.0)
    a, b = parse_prompt("The sound from the music is above and the sound from the boat, water vehicle is below.")
    assert (a["elevation"], b["elevation"]) == (30.0, -30.0)
    a, b = parse_prompt("The sound from speech is further away from you in Euclidean distance than the sound "
                        "from a mechanical fan.")
    assert a["category"] == "speech" and a["distance"] > b["distance"]
    a, b = parse_prompt("The distance between the sound of the animal and the sound of the spray is 3m away.")
    assert a["distance"] is None and b["distance"] is None


def test_parser_relations_and_defaults():
    a, b = parse_prompt("the cello is to the left of the piano")
    assert (a["category"], a["azimuth"], b["category"], b["azimuth"]) == ("cello", 30.0, "piano", -30.0)
    assert a["basis"] == b["basis"] == "relative"
    # An absolute side wins; the relation places the other source 30 degrees beside it.
    a, b = parse_prompt("the piano is on the right. the cello is to the left of the piano.")
    assert (a["category"], a["azimuth"], a["basis"]) == ("piano", -60.0, "absolute")
    assert (b["category"], b["azimuth"], b["basis"]) == ("cello", -30.0, "relative")
    a, b = parse_prompt("compared with the harp, the drum sits further to the right.")
    assert (a["category"], a["azimuth"], b["category"], b["azimuth"]) == ("harp", 30.0, "drum", -30.0)
    a, b = parse_prompt("the cello is nearer to you than the piano, which is 6m away")
    assert (a["distance"], b["distance"]) == (3.0, 6.0)
    (a,) = parse_prompt("to your left, to the rear, overhead, about 2 meters away, there is a violin.")
    assert (a["category"], a["azimuth"], a["elevation"], a["distance"]) == ("violin", 120.0, 30.0, 2.0)
    (a,) = parse_prompt("the violin moves from the right to the center, 3m away")
    assert (a["start_azimuth"], a["end_azimuth"], a["azimuth"]) == (-60.0, 0.0, -30.0)


def test_parser_returns_nothing_when_nothing_is_understood():
    assert parse_prompt(SILENCE) == []
    assert parse_prompt("") == []
    assert parse_prompt("the cello plays a tune") == []
    (a,) = parse_prompt("on the left")
    assert a["category"] is None and a["azimuth"] == 60.0


def test_understood_names_the_constants():
    for word in ("+60", "-60", "+30", "2 m", "4 m", "between", "basis"):
        assert word in UNDERSTOOD


@pytest.mark.parametrize("label", LABELS)
def test_label_azimuths_have_the_label_they_name(label):
    assert side_label(LABEL_AZIMUTH[label], 0.0) == label
