"""Plain-text tables the command line prints."""

from __future__ import annotations


def table(rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a dashed rule under the first (header) row."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_table(all_results: list[dict]) -> str:
    """One row per metric, one column per split, plus the mean over splits when there are several."""
    from tas_eval.metrics import mean_over_splits

    if not all_results:
        return ""
    ids = list(all_results[0]["metrics"])
    several = len(all_results) > 1
    header = ["metric", "dir"] + [f"split{r['split']}" for r in all_results] + (["mean over splits"] if several else [])
    rows = [header]
    for mid in ids:
        m0 = all_results[0]["metrics"][mid]
        row = [mid, "↓" if m0["direction"] == "lower" else "↑"]
        for r in all_results:
            m = r["metrics"].get(mid)
            row.append("-" if m is None else (f"{m['value']:.4g} ± {m['stderr']:.2g}" if m.get("stderr") is not None
                                             else f"{m['value']:.4g}"))
        if several:
            means = mean_over_splits([r["metrics"][mid] for r in all_results if mid in r["metrics"]])
            row.append(f"{means['value']:.4g}")
        rows.append(row)
    return table(rows)


def describe_backbones(results: dict) -> list[str]:
    """One line per network (backbone, localizer, assessor) the metrics of a results dict were read with."""
    seen = sorted({(m["backbone"]["id"], m["backbone"]["sha256"], m.get("channel_mode"))
                   for m in results.get("metrics", {}).values() if isinstance(m, dict) and "backbone" in m},
                  key=lambda t: (t[0], t[1], t[2] or ""))
    lines = []
    for bid, sha, mode in seen:
        ids = ", ".join(k for k, m in results["metrics"].items() if m.get("backbone", {}).get("sha256") == sha)
        what = f"generative metrics ({ids}): backbone" if mode else f"{ids}: read by"
        lines.append(f"{what} {bid}, weights sha256 {sha}" + (f", channel mode {mode}" if mode else ""))
    return lines
