"""Adapters for FAIR-Play, TASBench-style annotations and SpatialTAS-style prompts, on fixtures in
their published layouts built in tmp_path."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tas_eval.data.adapters import FairPlay, load_spatialtas, load_tasbench
from tas_eval.data.prompts import dense_text
from tas_eval.errors import UserError

FILE_SR = 44100
IDS = ["000001", "000002", "000003", "000004"]
FREQS = {"000001": 440.0, "000002": 550.0, "000003": 660.0, "000004": 770.0}
AUTHOR_DIR = "/private/home/someone/datasets/BINAURAL_MUSIC_ROOM/binaural16k"


def write_stereo(path, freq, sr=FILE_SR, seconds=1.0):
    """A sine in the left ear and the same sine at half amplitude in the right ear."""
    t = np.arange(int(sr * seconds)) / sr
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    sf.write(path, np.stack([left, 0.5 * left], axis=1).astype(np.float32), sr, subtype="FLOAT")


@pytest.fixture
def fairplay_root(tmp_path):
    root = tmp_path / "FAIR-Play"
    (root / "binaural_audios").mkdir(parents=True)
    for item in IDS:
        write_stereo(root / "binaural_audios" / f"{item}.wav", FREQS[item])
    parts = {"train": ["000001", "000002"], "val": ["000003"], "test": ["000004", "000002"]}
    for split in (1, 2):
        folder = root / "splits" / f"split{split}"
        folder.mkdir(parents=True)
        for part, ids in parts.items():
            paths = [f"{AUTHOR_DIR}/{i}.wav".encode() for i in ids]
            with h5py.File(folder / f"{part}.h5", "w") as h5:
                if split == 1:  # fixed-length byte strings
                    h5.create_dataset("audio", data=np.array(paths, dtype="S"))
                else:  # variable-length strings, as other h5py versions write them
                    h5.create_dataset("audio", data=[p.decode() for p in paths], dtype=h5py.string_dtype())
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    for k in range(1, 12):
        (root / "frames" / "000001").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb + k).save(root / "frames" / "000001" / f"{k:06d}.png")
    (root / "frames" / "000002.mp4").mkdir(parents=True)  # the authors' folder naming
    for k in (1, 2, 10):
        Image.fromarray(rgb).save(root / "frames" / "000002.mp4" / f"{k}.png")
    return root


def test_fairplay_split_ids_resolve_author_paths_by_basename(fairplay_root):
    fp = FairPlay(fairplay_root)
    assert fp.split_ids(1, "train") == ["000001", "000002"]
    assert fp.split_ids(1, "test") == ["000004", "000002"]
    assert fp.split_ids(2, "val") == ["000003"]
    assert fp.split_ids(2, "test") == ["000004", "000002"]
    assert fp.all_ids() == IDS


def test_fairplay_binaural_is_resampled_to_16k(fairplay_root):
    audio = FairPlay(fairplay_root).binaural("000003")
    assert audio.dtype == np.float32 and audio.shape == (2, 16000)
    # the 660 Hz tone stays at 660 Hz (1 Hz bins over 1 s) and the right ear stays at half the left
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    assert np.argmax(spectrum) == 660
    mid = slice(1000, 15000)  # away from the resampler's edge transients
    assert np.allclose(audio[1, mid], 0.5 * audio[0, mid], atol=1e-6)
    t = np.arange(16000) / 16000
    assert np.allclose(audio[0, mid], 0.5 * np.sin(2 * np.pi * 660 * t[mid]), atol=2e-3)


def test_fairplay_16k_file_is_returned_unchanged(fairplay_root):
    path = fairplay_root / "binaural_audios" / "000004.wav"
    write_stereo(path, 770.0, sr=16000)
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    assert np.array_equal(FairPlay(fairplay_root).binaural("000004"), expected.T)


def test_fairplay_frame_paths_in_time_order(fairplay_root):
    fp = FairPlay(fairplay_root)
    paths = fp.frame_paths("000001")
    assert [p.name for p in paths] == [f"{k:06d}.png" for k in range(1, 12)]
    assert [p.name for p in fp.frame_paths("000002")] == ["1.png", "2.png", "10.png"]
    assert fp.frame_dir("000002").name == "000002.mp4"


def test_fairplay_corrupt_wav_is_refused_when_opened(fairplay_root):
    (fairplay_root / "binaural_audios" / "000002.wav").write_bytes(b"RIFF\x00\x00not a wav at all")
    with pytest.raises(UserError, match=re.escape(str(fairplay_root / "binaural_audios" / "000002.wav"))):
        FairPlay(fairplay_root)


def test_fairplay_mono_wav_is_refused_when_opened(fairplay_root):
    path = fairplay_root / "binaural_audios" / "000001.wav"
    sf.write(path, np.zeros(1600, dtype=np.float32), FILE_SR)
    with pytest.raises(UserError) as err:
        FairPlay(fairplay_root)
    assert str(err.value) == f"{path}: has 1 channel; a binaural recording has 2 (left, right)."


def test_fairplay_split_naming_missing_clip_is_refused(fairplay_root):
    split_file = fairplay_root / "splits" / "split3" / "test.h5"
    split_file.parent.mkdir(parents=True)
    with h5py.File(split_file, "w") as h5:
        h5.create_dataset("audio", data=np.array([f"{AUTHOR_DIR}/000001.wav".encode(), b"C:\\data\\000099.wav"]))
    with pytest.raises(UserError) as err:
        FairPlay(fairplay_root)
    assert str(err.value) == f"{split_file}: names clip 000099.wav, which is not in binaural_audios/."


def test_fairplay_bad_split_files_are_refused(fairplay_root):
    fp = FairPlay(fairplay_root)
    with pytest.raises(UserError, match="split file is missing"):
        fp.split_ids(7, "train")
    with pytest.raises(UserError, match="Unknown split part"):
        fp.split_ids(1, "dev")
    no_audio = fairplay_root / "splits" / "split4" / "val.h5"
    no_audio.parent.mkdir(parents=True)
    with h5py.File(no_audio, "w") as h5:
        h5.create_dataset("paths", data=np.array([b"000001.wav"]))
    with pytest.raises(UserError, match=re.escape(f"{no_audio}: has no dataset named 'audio'")):
        FairPlay(fairplay_root)
    no_audio.unlink()
    garbage = fairplay_root / "splits" / "split4" / "test.h5"
    garbage.write_bytes(b"this is not hdf5")
    with pytest.raises(UserError, match=re.escape(f"{garbage}: cannot be read as an HDF5 file")):
        FairPlay(fairplay_root)


def test_fairplay_missing_folders_are_refused(fairplay_root, tmp_path):
    with pytest.raises(UserError, match="FAIR-Play folder does not exist"):
        FairPlay(tmp_path / "nowhere")
    with pytest.raises(UserError, match=re.escape(f"{fairplay_root / 'frames' / '000003'}: frame folder")):
        FairPlay(fairplay_root).frame_paths("000003")
    with pytest.raises(UserError, match="is in no split file"):
        FairPlay(fairplay_root).binaural("000777")
    (fairplay_root / "binaural_audios").rename(fairplay_root / "audio")
    with pytest.raises(UserError, match=re.escape(f"{fairplay_root / 'binaural_audios'}: folder is missing")):
        FairPlay(fairplay_root)


# ---------------------------------------------------------------- TASBench-style annotations

ITEMS = [
    {"id": "000001", "frames": [
        {"t": 0.0, "objects": [{"name": "piano", "position": "right"}, {"name": "cello", "position": "left"}],
         "text": "a cello plays on the left while a piano plays on the right"},
        {"t": 0.1, "objects": [{"name": "piano", "position": "Right"}]},
        {"t": 0.3, "objects": []},
    ]},
    {"id": "000002", "frames": [
        {"objects": [{"name": "drum", "position": "center"}, {"category": "guitar", "label": "left"}]},
        {"t0": 0.1, "objects": [{"name": "drum", "position": "center"}]},
    ]},
]

EXPECTED = {
    "000001": {"item_id": "000001", "frame_rate": 10, "frames": [
        {"t0": 0.0, "sources": [{"category": "cello", "label": "left"}, {"category": "piano", "label": "right"}],
         "text": "a cello plays on the left while a piano plays on the right"},
        {"t0": 0.1, "sources": [{"category": "piano", "label": "right"}], "text": "the piano on the right"},
        {"t0": 0.3, "sources": [], "text": "silence"},
    ]},
    "000002": {"item_id": "000002", "frame_rate": 10, "frames": [
        {"t0": 0.0, "sources": [{"category": "guitar", "label": "left"}, {"category": "drum", "label": "center"}],
         "text": "the guitar on the left, the drum in the center"},
        {"t0": 0.1, "sources": [{"category": "drum", "label": "center"}], "text": "the drum in the center"},
    ]},
}


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_tasbench_jsonl_is_normalized(tmp_path):
    assert load_tasbench(write_jsonl(tmp_path / "tas.jsonl", [ITEMS[0], "", ITEMS[1]])) == EXPECTED


def test_tasbench_json_list_and_mapping_read_the_same(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(ITEMS, indent=2))
    assert load_tasbench(tmp_path / "list.json") == EXPECTED
    mapping = {"000001": {"frames": ITEMS[0]["frames"]}, "000002": ITEMS[1]["frames"]}
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    assert load_tasbench(tmp_path / "map.json") == EXPECTED


def test_label_only_sources_get_the_builders_text_left_to_right():
    sources = [{"category": "harp", "label": "right"}, {"category": "voice", "label": "center"},
               {"category": "violin", "label": "left"}]
    assert dense_text(sources) == "the violin on the left, the voice in the center, the harp on the right"
    assert dense_text([]) == "silence"


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": "000003", "frames": [', "line 2: is not valid JSON"),
    ('{"id": "000003", "frames": [{"t": 0.0, "objects": [{"name": "cello", "position": "up"}]}]}', "line 2: item '000003', frame 0: object 'cello' has position 'up'"),
    ('{"id": "000003", "frames": [{"t": 0.05, "objects": []}]}', "line 2: item '000003', frame 0 has time t=0.05, which is not on the 0.1 s frame grid"),
    ('{"id": "000003", "frames": [{"t": 0.2}, {"t": 0.1}]}', "line 2: item '000003', frame 1 has time t=0.1, not after"),
    ('{"id": "000003", "frames": [{"t": 0.0, "objects": [{"position": "left"}]}]}', "line 2: item '000003', frame 0: an object has no 'name'"),
    ('{"frames": []}', "line 2: the item has no string 'id'"),
    ('["000003"]', "line 2: expected an object"),
    (json.dumps(ITEMS[0]), "line 2: item '000001' appears twice"),
])
def test_tasbench_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = write_jsonl(tmp_path / "tas.jsonl", [ITEMS[0], bad_line, ITEMS[1]])
    with pytest.raises(UserError) as err:
        load_tasbench(path)
    assert str(err.value).startswith(f"{path}, {message}")


def test_tasbench_bad_files_are_refused(tmp_path):
    with pytest.raises(UserError, match="annotation file does not exist"):
        load_tasbench(tmp_path / "missing.jsonl")
    (tmp_path / "broken.json").write_text('[\n  {"id": "1",\n  "frames": ]')
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'broken.json'}: line 3 is not valid JSON")):
        load_tasbench(tmp_path / "broken.json")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(UserError, match="holds no annotated items"):
        load_tasbench(tmp_path / "empty.jsonl")


# ---------------------------------------------------------------- SpatialTAS-style prompts

def spatialtas_fixture(tmp_path):
    folder = tmp_path / "spatialtas"
    (folder / "audio").mkdir(parents=True)
    write_stereo(folder / "audio" / "a.wav", 300.0, sr=16000)
    write_stereo(folder / "audio" / "b.wav", 400.0, sr=16000)
    elsewhere = tmp_path / "elsewhere.wav"
    write_stereo(elsewhere, 500.0, sr=16000)
    rows = [
        {"id": "s1", "audio": "audio/a.wav", "prompt": "the dog is on the right, behind, below, 5m away", "type": "doa_de_single"},
        {"id": "s2", "audio_path": "audio/b.wav", "prompt": "the bell is to the left of the drum", "type": "relative_direction", "split": "test"},
        {"id": "s3", "audio": str(elsewhere), "prompt": "the piano is 3m farther than the violin", "type": "relative_distance"},
    ]
    return folder, write_jsonl(folder / "prompts.jsonl", rows[:2] + [""] + rows[2:]), elsewhere


def test_spatialtas_prompts_resolve_audio_relative_to_the_file(tmp_path):
    folder, path, elsewhere = spatialtas_fixture(tmp_path)
    items = load_spatialtas(path)
    assert [i["id"] for i in items] == ["s1", "s2", "s3"]
    assert items[0]["audio"] == folder / "audio" / "a.wav"
    assert items[1]["audio"] == folder / "audio" / "b.wav" and "audio_path" not in items[1]
    assert items[2]["audio"] == elsewhere
    assert items[1]["split"] == "test" and items[1]["type"] == "relative_direction"
    assert items[0]["prompt"] == "the dog is on the right, behind, below, 5m away"


@pytest.mark.parametrize("bad_line, message", [
    ('{"id": "s9", "audio": "audio/a.wav", "prompt": "x"', "line 2: is not valid JSON"),
    ('{"id": "s9", "audio": "audio/a.wav", "type": "doa"}', "line 2: 'prompt' is missing"),
    ('{"id": "s9", "audio": "audio/zz.wav", "prompt": "x", "type": "doa"}', "line 2: audio file"),
    ('{"id": "s1", "audio": "audio/a.wav", "prompt": "x", "type": "doa"}', "line 2: id 's1' appears twice"),
    ('"s9"', "line 2: expected an object"),
])
def test_spatialtas_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    folder, _, _ = spatialtas_fixture(tmp_path)
    good = '{"id": "s1", "audio": "audio/a.wav", "prompt": "the dog on the left", "type": "doa_de_single"}'
    path = write_jsonl(folder / "bad.jsonl", [good, bad_line])
    with pytest.raises(UserError) as err:
        load_spatialtas(path)
    assert str(err.value).startswith(f"{path}, {message}")


def test_spatialtas_missing_audio_allowed_when_not_checked_and_missing_file_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "x", "audio": "nowhere.wav", "prompt": "left", "type": "doa"}])
    assert load_spatialtas(path, check_audio=False)[0]["audio"] == tmp_path / "nowhere.wav"
    with pytest.raises(UserError, match="prompt file does not exist"):
        load_spatialtas(tmp_path / "none.jsonl")
