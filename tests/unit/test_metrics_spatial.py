"""Spatial metrics: known answers (an interaural delay of k samples gives an ITD of k / sr, an interaural
gain shifts the ILD and SPL difference by its dB value, ...) and agreement to 1e-5 relative with the
independent per-clip implementations in tests/unit/metrics_reference.py, on synthetic clips and on
the tiny benchmark's real test clips with their annotations, each also perturbed."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import metrics_reference as R  # noqa: E402

from tas_eval.errors import UserError  # noqa: E402
from tas_eval.metrics import compute_metrics  # noqa: E402
from tas_eval.metrics.spatial import _binaural_cues, dominant_source, frame_label, spl_profile  # noqa: E402

SR = 16000
SPATIAL_IDS = ["spl", "ild", "itd", "ic"]
RTOL, ATOL = 1e-5, 1e-9


def _agreement(pairs, annotations=None):
    ids = SPATIAL_IDS + (["direction_acc"] if annotations is not None else [])
    ours = compute_metrics([p for _, p, _ in pairs], [r for _, _, r in pairs], SR, metric_ids=ids, annotations=annotations)
    refs = [R.spatial_metrics(R.normalize(p), R.normalize(r), SR, a)
            for (_, p, r), a in zip(pairs, annotations or [None] * len(pairs))]
    return ours, {m: np.array([v[m] for v in refs]) for m in ids}, [name for name, _, _ in pairs]


def _check(agreement, metric_id):
    ours, want, names = agreement
    for name, got, expected in zip(names, ours[metric_id], want[metric_id]):
        assert got == pytest.approx(expected, rel=RTOL, abs=ATOL, nan_ok=True), f"{metric_id} on {name}: {got!r} vs {expected!r}"


@pytest.fixture(scope="module")
def synthetic_agreement():
    pairs = R.perturbed_pairs([R.synthetic_binaural(4, 1.5)])
    silent_start = R.synthetic_binaural(6, 1.0)
    silent_start[:, :4000] = 0.0  # inactive blocks at the start
    odd = R.synthetic_binaural(9, 1.0)[:, :15837]  # a partial last block, dropped
    pairs += [("silent_start:right_delay", np.stack([silent_start[0], R.shift(silent_start[1], 4)]), silent_start),
              ("odd:swap", odd[::-1].copy(), odd)]
    return _agreement(pairs)


@pytest.fixture(scope="module")
def tiny_agreement(tiny_benchmark):
    ids = tiny_benchmark.split_ids(1, "test")
    clips = [tiny_benchmark.binaural(i).astype(np.float64) for i in ids]
    annotations = [tiny_benchmark.annotation(i) for i in ids]
    pairs = R.perturbed_pairs(clips, seed=2)
    per_pair = [annotations[int(name.split(":")[0])] for name, _, _ in pairs]
    return _agreement(pairs, per_pair)


@pytest.mark.parametrize("metric_id", SPATIAL_IDS)
def test_agrees_with_reference_on_synthetic_clips(synthetic_agreement, metric_id):
    _check(synthetic_agreement, metric_id)


@pytest.mark.parametrize("metric_id", SPATIAL_IDS + ["direction_acc"])
def test_agrees_with_reference_on_tiny_benchmark_clips(tiny_agreement, metric_id):
    _check(tiny_agreement, metric_id)


def test_agrees_with_reference_at_a_rate_whose_blocks_are_not_whole_hops():
    """At 22.05 kHz a 0.1 s block (2205 samples) holds 13 or 14 frames of the 160-sample hop."""
    sr = 22050
    ref = R.synthetic_binaural(13, 1.0, sr=sr)
    pairs = [("right_delay", np.stack([ref[0], R.shift(ref[1], 6)]), ref), ("noise", ref + 0.05 * np.flipud(ref), ref)]
    ours = compute_metrics([p for _, p, _ in pairs], [r for _, _, r in pairs], sr, metric_ids=SPATIAL_IDS)
    for i, (name, p, r) in enumerate(pairs):
        want = R.spatial_metrics(R.normalize(p), R.normalize(r), sr)
        for m in SPATIAL_IDS:
            assert ours[m][i] == pytest.approx(want[m], rel=RTOL, abs=ATOL), f"{m} on {name}"


def test_swapping_the_ears_is_a_spatial_error_on_real_clips(tiny_agreement):
    ours, _, names = tiny_agreement
    for i, name in enumerate(names):
        if name.endswith("swap"):
            assert ours["spl"][i] > 1.0 and ours["ild"][i] > 0.5 and ours["itd"][i] > 10.0, name


# ------------------------------------------------------------------------------------ known answers


@pytest.fixture(scope="module")
def noise():
    """A broadband source (white noise), 1.2 s."""
    return 0.3 * np.random.default_rng(21).standard_normal(19200)


def _values(pred, ref, ids=SPATIAL_IDS, **kw):
    return {k: float(v[0]) for k, v in compute_metrics([pred], [ref], SR, metric_ids=ids, **kw).items()}


def test_identical_signals_give_zero():
    ref = R.synthetic_binaural(12, 1.2)
    for m, v in _values(ref.copy(), ref).items():
        assert v == pytest.approx(0.0, abs=ATOL), m


@pytest.mark.parametrize("k", [1, 3, -5, 8])
def test_a_k_sample_interaural_delay_gives_an_itd_of_k_over_sr(noise, k):
    centred = np.stack([noise, noise])
    # The right ear hears the source k samples later: the left ear leads, a positive ITD.
    lateral = np.stack([noise, R.shift(noise, k)])
    itd = _binaural_cues(torch.from_numpy(lateral)[None], SR, None)["itd"][0]
    assert torch.all(itd == k / SR)
    assert _values(lateral, centred)["itd"] == pytest.approx(abs(k) / SR * 1e6, rel=1e-12)


def test_an_interaural_gain_shifts_ild_and_spl_by_its_level(noise):
    centred = np.stack([noise, noise])
    g = 0.5  # right ear 6.02 dB quieter
    values = _values(centred * np.array([[1.0], [g]]), centred)
    shift_db = 20 * math.log10(1 / g)
    n_frames = centred.shape[1] // 1600
    assert values["spl"] == pytest.approx(shift_db * math.sqrt(n_frames), rel=1e-12)
    assert values["ild"] == pytest.approx(shift_db, rel=1e-6)  # the per-bin eps of 1e-10 is all that is left
    assert values["itd"] == pytest.approx(0.0, abs=ATOL)
    assert values["ic"] == pytest.approx(0.0, abs=ATOL)


def test_interaural_coherence_is_one_for_equal_or_opposite_ears_and_low_for_independent_ones(noise):
    same = np.stack([noise, noise])
    cues = _binaural_cues(torch.from_numpy(same)[None], SR, None)
    assert torch.allclose(cues["ic"], torch.ones_like(cues["ic"]), rtol=1e-12)
    assert _values(np.stack([noise, -noise]), same)["ic"] == pytest.approx(0.0, abs=ATOL)
    other = 0.3 * np.random.default_rng(22).standard_normal(noise.shape)
    assert _values(np.stack([noise, other]), same)["ic"] > 0.7


def test_a_silent_reference_has_no_active_block():
    silent = np.zeros((2, 16000))
    values = _values(R.synthetic_binaural(1, 1.0), silent)
    assert all(math.isnan(values[m]) for m in ("ild", "itd", "ic"))
    assert math.isfinite(values["spl"])


def test_spl_profile_gives_direction_and_magnitude():
    t = np.arange(8000) / SR
    tone = np.sin(2 * np.pi * 440 * t)
    left_then_right = np.stack([np.concatenate([tone, 0.5 * tone]), np.concatenate([0.5 * tone, tone])])
    prof = spl_profile(left_then_right, SR)
    assert prof["t"].tolist() == pytest.approx([0.1 * i for i in range(10)])
    assert prof["direction"].tolist() == [1] * 5 + [-1] * 5
    assert prof["magnitude"] == pytest.approx(np.full(10, 20 * math.log10(2)), rel=1e-9)
    assert prof["sd"] == pytest.approx(prof["spl_left"] - prof["spl_right"])


# ----------------------------------------------------------------------------------- direction accuracy


def _annotation(labels, with_levels=True):
    frames = []
    for k, label in enumerate(labels):
        sources = []
        if label is not None:
            near = {"category": "cello", "azimuth": 0.0, "elevation": 0.0, "distance": 1.0, "label": label}
            far = {"category": "piano", "azimuth": 0.0, "elevation": 0.0, "distance": 4.0,
                   "label": {"left": "right", "right": "left", "center": "left"}[label]}
            if with_levels:
                near["level_db"], far["level_db"] = -10.0, -30.0
            sources = [far, near]  # the dominant one is not first
        frames.append({"t0": round(k * 0.1, 3), "sources": sources, "text": ""})
    return {"frame_rate": 10, "frames": frames}


def _panned(noise, gains_db):
    """1600-sample frames of ``noise`` with the given left-minus-right level difference per frame."""
    frames = []
    for k, g in enumerate(gains_db):
        seg = noise[k * 1600 : (k + 1) * 1600]
        frames.append(np.stack([seg * 10 ** (g / 40), seg * 10 ** (-g / 40)]))
    return np.concatenate(frames, axis=1)


@pytest.mark.parametrize("with_levels", [True, False])
def test_direction_accuracy_known_answers(noise, with_levels):
    labels = ["left"] * 4 + ["center"] * 3 + ["right"] * 3 + [None] * 2  # the last two frames have no source
    pred = _panned(noise, [6, 6, 6, 6, 0, 0.5, -0.5, -6, -6, -6, 6, 6])
    ann = [_annotation(labels, with_levels)]
    ids = ["direction_acc"]
    assert _values(pred, pred, ids, annotations=ann)["direction_acc"] == 1.0
    assert _values(pred[::-1].copy(), pred, ids, annotations=ann)["direction_acc"] == pytest.approx(3 / 10)
    # A prediction that puts everything in the centre gets exactly the centre frames right.
    centre = np.repeat(pred.mean(0, keepdims=True), 2, axis=0)
    assert _values(centre, pred, ids, annotations=ann)["direction_acc"] == pytest.approx(3 / 10)


def test_direction_accuracy_is_nan_without_annotated_frames_and_needs_annotations(noise):
    pred = np.stack([noise, noise])
    assert math.isnan(_values(pred, pred, ["direction_acc"], annotations=[_annotation([None] * 5)])["direction_acc"])
    with pytest.raises(UserError, match="annotations"):
        compute_metrics([pred], [pred], SR, metric_ids=["direction_acc"])
    assert "direction_acc" not in compute_metrics([pred], [pred], SR)  # all metrics: skipped without annotations


def test_dominant_source_is_the_loudest_else_the_nearest():
    a = {"label": "left", "distance": 3.0, "level_db": -5.0}
    b = {"label": "right", "distance": 1.0, "level_db": -9.0}
    assert dominant_source([a, b])["label"] == "left"
    assert dominant_source([{k: v for k, v in a.items() if k != "level_db"}, b])["label"] == "right"
    assert dominant_source([]) is None


def test_label_only_frames_count_when_their_sources_share_a_side():
    """TASBench annotations carry names and left/center/right only: two sounding objects on one side name
    that side; on different sides they name none and the frame is skipped (never a KeyError)."""
    assert frame_label([{"category": "cello", "label": "left"}, {"category": "piano", "label": "left"}]) == "left"
    assert frame_label([{"category": "cello", "label": "left"}, {"category": "piano", "label": "right"}]) is None
    assert frame_label([{"category": "drum", "label": "center"}]) == "center"
    assert frame_label([]) is None
    assert dominant_source([{"category": "cello", "label": "left"}, {"category": "piano", "label": "right"}]) is None


def test_direction_accuracy_on_tasbench_frames_known_answer(noise):
    def objects(*labels):
        return [{"category": c, "label": lab} for c, lab in zip(("cello", "piano", "drum"), labels)]

    sources = [objects("left", "left"), objects("left", "right"), objects("right"), objects("center", "center"),
               objects("left", "right", "center"), objects()]
    ann = [{"frame_rate": 10, "frames": [{"t0": round(k * 0.1, 3), "sources": s, "text": ""} for k, s in enumerate(sources)]}]
    # left-louder in every frame: right for frame 0 (left, left); frames 1 and 4 name no side; frame 5 has no source
    pred = _panned(noise, [6, 6, 6, 6, 6, 6])
    assert _values(pred, pred, ["direction_acc"], annotations=ann)["direction_acc"] == pytest.approx(1 / 3)
    centre = _panned(noise, [0] * 6)
    assert _values(centre, pred, ["direction_acc"], annotations=ann)["direction_acc"] == pytest.approx(1 / 3)
