"""The localizer's measures through `tas-eval run` and `tas-eval evaluate` on the tiny profile: the
counterfactual predictions of a text-guided model, prompt-following, subsets and item prompts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tas_eval.cli import main
from tas_eval.metrics.localizer import WEIGHTS
from tas_eval.paths import file_sha256
from tas_eval.results import load_items, load_results

LOCALIZER_METRICS = {"side_acc", "doa_err", "doa_ref_err", "dist_ref_err", "follow"}


@pytest.fixture(scope="module")
def text_pan_run(tiny_benchmark, tmp_path_factory):
    results = tmp_path_factory.mktemp("spatial") / "results"
    assert main(["run", "--model", "text_pan", "--split", "1", "--data-root", str(tiny_benchmark.root),
                 "--results", str(results), "--device", "cpu"]) == 0
    return results, results / tiny_benchmark.id / "split1" / "text_pan"


def test_a_text_guided_run_is_scored_on_prompt_following_and_subsets(tiny_benchmark, text_pan_run):
    results, folder = text_pan_run
    r = load_results(folder)
    assert LOCALIZER_METRICS <= set(r["metrics"]) and "follow_spl" in r["metrics"]
    for mid in LOCALIZER_METRICS:
        assert r["metrics"][mid]["backbone"] == {"id": "tas_loc", "sha256": file_sha256(WEIGHTS)}
    assert 0.0 <= r["metrics"]["follow"]["value"] <= 1.0
    assert set(r["subsets"]) == {"visual_case", "sources", "motion"}
    items = load_items(folder)
    assert all(set(i["tags"]) == {"visual_case", "sources", "motion"} for i in items)
    for family, groups in r["subsets"].items():  # each subset's mean is the mean over its items
        for name, metrics in groups.items():
            rows = [i["stft"] for i in items if name in (i["tags"][family] if isinstance(i["tags"][family], list)
                                                         else [i["tags"][family]])]
            assert metrics["stft"]["n"] == len(rows)
            assert metrics["stft"]["value"] == pytest.approx(sum(rows) / len(rows))
    first = sorted(tiny_benchmark.split_ids(1, "test"))[0]
    assert (folder / "samples" / f"{first}.counterfactual.wav").is_file()
    reference = json.loads((results / tiny_benchmark.id / "split1" / "_reference" / "reference.json").read_text())
    assert reference["prompts"][first]["dense"][0][0] == 0.0 and reference["prompts"][first]["clip"]


def test_a_submission_is_scored_on_following_only_with_its_counterfactual(tiny_benchmark, text_pan_run, tmp_path, capsys):
    from tas_eval.paths import runs_root

    (run_dir,) = (runs_root() / "predictions" / tiny_benchmark.id / "split1").glob("text_pan-*")
    submission = tmp_path / "mine"
    shutil.copytree(run_dir / "predictions", submission)
    assert (submission / "counterfactual").is_dir()
    common = ["--split", "1", "--data-root", str(tiny_benchmark.root), "--results", str(tmp_path / "r"),
              "--device", "cpu"]
    assert main(["evaluate", "--predictions", str(submission), "--name", "with_cf", *common]) == 0
    assert "follow" in load_results(tmp_path / "r" / tiny_benchmark.id / "split1" / "with_cf")["metrics"]
    missing = sorted(tiny_benchmark.split_ids(1, "test"))[-1]
    (submission / "counterfactual" / f"{missing}.wav").unlink()
    assert main(["validate", str(submission), "--split", "1", "--data-root", str(tiny_benchmark.root)]) == 1
    assert f"counterfactual/{missing}.wav: missing" in capsys.readouterr().out
    shutil.rmtree(submission / "counterfactual")
    assert main(["evaluate", "--predictions", str(submission), "--name", "without_cf", *common]) == 0
    r = load_results(tmp_path / "r" / tiny_benchmark.id / "split1" / "without_cf")
    assert "follow" not in r["metrics"] and "follow_spl" not in r["metrics"]  # absent, not zero
    assert "side_acc" in r["metrics"]


def test_the_counterfactual_prompt_swaps_the_sides_of_every_text():
    from tas_eval.models import prompt_from_annotation

    ann = {"frames": [{"t0": 0.0, "text": "the cello on the left, the piano on the right"}],
           "clip_prompts": [{"type": "direction", "text": "the cello is on the left, 2m away.", "phrasing": "a"}]}
    p = prompt_from_annotation(ann, counterfactual=True)
    assert p["frames"][0]["text"] == "the cello on the right, the piano on the left"
    assert p["text"] == "the cello is on the right, 2m away." == p["clip_prompts"][0]["text"]
    assert prompt_from_annotation(ann)["text"] == "the cello is on the left, 2m away."


def test_the_shipped_localizer_ranks_the_references_above_swapped_and_mono_copies(tiny_benchmark):
    """The yardstick itself: with the weights that ship, the references place their dominant sources on
    the annotated side far more often than the same clips with the ears swapped or folded to mono."""
    import numpy as np

    from tas_eval.audio import mono_from_binaural
    from tas_eval.metrics import compute_metrics

    ids = [i for s in (1, 2, 3) for i in tiny_benchmark.split_ids(s, "test")]
    refs = [tiny_benchmark.binaural(i) for i in ids]
    ann = [tiny_benchmark.annotation(i) for i in ids]
    copies = {"references": refs, "swapped": [r[::-1].copy() for r in refs],
              "mono": [np.repeat(mono_from_binaural(r) / 2, 2, 0) for r in refs]}
    scores = {name: compute_metrics(x, refs, 16000, metric_ids=["side_acc", "doa_ref_err"], annotations=ann,
                                    localizer=str(WEIGHTS)) for name, x in copies.items()}
    side = {name: float(np.nanmean(s["side_acc"])) for name, s in scores.items()}
    assert side["references"] > 0.75
    assert side["references"] - side["swapped"] > 0.3 and side["references"] - side["mono"] > 0.3
    assert float(np.nanmean(scores["references"]["doa_ref_err"])) == 0.0
    assert float(np.nanmean(scores["swapped"]["doa_ref_err"])) > 20.0
