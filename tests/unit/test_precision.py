"""--precision: bfloat16 autocast for the models' networks, never for their signal processing or the metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.common.band_ratio import band_ratio, log_mel, ratio_mask
from baselines.common.diffusion import GaussianDiffusion
from tas_eval.device import autocast, float32_region, resolve_precision
from tas_eval.errors import UserError
from tas_eval.metrics import compute_metrics
from tas_eval.runner import run_key


def test_auto_is_bf16_only_on_a_gpu_for_a_model_that_allows_it():
    assert resolve_precision("auto", "cuda", True) == "bf16"
    assert resolve_precision("auto", "cuda:1", True) == "bf16"
    assert resolve_precision("auto", "cpu", True) == "fp32"
    assert resolve_precision("auto", "cuda", False) == "fp32"
    assert resolve_precision("bf16", "cpu", True) == "bf16"
    assert resolve_precision("fp32", "cuda", True) == "fp32"


def test_bf16_for_a_model_without_networks_and_unknown_names_are_refused():
    with pytest.raises(UserError, match="--precision bf16"):
        resolve_precision("bf16", "cuda", False)
    with pytest.raises(UserError, match="--precision half"):
        resolve_precision("half", "cpu", True)


def test_bf16_casts_the_network_and_float32_region_undoes_it():
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with autocast("cpu", "bf16"):
        assert layer(x).dtype == torch.bfloat16
        with float32_region("cpu"):
            assert layer(x).dtype == torch.float32
    with autocast("cpu", "fp32"):
        assert layer(x).dtype == torch.float32


def test_float32_keys_are_the_keys_made_before_precision_existed():
    args = ("ours_saf", {"steps": 3}, "abc", 1, 0, "1", None)
    legacy = run_key(*args)
    assert run_key(*args, precision="fp32") == legacy
    assert run_key(*args, precision="bf16") != legacy


def test_band_ratio_targets_and_masks_stay_float32_under_bf16():
    rng = np.random.default_rng(0)
    spec = lambda: torch.from_numpy(rng.standard_normal((2, 257, 9)) + 1j * rng.standard_normal((2, 257, 9))).to(
        torch.complex64)
    m, d = spec(), spec()
    ratio = torch.from_numpy(rng.uniform(-1, 1, (2, 2, 9, 32))).float()
    plain = (band_ratio(m, d, 16000, 32), ratio_mask(ratio, 16000, 512), log_mel(m, 16000, 32))
    with autocast("cpu", "bf16"):
        cast = (band_ratio(m, d, 16000, 32), ratio_mask(ratio.bfloat16(), 16000, 512), log_mel(m, 16000, 32))
    for a, b in zip(plain[:1] + plain[2:], cast[:1] + cast[2:]):
        assert b.dtype == a.dtype
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    # the mask from a bfloat16 ratio: float32 arithmetic on the rounded ratio
    assert cast[1].dtype == torch.complex64
    torch.testing.assert_close(cast[1], ratio_mask(ratio.bfloat16().float(), 16000, 512), rtol=0, atol=0)


def test_the_sampler_state_stays_float32_when_the_network_gives_bfloat16():
    diffusion = GaussianDiffusion(4, 1e-4, 0.5, "x0")
    out = diffusion.sample(lambda x, t: (0.5 * x).bfloat16(), (2, 1, 16), [1, 2], "ddim", 4)
    assert out.dtype == torch.float32


def test_metrics_do_not_move_when_called_inside_a_bf16_context(tiny_benchmark):
    ids = tiny_benchmark.split_ids(1, "test")[:2]
    refs = [tiny_benchmark.binaural(i) for i in ids]
    preds = [r[::-1].copy() for r in refs]
    annotations = [tiny_benchmark.annotation(i) for i in ids]
    metric_ids = ["stft", "env", "mrstft", "ild", "side_acc", "doa_ref_err"]  # the last two: the localizer network
    plain = compute_metrics(preds, refs, 16000, metric_ids=metric_ids, annotations=annotations)
    with autocast("cpu", "bf16"):
        cast = compute_metrics(preds, refs, 16000, metric_ids=metric_ids, annotations=annotations)
    assert sorted(plain) == sorted(metric_ids)
    for mid in metric_ids:
        np.testing.assert_array_equal(cast[mid], plain[mid])


def test_the_c3d_video_network_runs_in_float32_under_bf16():
    from baselines.common.c3d import C3DFeatures

    torch.manual_seed(0)
    net = C3DFeatures(width=2).eval()
    frames = torch.randn(2, 3, 4, 32, 32)
    plain = net(frames)
    with autocast("cpu", "bf16"):
        cast = net(frames)
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)
