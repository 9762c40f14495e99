"""The prepared GPU run works before a GPU is ever lent: its CPU dry run trains, predicts, evaluates and times."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_paper_run_dry_run_records_results_and_stage_times(tiny_benchmark, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), DATA=str(tiny_benchmark.root), TAS_EVAL_HOME=str(tmp_path / "home"),
               OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", "scripts/gpu_paper_run.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line.split("\t") for line in (out / "timings.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["environment", "ours_saf", "audio_only", "ground_truth"]
    assert all(r[2] == "0" and int(r[1]) >= 0 for r in rows)
    for model in ("ours_saf", "audio_only"):
        found = list((out / "results").glob(f"*/split1/{model}/results.json"))
        assert len(found) == 1, model
        record = json.loads(found[0].read_text())
        assert record["device"] == "cpu" and record["extra"]["config_profile"] == "tiny"
        assert record["timings"]["fit"] > 0 and record["metrics"]["stft"]["n"] > 0
    assert list((out / "results").glob("*/split1/ground_truth/results.json"))
    assert "torch" in (out / "env.txt").read_text()
