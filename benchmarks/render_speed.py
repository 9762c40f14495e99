"""Speed of the spatial renderer: seconds of one CPU core per source of a 10 s clip at 44.1 kHz.

    python3 benchmarks/render_speed.py [--clips 20] [--seconds 10]

Renders white-noise sources (the renderer's cost does not depend on the signal) in shoebox rooms
drawn like the benchmark's, each clip with its own seed so the late-tail cache never hits, once
static and once moving (+-60 degrees of azimuth over the clip). Prints the CPU time (process time,
robust to other jobs sharing the machine) and wall time per source, and the projection for the full
profile (1871 clips, 1.7 sources on average; the build's budget is 15 minutes on 2 cores for source
synthesis and rendering together). The HRIR set is loaded and the caches warmed before timing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tas_eval.data.builtin.hrir import HRIRSet
from tas_eval.data.builtin.render import render_source

SR = 44100


def make_scene(rng: np.random.Generator, seed: int, seconds: float, moving: bool) -> dict:
    size = [float(rng.uniform(5, 12)), float(rng.uniform(4, 10)), float(rng.uniform(2.6, 4.5))]
    listener = [size[0] * 0.4, size[1] * 0.5, 1.6]
    az = float(rng.uniform(-150, 150))
    dist = float(rng.uniform(1, 4))
    trajectory = [{"t": 0.0, "azimuth": az, "elevation": float(rng.uniform(-20, 30)), "distance": dist}]
    if moving:
        trajectory.append({"t": seconds, "azimuth": az + 60.0, "elevation": 0.0, "distance": dist + 1.0})
    return {
        "item_id": f"b{seed}", "duration_s": seconds, "seed": seed,
        "room": {"size_m": size, "listener_m": listener, "rt60_s": float(rng.uniform(0.2, 0.9))},
        "sources": [{"category": "noise", "seed": seed, "gain_db": 0.0, "trajectory": trajectory,
                     "active": [[0.0, seconds]]}],
    }


def time_renders(scenes: list[dict], dry: list[np.ndarray], hrirs: HRIRSet) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for scene in scenes:
        render_source(scene, 0, dry, hrirs, SR)
    return (time.process_time() - cpu) / len(scenes), (time.perf_counter() - wall) / len(scenes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="clips per condition")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip duration in seconds")
    args = parser.parse_args()

    hrirs = HRIRSet.load()
    rng = np.random.default_rng(0)
    dry = [rng.standard_normal(int(args.seconds * SR))]
    warm = [make_scene(rng, 10**6 + k, args.seconds, moving=k % 2 == 1) for k in range(2)]
    time_renders(warm, dry, hrirs)

    results = {}
    for moving in (False, True):
        scenes = [make_scene(rng, k + (10**5 if moving else 0), args.seconds, moving) for k in range(args.clips)]
        results[moving] = time_renders(scenes, dry, hrirs)
        cpu, wall = results[moving]
        print(f"{'moving' if moving else 'static'} source, {args.seconds:g} s clip: "
              f"{cpu:.3f} s CPU, {wall:.3f} s wall per source ({args.clips} clips)")
    per_source = 0.75 * results[False][0] + 0.25 * results[True][0]  # assume a quarter of the sources move
    total = 1871 * 1.7 * per_source * (10.0 / args.seconds)
    print(f"full profile projection (1871 clips x 1.7 sources, 25% moving): {total / 60:.1f} CPU minutes "
          f"= {total / 120:.1f} min on 2 cores for rendering alone")


if __name__ == "__main__":
    main()
