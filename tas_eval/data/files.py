"""Reading a real dataset's files: sha256s cached by path, size and mtime; binaural WAVs checked from
their headers and brought to 16 kHz once, cached by content.

Hashes: ``cache_root()/file_sha256.json`` maps an absolute path to (size, mtime in ns, sha256); a file
whose size or mtime changed is hashed again. Resampled audio: ``cache_root()/resampled/<sha256 of the
source file>-<rate>.wav`` (float32), so a file is resampled once whatever its name or folder, and a
changed file gets a new entry. Resampling is polyphase (tas_eval.audio.resample), once per file, as the
FAIR-Play reference pipeline loads every clip at 16 kHz.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from tas_eval.audio import SAMPLE_RATE, read_wav, resample, write_wav
from tas_eval.errors import UserError
from tas_eval.io import remove_leftovers, write_json_atomic
from tas_eval.paths import cache_root, file_sha256

log = logging.getLogger(__name__)

HASH_INDEX = "file_sha256.json"
RESAMPLED = "resampled"
RESAMPLER = "scipy.signal.resample_poly, Kaiser window (beta 5), once per file"


def named_hashes(named: dict[str, Path], desc: str = "hashing") -> dict[str, str]:
    """{name: sha256} of files given by the names a content hash lists them under (file_hashes)."""
    by_path = file_hashes(list(named.values()), desc=desc)
    return {name: by_path[path] for name, path in named.items()}


def refuse_unknown_ids(path: Path, ids, known: set[str], holder: str) -> None:
    """A UserError naming ``path`` when it names ids that ``holder`` (a folder or file) does not hold."""
    unknown = sorted(set(ids) - known)
    if unknown:
        raise UserError(f"{path}: names {len(unknown)} id{'s' if len(unknown) != 1 else ''} that {holder} does not "
                        f"hold, e.g. '{unknown[0]}'.")


def _index_path() -> Path:
    return cache_root() / HASH_INDEX


def _read_index() -> dict:
    try:
        index = json.loads(_index_path().read_text())
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        return {}


def file_hashes(paths: list[Path], desc: str = "hashing") -> dict[Path, str]:
    """{path: sha256} of every file, reusing the cached sha256 of a file whose size and mtime are unchanged."""
    index = _read_index()
    out, changed = {}, False
    todo = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise UserError(f"{path}: cannot be read ({exc.strerror}).") from exc
        key = str(Path(path).resolve())
        entry = index.get(key)
        if isinstance(entry, list) and entry[:2] == [st.st_size, st.st_mtime_ns]:
            out[path] = entry[2]
        else:
            todo.append((path, key, st))
    for path, key, st in tqdm(todo, desc=desc, unit="file", disable=len(todo) < 50, leave=False):
        out[path] = file_sha256(path)
        index[key] = [st.st_size, st.st_mtime_ns, out[path]]
        changed = True
    if changed:
        remove_leftovers(_index_path().parent)
        write_json_atomic(_index_path(), index, indent=None)
    return out


@dataclass(frozen=True)
class WavHeader:
    """What a WAV file's header says: channels, sample rate (Hz), frames (samples per channel)."""

    channels: int
    sample_rate: int
    frames: int

    def frames_at(self, rate: int) -> int:
        """Samples after polyphase resampling to ``rate`` Hz (scipy's resample_poly gives ceil(n up / down))."""
        if rate == self.sample_rate:
            return self.frames
        g = math.gcd(self.sample_rate, rate)
        return -(-self.frames * (rate // g) // (self.sample_rate // g))


def binaural_header(path: Path) -> WavHeader:
    """The header of a binaural WAV; a UserError naming the file if it cannot be read or is not 2 channels."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot be read as audio ({first}).") from exc
    if info.channels != 2:
        raise UserError(f"{path}: has {info.channels} channel{'s' if info.channels != 1 else ''}; "
                        "a binaural recording has 2 (left, right).")
    if info.frames < 1:
        raise UserError(f"{path}: holds no samples.")
    return WavHeader(int(info.channels), int(info.samplerate), int(info.frames))


def read_binaural(path: Path, sha256: str, header: WavHeader) -> np.ndarray:
    """(2, T) float32 audio of a binaural WAV at 16 kHz; a file at another rate is resampled once and cached."""
    if header.sample_rate == SAMPLE_RATE:
        audio, _ = read_wav(path)
        return audio
    cached = cache_root() / RESAMPLED / f"{sha256}-{SAMPLE_RATE}.wav"
    if cached.is_file():
        try:
            audio, sr = read_wav(cached)
            if sr == SAMPLE_RATE and audio.shape == (2, header.frames_at(SAMPLE_RATE)):
                return audio
        except UserError:
            pass
        log.warning("%s: unreadable resampling cache entry; resampling %s again", cached, path)
    audio, sr = read_wav(path)
    out = np.ascontiguousarray(resample(audio, sr, SAMPLE_RATE), dtype=np.float32)
    remove_leftovers(cached.parent)
    write_wav(cached, out, SAMPLE_RATE)
    return out


def audio_record(headers: dict[str, "WavHeader"]) -> dict:
    """What a results file records of a dataset's audio files: their sample rates and, when some are
    not at 16 kHz, how they were resampled."""
    rates = sorted({h.sample_rate for h in headers.values()})
    record = {"sample_rate_hz": SAMPLE_RATE, "file_sample_rates_hz": rates}
    if any(r != SAMPLE_RATE for r in rates):
        record["resampled"] = RESAMPLER
    return record
