"""Generative metrics, set-level: FD, FAD, KL (softmax and sigmoid variants) and IS, scored on BOTH ears.

Definitions follow audioldm_eval (docs/metrics.md, "Generation metrics"), with one change: the
published tools score one channel or a mono downmix, so they cannot see space; here each ear is
embedded separately (channel mode "lr"; "lrs" adds the side signal L - R as a third channel):

- Every clip (prediction and reference alike) is first peak-normalized over both channels together,
  as the per-item metrics do; then its channels are embedded by the backbone one by one.
- fd: Frechet distance between Gaussians fitted to the clip embeddings, where a clip's embedding is
  its channels' embeddings CONCATENATED ([e(L), e(R)], 2D dims): the distance sees the joint
  distribution of the two ears, not only each ear's.
      FD = |mu_p - mu_r|^2 + tr(S_p) + tr(S_r) - 2 tr sqrt(S_p S_r),  S with ddof 1, in float64.
- fad: the same on frame embeddings, one per non-overlapping 0.96 s frame (VGGish's framing),
  frame t of L concatenated with frame t of R; statistics over all frames of all clips.
- kl: per (prediction, reference) pair and per channel, KL(reference || prediction) of the softmax
  over the backbone's logits, sum_c p_r (log p_r - log(p_p + 1e-6)) as audioldm_eval's kl_softmax;
  the mean over pairs, then over channels. kl_sigmoid: the same with element-wise sigmoids,
  sum_c s_r (log s_r - log(s_p + 1e-6)) (audioldm_eval's kl_sigmoid, not a Bernoulli KL).
- is: Inception Score of the predictions per channel, exp(E_x KL(p(y|x) || p(y))) with softmax over
  the logits, over 10 splits of the set shuffled with numpy RandomState(2020), the mean over splits;
  then the mean over channels. A set of fewer than 10 clips uses one split per clip (recorded).

tr sqrt(S_p S_r) is computed exactly without a matrix square root of a non-symmetric product: with
centred data A (n_p x D) and B (n_r x D) it is the sum of the singular values of A B^T /
sqrt((n_p - 1)(n_r - 1)), obtained from thin SVDs of A and B (see frechet_distance). Errors are
raised, never turned into a placeholder value.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import expit, log_softmax, softmax, xlogy

from tas_eval.errors import UserError
from tas_eval.metrics import stats_cache
from tas_eval.metrics.base import MetricRecord, SetMetric
from tas_eval.metrics.embeddings import CHANNEL_MODES, DEFAULT_CHANNEL_MODE, EmbeddingSet, embed_set

log = logging.getLogger(__name__)

KL_EPS = 1e-6  # added to the prediction's probabilities before the log, as audioldm_eval
IS_SPLITS = 10
IS_SEED = 2020  # audioldm_eval's shuffle seed


# ----------------------------------------------------------------------------------------- formulas


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) with ddof 1 of the rows of ``x``, float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _sym_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2: sum sqrt(eig(S1^1/2 S2 S1^1/2)) (a similar, symmetric PSD matrix)."""
    r = _sym_sqrt(np.asarray(s1, dtype=np.float64))
    m = r @ np.asarray(s2, dtype=np.float64) @ r
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())


