"""Real datasets through the command line: a few clips of the tiny built benchmark copied into FAIR-Play's
published layout (h5 split files naming the authors' paths, PNG frames, a TASBench-style annotation
file, a SpatialTAS-style prompt file) and into a SpatialTAS layout, run and evaluated end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tas_eval.cli import main
from tas_eval.data.adapters import FairPlay
from tas_eval.data.prompts import noun
from tas_eval.data.scene import lateral_angle
from tas_eval.results import load_items, load_results

AUTHOR_DIR = "/private/home/someone/FAIR-Play/binaural_audios"
SET_LEVEL = ("fd", "fad", "kl", "kl_sigmoid", "is")


def _parts(bench) -> dict[str, list[str]]:
    """Split 1 of the copy: six train clips, one val clip and the builtin's own test clips."""
    return {"train": bench.split_ids(1, "train")[:6], "val": bench.split_ids(1, "val")[:1],
            "test": bench.split_ids(1, "test")}


def _tasbench_item(bench, item_id: str) -> dict:
    """The item's dense annotation as TASBench has it: names and positions only, no text, no numbers."""
    frames = []
    for f in bench.annotation(item_id)["frames"]:
        left_to_right = sorted(f["sources"], key=lambda s: -lateral_angle(s["azimuth"], s.get("elevation", 0.0)))
        objects = [{"name": noun(s["category"]).title(), "position": s["label"]} for s in left_to_right]
        frames.append({"t": f["t0"], "objects": objects})
    return {"id": item_id, "frames": frames}


def make_fairplay(bench, root: Path, annotations: bool = True, prompts: bool = True, rate: int | None = None) -> dict:
    """A FAIR-Play copy of split 1 of ``bench``; returns the CLI's data options as a list and the paths."""
    parts = _parts(bench)
    ids = sorted({i for v in parts.values() for i in v})
    (root / "binaural_audios").mkdir(parents=True)
    for item_id in ids:
        target = root / "binaural_audios" / f"{item_id}.wav"
        if rate is None:
            shutil.copy(bench.audio_path(item_id), target)
        else:
            from tas_eval.audio import resample

            sf.write(target, resample(bench.binaural(item_id), 16000, rate).T.astype(np.float32), rate, subtype="FLOAT")
        folder = root / "frames" / f"{item_id}.mp4"
        folder.mkdir(parents=True)
        times = np.arange(int(bench.num_samples(item_id) / 1600)) / 10
        for k, img in enumerate(bench.frames(item_id)(times, size=(24, 32))):
            Image.fromarray(img).save(folder / f"{k + 1:06d}.png")
    folder = root / "splits" / "split1"
    folder.mkdir(parents=True)
    for part, part_ids in parts.items():
        with h5py.File(folder / f"{part}.h5", "w") as h5:
            h5.create_dataset("audio", data=np.array([f"{AUTHOR_DIR}/{i}.wav".encode() for i in part_ids]))
    options = ["--dataset", "fairplay", "--data-root", str(root)]
    paths = {"root": root}
    if annotations:
        paths["annotations"] = root.parent / f"{root.name}-tasbench.jsonl"
        paths["annotations"].write_text("\n".join(json.dumps(_tasbench_item(bench, i)) for i in ids) + "\n")
        options += ["--annotations", str(paths["annotations"])]
    if prompts:
        paths["prompts"] = root.parent / f"{root.name}-prompts.jsonl"
        rows = []
        for item_id in ids:
            clip = [p for p in bench.annotation(item_id)["clip_prompts"] if p["type"] == "direction" and not p.get("held_out")]
            rows.append({"id": item_id, "prompt": clip[0]["text"], "type": "direction"})
        paths["prompts"].write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        options += ["--prompts", str(paths["prompts"])]
    return {"options": options, **paths}


@pytest.fixture(scope="module")
def fairplay(tiny_benchmark, tmp_path_factory):
    return make_fairplay(tiny_benchmark, tmp_path_factory.mktemp("fp") / "FAIR-Play")


def _items(folder: Path) -> dict[str, dict]:
    return {item["item_id"]: item for item in load_items(folder)}


def _mixed_label_frames(annotation: dict) -> bool:
    return any(len({s["label"] for s in f["sources"]}) > 1 for f in annotation["frames"])


