"""Training the assessor: its LoRA adapters, on the build's questions about TRAIN clips.

Data, from the TRAIN part of a split of the built benchmark only:
- its clips' reference audio with the questions the manifest holds for them (tas_eval.data.qa),
  asked in their training phrasings;
- rendered scenes (``render_scene``): SCENE_S seconds with one to three static sources of distinct
  categories, drawn from the TRAIN part's dry sources, at random positions in a room drawn as the
  generator draws its rooms, through the KEMAR HRIRs or the spherical head (as the localizer learns),
  with the generator's renderer; their questions are drawn by the same code from their geometry.
  A share P_RENDERED of the batches is drawn from them, the others from the clips. They are needed: a few hundred clips whose
  categories mostly differ let a question's words name its clip, and an LM fine-tuned on them alone
  learns the answers of the train clips by their words and not from the audio (measured: on the VAL
  part it then answered below chance on every type).
The VAL part's clips, asked in the held-out phrasings, measure the result; the TEST part is never
read. The localizer is frozen and the projector fixed (model.py), so each clip's audio tokens are
computed once.

Recipe per profile (PROFILES): AdamW (weight decay 0) over the LoRA adapters, the learning rate rising
linearly over ``warmup`` steps and then falling along a cosine to 0; batches of ``batch`` questions
drawn uniformly from the rendered scenes' or the clips' questions with numpy's generator seeded by
``seed``; every question type mixed from the start. "small" trains on two CPU cores with one torch
thread; "paper" is BAT's learning rate with a longer run and larger batches, for a GPU; "tiny" is for
tests.
"""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from tas_eval.errors import UserError
from tas_eval.metrics.assessor import ASSESSOR_ID, Assessor, build_assessor_network
from tas_eval.metrics.assessor.llm import DEFAULT_LLM
from tas_eval.metrics.assessor.model import LORA, MAX_SOURCES, PRESENCE, RELATIONS, for_question
from tas_eval.metrics.assessor.scorer import accuracies, chance_levels, is_right, kind_accuracies

log = logging.getLogger(__name__)

PROFILES = {
    "tiny": {"steps": 6, "batch": 4, "lr": 3e-3, "warmup": 1, "scenes": 4},
    "small": {"steps": 500, "batch": 8, "lr": 3e-3, "warmup": 20, "scenes": 4000},
    "paper": {"steps": 3000, "batch": 32, "lr": 1e-4, "warmup": 150, "scenes": 20000},
}
SCENE_S = 3.0
SOURCE_COUNTS, SOURCE_COUNT_P = (1, 2, 3), (0.3, 0.45, 0.25)
SCENE_GAIN_DB = (-6.0, 0.0)  # each source's gain in a rendered scene
P_RENDERED = 0.75


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _tokens(localizer, benchmark, ids: list[str], desc: str) -> dict:
    from tas_eval.metrics.assessor.model import clip_tokens

    clips = tqdm(ids, desc=desc, unit="clip", leave=False)
    return dict(zip(ids, clip_tokens(localizer, (benchmark.binaural(i) for i in clips))))


def draw_scene(pool: list[dict], rng: np.random.Generator, head: str, index: int) -> dict:
    """The random choices of one rendered training scene (see the module docstring), drawn from ``rng`` in a
    fixed order: {"scene": tas_eval.data.scene's layout with item id "rendered-<index>", "crops", "head"}."""
    from tas_eval.data.builtin import build
    from tas_eval.data.builtin.benchmark import crop_sounding
    from tas_eval.metrics.localizer.training import RENDER_SR, random_position

    room = build._room(rng)
    categories = sorted({e["category"] for e in pool})
    count = min(int(rng.choice(SOURCE_COUNTS, p=SOURCE_COUNT_P)), len(categories))
    srcs, crops = [], []
    for cat in rng.choice(categories, size=count, replace=False):
        entries = [e for e in pool if e["category"] == cat]
        az, el, dist = random_position(room, rng)
        srcs.append({"category": str(cat), "gain_db": float(rng.uniform(*SCENE_GAIN_DB)), "seed": 0,
                     "trajectory": [{"t": 0.0, "azimuth": az, "elevation": el, "distance": dist}],
                     "active": [[0.0, SCENE_S]], "occluded": False})
        crops.append(crop_sounding(entries[int(rng.integers(len(entries)))], rng, SCENE_S, RENDER_SR))
    scene = {"item_id": f"rendered-{index}", "group_id": f"rendered-{index}", "duration_s": SCENE_S,
             "seed": int(rng.integers(2**31 - 1)), "room": room, "sources": srcs, "visual": {"cases": [], "objects": []}}
    return {"scene": scene, "crops": crops, "head": head}


