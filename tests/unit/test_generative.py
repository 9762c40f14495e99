"""Generative metrics: FD/FAD against scipy.linalg.sqrtm, KL and IS against independent implementations,
known answers, both ears, the reference-statistics cache, and errors that are raised."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from tas_eval.errors import UserError
from tas_eval.metrics import generative as gen
from tas_eval.metrics import stats_cache


def _sqrtm_fd(x: np.ndarray, y: np.ndarray) -> float:
    """The reference scripts' formula: scipy.linalg.sqrtm of the covariance product, real part."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _correlated(rng, n, d, scale):
    mix = rng.standard_normal((d, d)) * scale
    return rng.standard_normal((n, d)) @ mix + rng.standard_normal(d)


# ----------------------------------------------------------------------------------------- Frechet distance


@pytest.mark.parametrize("method", ["svd", "eigh"])
def test_frechet_distance_matches_scipy_sqrtm(method):
    rng = np.random.default_rng(0)
    x, y = _correlated(rng, 80, 6, 1.0), _correlated(rng, 70, 6, 0.7)
    expected = _sqrtm_fd(x, y)
    assert expected > 1.0
    assert gen.frechet_distance(x, y, method=method) == pytest.approx(expected, rel=1e-9)
    assert gen.frechet_distance_from_stats(*gen.gaussian_stats(x), *gen.gaussian_stats(y)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_known_answer_diagonal_gaussians():
    # Diagonal covariances: FD = |mu1 - mu2|^2 + sum_i (sigma1_i - sigma2_i)^2.
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    expected = 1.0 + 0.0 + 4.0 + (1.0 + 0.0 + 4.0)
    assert gen.frechet_distance_from_stats(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_fewer_rows_than_dimensions_agrees_between_methods():
    rng = np.random.default_rng(1)
    x, y = _correlated(rng, 7, 40, 1.0), _correlated(rng, 9, 40, 0.5)
    a, b = gen.frechet_distance(x, y, method="svd"), gen.frechet_distance(x, y, method="eigh")
    # The covariances are singular: the eigh route takes square roots of eigenvalues that are 0 up to
    # rounding (~1e-13 -> ~3e-7 each), which is why the default is the SVD route.
    assert a == pytest.approx(b, rel=1e-6)


# Fewer rows than dimensions (singular covariances, as with 20 test clips and 128-d embeddings): only
# the SVD route (the default) is exact there; the eigh route is off by ~sqrt(rounding) per null direction.
@pytest.mark.parametrize("shape,methods", [((50, 8), ("svd", "eigh")), ((6, 64), ("svd",)), ((200, 64), ("svd",))])
def test_identical_sets_give_zero(shape, methods):
    rng = np.random.default_rng(2)
    x = _correlated(rng, shape[0], shape[1], 3.0)
    scale = np.trace(np.cov(x, rowvar=False))
    for method in methods:
        assert abs(gen.frechet_distance(x, x.copy(), method=method)) < 1e-10 * scale
    # the order of the rows does not matter
    assert abs(gen.frechet_distance(x, x[::-1].copy())) < 1e-10 * scale


def test_frechet_distance_needs_two_rows():
    with pytest.raises(UserError):
        gen.frechet_distance(np.ones((1, 3)), np.ones((4, 3)))


# ----------------------------------------------------------------------------------------- KL and IS


def test_kl_softmax_and_sigmoid_match_torch_kl_div_as_audioldm_eval_uses_it():
    rng = np.random.default_rng(3)
    ref, pred = rng.standard_normal((12, 9)) * 3, rng.standard_normal((12, 9)) * 3
    r, p = torch.from_numpy(ref), torch.from_numpy(pred)
    eps = 1e-6
    expected_softmax = F.kl_div((p.softmax(dim=1) + eps).log(), r.softmax(dim=1), reduction="sum") / len(p)
    expected_sigmoid = F.kl_div((p.sigmoid() + eps).log(), r.sigmoid(), reduction="sum") / len(p)
    assert gen.kl_softmax(ref, pred).mean() == pytest.approx(float(expected_softmax), rel=1e-12)
    assert gen.kl_sigmoid(ref, pred).mean() == pytest.approx(float(expected_sigmoid), rel=1e-12)


def test_kl_softmax_known_answer():
    # p_ref = (1/2, 1/2), p_pred = (1/4, 3/4): KL = 1/2 ln(1/2 / (1/4 + eps)) + 1/2 ln(1/2 / (3/4 + eps)).
    ref = np.array([[0.0, 0.0]])
    pred = np.array([[0.0, math.log(3.0)]])
    eps = 1e-6
    expected = 0.5 * math.log(0.5 / (0.25 + eps)) + 0.5 * math.log(0.5 / (0.75 + eps))
    assert gen.kl_softmax(ref, pred)[0] == pytest.approx(expected, rel=1e-12)


def _is_loops(logits: np.ndarray, splits: int, seed: int) -> float:
    """Inception Score with plain Python loops over a RandomState(seed) shuffle."""
    n = len(logits)
    order = np.random.RandomState(seed).permutation(n)
    rows = [list(logits[i]) for i in order]
    probs = []
    for row in rows:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        probs.append([v / s for v in e])
    scores = []
    for k in range(splits):
        chunk = probs[k * n // splits : (k + 1) * n // splits]
        marginal = [sum(p[c] for p in chunk) / len(chunk) for c in range(len(chunk[0]))]
        kl = sum(sum(p[c] * (math.log(p[c]) - math.log(marginal[c])) for c in range(len(p))) for p in chunk) / len(chunk)
        scores.append(math.exp(kl))
    return sum(scores) / len(scores)


def test_inception_score_matches_loop_implementation():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((37, 6)) * 2
    value, std, splits = gen.inception_score(logits)
    assert splits == 10
    assert value == pytest.approx(_is_loops(logits, 10, 2020), rel=1e-12)
    assert std > 0


def test_inception_score_known_answers():
    # Uniform predictions: p(y|x) = p(y), IS = 1.
    assert gen.inception_score(np.zeros((20, 5)))[0] == pytest.approx(1.0, abs=1e-12)
    # 20 confident predictions of 20 different classes, 10 splits of 2: each split has KL = ln 2, IS = 2.
    logits = np.full((20, 20), -60.0)
    logits[np.arange(20), np.arange(20)] = 60.0
    assert gen.inception_score(logits)[0] == pytest.approx(2.0, rel=1e-9)
    # Fewer rows than splits: one row per split, p(y) = p(y|x), IS = 1, and the split count is reported.
    assert gen.inception_score(logits[:4]) == pytest.approx((1.0, 0.0, 4), abs=1e-9)


# ----------------------------------------------------------------------------------------- both ears, end to end


@pytest.fixture(scope="module")
def random_tas_cnn(tmp_path_factory):
    """A randomly initialised tas_cnn checkpoint (the real backbone code, untrained weights)."""
    from tas_eval.metrics.backbones import load_backbone
    from tas_eval.metrics.backbones.tas_cnn import TasCnn

    torch.manual_seed(0)
    net = TasCnn(5)
    path = tmp_path_factory.mktemp("bb") / "tas_cnn_random.pt"
    torch.save({"model": net.state_dict(), "classes": list("abcde"), "widths": [8, 16, 32, 64], "embedding_dim": 64}, path)
    return load_backbone("tas_cnn", path)


def _binaural_set(n=6, seconds=1.0, sr=16000, seed=5):
    """Clips whose ears differ: a low-passed noise source louder on the left, a bright one louder on the right."""
    rng = np.random.default_rng(seed)
    t = int(seconds * sr)
    items = []
    for _ in range(n):
        low = np.convolve(rng.standard_normal(t), np.ones(16) / 16, mode="same")
        high = np.diff(rng.standard_normal(t + 1))
        g = rng.uniform(0.2, 0.5)
        items.append(np.stack([low + g * high, g * low + high]).astype(np.float32))
    return items


def test_ground_truth_against_itself_is_zero_and_swapped_ears_are_not(random_tas_cnn):
    refs = _binaural_set()
    same = gen.compute_generative(refs, refs, 16000, backbone=random_tas_cnn)
    assert set(same) == {"fd", "fad", "kl", "kl_sigmoid", "is"}
    swapped = [r[::-1].copy() for r in refs]
    other = gen.compute_generative(swapped, refs, 16000, backbone=random_tas_cnn)
    downmix = [np.stack([r.mean(0), r.mean(0)]) for r in refs]
    mono = gen.compute_generative(downmix, refs, 16000, backbone=random_tas_cnn)
    for mid in ("fd", "fad"):
        assert abs(same[mid].value) < 1e-6 * other[mid].value
        # a downmix (what the published tools score) cannot tell swapped ears apart; per-ear scoring does
        assert other[mid].value > 0 and mono[mid].value > 0
    assert same["kl"].details["per_channel"].keys() == {"L", "R"}
    assert other["kl"].value > same["kl"].value
    entry = same["fd"]
    assert entry.backbone == {"id": "tas_cnn", "sha256": random_tas_cnn.weights_sha256}
    assert entry.channel_mode == "lr" and entry.n == len(refs) and entry.direction == "lower"
    assert same["is"].direction == "higher"


def test_clip_and_frame_embeddings_concatenate_the_ears(random_tas_cnn):
    refs = _binaural_set(n=3, seconds=2.0)
    emb = gen.embed_set(random_tas_cnn, refs, 16000, "lrs", ["a", "b", "c"])
    d = random_tas_cnn.embedding_dim
    assert emb.clip.shape == (3, 3 * d) and emb.clip.dtype == np.float64
    assert emb.frames.shape == (3 * 2, 3 * d)  # 2 s -> two whole 0.96 s frames per clip
    assert emb.logits.shape == (3, 3, 5)
    # the left ear's part equals embedding the (peak-normalized) left channel alone
    left = refs[1][0] / np.abs(refs[1]).max()
    alone, _ = random_tas_cnn.embed(torch.from_numpy(left[None].astype(np.float32)))
    np.testing.assert_allclose(emb.clip[1, :d], alone[0].numpy(), rtol=1e-5, atol=1e-6)


def test_errors_are_raised(random_tas_cnn):
    refs = _binaural_set(n=3)
    bad = [r.copy() for r in refs]
    bad[1][0, 10] = np.nan
    with pytest.raises(UserError):
        gen.compute_generative(bad, refs, 16000, backbone=random_tas_cnn)
    with pytest.raises(UserError):
        gen.compute_generative(refs[:2], refs, 16000, backbone=random_tas_cnn)
    with pytest.raises(UserError):
        gen.compute_generative(refs, refs, 16000, gen.GenerativeOptions(channel_mode="mid"), backbone=random_tas_cnn)


# ----------------------------------------------------------------------------------------- cache


def test_cache_key_depends_on_manifest_weights_and_channel_mode(random_tas_cnn):
    base = stats_cache.reference_key(random_tas_cnn, "lr", "a" * 64, 1, 16000)
    assert stats_cache.cache_path(base) == stats_cache.cache_path(dict(base))
    other_data = stats_cache.reference_key(random_tas_cnn, "lr", "b" * 64, 1, 16000)
    other_mode = stats_cache.reference_key(random_tas_cnn, "lrs", "a" * 64, 1, 16000)
    other_split = stats_cache.reference_key(random_tas_cnn, "lr", "a" * 64, 2, 16000)
    other_weights = stats_cache.reference_key(types.SimpleNamespace(id="tas_cnn", weights_sha256="c" * 64, sample_rate=16000),
                                              "lr", "a" * 64, 1, 16000)
    paths = {stats_cache.cache_path(k) for k in (base, other_data, other_mode, other_split, other_weights)}
    assert len(paths) == 5
    assert all("tasbench" not in str(p) for p in paths)  # never keyed by a folder or dataset name


def test_cache_is_used_and_no_cache_recomputes(random_tas_cnn, isolated_home):
    refs = _binaural_set(n=4)
    ids = [f"i{k}" for k in range(4)]
    first = gen.compute_generative(refs, refs, 16000, backbone=random_tas_cnn, dataset_hash="d" * 64, split=3, item_ids=ids)
    key = stats_cache.reference_key(random_tas_cnn, "lr", "d" * 64, 3, 16000)
    cached = stats_cache.load(key)
    assert cached is not None and cached.item_ids == ids and cached.clip.shape == (4, 2 * random_tas_cnn.embedding_dim)
    # With the cache, the references given are not embedded again: other audio passed as references
    # still scores against the cached ones (FD of identical sets = 0) ...
    noise = [np.random.default_rng(9).standard_normal(r.shape).astype(np.float32) for r in refs]
    again = gen.compute_generative(refs, noise, 16000, backbone=random_tas_cnn, dataset_hash="d" * 64, split=3, item_ids=ids)
    assert again["fd"].value == pytest.approx(first["fd"].value, abs=1e-9)
    # ... and use_cache=False recomputes them (and refreshes the cache).
    fresh = gen.compute_generative(refs, noise, 16000, gen.GenerativeOptions(use_cache=False), backbone=random_tas_cnn,
                                   dataset_hash="d" * 64, split=3, item_ids=ids)
    assert fresh["fd"].value > 1.0
    assert np.allclose(stats_cache.load(key).clip, gen.embed_set(random_tas_cnn, noise, 16000, "lr", ids).clip)



def test_evaluate_records_generative_metrics_with_the_packaged_backbone(tiny_benchmark, tmp_path):
    """The one evaluation path: ground truth submitted as predictions scores FD = FAD = 0, and the results
    name the backbone and its weights hash."""
    from tas_eval.audio import write_wav
    from tas_eval.metrics.backbones import load_backbone
    from tas_eval.evaluation import evaluate_predictions

    pred_dir = tmp_path / "gt"
    for item_id in tiny_benchmark.split_ids(1, "test"):
        write_wav(pred_dir / f"{item_id}.wav", tiny_benchmark.binaural(item_id), tiny_benchmark.sample_rate)
    results, _ = evaluate_predictions(pred_dir, tiny_benchmark, 1, name="references", results_root=tmp_path / "results",
                                      metric_ids=["fd", "fad", "kl", "is"])
    sha = load_backbone("tas_cnn").weights_sha256
    assert set(results["metrics"]) == {"fd", "fad", "kl", "is"}
    for mid, m in results["metrics"].items():
        assert m["backbone"] == {"id": "tas_cnn", "sha256": sha} and m["channel_mode"] == "lr"
    assert abs(results["metrics"]["fd"]["value"]) < 1e-6 and abs(results["metrics"]["fad"]["value"]) < 1e-6


def test_a_rewritten_or_damaged_cache_entry_is_recomputed(random_tas_cnn, isolated_home, caplog):
    """An entry rewritten under the same key (embeddings x1.5), changed by one bit, truncated, emptied or of the
    older format without a content hash is named in a warning and recomputed, never used and never a traceback."""
    refs = _binaural_set(n=4)
    ids = [f"i{k}" for k in range(4)]
    common = dict(backbone=random_tas_cnn, dataset_hash="e" * 64, split=5, item_ids=ids)
    truth = gen.compute_generative(refs, refs, 16000, **common)["fd"].value
    key = stats_cache.reference_key(random_tas_cnn, "lr", "e" * 64, 5, 16000)
    path = stats_cache.cache_path(key)
    good = path.read_bytes()
    with np.load(path) as z:
        entry = {k: z[k] for k in z.files}

    def rewritten():
        np.savez(path, **{**entry, "clip": entry["clip"] * 1.5, "frames": entry["frames"] * 1.5})

    def legacy():
        np.savez(path, **{k: v for k, v in entry.items() if k != "content_sha256"})

    def one_bit():
        data = bytearray(good)
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    damages = {"rewritten": rewritten, "legacy": legacy, "one bit": one_bit,
               "truncated": lambda: path.write_bytes(good[: len(good) // 2]), "empty": lambda: path.write_bytes(b"")}
    for name, damage in damages.items():
        damage()
        caplog.clear()
        assert gen.compute_generative(refs, refs, 16000, **common)["fd"].value == pytest.approx(truth, abs=1e-9), name
        assert str(path) in caplog.text and "recomputing" in caplog.text, name
        assert stats_cache.load(key) is not None  # replaced by a sound entry
