"""Percentile bootstrap intervals for the leaderboard: a mean over test items, and paired differences.

Every function takes per-item values in the unit of their metric (the metric's own unit, e.g. dB for
snr, a fraction for direction_acc) and returns (mean, low, high) in that same unit: the statistic on
the data as given, and the percentile bootstrap interval at ``level`` (0.95: the 2.5th and 97.5th
percentiles of the resampled statistic, numpy's linear interpolation between order statistics).

Resampling is exactly specified, so that an independent implementation can reproduce the numbers:
``rng = numpy.random.default_rng(seed)``; for each split in the given order, ``rng.integers(0, n,
size=(resamples, n))`` draws the item indices of every resample of that split at once (row b is
resample b). The same inputs, seed and resample count therefore give the same interval on every
machine.

Paired differences: for two systems scored on the same items, pass the per-item differences
(system - other, matched by item). The interval then reflects only the item-to-item variation of
the difference, which is what decides whether two systems can be told apart on this test set.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95


def _values(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    """``values`` as a 1-D float64 array; ValueError when it is empty or holds NaN or infinity."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return arr


def _check(resamples: int, level: float) -> None:
    if not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


@functools.lru_cache(maxsize=4)
def _indices(sizes: tuple[int, ...], resamples: int, seed: int) -> tuple[np.ndarray, ...]:
    """The resampled item indices of each split, (resamples, n) each, drawn as the module docstring says.

    Cached (read-only arrays) because a leaderboard resamples many metrics and rows over the same
    item counts; drawing the indices is half the cost of one interval.
    """
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        idx = rng.integers(0, n, size=(resamples, n))
        idx.setflags(write=False)
        out.append(idx)
    return tuple(out)


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of ``stats`` (linear interpolation)."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_mean_over_splits(
    per_split_values: Sequence[Sequence[float] | np.ndarray],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """The mean of the split means and its percentile bootstrap interval, in the values' unit.

    ``per_split_values`` holds one 1-D array of per-item values per split (or per-item paired
    differences, for the interval of a difference between two systems). Each resample draws
    ``n_s`` items with replacement within each split ``s`` independently and takes the mean of the
    split means. Returns (mean of split means of the data, low, high).
    """
    _check(resamples, level)
    splits = [_values(v, f"split {i} values") for i, v in enumerate(per_split_values)]
    if not splits:
        raise ValueError("per_split_values must hold at least one split")
    mean = float(np.mean([s.mean() for s in splits]))
    indices = _indices(tuple(len(s) for s in splits), int(resamples), int(seed))
    resampled = np.zeros(int(resamples), dtype=np.float64)
    for values, idx in zip(splits, indices):
        resampled += values[idx].mean(axis=1)
    resampled /= len(splits)
    low, high = _percentiles(resampled, level)
    return mean, low, high


def paired_bootstrap(
    differences: Sequence[float] | np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """The mean of per-item paired differences and its percentile bootstrap interval, in the metric's unit.

    ``differences`` are (system A - system B) per item, over the items both scored. Resamples the
    items with replacement (the one-split case of bootstrap_mean_over_splits, same draws). Returns
    (mean difference, low, high); an interval that contains 0 means the two systems cannot be told
    apart on these items at this level.
    """
    return bootstrap_mean_over_splits([differences], resamples=resamples, seed=seed, level=level)


def contains_zero(low: float, high: float) -> bool:
    """Whether the interval [low, high] contains 0 (the two systems are not distinguishable)."""
    return low <= 0.0 <= high
