"""`tas-eval run`: train (or reuse) -> predict -> predictions directory -> the one evaluation path.

A run writes its own predictions directory and then calls tas_eval.evaluation.evaluate_predictions,
exactly as `tas-eval evaluate DIR` does for an outside submission.

Where things go (under tas_eval.paths.runs_root(), keyed by the run key below)::

    runs/checkpoints/<dataset id>/split<N>/<model>-<key16>/   the model's own training checkpoints,
                                       final.pt (the trained state) and final.pt.sha256 (its sha256)
    runs/predictions/<dataset id>/split<N>/<model>-<key16>[-<checkpoint sha16>]/
                                       predictions/<item_id>.wav, model.json; notes/<item_id>.json
                                       (per-item notes of the model, e.g. parser fallbacks)

The run key is the sha256 of (model name and version, config, dataset content hash, split, seed, the
precision when it is not float32, and for a visually guided model the hash of the frames it reads where
the dataset keeps frames as files):
a checkpoint or prediction made with anything else is never reused. A checkpoint is reused only when
its bytes match the sha256 recorded when it was saved, and predictions only with the checkpoint sha
their folder names. Every file is written atomically (tas_eval.io), a checkpoint or predictions
folder is locked against a second process, and an item counts as done only when its WAV exists, so a
run stopped at any point (kill -9) continues where it stopped and never reads a half-written file. Inference is seeded per
batch from (seed, batch index) over a fixed batching of the test ids, so a resumed run produces the
same predictions as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tas_eval.audio import write_wav
from tas_eval.data.protocol import NUM_SPLITS, Dataset
from tas_eval.device import autocast, describe_device, resolve_device, resolve_precision, seed_everything
from tas_eval.errors import UserError
from tas_eval.evaluation import evaluate_predictions
from tas_eval.io import atomic_path, folder_lock, remove_leftovers, write_bytes_atomic, write_json_atomic
from tas_eval.metrics.generative import GenerativeOptions
from tas_eval.models import get_model_class, model_config, model_info, prompt_from_annotation
from tas_eval.paths import file_sha256, runs_root
from tas_eval.validate import COUNTERFACTUAL_DIR, MODEL_JSON

log = logging.getLogger(__name__)

FINAL_CHECKPOINT = "final.pt"
# Beside final.pt: how it was trained. On a CPU the trained weights depend on torch's thread count
# (reduction order), so a result is reproducible only with it; the checkpoint's own bytes stay as they were.
TRAINED_WITH = "trained_with.json"
SHA_SUFFIX = ".sha256"  # final.pt.sha256: the checkpoint's sha256 when it was saved (sha256sum's format)
CLIP_HEADROOM = 0.999  # a prediction whose peak exceeds 1 is scaled to this peak before it is written


# ----------------------------------------------------------------------------------------- small helpers


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


def run_key(model_name: str, config: dict, content_hash: str, split: int, seed: int, model_version: str = "1",
            frames_sha256: str | None = None, precision: str = "fp32") -> str:
    """sha256 identifying a trained model / prediction set: model and its version, config, data, split, seed
    and precision (float32 keys carry no precision field, so they are the keys of runs made before it existed)."""
    identity = {"model": model_name, "version": model_version, "config": config, "dataset": content_hash,
                "split": split, "seed": seed}
    if frames_sha256 is not None:
        identity["frames"] = frames_sha256
    if precision != "fp32":
        identity["precision"] = precision
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def check_guidance(cls: type, dataset: Dataset, splits: list[int]) -> None:
    """A UserError naming the first item (of the test part, and the train part when the model trains)
    without the guidance the model needs, before anything runs."""
    kinds = [k for k in ("text", "visual") if k in set(getattr(cls, "guidance", ()))]
    if not kinds:
        return
    parts = ("train", "test") if getattr(cls, "trains", False) else ("test",)
    for split in splits:
        for part in parts:
            for item_id in dataset.split_ids(split, part):
                for kind in kinds:
                    problem = dataset.missing_guidance(item_id, kind)
                    if problem:
                        raise UserError(f"{problem} The model '{cls.name}' is {kind}-guided, so nothing was run.")


# ----------------------------------------------------------------------------------------- training


def trained_with(device: str, precision: str = "fp32") -> dict:
    """What, besides config, data and seed, decides the trained weights: device, precision, torch threads and
    version."""
    return {"device": describe_device(device), "precision": precision, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _sha_record(final: Path) -> Path:
    return final.with_name(final.name + SHA_SUFFIX)


def _load_checkpoint(cls: type, final: Path):
    """(an instance of ``cls`` loaded from ``final``, its sha256, None), or (None, None, what is wrong with it).

    The file must match the sha256 recorded beside it when it was saved. A checkpoint saved before
    that record existed gets its sha256 recorded now; a damaged one is then found when it fails to load.
    """
    record, actual = _sha_record(final), file_sha256(final)
    if not record.is_file():
        log.info("%s: no sha256 was recorded when it was saved; recording %s now", final, actual)
        write_bytes_atomic(record, f"{actual}  {final.name}\n".encode())
    elif record.read_text(errors="replace").split()[:1] != [actual]:
        return None, None, f"does not match the sha256 recorded in {record.name} when it was saved (its bytes changed)"
    model = cls()
    try:
        model.load(final)
    except Exception as exc:  # torch and pickle raise many types for a damaged file
        first = str(exc).splitlines()[0] if str(exc) else ""
        return None, None, f"cannot be loaded ({type(exc).__name__}: {first})"
    return model, actual, None


def prepare_model(cls: type, dataset: Dataset, split: int, config: dict, device: str, seed: int, key: str,
                  precision: str = "fp32"):
    """An instance of ``cls`` ready to predict: trained (or loaded from a matching checkpoint) if it trains,
    in ``precision`` (tas_eval.device.autocast).

    A checkpoint is reused only when its bytes match the sha256 recorded when it was saved and it
    loads; otherwise it is named, discarded and the model is trained again (resuming from the last
    training state when that one is sound). Returns (model, checkpoint sha256 or None, seconds spent
    training, ``trained_with`` of the checkpoint or None when it does not train or its checkpoint
    predates the record).
    """
    if not getattr(cls, "trains", False):
        return cls(), None, 0.0, None
    ckpt_dir = runs_root() / "checkpoints" / dataset.id / f"split{split}" / f"{cls.name}-{key[:16]}"
    final = ckpt_dir / FINAL_CHECKPOINT
    seconds = 0.0
    with folder_lock(ckpt_dir):
        remove_leftovers(ckpt_dir)
        model = None
        if final.is_file():
            model, sha, problem = _load_checkpoint(cls, final)
            if problem:
                log.warning("%s: %s; it is discarded and the model is trained again", final, problem)
                final.unlink()
            else:
                log.info("%s: reusing the trained checkpoint %s", cls.name, final)
        if model is None:
            model = cls()
            seed_everything(seed)
            start = time.perf_counter()
            with autocast(device, precision):
                model.fit(dataset, split, config, device, seed, ckpt_dir)
            seconds = time.perf_counter() - start
            # A run resumed after an interruption records the threads of the run that finished it.
            write_json_atomic(ckpt_dir / TRAINED_WITH, trained_with(device, precision))
            with atomic_path(final) as tmp:
                model.save(tmp)
                digest = file_sha256(tmp)
            write_bytes_atomic(_sha_record(final), f"{digest}  {final.name}\n".encode())
            # predict from what was saved, exactly as a later run that reuses it will
            model, sha, problem = _load_checkpoint(cls, final)
            if problem:
                raise UserError(f"{final}: the checkpoint just saved {problem}.")
        record = ckpt_dir / TRAINED_WITH
        trained = json.loads(record.read_text()) if record.is_file() else None
        return model, sha, seconds, trained


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


def predict_split(model, dataset: Dataset, split: int, out_dir: Path, device: str, seed: int,
                  batch_size: int = 4, precision: str = "fp32") -> dict:
    """Write ``out_dir/predictions/<item_id>.wav`` for every test item not already written, and model.json.

    The model gets ``to(device)`` first, so that ``spatialize`` runs on the device the results record, in
    ``precision`` (tas_eval.device.autocast).
    Returns {"predicted": items written now, "skipped": items found done, "rescaled": items scaled
    down to avoid clipping (now), "notes": per-item notes summed over ALL test items}.
    """
    with folder_lock(out_dir):
        with autocast(device, precision):
            return _predict(model, dataset, split, out_dir, device, seed, batch_size)


def _spatialize(model, info: dict, mono: torch.Tensor, sr: int, prompts, frames, seed: int) -> tuple[np.ndarray, list]:
    """One seeded batch through the model: (B, 2, T) float32 audio and the model's per-item notes."""
    seed_everything(seed)
    if hasattr(model, "last_notes"):
        model.last_notes = []
    with torch.inference_mode():
        out = model.spatialize(mono, sr, prompts, frames)
    out = out.detach().float().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float32)
    if out.shape != (mono.shape[0], 2, mono.shape[-1]):
        raise UserError(f"The model '{info['name']}' returned shape {tuple(out.shape)} for a batch of mono "
                        f"{tuple(mono.shape)}; the contract is (B, 2, T).")
    return out, list(getattr(model, "last_notes", None) or [{} for _ in range(mono.shape[0])])


