"""How does text_pan's direct share decide what the localizer hears?

    python3 benchmarks/text_pan_direct_share.py [--split 1] [--shares 0.2008,0.5,1.0]

text_pan mixes a panned direct part with an interaurally identical reverberant part (its
DIRECT_FRACTION, chosen on train clips for the SPL distance). This renders the test items of a split
of the small build with other direct shares (the module constant is replaced for this process only)
and prints side_acc, doa_err and stft for each, beside Mono-Mono's side_acc: whether a weak side_acc
comes from the yardstick or from how little of the output carries interaural differences.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import baselines.text_pan as text_pan
from tas_eval.audio import mono_from_binaural
from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.metrics import compute_metrics
from tas_eval.models import prompt_from_annotation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--shares", default=f"{text_pan.DIRECT_FRACTION:.4f},0.5,1.0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bench = resolve_benchmark("small", 0)
    ids = bench.split_ids(args.split, "test")
    refs = [bench.binaural(i) for i in ids]
    annotations = [bench.annotation(i) for i in ids]
    monos = [np.repeat(mono_from_binaural(r) / 2, 2, axis=0) for r in refs]
    base = compute_metrics(monos, refs, bench.sample_rate, metric_ids=["side_acc"], annotations=annotations)
    print(f"split {args.split}, {len(ids)} test items; mono_mono side_acc {np.nanmean(base['side_acc']):.3f}")
    for share in (float(s) for s in args.shares.split(",")):
        text_pan.DIRECT_FRACTION = share
        model = text_pan.TextPan()
        preds = [model.render(bench.mono(i)[0].astype(np.float64), bench.sample_rate, prompt_from_annotation(a))[0]
                 for i, a in zip(ids, annotations)]
        v = compute_metrics(preds, refs, bench.sample_rate, metric_ids=["side_acc", "doa_err", "stft"],
                            annotations=annotations)
        print(f"text_pan, direct share {share:.4f}: side_acc {np.nanmean(v['side_acc']):.3f}, "
              f"doa_err {np.nanmean(v['doa_err']):.1f} deg, stft {np.nanmean(v['stft']):.3f}")


if __name__ == "__main__":
    main()
