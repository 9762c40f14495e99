"""Strict validation of predictions directories (tas_eval.validate) and `tas-eval validate / evaluate` refusing bad ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tas_eval.cli import main
from tas_eval.data.builtin.benchmark import Benchmark
from tas_eval.validate import check_model_name, validate_predictions

SR = 16000
LENGTH = 8000  # 0.5 s


def make_benchmark(root: Path, ids=("a001", "a002", "a003", "a004", "a005", "a006", "a007")) -> Benchmark:
    """A hand-made benchmark folder in the built layout: random binaural clips, one split, 7 test items."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "annotations").mkdir()
    for item_id in ids:
        sf.write(root / "audio" / f"{item_id}.wav", (0.3 * rng.standard_normal((LENGTH, 2))).astype(np.float32), SR,
                 subtype="FLOAT")
        (root / "annotations" / f"{item_id}.json").write_text(json.dumps(
            {"item_id": item_id, "frames": [{"t0": 0.0, "sources": [], "text": ""}], "clip_prompts": []}))
    split = root / "splits" / "split1"
    split.mkdir(parents=True)
    (split / "train.txt").write_text("")
    (split / "val.txt").write_text("")
    (split / "test.txt").write_text("\n".join(ids) + "\n")
    (root / "manifest.json").write_text(json.dumps({
        "dataset_id": "handmade-test", "manifest_sha256": "0" * 64, "sample_rate": SR,
        "generator_version": "test", "profile": "custom", "seed": 0}))
    return Benchmark(root)


def write(path: Path, audio: np.ndarray, sr: int = SR, **kw) -> None:
    sf.write(path, np.asarray(audio, dtype=np.float32).T, sr, **kw)


@pytest.fixture()
def bench(tmp_path) -> Benchmark:
    return make_benchmark(tmp_path / "bench")


def good_predictions(bench: Benchmark, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for item_id in bench.split_ids(1):
        write(folder / f"{item_id}.wav", 0.5 * bench.binaural(item_id), subtype="FLOAT")
    return folder


def problems_by_file(problems: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        name, _, what = p.partition(": ")
        out.setdefault(name, []).append(what)
    return out


def test_a_complete_directory_validates(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "model.json").write_text(json.dumps({"name": "mine", "description": "x", "guidance": "text"}))
    assert validate_predictions(folder, bench, 1) == []
    assert main(["validate", str(folder), "--split", "1", "--data", str(bench.root)]) == 0


def test_acceptance_case_every_problem_named_and_nothing_written(bench, tmp_path, capsys):
    """Missing file, mono file, 44.1 kHz file, NaN file, extra file and a symlink pointing outside."""
    folder = good_predictions(bench, tmp_path / "preds")
    ref = bench.binaural("a002")
    (folder / "a001.wav").unlink()                                       # missing
    write(folder / "a002.wav", ref[:1])                                  # mono
    write(folder / "a003.wav", np.zeros((2, int(LENGTH * 44100 / SR))), sr=44100)  # 44.1 kHz
    nan = bench.binaural("a004").copy()
    nan[1, 100] = np.nan
    write(folder / "a004.wav", nan, subtype="FLOAT")                     # NaN
    write(folder / "zzz_extra.wav", ref)                                 # extra
    outside = tmp_path / "outside.wav"
    write(outside, bench.binaural("a005"), subtype="FLOAT")              # a valid file, but outside
    (folder / "a005.wav").unlink()
    (folder / "a005.wav").symlink_to(outside)                            # symlink pointing outside

    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert set(found) == {"a001.wav", "a002.wav", "a003.wav", "a004.wav", "zzz_extra.wav", "a005.wav"}
    assert "missing" in found["a001.wav"][0]
    assert any("1 channel" in p for p in found["a002.wav"])
    assert any("44100 Hz" in p for p in found["a003.wav"])
    assert any("non-finite" in p for p in found["a004.wav"])
    assert any("extra file" in p for p in found["zzz_extra.wav"])
    assert any("symbolic link" in p for p in found["a005.wav"])

    results = tmp_path / "results"
    status = main(["evaluate", "--predictions", str(folder), "--split", "1", "--data", str(bench.root),
                   "--results", str(results), "--device", "cpu"])
    assert status != 0
    err = capsys.readouterr().err
    for name in found:
        assert name in err
    assert not results.exists()

    assert main(["validate", str(folder), "--split", "1", "--data", str(bench.root)]) == 1
    out = capsys.readouterr().out
    for name in found:
        assert name in out


def test_symlink_inside_the_directory_is_refused_too(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "a007.wav").unlink()
    (folder / "a007.wav").symlink_to(folder / "a006.wav")
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert list(found) == ["a007.wav"] and "symbolic link" in found["a007.wav"][0]


def test_symlinked_model_json_and_dangling_links_are_refused(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"name": "stolen"}))
    (folder / "model.json").symlink_to(secret)
    (folder / "dangling.wav").symlink_to(tmp_path / "does-not-exist.wav")
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert set(found) == {"model.json", "dangling.wav"}
    assert all("symbolic link" in v[0] for v in found.values())


