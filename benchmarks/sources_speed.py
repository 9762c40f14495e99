"""Seconds per 10 s dry source, per category (tas_eval.data.builtin.sources.synthesize_source).

Usage: python3 benchmarks/sources_speed.py [--n 8] [--sr 44100] [--duration 10]

Each category is rendered once to warm up (decoded drum samples are cached per process), then
--n times with different seeds, sounding for the whole clip (the worst case; scenes with silent
stretches cost less). Wall-clock and CPU seconds of this process are both printed, because the
machine may be shared: CPU seconds are what the build pays per core.
"""

from __future__ import annotations

import argparse
import time

from tas_eval.data.builtin import sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="renders per category (default 8)")
    ap.add_argument("--sr", type=int, default=44100, help="sample rate in Hz (default 44100)")
    ap.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")
    args = ap.parse_args()

    t0, c0 = time.perf_counter(), time.process_time()
    sources._soundfont()
    print(f"soundfont load (once per process): {time.perf_counter() - t0:.3f} s wall, "
          f"{time.process_time() - c0:.3f} s cpu")
    print(f"{'category':14s} {'wall s/src':>10s} {'cpu s/src':>10s} {'first call':>10s}")
    walls, cpus = [], []
    for cat in sources.category_names():
        t0 = time.perf_counter()
        sources.synthesize_source(cat, args.duration, [(0.0, args.duration)], seed=10_000, sr=args.sr)
        first = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        for seed in range(args.n):
            sources.synthesize_source(cat, args.duration, [(0.0, args.duration)], seed=seed, sr=args.sr)
        wall = (time.perf_counter() - t0) / args.n
        cpu = (time.process_time() - c0) / args.n
        walls.append(wall)
        cpus.append(cpu)
        print(f"{cat:14s} {wall:10.3f} {cpu:10.3f} {first:10.3f}")
    print(f"{'mean':14s} {sum(walls) / len(walls):10.3f} {sum(cpus) / len(cpus):10.3f}")


if __name__ == "__main__":
    main()
