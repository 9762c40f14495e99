"""Binaural rendering of a scene (tas_eval.data.scene) from its dry mono sources.

Per source, at ``sr`` Hz (44.1 kHz, the HRIRs' rate):
- the dry signal is cropped or zero-padded to the clip, scaled by the source's ``gain_db`` (the dry
  signal is expected at its natural level, gain not yet applied) and gated to its ``active``
  intervals with 5 ms raised-cosine fades, so that the audio agrees with the annotations whatever the
  dry signal holds in the silent stretches (the room still rings on after a gate closes);
- direct sound: through the HRIR of its direction (nearest measured direction, see
  tas_eval.data.builtin.hrir), attenuated as 1/r relative to 1 m (r floored at 0.2 m) and delayed by r / c
  (c = 343 m/s; fractional delays, rounded to 1/64 sample, by a Kaiser-windowed sinc of 32 taps);
- early reflections: image sources up to order 3 (tas_eval.data.builtin.room), each through the HRIR of its
  arrival direction with its own 1/r attenuation, delay and wall losses;
- late tail: tas_eval.data.builtin.room.late_tail, a diffuse field with the room's RT60, seeded from
  (scene["seed"], source index), so two sources in one room get independent tails; for a far source
  whose first reflection arrives after the tail's fade-in has begun, the tail is gated (5 ms fade)
  to start with that first reflection, so nothing reverberates before the sound has reached a wall.
A static source's direct sound, reflections and tail form one binaural room impulse response (BRIR),
applied with one FFT convolution. A moving source (trajectory with several distinct points) is
rendered block-wise from its position at the time: the input is cut into Hann-windowed blocks (the
windows sum to one), each block is filtered with the response of the position at the block's centre
and the outputs are overlap-added, which crossfades smoothly between positions. The direct sound uses
blocks of 1472 samples (33 ms) at a hop of 736, the early reflections blocks of REFLECTION_BLOCK =
4410 samples (0.1 s, the annotation frame) at half that hop, each with the image sources of the
block's position. The late tail is a diffuse field, the same from every position, applied once and
started with the earliest first reflection along the trajectory. Positions are those at the emission
time; sound arriving after the clip's end is dropped. No room
(``scene["room"]`` missing or None) renders the direct sound only (anechoic).
Everything is single-threaded numpy/scipy and deterministic.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special
from scipy.signal import fftconvolve

from tas_eval.data.builtin import room as room_acoustics
from tas_eval.data.builtin.hrir import HRIRSet
from tas_eval.data.scene import direction_vector, position_at

SAMPLE_RATE = 44100
MIN_DISTANCE_M = 0.2
BLOCK = 1472  # samples per block of the moving direct path (33 ms at 44.1 kHz; with the HRIR it fits a 2048 FFT)
REFLECTION_BLOCK = 4410  # samples per block of a moving source's reflections (0.1 s, the annotation frame)
GATE_FADE_S = 0.005
TAIL_GATE_FADE_S = 0.005
_FRAC_HALF = 16  # the fractional-delay kernel has 2 * _FRAC_HALF taps
_KAISER_BETA = 8.0
_FRAC_STEPS = 64  # fractional delays are rounded to 1/64 sample (0.35 us at 44.1 kHz) so kernels can be cached


def render_scene(scene: dict, dry: list[np.ndarray], hrirs: HRIRSet, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Binaural audio (2, T) float64 of the whole scene at ``sr`` Hz, T = round(duration_s * sr): the sum
    of render_source over its sources. ``dry`` holds one mono signal per scene source, in order."""
    if len(dry) != len(scene["sources"]):
        raise ValueError(f"scene {scene.get('item_id')} has {len(scene['sources'])} sources but {len(dry)} dry signals")
    out = np.zeros((2, _num_samples(scene, sr)))
    for index in range(len(scene["sources"])):
        out += render_source(scene, index, dry, hrirs, sr)
    return out


