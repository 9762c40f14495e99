"""The metric registry, batched evaluation and aggregation.

Built-in metrics are registered lazily ("module:attr"); third-party packages add theirs through
the ``tas_eval.metrics`` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."tas_eval.metrics"]
    my_metric = "my_package.metrics:MY_METRIC"      # a tas_eval.metrics.base.Metric

``score`` is the one entry point that scores a set of predictions: the per-item metrics through
``compute_metrics`` and the set-level ones (FD, FAD, KL, IS) through
tas_eval.metrics.generative.compute_generative, each summarized into a ``MetricRecord``.
``compute_metrics`` scores aligned predictions and references: both are peak-normalized over both
channels together (on by default, as the reference scripts do), moved to torch on the chosen device
in batches of equal-length clips, and every metric is evaluated on the batch with one shared
transform cache (one STFT per parameter set, not one per metric).

Aggregation follows the reference scripts: mean, sample standard deviation (``statistics.stdev``,
ddof = 1) and stderr = std / sqrt(n) over items; over several splits, the mean of the split means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from tas_eval.audio import peak_normalize
from tas_eval.device import float32_region
from tas_eval.errors import UserError
from tas_eval.metrics.base import Metric, MetricRecord, SetMetric, summarize
from tas_eval.metrics.transforms import TransformCache, whole_batches
from tas_eval.registry import Registry

__all__ = ["METRICS", "Metric", "MetricRecord", "Scores", "SetMetric", "compute_metrics", "get_metric", "list_metrics",
           "mean_over_splits", "score", "split_metric_ids", "summarize"]

log = logging.getLogger(__name__)

METRICS = Registry("metric", "tas_eval.metrics")

# What compute_metrics(normalize=True) does to the audio before every metric, for results to record.
NORMALIZATION = "peak over both channels, x / max(1e-20, max|x|), prediction and reference each by its own peak"

# Built-ins in display order: signal metrics, then spatial metrics.
_BUILTIN = {
    "stft": "tas_eval.metrics.signal:STFT",
    "env": "tas_eval.metrics.signal:ENV",
    "wav": "tas_eval.metrics.signal:WAV",
    "snr": "tas_eval.metrics.signal:SNR",
    "mag": "tas_eval.metrics.signal:MAG",
    "phase_diff": "tas_eval.metrics.signal:PHASE_DIFF",
    "amp_richard": "tas_eval.metrics.signal:AMP_RICHARD",
    "pha_richard": "tas_eval.metrics.signal:PHA_RICHARD",
    "amp_pb": "tas_eval.metrics.signal:AMP_PB",
    "pha_pb": "tas_eval.metrics.signal:PHA_PB",
    "mrstft": "tas_eval.metrics.signal:MRSTFT",
    "spl": "tas_eval.metrics.spatial:SPL",
    "ild": "tas_eval.metrics.spatial:ILD",
    "itd": "tas_eval.metrics.spatial:ITD",
    "ic": "tas_eval.metrics.spatial:IC",
    "direction_acc": "tas_eval.metrics.spatial:DIRECTION_ACC",
    # read by the binaural localizer (tas_eval.metrics.localizer)
    "side_acc": "tas_eval.metrics.localization:SIDE_ACC",
    "side_acc_static": "tas_eval.metrics.localization:SIDE_ACC_STATIC",
    "side_acc_moving": "tas_eval.metrics.localization:SIDE_ACC_MOVING",
    "side_acc_multi": "tas_eval.metrics.localization:SIDE_ACC_MULTI",
    "doa_err": "tas_eval.metrics.localization:DOA_ERR",
    "doa_ref_err": "tas_eval.metrics.localization:DOA_REF_ERR",
    "dist_ref_err": "tas_eval.metrics.localization:DIST_REF_ERR",
    "follow": "tas_eval.metrics.localization:FOLLOW",
    "follow_spl": "tas_eval.metrics.localization:FOLLOW_SPL",
    # set-level (SetMetric), computed by tas_eval.metrics.generative.compute_generative
    "fd": "tas_eval.metrics.generative:FD",
    "fad": "tas_eval.metrics.generative:FAD",
    "kl": "tas_eval.metrics.generative:KL",
    "kl_sigmoid": "tas_eval.metrics.generative:KL_SIGMOID",
    "is": "tas_eval.metrics.generative:IS",
    # set-level, read by the spatial question-answering assessor (tas_eval.metrics.question_answering)
    "qa_doa": "tas_eval.metrics.question_answering:QA_DOA",
    "qa_de": "tas_eval.metrics.question_answering:QA_DE",
    "qa_direction": "tas_eval.metrics.question_answering:QA_DIRECTION",
    "qa_distance": "tas_eval.metrics.question_answering:QA_DISTANCE",
}
for _id, _target in _BUILTIN.items():
    METRICS.add_lazy(_id, _target)


def get_metric(metric_id: str) -> Metric:
    """The metric registered under ``metric_id``; a UserError with "did you mean" if there is none."""
    return METRICS.get(metric_id)


def list_metrics() -> list[Metric]:
    """Every registered metric: built-ins in display order, then the others by id."""
    names = METRICS.names()
    ordered = [n for n in _BUILTIN if n in names] + [n for n in names if n not in _BUILTIN]
    return [METRICS.get(n) for n in ordered]


def _as_items(x, what: str) -> list[torch.Tensor]:
    """A list of (2, T) tensors from a list of arrays/tensors or one (N, 2, T) array/tensor."""
    if isinstance(x, (np.ndarray, torch.Tensor)):
        if x.ndim != 3:
            raise UserError(f"{what}: expected (items, 2, samples) audio, got an array of shape {tuple(x.shape)}.")
        items = list(x)
    else:
        items = list(x)
    # a contiguous copy where needed: a view such as x[::-1] (the channels swapped) has a negative stride
    return [torch.as_tensor(np.ascontiguousarray(a) if not isinstance(a, torch.Tensor) else a) for a in items]


def _select(metric_ids: Sequence[str] | None, annotations, counterfactual) -> list[Metric]:
    available = {"annotations": annotations is not None, "counterfactual": counterfactual is not None,
                 "localizer": True}
    if metric_ids is None:
        chosen = [m for m in list_metrics() if isinstance(m, Metric)]
        skipped = {m.id: [k for k in m.needs if not available.get(k, False)] for m in chosen}
        skipped = {mid: missing for mid, missing in skipped.items() if missing}
        for mid, missing in skipped.items():
            log.info("not computing %s: no %s given", mid, " or ".join(missing))
        return [m for m in chosen if m.id not in skipped]
    chosen = [get_metric(i) for i in metric_ids]
    for m in chosen:
        if not isinstance(m, Metric):
            raise UserError(f"The metric '{m.id}' is not a per-item metric and cannot be computed by compute_metrics.")
        missing = [k for k in m.needs if not available.get(k, False)]
        if missing:
            raise UserError(f"The metric '{m.id}' needs {', '.join(missing)}, which were not given.")
    return chosen


def compute_metrics(
    pred,
    ref,
    sr: int,
    metric_ids: Sequence[str] | None = None,
    normalize: bool = True,
    annotations: Sequence[dict] | None = None,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    counterfactual=None,
    localizer: str | None = None,
) -> dict[str, np.ndarray]:
    """Per-item values of every metric: {metric id: (N,) float64 array}.

    ``pred`` and ``ref`` are aligned lists of (2, T) items (numpy or torch) or (N, 2, T) arrays; a pair
    has equal lengths, items may differ. ``sr`` in Hz. ``metric_ids`` None means every registered
    per-item metric whose needs are met (``direction_acc`` needs ``annotations``, one dict per item).
    ``normalize`` divides each prediction and each reference by its own peak over both channels
    before every metric, as the reference scripts do. Clips are moved to ``device`` in float64, in
    batches of at most ``batch_size`` clips of equal length (default: one clip at a time on a CPU,
    where a clip's spectra already fill the caches and larger batches measured slower; 16 on a GPU).
    ``counterfactual`` holds the predictions made under the counterfactual prompts (aligned with
    ``pred``; ``follow`` needs them). ``localizer`` is the checkpoint of the localizer the localizer's
    measures read (default: the packaged tas_loc weights).
    """
    if batch_size is None:
        batch_size = 16 if whole_batches(device) else 1
    preds, refs = _as_items(pred, "predictions"), _as_items(ref, "references")
    if len(preds) != len(refs):
        raise UserError(f"Got {len(preds)} predictions for {len(refs)} references.")
    if annotations is not None and len(annotations) != len(refs):
        raise UserError(f"Got {len(annotations)} annotations for {len(refs)} references.")
    cfs = _as_items(counterfactual, "counterfactual predictions") if counterfactual is not None else None
    if cfs is not None and [c.shape for c in cfs] != [r.shape for r in refs]:
        raise UserError("The counterfactual predictions must match the references one to one, in shape too.")
    for i, (p, r) in enumerate(zip(preds, refs)):
        if r.ndim != 2 or r.shape[0] != 2 or p.shape != r.shape:
            raise UserError(f"Item {i}: prediction {tuple(p.shape)} and reference {tuple(r.shape)} must both be (2, samples).")
        if not (torch.isfinite(p).all() and torch.isfinite(r).all()):
            raise UserError(f"Item {i}: the audio has non-finite samples (NaN or inf).")
    metrics = _select(metric_ids, annotations, cfs)
    located = None
    if any("localizer" in m.needs for m in metrics):
        from tas_eval.metrics.localizer import load_localizer

        located = load_localizer(localizer, device)

    groups: dict[int, list[int]] = {}
    for i, r in enumerate(refs):
        groups.setdefault(r.shape[-1], []).append(i)
    chunks = [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]
    out = {m.id: np.full(len(refs), np.nan) for m in metrics}
    for chunk in tqdm(chunks, desc="metrics", unit="batch", disable=len(chunks) < 4 or not log.isEnabledFor(logging.INFO),
                      leave=False):
        p = torch.stack([preds[i] for i in chunk]).to(device=device, dtype=torch.float64)
        r = torch.stack([refs[i] for i in chunk]).to(device=device, dtype=torch.float64)
        if normalize:
            p, r = peak_normalize(p), peak_normalize(r)
        ctx = {"cache": TransformCache(), "localizer": located}
        if annotations is not None:
            ctx["annotations"] = [annotations[i] for i in chunk]
        if cfs is not None:
            c = torch.stack([cfs[i] for i in chunk]).to(device=device, dtype=torch.float64)
            ctx["counterfactual"] = peak_normalize(c) if normalize else c
        for m in metrics:
            with float32_region(device):  # a caller's bfloat16 autocast never reaches a metric
                values = m.fn(p, r, sr, **ctx)
            if tuple(values.shape) != (len(chunk),):
                raise RuntimeError(f"Metric '{m.id}' returned shape {tuple(values.shape)} for {len(chunk)} items.")
            out[m.id][chunk] = values.detach().to("cpu", torch.float64).numpy()
    return out


def mean_over_splits(split_summaries: list[dict]) -> dict:
    """The mean of the split means, as papers report, with the std across splits (ddof 1) and their number."""
    means = np.array([s["value"] for s in split_summaries], dtype=np.float64)
    k = int(means.size)
    std = float(means.std(ddof=1)) if k >= 2 else None
    return {"value": float(means.mean()) if k else float("nan"), "std": std, "n_splits": k}


@dataclass
class Scores:
    """What ``score`` gives: a record per metric with a value, the per-item values of the per-item
    metrics ((N,) float64, NaN where an item could not be scored), the per-item metrics that could
    score no item at all (they have no record), per subset of items the per-item metrics'
    summaries ({family: {subset: {metric id: summary}}}), the assessor's answers per item, why
    the question-answering metrics were not computed (None when they were, or were not asked for),
    and the question-answering gaps withheld because the assessor is at chance on the references
    ({metric id: details and "why"}; tas_eval.metrics.question_answering)."""

    records: dict[str, MetricRecord] = field(default_factory=dict)
    per_item: dict[str, np.ndarray] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)
    subsets: dict = field(default_factory=dict)
    answers: dict = field(default_factory=dict)
    qa_note: str | None = None
    qa_withheld: dict = field(default_factory=dict)


def split_metric_ids(metric_ids: Sequence[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """(per-item ids, set-level ids) of a list of metric ids; (None, None) for None (= every metric)."""
    if metric_ids is None:
        return None, None
    set_ids = [i for i in metric_ids if isinstance(get_metric(i), SetMetric)]
    return [i for i in metric_ids if i not in set_ids], set_ids


def score(preds, refs, sr: int, *, item_ids: Sequence[str], annotations: Sequence[dict] | None = None,
          metric_ids: Sequence[str] | None = None, device: str = "cpu", generative=None,
          dataset_hash: str | None = None, split: int | None = None, counterfactual=None,
          localizer: str | None = None, tags: Sequence[dict] | None = None, questions: dict | None = None,
          assessor=None) -> Scores:
    """Every metric of aligned predictions and references ((2, T) each, ``sr`` Hz): the one scoring entry.

    Per-item metrics run on peak-normalized clips (``compute_metrics``, with the ``counterfactual``
    predictions and the ``localizer`` checkpoint it takes); set-level metrics run with ``generative``
    (a tas_eval.metrics.generative.GenerativeOptions; default options when None), their reference
    statistics cached under ``dataset_hash`` and ``split`` when both are given. ``metric_ids`` None
    means every registered metric whose needs are met. ``tags`` (one dict per item, {family: subset
    or list of subsets}) gives the per-item metrics' summaries per subset (``Scores.subsets``).
    ``questions`` (the dataset's spatial questions, tas_eval.data.qa) and ``assessor`` (a
    tas_eval.metrics.question_answering.AssessorOptions; default options when None) give the
    question-answering metrics; without questions, or without the assessor's LM, they are not computed
    and ``Scores.qa_note`` says why.
    """
    from tas_eval.metrics.generative import compute_generative
    from tas_eval.metrics.question_answering import compute_qa

    item_metric_ids, set_metric_ids = split_metric_ids(metric_ids)
    out = Scores()
    values = compute_metrics(preds, refs, sr, metric_ids=item_metric_ids, normalize=True, annotations=annotations,
                             device=device, counterfactual=counterfactual, localizer=localizer)
    described = None
    for mid, v in values.items():
        metric = get_metric(mid)
        if "localizer" in metric.needs and described is None:
            from tas_eval.metrics.localizer import load_localizer

            described = load_localizer(localizer, device).describe()
        record = MetricRecord.of_items(metric, v, backbone=described if "localizer" in metric.needs else None)
        if record is None:  # no item could be scored (e.g. no annotated frame): no number to record
            out.unscored.append(mid)
            continue
        out.records[mid] = record
        out.per_item[mid] = v
    with float32_region(device):
        out.records.update(compute_generative(preds, refs, sr, generative, item_ids=item_ids,
                                              metric_ids=set_metric_ids, dataset_hash=dataset_hash, split=split,
                                              device=device))
    qa_ids = None if metric_ids is None else [i for i in set_metric_ids if getattr(get_metric(i), "kind", "") == "qa"]
    if qa_ids is None or qa_ids:
        with float32_region(device):
            records, out.answers, out.qa_note, out.qa_withheld = compute_qa(
                preds, refs, item_ids=list(item_ids), questions=questions, options=assessor, metric_ids=qa_ids,
                device=device, dataset_hash=dataset_hash, split=split)
        if out.qa_note and qa_ids:
            raise UserError(f"The question-answering metrics cannot be computed: {out.qa_note}.")
        if out.qa_note:
            log.info("not computing the question-answering metrics: %s", out.qa_note)
        out.records.update(records)
    if tags is not None:
        out.subsets = subset_summaries(out.per_item, tags)
    return out


def subset_summaries(per_item: dict[str, np.ndarray], tags: Sequence[dict]) -> dict:
    """{family: {subset: {metric id: summary}}} of per-item values over the items each tag names (an item
    whose family tag is a list belongs to each subset listed); subsets without a scored item are left out."""
    out: dict = {}
    for family in sorted({f for t in tags for f in t}):
        names = sorted({n for t in tags for n in (t.get(family) if isinstance(t.get(family), list) else [t.get(family)])
                        if n is not None})
        for name in names:
            rows = [i for i, t in enumerate(tags) if name in (t.get(family) if isinstance(t.get(family), list)
                                                              else [t.get(family)])]
            for mid, values in per_item.items():
                summary = summarize(np.asarray(values)[rows])
                if summary["n"]:
                    out.setdefault(family, {}).setdefault(name, {})[mid] = summary
    return out
