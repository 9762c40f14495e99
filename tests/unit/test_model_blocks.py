"""Building blocks of the trained baselines against known answers and straightforward re-implementations."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from baselines.common.diffusion import GaussianDiffusion
from baselines.common.inference import window_chunk
from baselines.common.unet import MaskUNet, apply_complex_mask, istft_ri, stft_ri
from baselines.common.visual import ResNet18Features, load_resnet18_weights
from baselines.tas import SAF, TASModel, window_text
from tas_eval.errors import UserError


@pytest.mark.parametrize("parameterization,sampler", [("eps", "ddpm"), ("x0", "ddpm"), ("eps", "ddim"), ("x0", "ddim")])
def test_samplers_with_an_oracle_denoiser_return_the_clean_signal(parameterization, sampler):
    diff = GaussianDiffusion(20, 1e-4, 0.5, parameterization)
    x0 = torch.randn(3, 1, 64, dtype=torch.float64)

    def oracle(x_t, t):
        if parameterization == "x0":
            return x0
        ab = diff.alpha_bars[t].view(-1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    out = diff.sample(oracle, x0.shape, seeds=[1, 2, 3], sampler=sampler, sample_steps=5)
    torch.testing.assert_close(out.double(), x0, atol=1e-6, rtol=1e-6)


def test_sample_rows_do_not_depend_on_their_batch():
    diff = GaussianDiffusion(10, 1e-4, 0.5, "eps")
    denoise = lambda x, t: 0.3 * x + 0.01 * t.view(-1, 1, 1)  # noqa: E731
    both = diff.sample(denoise, (2, 1, 32), seeds=[7, 8])
    alone = diff.sample(denoise, (1, 1, 32), seeds=[8])
    torch.testing.assert_close(both[1:], alone)


def test_configured_schedules_end_near_pure_noise():
    for profile, config in TASModel.configs.items():
        diff = GaussianDiffusion(config["diffusion_steps"], config["beta_start"], config["beta_end"])
        assert diff.terminal_alpha_bar < 0.01, profile
    # DiffWave's 0.05 over 50 steps keeps 28% of the signal power: the reason for our beta_end
    assert GaussianDiffusion(50, 1e-4, 0.05).terminal_alpha_bar == pytest.approx(0.2797, abs=1e-3)


def test_q_sample_matches_the_closed_form():
    diff = GaussianDiffusion(50, 1e-4, 0.25)
    x0, noise = torch.ones(1, 1, 4), torch.full((1, 1, 4), 2.0)
    t = torch.tensor([10])
    ab = float(np.prod(1 - np.linspace(1e-4, 0.25, 50)[:11]))
    torch.testing.assert_close(diff.q_sample(x0, t, noise), torch.full((1, 1, 4), math.sqrt(ab) + 2 * math.sqrt(1 - ab)))


def test_saf_matches_equations_6_to_8_written_as_loops():
    torch.manual_seed(0)
    saf = SAF(4).double()
    f_a, f_t = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out = saf(f_a, f_t)
    for b in range(2):
        scores = [float(f_t[b] @ f_a[b, :, l]) / math.sqrt(4) for l in range(6)]
        w = np.exp(scores - np.max(scores))
        w /= w.sum()
        pooled = sum(w[l] * f_a[b, :, l] for l in range(6))  # eq. 6
        f_at = f_t[b] * (saf.fc(pooled) + pooled)  # eq. 7
        stacked = torch.cat([f_at[:, None].expand(4, 6), f_a[b]], dim=0)[None]  # eq. 8
        torch.testing.assert_close(out[b], saf.conv(stacked)[0])


def test_stft_matches_librosa_and_inverts():
    x = np.random.default_rng(0).standard_normal(10080).astype(np.float32)
    ours = stft_ri(torch.from_numpy(x)[None])[0].numpy()
    ref = librosa.stft(x, n_fft=512, hop_length=160, win_length=400, center=True, pad_mode="constant")
    assert ours.shape == (2, 257, 64)
    np.testing.assert_allclose(ours[0] + 1j * ours[1], ref, atol=2e-4)
    back = istft_ri(torch.from_numpy(ours)[None], 10080)[0].numpy()
    np.testing.assert_allclose(back, x, atol=1e-4)


def test_complex_mask_is_a_complex_product_and_unet_shapes():
    mix, mask = torch.randn(2, 2, 257, 64), torch.randn(2, 2, 256, 64)
    out = apply_complex_mask(mix, mask)
    expect = torch.complex(mix[:, 0, :-1], mix[:, 1, :-1]) * torch.complex(mask[:, 0], mask[:, 1])
    torch.testing.assert_close(torch.complex(out[:, 0], out[:, 1]), expect)
    unet = MaskUNet(cond_dim=5, ngf=4).eval()
    m = unet(mix, torch.randn(2, 5))
    assert m.shape == (2, 2, 256, 64) and m.abs().max() <= 1


def test_resnet18_weights_round_trip_and_bad_file(tmp_path):
    a, b = ResNet18Features(), ResNet18Features()
    state = {**a.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}  # torchvision layout
    torch.save(state, tmp_path / "r18.pth")
    load_resnet18_weights(b, tmp_path / "r18.pth")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    assert a(torch.zeros(1, 3, 64, 128)).shape == (1, 512, 2, 4)
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="torchvision layout"):
        load_resnet18_weights(b, tmp_path / "bad.pth")


def test_window_text_picks_the_frame_under_the_centre():
    prompt = {"text": "clip", "frames": [{"t0": 0.1 * k, "text": f"f{k}"} for k in range(10)]}
    assert window_text(prompt, 0.0) == "f0"
    assert window_text(prompt, 0.55) == "f5"
    assert window_text(prompt, 5.0) == "f9"
    assert window_text({"text": "clip", "frames": None}, 0.3) == "clip"
    assert window_text("plain", 0.3) == "plain"



def test_window_chunk_follows_the_device_and_the_config():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert window_chunk({}, 4000, cpu, 65536) == 16
    assert window_chunk({}, 100_000, cpu, 65536) == 1
    assert window_chunk({}, 4000, cpu, None) is None
    assert window_chunk({}, 4000, gpu, 65536) is None
    assert window_chunk({"window_batch": 3}, 4000, gpu, 65536) == 3
