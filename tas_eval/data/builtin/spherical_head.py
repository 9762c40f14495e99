"""A second head: the spherical-head model of Brown and Duda (1998), as an HRIR set.

Real recordings are not made with KEMAR (FAIR-Play used a 3Dio binaural microphone), so what learns
to localize here also learns on this analytic head, whose cues differ from KEMAR's in their details
(no pinna, no torso) while sharing their physics.

Per ear, for a source direction at angle theta (radians) from the ear's axis (the ears sit at azimuth
+-EAR_AZIMUTH_DEG on the horizontal plane):
- head shadow, a one-pole one-zero filter:
      H(w, theta) = (1 + j alpha(theta) w / (2 w0)) / (1 + j w / (2 w0)),   w0 = c / a,
      alpha(theta) = (1 + alpha_min / 2) + (1 - alpha_min / 2) cos(theta / theta_min * pi),
  with alpha_min = 0.1 and theta_min = 150 degrees (the paper's values), so the ear facing the source
  is boosted by up to 6 dB at high frequencies and the far ear is cut by up to 20 dB;
- delay (Woodworth's formula, relative to the head's centre): -(a / c) cos(theta) for theta < pi / 2,
  (a / c) (theta - pi / 2) beyond, plus a common BULK_DELAY_S so that every response is causal.
Radius a = HEAD_RADIUS_M, c = 343 m/s. The responses are made by frequency sampling at 44.1 kHz
(TAPS taps, a half-Hann fade over the last quarter) on a grid of directions every GRID_DEG degrees
of azimuth and elevation from -40 to +90 degrees, and scaled so that their mean energy over the
sphere equals that of the KEMAR set, so that a scene renders at the same level with either head.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from tas_eval.data.builtin.hrir import HRIRSet

SPEED_OF_SOUND = 343.0  # m/s
HEAD_RADIUS_M = 0.0875
EAR_AZIMUTH_DEG = 100.0  # Brown and Duda place the ears slightly behind the interaural axis
ALPHA_MIN = 0.1
THETA_MIN_DEG = 150.0
BULK_DELAY_S = 0.001
TAPS = 512
GRID_DEG = 5.0
SAMPLE_RATE = 44100
NAME = "spherical-head (Brown and Duda 1998)"


def _unit(azimuth_deg, elevation_deg) -> np.ndarray:
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def ear_responses(azimuth_deg: np.ndarray, elevation_deg: np.ndarray, sr: int = SAMPLE_RATE, taps: int = TAPS,
                  radius_m: float = HEAD_RADIUS_M) -> np.ndarray:
    """Impulse responses (N, 2, taps) of both ears (channel 0 = left) for N directions in degrees."""
    directions = _unit(np.asarray(azimuth_deg, dtype=np.float64), np.asarray(elevation_deg, dtype=np.float64))
    ears = _unit(np.array([EAR_AZIMUTH_DEG, -EAR_AZIMUTH_DEG]), np.zeros(2))  # left, right
    theta = np.arccos(np.clip(directions @ ears.T, -1.0, 1.0))  # (N, 2)
    w = 2 * np.pi * np.fft.rfftfreq(taps, 1.0 / sr)  # rad/s
    w0 = SPEED_OF_SOUND / radius_m
    alpha = (1 + ALPHA_MIN / 2) + (1 - ALPHA_MIN / 2) * np.cos(theta / math.radians(THETA_MIN_DEG) * np.pi)
    shadow = (1 + 1j * alpha[..., None] * w / (2 * w0)) / (1 + 1j * w / (2 * w0))
    delay = np.where(theta < np.pi / 2, -(radius_m / SPEED_OF_SOUND) * np.cos(theta),
                     (radius_m / SPEED_OF_SOUND) * (theta - np.pi / 2)) + BULK_DELAY_S
    irs = np.fft.irfft(shadow * np.exp(-1j * w * delay[..., None]), n=taps, axis=-1)
    fade = taps // 4
    irs[..., -fade:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    return irs


@functools.lru_cache(maxsize=2)
def spherical_head_set(reference: HRIRSet | None = None) -> HRIRSet:
    """The spherical head on the grid of the module docstring, at the level of ``reference`` (default:
    the KEMAR set), as an HRIRSet the renderer takes in place of a measured one."""
    reference = reference if reference is not None else HRIRSet.load()
    elevations = np.arange(-40.0, 90.0 + 1e-9, GRID_DEG)
    az, el = [], []
    for e in elevations:
        step = 360.0 if e >= 90.0 else GRID_DEG
        for a in np.arange(-180.0, 180.0, step):
            az.append(a)
            el.append(e)
    az, el = np.array(az), np.array(el)
    irs = ear_responses(az, el, reference.sr)

    def mean_energy(hrirs: HRIRSet, ir: np.ndarray) -> float:
        return float(np.sum(hrirs.solid_angle_weights() * np.sum(ir**2, axis=(1, 2))))

    shaped = HRIRSet(reference.sr, az, el, irs, NAME)
    irs = irs * math.sqrt(mean_energy(reference, reference.irs) / mean_energy(shaped, irs))
    return HRIRSet(reference.sr, az, el, irs, NAME)
