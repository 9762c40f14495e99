"""The one device switch (``--device auto|cpu|cuda``), how results name a device, and seeding."""

from __future__ import annotations

import random

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
