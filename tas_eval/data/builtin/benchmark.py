"""The built-in benchmark on disk, through the dataset protocol (tas_eval.data.protocol).

Layout of a built benchmark folder (``<data_root>/<dataset_id>/``)::

    manifest.json               generator version, seed, profile, {relative path: sha256}, manifest hash
    audio/<item_id>.wav         binaural ground truth, 2 channels, 16 kHz, float32 WAV
    scenes/<item_id>.json       the scene description the audio and frames are rendered from
    annotations/<item_id>.json  per 0.1 s frame: sounding sources (category, azimuth, elevation,
                                distance, left/center/right label) and TASBench-style dense text;
                                SpatialTAS-style clip prompts; counterfactual (side-swapped) prompts
    splits/split<N>/{train,val,test}.txt   one item id per line, N = 1..10

Angles are degrees; azimuth 0 = straight ahead, +90 = LEFT, -90 = right (counter-clockwise seen from
above, the SOFA convention); elevation +90 = up; distance in metres. The content hash is the
manifest's hash; frames are rendered from the scene files, which it covers.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile as sf

from tas_eval.audio import read_wav
from tas_eval.data.builtin.build import build_benchmark, dataset_id, ensure_questions
from tas_eval.data.qa import QA_VERSION
from tas_eval.data.protocol import NUM_SPLITS, PARTS, DataOptions, Dataset
from tas_eval.errors import UserError
from tas_eval.io import is_temporary
from tas_eval.paths import data_root

log = logging.getLogger(__name__)


class Benchmark(Dataset):
    """A built benchmark on disk (see the module docstring for its layout)."""

    name = "builtin"
    description = ("the built-in benchmark, synthesized from measured HRIRs and sampled sources "
                   "(--profile tiny|small|full, --data-seed S, or --data-root DIR of a build)")

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "manifest.json").is_file():
            raise UserError(f"{self.root}: is not a built benchmark (no manifest.json); build one with `tas-eval data build`.")

    @classmethod
    def open(cls, options: DataOptions, build_if_missing: bool = False) -> "Benchmark":
        """``--data-root DIR`` if given, else the build of ``--profile`` and ``--data-seed`` (built when missing if asked)."""
        for flag, value in (("--annotations", options.annotations), ("--prompts", options.prompts)):
            if value:
                raise UserError(f"{flag} {value}: the built-in benchmark carries its own annotations and prompts; "
                                "give it with --dataset fairplay or --dataset spatialtas.")
        return resolve_benchmark(options.profile, options.seed, options.root, build_if_missing=build_if_missing)

    @cached_property
    def manifest(self) -> dict:
        """The parsed manifest.json."""
        try:
            return json.loads((self.root / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.root / 'manifest.json'}: is not valid JSON ({exc.msg}).") from exc

    @property
    def id(self) -> str:
        """Dataset id, e.g. ``tasbench-synth-small-s0``."""
        return self.manifest["dataset_id"]

    @property
    def content_hash(self) -> str:
        """sha256 over the sorted (path, sha256) list of the manifest: the exact content of the build."""
        return self.manifest["manifest_sha256"]

    @property
    def seed(self) -> int | None:
        """The seed the build was made with."""
        seed = self.manifest.get("seed")
        return None if seed is None else int(seed)

    @property
    def sample_rate(self) -> int:
        """Sample rate of the audio files in Hz (16000)."""
        return int(self.manifest["sample_rate"])

    def record(self) -> dict:
        """The dataset block of a results file."""
        m = self.manifest
        return {"id": self.id, "version": str(m.get("generator_version", "unknown")),
                "manifest_sha256": self.content_hash, "profile": str(m.get("profile", "custom"))}

    def split_ids(self, split: int, part: str = "test") -> list[str]:
        """Item ids of ``part`` (train/val/test) of split ``split`` (1..10), in file order."""
        if part not in PARTS:
            raise UserError(f"Unknown split part '{part}': use one of {', '.join(PARTS)}.")
        path = self.root / "splits" / f"split{split}" / f"{part}.txt"
        if not path.is_file():
            raise UserError(f"{path}: split file is missing (splits are numbered 1 to {NUM_SPLITS}).")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    def all_ids(self) -> list[str]:
        """Every item id of the build, sorted."""
        return sorted(p.stem for p in (self.root / "audio").glob("*.wav") if not is_temporary(p.name))

    def audio_path(self, item_id: str) -> Path:
        """Path of the binaural ground-truth WAV of ``item_id``."""
        return self.root / "audio" / f"{item_id}.wav"

    def binaural(self, item_id: str) -> np.ndarray:
        """Ground-truth binaural audio (2, T) float32 at ``sample_rate``."""
        path = self.audio_path(item_id)
        if not path.is_file():
            raise UserError(f"{path}: the audio of item '{item_id}' is missing from the benchmark.")
        audio, sr = read_wav(path)
        if sr != self.sample_rate or audio.shape[0] != 2:
            raise UserError(f"{path}: expected 2 channels at {self.sample_rate} Hz, found {audio.shape[0]} at {sr} Hz.")
        return audio

    def num_samples(self, item_id: str) -> int:
        """Length of the item's audio in samples, from the WAV header."""
        path = self.audio_path(item_id)
        try:
            return int(sf.info(str(path)).frames)
        except (RuntimeError, sf.LibsndfileError, OSError) as exc:
            raise UserError(f"{path}: the audio of item '{item_id}' cannot be read ({exc}).") from exc

    def check_files(self, item_ids: list[str]) -> None:
        """A UserError naming the first file of ``item_ids`` (audio, scene, annotation) or of the split files
        whose sha256 differs from the manifest's; unchanged files cost a stat (tas_eval.data.files)."""
        from tas_eval.data import files

        listed = self.manifest.get("files", {})
        names = [f"{folder}/{i}{ext}" for i in item_ids
                 for folder, ext in (("audio", ".wav"), ("scenes", ".json"), ("annotations", ".json"))]
        names += sorted(n for n in listed if n.startswith("splits/"))
        missing = [n for n in names if n not in listed or not (self.root / n).is_file()]
        if missing:
            raise UserError(f"{self.root / missing[0]}: is missing from the build or from its manifest.json; rebuild it "
                            "with `tas-eval data build`.")
        actual = files.file_hashes([self.root / n for n in names], desc=f"{self.id}: checking files")
        changed = [n for n in names if actual[self.root / n] != listed[n]]
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise UserError(f"{self.root / changed[0]}: differs from the sha256 in manifest.json{more}: the build was "
                            "modified; rebuild it with `tas-eval data build` (into a fresh folder) or restore the file.")

    def item_tags(self, item_id: str) -> dict:
        """The item's visual failure cases (or "none"), its number of sources ("1", "2", "3-4") and whether
        any of them moves ("moving") or not ("static"), from its scene."""
        from tas_eval.data.builtin.render import is_moving

        scene = self.scene(item_id)
        count = len(scene["sources"])
        return {"visual_case": list(scene.get("visual", {}).get("cases") or ["none"]),
                "sources": str(count) if count <= 2 else "3-4",
                "motion": "moving" if any(is_moving(s["trajectory"]) for s in scene["sources"]) else "static"}

    def questions(self) -> dict | None:
        """The spatial questions the manifest holds (tas_eval.data.qa); None for a build made before them that
        could not be given them."""
        return self.manifest.get("qa")

    def dry_sources(self, split: int, part: str, sr: int = 16000) -> list[dict]:
        """The dry sources of the items of ``part`` of ``split``, re-synthesized from their scenes at ``sr`` Hz
        (synthesis is deterministic in the scene): [{"item_id", "category", "dry" (float64, the clip's
        length), "sounding" (bool per 0.1 s frame: the builder's threshold on the dry level)}]."""
        from tqdm import tqdm

        from tas_eval.data.builtin import build, sources
        from tas_eval.data.scene import FRAME_RATE

        pool = []
        for item_id in tqdm(self.split_ids(split, part), desc=f"dry sources of {part}", unit="clip", leave=False):
            scene = self.scene(item_id)
            duration = float(scene["duration_s"])
            frames = int(round(duration * FRAME_RATE))
            for src in scene["sources"]:
                dry = sources.synthesize_source(src["category"], duration, [tuple(a) for a in src["active"]],
                                                src["seed"], sr)
                levels = build.frame_levels_db(dry, sr, frames)
                pool.append({"item_id": item_id, "category": src["category"], "dry": dry,
                             "sounding": levels >= build.SOUNDING_THRESHOLD_DBFS})
        return pool

    def scene(self, item_id: str) -> dict:
        """The scene description of ``item_id`` (sources, trajectories, room, visual case)."""
        return self._json("scenes", item_id)

    def annotation(self, item_id: str) -> dict:
        """The annotation of ``item_id`` (dense frames, clip prompts, counterfactual prompts)."""
        return self._json("annotations", item_id)

    def missing_guidance(self, item_id: str, kind: str) -> str | None:
        """None: every built item has dense text, clip prompts and a scene to render frames from."""
        folder = {"text": "annotations", "visual": "scenes"}[kind]
        path = self.root / folder / f"{item_id}.json"
        return None if path.is_file() else f"{path}: is missing, so item '{item_id}' has no {kind} guidance."

    def frames(self, item_id: str):
        """A function ``(times_s, size=(224, 224)) -> uint8 (N, H, W, 3)`` rendering the item's video frames."""
        from tas_eval.data.builtin.frames import render_frames

        scene = self.scene(item_id)

        def render(times_s, size=(224, 224)) -> np.ndarray:
            return render_frames(scene, np.asarray(times_s, dtype=float), size)

        return render

    def _json(self, folder: str, item_id: str) -> dict:
        path = self.root / folder / f"{item_id}.json"
        if not path.is_file():
            raise UserError(f"{path}: missing for item '{item_id}'.")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: is not valid JSON ({exc.msg}).") from exc


