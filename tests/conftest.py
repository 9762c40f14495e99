"""Shared fixtures: one tiny benchmark per test session, and an isolated TAS_EVAL_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

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


@pytest.fixture(scope="session", autouse=True)
def one_thread_count():
    """Every command a test runs, in this process (--threads auto) or in a subprocess, uses the torch thread
    count this process started with, whatever else the machine is doing: numbers are compared across them."""
    threads = torch.get_num_threads()
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    yield threads
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = old


@pytest.fixture(scope="session")
def tiny_benchmark(isolated_home):
    """The tiny profile (24 clips of 4 s, seed 3), built once per session where `resolve_benchmark` finds it.

    On a machine that cannot build it (no synthesizers, e.g. a GPU machine), TAS_EVAL_TINY_BUILD names
    a tiny build made elsewhere to use instead.
    """
    from tas_eval.data.builtin.benchmark import Benchmark, resolve_benchmark

    prebuilt = os.environ.get("TAS_EVAL_TINY_BUILD")
    return Benchmark(prebuilt) if prebuilt else resolve_benchmark("tiny", TINY_SEED)


class CountingGain(torch.nn.Module):
    """A tiny trainable model: learns the mean interaural level ratio of the train part; counts fit calls."""

    name = "counting_gain"
    guidance = frozenset()
    paper = "test model"
    description = "L = g * mono, R = (1 - g) * mono with g learned from the train part"
    trains = True
    configs = {"paper": {"scale": 1.0}, "small": {"scale": 1.0}}
    fits = 0

    def __init__(self):
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor(0.5))

    def fit(self, dataset, split, config, device, seed, checkpoint_dir):
        type(self).fits += 1
        ratios = []
        for item_id in dataset.split_ids(split, "train")[:4]:
            x = dataset.binaural(item_id)
            ratios.append(np.abs(x[0]).sum() / (np.abs(x[0]).sum() + np.abs(x[1]).sum()))
        with torch.no_grad():
            self.g.fill_(float(np.mean(ratios)) * config["scale"])

    def save(self, path):
        torch.save(self.state_dict(), path)

    def load(self, path):
        self.load_state_dict(torch.load(path, weights_only=True))

    def spatialize(self, mono, sr, prompts=None, frames=None):
        return torch.cat([self.g * mono, (1 - self.g) * mono], dim=1) * 0.5


@pytest.fixture
def counting_gain(monkeypatch):
    """CountingGain registered as the model "counting_gain" for one test, its fit count reset."""
    from tas_eval.models import MODELS

    monkeypatch.setattr(MODELS, "_objects", dict(MODELS._objects))
    MODELS.add("counting_gain", CountingGain)
    CountingGain.fits = 0
    return CountingGain


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> str:
    """A randomly initialised two-layer Llama with a word-level tokenizer over every word of the spatial
    questions and answers, saved in the Hugging Face layout: the assessor's LM in tests."""
    import re

    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.qa import TEMPLATES, category_words
    from tas_eval.metrics.assessor.llm import save_tiny_llama

    text = " ".join(t for train, heldout in TEMPLATES.values() for t in (*train, heldout))
    text += " Audio Question Answer left center right front behind above below level yes no m farther nearer than "
    text += " ".join(category_words(c) for c in category_names())
    text += " " + " ".join(f"{k / 2:.1f}" for k in range(41))
    words = sorted(set(re.findall(r"\d+\.\d+|[A-Za-z]+|[^\sA-Za-z\d]", text)))
    return str(save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), words))
