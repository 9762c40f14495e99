"""Measured head-related impulse responses (HRIRs) read from a SOFA file.

Conventions (the same as tas_eval.data.scene): azimuth 0 = straight ahead, +90 = LEFT, -90 = right,
+-180 = behind; elevation +90 = up; degrees. Channel 0 of every HRIR is the LEFT ear.

A SOFA file (AES69, "SimpleFreeFieldHRIR") is an HDF5 file. Its ``SourcePosition`` is either spherical
(azimuth counter-clockwise from the listener's view direction seen from above, elevation up: the same
convention as ours, only wrapped to [0, 360)) or cartesian (x ahead, y left, z up). Which receiver is
the left ear is read from ``ReceiverPosition`` (the one with positive y), not assumed. The default
file, MIT KEMAR "normal pinna" from Debian's libmysofa1, has 710 directions (elevation -40 to +90
degrees, 5 to 30 degree spacing in azimuth), 512 taps, 44.1 kHz.

Direction lookup is NEAREST NEIGHBOUR ON THE SPHERE (largest cosine between the unit vectors).
Interpolating between measured HRIRs sums responses with different onset delays and comb-filters
the result unless the delays are first separated out; nearest neighbour keeps every filter a real
measurement, and its angular error (at most about half the grid spacing, <= 3.2 degrees in azimuth
near the horizontal plane) is below the localisation blur of human listeners for most directions.
Moving sources are rendered block-wise with crossfades (tas_eval.data.builtin.render), which hides the
switches between neighbouring measurements. Directions below the lowest measured elevation
(-40 degrees for KEMAR) get the nearest measured one.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from tas_eval.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_SOFA = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"


@dataclass(eq=False)
class HRIRSet:
    """A set of HRIRs: ``irs`` (N, 2, taps) float64 (channel 0 = left ear) measured at
    ``azimuth``/``elevation`` (N,) degrees in our convention, sample rate ``sr`` Hz."""

    sr: int
    azimuth: np.ndarray
    elevation: np.ndarray
    irs: np.ndarray
    path: str = ""
    _tree: cKDTree = field(init=False, repr=False)
    _spectra: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        # the chord between unit vectors grows with the great-circle angle: nearest chord = nearest on the sphere
        self._tree = cKDTree(_unit_vectors(self.azimuth, self.elevation))

    @property
    def taps(self) -> int:
        """Length of each HRIR in samples."""
        return self.irs.shape[-1]

    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_SOFA) -> "HRIRSet":
        """Read a SOFA file (cached per process and path); UserError naming the file if it is missing or unusable."""
        return _load_cached(str(Path(path).resolve()))

    def nearest_index(self, azimuth_deg, elevation_deg) -> np.ndarray:
        """Index (or array of indices) of the measured direction nearest on the sphere to the given one(s)."""
        return self._tree.query(_unit_vectors(azimuth_deg, elevation_deg))[1]

    def lookup(self, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
        """The (2, taps) HRIR of the measured direction nearest on the sphere (channel 0 = left ear)."""
        return self.irs[int(self.nearest_index(azimuth_deg, elevation_deg))]

    def spectra(self, nfft: int) -> np.ndarray:
        """rfft of every HRIR zero-padded to ``nfft`` samples, (N, 2, nfft // 2 + 1) complex; cached per nfft."""
        if nfft not in self._spectra:
            self._spectra[nfft] = np.fft.rfft(self.irs, n=nfft, axis=-1)
        return self._spectra[nfft]

    def solid_angle_weights(self) -> np.ndarray:
        """Weight of each measured direction proportional to the solid angle it covers, summing to 1.

        Each direction gets an equal share of the spherical band (or polar cap) between the midpoints
        to its neighbouring measured elevations; the sphere below the lowest measured ring by more than
        half a ring spacing is not covered by the measurements and gets no weight.
        """
        rings = np.unique(self.elevation)
        edges = np.empty(len(rings) + 1)
        edges[1:-1] = (rings[1:] + rings[:-1]) / 2
        edges[0] = max(-90.0, rings[0] - (rings[1] - rings[0]) / 2) if len(rings) > 1 else -90.0
        edges[-1] = min(90.0, rings[-1] + (rings[-1] - rings[-2]) / 2) if len(rings) > 1 else 90.0
        band = np.sin(np.radians(edges[1:])) - np.sin(np.radians(edges[:-1]))
        ring = np.searchsorted(rings, self.elevation)
        counts = np.bincount(ring, minlength=len(rings))
        w = band[ring] / counts[ring]
        return w / w.sum()


def _unit_vectors(azimuth_deg, elevation_deg) -> np.ndarray:
    """Unit vectors (..., 3) of directions in degrees (x ahead, y left, z up)."""
    az = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    el = np.radians(np.asarray(elevation_deg, dtype=np.float64))
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> HRIRSet:
    import h5py  # imported here: only the data builder needs it

    if not os.path.isfile(path):
        raise UserError(f"{path}: HRIR file not found (install Debian's libmysofa1 or pass another SOFA file).")
    try:
        with h5py.File(path, "r") as f:
            irs = np.asarray(f["Data.IR"][:], dtype=np.float64)
            pos = np.asarray(f["SourcePosition"][:], dtype=np.float64)
            pos_type = _attr_str(f["SourcePosition"], "Type", "spherical")
            sr = float(np.asarray(f["Data.SamplingRate"][:]).ravel()[0])
            receivers = np.asarray(f["ReceiverPosition"][:], dtype=np.float64) if "ReceiverPosition" in f else None
            delay = np.asarray(f["Data.Delay"][:], dtype=np.float64) if "Data.Delay" in f else None
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise UserError(f"{path}: is not a readable SOFA HRIR file ({type(exc).__name__}: {exc}).") from exc

    if irs.ndim != 3 or irs.shape[1] != 2 or pos.ndim != 2 or pos.shape != (irs.shape[0], 3):
        raise UserError(
            f"{path}: expected Data.IR of shape (M, 2, N) and SourcePosition (M, 3), got {irs.shape} and {pos.shape}."
        )
    if not np.all(np.isfinite(irs)) or sr <= 0 or sr != round(sr):
        raise UserError(f"{path}: holds non-finite HRIR samples or an invalid sampling rate ({sr}).")

    if pos_type.lower().startswith("cartesian"):
        x, y, z = pos[:, 0], pos[:, 1], pos[:, 2]
        azimuth = np.degrees(np.arctan2(y, x))
        elevation = np.degrees(np.arctan2(z, np.hypot(x, y)))
    else:
        azimuth, elevation = pos[:, 0], pos[:, 1]
    azimuth = (azimuth + 180.0) % 360.0 - 180.0  # SOFA's [0, 360) -> our (-180, 180]
    azimuth[azimuth == -180.0] = 180.0

    if receivers is not None and receivers.shape[0] == 2:
        # the left ear is the receiver on the +y side (SOFA's y axis points to the listener's left)
        if receivers[0, 1].ravel()[0] < receivers[1, 1].ravel()[0]:
            irs = irs[:, ::-1, :]
            if delay is not None and delay.shape[-1] == 2:
                delay = delay[..., ::-1]
    if delay is not None and np.any(delay != 0):
        irs = _apply_sofa_delay(irs, delay)

    log.debug("loaded %d HRIRs of %d taps at %d Hz from %s", irs.shape[0], irs.shape[2], int(sr), path)
    return HRIRSet(sr=int(sr), azimuth=azimuth, elevation=elevation, irs=np.ascontiguousarray(irs), path=path)


def _attr_str(obj, name: str, default: str) -> str:
    value = obj.attrs.get(name, default)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else default
        return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return str(value)


def _apply_sofa_delay(irs: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Fold SOFA's Data.Delay (whole samples, per receiver, shared or per measurement) into the IRs."""
    delay = np.broadcast_to(np.rint(delay).astype(int).reshape(-1, 2), (irs.shape[0], 2))
    out = np.zeros((irs.shape[0], 2, irs.shape[2] + int(delay.max())))
    for m in range(irs.shape[0]):
        for ear in range(2):
            d = delay[m, ear]
            out[m, ear, d : d + irs.shape[2]] = irs[m, ear]
    return out