def test_wrong_length_clipping_subfolder_non_wav_and_fifo(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    ref = bench.binaural("a001")
    write(folder / "a001.wav", ref[:, :-1], subtype="FLOAT")            # one sample short
    write(folder / "a002.wav", ref * 10, subtype="FLOAT")               # clipping
    (folder / "a003.wav").unlink()
    (folder / "a003.wav").write_text("not audio")                       # not audio at all
    (folder / "a004.wav").unlink()
    write(folder / "a004.wav", ref, format="FLAC")                      # audio, but FLAC
    (folder / "a005.wav").unlink()
    os.mkfifo(folder / "a005.wav")                                      # would block if opened naively
    (folder / "sub").mkdir()                                            # a sub-folder
    (folder / "notes.txt").write_text("hello")                          # a non-WAV file
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert set(found) == {"a001.wav", "a002.wav", "a003.wav", "a004.wav", "a005.wav", "sub", "notes.txt"}
    assert f"expected {LENGTH}" in found["a001.wav"][0]
    assert "clips" in found["a002.wav"][0]
    assert "cannot be read as audio" in found["a003.wav"][0]
    assert "not a WAV file" in found["a004.wav"][0]
    assert "not a regular file" in found["a005.wav"][0]
    assert "sub-folder" in found["sub"][0]
    assert "not a .wav file" in found["notes.txt"][0]


def test_exact_peak_of_one_is_not_clipping(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    ref = bench.binaural("a001")
    write(folder / "a001.wav", ref / np.abs(ref).max(), subtype="FLOAT")
    assert validate_predictions(folder, bench, 1) == []


def test_model_json_with_an_unsafe_name_is_a_problem_and_nothing_is_written(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "model.json").write_text(json.dumps({"name": "../../escape"}))
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert list(found) == ["model.json"] and "not allowed" in found["model.json"][0]
    results = tmp_path / "results"
    assert main(["evaluate", "--predictions", str(folder), "--split", "1", "--data", str(bench.root),
                 "--results", str(results)]) != 0
    assert not results.exists() and not (tmp_path / "escape").exists()


def test_unsafe_name_option_is_refused_before_anything_is_written(bench, tmp_path, monkeypatch):
    folder = good_predictions(bench, tmp_path / "preds")
    results = tmp_path / "results"
    # validation passes; the name is refused before any metric runs or any file is written
    import tas_eval.evaluation as evaluation

    monkeypatch.setattr(evaluation, "score", lambda *a, **k: pytest.fail("scored despite an unsafe name"))
    assert main(["evaluate", "--predictions", str(folder), "--split", "1", "--data", str(bench.root),
                 "--results", str(results), "--name", "../up"]) != 0
    assert not results.exists()


def test_names_with_control_characters_are_reported_escaped(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "evil\nname.wav").write_text("x")
    found = validate_predictions(folder, bench, 1)
    assert found == [f"evil\\nname.wav: extra file (not an item of the test split 1); only <item_id>.wav and model.json belong here"]


def test_missing_or_non_directory_predictions(bench, tmp_path):
    assert "does not exist" in validate_predictions(tmp_path / "nope", bench, 1)[0]
    f = tmp_path / "file"
    f.write_text("")
    assert "is not a directory" in validate_predictions(f, bench, 1)[0]


def test_check_model_name():
    assert check_model_name("text_pan") is None
    assert check_model_name("my-model.v2+ft") is None
    for bad in ("", "../x", "a/b", "a..b", ".hidden", "a b", "x" * 81):
        assert check_model_name(bad) is not None
