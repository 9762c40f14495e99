"""benchmarks/localizer_side_errors.py reads the references exactly as side_acc does: per item, its share of
frames heard on the annotated side is the ground truth's side_acc."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "localizer_side_errors.py"


def _script():
    """The benchmark script, imported as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("localizer_side_errors", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_breakdown_agrees_with_side_acc_on_the_references(tiny_benchmark):
    from tas_eval.metrics import compute_metrics
    from tas_eval.metrics.localizer import WEIGHTS, load_localizer

    module = _script()
    rows = module.frames_heard(tiny_benchmark, 1, load_localizer(None))
    ids = tiny_benchmark.split_ids(1, "test")
    refs = [tiny_benchmark.binaural(i) for i in ids]
    scores = compute_metrics(refs, refs, 16000, metric_ids=["side_acc"], localizer=str(WEIGHTS),
                             annotations=[tiny_benchmark.annotation(i) for i in ids])
    assert rows and all(r["heard"] in ("left", "center", "right") for r in rows)
    for item_id, value in zip(ids, np.asarray(scores["side_acc"], dtype=float)):
        mine = [r["heard"] == r["label"] for r in rows if r["item"] == item_id]
        if mine:
            assert np.mean(mine) == pytest.approx(value, abs=1e-12)
        else:
            assert np.isnan(value)


def test_the_val_part_reads_only_val_clips(tiny_benchmark):
    from tas_eval.metrics.localizer import load_localizer

    module = _script()
    rows = module.frames_heard(tiny_benchmark, 1, load_localizer(None), part="val")
    val = set(tiny_benchmark.split_ids(1, "val"))
    assert rows and {r["item"] for r in rows} <= val
    assert not val & set(tiny_benchmark.split_ids(1, "test"))
