"""A training-free parser from a spatial text prompt to source positions (used by the text_pan baseline).

It reads TASBench-style dense text ("the cello on the left, the piano on the right") and every
SpatialTAS-style phrasing of tas_eval.data.prompts, train and held-out alike, by keywords rather than by
templates; see UNDERSTOOD for what it understands and the constants below for the positions it assigns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tas_eval.data.prompts import NOUNS
from tas_eval.data.scene import wrap_azimuth

# Positions the parser assigns (degrees, metres). A side word gives a lateral angle; "behind" mirrors it
# to the back (azimuth 180 - lateral).
LABEL_AZIMUTH = {"left": 60.0, "center": 0.0, "right": -60.0}
RELATIVE_AZIMUTH_DEG = 30.0  # "A is left of B" with no absolute side: A at +30, B at -30
ELEVATION_DEG = 30.0  # "above" / "below" (also relative: "A is above B" -> A +30, B -30)
NEAR_M, FAR_M = 2.0, 4.0  # "A is nearer than B" with no stated distance: A 2 m, B 4 m

UNDERSTOOD = """\
The text_pan prompt parser (baselines/common/prompt_parser.py) understands, by keywords:
- sources: the benchmark's category nouns (tas_eval.data.prompts.NOUNS, the category ids with "_" as a
  space, and a few aliases such as "drums", "double bass", "vocalist"), and any other noun phrase after
  "the"/"a"/"an"/"another" (category unknown); "the sound of/from X" is X; ordinals ("the second cello")
  and "a ... / another ..." keep sources of one category apart.
- sides: left / right / center (centre, middle) -> azimuth +60 / -60 / 0 degrees; front (ahead, in
  front) / behind (back, rear) -> behind mirrors the azimuth to 180 - lateral; above (over, overhead, up,
  upper, high) / below (beneath, underneath, under, down, low) -> elevation +30 / -30 degrees.
- distances: a number with m / meter(s) / metre(s) -> that distance; a number in a sentence with
  "between", "apart" or "each other" is the distance between two sources and is not assigned.
- motion: "from (the/your) <side> to (the/your) <side>" -> a moving source: start/end azimuths, and the
  azimuth is their mid-point.
