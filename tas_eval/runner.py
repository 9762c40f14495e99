"""`tas-eval run` and `tas-eval evaluate`: train (or reuse) -> predict -> predictions directory -> evaluate -> results.

There is ONE evaluation path: ``evaluate_predictions`` validates a predictions directory, reads it,
scores it and writes the results. `tas-eval evaluate DIR` calls it on an outside submission;
`tas-eval run` first writes its own predictions directory and then calls the same function.

Where things go (under tas_eval.paths.runs_root(), keyed by the run key below)::

    runs/checkpoints/<dataset id>/split<N>/<model>-<key16>/   the model's own training checkpoints
                                                              and final.pt (the trained state)
    runs/predictions/<dataset id>/split<N>/<model>-<key16>/predictions/<item_id>.wav, model.json
    runs/predictions/<dataset id>/split<N>/<model>-<key16>/notes/<item_id>.json   per-item notes
                                                              of the model (e.g. parser fallbacks)

The run key is the sha256 of (model name and version, config, dataset manifest hash, split, seed): a checkpoint or
prediction made with anything else is never reused. Every file is written atomically (temporary
file, then rename), and an item counts as done only when its WAV exists, so a run stopped at any
point (kill -9) continues where it stopped and never reads a half-written file. Inference is seeded
per batch from (seed, batch index) over a fixed batching of the test ids, so a resumed run produces
the same predictions as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tas_eval import results as results_mod
from tas_eval.audio import write_wav
from tas_eval.data.benchmark import NUM_SPLITS, Benchmark
from tas_eval.errors import UserError
from tas_eval.models import get_model_class, model_config, model_info, prompt_from_annotation
from tas_eval.paths import file_sha256, runs_root
from tas_eval.validate import MODEL_JSON, read_model_json, read_prediction, require_valid

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "final.pt"
# Beside final.pt: how it was trained. On a CPU the trained weights depend on torch's thread count
# (ours_saf, small profile: the same data, config and seed gave direction_acc 0.691 with 1 thread and
# 0.795 with 2), so a result is reproducible only with it; the checkpoint's own bytes stay as they were.
TRAINED_WITH = "trained_with.json"
SAMPLE_ITEMS = 3  # predicted clips kept under results/.../samples for listening
GROUND_TRUTH = "ground_truth"  # results folder of the references scored against themselves
CLIP_HEADROOM = 0.999  # a prediction whose peak exceeds 1 is scaled to this peak before it is written


# ----------------------------------------------------------------------------------------- small helpers


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is a UserError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device on this machine.")
    return device


def describe_device(device: str) -> str:
    """The device as recorded in results, e.g. 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device


def parse_splits(split: int | None, splits: str | None) -> list[int]:
    """The split numbers of ``--split N`` or ``--splits 1-10`` / ``1,3,5`` (default: split 1)."""
    if split is not None and splits:
        raise UserError("Give either --split or --splits, not both.")
    if not splits:
        chosen = [split if split is not None else 1]
    else:
        chosen = []
        try:
            for part in splits.split(","):
                part = part.strip()
                if "-" in part:
                    a, b = (int(x) for x in part.split("-", 1))
                    chosen += list(range(a, b + 1))
                elif part:
                    chosen.append(int(part))
        except ValueError as exc:
            raise UserError(f"--splits '{splits}' is not a list like 1-10 or 1,3,5.") from exc
    bad = [s for s in chosen if not 1 <= s <= NUM_SPLITS]
    if bad or not chosen:
        raise UserError(f"Splits are numbered 1 to {NUM_SPLITS}; got {bad or 'none'}.")
    return list(dict.fromkeys(chosen))