def resolve_benchmark(profile: str = "small", seed: int = 0, data: str | Path | None = None,
                      build_if_missing: bool = True) -> Benchmark:
    """The benchmark a command works on: ``data`` if given, else the built profile/seed (built if missing)."""
    if data:
        return _with_questions(Benchmark(data))
    root = data_root() / dataset_id(profile, seed)
    if (root / "manifest.json").is_file():
        return _with_questions(Benchmark(root))
    if not build_if_missing:
        raise UserError(f"{root}: not built yet; run `tas-eval data build --profile {profile} --seed {seed}`.")
    log.info("building the %s profile (seed %d) into %s", profile, seed, root)
    return Benchmark(build_benchmark(profile, seed))


def _with_questions(benchmark: Benchmark) -> Benchmark:
    """The benchmark, its manifest given the spatial questions if it was built before they existed."""
    if (benchmark.manifest.get("qa") or {}).get("version") != QA_VERSION:
        try:
            ensure_questions(benchmark.root)
        except OSError as exc:  # a read-only copy: the question-answering metrics will say they have no questions
            log.warning("%s: cannot add the spatial questions to the manifest (%s)", benchmark.root, exc)
            return benchmark
        return Benchmark(benchmark.root)
    return benchmark


def crop_sounding(entry: dict, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A ``seconds`` crop of a dry source of ``Benchmark.dry_sources`` (synthesized at ``sr`` Hz), started where
    it sounds in at least half of the crop's 0.1 s frames if it can; zero-padded past the source's end."""
    from tas_eval.data.scene import FRAME_RATE

    frames = len(entry["sounding"])
    span = int(round(seconds * FRAME_RATE))
    starts = [k for k in range(max(1, frames - span + 1))
              if entry["sounding"][k : k + span].mean() >= 0.5] or [0]
    start = int(starts[int(rng.integers(len(starts)))]) * sr // FRAME_RATE
    n = int(round(seconds * sr))
    out = np.zeros(n)
    piece = entry["dry"][start : start + n]
    out[: piece.shape[0]] = piece
    return out
