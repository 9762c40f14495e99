"""The question-answering metrics through the one evaluation path, with an assessor trained here on the tiny
build on a tiny randomly initialised Llama (the real LM is too slow for CI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tas_eval.cli import main
from tas_eval.metrics.assessor import load_assessor
from tas_eval.metrics.assessor.training import train
from tas_eval.results import load_items, load_results

QA_METRICS = {"qa_doa", "qa_de", "qa_direction", "qa_distance"}


@pytest.fixture(scope="module")
def tiny_assessor(tiny_benchmark, tiny_llm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("assessor")
    llm = tiny_llm
    record = train(tiny_benchmark, folder / "qa.pt", profile="tiny", llm=llm, device="cpu", seed=0)
    return folder / "qa.pt", llm, record


def test_training_records_what_it_learned_from(tiny_benchmark, tiny_assessor):
    path, llm, record = tiny_assessor
    assert record["train_clips"] == len(tiny_benchmark.split_ids(1, "train")) and record["train_questions"] > 0
    assert record["steps"] == 6 and np.isfinite(record["loss_first"]) and np.isfinite(record["loss_last"])
    assert record["rendered_scenes"] == 4 and record["rendered_questions"] > 0
    assert record["questions_sha256"] == tiny_benchmark.questions()["sha256"]
    assert set(record["val"]) == {"accuracy", "chance", "kinds"}
    assert path.stat().st_size < 20e6
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"projector", "lora", "config", "training"}
    assert ckpt["config"]["train_items"] == tiny_benchmark.split_ids(1, "train")
    assessor = load_assessor(path)
    assert assessor.describe()["llm"]["sha256"] == record["llm"]["sha256"]


def test_a_checkpoint_of_the_earlier_token_layout_is_refused_by_name(tiny_assessor, tmp_path):
    from tas_eval.errors import UserError

    path, _, _ = tiny_assessor
    ckpt = torch.load(path, weights_only=True)
    for key in ("presence", "max_sources"):
        del ckpt["config"][key]
    ckpt["config"]["frames_per_token"] = 5
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    with pytest.raises(UserError, match="old.pt: was trained on audio tokens of 0.5 s"):
        load_assessor(old)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["config"]["relations"]
    heard_only = tmp_path / "heard_only.pt"
    torch.save(ckpt, heard_only)
    with pytest.raises(UserError, match="heard_only.pt: was trained on other audio-token lines"):
        load_assessor(heard_only)


def test_the_gaps_through_evaluate(tiny_benchmark, tiny_assessor, tmp_path):
    path, llm, _ = tiny_assessor
    ids = tiny_benchmark.split_ids(1, "test")
    questions = [q for i in ids for q in tiny_benchmark.questions()["items"][i]]
    assert questions, "the tiny build's test part must ask questions"
    common = ["--split", "1", "--data-root", str(tiny_benchmark.root), "--results", str(tmp_path / "r"),
              "--device", "cpu", "--assessor-checkpoint", str(path)]
    assert main(["evaluate", "--ground-truth", *common]) == 0
    gt = load_results(tmp_path / "r" / tiny_benchmark.id / "split1" / "ground_truth")
    present = {f"qa_{t}" for t in {q["type"] for q in questions}}
    withheld = gt["extra"].get("question_answering_withheld", {})
    reported = set(gt["metrics"]) & QA_METRICS
    assert reported | set(withheld) == present and not reported & set(withheld)
    for mid, w in withheld.items():  # at chance on the references: no gap, the accuracies kept
        assert w["accuracy_ground_truth"] <= w["chance"] and w["questions"] > 0 and 0.0 <= w["p_above_chance"] <= 1.0
    for mid in reported:  # the same audio gets the same answers: every gap is 0
        rec = gt["metrics"][mid]
        assert rec["details"]["accuracy_ground_truth"] > rec["details"]["chance"]
        assert rec["value"] == 0.0 and rec["unit"] == "points" and rec["direction"] == "lower"
        assert rec["details"]["accuracy_ground_truth"] == rec["details"]["accuracy_prediction"]
        assert 0.0 <= rec["details"]["chance"] <= 100.0
        assert rec["details"]["questions_sha256"] == tiny_benchmark.questions()["sha256"]
        assert rec["backbone"]["id"] == "tas_qa" and rec["backbone"]["localizer"]["id"] == "tas_loc"
        assert rec["n"] == sum(1 for q in questions if f"qa_{q['type']}" == mid)

    from tas_eval.paths import cache_root

    cached = list((cache_root() / "qa_answers").glob("*.json"))
    assert cached, "the answers about the references are cached"

    # an ear-swapped copy of the references, as a submission
    sub = tmp_path / "swapped"
    sub.mkdir()
    from tas_eval.audio import write_wav

    for i in ids:
        write_wav(sub / f"{i}.wav", tiny_benchmark.binaural(i)[::-1].copy(), tiny_benchmark.sample_rate)
    assert main(["evaluate", "--predictions", str(sub), "--name", "swapped", *common]) == 0
    folder = tmp_path / "r" / tiny_benchmark.id / "split1" / "swapped"
    r = load_results(folder)
    items = load_items(folder)
    answered = [a for item in items for a in item.get("qa", [])]
    assert len(answered) == len(questions)
    assert set(r["metrics"]) & QA_METRICS == reported  # the references decide which gaps are withheld
    for mid in reported:
        d = r["metrics"][mid]["details"]
        assert r["metrics"][mid]["value"] == pytest.approx(d["accuracy_ground_truth"] - d["accuracy_prediction"])
        rows = [a for a, q in zip(answered, questions) if f"qa_{q['type']}" == mid]
        assert d["accuracy_prediction"] == pytest.approx(100 * np.mean([a["right_prediction"] for a in rows]))


def test_without_the_lm_the_metrics_are_absent_not_zero(tiny_benchmark, tiny_assessor, tmp_path):
    path, llm, _ = tiny_assessor
    common = ["--split", "1", "--data-root", str(tiny_benchmark.root), "--results", str(tmp_path / "r"),
              "--device", "cpu", "--assessor-checkpoint", str(path), "--assessor-llm", str(tmp_path / "no-llm")]
    assert main(["evaluate", "--ground-truth", *common]) == 0
    r = load_results(tmp_path / "r" / tiny_benchmark.id / "split1" / "ground_truth")
    assert not QA_METRICS & set(r["metrics"])
    assert "no-llm" in r["extra"]["question_answering_not_computed"]


def test_another_localizer_leaves_the_packaged_assessor_out_and_refuses_a_named_one(tiny_benchmark, tiny_assessor,
                                                                                   tmp_path, capsys):
    """A localizer of one's own (here the packaged weights saved again, so another sha256) still gives the
    spatial measures; the packaged assessor, trained on the packaged localizer, is left out with the reason.
    An assessor named on the command line that does not fit the localizer is an error naming its file."""
    from tas_eval.metrics.localizer import WEIGHTS as LOCALIZER_WEIGHTS

    path, llm, _ = tiny_assessor
    ckpt = torch.load(LOCALIZER_WEIGHTS, weights_only=False)
    ckpt["training"] = dict(ckpt.get("training") or {}, note="saved again")
    other = tmp_path / "other_loc.pt"
    torch.save(ckpt, other)
    common = ["--split", "1", "--data-root", str(tiny_benchmark.root), "--device", "cpu",
              "--localizer-checkpoint", str(other)]
    assert main(["evaluate", "--ground-truth", *common, "--results", str(tmp_path / "r")]) == 0
    r = load_results(tmp_path / "r" / tiny_benchmark.id / "split1" / "ground_truth")
    assert "side_acc" in r["metrics"] and not QA_METRICS & set(r["metrics"])
    assert "other_loc.pt" in r["extra"]["question_answering_not_computed"]
    capsys.readouterr()
    assert main(["evaluate", "--ground-truth", *common, "--results", str(tmp_path / "r2"),
                 "--assessor-checkpoint", str(path), "--assessor-llm", str(llm)]) == 2
    err = capsys.readouterr().err
    assert "qa.pt: was trained on the localizer with sha256" in err and "other_loc.pt" in err


def test_questions_are_stored_once_in_the_manifest(tiny_benchmark):
    manifest = json.loads((tiny_benchmark.root / "manifest.json").read_text())
    block = manifest["qa"]
    assert set(block["items"]) == set(tiny_benchmark.all_ids())
    from tas_eval.data.qa import qa_block

    scenes = [tiny_benchmark.scene(i) for i in tiny_benchmark.all_ids()]
    assert qa_block(scenes) == block  # drawn from the scenes with the fixed seed: the same on every machine


def test_rendered_scenes_come_from_the_train_part_and_answer_their_geometry(tiny_benchmark, monkeypatch):
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.data.qa import item_questions
    from tas_eval.metrics.assessor import training
    from tas_eval.metrics.localizer import load_localizer
    from tas_eval.metrics.localizer import training as loc_training

    parts = []
    real = loc_training.source_pool

    def spy(benchmark, split, part):
        parts.append(part)
        return real(benchmark, split, part)

    monkeypatch.setattr(loc_training, "source_pool", spy)
    tokens, examples = training.rendered_examples(tiny_benchmark, 1, 3, 0, load_localizer())
    assert parts == ["train"]
    assert len(tokens) == 3
    for t in tokens.values():  # one line per category, each once
        assert sorted(t.category.tolist()) == list(range(len(category_names())))
        assert all(len(w) == len(t.category) for w in t.words.values()) and len(t.mass) == len(t.category)
    pool = real(tiny_benchmark, 1, "train")
    drawn = training.draw_scene(pool, np.random.default_rng(1), "kemar", 0)
    audio, scene = training.render_scene(drawn), drawn["scene"]
    assert audio.shape == (2, int(training.SCENE_S * 16000)) and np.abs(audio).max() > 0
    cats = [s["category"] for s in scene["sources"]]
    assert len(set(cats)) == len(cats) and set(cats) <= {e["category"] for e in pool}
    assert item_questions(scene) == item_questions(scene)
    again, asked = training.rendered_examples(tiny_benchmark, 1, 3, 0, load_localizer(), workers=2)
    assert asked == examples  # the same scenes for any number of rendering workers
    for scene_id, t in tokens.items():
        for field, value in t._asdict().items():
            other = getattr(again[scene_id], field)
            if isinstance(value, dict):
                assert value.keys() == other.keys() and all(torch.equal(value[k], other[k]) for k in value), field
            else:
                assert (value is None and other is None) or torch.equal(value, other), field
