"""Shared fixtures: one tiny benchmark per test session, and an isolated TAS_EVAL_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TINY_SEED = 3


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory) -> Path:
    """Keep tests' data, checkpoints and caches out of the user's TAS_EVAL_HOME."""
    home = tmp_path_factory.mktemp("tas-eval-home")
    old = os.environ.get("TAS_EVAL_HOME")
    os.environ["TAS_EVAL_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("TAS_EVAL_HOME", None)
    else:
        os.environ["TAS_EVAL_HOME"] = old


@pytest.fixture(scope="session")
def tiny_benchmark(isolated_home):
    """The tiny profile (24 clips of 4 s, seed 3), built once per session where `resolve_benchmark` finds it.

    On a machine that cannot build it (no synthesizers, e.g. a GPU machine), TAS_EVAL_TINY_BUILD names
    a tiny build made elsewhere to use instead.
    """
    from tas_eval.data.builtin.benchmark import Benchmark, resolve_benchmark

    prebuilt = os.environ.get("TAS_EVAL_TINY_BUILD")
    return Benchmark(prebuilt) if prebuilt else resolve_benchmark("tiny", TINY_SEED)
