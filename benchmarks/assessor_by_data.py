"""Where does the packaged spatial-QA assessor fail: on unseen clips only, or on what it was trained on too?

    python3 benchmarks/assessor_by_data.py [--train-clips 40] [--scenes 60] [--seed 12345] [--checkpoint FILE]

Accuracy per question type (with the number of questions and the chance level, as the metrics define them)
of the packaged assessor (tas_eval/metrics/assessor/weights) on the small build's split 1:
  - the val clips (what its weights README reports);
  - the first ``--train-clips`` train clips, which it was trained on, asked in the held-out phrasing and in
    the training phrasing;
  - ``--scenes`` rendered scenes of the kind that make 75% of its training batches, drawn with a seed
    (``--seed``) that training never used, asked in the held-out phrasing.
High on the train clips and low on val would say it overfits; high on the rendered scenes and low on the
clips would say the rendered scenes do not teach what the clips need; low everywhere, that it does not learn
the type at all.

First, how many of the clips' questions have a source as their answer that the audio tokens the question
reads do not carry: the localizer's category head did not hear it enough to make it a source of the clip
(the sources a question names are always among them).

Then, per question kind, the assessor beside what the audio tokens a question reads say without an LM
(``token_answer``: the named line's most probable words; the relation line's more probable word; for
"which sound is above/below B", the line most probably above/below): what the LM would score by reading
its input well.

Beside it, the same clips answered without an LM: the localizer's per-frame estimates, averaged per named
source with its category posterior as weights (as the assessor's audio tokens pool the encoder), read by a
fixed rule (``rule_answer``). That is roughly what the encoder tells about each type: an assessor below it
does not use all of what it reads; a type at chance here is at chance for want of the encoder's signal.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.audio import peak_normalize
from tas_eval.data.builtin.sources import category_names
from tas_eval.data.qa import category_words, distance_text, front_label, vertical_label
from tas_eval.data.scene import direction_vector, side_label
from tas_eval.metrics.assessor import load_assessor
from tas_eval.metrics.assessor.model import PRESENCE, clip_tokens, for_question, relation_words, slot_words
from tas_eval.metrics.assessor.scorer import accuracies, chance_levels, is_right, kind_accuracies
from tas_eval.metrics.assessor.training import evaluate_answers, rendered_examples
from tas_eval.metrics.localizer import load_localizer


def rule_answer(located: dict, categories: list[str], question: dict) -> str:
    """The answer a fixed rule reads from the localizer's per-frame estimates of one clip (``Localizer.locate``,
    batch of one): each named source's azimuth (circular mean), elevation, distance and lateral angle
    averaged over the frames with its category's posterior as weights."""
    p = located["p_category"][0].numpy()
    az, el, dist, lat = (located[k][0].numpy() for k in ("azimuth", "elevation", "distance", "lateral"))

    def source(category: str) -> dict:
        w = p[:, categories.index(category)]
        w = w / max(w.sum(), 1e-12)
        rad = np.radians(az)
        return {"azimuth": float(np.degrees(np.arctan2((w * np.sin(rad)).sum(), (w * np.cos(rad)).sum()))),
                "elevation": float((w * el).sum()), "distance": float((w * dist).sum()), "lateral": float((w * lat).sum())}

    kind, names = question["kind"], question["sources"]
    if kind == "doa":
        s = source(names[0])
        return ", ".join([side_label(s["azimuth"], s["elevation"]), front_label(s["azimuth"]),
                          vertical_label(s["elevation"])])
    if kind == "de":
        return distance_text(source(names[0])["distance"])
    if kind in ("left_right", "farther"):
        a, b = source(names[0]), source(names[1])
        if kind == "left_right":
            return "left" if a["lateral"] > b["lateral"] else "right"
        return "yes" if a["distance"] > b["distance"] else "no"
    if kind == "apart":
        a, b = source(names[0]), source(names[1])
        gap = direction_vector(a["azimuth"], a["elevation"]) * a["distance"] \
            - direction_vector(b["azimuth"], b["elevation"]) * b["distance"]
        return distance_text(float(np.linalg.norm(gap)))
    heard = [c for c in categories if c != names[0] and p[:, categories.index(c)].mean() >= PRESENCE]
    if not heard:
        return ""
    sign = 1.0 if kind == "above" else -1.0
    return category_words(max(heard, key=lambda c: sign * source(c)["elevation"]))


def rule_accuracy(localizer, bench, questions: dict, ids: list[str]) -> dict:
    """``evaluate_answers``' result for ``rule_answer`` on the clips ``ids``."""
    rows, right = [], []
    for i in ids:
        if not questions.get(i):
            continue
        x = peak_normalize(torch.as_tensor(bench.binaural(i), dtype=torch.float64)[None]).float()
        located = localizer.locate(x)
        for q in questions[i]:
            rows.append(q)
            right.append(is_right(q, rule_answer(located, localizer.categories, q), category_names()))
    return {"accuracy": accuracies(rows, right), "chance": chance_levels(rows)}


