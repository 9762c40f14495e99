"""Spatial measures read by the binaural localizer (tas_eval.metrics.localizer): is each source where
the prompt put it, and where the reference has it?

Frames. Every annotated 0.1 s frame fully inside the clip whose sounding sources are known. A frame
has ONE DOMINANT source when one source sounds, or when the loudest source at the ears
("ear_level_db" of the annotation: the level the ears receive, head and room included) is at least
tas_eval.data.scene.DOMINANCE_MARGIN_DB = 6 dB above every other one; sources without an ear level count only alone. A
frame has SEVERAL COMPARABLE sources when two or more sound within the margin of the loudest.

Per item (a NaN where an item has no frame of the kind; the localizer sees the peak-normalized clip):
- side_acc (v1): over frames with one dominant source, the share where the side (left, center, right:
  lateral angle beyond +-15 degrees, tas_eval.data.scene.side_label) of the localizer's direction on
  the prediction equals the dominant source's annotated label. side_acc_static and side_acc_moving:
  the same over the frames whose dominant source stands still, or moves, within the frame.
- side_acc_multi: over frames with several comparable sources, per source: the K highest local maxima
  of the localizer's azimuth posterior on the prediction (K = the number of comparable sources), each
  with the localizer's elevation, give K sides; the share of those sources whose labels they match (as
  multisets). Reported apart, never mixed into side_acc.
- doa_err: mean absolute azimuth difference (degrees, wrapped to 0..180) between the localizer's
  azimuth on the prediction and the dominant source's annotated azimuth.
- doa_ref_err: the same between the localizer's azimuth on the prediction and on the reference, over
  the frames with one dominant source (0 for the references themselves); dist_ref_err: the mean
  absolute difference (m) of the localizer's distances (posterior means) on the two.
- follow: needs the prediction made under the counterfactual (side-swapped) prompt. Over frames with
  one dominant source labelled left or right, the share in which the localizer's side on the
  prediction and on the counterfactual prediction are opposite (left against right). follow_spl: the
  same with the side of the frame's level difference 20 log10(||L|| / ||R||) (+-1 dB center, the rule
  of direction_acc), which needs no network.
"""

from __future__ import annotations

import numpy as np
import torch

from tas_eval.data.scene import DOMINANCE_MARGIN_DB, FRAME_RATE, side_label
from tas_eval.errors import UserError
from tas_eval.metrics.base import Metric
from tas_eval.metrics.localizer import SAMPLE_RATE, azimuth_centres
from tas_eval.metrics.spatial import side_of
from tas_eval.metrics.transforms import memo

NORM_FLOOR = 1e-8


def frame_kinds(annotation: dict, num_samples: int, sr: int) -> list[dict]:
    """The annotated frames of an item that lie inside the clip, each {"index", "start", "length",
    "dominant": the dominant source or None, "comparable": the sources within the margin of the loudest}."""
    out = []
    rate = float(annotation.get("frame_rate", FRAME_RATE)) if annotation else FRAME_RATE
    length = int(round(sr / rate))
    for frame in (annotation or {}).get("frames") or []:
        start = int(round(float(frame["t0"]) * sr))
        sources = frame.get("sources") or []
        if not sources or start < 0 or start + length > num_samples:
            continue
        dominant, comparable = None, list(sources)
        if len(sources) == 1:
            dominant = sources[0]
        elif all("ear_level_db" in s for s in sources):
            ordered = sorted(sources, key=lambda s: -s["ear_level_db"])
            top = ordered[0]["ear_level_db"]
            comparable = [s for s in ordered if s["ear_level_db"] >= top - DOMINANCE_MARGIN_DB]
            if len(comparable) == 1:
                dominant = ordered[0]
        out.append({"index": int(round(start / length)), "start": start, "length": length,
                    "dominant": dominant, "comparable": comparable})
    return out


def _located(x: torch.Tensor, sr: int, localizer, cache) -> dict:
    if sr != SAMPLE_RATE:
        raise UserError(f"The localizer reads {SAMPLE_RATE} Hz audio; these clips are at {sr} Hz.")
    return memo(cache, (x,), ("localized", localizer.weights_sha256), lambda: localizer.locate(x))


def _wrap(deg: np.ndarray) -> np.ndarray:
    return np.abs((np.asarray(deg) + 180.0) % 360.0 - 180.0)


def _located_numpy(x: torch.Tensor, sr: int, localizer, cache) -> dict[str, np.ndarray]:
    return {k: v.cpu().numpy() for k, v in _located(x, sr, localizer, cache).items()}


