"""Write the test references of a split with their ears swapped, as a predictions directory.

    python3 scripts/swapped_references.py --split 1 --out DIR [--profile small] [--data-seed 0] [--data-root DIR]
    tas-eval evaluate --predictions DIR --name swapped_references --split 1 ... --results /tmp/swapped

The swapped copy is the yardstick's known wrong answer: every source on the mirror side, every other
property of the references kept. A spatial measure that does not rank it below the other rows does not
measure the side. It is not a model, so its results are best kept out of the committed results/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tas_eval.audio import write_wav
from tas_eval.data.builtin.benchmark import resolve_benchmark


def write_swapped(benchmark, split: int, out: Path) -> int:
    """Write ``<item_id>.wav`` (left and right exchanged, 16 kHz float) for every test item; returns the count."""
    out.mkdir(parents=True, exist_ok=True)
    ids = benchmark.split_ids(split, "test")
    for item_id in ids:
        write_wav(out / f"{item_id}.wav", benchmark.binaural(item_id)[::-1].copy(), 16000)
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--profile", default="small", choices=["tiny", "small", "full"])
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    benchmark = resolve_benchmark(args.profile, args.data_seed, args.data_root, build_if_missing=False)
    count = write_swapped(benchmark, args.split, args.out)
    print(f"swapped_references: {count} items of split {args.split} of {benchmark.id} -> {args.out}")


if __name__ == "__main__":
    main()
