"""Dry source synthesis: length, silence outside the active intervals, level, determinism, pitch."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import librosa
import numpy as np
import pytest

from tas_eval.data.builtin import sources
from tas_eval.errors import UserError

SR = 16000
DURATION = 3.0
ACTIVE = [(0.25, 1.2), (1.9, 2.8)]
TARGET = 10 ** (sources.TARGET_RMS_DBFS / 20)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


@pytest.mark.parametrize("category", sources.category_names())
def test_category_length_silence_outside_sound_inside_and_level(category):
    x = sources.synthesize_source(category, DURATION, ACTIVE, seed=7, sr=SR)
    assert x.dtype == np.float64 and x.shape == (round(DURATION * SR),)
    inside = np.zeros(len(x), dtype=bool)
    for a, b in ACTIVE:
        s0, s1 = round(a * SR), round(b * SR)
        inside[s0:s1] = True
        seg = x[s0:s1]
        assert _rms(seg) > 0.01, f"{category} is (nearly) silent in {a}-{b} s"
        # It starts sounding at the interval start (first 150 ms), after the fade-in.
        assert _rms(seg[: int(0.15 * SR)]) > 0.003
        # Fades: the edge samples are close to zero.
        assert abs(seg[0]) < 1e-3 and abs(seg[-1]) < 1e-3
    assert np.all(x[~inside] == 0.0)
    assert _rms(x[inside]) == pytest.approx(TARGET, rel=1e-9)
    assert np.all(np.isfinite(x))


@pytest.mark.parametrize("category", sources.category_names())
def test_same_seed_is_byte_identical_and_seeds_differ(category):
    a = sources.synthesize_source(category, 2.0, [(0.0, 2.0)], seed=11, sr=SR)
    b = sources.synthesize_source(category, 2.0, [(0.0, 2.0)], seed=11, sr=SR)
    c = sources.synthesize_source(category, 2.0, [(0.0, 2.0)], seed=12, sr=SR)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def _digest(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


def test_output_does_not_depend_on_history_or_process():
    """A fresh process that renders other sources first gives the same bytes (FluidSynth voices
    keep state between notes, so this fails if a synth were reused across renders)."""
    jobs = [("piano", 3), ("harp", 5), ("xylophone", 1), ("drum", 2), ("speech", 4)]
    here = {f"{c}:{s}": _digest(sources.synthesize_source(c, 2.0, [(0.0, 2.0)], s, sr=SR)) for c, s in jobs}
    code = (
        "import hashlib\n"
        "from tas_eval.data.builtin import sources\n"
        "sources.synthesize_source('guitar', 2.0, [(0.0, 2.0)], 99, sr=16000)\n"
        f"for c, s in {jobs[::-1]!r}:\n"
        "    x = sources.synthesize_source(c, 2.0, [(0.0, 2.0)], s, sr=16000)\n"
        "    print('DIGEST', f'{c}:{s}', hashlib.sha256(x.tobytes()).hexdigest())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Only the marked lines: a library may print its own notices on stdout (seen once in CI).
    there = dict(line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("DIGEST "))
    assert there == here, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _median_f0(x: np.ndarray, sr: int) -> float:
    """Median YIN f0 over the loud frames (librosa, independent of the synthesis)."""
    f0 = librosa.yin(x, fmin=30, fmax=4000, sr=sr, frame_length=2048, hop_length=512)
    level = librosa.feature.rms(y=x, frame_length=2048, hop_length=512)[0][: len(f0)]
    return float(np.median(f0[: len(level)][level > 0.3 * level.max()]))


def test_midi_renderer_plays_the_written_pitch():
    # Known answer: A3 (MIDI 57) on the cello program is 220 Hz.
    midi = sources._Midi([(0.0, 1.0, 0, 57, 100)], [], {0: (0, 42)})
    x = sources._render_midi(midi, 22050, 22050)
    assert _median_f0(x[2048:20000], 22050) == pytest.approx(220.0, rel=0.015)


@pytest.mark.parametrize("category", ["upright_bass", "cello", "violin", "flute", "trumpet", "xylophone"])
def test_melodic_line_lies_in_the_instrument_range(category):
    lo, hi = sources.CATEGORIES[category]["midi_range"]
    f_lo, f_hi = librosa.midi_to_hz(lo - 1), librosa.midi_to_hz(hi + 1)
    for seed in (0, 1):
        x = sources.synthesize_source(category, 4.0, [(0.0, 4.0)], seed, sr=22050)
        f0 = _median_f0(x, 22050)
        assert f_lo <= f0 <= f_hi, f"{category} seed {seed}: median f0 {f0:.0f} Hz"


def test_cello_sounds_lower_than_xylophone():
    for seed in (0, 1, 2):
        cello = sources.synthesize_source("cello", 4.0, [(0.0, 4.0)], seed, sr=22050)
        xylo = sources.synthesize_source("xylophone", 4.0, [(0.0, 4.0)], seed, sr=22050)
        assert _median_f0(cello, 22050) < _median_f0(xylo, 22050)


def test_intervals_are_clipped_merged_and_empty_gives_zeros():
    x = sources.synthesize_source("flute", 2.0, [(1.0, 1.5), (-1.0, 0.5), (1.4, 3.0)], seed=1, sr=SR)
    assert np.all(x[int(0.5 * SR): SR] == 0.0)
    assert _rms(x[: int(0.5 * SR)]) > 0 and _rms(x[SR:]) > 0
    assert not np.any(sources.synthesize_source("flute", 1.0, [], seed=1, sr=SR))
    assert not np.any(sources.synthesize_source("flute", 1.0, [(0.5, 0.5)], seed=1, sr=SR))


def test_unknown_category_is_refused():
    with pytest.raises(ValueError, match="oboe"):
        sources.synthesize_source("oboe", 1.0, [(0.0, 1.0)], seed=1)


def test_missing_soundfont_is_a_user_error(monkeypatch, tmp_path):
    missing = tmp_path / "FluidR3_GM.sf2"
    monkeypatch.setattr(sources, "SOUNDFONT", missing)
    with pytest.raises(UserError, match="soundfont not found"):
        sources.synthesize_source("cello", 1.0, [(0.0, 1.0)], seed=1, sr=SR)
    with pytest.raises(UserError, match=str(missing)):
        sources.synthesize_source("piano", 1.0, [(0.0, 1.0)], seed=1, sr=SR)


def test_missing_espeak_is_a_user_error(monkeypatch):
    monkeypatch.setattr(sources, "ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(UserError, match="espeak-ng-not-installed: program not found"):
        sources.synthesize_source("speech", 1.0, [(0.0, 1.0)], seed=1, sr=SR)


@pytest.mark.skipif(not sources._drumkits(str(sources.DRUMKITS_DIR)), reason="hydrogen-drumkits not installed")
def test_drums_use_recorded_kits_and_fall_back_to_gm(monkeypatch, tmp_path):
    kit = sources.synthesize_source("drum", 2.0, [(0.0, 2.0)], seed=3, sr=SR)
    monkeypatch.setattr(sources, "DRUMKITS_DIR", tmp_path)  # an empty folder: no kit
    gm = sources.synthesize_source("drum", 2.0, [(0.0, 2.0)], seed=3, sr=SR)
    assert _rms(gm) == pytest.approx(TARGET, rel=1e-9)
    assert not np.array_equal(kit, gm)
    # A drum is percussive: most of its energy is in short onsets, unlike a bowed cello.
    cello = sources.synthesize_source("cello", 2.0, [(0.0, 2.0)], seed=3, sr=SR)
    for drums in (kit, gm):
        assert _crest(drums) > _crest(cello)


def _crest(x: np.ndarray) -> float:
    frames = librosa.feature.rms(y=x, frame_length=512, hop_length=256)[0]
    return float(frames.max() / np.median(frames))


def _write_kit(folder, sr=22050):
    """A tiny kit in Hydrogen's layout: kick with two velocity layers (<layer>), a hi-hat given
    by a bare <filename> (the older format), a snare; no toms, cymbals or open hi-hat."""
    import soundfile as sf

    folder.mkdir(parents=True)
    t = np.arange(int(0.2 * sr)) / sr
    tones = {"kick_soft.wav": 60.0, "kick_hard.wav": 60.0, "hat.flac": 5000.0, "snare.wav": 200.0}
    for name, f in tones.items():
        sf.write(folder / name, 0.5 * np.sin(2 * np.pi * f * t) * np.exp(-t / 0.05), sr)
    (folder / "drumkit.xml").write_text(
        '<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>t</name><instrumentList>'
        "<instrument><name>Kick</name><volume>1</volume>"
        "<layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>"
        "<layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>"
        "</instrument>"
        "<instrument><name>Closed HH</name><volume>0.8</volume><filename>hat.flac</filename></instrument>"
        "<instrument><name>Snare Rock</name><volume>1</volume><filename>snare.wav</filename></instrument>"
        "</instrumentList></drumkit_info>"
    )


def test_drumkit_layout_is_parsed_and_missing_roles_have_stand_ins(monkeypatch, tmp_path):
    _write_kit(tmp_path / sources.ACOUSTIC_KITS[0])
    (name, roles), = sources._drumkits(str(tmp_path))
    assert name == sources.ACOUSTIC_KITS[0]
    assert [ly.path.name for ly in roles["kick"][1]] == ["kick_soft.wav", "kick_hard.wav"]
    assert roles["hh_closed"][0] == pytest.approx(0.8)
    assert roles["tom_hi"] == roles["snare"] and roles["crash"] == roles["hh_closed"]
    monkeypatch.setattr(sources, "DRUMKITS_DIR", tmp_path)
    x = sources.synthesize_source("drum", 4.0, [(0.0, 4.0)], seed=5, sr=22050)
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), 1 / 22050)

    def band(f):
        return spectrum[(freqs > f * 0.9) & (freqs < f * 1.1)].max()

    # The kit's three tones are there; a frequency none of them has is far weaker.
    assert min(band(60.0), band(200.0), band(5000.0)) > 30 * band(1000.0)


def test_check_assets_passes_here_and_names_a_missing_espeak(monkeypatch):
    sources.check_assets()
    monkeypatch.setattr(sources, "ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(UserError, match="espeak-ng-not-installed"):
        sources.check_assets()