def frechet_distance_from_stats(mu1, s1, mu2, s2) -> float:
    """|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), float64."""
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors of different sizes: {mu1.shape} and {mu2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def frechet_distance(x: np.ndarray, y: np.ndarray, method: str = "svd") -> float:
    """Frechet distance between Gaussians fitted (ddof 1) to the rows of ``x`` (n_x, D) and ``y`` (n_y, D).

    ``method`` "svd" (default) computes tr sqrt(S_x S_y) from the centred data without forming a
    matrix square root: with thin SVDs A = U_a diag(a) V_a^T and B = U_b diag(b) V_b^T, the nonzero
    eigenvalues of S_x S_y are the squared singular values of A B^T / sqrt((n_x - 1)(n_y - 1)), which
    are those of diag(a) V_a^T V_b diag(b) (at most D x D) over the same factor. It is exact for any
    n and D, and identical sets give 0 up to rounding (a null direction adds no sqrt(rounding) term, as
    it does through an eigendecomposition of a singular covariance). "eigh": from the covariances.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embedding sets of shapes {x.shape} and {y.shape} cannot be compared")
    nx, ny = x.shape[0], y.shape[0]
    if min(nx, ny) < 2:
        raise UserError(f"The Frechet distance needs at least 2 embeddings per set; got {nx} and {ny}.")
    if method == "eigh":
        return frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))
    if method != "svd":
        raise ValueError(f"unknown method {method!r}")
    a, b = x - x.mean(axis=0), y - y.mean(axis=0)
    diff = x.mean(axis=0) - y.mean(axis=0)
    _, sa, vat = np.linalg.svd(a, full_matrices=False)
    _, sb, vbt = np.linalg.svd(b, full_matrices=False)
    tr_x, tr_y = float(np.sum(sa**2)) / (nx - 1), float(np.sum(sb**2)) / (ny - 1)
    core = (sa[:, None] * (vat @ vbt.T)) * sb[None, :]
    cross = float(np.linalg.svd(core, compute_uv=False).sum()) / math.sqrt((nx - 1) * (ny - 1))
    return float(diff @ diff + tr_x + tr_y - 2.0 * cross)


def kl_softmax(ref_logits: np.ndarray, gen_logits: np.ndarray) -> np.ndarray:
    """Per pair (rows): sum_c p_r (log p_r - log(p_g + 1e-6)), p = softmax of the logits (audioldm_eval)."""
    ref, gen = np.asarray(ref_logits, dtype=np.float64), np.asarray(gen_logits, dtype=np.float64)
    p_ref = softmax(ref, axis=-1)
    return np.sum(p_ref * (log_softmax(ref, axis=-1) - np.log(softmax(gen, axis=-1) + KL_EPS)), axis=-1)


def kl_sigmoid(ref_logits: np.ndarray, gen_logits: np.ndarray) -> np.ndarray:
    """Per pair (rows): sum_c s_r (log s_r - log(s_g + 1e-6)), s = sigmoid of the logits (audioldm_eval)."""
    s_ref = expit(np.asarray(ref_logits, dtype=np.float64))
    s_gen = expit(np.asarray(gen_logits, dtype=np.float64))
    return np.sum(xlogy(s_ref, s_ref) - s_ref * np.log(s_gen + KL_EPS), axis=-1)


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, seed: int = IS_SEED) -> tuple[float, float, int]:
    """(mean over splits, std over splits (ddof 0), number of splits) of exp(E_x KL(p(y|x) || p(y))).

    The rows are shuffled with numpy RandomState(seed).permutation and cut into ``splits`` chunks
    [i N // k, (i + 1) N // k); with fewer rows than ``splits``, k = N (one row per chunk).
    """
    x = np.asarray(logits, dtype=np.float64)
    n = x.shape[0]
    if n < 1:
        raise UserError("The Inception Score needs at least one prediction.")
    k = min(splits, n)
    x = x[np.random.RandomState(seed).permutation(n)]
    p, log_p = softmax(x, axis=1), log_softmax(x, axis=1)
    scores = []
    for i in range(k):
        rows = slice(i * n // k, (i + 1) * n // k)
        q = p[rows].mean(axis=0, keepdims=True)
        scores.append(math.exp(float(np.sum(p[rows] * (log_p[rows] - np.log(q)), axis=1).mean())))
    return float(np.mean(scores)), float(np.std(scores)), k


# ----------------------------------------------------------------------------------------- metrics


def _check_pairs(pred: EmbeddingSet, ref: EmbeddingSet) -> None:
    if pred.channels != ref.channels:
        raise ValueError(f"channel modes differ: {pred.channels} and {ref.channels}")
    if list(pred.item_ids) != list(ref.item_ids):
        raise UserError("KL pairs each prediction with its reference: the two sets must hold the same items in the same order.")
    if pred.logits is None or ref.logits is None:
        raise UserError("KL needs class logits, and this backbone has no classifier.")


def _fd(pred: EmbeddingSet, ref: EmbeddingSet) -> dict:
    return {"value": frechet_distance(pred.clip, ref.clip), "n_ref": int(ref.clip.shape[0]), "dim": int(pred.clip.shape[1])}


def _fad(pred: EmbeddingSet, ref: EmbeddingSet) -> dict:
    return {"value": frechet_distance(pred.frames, ref.frames), "n_frames": int(pred.frames.shape[0]),
            "n_ref_frames": int(ref.frames.shape[0]), "dim": int(pred.frames.shape[1])}


def _kl_with(fn):
    def compute(pred: EmbeddingSet, ref: EmbeddingSet) -> dict:
        _check_pairs(pred, ref)
        per_channel = {c: float(fn(ref.logits[:, j], pred.logits[:, j]).mean()) for j, c in enumerate(pred.channels)}
        return {"value": float(np.mean(list(per_channel.values()))), "per_channel": per_channel}

    return compute


def _is(pred: EmbeddingSet, ref: EmbeddingSet) -> dict:
    if pred.logits is None:
        raise UserError("IS needs class logits, and this backbone has no classifier.")
    per_channel, std, splits = {}, {}, IS_SPLITS
    for j, c in enumerate(pred.channels):
        per_channel[c], std[c], splits = inception_score(pred.logits[:, j])
    if splits < IS_SPLITS:
        log.warning("IS: %d predictions, fewer than %d splits; using %d splits of one clip each", len(pred), IS_SPLITS, splits)
    return {"value": float(np.mean(list(per_channel.values()))), "per_channel": per_channel,
            "std_over_splits": std, "splits": splits}


_PROV = "docs/metrics.md#generation-metrics"
_EARS = "each ear embedded separately (channel mode recorded)"
FD = SetMetric(
    id="fd", version="1", direction="lower", unit="", provenance=_PROV + " (fd: audioldm_eval)",
    definition=f"Frechet distance between Gaussians (float64, ddof 1) of clip embeddings, {_EARS}, ears concatenated",
    compute=_fd, needs=("clip",))
FAD = SetMetric(
    id="fad", version="1", direction="lower", unit="", provenance=_PROV + " (fad: audioldm_eval; frechet-audio-distance)",
    definition=f"Frechet distance over all 0.96 s frame embeddings, {_EARS}, ears concatenated per frame",
    compute=_fad, needs=("frames",))
KL = SetMetric(
    id="kl", version="1", direction="lower", unit="nat", provenance=_PROV + " (kl: audioldm_eval kl_softmax)",
    definition="mean over pairs and ears of KL(softmax(ref logits) || softmax(pred logits)), pred probabilities + 1e-6",
    compute=_kl_with(kl_softmax), needs=("logits",))
KL_SIGMOID = SetMetric(
    id="kl_sigmoid", version="1", direction="lower", unit="nat", provenance=_PROV + " (kl_sigmoid: audioldm_eval kl_sigmoid)",
    definition="mean over pairs and ears of sum_c s_ref (log s_ref - log(s_pred + 1e-6)), s = sigmoid(logits)",
    compute=_kl_with(kl_sigmoid), needs=("logits",))
IS = SetMetric(
    id="is", version="1", direction="higher", unit="", provenance=_PROV + " (is: audioldm_eval calculate_isc)",
    definition="mean over ears of the Inception Score exp(E KL(p(y|x) || p(y))), softmax, 10 splits, shuffle seed 2020",
    compute=_is, needs=("logits",))


def set_metrics(metric_ids: Sequence[str] | None = None) -> list[SetMetric]:
    """The registered set-level metrics of an embedding backbone (all of them, or those of ``metric_ids``); the
    question-answering metrics (kind "qa") are computed by tas_eval.metrics.question_answering instead."""
    from tas_eval.metrics import get_metric, list_metrics

    if metric_ids is None:
        return [m for m in list_metrics() if isinstance(m, SetMetric) and m.kind == "set"]
    return [m for m in (get_metric(i) for i in metric_ids) if isinstance(m, SetMetric) and m.kind == "set"]


# ----------------------------------------------------------------------------------------- the entry point


@dataclass(frozen=True)
class GenerativeOptions:
    """How the set-level metrics are computed: the backbone (id and an optional checkpoint path), whether
    the references' embeddings may come from the statistics cache, and the channel mode ("lr" or "lrs")."""

    backbone: str = "tas_cnn"
    checkpoint: str | None = None
    use_cache: bool = True
    channel_mode: str = DEFAULT_CHANNEL_MODE


def compute_generative(
    pred_items: Sequence,
    ref_items: Sequence,
    sr: int,
    options: GenerativeOptions | None = None,
    *,
    item_ids: Sequence[str] | None = None,
    metric_ids: Sequence[str] | None = None,
    dataset_hash: str | None = None,
    split: int | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    backbone=None,
) -> dict[str, MetricRecord]:
    """Set-level metrics of aligned lists of (2, T) predictions and references at ``sr`` Hz: {metric id: record}.

    ``metric_ids`` None means every set-level metric the backbone supports (KL and IS need a
    classifier); a requested one it cannot compute is a UserError. With ``dataset_hash`` (the
    dataset's content hash) and ``split``, the references' embeddings are read from (or written to)
    the statistics cache (tas_eval.metrics.stats_cache), keyed by content; ``options.use_cache``
    False recomputes them (and refreshes the cache). ``backbone`` overrides loading the options'
    backbone (an already loaded Backbone).
    """
    from tas_eval.metrics.backbones import load_backbone

    options = options or GenerativeOptions()
    channel_mode = options.channel_mode
    if len(pred_items) != len(ref_items):
        raise UserError(f"Got {len(pred_items)} predictions for {len(ref_items)} references.")
    if channel_mode not in CHANNEL_MODES:
        raise UserError(f"Unknown channel mode '{channel_mode}': use one of {', '.join(CHANNEL_MODES)}.")
    ids = list(item_ids) if item_ids is not None else [str(i) for i in range(len(ref_items))]
    metrics = set_metrics(metric_ids)
    if not metrics:
        return {}
    bb = backbone if backbone is not None else load_backbone(options.backbone, options.checkpoint, device)
    provides = {"clip", "frames"} | ({"logits"} if bb.num_classes else set())
    chosen = []
    for m in metrics:
        missing = [k for k in m.needs if k not in provides]
        if not missing:
            chosen.append(m)
        elif metric_ids is not None:
            raise UserError(f"The metric '{m.id}' needs class logits, and the backbone '{bb.id}' has no classifier.")
        else:
            log.info("not computing %s: the backbone %s has no classifier", m.id, bb.id)

    pred = embed_set(bb, pred_items, sr, channel_mode, ids, batch_size, desc=f"{bb.id}: predictions")
    ref = None
    key = None
    if dataset_hash is not None and split is not None:
        key = stats_cache.reference_key(bb, channel_mode, dataset_hash, split, sr)
        if options.use_cache:
            ref = stats_cache.load(key)
            if ref is not None and list(ref.item_ids) != ids:
                log.warning("cached reference embeddings are of other items than the ones given; recomputing")
                ref = None
    if ref is None:
        ref = embed_set(bb, ref_items, sr, channel_mode, ids, batch_size, desc=f"{bb.id}: references")
        if key is not None:
            stats_cache.save(key, ref)
    out = {}
    for m in chosen:
        details = dict(m.compute(pred, ref))
        value = details.pop("value")
        if not math.isfinite(value):
            raise RuntimeError(f"The metric '{m.id}' is not finite ({value}) with the backbone {bb.id}.")
        out[m.id] = MetricRecord.of_set(m, value, len(pred), {"id": bb.id, "sha256": bb.weights_sha256},
                                        channel_mode, details)
    return out
