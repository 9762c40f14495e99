"""Dry mono source signals for the built-in benchmark, one per (category, seed).

Every source is synthesized only inside its ``active`` intervals (seconds), with 20 ms raised-cosine
fades at the interval edges and exact zeros elsewhere, then scaled so that the RMS over all samples
inside the active intervals is ``TARGET_RMS_DBFS`` (-20 dBFS; peaks are not limited, the output is
float64). The same arguments give byte-identical output in any process, in any order of calls.

How each kind of source is made:

- Instruments (cello, violin, upright bass, guitar, piano, harp, xylophone, flute, trumpet): MIDI
  composed here from the seed (key, scale, chord progression, tempo, phrases with rests, velocity
  contours, idiomatic patterns per instrument) and rendered by FluidSynth (pyfluidsynth) with the
  FluidR3 GM soundfont. FluidSynth's own reverb and chorus are off: the room is simulated elsewhere.
- speech: espeak-ng with varied voices (English accents x male/female variants), speeds, pitches and
  sentences composed from a word list; usually one call per active interval, pauses between sentences.
- singing: wordless sung melodies (no lyrics) played by FluidR3's sampled voice presets "Choir Aahs"
  and "Voice Oohs", in the range of one voice type (bass to soprano), legato phrases with breaths.
  It is a sampled "aah/ooh" voice, not a singer with words.
- drum: recorded acoustic kits from Debian hydrogen-drumkits (DRUMKITS_DIR/*/drumkit.xml, samples
  chosen by velocity layer), sequenced into seeded grooves (rock, half-time, funk with ghost notes,
  four-on-the-floor, swung ride) with fills and crashes. Without that package the same grooves play
  on FluidR3's GM percussion kit. The set of installed kits is part of what the output depends on.

Determinism note: resetting one long-lived FluidSynth synth between renders (system reset, all
sounds off) does NOT give repeatable output: voices keep internal state from earlier notes, so a
render depends on what was rendered before it. The soundfont is therefore loaded once per process
(``_soundfont()``) and every render uses a fresh, light synth (cheap to create) that borrows
the loaded soundfont. With that, renders are byte-identical across processes, forked workers and
call orders (tests/unit/test_sources.py checks it). Events are placed on FluidSynth's 64-sample
blocks (1.45 ms at 44.1 kHz) and the float output is read directly (no dither).
"""

from __future__ import annotations

import ctypes
import functools
import io
import logging
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from tas_eval.errors import UserError

log = logging.getLogger(__name__)

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DRUMKITS_DIR = Path("/usr/share/hydrogen/data/drumkits")
ESPEAK = "espeak-ng"
TARGET_RMS_DBFS = -20.0
FADE_S = 0.02
_BLOCK = 64  # FluidSynth renders in blocks of 64 samples; events are placed on block boundaries.

# Each entry: words (how prompts name it), kind (how it is made), and for GM instruments the
# programs, the sounding MIDI range, the composing style and its parameters. Durations are in beats.
CATEGORIES: dict[str, dict] = {
    "cello": {
        "words": "cello", "kind": "gm", "programs": (42,), "midi_range": (36, 69), "style": "line",
        "tempo": (56, 96), "durations": ((0.5, 1, 1.5, 2, 3, 4), (3, 5, 2, 3, 1, 0.5)),
        "phrase_beats": (6, 12), "rest_beats": (0.5, 2.0), "legato": 1.03, "velocity": (60, 105),
    },
    "violin": {
        "words": "violin", "kind": "gm", "programs": (40,), "midi_range": (55, 91), "style": "line",
        "tempo": (60, 132), "durations": ((0.25, 0.5, 1, 1.5, 2, 3), (2, 4, 4, 2, 2, 1)),
        "phrase_beats": (5, 12), "rest_beats": (0.5, 2.0), "legato": 1.02, "velocity": (60, 110),
    },
    "upright_bass": {
        "words": "upright bass", "kind": "gm", "programs": (32,), "midi_range": (28, 55),
        "style": "walking_bass", "tempo": (84, 176), "velocity": (70, 115),
    },
    "guitar": {
        "words": "guitar", "kind": "gm", "programs": (24, 25), "midi_range": (40, 79),
        "style": "guitar", "tempo": (70, 130), "velocity": (60, 105),
        # A re-struck or re-fretted string stops ringing at once; FluidR3's ~1.5 s release tails
        # would pile up dozens of voices in a strum pattern (the rendering cost).
        "release_tc": -2400.0,
    },
    "piano": {
        "words": "piano", "kind": "gm", "programs": (0, 1), "midi_range": (33, 96), "style": "piano",
        "tempo": (60, 126), "velocity": (55, 105),
    },
    "harp": {
        "words": "harp", "kind": "gm", "programs": (46,), "midi_range": (36, 91), "style": "harp",
        "tempo": (60, 110), "velocity": (55, 100),
        # FluidR3's harp rings for about 8 s after note-off; a shorter release keeps the number of
        # simultaneous voices (the rendering cost) bounded and still lets strings ring ~1.5 s more.
        "release_tc": -3000.0,
    },
    "xylophone": {
        "words": "xylophone", "kind": "gm", "programs": (13,), "midi_range": (65, 96), "style": "line",
        "tempo": (90, 150), "durations": ((0.25, 0.5, 1, 2), (3, 5, 2, 1)),
        "phrase_beats": (4, 10), "rest_beats": (0.5, 2.0), "legato": 0.5, "velocity": (65, 115),
        "roll_prob": 0.35,
    },
    "flute": {
        "words": "flute", "kind": "gm", "programs": (73,), "midi_range": (60, 93), "style": "line",
        "tempo": (66, 132), "durations": ((0.25, 0.5, 1, 1.5, 2, 3), (2, 4, 3, 2, 2, 1)),
        "phrase_beats": (4, 10), "rest_beats": (0.75, 2.0), "legato": 0.95, "velocity": (60, 105),
    },
    "trumpet": {
        "words": "trumpet", "kind": "gm", "programs": (56,), "midi_range": (55, 82), "style": "line",
        "tempo": (80, 140), "durations": ((0.25, 0.5, 1, 1.5, 2, 3), (1, 4, 3, 2, 2, 1)),
        "phrase_beats": (3, 8), "rest_beats": (1.0, 2.5), "legato": 0.85, "velocity": (70, 115),
    },
    "singing": {
        "words": "singing voice", "kind": "gm", "programs": (52, 53), "midi_range": (43, 81),
        "style": "line", "tempo": (60, 112), "durations": ((0.5, 1, 1.5, 2, 3, 4), (3, 4, 2, 3, 2, 1)),
        "phrase_beats": (5, 10), "rest_beats": (0.75, 2.0), "legato": 1.0, "velocity": (65, 105),
        "voice_ranges": ((43, 64), (48, 69), (53, 74), (60, 81)),  # bass, tenor, alto, soprano
    },
    "speech": {"words": "speech", "kind": "speech"},
    "drum": {"words": "drum", "kind": "drum"},
}