- relations: "A is (to the) left/right of B", "A is on the left-hand side of B", "A is above/below/over/
  underneath B", "A is further left/higher/lower/nearer/closer/farther/at a shorter distance ... than B",
  "compared with B, A is further to the left/higher", and comparatives without a second source ("A is
  more to the left, while B is more to the right"; "A is closer, while B is farther away"). A relation
  only fills what no absolute word gave: left of -> +30 / -30 degrees (or 30 degrees beside the other
  source's known angle), above -> +30 / -30 degrees, nearer -> 2 m / 4 m (or half / double the other's).
- the position words may follow the source ("the cello is on the left") or, in a sentence, precede it
  ("to your left, 3 meters away, there is a cello"); a sentence with no source continues the last one.
Output per source: category (None if unknown), azimuth, elevation, distance (None if not stated) and
"basis": "absolute" (a side word), "relative" (only a relation) or "none" (no left/right information:
azimuth 0). Nothing understood (no spatial word at all, e.g. "silence") gives an empty list.
"""

_ALIASES = {"drums": "drum", "drum kit": "drum", "double bass": "upright_bass", "contrabass": "upright_bass",
            "vocalist": "singing", "singing voice": "singing", "talker": "speech"}
NOUN_LOOKUP = {**{c.replace("_", " "): c for c in NOUNS}, **{n: c for c, n in NOUNS.items()}, **_ALIASES}
_MAX_NOUN_WORDS = max(len(k.split()) for k in NOUN_LOOKUP)

_LEFT, _RIGHT = {"left", "leftmost"}, {"right", "rightmost"}
_CENTER = {"center", "centre", "middle", "centered", "centred"}
_FRONT, _BEHIND = {"front", "ahead", "forward"}, {"behind", "back", "rear"}
_ABOVE = {"above", "over", "overhead", "up", "upper", "high"}
_BELOW = {"below", "beneath", "underneath", "under", "down", "low"}
_NEAR, _FAR = {"nearer", "closer", "shorter"}, {"farther", "further", "longer"}
_DETS = {"the", "a", "an", "another"}
_MODS = {"other", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"}
_SEPARATION = {"between", "apart", "each"}
_FILLER = {"of", "hand", "side", "to"}  # words allowed between "left"/"above" and the source it relates to
_SENTENCE_END = {".", ";", "!", "?"}
# Words that end (or cannot start) an unknown noun phrase after a determiner.
_STOP = (_LEFT | _RIGHT | _CENTER | _FRONT | _BEHIND | _ABOVE | _BELOW | _NEAR | _FAR | _DETS | _MODS | _SEPARATION
         | {"higher", "lower", "more", "less", "distant", "distance", "straight", "sound", "sounds", "listener",
            "receiver", "you", "your", "side", "hand", "way", "same", "is", "are", "was", "were", "be", "being",
            "located", "positioned", "placed", "sits", "sit", "lies", "lie", "stands", "comes", "come", "moves",
            "move", "moving", "going", "travels", "originates", "plays", "can", "could", "will", "should", "heard",
            "hear", "seems", "appears", "and", "or", "while", "but", "whereas", "than", "then", "of", "from", "to",
            "in", "on", "at", "with", "by", "for", "as", "into", "toward", "towards", "away", "about", "around",
            "it", "its", "there", "here", "this", "that", "which", "who", "m", "meter", "meters", "metre", "metres"})

_TOKEN_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m|meters?|metres?)\b|\d+(?:\.\d+)?|[a-z]+|[,.;:!?]")


@dataclass
class _Tok:
    kind: str  # "word", "num" (a distance in metres), "bare" (a number without unit), "punct"
    text: str
    value: float = 0.0


@dataclass
class _Mention:
    start: int  # first token (determiner, "sound of") of the mention
    end: int  # one past the noun
    category: str | None
    key: tuple
    new: bool  # "a", "an", "another", "other": a source not named before


@dataclass
class _Item:
    pos: int
    family: str  # "lateral", "fb", "ud", "dist", "near_far", "move"
    value: object
    relative: bool = False


@dataclass
class _Entity:
    category: str | None
    key: tuple
    lat_abs: float | None = None
    lat_rel: float | None = None
    fb: str | None = None
    el_abs: float | None = None
    el_rel: float | None = None
    dist_abs: float | None = None
    dist_rel: float | None = None
    move: tuple[float, float] | None = None

    def lat(self) -> float | None:
        return self.lat_abs if self.lat_abs is not None else self.lat_rel

    def el(self) -> float | None:
        return self.el_abs if self.el_abs is not None else self.el_rel

    def dist(self) -> float | None:
        return self.dist_abs if self.dist_abs is not None else self.dist_rel


@dataclass
class _State:
    entities: list[_Entity] = field(default_factory=list)
    relations: list[tuple[_Entity, _Item, _Entity]] = field(default_factory=list)
    facts: int = 0


def _tokenize(text: str) -> list[_Tok]:
    toks = []
    for m in _TOKEN_RE.finditer(text.lower()):
        s = m.group(0)
        if m.group(1) is not None:
            toks.append(_Tok("num", s, float(m.group(1))))
        elif s[0].isdigit():
            toks.append(_Tok("bare", s))
        elif s[0].isalpha():
            toks.append(_Tok("word", s))
        else:
            toks.append(_Tok("punct", s))
    return toks


def _words(toks: list[_Tok]) -> list[str | None]:
    return [t.text if t.kind == "word" else None for t in toks]


def _find_mentions(toks: list[_Tok]) -> list[_Mention]:
    words = _words(toks)
    n = len(words)
    heads = []  # (head start, head end, category, noun text)
    i = 0
    while i < n:
        for k in range(_MAX_NOUN_WORDS, 0, -1):  # longest match first: "upright bass" before "bass"
            span = words[i:i + k]
            if len(span) == k and None not in span and " ".join(span) in NOUN_LOOKUP:
                heads.append((i, i + k, NOUN_LOOKUP[" ".join(span)], " ".join(span)))
                i += k
                break
        else:
            i += 1
    known_starts = {h[0] for h in heads}
    covered = {j for h in heads for j in range(h[0], h[1])}
    # Unknown noun phrases: a determiner, then up to three words that are not function or position words.
    for j, w in enumerate(words):
        if w not in _DETS or j in covered:
            continue
        k = j + 1
        while k < n and words[k] in _MODS:
            k += 1
        if k + 1 < n and words[k] in ("sound", "sounds") and words[k + 1] in ("of", "from"):
            k += 2
            while k < n and (words[k] in _DETS or words[k] in _MODS):
                k += 1
        start = k
        while k < n and k - start < 3 and words[k] is not None and words[k] not in _STOP and k not in covered:
            k += 1
        if k > start and k not in known_starts:  # "the loud cello" is the cello, found above
            heads.append((start, k, None, " ".join(words[start:k])))
            covered.update(range(start, k))
    mentions = []
    for hs, he, cat, text in sorted(heads):
        start, det, mods, j = hs, None, [], hs - 1
        while j >= 0:  # walk back over "the sound from the second" in front of the noun
            w = words[j]
            if w in _MODS and det is None:
                mods.append(w)
            elif w in _DETS:
                det = det or w
            elif w in ("of", "from") and j >= 1 and words[j - 1] in ("sound", "sounds"):
                j -= 1
            else:
                break
            start = j
            j -= 1
        ordinal = next((m for m in mods if m != "other"), None)
        new = det in ("a", "an", "another") or "other" in mods
        mentions.append(_Mention(start, he, cat, (cat or text, ordinal), new))
    return mentions


def _side_of(word: str | None) -> str | None:
    if word in _LEFT:
        return "left"
    if word in _RIGHT:
        return "right"
    if word in _CENTER:
        return "center"
    return None


def _match_move(words: list[str | None], i: int) -> tuple[str, str, int] | None:
    """"from (the|your) SIDE (hand side) to (the|your) SIDE (hand side)" starting at token i."""
    sides, k = [], i + 1
    for joiner in ("to", None):
        if k < len(words) and words[k] in ("the", "your"):
            k += 1
        side = _side_of(words[k]) if k < len(words) else None
        if side is None:
            return None
        sides.append(side)
        k += 1
        while k < len(words) and words[k] in ("hand", "side"):
            k += 1
        if joiner:
            if k >= len(words) or words[k] != joiner:
                return None
            k += 1
    return sides[0], sides[1], k


def _find_items(toks: list[_Tok]) -> list[_Item]:
    words = _words(toks)
    n = len(words)
    items: list[_Item] = []
    i = 0
    while i < n:
        w = words[i]
        nxt = words[i + 1] if i + 1 < n else None
        if toks[i].kind == "num":
            items.append(_Item(i, "dist", toks[i].value))
        elif w is None:
            pass
        elif w == "from" and (m := _match_move(words, i)):
            items.append(_Item(i, "move", (m[0], m[1])))
            i = m[2]
            continue
        elif w in ("further", "farther", "more"):
            k = i + 1
            while k < n and words[k] in ("to", "the"):
                k += 1
            side = _side_of(words[k]) if k < n else None
            if side is not None:  # "further to the left": a relative side
                items.append(_Item(k, "lateral", side, relative=True))
                i = k + 1
                continue
            if w == "more" and nxt == "distant":
                items.append(_Item(i, "near_far", "far", relative=True))
                i += 2
                continue
            if w != "more":
                items.append(_Item(i, "near_far", "far", relative=True))
        elif w == "less" and nxt == "distant":
            items.append(_Item(i, "near_far", "near", relative=True))
            i += 2
            continue
        elif w == "straight" and nxt == "ahead":
            items += [_Item(i, "lateral", "center"), _Item(i + 1, "fb", "front")]
            i += 2
            continue
        elif _side_of(w):
            items.append(_Item(i, "lateral", _side_of(w)))
        elif w in _FRONT or w in _BEHIND:
            items.append(_Item(i, "fb", "front" if w in _FRONT else "behind"))
        elif w in _ABOVE or w in _BELOW:
            items.append(_Item(i, "ud", "above" if w in _ABOVE else "below"))
        elif w in ("higher", "lower"):
            items.append(_Item(i, "ud", "above" if w == "higher" else "below", relative=True))
        elif w in _NEAR or w in _FAR:
            items.append(_Item(i, "near_far", "near" if w in _NEAR else "far", relative=True))
        i += 1
    return items


def _relation_target(toks: list[_Tok], seg: tuple[int, int], seg_items: list[_Item]) -> _Item | None:
    """The item of a segment that relates its source to the NEXT source, if any: the last position word
    before "than", or a trailing "left of" / "above" followed only by filler words."""
    words = _words(toks)
    than = next((k for k in range(*seg) if words[k] == "than"), None)
    if than is not None:
        before = [it for it in seg_items if it.pos < than and it.family in ("lateral", "ud", "near_far")]
        return before[-1] if before else None
    if not seg_items:
        return None
    last = seg_items[-1]
    trailing = words[last.pos + 1:seg[1]]
    if not all(w in _FILLER for w in trailing):
        return None
    if last.family == "lateral" and last.value != "center" and "of" in trailing:
        return last
    if last.family == "ud":
        return last
    if last.family == "fb" and ("of" in trailing or not trailing):  # "in front of B", "behind B": not used
        return last
    return None


def _apply(ent: _Entity, it: _Item, state: _State, separation: bool) -> None:
    """An absolute item, or a relative one with no second source."""
    state.facts += 1
    if it.family == "lateral":
        if it.relative:
            if ent.lat_rel is None:
                ent.lat_rel = {"left": 1.0, "right": -1.0, "center": 0.0}[it.value] * RELATIVE_AZIMUTH_DEG
        elif ent.lat_abs is None:
            ent.lat_abs = LABEL_AZIMUTH[it.value]
    elif it.family == "fb":
        ent.fb = ent.fb or it.value
    elif it.family == "ud":
        v = ELEVATION_DEG if it.value == "above" else -ELEVATION_DEG
        if it.relative:
            ent.el_rel = v if ent.el_rel is None else ent.el_rel
        elif ent.el_abs is None:
            ent.el_abs = v
    elif it.family == "near_far":
        if ent.dist_rel is None:
            ent.dist_rel = NEAR_M if it.value == "near" else FAR_M
    elif it.family == "dist":
        if not separation and ent.dist_abs is None:
            ent.dist_abs = it.value
    elif it.family == "move":
        if ent.move is None:
            ent.move = (LABEL_AZIMUTH[it.value[0]], LABEL_AZIMUTH[it.value[1]])


def _resolve(a: _Entity, it: _Item, b: _Entity) -> None:
    """Fill what a relation "a <it> b" says about positions no absolute word gave."""
    def clip(x: float) -> float:
        return max(-90.0, min(90.0, x))

    if it.family == "lateral" and it.value in ("left", "right"):
        sign, va, vb, off = (1.0 if it.value == "left" else -1.0), a.lat(), b.lat(), RELATIVE_AZIMUTH_DEG
        if va is None and vb is None:
            a.lat_rel, b.lat_rel = sign * off, -sign * off
        elif va is None:
            a.lat_rel = clip(vb + sign * off)
        elif vb is None:
            b.lat_rel = clip(va - sign * off)
    elif it.family == "ud":
        sign, va, vb, off = (1.0 if it.value == "above" else -1.0), a.el(), b.el(), ELEVATION_DEG
        if va is None and vb is None:
            a.el_rel, b.el_rel = sign * off, -sign * off
        elif va is None:
            a.el_rel = clip(vb + sign * off)
        elif vb is None:
            b.el_rel = clip(va - sign * off)
    elif it.family == "near_far":
        near, da, db = it.value == "near", a.dist(), b.dist()
        if da is None and db is None:
            a.dist_rel, b.dist_rel = (NEAR_M, FAR_M) if near else (FAR_M, NEAR_M)
        elif da is None:
            a.dist_rel = db / 2 if near else db * 2
        elif db is None:
            b.dist_rel = da * 2 if near else da / 2


def _lateral_to_azimuth(v: float, fb: str | None) -> float:
    return wrap_azimuth(180.0 - v) if fb == "behind" else v


def _output(ent: _Entity) -> dict:
    el = ent.el()
    out = {"category": ent.category, "elevation": el if el is not None else 0.0, "distance": ent.dist()}
    if ent.move is not None:
        start, end = ent.move
        out["azimuth"] = _lateral_to_azimuth((start + end) / 2, ent.fb)
        out["start_azimuth"] = _lateral_to_azimuth(start, ent.fb)
        out["end_azimuth"] = _lateral_to_azimuth(end, ent.fb)
        out["basis"] = "absolute"
    else:
        lat = ent.lat()
        out["azimuth"] = _lateral_to_azimuth(lat if lat is not None else 0.0, ent.fb)
        out["basis"] = "absolute" if ent.lat_abs is not None else "relative" if ent.lat_rel is not None else "none"
    return out


def parse_prompt(text: str) -> list[dict]:
    """Source positions from a spatial text prompt (see UNDERSTOOD).

    Returns one dict per source in the order the text names them: {"category": category id or None,
    "azimuth": degrees (+90 = left), "elevation": degrees, "distance": metres or None, "basis":
    "absolute" | "relative" | "none"}, plus "start_azimuth"/"end_azimuth" (degrees) for a moving
    source. Returns [] if the text holds no spatial word at all (text_pan then falls back to center).
    """
    toks = _tokenize(text)
    words = _words(toks)
    mentions = _find_mentions(toks)
    items = _find_items(toks)
    state = _State()

    def entity_of(m: _Mention) -> _Entity:
        if not m.new:
            for e in reversed(state.entities):
                if e.key == m.key:
                    return e
        state.entities.append(_Entity(m.category, m.key))
        return state.entities[-1]

    ents = {id(m): entity_of(m) for m in mentions}
    bounds, start = [], 0  # sentences as token ranges
    for k, t in enumerate(toks):
        if t.kind == "punct" and t.text in _SENTENCE_END:
            bounds.append((start, k))
            start = k + 1
    bounds.append((start, len(toks)))

    last_entity: _Entity | None = None
    for s0, s1 in bounds:
        ms = [m for m in mentions if s0 <= m.start < s1]
        its = [it for it in items if s0 <= it.pos < s1]
        separation = any(w in _SEPARATION for w in words[s0:s1])
        if not ms:  # no source named: the previous one continues ("it is on the left"), or an unnamed one
            if its:
                if last_entity is None:
                    last_entity = _Entity(None, (None, None))
                    state.entities.append(last_entity)
                for it in its:
                    _apply(last_entity, it, state, separation)
            continue
        if separation and any(it.family == "dist" for it in its):
            state.facts += 1
        preposed = any(it.pos < ms[0].start for it in its)
        anchor = next((m for m in ms if m.start >= 2 and (words[m.start - 2], words[m.start - 1])
                       in (("compared", "with"), ("compared", "to"), ("relative", "to"))), None)
        for k, m in enumerate(ms):
            if preposed:
                seg = (ms[k - 1].end if k else s0, m.start)
                nxt = None
            else:
                seg = (m.end, ms[k + 1].start if k + 1 < len(ms) else s1)
                nxt = ms[k + 1] if k + 1 < len(ms) else None
            seg_items = [it for it in its if seg[0] <= it.pos < seg[1]]
            target = _relation_target(toks, seg, seg_items) if nxt is not None else None
            ent = ents[id(m)]
            for it in seg_items:
                if it is target:
                    state.facts += 1
                    state.relations.append((ent, it, ents[id(nxt)]))
                elif it.relative and anchor is not None and anchor is not m and it.family != "dist":
                    state.facts += 1
                    state.relations.append((ent, it, ents[id(anchor)]))
                else:
                    _apply(ent, it, state, separation)
        last_entity = ents[id(ms[-1])]

    for a, it, b in state.relations:
        if a is not b:
            _resolve(a, it, b)
    if state.facts == 0:
        return []
    return [_output(e) for e in state.entities]
