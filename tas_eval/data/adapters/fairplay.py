"""FAIR-Play (Gao and Grauman, 2019) in its published layout.

Expected layout of ``root``::

    binaural_audios/000001.wav ...        binaural recordings (2 channels, any sample rate)
    splits/split1 .. split10/{train,val,test}.h5
                                          each with a dataset ``audio``: one wav path per clip, as byte
                                          strings written on the authors' machine (absolute paths that do
                                          not exist here); they are resolved by basename against
                                          binaural_audios/
    frames/000001/000001.png ...          frames extracted at 10 fps (the authors' scripts name the folder
                                          ``000001.mp4/``; both names are accepted)

Item ids are the wav basenames without extension ("000001"). Audio is returned at 16 kHz.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from tas_eval.audio import SAMPLE_RATE, read_wav, resample
from tas_eval.errors import UserError

PARTS = ("train", "val", "test")
NUM_SPLITS = 10


def _basename(stored: bytes | str) -> str:
    """Last component of a stored path, whichever machine (/ or \\ separators) wrote it."""
    text = stored.decode("utf-8") if isinstance(stored, bytes) else str(stored)
    return re.split(r"[\\/]", text.strip())[-1]


class FairPlay:
    """A FAIR-Play copy on disk (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: FAIR-Play folder does not exist.")
        self.audio_dir = self.root / "binaural_audios"
        if not self.audio_dir.is_dir():
            raise UserError(f"{self.audio_dir}: folder is missing; a FAIR-Play copy keeps its wavs in binaural_audios/.")
        self.splits_dir = self.root / "splits"
        self.frames_dir = self.root / "frames"

    def all_ids(self) -> list[str]:
        """Every clip id in binaural_audios/, sorted."""
        return sorted(p.stem for p in self.audio_dir.glob("*.wav"))

    def split_ids(self, split: int, part: str = "test") -> list[str]:
        """Clip ids of ``part`` (train/val/test) of split ``split`` (1..10), in the order of the h5 file."""
        if part not in PARTS:
            raise UserError(f"Unknown split part '{part}': use one of {', '.join(PARTS)}.")
        path = self.splits_dir / f"split{split}" / f"{part}.h5"
        if not path.is_file():
            raise UserError(f"{path}: split file is missing (FAIR-Play splits are split1 to split{NUM_SPLITS}).")
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
            if not (self.audio_dir / name).is_file():
                raise UserError(f"{path}: names clip {name}, which is not in binaural_audios/.")
            ids.append(Path(name).stem)
        return ids

    def audio_path(self, item_id: str) -> Path:
        """Path of the binaural recording of ``item_id``."""
        return self.audio_dir / f"{item_id}.wav"

    def binaural(self, item_id: str) -> np.ndarray:
        """Binaural audio (2, T) float32, resampled from the file's rate to 16 kHz."""
        path = self.audio_path(item_id)
        if not path.is_file():
            raise UserError(f"{path}: clip '{item_id}' is not in binaural_audios/.")
        audio, sr = read_wav(path)
        if audio.shape[0] != 2:
            raise UserError(f"{path}: expected 2 channels (binaural), found {audio.shape[0]}.")
        return np.ascontiguousarray(resample(audio, sr, SAMPLE_RATE), dtype=np.float32)

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
