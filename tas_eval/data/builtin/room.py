"""Shoebox room acoustics: early reflections by the image-source method and a diffuse late tail.

A room (scene["room"], see tas_eval.data.scene) is ``{"size_m": [Lx, Ly, Lz], "listener_m": [x, y, z],
"rt60_s": T, "absorption": a}``; the listener faces +x, its left is +y, up is +z, so listener-frame
vectors and room vectors share their axes and differ only by the listener's position.

Model and its approximations:
- All six walls share one frequency-independent energy absorption coefficient ``a``: room["absorption"]
  when given, otherwise the value that gives room["rt60_s"] by Eyring's formula
  ``T = 0.161 V / (-S ln(1 - a))`` (V in m^3, S in m^2; Eyring rather than Sabine because it stays
  right for absorbent rooms). A reflection multiplies the pressure by ``sqrt(1 - a)``.
- The reverberation time is room["rt60_s"] when given, otherwise Eyring's from ``a``. The late tail
  decays with it, the same at every frequency (no air absorption).
- Early reflections: image sources (Allen & Berkley 1979) up to ``max_order`` (3 by default).
- Late tail: a diffuse field, i.e. the sum over all directions of independent noises each through the
  HRIR of its direction. It is generated in one step from the diffuse-field cross-spectral matrix of
  the HRIR set (solid-angle weighted over all measured directions), so both its spectrum and its
  interaural coherence are the measured head's (coherent at low frequencies, incoherent above about
  1 kHz). Its exponential envelope starts after the early reflections: it fades in between half the
  mixing time and the mixing time ``(max_order + 1) * 4V/S / c`` (the time by which a ray has met
  ``max_order + 1`` walls on average).
- Level: diffuse-field theory gives the reverberant energy relative to the direct sound at 1 m of an
  omnidirectional source as ``16 pi / R`` with the room constant ``R = S a / (1 - a)`` (``a`` from the
  reverberation time). The tail's envelope is scaled so that a full exponential decay from the
  emission time would carry exactly that energy; the tail keeps the part after the mixing time, the
  image sources supply the early part. The critical distance is ``sqrt(R / (16 pi))``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math

import numpy as np
from scipy.signal import fftconvolve

from tas_eval.data.builtin.hrir import HRIRSet
from tas_eval.data.scene import azel_from_vector

SPEED_OF_SOUND = 343.0  # m/s
DEFAULT_MAX_ORDER = 3
_EYRING = 0.161  # s/m, 24 ln(10) / c
_WALL_MARGIN_M = 0.1


def room_volume_surface(room: dict) -> tuple[float, float]:
    """(volume m^3, total wall surface m^2) of the shoebox."""
    lx, ly, lz = (float(v) for v in room["size_m"])
    return lx * ly * lz, 2.0 * (lx * ly + lx * lz + ly * lz)


def eyring_absorption(volume: float, surface: float, rt60: float) -> float:
    """Mean absorption coefficient that gives ``rt60`` seconds by Eyring's formula."""
    return 1.0 - math.exp(-_EYRING * volume / (surface * rt60))


def eyring_rt60(volume: float, surface: float, absorption: float) -> float:
    """Eyring reverberation time in seconds of a room with mean absorption coefficient ``absorption``."""
    return _EYRING * volume / (-surface * math.log(1.0 - absorption))


def wall_absorption(room: dict) -> float:
    """Energy absorption coefficient of the walls: room["absorption"], else Eyring's from room["rt60_s"]."""
    if room.get("absorption") is not None:
        a = float(room["absorption"])
    else:
        a = eyring_absorption(*room_volume_surface(room), float(room["rt60_s"]))
    if not 0.0 < a < 1.0:
        raise ValueError(f"wall absorption must lie in (0, 1), got {a}")
    return a


def reverberation_time(room: dict) -> float:
    """RT60 in seconds: room["rt60_s"], else Eyring's from room["absorption"]."""
    if room.get("rt60_s") is not None:
        return float(room["rt60_s"])
    return eyring_rt60(*room_volume_surface(room), wall_absorption(room))


