"""The metric registry, third-party metrics through the entry-point group, `tas-eval metrics list`,
input validation of compute_metrics, and aggregation (summarize, mean_over_splits)."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tas_eval.cli import main as cli_main
from tas_eval.errors import UserError
from tas_eval.metrics import compute_metrics, get_metric, list_metrics, mean_over_splits, summarize
from tas_eval.metrics.base import Metric

BUILTIN = ["stft", "env", "wav", "snr", "mag", "phase_diff", "amp_richard", "pha_richard", "amp_pb", "pha_pb", "mrstft",
           "spl", "ild", "itd", "ic", "direction_acc"]
REPO = Path(__file__).resolve().parents[2]


def test_every_builtin_metric_is_registered_and_fully_described():
    metrics = {m.id: m for m in list_metrics()}
    assert set(BUILTIN) <= set(metrics)
    for mid in BUILTIN:
        m = metrics[mid]
        assert isinstance(m, Metric) and get_metric(mid) is m
        assert m.direction in ("lower", "higher") and m.version and m.unit and m.definition and callable(m.fn)
        assert "\n" not in m.definition
        assert m.provenance.startswith("docs/metrics.md#"), mid


def _sections(markdown: str) -> dict[str, str]:
    """GitHub's anchor of every '## ' heading of a markdown text -> the text of its section."""
    out, anchor = {}, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            anchor = re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
            out[anchor] = ""
        elif anchor is not None:
            out[anchor] += line + "\n"
    return out


def test_every_provenance_resolves_into_the_shipped_definitions():
    """`tas-eval metrics list` provenance = docs/metrics.md#<section> (<id>: source): the section exists
    and defines that metric id."""
    sections = _sections((REPO / "docs" / "metrics.md").read_text(encoding="utf-8"))
    for m in list_metrics():
        target, _, rest = m.provenance.partition(" ")
        path, _, anchor = target.partition("#")
        assert path == "docs/metrics.md" and anchor in sections, (m.id, m.provenance)
        assert rest.startswith(f"({m.id}: "), (m.id, m.provenance)
        assert f"`{m.id}`" in sections[anchor], f"docs/metrics.md#{anchor} does not define `{m.id}`"


def test_a_wrong_id_names_close_matches():
    with pytest.raises(UserError, match="Did you mean 'stft'"):
        get_metric("sftf")
    with pytest.raises(UserError, match="no metric named 'nonsense'"):
        get_metric("nonsense")


def test_a_third_party_metric_is_found_through_the_entry_point_group(tmp_path):
    """A package installed elsewhere (here: a dist-info folder on sys.path) registers a metric."""
    (tmp_path / "acme_metrics.py").write_text(textwrap.dedent('''
        import torch
        from tas_eval.metrics.base import Metric

        def _peak_error(pred, ref, sr, **ctx):
            return (pred.abs().amax(dim=(-2, -1)) - ref.abs().amax(dim=(-2, -1))).abs().double()

        PEAK = Metric("acme_peak", "1", "lower", "full scale", "acme", "| max|pred| - max|ref| |", _peak_error)
    '''))
    dist = tmp_path / "acme_metrics-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-metrics\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tas_eval.metrics]\nacme_peak = acme_metrics:PEAK\n")
    script = textwrap.dedent('''
        import json, numpy as np
        from tas_eval.metrics import get_metric, list_metrics, compute_metrics
        m = get_metric("acme_peak")
        x = np.zeros((2, 4000)); x[0, 10] = 0.5
        v = compute_metrics([x], [2 * x], 16000, metric_ids=["acme_peak", "wav"], normalize=False)
        print(json.dumps({"id": m.id, "listed": "acme_peak" in [x.id for x in list_metrics()],
                          "value": float(v["acme_peak"][0])}))
    ''')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"id": "acme_peak", "listed": True, "value": 0.5}


def test_metrics_list_prints_every_metric_with_its_provenance(capsys):
    assert cli_main(["metrics", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "direction", "unit", "version"]
    by_id = {line.split()[0]: line for line in lines[1:]}
    for m in list_metrics():
        assert m.provenance in by_id[m.id] and m.definition in by_id[m.id] and m.direction in by_id[m.id]


def test_compute_metrics_rejects_bad_input():
    x = np.zeros((2, 1600))
    with pytest.raises(UserError, match="2 predictions for 1 references"):
        compute_metrics([x, x], [x], 16000)
    with pytest.raises(UserError, match="Item 0"):
        compute_metrics([x[:, :800]], [x], 16000)
    with pytest.raises(UserError, match="Item 0"):
        compute_metrics([np.zeros((1, 1600))], [np.zeros((1, 1600))], 16000)
    bad = x.copy()
    bad[0, 3] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        compute_metrics([bad], [x], 16000)
    with pytest.raises(UserError, match="Did you mean"):
        compute_metrics([x], [x], 16000, metric_ids=["snrr"])


def test_compute_metrics_accepts_stacked_arrays_and_returns_float64_per_item():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3, 2, 4000)).astype(np.float32)
    pred = ref + 0.1 * rng.standard_normal(ref.shape).astype(np.float32)
    values = compute_metrics(pred, ref, 16000, metric_ids=["wav", "snr"])
    assert set(values) == {"wav", "snr"}
    assert values["wav"].dtype == np.float64 and values["wav"].shape == (3,)
    listed = compute_metrics(list(pred), list(ref), 16000, metric_ids=["wav", "snr"])
    np.testing.assert_array_equal(values["wav"], listed["wav"])


def test_summarize_matches_the_reference_scripts_statistics():
    values = [0.3, 1.2, 0.7, 2.5, 0.9]
    s = summarize(np.array(values))
    assert s["n"] == 5 and "n_missing" not in s
    assert s["value"] == pytest.approx(statistics.mean(values), rel=1e-15)
    assert s["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)  # ddof = 1
    assert s["stderr"] == pytest.approx(statistics.stdev(values) / np.sqrt(5), rel=1e-12)
    with_nan = summarize(np.array(values + [np.nan]))
    assert with_nan["n"] == 5 and with_nan["n_missing"] == 1 and with_nan["value"] == s["value"]
    single = summarize(np.array([4.0]))
    assert single == {"value": 4.0, "std": None, "stderr": None, "n": 1}


def test_mean_over_splits_is_the_mean_of_the_split_means():
    splits = [summarize(np.array(v)) for v in ([1.0, 2.0, 3.0], [10.0], [4.0, 6.0])]
    m = mean_over_splits(splits)
    assert m["value"] == pytest.approx((2.0 + 10.0 + 5.0) / 3)
    assert m["std"] == pytest.approx(statistics.stdev([2.0, 10.0, 5.0]))
    assert m["n_splits"] == 3
