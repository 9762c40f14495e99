"""Build speed of the built-in benchmark: clips per second on this machine, and the full profile's
projected build time (target: under 15 minutes on 2 cores).

    python3 benchmarks/data_build.py [--clips 40] [--workers N]

Builds the first ``--clips`` clips of the full profile (10 s each) into a temporary folder with the
builder's own worker pool, then prints the rate. The machine's load average is printed too: a busy
machine measures less than it can do.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from tas_eval.data.builtin import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    profile = build.PROFILES["full"]
    build._check_assets()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as out:
        for folder in ("audio", "scenes", "annotations"):
            os.makedirs(os.path.join(out, folder))
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(build.build_item, [out] * args.clips, range(args.clips), [args.seed] * args.clips,
                          [profile.duration_s] * args.clips, chunksize=1))
        elapsed = time.perf_counter() - start
    rate = args.clips / elapsed
    print(f"cores: {os.cpu_count()}  workers: {args.workers}  load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"built {args.clips} clips of {profile.duration_s:.0f} s in {elapsed:.1f} s: {rate:.2f} clips/s")
    print(f"full profile ({profile.num_clips} clips) projected: {profile.num_clips / rate / 60:.1f} min (target < 15 min)")


if __name__ == "__main__":
    main()