def _per_item(pred, ref, sr, annotations, localizer, cache, score_item, with_reference: bool = False) -> torch.Tensor:
    """``score_item(b, frames, located prediction, located reference or None) -> value or NaN`` for every item."""
    if annotations is None or localizer is None:
        raise UserError("The localizer's measures need the items' annotations and a localizer.")
    out = torch.full((pred.shape[0],), torch.nan, dtype=torch.float64)
    lp = _located_numpy(pred, sr, localizer, cache)
    lr = _located_numpy(ref, sr, localizer, cache) if with_reference else None
    for b, ann in enumerate(annotations):
        frames = frame_kinds(ann, pred.shape[-1], sr)
        if frames:
            out[b] = score_item(b, frames, lp, lr)
    return out.to(pred.device)


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


def _side_accuracy(moving: bool | None):
    def fn(pred, ref, sr, annotations=None, localizer=None, cache=None, **ctx):
        def item(b, frames, lp, lr):
            hits = [side_label(lp["azimuth"][b, f["index"]], lp["elevation"][b, f["index"]]) == f["dominant"]["label"]
                    for f in frames if f["dominant"] is not None and f["index"] < lp["azimuth"].shape[1]
                    and (moving is None or bool(f["dominant"].get("moving", False)) == moving)]
            return _mean(hits)
        return _per_item(pred, ref, sr, annotations, localizer, cache, item)
    return fn


def _peaks(posterior: np.ndarray, k: int) -> list[int]:
    """The ``k`` highest local maxima of a circular posterior (bin indices; fewer if it has fewer)."""
    left, right = np.roll(posterior, 1), np.roll(posterior, -1)
    maxima = np.flatnonzero((posterior >= left) & (posterior > right))
    return [int(i) for i in maxima[np.argsort(-posterior[maxima])][:k]]


def side_accuracy_multi(pred, ref, sr, annotations=None, localizer=None, cache=None, **ctx):
    """Per item: the share of comparable sources whose sides the localizer's posterior peaks match."""
    centres = azimuth_centres()

    def item(b, frames, lp, lr):
        matched = total = 0
        for f in frames:
            if len(f["comparable"]) < 2 or f["index"] >= lp["azimuth"].shape[1]:
                continue
            peaks = _peaks(lp["p_azimuth"][b, f["index"]], len(f["comparable"]))
            found = [side_label(centres[i], lp["elevation"][b, f["index"]]) for i in peaks]
            for s in f["comparable"]:
                total += 1
                if s["label"] in found:
                    found.remove(s["label"])
                    matched += 1
        return matched / total if total else float("nan")
    return _per_item(pred, ref, sr, annotations, localizer, cache, item)


def doa_error(pred, ref, sr, annotations=None, localizer=None, cache=None, **ctx):
    """Per item: mean |azimuth on the prediction - annotated azimuth| (degrees) over frames with one dominant source."""
    def item(b, frames, lp, lr):
        errs = [_wrap(lp["azimuth"][b, f["index"]] - float(f["dominant"]["azimuth"])) for f in frames
                if f["dominant"] is not None and "azimuth" in f["dominant"] and f["index"] < lp["azimuth"].shape[1]]
        return _mean(errs)
    return _per_item(pred, ref, sr, annotations, localizer, cache, item)


def _against_reference(key: str):
    def fn(pred, ref, sr, annotations=None, localizer=None, cache=None, **ctx):
        def item(b, frames, lp, lr):
            idx = [f["index"] for f in frames if f["dominant"] is not None and f["index"] < lp[key].shape[1]]
            if not idx:
                return float("nan")
            diff = lp[key][b, idx] - lr[key][b, idx]
            return float(np.mean(_wrap(diff) if key == "azimuth" else np.abs(diff)))
        return _per_item(pred, ref, sr, annotations, localizer, cache, item, with_reference=True)
    return fn


def _lateral_frames(frames: list[dict], limit: int) -> list[dict]:
    return [f for f in frames if f["dominant"] is not None and f["dominant"]["label"] in ("left", "right")
            and f["index"] < limit]


def follow(pred, ref, sr, annotations=None, localizer=None, cache=None, counterfactual=None, **ctx):
    """Per item: share of lateral frames whose localized side flips (left <-> right) under the counterfactual prompt."""
    if counterfactual is None:
        raise UserError("The metric 'follow' needs predictions made under the counterfactual prompts.")
    lc = _located_numpy(counterfactual, sr, localizer, cache)

    def item(b, frames, lp, lr):
        flips = []
        for f in _lateral_frames(frames, lp["azimuth"].shape[1]):
            i = f["index"]
            sides = {side_label(lp["azimuth"][b, i], lp["elevation"][b, i]),
                     side_label(lc["azimuth"][b, i], lc["elevation"][b, i])}
            flips.append(sides == {"left", "right"})
        return _mean(flips)
    return _per_item(pred, ref, sr, annotations, localizer, cache, item)


