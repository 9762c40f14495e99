"""Backbones: the PANNs Cnn14 and VGGish loading code on randomly initialised checkpoints written here (in the
official state_dict layouts), their front ends against independent implementations, and the packaged tas_cnn."""

from __future__ import annotations

import hashlib
import re

import librosa
import numpy as np
import pytest
import torch

from tas_eval.errors import UserError
from tas_eval.metrics.backbones import FRAME_SAMPLES, load_backbone

# The official key names (PANNs audioset_tagging_cnn / panns_inference Cnn14; torchvggish VGG), written out.
CNN14_KEYS = (
    ["spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW"]
    + [f"bn0.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    + [f"conv_block{i}.{c}.weight" for i in range(1, 7) for c in ("conv1", "conv2")]
    + [f"conv_block{i}.{b}.{p}" for i in range(1, 7) for b in ("bn1", "bn2")
       for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    + ["fc1.weight", "fc1.bias", "fc_audioset.weight", "fc_audioset.bias"]
)
VGGISH_KEYS = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 11, 13) for p in ("weight", "bias")] + \
              [f"embeddings.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _randomize(module: torch.nn.Module, seed: int) -> None:
    """Random weights AND random batch-norm statistics, so that loading them is visible in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point and "stft" not in name and "melW" not in name:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.05)


# ----------------------------------------------------------------------------------------- Cnn14


def test_cnn14_front_end_matches_librosa():
    from tas_eval.metrics.backbones.panns import LogMelFrontEnd

    y = np.random.default_rng(0).standard_normal(8000) * 0.1
    ours = LogMelFrontEnd(16000, 512, 160, 64, 50, 8000).double()(torch.from_numpy(y)[None])[0, 0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=160, power=2.0, center=True,
                                         pad_mode="reflect", n_mels=64, fmin=50, fmax=8000)
    expected = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == expected.shape == (51, 64)
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_panns_cnn14_loads_a_random_official_layout_checkpoint(tmp_path):
    from tas_eval.metrics.backbones.panns import Cnn14, config_of_state

    torch.manual_seed(1)
    net = Cnn14("16k")
    assert sorted(net.state_dict()) == sorted(CNN14_KEYS)
    _randomize(net, 1)
    path = tmp_path / "Cnn14_16k_random.pth"
    torch.save({"model": net.state_dict(), "iteration": 0}, path)
    bb = load_backbone("panns_cnn14", path)
    assert (bb.id, bb.sample_rate, bb.embedding_dim, bb.num_classes) == ("panns_cnn14", 16000, 2048, 527)
    assert bb.weights_sha256 == _sha256(path)
    audio = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 16000)).astype(np.float32) * 0.1)
    emb, logits = bb.embed(audio)
    assert emb.shape == (2, 2048) and logits.shape == (2, 527) and emb.dtype == torch.float64
    with torch.no_grad():
        ref_emb, ref_logits = net.eval()(audio)
    np.testing.assert_allclose(emb.numpy(), ref_emb.double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), ref_logits.double().numpy(), rtol=1e-5, atol=1e-5)
    assert bool((emb >= 0).all())  # relu(fc1) as audioldm_eval's "2048"
    # the logits are fc_audioset of the embedding
    with torch.no_grad():
        from_emb = emb @ net.fc_audioset.weight.double().T + net.fc_audioset.bias.double()
    np.testing.assert_allclose(logits.numpy(), from_emb.numpy(), rtol=1e-4, atol=1e-4)
    assert bb.embed_frames(torch.zeros(1, 3 * FRAME_SAMPLES + 5)).shape == (1, 3, 2048)
    # the 32 kHz model is recognised by the shape of its mel filters
    assert config_of_state({"logmel_extractor.melW": torch.zeros(513, 64)}, "x") == "32k"


def test_panns_cnn14_refuses_bad_checkpoints(tmp_path):
    with pytest.raises(UserError, match="needs a checkpoint"):
        load_backbone("panns_cnn14", None)
    with pytest.raises(UserError, match="does not exist"):
        load_backbone("panns_cnn14", tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_backbone("panns_cnn14", tmp_path / "junk.pth")
    torch.save({"model": {"logmel_extractor.melW": torch.zeros(257, 64), "fc1.weight": torch.zeros(3, 3)}},
               tmp_path / "partial.pth")
    with pytest.raises(UserError, match="missing key"):
        load_backbone("panns_cnn14", tmp_path / "partial.pth")


# ----------------------------------------------------------------------------------------- VGGish


def _vggish_log_mel_numpy(y: np.ndarray) -> np.ndarray:
    """VGGish's input features, straight from the published recipe (numpy, loops over bands)."""
    sr, win, hop, nfft = 16000, 400, 160, 512
    n_frames = 1 + (len(y) - win) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.stack([y[i * hop : i * hop + win] * window for i in range(n_frames)])
    mag = np.abs(np.fft.rfft(frames, nfft))
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    bins = mel(np.linspace(0, sr / 2, nfft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    weights = np.zeros((nfft // 2 + 1, 64))
    for b in range(64):
        lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
        for k in range(1, nfft // 2 + 1):
            weights[k, b] = max(0.0, min((bins[k] - lo) / (c - lo), (hi - bins[k]) / (hi - c)))
    return np.log(mag @ weights + 0.01)


def test_vggish_features_match_the_published_recipe():
    from tas_eval.metrics.backbones.vggish import log_mel_examples

    y = np.random.default_rng(3).standard_normal(16000 * 2) * 0.1
    expected = _vggish_log_mel_numpy(y)  # 198 frames -> 2 examples of 96
    ours = log_mel_examples(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == (2, 96, 64)
    np.testing.assert_allclose(ours.reshape(-1, 64), expected[: 2 * 96], atol=1e-9)


@pytest.fixture(scope="module")
def random_vggish(tmp_path_factory):
    from tas_eval.metrics.backbones.vggish import VGGish

    torch.manual_seed(4)
    net = VGGish()
    assert sorted(net.state_dict()) == sorted(VGGISH_KEYS)
    _randomize(net, 4)
    state = dict(net.state_dict())
    # torchvggish's state_dict may carry its PCA post-processor; FAD does not use it
    state["pproc.pca_matrix"], state["pproc.pca_means"] = torch.eye(128), torch.zeros(128, 1)
    path = tmp_path_factory.mktemp("vggish") / "vggish_random.pth"
    torch.save(state, path)
    return net.eval(), path


def test_vggish_loads_a_random_torchvggish_layout_checkpoint(random_vggish):
    from tas_eval.metrics.backbones.vggish import log_mel_examples

    net, path = random_vggish
    bb = load_backbone("vggish", path)
    assert (bb.id, bb.embedding_dim, bb.num_classes) == ("vggish", 128, None)
    assert bb.weights_sha256 == _sha256(path)
    audio = torch.from_numpy(np.random.default_rng(5).standard_normal((2, 16000 * 3)).astype(np.float32) * 0.1)
    frames = bb.embed_frames(audio)
    assert frames.shape == (2, 3, 128)
    with torch.no_grad():
        expected = net(log_mel_examples(audio).reshape(-1, 1, 96, 64)).reshape(2, 3, 128)
    np.testing.assert_allclose(frames.numpy(), expected.double().numpy(), rtol=1e-5, atol=1e-6)
    emb, logits = bb.embed(audio)
    assert logits is None
    np.testing.assert_allclose(emb.numpy(), frames.numpy().mean(axis=1), rtol=1e-5, atol=1e-6)
    # no last ReLU: FAD's VGGish embeddings take negative values too
    assert bool((frames < 0).any())


def test_vggish_backbone_scores_fd_and_fad_but_refuses_kl(random_vggish):
    from tas_eval.metrics.generative import compute_generative

    _, path = random_vggish
    bb = load_backbone("vggish", path)
    rng = np.random.default_rng(6)
    clips = [rng.standard_normal((2, 16000)).astype(np.float32) * 0.1 for _ in range(3)]
    out = compute_generative(clips, clips, 16000, backbone=bb)
    assert set(out) == {"fd", "fad"}
    assert out["fad"].backbone["id"] == "vggish"
    with pytest.raises(UserError, match="no classifier"):
        compute_generative(clips, clips, 16000, backbone=bb, metric_ids=["kl"])


# ----------------------------------------------------------------------------------------- tas_cnn


def test_packaged_tas_cnn_weights_load_and_match_their_readme():
    from tas_eval.data.builtin.sources import category_names
    from tas_eval.metrics.backbones.tas_cnn import WEIGHTS

    assert WEIGHTS.stat().st_size < 20 * 1024 * 1024
    bb = load_backbone("tas_cnn")
    assert bb.classes == category_names()
    assert bb.weights_sha256 == _sha256(WEIGHTS)
    readme = (WEIGHTS.parent / "README.md").read_text()
    assert bb.weights_sha256 in readme
    assert re.search(r"tas-eval backbone train", readme)
    emb, logits = bb.embed(torch.zeros(2, 16000))
    assert emb.shape == (2, bb.embedding_dim) and logits.shape == (2, len(category_names()))


def test_tas_cnn_refuses_a_foreign_checkpoint(tmp_path):
    torch.save({"model": {}}, tmp_path / "x.pt")
    with pytest.raises(UserError, match="not a tas_cnn checkpoint"):
        load_backbone("tas_cnn", tmp_path / "x.pt")
    with pytest.raises(UserError, match="Did you mean"):
        load_backbone("tas_cn")


def test_tas_cnn_training_runs_and_writes_a_loadable_checkpoint(tiny_benchmark, tmp_path):
    from tas_eval.metrics.backbones.tas_cnn import train

    record = train(tiny_benchmark, tmp_path / "tas_cnn.pt", steps=2, seed=0)
    assert record["manifest_sha256"] == tiny_benchmark.content_hash
    assert record["train_sources"] > 0 and record["test_sources"] > 0
    assert 0.0 <= record["held_out_accuracy"] <= 1.0
    bb = load_backbone("tas_cnn", tmp_path / "tas_cnn.pt")
    assert bb.weights_sha256 == record["sha256"]
