"""Training the localizer on renderings of the train part's sources, on two heads.

Examples (``draw_example``, ``render_drawn``): 1 s windows at 16 kHz, each holding one source (probability
1 - P_TWO_SOURCES) or two, drawn from the dry sources of the TRAIN part of a split of the built
benchmark (re-synthesized from their scenes; the test part is never used, the val part only to
measure), each at a random direction (azimuth drawn as the generator draws it for a random label with
probability P_GENERATOR_AZIMUTH, else uniform over the circle; elevation and distance drawn as the
generator draws them), static or moving (probability P_MOVING: an azimuth sweep of SWEEP_DEG degrees
over the window), in a room drawn as the generator draws
its rooms, through the KEMAR HRIRs or the spherical head (tas_eval.data.builtin.spherical_head), with
the generator's renderer. Each example is peak-normalized and then attenuated by a random 0 to 20 dB.
A share P_ONE_CUE of the windows keep only their interaural level differences (``level_only``) and
as many only their interaural time differences (``time_only``): listeners hear a louder ear alone,
or a leading ear alone, on its side, and generators often produce one cue without the other (one
that shapes the mono signal's magnitude per ear gives level differences only), so the localizer
must read each cue alone, not lean on the one that natural renderings make most reliable.

Labels per 0.1 s frame, as the benchmark annotates: a source sounds when its dry level reaches the
builder's threshold; the level each source delivers to the ears decides which one dominates (by at
least DOMINANCE_MARGIN_DB). The azimuth head learns a soft target (a von Mises bump of AZIMUTH_SPREAD_DEG
around each source that sounds within the margin of the loudest, averaged), the other heads the
dominant source's elevation, distance and category on frames with one dominant source.

``train`` writes a checkpoint {"model": state_dict, "config", "training"} and returns the training
record, with the held-out measures per head on renderings of the VAL part's sources: mean azimuth
error (degrees), left/center/right accuracy, distance within 0.5 m, category accuracy.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tas_eval.audio import SAMPLE_RATE, resample
from tas_eval.data.builtin.benchmark import crop_sounding
from tas_eval.data.scene import DOMINANCE_MARGIN_DB, FRAME_RATE, position_at, side_label, wrap_azimuth
from tas_eval.errors import UserError
from tas_eval.metrics.localizer import (
    AZIMUTH_BINS,
    DISTANCE_STEP_M,
    LOCALIZER_ID,
    Localizer,
    azimuth_centres,
    build_network,
    decode_azimuth,
    distance_class,
    elevation_bin,
    elevation_centres,
)
from tas_eval.metrics.localizer.features import binaural_features
from tas_eval.parallel import ordered_map

log = logging.getLogger(__name__)

RENDER_SR = 44100
WINDOW_S = 1.0
LABELS_PER_WINDOW = int(round(WINDOW_S * FRAME_RATE))
P_TWO_SOURCES = 0.4
P_MOVING = 0.25
SWEEP_DEG = (10.0, 60.0)  # azimuth travelled by a moving source over a window
P_GENERATOR_AZIMUTH = 0.6  # share of directions drawn as the generator draws them; the others uniform on the circle
AZIMUTH_SPREAD_DEG = 10.0
GAIN_RANGE_DB = (-20.0, 0.0)
HEADS = ("kemar", "spherical")
P_ONE_CUE = 0.1  # each of level only and time only
ONE_CUE_FFT = 512  # samples at 16 kHz: 32 ms frames, a quarter hop

# Sizes per profile: "tiny" for the tests, "small" for two CPU cores, "paper" for a GPU.
PROFILES = {
    "tiny": {"examples": 24, "val_examples": 12, "steps": 15, "batch": 8, "lr": 3e-3, "widths": [4, 8, 8], "hidden": 32},
    "small": {"examples": 8000, "val_examples": 400, "steps": 6000, "batch": 32, "lr": 2e-3, "widths": [12, 24, 48],
              "hidden": 96},
    "paper": {"examples": 20000, "val_examples": 1000, "steps": 12000, "batch": 64, "lr": 1e-3,
              "widths": [32, 64, 128], "hidden": 256},
}


@functools.lru_cache(maxsize=1)
def heads_by_name() -> dict:
    """The HRIR sets the localizer learns on, by name (made once per process; forked workers share them)."""
    from tas_eval.data.builtin.hrir import HRIRSet
    from tas_eval.data.builtin.spherical_head import spherical_head_set

    kemar = HRIRSet.load()
    return {"kemar": kemar, "spherical": spherical_head_set(kemar)}


def source_pool(benchmark, split: int, part: str) -> list[dict]:
    """The dry sources of ``part`` of ``split`` at 44.1 kHz (``Benchmark.dry_sources``); UserError if none."""
    pool = benchmark.dry_sources(split, part, RENDER_SR)
    if not pool:
        raise UserError(f"{benchmark.root}: part '{part}' of split {split} holds no sources to train on.")
    return pool


def random_position(room: dict, rng: np.random.Generator) -> tuple[float, float, float]:
    """(azimuth, elevation, distance) of a training source: the azimuth drawn as the generator draws it for a
    random label with probability P_GENERATOR_AZIMUTH, else uniform; elevation as the generator; distance
    mostly 1 to 3.5 m, else log-uniform to 10 m, kept inside the room."""
    from tas_eval.data.builtin import build

    if rng.random() < P_GENERATOR_AZIMUTH:
        az = build._azimuth_for(str(rng.choice(["left", "center", "right"])), rng)
    else:
        az = float(rng.uniform(-180.0, 180.0))
    el = build._elevation(rng)
    dist = float(rng.uniform(1.0, 3.5)) if rng.random() < 0.7 else float(np.exp(rng.uniform(math.log(3.5), math.log(10.0))))
    return az, el, min(dist, build._max_distance(room, az, el))


def draw_example(pool: list[dict], rng: np.random.Generator, head: str) -> dict:
    """The random choices of one training example, drawn from ``rng`` in a fixed order: {"scene", "crops",
    "head", "gain_db"} (gain_db None when every crop is silent), all that ``render_drawn`` needs."""
    from tas_eval.data.builtin import build

    room = build._room(rng)
    picks = rng.choice(len(pool), size=1 if rng.random() >= P_TWO_SOURCES else 2, replace=False)
    srcs, crops = [], []
    for k in picks:
        az, el, dist = random_position(room, rng)
        trajectory = [{"t": 0.0, "azimuth": az, "elevation": el, "distance": dist}]
        if rng.random() < P_MOVING:
            end = wrap_azimuth(az + float(rng.choice([-1.0, 1.0]) * rng.uniform(*SWEEP_DEG)))
            trajectory.append({"t": WINDOW_S, "azimuth": end, "elevation": el, "distance": dist})
        srcs.append({"category": pool[int(k)]["category"], "gain_db": float(rng.uniform(-6.0, 0.0)),
                     "trajectory": trajectory, "active": [[0.0, WINDOW_S]]})
        crops.append(crop_sounding(pool[int(k)], rng, WINDOW_S, RENDER_SR))
    scene = {"duration_s": WINDOW_S, "seed": int(rng.integers(2**31 - 1)), "room": room, "sources": srcs}
    # A silent window is left at its level, and draws no gain.
    gain_db = float(rng.uniform(*GAIN_RANGE_DB)) if any(np.any(c) for c in crops) else None
    return {"scene": scene, "crops": crops, "head": head, "gain_db": gain_db}


def render_mix(scene: dict, crops: list[np.ndarray], head: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Each source of ``scene`` (its dry ``crops`` at RENDER_SR Hz) rendered in its room through ``head``
    with the generator's renderer, (2, T) at RENDER_SR Hz each, and their sum at 16 kHz, cut to the
    scene's duration."""
    from tas_eval.data.builtin import render

    hrirs = heads_by_name()[head]
    images = [render.render_source(scene, i, crops, hrirs, RENDER_SR) for i in range(len(crops))]
    mix = resample(np.sum(images, axis=0), RENDER_SR, SAMPLE_RATE)[:, : int(round(scene["duration_s"] * SAMPLE_RATE))]
    return images, mix


