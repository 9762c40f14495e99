"""The dataset registry and bad real-dataset input through the command line: each refused with one
sentence naming the file, a non-zero exit, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from tas_eval.cli import main
from tas_eval.data import files
from tas_eval.data.protocol import DataOptions, Dataset, content_digest
from tas_eval.data.registry import DATASETS, open_dataset
from tas_eval.errors import UserError

IDS = ["000001", "000002", "000003"]
SR = 16000


def _wav(path: Path, seed: int, channels: int = 2, sr: int = SR, seconds: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.2 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32), sr, subtype="FLOAT")


def _h5(path: Path, names: list[str], key: str = "audio") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset(key, data=np.array([f"/authors/binaural_audios/{n}".encode() for n in names]))


@pytest.fixture
def root(tmp_path) -> Path:
    """A FAIR-Play layout: three clips, split 1 with two train clips and one test clip, and a TASBench file."""
    r = tmp_path / "FAIR-Play"
    (r / "binaural_audios").mkdir(parents=True)
    for k, item in enumerate(IDS):
        _wav(r / "binaural_audios" / f"{item}.wav", k)
    _h5(r / "splits" / "split1" / "train.h5", ["000001.wav", "000002.wav"])
    _h5(r / "splits" / "split1" / "val.h5", ["000002.wav"])
    _h5(r / "splits" / "split1" / "test.h5", ["000003.wav"])
    frames = [{"t": 0.1 * k, "objects": [{"name": "cello", "position": "left"}]} for k in range(5)]
    (tmp_path / "tasbench.jsonl").write_text("\n".join(json.dumps({"id": i, "frames": frames}) for i in IDS) + "\n")
    return r


def _refused(args: list[str], capsys, tmp_path: Path, where: str) -> str:
    """Run the CLI; it must exit 2, print one line naming ``where``, and write no results."""
    results = tmp_path / "results"
    assert main([*args, "--results", str(results)] if args[0] in ("run", "evaluate") else args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tas-eval: error: ") and "\n" not in err, err
    assert where in err, err
    assert "Traceback" not in err and not results.exists()
    return err


def _run(root: Path, *extra: str) -> list[str]:
    return ["run", "--model", "text_pan", "--split", "1", "--dataset", "fairplay", "--data-root", str(root), *extra]


def test_the_registry_knows_the_three_datasets_and_suggests_close_names():
    assert {"builtin", "fairplay", "spatialtas"} <= set(DATASETS.names())
    assert all(issubclass(DATASETS.get(n), Dataset) for n in ("builtin", "fairplay", "spatialtas"))
    with pytest.raises(UserError, match="Did you mean 'fairplay'"):
        open_dataset("fair-play", DataOptions(root="x"))


def test_a_fairplay_copy_opens_and_hashes_its_content(root, tmp_path):
    fp = open_dataset("fairplay", DataOptions(root=str(root), annotations=str(tmp_path / "tasbench.jsonl")))
    assert fp.split_ids(1, "train") == ["000001", "000002"] and fp.split_ids(1, "test") == ["000003"]
    named = {f"splits/split1/{p}.h5": root / "splits" / "split1" / f"{p}.h5" for p in ("train", "val", "test")}
    named.update({f"binaural_audios/{i}.wav": root / "binaural_audios" / f"{i}.wav" for i in IDS})
    named["<annotations>"] = tmp_path / "tasbench.jsonl"
    from tas_eval.paths import file_sha256

    assert fp.content_hash == content_digest({k: file_sha256(p) for k, p in named.items()})
    before = fp.content_hash
    _wav(root / "binaural_audios" / "000002.wav", 99)  # another recording under the same name
    assert open_dataset("fairplay", DataOptions(root=str(root))).content_hash != before
    assert fp.annotation("000003")["frames"][0]["text"] == "the cello on the left"
    assert fp.missing_guidance("000003", "text") is None


def test_file_hashes_are_reused_until_size_or_mtime_change(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    path.write_bytes(b"one")
    first = files.file_hashes([path])[path]
    import tas_eval.data.files as module

    monkeypatch.setattr(module, "file_sha256", lambda p: pytest.fail("hashed again"))
    assert files.file_hashes([path])[path] == first
    monkeypatch.undo()
    path.write_bytes(b"three")
    assert files.file_hashes([path])[path] != first


def test_a_root_without_splits_is_refused(root, tmp_path, capsys):
    import shutil

    shutil.rmtree(root / "splits")
    _refused(_run(root), capsys, tmp_path, f"{root / 'splits'}: folder is missing")


def test_a_split_naming_a_missing_wav_is_refused(root, tmp_path, capsys):
    _h5(root / "splits" / "split2" / "test.h5", ["000003.wav", "000404.wav"])
    err = _refused(["validate", str(tmp_path), "--split", "1", "--dataset", "fairplay", "--data-root", str(root)],
                   capsys, tmp_path, f"{root / 'splits' / 'split2' / 'test.h5'}")
    assert "000404.wav" in err


def test_an_h5_without_the_audio_dataset_is_refused(root, tmp_path, capsys):
    _h5(root / "splits" / "split1" / "test.h5", ["000003.wav"], key="wavs")
    _refused(_run(root), capsys, tmp_path, f"{root / 'splits' / 'split1' / 'test.h5'}: has no dataset named 'audio'")


def test_an_annotation_file_naming_unknown_ids_is_refused(root, tmp_path, capsys):
    ann = tmp_path / "tasbench.jsonl"
    ann.write_text(ann.read_text() + json.dumps({"id": "999999", "frames": []}) + "\n")
    _refused(_run(root, "--annotations", str(ann)), capsys, tmp_path, f"{ann}: names 1 id that binaural_audios/ does not hold")


def test_an_annotation_file_with_a_malformed_frame_is_refused(root, tmp_path, capsys):
    ann = tmp_path / "tasbench.jsonl"
    ann.write_text(json.dumps({"id": "000001", "frames": [{"t": 0.0, "objects": [{"name": "cello", "position": "up"}]}]}))
    _refused(_run(root, "--annotations", str(ann)), capsys, tmp_path, f"{ann}, line 1: item '000001', frame 0")


@pytest.mark.parametrize("bad", ["mono", "garbage"])
def test_a_mono_or_unreadable_wav_is_refused(root, tmp_path, capsys, bad):
    path = root / "binaural_audios" / "000002.wav"
    if bad == "mono":
        _wav(path, 5, channels=1)
        where = f"{path}: has 1 channel; a binaural recording has 2 (left, right)."
    else:
        path.write_bytes(b"RIFF....WAVEfmt nothing here")
        where = f"{path}: cannot be read as audio"
    _refused(_run(root, "--annotations", str(tmp_path / "tasbench.jsonl")), capsys, tmp_path, where)


def test_a_spatialtas_audio_path_leaving_the_root_is_refused(tmp_path, capsys):
    root = tmp_path / "SpatialTAS"
    root.mkdir()
    _wav(tmp_path / "outside.wav", 1)
    prompts = root / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "s1", "audio": "../outside.wav", "prompt": "a dog on the left", "type": "doa"}) + "\n")
    (root / "splits.json").write_text(json.dumps({"train": [], "val": [], "test": ["s1"]}))
    _refused(["run", "--model", "text_pan", "--split", "1", "--dataset", "spatialtas", "--data-root", str(root)],
             capsys, tmp_path, f"{prompts}, line 1: audio path")


def test_spatialtas_split_file_naming_an_unknown_id_is_refused(tmp_path, capsys):
    root = tmp_path / "SpatialTAS"
    (root / "audio").mkdir(parents=True)
    _wav(root / "audio" / "s1.wav", 1)
    (root / "prompts.jsonl").write_text(json.dumps({"id": "s1", "audio": "audio/s1.wav", "prompt": "left", "type": "doa"}) + "\n")
    (root / "splits.json").write_text(json.dumps({"split1": {"train": [], "val": [], "test": ["s1", "s2"]}}))
    _refused(["validate", str(tmp_path), "--split", "1", "--dataset", "spatialtas", "--data-root", str(root)],
             capsys, tmp_path, f"{root / 'splits.json'}: 'split1.test' names 's2'")


def test_options_a_dataset_does_not_read_are_refused(tmp_path, capsys):
    _refused(["validate", str(tmp_path), "--split", "1", "--annotations", str(tmp_path / "a.jsonl")], capsys, tmp_path,
             "--annotations")
    _refused(["validate", str(tmp_path), "--split", "1", "--dataset", "fairplay"], capsys, tmp_path, "--data-root")