def render_scene(drawn: dict) -> np.ndarray:
    """A drawn scene (``draw_scene``) as (2, SCENE_S * 16000) float32 audio at 16 kHz. It draws nothing, so it
    may run in any process."""
    from tas_eval.metrics.localizer.training import render_mix

    return render_mix(drawn["scene"], drawn["crops"], drawn["head"])[1].astype(np.float32)


def rendered_examples(benchmark, split: int, count: int, seed: int, localizer, workers: int = 1) -> tuple[dict, list]:
    """Audio tokens {scene id: tokens} and questions [(scene id, question)] of ``count`` rendered scenes, rendered
    in ``workers`` processes (the same scenes for any number: every random choice is drawn here, in order)."""
    from tas_eval.data.qa import item_questions
    from tas_eval.metrics.assessor.model import audio_tokens
    from tas_eval.metrics.localizer.training import HEADS, heads_by_name, source_pool
    from tas_eval.parallel import ordered_map

    pool = source_pool(benchmark, split, "train")
    heads_by_name()  # made before the workers fork, which then share it
    rng = np.random.default_rng([seed, 7])
    scenes: list[dict] = []

    def drawn():  # lazily: the dry crops of every scene at once would not fit in memory
        for k in range(count):
            scene = draw_scene(pool, rng, HEADS[k % len(HEADS)], k)
            scenes.append(scene["scene"])
            yield scene

    tokens, examples = {}, []
    rendered = ordered_map(render_scene, drawn(), workers)
    for k, audio in enumerate(tqdm(rendered, total=count, desc="assessor: rendered scenes", unit="scene", leave=False)):
        scene = scenes[k]
        tokens[scene["item_id"]] = audio_tokens(localizer, torch.from_numpy(audio)[None])[0]
        examples += [(scene["item_id"], q) for q in item_questions(scene)]
    return tokens, examples


def evaluate_answers(assessor: Assessor, tokens: dict, questions: dict, ids: list[str],
                     field: str = "question_heldout") -> dict:
    """{"accuracy": {type: {"accuracy" %, "n"}}, "chance": {type: %}, "kinds": {kind: {"accuracy" %, "n"}}} of the
    assessor on the questions of ``ids`` asked in ``field`` about the audio tokens of each clip."""
    from tas_eval.data.builtin.sources import category_names

    rows = [(i, q) for i in ids for q in questions.get(i, [])]
    qs = [q for _, q in rows]
    answers = assessor.answer([tokens[i] for i, _ in rows], qs, field)
    right = [is_right(q, a, category_names()) for q, a in zip(qs, answers)]
    return {"accuracy": accuracies(qs, right), "chance": chance_levels(qs), "kinds": kind_accuracies(qs, right)}


