"""Every trained baseline trains on the tiny profile (loss falls), resumes exactly, and spatializes (B, 2, T)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.common.training import CropSampler
from tas_eval.audio import sliding_window_inference
from tas_eval.data.dataset import TASDataset
from tas_eval.models import get_model_class, prompt_from_annotation

TRAINED = ["ours", "ours_saf", "audio_only", "add", "conv", "ours_saf_tokens", "mono2binaural_text",
           "mono2binaural_visual", "apnet_visual", "apnet_text", "sepstereo_visual", "sepstereo_text",
           "pseudobinaural_visual", "pseudobinaural_text", "sagm_visual", "sagm_text", "sagm_visual_noshare",
           "sagm_novisual", "tasu", "tasu_notext", "tasu_noflip", "tasu_literal"]
# L and R come from two separate heads, so L + R is the mono input only as far as the heads agree.
TWO_HEADS = ("apnet", "sepstereo", "pseudobinaural")


def _fixed_loss(model, sampler) -> float:
    # One fixed batch, fixed diffusion steps and noise; batch-norm in training mode on both sides.
    batch = sampler.batch(10_000, 4)
    model.net.train()
    with torch.no_grad():
        loss = model.batch_loss(sampler, batch, torch.Generator().manual_seed(1))
    model.net.eval()
    return float(loss)


def _inputs(bench, model, n=2):
    ids = bench.split_ids(1, "test")[:n]
    mono = torch.from_numpy(np.stack([bench.binaural(i) for i in ids])).sum(1, keepdim=True)
    prompts = [prompt_from_annotation(bench.annotation(i)) for i in ids] if "text" in model.guidance else None
    frames = [TASDataset(bench, 1, "test").frame_renderer(i) for i in ids] if "visual" in model.guidance else None
    return mono, prompts, frames


@pytest.mark.parametrize("name", TRAINED)
def test_tiny_training_lowers_the_loss_and_output_is_binaural(name, tiny_benchmark, tmp_path):
    cls = get_model_class(name)
    config = cls.configs["tiny"]
    sampler = CropSampler(tiny_benchmark, 1, float(config["crop_s"]), seed=0)
    fresh = cls()
    torch.manual_seed(0)  # fit seeds the same way, so this is the network fit starts from
    fresh._build(config)
    before = _fixed_loss(fresh, sampler)

    model = cls()
    model.fit(tiny_benchmark, 1, config, "cpu", 0, tmp_path / "ckpt")
    if name.startswith("sagm"):
        # A GAN keeps its best weights by the validation L1; that L1 (eval mode, fixed validation crops) falls.
        val = CropSampler(tiny_benchmark, 1, float(config["crop_s"]), seed=0, part="val")
        before = fresh.validation_l1(val, int(config["val_batches"]), int(config["batch_size"]))
        after = model.training_log["best_val_l1"]
        assert len(model.training_log["d"]) == len(model.training_log["g_l1"]) == config["steps"]
    elif name == "tasu_literal":
        # The latent diffusion is measured on the trained VAE's latents, from the UNet fit started with.
        probe = copy.deepcopy(model)
        probe.net.unet.load_state_dict(fresh.net.unet.state_dict())
        before, after = _fixed_loss(probe, sampler), _fixed_loss(model, sampler)
    else:
        after = _fixed_loss(model, sampler)
    assert after < before, f"{name}: loss on a fixed batch {before:.4f} -> {after:.4f}"

    model.save(tmp_path / "final.pt")
    loaded = cls()
    loaded.load(tmp_path / "final.pt")
    mono, prompts, frames = _inputs(tiny_benchmark, loaded)
    torch.manual_seed(5)
    out = loaded.spatialize(mono, tiny_benchmark.sample_rate, prompts, frames)
    assert out.shape == (2, 2, mono.shape[-1])
    assert torch.isfinite(out).all()
    if not name.startswith(TWO_HEADS):
        # mono = L + R holds for every model that predicts D = L - R, whatever D is.
        torch.testing.assert_close(out.sum(1, keepdim=True), mono, atol=1e-4, rtol=1e-4)


def test_training_resumes_from_its_checkpoint_exactly(tiny_benchmark, tmp_path):
    cls = get_model_class("ours_saf")
    config = dict(cls.configs["tiny"], steps=6, checkpoint_every=3)
    straight = cls()
    straight.fit(tiny_benchmark, 1, config, "cpu", 0, tmp_path / "a")

    stopped = cls()
    stopped.fit(tiny_benchmark, 1, dict(config, steps=3), "cpu", 0, tmp_path / "b")  # "killed" after step 3
    resumed = cls()
    resumed.fit(tiny_benchmark, 1, config, "cpu", 0, tmp_path / "b")
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.parametrize("name", ["ours_saf", "mono2binaural_visual"])
def test_batched_windows_equal_the_per_window_loop(name, tiny_benchmark, tmp_path):
    cls = get_model_class(name)
    model = cls()
    torch.manual_seed(0)
    model._build(cls.configs["tiny"])
    model.net.eval()
    mono, prompts, frames = _inputs(tiny_benchmark, model, n=1)
    sr = tiny_benchmark.sample_rate
    if name == "ours_saf":
        predict = model.window_predictor(prompts[0], sr, base_seed=123)
        window, hop = int(0.25 * sr), int(0.1 * sr)
    else:
        predict = model.window_predictor(None, frames[0], sr)
        window, hop = int(0.63 * sr), int(0.2 * sr)
    batched = sliding_window_inference(predict, mono[0], window, hop)
    looped = sliding_window_inference(predict, mono[0], window, hop, max_batch=1)
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
@pytest.mark.parametrize("name", ["ours_saf", "mono2binaural_visual", "sepstereo_text", "sagm_visual", "tasu"])
def test_bf16_autocast_trains_and_spatializes_close_to_float32(name, device, tiny_benchmark, tmp_path):
    """One model of each family (diffusion, mask UNet, APNet heads, GAN with STFT masks, band-ratio diffusion)."""
    from tas_eval.device import autocast

    cls = get_model_class(name)
    model = cls()
    with autocast(device, "bf16"):
        model.fit(tiny_benchmark, 1, cls.configs["tiny"], device, 0, tmp_path / "ckpt")
    losses = model.training_log["g_l1"] if name.startswith("sagm") else model.losses
    assert losses and np.isfinite(losses).all()
    mono, prompts, frames = _inputs(tiny_benchmark, model)
    mono = mono.to(device)
    outs = []
    for precision in ("bf16", "fp32"):
        torch.manual_seed(5)
        with autocast(device, precision), torch.inference_mode():
            outs.append(model.spatialize(mono, tiny_benchmark.sample_rate, prompts, frames).cpu())
    cast, plain = outs
    assert cast.dtype == torch.float32 and cast.shape == plain.shape and torch.isfinite(cast).all()
    assert float((cast - plain).norm() / plain.norm()) < 0.02


def test_the_training_time_benchmark_times_the_real_fit(tiny_benchmark):
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "benchmarks/training_time.py", "--models", "sagm_visual", "--profile", "tiny",
                           "--steps", "2", "--threads", "1", "--data", str(tiny_benchmark.root)], cwd=repo,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(repo)))
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line.split() for line in done.stdout.splitlines() if line.startswith("sagm_visual "))
    steps, seconds, per_step, profile_steps, extrapolated = row[1:]
    assert steps == "2" and float(seconds) > 0 and profile_steps == "10"
    assert float(extrapolated) == pytest.approx(float(per_step) * 10, abs=1)
