"""The model contract: registry (built-ins and entry-point plugins), `ls models`, and the two training-free baselines."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly

from tas_eval.cli import main
from tas_eval.errors import UserError
from tas_eval.models import _BUILTINS, MODELS, get_model_class, guidance_label, model_info, prompt_from_annotation

SR = 16000


# ----------------------------------------------------------------------------------------- registry


def test_every_packaged_trained_model_has_a_card_and_paper_settings():
    cards = Path(__file__).resolve().parents[2] / "baselines" / "cards"
    for name in _BUILTINS:
        cls = get_model_class(name)
        if cls.trains:
            card = cards / f"{name}.md"
            assert card.is_file(), f"{name} has no card"
            assert card.read_text().startswith(f"# {name}\n")
            assert {"paper", "small"} <= set(cls.configs)


def test_builtin_baselines_are_registered_lazily():
    assert {"mono_mono", "text_pan"} <= set(MODELS.names())
    mono, pan = get_model_class("mono_mono"), get_model_class("text_pan")
    assert mono.name == "mono_mono" and mono.guidance == frozenset() and not mono.trains
    assert pan.name == "text_pan" and pan.guidance == frozenset({"text"}) and not pan.trains
    for cls in (mono, pan):
        assert {"paper", "small"} <= set(cls.configs)
        assert cls.paper and cls.description


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserError, match="Did you mean 'text_pan'"):
        get_model_class("text_pna")


def test_guidance_label():
    assert guidance_label(frozenset()) == "none"
    assert guidance_label({"visual", "text"}) == "text+visual"
    assert guidance_label({"visual"}) == "visual"


@pytest.fixture()
def plugin_on_path(tmp_path, monkeypatch):
    """A third-party distribution on sys.path declaring a model in the tas_eval.models entry-point group."""
    (tmp_path / "my_tas_plugin.py").write_text(textwrap.dedent('''
        import torch
        from tas_eval.models import Model

        class SwapModel(Model):
            name = "swap_plugin"
            guidance = frozenset({"visual"})
            paper = "A. Person, A plugin paper (2030)"
            description = "left gets the mono signal, right gets nothing"
            trains = False
            configs = {"paper": {}, "small": {}}

            def spatialize(self, mono, sr, prompts=None, frames=None):
                return torch.cat([mono, torch.zeros_like(mono)], dim=1)
    '''))
    info = tmp_path / "my_tas_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tas-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tas_eval.models]\nswap_plugin = my_tas_plugin:SwapModel\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # a fresh look at the entry points, restored afterwards
    monkeypatch.setattr(MODELS, "_entry_points_loaded", False)
    monkeypatch.setattr(MODELS, "_lazy", dict(MODELS._lazy))
    monkeypatch.setattr(MODELS, "_objects", dict(MODELS._objects))
    yield
    sys.modules.pop("my_tas_plugin", None)


def test_a_third_party_model_plugs_in_through_the_entry_point_group(plugin_on_path, capsys):
    cls = get_model_class("swap_plugin")
    assert model_info(cls) == {"name": "swap_plugin", "version": "1", "guidance": "visual", "paper": "A. Person, A plugin paper (2030)",
                               "description": "left gets the mono signal, right gets nothing", "trains": False}
    out = cls().spatialize(torch.ones(2, 1, 5), SR)
    assert out.shape == (2, 2, 5) and torch.equal(out[:, 1], torch.zeros(2, 5))
    assert main(["ls", "models"]) == 0
    listing = capsys.readouterr().out
    rows = {line.split()[0]: line for line in listing.splitlines()[2:]}
    assert "A. Person, A plugin paper (2030)" in rows["swap_plugin"] and " visual " in rows["swap_plugin"]
    assert " none " in rows["mono_mono"] and " text " in rows["text_pan"]


def test_ls_models_reports_a_broken_plugin_without_crashing(monkeypatch, capsys):
    monkeypatch.setattr(MODELS, "_lazy", dict(MODELS._lazy))
    MODELS.add_lazy("broken_model", "no_such_module_xyz:Model")
    assert main(["ls", "models"]) == 0
    assert "cannot be loaded" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- prompts


def test_prompts_hold_text_only():
    annotation = {
        "item_id": "x",
        "frames": [{"t0": 0.0, "text": "the cello on the left",
                    "sources": [{"category": "cello", "azimuth": 60.0, "elevation": 0.0, "distance": 2.0,
                                 "label": "left", "level_db": -20.0}], "counterfactual": "the cello on the right"}],
        "clip_prompts": [
            {"type": "relation", "text": "r", "phrasing": "rel_of", "held_out": False, "sources": [0, 1]},
            {"type": "direction", "text": "the cello is located left, 2m away.", "phrasing": "dir_located",
             "held_out": False, "sources": [0]},
            {"type": "direction", "text": "to your left, there is a cello.", "phrasing": "dir_there_is",
             "held_out": True, "sources": [0]},
        ],
        "clip_sources": [{"category": "cello", "azimuth": 60.0}],
    }
    p = prompt_from_annotation(annotation)
    assert p == {"text": "the cello is located left, 2m away.",
                 "clip_prompts": [{"type": "relation", "text": "r", "phrasing": "rel_of"},
                                  {"type": "direction", "text": "the cello is located left, 2m away.",
                                   "phrasing": "dir_located"}],
                 "frames": [{"t0": 0.0, "text": "the cello on the left"}]}
    assert prompt_from_annotation(annotation, held_out=True)["text"] == "to your left, there is a cello."
    blob = json.dumps(p)
    for numeric in ("azimuth", "elevation", "level_db", "sources", "counterfactual", "60"):
        assert numeric not in blob


# ----------------------------------------------------------------------------------------- mono_mono


def test_mono_mono_duplicates_half_the_mono_signal():
    mono = torch.randn(3, 1, 1000, generator=torch.Generator().manual_seed(0))
    out = get_model_class("mono_mono")().spatialize(mono, SR)
    assert out.shape == (3, 2, 1000)
    assert torch.equal(out[:, 0], out[:, 1])
    assert torch.allclose(out[:, 0:1] + out[:, 1:2], mono)


# ----------------------------------------------------------------------------------------- text_pan


def _noise(n=SR, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((1, 1, n)) * 0.1)


def _ild_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.sum(x[0] ** 2) / np.sum(x[1] ** 2))


def test_crossfade_weights_sum_to_one_and_are_one_hot_away_from_switches():
    from baselines.text_pan import crossfade_weights

    assign = np.array([0] * 100 + [1] * 100 + [2] * 100)
    w = crossfade_weights(assign, 3, 20)
    assert w.shape == (3, 300)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(w[:, :85], np.eye(3)[:, [0]] * np.ones(85), atol=1e-12)
    np.testing.assert_allclose(w[:, 115:185], np.eye(3)[:, [1]] * np.ones(70), atol=1e-12)
    assert 0 < w[0, 100] < 1 and 0 < w[1, 100] < 1  # a real fade at the switch


def test_direction_of_is_the_energy_weighted_mean():
    from baselines.text_pan import direction_of

    assert direction_of([]) is None
    az, el = direction_of([{"azimuth": 90.0, "elevation": 0.0}, {"azimuth": -90.0, "elevation": 0.0}])
    assert (az, el) == (0.0, 0.0)
    az, _ = direction_of([{"azimuth": 90.0, "elevation": 0.0}, {"azimuth": 0.0, "elevation": 0.0}])
    assert az == pytest.approx(45.0)
    # 10 dB louder on the left: weights 10 and 1 -> atan2(10, 1)
    az, _ = direction_of([{"azimuth": 90.0, "elevation": 0.0, "level_db": 0.0},
                          {"azimuth": 0.0, "elevation": 0.0, "level_db": -10.0}])
    assert az == pytest.approx(np.degrees(np.arctan2(10, 1)))


def test_clip_prompt_matches_a_direct_hrir_convolution_in_a_room():
    """Independent implementation: resample the nearest KEMAR HRIR, np.convolve, mix with Mono-Mono at -6 dB
    direct-to-reverberant ratio, match Mono-Mono's energy."""
    from baselines.common.prompt_parser import parse_prompt
    from baselines.text_pan import DRR_DB, TextPan, direction_of
    from tas_eval.data.builtin.hrir import HRIRSet

    text = "the cello is located left, 2m away."
    parsed = parse_prompt(text)
    assert parsed, "the parser must understand a SpatialTAS direction prompt"
    az, el = direction_of(parsed)
    mono = _noise()
    model = TextPan()
    out = model.spatialize(mono, SR, [{"text": text, "frames": None}]).numpy()[0]

    hset = HRIRSet.load()
    h = resample_poly(hset.lookup(az, el), 160, 441, axis=-1)
    half = mono.numpy()[0, 0] / 2
    direct = np.stack([np.convolve(half, h[0])[:SR], np.convolve(half, h[1])[:SR]])
    dry = np.stack([half, half])
    energy = lambda x: np.sum(x**2)  # noqa: E731
    direct *= np.sqrt(energy(dry) / energy(direct))
    drr = 10 ** (DRR_DB / 10)  # direct / reverberant energy
    expected = np.sqrt(drr / (1 + drr)) * direct + np.sqrt(1 / (1 + drr)) * dry
    expected *= np.sqrt(energy(dry) / energy(expected))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert _ild_db(out) > 1.0  # left is louder
    assert model.last_notes == [{"frames": 1, "fallbacks": 0}]