def _writable(audio: np.ndarray, info: dict, item_id: str) -> tuple[np.ndarray, bool]:
    """``audio`` scaled below clipping when its peak exceeds 1 (and whether it was); a UserError if not finite."""
    if not np.all(np.isfinite(audio)):
        raise UserError(f"The model '{info['name']}' produced non-finite samples for item '{item_id}'.")
    peak = float(np.abs(audio).max())
    return (audio * (CLIP_HEADROOM / peak), True) if peak > 1.0 else (audio, False)


def _predict(model, dataset: Dataset, split: int, out_dir: Path, device: str, seed: int, batch_size: int) -> dict:
    pred_dir, notes_dir = out_dir / "predictions", out_dir / "notes"
    guidance = set(getattr(model, "guidance", ()))
    # Every item is also predicted under its counterfactual (side-swapped) prompt, with the same seed, so
    # that the prompt is the only difference (the follow metrics). A model without text guidance does
    # not read the prompt: its counterfactual prediction is its prediction, and it follows nothing.
    cf_dir = pred_dir / COUNTERFACTUAL_DIR
    for folder in (pred_dir, notes_dir, cf_dir):
        folder.mkdir(parents=True, exist_ok=True)
        remove_leftovers(folder)  # of a run that was killed while writing
    info = model_info(type(model))
    write_json_atomic(pred_dir / MODEL_JSON, {"name": info["name"], "version": info["version"],
                                              "description": info["description"], "guidance": sorted(guidance)})

    ids = dataset.split_ids(split, "test")
    lengths = {i: dataset.num_samples(i) for i in ids}
    if hasattr(model, "to"):
        model = model.to(device) or model
    if isinstance(model, torch.nn.Module):
        model.eval()

    batches = _batches(ids, lengths, batch_size)
    def done(item_id: str) -> bool:
        return (pred_dir / f"{item_id}.wav").is_file() and (cf_dir / f"{item_id}.wav").is_file()

    todo = [(k, b) for k, b in enumerate(batches) if not all(done(i) for i in b)]
    predicted = rescaled = 0
    sr = dataset.sample_rate
    for k, batch in tqdm(todo, desc=f"predicting split {split} ({info['name']})", unit="batch", disable=not todo):
        mono = torch.from_numpy(np.stack([dataset.mono(i) for i in batch])).to(device)
        frames = [dataset.frames(i) for i in batch] if "visual" in guidance else None
        prompts = [prompt_from_annotation(dataset.annotation(i) or {}) for i in batch] if "text" in guidance else None
        out, notes = _spatialize(model, info, mono, sr, prompts, frames, seed * 1_000_003 + k)
        out_cf = out
        if prompts is not None:
            swapped = [prompt_from_annotation(dataset.annotation(i) or {}, counterfactual=True) for i in batch]
            out_cf, _ = _spatialize(model, info, mono, sr, swapped, frames, seed * 1_000_003 + k)
        for j, item_id in enumerate(batch):
            if done(item_id):
                continue
            audio, scaled = _writable(out[j], info, item_id)
            note = dict(notes[j]) if j < len(notes) else {}
            if scaled:
                note["rescaled"] = 1
                rescaled += 1
            # notes and the counterfactual first, then the WAV: an item whose WAV exists is complete.
            write_json_atomic(notes_dir / f"{item_id}.json", note)
            write_wav(cf_dir / f"{item_id}.wav", _writable(out_cf[j], info, item_id)[0], sr)
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


