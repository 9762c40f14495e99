"""Scoring the assessor's answers against the questions' true answers (tas_eval.data.qa).

Two modes, fixed per question kind (MODES):

- "choice": the answer is the candidate with the highest log-likelihood under the assessor (the sum of
  its tokens' log-probabilities, end-of-text included), among CHOICES of the kind. Used for the
  two-way questions (left/right, yes/no), where a free answer from a small LM could drift into a word
  that is neither.
- "generate": greedy decoding of at most MAX_NEW_TOKENS tokens, parsed:
    doa     the first of "left"/"center"/"right", of "front"/"behind", of "above"/"below"/"level" found
            (whole words); right when all three equal the true ones ("centre", "back", "up", "down" and
            "middle" are read as their synonyms);
    de, apart   the first number (an optional "m" after it); right within 0.5 m of the true distance;
    above, below    the category named (the longest category name found); right when it is the true one.
  An answer that cannot be parsed is wrong.

Accuracy per type is the share of right answers over the type's questions (in percent). CHANCE per
type is what the best constant answer scores on the same questions: the most frequent true answer of
each kind (for distances, the 0.5 m grid value that most true distances lie within 0.5 m of), the
kinds of a type weighted by their numbers of questions. P_ABOVE_CHANCE per type is the probability
that an answerer right on each question of a kind with the chance rate of that kind (the best constant
answer's share), independently, gets at least as many right as observed: an exact one-sided test of
the accuracy against chance (a sum of binomials, one per kind).
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from tas_eval.data.qa import DISTANCE_STEP_M, DISTANCE_TOLERANCE_M, KIND_TYPE, TYPES, category_words

MODES = {"doa": "generate", "de": "generate", "left_right": "choice", "above": "generate", "below": "generate",
         "farther": "choice", "apart": "generate"}
CHOICES = {"left_right": ("left", "right"), "farther": ("yes", "no")}
MAX_NEW_TOKENS = 10

_SYNONYMS = {"centre": "center", "middle": "center", "back": "behind", "up": "above", "down": "below"}
_GROUPS = (("left", "center", "right"), ("front", "behind"), ("above", "below", "level"))
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m\b|meters?\b|metres?\b)?")


def parse_direction(text: str) -> list[str | None]:
    """[side, front/behind, vertical] found in a free answer (None where a part is missing)."""
    words = [_SYNONYMS.get(w, w) for w in re.findall(r"[a-z]+", text.lower())]
    return [next((w for w in words if w in group), None) for group in _GROUPS]


def parse_distance(text: str) -> float | None:
    """The first number of a free answer, in metres; None if there is none."""
    m = _NUMBER.search(text.lower())
    return float(m.group(1)) if m else None


def parse_category(text: str, categories: list[str]) -> str | None:
    """The category (id, e.g. "upright_bass") whose words appear in a free answer, the longest match first."""
    low = " " + re.sub(r"[^a-z]+", " ", text.lower()) + " "
    for cat in sorted(categories, key=lambda c: -len(category_words(c))):
        if f" {category_words(cat)} " in low:
            return cat
    return None


def is_right(question: dict, answer: str, categories: list[str]) -> bool:
    """Whether a free or chosen ``answer`` to ``question`` is right (see the module docstring)."""
    kind, truth = question["kind"], question["truth"]
    if MODES[kind] == "choice":
        return answer.strip().lower() == str(truth)
    if kind == "doa":
        return parse_direction(answer) == list(truth)
    if kind in ("de", "apart"):
        value = parse_distance(answer)
        return value is not None and abs(value - float(truth)) <= DISTANCE_TOLERANCE_M + 1e-9
    return parse_category(answer, categories) == truth


def _constant_right(kind: str, truths: list) -> int:
    if kind in ("de", "apart"):
        values = np.asarray(truths, dtype=np.float64)
        grid = np.arange(0.0, max(values.max(), 0.0) + DISTANCE_STEP_M, DISTANCE_STEP_M)
        return int(max(np.sum(np.abs(values - g) <= DISTANCE_TOLERANCE_M + 1e-9) for g in grid))
    keys = [tuple(t) if isinstance(t, list) else t for t in truths]
    return Counter(keys).most_common(1)[0][1]


def _kind_chance(questions: list[dict], qa_type: str) -> list[tuple[int, int]]:
    """(questions, right by the best constant answer) of each kind of ``qa_type`` that has questions."""
    out = []
    for k in [k for k, v in KIND_TYPE.items() if v == qa_type]:
        truths = [q["truth"] for q in questions if q["kind"] == k]
        if truths:
            out.append((len(truths), _constant_right(k, truths)))
    return out


def chance_levels(questions: list[dict]) -> dict[str, float | None]:
    """Per type, the accuracy (%) of the best constant answer per kind on ``questions`` (None without questions)."""
    out = {}
    for t in TYPES:
        kinds = _kind_chance(questions, t)
        n = sum(n for n, _ in kinds)
        out[t] = 100.0 * sum(r for _, r in kinds) / n if n else None
    return out


def p_above_chance(questions: list[dict], right: list[bool]) -> dict[str, float]:
    """Per type with questions, P(at least the observed number right) for an answerer right on each
    question of a kind with that kind's chance rate, independently (see the module docstring)."""
    from scipy.stats import binom

    out = {}
    for t in TYPES:
        kinds = _kind_chance(questions, t)
        if not kinds:
            continue
        pmf = np.ones(1)
        for n, r in kinds:  # the distribution of the sum: the kinds' binomials convolved
            pmf = np.convolve(pmf, binom.pmf(np.arange(n + 1), n, r / n))
        observed = sum(bool(x) for q, x in zip(questions, right) if q["type"] == t)
        out[t] = float(min(1.0, pmf[observed:].sum()))
    return out


def _accuracy_by(field: str, questions: list[dict], right: list[bool]) -> dict[str, dict]:
    rows: dict[str, list[bool]] = {}
    for q, r in zip(questions, right):
        rows.setdefault(q[field], []).append(bool(r))
    return {k: {"accuracy": 100.0 * float(np.mean(v)), "n": len(v)} for k, v in rows.items()}


def kind_accuracies(questions: list[dict], right: list[bool]) -> dict[str, dict]:
    """Per question kind: {"accuracy": % right, "n": questions}; a kind without questions is left out."""
    return _accuracy_by("kind", questions, right)


def accuracies(questions: list[dict], right: list[bool]) -> dict[str, dict]:
    """Per type, in TYPES order: {"accuracy": % right, "n": questions}; a type without questions is left out."""
    by_type = _accuracy_by("type", questions, right)
    return {t: by_type[t] for t in TYPES if t in by_type}
