"""The metric contract: an exactly defined, versioned, batched function of (prediction, reference).

A per-item metric is a frozen ``Metric`` record whose ``fn`` maps a batch of predictions and
references, both (B, 2, T) torch tensors at ``sr`` Hz, to a (B,) float64 tensor of per-item values.
``fn`` is pure: its result depends only on its arguments. It may receive extra context keywords:
the ones named in ``needs`` (e.g. ``annotations``) and ``cache``, a ``tas_eval.metrics.transforms.
TransformCache`` that lets metrics evaluated on the same batch share one STFT per parameter set.
A metric must accept and ignore context keywords it does not use (``**ctx``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DIRECTIONS = ("lower", "higher")


@dataclass(frozen=True)
class Metric:
    """One per-item metric: identity, meaning and its batched function (see the module docstring).

    ``version`` changes whenever the definition or a parameter changes, so that values computed with
    different definitions are never compared. ``provenance`` names the section of docs/metrics.md
    (source script or paper) that the metric implements; ``definition`` is one exact line.
    """

    id: str
    version: str
    direction: str  # "lower" | "higher" is better
    unit: str
    provenance: str
    definition: str
    fn: Callable
    needs: tuple[str, ...] = ()

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Metric '{self.id}': direction must be 'lower' or 'higher', not {self.direction!r}.")


@dataclass(frozen=True)
class SetMetric:
    """One set-level metric: computed once over a whole prediction set, not per item.

    Kind "set" (FD, FAD, KL, IS): ``compute(pred, ref)`` takes two ``tas_eval.metrics.generative.
    EmbeddingSet`` (the backbone's embeddings and logits of the predictions and of the references,
    float64) and returns a dict with at least "value" (a float); other keys are details recorded beside
    it. ``needs`` names what the backbone must provide: "clip" (clip embeddings), "frames" (0.96 s frame
    embeddings), "logits"; ``tas_eval.metrics.generative.compute_generative`` computes it. Kind "qa"
    (the question-answering gaps): ``compute(accuracy_ground_truth, accuracy_prediction)`` takes the
    assessor's accuracies per question type; tas_eval.metrics.question_answering computes it.
    Registered in the same registry as per-item metrics; ``compute_metrics`` skips both kinds.
    """

    id: str
    version: str
    direction: str  # "lower" | "higher" is better
    unit: str
    provenance: str
    definition: str
    compute: Callable
    needs: tuple[str, ...] = ()
    kind: str = "set"  # "set": from a backbone's embeddings; "qa": from the assessor's answers

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Metric '{self.id}': direction must be 'lower' or 'higher', not {self.direction!r}.")


def summarize(values) -> dict:
    """{"value": mean, "std": sample std (ddof 1, as statistics.stdev), "stderr": std / sqrt(n), "n": n}.

    Non-finite values (an item a metric cannot score, e.g. no annotated frame) are left out of every
    statistic and counted in "n_missing" (present only when non-zero). std and stderr are None for n < 2.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    n = int(finite.size)
    std = float(finite.std(ddof=1)) if n >= 2 else None
    out = {
        "value": float(finite.mean()) if n else float("nan"),
        "std": std,
        "stderr": std / math.sqrt(n) if std is not None else None,
        "n": n,
    }
    if v.size > n:
        out["n_missing"] = int(v.size - n)
    return out


@dataclass(frozen=True)
class MetricRecord:
    """What a results file records for one metric on one split, per-item or set-level alike.

    ``value`` is the mean over items (per-item metrics) or the set's value (set-level metrics, whose
    ``std`` and ``stderr`` are None); ``n`` counts the items that entered it, ``n_missing`` those a
    per-item metric could not score. Set-level metrics add the ``backbone`` {"id", "sha256"}, the
    ``channel_mode`` and metric-specific ``details``.
    """

    value: float
    std: float | None
    stderr: float | None
    n: int
    direction: str
    version: str
    unit: str
    n_missing: int = 0
    backbone: dict | None = None
    channel_mode: str | None = None
    details: dict = field(default_factory=dict)

    @classmethod
    def of_items(cls, metric, values, backbone: dict | None = None) -> "MetricRecord | None":
        """The record of a per-item metric's values (N,), with the network it read ({"id", "sha256"}) if any;
        None when no item could be scored."""
        summary = summarize(values)
        if summary["n"] == 0:
            return None
        return cls(summary["value"], summary["std"], summary["stderr"], summary["n"], metric.direction,
                   metric.version, metric.unit, n_missing=summary.get("n_missing", 0), backbone=backbone)

    @classmethod
    def of_set(cls, metric, value: float, n: int, backbone: dict, channel_mode: str, details: dict) -> "MetricRecord":
        """The record of a set-level metric computed once over ``n`` clips."""
        return cls(float(value), None, None, int(n), metric.direction, metric.version, metric.unit,
                   backbone=dict(backbone), channel_mode=channel_mode, details=dict(details))

    def as_dict(self) -> dict:
        """The JSON object of the results file's "metrics" entry."""
        out = {"value": self.value, "std": self.std, "stderr": self.stderr, "n": self.n,
               "direction": self.direction, "version": self.version, "unit": self.unit}
        if self.n_missing:
            out["n_missing"] = self.n_missing
        if self.backbone is not None:
            out["backbone"] = dict(self.backbone)
        if self.channel_mode is not None:
            out["channel_mode"] = self.channel_mode
        if self.channel_mode is not None or self.details:
            out["details"] = dict(self.details)
        return out
