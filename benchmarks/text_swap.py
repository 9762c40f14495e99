"""How far apart are side-swapped prompts for each text representation?

    python3 benchmarks/text_swap.py [--encoder minilm] [--encoder /path/to/local/hf/model] [--data DIR]

A text-guided spatializer can only follow "cello on the left, piano on the right" if its text
features differ from those of "cello on the right, piano on the left". For each encoder and each
representation (pooled = mean over tokens, cls = first token / CLIP's end token, tokens = the token
states compared position by position) this prints the cosine similarity of swapped pairs, and for
scale the cosine of pairs that differ in the instruments instead (same sides). Pairs come from a
fixed list, plus the dense texts and their counterfactuals (sides swapped) of a built benchmark when
``--data`` is given. A cosine near 1 for swaps means the representation barely sees the side; the
token-level minimum shows whether some token still does.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from baselines.common.text_encoders import load_text_encoder

SWAPS = [
    ("cello on the left, piano on the right", "cello on the right, piano on the left"),
    ("the cello on the left", "the cello on the right"),
    ("the guitar on the left, the drum in the center", "the guitar on the right, the drum in the center"),
    ("the singer on the right", "the singer on the left"),
    ("the trumpet on the left, the harp on the right", "the trumpet on the right, the harp on the left"),
    ("the speaker in the center, the violin on the left", "the speaker in the center, the violin on the right"),
]
# Same sides, other instruments: how far apart the encoder puts prompts that differ in content.
OTHERS = [
    ("cello on the left, piano on the right", "guitar on the left, drum on the right"),
    ("the cello on the left", "the trumpet on the left"),
    ("the singer on the right", "the xylophone on the right"),
]


def benchmark_pairs(data: str, limit: int = 200) -> list[tuple[str, str]]:
    """Distinct (dense text, counterfactual) pairs of a built benchmark, at most ``limit``."""
    from tas_eval.data.builtin.benchmark import Benchmark

    bench = Benchmark(data)
    pairs = set()
    for item_id in bench.all_ids():
        for frame in bench.annotation(item_id)["frames"]:
            cf = frame.get("counterfactual")
            if cf and cf != frame["text"]:
                pairs.add((frame["text"], cf))
        if len(pairs) >= limit:
            break
    return sorted(pairs)[:limit]


def pair_cosines(encoder, pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Per pair: cosine of pooled, of cls, and the mean and minimum over token positions."""
    a = encoder.encode([p[0] for p in pairs])
    b = encoder.encode([p[1] for p in pairs])
    cos = torch.nn.functional.cosine_similarity
    out = {"pooled": cos(a.pooled, b.pooled, dim=-1).numpy(), "cls": cos(a.cls, b.cls, dim=-1).numpy()}
    tok_mean, tok_min = [], []
    for i in range(len(pairs)):
        n = int(min(a.mask[i].sum(), b.mask[i].sum()))
        c = cos(a.tokens[i, :n], b.tokens[i, :n], dim=-1)  # aligned positions: swaps keep the token count
        tok_mean.append(float(c.mean()))
        tok_min.append(float(c.min()))
    out["tokens (mean over positions)"] = np.array(tok_mean)
    out["tokens (min over positions)"] = np.array(tok_min)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", action="append", default=None, help="'minilm' or a local HF folder (repeatable)")
    parser.add_argument("--data", default=None, help="a built benchmark folder: add its counterfactual pairs")
    args = parser.parse_args()
    swaps = list(SWAPS) + (benchmark_pairs(args.data) if args.data else [])
    for spec in args.encoder or ["minilm"]:
        encoder = load_text_encoder(spec)
        swapped = pair_cosines(encoder, swaps)
        other = pair_cosines(encoder, OTHERS)
        print(f"encoder {spec} (dim {encoder.dim}); {len(swaps)} side-swapped pairs, {len(OTHERS)} other-instrument pairs")
        print(f"  {'representation':32s} {'swap cos mean':>14s} {'swap cos max':>13s} {'other-instr cos mean':>21s}")
        for rep in swapped:
            print(f"  {rep:32s} {swapped[rep].mean():14.4f} {swapped[rep].max():13.4f} {other[rep].mean():21.4f}")
        first = swaps[0]
        print(f"  e.g. pooled cos('{first[0]}', '{first[1]}') = {swapped['pooled'][0]:.4f}")


if __name__ == "__main__":
    main()