def category_names() -> list[str]:
    """The category ids, in a fixed order."""
    return list(CATEGORIES)


def check_assets() -> None:
    """Fail early (UserError) if the soundfont or espeak-ng is missing, and load the soundfont.

    Called in a parent process before worker processes are forked, the loaded soundfont is shared
    with them instead of being loaded by each. Missing drum kits are not an error (GM fallback).
    """
    _soundfont()
    if shutil.which(ESPEAK) is None:
        raise UserError(f"{ESPEAK}: program not found; run install.sh")
    if not _drumkits(str(DRUMKITS_DIR)):
        log.info("%s: no acoustic hydrogen drum kit found; drums use FluidR3's GM kit", DRUMKITS_DIR)


def synthesize_source(category: str, duration_s: float, active: Sequence[Sequence[float]], seed: int,
                      sr: int = 44100) -> np.ndarray:
    """A dry mono signal of ``category``: float64, ``round(duration_s * sr)`` samples at ``sr`` Hz.

    ``active`` lists (start, end) intervals in seconds; the source sounds only inside them (each
    one starts sounding at its start), with FADE_S fades at their edges, and is exactly 0 outside.
    The RMS over the samples inside the intervals is TARGET_RMS_DBFS. Deterministic in all arguments.
    Raises UserError when the soundfont or espeak-ng is missing.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown source category {category!r}; known: {', '.join(CATEGORIES)}")
    n = int(round(duration_s * sr))
    out = np.zeros(n, dtype=np.float64)
    spans = _sample_spans(active, n, sr)
    if not spans:
        return out
    # The category is part of the seed so that two categories with one seed are unrelated.
    rng = np.random.default_rng([zlib.crc32(category.encode()), int(seed) & (2**63 - 1)])
    spec = CATEGORIES[category]
    # One performer per source (instrument, key, tempo, voice or kit); each interval gets its own rng.
    kind = spec["kind"]
    player = _GmStyle(spec, rng) if kind == "gm" else _Talker(rng) if kind == "speech" else _Drummer(rng)
    for s0, s1 in spans:
        seg = player.render(np.random.default_rng(rng.integers(2**63)), s1 - s0, sr)
        out[s0:s1] = _fade(seg[: s1 - s0], sr)
    mask = np.zeros(n, dtype=bool)
    for s0, s1 in spans:
        mask[s0:s1] = True
    level = math.sqrt(float(np.mean(out[mask] ** 2)))
    if level > 0:
        out *= 10 ** (TARGET_RMS_DBFS / 20) / level
    return out


def _sample_spans(active: Sequence[Sequence[float]], n: int, sr: int) -> list[tuple[int, int]]:
    """Intervals in seconds -> sorted, merged, clipped [start, end) sample spans."""
    spans = sorted((max(0, int(round(a * sr))), min(n, int(round(b * sr)))) for a, b in active)
    merged: list[list[int]] = []
    for s0, s1 in spans:
        if s1 <= s0:
            continue
        if merged and s0 <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s1)
        else:
            merged.append([s0, s1])
    return [(a, b) for a, b in merged]


def _fade(seg: np.ndarray, sr: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of FADE_S (at most a quarter of the segment each)."""
    seg = np.asarray(seg, dtype=np.float64).copy()
    k = max(1, min(int(FADE_S * sr), len(seg) // 4))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
    seg[:k] *= ramp
    seg[len(seg) - k:] *= ramp[::-1]
    return seg


# ----------------------------------------------------------------------------------------------
# FluidSynth


@functools.lru_cache(maxsize=None)
def _fluid_api():
    """ctypes entry points of libfluidsynth that pyfluidsynth does not wrap (own pointers, so that
    pyfluidsynth's prototypes are left untouched)."""
    import fluidsynth

    lib = fluidsynth._fl
    c_int, c_void_p = ctypes.c_int, ctypes.c_void_p

    def fn(name, restype, *argtypes):
        f = lib[name]
        f.restype, f.argtypes = restype, list(argtypes)
        return f

    api = {
        "write_float": fn("fluid_synth_write_float", c_int, c_void_p, c_int, c_void_p, c_int, c_int,
                          c_void_p, c_int, c_int),
        "add_sfont": fn("fluid_synth_add_sfont", c_int, c_void_p, c_void_p),
        "remove_sfont": fn("fluid_synth_remove_sfont", c_int, c_void_p, c_void_p),
        "get_sfont_by_id": fn("fluid_synth_get_sfont_by_id", c_void_p, c_void_p, c_int),
        "set_gen": fn("fluid_synth_set_gen", c_int, c_void_p, c_int, c_int, ctypes.c_float),
    }
    # FluidSynth warns on every fresh synth that no soundfont is loaded yet; only errors matter here.
    set_log = fn("fluid_set_log_function", c_void_p, c_int, c_void_p, c_void_p)
    for level in (2, 3, 4):  # FLUID_WARN, FLUID_INFO, FLUID_DBG
        set_log(level, None, None)
    return api


_SYNTH_OPTIONS = {"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.cpu-cores": 1}
_HOST: dict[str, tuple] = {}


def _soundfont():
    """The FluidR3 soundfont, loaded once per process: (holder synth, fluid_sfont_t pointer)."""
    key = str(SOUNDFONT)
    if key not in _HOST:
        import fluidsynth

        if not SOUNDFONT.is_file():
            raise UserError(f"{SOUNDFONT}: soundfont not found; run install.sh")
        api = _fluid_api()
        host = fluidsynth.Synth(channels=16, **_SYNTH_OPTIONS, **{"synth.lock-memory": 0})
        sfid = host.sfload(str(SOUNDFONT))
        if sfid < 0:
            raise UserError(f"{SOUNDFONT}: cannot be loaded as a SoundFont; run install.sh")
        _HOST[key] = (host, api["get_sfont_by_id"](host.synth, sfid))
    return _HOST[key]


@dataclass
class _Midi:
    """Events of one rendered segment. Times in seconds from the segment start."""

    notes: list  # (start_s, end_s, channel, key, velocity)
    controls: list  # (time_s, channel, controller, value)
    programs: dict  # channel -> (bank, program)
    release_tc: float = 0.0  # offset of the volume-envelope release, timecents (-1200 halves it)


def _render_midi(midi: _Midi, n: int, sr: int) -> np.ndarray:
    """Render MIDI events to n mono samples with a fresh synth (see the module docstring)."""
    import fluidsynth

    _, sfont = _soundfont()
    api = _fluid_api()
    synth = fluidsynth.Synth(samplerate=float(sr), channels=16, **_SYNTH_OPTIONS)
    sfid = api["add_sfont"](synth.synth, sfont)
    try:
        for chan, (bank, program) in midi.programs.items():
            synth.program_select(chan, sfid, bank, program)
            if midi.release_tc:
                api["set_gen"](synth.synth, chan, _GEN_VOLENVRELEASE, midi.release_tc)
        events = []  # (sample, order, action...) with note-offs before note-ons at one time
        for t0, t1, chan, key, vel in _untangle(midi.notes):
            events.append((_block(t0, sr), 2, "on", chan, key, vel))
            events.append((_block(t1, sr), 0, "off", chan, key, 0))
        for t, chan, ctrl, val in midi.controls:
            events.append((_block(t, sr), 1, "cc", chan, ctrl, val))
        events.sort(key=lambda e: (e[0], e[1], e[3], e[4]))
        total = -(-n // _BLOCK) * _BLOCK
        left = np.zeros(total, dtype=np.float32)
        right = np.zeros(total, dtype=np.float32)
        pos = 0
        for smp, _, action, chan, a, b in events + [(total, 9, "end", 0, 0, 0)]:
            smp = min(smp, total)
            if smp > pos:
                api["write_float"](synth.synth, smp - pos, left.ctypes.data + 4 * pos, 0, 1,
                                   right.ctypes.data + 4 * pos, 0, 1)
                pos = smp
            if action == "on":
                synth.noteon(chan, a, b)
            elif action == "off":
                synth.noteoff(chan, a)
            elif action == "cc":
                synth.cc(chan, a, b)
    finally:
        api["remove_sfont"](synth.synth, sfont)
        synth.delete()
    return (left[:n].astype(np.float64) + right[:n]) / 2


_GEN_VOLENVRELEASE = 38  # SoundFont 2.01 generator number


def _untangle(notes: list) -> list:
    """End each note no later than the next note of the same key on the same channel starts:
    a MIDI note-off releases every voice of its key, so an overlap would cut the later note."""
    notes = sorted(notes, key=lambda x: (x[2], x[3], x[0], x[1], x[4]))
    out = []
    for i, (t0, t1, chan, key, vel) in enumerate(notes):
        if i + 1 < len(notes) and notes[i + 1][2:4] == (chan, key):
            t1 = min(t1, notes[i + 1][0])
        if t1 > t0:  # a note struck again at its own onset is played once
            out.append((t0, t1, chan, key, vel))
    return out


def _block(t: float, sr: int) -> int:
    return max(0, int(round(t * sr / _BLOCK))) * _BLOCK


# ----------------------------------------------------------------------------------------------
# Composition

_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
# Chords are built on the heptatonic scale that a pentatonic one belongs to.
_HARMONY = {"major_pentatonic": "major", "minor_pentatonic": "natural_minor"}
# Progressions as 0-based scale degrees, one chord per bar.
_PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (1, 4, 0, 0), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 0, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 3, 6, 2), (0, 5, 3, 4)),
}
_STEPS = np.array([-4, -3, -2, -1, 0, 1, 2, 3, 4])
_STEP_P = np.array([0.03, 0.05, 0.14, 0.25, 0.06, 0.25, 0.14, 0.05, 0.03])