def render_source(scene: dict, index: int, dry: list[np.ndarray], hrirs: HRIRSet, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Binaural image (2, T) float64 of source ``index`` of the scene in its room (see the module docstring)."""
    if hrirs.sr != sr:
        raise ValueError(f"HRIRs are at {hrirs.sr} Hz but rendering was asked at {sr} Hz")
    source = scene["sources"][index]
    num = _num_samples(scene, sr)
    x = _prepare_dry(np.asarray(dry[index], dtype=np.float64), source, num, sr)
    room = scene.get("room")
    seed = [int(scene.get("seed", 0)) % 2**63, int(index)]
    trajectory = source["trajectory"]

    if not is_moving(trajectory):
        p = trajectory[0]
        brir = source_brir(room, p["azimuth"], p["elevation"], p["distance"], hrirs, sr, seed, direct=True)
        return _convolve(x, brir, num)

    out = direct_blockwise(x, trajectory, hrirs, sr)
    if room is not None:
        out += reflections_blockwise(x, trajectory, room, hrirs, sr)
        out += _convolve(x, moving_tail(room, trajectory, num / sr, hrirs, sr, seed), num)
    return out


def is_moving(trajectory: list[dict]) -> bool:
    """Whether a trajectory has more than one distinct position."""
    first = trajectory[0]
    return any(
        (p["azimuth"], p["elevation"], p["distance"]) != (first["azimuth"], first["elevation"], first["distance"])
        for p in trajectory[1:]
    )


def reflections_blockwise(x: np.ndarray, trajectory: list[dict], room: dict, hrirs: HRIRSet, sr: int,
                          block: int = REFLECTION_BLOCK) -> np.ndarray:
    """Early reflections (2, len(x)) of a source following ``trajectory``: Hann-windowed blocks (hop
    block/2) each convolved with the image-source response (no direct sound, no tail) of the position at
    the block's centre, then overlap-added."""
    num = x.shape[0]
    hop = block // 2
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(block) / block)  # periodic Hann
    count = num // hop + 2
    padded = np.zeros(count * hop + block)
    padded[hop : hop + num] = x
    out = np.zeros((2, padded.shape[0] + _reflection_length(room, hrirs, sr)))
    for k in range(count):
        seg = padded[k * hop : k * hop + block] * window
        if not np.any(seg):
            continue
        az, el, dist = position_at(trajectory, max(0.0, (k * hop) / sr))
        brir = source_brir(room, az, el, dist, hrirs, sr, None, direct=False, tail=False)
        y = fftconvolve(seg[None, :], brir, axes=-1)
        out[:, k * hop : k * hop + y.shape[1]] += y
    return out[:, hop : hop + num]


def moving_tail(room: dict, trajectory: list[dict], duration_s: float, hrirs: HRIRSet, sr: int, seed) -> np.ndarray:
    """The late tail (2, n) of a moving source: the room's diffuse field (position-independent), gated to
    start with the earliest first reflection of the positions along the trajectory (sampled every 0.1 s)."""
    times = np.arange(0.0, max(duration_s, 1e-9), 0.1)
    first = min(room_acoustics.image_sources(room, direction_vector(a, e) * max(d, MIN_DISTANCE_M), 1)[0][2]
                for a, e, d in (position_at(trajectory, float(t)) for t in times))
    return _gated_tail(room_acoustics.late_tail(room, sr, seed, hrirs), first, sr)


def _reflection_length(room: dict, hrirs: HRIRSet, sr: int) -> int:
    """Samples that cover the longest image-source path of ``room`` (from anywhere inside it) plus an HRIR."""
    diagonal = float(np.linalg.norm(room["size_m"]))
    longest = (room_acoustics.DEFAULT_MAX_ORDER + 1) * diagonal
    return _delay_samples(longest, sr)[0] + 2 * _FRAC_HALF + hrirs.taps + 1


