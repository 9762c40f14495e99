"""The built-in benchmark, end to end on the tiny profile."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import correlate

from tas_eval.audio import SAMPLE_RATE
from tas_eval.data.builtin import build
from tas_eval.data.dataset import TASDataset
from tas_eval.data.scene import FRAME_RATE, position_at, side_label


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "tas_eval.cli", *args], capture_output=True, text=True, env=env)


def test_same_seed_gives_identical_manifest(tiny_benchmark, tmp_path):
    out = tmp_path / "again"
    proc = run_cli("data", "build", "--profile", "tiny", "--seed", str(tiny_benchmark.manifest["seed"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    again = json.loads((out / "manifest.json").read_text())
    first = tiny_benchmark.manifest
    assert again["files"] == first["files"]
    assert again["manifest_sha256"] == first["manifest_sha256"]
    assert len(first["files"]) == 3 * 24 + 30


def test_manifest_hashes_match_files(tiny_benchmark):
    import hashlib

    for rel, digest in list(tiny_benchmark.manifest["files"].items())[::7]:
        assert hashlib.sha256((tiny_benchmark.root / rel).read_bytes()).hexdigest() == digest


def ild_itd(audio: np.ndarray, sr: int) -> tuple[float, float]:
    """ILD in dB (+ = left louder) and ITD in seconds (+ = left ear earlier) of a (2, T) signal."""
    left, right = audio
    ild = 10 * np.log10(np.sum(left**2) / np.sum(right**2))
    max_lag = int(0.001 * sr)
    xc = correlate(right, left, mode="full")
    lags = np.arange(-len(left) + 1, len(left))
    keep = np.abs(lags) <= max_lag
    lag = lags[keep][np.argmax(xc[keep])]
    return float(ild), float(lag / sr)


@pytest.mark.parametrize("azimuth, sign", [(90.0, 1), (-90.0, -1)])
def test_lateral_source_is_louder_and_earlier_at_its_ear(azimuth, sign):
    scene = build.sample_scene(0, 0, 2.0, ["cello"])
    scene["sources"] = [{"category": "cello", "seed": 5, "gain_db": 0.0, "active": [[0.0, 2.0]], "occluded": False,
                         "trajectory": [{"t": 0.0, "azimuth": azimuth, "elevation": 0.0, "distance": 1.0}]}]
    audio, _, _ = build.render_clip(scene)
    assert audio.shape == (2, 2 * SAMPLE_RATE)
    ild, itd = ild_itd(audio.astype(np.float64), SAMPLE_RATE)
    assert sign * ild > 3.0
    assert sign * itd > 0.4e-3


def test_annotation_labels_agree_with_positions_and_audio(tiny_benchmark):
    bench = tiny_benchmark
    sr = bench.sample_rate
    hop = sr // FRAME_RATE
    agree = total = 0
    for item in bench.all_ids():
        scene, ann, audio = bench.scene(item), bench.annotation(item), bench.binaural(item)
        assert len(ann["frames"]) == round(scene["duration_s"] * FRAME_RATE)
        for k, frame in enumerate(ann["frames"]):
            t = (k + 0.5) / FRAME_RATE
            by_cat = {s["category"]: s for s in scene["sources"]}
            for src in frame["sources"]:
                az, el, _ = position_at(by_cat[src["category"]]["trajectory"], t)
                assert src["label"] == side_label(az, el)
            # One sounding lateral source: the built audio's level difference must point to its side.
            if len(frame["sources"]) == 1 and frame["sources"][0]["label"] != "center" and len(scene["sources"]) == 1:
                seg = audio[:, k * hop : (k + 1) * hop].astype(np.float64)
                ild = 10 * np.log10(np.sum(seg[0] ** 2) / max(np.sum(seg[1] ** 2), 1e-20))
                total += 1
                agree += (ild > 0) == (frame["sources"][0]["label"] == "left")
    assert total > 20
    assert agree / total > 0.9


def test_splits_follow_fairplay_proportions(tiny_benchmark):
    ids = set(tiny_benchmark.all_ids())
    assert len(ids) == 24
    for k in range(1, 11):
        parts = {p: set(tiny_benchmark.split_ids(k, p)) for p in ("train", "val", "test")}
        assert parts["train"] | parts["val"] | parts["test"] == ids
        assert not parts["train"] & parts["test"] and not parts["train"] & parts["val"] and not parts["val"] & parts["test"]
        groups = {p: {tiny_benchmark.scene(i)["group_id"] for i in parts[p]} for p in parts}
        assert not groups["train"] & groups["test"]
    assert build.split_counts(1871) == (1497, 187, 187)


def test_scenes_cover_the_benchmark_design(tiny_benchmark):
    scenes = [tiny_benchmark.scene(i) for i in tiny_benchmark.all_ids()]
    counts = [len(s["sources"]) for s in scenes]
    assert min(counts) >= 1 and max(counts) <= 4
    assert sum(c <= 2 for c in counts) > len(counts) / 2
    labels = {side_label(s["trajectory"][0]["azimuth"], s["trajectory"][0]["elevation"]) for sc in scenes for s in sc["sources"]}
    assert labels == {"left", "center", "right"}
    for sc in scenes:
        for s in sc["sources"]:
            assert all(0.5 <= p["distance"] <= 10.0 for p in s["trajectory"])


def test_dataset_crops_and_prompts(tiny_benchmark):
    ds = TASDataset(tiny_benchmark, split=1, part="train", crop_s=1.0, seed=0)
    item = ds[0]
    assert item["binaural"].shape == (2, SAMPLE_RATE)
    assert np.allclose(item["mono"].numpy(), item["binaural"][0:1].numpy() + item["binaural"][1:2].numpy())
    center = item["offset_s"] + 0.5
    frames = item["annotation"]["frames"]
    k = min(int(center * FRAME_RATE), len(frames) - 1)
    assert item["prompt"] == frames[k]["text"]
    assert all(not p["held_out"] for p in item["clip_prompts"])
    pictures = item["frames"]([0.0, 0.5])
    assert pictures.shape == (2, 224, 224, 3) and pictures.dtype == np.uint8


def test_data_show_writes_audio_and_figure(tiny_benchmark, tmp_path):
    item = tiny_benchmark.split_ids(1, "test")[0]
    proc = run_cli("data", "show", item, "--data", str(tiny_benchmark.root), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "dense text" in proc.stdout
    assert (tmp_path / f"{item}.png").stat().st_size > 10_000
    assert (tmp_path / f"{item}_binaural.wav").exists()


def test_unknown_item_is_one_clear_error(tiny_benchmark):
    proc = run_cli("data", "show", "nope", "--data", str(tiny_benchmark.root))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "nope" in proc.stderr


def test_annotations_carry_what_the_ears_receive(tiny_benchmark):
    """Every sounding source has the level the ears receive of it (head and room included), and is flagged
    moving exactly in the frames where its position changes."""
    from tas_eval.data.builtin.render import is_moving

    seen_moving = 0
    for item in tiny_benchmark.all_ids():
        ann, scene = tiny_benchmark.annotation(item), tiny_benchmark.scene(item)
        moving_categories = {s["category"] for s in scene["sources"] if is_moving(s["trajectory"])}
        for frame in ann["frames"]:
            for s in frame["sources"]:
                assert -120.0 < s["ear_level_db"] < 0.0
                assert not s["moving"] or s["category"] in moving_categories
                seen_moving += s["moving"]
    assert seen_moving > 0
