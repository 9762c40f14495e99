"""PseudoBinaural's training data (Xu et al., CVPR 2021): binaural audio made from mono sources with a
renderer that is NOT the one the test data was made with.

Read from the public reference (SheldonTsui/PseudoBinaural_CVPR2021, data/Pseudo_dataset.py) for its
rules; the code is our own. A pseudo scene holds 1, 2 or 3 sources (probabilities 0.4, 0.5, 0.1), each
placed in the camera's view without overlapping another (azimuth from its horizontal position,
elevation from its vertical one, radius 3 m). Rendering ("ambisonic", the reference's default):
every source is encoded into first-order ambisonics (ACN channel order, SN3D: W = 1, Y = sin(az)
cos(el), Z = sin(el), X = cos(az) cos(el); azimuth +90 = left), the four channels are decoded to 8
virtual loudspeakers on the horizontal circle 45 degrees apart by sampling (speaker k's signal is the
ambisonic signal dotted with the loudspeaker's own harmonics), and each loudspeaker is convolved with
the KEMAR HRIR nearest to its direction, resampled to the audio's rate. No room, no distance cue.
The benchmark renders with the HRIR of each source's own direction, image-source reflections and a
diffuse tail (tas_eval.data.builtin.render), so the pseudo data differ from the test data in every
stage, which is the method's premise.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from tas_eval.audio import SAMPLE_RATE, mono_from_binaural, resample
from tas_eval.data.builtin.frames import FOV_DEG, render_frames
from tas_eval.data.builtin.hrir import HRIRSet
from tas_eval.data.prompts import dense_text

SPEAKER_AZIMUTHS_DEG = tuple(float(a) for a in (2.0 * np.arange(8) / 8 - 1.0) * 180.0)  # -180, -135, ..., 135
SOURCE_COUNTS = (1, 2, 3)
SOURCE_COUNT_P = (0.4, 0.5, 0.1)
RADIUS_M = 3.0
MIN_GAP_DEG = 15.0  # sources do not overlap: their azimuths differ by at least this
ELEVATION_RANGE_DEG = 20.0  # within the frames' vertical view at 2:1 (about +-26.6 degrees)


def foa_gains(azimuth_deg, elevation_deg) -> np.ndarray:
    """First-order ambisonic encoding gains (..., 4) in ACN order and SN3D normalization: W, Y, Z, X."""
    az, el = np.radians(np.asarray(azimuth_deg, float)), np.radians(np.asarray(elevation_deg, float))
    return np.stack([np.ones_like(az), np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=-1)


class FOARenderer:
    """Sources (N, T) at directions -> binaural (2, T) through 8 virtual loudspeakers and the KEMAR HRIRs."""

    def __init__(self, hrirs: HRIRSet | None = None, sr: int = SAMPLE_RATE):
        hrirs = hrirs if hrirs is not None else HRIRSet.load()
        self.sr = sr
        self.decoder = foa_gains(SPEAKER_AZIMUTHS_DEG, np.zeros(len(SPEAKER_AZIMUTHS_DEG)))  # (8, 4)
        irs = np.stack([hrirs.lookup(az, 0.0) for az in SPEAKER_AZIMUTHS_DEG])  # (8, 2, taps) at hrirs.sr
        self.speaker_irs = resample(irs, hrirs.sr, sr)

    def render(self, signals: np.ndarray, azimuths_deg, elevations_deg) -> np.ndarray:
        """(2, T) float64: ``signals`` (N, T) placed at the given directions (degrees, +90 = left)."""
        ambisonic = foa_gains(azimuths_deg, elevations_deg).T @ np.asarray(signals, float)  # (4, T)
        speakers = self.decoder @ ambisonic  # (8, T)
        num = speakers.shape[-1]
        out = fftconvolve(speakers[:, None, :], self.speaker_irs, axes=-1)[..., :num]  # (8, 2, T)
        return out.sum(axis=0)


def sample_positions(rng: np.random.Generator) -> list[dict]:
    """Directions of a pseudo scene's sources: {"azimuth", "elevation", "distance"} in degrees and metres.

    Azimuths are uniform over the camera's horizontal view (tas_eval frames: FOV_DEG) with at least
    MIN_GAP_DEG between any two sources; a source that finds no free place is dropped, as the
    reference drops a patch that does not fit its canvas.
    """
    count = int(rng.choice(SOURCE_COUNTS, p=SOURCE_COUNT_P))
    half = FOV_DEG / 2 - MIN_GAP_DEG / 2
    out: list[dict] = []
    for _ in range(count):
        for _try in range(20):
            az = float(rng.uniform(-half, half))
            if all(abs(az - p["azimuth"]) >= MIN_GAP_DEG for p in out):
                out.append({"azimuth": az, "elevation": float(rng.uniform(-ELEVATION_RANGE_DEG, ELEVATION_RANGE_DEG)),
                            "distance": RADIUS_M})
                break
    return out


def pseudo_scene(categories: list[str], positions: list[dict]) -> dict:
    """The scene of a pseudo example (no room), for its picture and its prompt."""
    return {"sources": [{"category": c, "trajectory": [{"t": 0.0, **p}]} for c, p in zip(categories, positions)]}


def pseudo_prompt(scene: dict) -> str:
    """The dense text of the scene's sources, as the benchmark writes it for a frame."""
    return dense_text([{"category": s["category"], "azimuth": s["trajectory"][0]["azimuth"],
                        "elevation": s["trajectory"][0]["elevation"]} for s in scene["sources"]])


def pseudo_frame(scene: dict, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3): the scene's picture, each source's object where its sound is placed."""
    return render_frames(scene, [0.0], size)[0]


class PseudoSampler:
    """Pseudo binaural training crops from the solo sources of a ``SoloSources``."""

    def __init__(self, solo, renderer: FOARenderer | None = None):
        self.solo = solo
        self.renderer = renderer if renderer is not None else FOARenderer(sr=solo.sr)

    def batch(self, step: int, batch_size: int) -> dict:
        """``mono`` (B, 1, W) = L + R and ``diff`` (B, 1, W) = L - R, divided by the RMS of the mono crop as
        every training crop; ``scenes`` (for ``pseudo_prompt`` / ``pseudo_frame``) and ``prompts``."""
        from baselines.common.solo_sources import PSEUDO_STREAM

        rng = self.solo.rng(step, PSEUDO_STREAM)
        mono, diff, scenes = [], [], []
        for _ in range(batch_size):
            positions = sample_positions(rng)
            names, crops = self.solo.draw(rng, len(positions))
            positions = positions[: len(names)]
            binaural = self.renderer.render(crops, [p["azimuth"] for p in positions], [p["elevation"] for p in positions])
            m = mono_from_binaural(binaural)[0]
            scale = max(float(np.sqrt(np.mean(m ** 2))), 1e-8)
            mono.append(m / scale)
            diff.append((binaural[0] - binaural[1]) / scale)
            scenes.append(pseudo_scene(names, positions))
        return {"mono": np.stack(mono)[:, None].astype(np.float32), "diff": np.stack(diff)[:, None].astype(np.float32),
                "scenes": scenes, "prompts": [pseudo_prompt(s) for s in scenes]}