def test_text_pan_on_fairplay_scores_each_clip_as_the_builtin_path_does(tiny_benchmark, fairplay, tmp_path, capsys):
    builtin = real = tmp_path / "results"
    assert main(["run", "--model", "text_pan", "--split", "1", "--data-root", str(tiny_benchmark.root),
                 "--results", str(builtin), "--device", "cpu"]) == 0
    assert main(["run", "--model", "text_pan", "--split", "1", *fairplay["options"], "--results", str(real),
                 "--device", "cpu"]) == 0
    assert "text_pan on fairplay" in capsys.readouterr().out
    a = load_results(builtin / tiny_benchmark.id / "split1" / "text_pan")
    b = load_results(real / "fairplay" / "split1" / "text_pan")
    fp = FairPlay(fairplay["root"], fairplay["annotations"], fairplay["prompts"])
    assert b["dataset"]["id"] == "fairplay" and b["dataset"]["manifest_sha256"] == fp.content_hash
    assert b["dataset"]["annotations"]["file"] == fairplay["annotations"].name
    assert b["dataset"]["file_sample_rates_hz"] == [16000] and "resampled" not in b["dataset"]
    # The adapter writes the builder's texts from names and positions alone, so text_pan hears the same prompts.
    assert a["extra"]["model_notes"] == b["extra"]["model_notes"]
    items_a = _items(builtin / tiny_benchmark.id / "split1" / "text_pan")
    items_b = _items(real / "fairplay" / "split1" / "text_pan")
    assert items_a.keys() == items_b.keys() == set(tiny_benchmark.split_ids(1, "test"))
    from tas_eval.metrics import get_metric

    for item_id, item in items_a.items():
        for mid, value in item.items():
            if mid in ("item_id", "tags", "qa"):
                continue  # FAIR-Play has no scenes, hence no subsets and no spatial questions
            if mid == "direction_acc" and _mixed_label_frames(tiny_benchmark.annotation(item_id)):
                continue  # label-only frames of sources on different sides name no side and are skipped
            if mid != "direction_acc" and "annotations" in get_metric(mid).needs:
                continue  # TASBench gives names and sides only: no ear levels, azimuths or distances
            assert items_b[item_id][mid] == value, (item_id, mid)
    for mid in SET_LEVEL:
        assert b["metrics"][mid]["value"] == a["metrics"][mid]["value"], mid
    # The leaderboard shows both, never in one table.
    assert main(["leaderboard", "--results", str(real), "--out", str(tmp_path / "site")]) == 0
    tables = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["tables"]
    assert sorted(t["dataset_id"] for t in tables) == sorted(["fairplay", tiny_benchmark.id])
    assert all(len({r["folder"] for r in t["rows"]}) == 1 for t in tables)