def source_brir(
    room: dict | None,
    azimuth: float,
    elevation: float,
    distance: float,
    hrirs: HRIRSet,
    sr: int,
    seed,
    direct: bool = True,
    max_order: int = room_acoustics.DEFAULT_MAX_ORDER,
    tail: bool = True,
) -> np.ndarray:
    """Binaural room impulse response (2, n) of a static source at ``sr`` Hz, sample 0 = emission:
    the direct sound (when ``direct``), the image-source reflections (when ``room``) and the late tail
    (when ``room`` and ``tail``)."""
    paths = []  # (azimuth, elevation, distance, gain excluding 1/r)
    if direct:
        paths.append((azimuth, elevation, distance, 1.0))
    if room is not None:
        pos = direction_vector(azimuth, elevation) * max(distance, MIN_DISTANCE_M)
        paths.extend(room_acoustics.image_sources(room, pos, max_order))
    reflections = paths[1:] if direct else paths
    late = np.zeros((2, 0))
    if room is not None and tail:
        late = room_acoustics.late_tail(room, sr, seed, hrirs, max_order)
        if reflections:
            late = _gated_tail(late, reflections[0][2], sr)

    longest = max((p[2] for p in paths), default=0.0)
    n = max(late.shape[1], _delay_samples(longest, sr)[0] + _FRAC_HALF + hrirs.taps + 1)
    brir = np.zeros((2, n))
    brir[:, : late.shape[1]] += late
    if paths:
        idx = hrirs.nearest_index([p[0] for p in paths], [p[1] for p in paths])
        for (az, el, dist, gain), i in zip(paths, idx):
            whole, step = _delay_samples(dist, sr)
            ir = _fractional_delay(hrirs.irs[i], step) * (gain / max(dist, MIN_DISTANCE_M))
            start = whole - (_FRAC_HALF - 1)
            brir[:, start : start + ir.shape[1]] += ir
    return brir


def _gated_tail(tail: np.ndarray, first_path_m: float, sr: int) -> np.ndarray:
    """``tail`` silenced before the first reflection (a path of ``first_path_m`` metres) arrives, with a short
    fade: a far source's first reflection can come after the tail's fade-in has begun."""
    first = int(first_path_m / room_acoustics.SPEED_OF_SOUND * sr)
    if not np.any(tail[:, :first]):
        return tail
    fade = min(int(TAIL_GATE_FADE_S * sr), tail.shape[1] - first)
    gate = np.zeros(tail.shape[1])
    gate[first : first + fade] = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    gate[first + fade :] = 1.0
    return tail * gate


def direct_blockwise(x: np.ndarray, trajectory: list[dict], hrirs: HRIRSet, sr: int, block: int = BLOCK) -> np.ndarray:
    """Direct sound (2, len(x)) of a source following ``trajectory``: Hann-windowed blocks (hop block/2,
    the windows sum to one) each filtered with the HRIR, 1/r gain and r/c delay of the position at the
    block's centre, then overlap-added. For a static trajectory it equals the direct part of source_brir."""
    num = x.shape[0]
    hop = block // 2
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(block) / block)  # periodic Hann
    count = num // hop + 2
    padded = np.zeros(hop + count * hop + block)
    padded[hop : hop + num] = x
    starts = np.arange(count) * hop - hop  # block k starts at sample (k - 1) hop and is centred on k hop
    blocks = np.lib.stride_tricks.sliding_window_view(padded, block)[::hop][:count] * window
    live = np.flatnonzero(np.any(blocks != 0.0, axis=1))  # silent blocks add nothing

    pos = np.array([position_at(trajectory, (k * hop) / sr) for k in live]).reshape(-1, 3)
    dist = np.maximum(pos[:, 2], MIN_DISTANCE_M)
    delays = dist / room_acoustics.SPEED_OF_SOUND * sr
    steps = np.rint(delays * _FRAC_STEPS).astype(np.int64)
    whole, frac_step = steps // _FRAC_STEPS, steps % _FRAC_STEPS
    nfft = 1 << int(math.ceil(math.log2(block + hrirs.taps + 2 * _FRAC_HALF - 1)))
    spec = np.fft.rfft(blocks[live], n=nfft, axis=-1)
    spec *= _kernel_spectra(nfft)[frac_step]
    spec *= (1.0 / dist)[:, None]
    spec = spec[:, None, :] * hrirs.spectra(nfft)[hrirs.nearest_index(pos[:, 0], pos[:, 1])]
    filtered = np.fft.irfft(spec, n=nfft, axis=-1)  # (live, 2, nfft)

    offset = hop + _FRAC_HALF  # output index of sample 0
    out = np.zeros((2, offset + num + int(whole.max(initial=0)) + nfft + block))
    for j, k in enumerate(live):
        at = offset + starts[k] + whole[j] - (_FRAC_HALF - 1)
        out[:, at : at + nfft] += filtered[j]
    return out[:, offset : offset + num]


