"""The spatial renderer: HRIR conventions and lookup, image sources, the late tail, and the rendered cues."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from scipy.signal import coherence, correlate

from tas_eval.audio import resample
from tas_eval.data.builtin import room as room_acoustics
from tas_eval.data.builtin.hrir import DEFAULT_SOFA, HRIRSet
from tas_eval.data.builtin.render import (
    direct_blockwise,
    reflections_blockwise,
    render_scene,
    render_source,
    source_brir,
)
from tas_eval.errors import UserError

SR = 44100
C = 343.0
ROOM = {"size_m": [7.0, 6.0, 3.0], "listener_m": [3.0, 3.0, 1.5], "rt60_s": 0.4, "absorption": 0.3}
# critical distance sqrt(R / 16 pi) = 1.6 m: at 1.5 m the direct sound still dominates the interaural cues
DRY_ROOM = {"size_m": [8.0, 7.0, 3.5], "listener_m": [4.0, 3.5, 1.6], "rt60_s": 0.3}

pytestmark = pytest.mark.skipif(
    not __import__("os").path.isfile(DEFAULT_SOFA), reason="libmysofa1's KEMAR SOFA file is not installed"
)


@pytest.fixture(scope="module")
def hrirs() -> HRIRSet:
    return HRIRSet.load()


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(round(seconds * SR)))


def scene_of(trajectory, room=None, duration=1.0, seed=7, active=None, gain_db=0.0) -> dict:
    if isinstance(trajectory, tuple):
        trajectory = [{"t": 0.0, "azimuth": trajectory[0], "elevation": trajectory[1], "distance": trajectory[2]}]
    return {
        "item_id": "t0", "duration_s": duration, "seed": seed, "room": room,
        "sources": [{"category": "cello", "seed": 1, "gain_db": gain_db, "trajectory": trajectory,
                     "active": active if active is not None else [[0.0, duration]], "occluded": False}],
    }


def ild_db(y: np.ndarray) -> float:
    """Left over right energy in dB."""
    return 10.0 * math.log10(np.sum(y[0] ** 2) / np.sum(y[1] ** 2))


def itd_ms(y: np.ndarray, sr: int = 16000, max_ms: float = 1.0) -> float:
    """Lag of the right ear behind the left (ms; positive = the left ear leads) by cross-correlation."""
    c = correlate(y[1], y[0], mode="full", method="direct" if y.shape[1] < 2000 else "fft")
    lags = np.arange(-y.shape[1] + 1, y.shape[1])
    keep = np.abs(lags) <= max_ms * sr / 1000
    return 1000.0 * lags[keep][np.argmax(c[keep])] / sr


# ---------------------------------------------------------------- HRIRs


def test_kemar_convention_left_is_positive_azimuth(hrirs):
    assert hrirs.sr == SR and hrirs.irs.shape == (710, 2, 512)
    assert np.all(hrirs.azimuth > -180.0) and np.all(hrirs.azimuth <= 180.0)
    for az, louder in ((90.0, 0), (-90.0, 1)):
        ir = hrirs.lookup(az, 0.0)
        energy = np.sum(ir**2, axis=1)
        assert 10 * math.log10(energy[louder] / energy[1 - louder]) > 6.0
        onset = [int(np.argmax(np.abs(ir[ear]) > 0.2 * np.abs(ir[ear]).max())) for ear in range(2)]
        assert onset[louder] + 10 < onset[1 - louder]  # >= 10 samples (0.23 ms) earlier at the near ear
    front = hrirs.lookup(0.0, 0.0)
    assert abs(10 * math.log10(np.sum(front[0] ** 2) / np.sum(front[1] ** 2))) < 1.0


def test_lookup_is_the_nearest_direction_on_the_sphere(hrirs):
    rng = np.random.default_rng(1)
    az = rng.uniform(-180, 180, 300)
    el = np.degrees(np.arcsin(rng.uniform(-1, 1, 300)))
    lat1, lat2 = np.radians(el)[:, None], np.radians(hrirs.elevation)[None]
    dlon = np.radians(az)[:, None] - np.radians(hrirs.azimuth)[None]
    # great-circle angle by the haversine formula, independent of the unit-vector dot product used inside
    hav = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2) ** 2
    expected = np.argmin(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1))), axis=1)
    got = hrirs.nearest_index(az, el)
    dist = lambda i: hav[np.arange(300), i]  # noqa: E731 - ties may pick either of two equidistant points
    assert np.allclose(dist(got), dist(expected), atol=1e-12)
    for i in (0, 100, 355, 709):
        assert np.array_equal(hrirs.lookup(hrirs.azimuth[i], hrirs.elevation[i]), hrirs.irs[i])
    assert hrirs.azimuth[hrirs.nearest_index(-179.5, 0.0)] == 180.0  # wraps around behind
    assert hrirs.elevation[hrirs.nearest_index(30.0, -80.0)] == -40.0  # below the lowest measured ring


def write_sofa(path, receivers_y=(0.09, -0.09), positions=None, irs=None, drop=None):
    positions = np.array([[90.0, 0.0, 1.0], [270.0, 0.0, 1.0], [0.0, 0.0, 1.0]]) if positions is None else positions
    if irs is None:
        irs = np.zeros((len(positions), 2, 8))
        irs[:, 0, 0] = np.arange(1, len(positions) + 1)  # receiver 0 marked by a value per direction
        irs[:, 1, 1] = -np.arange(1, len(positions) + 1)
    with h5py.File(path, "w") as f:
        items = {
            "Data.IR": irs,
            "SourcePosition": positions,
            "Data.SamplingRate": np.array([SR], dtype=float),
            "ReceiverPosition": np.array([[[0.0], [receivers_y[0]], [0.0]], [[0.0], [receivers_y[1]], [0.0]]]),
        }
        for name, value in items.items():
            if name != drop:
                f.create_dataset(name, data=value)
        if drop != "SourcePosition":
            f["SourcePosition"].attrs["Type"] = np.bytes_(b"spherical")


def test_sofa_azimuth_and_receiver_order_are_converted(tmp_path):
    straight = tmp_path / "a.sofa"
    write_sofa(straight)
    h = HRIRSet.load(straight)
    assert h.azimuth.tolist() == [90.0, -90.0, 0.0]  # SOFA's [0, 360) -> (-180, 180]
    assert h.irs[0, 0, 0] == 1.0 and h.irs[0, 1, 1] == -1.0
    swapped = tmp_path / "b.sofa"
    write_sofa(swapped, receivers_y=(-0.09, 0.09))  # receiver 0 is the RIGHT ear in this file
    h = HRIRSet.load(swapped)
    assert h.irs[0, 0, 1] == -1.0 and h.irs[0, 1, 0] == 1.0


def test_missing_or_corrupt_sofa_is_a_user_error(tmp_path):
    missing = tmp_path / "nothing.sofa"
    with pytest.raises(UserError, match="nothing.sofa"):
        HRIRSet.load(missing)
    garbage = tmp_path / "garbage.sofa"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(UserError, match="garbage.sofa"):
        HRIRSet.load(garbage)
    incomplete = tmp_path / "incomplete.sofa"
    write_sofa(incomplete, drop="Data.IR")
    with pytest.raises(UserError, match="incomplete.sofa"):
        HRIRSet.load(incomplete)


# ---------------------------------------------------------------- rendered cues


@pytest.mark.parametrize("room", [None, DRY_ROOM], ids=["anechoic", "room"])
def test_lateral_sources_have_ild_and_itd_toward_their_ear(hrirs, room):
    x = noise(1.0)
    cues = {}
    for az in (90.0, -90.0, 0.0):
        y = render_scene(scene_of((az, 0.0, 1.5), room), [x], hrirs)
        y16 = resample(y, SR, 16000)
        cues[az] = (ild_db(y16), itd_ms(y16))
    assert cues[90.0][0] > 3.0 and cues[90.0][1] > 0.4
    assert cues[-90.0][0] < -3.0 and cues[-90.0][1] < -0.4
    assert abs(cues[0.0][0]) < 1.0 and abs(cues[0.0][1]) < 0.1


def test_inverse_distance_law(hrirs):
    x = noise(0.5)
    near = render_scene(scene_of((30.0, 0.0, 2.0)), [x], hrirs)
    far = render_scene(scene_of((30.0, 0.0, 4.0), duration=0.6), [np.pad(x, (0, int(0.1 * SR)))], hrirs)
    assert 10 * math.log10(np.sum(far**2) / np.sum(near**2)) == pytest.approx(-20 * math.log10(2), abs=0.05)


def test_direct_sound_matches_a_plain_convolution_with_the_propagation_delay(hrirs):
    # 3.43 m is exactly 441 samples at 343 m/s and 44.1 kHz
    x = noise(0.3)
    y = render_scene(scene_of((-40.0, 20.0, 3.43), duration=0.3), [x], hrirs)
    h = hrirs.lookup(-40.0, 20.0)
    expected = np.zeros((2, x.size))
    for ear in range(2):
        expected[ear, 441:] = np.convolve(x, h[ear])[: x.size - 441] / 3.43
    assert np.max(np.abs(y - expected)) < 1e-9 * np.max(np.abs(expected))


def test_fractional_propagation_delay(hrirs):
    x = noise(0.5, seed=3)
    r1, extra = 2.0, 37.37  # samples
    y1 = render_scene(scene_of((0.0, 0.0, r1)), [x], hrirs)
    y2 = render_scene(scene_of((0.0, 0.0, r1 + extra * C / SR)), [x], hrirs)
    spec1, spec2 = np.fft.rfft(y1[0, 2000:-2000]), np.fft.rfft(y2[0, 2000:-2000])
    f = np.fft.rfftfreq(y1.shape[1] - 4000, 1 / SR)
    band = (f > 200) & (f < 12000)
    # the delay is the slope of the cross-spectrum's phase, measured here as the spectrum-weighted mean
    phase = np.angle(spec2[band] * np.conj(spec1[band]) * np.exp(2j * np.pi * f[band] * extra / SR))
    assert np.average(np.abs(phase), weights=np.abs(spec1[band]) ** 2) < 0.05  # residual after removing the delay
    lags = correlate(y2[0], y1[0], mode="full", method="fft")
    assert np.argmax(lags) - (y1.shape[1] - 1) == round(extra)


def test_moving_source_ild_changes_sign(hrirs):
    trajectory = [{"t": 0.0, "azimuth": 90.0, "elevation": 0.0, "distance": 1.5},
                  {"t": 2.0, "azimuth": -90.0, "elevation": 0.0, "distance": 1.5}]
    x = noise(2.0)
    for room in (None, DRY_ROOM):
        y = render_scene(scene_of(trajectory, room, duration=2.0), [x], hrirs)
        head, tail = y[:, : int(0.3 * SR)], y[:, -int(0.3 * SR) :]
        assert ild_db(head) > 3.0 and ild_db(tail) < -3.0
        # smooth: no jumps between blocks louder than the signal's own sample-to-sample changes
        assert np.max(np.abs(np.diff(y, axis=1))) < 3 * np.max(np.abs(y))


def test_blockwise_direct_path_equals_the_static_one(hrirs):
    x = noise(0.4)
    for dist in (2.0, 2.71):  # a whole and a fractional delay
        static = render_scene(scene_of((25.0, 10.0, dist), duration=0.4), [x], hrirs)
        blocks = direct_blockwise(x, [{"t": 0.0, "azimuth": 25.0, "elevation": 10.0, "distance": dist}], hrirs, SR)
        assert np.max(np.abs(blocks - static)) < 1e-12 * np.max(np.abs(static)) + 1e-15


def test_blockwise_reflections_equal_the_static_ones(hrirs):
    x = noise(0.5)
    trajectory = [{"t": 0.0, "azimuth": -35.0, "elevation": 5.0, "distance": 2.4}]
    blocks = reflections_blockwise(x, trajectory, ROOM, hrirs, SR)
    brir = source_brir(ROOM, -35.0, 5.0, 2.4, hrirs, SR, None, direct=False, tail=False)
    static = np.stack([np.convolve(x, brir[0])[: len(x)], np.convolve(x, brir[1])[: len(x)]])
    assert np.max(np.abs(blocks - static)) < 1e-9 * np.max(np.abs(static))


def test_a_moving_sources_reflections_come_from_where_it_is(hrirs):
    """The room's reflections of a source moving from the left to the right follow it (they used to come
    from its mean position, the front, for the whole clip)."""
    trajectory = [{"t": 0.0, "azimuth": 80.0, "elevation": 0.0, "distance": 4.0},
                  {"t": 2.0, "azimuth": -80.0, "elevation": 0.0, "distance": 4.0}]
    y = reflections_blockwise(noise(2.0), trajectory, ROOM, hrirs, SR)
    head, tail = y[:, int(0.05 * SR) : int(0.4 * SR)], y[:, -int(0.35 * SR) :]
    assert ild_db(head) > 1.0 and ild_db(tail) < -1.0


def test_gain_and_gating(hrirs):
    x = noise(1.0)
    y = render_scene(scene_of((0.0, 0.0, 1.0), active=[[0.0, 0.5]]), [x], hrirs)
    silent_from = int((0.5 + 1.0 / C) * SR) + 512 + 32
    assert np.max(np.abs(y[:, silent_from:])) < 1e-12 * np.max(np.abs(y[:, : int(0.5 * SR)]))  # FFT round-off only
    louder = render_scene(scene_of((0.0, 0.0, 1.0), active=[[0.0, 0.5]], gain_db=6.0), [x], hrirs)
    assert np.max(np.abs(louder - y * 10 ** (6 / 20))) < 1e-12 * np.max(np.abs(louder))


def test_scene_is_sum_of_sources_and_rendering_is_deterministic(hrirs):
    scene = scene_of((40.0, 0.0, 2.0), ROOM, duration=1.0)
    scene["sources"].append(dict(scene["sources"][0], trajectory=[
        {"t": 0.0, "azimuth": -60.0, "elevation": 10.0, "distance": 3.0},
        {"t": 1.0, "azimuth": 20.0, "elevation": 0.0, "distance": 2.0}]))
    dry = [noise(1.0, 1), noise(1.0, 2)]
    y = render_scene(scene, dry, hrirs)
    parts = [render_source(scene, i, dry, hrirs) for i in range(2)]
    assert y.shape == (2, SR) and y.dtype == np.float64
    assert np.array_equal(y, parts[0] + parts[1])
    room_acoustics._late_tail_cached.cache_clear()
    assert render_scene(scene, dry, hrirs).tobytes() == y.tobytes()
    assert not np.array_equal(render_scene(dict(scene, seed=8), dry, hrirs), y)  # the seed draws the tail


# ---------------------------------------------------------------- room acoustics


def test_first_and_second_order_image_sources():
    room = {"size_m": [4.0, 6.0, 3.0], "listener_m": [2.0, 3.0, 1.5], "absorption": 0.36}
    images = room_acoustics.image_sources(room, [1.0, 0.0, 0.0], max_order=1)  # source at (3, 3, 1.5)
    beta = math.sqrt(1 - 0.36)
    # mirror images across x=0, x=4, y=0, y=6, z=0, z=3
    expected = sorted([5.0, 3.0, math.sqrt(37), math.sqrt(37), math.sqrt(10), math.sqrt(10)])
    assert [round(d, 9) for _, _, d, _ in images] == [round(d, 9) for d in expected]
    assert all(g == pytest.approx(beta) for *_, g in images)
    az, el, d, _ = images[0]  # nearest: the wall at x = 4 ahead, image at (5, 3, 1.5)
    assert (az, el, d) == pytest.approx((0.0, 0.0, 3.0))
    ceiling = [im for im in images if im[1] > 45]
    assert len(ceiling) == 1 and ceiling[0][1] == pytest.approx(math.degrees(math.atan2(3, 1)))

    second = room_acoustics.image_sources(room, [1.0, 0.0, 0.0], max_order=2)
    assert len(second) == 24 and len(room_acoustics.image_sources(room, [1.0, 0.0, 0.0], max_order=3)) == 62
    # through the walls x = 4 then x = 0: image at 3 - 8 = -5 -> 7 m behind
    behind = [im for im in second if abs(abs(im[0]) - 180) < 1e-9 and abs(im[1]) < 1e-9]
    assert sorted(round(im[2], 9) for im in behind) == [5.0, 7.0]
    assert {round(im[3], 12) for im in behind} == {round(beta, 12), round(beta**2, 12)}


def test_eyring_absorption_round_trip_and_sabine_limit():
    room = {"size_m": [10.0, 8.0, 4.0], "listener_m": [5, 4, 1.5], "rt60_s": 0.8}
    v, s = room_acoustics.room_volume_surface(room)
    assert (v, s) == (320.0, 2 * (80 + 40 + 32))
    a = room_acoustics.wall_absorption(room)
    assert room_acoustics.eyring_rt60(v, s, a) == pytest.approx(0.8)
    assert room_acoustics.eyring_rt60(v, s, 0.01) == pytest.approx(0.161 * v / (s * 0.01), rel=0.01)  # Sabine


def schroeder_rt60(ir: np.ndarray, sr: int) -> float:
    """T20 from the Schroeder backward integral: the -5 to -25 dB slope extrapolated to 60 dB."""
    edc = np.cumsum(ir[::-1] ** 2)[::-1]
    level = 10 * np.log10(edc / edc[0])
    i5, i25 = int(np.argmax(level < -5)), int(np.argmax(level < -25))
    t = np.arange(i5, i25) / sr
    slope = np.polyfit(t, level[i5:i25], 1)[0]
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.3, 0.9])
def test_late_tail_decays_with_the_requested_rt60(hrirs, rt60):
    room = dict(ROOM, rt60_s=rt60)
    tail = room_acoustics.late_tail(room, SR, 11, hrirs)
    for ear in range(2):
        assert schroeder_rt60(tail[ear], SR) == pytest.approx(rt60, rel=0.2)
    t_mix = room_acoustics.mixing_time(room)
    assert np.all(tail[:, : int(0.5 * t_mix * SR)] == 0.0)  # leaves the early part to the image sources
    # its energy lies between the full reverberant energy and the part after the mixing time
    e_hrir = np.sum(hrirs.solid_angle_weights()[:, None] * np.sum(hrirs.irs**2, axis=-1)) / 2
    full = room_acoustics.reverberant_energy_ratio(room) * e_hrir
    energy = np.sum(tail**2) / 2
    assert full * math.exp(-13.8155 * t_mix / rt60) * 0.9 < energy < full * math.exp(-13.8155 * 0.5 * t_mix / rt60)


def test_late_tail_coherence_is_the_heads_diffuse_field_coherence(hrirs):
    tail = room_acoustics.late_tail(dict(ROOM, rt60_s=4.0), SR, 5, hrirs)
    f, coh = coherence(tail[0], tail[1], fs=SR, nperseg=2048)
    # independent check: a diffuse field summed from 150 directions uniform on the measured sphere
    rng = np.random.default_rng(0)
    n = 150
    az = rng.uniform(-180, 180, n)
    el = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(-45)), 1, n)))
    irs = hrirs.irs[hrirs.nearest_index(az, el)]
    length, nfft = 2 * SR + hrirs.taps - 1, 1 << 17
    spectrum = np.zeros((2, nfft // 2 + 1), dtype=complex)
    for d in range(n):  # linear convolution of each direction's own noise with its HRIR, summed
        spectrum += np.fft.rfft(rng.standard_normal(2 * SR), n=nfft) * np.fft.rfft(irs[d], n=nfft)
    field = np.fft.irfft(spectrum, n=nfft)[:, :length]
    _, ref = coherence(field[0], field[1], fs=SR, nperseg=2048)

    def band(c, lo, hi):
        return float(np.mean(c[(f >= lo) & (f < hi)]))

    assert band(coh, 40, 150) > 0.6 and band(coh, 1000, 16000) < 0.1  # coherent low, incoherent high
    for lo, hi in ((40, 150), (150, 300), (300, 600), (600, 1500)):
        assert band(coh, lo, hi) == pytest.approx(band(ref, lo, hi), abs=0.15)


def test_nothing_arrives_before_the_direct_sound(hrirs):
    # 9 m ahead lies beyond the 7 m room's front wall: reflections and tail must still follow the direct sound
    images = room_acoustics.image_sources(ROOM, [9.0, 0.0, 0.0])
    assert min(d for _, _, d, _ in images) >= 9.0
    brir = source_brir(ROOM, 0.0, 0.0, 9.0, hrirs, SR, [0, 0])
    direct = int(9.0 / C * SR) - 16  # the fractional-delay kernel reaches 15 samples early
    assert not np.any(brir[:, :direct]) and np.any(brir[:, direct : direct + 100])
    reverb = source_brir(ROOM, 0.0, 0.0, 9.0, hrirs, SR, [0, 0], direct=False)
    assert not np.any(reverb[:, : int(min(d for _, _, d, _ in images) / C * SR) - 16])
