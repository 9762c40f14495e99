"""Speed of the metric suite: the batched torch implementation against a per-clip reference-style loop.

    python3 benchmarks/metrics_speed.py [--clips 187] [--seconds 10] [--data DIR] [--threads N|auto]
                                        [--batch-size 16] [--device cpu|cuda] [--ref-clips N] [--load]
                                        [--sizes 16,64,187]

The references are ``--clips`` binaural clips: synthesized deterministically (harmonic and noise
sources with interaural delays, head shadow and reverberation, tests/unit/metrics_reference.py), or
the first clips of a built benchmark given with ``--data`` (then with their annotations, so that
direction_acc is timed too). The predictions are the references with typical model errors, in turn:
20 dB noise, a 3-sample delay, a 5-sample delay of the right ear, swapped ears, the mono mix.

Timed: ``tas_eval.metrics.compute_metrics`` (every signal and spatial metric, peak normalization on;
one warm-up clip first) and the reference-style loop (clip by clip, metric by metric, with
librosa.stft, scipy.signal.hilbert and numpy in float64, as the 2.5D-Visual-Sound / PseudoBinaural
scripts do; they read float32 audio, float64 here is what the 1e-5 agreement is measured against),
alternating batch by batch of ``--batch-size`` clips so that both see the same machine load; the
reference loop runs on the first ``--ref-clips`` clips only when that is given. Printed: both times (wall and CPU
seconds of this process), their ratio, and the largest relative difference of the values per metric.
The load average is printed too: on a shared machine both timings move with the other jobs.
``--load`` starts one busy process beside the run (a pure-Python loop, stopped at the end); torch's
threads are chosen as the command line chooses them (``--threads auto``: tas_eval.device.resolve_threads)
after it has started. ``--sizes`` times the suite alone on the first N clips for each N and prints its
cost per clip, so that a cost growing faster than the number of clips shows.
The headline is "suite / floor" (the suite's wall time over the FFT floor below) beside the reference
loop's time over the suite's.

Also printed: the FFT floor, the time of the bare FFTs that the metric definitions require (every
STFT frame of every signal, prediction and reference, at each metric's own STFT parameters, in the
precision the 1e-5 agreement needs; framing, windowing and everything after the FFT excluded), and
the largest speed ratio that floor allows against the measured reference loop.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
import metrics_reference as R  # noqa: E402

from tas_eval.device import set_threads  # noqa: E402
from tas_eval.metrics import compute_metrics  # noqa: E402
from tas_eval.metrics import signal as signal_metrics  # noqa: E402
from tas_eval.metrics.transforms import FAIRPLAY_STFT  # noqa: E402

PERTURBATIONS = (
    ("noise", lambda x, rng: x + rng.standard_normal(x.shape) * np.sqrt(np.mean(x ** 2)) * 0.1),
    ("delay", lambda x, rng: R.shift(x, 3)),
    ("right_delay", lambda x, rng: np.stack([x[0], R.shift(x[1], 5)])),
    ("swap", lambda x, rng: x[::-1].copy()),
    ("mono", lambda x, rng: np.repeat(x.mean(0, keepdims=True), 2, axis=0)),
)


def load_clips(args) -> tuple[list[np.ndarray], list[dict] | None, int]:
    """(references, annotations or None, sample rate)."""
    if args.data:
        from tas_eval.data.builtin.benchmark import Benchmark

        bench = Benchmark(args.data)
        ids = bench.all_ids()[: args.clips]
        return [bench.binaural(i) for i in ids], [bench.annotation(i) for i in ids], bench.sample_rate
    return [R.synthetic_binaural(seed, args.seconds, sr=16000, n_sources=1 + seed % 3).astype(np.float32)
            for seed in range(args.clips)], None, 16000


def required_transforms() -> list[tuple[str, int, int, torch.dtype]]:
    """(what, n_fft, hop, dtype) of every transform the suite's definitions need, once per signal.

    The FAIR-Play STFT serves stft, mag, amp_pb, pha_pb, phase_diff, ild, itd and ic; it, Richard's
    STFT and the three mrstft resolutions need float64 (phases and log-magnitudes of quiet bins,
    signal.py); the Hilbert envelope holds 1e-5 in float32.
    """
    out = [("FAIR-Play STFT", FAIRPLAY_STFT.n_fft, FAIRPLAY_STFT.hop, signal_metrics.PHASE_DTYPE),
           ("Richard STFT", signal_metrics.RICHARD_STFT.n_fft, signal_metrics.RICHARD_STFT.hop,
            signal_metrics.RICHARD_DTYPE)]
    out += [(f"mrstft {p.n_fft}/{p.hop}", p.n_fft, p.hop, signal_metrics.MRSTFT_DTYPE) for p in signal_metrics.MRSTFT_STFTS]
    return out


def fft_floor(num_clips: int, num_samples: int, repeats: int = 3,
              dtype: torch.dtype | None = None) -> tuple[float, list[str]]:
    """Wall seconds of the bare FFTs of ``required_transforms`` (plus the two FFTs of the Hilbert
    envelope) for ``num_clips`` clips of two channels, prediction and reference; one clip's
    frames are transformed per call, as the suite does on a CPU. The best of ``repeats``.
    ``dtype`` replaces every transform's precision (to show what float32 alone would allow)."""
    signals = 4  # two channels, prediction and reference
    total, lines = 0.0, []
    jobs = [(what, n_fft, 1 + num_samples // hop, dtype, "rfft") for what, n_fft, hop, dtype in required_transforms()]
    jobs.append(("Hilbert envelope", num_samples, 1, signal_metrics.ENV_DTYPE, "rfft+irfft"))
    for what, n_fft, frames, job_dtype, kind in jobs:
        job_dtype = dtype or job_dtype
        x = torch.randn(signals * frames, n_fft, dtype=job_dtype)
        torch.fft.rfft(x)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            spec = torch.fft.rfft(x)
            if kind == "rfft+irfft":
                torch.fft.irfft(spec, n=n_fft)
            best = min(best, time.perf_counter() - t)
        total += best * num_clips
        lines.append(f"  {what:18s} n_fft {n_fft:6d}  {frames:5d} frames x {signals} signals  {str(job_dtype)[6:]:8s} "
                     f"{best * num_clips:6.2f} s")
    return total, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=187)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--data", default=None, metavar="DIR", help="a built benchmark (default: synthesized clips)")
    parser.add_argument("--threads", default="auto", help="torch intra-op threads, or auto as the command line (default)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="clips timed per turn (both sides alternate turn by turn); compute_metrics batches as it defaults")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ref-clips", type=int, default=None, help="clips for the reference loop (default: all)")
    parser.add_argument("--load", action="store_true", help="run one busy process beside the benchmark")
    parser.add_argument("--sizes", default="", help="comma-separated clip counts to time the suite alone at, e.g. 16,64,187")
    args = parser.parse_args()
    spinner = None
    if args.load:
        spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3600\nwhile time.time() < end: pass"])
        time.sleep(0.5)
    try:
        run(args)
    finally:
        if spinner is not None:
            spinner.kill()


def run(args) -> None:
    """The benchmark proper (``main`` starts and stops the busy process of ``--load`` around it)."""
    set_threads(args.threads)

    t0 = time.perf_counter()
    refs, annotations, sr = load_clips(args)
    rng = np.random.default_rng(0)
    preds = [PERTURBATIONS[i % len(PERTURBATIONS)][1](r, rng).astype(np.float32) for i, r in enumerate(refs)]
    print(f"{len(refs)} clips of {refs[0].shape[1] / sr:.1f} s at {sr} Hz ({'--data' if args.data else 'synthesized'},"
          f" prepared in {time.perf_counter() - t0:.0f} s); cores {os.cpu_count()}, torch threads {torch.get_num_threads()},"
          f" batch size {args.batch_size}, device {args.device}")
    load_before = os.getloadavg()[0]

    compute_metrics(preds[:1], refs[:1], sr, annotations=annotations[:1] if annotations else None, device=args.device)
    # Both sides run batch by batch, alternately, so that a change in the machine's load hits both alike.
    n_ref = min(args.ref_clips or len(refs), len(refs))
    ours: dict[str, list[np.ndarray]] = {}
    ref_values: list[dict] = []
    ours_wall = ours_cpu = ref_wall = ref_cpu = 0.0
    for start in range(0, len(refs), args.batch_size):
        part = slice(start, start + args.batch_size)
        w, c = time.perf_counter(), time.process_time()
        values = compute_metrics(preds[part], refs[part], sr, annotations=annotations[part] if annotations else None,
                                 device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        ours_wall, ours_cpu = ours_wall + time.perf_counter() - w, ours_cpu + time.process_time() - c
        for k, v in values.items():
            ours.setdefault(k, []).append(v)
        w, c = time.perf_counter(), time.process_time()
        for i in range(start, min(start + args.batch_size, n_ref)):
            ref_values.append(R.all_metrics(R.normalize(preds[i].astype(np.float64)),
                                            R.normalize(refs[i].astype(np.float64)), sr,
                                            annotations[i] if annotations else None))
        ref_wall, ref_cpu = ref_wall + time.perf_counter() - w, ref_cpu + time.process_time() - c
    ours = {k: np.concatenate(v) for k, v in ours.items()}
    scale = len(refs) / n_ref  # the reference loop's time for all clips (exact when it ran on all of them)
    load_after = os.getloadavg()[0]

    print(f"load average before/after: {load_before:.1f}/{load_after:.1f} (a busy machine slows both timings)")
    print(f"batched suite ({len(ours)} metrics, {len(refs)} clips): {ours_wall:.1f} s wall, {ours_cpu:.1f} s CPU")
    note = "" if n_ref == len(refs) else f" (ran {n_ref} clips, scaled to {len(refs)})"
    print(f"reference-style loop: {ref_wall * scale:.1f} s wall, {ref_cpu * scale:.1f} s CPU{note}")
    print(f"speed ratio: {ref_wall * scale / ours_wall:.1f}x wall, {ref_cpu * scale / ours_cpu:.1f}x CPU")
    floor, lines = fft_floor(len(refs), refs[0].shape[1])
    print(f"HEADLINE suite / floor: {ours_wall / floor:.2f}   reference loop / suite: {ref_wall * scale / ours_wall:.2f}"
          f"   ({torch.get_num_threads()} torch threads{', one busy process beside' if args.load else ''})")
    print(f"FFT floor (bare FFTs the definitions require, {torch.get_num_threads()} torch threads): {floor:.1f} s;"
          f" largest ratio it allows: {ref_wall * scale / floor:.1f}x wall")
    print("\n".join(lines))
    floor32, _ = fft_floor(len(refs), refs[0].shape[1], dtype=torch.float32)
    print(f"the same FFTs all in float32 (which breaks the 1e-5 agreement of the phase and mrstft metrics): "
          f"{floor32:.1f} s; largest ratio: {ref_wall * scale / floor32:.1f}x wall")
    worst = 0.0
    for mid in ours:
        got = ours[mid][:n_ref]
        want = np.array([v[mid] for v in ref_values])
        both_nan = np.isnan(got) & np.isnan(want)
        rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-9)  # values that are 0 exactly compare absolutely
        rel = np.where(both_nan, 0.0, rel)
        worst = max(worst, float(np.max(rel)))
        print(f"  {mid:14s} mean {np.nanmean(got):12.6g}   largest relative difference {np.max(rel):.1e}")
    print(f"largest relative difference over all metrics and clips: {worst:.1e}")
    for size in [int(x) for x in args.sizes.split(",") if x.strip()]:
        n = min(size, len(refs))
        w = time.perf_counter()
        compute_metrics(preds[:n], refs[:n], sr, annotations=annotations[:n] if annotations else None, device=args.device)
        print(f"suite alone on {n} clips: {time.perf_counter() - w:.1f} s, {(time.perf_counter() - w) / n:.3f} s a clip")


if __name__ == "__main__":
    main()