def train(benchmark, out: str | os.PathLike, profile: str = "small", llm: str = DEFAULT_LLM,
          localizer: str | None = None, device: str = "cpu", seed: int = 0, split: int = 1, workers: int = 1) -> dict:
    """Train the assessor at ``profile`` on the train part of ``split`` of a built benchmark, on the LM ``llm``
    and the localizer ``localizer`` (default: the packaged one), rendering its scenes in ``workers`` processes
    (the same scenes for any number); write the checkpoint to ``out``; return the training record (also
    stored in the checkpoint), with the accuracy per type on the val part."""
    from tas_eval.metrics.backbones import write_checkpoint
    from tas_eval.metrics.localizer import load_localizer

    if profile not in PROFILES:
        raise UserError(f"Unknown assessor profile '{profile}': use one of {', '.join(PROFILES)}.")
    block = benchmark.questions()
    if not block or not block.get("items"):
        raise UserError(f"{benchmark.root}: the build has no spatial questions; run `tas-eval data build` to add them.")
    p = PROFILES[profile]
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    located = load_localizer(localizer, device)
    questions = block["items"]
    train_ids, val_ids = benchmark.split_ids(split, "train"), benchmark.split_ids(split, "val")
    examples = [(i, q) for i in train_ids for q in questions.get(i, [])]
    if not examples:
        raise UserError(f"{benchmark.root}: no spatial question is asked about the train part of split {split}.")
    tokens = _tokens(located, benchmark, train_ids + val_ids, "assessor: audio tokens")
    rendered_tokens, rendered = rendered_examples(benchmark, split, p["scenes"], seed, located, workers)
    tokens.update(rendered_tokens)
    data_seconds = time.perf_counter() - start
    network, llm_info = build_assessor_network(llm)
    network = network.to(device)
    params = [q for q in network.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=p["lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, p["steps"], p["warmup"]))
    losses = []
    network.train()
    train_start = time.perf_counter()
    for _ in tqdm(range(p["steps"]), desc="assessor: training", unit="step", leave=False):
        pool = rendered if rng.random() < P_RENDERED else examples  # whole batches: a batch pads to its longest clip
        batch = [pool[int(k)] for k in rng.integers(0, len(pool), p["batch"])]
        loss = network.loss([for_question(tokens[i], q["sources"]) for i, q in batch],
                            [q["question"] for _, q in batch],
                            [q["answer"] for _, q in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    train_seconds = time.perf_counter() - train_start
    network.eval()
    config = {"id": ASSESSOR_ID, "llm": llm, "llm_sha256": llm_info["sha256"], "llm_id": llm_info["id"],
              "presence": PRESENCE, "max_sources": MAX_SOURCES, "named_sources": True,
              "relations": list(RELATIONS), "lora": dict(LORA),
              "localizer_sha256": located.weights_sha256, "qa_version": block.get("version"),
              "questions_sha256": block.get("sha256"), "split": split, "train_items": list(train_ids)}
    assessor = Assessor(network, located, config, "", llm_info)
    val = evaluate_answers(assessor, tokens, questions, val_ids)
    window = max(1, min(25, p["steps"] // 5))
    record = {
        "profile": profile, "seed": seed, "split": split, "dataset_id": benchmark.id,
        "manifest_sha256": benchmark.content_hash, "questions_sha256": block.get("sha256"),
        "train_clips": len(train_ids), "train_questions": len(examples), "rendered_scenes": p["scenes"],
        "rendered_questions": len(rendered), "rendered_share": P_RENDERED,
        "val_clips": len(val_ids),
        "steps": p["steps"], "batch": p["batch"], "lr": p["lr"], "warmup": p["warmup"],
        "loss_first": float(np.mean(losses[:window])), "loss_last": float(np.mean(losses[-window:])),
        "loss_window_steps": window, "val": val, "llm": llm_info, "localizer_sha256": located.weights_sha256,
        "device": device, "torch_threads": torch.get_num_threads(), "render_workers": workers,
        "seconds_data": round(data_seconds, 1), "seconds_training": round(train_seconds, 1),
        "seconds": round(time.perf_counter() - start, 1),
    }
    ckpt = {**network.trainable_state(), "config": config, "training": record}
    record.update(write_checkpoint(ckpt, out))
    return record
