"""`tas-eval run` end to end on the tiny profile: results, resuming after kill -9, checkpoint reuse, several splits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tas_eval.cli import main
from tas_eval.results import load_items, load_results

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict:
    env = dict(os.environ, TAS_EVAL_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("PYTHONHASHSEED", None)
    return env


def _run_cli(home: Path, args: list[str], prelude: str = "") -> subprocess.CompletedProcess:
    """`tas-eval ARGS` in a fresh interpreter; ``prelude`` is Python run first (to arm a self-kill)."""
    code = prelude + "\nimport sys\nfrom tas_eval.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(home), cwd=home.parent,
                          capture_output=True, text=True, timeout=300)


def _run_args(bench, results: Path, model: str = "text_pan") -> list[str]:
    return ["run", "--model", model, "--split", "1", "--data", str(bench.root), "--results", str(results),
            "--device", "cpu"]


# Kill this very process with SIGKILL (what `kill -9` sends) while the second prediction WAV is being
# written: its temporary file is cut to half its size (as a write in progress leaves it) and the
# process dies before the rename that would publish it; nothing is cleaned up.
KILL_DURING_SECOND_WAV = textwrap.dedent('''
    import os, signal
    _replace, _count = os.replace, [0]
    def _dying_replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".wav") and os.path.basename(os.path.dirname(str(dst))) == "predictions":
            _count[0] += 1
            if _count[0] == 2:
                os.truncate(src, os.path.getsize(src) // 2)
                os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *args, **kwargs)
    os.replace = _dying_replace
''')

# Kill during evaluation: after items.jsonl is written, before results.json is.
KILL_BEFORE_RESULTS_JSON = textwrap.dedent('''
    import os, signal
    import tas_eval.io as tio
    _atomic = tio.write_bytes_atomic
    def _dying(path, data):
        if path.name == "results.json":
            os.kill(os.getpid(), signal.SIGKILL)
        return _atomic(path, data)
    tio.write_bytes_atomic = _dying
''')


def _predictions_dir(home: Path, bench) -> Path:
    found = list((home / "runs" / "predictions" / bench.id / "split1").glob("text_pan-*/predictions"))
    assert len(found) == 1
    return found[0]


def _folder(results: Path, bench, model="text_pan") -> Path:
    return results / bench.id / "split1" / model


@pytest.fixture(scope="module")
def reference_run(tiny_benchmark, tmp_path_factory):
    """An uninterrupted `tas-eval run --model text_pan --split 1` on the tiny profile."""
    home = tmp_path_factory.mktemp("uninterrupted") / "home"
    results = home.parent / "results"
    proc = _run_cli(home, _run_args(tiny_benchmark, results))
    assert proc.returncode == 0, proc.stderr
    return home, results, proc


def test_run_writes_predictions_results_and_samples(tiny_benchmark, reference_run):
    home, results, proc = reference_run
    test_ids = tiny_benchmark.split_ids(1, "test")
    pred = _predictions_dir(home, tiny_benchmark)
    assert sorted(p.name for p in pred.iterdir()) == sorted([f"{i}.wav" for i in test_ids] + ["model.json", "counterfactual"])
    # a text-guided model also predicts every item under its side-swapped prompt
    assert sorted(p.name for p in (pred / "counterfactual").iterdir()) == sorted(f"{i}.wav" for i in test_ids)
    assert json.loads((pred / "model.json").read_text())["name"] == "text_pan"

    folder = _folder(results, tiny_benchmark)
    r = load_results(folder)
    assert r["model"] == "text_pan" and r["split"] == 1 and r["checkpoint_sha256"] is None
    assert r["dataset"]["id"] == tiny_benchmark.id and r["dataset"]["manifest_sha256"] == tiny_benchmark.content_hash
    assert r["device"] == "cpu" and r["seeds"]["inference"] == 0
    assert {"fit", "predict", "evaluate"} <= set(r["timings"])
    notes = r["extra"]["model_notes"]
    assert notes["frames"] == sum(len(tiny_benchmark.annotation(i)["frames"]) for i in test_ids)
    assert notes["fallbacks"] == 0  # the parser understands every dense text of the benchmark
    items = load_items(folder, r)
    assert [i["item_id"] for i in items] == test_ids
    assert (folder / "samples" / f"{sorted(test_ids)[0]}.wav").is_file()
    assert (results / tiny_benchmark.id / "split1" / "_reference" / "samples" / f"{sorted(test_ids)[0]}.mono.wav").is_file()
    # the printed table names every metric of the results
    for mid in r["metrics"]:
        assert mid in proc.stdout


def _same_scores(a: Path, b: Path) -> None:
    ra, rb = load_results(a), load_results(b)
    assert load_items(a, ra) == load_items(b, rb)
    assert {k: v["value"] for k, v in ra["metrics"].items()} == {k: v["value"] for k, v in rb["metrics"].items()}
    assert ra["extra"]["model_notes"] == rb["extra"]["model_notes"]


def test_kill_9_during_prediction_then_rerun_gives_the_same_results(tiny_benchmark, reference_run, tmp_path):
    _, ref_results, _ = reference_run
    home, results = tmp_path / "home", tmp_path / "results"
    killed = _run_cli(home, _run_args(tiny_benchmark, results), prelude=KILL_DURING_SECOND_WAV)
    assert killed.returncode == -signal.SIGKILL
    pred = _predictions_dir(home, tiny_benchmark)
    wavs = sorted(p.name for p in pred.glob("*.wav") if not p.name.startswith("."))
    assert len(wavs) == 1, wavs  # one item finished, the second died half-written
    assert [p.name for p in pred.glob(".tmp-*")], "the half-written temporary file should be left behind"
    assert not results.exists()

    again = _run_cli(home, _run_args(tiny_benchmark, results))
    assert again.returncode == 0, again.stderr
    assert not list(pred.glob(".tmp-*"))
    r = load_results(_folder(results, tiny_benchmark))
    assert r["extra"]["items_predicted_in_this_run"] == len(tiny_benchmark.split_ids(1, "test")) - 1
    _same_scores(_folder(results, tiny_benchmark), _folder(ref_results, tiny_benchmark))
    for wav in pred.glob("c*.wav"):  # the predictions themselves are identical, sample for sample
        # (not byte for byte: libsndfile's PEAK chunk of a float WAV holds the time of writing)
        other = _predictions_dir(reference_run[0], tiny_benchmark) / wav.name
        assert np.array_equal(sf.read(wav, dtype="float32")[0], sf.read(other, dtype="float32")[0])


def test_kill_9_before_results_json_then_rerun_completes(tiny_benchmark, reference_run, tmp_path):
    _, ref_results, _ = reference_run
    home, results = tmp_path / "home", tmp_path / "results"
    killed = _run_cli(home, _run_args(tiny_benchmark, results), prelude=KILL_BEFORE_RESULTS_JSON)
    assert killed.returncode == -signal.SIGKILL
    folder = _folder(results, tiny_benchmark)
    assert (folder / "items.jsonl").is_file() and not (folder / "results.json").is_file()
    again = _run_cli(home, _run_args(tiny_benchmark, results))
    assert again.returncode == 0, again.stderr
    assert load_results(folder)["extra"]["items_predicted_in_this_run"] == 0
    _same_scores(folder, _folder(ref_results, tiny_benchmark))


def test_evaluate_a_copied_predictions_directory_gives_the_same_numbers(tiny_benchmark, reference_run, tmp_path, capsys):
    """`tas-eval evaluate` on an outside copy scores exactly as `run` did (one evaluation path)."""
    home, ref_results, _ = reference_run
    copy = tmp_path / "my_submission"
    copy.mkdir()
    for f in _predictions_dir(home, tiny_benchmark).glob("c*.wav"):
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "counterfactual").mkdir()
    for f in (_predictions_dir(home, tiny_benchmark) / "counterfactual").glob("c*.wav"):
        (copy / "counterfactual" / f.name).write_bytes(f.read_bytes())
    results = tmp_path / "results"
    assert main(["evaluate", "--predictions", str(copy), "--split", "1", "--data", str(tiny_benchmark.root),
                 "--results", str(results), "--device", "cpu"]) == 0
    folder = _folder(results, tiny_benchmark, "my_submission")
    r = load_results(folder)
    ref = load_results(_folder(ref_results, tiny_benchmark))
    assert {k: v["value"] for k, v in r["metrics"].items()} == {k: v["value"] for k, v in ref["metrics"].items()}
    assert [{k: v for k, v in i.items()} for i in load_items(folder, r)] == load_items(_folder(ref_results, tiny_benchmark), ref)
    assert r["checkpoint_sha256"] is None and r["config"] == {}


def test_mono_mono_scores_worse_than_the_ground_truth_row(tiny_benchmark, tmp_path):
    """Sanity of the chain: `evaluate --ground-truth` scores the references against themselves
    through the same path (distances 0, direction accuracy below 1), Mono-Mono does worse."""
    results = tmp_path / "results"
    data = ["--split", "1", "--data", str(tiny_benchmark.root), "--results", str(results), "--device", "cpu"]
    assert main(["evaluate", "--ground-truth", *data]) == 0
    folder = _folder(results, tiny_benchmark, "ground_truth")
    r_perfect = load_results(folder)
    assert r_perfect["extra"]["ground_truth"] is True and not (folder / "samples").exists()
    assert 0.0 < r_perfect["metrics"]["direction_acc"]["value"] <= 1.0
    assert main(_run_args(tiny_benchmark, results, "mono_mono")) == 0
    r_mono = load_results(_folder(results, tiny_benchmark, "mono_mono"))
    # Mono-Mono does not read the prompt: its counterfactual prediction is the same, it follows nothing.
    assert r_mono["metrics"]["follow_spl"]["value"] == 0.0
    assert not list((_folder(results, tiny_benchmark, "mono_mono") / "samples").glob("*.counterfactual.wav"))
    for mid in ("stft", "env"):
        assert r_perfect["metrics"][mid]["value"] == pytest.approx(0.0, abs=1e-9)
        assert r_mono["metrics"][mid]["value"] > 1e-4
    # The name is kept for that row: a submission may not take it.
    submission = tmp_path / "sub"
    submission.mkdir()
    for item_id in tiny_benchmark.split_ids(1, "test"):
        sf.write(submission / f"{item_id}.wav", tiny_benchmark.binaural(item_id).T, 16000, subtype="FLOAT")
    assert main(["evaluate", "--predictions", str(submission), "--name", "ground_truth", *data]) == 2
    assert main(["evaluate", *data]) == 2  # neither --predictions nor --ground-truth


# ----------------------------------------------------------------------------------------- a model that trains


def test_a_trained_checkpoint_is_reused_only_when_everything_matches(tiny_benchmark, tmp_path, counting_gain):
    from tas_eval.runner import run_model

    _CountingGain = counting_gain
    common = dict(device="cpu", results_root=tmp_path / "results")
    (first,) = run_model("counting_gain", [1], tiny_benchmark, seed=0, **common)
    assert _CountingGain.fits == 1 and first["checkpoint_sha256"] is not None
    threads = torch.get_num_threads()
    trained = {"device": "cpu", "precision": "fp32", "torch_threads": threads, "torch": torch.__version__}
    assert first["extra"]["trained_with"] == trained and first["extra"]["torch_threads"] == threads
    torch.set_num_threads(threads + 1)
    try:
        (again,) = run_model("counting_gain", [1], tiny_benchmark, seed=0, **common)
    finally:
        torch.set_num_threads(threads)
    assert _CountingGain.fits == 1  # reused, not retrained
    assert again["checkpoint_sha256"] == first["checkpoint_sha256"]
    assert again["extra"]["items_predicted_in_this_run"] == 0
    # The record of the training travels with the checkpoint; the run's own thread count is its own.
    assert again["extra"]["trained_with"] == trained and again["extra"]["torch_threads"] == threads + 1
    run_model("counting_gain", [1], tiny_benchmark, seed=1, **common)  # another seed is another run key
    assert _CountingGain.fits == 2


def test_bf16_trains_and_predicts_under_autocast_is_recorded_and_never_reuses_float32(tiny_benchmark, tmp_path,
                                                                                      counting_gain):
    from tas_eval.errors import UserError
    from tas_eval.evaluation import evaluate_predictions
    from tas_eval.paths import runs_root
    from tas_eval.runner import run_model

    common = dict(device="cpu", train_profile="tiny", metric_ids=["stft", "env", "side_acc"])
    (fp32,) = run_model("ours_saf", [1], tiny_benchmark, results_root=tmp_path / "a", **common)
    (bf16,) = run_model("ours_saf", [1], tiny_benchmark, results_root=tmp_path / "b", precision="bf16", **common)
    assert fp32["extra"]["precision"] == "fp32"  # auto on a CPU
    assert bf16["extra"]["precision"] == "bf16" and bf16["extra"]["trained_with"]["precision"] == "bf16"
    assert bf16["extra"]["run_key"] != fp32["extra"]["run_key"]
    assert bf16["checkpoint_sha256"] != fp32["checkpoint_sha256"]
    # The metrics of a bf16 run are those of the one evaluation path on its predictions, outside autocast.
    key = bf16["extra"]["run_key"][:16]
    (pred_dir,) = runs_root().glob(f"predictions/*/split1/ours_saf-{key}*/predictions")
    again, _ = evaluate_predictions(pred_dir, tiny_benchmark, 1, name="copy", results_root=tmp_path / "c",
                                    device="cpu", metric_ids=common["metric_ids"])
    assert {k: v["value"] for k, v in again["metrics"].items()} == {k: v["value"] for k, v in bf16["metrics"].items()}
    with pytest.raises(UserError, match="--precision bf16"):
        run_model("counting_gain", [1], tiny_benchmark, device="cpu", results_root=tmp_path / "d", precision="bf16")


def test_several_splits_report_the_mean(tiny_benchmark, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", "--model", "mono_mono", "--splits", "1-2", "--data", str(tiny_benchmark.root),
                 "--results", str(results), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mean over splits" in out
    values = [load_results(results / tiny_benchmark.id / f"split{s}" / "mono_mono")["metrics"]["stft"]["value"]
              for s in (1, 2)]
    row = next(line for line in out.splitlines() if line.startswith("stft "))
    assert f"{np.mean(values):.4g}" in row.split()[-1]


# ----------------------------------------------------------------------------------------- the device


class _DeviceProbe:
    """A trained model that is not a torch.nn.Module (as the packaged baselines are not): it records the
    device it was moved to and the devices its inference sees; its load leaves the weights on the CPU."""

    name = "device_probe"
    guidance = frozenset()
    paper = "test model"
    description = "records the devices inference sees"
    trains = True
    configs = {"paper": {}, "small": {}}
    seen: list[dict] = []

    def __init__(self):
        self.weight = torch.zeros(1)
        self.moved_to = None

    def fit(self, dataset, split, config, device, seed, checkpoint_dir):
        self.weight = torch.full((1,), 1e-3)

    def save(self, path):
        torch.save({"w": self.weight}, path)

    def load(self, path):
        self.weight = torch.load(path, map_location="cpu", weights_only=True)["w"]

    def to(self, device):
        self.moved_to = str(device)
        self.weight = self.weight.to(device)
        return self

    def spatialize(self, mono, sr, prompts=None, frames=None):
        type(self).seen.append({"to": self.moved_to, "mono": mono.device.type, "weights": self.weight.device.type})
        return torch.cat([mono, mono], dim=1) / 2 + self.weight


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_spatialize_runs_on_the_device_the_results_record(tiny_benchmark, tmp_path, monkeypatch, device):
    from tas_eval.models import MODELS
    from tas_eval.runner import run_model

    monkeypatch.setattr(MODELS, "_objects", dict(MODELS._objects))
    MODELS.add("device_probe", _DeviceProbe)
    _DeviceProbe.seen = []
    (results,) = run_model("device_probe", [1], tiny_benchmark, device=device, results_root=tmp_path,
                           metric_ids=["stft"])
    recorded = results["device"].split(":")[0].split(" ")[0]
    assert recorded == device and _DeviceProbe.seen
    assert all(s == {"to": device, "mono": device, "weights": device} for s in _DeviceProbe.seen), _DeviceProbe.seen


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["ours_saf", "mono2binaural_text"])
def test_a_trained_baseline_moves_its_networks_to_the_device(name):
    from tas_eval.models import get_model_class

    model = get_model_class(name)()
    model._build(model.configs["tiny"])
    model.to("cuda")
    assert {p.device.type for p in model.net.parameters()} == {"cuda"}
