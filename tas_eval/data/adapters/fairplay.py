"""FAIR-Play (Gao and Grauman, 2019) in its published layout, through the dataset protocol.

Expected layout of ``--data-root``::

    binaural_audios/000001.wav ...        binaural recordings (2 channels, any sample rate)
    splits/split1 .. split10/{train,val,test}.h5
                                          each with a dataset ``audio``: one wav path per clip, as byte
                                          strings written on the authors' machine (absolute paths that do
                                          not exist here); they are resolved by basename against
                                          binaural_audios/
    frames/000001/000001.png ...          frames extracted at 10 fps, 000001.png first (the authors'
                                          scripts name the folder ``000001.mp4/``; both names are
                                          accepted); only visually guided models read them

Text guidance comes from two optional files: ``--annotations`` (TASBench-style dense annotations,
tas_eval.data.adapters.tasbench) and ``--prompts`` (SpatialTAS-style clip prompts with ``id``,
``prompt`` and ``type``; ``audio`` is not needed, the id names the clip). Both are checked when the
dataset is opened: every id they name must be a clip of binaural_audios/.

Item ids are the wav basenames without extension ("000001"). Every wav that a split names is checked
from its header when the dataset is opened (readable, 2 channels); audio at another rate than 16 kHz
is resampled once and cached (tas_eval.data.files). The content hash covers the split files, those
wavs and the two text files.
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from tas_eval.audio import SAMPLE_RATE
from tas_eval.data import files
from tas_eval.data.adapters.spatialtas import load_spatialtas
from tas_eval.data.adapters.tasbench import load_tasbench
from tas_eval.data.protocol import NUM_SPLITS, PARTS, DataOptions, Dataset, content_digest
from tas_eval.errors import UserError
from tas_eval.io import is_temporary

log = logging.getLogger(__name__)

ADAPTER_VERSION = "1"
FRAME_RATE_HZ = 10  # FAIR-Play's frames are extracted at 10 per second
DATASET_ID = "fairplay"


def _basename(stored: bytes | str) -> str:
    """Last component of a stored path, whichever machine (/ or \\ separators) wrote it."""
    text = stored.decode("utf-8") if isinstance(stored, bytes) else str(stored)
    return re.split(r"[\\/]", text.strip())[-1]


def read_split_file(path: Path, audio_dir: Path) -> list[str]:
    """Clip ids of one FAIR-Play h5 split file, in its order; UserError naming the file if it is wrong."""
    try:
        with h5py.File(path, "r") as h5:
            if "audio" not in h5:
                raise UserError(f"{path}: has no dataset named 'audio' (found: {', '.join(h5.keys()) or 'nothing'}).")
            stored = list(np.asarray(h5["audio"][()]).reshape(-1))
    except OSError as exc:
        raise UserError(f"{path}: cannot be read as an HDF5 file ({exc}).") from exc
    ids = []
    for entry in stored:
        name = _basename(entry)
        if not (audio_dir / name).is_file():
            raise UserError(f"{path}: names clip {name}, which is not in binaural_audios/.")
        ids.append(Path(name).stem)
    return ids


class FairPlay(Dataset):
    """A FAIR-Play copy on disk (see the module docstring for its layout)."""

    name = "fairplay"
    description = ("FAIR-Play in its published layout (--data-root DIR), with optional TASBench-style "
                   "--annotations and SpatialTAS-style --prompts")

    def __init__(self, root: str | Path, annotations: str | Path | None = None, prompts: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: FAIR-Play folder does not exist.")
        self.audio_dir = self.root / "binaural_audios"
        if not self.audio_dir.is_dir():
            raise UserError(f"{self.audio_dir}: folder is missing; a FAIR-Play copy keeps its wavs in binaural_audios/.")
        self.splits_dir = self.root / "splits"
        if not self.splits_dir.is_dir():
            raise UserError(f"{self.splits_dir}: folder is missing; a FAIR-Play copy keeps its split files in "
                            "splits/split1..10/{train,val,test}.h5.")
        self.frames_dir = self.root / "frames"
        self.annotations_path = Path(annotations) if annotations else None
        self.prompts_path = Path(prompts) if prompts else None
        self._splits = self._read_splits()
        self._headers = {i: files.binaural_header(self.audio_path(i)) for i in sorted(self._named_ids())}
        self._dense = load_tasbench(self.annotations_path) if self.annotations_path else {}
        self._clip_prompts: dict[str, list[dict]] = {}
        if self.prompts_path:
            for item in load_spatialtas(self.prompts_path, require_audio=False):
                self._clip_prompts[item["id"]] = [{"type": item["type"], "text": item["prompt"]}]
        clips = set(self.all_ids())
        for path, ids in ((self.annotations_path, self._dense), (self.prompts_path, self._clip_prompts)):
            files.refuse_unknown_ids(path, ids, clips, "binaural_audios/")

    @classmethod
    def open(cls, options: DataOptions, build_if_missing: bool = False) -> "FairPlay":
        """FAIR-Play at ``--data-root`` with the optional ``--annotations`` and ``--prompts`` files."""
        if not options.root:
            raise UserError("--dataset fairplay needs --data-root DIR, the folder holding binaural_audios/ and splits/.")
        return cls(options.root, options.annotations, options.prompts)

    # -- identity -------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return DATASET_ID

    def _read_splits(self) -> dict[tuple[int, str], list[str]]:
        out = {}
        for split in range(1, NUM_SPLITS + 1):
            for part in PARTS:
                path = self.splits_dir / f"split{split}" / f"{part}.h5"
                if path.is_file():
                    out[(split, part)] = read_split_file(path, self.audio_dir)
        if not out:
            raise UserError(f"{self.splits_dir}: holds no split files (splits/split1..10/{{train,val,test}}.h5).")
        return out

    def _named_ids(self) -> set[str]:
        return {i for ids in self._splits.values() for i in ids}

    @cached_property
    def _hashed_files(self) -> dict[str, Path]:
        """Every file the content hash covers, by the name it has in the hash."""
        named = {f"splits/split{s}/{p}.h5": self.splits_dir / f"split{s}" / f"{p}.h5" for s, p in self._splits}
        named.update({f"binaural_audios/{i}.wav": self.audio_path(i) for i in self._headers})
        if self.annotations_path:
            named["<annotations>"] = self.annotations_path
        if self.prompts_path:
            named["<prompts>"] = self.prompts_path
        return named

    @cached_property
    def _sha256(self) -> dict[str, str]:
        return files.named_hashes(self._hashed_files, desc="fairplay: hashing files")

    @property
    def content_hash(self) -> str:
        """sha256 over (name, sha256) of the split files, the wavs they name and the text files."""
        return content_digest(self._sha256)

    def record(self) -> dict:
        """The dataset block of a results file (with the sample rates that were resampled and the text files)."""
        record = {"id": self.id, "version": ADAPTER_VERSION, "manifest_sha256": self.content_hash, "profile": "full",
                  **files.audio_record(self._headers)}
        for key, path in (("annotations", self.annotations_path), ("prompts", self.prompts_path)):
            if path:
                record[key] = {"file": path.name, "sha256": self._sha256[f"<{key}>"]}
        return record

    # -- items ----------------------------------------------------------------------------

    def all_ids(self) -> list[str]:
        """Every clip id in binaural_audios/, sorted."""
        return sorted(p.stem for p in self.audio_dir.glob("*.wav") if not is_temporary(p.name))

    def split_ids(self, split: int, part: str = "test") -> list[str]:
        """Clip ids of ``part`` (train/val/test) of split ``split`` (1..10), in the order of the h5 file."""
        if part not in PARTS:
            raise UserError(f"Unknown split part '{part}': use one of {', '.join(PARTS)}.")
        if (split, part) not in self._splits:
            path = self.splits_dir / f"split{split}" / f"{part}.h5"
            raise UserError(f"{path}: split file is missing (FAIR-Play splits are split1 to split{NUM_SPLITS}).")
        return list(self._splits[(split, part)])

    def audio_path(self, item_id: str) -> Path:
        """Path of the binaural recording of ``item_id``."""
        return self.audio_dir / f"{item_id}.wav"

    def _header(self, item_id: str) -> files.WavHeader:
        if item_id not in self._headers:
            raise UserError(f"{self.audio_path(item_id)}: clip '{item_id}' is in no split file of {self.splits_dir}.")
        return self._headers[item_id]

    def binaural(self, item_id: str) -> np.ndarray:
        """Binaural audio (2, T) float32 at 16 kHz (resampled once from the file's rate, cached)."""
        header = self._header(item_id)
        return files.read_binaural(self.audio_path(item_id), self._sha256[f"binaural_audios/{item_id}.wav"], header)

    def num_samples(self, item_id: str) -> int:
        """Samples at 16 kHz, from the WAV header."""
        return self._header(item_id).frames_at(SAMPLE_RATE)

    # -- guidance -------------------------------------------------------------------------

    def annotation(self, item_id: str) -> dict | None:
        """Dense frames from --annotations and the clip prompt from --prompts; None when neither has the clip."""
        dense, clip = self._dense.get(item_id), self._clip_prompts.get(item_id)
        if dense is None and clip is None:
            return None
        out = {"item_id": item_id, "frame_rate": FRAME_RATE_HZ, "clip_prompts": list(clip or [])}
        if dense is not None:
            out["frames"] = dense["frames"]
        return out

    def missing_guidance(self, item_id: str, kind: str) -> str | None:
        """Why ``item_id`` has no ``kind`` guidance ("text" or "visual"), naming the file; None if it has some."""
        if kind == "text":
            if item_id in self._dense or item_id in self._clip_prompts:
                return None
            given = [str(p) for p in (self.annotations_path, self.prompts_path) if p]
            if not given:
                return (f"FAIR-Play clip '{item_id}' has no text: give a TASBench-style annotation file "
                        "(--annotations) or a SpatialTAS-style prompt file (--prompts).")
            return f"{' and '.join(given)}: no text for FAIR-Play clip '{item_id}'."
        try:
            self.frame_paths(item_id)
        except UserError as exc:
            return str(exc)
        return None

    def frame_dir(self, item_id: str) -> Path:
        """Folder holding the frames of ``item_id`` (``frames/<id>/`` or the authors' ``frames/<id>.mp4/``)."""
        for name in (item_id, f"{item_id}.mp4"):
            if (self.frames_dir / name).is_dir():
                return self.frames_dir / name
        raise UserError(f"{self.frames_dir / item_id}: frame folder of clip '{item_id}' is missing.")

    def frame_paths(self, item_id: str) -> list[Path]:
        """PNG frames of ``item_id`` in time order (10 per second, 000001.png first)."""
        folder = self.frame_dir(item_id)
        # numeric order, so that unpadded names (2.png before 10.png) are also in time order
        paths = sorted(folder.glob("*.png"), key=lambda p: (int(p.stem) if p.stem.isdigit() else float("inf"), p.name))
        if not paths:
            raise UserError(f"{folder}: holds no PNG frames.")
        return paths

    def frames(self, item_id: str):
        """A function ``(times_s, size=(224, 224)) -> uint8 (N, H, W, 3)``: the frame shown at each time
        (frame k, counted from 0, covers [k / 10, (k + 1) / 10) s; times past the last frame get the last),
        resized to ``size`` (height, width) with bilinear interpolation."""
        from PIL import Image

        paths = self.frame_paths(item_id)

        def read(times_s, size=(224, 224)) -> np.ndarray:
            out = []
            for t in np.atleast_1d(np.asarray(times_s, dtype=float)):
                k = int(np.clip(np.floor(t * FRAME_RATE_HZ + 1e-9), 0, len(paths) - 1))
                try:
                    with Image.open(paths[k]) as img:
                        rgb = img.convert("RGB").resize((int(size[1]), int(size[0])), Image.BILINEAR)
                except OSError as exc:
                    raise UserError(f"{paths[k]}: cannot be read as an image ({exc}).") from exc
                out.append(np.asarray(rgb, dtype=np.uint8))
            return np.stack(out)

        return read

    def frames_sha256(self, item_ids: list[str]) -> str | None:
        """sha256 over (name, sha256) of every frame file of ``item_ids``."""
        paths = {f"frames/{i}/{p.name}": p for i in item_ids for p in self.frame_paths(i)}
        return content_digest(files.named_hashes(paths, desc="fairplay: hashing frames"))
