"""Spatial question answering: TASU's understanding metrics, read by the assessor (tas_eval.metrics.assessor).

The assessor answers the build's questions about each test clip (tas_eval.data.qa, the held-out
phrasings) twice: from the reference audio and from the prediction. Per question type t (doa, de,
direction, distance):

    qa_t = accuracy on the references - accuracy on the predictions     (percentage points, lower is better)

as TASU defines it; 0 means the prediction lets the assessor answer as well as the truth does, and a
negative value that it answered better (chance agreement with a wrong answer can do that on few
questions). Each record's details hold both accuracies, the chance level of the type (the best
constant answer, tas_eval.metrics.assessor.scorer.chance_levels), the number of questions, the
answering mode of each kind, the sha256 of the questions and how many of the clips the assessor was
trained on, and ``p_above_chance``: how likely an answerer at chance gets as many right on the
references (tas_eval.metrics.assessor.scorer.p_above_chance). The metrics are set-level: one value per
prediction set, no per-item spread.

A gap is withheld, not reported, for a type on which the assessor answers the references no better than
chance (accuracy on the references at or below the chance level): there the assessor knows nothing a
constant answer does not, and a gap of 0 would read as a perfect prediction. The accuracies of a
withheld type are still recorded, beside the reason (``compute_qa``'s ``withheld``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tas_eval.data.qa import KIND_TYPE, TYPES
from tas_eval.metrics.base import MetricRecord, SetMetric

VERSION = "1"
PROVENANCE = "docs/metrics.md#spatial-question-answering"
_NAMES = {"doa": "the direction of a named source (side, front/behind, above/level/below; all three right)",
          "de": "the distance of a named source (right within 0.5 m)",
          "direction": "whether A is left or right of B, and which source is above/below B",
          "distance": "whether A is farther than B, and how far apart A and B are (right within 0.5 m)"}


def _gap(qa_type: str):
    def compute(accuracy_ground_truth: dict, accuracy_prediction: dict) -> dict:
        gt, pred = accuracy_ground_truth[qa_type], accuracy_prediction[qa_type]
        return {"value": gt["accuracy"] - pred["accuracy"], "accuracy_ground_truth": gt["accuracy"],
                "accuracy_prediction": pred["accuracy"], "questions": gt["n"]}
    return compute


def _metric(qa_type: str) -> SetMetric:
    return SetMetric(
        id=f"qa_{qa_type}", version=VERSION, direction="lower", unit="points",
        provenance=f"{PROVENANCE} (qa_{qa_type}: TASU's understanding metric, seed 001 Appendix C; tas-eval's scorer)",
        definition=(f"assessor's accuracy (%) on the references minus on the predictions, questions about {_NAMES[qa_type]}; "
                    "withheld where the references are answered no better than chance"),
        compute=_gap(qa_type), needs=("questions", "assessor"), kind="qa")


QA_DOA, QA_DE, QA_DIRECTION, QA_DISTANCE = (_metric(t) for t in TYPES)
QA_METRICS = {m.id: m for m in (QA_DOA, QA_DE, QA_DIRECTION, QA_DISTANCE)}


@dataclass(frozen=True)
class AssessorOptions:
    """Which assessor the question-answering metrics read: a checkpoint (default: the packaged tas_qa weights),
    an LM folder replacing the one it names (the same weights, elsewhere), and the localizer it was trained on."""

    checkpoint: str | None = None
    llm: str | None = None
    localizer: str | None = None


def _reference_answers(assessor, refs, rows, qs, dataset_hash: str | None, split: int | None) -> list[str]:
    """The assessor's answers about the references, read from (or written to) the cache when the dataset's
    content hash and the split identify the references; keyed by everything that decides the answers."""
    import hashlib
    import json

    from tas_eval.io import write_json_atomic
    from tas_eval.paths import cache_root

    def ask() -> list[str]:
        tokens = assessor.encode(refs)
        return assessor.answer([tokens[k] for k, _ in rows], qs)

    if dataset_hash is None or split is None:
        return ask()
    key = {"assessor": assessor.describe(), "dataset": dataset_hash, "split": split,
           "questions": [q["id"] for q in qs], "questions_sha256": hashlib.sha256(
               json.dumps(qs, sort_keys=True).encode()).hexdigest()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    path = cache_root() / "qa_answers" / f"{digest}.json"
    try:
        entry = json.loads(path.read_text())
        if entry.get("key") == key and len(entry.get("answers", [])) == len(qs):
            return list(entry["answers"])
    except (OSError, ValueError):
        pass
    answers = ask()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"key": key, "answers": answers})
    return answers


def items_seen_in_training(config: dict, questions: dict, item_ids: list[str]) -> int:
    """How many of ``item_ids`` the assessor of ``config`` was trained on. Clip ids repeat across builds (every
    build numbers its clips from c00000), so an id counts only when ``questions`` is the very question bank the
    assessor trained on (the same sha256), that is, the same build."""
    if config.get("questions_sha256") != questions.get("sha256"):
        return 0
    trained_on = set(config.get("train_items") or [])
    return sum(1 for i in item_ids if i in trained_on)


WITHHELD_WHY = "the assessor answers the references no better than chance on these questions"


def compute_qa(preds, refs, *, item_ids: list[str], questions: dict | None, options: AssessorOptions | None = None,
               metric_ids=None, device: str = "cpu", dataset_hash: str | None = None,
               split: int | None = None) -> tuple[dict[str, MetricRecord], dict, str | None, dict]:
    """(records {metric id: record}, per-item answers {item id: [{"id", "answer_reference", "answer_prediction",
    "right_reference", "right_prediction"}]}, a note saying why nothing was computed or None, withheld gaps
    {metric id: the record's details and "why"}) of aligned (2, T) predictions and references at 16 kHz,
    with the build's ``questions`` (tas_eval.data.qa.qa_block). With the dataset's content hash and the
    split, the answers about the references are cached (as the generative metrics' reference statistics
    are)."""
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.assessor import WEIGHTS, LLMUnavailable, LocalizerMismatch, load_assessor
    from tas_eval.metrics.assessor.scorer import MODES, accuracies, chance_levels, is_right, p_above_chance

    chosen = [m for m in QA_METRICS.values() if metric_ids is None or m.id in metric_ids]
    if not chosen:
        return {}, {}, None, {}
    if not questions or not questions.get("items"):
        return {}, {}, "the dataset has no spatial questions (the built-in benchmark's manifest holds them)", {}
    rows = [(k, q) for k, i in enumerate(item_ids) for q in questions["items"].get(i, [])]
    if not rows:
        return {}, {}, "none of the test items has a spatial question", {}
    options = options or AssessorOptions()
    if options.checkpoint is None and not WEIGHTS.is_file():
        missing = f"{WEIGHTS}: the packaged assessor weights are missing; train them with `tas-eval assessor train`"
        return {}, {}, missing, {}
    try:
        assessor = load_assessor(options.checkpoint, options.llm, options.localizer, device)
    except LLMUnavailable as exc:
        return {}, {}, str(exc), {}
    except LocalizerMismatch as exc:
        # Another localizer for the spatial measures (say, one trained at the paper profile) must not stop an
        # evaluation: the packaged assessor cannot read it, so its metrics are left out and the note says why.
        # An assessor the user named for this localizer and that does not fit it is the user's error.
        if options.checkpoint is not None:
            raise
        return {}, {}, str(exc), {}
    categories = category_names()
    qs = [q for _, q in rows]
    ans_ref = _reference_answers(assessor, refs, rows, qs, dataset_hash, split)
    if len(preds) == len(refs) and all(np.array_equal(p, r) for p, r in zip(preds, refs)):
        # the ground-truth row: the answers about the predictions are the answers about the references
        ans_pred = list(ans_ref)
    else:
        pred_tokens = assessor.encode(preds)
        ans_pred = assessor.answer([pred_tokens[k] for k, _ in rows], qs)
    right_ref = [is_right(q, a, categories) for q, a in zip(qs, ans_ref)]
    right_pred = [is_right(q, a, categories) for q, a in zip(qs, ans_pred)]
    acc_ref, acc_pred, chance = accuracies(qs, right_ref), accuracies(qs, right_pred), chance_levels(qs)
    p_ref = p_above_chance(qs, right_ref)
    seen = items_seen_in_training(assessor.config, questions, item_ids)
    modes = {}
    for kind, t in KIND_TYPE.items():
        modes.setdefault(t, {})[kind] = MODES[kind]
    records, withheld = {}, {}
    for m in chosen:
        t = m.id[len("qa_"):]
        if t not in acc_ref:
            continue
        details = m.compute(acc_ref, acc_pred)
        value = details.pop("value")
        details.update({"chance": chance[t], "p_above_chance": p_ref[t], "modes": modes[t],
                        "questions_sha256": questions.get("sha256"), "items_seen_in_training": seen})
        if details["accuracy_ground_truth"] <= chance[t] + 1e-9:
            withheld[m.id] = {**details, "why": WITHHELD_WHY, "backbone": assessor.describe()}
            continue
        records[m.id] = MetricRecord(float(value), None, None, int(details["questions"]), m.direction, m.version,
                                     m.unit, backbone=assessor.describe(), details=details)
    answers: dict[str, list] = {}
    for (k, q), a_r, a_p, r_r, r_p in zip(rows, ans_ref, ans_pred, right_ref, right_pred):
        answers.setdefault(item_ids[k], []).append({"id": q["id"], "answer_reference": a_r, "answer_prediction": a_p,
                                                    "right_reference": r_r, "right_prediction": r_p})
    return records, answers, None, withheld
