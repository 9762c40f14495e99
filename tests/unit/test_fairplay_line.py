"""The pieces of APNet, Sep-Stereo and PseudoBinaural against straightforward versions of their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.common.apnet import APNetHead, FusionBlock, apnet_losses, side_columns
from baselines.common.pseudo_binaural import (
    MIN_GAP_DEG,
    SPEAKER_AZIMUTHS_DEG,
    FOARenderer,
    PseudoSampler,
    foa_gains,
    pseudo_prompt,
    sample_positions,
)
from baselines.common.solo_sources import SoloSources
from baselines.common.unet import MaskUNet, stft_ri
from baselines.common.visual import ResNet18Features
from tas_eval.data.builtin.frames import FOV_DEG
from tas_eval.errors import UserError
from tas_eval.models import get_model_class


def test_fusion_block_applies_one_kernel_per_visual_position():
    torch.manual_seed(0)
    block = FusionBlock(audio_channels=6, vision_channels=5)
    audio = torch.randn(2, 6, 4, 3)
    vision = torch.randn(2, 5, 2, 3)
    out = block(audio, vision)
    assert out.shape == (2, 6, 4, 3)  # 2 x 3 = 6 positions
    w, b = block.kernels.weight[:, :, 0], block.kernels.bias
    for n in range(2):
        for p in range(6):
            v = vision[n].flatten(1)[:, p]  # the position's 5 visual channels
            kernel = torch.relu(w @ v + b)  # one weight per audio channel
            expected = (kernel[:, None, None] * audio[n]).sum(0)
            torch.testing.assert_close(out[n, p], expected, atol=1e-5, rtol=1e-5)


def test_apnet_head_turns_the_unet_features_into_masks_of_the_mixture_size():
    torch.manual_seed(0)
    unet = MaskUNet(cond_dim=3, ngf=4)
    head = APNetHead(ngf=4, positions=6)
    mix = stft_ri(torch.randn(2, 10080))
    mask, features = unet(mix, torch.randn(2, 3), return_features=True)
    assert [f.shape[1] for f in features] == [32, 16, 8, 4]
    with torch.no_grad():
        left, right = head(features, torch.randn(2, 512, 2, 3))
    assert left.shape == right.shape == mask.shape == (2, 2, 256, 64)
    assert float(left.abs().max()) <= 1 and float(right.abs().max()) <= 1


def test_side_columns_put_each_source_in_its_edge_column():
    first = torch.rand(2, 512, 3, 5)
    second = torch.rand(2, 512, 3, 5)
    out = side_columns(first, second)
    torch.testing.assert_close(out[..., 0], first.amax(-1))
    torch.testing.assert_close(out[..., -1], second.amax(-1))
    assert float(out[..., 1:-1].abs().max()) == 0.0


def test_apnet_losses_are_zero_for_the_true_masks_and_not_for_swapped_heads():
    torch.manual_seed(0)
    mix = stft_ri(torch.randn(3, 10080))
    a = torch.rand(3, 1, 256, 64)  # left = a * mix, right = (1 - a) * mix, D = (2a - 1) * mix
    zeros = torch.zeros_like(a)
    as_mask = lambda real: torch.cat([real, zeros], dim=1)  # noqa: E731 - real-valued complex mask
    target = mix[:, :, :-1] * (2 * a - 1)
    crit = torch.nn.functional.l1_loss
    stereo, fusion = apnet_losses(mix, target, as_mask(2 * a - 1), as_mask(a), as_mask(1 - a), crit)
    assert float(stereo) < 1e-6 and float(fusion) < 1e-6
    _, swapped = apnet_losses(mix, target, as_mask(2 * a - 1), as_mask(1 - a), as_mask(a), crit)
    assert float(swapped) > 0.1


def test_dilated_resnet_keeps_the_parameters_and_the_map_size():
    plain, dilated = ResNet18Features(), ResNet18Features(dilated=True)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}
    dilated.load_state_dict(plain.state_dict())
    assert dilated(torch.zeros(1, 3, 224, 448)).shape == (1, 512, 7, 14)
    assert dilated.layer4[0].conv1.stride == (1, 1) and dilated.layer4[0].conv2.dilation == (2, 2)


def test_foa_gains_are_acn_sn3d():
    np.testing.assert_allclose(foa_gains(90.0, 0.0), [1, 1, 0, 0], atol=1e-12)  # left: Y = 1
    np.testing.assert_allclose(foa_gains(0.0, 0.0), [1, 0, 0, 1], atol=1e-12)  # ahead: X = 1
    np.testing.assert_allclose(foa_gains(0.0, 90.0), [1, 0, 1, 0], atol=1e-12)  # above: Z = 1
    assert SPEAKER_AZIMUTHS_DEG == (-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0)


def test_foa_renderer_matches_a_loop_over_loudspeakers_and_puts_left_sources_left():
    renderer = FOARenderer()
    rng = np.random.default_rng(0)
    signals = rng.standard_normal((2, 4000))
    az, el = [40.0, -20.0], [10.0, 0.0]
    out = renderer.render(signals, az, el)
    expected = np.zeros((2, 4000))
    for k, spk_az in enumerate(SPEAKER_AZIMUTHS_DEG):
        feed = sum(foa_gains(a, e) @ foa_gains(spk_az, 0.0) * s for a, e, s in zip(az, el, signals))
        for ear in range(2):
            expected[ear] += np.convolve(feed, renderer.speaker_irs[k, ear])[:4000]
    np.testing.assert_allclose(out, expected, atol=1e-9)
    one = signals[:1]
    left, right = renderer.render(one, [60.0], [0.0]), renderer.render(one, [-60.0], [0.0])
    level = lambda x: 10 * np.log10(np.mean(x ** 2))  # noqa: E731
    assert level(left[0]) - level(left[1]) > 3.0
    assert level(right[1]) - level(right[0]) > 3.0


def test_pseudo_positions_stay_in_view_and_apart():
    rng = np.random.default_rng(1)
    counts = []
    for _ in range(300):
        pos = sample_positions(rng)
        counts.append(len(pos))
        azs = [p["azimuth"] for p in pos]
        assert all(abs(a) <= FOV_DEG / 2 for a in azs)
        assert all(abs(a - b) >= MIN_GAP_DEG for i, a in enumerate(azs) for b in azs[i + 1:])
    share = np.bincount(counts, minlength=4)[1:] / len(counts)
    assert abs(share[0] - 0.4) < 0.1 and abs(share[1] - 0.5) < 0.1


def test_pseudo_prompt_names_the_side_of_each_source():
    scene = {"sources": [{"category": "cello", "trajectory": [{"t": 0.0, "azimuth": 35.0, "elevation": 0.0}]},
                         {"category": "piano", "trajectory": [{"t": 0.0, "azimuth": -30.0, "elevation": 0.0}]}]}
    assert pseudo_prompt(scene) == "the cello on the left, the piano on the right"


def test_pseudo_data_never_use_the_benchmark_renderer(tiny_benchmark, monkeypatch, tmp_path):
    from tas_eval.data.builtin import render

    def refuse(*args, **kwargs):
        raise AssertionError("pseudo data went through the benchmark's renderer")

    for fn in ("render_scene", "render_source", "source_brir", "direct_blockwise"):
        monkeypatch.setattr(render, fn, refuse)
    solo = SoloSources(tiny_benchmark, 1, 0.63, seed=0, model_name="pseudobinaural_text")
    renderer = FOARenderer()
    calls = []
    real_render = renderer.render
    monkeypatch.setattr(renderer, "render", lambda *a: calls.append(1) or real_render(*a))
    batch = PseudoSampler(solo, renderer).batch(0, 6)
    assert len(calls) == 6
    assert batch["mono"].shape == batch["diff"].shape == (6, 1, 10080)
    np.testing.assert_allclose(np.sqrt(np.mean(batch["mono"].astype(float) ** 2, axis=-1)), 1.0, rtol=1e-4)
    assert all(p != "silence" for p in batch["prompts"])

    model = get_model_class("pseudobinaural_text")()  # and the model's own training goes the same way
    model.fit(tiny_benchmark, 1, dict(model.configs["tiny"], steps=2), "cpu", 0, tmp_path / "ckpt")
    assert len(model.losses) == 2


def test_separation_pairs_are_two_different_solo_sources(tiny_benchmark):
    solo = SoloSources(tiny_benchmark, 1, 0.63, seed=0, model_name="sepstereo_visual")
    batch = solo.separation_batch(3, 4)
    assert all(a != b for a, b in batch["categories"])
    left = (batch["mono"] + batch["diff"]) / 2  # s1 / scale
    right = (batch["mono"] - batch["diff"]) / 2
    for k in range(4):  # each solo source was scaled to the same RMS before mixing
        np.testing.assert_allclose(np.sqrt(np.mean(left[k] ** 2)), np.sqrt(np.mean(right[k] ** 2)), rtol=1e-3)
    again = solo.separation_batch(3, 4)
    np.testing.assert_array_equal(batch["mono"], again["mono"])  # deterministic in (seed, step)
    frame = solo.solo_frame(batch["categories"][0][0], (32, 64))
    assert frame.shape == (32, 64, 3) and frame.dtype == np.uint8


def test_models_that_need_solo_sources_refuse_a_dataset_of_mixtures(tiny_benchmark):
    class Recordings:
        id = "my-recordings"
        sample_rate = 16000

        def dry_sources(self, split, part, sr):
            return None

    with pytest.raises(UserError, match="my-recordings: holds mixtures only"):
        SoloSources(Recordings(), 1, 0.63, seed=0, model_name="sepstereo_text")