class _Key:
    """A key, a scale and a chord progression drawn from the rng."""

    def __init__(self, rng: np.random.Generator):
        self.tonic = int(rng.integers(12))
        self.scale_name = str(rng.choice(list(_SCALES)))
        self.scale = _SCALES[self.scale_name]
        harmony = _SCALES[_HARMONY.get(self.scale_name, self.scale_name)]
        self.harmony = harmony
        family = "major" if harmony[2] == 4 else "minor"
        options = _PROGRESSIONS[family]
        self.progression = options[int(rng.integers(len(options)))]

    def pitches(self, lo: int, hi: int) -> list[int]:
        """MIDI notes of the scale within [lo, hi]."""
        return [m for m in range(lo, hi + 1) if (m - self.tonic) % 12 in self.scale]

    def chord(self, bar: int) -> tuple[int, int, int]:
        """Pitch classes (root, third, fifth) of the chord of ``bar``."""
        return self.chord_of_degree(self.progression[bar % len(self.progression)])

    def chord_of_degree(self, d: int) -> tuple[int, int, int]:
        """Pitch classes (root, third, fifth) of the triad on scale degree d (0-based)."""
        return tuple((self.tonic + self.harmony[(d + k) % 7]) % 12 for k in (0, 2, 4))


def _in_range(pcs, lo: int, hi: int) -> list[int]:
    return [m for m in range(lo, hi + 1) if m % 12 in pcs]


def _nearest(pitches: list[int], target: float) -> int:
    return min(pitches, key=lambda m: (abs(m - target), m))


class _Walker:
    """A melodic random walk over a list of pitches, drawn back toward the middle of the range."""

    def __init__(self, pitches: list[int], start: int | None = None):
        self.pitches = pitches
        self.i = len(pitches) // 2 if start is None else start

    def step(self, rng: np.random.Generator, leap_scale: float = 1.0) -> int:
        n = len(self.pitches)
        p = _STEP_P.copy()
        p[[0, 1, 7, 8]] *= leap_scale
        step = int(rng.choice(_STEPS, p=p / p.sum()))
        # Above the middle, steps go down more often (and the reverse), like a singer's phrase.
        p_down = float(np.clip(0.5 + (self.i - (n - 1) / 2) / n, 0.2, 0.8))
        step = -abs(step) if rng.random() < p_down else abs(step)
        i = self.i + step
        if i < 0 or i >= n:
            i = self.i - step
        self.i = int(np.clip(i, 0, n - 1))
        return self.pitches[self.i]

    def snap(self, pcs) -> int:
        """Move to the nearest pitch whose pitch class is in pcs (a chord tone) and return it."""
        cands = [j for j, m in enumerate(self.pitches) if m % 12 in pcs]
        if cands:
            self.i = min(cands, key=lambda j: (abs(j - self.i), j))
        return self.pitches[self.i]


