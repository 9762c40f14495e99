"""The metric contract: an exactly defined, versioned, batched function of (prediction, reference).

A per-item metric is a frozen ``Metric`` record whose ``fn`` maps a batch of predictions and
references, both (B, 2, T) torch tensors at ``sr`` Hz, to a (B,) float64 tensor of per-item values.
``fn`` is pure: its result depends only on its arguments. It may receive extra context keywords:
the ones named in ``needs`` (e.g. ``annotations``) and ``cache``, a ``tas_eval.metrics.transforms.
TransformCache`` that lets metrics evaluated on the same batch share one STFT per parameter set.
A metric must accept and ignore context keywords it does not use (``**ctx``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

DIRECTIONS = ("lower", "higher")


@dataclass(frozen=True)
class Metric:
    """One per-item metric: identity, meaning and its batched function (see the module docstring).

    ``version`` changes whenever the definition or a parameter changes, so that values computed with
    different definitions are never compared. ``provenance`` names the REFERENCES.md row (source
    script or paper) that the metric implements; ``definition`` is one exact line.
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
    """One set-level metric (FD, FAD, KL, IS): computed once over a whole prediction set, not per item.

    ``compute(pred, ref)`` takes two ``tas_eval.metrics.generative.EmbeddingSet`` (the backbone's
    embeddings and logits of the predictions and of the references, float64) and returns a dict with
    at least "value" (a float); other keys are details recorded beside it. ``needs`` names what the
    backbone must provide: "clip" (clip embeddings), "frames" (0.96 s frame embeddings), "logits".
    Registered in the same registry as per-item metrics; ``compute_metrics`` skips it, and
    ``tas_eval.metrics.generative.compute_generative`` computes it.
    """

    id: str
    version: str
    direction: str  # "lower" | "higher" is better
    unit: str
    provenance: str
    definition: str
    compute: Callable
    needs: tuple[str, ...] = ()
    kind: str = "set"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Metric '{self.id}': direction must be 'lower' or 'higher', not {self.direction!r}.")
