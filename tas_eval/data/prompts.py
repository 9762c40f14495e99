"""The text of the benchmark's prompts: TASBench-style dense text, SpatialTAS-style clip prompts, counterfactuals.

Dense text (one 0.1 s frame, ``dense_text``): the sounding sources ordered left to right, e.g.
"the cello on the left, the piano in the center, the drum on the right"; "silence" when nothing sounds.

Clip prompts (``clip_prompts``), three types as SpatialTAS has them:

- ``direction``: direction and distance of every source of the clip (SpatialTAS's DOA & DE prompts),
  e.g. "the trumpet is located right, behind, below, 5m away.";
- ``relation``: the relative direction of two sources: left of / right of, above / below;
- ``distance``: the relative distance of two sources: nearer / farther, or the distance between them.

Words used for one source: its side ("left", "center", "right": the scene's label from the lateral
angle), "front"/"behind" when the azimuth is more than FRONT_BACK_DEADBAND_DEG away from +-90 degrees,
"above"/"below" when the elevation is more than ELEVATION_DEADBAND_DEG away from 0, and its distance
rounded to 0.5 m (SpatialTAS's 0.5 m classes). A moving source is described by its start and end sides
("the violin moves from the left to the right").

Each type has several phrasings (templates, ``PHRASINGS``); the ones in HELD_OUT_PHRASINGS are never
used with ``held_out=False``, so the test split can be scored on phrasings that training never saw.
For every clip, each prompt slot (the clip's direction prompt; per pair of sources one relation and one
distance prompt, where the pair allows one) gets one prompt in a train phrasing and one in a held-out
phrasing, the phrasings and wordings drawn from the given generator.

All text is plain lowercase English. Angles in degrees (azimuth +90 = left), distances in metres.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tas_eval.data.scene import CENTER_DEADBAND_DEG, direction_vector, lateral_angle, side_label, wrap_azimuth

SILENCE = "silence"  # the dense text of a frame in which no source sounds

# Noun phrase of each category id; ids not listed are written with "_" replaced by a space.
NOUNS = {
    "accordion": "accordion",
    "banjo": "banjo",
    "bell": "bell",
    "cello": "cello",
    "clarinet": "clarinet",
    "drum": "drum",
    "erhu": "erhu",
    "flute": "flute",
    "guitar": "guitar",
    "harp": "harp",
    "organ": "organ",
    "piano": "piano",
    "saxophone": "saxophone",
    "singing": "singer",
    "speech": "speaker",
    "trombone": "trombone",
    "trumpet": "trumpet",
    "tuba": "tuba",
    "upright_bass": "upright bass",
    "violin": "violin",
    "xylophone": "xylophone",
}

FRONT_BACK_DEADBAND_DEG = 15.0  # within +-15 degrees of the interaural axis a source is neither front nor behind
ELEVATION_DEADBAND_DEG = 15.0  # within +-15 degrees of the horizontal plane a source is neither above nor below
DISTANCE_STEP_M = 0.5  # distances in prompts are rounded to this (SpatialTAS's 0.5 m classes)
MIN_LATERAL_GAP_DEG = CENTER_DEADBAND_DEG  # smallest lateral-angle gap stated as "left of" / "right of"
MIN_ELEVATION_GAP_DEG = ELEVATION_DEADBAND_DEG  # smallest elevation gap stated as "above" / "below"
MIN_DISTANCE_GAP_M = 1.0  # smallest distance gap stated as "nearer" / "farther"

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def noun(category: str) -> str:
    """The noun phrase of a category id ("upright_bass" -> "upright bass", "speech" -> "speaker")."""
    return NOUNS.get(category, category.replace("_", " "))


_CATEGORY_OF_NOUN = {v: k for k, v in NOUNS.items()}


def category_id(name: str) -> str:
    """The category id of a name as a dataset writes it: "Upright Bass" and "upright_bass" -> "upright_bass",
    "speaker" -> "speech"; an unknown name keeps its words, lowercase, joined by "_"."""
    words = " ".join(name.replace("_", " ").lower().split())
    return _CATEGORY_OF_NOUN.get(words, words.replace(" ", "_"))


def _lateral(source: dict) -> float:
    return lateral_angle(float(source["azimuth"]), float(source.get("elevation", 0.0) or 0.0))


# Left-to-right rank of a label, for sources annotated with a label only (TASBench gives no angles).
_LABEL_RANK = {"left": 1.0, "center": 0.0, "right": -1.0}


# ---------------------------------------------------------------------------------------------- dense text


def dense_text(sources: list[dict]) -> str:
    """TASBench-style text of one 0.1 s frame from its SOUNDING sources.

    Each source is a dict with "category" and "label" ("left"/"center"/"right") and "azimuth" (and
    optionally "elevation") in degrees, or with "category" and "label" only (TASBench-style annotations).
    Sources are listed left to right (lateral angle descending; by label when a source has no azimuth),
    as "the <noun> on the left" / "in the center" / "on the right", joined by ", ". A category sounding
    more than once is written "a cello ..., another cello ...". No source gives SILENCE.
    """
    if not sources:
        return SILENCE
    key = _lateral if all("azimuth" in s for s in sources) else (lambda s: _LABEL_RANK[s["label"]])
    ordered = sorted(sources, key=key, reverse=True)  # sorted() is stable: ties keep the input order
    counts: dict[str, int] = {}
    for s in ordered:
        counts[s["category"]] = counts.get(s["category"], 0) + 1
    seen: dict[str, int] = {}
    parts = []
    for s in ordered:
        cat = s["category"]
        label = s.get("label") or side_label(float(s["azimuth"]), float(s.get("elevation", 0.0) or 0.0))
        if counts[cat] == 1:
            det = "the"
        else:
            det = "a" if seen.get(cat, 0) == 0 else "another"
            seen[cat] = seen.get(cat, 0) + 1
        where = "in the center" if label == "center" else f"on the {label}"
        parts.append(f"{det} {noun(cat)} {where}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------ counterfactual

_SWAP = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost",
         "leftward": "rightward", "rightward": "leftward", "leftwards": "rightwards", "rightwards": "leftwards"}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(_SWAP, key=len, reverse=True)) + r")\b")


def counterfactual(text: str) -> str:
    """The same prompt with the sides swapped: every left-word becomes the right-word and vice versa
    ("left of" <-> "right of", "from the left to the right" -> "from the right to the left"); "center",
    front/behind, above/below and distances are kept. Applying it twice gives the text back."""
    return _SWAP_RE.sub(lambda m: _SWAP[m.group(1)], text)


# ------------------------------------------------------------------------------------------- clip prompts


@dataclass(frozen=True)
class _Desc:
    """The words describing one source of a clip."""

    name: str  # noun phrase without determiner: "cello", "second cello"
    side: str  # left / center / right (the mean position's label)
    front_back: str | None  # "front" / "behind" / None
    up_down: str | None  # "above" / "below" / None
    distance: str  # "5" or "5.5" (metres)
    move: tuple[str, str] | None  # (start side, end side) for a moving source


def _meters(d: str) -> str:
    return f"{d} meter" if d == "1" else f"{d} meters"


def _fmt_m(x: float) -> str:
    """Metres rounded to DISTANCE_STEP_M, at least one step, as "5" or "5.5"."""
    r = max(DISTANCE_STEP_M, round(x / DISTANCE_STEP_M) * DISTANCE_STEP_M)
    return f"{r:g}"


def _describe(sources: list[dict]) -> list[_Desc]:
    counts: dict[str, int] = {}
    for s in sources:
        counts[s["category"]] = counts.get(s["category"], 0) + 1
    seen: dict[str, int] = {}
    out = []
    for s in sources:
        cat = s["category"]
        name = noun(cat)
        if counts[cat] > 1:  # several of one category: "the first cello", "the second cello"
            name = f"{_ORDINALS[min(seen.get(cat, 0), len(_ORDINALS) - 1)]} {name}"
            seen[cat] = seen.get(cat, 0) + 1
        az = wrap_azimuth(float(s["azimuth"]))
        el = float(s.get("elevation", 0.0) or 0.0)
        side = s.get("label") or side_label(az, el)
        if abs(az) < 90.0 - FRONT_BACK_DEADBAND_DEG:
            fb = "front"
        elif abs(az) > 90.0 + FRONT_BACK_DEADBAND_DEG:
            fb = "behind"
        else:
            fb = None
        ud = "above" if el > ELEVATION_DEADBAND_DEG else "below" if el < -ELEVATION_DEADBAND_DEG else None
        move = None
        if s.get("moving") and s.get("start_label") and s.get("end_label") and s["start_label"] != s["end_label"]:
            move = (s["start_label"], s["end_label"])
        elif s.get("moving") and s.get("start_label"):
            side = s["start_label"]  # it moves within one side: described as static on that side
        out.append(_Desc(name, side, fb, ud, _fmt_m(float(s["distance"])), move))
    return out


# Direction phrasings: (descriptions of all sources) -> text.


def _dir_located(ds: list[_Desc]) -> str:
    # SpatialTAS's own wording (its Table 1, examples A and B).
    out = []
    for d in ds:
        rest = [w for w in (d.front_back, d.up_down) if w] + [f"{d.distance}m away"]
        if d.move:
            out.append(f"the {d.name} is moving from {d.move[0]} to {d.move[1]}, " + ", ".join(rest))
        else:
            out.append(f"the {d.name} is located " + ", ".join([d.side] + rest))
    return ". and ".join(out) + "."


def _on_the(side: str) -> str:
    return "in the center" if side == "center" else f"on the {side}"


def _dir_on_the(ds: list[_Desc]) -> str:
    out = []
    for d in ds:
        rest = [{"front": "in front", "behind": "behind"}.get(d.front_back or "", "")] + [d.up_down or ""]
        rest = [w for w in rest if w] + [f"{d.distance}m away"]
        if d.move:
            head = f"the {d.name} moves from the {d.move[0]} to the {d.move[1]}"
        else:
            head = f"the {d.name} is {_on_the(d.side)}"
        out.append(", ".join([head] + rest))
    return "; ".join(out) + "."


def _dir_sound_of(ds: list[_Desc]) -> str:
    out = []
    for d in ds:
        froms = []
        if d.front_back:
            froms.append({"front": "from the front", "behind": "from behind"}[d.front_back])
        if d.up_down:
            froms.append(f"from {d.up_down}")
        if d.move:
            head = f"the sound of the {d.name} travels from the {d.move[0]} to the {d.move[1]}"
        else:
            head = f"the sound of the {d.name} comes from the {d.side}"
        out.append(", ".join([head] + froms + [f"{d.distance}m away"]))
    return ", and ".join(out) + "."


def _dir_you_hear(ds: list[_Desc]) -> str:
    def where(side: str) -> str:
        return "in the middle" if side == "center" else f"on your {side}"

    out = []
    for d in ds:
        rest = [{"front": "in front of you", "behind": "behind you"}.get(d.front_back or "", "")]
        rest += [f"{d.up_down} you" if d.up_down else ""]
        rest = [w for w in rest if w] + [f"{d.distance}m away"]
        if d.move:
            head = f"the {d.name} moving from your {d.move[0]} to your {d.move[1]}"
        else:
            head = f"the {d.name} {where(d.side)}"
        out.append(", ".join([head] + rest))
    return "you hear " + ", and ".join(out) + "."


def _dir_there_is(ds: list[_Desc]) -> str:
    # Held out: the position comes BEFORE the source, with other words (ahead, rear, overhead, meters).
    def where(side: str) -> str:
        return "in the middle" if side == "center" else f"to your {side}"

    out = []
    for d in ds:
        parts = [f"moving from your {d.move[0]} to your {d.move[1]}" if d.move else where(d.side)]
        if d.front_back:
            parts.append({"front": "ahead", "behind": "to the rear"}[d.front_back])
        if d.up_down:
            parts.append({"above": "overhead", "below": "down low"}[d.up_down])
        parts.append(f"about {_meters(d.distance)} away")
        article = "an" if d.name[0] in "aeiou" else "a"
        out.append(", ".join(parts) + f", there is {article} {d.name}.")
    return " ".join(out)


def _dir_heard_at(ds: list[_Desc]) -> str:
    # Held out: "left-hand side", "toward the front/rear", "at a distance of N meters".
    def where(side: str) -> str:
        return "in the middle" if side == "center" else f"at the {side}-hand side"

    def span(side: str) -> str:
        return "the middle" if side == "center" else f"the {side}-hand side"

    out = []
    for d in ds:
        head = (f"the {d.name} can be heard going from {span(d.move[0])} to {span(d.move[1])}" if d.move
                else f"the {d.name} can be heard {where(d.side)}")
        parts = [head]
        if d.front_back:
            parts.append({"front": "toward the front", "behind": "toward the rear"}[d.front_back])
        if d.up_down:
            parts.append({"above": "from overhead", "below": "from beneath"}[d.up_down])
        parts.append(f"at a distance of {_meters(d.distance)}")
        out.append(", ".join(parts))
    return "; ".join(out) + "."


# Relation phrasings: (kind, X, word, Y) -> text, meaning "X is <word> of Y"; kind "lateral"
# (word left/right) or "vertical" (word above/below). X and Y are noun phrases without determiner.

_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


def _rel_of(kind: str, x: str, w: str, y: str) -> str:
    if kind == "lateral":
        return f"the {x} is to the {w} of the {y}."
    return f"the {x} is {w} the {y}."


def _rel_than(kind: str, x: str, w: str, y: str) -> str:
    if kind == "lateral":
        return f"the {x} is further {w} than the {y}."
    return f"the {x} is {'higher' if w == 'above' else 'lower'} than the {y}."


def _rel_while(kind: str, x: str, w: str, y: str) -> str:
    # SpatialTAS's examples E and F: both sources described, each relative to the other.
    if kind == "lateral":
        return f"the sound from the {x} is more to the {w}, while the sound from the {y} is more to the {_OPPOSITE[w]}."
    hi, lo = ("higher", "lower") if w == "above" else ("lower", "higher")
    return f"the sound from the {x} is {hi}, while the sound from the {y} is {lo}."


def _rel_hand_side(kind: str, x: str, w: str, y: str) -> str:
    if kind == "lateral":
        return f"the {x} is on the {w}-hand side of the {y}."
    return f"the {x} is positioned {'over' if w == 'above' else 'underneath'} the {y}."


def _rel_compared(kind: str, x: str, w: str, y: str) -> str:
    # Names the reference source first.
    if kind == "lateral":
        return f"compared with the {y}, the {x} sits further to the {w}."
    return f"compared with the {y}, the {x} sits {'higher' if w == 'above' else 'lower'}."


# Distance phrasings: (kind, X, word, Y) -> text; kind "order" (word nearer/farther: X is <word> than Y)
# or "between" (word = the distance between X and Y in metres, as text).


def _dist_than(kind: str, x: str, w: str, y: str) -> str:
    return f"the {x} is {'nearer to you' if w == 'nearer' else 'farther away from you'} than the {y}."


def _dist_while(kind: str, x: str, w: str, y: str) -> str:
    # SpatialTAS's example D.
    if w == "nearer":
        return f"the {x} is closer, while the {y} is farther away."
    return f"the {x} is farther away, while the {y} is closer."


def _dist_between(kind: str, x: str, w: str, y: str) -> str:
    # SpatialTAS's example C.
    return f"the distance between the {x} and the {y} is {w}m."


def _dist_shorter(kind: str, x: str, w: str, y: str) -> str:
    return f"the {x} is at a {'shorter' if w == 'nearer' else 'longer'} distance from the listener than the {y}."


def _dist_apart(kind: str, x: str, w: str, y: str) -> str:
    return f"the {x} and the {y} are {_meters(w)} apart."


@dataclass(frozen=True)
class Phrasing:
    """One template: its id, prompt type, the relation kinds it can say, whether it is held out, its text
    function, and whether the text names the second source (Y) before the first (X)."""

    id: str
    type: str
    kinds: tuple[str, ...]
    held_out: bool
    make: Callable
    y_first: bool = False


PHRASINGS: dict[str, Phrasing] = {p.id: p for p in (
    Phrasing("dir_located", "direction", ("all",), False, _dir_located),
    Phrasing("dir_on_the", "direction", ("all",), False, _dir_on_the),
    Phrasing("dir_sound_of", "direction", ("all",), False, _dir_sound_of),
    Phrasing("dir_you_hear", "direction", ("all",), False, _dir_you_hear),
    Phrasing("dir_there_is", "direction", ("all",), True, _dir_there_is),
    Phrasing("dir_heard_at", "direction", ("all",), True, _dir_heard_at),
    Phrasing("rel_of", "relation", ("lateral", "vertical"), False, _rel_of),
    Phrasing("rel_than", "relation", ("lateral", "vertical"), False, _rel_than),
    Phrasing("rel_while", "relation", ("lateral", "vertical"), False, _rel_while),
    Phrasing("rel_hand_side", "relation", ("lateral", "vertical"), True, _rel_hand_side),
    Phrasing("rel_compared", "relation", ("lateral", "vertical"), True, _rel_compared, y_first=True),
    Phrasing("dist_than", "distance", ("order",), False, _dist_than),
    Phrasing("dist_while", "distance", ("order",), False, _dist_while),
    Phrasing("dist_between", "distance", ("between",), False, _dist_between),
    Phrasing("dist_shorter", "distance", ("order",), True, _dist_shorter),
    Phrasing("dist_apart", "distance", ("between",), True, _dist_apart),
)}
TRAIN_PHRASINGS = tuple(p.id for p in PHRASINGS.values() if not p.held_out)
HELD_OUT_PHRASINGS = tuple(p.id for p in PHRASINGS.values() if p.held_out)


def _pick(options: list, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _phrasings(type_: str, kind: str, held_out: bool) -> list[Phrasing]:
    return [p for p in PHRASINGS.values() if p.type == type_ and p.held_out == held_out and kind in p.kinds]


def _pair_facts(a: dict, b: dict) -> tuple[dict, dict]:
    """What may be said about sources a and b: {kind: (word, a is X)} for relations and distances."""
    moving = bool(a.get("moving")) or bool(b.get("moving"))
    rel, dist = {}, {}
    if not moving:  # a moving source has no single side to compare
        gap = _lateral(a) - _lateral(b)
        if abs(gap) >= MIN_LATERAL_GAP_DEG:
            rel["lateral"] = "left" if gap > 0 else "right"  # a is <word> of b
    gap = float(a.get("elevation", 0.0) or 0.0) - float(b.get("elevation", 0.0) or 0.0)
    if abs(gap) >= MIN_ELEVATION_GAP_DEG:
        rel["vertical"] = "above" if gap > 0 else "below"
    gap = float(a["distance"]) - float(b["distance"])
    if abs(gap) >= MIN_DISTANCE_GAP_M:
        dist["order"] = "nearer" if gap < 0 else "farther"
    if not moving:
        pa = direction_vector(float(a["azimuth"]), float(a.get("elevation", 0.0) or 0.0)) * float(a["distance"])
        pb = direction_vector(float(b["azimuth"]), float(b.get("elevation", 0.0) or 0.0)) * float(b["distance"])
        dist["between"] = _fmt_m(float(np.linalg.norm(pa - pb)))
    return rel, dist


def clip_prompts(sources: list[dict], rng: np.random.Generator) -> list[dict]:
    """SpatialTAS-style prompts for a whole clip.

    ``sources``: each {"category", "azimuth", "elevation", "distance", "label"} (degrees, metres; the
    clip-level position), optionally "moving": True with "start_label"/"end_label".
    Returns a list of {"type": "direction"|"relation"|"distance", "text", "phrasing" (an id of
    PHRASINGS), "held_out" (bool), "sources" (indices into ``sources`` in the order the text names
    them)}: one direction prompt for all sources, and per pair of sources (i < j) one relation prompt
    and one distance prompt where the pair allows one; each in a train and in a held-out phrasing.
    Deterministic given ``rng``.
    """
    if not sources:
        return []
    descs = _describe(sources)
    out = []
    for held in (False, True):
        p = _pick(_phrasings("direction", "all", held), rng)
        out.append({"type": "direction", "text": p.make(descs), "phrasing": p.id, "held_out": held,
                    "sources": list(range(len(sources)))})
    for i in range(len(sources)):
        for j in range(i + 1, len(sources)):
            rel, dist = _pair_facts(sources[i], sources[j])
            for type_, facts in (("relation", rel), ("distance", dist)):
                if not facts:
                    continue
                for held in (False, True):
                    kind = _pick(sorted(facts), rng)
                    word = facts[kind]
                    x, y = i, j
                    if kind != "between" and rng.random() < 0.5:  # say it the other way round
                        x, y = j, i
                        word = {"nearer": "farther", "farther": "nearer"}.get(word, _OPPOSITE.get(word, word))
                    p = _pick(_phrasings(type_, kind, held), rng)
                    text = p.make(kind, descs[x].name, word, descs[y].name)
                    out.append({"type": type_, "text": text, "phrasing": p.id, "held_out": held,
                                "sources": [y, x] if p.y_first else [x, y]})
    return out

