"""Nothing reused without a check: damaged checkpoints, modified data, leftovers of killed writers,
build workers of a killed build, and a second process on a folder in use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tas_eval.cli import main
from tas_eval.paths import file_sha256
from tas_eval.results import load_results

REPO = Path(__file__).resolve().parents[2]


def _flip_one_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A TAS_EVAL_HOME of this test alone (its checkpoints, predictions and caches)."""
    monkeypatch.setenv("TAS_EVAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def build_copy(tiny_benchmark, tmp_path) -> Path:
    """A copy of the tiny build that a test may damage."""
    return Path(shutil.copytree(tiny_benchmark.root, tmp_path / "build"))


def _run(dataset, results: Path, seed: int = 0):
    from tas_eval.runner import run_model

    (r,) = run_model("counting_gain", [1], dataset, device="cpu", seed=seed, results_root=results, metric_ids=["stft"])
    return r


def _final(home: Path) -> Path:
    (final,) = (home / "runs" / "checkpoints").rglob("final.pt")
    return final


# ----------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("damage", ["one bit", "truncated", "empty", "random bytes"])
def test_a_damaged_checkpoint_is_named_discarded_and_trained_again(tiny_benchmark, home, tmp_path, counting_gain,
                                                                  caplog, damage):
    first = _run(tiny_benchmark, tmp_path / "results")
    final = _final(home)
    assert (final.parent / "final.pt.sha256").read_text().split()[0] == first["checkpoint_sha256"] == file_sha256(final)
    if damage == "one bit":
        _flip_one_bit(final)
    elif damage == "truncated":
        final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])
    elif damage == "empty":
        final.write_bytes(b"")
    else:
        final.write_bytes(np.random.default_rng(0).bytes(final.stat().st_size))
    again = _run(tiny_benchmark, tmp_path / "results")
    assert counting_gain.fits == 2  # trained again
    assert f"{final}: does not match the sha256 recorded in final.pt.sha256" in caplog.text
    assert again["checkpoint_sha256"] == first["checkpoint_sha256"] == file_sha256(final)  # the same weights again
    assert again["metrics"] == first["metrics"]


def test_a_checkpoint_without_its_record_that_cannot_load_is_trained_again(tiny_benchmark, home, tmp_path,
                                                                            counting_gain, caplog):
    _run(tiny_benchmark, tmp_path / "results")
    final = _final(home)
    (final.parent / "final.pt.sha256").unlink()  # as a checkpoint saved before the record existed
    final.write_bytes(b"PK\x03\x04 not a checkpoint")
    _run(tiny_benchmark, tmp_path / "results")
    assert counting_gain.fits == 2 and f"{final}: cannot be loaded" in caplog.text


def test_predictions_belong_to_the_checkpoint_that_made_them(tiny_benchmark, home, tmp_path, counting_gain):
    first = _run(tiny_benchmark, tmp_path / "results")
    final = _final(home)
    other = counting_gain()
    with torch.no_grad():
        other.g.fill_(0.9)
    other.save(final)  # weights from elsewhere, recorded as such
    (final.parent / "final.pt.sha256").write_text(f"{file_sha256(final)}  final.pt\n")
    again = _run(tiny_benchmark, tmp_path / "results")
    assert counting_gain.fits == 1  # a sound checkpoint is reused ...
    assert again["checkpoint_sha256"] == file_sha256(final) != first["checkpoint_sha256"]
    # ... but the predictions of the old weights are not: the new weights predict every item again
    assert again["extra"]["items_predicted_in_this_run"] == len(tiny_benchmark.split_ids(1, "test"))
    assert again["metrics"]["stft"]["value"] != first["metrics"]["stft"]["value"]


def test_a_damaged_training_state_starts_training_from_the_first_step(tmp_path, caplog):
    from baselines.common.training import TRAIN_STATE, train_loop

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    (tmp_path / TRAIN_STATE).write_bytes(b"truncated")
    losses = train_loop(net, optimizer, lambda step: net(torch.ones(1, 2)).pow(2).sum(), 3, tmp_path,
                        checkpoint_every=1)
    assert len(losses) == 3 and f"{tmp_path / TRAIN_STATE}: cannot be read" in caplog.text
    assert torch.load(tmp_path / TRAIN_STATE, weights_only=False)["step"] == 3


# ----------------------------------------------------------------------------------------- built data


