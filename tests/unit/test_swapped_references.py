"""scripts/swapped_references.py writes a valid predictions directory: each reference with its ears exchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def test_the_swapped_copy_is_a_valid_submission_of_the_mirrored_references(tiny_benchmark, tmp_path):
    from tas_eval.validate import read_prediction, validate_predictions

    out = tmp_path / "swapped"
    done = subprocess.run([sys.executable, "scripts/swapped_references.py", "--split", "2", "--out", str(out),
                           "--data-root", str(tiny_benchmark.root)], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert validate_predictions(out, tiny_benchmark, 2) == []
    ids = tiny_benchmark.split_ids(2, "test")
    for item_id in ids:
        ref = tiny_benchmark.binaural(item_id)
        swapped = read_prediction(out, item_id)
        np.testing.assert_array_equal(swapped[0], ref[1])
        np.testing.assert_array_equal(swapped[1], ref[0])
    assert not np.array_equal(read_prediction(out, ids[0]), tiny_benchmark.binaural(ids[0]))
