"""The results schema (tas_eval.results): round trip, atomic writing, refusing bad files, samples."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import tas_eval
from tas_eval import results as R
from tas_eval.errors import UserError

SR = 16000
DATASET = {"id": "tb-test", "version": "1.0.0", "manifest_sha256": "ab" * 32, "profile": "tiny"}


def metrics(stft=0.91, snr=6.2):
    return {
        "stft": {"value": stft, "std": 0.12, "stderr": 0.05, "n": 6, "direction": "lower", "version": 1, "unit": ""},
        "snr": {"value": snr, "std": 1.1, "stderr": 0.45, "n": 6, "direction": "higher", "version": 1, "unit": "dB"},
    }


def make(**over):
    kw = dict(model="text_pan", dataset=DATASET, split=1, config={"hop_s": 0.1}, checkpoint_sha256=None,
              seeds={"data": 0, "inference": 0}, device="cpu", timings={"predict": 1.5}, metrics=metrics())
    kw.update(over)
    return R.new_results(**kw)


ITEMS = [{"item_id": "c001", "stft": 0.8, "snr": 6.0}, {"item_id": "c002", "stft": 1.02, "snr": 6.4}]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_round_trip(tmp_path):
    res = make(extra={"fallbacks": 2})
    path = R.write_results(tmp_path / "m", res, ITEMS)
    assert path == tmp_path / "m" / "results.json"
    back = R.load_results(path)
    data = (tmp_path / "m" / "items.jsonl").read_bytes()
    assert back == {**res, "items": {"file": "items.jsonl", "sha256": hashlib.sha256(data).hexdigest(), "count": 2}}
    assert R.load_results(tmp_path / "m") == back  # a folder works as well
    assert R.load_items(tmp_path / "m") == ITEMS
    assert listing(tmp_path / "m") == ["items.jsonl", "results.json"]


def test_new_results_fills_provenance():
    res = make()
    assert res["schema_version"] == R.SCHEMA_VERSION == 1
    assert res["harness"]["name"] == "tas-eval" and res["harness"]["version"] == tas_eval.__version__
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(tas_eval.__file__).parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "unknown"
    assert res["harness"]["git_commit"] == head
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "tas_eval", "baselines"],
                            cwd=Path(tas_eval.__file__).parent.parent, capture_output=True, text=True).stdout
    assert res["harness"]["git_dirty"] is (None if head == "unknown" else bool(status.strip()))
    assert set(res["libraries"]) == {"python", "torch", "numpy", "scipy", "librosa", "soundfile"}
    assert res["libraries"]["numpy"] == np.__version__
    created = dt.datetime.strptime(res["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 60


def test_git_dirty_must_be_a_bool_or_null(tmp_path):
    path = _write_valid(tmp_path)
    _rewrite(path, lambda d: d["harness"].update(git_dirty="yes"))
    with pytest.raises(R.ResultsError, match=r"field 'harness\.git_dirty' must be true, false or null"):
        R.load_results(path)
    _rewrite(path, lambda d: d["harness"].pop("git_dirty"))  # results written before the field existed
    assert "git_dirty" not in R.load_results(path)["harness"]


def test_numpy_scalars_become_plain_numbers(tmp_path):
    m = metrics()
    m["stft"]["value"] = np.float32(0.5)
    m["stft"]["n"] = np.int64(6)
    res = make(metrics=m)
    assert type(res["metrics"]["stft"]["value"]) is float and res["metrics"]["stft"]["value"] == 0.5
    assert type(res["metrics"]["stft"]["n"]) is int
    R.write_results(tmp_path, res, [{"item_id": "a", "stft": np.float64(0.25)}])
    assert R.load_items(tmp_path) == [{"item_id": "a", "stft": 0.25}]


@pytest.mark.parametrize("fail_on", ["items.jsonl", "results.json"])
def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch, fail_on):
    folder = tmp_path / "m"
    real_fsync = os.fsync

    def dying_fsync(fd):
        # The temporary file holds the data but is not renamed yet: stop here, as a crash would.
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(f".tmp-{fail_on}"):
            raise KeyboardInterrupt
        return real_fsync(fd)

    monkeypatch.setattr(R.os, "fsync", dying_fsync)
    with pytest.raises(KeyboardInterrupt):
        R.write_results(folder, make(), ITEMS)
    assert "results.json" not in listing(folder)
    assert not [n for n in listing(folder) if n.startswith(".tmp")]
    with pytest.raises(R.ResultsError, match="not found"):
        R.load_results(folder)


def test_interrupted_rewrite_does_not_leave_the_old_summary(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    R.write_results(folder, make(metrics=metrics(stft=1.5)), ITEMS[:1])

    def dying_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(R.os, "replace", dying_replace)
    with pytest.raises(OSError):
        R.write_results(folder, make(), ITEMS)
    # The old results.json would describe items that are being replaced: it must be gone.
    assert listing(folder) == ["items.jsonl"]


def test_invalid_results_write_nothing(tmp_path):
    res = make()
    res["metrics"]["stft"]["value"] = float("nan")
    with pytest.raises(R.ResultsError, match="metrics.stft.value"):
        R.write_results(tmp_path / "m", res, ITEMS)
    with pytest.raises(R.ResultsError, match="item 'c001'"):
        R.write_results(tmp_path / "m", make(), [{"item_id": "c001", "stft": float("inf")}])
    with pytest.raises(R.ResultsError, match="item 0"):
        R.write_results(tmp_path / "m", make(), [{"stft": 1.0}])
    assert not (tmp_path / "m").exists()


def test_new_results_refuses_wrong_types():
    with pytest.raises(R.ResultsError, match="split"):
        make(split=0)
    with pytest.raises(R.ResultsError, match="dataset.manifest_sha256"):
        make(dataset={**DATASET, "manifest_sha256": "xyz"})
    m = metrics()
    m["snr"]["direction"] = "up"
    with pytest.raises(R.ResultsError, match="metrics.snr.direction"):
        make(metrics=m)


def _write_valid(tmp_path) -> Path:
    return R.write_results(tmp_path / "m", make(), ITEMS)


def _rewrite(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_load_refuses_corrupt_file(tmp_path):
    path = _write_valid(tmp_path)
    path.write_text(path.read_text()[:100])  # truncated
    with pytest.raises(R.ResultsError) as err:
        R.load_results(path)
    assert str(err.value).startswith(f"{path}: is not valid JSON")
    assert isinstance(err.value, UserError)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(R.ResultsError, match="cannot be read"):
        R.load_results(path)


@pytest.mark.parametrize("content", ['{"name": "resnet", "accuracy": 0.9}', "[1, 2, 3]", '"results"'])
def test_load_refuses_foreign_json(tmp_path, content):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(R.ResultsError, match=f"^{path}: is not a tas-eval results file"):
        R.load_results(path)


def test_load_refuses_other_schema_version(tmp_path):
    path = _write_valid(tmp_path)
    _rewrite(path, lambda d: d.update(schema_version=2))
    with pytest.raises(R.ResultsError, match=r"has schema_version 2, but this tas-eval reads version 1"):
        R.load_results(path)


def test_load_names_the_broken_field(tmp_path):
    path = _write_valid(tmp_path)
    _rewrite(path, lambda d: d["metrics"]["stft"].update(value="0.9"))
    with pytest.raises(R.ResultsError, match=r"field 'metrics\.stft\.value' must be a finite number"):
        R.load_results(path)
    _rewrite(path, lambda d: d.pop("dataset"))
    with pytest.raises(R.ResultsError, match=r"field 'dataset' is missing"):
        R.load_results(path)
    path.write_text(path.read_text().replace('"value": "0.9"', '"value": NaN'))
    with pytest.raises(R.ResultsError, match="NaN is not a JSON number"):
        R.load_results(path)


def test_load_items_detects_a_foreign_items_file(tmp_path):
    _write_valid(tmp_path)
    (tmp_path / "m" / "items.jsonl").write_text(json.dumps({"item_id": "c001", "stft": 0.1}) + "\n")
    with pytest.raises(R.ResultsError, match="does not match the sha256"):
        R.load_items(tmp_path / "m")


def test_iter_results_yields_errors_and_skips_reference(tmp_path):
    good = R.write_results(R.results_dir(tmp_path, "tb-test", 1, "a"), make(), ITEMS)
    wrong_split = R.write_results(tmp_path / "tb-test" / "split2" / "b", make(), ITEMS)
    other_ds = R.write_results(tmp_path / "other-ds" / "split1" / "c", make(), ITEMS)
    (tmp_path / "tb-test" / "split1" / "d").mkdir()
    (tmp_path / "tb-test" / "split1" / "d" / "results.json").write_text("{")
    R.write_reference_samples(tmp_path, DATASET, 1, {"c001": np.ones((2, 160))}, SR)
    (tmp_path / "tb-test" / "split1" / "_reference" / "results.json").write_text("{}")
    found = dict(R.iter_results(tmp_path))
    assert sorted(found) == sorted([good, wrong_split, other_ds, tmp_path / "tb-test" / "split1" / "d" / "results.json"])
    assert found[good]["model"] == "text_pan"
    assert "lies in folder 'split2' but records split 1" in str(found[wrong_split])
    assert "lies in folder 'other-ds' but records dataset 'tb-test'" in str(found[other_ds])
    assert "not valid JSON" in str(found[tmp_path / "tb-test" / "split1" / "d" / "results.json"])


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", ".hidden", "x..y", "<script>"])
def test_results_dir_refuses_unsafe_names(tmp_path, bad):
    with pytest.raises(UserError):
        R.results_dir(tmp_path, "tb-test", 1, bad)


def test_write_samples_keeps_the_level_difference(tmp_path):
    rng = np.random.default_rng(1)
    left = rng.standard_normal(SR // 2)
    audio = np.stack([3.0 * left, 0.75 * left])  # 12.04 dB louder on the left, peak above 1
    (path,) = R.write_samples(tmp_path, {"c001": audio}, SR)
    assert path == tmp_path / "samples" / "c001.wav"
    info = sf.info(str(path))
    assert (info.subtype, info.channels, info.samplerate, info.frames) == ("PCM_16", 2, SR, SR // 2)
    back, _ = sf.read(str(path), always_2d=True)
    assert abs(np.abs(back).max() - R.SAMPLE_PEAK) < 1e-4
    ild = 20 * np.log10(np.sqrt(np.mean(back[:, 0] ** 2)) / np.sqrt(np.mean(back[:, 1] ** 2)))
    assert ild == pytest.approx(20 * np.log10(4.0), abs=1e-3)
    with pytest.raises(UserError, match="item id"):
        R.write_samples(tmp_path, {"../up": audio}, SR)
    with pytest.raises(UserError, match=r"\(2, samples\)"):
        R.write_samples(tmp_path, {"mono": audio[:1]}, SR)


def test_write_reference_samples(tmp_path):
    t = np.arange(SR) / SR
    ref = np.stack([0.4 * np.sin(2 * np.pi * 300 * t), 0.1 * np.sin(2 * np.pi * 500 * t)])
    R.write_reference_samples(tmp_path, DATASET, 3, {"c009": ref}, SR)
    folder = tmp_path / "tb-test" / "split3" / "_reference"
    assert json.loads((folder / "reference.json").read_text()) == {"dataset": DATASET, "split": 3, "items": ["c009"]}
    mono, _ = sf.read(str(folder / "samples" / "c009.mono.wav"), always_2d=True)
    assert mono.shape == (SR, 1)
    expected = (ref[0] + ref[1]) * (R.SAMPLE_PEAK / np.abs(ref[0] + ref[1]).max())
    assert np.max(np.abs(mono[:, 0] - expected)) < 2 / 32768
    binaural, _ = sf.read(str(folder / "samples" / "c009.wav"), always_2d=True)
    assert binaural.shape == (SR, 2)
