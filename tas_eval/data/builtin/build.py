"""`tas-eval data build`: the built-in benchmark, made deterministically from a seed.

Each clip is its own scene (its own room, sources and positions), so no scene is ever shared between
the train and test parts of a split. A clip is made in four steps, all seeded by (seed, clip index):
  1. sample the scene (``sample_scene``): 1 to 4 sources, mostly 1 or 2; left/center/right and 3-D
     positions; some moving; silent stretches; a shoebox room with its RT60; the visual case;
  2. synthesize each dry source (``sources.synthesize_source``) and render the binaural mixture through
     the KEMAR HRIRs with the room (``render.render_scene``) at 44.1 kHz, then resample to 16 kHz;
  3. annotate every 0.1 s frame from the scene and the dry signals (``annotate``);
  4. write audio/, scenes/, annotations/ atomically; after all clips, the splits and the manifest.

The manifest lists every file's sha256 and is written last: a folder without one is not a benchmark.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tas_eval.audio import SAMPLE_RATE, resample, write_wav
from tas_eval.data.protocol import NUM_SPLITS, content_digest
from tas_eval.data.qa import QA_VERSION, qa_block
from tas_eval.data.scene import FRAME_RATE, azel_from_vector, direction_vector, position_at, side_label, wrap_azimuth
from tas_eval.errors import UserError
from tas_eval.io import TMP_PREFIX, folder_lock, remove_leftovers, write_bytes_atomic
from tas_eval.parallel import ordered_map, worker_count
from tas_eval.paths import data_root, file_sha256

log = logging.getLogger(__name__)

# Bump on every change that alters the built files: builds of another version are rebuilt.
GENERATOR_VERSION = "1.2.0"
DATASET_NAME = "tasbench-synth"
RENDER_SR = 44100
# FAIR-Play's proportions: 1497 / 187 / 187 of 1871 clips.
FAIRPLAY_COUNTS = (1497, 187, 187)
# A frame counts as "sounding" for a source when its dry level is above this (dBFS; sources are
# normalized to -20 dBFS RMS over their sounding part, so this is 30 dB below a typical note).
SOUNDING_THRESHOLD_DBFS = -50.0
# A source whose azimuth, elevation (degrees) or distance (m) changes by more than this within a frame moves in it.
MOVING_TOLERANCE = 0.01
# Peak level of every written clip: leaves headroom so that mono = L + R stays within [-1, 1].
CLIP_PEAK = 0.45


@dataclass(frozen=True)
class Profile:
    """Size of a build: number of clips and their length in seconds."""

    name: str
    num_clips: int
    duration_s: float


PROFILES = {
    "tiny": Profile("tiny", 24, 4.0),
    "small": Profile("small", 200, 10.0),
    "full": Profile("full", 1871, 10.0),
}


def dataset_id(profile: str, seed: int) -> str:
    """Folder name and id of a build, e.g. ``tasbench-synth-small-s0``."""
    return f"{DATASET_NAME}-{profile}-s{seed}"


# ---------------------------------------------------------------- scene sampling


def _room(rng: np.random.Generator) -> dict:
    # Rooms like FAIR-Play's music room: treated, moderately reverberant (RT60 0.2 to 0.6 s), so that
    # most sources play within a few critical distances and the interaural cues are clear.
    size = [float(rng.uniform(6.0, 14.0)), float(rng.uniform(5.0, 11.0)), float(rng.uniform(3.0, 5.0))]
    listener = [
        float(rng.uniform(0.3, 0.6) * size[0]),
        float(rng.uniform(0.35, 0.65) * size[1]),
        1.5,
    ]
    return {"size_m": size, "listener_m": listener, "rt60_s": float(rng.uniform(0.2, 0.6))}


def _max_distance(room: dict, azimuth: float, elevation: float, margin: float = 0.4) -> float:
    """Largest distance (m) from the listener along a direction that stays ``margin`` inside the walls."""
    d = direction_vector(azimuth, elevation)
    pos = np.asarray(room["listener_m"])
    size = np.asarray(room["size_m"])
    limits = []
    for axis in range(3):
        if abs(d[axis]) < 1e-9:
            continue
        wall = size[axis] - margin if d[axis] > 0 else margin
        limits.append((wall - pos[axis]) / d[axis])
    return float(max(0.5, min(limits)))


def _azimuth_for(label: str, rng: np.random.Generator) -> float:
    """An azimuth (deg) whose side is ``label``; sometimes behind the listener, as heard."""
    if label == "center":
        az = float(rng.uniform(-8.0, 8.0))
        return wrap_azimuth(180.0 - az) if rng.random() < 0.1 else az
    # Mostly inside the camera's 90-degree field of view, as in FAIR-Play's music room; some wider,
    # some behind: the out-of-view cases of the visual baselines.
    az = float(rng.uniform(22.0, 42.0)) if rng.random() < 0.7 else float(rng.uniform(45.0, 85.0))
    if rng.random() < 0.1:
        az = 180.0 - az  # behind, same side
    return az if label == "left" else -az


def _elevation(rng: np.random.Generator) -> float:
    if rng.random() < 0.7:
        return float(rng.uniform(-5.0, 5.0))
    return float(rng.uniform(-35.0, 50.0))


def _active_intervals(duration: float, rng: np.random.Generator) -> list[list[float]]:
    """Seconds in which a source may sound: the whole clip, or the clip with one or two silent gaps."""
    if rng.random() < 0.5:
        return [[0.0, duration]]
    gaps = int(rng.integers(1, 3))
    cuts = []
    for _ in range(gaps):
        length = float(rng.uniform(0.1, 0.3) * duration)
        start = float(rng.uniform(0.0, duration - length))
        cuts.append((start, start + length))
    intervals = [[0.0, duration]]
    for a, b in sorted(cuts):
        new = []
        for s, e in intervals:
            if b <= s or a >= e:
                new.append([s, e])
                continue
            if a > s:
                new.append([s, a])
            if b < e:
                new.append([b, e])
        intervals = new
    intervals = [[round(s, 3), round(e, 3)] for s, e in intervals if e - s >= 0.3]
    return intervals or [[0.0, duration]]


def sample_scene(index: int, seed: int, duration: float, categories: list[str]) -> dict:
    """The scene of clip ``index`` of a build with ``seed`` (pure function of its arguments)."""
    rng = np.random.default_rng([seed, index, 1])
    room = _room(rng)
    n_sources = int(rng.choice([1, 2, 3, 4], p=[0.42, 0.38, 0.13, 0.07]))
    cats = list(rng.choice(categories, size=n_sources, replace=False))
    labels = list(rng.choice(["left", "center", "right"], size=n_sources, replace=n_sources > 3))
    sources = []
    for cat, label in zip(cats, labels):
        az, el = _azimuth_for(label, rng), _elevation(rng)
        # Mostly within a few metres, as players around a listener; some far away (up to 10 m).
        if rng.random() < 0.7:
            dist = float(rng.uniform(1.0, 3.5))
        else:
            dist = float(np.exp(rng.uniform(math.log(3.5), math.log(10.0))))
        points = [(0.0, az, el, dist)]
        if rng.random() < 0.2:  # a moving source: an azimuth trajectory across the clip
            end_label = str(rng.choice([lab for lab in ("left", "center", "right") if lab != label]))
            az_end = _azimuth_for(end_label, rng)
            if abs(az_end) > 90 and abs(az) <= 90:
                az_end = wrap_azimuth(180.0 - az_end)  # keep the path in front when it starts in front
            t_start = float(rng.uniform(0.0, 0.3) * duration)
            t_end = float(rng.uniform(0.7, 1.0) * duration)
            points = [(0.0, az, el, dist), (t_start, az, el, dist), (t_end, az_end, el, dist), (duration, az_end, el, dist)]
        trajectory = []
        for t, a, e, d in points:
            d = min(d, _max_distance(room, a, e))
            trajectory.append({"t": round(t, 3), "azimuth": round(a, 2), "elevation": round(e, 2), "distance": round(d, 2)})
        sources.append(
            {
                "category": str(cat),
                "seed": int(rng.integers(0, 2**31 - 1)),
                "gain_db": round(float(rng.uniform(-6.0, 0.0)), 2),
                "trajectory": trajectory,
                "active": _active_intervals(duration, rng),
                "occluded": False,
            }
        )
    visual = _visual(sources, categories, room, rng)
    return {
        "item_id": f"c{index:05d}",
        "group_id": f"c{index:05d}",
        "duration_s": duration,
        "seed": int(rng.integers(0, 2**31 - 1)),
        "room": room,
        "sources": sources,
        "visual": visual,
    }


def _visual(sources: list[dict], categories: list[str], room: dict, rng: np.random.Generator) -> dict:
    """Extra visual objects that make the TAS paper's failure cases: occluders, silent objects, distractors."""
    objects = []
    used = {s["category"] for s in sources}
    spare = [c for c in categories if c not in used]
    in_view = [s for s in sources if abs(s["trajectory"][0]["azimuth"]) < 40]
    if in_view and rng.random() < 0.12:
        target = in_view[int(rng.integers(len(in_view)))]
        target["occluded"] = True
        p = target["trajectory"][0]
        objects.append({"category": "panel", "role": "occluder", "azimuth": p["azimuth"], "elevation": p["elevation"],
                        "distance": round(max(0.6, p["distance"] * 0.5), 2)})
    if spare and rng.random() < 0.15:
        az = float(rng.uniform(-40, 40))
        objects.append({"category": str(rng.choice(spare)), "role": "silent_object", "azimuth": round(az, 2),
                        "elevation": 0.0, "distance": round(min(float(rng.uniform(1.5, 6)), _max_distance(room, az, 0)), 2)})
    if rng.random() < 0.15:
        az = float(rng.uniform(-40, 40))
        objects.append({"category": str(rng.choice(["person", "chair", "lamp"])), "role": "distractor",
                        "azimuth": round(az, 2), "elevation": 0.0,
                        "distance": round(min(float(rng.uniform(1.5, 6)), _max_distance(room, az, 0)), 2)})
    return {"cases": [], "objects": objects}


