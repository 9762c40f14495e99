"""Reading a built benchmark from disk.

Layout of a built benchmark folder (``<data_root>/<dataset_id>/``)::

    manifest.json               generator version, seed, profile, {relative path: sha256}, manifest hash
    audio/<item_id>.wav         binaural ground truth, 2 channels, 16 kHz, float32 WAV
    scenes/<item_id>.json       the scene description the audio and frames are rendered from
    annotations/<item_id>.json  per 0.1 s frame: sounding sources (category, azimuth, elevation,
                                distance, left/center/right label) and TASBench-style dense text;
                                SpatialTAS-style clip prompts; counterfactual (side-swapped) prompts
    splits/split<N>/{train,val,test}.txt   one item id per line, N = 1..10

Angles are degrees; azimuth 0 = straight ahead, +90 = LEFT, -90 = right (counter-clockwise seen from
above, the SOFA convention); elevation +90 = up; distance in metres.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from tas_eval.audio import read_wav
from tas_eval.errors import UserError

PARTS = ("train", "val", "test")
NUM_SPLITS = 10


class Benchmark:
    """A built benchmark on disk (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "manifest.json").is_file():
            raise UserError(f"{self.root}: is not a built benchmark (no manifest.json); build one with `tas-eval data build`.")

    @cached_property
    def manifest(self) -> dict:
        """The parsed manifest.json."""
        try:
            return json.loads((self.root / "manifest.json").read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{self.root / 'manifest.json'}: is not valid JSON ({exc.msg}).") from exc

    @property
    def dataset_id(self) -> str:
        """Dataset id, e.g. ``tasbench-synth-small-s0``."""
        return self.manifest["dataset_id"]

    @property
    def manifest_hash(self) -> str:
        """sha256 over the sorted (path, sha256) list: identifies the exact content of the build."""
        return self.manifest["manifest_sha256"]

    @property
    def sample_rate(self) -> int:
        """Sample rate of the audio files in Hz (16000)."""
        return int(self.manifest["sample_rate"])

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
        return sorted(p.stem for p in (self.root / "audio").glob("*.wav"))

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

    def scene(self, item_id: str) -> dict:
        """The scene description of ``item_id`` (sources, trajectories, room, visual case)."""
        return self._json("scenes", item_id)

    def annotation(self, item_id: str) -> dict:
        """The annotation of ``item_id`` (dense frames, clip prompts, counterfactual prompts)."""
        return self._json("annotations", item_id)

    def _json(self, folder: str, item_id: str) -> dict:
        path = self.root / folder / f"{item_id}.json"
        if not path.is_file():
            raise UserError(f"{path}: missing for item '{item_id}'.")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: is not valid JSON ({exc.msg}).") from exc