def follow_spl(pred, ref, sr, annotations=None, counterfactual=None, **ctx):
    """Per item: share of lateral frames whose level-difference side flips (left <-> right) under the counterfactual prompt."""
    if annotations is None or counterfactual is None:
        raise UserError("The metric 'follow_spl' needs annotations and predictions made under the counterfactual prompts.")
    out = torch.full((pred.shape[0],), torch.nan, dtype=torch.float64)
    for b, ann in enumerate(annotations):
        frames = _lateral_frames(frame_kinds(ann, pred.shape[-1], sr), 10**9)
        if not frames:
            continue
        flips = []
        for f in frames:
            sides = set()
            for x in (pred[b], counterfactual[b]):
                seg = x[:, f["start"] : f["start"] + f["length"]].double()
                norms = seg.pow(2).sum(-1).sqrt().clamp_min(NORM_FLOOR)
                sides.add(side_of(float(20 * torch.log10(norms[0] / norms[1]))))
            flips.append(sides == {"left", "right"})
        out[b] = float(np.mean(flips))
    return out.to(pred.device)


_PROV = "docs/metrics.md#localizer-metrics"
_LOC = ("annotations", "localizer")
SIDE_ACC = Metric(
    id="side_acc", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (side_acc: tas-eval's own; the localizer after Spatial-AST)",
    definition="share of frames with one dominant source (ear level 6 dB above the rest) where the localizer's side on the prediction matches the source's annotated left/center/right label",
    fn=_side_accuracy(None), needs=_LOC)
SIDE_ACC_STATIC = Metric(
    id="side_acc_static", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (side_acc_static: tas-eval's own)",
    definition="side_acc over the frames whose dominant source stands still within the frame",
    fn=_side_accuracy(False), needs=_LOC)
SIDE_ACC_MOVING = Metric(
    id="side_acc_moving", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (side_acc_moving: tas-eval's own)",
    definition="side_acc over the frames whose dominant source moves within the frame",
    fn=_side_accuracy(True), needs=_LOC)
SIDE_ACC_MULTI = Metric(
    id="side_acc_multi", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (side_acc_multi: tas-eval's own)",
    definition="over frames with several sources within 6 dB at the ears, the share of those sources whose labels the sides of the localizer's K highest azimuth peaks match",
    fn=side_accuracy_multi, needs=_LOC)
DOA_ERR = Metric(
    id="doa_err", version="1", direction="lower", unit="deg",
    provenance=f"{_PROV} (doa_err: tas-eval's own)",
    definition="mean |localizer azimuth on the prediction - annotated azimuth| (wrapped, degrees) over frames with one dominant source",
    fn=doa_error, needs=_LOC)
DOA_REF_ERR = Metric(
    id="doa_ref_err", version="1", direction="lower", unit="deg",
    provenance=f"{_PROV} (doa_ref_err: tas-eval's own)",
    definition="mean |localizer azimuth on the prediction - localizer azimuth on the reference| (wrapped, degrees) over frames with one dominant source",
    fn=_against_reference("azimuth"), needs=_LOC)
DIST_REF_ERR = Metric(
    id="dist_ref_err", version="1", direction="lower", unit="m",
    provenance=f"{_PROV} (dist_ref_err: tas-eval's own)",
    definition="mean |localizer distance on the prediction - on the reference| (posterior means, m) over frames with one dominant source",
    fn=_against_reference("distance"), needs=_LOC)
FOLLOW = Metric(
    id="follow", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (follow: tas-eval's own; the TAS paper's Fig. 7 as a number)",
    definition="over frames with one dominant source labelled left or right, the share where the localizer's side flips (left <-> right) between the prediction and the prediction under the side-swapped prompt",
    fn=follow, needs=_LOC + ("counterfactual",))
FOLLOW_SPL = Metric(
    id="follow_spl", version="1", direction="higher", unit="fraction",
    provenance=f"{_PROV} (follow_spl: tas-eval's own)",
    definition="follow with the side of 20 log10(||L||/||R||) per frame (+-1 dB = center) instead of the localizer",
    fn=follow_spl, needs=("annotations", "counterfactual"))

ALL = [SIDE_ACC, SIDE_ACC_STATIC, SIDE_ACC_MOVING, SIDE_ACC_MULTI, DOA_ERR, DOA_REF_ERR, DIST_REF_ERR, FOLLOW,
       FOLLOW_SPL]
