"""Spatial questions and answers about a scene, for the spatial question-answering assessor.

The question types are TASU's (Appendix C):

    doa        perception: the direction of a named source      "left, front, level"
    de         perception: the distance of a named source        "2.5m"
    direction  reasoning: is A to the left or right of B          "left"
               reasoning: which sound is above (below) B          a category, e.g. "cello"
    distance   reasoning: is A farther from you than B            "yes"
               reasoning: how far apart are A and B               "1.5m"

Answers come from the scene's geometry only (tas_eval.data.scene), never from a model:
- side: left / center / right by the lateral angle with the benchmark's +-15 degree dead-band
  (scene.side_label); front / behind by the sign of cos(azimuth) (front when |azimuth| <= 90); above /
  below / level by the elevation beyond +-VERTICAL_DEG degrees.
- a distance answer is written rounded to 0.5 m and counts as right within DISTANCE_TOLERANCE_M of
  the true distance (listener to source for "de", source to source for "how far apart").

Which sources and pairs enter: a source is asked about when it stands still for the whole clip and
sounds for at least MIN_ACTIVE_S seconds, and its category is the only one of its kind in the scene
(a name must pick one source). Pairs are asked about only where the answer is clear from the geometry:
left/right when the lateral angles differ by at least MIN_LATERAL_GAP_DEG; farther when the distances
differ by at least MIN_DISTANCE_GAP_M; above/below when exactly one other source is higher (lower) by at
least MIN_VERTICAL_GAP_DEG.

Drawing: per item, with numpy's generator seeded by (QA_SEED, the item id's sha256), at most
MAX_PER_KIND questions of each kind are drawn from the eligible ones, and each question gets one
phrasing drawn from the training templates (``question``) and the held-out template of its kind
(``question_heldout``): the assessor is trained on the first and tested on the second, so it is
scored on wordings it never saw. The questions are written once into the build's manifest
(``qa_block``) and read from there; they are never re-drawn when a command runs.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from tas_eval.data.scene import direction_vector, side_label

QA_VERSION = "1"
QA_SEED = 20240
TYPES = ("doa", "de", "direction", "distance")
VERTICAL_DEG = 10.0
DISTANCE_STEP_M = 0.5
DISTANCE_TOLERANCE_M = 0.5
MIN_ACTIVE_S = 2.0
MIN_LATERAL_GAP_DEG = 20.0
MIN_DISTANCE_GAP_M = 1.0
MIN_VERTICAL_GAP_DEG = 15.0
MAX_PER_KIND = 4

# Per kind: (training templates, held-out template). {a} and {b} are source names ("the cello").
TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "doa": (("Where is {a}?",
             "In which direction is {a}?",
             "From which direction does {a} come?"),
            "How would you describe the direction of {a}?"),
    "de": (("How far away is {a}?",
            "At what distance is {a}?",
            "How far from you is {a}?"),
           "What is the distance to {a}?"),
    "left_right": (("Is {a} to the left or to the right of {b}?",
                    "Is {a} left or right of {b}?",
                    "Compared with {b}, is {a} on the left or on the right?"),
                   "Could you tell whether {a} is left or right of {b}?"),
    "above": (("Which sound is above {b}?",
               "What sound is higher than {b}?",
               "Which source is located above {b}?"),
              "What is the sound on the upper side of {b}?"),
    "below": (("Which sound is below {b}?",
               "What sound is lower than {b}?",
               "Which source is located below {b}?"),
              "What is the sound on the lower side of {b}?"),
    "farther": (("Is {a} farther from you than {b}?",
                 "Is {a} more distant than {b}?",
                 "Is {a} further away from you than {b}?"),
                "Measuring in a straight line, is {a} more distant from you than {b}?"),
    "apart": (("How far apart are {a} and {b}?",
               "What is the distance between {a} and {b}?",
               "How far is {a} from {b}?"),
              "Can you estimate the distance from {a} to {b}?"),
}
# The type each kind is reported under, and how its answer is scored (tas_eval.metrics.assessor.scorer).
KIND_TYPE = {"doa": "doa", "de": "de", "left_right": "direction", "above": "direction", "below": "direction",
             "farther": "distance", "apart": "distance"}


def category_words(category: str) -> str:
    """The words of a category in a question or an answer ("upright_bass" -> "upright bass")."""
    return category.replace("_", " ")


def source_name(category: str) -> str:
    """How a question names a source: "the cello"."""
    return f"the {category_words(category)}"


def vertical_label(elevation: float) -> str:
    """"above", "below" or "level": the elevation beyond +-VERTICAL_DEG degrees."""
    if elevation > VERTICAL_DEG:
        return "above"
    if elevation < -VERTICAL_DEG:
        return "below"
    return "level"


def front_label(azimuth: float) -> str:
    """"front" when |azimuth| <= 90 degrees, else "behind"."""
    return "front" if math.cos(math.radians(azimuth)) >= -1e-12 else "behind"


def distance_text(metres: float) -> str:
    """A distance as an answer says it: rounded to 0.5 m, e.g. "2.5m"."""
    return f"{round(metres / DISTANCE_STEP_M) * DISTANCE_STEP_M:.1f}m"


def _eligible(scene: dict) -> list[dict]:
    cats = [s["category"] for s in scene["sources"]]
    out = []
    for s in scene["sources"]:
        active = sum(b - a for a, b in s.get("active", [[0.0, float(scene.get("duration_s", 0.0))]]))
        if len(s["trajectory"]) != 1 or active < MIN_ACTIVE_S or cats.count(s["category"]) != 1:
            continue
        p = s["trajectory"][0]
        az, el, dist = float(p["azimuth"]), float(p["elevation"]), float(p["distance"])
        out.append({"category": s["category"], "azimuth": az, "elevation": el, "distance": dist,
                    "position": direction_vector(az, el) * dist,
                    "lateral": math.degrees(math.asin(max(-1.0, min(1.0, math.sin(math.radians(az))
                                                                     * math.cos(math.radians(el))))))})
    return out


def _candidates(sources: list[dict]) -> dict[str, list[dict]]:
    """Every question the geometry answers clearly, per kind: {"kind", "a", "b", "answer", "truth"}."""
    out: dict[str, list[dict]] = {k: [] for k in TEMPLATES}
    for s in sources:
        doa = [side_label(s["azimuth"], s["elevation"]), front_label(s["azimuth"]), vertical_label(s["elevation"])]
        out["doa"].append({"a": s["category"], "b": None, "answer": ", ".join(doa), "truth": doa})
        out["de"].append({"a": s["category"], "b": None, "answer": distance_text(s["distance"]),
                          "truth": round(s["distance"], 3)})
    for a in sources:
        for b in sources:
            if a is b:
                continue
            gap = a["lateral"] - b["lateral"]
            if abs(gap) >= MIN_LATERAL_GAP_DEG:
                word = "left" if gap > 0 else "right"
                out["left_right"].append({"a": a["category"], "b": b["category"], "answer": word, "truth": word})
            dgap = a["distance"] - b["distance"]
            if abs(dgap) >= MIN_DISTANCE_GAP_M:
                word = "yes" if dgap > 0 else "no"
                out["farther"].append({"a": a["category"], "b": b["category"], "answer": word, "truth": word})
            if a["category"] < b["category"]:
                apart = float(np.linalg.norm(a["position"] - b["position"]))
                out["apart"].append({"a": a["category"], "b": b["category"], "answer": distance_text(apart),
                                     "truth": round(apart, 3)})
    for b in sources:
        others = [s for s in sources if s is not b]
        for kind, sign in (("above", 1.0), ("below", -1.0)):
            hits = [s for s in others if sign * (s["elevation"] - b["elevation"]) >= MIN_VERTICAL_GAP_DEG]
            if len(hits) == 1:
                word = category_words(hits[0]["category"])
                out[kind].append({"a": None, "b": b["category"], "answer": word, "truth": hits[0]["category"]})
    return out


def _rng(item_id: str) -> np.random.Generator:
    digest = int(hashlib.sha256(item_id.encode()).hexdigest()[:16], 16)
    return np.random.default_rng([QA_SEED, digest])


def item_questions(scene: dict) -> list[dict]:
    """The questions of one scene (see the module docstring), in a fixed order. Each is a dict:
    {"id", "type", "kind", "question", "question_heldout", "answer", "truth", "sources"}; "truth" is the
    structured answer the scorer compares with (words, a distance in m, a category id)."""
    item_id = scene["item_id"]
    rng = _rng(item_id)
    cands = _candidates(_eligible(scene))
    out = []
    for kind, (train_templates, heldout) in TEMPLATES.items():
        pool = cands[kind]
        if not pool:
            continue
        chosen = sorted(rng.choice(len(pool), size=min(MAX_PER_KIND, len(pool)), replace=False).tolist())
        for k in chosen:
            c = pool[k]
            names = {"a": source_name(c["a"]) if c["a"] else "", "b": source_name(c["b"]) if c["b"] else ""}
            template = train_templates[int(rng.integers(len(train_templates)))]
            out.append({"id": f"{item_id}-{kind}-{len([q for q in out if q['kind'] == kind])}",
                        "type": KIND_TYPE[kind], "kind": kind,
                        "question": template.format(**names), "question_heldout": heldout.format(**names),
                        "answer": c["answer"], "truth": c["truth"],
                        "sources": [x for x in (c["a"], c["b"]) if x]})
    return out


def qa_block(scenes: list[dict]) -> dict:
    """The manifest's "qa" entry for a build's scenes: {"version", "seed", "sha256", "items": {item id:
    questions}}; sha256 is over the canonical JSON of "items", so results can record which questions
    they were scored on."""
    items = {scene["item_id"]: item_questions(scene) for scene in sorted(scenes, key=lambda s: s["item_id"])}
    return {"version": QA_VERSION, "seed": QA_SEED, "sha256": questions_sha256(items), "items": items}


def questions_sha256(items: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of {item id: questions}."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