def _vel(rng: np.random.Generator, base: float, extra: float = 0.0) -> int:
    return int(np.clip(round(base + extra + rng.normal(0, 5)), 1, 127))


class _GmStyle:
    """A per-source performer: program, key, tempo and the idiomatic style of a GM instrument."""

    def __init__(self, spec: dict, rng: np.random.Generator):
        self.spec = spec
        self.program = int(rng.choice(spec["programs"]))
        self.key = _Key(rng)
        lo, hi = spec["tempo"]
        self.bpm = float(rng.uniform(lo, hi))
        self.beat = 60.0 / self.bpm
        self.lo, self.hi = spec["midi_range"]
        if "voice_ranges" in spec:
            self.lo, self.hi = spec["voice_ranges"][int(rng.integers(len(spec["voice_ranges"])))]
        self.variant = int(rng.integers(1 << 16))  # picks a pattern inside the style
        v_lo, v_hi = spec["velocity"]
        self.dyn = float(rng.uniform(v_lo, v_hi - 10))  # the player's overall dynamic level
        if spec["style"] == "piano":
            self.meter = 3 if self.variant % 4 == 3 else 4  # the waltz pattern
        elif spec["style"] == "guitar":
            self.meter = 4
        else:
            self.meter = 3 if rng.random() < 0.2 else 4

    def render(self, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        length_s = n / sr
        style = getattr(self, "_" + self.spec["style"])
        notes, controls = style(rng, length_s)
        notes = [(t0, t1, ch, k, v) for t0, t1, ch, k, v in notes if t0 < length_s]
        midi = _Midi(notes, controls, {0: (0, self.program)}, self.spec.get("release_tc", 0.0))
        return _render_midi(midi, n, sr)

    def _jitter(self, rng, t: float) -> float:
        return max(0.0, t + float(rng.normal(0, 0.008))) if t > 0 else 0.0

    # -- a single melodic line: bowed strings, winds, voice, xylophone -------------------------
    def _line(self, rng, length_s):
        spec = self.spec
        durs, weights = spec["durations"]
        weights = np.array(weights, dtype=float) / sum(weights)
        pitches = self.key.pitches(self.lo, self.hi)
        walker = _Walker(pitches, start=int(rng.integers(len(pitches) // 4, 3 * len(pitches) // 4 + 1)))
        home = self.key.chord_of_degree(0)
        notes, beat = [], 0.0
        total_beats = length_s / self.beat
        while beat < total_beats:
            phrase = float(rng.uniform(*spec["phrase_beats"]))
            dyn = self.dyn + float(rng.normal(0, 6))  # each phrase a little louder or softer
            start = beat
            while beat - start < phrase and beat < total_beats:
                d = float(rng.choice(durs, p=weights))
                if beat - start + d >= phrase:  # the phrase ends on a note of the tonic chord
                    key = walker.snap(home)
                else:
                    key = walker.step(rng)
                swell = 12 * math.sin(math.pi * min(1.0, (beat - start) / phrase))
                accent = 6 if abs(beat - round(beat)) < 1e-6 and round(beat) % self.meter == 0 else 0
                vel = _vel(rng, dyn, swell + accent)
                t0 = self._jitter(rng, beat * self.beat)
                if spec.get("roll_prob") and d >= 1 and rng.random() < spec["roll_prob"]:
                    # A roll: a long note is played as fast repeated strokes (mallet idiom).
                    step = float(rng.uniform(0.055, 0.08))
                    t = t0
                    while t < t0 + d * self.beat - 0.02:
                        notes.append((t, t + step, 0, key, _vel(rng, vel - 8)))
                        t += step
                else:
                    t1 = t0 + max(0.06, d * self.beat * spec["legato"])
                    notes.append((t0, t1, 0, key, vel))
                beat += d
            beat += float(rng.uniform(*spec["rest_beats"]))  # a breath or a rest
        return notes, []

    # -- upright bass: a walking line, or a two-feel in half notes -----------------------------
    def _walking_bass(self, rng, length_s):
        lo, hi = self.lo, self.hi
        pitches = self.key.pitches(lo, hi)
        two_feel = self.variant % 3 == 0
        notes, bar, prev = [], 0, None
        dyn = self.dyn + float(rng.normal(0, 4))
        while bar * self.meter * self.beat < length_s:
            chord = self.key.chord(bar)
            roots = _in_range((chord[0],), lo, hi - 7)
            root = _nearest(roots, prev if prev is not None else (lo + hi) / 2 - 4)
            next_root = _nearest(_in_range((self.key.chord(bar + 1)[0],), lo, hi - 7), root)
            if two_feel:
                fifth = _nearest(_in_range((chord[2],), lo, hi), root + 7)
                line = [(0, 2, root), (2, 2, fifth)] if self.meter == 4 else [(0, 2, root), (2, 1, fifth)]
            else:
                line = [(0, 1, root)]
                cur = root
                for b in range(1, self.meter):
                    if b == self.meter - 1:  # approach the next root from a step or a semitone away
                        cur = next_root + int(rng.choice([-1, 1, -2, 2]))
                    elif rng.random() < 0.5:
                        cur = _nearest(_in_range(chord, lo, hi), cur + rng.choice([-5, 3, 4, 7]))
                    else:
                        cur = _nearest(pitches, cur + (1 if next_root > cur else -1) * 2)
                    line.append((b, 1, int(np.clip(cur, lo, hi))))
            for b, d, key in line:
                if rng.random() < 0.04 and b > 0:
                    continue  # a dropped beat
                t0 = self._jitter(rng, (bar * self.meter + b) * self.beat)
                accent = 8 if b == 0 else (4 if b % 2 == 0 else 0)
                notes.append((t0, t0 + d * self.beat * 0.92, 0, key, _vel(rng, dyn, accent)))
                if not two_feel and rng.random() < 0.08:  # a skip note (triplet pickup)
                    t_skip = t0 + d * self.beat * 2 / 3
                    notes.append((t_skip, t_skip + self.beat / 4, 0, key, _vel(rng, dyn - 20)))
            prev = root
            bar += 1
        return notes, []

    # -- piano: left-hand chords (block, broken, waltz) and a right-hand melody with pedal -------
    def _piano(self, rng, length_s):
        pattern = ("block", "broken", "arpeggio", "waltz")[self.variant % 4]
        bar_s = self.meter * self.beat
        notes, controls = [], []
        lh_dyn = self.dyn - 10 + float(rng.normal(0, 4))
        rh_dyn = lh_dyn + float(rng.uniform(8, 20))
        n_bars = int(math.ceil(length_s / bar_s)) + 1
        for bar in range(n_bars):
            chord = self.key.chord(bar)
            t_bar = bar * bar_s
            bass = _nearest(_in_range((chord[0],), 36, 50), 43)
            upper = [_nearest(_in_range((pc,), 52, 67), 59) for pc in chord]
            upper = sorted(set(upper))
            if pattern == "block":
                for k in [bass] + upper:
                    notes.append((self._jitter(rng, t_bar), t_bar + bar_s * 0.98, 0, k, _vel(rng, lh_dyn)))
                if rng.random() < 0.5:  # a second attack on the middle of the bar
                    tm = t_bar + bar_s / 2
                    for k in upper:
                        notes.append((tm, t_bar + bar_s * 0.98, 0, k, _vel(rng, lh_dyn - 8)))
            elif pattern in ("broken", "arpeggio"):
                seq = [bass, upper[-1] if len(upper) > 2 else upper[0], upper[min(1, len(upper) - 1)],
                       upper[-1] if len(upper) > 2 else upper[0]]
                if pattern == "arpeggio":
                    seq = [bass, bass + 7, bass + 12, upper[min(1, len(upper) - 1)] + 12]
                for i in range(self.meter * 2):
                    t0 = t_bar + i * self.beat / 2
                    k = int(np.clip(seq[i % 4], 21, 108))
                    notes.append((self._jitter(rng, t0), t0 + self.beat * 0.9, 0, k,
                                  _vel(rng, lh_dyn, 6 if i == 0 else 0)))
            else:  # waltz: bass on 1, chord on 2 and 3
                notes.append((self._jitter(rng, t_bar), t_bar + self.beat * 0.95, 0, bass, _vel(rng, lh_dyn, 6)))
                for b in (1, 2):
                    for k in upper:
                        t0 = t_bar + b * self.beat
                        notes.append((t0, t0 + self.beat * 0.8, 0, k, _vel(rng, lh_dyn - 10)))
            # The pedal is changed just after each new harmony, the usual "legato pedal".
            controls.append((t_bar + 0.04, 0, 64, 127))
            controls.append((t_bar + bar_s - 0.03, 0, 64, 0))
        # Right hand: a melody over the chords, chord tones on strong beats, phrases with rests.
        pitches = self.key.pitches(60, 86)
        walker = _Walker(pitches)
        beat = float(rng.choice([0.0, self.meter]))  # the melody may enter after one bar
        total = length_s / self.beat
        while beat < total:
            phrase = float(rng.uniform(4, 10))
            start = beat
            while beat - start < phrase and beat < total:
                d = float(rng.choice([0.5, 1, 1.5, 2], p=[0.35, 0.35, 0.1, 0.2]))
                bar = int(beat // self.meter)
                strong = abs(beat - round(beat)) < 1e-6
                key = walker.snap(self.key.chord(bar)) if strong and rng.random() < 0.7 else walker.step(rng)
                t0 = self._jitter(rng, beat * self.beat)
                notes.append((t0, t0 + d * self.beat * 0.95, 0, key, _vel(rng, rh_dyn, 6 if strong else 0)))
                beat += d
            beat += float(rng.choice([1.0, 2.0, 3.0]))
        return notes, controls

    # -- guitar: strummed chords or a finger-picked arpeggio -------------------------------------
    _STRUMS = ("D.DUD.DU", "D.D.D.D.", "D..UD.DU", "D.DU.UDU", "D...D.DU", "DUDUDUDU")
    _PICKS = ((0, 3, 2, 3, 1, 3, 2, 3), (0, 2, 3, 2, 1, 2, 3, 2), (0, 1, 2, 3, 4, 3, 2, 1), (0, 3, 1, 3, 0, 3, 1, 3))

    def _voicing(self, chord) -> list[int]:
        root = _nearest(_in_range((chord[0],), 40, 52), 45)
        notes = [root]
        for m in range(root + 1, 77):
            if m % 12 in chord and m - notes[-1] >= 3:
                notes.append(m)
            if len(notes) == 6:
                break
        return notes

    def _guitar(self, rng, length_s):
        picking = self.variant % 2 == 1
        strum = self._STRUMS[(self.variant // 2) % len(self._STRUMS)]
        pick = self._PICKS[(self.variant // 2) % len(self._PICKS)]
        bar_s = 4 * self.beat
        eighth = self.beat / 2
        notes = []
        dyn = self.dyn + 5 + float(rng.normal(0, 4))
        n_bars = int(math.ceil(length_s / bar_s)) + 1
        for bar in range(n_bars):
            voicing = self._voicing(self.key.chord(bar))
            t_bar = bar * bar_s
            rest_half = bar % 4 == 3 and rng.random() < 0.35  # a phrase ending: half a bar of rest
            slots = 4 if rest_half else 8
            if picking:
                for i in range(slots):
                    k = voicing[min(pick[i], len(voicing) - 1)]
                    t0 = self._jitter(rng, t_bar + i * eighth)
                    end = t_bar + slots * eighth + 0.05  # the picked strings ring to the bar's end
                    notes.append((t0, end, 0, k, _vel(rng, dyn - 8, 10 if i == 0 else 0)))
            else:
                hits = [i for i in range(slots) if strum[i] != "."]
                for j, i in enumerate(hits):
                    t0 = self._jitter(rng, t_bar + i * eighth)
                    t_next = t_bar + (hits[j + 1] if j + 1 < len(hits) else slots) * eighth
                    down = strum[i] == "D"
                    strings = voicing if down else voicing[::-1][: max(3, len(voicing) - 2)]
                    spread = float(rng.uniform(0.008, 0.025)) if down else float(rng.uniform(0.006, 0.015))
                    base = dyn + (6 if i % 4 == 0 else 0) - (0 if down else 14)
                    for s, k in enumerate(strings):
                        ts = t0 + s * spread / len(strings)
                        notes.append((ts, t_next + 0.03, 0, k, _vel(rng, base - 2 * s)))
        return notes, []

    # -- harp: rolled arpeggios, bass and melody, an occasional glissando ----------------------
    def _harp(self, rng, length_s):
        bar_s = self.meter * self.beat
        notes = []
        dyn = self.dyn + float(rng.normal(0, 4))
        sub = int(rng.choice([2, 3, 4]))  # notes per beat in the arpeggios
        ring = float(rng.uniform(0.6, 1.2))  # seconds before the string is damped (note-off)
        n_bars = int(math.ceil(length_s / bar_s)) + 1
        walker = _Walker(self.key.pitches(67, 91))
        for bar in range(n_bars):
            chord = self.key.chord(bar)
            t_bar = bar * bar_s
            mode = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
            if mode == 0:  # arpeggio up (and down) over two octaves
                tones = _in_range(chord, 43, 84)
                start = int(rng.integers(0, max(1, len(tones) - 7)))
                run = tones[start:start + 7]
                run = run + run[-2:0:-1] if rng.random() < 0.5 else run
                for i in range(self.meter * sub):
                    t0 = self._jitter(rng, t_bar + i * self.beat / sub)
                    k = run[i % len(run)]
                    notes.append((t0, t0 + ring, 0, k, _vel(rng, dyn, 8 if i % sub == 0 else 0)))
            elif mode == 1:  # bass on the beat, melody above
                bass = _nearest(_in_range((chord[0],), 36, 52), 43)
                notes.append((self._jitter(rng, t_bar), t_bar + ring * 1.5, 0, bass, _vel(rng, dyn, 6)))
                beat = 0.0
                while beat < self.meter:
                    d = float(rng.choice([0.5, 1.0, 1.5], p=[0.5, 0.35, 0.15]))
                    key = walker.snap(chord) if beat == 0 else walker.step(rng)
                    t0 = self._jitter(rng, t_bar + beat * self.beat)
                    notes.append((t0, t0 + ring, 0, key, _vel(rng, dyn)))
                    beat += d
            else:  # a glissando through the scale, then a rolled chord
                scale = self.key.pitches(55, 91)
                up = rng.random() < 0.6
                k0 = int(rng.integers(0, max(1, len(scale) - 12)))
                run = scale[k0:k0 + 12] if up else scale[k0:k0 + 12][::-1]
                dt = float(rng.uniform(0.035, 0.055))
                for i, k in enumerate(run):
                    t0 = t_bar + i * dt
                    notes.append((t0, t0 + 0.6, 0, k, _vel(rng, dyn - 8)))
                t_roll = t_bar + len(run) * dt + 0.1
                for i, k in enumerate(_in_range(chord, 48, 79)[:6]):
                    t0 = t_roll + i * 0.03
                    notes.append((t0, t0 + ring * 1.5, 0, k, _vel(rng, dyn)))
        return notes, []


# ----------------------------------------------------------------------------------------------
# Speech (espeak-ng)

# "en" is British English; espeak-ng silently ignores a variant appended to "en-gb" (en-gb+f3).
_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
_WORDS = {
    "det": ("the", "a", "this", "that", "every", "my", "our", "your", "one"),
    "adj": ("old", "small", "bright", "quiet", "heavy", "green", "warm", "broken", "famous", "strange",
            "empty", "yellow", "gentle", "distant", "wooden", "busy", "tired", "clever", "cold", "new"),
    "noun": ("teacher", "window", "river", "garden", "train", "letter", "doctor", "market", "bridge",
             "kitchen", "painter", "village", "bottle", "street", "farmer", "piano", "student",
             "mountain", "chair", "neighbour", "camera", "office", "island", "basket", "engine"),
    "verb": ("opened", "found", "carried", "painted", "watched", "cleaned", "followed", "visited",
             "repaired", "bought", "forgot", "noticed", "moved", "described", "borrowed", "checked"),
    "prep": ("near", "behind", "under", "beside", "across", "inside", "after", "before", "around"),
    "adv": ("slowly", "quickly", "yesterday", "again", "carefully", "today", "finally", "quietly"),
    "name": ("Anna", "Peter", "Maria", "James", "Sofia", "Daniel", "Laura", "Thomas", "Emma", "Lucas"),
    "time": ("this morning", "last week", "on Sunday", "at noon", "every evening", "in the spring"),
}
_TEMPLATES = (
    "{det} {adj} {noun} {verb} {det2} {noun2} {prep} the {noun3}.",
    "{name} {verb} the {adj} {noun} {time}.",
    "Did {name} see the {noun} {prep} the {adj} {noun2}?",
    "We {verb} {det} {noun} {adv}, and then we {verb2} the {noun2}.",
    "{time}, {det} {noun} {verb} {det2} {adj} {noun2}.",
    "I think the {noun} is {adj}, but the {noun2} is {adj2}.",
    "Please bring the {adj} {noun} to the {noun2} {adv}.",
    "{name} and {name2} {verb} a {adj} {noun} {prep} the {noun2}.",
    "There are {num} {noun}s {prep} the {adj} {noun2}.",
    "Why is the {noun} so {adj} {time}?",
)
_NUMBERS = ("two", "three", "four", "five", "seven", "ten", "twelve", "twenty")


def _sentence(rng: np.random.Generator) -> str:
    pick = lambda k: str(rng.choice(_WORDS[k]))  # noqa: E731
    fields = {k: pick(k) for k in _WORDS}
    fields.update({k + "2": pick(k) for k in ("det", "noun", "verb", "adj", "name")})
    fields.update(noun3=pick("noun"), num=str(rng.choice(_NUMBERS)))
    text = str(rng.choice(_TEMPLATES)).format(**fields)
    text = re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)
    return text[0].upper() + text[1:]


def _espeak(text: str, voice: str, wpm: int, pitch: int, gap: int) -> tuple[np.ndarray, int]:
    """Run espeak-ng on SSML text; mono float samples and their sample rate (22050 Hz)."""
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise UserError(f"{ESPEAK}: program not found; run install.sh")
    cmd = [exe, "-m", "-v", voice, "-s", str(wpm), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise UserError(f"{ESPEAK}: failed for voice {voice} ({proc.stderr.decode(errors='replace').strip()}).")
    wav, sr = sf.read(io.BytesIO(proc.stdout), dtype="float64")
    return wav, int(sr)


class _Talker:
    """A per-source speaker: accent, variant (male/female), speed and pitch."""

    def __init__(self, rng: np.random.Generator):
        self.voice = f"{rng.choice(_ACCENTS)}+{rng.choice(_VARIANTS)}"
        self.wpm = int(rng.integers(130, 191))
        self.pitch = int(rng.integers(30, 71))
        self.gap = int(rng.integers(0, 3))  # extra pause between words, units of 10 ms

    def render(self, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float64)
        pos = 0
        # Speak in a few calls, each a run of sentences with pauses, until the interval is full.
        while pos < n:
            need_words = max(6, int((n - pos) / sr * self.wpm / 60 * 1.3) + 3)
            parts, words = [], 0
            while words < need_words:
                s = _sentence(rng)
                parts.append(s)
                words += len(s.split())
                parts.append(f'<break time="{int(rng.integers(250, 1100))}ms"/>')
            text = "<speak>" + " ".join(parts[:-1]) + "</speak>"
            wav, wav_sr = _espeak(text, self.voice, self.wpm, self.pitch, self.gap)
            wav = _trim(wav, 1e-3)
            if wav_sr != sr:
                g = math.gcd(wav_sr, sr)
                wav = resample_poly(wav, sr // g, wav_sr // g)
            take = min(len(wav), n - pos)
            out[pos:pos + take] = wav[:take]
            pos += take + int(float(rng.uniform(0.3, 0.9)) * sr)
        return out


def _trim(x: np.ndarray, threshold: float) -> np.ndarray:
    """Drop leading and trailing samples below threshold (espeak's edge silence)."""
    loud = np.nonzero(np.abs(x) > threshold)[0]
    return x[loud[0]: loud[-1] + 1] if len(loud) else x


# ----------------------------------------------------------------------------------------------
# Drums

# Recorded acoustic kits of hydrogen-drumkits; electronic and hand-percussion kits are left out.
ACOUSTIC_KITS = ("BJA_Pacific", "ColomboAcousticDrumkit", "ForzeeStereo", "Millo-Drums_v.1",
                 "Millo_MultiLayered2", "Millo_MultiLayered3", "The Black Pearl 1.0", "rumpf_kit_z01_h2")
_ROLE_PATTERNS = {
    "kick": (r"kick|bass ?drum",),
    "snare": (r"^(?!.*(rim|roll)).*snare",),
    "hh_closed": (r"(hi-?hat|hh|hat).*clos|clos.*(hh|hat)",),
    "hh_open": (r"^(?!.*semi).*((hi-?hat|hh|hat).*open|open.*(hh|hat))",),
    "hh_pedal": (r"(hi-?hat|hh|hat).*pedal|pedal.*(hh|hat)",),
    "tom_hi": (r"tom ?(hi|high)|(hi|high) tom|tom 1\b", r"^(?!.*floor).*\btom\b"),
    "tom_mid": (r"tom ?mid|mid(dle)? tom|tom 2\b", r"^(?!.*floor).*\btom\b"),
    "tom_low": (r"floor|tom ?low|low tom",),
    "crash": (r"^(?!.*(ride|choke|flink)).*crash", r"^(?!.*(choke|flink)).*crash"),
    "ride": (r"^(?!.*(bell|cup|crash|flink)).*ride", r"^(?!.*(bell|cup)).*ride"),
}
_GM_DRUMS = {"kick": 36, "snare": 38, "hh_closed": 42, "hh_pedal": 44, "hh_open": 46, "tom_low": 45,
             "tom_mid": 47, "tom_hi": 50, "crash": 49, "ride": 51}
# Stand-ins for roles a kit lacks, applied in this order (so every role ends up filled).
_FALLBACK_ROLE = {"hh_open": "hh_closed", "hh_pedal": "hh_closed", "ride": "hh_closed", "tom_low": "snare",
                  "tom_mid": "tom_low", "tom_hi": "tom_mid", "crash": "ride"}


@dataclass
class _Layer:
    path: Path
    lo: float
    hi: float
    gain: float


def _tag(e: ET.Element) -> str:
    return e.tag.rsplit("}", 1)[-1]


def _child_text(e: ET.Element, name: str, default: str = "") -> str:
    for c in e:
        if _tag(c) == name and c.text is not None:
            return c.text.strip()
    return default


@functools.lru_cache(maxsize=None)
def _drumkits(root: str) -> tuple:
    """Usable acoustic kits under root: tuples (name, {role: (instrument gain, [layers])})."""
    kits = []
    for name in ACOUSTIC_KITS:
        xml = Path(root) / name / "drumkit.xml"
        if not xml.is_file():
            continue
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError:
            log.warning("%s: not valid XML; kit skipped", xml)
            continue
        instruments = []
        for inst in tree.iter():
            if _tag(inst) != "instrument":
                continue
            layers = []
            for el in inst:
                if _tag(el) == "layer":
                    fn = _child_text(el, "filename")
                    layers.append(_Layer(xml.parent / fn, float(_child_text(el, "min", "0")),
                                         float(_child_text(el, "max", "1")), float(_child_text(el, "gain", "1"))))
                elif _tag(el) == "filename" and el.text:
                    layers.append(_Layer(xml.parent / el.text.strip(), 0.0, 1.0, 1.0))
            layers = [ly for ly in layers if ly.path.is_file()]
            if layers:
                gain = float(_child_text(inst, "volume", "1")) * float(_child_text(inst, "gain", "1"))
                instruments.append((_child_text(inst, "name").lower(), gain, tuple(layers)))
        roles = {}
        for role, patterns in _ROLE_PATTERNS.items():
            for pat in patterns:
                hit = next((i for i in instruments if re.search(pat, i[0])), None)
                if hit is not None:
                    roles[role] = (hit[1], hit[2])
                    break
        if all(r in roles for r in ("kick", "snare", "hh_closed")):
            for role, other in _FALLBACK_ROLE.items():
                if role not in roles and other in roles:
                    roles[role] = roles[other]
            kits.append((name, roles))
    return tuple(kits)


@functools.lru_cache(maxsize=256)
def _drum_sample(path: Path, sr: int) -> np.ndarray:
    """A drum sample as mono float64 at sr (cached per process)."""
    data, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    if file_sr != sr:
        g = math.gcd(int(file_sr), sr)
        mono = resample_poly(mono, sr // g, int(file_sr) // g)
    mono.setflags(write=False)
    return mono


class _Drummer:
    """A per-source drummer: kit (or the GM kit), groove, tempo, swing and dynamics."""

    GROOVES = ("rock", "half_time", "funk", "four_floor", "jazz")

    def __init__(self, rng: np.random.Generator):
        kits = _drumkits(str(DRUMKITS_DIR))
        self.kit = kits[int(rng.integers(len(kits)))] if kits else None
        self.groove = str(rng.choice(self.GROOVES, p=[0.35, 0.15, 0.2, 0.15, 0.15]))
        lo, hi = {"jazz": (110, 190), "half_time": (70, 100), "funk": (86, 112)}.get(self.groove, (84, 140))
        self.bpm = float(rng.uniform(lo, hi))
        self.swing = float(rng.uniform(0.6, 0.67)) if self.groove == "jazz" else float(rng.uniform(0.5, 0.56))
        self.dyn = float(rng.uniform(-12, 8))

    def pattern(self, rng: np.random.Generator, length_s: float) -> list[tuple[float, str, int]]:
        """Hits (time s, role, velocity) of a groove on a 16-step grid per 4/4 bar, with fills."""
        step_s = 60.0 / self.bpm / 4
        bar_s = 16 * step_s
        hits = []
        n_bars = int(math.ceil(length_s / bar_s))
        fill_every = int(rng.choice([2, 4, 4, 8]))

        def add(bar, step, role, vel):
            t = (bar * 16 + step) * step_s
            if step % 2 == 1:  # swing delays the off-beat sixteenth (eighth in the jazz ride)
                t += (self.swing - 0.5) * 2 * step_s
            if self.groove == "jazz" and step % 4 == 2:
                t += (self.swing - 0.5) * 4 * step_s
            t = max(0.0, t + float(rng.normal(0, 0.004))) if (bar or step) else 0.0
            hits.append((t, role, int(np.clip(round(vel + self.dyn + rng.normal(0, 6)), 1, 127))))

        for bar in range(n_bars):
            fill = (bar + 1) % fill_every == 0 and rng.random() < 0.8
            last = 8 if fill and rng.random() < 0.4 else 12 if fill else 16
            if bar == 0 and rng.random() < 0.6 or (bar > 0 and bar % fill_every == 0 and rng.random() < 0.7):
                add(bar, 0, "crash", 105)
            g = self.groove
            for s in range(last):
                if g == "jazz":
                    if s in (0, 4, 8, 12) or (s in (6, 14)):
                        add(bar, s, "ride", 80 if s % 8 == 0 else 70)
                    if s in (4, 12):
                        add(bar, s, "hh_pedal", 60)
                    if s in (0, 8) and rng.random() < 0.5:
                        add(bar, s, "kick", 55)
                    if s % 2 == 0 and rng.random() < 0.12:
                        add(bar, s, "snare", 50)
                    continue
                hat_role = "hh_open" if (g == "four_floor" and s % 4 == 2) else "hh_closed"
                hat_steps = range(0, 16, 1) if g == "funk" else range(0, 16, 2)
                if s in hat_steps and not (s == 0 and hits and hits[-1][1] == "crash"):
                    add(bar, s, hat_role, 82 if s % 4 == 0 else 62)
                if g == "rock":
                    if s in (0, 8) or (s in (6, 10, 14) and rng.random() < 0.25):
                        add(bar, s, "kick", 105)
                    if s in (4, 12):
                        add(bar, s, "snare", 108)
                elif g == "half_time":
                    if s == 0 or (s in (3, 10, 14) and rng.random() < 0.3):
                        add(bar, s, "kick", 105)
                    if s == 8:
                        add(bar, s, "snare", 112)
                elif g == "funk":
                    if s in (0, 10) or (s in (3, 6, 13) and rng.random() < 0.35):
                        add(bar, s, "kick", 102)
                    if s in (4, 12):
                        add(bar, s, "snare", 110)
                    elif s in (7, 9, 15) and rng.random() < 0.5:
                        add(bar, s, "snare", 38)  # ghost note
                else:  # four on the floor
                    if s % 4 == 0:
                        add(bar, s, "kick", 108)
                    if s in (4, 12):
                        add(bar, s, "snare", 106)
            if last < 16:  # the fill: snare and toms in sixteenths, high to low
                toms = ["snare", "tom_hi", "tom_mid", "tom_low"]
                for s in range(last, 16):
                    role = toms[min(3, (s - last) * 4 // (16 - last))] if rng.random() < 0.8 else "snare"
                    add(bar, s, role, 95 + 2 * (s - last))
                add(bar, last, "kick", 90)
        return sorted(hits)

    def render(self, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
        hits = self.pattern(rng, n / sr)
        if self.kit is None:
            notes = [(t, t + 0.2, 9, _GM_DRUMS[role], vel) for t, role, vel in hits]
            return _render_midi(_Midi(notes, [], {9: (128, 0)}), n, sr)
        _, roles = self.kit
        out = np.zeros(n, dtype=np.float64)
        hat_times = [t for t, role, _ in hits if role.startswith("hh")]
        for t, role, vel in hits:
            gain, layers = roles[role]
            v = vel / 127
            layer = next((ly for ly in layers if ly.lo <= v <= ly.hi), layers[-1])
            x = _drum_sample(layer.path, sr)
            start = int(round(t * sr))
            if start >= n:
                continue
            stop = min(n, start + len(x))
            if role == "hh_open":  # the next hi-hat stroke closes (chokes) an open hi-hat
                nxt = next((u for u in hat_times if u > t + 1e-6), None)
                if nxt is not None:
                    stop = min(stop, int(round(nxt * sr)) + int(0.01 * sr))
            seg = x[: stop - start] * (gain * layer.gain * v ** 1.5)
            if role == "hh_open" and stop - start < len(x):
                k = min(len(seg), int(0.01 * sr))
                seg = seg.copy()
                seg[len(seg) - k:] *= np.linspace(1, 0, k)
            out[start:stop] += seg
        return out
