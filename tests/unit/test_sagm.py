"""SAGM's pieces: the STFT and its 64-frame crop, the C3D-shaped VideoNet, the discriminator, what each
optimizer steps (shared or not), and the window predictor masking the whole window."""

from __future__ import annotations

import numpy as np
import torch

from baselines.common.c3d import C3DFeatures
from baselines.sagm import FRAMES, SAGMNet, SAGMNoVisual, SAGMText, SAGMVisual, SAGMVisualNoShare, spectrogram


def test_spectrogram_of_a_one_second_window_has_225_bins_and_67_frames():
    spec = spectrogram(torch.randn(2, 16000))
    assert spec.shape == (2, 2, 225, 67) and FRAMES == 64


def test_c3d_reduces_time_by_4_and_space_by_32():
    out = C3DFeatures(width=2)(torch.randn(2, 3, 4, 64, 96))
    assert out.shape == (2, 16, 1, 2, 3)


def test_generator_and_discriminator_shapes():
    torch.manual_seed(0)
    net = SAGMNet("visual", SAGMVisual.configs["tiny"])
    frames = torch.randn(3, 3, 4, 32, 32)
    mix = spectrogram(torch.randn(3, 16000))[..., :FRAMES]
    fake = net.generate(mix, net.cond_g(frames, 3))
    assert fake.shape == (3, 2, 224, 64)
    assert net.discriminator(fake, net.cond_d(frames, 3)).shape == (3,)


def _ids(params):
    return {id(p) for p in params}


def test_shared_guidance_is_stepped_by_both_optimizers_and_unshared_by_one_each():
    shared = SAGMNet("visual", SAGMVisual.configs["tiny"], share=True)
    video = _ids(shared.video.parameters())
    assert video <= _ids(shared.parameters_of("g")) and video <= _ids(shared.parameters_of("d"))
    assert not _ids(shared.discriminator.parameters()) & _ids(shared.parameters_of("g"))
    assert not _ids(shared.generator.parameters()) & _ids(shared.parameters_of("d"))

    apart = SAGMNet("visual", SAGMVisualNoShare.configs["tiny"], share=False)
    assert _ids(apart.video.parameters()) <= _ids(apart.parameters_of("g"))
    assert not _ids(apart.video.parameters()) & _ids(apart.parameters_of("d"))
    assert _ids(apart.video_d.parameters()) <= _ids(apart.parameters_of("d"))

    text = SAGMNet("text", SAGMText.configs["tiny"], text_dim=5)
    proj = _ids(text.text_proj.parameters())
    assert proj <= _ids(text.parameters_of("g")) and proj <= _ids(text.parameters_of("d"))
    assert SAGMNet("none", SAGMNoVisual.configs["tiny"]).cond_g(None, 2).shape == (2, 0)


def test_window_predictor_masks_the_whole_window_and_keeps_the_mono():
    model = SAGMNoVisual()
    torch.manual_seed(0)
    model._build(model.configs["tiny"])
    # A mask of 1 everywhere makes D = M, so L = M and R = 0 over the whole window, the last frames included.
    for p in model.net.generator.ups[-1][0].parameters():
        torch.nn.init.zeros_(p)
    torch.nn.init.constant_(model.net.generator.ups[-1][0].bias[0], 50.0)  # real part of the mask -> 1
    model.net.eval()
    t = torch.arange(16000) / 16000  # tones well below 8 kHz: the dropped top bin holds nothing
    windows = torch.stack([torch.sin(2 * np.pi * 440 * t) + 0.5 * torch.sin(2 * np.pi * 1234 * t),
                           torch.sin(2 * np.pi * 300 * t + 1.0)])[:, None]
    out = model.window_predictor()(windows, torch.tensor([0, 1600]))
    assert out.shape == (2, 2, 16000)
    np.testing.assert_allclose(out.sum(1).numpy(), windows[:, 0].numpy(), atol=1e-4)
    tail = slice(15400, 15900)  # beyond the 64th frame's centre: masked by the repeated last frame
    np.testing.assert_allclose(out[:, 0, tail].numpy(), windows[:, 0, tail].numpy(), atol=2e-3)
    assert float(out[:, 1, 400:15900].abs().max()) < 2e-3