def test_a_modified_reference_wav_is_refused_before_any_number_is_written(tiny_benchmark, build_copy, home,
                                                                           tmp_path, capsys):
    item = tiny_benchmark.split_ids(1, "test")[0]
    wav = build_copy / "audio" / f"{item}.wav"
    _flip_one_bit(wav)
    results = tmp_path / "results"
    for args in (["evaluate", "--ground-truth"], ["run", "--model", "text_pan"]):
        assert main([*args, "--split", "1", "--data-root", str(build_copy), "--results", str(results),
                     "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"tas-eval: error: {wav}: differs from the sha256 in manifest.json: the build was modified; "
                       "rebuild it with `tas-eval data build` (into a fresh folder) or restore the file.")
    assert not results.exists()


def test_a_modified_training_item_stops_a_training_run(tiny_benchmark, build_copy, home, tmp_path, counting_gain, capsys):
    from tas_eval.data.builtin.benchmark import Benchmark
    from tas_eval.errors import UserError

    item = tiny_benchmark.split_ids(1, "train")[-1]
    _flip_one_bit(build_copy / "annotations" / f"{item}.json")
    with pytest.raises(UserError, match=f"annotations/{item}.json: differs from the sha256 in manifest.json"):
        _run(Benchmark(build_copy), tmp_path / "results")
    assert counting_gain.fits == 0 and not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------------------- leftovers


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_are_cleaned_and_never_taken_for_items_or_samples(tiny_benchmark, build_copy, home, tmp_path):
    from tas_eval.data.builtin.benchmark import Benchmark
    from tas_eval.metrics.stats_cache import FOLDER

    dead = _dead_pid()
    results = tmp_path / "results"
    assert main(["run", "--model", "mono_mono", "--split", "1", "--data-root", str(build_copy),
                 "--results", str(results), "--device", "cpu"]) == 0
    folder = results / tiny_benchmark.id / "split1" / "mono_mono"
    places = [folder, folder / "samples", results / tiny_benchmark.id / "split1" / "_reference",
              results / tiny_benchmark.id / "split1" / "_reference" / "samples", home / "cache" / FOLDER]
    for place in places:
        (place / f".tmp-x.wav-{dead}-abcdefgh").write_bytes(b"half a file")
    (build_copy / "audio" / ".tmp-c00099.wav").write_bytes(b"half a file")  # the naming of older versions
    assert ".tmp-c00099" not in Benchmark(build_copy).all_ids()
    assert main(["run", "--model", "mono_mono", "--split", "1", "--data-root", str(build_copy),
                 "--results", str(results), "--device", "cpu", "--no-cache"]) == 0
    assert not [p for place in places for p in place.glob(".tmp-*")]
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "site")]) == 0
    assert ".tmp" not in (tmp_path / "site" / "leaderboard.json").read_text()


# ----------------------------------------------------------------------------------------- build workers


_SLOW_WORKERS = textwrap.dedent('''
    import os, time
    import tas_eval.data.builtin.build as build
    def _slow(out, index, seed, duration):
        open(os.path.join(out, f"worker-{os.getpid()}"), "w").close()
        time.sleep(60)
    build.build_item = _slow
''')

_FAILING_WORKER = textwrap.dedent('''
    import tas_eval.data.builtin.build as build
    _real = build.build_item
    def _fails_at_3(out, index, seed, duration):
        if index == 3:
            raise RuntimeError("synthesizer crashed")
        return _real(out, index, seed, duration)
    build.build_item = _fails_at_3
''')


def _cli(prelude: str, args: list[str], home: Path, **kw) -> subprocess.Popen:
    code = prelude + "\nimport sys\nfrom tas_eval.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = dict(os.environ, TAS_EVAL_HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))  # a zombie has ended


def test_build_workers_end_when_the_build_is_killed(tmp_path):
    out = tmp_path / "build"
    proc = _cli(_SLOW_WORKERS, ["data", "build", "--profile", "tiny", "--seed", "11", "--out", str(out),
                                "--workers", "2"], tmp_path / "home", stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(out.glob("worker-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in out.glob("worker-*")]
    assert len(workers) == 2 and all(_alive(w) for w in workers)
    proc.send_signal(signal.SIGKILL)  # kill -9 of the build
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), "build workers outlived the killed build"


def test_a_failing_build_worker_is_a_clean_error(tmp_path):
    out = tmp_path / "build"
    proc = _cli(_FAILING_WORKER, ["data", "build", "--profile", "tiny", "--seed", "12", "--out", str(out),
                                  "--workers", "2"], tmp_path / "home", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "Traceback" not in err
    assert f"tas-eval: error: {out}: building clip 3 failed (RuntimeError: synthesizer crashed)" in err
    assert not (out / "manifest.json").exists()


# ----------------------------------------------------------------------------------------- a second process


def test_a_second_process_on_a_folder_in_use_is_refused_with_a_message(tiny_benchmark, home, tmp_path, capsys):
    """A run folder (predictions) and a results folder held by another process: the second command says
    so and writes nothing; once the holder is gone (even killed), the command runs."""
    from tas_eval.runner import run_key

    results = tmp_path / "results"
    pred_run = home / "runs" / "predictions" / tiny_benchmark.id / "split1" / \
        f"mono_mono-{run_key('mono_mono', {}, tiny_benchmark.content_hash, 1, 0, '1')[:16]}"
    submission = tmp_path / "mine"
    submission.mkdir()
    for item_id in tiny_benchmark.split_ids(1, "test"):
        import soundfile as sf

        sf.write(submission / f"{item_id}.wav", 0.5 * tiny_benchmark.binaural(item_id).T, 16000, subtype="FLOAT")
    cases = [(pred_run, ["run", "--model", "mono_mono"]),
             (results / tiny_benchmark.id / "split1" / "mine", ["evaluate", "--predictions", str(submission)])]
    for folder, args in cases:
        holder = subprocess.Popen(
            [sys.executable, "-c", f"import sys\nfrom tas_eval.io import folder_lock\n"
                                   f"with folder_lock({str(folder)!r}):\n    print('locked', flush=True)\n"
                                   f"    sys.stdin.readline()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert holder.stdout.readline().strip() == "locked"
        command = [*args, "--split", "1", "--data-root", str(tiny_benchmark.root), "--results", str(results),
                   "--device", "cpu"]
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"{folder}: another tas-eval process (pid {holder.pid}) is writing here" in err
        holder.kill()  # a holder killed with the lock held: its lock is taken over
        holder.wait()
        assert main(command) == 0