def mixing_time(room: dict, max_order: int = DEFAULT_MAX_ORDER) -> float:
    """Seconds after emission by which sound has met ``max_order + 1`` walls on average: (order + 1) 4V/S / c."""
    volume, surface = room_volume_surface(room)
    return (max_order + 1) * 4.0 * volume / surface / SPEED_OF_SOUND


def reverberant_energy_ratio(room: dict) -> float:
    """Reverberant energy over the energy of the direct sound at 1 m (omnidirectional source): 16 pi / R."""
    volume, surface = room_volume_surface(room)
    a = eyring_absorption(volume, surface, reverberation_time(room))
    room_constant = surface * a / (1.0 - a)
    return 16.0 * math.pi / room_constant


def source_in_room(room: dict, source_pos_listener_frame) -> np.ndarray:
    """Room coordinates (m) of a listener-frame position, clamped 0.1 m inside the walls.

    The clamp keeps image sources meaningful when a scene places a source beyond a wall; the direct
    sound is rendered from the unclamped position and image_sources lengthens the reflected paths.
    """
    size = np.asarray(room["size_m"], dtype=np.float64)
    pos = np.asarray(room["listener_m"], dtype=np.float64) + np.asarray(source_pos_listener_frame, dtype=np.float64)
    return np.clip(pos, _WALL_MARGIN_M, size - _WALL_MARGIN_M)


def image_sources(room: dict, source_pos_listener_frame, max_order: int = DEFAULT_MAX_ORDER) -> list[tuple]:
    """Reflections of orders 1..``max_order`` of a point source in the shoebox room.

    ``source_pos_listener_frame`` is the source's position (m) relative to the listener (x ahead,
    y left, z up). Returns a list of ``(azimuth deg, elevation deg, distance m, gain)`` per image
    source, with the direction of arrival at the listener, the path length, and the product of the
    walls' pressure reflection coefficients sqrt(1 - absorption) (NOT including the 1/r spreading).
    Sorted by distance. Along each axis an image lies at ``(1 - 2q) s + 2 m L`` (q in {0, 1}, m an
    integer) after ``|m - q|`` reflections on the wall at 0 and ``|m|`` on the wall at L. A source
    outside the room (scenes should avoid it) is moved 0.1 m inside the walls (source_in_room) and the
    distance it was moved is added to every path.
    """
    size = np.asarray(room["size_m"], dtype=np.float64)
    listener = np.asarray(room["listener_m"], dtype=np.float64)
    if np.any(listener <= 0) or np.any(listener >= size):
        raise ValueError(f"listener {listener.tolist()} is not inside the room of size {size.tolist()}")
    src = source_in_room(room, source_pos_listener_frame)
    # a source placed beyond a wall reflects from its clamped position, reached over the extra distance,
    # so that no reflection arrives before the direct sound (triangle inequality)
    extra = float(np.linalg.norm(listener + np.asarray(source_pos_listener_frame, dtype=np.float64) - src))
    beta = math.sqrt(1.0 - wall_absorption(room))

    # per axis: the candidate image coordinates and their reflection counts
    axes = []
    for k in range(3):
        options = []
        for m in range(-max_order, max_order + 1):
            for q in (0, 1):
                order = abs(m - q) + abs(m)
                if order <= max_order:
                    options.append(((1 - 2 * q) * src[k] + 2 * m * size[k], order))
        axes.append(options)

    out = []
    for (x, ox), (y, oy), (z, oz) in itertools.product(*axes):
        order = ox + oy + oz
        if order == 0 or order > max_order:
            continue
        az, el, dist = azel_from_vector(np.array([x, y, z]) - listener)
        out.append((az, el, dist + extra, beta**order))
    out.sort(key=lambda r: (r[2], r[0], r[1]))
    return out


