"""The binaural localizer: features, bins and decoding with known answers, the spherical head, and a
tiny training run (loss falls, shapes, the checkpoint loads and is recorded by its sha256)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tas_eval.errors import UserError
from tas_eval.metrics import localizer as L
from tas_eval.metrics.localizer.features import N_MELS, binaural_features

SR = 16000


def _noise(seconds=1.0, seed=0):
    return np.random.default_rng(seed).standard_normal(int(SR * seconds)) * 0.1


def test_features_shapes_and_interaural_phase_known_answers():
    x = _noise()
    same = torch.from_numpy(np.stack([x, x]))[None]
    f = binaural_features(same)
    assert f.shape == (1, 4, 1 + len(x) // 160, N_MELS)
    assert torch.allclose(f[0, 0], f[0, 1])  # equal ears: equal log mel
    assert torch.allclose(f[0, 2], torch.ones_like(f[0, 2]), atol=1e-5)  # cos(IPD) = 1
    assert torch.allclose(f[0, 3], torch.zeros_like(f[0, 3]), atol=1e-5)  # sin(IPD) = 0
    delayed = np.stack([x, np.roll(x, 3)])  # the right ear 3 samples late: the left ear leads
    f_lead = binaural_features(torch.from_numpy(delayed)[None])
    f_lag = binaural_features(torch.from_numpy(delayed[::-1].copy())[None])
    assert torch.allclose(f_lead[0, 3, 5:-5], -f_lag[0, 3, 5:-5], atol=1e-4)  # swapping the ears flips sin(IPD)
    louder = binaural_features(torch.from_numpy(np.stack([x, 0.5 * x]))[None])
    assert torch.allclose(louder[0, 0] - louder[0, 1], torch.full_like(louder[0, 0], np.log(4.0)), atol=1e-3)


def _ild_db_and_lag(out: np.ndarray) -> tuple[float, int]:
    ild = 10 * np.log10(np.sum(out[0] ** 2) / np.sum(out[1] ** 2))
    xcorr = [np.dot(out[0], np.roll(out[1], -lag)) for lag in range(-8, 9)]
    return float(ild), int(np.argmax(xcorr)) - 8


def test_one_cue_renderings_keep_one_interaural_difference_and_drop_the_other():
    from tas_eval.metrics.localizer.training import level_only, time_only

    x = _noise()
    both = np.stack([x, 0.5 * np.roll(x, 3)])  # right ear 6 dB down and 3 samples late
    assert _ild_db_and_lag(both) == (pytest.approx(20 * np.log10(2), abs=0.1), 3)
    ild, lag = _ild_db_and_lag(level_only(both))
    assert ild == pytest.approx(20 * np.log10(2), abs=0.1) and lag == 0
    ild, lag = _ild_db_and_lag(time_only(both))
    assert ild == pytest.approx(0.0, abs=0.1) and lag == 3
    same = np.stack([x, x]).astype(np.float32)
    for f in (level_only, time_only):  # nothing to remove from identical ears
        assert np.allclose(f(same), same, atol=1e-5)


def test_the_shipped_localizer_reads_each_interaural_cue_alone():
    """Known answers with the packaged weights: identical ears are center; a louder left ear alone
    (10 dB, no time difference) and a leading left ear alone (0.4 ms, no level difference) are left."""
    loc = L.load_localizer()
    x = _noise(2.0)
    cases = {"center": np.stack([x, x]), "left": np.stack([x * 10 ** (5 / 20), x * 10 ** (-5 / 20)])}
    lead = np.stack([x, np.roll(x, 6)])
    for expected, audio in list(cases.items()) + [("left", lead)]:
        az = loc.locate(torch.from_numpy(audio.astype(np.float32))[None])["azimuth"][0, 2:-2].numpy()
        median = float(np.median(az))
        assert (abs(median) < 15.0) if expected == "center" else (median > 15.0), (expected, median)


def test_bins_and_decoding():
    assert L.azimuth_bin([-180.0, -175.0, 0.0, 5.0, 179.9, 180.0]).tolist() == [0, 0, 18, 18, 35, 0]
    assert L.elevation_bin([-90.0, 0.0, 9.9, 10.0, 90.0]).tolist() == [0, 2, 2, 3, 6]
    assert L.distance_class([0.0, 0.26, 2.0, 12.0]).tolist() == [0, 1, 4, 20]
    post = torch.zeros(3, L.AZIMUTH_BINS, dtype=torch.float64)
    post[0, 18] = 1.0  # one bin: its centre
    post[1, [18, 19]] = 0.5  # two equal neighbours: their boundary
    post[2, [35, 0]] = 0.5  # across +-180 degrees
    decoded = L.decode_azimuth(post)
    assert float(decoded[0]) == pytest.approx(5.0) and float(decoded[1]) == pytest.approx(10.0)
    assert abs(float(decoded[2])) == pytest.approx(180.0)


def test_the_spherical_head_has_the_cues_of_a_head():
    from tas_eval.data.builtin.hrir import HRIRSet
    from tas_eval.data.builtin.spherical_head import spherical_head_set

    kemar, sphere = HRIRSet.load(), spherical_head_set()
    w = sphere.solid_angle_weights()
    assert np.sum(w * np.sum(sphere.irs**2, axis=(1, 2))) == pytest.approx(
        np.sum(kemar.solid_angle_weights() * np.sum(kemar.irs**2, axis=(1, 2))), rel=1e-6)
    for az, sign in ((90.0, 1), (-90.0, -1)):
        ir = sphere.lookup(az, 0.0)
        energy = (ir**2).sum(axis=1)
        assert sign * 10 * np.log10(energy[0] / energy[1]) > 6.0  # the near ear is louder
        onset = [int(np.argmax(np.abs(ch) > 0.1 * np.abs(ch).max())) for ch in ir]
        assert sign * (onset[1] - onset[0]) > 15  # and earlier (about 0.6 ms at 44.1 kHz)
    front = sphere.lookup(0.0, 0.0)
    assert np.allclose(front[0], front[1], atol=1e-9)  # symmetric


def test_a_tiny_training_run_lowers_the_loss_and_the_checkpoint_loads(tiny_benchmark, tmp_path):
    from tas_eval.metrics.localizer import training

    out = tmp_path / "loc.pt"
    record = training.train(tiny_benchmark, out, profile="tiny", seed=0)
    assert record["loss_last"] < record["loss_first"]
    assert {"kemar", "spherical"} <= set(record["held_out"]) <= {"kemar", "spherical", "level_only", "time_only"}
    loc = L.load_localizer(out)
    assert loc.weights_sha256 == record["sha256"] and loc.describe() == {"id": "tas_loc", "sha256": record["sha256"]}
    audio = torch.from_numpy(np.stack([_noise(2.0), _noise(2.0, 1)]))[None]
    located = loc.locate(audio)
    assert located["p_azimuth"].shape == (1, 20, L.AZIMUTH_BINS) and located["azimuth"].shape == (1, 20)
    assert torch.allclose(located["p_distance"].sum(-1), torch.ones(1, 20, dtype=torch.float64))


def test_the_training_windows_do_not_depend_on_the_number_of_workers(tiny_benchmark):
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.localizer import training

    pool = training.source_pool(tiny_benchmark, 1, "train")
    one, two = (training.make_set(pool, 6, 5, category_names(), "windows", workers) for workers in (1, 2))
    assert one.keys() == two.keys()
    for key in one:
        a, b = (np.asarray(x) for x in (one[key], two[key]))
        if a.dtype == object:
            assert a.tolist() == b.tolist(), key
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key


def test_a_file_that_is_not_a_localizer_is_named(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"weights": 1}, bad)
    with pytest.raises(UserError, match=f"{bad}: is not a localizer checkpoint"):
        L.load_localizer(bad)
    with pytest.raises(UserError, match="does not exist"):
        L.load_localizer(tmp_path / "none.pt")