def run_key(model_name: str, config: dict, manifest_hash: str, split: int, seed: int, model_version: str = "1") -> str:
    """sha256 identifying a trained model / prediction set: model and its version, config, data, split and seed."""
    blob = json.dumps({"model": model_name, "version": model_version, "config": config, "dataset": manifest_hash,
                       "split": split, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def dataset_record(benchmark: Benchmark) -> dict:
    """The dataset block of a results file."""
    m = benchmark.manifest
    return {"id": benchmark.dataset_id, "version": str(m.get("generator_version", "unknown")),
            "manifest_sha256": benchmark.manifest_hash, "profile": str(m.get("profile", "custom"))}


def _write_json_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- training


def trained_with(device: str) -> dict:
    """What, besides config, data and seed, decides the trained weights: device, torch threads and version."""
    return {"device": describe_device(device), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def prepare_model(cls: type, benchmark: Benchmark, split: int, config: dict, device: str, seed: int, key: str):
    """An instance of ``cls`` ready to predict: trained (or loaded from a matching checkpoint) if it trains.

    Returns (model, checkpoint sha256 or None, seconds spent training, ``trained_with`` of the checkpoint
    or None when it does not train or its checkpoint predates the record).
    """
    model = cls()
    if not getattr(cls, "trains", False):
        return model, None, 0.0, None
    ckpt_dir = runs_root() / "checkpoints" / benchmark.dataset_id / f"split{split}" / f"{cls.name}-{key[:16]}"
    final = ckpt_dir / FINAL_CHECKPOINT
    seconds = 0.0
    if final.is_file():
        log.info("%s: reusing the trained checkpoint %s", cls.name, final)
    else:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(seed)
        start = time.perf_counter()
        model.fit(benchmark, split, config, device, seed, ckpt_dir)
        seconds = time.perf_counter() - start
        # A run resumed after an interruption records the threads of the run that finished it.
        _write_json_atomic(ckpt_dir / TRAINED_WITH, trained_with(device))
        tmp = ckpt_dir / f".tmp-{FINAL_CHECKPOINT}-{os.getpid()}"
        model.save(tmp)
        os.replace(tmp, final)
        model = cls()  # predict from what was saved, exactly as a later run that reuses it will
    model.load(final)
    record = ckpt_dir / TRAINED_WITH
    return model, file_sha256(final), seconds, json.loads(record.read_text()) if record.is_file() else None


# ----------------------------------------------------------------------------------------- prediction


def _batches(ids: list[str], lengths: dict[str, int], batch_size: int) -> list[list[str]]:
    """Fixed batching of the test ids: consecutive ids of equal length, at most ``batch_size`` per batch."""
    batches: list[list[str]] = []
    for item_id in ids:
        if batches and len(batches[-1]) < batch_size and lengths[batches[-1][0]] == lengths[item_id]:
            batches[-1].append(item_id)
        else:
            batches.append([item_id])
    return batches


def predict_split(model, benchmark: Benchmark, split: int, out_dir: Path, device: str, seed: int,
                  batch_size: int = 4) -> dict:
    """Write ``out_dir/predictions/<item_id>.wav`` for every test item not already written, and model.json.

    Returns {"predicted": items written now, "skipped": items found done, "rescaled": items scaled
    down to avoid clipping (now), "notes": per-item notes summed over ALL test items}.
    """
    import soundfile as sf

    pred_dir, notes_dir = out_dir / "predictions", out_dir / "notes"
    pred_dir.mkdir(parents=True, exist_ok=True)
    notes_dir.mkdir(parents=True, exist_ok=True)
    for folder in (pred_dir, notes_dir):  # leftovers of a run that was killed while writing
        for stale in folder.glob(".tmp-*"):
            stale.unlink()
    info = model_info(type(model))
    if not (pred_dir / MODEL_JSON).is_file():
        _write_json_atomic(pred_dir / MODEL_JSON, {k: info[k] for k in ("name", "version", "description", "guidance")})

    ids = benchmark.split_ids(split, "test")
    lengths = {i: sf.info(str(benchmark.audio_path(i))).frames for i in ids}
    guidance = set(getattr(model, "guidance", ()))
    frame_source = None
    if "visual" in guidance:
        from tas_eval.data.dataset import TASDataset

        frame_source = TASDataset(benchmark, split, "test")
    if isinstance(model, torch.nn.Module):
        model.to(device).eval()

    batches = _batches(ids, lengths, batch_size)
    done = lambda i: (pred_dir / f"{i}.wav").is_file()  # noqa: E731
    todo = [(k, b) for k, b in enumerate(batches) if not all(done(i) for i in b)]
    predicted = rescaled = 0
    sr = benchmark.sample_rate
    for k, batch in tqdm(todo, desc=f"predicting split {split} ({info['name']})", unit="batch", disable=not todo):
        refs = [benchmark.binaural(i) for i in batch]
        mono = torch.from_numpy(np.stack([r[0:1] + r[1:2] for r in refs])).to(device)
        prompts = [prompt_from_annotation(benchmark.annotation(i)) for i in batch] if "text" in guidance else None
        frames = [frame_source.frame_renderer(i) for i in batch] if frame_source else None
        seed_everything(seed * 1_000_003 + k)
        if hasattr(model, "last_notes"):
            model.last_notes = []
        with torch.inference_mode():
            out = model.spatialize(mono, sr, prompts, frames)
        out = out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32)
        if out.shape != (len(batch), 2, mono.shape[-1]):
            raise UserError(f"The model '{info['name']}' returned shape {tuple(out.shape)} for a batch of mono "
                            f"{tuple(mono.shape)}; the contract is (B, 2, T).")
        notes = list(getattr(model, "last_notes", None) or [{} for _ in batch])
        for j, item_id in enumerate(batch):
            if done(item_id):
                continue
            audio = out[j]
            if not np.all(np.isfinite(audio)):
                raise UserError(f"The model '{info['name']}' produced non-finite samples for item '{item_id}'.")
            peak = float(np.abs(audio).max())
            note = dict(notes[j]) if j < len(notes) else {}
            if peak > 1.0:
                audio = audio * (CLIP_HEADROOM / peak)
                note["rescaled"] = 1
                rescaled += 1
            # notes first, then the WAV: an item whose WAV exists is complete.
            _write_json_atomic(notes_dir / f"{item_id}.json", note)
            write_wav(pred_dir / f"{item_id}.wav", audio, sr)
            predicted += 1
    totals: dict[str, float] = {}
    for item_id in ids:
        path = notes_dir / f"{item_id}.json"
        note = json.loads(path.read_text()) if path.is_file() else {}
        for name, value in note.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                totals[name] = totals.get(name, 0) + value
    return {"predicted": predicted, "skipped": len(ids) - predicted, "rescaled": rescaled, "notes": totals}


# ----------------------------------------------------------------------------------------- evaluation


def _metric_catalog() -> dict:
    from tas_eval.metrics import list_metrics

    return {m.id: m for m in list_metrics()}


def score(preds: list[np.ndarray], refs: list[np.ndarray], sr: int, annotations: list[dict], device: str,
          metric_ids: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-item values {metric id: (N,) array} of aligned lists of (2, T) predictions and references
    (tas_eval.metrics.compute_metrics, peak normalization on, as the reference scripts do)."""
    from tas_eval.metrics import compute_metrics

    values = compute_metrics(preds, refs, sr, metric_ids=metric_ids, normalize=True, annotations=annotations,
                             device=device)
    return {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}


def evaluate_predictions(
    pred_dir: str | os.PathLike,
    benchmark: Benchmark,
    split: int,
    *,
    name: str | None = None,
    results_root: str | os.PathLike = "results",
    device: str = "cpu",
    run_info: dict | None = None,
    metric_ids: list[str] | None = None,
    generative: dict | None = None,
    samples: bool = True,
) -> tuple[dict, Path]:
    """Validate, read, score and record a predictions directory: the one evaluation path.

    ``generative`` holds the options of the set-level metrics (FD, FAD, KL, IS): {"backbone" (default
    "tas_cnn"), "checkpoint", "use_cache", "channel_mode"} (tas_eval.metrics.generative.compute_generative).

    ``name`` defaults to model.json's "name", else the directory's name. ``run_info`` holds what a
    `tas-eval run` knows beyond the predictions (config, checkpoint_sha256, seeds, timings, extra);
    an outside submission records its model.json instead. ``samples`` keeps a few predicted clips
    for listening. Nothing is written unless validation passes. Returns (results dict, results folder).
    """
    start = time.perf_counter()
    pred_dir = Path(pred_dir)
    require_valid(pred_dir, benchmark, split)
    model_json = read_model_json(pred_dir)
    name = name or model_json.get("name") or pred_dir.resolve().name
    if name == GROUND_TRUTH and not (run_info or {}).get("extra", {}).get("ground_truth"):
        raise UserError(f"{pred_dir}: the model name '{GROUND_TRUTH}' is kept for the references' own scores "
                        "(tas-eval evaluate --ground-truth); choose another name.")
    dataset = dataset_record(benchmark)
    folder = results_mod.results_dir(results_root, dataset["id"], split, name)  # refuses unsafe names

    ids = benchmark.split_ids(split, "test")
    preds, refs, annotations = [], [], []
    for item_id in ids:
        preds.append(read_prediction(pred_dir, item_id))
        refs.append(benchmark.binaural(item_id))
        annotations.append(benchmark.annotation(item_id))
    from tas_eval.metrics.generative import compute_generative, split_metric_ids

    item_metric_ids, set_metric_ids = split_metric_ids(metric_ids)
    values = score(preds, refs, benchmark.sample_rate, annotations, device, item_metric_ids)
    gen = dict(generative or {})
    set_values = compute_generative(preds, refs, benchmark.sample_rate, gen.get("backbone") or "tas_cnn",
                                    gen.get("checkpoint"), benchmark, split, gen.get("use_cache", True),
                                    item_ids=ids, metric_ids=set_metric_ids, device=device,
                                    channel_mode=gen.get("channel_mode") or "lr")

    from tas_eval.metrics import summarize

    catalog = _metric_catalog()
    metrics, items = {}, [{"item_id": i} for i in ids]
    unscored = []
    for mid, v in values.items():
        meta = catalog.get(mid)
        summary = summarize(v)
        if summary["n"] == 0:  # no item could be scored (e.g. no annotated frame): no number to record
            unscored.append(mid)
            continue
        metrics[mid] = {**summary, "direction": meta.direction, "version": meta.version, "unit": meta.unit}
        if getattr(meta, "backbone", None):
            metrics[mid]["backbone"] = meta.backbone
        if v.shape == (len(ids),):  # per-item metric (set-level ones have no per-item values)
            for item, x in zip(items, v):
                item[mid] = float(x) if np.isfinite(x) else None
    metrics.update(set_values)  # set-level: one value per split, with their backbone and channel mode

    info = dict(run_info or {})
    extra = dict(info.get("extra", {}))
    extra["metric_options"] = {"peak_normalization": True}
    if unscored:
        extra["metrics_without_values"] = unscored
    if run_info is None:
        extra["submission"] = {k: model_json[k] for k in ("name", "version", "description", "guidance") if k in model_json}
    timings = dict(info.get("timings", {}))
    timings["evaluate"] = time.perf_counter() - start
    results = results_mod.new_results(
        model=name, dataset=dataset, split=split, config=info.get("config", {}),
        checkpoint_sha256=info.get("checkpoint_sha256"), seeds=info.get("seeds", {}),
        device=info.get("device", describe_device(device)), timings=timings, metrics=metrics, extra=extra,
    )
    results_mod.write_results(folder, results, items)
    chosen = results_mod.pick_sample_items(ids, SAMPLE_ITEMS)
    by_id = dict(zip(ids, zip(preds, refs)))
    if samples:  # ``samples`` False: the predictions are the references, already kept below
        results_mod.write_samples(folder, {i: by_id[i][0] for i in chosen}, benchmark.sample_rate)
    results_mod.write_reference_samples(results_root, dataset, split, {i: by_id[i][1] for i in chosen},
                                        benchmark.sample_rate)
    log.info("wrote %s", folder / results_mod.RESULTS_FILE)
    return results, folder


def evaluate_ground_truth(benchmark: Benchmark, split: int, *, results_root: str | os.PathLike = "results",
                          device: str = "cpu", generative: dict | None = None) -> tuple[dict, Path]:
    """Score the test references against themselves through ``evaluate_predictions``: the ground-truth row.

    The distances are 0 by construction; the row is there for the metrics that do not score a
    distance to the reference: direction_acc (what real binaural audio scores against the annotated
    labels; a model can score above it by exaggerating level differences towards the labels, and
    Mono-Mono's all-center output can too on a split with many center labels) and IS. The results
    record extra.ground_truth = true, and the leaderboard shows such a row under each table, unranked.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tas-eval-ground-truth-") as tmp:
        for item_id in benchmark.split_ids(split, "test"):
            write_wav(Path(tmp) / f"{item_id}.wav", benchmark.binaural(item_id), benchmark.sample_rate)
        info = {"config": {}, "seeds": {}, "device": describe_device(device),
                "extra": {"ground_truth": True, "description": "the test references scored against themselves"}}
        return evaluate_predictions(tmp, benchmark, split, name=GROUND_TRUTH, results_root=results_root,
                                    device=device, run_info=info, generative=generative, samples=False)


# ----------------------------------------------------------------------------------------- run


def run_model(
    model_name: str,
    splits: list[int],
    *,
    profile: str = "small",
    data_seed: int = 0,
    data: str | None = None,
    device: str = "auto",
    seed: int = 0,
    train_profile: str | None = None,
    results_root: str | os.PathLike = "results",
    metric_ids: list[str] | None = None,
    generative: dict | None = None,
) -> list[dict]:
    """Train (or reuse), predict, evaluate and record ``model_name`` on each split; returns the results dicts."""
    from tas_eval.data.build import resolve_benchmark

    t0 = time.perf_counter()
    cls = get_model_class(model_name)
    device = resolve_device(device)
    train_profile = train_profile or ("paper" if device.startswith("cuda") else "small")
    config = model_config(cls, train_profile)
    benchmark = resolve_benchmark(profile, data_seed, data, build_if_missing=True)
    data_seconds = time.perf_counter() - t0
    out = []
    for split in splits:
        key = run_key(cls.name, config, benchmark.manifest_hash, split, seed, model_info(cls)["version"])
        model, ckpt_sha, fit_seconds, trained = prepare_model(cls, benchmark, split, config, device, seed, key)
        run_dir = runs_root() / "predictions" / benchmark.dataset_id / f"split{split}" / f"{cls.name}-{key[:16]}"
        start = time.perf_counter()
        pred = predict_split(model, benchmark, split, run_dir, device, seed,
                             batch_size=int(config.get("inference_batch", 4)))
        predict_seconds = time.perf_counter() - start
        run_info = {
            "config": config,
            "checkpoint_sha256": ckpt_sha,
            "seeds": {"train": seed, "inference": seed, "data": int(benchmark.manifest.get("seed", data_seed))},
            "device": describe_device(device),
            "timings": {"resolve_data": data_seconds, "fit": fit_seconds, "predict": predict_seconds},
            "extra": {"config_profile": train_profile, "run_key": key, "model_version": model_info(cls)["version"],
                      "guidance": model_info(cls)["guidance"],
                      "paper": model_info(cls)["paper"], "model_notes": pred["notes"],
                      "items_predicted_in_this_run": pred["predicted"], "torch_threads": torch.get_num_threads(),
                      "trained_with": trained},
        }
        results, folder = evaluate_predictions(run_dir / "predictions", benchmark, split, name=cls.name,
                                               results_root=results_root, device=device, run_info=run_info,
                                               metric_ids=metric_ids, generative=generative)
        out.append(results)
    return out


def summary_table(all_results: list[dict]) -> str:
    """A plain-text table: one row per metric, one column per split, plus the mean over splits."""
    from tas_eval.metrics import mean_over_splits

    if not all_results:
        return ""
    ids = list(all_results[0]["metrics"])
    several = len(all_results) > 1
    header = ["metric", "dir"] + [f"split{r['split']}" for r in all_results] + (["mean over splits"] if several else [])
    rows = [header]
    for mid in ids:
        m0 = all_results[0]["metrics"][mid]
        row = [mid, "↓" if m0["direction"] == "lower" else "↑"]
        for r in all_results:
            m = r["metrics"].get(mid)
            row.append("-" if m is None else (f"{m['value']:.4g} ± {m['stderr']:.2g}" if m.get("stderr") is not None
                                             else f"{m['value']:.4g}"))
        if several:
            means = mean_over_splits([r["metrics"][mid] for r in all_results if mid in r["metrics"]])
            row.append(f"{means['value']:.4g}" if isinstance(means, dict) else f"{float(means):.4g}")
        rows.append(row)
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cli_run(args) -> int:
    """`tas-eval run`."""
    from tas_eval.metrics.generative import describe_backbones, options_from_args

    splits = parse_splits(args.split, args.splits)
    all_results = run_model(args.model, splits, profile=args.profile, data_seed=args.data_seed, data=args.data,
                            device=args.device, seed=args.seed, train_profile=args.train_profile,
                            results_root=args.results, generative=options_from_args(args))
    first = all_results[0]
    print(f"{first['model']} on {first['dataset']['id']} (device {first['device']})")
    print(summary_table(all_results))
    print("\n".join(describe_backbones(first)))
    notes = first["extra"].get("model_notes")
    if notes:
        print("model notes (summed over the test items): " + ", ".join(f"{k}={v:g}" for k, v in sorted(notes.items())))
    for r in all_results:
        print(f"results: {results_mod.results_dir(args.results, r['dataset']['id'], r['split'], r['model'])}")
    return 0


def cli_evaluate(args) -> int:
    """`tas-eval evaluate --predictions DIR --split N`."""
    from tas_eval.data.build import resolve_benchmark
    from tas_eval.metrics.generative import describe_backbones, options_from_args

    benchmark = resolve_benchmark(args.profile, args.data_seed, args.data, build_if_missing=False)
    device = resolve_device(args.device)
    if args.ground_truth:
        if args.predictions or args.name:
            raise UserError("--ground-truth scores the benchmark's own references: give it without --predictions and --name.")
        results, folder = evaluate_ground_truth(benchmark, args.split, results_root=args.results, device=device,
                                                generative=options_from_args(args))
    else:
        if not args.predictions:
            raise UserError("tas-eval evaluate needs --predictions DIR (or --ground-truth).")
        results, folder = evaluate_predictions(args.predictions, benchmark, args.split, name=args.name,
                                               results_root=args.results, device=device,
                                               generative=options_from_args(args))
    print(f"{results['model']} on {results['dataset']['id']} split {args.split}")
    print(summary_table([results]))
    print("\n".join(describe_backbones(results)))
    print(f"results: {folder}")
    return 0
