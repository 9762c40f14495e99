"""Bootstrap intervals (tas_eval.stats) against a plain Python loop and against known answers."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tas_eval import stats as S


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), written out."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def loop_over_splits(per_split, resamples, seed, level):
    """The documented procedure as a loop: same index draws, everything else in plain Python."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(values), size=(resamples, len(values))).tolist() for values in per_split]
    stats = []
    for b in range(resamples):
        split_means = []
        for values, idx in zip(per_split, draws):
            split_means.append(sum(values[i] for i in idx[b]) / len(values))
        stats.append(sum(split_means) / len(split_means))
    stats.sort()
    tail = (1 - level) / 2
    mean = sum(sum(v) / len(v) for v in per_split) / len(per_split)
    return mean, _quantile(stats, tail), _quantile(stats, 1 - tail)


def python_random_bootstrap(per_split, resamples, seed, level):
    """An independent bootstrap with Python's own generator: agrees only within resampling noise."""
    rnd = random.Random(seed)
    stats = []
    for _ in range(resamples):
        means = [sum(rnd.choice(v) for _ in v) / len(v) for v in per_split]
        stats.append(sum(means) / len(means))
    stats.sort()
    tail = (1 - level) / 2
    return _quantile(stats, tail), _quantile(stats, 1 - tail)


def test_paired_bootstrap_equals_the_loop():
    d = np.random.default_rng(3).normal(0.2, 1.0, size=37).tolist()
    got = S.paired_bootstrap(d, resamples=2000, seed=7, level=0.9)
    want = loop_over_splits([d], 2000, 7, 0.9)
    assert got == pytest.approx(want, abs=1e-12)


def test_mean_over_splits_equals_the_loop():
    rng = np.random.default_rng(4)
    splits = [rng.normal(1.0, 0.5, size=n).tolist() for n in (12, 30, 5)]
    got = S.bootstrap_mean_over_splits(splits, resamples=1500, seed=11)
    want = loop_over_splits(splits, 1500, 11, 0.95)
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] == pytest.approx(np.mean([np.mean(s) for s in splits]))


def test_agrees_with_an_independent_generator_on_a_large_case():
    rng = np.random.default_rng(5)
    splits = [rng.exponential(1.0, size=200).tolist(), rng.exponential(2.0, size=150).tolist()]
    mean, low, high = S.bootstrap_mean_over_splits(splits, resamples=4000, seed=0)
    ref_low, ref_high = python_random_bootstrap(splits, 4000, 1, 0.95)
    width = high - low
    assert low == pytest.approx(ref_low, abs=0.05 * width) and high == pytest.approx(ref_high, abs=0.05 * width)
    # And with the normal approximation: the standard error of the mean of two split means.
    se = math.sqrt(sum(np.var(s, ddof=1) / len(s) for s in splits)) / 2
    assert width == pytest.approx(2 * 1.96 * se, rel=0.08)
    assert low < mean < high


def test_one_split_is_the_paired_bootstrap():
    d = np.random.default_rng(6).standard_normal(25)
    assert S.bootstrap_mean_over_splits([d], resamples=500, seed=2) == S.paired_bootstrap(d, resamples=500, seed=2)


def test_constant_differences_give_a_zero_width_interval_at_the_constant():
    mean, low, high = S.paired_bootstrap([0.25] * 40)
    assert mean == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)
    assert S.paired_bootstrap(np.zeros(10)) == (0.0, 0.0, 0.0)
    assert S.bootstrap_mean_over_splits([[1.0] * 5, [3.0] * 8]) == pytest.approx((2.0, 2.0, 2.0))


def test_symmetric_noise_contains_zero_and_a_clear_shift_does_not():
    noise = np.random.default_rng(8).standard_normal(100)
    symmetric = np.concatenate([noise, -noise])  # mean exactly 0
    mean, low, high = S.paired_bootstrap(symmetric)
    assert mean == pytest.approx(0.0, abs=1e-12) and S.contains_zero(low, high)
    mean, low, high = S.paired_bootstrap(noise[:50] * 0.1 + 1.0)
    assert not S.contains_zero(low, high) and 0.9 < low < mean < high < 1.1
    mean, low, high = S.bootstrap_mean_over_splits([noise[:50] * 0.1 - 1.0, noise[50:] * 0.1 - 1.0])
    assert high < 0


def test_same_seed_same_interval_and_the_level_widens_it():
    d = np.random.default_rng(9).standard_normal(60)
    assert S.paired_bootstrap(d, seed=1) == S.paired_bootstrap(d, seed=1)
    assert S.paired_bootstrap(d, seed=1) != S.paired_bootstrap(d, seed=2)
    _, lo90, hi90 = S.paired_bootstrap(d, level=0.9)
    _, lo99, hi99 = S.paired_bootstrap(d, level=0.99)
    assert lo99 < lo90 and hi90 < hi99


def test_bad_input_is_refused():
    for bad in ([], [1.0, float("nan")], [[1.0, 2.0]]):
        with pytest.raises(ValueError):
            S.paired_bootstrap(bad)
    with pytest.raises(ValueError):
        S.bootstrap_mean_over_splits([])
    with pytest.raises(ValueError):
        S.paired_bootstrap([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError):
        S.paired_bootstrap([1.0, 2.0], resamples=0)