def test_evaluate_a_submission_against_fairplay(tiny_benchmark, fairplay, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    for item_id in tiny_benchmark.split_ids(1, "test"):
        swapped = tiny_benchmark.binaural(item_id)[::-1]
        sf.write(preds / f"{item_id}.wav", 0.5 * swapped.T, 16000, subtype="FLOAT")
    for options, folder in (([], tiny_benchmark.id), (fairplay["options"], "fairplay")):
        extra = options or ["--data-root", str(tiny_benchmark.root)]
        assert main(["validate", str(preds), "--split", "1", *extra]) == 0
        assert main(["evaluate", "--predictions", str(preds), "--split", "1", *extra, "--name", "swapped",
                     "--results", str(tmp_path / "r"), "--device", "cpu"]) == 0
    a = _items(tmp_path / "r" / tiny_benchmark.id / "split1" / "swapped")
    b = _items(tmp_path / "r" / "fairplay" / "split1" / "swapped")
    from tas_eval.metrics import get_metric

    def signal(item):  # what does not depend on the annotations' detail (TASBench: names and sides only)
        return {k: v for k, v in item.items() if k not in ("item_id", "tags", "qa")
                and "annotations" not in get_metric(k).needs}

    for item_id in a:
        assert signal(a[item_id]) == signal(b[item_id])
        assert b[item_id]["stft"] > 0  # the swapped ears are not the reference


def test_ours_saf_trains_and_predicts_on_fairplay(fairplay, tmp_path):
    assert main(["run", "--model", "ours_saf", "--split", "1", *fairplay["options"], "--train-profile", "tiny",
                 "--results", str(tmp_path), "--device", "cpu"]) == 0
    r = load_results(tmp_path / "fairplay" / "split1" / "ours_saf")
    assert r["checkpoint_sha256"] and r["extra"]["config_profile"] == "tiny"
    assert r["metrics"]["direction_acc"]["n"] >= 1 and np.isfinite(r["metrics"]["stft"]["value"])


def test_a_text_guided_model_without_text_stops_before_anything_runs(tiny_benchmark, tmp_path, capsys):
    bare = make_fairplay(tiny_benchmark, tmp_path / "bare" / "FAIR-Play", annotations=False, prompts=False)
    results = tmp_path / "results"
    assert main(["run", "--model", "text_pan", "--split", "1", *bare["options"], "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    first = tiny_benchmark.split_ids(1, "test")[0]
    assert err.count("\n") == 0 and f"clip '{first}' has no text" in err and "--annotations" in err
    assert not results.exists()
    # With an annotation file that lacks one test clip, the message names the file and the clip.
    partial = make_fairplay(tiny_benchmark, tmp_path / "partial" / "FAIR-Play", prompts=False)
    lines = partial["annotations"].read_text().splitlines()
    missing = tiny_benchmark.split_ids(1, "test")[-1]
    partial["annotations"].write_text("\n".join(l for l in lines if json.loads(l)["id"] != missing) + "\n")
    assert main(["run", "--model", "ours_saf", "--split", "1", *partial["options"], "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{partial['annotations']}: no text for FAIR-Play clip '{missing}'." in err
    assert not results.exists()


def test_audio_at_another_rate_is_resampled_once_and_recorded(tiny_benchmark, tmp_path, monkeypatch):
    copy = make_fairplay(tiny_benchmark, tmp_path / "fp48" / "FAIR-Play", rate=48000)
    fp = FairPlay(copy["root"], copy["annotations"])
    item = tiny_benchmark.split_ids(1, "test")[0]
    audio = fp.binaural(item)
    assert audio.shape == (2, tiny_benchmark.num_samples(item)) == (2, fp.num_samples(item))
    # an independent polyphase resampling of the 48 kHz file gives the same samples
    from scipy.signal import resample_poly

    at48, rate = sf.read(copy["root"] / "binaural_audios" / f"{item}.wav", dtype="float32", always_2d=True)
    assert rate == 48000
    np.testing.assert_allclose(audio, resample_poly(at48.T, 1, 3, axis=-1), atol=1e-6)
    assert fp.record()["file_sample_rates_hz"] == [48000] and "resample_poly" in fp.record()["resampled"]
    import tas_eval.data.files as files

    monkeypatch.setattr(files, "resample", lambda *a, **k: pytest.fail("resampled twice"))
    assert np.array_equal(FairPlay(copy["root"], copy["annotations"]).binaural(item), audio)


def test_fairplay_frames_are_read_at_10_per_second(tiny_benchmark, fairplay):
    fp = FairPlay(fairplay["root"])
    item = tiny_benchmark.split_ids(1, "test")[0]
    got = fp.frames(item)([0.0, 0.15, 99.0], size=(24, 32))
    expect = tiny_benchmark.frames(item)([0.0, 0.1, (len(fp.frame_paths(item)) - 1) / 10], size=(24, 32))
    assert got.shape == (3, 24, 32, 3) and got.dtype == np.uint8
    assert np.array_equal(got, expect)  # PNG is lossless; same size, so no resampling
    assert fp.missing_guidance(item, "visual") is None
    assert fp.frames_sha256([item]) != fp.frames_sha256(tiny_benchmark.split_ids(1, "test"))


def test_ls_datasets_describes_a_fairplay_copy(tiny_benchmark, fairplay, capsys):
    assert main(["ls", "datasets", *fairplay["options"]]) == 0
    out = capsys.readouterr().out
    assert "fairplay" in out and "split1" in out and "train 6, val 1, test 2; test items with text 2, with frames 2" in out


def test_spatialtas_layout_runs_end_to_end(tiny_benchmark, tmp_path):
    root = tmp_path / "SpatialTAS"
    (root / "audio").mkdir(parents=True)
    parts, rows = _parts(tiny_benchmark), []
    for item_id in sorted({i for v in parts.values() for i in v}):
        shutil.copy(tiny_benchmark.audio_path(item_id), root / "audio" / f"{item_id}.wav")
        prompt = [p for p in tiny_benchmark.annotation(item_id)["clip_prompts"] if p["type"] == "direction"][0]["text"]
        rows.append({"id": item_id, "audio": f"audio/{item_id}.wav", "prompt": prompt, "type": "doa_de_single"})
    (root / "prompts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (root / "splits.json").write_text(json.dumps({"split1": parts}))
    results = tmp_path / "results"
    assert main(["run", "--model", "text_pan", "--split", "1", "--dataset", "spatialtas", "--data-root", str(root),
                 "--results", str(results), "--device", "cpu"]) == 0
    r = load_results(results / "spatialtas" / "split1" / "text_pan")
    assert r["dataset"]["prompts"]["file"] == "prompts.jsonl"
    from tas_eval.metrics import get_metric

    # no dense annotations: every measure that reads the annotated frames has no value, and says so
    unscored = r["extra"]["metrics_without_values"]
    assert "direction_acc" in unscored and "side_acc" in unscored
    assert not [m for m in r["metrics"] if "annotations" in get_metric(m).needs]
    # no scene geometry, no spatial questions: the question-answering metrics are absent, and the results say why
    assert not [m for m in r["metrics"] if m.startswith("qa_")]
    assert "no spatial questions" in r["extra"]["question_answering_not_computed"]
