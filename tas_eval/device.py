"""The one device switch (``--device auto|cpu|cuda``), the one thread switch (``--threads``), the one precision
switch of models (``--precision``), how results name a device, and seeding."""

from __future__ import annotations

import contextlib
import os
import random
import time

import numpy as np
import torch

from tas_eval.errors import UserError


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is a UserError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for, but torch sees no CUDA device on this machine.")
    return device


def describe_device(device: str) -> str:
    """The device as recorded in results, e.g. 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def runnable_elsewhere(reads: int = 5, pause_s: float = 0.02) -> int:
    """Processes besides this one that are runnable now: the largest of a few reads of the running count in
    /proc/loadavg (which counts the reader), minus one; 0 where it cannot be read."""
    counts = []
    for k in range(reads):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return 0
        if k + 1 < reads:
            time.sleep(pause_s)
    return max(0, max(counts) - 1)


def resolve_threads(spec: str | int | None = "auto") -> int:
    """The torch thread count of ``--threads``: a positive number as given, or "auto": OMP_NUM_THREADS when it is
    set, else the cores this process may run on minus the other runnable processes, at least 1.

    On a CPU, torch's intra-op threads wait for each other at the end of every parallel region: one of them
    descheduled by another busy process stalls them all, which made the metric suite several times slower
    beside a training job (benchmarks/metrics_speed.py --load); taking only the free cores avoids it.
    """
    if spec is None or str(spec) == "auto":
        env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if env.isdigit() and int(env) > 0:
            return int(env)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores - runnable_elsewhere())
    try:
        n = int(spec)
    except ValueError:
        n = 0
    if n < 1:
        raise UserError(f"--threads {spec}: give a positive number of threads or 'auto'.")
    return n


def set_threads(spec: str | int | None = "auto") -> int:
    """Set torch's intra-op thread count from ``--threads`` (``resolve_threads``) and return it."""
    n = resolve_threads(spec)
    torch.set_num_threads(n)
    return n


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(spec: str, device: str, autocast_ok: bool) -> str:
    """The model precision of ``--precision``: "fp32" or "bf16" (bfloat16 autocast of the model's networks).

    "auto" is bf16 on a CUDA device for a model whose networks allow it (``autocast_ok``), fp32 otherwise:
    on a CPU without bfloat16 units autocast is slower, and a model without networks has nothing to cast.
    An explicit "bf16" for a model that does not allow it is a UserError.
    """
    if spec not in PRECISIONS:
        raise UserError(f"--precision {spec}: use one of {', '.join(PRECISIONS)}.")
    if spec == "auto":
        return "bf16" if autocast_ok and device.startswith("cuda") else "fp32"
    if spec == "bf16" and not autocast_ok:
        raise UserError("--precision bf16 was asked for, but this model has no network that runs under bfloat16 "
                        "autocast; use --precision fp32.")
    return spec


def autocast(device: str, precision: str):
    """The context a model trains and predicts in: torch.autocast to bfloat16 for "bf16", nothing for "fp32".

    Under autocast only the operations on torch's lower-precision list (convolutions, matrix products, linear
    layers) run in bfloat16; torch keeps losses and softmax in float32, and elementwise operations and FFTs in
    the precision of their inputs. The signal processing around the networks opts out (``float32_region``),
    and the metrics never run in this context: they keep the float64/float32 their definitions need.
    """
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def float32_region(device):
    """A context in which autocast is off: the signal processing around a model's networks (filterbanks, masks,
    training targets) stays in the precision of its inputs when the networks run under bfloat16."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)