def test_dense_text_pans_frame_by_frame_and_counts_fallbacks():
    from baselines.text_pan import TextPan

    frames = ([{"t0": k / 10, "text": "the piano on the left"} for k in range(5)]
              + [{"t0": 0.5 + k / 10, "text": "the piano on the right"} for k in range(4)]
              + [{"t0": 0.9, "text": "silence"}])
    other = [{"t0": k / 10, "text": "zqx wvy" if k == 3 else "silence"} for k in range(10)]
    model = TextPan()
    out = model.spatialize(torch.cat([_noise(seed=1), _noise(seed=2)]), SR,
                           [{"text": None, "frames": frames}, {"text": None, "frames": other}]).numpy()
    first, second = out[0][:, : int(0.45 * SR)], out[0][:, int(0.55 * SR) :]
    assert _ild_db(first) > 1.0 and _ild_db(second) < -1.0
    # a not-understood frame goes to the front; silent frames hold it: the clip stays near the centre
    assert abs(_ild_db(out[1])) < 0.3
    assert model.last_notes == [{"frames": 10, "fallbacks": 0}, {"frames": 10, "fallbacks": 1}]


def test_text_pan_follows_the_text_not_anything_else():
    """Side-swapped text gives the mirrored level difference; no prompt at all is a counted fallback."""
    from baselines.text_pan import TextPan

    model = TextPan()
    mono = _noise(seed=3)
    left = model.spatialize(mono, SR, [{"text": "the violin is on the left, 3m away.", "frames": None}]).numpy()[0]
    right = model.spatialize(mono, SR, [{"text": "the violin is on the right, 3m away.", "frames": None}]).numpy()[0]
    assert _ild_db(left) > 1.0 and _ild_db(right) < -1.0
    assert abs(_ild_db(left) + _ild_db(right)) < 0.5  # KEMAR is nearly symmetric
    none = model.spatialize(mono, SR, None).numpy()[0]
    assert abs(_ild_db(none)) < 0.3 and model.last_notes == [{"frames": 1, "fallbacks": 1}]
    assert np.abs(none).max() <= 1.0


# ----------------------------------------------------------------------------------------- ls datasets / metrics


def test_ls_datasets_lists_known_and_built_benchmarks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TAS_EVAL_HOME", str(tmp_path))
    built = tmp_path / "data" / "my-build"
    built.mkdir(parents=True)
    (built / "manifest.json").write_text(json.dumps({"dataset_id": "my-build", "manifest_sha256": "ab" * 32,
                                                     "num_clips": 7, "profile": "custom", "seed": 5}))
    (tmp_path / "data" / "not-a-build").mkdir()
    assert main(["ls", "datasets"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert f"built at {built} (manifest {'ab' * 6}, profile custom, seed 5)" in rows["my-build"]
    assert "not-a-build" not in rows
    assert any("not built" in r for r in rows.values())  # the known profiles that are not built here
    assert {"builtin", "fairplay", "spatialtas"} <= set(rows)  # the registered datasets


def test_ls_metrics_lists_every_registered_metric(capsys):
    from tas_eval.metrics import list_metrics

    assert main(["ls", "metrics"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert listed == [m.id for m in list_metrics()]
