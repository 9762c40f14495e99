"""How does text_pan's direct share decide what the localizer hears?

    python3 benchmarks/text_pan_direct_share.py [--split 1] [--part test] [--shares 0.2008,0.5,1.0]
                                                [--diffuse-rt60 0.1,0.3,0.6]

text_pan mixes a panned direct part with an interaurally identical reverberant part (its
DIRECT_FRACTION, chosen on train clips for the SPL distance). This renders the items of one part of a
split of the small build with other direct shares (the module constant is replaced for this process
only) and prints side_acc, doa_err, spl and stft for each, beside Mono-Mono's side_acc: whether a weak
side_acc comes from the yardstick or from how little of the output carries interaural differences.

``--diffuse-rt60`` also renders, for each share and each RT60 (seconds), a design text_pan does not use:
the reverberant part diffuse as in a room (the mono mixture through two independent exponentially
decaying noise tails, one per ear, at the energy of the interaurally identical part) instead of the
same signal at both ears. Judge such a design on ``--part train``, by text_pan's own criterion (spl),
never on test clips.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.signal import fftconvolve

import baselines.text_pan as text_pan
from tas_eval.audio import mono_from_binaural
from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.metrics import compute_metrics
from tas_eval.models import prompt_from_annotation


def diffuse_tails(rt60_s: float, sr: int) -> list[np.ndarray]:
    """Two independent unit-energy noise tails decaying by 60 dB over ``rt60_s`` seconds (seeds 0 and 1)."""
    t = np.arange(int(rt60_s * sr)) / sr
    tails = [np.random.default_rng(seed).standard_normal(t.size) * np.exp(-np.log(1000.0) * t / rt60_s)
             for seed in (0, 1)]
    return [x / np.sqrt(np.sum(x**2)) for x in tails]


def render(model, mono: np.ndarray, sr: int, prompt: dict, share: float, rt60_s: float | None) -> np.ndarray:
    """text_pan's output with direct share ``share``; with ``rt60_s`` its reverberant part made diffuse."""
    text_pan.DIRECT_FRACTION = share
    if rt60_s is None:
        return model.render(mono, sr, prompt)[0]
    text_pan.DIRECT_FRACTION = 1.0  # the panned direct part alone, at Mono-Mono's energy
    direct = model.render(mono, sr, prompt)[0].astype(np.float64)
    half = mono / 2
    wet = np.stack([fftconvolve(half, tail)[: len(half)] for tail in diffuse_tails(rt60_s, sr)])
    energy = np.sqrt(2 * np.sum(half**2))
    out = np.sqrt(share) * direct * (energy / np.sqrt(np.sum(direct**2)))
    out += np.sqrt(1.0 - share) * wet * (energy / np.sqrt(np.sum(wet**2)))
    out *= energy / np.sqrt(np.sum(out**2))
    return (out * min(1.0, 0.999 / np.abs(out).max())).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--part", default="test", choices=["train", "val", "test"])
    parser.add_argument("--shares", default=f"{text_pan.DIRECT_FRACTION:.4f},0.5,1.0")
    parser.add_argument("--diffuse-rt60", default="", help="comma-separated RT60s in seconds (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = resolve_benchmark("small", 0)
    ids = bench.split_ids(args.split, args.part)
    refs = [bench.binaural(i) for i in ids]
    annotations = [bench.annotation(i) for i in ids]
    monos = [np.repeat(mono_from_binaural(r) / 2, 2, axis=0) for r in refs]
    base = compute_metrics(monos, refs, bench.sample_rate, metric_ids=["side_acc"], annotations=annotations)
    print(f"split {args.split}, {len(ids)} {args.part} items; mono_mono side_acc {np.nanmean(base['side_acc']):.3f}")
    reverbs = [None] + [float(x) for x in args.diffuse_rt60.split(",") if x]
    for rt60 in reverbs:
        for share in (float(s) for s in args.shares.split(",")):
            model = text_pan.TextPan()
            preds = [render(model, bench.mono(i)[0].astype(np.float64), bench.sample_rate, prompt_from_annotation(a),
                            share, rt60) for i, a in zip(ids, annotations)]
            v = compute_metrics(preds, refs, bench.sample_rate, metric_ids=["side_acc", "doa_err", "spl", "stft"],
                                annotations=annotations)
            part = "identical at both ears" if rt60 is None else f"diffuse, RT60 {rt60:g} s"
            print(f"text_pan, direct share {share:.4f}, reverberant part {part}: side_acc {np.nanmean(v['side_acc']):.3f}, "
                  f"doa_err {np.nanmean(v['doa_err']):.1f} deg, spl {np.nanmean(v['spl']):.2f} dB, "
                  f"stft {np.nanmean(v['stft']):.3f}", flush=True)


if __name__ == "__main__":
    main()