def _num_samples(scene: dict, sr: int) -> int:
    return int(round(float(scene["duration_s"]) * sr))


def _prepare_dry(x: np.ndarray, source: dict, num: int, sr: int) -> np.ndarray:
    """Crop or zero-pad to ``num`` samples, apply gain_db, gate to the active intervals with short fades."""
    if x.ndim != 1:
        raise ValueError(f"a dry source must be mono (1-D), got shape {x.shape}")
    out = np.zeros(num)
    out[: min(num, x.shape[0])] = x[:num]
    out *= 10.0 ** (float(source.get("gain_db", 0.0)) / 20.0)
    active = source.get("active")
    if active is None:
        return out
    mask = np.zeros(num)
    for a, b in active:
        mask[max(0, int(round(a * sr))) : max(0, min(num, int(round(b * sr))))] = 1.0
    fade = max(1, int(round(GATE_FADE_S * sr)))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    gate = mask.copy()
    edges = np.diff(mask)
    for i in np.flatnonzero(edges > 0) + 1:  # gate opens at sample i
        seg = gate[i : i + fade]
        seg *= ramp[: seg.shape[0]]
    for j in np.flatnonzero(edges < 0) + 1:  # gate closes at sample j
        seg = gate[max(0, j - fade) : j]
        seg *= ramp[::-1][fade - seg.shape[0] :]
    return out * gate


def _convolve(x: np.ndarray, brir: np.ndarray, num: int) -> np.ndarray:
    """Both ears of ``x`` through ``brir``, cropped to ``num`` samples (one FFT of x, two inverse)."""
    if not np.any(x):
        return np.zeros((2, num))
    return fftconvolve(x[None, :], brir, axes=-1)[:, :num]


def _delay_samples(distance: float, sr: int) -> tuple[int, int]:
    """Propagation delay of ``distance`` m (floored at MIN_DISTANCE_M) as (whole samples, 1/_FRAC_STEPS steps)."""
    steps = int(round(max(distance, MIN_DISTANCE_M) / room_acoustics.SPEED_OF_SOUND * sr * _FRAC_STEPS))
    return steps // _FRAC_STEPS, steps % _FRAC_STEPS


@functools.lru_cache(maxsize=None)
def _kernels() -> np.ndarray:
    """The fractional-delay kernels of every step, (_FRAC_STEPS, 2 * _FRAC_HALF)."""
    return _fractional_kernel(np.arange(_FRAC_STEPS) / _FRAC_STEPS)


@functools.lru_cache(maxsize=4)
def _kernel_spectra(nfft: int) -> np.ndarray:
    return np.fft.rfft(_kernels(), n=nfft, axis=-1)


def _fractional_kernel(frac) -> np.ndarray:
    """Kaiser-windowed sincs of 2 * _FRAC_HALF taps delaying by (_FRAC_HALF - 1 + frac) samples,
    one row per value of the array ``frac`` (fractions of a sample in [0, 1))."""
    t = np.arange(2 * _FRAC_HALF) - (_FRAC_HALF - 1) - np.asarray(frac, dtype=np.float64)[..., None]
    r = np.clip(t / _FRAC_HALF, -1.0, 1.0)  # the window is centred on the fractional delay
    return np.sinc(t) * special.i0(_KAISER_BETA * np.sqrt(1.0 - r * r)) / special.i0(_KAISER_BETA)


def _fractional_delay(ir: np.ndarray, step: int) -> np.ndarray:
    """``ir`` (2, taps) convolved with the kernel of ``step`` / _FRAC_STEPS samples: (2, taps + 2 * _FRAC_HALF - 1)."""
    kernel = _kernels()[step]
    return np.stack([np.convolve(ir[0], kernel), np.convolve(ir[1], kernel)])