def render_drawn(example: dict) -> tuple[np.ndarray, dict]:
    """A drawn example (``draw_example``) rendered: (2, 16000) float32 audio, peak-normalized and then
    attenuated by its gain, and its per-frame labels (``frame_labels``), with the room's RT60 (s) and
    volume (m^3), which no head learns. It draws nothing, so it may run in any process."""
    from tas_eval.data.builtin import build

    scene, crops = example["scene"], example["crops"]
    images, mix = render_mix(scene, crops, example["head"])
    peak = float(np.max(np.abs(mix)))
    gain_db = example["gain_db"]
    scale = 10 ** (gain_db / 20) / peak if gain_db is not None and peak > 0 else 1.0
    n = LABELS_PER_WINDOW
    sounding = np.stack([build.frame_levels_db(c, RENDER_SR, n) >= build.SOUNDING_THRESHOLD_DBFS for c in crops])
    ears = np.stack([build.received_levels_db(img * scale, RENDER_SR, n) for img in images])
    labels = frame_labels(scene["sources"], sounding, ears)
    labels.update({"rt60_s": scene["room"]["rt60_s"], "room_volume_m3": float(np.prod(scene["room"]["size_m"]))})
    return (mix * scale).astype(np.float32), labels


def _stft(audio: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(ONE_CUE_FFT)
    return torch.stft(x, ONE_CUE_FFT, ONE_CUE_FFT // 4, window=window, return_complex=True), window


def _istft(spec: torch.Tensor, window: torch.Tensor, length: int) -> np.ndarray:
    return torch.istft(spec, ONE_CUE_FFT, ONE_CUE_FFT // 4, window=window, length=length).numpy().astype(np.float32)


def _unit(z: torch.Tensor) -> torch.Tensor:
    """The phase of complex ``z`` as a unit phasor (1 where z is 0)."""
    mag = z.abs()
    return torch.where(mag > 0, z / mag.clamp_min(1e-12), torch.ones_like(z))


def level_only(audio: np.ndarray) -> np.ndarray:
    """(2, T) binaural audio with each ear's short-time magnitude kept and both ears given the phase of
    L + R: the interaural level differences stay, the interaural time and phase differences go."""
    spec, window = _stft(audio)
    return _istft(spec.abs() * _unit(spec.sum(0, keepdim=True)), window, audio.shape[-1])


def time_only(audio: np.ndarray) -> np.ndarray:
    """(2, T) binaural audio with each ear's short-time phase kept and both ears given the RMS magnitude
    of the two: the interaural time and phase differences stay, the level differences go."""
    spec, window = _stft(audio)
    mag = spec.abs().pow(2).mean(0, keepdim=True).sqrt()
    return _istft(mag * _unit(spec), window, audio.shape[-1])


ONE_CUE = {"level": level_only, "time": time_only}


def frame_labels(srcs: list[dict], sounding: np.ndarray, ears: np.ndarray) -> dict:
    """Per 0.1 s frame labels of a window from its sources, their sounding flags and ear levels (sources, frames)."""
    n = sounding.shape[1]
    centres = np.radians(azimuth_centres())
    kappa = 1.0 / math.radians(AZIMUTH_SPREAD_DEG) ** 2
    out = {"azimuth_target": np.zeros((n, AZIMUTH_BINS), np.float32), "azimuth_mask": np.zeros(n, bool),
           "single": np.zeros(n, bool), "elevation": np.zeros(n, np.int64), "distance": np.zeros(n, np.int64),
           "category": np.array([None] * n, dtype=object), "side": np.array(["none"] * n, dtype=object),
           "azimuth_value": np.full(n, np.nan), "distance_value": np.full(n, np.nan)}
    for k in range(n):
        live = [i for i in range(len(srcs)) if sounding[i, k]]
        if not live:
            continue
        top = max(ears[i, k] for i in live)
        near = [i for i in live if ears[i, k] >= top - DOMINANCE_MARGIN_DB]
        positions = {i: position_at(srcs[i]["trajectory"], (k + 0.5) / FRAME_RATE) for i in near}
        for i in near:
            bump = np.exp(kappa * (np.cos(centres - math.radians(positions[i][0])) - 1.0))
            out["azimuth_target"][k] += bump / bump.sum() / len(near)
        out["azimuth_mask"][k] = True
        if len(near) == 1:
            (i,) = near
            az, el, dist = positions[i]
            out["single"][k] = True
            out["elevation"][k] = int(elevation_bin(el))
            out["distance"][k] = int(distance_class(dist))
            out["category"][k] = srcs[i]["category"]
            out["side"][k] = side_label(az, el)
            out["azimuth_value"][k] = az
            out["distance_value"][k] = dist
    return out


def make_set(pool: list[dict], count: int, seed: int, categories: list[str], desc: str, workers: int = 1) -> dict:
    """``count`` examples, alternating the two heads, as feature tensors and stacked labels (plus the head
    of each and its cues: "all", or "level" or "time" for the shares P_ONE_CUE kept to one cue). Every
    random choice is drawn here, in order; ``workers`` processes only render, so the set is the same for
    any number of them."""
    heads_by_name()  # made before the workers fork, which then share it
    rng = np.random.default_rng(seed)
    cues: list[str] = []

    def drawn():
        for i in range(count):
            example = draw_example(pool, rng, HEADS[i % len(HEADS)])
            draw = rng.random()
            cues.append("level" if draw < P_ONE_CUE else "time" if draw < 2 * P_ONE_CUE else "all")
            yield example

    feats, labels = [], []
    rendered = ordered_map(render_drawn, drawn(), workers)
    for i, (audio, lab) in enumerate(tqdm(rendered, total=count, desc=desc, unit="window", leave=False)):
        lab["cues"] = cues[i]
        if lab["cues"] in ONE_CUE:
            audio = ONE_CUE[lab["cues"]](audio)
        lab["category"] = np.array([categories.index(c) if c is not None else 0 for c in lab["category"]], np.int64)
        lab["head"] = HEADS[i % len(HEADS)]
        feats.append(binaural_features(torch.from_numpy(audio)[None])[0])
        labels.append(lab)
    stacked = {k: np.stack([lab[k] for lab in labels]) for k in labels[0] if k not in ("head", "cues")}
    stacked["head"] = np.array([lab["head"] for lab in labels])
    stacked["cues"] = np.array([lab["cues"] for lab in labels])
    return {"features": torch.stack(feats), **stacked}


def _loss(logits: dict, batch: dict) -> torch.Tensor:
    mask = batch["azimuth_mask"]
    single = batch["single"]
    log_p = torch.log_softmax(logits["azimuth"], dim=-1)
    loss = -(batch["azimuth_target"] * log_p).sum(-1)[mask].mean() if mask.any() else logits["azimuth"].sum() * 0
    if single.any():
        for name in ("elevation", "distance", "category"):
            loss = loss + F.cross_entropy(logits[name][single], batch[name][single])
    return loss


def _batch(data: dict, idx: np.ndarray, rng: np.random.Generator | None, device) -> dict:
    feats = data["features"][idx].clone()
    if rng is not None:  # another level: log mel power moves by the gain, the IPD does not
        gain = torch.from_numpy(rng.uniform(*GAIN_RANGE_DB, size=(len(idx), 1, 1, 1)).astype(np.float32))
        feats[:, :2] += gain * math.log(10) / 10
    out = {"features": feats.to(device)}
    for k in ("azimuth_target", "azimuth_mask", "single", "elevation", "distance", "category"):
        out[k] = torch.as_tensor(data[k][idx]).to(device)
    return out


def held_out_measures(localizer: Localizer, data: dict) -> dict:
    """Per head (its windows with all cues), and over the windows of both heads kept to level differences
    ("level_only") or to time differences ("time_only"): mean azimuth error (degrees, wrapped), left/center/right accuracy, distance within
    0.5 m and category accuracy over the frames with one dominant source of a ``make_set`` set."""
    out = {}
    with torch.inference_mode():
        logits = localizer.network(data["features"].to(localizer.device))
    p_az = torch.softmax(logits["azimuth"].double().cpu(), -1)
    az = decode_azimuth(p_az).numpy()
    el = elevation_centres()[logits["elevation"].argmax(-1).cpu().numpy()]
    dist = (torch.softmax(logits["distance"].double().cpu(), -1) * torch.arange(logits["distance"].shape[-1]) * DISTANCE_STEP_M).sum(-1).numpy()
    cat = logits["category"].argmax(-1).cpu().numpy()
    groups = {head: (data["head"] == head) & (data["cues"] == "all") for head in HEADS}
    groups["level_only"] = data["cues"] == "level"
    groups["time_only"] = data["cues"] == "time"
    for head, rows in groups.items():
        single = data["single"][rows]
        if not single.any():
            continue
        true_az = data["azimuth_value"][rows][single]
        err = np.abs((az[rows][single] - true_az + 180.0) % 360.0 - 180.0)
        sides = np.array([side_label(a, e) for a, e in zip(az[rows][single], el[rows][single])])
        out[head] = {"frames": int(single.sum()), "azimuth_error_deg": float(err.mean()),
                     "side_accuracy": float(np.mean(sides == data["side"][rows][single])),
                     "distance_within_0.5m": float(np.mean(np.abs(dist[rows][single] - data["distance_value"][rows][single]) <= 0.5)),
                     "category_accuracy": float(np.mean(cat[rows][single] == data["category"][rows][single]))}
    return out


def train(benchmark, out: str | os.PathLike, profile: str = "small", device: str = "cpu", seed: int = 0,
          split: int = 1, workers: int = 1) -> dict:
    """Train the localizer at ``profile`` on the train part of ``split`` of a built benchmark, rendering its
    windows in ``workers`` processes (the same windows for any number); write the checkpoint to ``out``;
    return the training record (also stored in the checkpoint)."""
    from tas_eval.data.builtin.sources import category_names

    if profile not in PROFILES:
        raise UserError(f"Unknown localizer profile '{profile}': use one of {', '.join(PROFILES)}.")
    p = PROFILES[profile]
    start = time.perf_counter()
    torch.manual_seed(seed)
    categories = category_names()
    config = {"id": LOCALIZER_ID, "categories": categories, "widths": list(p["widths"]), "hidden": p["hidden"]}
    train_set = make_set(source_pool(benchmark, split, "train"), p["examples"], seed, categories,
                         "localizer: train windows", workers)
    val_set = make_set(source_pool(benchmark, split, "val"), p["val_examples"], seed + 1, categories,
                       "localizer: val windows", workers)
    data_seconds = time.perf_counter() - start
    network = build_network(config).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=p["lr"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=p["lr"], total_steps=p["steps"])
    rng = np.random.default_rng(seed + 2)
    losses = []
    network.train()
    for step in tqdm(range(p["steps"]), desc="localizer: training", unit="step", leave=False):
        batch = _batch(train_set, rng.integers(0, p["examples"], p["batch"]), rng, device)
        loss = _loss(network(batch["features"]), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    network.eval()
    window = max(1, min(50, p["steps"] // 5))  # steps averaged at the start and at the end
    localizer = Localizer(network, config, "", "", device)
    record = {
        "profile": profile, "seed": seed, "split": split, "dataset_id": benchmark.id,
        "manifest_sha256": benchmark.content_hash, "train_windows": p["examples"], "val_windows": p["val_examples"],
        "steps": p["steps"], "batch": p["batch"], "heads": list(HEADS),
        "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
        "loss_window_steps": window,
        "held_out": held_out_measures(localizer, val_set), "device": device, "torch_threads": torch.get_num_threads(),
        "render_workers": workers, "seconds_rendering": round(data_seconds, 1), "seconds": round(time.perf_counter() - start, 1),
    }
    ckpt = {"model": {k: v.detach().cpu() for k, v in network.state_dict().items()}, "config": config, "training": record}
    from tas_eval.metrics.backbones import write_checkpoint

    record.update(write_checkpoint(ckpt, out))
    return record
