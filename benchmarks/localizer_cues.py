"""Which interaural cue does the localizer read? Lateralization of level-only and time-only panning.

    python3 benchmarks/localizer_cues.py [--localizer FILE] [--profile small] [--seed 0] [--items 6]

Listeners hear a source on the side of the louder ear when the ears differ in level only, and on the
side of the leading ear when they differ in time only (the duplex cues, each alone, over headphones).
Generators that shape the mono signal's magnitude per ear give the level cue alone, so a localizer
that reads only the interaural phase would call their output "center" whatever it does. This takes
the mono downmix of the first test clips of split 1 of a built benchmark, gives the left ear a level
advantage (dB, no delay) or a lead (samples at 16 kHz, no level difference), and prints, over all
0.1 s frames, the median azimuth the localizer reads (degrees, + = left) and the shares of frames it
places left and right (beyond +-15 degrees).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tas_eval.audio import SAMPLE_RATE, mono_from_binaural
from tas_eval.data.builtin.benchmark import resolve_benchmark
from tas_eval.metrics.localizer import load_localizer

LEVELS_DB = (0, 3, 6, 10, 20)
LEADS_SAMPLES = (0, 2, 4, 8, 11)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--localizer", default=None, help="a localizer checkpoint (default: the packaged weights)")
    parser.add_argument("--profile", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loc = load_localizer(args.localizer)
    bench = resolve_benchmark(args.profile, args.seed)
    monos = [mono_from_binaural(bench.binaural(i))[0] / 2 for i in bench.split_ids(1, "test")[: args.items]]
    print(f"localizer sha256 {loc.weights_sha256[:16]}, {len(monos)} test clips of {bench.id}, {SAMPLE_RATE} Hz")
    print(f"{'cue':<22}{'median az (deg)':>16}{'left':>8}{'right':>8}")
    for label, values, pan in (("level, dB", LEVELS_DB, _level), ("lead, samples", LEADS_SAMPLES, _lead)):
        for v in values:
            az = np.concatenate([loc.locate(torch.from_numpy(pan(m, v))[None])["azimuth"][0].numpy() for m in monos])
            print(f"{label + ' ' + str(v):<22}{np.median(az):>16.1f}{np.mean(az > 15):>8.2f}{np.mean(az < -15):>8.2f}")


def _level(mono: np.ndarray, db: float) -> np.ndarray:
    g = 10 ** (db / 40)
    return np.stack([mono * g, mono / g]).astype(np.float32)


def _lead(mono: np.ndarray, samples: int) -> np.ndarray:
    return np.stack([mono, np.roll(mono, samples)]).astype(np.float32)


if __name__ == "__main__":
    main()