@functools.lru_cache(maxsize=8)
def diffuse_field_filters(hrirs: HRIRSet, nfft: int | None = None) -> np.ndarray:
    """FIR filters (2 ears, 2 noises, nfft taps) that turn two independent unit white noises into a
    binaural diffuse field: the Hermitian square root of the solid-angle weighted cross-spectral
    matrix sum_d w_d H_d H_d^H of the HRIR set, so the output has the head's diffuse-field spectrum and
    interaural coherence, and per-sample variance equal to the mean HRIR energy."""
    nfft = nfft or 2 * hrirs.taps
    spec = hrirs.spectra(nfft)  # (N, 2, F)
    w = hrirs.solid_angle_weights()[:, None]
    c11 = np.sum(w * np.abs(spec[:, 0]) ** 2, axis=0)
    c22 = np.sum(w * np.abs(spec[:, 1]) ** 2, axis=0)
    c12 = np.sum(w * spec[:, 0] * np.conj(spec[:, 1]), axis=0)
    # square root of a 2x2 Hermitian positive semi-definite matrix: (C + s I) / t, s = sqrt(det), t = sqrt(tr + 2s)
    s = np.sqrt(np.maximum(c11 * c22 - np.abs(c12) ** 2, 0.0))
    t = np.sqrt(np.maximum(c11 + c22 + 2.0 * s, 1e-30))
    m = np.array([[(c11 + s) / t, c12 / t], [np.conj(c12) / t, (c22 + s) / t]])  # (2, 2, F)
    firs = np.fft.irfft(m, n=nfft, axis=-1)
    return np.roll(firs, nfft // 2, axis=-1) * np.hanning(nfft + 1)[:nfft]


def late_tail(
    room: dict,
    sr: int,
    seed,
    hrirs: HRIRSet | None = None,
    max_order: int = DEFAULT_MAX_ORDER,
) -> np.ndarray:
    """Binaural late reverberation impulse response (2, n) float64 at ``sr`` Hz, sample 0 = emission.

    Diffuse noise with the HRIR set's spectrum and interaural coherence, under an exponential envelope
    that falls 60 dB per ``reverberation_time(room)`` seconds, faded in (raised cosine) between half the
    mixing time and the mixing time, and ending 60 dB below its start. Its level follows the room's
    reverberant energy ratio (see the module docstring). ``seed`` is anything numpy's default_rng takes;
    the result is cached (read-only) per (room, sr, seed, HRIR set, max_order).
    """
    hrirs = hrirs if hrirs is not None else HRIRSet.load()
    key = json.dumps(room, sort_keys=True, default=_jsonable)
    seed_key = json.dumps(seed if isinstance(seed, int) else np.ravel(seed).tolist(), default=_jsonable)
    return _late_tail_cached(key, int(sr), seed_key, hrirs, int(max_order))


def _jsonable(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


@functools.lru_cache(maxsize=32)
def _late_tail_cached(room_json: str, sr: int, seed_json: str, hrirs: HRIRSet, max_order: int) -> np.ndarray:
    room = json.loads(room_json)
    rt60 = reverberation_time(room)
    t_mix = mixing_time(room, max_order)
    n = int(math.ceil((t_mix + rt60) * sr))
    start = int(round(0.5 * t_mix * sr))
    ramp_len = max(1, int(round(t_mix * sr)) - start)

    firs = diffuse_field_filters(hrirs, 2 * hrirs.taps) if hrirs.sr == sr else None
    if firs is None:
        raise ValueError(f"HRIRs at {hrirs.sr} Hz cannot make a tail at {sr} Hz")
    rng = np.random.default_rng(json.loads(seed_json))
    noise = rng.standard_normal((2, n - start + firs.shape[-1] - 1))
    diffuse = np.empty((2, n - start))
    for ear in range(2):
        diffuse[ear] = sum(fftconvolve(noise[j], firs[ear, j], mode="valid") for j in range(2))
    # exact target variance (the mean diffuse-field HRIR energy) rather than its estimate from this draw
    target = float(np.sum(hrirs.solid_angle_weights()[:, None] * np.sum(hrirs.irs**2, axis=-1)) / 2.0)
    diffuse *= math.sqrt(target / np.mean(diffuse**2))

    decay = 3.0 * math.log(10.0) / (rt60 * sr)  # amplitude: -60 dB per rt60
    amp0_sq = reverberant_energy_ratio(room) * (1.0 - math.exp(-2.0 * decay))  # sum_n amp0^2 e^(-2 decay n) = ratio
    idx = np.arange(start, n)
    env = math.sqrt(amp0_sq) * np.exp(-decay * idx)
    env[:ramp_len] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_len) / ramp_len)
    tail = np.zeros((2, n))
    tail[:, start:] = diffuse * env
    tail.setflags(write=False)
    return tail
