"""Training time of models at a profile, on the built benchmark: the real ``fit`` for the first steps, extrapolated.

    python3 benchmarks/training_time.py --models sagm_visual,sagm_visual_noshare [--profile small]
                                        [--steps 200] [--threads 2] [--data DIR] [--split 1]

Each model's ``fit`` runs on split ``--split`` of the benchmark (default: the small build, built if missing)
with the profile's config but only ``--steps`` steps (everything else as in ``tas-eval run``: data loading,
validation every ``val_every`` steps where the model has it, checkpoints), in a scratch folder, with
``--threads`` torch threads. Printed per model: the measured seconds, seconds per step, and the
profile's step count times that (the extrapolated training time), beside the load average, since the
figures move with other jobs on the machine. One-time costs (loading data and encoders, a model's first stage)
are spread over the steps run, so the extrapolation errs long. Compare with a full run's ``timings.fit``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from tas_eval.device import set_threads
from tas_eval.models import get_model_class, model_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--profile", default="small", help="training profile of the models' configs")
    parser.add_argument("--steps", type=int, default=200, help="steps actually run")
    parser.add_argument("--threads", default="auto", help="torch threads (N or auto)")
    parser.add_argument("--data", default=None, help="a built benchmark folder (default: the small build)")
    parser.add_argument("--split", type=int, default=1)
    args = parser.parse_args()
    from tas_eval.data.builtin.benchmark import Benchmark, resolve_benchmark

    threads = set_threads(args.threads)
    bench = Benchmark(args.data) if args.data else resolve_benchmark("small", 0)
    print(f"{bench.id}, split {args.split}, profile {args.profile}, {threads} torch threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model':22s} {'steps run':>9s} {'seconds':>8s} {'s/step':>7s} {'profile steps':>13s} {'extrapolated s':>14s}")
    for name in args.models.split(","):
        cls = get_model_class(name.strip())
        config = model_config(cls, args.profile)
        steps = min(args.steps, int(config["steps"]))
        with tempfile.TemporaryDirectory() as scratch:
            torch.manual_seed(0)
            start = time.perf_counter()
            cls().fit(bench, args.split, dict(config, steps=steps), "cpu", 0, Path(scratch))
            seconds = time.perf_counter() - start
        per_step = seconds / steps
        print(f"{cls.name:22s} {steps:9d} {seconds:8.1f} {per_step:7.3f} {int(config['steps']):13d} "
              f"{per_step * int(config['steps']):14.0f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