def unheard_share(tokens: dict, questions: dict, ids: list[str]) -> tuple[int, int]:
    """(questions about the clips ``ids`` that name a source, or have one as their answer, that is not among
    the audio tokens the question reads (``for_question``); all their questions): those no reader of the
    tokens can answer from them."""
    names = category_names()
    missing = total = 0
    for i in ids:
        for q in questions.get(i, []):
            heard = {names[c] for c in for_question(tokens[i], q["sources"]).category.tolist()}
            needed = set(q["sources"]) | ({q["truth"]} if q["kind"] in ("above", "below") else set())
            missing += not needed <= heard
            total += 1
    return missing, total


def token_answer(tokens, question: dict) -> str | None:
    """What the audio tokens ``question`` reads (``for_question`` of the clip's tokens) say without an LM: doa and
    de, the named line's most probable side, front/behind and vertical words, or distance word; left_right and
    farther, the relation line's more probable word (ties: its first); above/below, the category of the other
    line whose P(above) - P(below) is largest (smallest for below); None for apart, which no line states."""
    names, words, relation = category_names(), slot_words(), relation_words()
    kind = question["kind"]
    if kind == "apart":
        return None
    read = for_question(tokens, question["sources"])
    lines = [names[c] for c in read.category.tolist()]
    a = lines.index(question["sources"][0])

    def word(slot: str, k: int) -> str:
        return words[slot][int(read.words[slot][k].argmax())]

    if kind == "doa":
        return ", ".join(word(s, a) for s in ("side", "front", "vertical"))
    if kind == "de":
        return word("distance", a)
    if kind in ("left_right", "farther"):
        rel = "side_of" if kind == "left_right" else "distance_of"
        said = relation[rel][0 if float(read.relations[rel][0, 0]) >= 0.5 else 1]
        return said if kind == "left_right" else ("yes" if said == "farther" else "no")
    up = read.words["vertical"][:, 0] - read.words["vertical"][:, 2]  # P(above) - P(below) per line
    others = [k for k in range(len(lines)) if k != a]
    if not others:
        return ""
    sign = 1.0 if kind == "above" else -1.0
    return category_words(lines[max(others, key=lambda k: sign * float(up[k]))])


def token_kinds(tokens: dict, questions: dict, ids: list[str]) -> dict[str, dict]:
    """``kind_accuracies`` of ``token_answer`` on the questions of the clips ``ids`` (apart left out)."""
    rows = [(i, q) for i in ids for q in questions.get(i, []) if q["kind"] != "apart"]
    categories = category_names()
    right = [is_right(q, token_answer(tokens[i], q), categories) for i, q in rows]
    return kind_accuracies([q for _, q in rows], right)


def show_kinds(name: str, kinds: dict) -> None:
    cells = ", ".join(f"{k} {v['accuracy']:.1f} % of {v['n']}" for k, v in sorted(kinds.items()))
    print(f"{name}, per kind: {cells}", flush=True)


def show(name: str, result: dict) -> None:
    accuracy, chance = result["accuracy"], result["chance"]
    cells = ", ".join(f"{t} {accuracy[t]['accuracy']:.1f} % of {accuracy[t]['n']} (chance {chance[t]:.1f})"
                      for t in accuracy)
    print(f"{name}: {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-clips", type=int, default=40)
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the rendered scenes (training used 0)")
    parser.add_argument("--checkpoint", default=None, metavar="FILE", help="an assessor checkpoint (default: the packaged one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = resolve_benchmark("small", 0)
    assessor = load_assessor(args.checkpoint)
    localizer = load_localizer()
    questions = bench.questions()["items"]
    train_ids, val_ids = bench.split_ids(1, "train")[: args.train_clips], bench.split_ids(1, "val")
    ids = train_ids + val_ids
    tokens = dict(zip(ids, clip_tokens(localizer, (bench.binaural(i) for i in ids))))
    for name, part in (("val clips", val_ids), (f"train clips ({len(train_ids)})", train_ids)):
        missing, total = unheard_share(tokens, questions, part)
        print(f"{name}: {missing} of {total} questions name a source that is not among the audio tokens", flush=True)
    val = evaluate_answers(assessor, tokens, questions, val_ids)
    show("val clips", val)
    show_kinds("val clips, the assessor", val["kinds"])
    show_kinds("val clips, the audio tokens read without an LM", token_kinds(tokens, questions, val_ids))
    show("val clips, the localizer read by the fixed rule", rule_accuracy(localizer, bench, questions, val_ids))
    show(f"train clips ({len(train_ids)}), the localizer read by the fixed rule",
         rule_accuracy(localizer, bench, questions, train_ids))
    train = evaluate_answers(assessor, tokens, questions, train_ids)
    show(f"train clips ({len(train_ids)}), held-out phrasing", train)
    show_kinds(f"train clips ({len(train_ids)}), held-out phrasing, the assessor", train["kinds"])
    show_kinds(f"train clips ({len(train_ids)}), the audio tokens read without an LM",
               token_kinds(tokens, questions, train_ids))
    show(f"train clips ({len(train_ids)}), training phrasing",
         evaluate_answers(assessor, tokens, questions, train_ids, field="question"))
    scene_tokens, examples = rendered_examples(bench, 1, args.scenes, args.seed, localizer)
    by_scene: dict[str, list] = {}
    for scene_id, question in examples:
        by_scene.setdefault(scene_id, []).append(question)
    show(f"rendered scenes ({args.scenes}, seed {args.seed}), held-out phrasing",
         evaluate_answers(assessor, scene_tokens, by_scene, list(by_scene)))


if __name__ == "__main__":
    main()