# ---------------------------------------------------------------- annotation


def frame_levels_db(dry: np.ndarray, sr: int, num_frames: int) -> np.ndarray:
    """RMS level in dBFS of ``dry`` in each 1/FRAME_RATE s frame (frames past the end are silent)."""
    hop = sr // FRAME_RATE
    padded = np.zeros(num_frames * hop)
    n = min(len(dry), len(padded))
    padded[:n] = dry[:n]
    rms = np.sqrt(np.mean(padded.reshape(num_frames, hop) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def annotate(scene: dict, dry: list[np.ndarray], sr: int, ear_levels: list[np.ndarray] | None = None) -> dict:
    """Per 0.1 s frame: sounding sources with category, position, side label and levels; dense text;
    clip prompts; counterfactual prompts (sides swapped).

    A source sounds in a frame when its dry level there reaches SOUNDING_THRESHOLD_DBFS; it is
    "moving" in a frame when its position changes within it. Its "level_db" is the direct path's level (dry level, gain, 1/r); its "ear_level_db" (with
    ``ear_levels``, one (frames,) array per source from ``received_levels_db``) is what the ears
    receive of it, head and room included, on the written clip's scale (dBFS): the level that
    decides which source dominates a frame."""
    from tas_eval.data import prompts

    duration = scene["duration_s"]
    num_frames = int(round(duration * FRAME_RATE))
    levels = [frame_levels_db(d, sr, num_frames) for d in dry]
    frames = []
    for k in range(num_frames):
        t_center = (k + 0.5) / FRAME_RATE
        sounding = []
        for index, (src, lev) in enumerate(zip(scene["sources"], levels)):
            if lev[k] < SOUNDING_THRESHOLD_DBFS:
                continue
            az, el, dist = position_at(src["trajectory"], t_center)
            # Level at the listener of the direct sound: dry level + gain - spherical spreading re 1 m.
            level = lev[k] + src["gain_db"] - 20 * math.log10(max(dist, 0.1))
            start, end = (position_at(src["trajectory"], t / FRAME_RATE) for t in (k, k + 1))
            entry = {"category": src["category"], "azimuth": round(az, 2), "elevation": round(el, 2),
                     "distance": round(dist, 2), "label": side_label(az, el), "level_db": round(level, 2),
                     "moving": bool(np.max(np.abs(np.subtract(start, end))) > MOVING_TOLERANCE)}
            if ear_levels is not None:
                entry["ear_level_db"] = round(float(ear_levels[index][k]), 2)
            sounding.append(entry)
        text = prompts.dense_text(sounding)
        frames.append({"t0": round(k / FRAME_RATE, 3), "sources": sounding, "text": text,
                       "counterfactual": prompts.counterfactual(text)})

    rng = np.random.default_rng([scene["seed"], 7])
    clip_sources = []
    for src in scene["sources"]:
        traj = src["trajectory"]
        a0, e0, d0 = position_at(traj, 0.0)
        a1, e1, d1 = position_at(traj, duration)
        # Clip-level position: the mean direction over the clip, at the mean distance (the length of the
        # mean position vector would shorten the distance of a source that moves across the front).
        samples = [position_at(traj, t) for t in np.linspace(0, duration, 9)]
        az, el, _ = azel_from_vector(np.mean([direction_vector(a, e) for a, e, _ in samples], axis=0))
        dist = float(np.mean([d for _, _, d in samples]))
        moving = len(traj) > 1 and side_label(a0, e0) != side_label(a1, e1)
        entry = {"category": src["category"], "azimuth": round(az, 2), "elevation": round(el, 2), "distance": round(dist, 2),
                 "label": side_label(az, el), "moving": moving}
        if moving:
            entry.update(start_label=side_label(a0, e0), end_label=side_label(a1, e1))
        clip_sources.append(entry)
    clip = prompts.clip_prompts(clip_sources, rng)
    for p in clip:
        p["counterfactual"] = prompts.counterfactual(p["text"])
    return {
        "item_id": scene["item_id"],
        "frame_rate": FRAME_RATE,
        "frames": frames,
        "clip_sources": clip_sources,
        "clip_prompts": clip,
        "visual_cases": scene["visual"]["cases"],
    }


# ---------------------------------------------------------------- rendering one clip


def received_levels_db(image: np.ndarray, sr: int, num_frames: int) -> np.ndarray:
    """Level in dB (re full scale) of one source's binaural image (2, T) at the ears in each 1/FRAME_RATE s
    frame: 10 log10 of the mean square over both ears (floored at -200 dB for silence)."""
    hop = sr // FRAME_RATE
    padded = np.zeros((2, num_frames * hop))
    n = min(image.shape[1], padded.shape[1])
    padded[:, :n] = image[:, :n]
    power = np.mean(padded.reshape(2, num_frames, hop) ** 2, axis=(0, 2))
    return 10 * np.log10(np.maximum(power, 1e-20))


def render_clip(scene: dict) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Binaural audio of a scene at 16 kHz (2, T) float32, its dry sources at 44.1 kHz, and per source
    the level received at the ears per 0.1 s frame (received_levels_db, on the written clip's scale)."""
    from tas_eval.data.builtin import render, sources
    from tas_eval.data.builtin.hrir import HRIRSet

    duration = scene["duration_s"]
    dry = [
        sources.synthesize_source(s["category"], duration, [tuple(a) for a in s["active"]], s["seed"], RENDER_SR)
        for s in scene["sources"]
    ]
    hrirs = HRIRSet.load()
    images = [render.render_source(scene, i, dry, hrirs, RENDER_SR) for i in range(len(scene["sources"]))]
    audio = resample(np.sum(images, axis=0), RENDER_SR, SAMPLE_RATE)[:, : int(round(duration * SAMPLE_RATE))]
    peak = float(np.max(np.abs(audio)))
    scale = CLIP_PEAK / peak if peak > 0 else 1.0
    num_frames = int(round(duration * FRAME_RATE))
    ear_levels = [received_levels_db(image * scale, RENDER_SR, num_frames) for image in images]
    return (audio * scale).astype(np.float32), dry, ear_levels


def _json_bytes(obj: dict) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def build_item(out: str, index: int, seed: int, duration: float) -> str:
    """Make clip ``index`` (scene, audio, annotation) under ``out``; returns its item id. Skips a clip
    whose three files already exist (every file is written atomically, so existing means complete)."""
    from tas_eval.data.builtin import frames, sources

    root = Path(out)
    scene = sample_scene(index, seed, duration, sources.category_names())
    item = scene["item_id"]
    paths = [root / "audio" / f"{item}.wav", root / "scenes" / f"{item}.json", root / "annotations" / f"{item}.json"]
    if all(p.exists() for p in paths):
        return item
    scene["visual"]["cases"] = frames.failure_cases(scene)
    audio, dry, ear_levels = render_clip(scene)
    annotation = annotate(scene, dry, RENDER_SR, ear_levels)
    write_wav(paths[0], audio, SAMPLE_RATE)
    write_bytes_atomic(paths[1], _json_bytes(scene))
    write_bytes_atomic(paths[2], _json_bytes(annotation))
    return item


def split_counts(num_clips: int) -> tuple[int, int, int]:
    """(train, val, test) counts in FAIR-Play's 1497/187/187 proportions."""
    total = sum(FAIRPLAY_COUNTS)
    test = max(1, round(num_clips * FAIRPLAY_COUNTS[2] / total))
    val = max(1, round(num_clips * FAIRPLAY_COUNTS[1] / total))
    return num_clips - val - test, val, test


def write_splits(root: Path, ids: list[str], seed: int) -> None:
    """Ten random splits of the clip ids; each clip is its own scene, so train and test never share one."""
    n_train, n_val, _ = split_counts(len(ids))
    for k in range(1, NUM_SPLITS + 1):
        order = np.random.default_rng([seed, k, 2]).permutation(len(ids))
        parts = {
            "train": sorted(ids[i] for i in order[:n_train]),
            "val": sorted(ids[i] for i in order[n_train : n_train + n_val]),
            "test": sorted(ids[i] for i in order[n_train + n_val :]),
        }
        folder = root / "splits" / f"split{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for part, part_ids in parts.items():
            write_bytes_atomic(folder / f"{part}.txt", ("\n".join(part_ids) + "\n").encode())


def write_manifest(root: Path, profile: Profile, seed: int) -> dict:
    """Hash every file of the build and write manifest.json (last, atomically)."""
    files = {}
    for folder in ("audio", "scenes", "annotations", "splits"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and not path.name.startswith(TMP_PREFIX):
                files[path.relative_to(root).as_posix()] = file_sha256(path)
    digest = content_digest(files)
    manifest = {
        "dataset_id": dataset_id(profile.name, seed),
        "dataset": DATASET_NAME,
        "generator_version": GENERATOR_VERSION,
        "profile": profile.name,
        "seed": seed,
        "num_clips": profile.num_clips,
        "duration_s": profile.duration_s,
        "sample_rate": SAMPLE_RATE,
        "frame_rate": FRAME_RATE,
        "split_counts": dict(zip(("train", "val", "test"), split_counts(profile.num_clips))),
        "files": files,
        "manifest_sha256": digest,
        "qa": _questions(root),
    }
    write_bytes_atomic(root / "manifest.json", _json_bytes(manifest))
    return manifest


def _questions(root: Path) -> dict:
    """The manifest's spatial questions (tas_eval.data.qa), drawn from the build's scene files."""
    scenes = [json.loads(p.read_text()) for p in sorted((root / "scenes").glob("*.json"))
              if not p.name.startswith(TMP_PREFIX)]
    return qa_block(scenes)


def ensure_questions(root: str | Path) -> None:
    """Add the spatial questions to a finished build whose manifest lacks them (see ``add_questions``)."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    if (manifest.get("qa") or {}).get("version") == QA_VERSION:
        return
    with folder_lock(root):
        manifest = json.loads((root / "manifest.json").read_text())
        if (manifest.get("qa") or {}).get("version") != QA_VERSION:
            add_questions(root, manifest)


def add_questions(root: Path, manifest: dict) -> dict:
    """Write the spatial questions into the manifest of a build made before they existed (or with an older
    question version). The files and their hash are unchanged, so results and checkpoints made on the
    build stay valid; the questions carry their own sha256, which results record."""
    manifest = dict(manifest, qa=_questions(root))
    write_bytes_atomic(root / "manifest.json", _json_bytes(manifest))
    log.info("%s: added %d spatial questions to the manifest", root,
             sum(len(q) for q in manifest["qa"]["items"].values()))
    return manifest


def _check_assets() -> None:
    """Fail early, with the file's name, on a missing SOFA file, soundfont or espeak-ng. Loading them
    in the parent also lets forked workers share the loaded HRIRs and soundfont."""
    from tas_eval.data.builtin import hrir, sources

    hrir.HRIRSet.load()
    sources.check_assets()


def build_benchmark(profile: str = "small", seed: int = 0, out: str | Path | None = None, workers: int | None = None,
                    progress: bool = True) -> Path:
    """Build the benchmark of ``profile`` with ``seed`` into ``out`` (default: data root / dataset id); returns
    its folder (tas_eval.data.builtin.benchmark.Benchmark reads it)."""
    if profile not in PROFILES:
        raise UserError(f"Unknown profile '{profile}': use one of {', '.join(PROFILES)}.")
    prof = PROFILES[profile]
    root = Path(out) if out else data_root() / dataset_id(profile, seed)
    root.mkdir(parents=True, exist_ok=True)
    with folder_lock(root):
        return _build(root, prof, seed, workers, progress)


def _build(root: Path, prof: Profile, seed: int, workers: int | None, progress: bool) -> Path:
    identity = {"generator_version": GENERATOR_VERSION, "profile": prof.name, "seed": seed}
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if all(existing.get(k) == v for k, v in identity.items()):
            log.info("%s is already built (manifest %s)", root, existing["manifest_sha256"][:12])
            if (existing.get("qa") or {}).get("version") != QA_VERSION:
                add_questions(root, existing)
            return root
        manifest_path.unlink()
    _check_assets()
    # An interrupted build of the same generator, profile and seed resumes (every file was written
    # atomically); anything else in the folder is stale and is removed.
    started = root / "build.json"
    if not started.is_file() or json.loads(started.read_text()) != identity:
        for folder in ("audio", "scenes", "annotations", "splits"):
            shutil.rmtree(root / folder, ignore_errors=True)
        write_bytes_atomic(started, _json_bytes(identity))
    for folder in ("audio", "scenes", "annotations", "splits"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for folder in (root, root / "audio", root / "scenes", root / "annotations", root / "splits"):
        remove_leftovers(folder)
    workers = worker_count(workers)
    start = time.perf_counter()
    n = prof.num_clips
    bar = tqdm(total=n, desc=f"building {dataset_id(prof.name, seed)}", unit="clip", disable=not progress)
    ids: list[str] = []
    try:
        for item in ordered_map(functools.partial(build_item, str(root), seed=seed, duration=prof.duration_s),
                                range(n), workers):
            ids.append(item)
            bar.update()
    except BrokenProcessPool as exc:
        raise UserError(f"{root}: a build worker died (killed, or out of memory) while building clip {len(ids)}; "
                        "run the build again to resume it.") from exc
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{root}: building clip {len(ids)} failed ({type(exc).__name__}: {exc}); the clips before "
                        "it are kept, and running the build again resumes there.") from exc
    finally:
        bar.close()
    write_splits(root, ids, seed)
    manifest = write_manifest(root, prof, seed)
    log.info("built %d clips in %.1f s into %s (manifest %s)", len(ids), time.perf_counter() - start, root,
             manifest["manifest_sha256"][:12])
    return root
