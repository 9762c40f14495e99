"""Where the localizer misplaces the references: its side errors on the ground truth, by how far the
dominant source stands from the +-15 degree border between center and a side, by distance and by motion.

    python3 benchmarks/localizer_side_errors.py [--profile small] [--data-seed 0] [--split 1]
        [--localizer-checkpoint FILE] [--part test|val]

Reads the test references (or, with --part val, the val clips' references) of the split exactly as
`side_acc` does (each clip peak-normalized, frames with one dominant source,
tas_eval.metrics.localization.frame_kinds) and prints the share of frames
whose side the localizer gets right per bin of the annotated lateral angle's distance to the border,
per distance, for static and moving sources and for center sources in front and behind, and the
confusion of annotated and heard sides. A yardstick whose errors sit at the border is limited by the
three-way split of a continuous angle; one whose errors lie far from it mishears.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from tas_eval.audio import peak_normalize
from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.data.scene import CENTER_DEADBAND_DEG, lateral_angle, side_label, wrap_azimuth
from tas_eval.metrics.localization import frame_kinds
from tas_eval.metrics.localizer import load_localizer

BORDER_BINS = [(0, 3), (3, 6), (6, 10), (10, 20), (20, 90)]
DISTANCE_BINS = [(0, 2), (2, 3.5), (3.5, 6), (6, 11)]
SIDES = ["left", "center", "right"]


def frames_heard(benchmark, split: int, localizer, part: str = "test") -> list[dict]:
    """One row per frame with a dominant source: its annotation and the side the localizer hears."""
    rows = []
    for item_id in benchmark.split_ids(split, part):
        ref = benchmark.binaural(item_id)
        audio = peak_normalize(torch.from_numpy(np.ascontiguousarray(ref))[None].float())
        heard = {k: v[0].numpy() for k, v in localizer.locate(audio).items()}
        for f in frame_kinds(benchmark.annotation(item_id), ref.shape[-1], 16000):
            src = f["dominant"]
            if src is None or f["index"] >= heard["azimuth"].shape[0]:
                continue
            lat = lateral_angle(float(src["azimuth"]), float(src.get("elevation", 0.0)))
            rows.append({"item": item_id, "label": src["label"], "border": abs(abs(lat) - CENTER_DEADBAND_DEG),
                         "behind": abs(wrap_azimuth(float(src["azimuth"]))) > 90.0,
                         "distance": float(src.get("distance", float("nan"))), "moving": bool(src.get("moving")),
                         "heard": side_label(heard["azimuth"][f["index"]], heard["elevation"][f["index"]])})
    return rows


def share(rows: list[dict]) -> str:
    if not rows:
        return "    -   (0 frames)"
    return f"{np.mean([r['heard'] == r['label'] for r in rows]):.3f} ({len(rows)} frames)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small", choices=["tiny", "small", "full"])
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--localizer-checkpoint", default=None)
    parser.add_argument("--part", default="test", choices=["test", "val"],
                        help="whose references to read: the test clips (as side_acc) or the val clips, which "
                             "weights may be compared on without looking at the test clips")
    args = parser.parse_args()
    benchmark = resolve_benchmark(args.profile, args.data_seed, None, build_if_missing=False)
    localizer = load_localizer(args.localizer_checkpoint)
    with torch.inference_mode():
        rows = frames_heard(benchmark, args.split, localizer, args.part)
    print(f"{benchmark.id} split {args.split}, {args.part} references, localizer sha256 {localizer.weights_sha256[:12]}")
    print(f"all frames with one dominant source: side right {share(rows)}")
    print("by the annotated lateral angle's distance (degrees) to the +-15 degree border:")
    for lo, hi in BORDER_BINS:
        print(f"  {lo:>2}-{hi:<2}  {share([r for r in rows if lo <= r['border'] < hi])}")
    print("by the source's distance (m):")
    for lo, hi in DISTANCE_BINS:
        print(f"  {lo:>4}-{hi:<4}  {share([r for r in rows if lo <= r['distance'] < hi])}")
    for moving in (False, True):
        print(f"{'moving' if moving else 'static'} sources: {share([r for r in rows if r['moving'] == moving])}")
    center = [r for r in rows if r["label"] == "center"]
    print(f"center sources in front: {share([r for r in center if not r['behind']])}; "
          f"behind: {share([r for r in center if r['behind']])}")
    wrong = [r for r in rows if r["heard"] != r["label"]]
    near = sum(1 for r in wrong if r["border"] < 6)
    print(f"errors within 6 degrees of the border: {near} of {len(wrong)}")
    counts = Counter((r["label"], r["heard"]) for r in rows)
    print("annotated \\ heard   " + "  ".join(f"{s:>7}" for s in SIDES))
    for label in SIDES:
        print(f"{label:>18}   " + "  ".join(f"{counts[(label, h)]:>7}" for h in SIDES))


if __name__ == "__main__":
    main()
