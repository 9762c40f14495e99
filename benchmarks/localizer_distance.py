"""How much does a 1 s binaural window tell about a source's distance? The localizer against simpler readers.

    python3 benchmarks/localizer_distance.py [--localizer FILE] [--profile small] [--seed 0]
                                             [--train-windows 3000] [--val-windows 600]

Renders windows as the localizer's training does (tas_eval.metrics.localizer.training.make_set: one or
two sources, static or moving, rooms and heads drawn as there) from the dry sources of the train part
of split 1 and, separately, of the val part, and scores distance estimates on the val windows' frames
with one dominant source (all cues kept), as "within 0.5 m" (the assessor's tolerance) and mean
absolute error (m):

- the localizer's distance head (the posterior's expected value, as the spatial measures read it),
  per 0.1 s frame, and the truth's mean estimate per range of true distance;
- the best constant distance (the 0.5 m grid value most true distances lie within 0.5 m of);
- gradient boosting (scikit-learn, trained on the train windows) on summary cues of a whole window
  holding one static source: interaural coherence per band (its mean and spread over the window),
  the spread and the steepest rises and falls of the log-mel envelope per band, and the spectral
  tilt; then the same with the room's RT60 and volume given, which no listener is told. The gap
  between the two says how much the unknown room costs; the gap to the localizer, how much of what
  the cues hold the localizer reads.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.data.builtin.sources import category_names
from tas_eval.metrics.localizer import DISTANCE_STEP_M, load_localizer
from tas_eval.metrics.localizer.training import make_set, source_pool
from tas_eval.parallel import worker_count

TOLERANCE_M = 0.5
RANGES_M = ((0.0, 1.5), (1.5, 2.5), (2.5, 3.5), (3.5, 6.0), (6.0, 11.0))
BAND_GROUPS = 16  # the 64 mel bands summarized in groups of 4
MIN_FRAMES = 8  # a window summarized for the cue readers has a dominant source in at least this many frames


def within(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(estimate - truth) <= TOLERANCE_M + 1e-9))


def best_constant(truth: np.ndarray) -> float:
    grid = np.arange(0.0, truth.max() + DISTANCE_STEP_M, DISTANCE_STEP_M)
    return float(max(grid, key=lambda g: within(np.full_like(truth, g), truth)))


def window_cues(data: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(cues, true distance m, room [RT60 s, ln volume m^3], window indices) of the windows with all cues
    whose one static source dominates at least MIN_FRAMES frames."""
    feats = data["features"].numpy()
    rows, truth, room, index = [], [], [], []
    for i in range(len(feats)):
        single = data["single"][i]
        if data["cues"][i] != "all" or single.sum() < MIN_FRAMES or np.ptp(data["distance_value"][i][single]) > 1e-6:
            continue
        groups = lambda a: a.reshape(a.shape[0], BAND_GROUPS, -1).mean(-1)  # noqa: E731
        coherence = groups(np.hypot(feats[i, 2], feats[i, 3]))  # |band mean of the IPD phasor|, frames x groups
        level = groups(0.5 * (feats[i, 0] + feats[i, 1]))
        change = np.diff(level, axis=0)
        rows.append(np.concatenate([coherence.mean(0), np.percentile(coherence, 10, 0), np.percentile(coherence, 90, 0),
                                    level.std(0), np.percentile(change, 95, 0), np.percentile(change, 5, 0),
                                    level.mean(0) - level.mean()]))
        truth.append(data["distance_value"][i][single][0])
        room.append([data["rt60_s"][i], np.log(data["room_volume_m3"][i])])
        index.append(i)
    return np.array(rows), np.array(truth), np.array(room), index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--localizer", default=None, help="a localizer checkpoint (default: the packaged weights)")
    parser.add_argument("--profile", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-windows", type=int, default=3000)
    parser.add_argument("--val-windows", type=int, default=600)
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that render the windows (default: every core this process may run on; "
                             "the windows are the same for any number)")
    args = parser.parse_args()
    from sklearn.ensemble import HistGradientBoostingRegressor

    torch.set_num_threads(1)
    bench = resolve_benchmark(args.profile, args.seed)
    categories = category_names()
    workers = worker_count(args.workers)
    train = make_set(source_pool(bench, 1, "train"), args.train_windows, args.seed, categories, "train windows", workers)
    val = make_set(source_pool(bench, 1, "val"), args.val_windows, args.seed + 1, categories, "val windows", workers)

    loc = load_localizer(args.localizer)
    with torch.inference_mode():
        logits = loc.network(val["features"])["distance"].double()
    classes = torch.arange(logits.shape[-1], dtype=torch.float64) * DISTANCE_STEP_M
    estimate = (torch.softmax(logits, -1) * classes).sum(-1).numpy()
    frames = val["single"] & (val["cues"] == "all")[:, None]
    truth, est = val["distance_value"][frames], estimate[frames]
    constant = best_constant(truth)
    print(f"val frames with one dominant source: {len(truth)} (localizer {loc.describe()['sha256'][:8]})")
    print(f"{'reader':<44}{'within 0.5 m':>14}{'MAE m':>8}")
    print(f"{'the localizer, per 0.1 s frame':<44}{within(est, truth):>14.3f}{np.mean(np.abs(est - truth)):>8.2f}")
    print(f"{f'the best constant, {constant:.1f} m':<44}{within(np.full_like(truth, constant), truth):>14.3f}"
          f"{np.mean(np.abs(constant - truth)):>8.2f}")
    print("the localizer's mean estimate per range of true distance:")
    for low, high in RANGES_M:
        rows = (truth >= low) & (truth < high)
        if rows.any():
            print(f"  {low:.1f} to {high:.1f} m: {rows.sum():5d} frames, mean estimate {est[rows].mean():.2f} m, "
                  f"within 0.5 m {within(est[rows], truth[rows]):.3f}")

    x_train, y_train, room_train, _ = window_cues(train)
    x_val, y_val, room_val, val_windows = window_cues(val)
    constant = best_constant(y_val)
    print(f"windows holding one static source: {len(y_train)} train, {len(y_val)} val")
    print(f"{'reader (one estimate per window)':<44}{'within 0.5 m':>14}{'MAE m':>8}")
    for name, a, b in (("the localizer, mean over the window's frames", None, None),
                       ("gradient boosting on the window's cues", x_train, x_val),
                       ("the same, told the room's RT60 and volume", np.hstack([x_train, room_train]),
                        np.hstack([x_val, room_val]))):
        if a is None:
            pred = np.array([estimate[i][val["single"][i]].mean() for i in val_windows])
        else:
            model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=args.seed)
            pred = np.exp(model.fit(a, np.log(y_train)).predict(b))
        print(f"{name:<44}{within(pred, y_val):>14.3f}{np.mean(np.abs(pred - y_val)):>8.2f}")
    print(f"{f'the best constant, {constant:.1f} m':<44}{within(np.full_like(y_val, constant), y_val):>14.3f}"
          f"{np.mean(np.abs(constant - y_val)):>8.2f}")


if __name__ == "__main__":
    main()
