"""The prepared GPU run works before a GPU is ever lent: its CPU dry run runs the device tests, trains, predicts,
evaluates and times every stage, and leaves few enough files for a device loan to bring back."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGES = ["environment", "device_tests", "ours_saf", "audio_only", "ground_truth", "metric_suite", "model_speed"]


def test_gpu_paper_run_dry_run_records_results_and_stage_times(tiny_benchmark, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), DATA=str(tiny_benchmark.root), TINY_DATA=str(tiny_benchmark.root),
               TAS_EVAL_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", "scripts/gpu_paper_run.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "logs.tar", "results.tar", "timings.tsv"]
    rows = [line.split("\t") for line in (out / "timings.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == STAGES
    assert all(r[2] == "0" and int(r[1]) >= 0 for r in rows)
    with tarfile.open(out / "logs.tar") as tar:
        logs = {Path(m.name).stem: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
        assert sorted(logs) == sorted(STAGES)
    assert " passed" in logs["device_tests"] and "failed" not in logs["device_tests"]
    assert "suite / floor" in logs["metric_suite"]
    assert [line.split()[1] for line in logs["model_speed"].splitlines()
            if line.startswith("ours_saf ")] == ["fp32", "bf16"]
    with tarfile.open(out / "results.tar") as tar:
        found = {m.name.split("/")[-2]: json.loads(tar.extractfile(m).read())
                 for m in tar.getmembers() if m.name.endswith("/results.json")}
    assert sorted(found) == ["audio_only", "ground_truth", "ours_saf"]
    for model in ("ours_saf", "audio_only"):
        record = found[model]
        assert record["device"] == "cpu" and record["extra"]["config_profile"] == "tiny"
        assert record["extra"]["precision"] == "fp32"  # auto, on a CPU
        assert record["timings"]["fit"] > 0 and record["metrics"]["stft"]["n"] > 0
    assert "torch" in (out / "env.txt").read_text()
