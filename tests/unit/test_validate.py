"""Strict validation of predictions directories (tas_eval.validate) and `tas-eval validate / evaluate` refusing bad ones."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tas_eval.cli import main
from tas_eval.data.protocol import content_digest
from tas_eval.paths import file_sha256
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
    (root / "scenes").mkdir()
    for item_id in ids:
        (root / "scenes" / f"{item_id}.json").write_text(json.dumps({"item_id": item_id, "visual": {"cases": []}, "sources": [
            {"category": "cello", "trajectory": [{"t": 0.0, "azimuth": 0.0, "elevation": 0.0, "distance": 1.0}]}]}))
    split = root / "splits" / "split1"
    split.mkdir(parents=True)
    (split / "train.txt").write_text("")
    (split / "val.txt").write_text("")
    (split / "test.txt").write_text("\n".join(ids) + "\n")
    files = {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}
    (root / "manifest.json").write_text(json.dumps({
        "dataset_id": "handmade-test", "manifest_sha256": content_digest(files), "files": files, "sample_rate": SR,
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
    (folder / "model.json").write_text(json.dumps({"name": "mine", "description": "x", "guidance": ["text"]}))
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


# ----------------------------------------------------------------------------------------- hostile model.json


@pytest.mark.parametrize("text, problem", [
    ("[" * 1000 + "]" * 1000, "nests too deeply"),
    ('{"a": ' + "[" * 100000 + "]" * 100000 + "}", "nests too deeply"),
    ('{"name": "mine", "version": NaN}', "is not valid JSON (NaN is not a finite number"),
    ('{"name": "mine", "version": 1e999}', "is not valid JSON (the number 1e999 is not finite"),
    ('{"name": "mine", "guidance": "text"}', "field 'guidance' must be a list of 'text' and 'visual'"),
    ('{"name": "mine", "guidance": [1]}', "field 'guidance' must be a list of 'text' and 'visual'"),
    ('{"name": "mine", "description": ["a"]}', "field 'description' must be a string"),
    ('{"name": "mine", "version": true}', "field 'version' must be a string or an integer"),
    ('{"name": "' + "x" * 81 + '"}', "model name 'xxxxxxxx"),
], ids=["1000 deep", "100000 deep", "NaN", "1e999", "guidance string", "guidance number", "description list",
        "version bool", "long name"])
def test_a_hostile_model_json_is_named_not_a_traceback(bench, tmp_path, text, problem):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "model.json").write_text(text)
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert list(found) == ["model.json"] and found["model.json"][0].startswith(problem), found


def test_a_model_json_over_the_size_limit_is_too_large(bench, tmp_path):
    from tas_eval.validate import MODEL_JSON_MAX_BYTES

    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "model.json").write_text('{"description": "' + "x" * MODEL_JSON_MAX_BYTES + '"}')
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert found["model.json"] == [f"is too large ({MODEL_JSON_MAX_BYTES + 19} bytes; a model.json holds at most "
                                   f"{MODEL_JSON_MAX_BYTES})"]


def test_evaluate_records_the_model_json_that_validation_parsed(bench, tmp_path, monkeypatch):
    import tas_eval.validate as validate

    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "model.json").write_text(json.dumps({"name": "mine", "version": 3, "guidance": ["text"]}))
    calls = []
    real = validate.parse_model_json
    monkeypatch.setattr(validate, "parse_model_json", lambda fh: calls.append(1) or real(fh))
    from tas_eval.evaluation import evaluate_predictions

    r, _ = evaluate_predictions(folder, bench, 1, results_root=tmp_path / "r", metric_ids=["stft"])
    assert len(calls) == 1 and r["extra"]["submission"] == {"name": "mine", "version": 3, "guidance": ["text"]}


def test_a_wav_header_declaring_a_huge_file_is_refused_without_reading_it(bench, tmp_path, monkeypatch):
    folder = good_predictions(bench, tmp_path / "preds")
    path = folder / "a001.wav"
    write(path, np.zeros((2, LENGTH)), subtype="PCM_16")
    data = bytearray(path.read_bytes())
    pos = data.index(b"data")
    huge = 1 << 30
    data[pos + 4: pos + 8] = huge.to_bytes(4, "little")  # the data chunk declares 1 GB ...
    data[4:8] = (huge + pos).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    os.truncate(path, pos + 8 + huge)  # ... and the file is that long (sparse: no disk is used)
    real_read = sf.SoundFile.read

    def guarded(self, *args, **kwargs):
        assert self.frames < 10 * LENGTH, "read the samples of a file whose header is wrong"
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", guarded)
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert list(found) == ["a001.wav"] and f"expected {LENGTH}" in found["a001.wav"][0]


# ----------------------------------------------------------------------------------------- evaluate's options


def test_bad_names_and_results_are_refused_before_scoring(bench, tmp_path, monkeypatch, capsys):
    import tas_eval.evaluation as evaluation

    folder = good_predictions(bench, tmp_path / "preds")
    monkeypatch.setattr(evaluation, "score", lambda *a, **k: pytest.fail("scored"))
    not_a_folder = tmp_path / "results.txt"
    not_a_folder.write_text("x")
    base = ["evaluate", "--predictions", str(folder), "--split", "1", "--data", str(bench.root), "--device", "cpu"]
    for extra, message in ((["--name", "m" * 300, "--results", str(tmp_path / "r")], "--name: the model name"),
                           (["--name", "", "--results", str(tmp_path / "r")], "--name: the model name ''"),
                           (["--results", str(not_a_folder)], f"{not_a_folder}: is not a folder")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_a_submission_does_not_replace_a_run_unless_told(bench, tmp_path):
    from tas_eval.errors import UserError
    from tas_eval.evaluation import evaluate_predictions
    from tas_eval.runner import run_model

    results = tmp_path / "r"
    run_model("mono_mono", [1], bench, device="cpu", results_root=results, metric_ids=["stft"])
    run = (results / "handmade-test" / "split1" / "mono_mono" / "results.json").read_text()
    folder = good_predictions(bench, tmp_path / "preds")
    common = dict(results_root=results, metric_ids=["stft"])
    with pytest.raises(UserError, match=r"holds the results of `tas-eval run --model mono_mono`"):
        evaluate_predictions(folder, bench, 1, name="mono_mono", **common)
    assert (results / "handmade-test" / "split1" / "mono_mono" / "results.json").read_text() == run
    with pytest.raises(UserError, match="packaged model's"):  # a packaged model's name, though it has no results here
        evaluate_predictions(folder, bench, 1, name="text_pan", **common)
    replaced, _ = evaluate_predictions(folder, bench, 1, name="mono_mono", overwrite=True, **common)
    assert "run_key" not in replaced["extra"] and "submission" in replaced["extra"]


# ----------------------------------------------------------------------------------------- messages


def test_messages_name_the_file_plainly(bench, tmp_path):
    folder = good_predictions(bench, tmp_path / "preds")
    (folder / "README.txt").write_text("hello")
    (folder / "a003.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    found = problems_by_file(validate_predictions(folder, bench, 1))
    assert found["README.txt"] == ["extra file (not a .wav file); only <item_id>.wav and model.json belong here"]
    assert found["a003.wav"][0].startswith("cannot be read as audio (") and "<_io" not in found["a003.wav"][0]
