"""The dataset protocol: everything the runner, the training code, validation, the metrics, the
ground-truth rows and the leaderboard know about a dataset.

A dataset is the built-in benchmark, an adapter for a real dataset in its published layout
(FAIR-Play, SpatialTAS), or a user's class registered through the ``tas_eval.datasets`` entry-point
group (tas_eval.data.registry). It is opened from ``DataOptions`` and gives:

    id                    str, names its results folder, e.g. "tasbench-synth-small-s0", "fairplay"
    content_hash          sha256 over (path, sha256) of every file it reads: the identity of its content
    record()              the dataset block of a results file: {"id", "version", "manifest_sha256"
                          (= content_hash), "profile"}, plus what else describes the content
    split_ids(split, part)        item ids of "train" / "val" / "test" of a split (1..10)
    binaural(item_id)     (2, T) float32 at 16 kHz, left ear first
    mono(item_id)         (1, T) = L + R (tas_eval.audio.mono_from_binaural)
    num_samples(item_id)  T, the length of binaural(item_id)
    annotation(item_id)   dict or None: {"frame_rate": 10, "frames": [{"t0", "sources": [{"category",
                          "label", ...}], "text"}], "clip_prompts": [{"type", "text", ...}], ...};
                          "frames" (TASBench-style: the SOUNDING sources per 0.1 s frame, with a
                          left/center/right label at least) and "clip_prompts" (SpatialTAS-style)
                          each optional
    missing_guidance(item_id, kind)   None when the item has "text" / "visual" guidance, else one
                          sentence naming the item and the file that would hold it
    frames(item_id)       a callable ``(times_s, size=(224, 224)) -> uint8 (N, H, W, 3)``: the video
                          frames at those times (seconds), rendered or read on demand
    frames_sha256(ids)    sha256 over the frame files of ``ids``, or None when the frames are made
                          from files content_hash already covers
    seed                  the seed a synthesized dataset was made with (None for recorded data)
    item_tags(item_id)    the subsets an item belongs to, {family: subset or list of subsets}: families
                          "visual_case" (none, out_of_view, occluded, silent_object, distractor),
                          "sources" ("1", "2", "3-4") and "motion" (static, moving); {} when unknown
    dry_sources(split, part, sr)   the isolated dry sources of the items of a part, for models that train
                          on solo sources (Sep-Stereo, PseudoBinaural): [{"item_id", "category", "dry"
                          (float64 mono at sr Hz), "sounding" (bool per 0.1 s frame)}]; None for a
                          dataset that has only mixtures (recordings)
    check_files(ids)      a UserError naming the first file of those items (and the split files) that
                          differs from what the content hash was made of; called before any number
                          is computed from them

Angles are degrees with azimuth +90 = LEFT; labels are "left", "center", "right"; dense frames are
0.1 s long (tas_eval.data.scene).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tas_eval.audio import SAMPLE_RATE, mono_from_binaural

PARTS = ("train", "val", "test")
NUM_SPLITS = 10
GUIDANCE_KINDS = ("text", "visual")


@dataclass(frozen=True)
class DataOptions:
    """What the command line says about the data: ``--data-root``, ``--annotations``, ``--prompts``,
    and the built-in benchmark's ``--profile`` and ``--data-seed``. A dataset refuses options it does
    not read (one sentence naming the option)."""

    root: str | None = None
    annotations: str | None = None
    prompts: str | None = None
    profile: str = "small"
    seed: int = 0


def content_digest(files: dict[str, str]) -> str:
    """sha256 over the sorted lines ``<name>\\t<sha256>\\n`` of a {name: file sha256} mapping (the manifest hash)."""
    return hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()


class Dataset:
    """Base class of the protocol (see the module docstring); subclasses implement the methods that raise."""

    name: str = ""  # registry name, e.g. "fairplay"
    description: str = ""
    sample_rate: int = SAMPLE_RATE
    seed: int | None = None

    @classmethod
    def open(cls, options: DataOptions, build_if_missing: bool = False) -> "Dataset":
        """The dataset that ``options`` describe; a UserError naming the file or option that is wrong."""
        raise NotImplementedError

    @property
    def id(self) -> str:
        raise NotImplementedError

    @property
    def content_hash(self) -> str:
        raise NotImplementedError

    def record(self) -> dict:
        raise NotImplementedError

    def split_ids(self, split: int, part: str = "test") -> list[str]:
        raise NotImplementedError

    def binaural(self, item_id: str) -> np.ndarray:
        raise NotImplementedError

    def annotation(self, item_id: str) -> dict | None:
        raise NotImplementedError

    def frames(self, item_id: str) -> Callable[..., np.ndarray]:
        raise NotImplementedError

    def missing_guidance(self, item_id: str, kind: str) -> str | None:
        raise NotImplementedError

    def mono(self, item_id: str) -> np.ndarray:
        """(1, T) float32 mono input of an item: L + R of its binaural audio."""
        return mono_from_binaural(self.binaural(item_id))

    def num_samples(self, item_id: str) -> int:
        """Length of the item's binaural audio at 16 kHz, in samples."""
        return int(self.binaural(item_id).shape[1])

    def item_tags(self, item_id: str) -> dict:
        """{} : a dataset that does not know its items' scenes has no subsets."""
        return {}

    def questions(self) -> dict | None:
        """The spatial questions of the dataset's items (tas_eval.data.qa.qa_block: {"version", "seed", "sha256",
        "items": {item id: questions}}); None for a dataset whose scene geometry is not known."""
        return None

    def dry_sources(self, split: int, part: str, sr: int = SAMPLE_RATE) -> list[dict] | None:
        """None: a recorded dataset holds mixtures only, no isolated sources."""
        return None

    def check_files(self, item_ids: list[str]) -> None:
        """Nothing to check for a dataset whose content hash is made from its files as they are when opened."""

    def frames_sha256(self, item_ids: list[str]) -> str | None:
        """sha256 over the frame files of ``item_ids``; None when frames are rendered from hashed files."""
        return None


def has_text(annotation: dict | None) -> bool:
    """Whether an annotation holds any text guidance: a dense frame text or a clip prompt."""
    if not annotation:
        return False
    if any(str(f.get("text") or "").strip() for f in annotation.get("frames") or []):
        return True
    return any(str(p.get("text") or "").strip() for p in annotation.get("clip_prompts") or [])
