"""The localizer's measures on cases with known answers, read through a stand-in localizer whose answer
is the side of each frame's level difference (so the expected values can be counted by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tas_eval.metrics import compute_metrics
from tas_eval.metrics import localizer as L
from tas_eval.metrics.localization import frame_kinds

SR = 16000
FRAME = 1600


class LevelLocalizer:
    """Azimuth +60 (left) / -60 (right) / 0 per 0.1 s frame by the sign of the level difference (+-1 dB)."""

    id = "level"
    weights_sha256 = "f" * 64

    def describe(self):
        return {"id": self.id, "sha256": self.weights_sha256}

    def locate(self, audio: torch.Tensor) -> dict:
        b, _, t = audio.shape
        n = t // FRAME
        frames = audio[..., : n * FRAME].reshape(b, 2, n, FRAME).double()
        ild = 10 * torch.log10(frames[:, 0].pow(2).sum(-1) / frames[:, 1].pow(2).sum(-1).clamp_min(1e-20))
        az = torch.where(ild > 1, 60.0, torch.where(ild < -1, -60.0, 0.0)).double()
        p = torch.zeros(b, n, L.AZIMUTH_BINS, dtype=torch.float64)
        p.scatter_(-1, torch.as_tensor(L.azimuth_bin(az.numpy()))[..., None], 1.0)
        return {"azimuth": az, "elevation": torch.zeros_like(az), "distance": torch.full_like(az, 2.0),
                "p_azimuth": p}


@pytest.fixture(autouse=True)
def level_localizer(monkeypatch):
    monkeypatch.setattr(L, "load_localizer", lambda path=None, device="cpu": LevelLocalizer())


def _panned(gains_db, seed=0):
    noise = np.random.default_rng(seed).standard_normal(FRAME * len(gains_db)) * 0.1
    return np.concatenate([np.stack([seg * 10 ** (g / 40), seg * 10 ** (-g / 40)])
                           for g, seg in zip(gains_db, noise.reshape(len(gains_db), FRAME))], axis=1)


def _source(label, azimuth, level=None, moving=False):
    s = {"category": "cello", "label": label, "azimuth": azimuth, "elevation": 0.0, "distance": 2.0, "moving": moving}
    if level is not None:
        s["ear_level_db"] = level
    return s


def _annotation(frames):
    return {"frame_rate": 10, "frames": [{"t0": round(k * 0.1, 3), "sources": s, "text": ""} for k, s in enumerate(frames)]}


def test_one_dominant_source_needs_a_6_db_lead_at_the_ears():
    ann = _annotation([[_source("left", 40, -10), _source("right", -40, -17)],   # 7 dB: one dominant
                       [_source("left", 40, -10), _source("right", -40, -14)],   # 4 dB: comparable
                       [_source("left", 40)],                                    # alone, no level: dominant
                       [_source("left", 40), _source("right", -40)],             # no levels: comparable
                       []])                                                      # silence: not a frame
    kinds = frame_kinds(ann, 5 * FRAME, SR)
    assert [k["dominant"]["label"] if k["dominant"] else None for k in kinds] == ["left", None, "left", None]
    assert [len(k["comparable"]) for k in kinds] == [1, 2, 1, 2]


def _values(pred, ref, ann, ids, cf=None):
    return {k: float(v[0]) for k, v in compute_metrics([pred], [ref], SR, metric_ids=ids, annotations=[ann],
                                                       counterfactual=None if cf is None else [cf]).items()}


def test_side_accuracy_counts_frames_with_one_dominant_source():
    labels = ["left", "left", "center", "right", "right", "left"]
    ann = _annotation([[_source(lab, {"left": 40, "center": 0, "right": -40}[lab], -10, moving=(k == 5))]
                       for k, lab in enumerate(labels)])
    ref = _panned([6, 6, 0, -6, -6, 6])
    ids = ["side_acc", "side_acc_static", "side_acc_moving", "doa_err", "doa_ref_err", "dist_ref_err"]
    v = _values(ref, ref, ann, ids)
    assert v == {"side_acc": 1.0, "side_acc_static": 1.0, "side_acc_moving": 1.0, "doa_err": pytest.approx(20 * 5 / 6),
                 "doa_ref_err": 0.0, "dist_ref_err": 0.0}
    swapped = _values(ref[::-1].copy(), ref, ann, ids)
    assert swapped["side_acc"] == pytest.approx(1 / 6)  # only the center frame stays right
    assert swapped["side_acc_moving"] == 0.0 and swapped["side_acc_static"] == pytest.approx(1 / 5)
    assert swapped["doa_ref_err"] == pytest.approx(120 * 5 / 6)  # +-60 against -+60 on five frames
    centre = _values(_panned([0] * 6), ref, ann, ["side_acc"])
    assert centre["side_acc"] == pytest.approx(1 / 6)


def test_several_comparable_sources_are_scored_apart():
    ann = _annotation([[_source("left", 40, -10), _source("right", -40, -12)]] * 2)
    ref = _panned([6, 6])
    v = _values(ref, ref, ann, ["side_acc_multi"])
    assert v["side_acc_multi"] == 0.5  # one peak (left) for two sources: one of two matched
    out = compute_metrics([ref], [ref], SR, metric_ids=["side_acc"], annotations=[ann])
    assert np.isnan(out["side_acc"][0])  # no frame with one dominant source: no value, never mixed in


def test_follow_counts_lateral_frames_that_flip_with_the_prompt():
    ann = _annotation([[_source(lab, 40 if lab == "left" else -40, -10)] for lab in ("left", "right", "left", "center")])
    pred = _panned([6, -6, 6, 0])
    flipped = _panned([-6, 6, 0, 0])  # the third frame moves to the center only: not a flip
    v = _values(pred, pred, ann, ["follow", "follow_spl"], cf=flipped)
    assert v == {"follow": pytest.approx(2 / 3), "follow_spl": pytest.approx(2 / 3)}
    same = _values(pred, pred, ann, ["follow", "follow_spl"], cf=pred)
    assert same == {"follow": 0.0, "follow_spl": 0.0}
    assert "follow" not in compute_metrics([pred], [pred], SR, annotations=[ann])  # no counterfactual: absent
