"""The one evaluation path: validate -> read -> score -> results record.

`tas-eval evaluate --predictions DIR` calls ``evaluate_predictions`` on an outside submission;
`tas-eval run` first writes its own predictions directory and then calls the same function;
`tas-eval evaluate --ground-truth` writes the test references as a predictions directory and calls it
too. Nothing is written unless the directory validates.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tas_eval import results as results_mod
from tas_eval.audio import write_wav
from tas_eval.data.protocol import Dataset
from tas_eval.device import describe_device
from tas_eval.errors import UserError
from tas_eval.metrics import score
from tas_eval.metrics.generative import GenerativeOptions
from tas_eval.io import folder_lock
from tas_eval.validate import COUNTERFACTUAL_DIR, check_model_name, has_counterfactual, read_prediction, require_valid

log = logging.getLogger(__name__)

SAMPLE_ITEMS = 3  # clips kept under results/.../samples for listening
GROUND_TRUTH = "ground_truth"  # results folder of the references scored against themselves


def evaluate_predictions(
    pred_dir: str | os.PathLike,
    dataset: Dataset,
    split: int,
    *,
    name: str | None = None,
    results_root: str | os.PathLike = "results",
    device: str = "cpu",
    run_info: dict | None = None,
    metric_ids: list[str] | None = None,
    generative: GenerativeOptions | None = None,
    samples: bool = True,
    overwrite: bool = False,
    localizer: str | None = None,
    assessor=None,
) -> tuple[dict, Path]:
    """Validate, read, score and record a predictions directory for the test part of ``split``.

    ``generative`` holds the options of the set-level metrics (FD, FAD, KL, IS), ``localizer`` the
    checkpoint of the localizer (default: the packaged weights), ``assessor`` the
    tas_eval.metrics.question_answering.AssessorOptions of the question-answering metrics, which ask
    the dataset's spatial questions (when it has them); predictions made under the
    counterfactual prompts (a ``counterfactual/`` folder) are scored by ``follow``. ``name`` defaults to
    model.json's "name", else the directory's name. ``run_info`` holds what a `tas-eval run` knows
    beyond the predictions (config, checkpoint_sha256, seeds, device, timings, extra); an outside
    submission records its model.json instead. ``samples`` keeps a few predicted clips for listening.
    A submission may not take a packaged model's name or replace a run's results unless ``overwrite``.
    The name, the results folder and the data are checked before anything is scored, and the results
    folder is locked while it is written. Returns (results dict, results folder).
    """
    start = time.perf_counter()
    pred_dir = Path(pred_dir)
    results_root = Path(results_root)
    if results_root.exists() and not results_root.is_dir():
        raise UserError(f"{results_root}: is not a folder; give --results a folder for the results.")
    if name is not None:
        wrong = check_model_name(name)
        if wrong:
            raise UserError(f"--name: the {wrong}.")
    model_json = require_valid(pred_dir, dataset, split)
    if name is None:
        name = model_json.get("name") or pred_dir.resolve().name
        wrong = check_model_name(name)
        if wrong:
            raise UserError(f"{pred_dir}: the folder's name is used as the {wrong}; give --name or a name in model.json.")
    if name == GROUND_TRUTH and not (run_info or {}).get("extra", {}).get("ground_truth"):
        raise UserError(f"{pred_dir}: the model name '{GROUND_TRUTH}' is kept for the references' own scores "
                        "(tas-eval evaluate --ground-truth); choose another name.")
    record = dataset.record()
    folder = results_mod.results_dir(results_root, record["id"], split, name)
    if run_info is None and not overwrite:
        _refuse_replacing_a_run(folder, name)
    ids = dataset.split_ids(split, "test")
    dataset.check_files(ids)
    with folder_lock(folder):
        return _score_and_record(pred_dir, dataset, split, ids, name, folder, record, model_json, start,
                                 results_root=results_root, device=device, run_info=run_info, metric_ids=metric_ids,
                                 generative=generative, samples=samples, localizer=localizer, assessor=assessor)


def _refuse_replacing_a_run(folder: Path, name: str) -> None:
    """A UserError when a submission would take the name of a model or replace the results of a run."""
    from tas_eval.models import MODELS

    existing = folder / results_mod.RESULTS_FILE
    previous = None
    if existing.is_file():
        try:
            previous = results_mod.load_results(existing)
        except results_mod.ResultsError:
            previous = None
    if previous is not None and "run_key" in previous.get("extra", {}):
        raise UserError(f"{folder}: holds the results of `tas-eval run --model {previous['model']}`; a submission "
                        "named so would replace them. Choose another --name, or give --overwrite to replace them.")
    if name in MODELS.names():
        raise UserError(f"The name '{name}' is a packaged model's: its `tas-eval run` results would be replaced by "
                        "this submission's, or replace them later. Choose another --name, or give --overwrite.")


def _score_and_record(pred_dir: Path, dataset: Dataset, split: int, ids: list[str], name: str, folder: Path,
                      record: dict, model_json: dict, start: float, *, results_root: Path, device: str,
                      run_info: dict | None, metric_ids, generative, samples: bool,
                      localizer: str | None, assessor=None) -> tuple[dict, Path]:
    preds = [read_prediction(pred_dir, item_id) for item_id in ids]
    cf_dir = pred_dir / COUNTERFACTUAL_DIR
    counterfactual = [read_prediction(cf_dir, item_id) for item_id in ids] if has_counterfactual(pred_dir) else None
    refs = [dataset.binaural(item_id) for item_id in ids]
    annotations = [dataset.annotation(item_id) or {} for item_id in ids]
    tags = [dataset.item_tags(item_id) for item_id in ids]
    scores = score(preds, refs, dataset.sample_rate, item_ids=ids, annotations=annotations, metric_ids=metric_ids,
                   device=device, generative=generative, dataset_hash=dataset.content_hash, split=split,
                   counterfactual=counterfactual, localizer=localizer, tags=tags, questions=dataset.questions(),
                   assessor=assessor)

    items = [{"item_id": i} for i in ids]
    for mid, values in scores.per_item.items():
        for item, x in zip(items, values):
            item[mid] = float(x) if math.isfinite(x) else None  # the item could not be scored
    for item, tag in zip(items, tags):
        if tag:
            item["tags"] = tag
        if item["item_id"] in scores.answers:
            item["qa"] = scores.answers[item["item_id"]]
    info = dict(run_info or {})
    extra = dict(info.get("extra", {}))
    extra["metric_options"] = {"peak_normalization": True}
    extra.setdefault("torch_threads", torch.get_num_threads())  # the metrics' threads (a run records its own)
    if scores.unscored:
        extra["metrics_without_values"] = scores.unscored
    if scores.qa_note:
        extra["question_answering_not_computed"] = scores.qa_note
    if scores.qa_withheld:
        extra["question_answering_withheld"] = scores.qa_withheld
    if run_info is None:
        extra["submission"] = {k: model_json[k] for k in ("name", "version", "description", "guidance") if k in model_json}
    timings = dict(info.get("timings", {}))
    timings["evaluate"] = time.perf_counter() - start
    results = results_mod.new_results(
        model=name, dataset=record, split=split, config=info.get("config", {}),
        checkpoint_sha256=info.get("checkpoint_sha256"), seeds=info.get("seeds", {}),
        device=info.get("device", describe_device(device)), timings=timings,
        metrics={mid: r.as_dict() for mid, r in scores.records.items()}, extra=extra, subsets=scores.subsets,
    )
    results_mod.write_results(folder, results, items)
    chosen = results_mod.pick_sample_items(ids, SAMPLE_ITEMS)
    by_id = dict(zip(ids, zip(preds, refs)))
    if samples:  # ``samples`` False: the predictions are the references, already kept below
        results_mod.write_samples(folder, {i: by_id[i][0] for i in chosen}, dataset.sample_rate)
        if counterfactual is not None:
            # A model that does not read the prompt gives the same clip: it is not kept twice.
            cf = {i: x for i, x in zip(ids, counterfactual) if i in chosen and not np.array_equal(x, by_id[i][0])}
            if cf:
                results_mod.write_samples(folder, cf, dataset.sample_rate, suffix=".counterfactual")
    results_mod.write_reference_samples(results_root, record, split, {i: by_id[i][1] for i in chosen},
                                        dataset.sample_rate, prompts={i: item_prompts(dataset.annotation(i)) for i in chosen})
    log.info("wrote %s", folder / results_mod.RESULTS_FILE)
    return results, folder


def item_prompts(annotation: dict | None) -> dict:
    """What a model is told about an item, to show beside its players: {"clip": the clip prompt or None,
    "dense": [[t0, t1, text], ...]} with the dense texts merged over consecutive frames (seconds)."""
    from tas_eval.models import prompt_from_annotation

    prompt = prompt_from_annotation(annotation or {})
    dense: list[list] = []
    frames = prompt["frames"] or []
    for k, frame in enumerate(frames):
        end = frames[k + 1]["t0"] if k + 1 < len(frames) else frame["t0"] + 1.0 / float((annotation or {}).get("frame_rate", 10))
        if dense and dense[-1][2] == frame["text"]:
            dense[-1][1] = round(end, 3)
        else:
            dense.append([round(frame["t0"], 3), round(end, 3), frame["text"]])
    return {"clip": prompt["text"], "dense": dense}


def evaluate_ground_truth(dataset: Dataset, split: int, *, results_root: str | os.PathLike = "results",
                          device: str = "cpu", generative: GenerativeOptions | None = None,
                          localizer: str | None = None, assessor=None) -> tuple[dict, Path]:
    """Score the test references against themselves through ``evaluate_predictions``: the ground-truth row.

    The distances are 0 by construction; the row is there for the metrics that do not score a
    distance to the reference: direction_acc (what real binaural audio scores against the annotated
    labels; a model can score above it by exaggerating level differences towards the labels, and
    Mono-Mono's all-center output can too on a split with many center labels) and IS. The results
    record extra.ground_truth = true, and the leaderboard shows such a row under each table, unranked.
    """
    with tempfile.TemporaryDirectory(prefix="tas-eval-ground-truth-") as tmp:
        for item_id in dataset.split_ids(split, "test"):
            write_wav(Path(tmp) / f"{item_id}.wav", dataset.binaural(item_id), dataset.sample_rate)
        info = {"config": {}, "seeds": {}, "device": describe_device(device),
                "extra": {"ground_truth": True, "description": "the test references scored against themselves"}}
        return evaluate_predictions(tmp, dataset, split, name=GROUND_TRUTH, results_root=results_root,
                                    device=device, run_info=info, generative=generative, samples=False,
                                    localizer=localizer, assessor=assessor)
