"""Signal metrics: known answers, and agreement to 1e-5 relative with the independent per-clip
NumPy/librosa/scipy implementations of the reference formulas (tests/unit/metrics_reference.py),
on synthetic binaural clips and on the tiny benchmark's real test clips, each also perturbed
(gain, interaural gain, delay, one-ear delay, noise, channel swap, mono)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import metrics_reference as R  # noqa: E402

import librosa  # noqa: E402
import scipy.signal  # noqa: E402
import torch  # noqa: E402

from tas_eval.metrics import compute_metrics  # noqa: E402
from tas_eval.metrics.transforms import STFTParams, hilbert_envelope, stft  # noqa: E402

SR = 16000
SIGNAL_IDS = ["stft", "env", "wav", "snr", "mag", "phase_diff", "amp_pb", "pha_pb", "amp_richard", "pha_richard", "mrstft"]
DISTANCES = [m for m in SIGNAL_IDS if m != "snr"]
RTOL = 1e-5
ATOL = 1e-9  # for values that are 0 in exact arithmetic


def _agreement(pairs):
    """(our values, reference values) for every signal metric over the (name, pred, ref) pairs."""
    ours = compute_metrics([p for _, p, _ in pairs], [r for _, _, r in pairs], SR, metric_ids=SIGNAL_IDS)
    refs = [R.signal_metrics(R.normalize(p), R.normalize(r)) for _, p, r in pairs]
    want = {m: np.array([v[m] for v in refs]) for m in SIGNAL_IDS}
    return ours, want, [name for name, _, _ in pairs]


@pytest.fixture(scope="module")
def synthetic_agreement():
    pairs = R.perturbed_pairs([R.synthetic_binaural(0, 1.0)])
    rng = np.random.default_rng(5)
    silent_start = R.synthetic_binaural(7, 1.0)
    silent_start[:, :4000] = 0.0  # a quarter second of digital silence: exactly zero STFT bins
    odd = R.synthetic_binaural(8, 1.0)[:, :15837]  # odd length, not a multiple of the hop
    pairs += [
        ("silent_start:noise", silent_start + 0.01 * rng.standard_normal(silent_start.shape), silent_start),
        ("silent_start:delay", R.shift(silent_start, 2), silent_start),
        ("odd:noise", odd + 0.02 * rng.standard_normal(odd.shape), odd),
        ("odd:swap", odd[::-1].copy(), odd),
    ]
    return _agreement(pairs)


@pytest.fixture(scope="module")
def tiny_agreement(tiny_benchmark):
    ids = tiny_benchmark.split_ids(1, "test")
    clips = [tiny_benchmark.binaural(i).astype(np.float64) for i in ids]
    kinds = ("identical", "delay", "right_delay", "noise", "swap", "mono")
    return _agreement(R.perturbed_pairs(clips, seed=1, kinds=kinds))


def _check(agreement, metric_id):
    ours, want, names = agreement
    for name, got, expected in zip(names, ours[metric_id], want[metric_id]):
        assert got == pytest.approx(expected, rel=RTOL, abs=ATOL), f"{metric_id} on {name}: {got!r} vs {expected!r}"


@pytest.mark.parametrize("metric_id", SIGNAL_IDS)
def test_agrees_with_reference_on_synthetic_clips(synthetic_agreement, metric_id):
    _check(synthetic_agreement, metric_id)


@pytest.mark.parametrize("metric_id", SIGNAL_IDS)
def test_agrees_with_reference_on_tiny_benchmark_clips(tiny_agreement, metric_id):
    _check(tiny_agreement, metric_id)


def test_the_perturbations_are_not_trivial(tiny_agreement):
    """Guard for the agreement tests: the perturbed pairs must give clearly non-zero errors."""
    ours, _, names = tiny_agreement
    for name, stft, pha in zip(names, ours["stft"], ours["pha_pb"]):
        if name.endswith(("noise", "delay", "swap", "mono")):
            assert stft > 1e-3 and pha > 1e-2, name


@pytest.mark.parametrize("params", [STFTParams(512, 160, 400, "constant"), STFTParams(2048, 480, 1920, "reflect"),
                                    STFTParams(512, 50, 240, "reflect")])
def test_stft_is_librosas(params):
    x = R.synthetic_binaural(1, 0.5)[0]
    want = librosa.stft(x, n_fft=params.n_fft, hop_length=params.hop, win_length=params.win, center=True,
                        pad_mode=params.pad_mode).T
    got = stft(torch.from_numpy(x), params).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("length", [8000, 8001])
def test_hilbert_envelope_is_scipys(length):
    x = R.synthetic_binaural(2, 0.6)[:, :length]
    want = np.abs(scipy.signal.hilbert(x, axis=-1))
    np.testing.assert_allclose(hilbert_envelope(torch.from_numpy(x)).numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(hilbert_envelope(torch.from_numpy(x), torch.float32).numpy(), want, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------ known answers


@pytest.fixture(scope="module")
def noise_clip():
    """Independent white noise in each ear: every STFT bin is far above the dB and log floors."""
    return 0.3 * np.random.default_rng(11).standard_normal((2, 24000))


def _one(pred, ref, **kw):
    values = compute_metrics([pred], [ref], SR, metric_ids=SIGNAL_IDS, **kw)
    return {k: float(v[0]) for k, v in values.items()}


def test_identical_signals_give_zero_and_snr_at_its_cap():
    ref = R.synthetic_binaural(3, 1.5)
    values = _one(ref.copy(), ref)
    for m in DISTANCES:
        assert values[m] == pytest.approx(0.0, abs=ATOL), m
    y = R.normalize(ref)
    assert values["snr"] == pytest.approx(10 * math.log10((np.mean(y ** 2) + 1e-4) / 1e-4), rel=1e-12)


def test_peak_normalization_removes_a_gain(noise_clip):
    values = _one(0.25 * noise_clip, noise_clip)
    for m in DISTANCES:
        assert values[m] == pytest.approx(0.0, abs=ATOL), m


def test_pure_gain_without_normalization(noise_clip):
    g, y = 0.5, noise_clip
    values = _one(g * y, y, normalize=False)
    silence = _one(np.zeros_like(y), y, normalize=False)
    power = np.mean(y ** 2)
    assert values["wav"] == pytest.approx((1 - g) ** 2 * power * 1e3, rel=1e-12)
    assert values["snr"] == pytest.approx(10 * math.log10((power + 1e-4) / ((1 - g) ** 2 * power + 1e-4)), rel=1e-12)
    assert values["stft"] == pytest.approx((1 - g) ** 2 * silence["stft"], rel=1e-12)
    assert values["mag"] == pytest.approx(2 * values["stft"], rel=1e-12)
    assert values["env"] == pytest.approx((1 - g) * silence["env"], rel=1e-6)
    assert values["amp_richard"] == pytest.approx((1 - g) * silence["amp_richard"], rel=1e-6)
    # Every bin is 20 log10(1/g) dB quieter in both ears; the magnitudes scale by g at every resolution.
    assert values["amp_pb"] == pytest.approx(2 * 20 * math.log10(1 / g), rel=1e-9)
    assert values["mrstft"] == pytest.approx((1 - g) + math.log(1 / g), rel=1e-9)
    for m in ("phase_diff", "pha_pb", "pha_richard"):
        assert values[m] == pytest.approx(0.0, abs=1e-7), m


def test_a_sign_flip_is_a_phase_error_of_pi_everywhere(noise_clip):
    values = _one(-noise_clip, noise_clip)
    assert values["pha_pb"] == pytest.approx(2 * math.pi, rel=1e-9)  # pi in each ear
    assert values["phase_diff"] == pytest.approx(math.pi, rel=1e-9)
    assert values["pha_richard"] == pytest.approx(math.pi, rel=1e-6)
    for m in ("amp_pb", "amp_richard", "mrstft", "env"):
        assert values[m] == pytest.approx(0.0, abs=1e-6), m
    assert values["stft"] == pytest.approx(4 * _one(np.zeros_like(noise_clip), noise_clip)["stft"], rel=1e-12)


def test_items_of_different_lengths_and_batch_sizes_give_the_same_values():
    clips = [R.synthetic_binaural(s, d) for s, d in ((1, 1.0), (2, 1.3), (3, 1.0))]
    preds = [R.shift(c, 4) for c in clips]
    together = compute_metrics(preds, clips, SR, metric_ids=SIGNAL_IDS, batch_size=16)
    for i in range(len(clips)):
        alone = compute_metrics(preds[i : i + 1], clips[i : i + 1], SR, metric_ids=SIGNAL_IDS, batch_size=1)
        for m in SIGNAL_IDS:
            assert together[m][i] == pytest.approx(alone[m][0], rel=1e-12, abs=1e-12), m


def test_mrstft_does_not_depend_on_its_frame_blocks(monkeypatch):
    """Blocks of frames (the CPU path) and whole spectra (the GPU path) give the same value."""
    from tas_eval.metrics import signal as S

    ref = torch.from_numpy(R.normalize(R.synthetic_binaural(3, 1.0)))[None]
    pred = torch.from_numpy(R.normalize(R.shift(ref[0].numpy(), 2)))[None]
    values = []
    for block in (7, 64, 10**9):
        monkeypatch.setattr(S, "MRSTFT_BLOCK", block)
        values.append(float(S.mrstft(pred, ref, SR)[0]))
    assert values[0] == pytest.approx(values[2], rel=1e-12) and values[1] == pytest.approx(values[2], rel=1e-12)
    assert values[2] == pytest.approx(R.mrstft(pred[0].numpy(), ref[0].numpy()), rel=1e-9)


def test_the_gpu_layout_gives_the_cpu_layouts_values(tiny_benchmark, monkeypatch):
    """Every per-item metric with the layout a GPU takes (whole batches, whole spectra), run on a CPU."""
    import tas_eval.metrics as M
    from tas_eval.metrics import signal as S
    from tas_eval.metrics import transforms as T

    ids = tiny_benchmark.split_ids(1, "test")[:3]
    refs = [tiny_benchmark.binaural(i) for i in ids]
    preds = [R.shift(r, 3) + 0.01 * np.random.default_rng(k).standard_normal(r.shape) for k, r in enumerate(refs)]
    annotations = [tiny_benchmark.annotation(i) for i in ids]
    cpu = compute_metrics(preds, refs, SR, annotations=annotations, counterfactual=[p[::-1] for p in preds])
    for module in (M, S, T):
        monkeypatch.setattr(module, "whole_batches", lambda device: True)
    gpu = compute_metrics(preds, refs, SR, annotations=annotations, counterfactual=[p[::-1] for p in preds])
    assert sorted(gpu) == sorted(cpu) and len(cpu) >= 20
    for m in cpu:
        # the localizer is a float32 network: its sums run in another order over a batch
        rtol = 1e-6 if "localizer" in M.get_metric(m).needs else 1e-9
        np.testing.assert_allclose(gpu[m], cpu[m], rtol=rtol, atol=1e-12, err_msg=m)