# ----------------------------------------------------------------------------------------- run


def run_model(
    model_name: str,
    splits: list[int],
    dataset: Dataset,
    *,
    device: str = "auto",
    seed: int = 0,
    train_profile: str | None = None,
    results_root: str | os.PathLike = "results",
    metric_ids: list[str] | None = None,
    generative: GenerativeOptions | None = None,
    localizer: str | None = None,
    assessor=None,
    precision: str = "auto",
) -> list[dict]:
    """Train (or reuse), predict, evaluate and record ``model_name`` on each split of ``dataset``; returns
    the results dicts. A model that needs guidance some item lacks stops before anything runs.
    ``precision`` is the model's (tas_eval.device.resolve_precision); the metrics keep their own."""
    t0 = time.perf_counter()
    cls = get_model_class(model_name)
    device = resolve_device(device)
    train_profile = train_profile or ("paper" if device.startswith("cuda") else "small")
    config = model_config(cls, train_profile)
    precision = resolve_precision(precision, device, bool(getattr(cls, "autocast_ok", False)))
    check_guidance(cls, dataset, splits)
    for split in splits:  # the data each split reads matches the content hash the results will record
        dataset.check_files(sorted(set(dataset.split_ids(split, "test"))
                                   | (set(dataset.split_ids(split, "train")) if getattr(cls, "trains", False) else set())))
    content_hash = dataset.content_hash
    data_seconds = time.perf_counter() - t0
    info = model_info(cls)
    out = []
    for split in splits:
        frames_sha = None
        if "visual" in set(getattr(cls, "guidance", ())):
            parts = ("train", "test") if info["trains"] else ("test",)
            frames_sha = dataset.frames_sha256(sorted({i for p in parts for i in dataset.split_ids(split, p)}))
        key = run_key(cls.name, config, content_hash, split, seed, info["version"], frames_sha, precision)
        model, ckpt_sha, fit_seconds, trained = prepare_model(cls, dataset, split, config, device, seed, key, precision)
        # Predictions belong to the weights that made them: a new checkpoint is a new predictions folder.
        run_name = f"{cls.name}-{key[:16]}" + (f"-{ckpt_sha[:16]}" if ckpt_sha else "")
        run_dir = runs_root() / "predictions" / dataset.id / f"split{split}" / run_name
        start = time.perf_counter()
        pred = predict_split(model, dataset, split, run_dir, device, seed,
                             batch_size=int(config.get("inference_batch", 4)), precision=precision)
        predict_seconds = time.perf_counter() - start
        extra = {"config_profile": train_profile, "precision": precision, "run_key": key,
                 "model_version": info["version"],
                 "guidance": info["guidance"], "paper": info["paper"], "model_notes": pred["notes"],
                 "items_predicted_in_this_run": pred["predicted"], "torch_threads": torch.get_num_threads(),
                 "trained_with": trained}
        if frames_sha is not None:
            extra["frames_sha256"] = frames_sha
        seeds = {"train": seed, "inference": seed}
        if dataset.seed is not None:
            seeds["data"] = dataset.seed
        run_info = {
            "config": config,
            "checkpoint_sha256": ckpt_sha,
            "seeds": seeds,
            "device": describe_device(device),
            "timings": {"resolve_data": data_seconds, "fit": fit_seconds, "predict": predict_seconds},
            "extra": extra,
        }
        results, _ = evaluate_predictions(run_dir / "predictions", dataset, split, name=cls.name,
                                          results_root=results_root, device=device, run_info=run_info,
                                          metric_ids=metric_ids, generative=generative, localizer=localizer,
                                          assessor=assessor)
        out.append(results)
    return out
