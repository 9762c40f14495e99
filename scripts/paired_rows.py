"""Paired differences between results rows, per metric, with their bootstrap intervals.

    python3 scripts/paired_rows.py apnet_text audio_only [more rows ...] [--metrics side_acc follow stft env]
        [--results results/tasbench-synth-small-s0/split1]

For each row after the first, prints (first - row) per metric: the mean over the test items both
rows scored and its paired 95 % percentile bootstrap interval (tas_eval.stats.paired_bootstrap,
10,000 resamples, seed 0), read from the rows' items.jsonl. An interval that holds 0 means the two
rows cannot be told apart on these items.

The question-answering gaps (qa_doa, qa_de, qa_direction, qa_distance) are set-level, so they are paired
per question instead: both rows answer the same questions about the same references, so (first - row)
of a gap is the mean over the questions of 100 * (row right - first right) on the predictions, read from
the items' "qa" answers; its interval resamples questions (those about one clip are not independent, so
read it as a rough guide).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tas_eval.data.qa import KIND_TYPE
from tas_eval.stats import paired_bootstrap


def item_values(folder: Path) -> dict[str, dict]:
    """{item id: {metric: value}} of one results row."""
    lines = (folder / "items.jsonl").read_text().splitlines()
    return {row["item_id"]: row for row in map(json.loads, lines) if row}


def pairs_of(metric: str, first: dict, other: dict) -> list[tuple[float, float]]:
    """(first, other) pairs of ``metric``: per item both rows scored, or for a question-answering gap per
    question both answered, (100 * right, 100 * right) on the predictions with the sign of a gap."""
    if not metric.startswith("qa_"):
        return [(a[metric], other[i][metric]) for i, a in first.items()
                if i in other and a.get(metric) is not None and other[i].get(metric) is not None]
    qa_type = metric[len("qa_"):]
    pairs = []
    for i, a in first.items():
        theirs = {q["id"]: q for q in other.get(i, {}).get("qa", [])}
        for q in a.get("qa", []):
            if KIND_TYPE[q["id"].split("-")[-2]] == qa_type and q["id"] in theirs:
                # a gap is reference accuracy minus prediction accuracy: fewer right means a larger gap
                pairs.append((-100.0 * q["right_prediction"], -100.0 * theirs[q["id"]]["right_prediction"]))
    return pairs


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
            pairs = pairs_of(metric, first, other)
            if not pairs:
                print(f"{args.rows[0]} - {other_name}  {metric:10s}  no item scored by both")
                continue
            diff = np.array([a - b for a, b in pairs], dtype=float)
            mean, low, high = paired_bootstrap(diff)
            print(f"{args.rows[0]} - {other_name}  {metric:10s} {mean:+9.4f}  [{low:+.4f}, {high:+.4f}]  n={len(diff)}")


if __name__ == "__main__":
    main()
