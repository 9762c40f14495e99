"""Where does the packaged spatial-QA assessor fail: on unseen clips only, or on what it was trained on too?

    python3 benchmarks/assessor_by_data.py [--train-clips 40] [--scenes 60] [--seed 12345]

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
"""

from __future__ import annotations

import argparse

import torch

from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.metrics.assessor import load_assessor
from tas_eval.metrics.assessor.model import clip_tokens
from tas_eval.metrics.assessor.training import evaluate_answers, rendered_examples
from tas_eval.metrics.localizer import load_localizer


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
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = resolve_benchmark("small", 0)
    assessor = load_assessor()
    localizer = load_localizer()
    questions = bench.questions()["items"]
    train_ids, val_ids = bench.split_ids(1, "train")[: args.train_clips], bench.split_ids(1, "val")
    ids = train_ids + val_ids
    tokens = dict(zip(ids, clip_tokens(localizer, (bench.binaural(i) for i in ids))))
    show("val clips", evaluate_answers(assessor, tokens, questions, val_ids))
    show(f"train clips ({len(train_ids)}), held-out phrasing", evaluate_answers(assessor, tokens, questions, train_ids))
    show(f"train clips ({len(train_ids)}), training phrasing",
         evaluate_answers(assessor, tokens, questions, train_ids, field="question"))
    scene_tokens, examples, _ = rendered_examples(bench, 1, args.scenes, args.seed, localizer)
    by_scene: dict[str, list] = {}
    for scene_id, question in examples:
        by_scene.setdefault(scene_id, []).append(question)
    show(f"rendered scenes ({args.scenes}, seed {args.seed}), held-out phrasing",
         evaluate_answers(assessor, scene_tokens, by_scene, list(by_scene)))


if __name__ == "__main__":
    main()
