"""Paired differences between results rows, per metric, with their bootstrap intervals.

    python3 scripts/paired_rows.py apnet_text audio_only [more rows ...] [--metrics side_acc follow stft env]
        [--results results/tasbench-synth-small-s0/split1]

For each row after the first, prints (first - row) per metric: the mean over the test items both
rows scored and its paired 95 % percentile bootstrap interval (tas_eval.stats.paired_bootstrap,
10,000 resamples, seed 0), read from the rows' items.jsonl. An interval that holds 0 means the two
rows cannot be told apart on these items.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tas_eval.stats import paired_bootstrap


def item_values(folder: Path) -> dict[str, dict]:
    """{item id: {metric: value}} of one results row."""
    lines = (folder / "items.jsonl").read_text().splitlines()
    return {row["item_id"]: row for row in map(json.loads, lines) if row}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+")
    parser.add_argument("--metrics", nargs="+", default=["stft", "env", "side_acc", "follow", "doa_err"])
    parser.add_argument("--results", default="results/tasbench-synth-small-s0/split1")
    args = parser.parse_args()
    root = Path(args.results)
    first = item_values(root / args.rows[0])
    for other_name in args.rows[1:]:
        other = item_values(root / other_name)
        for metric in args.metrics:
            pairs = [(a[metric], other[i][metric]) for i, a in first.items()
                     if i in other and a.get(metric) is not None and other[i].get(metric) is not None]
            if not pairs:
                print(f"{args.rows[0]} - {other_name}  {metric:10s}  no item scored by both")
                continue
            diff = np.array([a - b for a, b in pairs], dtype=float)
            mean, low, high = paired_bootstrap(diff)
            print(f"{args.rows[0]} - {other_name}  {metric:10s} {mean:+9.4f}  [{low:+.4f}, {high:+.4f}]  n={len(diff)}")


if __name__ == "__main__":
    main()
