"""TASU's pieces: the band ratio (known answers, the sign that mel(d) lacks), the mel domains, the packaged
vocoder, and a user's AudioLDM2 folder in the diffusers layout (a random one the test writes)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from baselines.common.band_ratio import FLOOR, band_ratio, log_mel, ratio_mask
from baselines.common.latent_audio import AUDIOLDM2, HIFIGAN, hifigan_vocoder, load_audioldm2
from baselines.common.unet import istft_ri, stft_ri
from tas_eval.errors import UserError

SR = 16000


def _spec(x: torch.Tensor) -> torch.Tensor:
    s = stft_ri(x, 1024, 160, 1024)
    return torch.complex(s[:, 0], s[:, 1])


def _mono(seconds: float = 0.64) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    g = torch.Generator().manual_seed(0)
    return (torch.sin(2 * np.pi * 440 * t) + 0.3 * torch.randn(t.shape, generator=g))[None]


@pytest.mark.parametrize("gain", [1.0, 0.8, 0.5, 0.1])
def test_band_ratio_of_a_level_difference_is_2g_minus_1_and_decodes_back(gain):
    m = _mono()
    left, right = gain * m, (1 - gain) * m
    spec_m, spec_d = _spec(left + right), _spec(left - right)
    ratio = band_ratio(spec_m, spec_d, SR, 32)
    assert ratio.shape == (1, 2, 65, 32)
    # Straightforward: per band, the weighted energy E; the ratio is (2g - 1) E / (E + floor).
    w = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=32, fmin=0.0, fmax=SR / 2, norm=None)
    power = np.abs(spec_m[0].numpy()) ** 2
    energy = np.array([[np.sum(w[b] * power[:, t]) for b in range(32)] for t in range(power.shape[1])])
    floor = FLOOR * energy.mean() + 1e-12
    np.testing.assert_allclose(ratio[0, 0].numpy(), (2 * gain - 1) * energy / (energy + floor), atol=1e-4)
    assert float(ratio[0, 1].abs().max()) < 1e-4
    spec = ratio_mask(ratio, SR, 1024) * spec_m
    d = istft_ri(torch.stack([spec.real, spec.imag], 1), m.shape[-1], 1024, 160, 1024)
    target = left - right
    if gain != 0.5:
        assert float((d - target).pow(2).mean().sqrt() / target.pow(2).mean().sqrt()) < 0.02


def test_swapping_the_ears_negates_the_band_ratio_but_not_the_mel_of_d():
    m = _mono()
    delayed = torch.roll(m, 7, dims=-1)  # a time difference as well as a level difference
    left, right = 0.7 * m, 0.4 * delayed
    spec_m = _spec(left + right)
    r = band_ratio(spec_m, _spec(left - right), SR, 32)
    r_swapped = band_ratio(spec_m, _spec(right - left), SR, 32)
    torch.testing.assert_close(r_swapped, -r)
    torch.testing.assert_close(HIFIGAN.log_mel(left - right), HIFIGAN.log_mel(right - left))


def test_ratio_mask_weights_sum_to_one_per_bin():
    ones = torch.zeros(1, 2, 5, 24)
    ones[:, 0] = 1.0
    mask = ratio_mask(ones, SR, 1024)
    torch.testing.assert_close(mask.real, torch.ones(1, 513, 5))
    assert log_mel(_spec(_mono()), SR, 24).shape == (1, 1, 65, 24)


def test_mel_domains_count_their_frames():
    m = _mono(0.64)[0][None]
    assert HIFIGAN.log_mel(m).shape == (1, 1, HIFIGAN.frames(10240), 80) == (1, 1, 56, 80)
    assert AUDIOLDM2.log_mel(m).shape == (1, 1, AUDIOLDM2.frames(10240), 64) == (1, 1, 65, 64)


def test_packaged_hifigan_vocodes_80_band_mels_at_22050_hz():
    vocoder = hifigan_vocoder()
    with torch.no_grad():
        wave = vocoder(HIFIGAN.log_mel(_mono(0.64))[:, 0].transpose(1, 2))
    assert wave.shape == (1, 1, 56 * 256) and torch.isfinite(wave).all()


def _write_audioldm2(folder):
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    AutoencoderKL(in_channels=1, out_channels=1, latent_channels=8, down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
                  norm_num_groups=4).save_pretrained(folder / "vae")
    config = SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=64,
                                   upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[10, 8, 4, 4, 4],
                                   resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], normalize_before=False)
    SpeechT5HifiGan(config).save_pretrained(folder / "vocoder")


def test_a_local_audioldm2_folder_loads_and_drives_the_literal_model(tmp_path, tiny_benchmark):
    from tas_eval.models import get_model_class

    _write_audioldm2(tmp_path / "audioldm2")
    vae, vocoder = load_audioldm2(tmp_path / "audioldm2")
    mel = AUDIOLDM2.log_mel(_mono(0.64))
    assert vocoder(mel, 10240).shape == (1, 10240)
    assert vae.encode(torch.nn.functional.pad(mel, (0, 0, 0, 63))).latent_dist.mode().shape == (1, 8, 32, 16)

    cls = get_model_class("tasu_literal")
    config = dict(cls.configs["tiny"], audioldm2=str(tmp_path / "audioldm2"), pad_frames=96, steps=2)
    model = cls()
    model.fit(tiny_benchmark, 1, config, "cpu", 0, tmp_path / "ckpt")
    assert model.vae_losses == []  # the checkpoint's VAE is used as it is
    out = model.window_predictor("the cello on the left", SR, 0)(torch.randn(2, 1, 10240), torch.tensor([0, 5120]))
    assert out.shape == (2, 2, 10240) and torch.isfinite(out).all()


def test_a_folder_without_the_parts_is_refused(tmp_path):
    (tmp_path / "vae").mkdir()
    with pytest.raises(UserError, match="is not an AudioLDM2 folder in the diffusers layout"):
        load_audioldm2(tmp_path)
