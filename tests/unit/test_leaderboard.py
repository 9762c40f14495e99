"""The static leaderboard (leaderboard.build): grouping, means, paired intervals, subsets, escaping, bad files,
prompts, counterfactual samples, plots, paper rows."""

from __future__ import annotations

import base64
import csv
import html.parser
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from leaderboard import build as B
from tas_eval import results as R
from tas_eval import stats
from tas_eval.cli import main
from tas_eval.io import write_bytes_atomic

SR = 16000
DS = {"id": "tb-tiny", "version": "1.0.0", "manifest_sha256": "a" * 64, "profile": "tiny"}
EVIL = "<script>alert(1)</script></script><img src=x onerror=alert(2)>"
SEED_DIR = Path("/work/shared/seeds")


def metric(value, direction="lower", version=1, unit="", **extra):
    return {"value": value, "std": 0.2, "stderr": 0.08, "n": 6, "direction": direction, "version": version,
            "unit": unit, **extra}


def add(root, folder, model, split, stft, snr, dataset=DS, stft_version=1, extra_metrics=None, extra=None):
    m = {"stft": metric(stft), "snr": metric(snr, "higher", unit="dB"), **(extra_metrics or {})}
    m["stft"]["version"] = stft_version
    res = R.new_results(model=model, dataset=dataset, split=split, config={}, checkpoint_sha256=None,
                        seeds={"inference": 0}, device="cpu", timings={"predict": 1.0}, metrics=m, extra=extra)
    R.write_results(Path(root) / dataset["id"] / f"split{split}" / folder, res, [{"item_id": "c001", "stft": stft}])


def tone(seconds=1.0, left=1.0, right=0.25):
    t = np.arange(int(seconds * SR)) / SR
    s = np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    return np.stack([left * s, right * s])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A results folder exercising every rule, and the site built from it."""
    root = tmp_path_factory.mktemp("lb") / "results"
    for split, shift in ((1, 0.0), (2, 0.02)):
        add(root, "mono_mono", "mono_mono", split, 1.155 + shift, 5.7 - shift)
        add(root, "text_pan", "text_pan", split, 0.98 + shift, 6.3 + shift)
        add(root, "evil", EVIL, split, 1.02 + shift, 6.0)
    trained = {"trained_with": {"device": "cpu", "torch_threads": 1, "torch": "2.13.0"}}
    add(root, "single", "single", 1, 0.5, 9.0, extra=trained)  # one split only: no mean row
    add(root, "newer", "newer", 1, 0.4, 9.5, stft_version=2)  # another stft version: its own table
    add(root, "rebuilt", "rebuilt", 1, 0.6, 8.0, dataset={**DS, "manifest_sha256": "b" * 64})  # another build
    fd_a = metric(12.0, version=1, backbone={"id": "tas_cnn", "sha256": "c" * 64})
    fd_b = metric(3.0, version=1, backbone={"id": "panns_cnn14", "sha256": "d" * 64})
    # FD is a backbone metric: it does not split the table, it gets one column per backbone weights.
    add(root, "gen_a", "gen_a", 1, 1.0, 6.1, extra_metrics={"fd": fd_a})
    add(root, "gen_b", "gen_b", 1, 1.1, 6.2, extra_metrics={"fd": fd_b})
    bad = root / "tb-tiny" / "split1"
    (bad / "corrupt").mkdir()
    (bad / "corrupt" / "results.json").write_text('{"schema_version": 1, "model": "cor')
    (bad / "foreign").mkdir()
    (bad / "foreign" / "results.json").write_text('{"accuracy": 0.93, "model": "resnet50"}')
    R.write_reference_samples(root, DS, 1, {"c001": tone(), "c002": tone(left=0.3, right=1.0)}, SR)
    add_prompts(root / "tb-tiny" / "split1", {"c001": {"clip": "the cello on the left " + EVIL,
                                                       "dense": [[0.0, 0.5, "the cello on the left"], [0.5, 1.0, EVIL]]}})
    R.write_samples(bad / "text_pan", {"c001": tone(left=1.0, right=0.5), "c002": tone(left=0.5, right=1.0),
                                       "c001.counterfactual": tone(left=0.5, right=1.0)}, SR)
    R.write_samples(bad / "evil", {"c001": tone(left=0.5, right=0.5)}, SR)
    out = root.parent / "site"
    paths = B.build_site(root, out)
    return root, out, paths


def add_prompts(split_dir, prompts):
    """Add "prompts" to a split's _reference/reference.json, as the harness records the items' text."""
    path = Path(split_dir) / R.REFERENCE_DIR / R.REFERENCE_FILE
    info = json.loads(path.read_text())
    info["prompts"] = prompts
    write_bytes_atomic(path, json.dumps(info).encode())


def table_of(data, folder):
    return next(t for t in data["tables"] if any(r["folder"] == folder and t["split"] == 1 for r in t["rows"]))


def test_outputs_and_per_split_tables(site):
    root, out, paths = site
    assert paths == [out / "index.html", out / "leaderboard.json", out / "leaderboard.csv"]
    data = json.loads(paths[1].read_text())
    main_t = table_of(data, "text_pan")
    # The largest group of split 1 comes first, sorted best-first by stft (sort_priority).
    assert main_t["id"] == "T1" and main_t["note"] is None
    assert [r["folder"] for r in main_t["rows"]] == ["single", "text_pan", "gen_a", "evil", "gen_b", "mono_mono"]
    assert main_t["sorted_by"] == "stft@v1"
    stft = [r["cells"]["stft@v1"]["value"] for r in main_t["rows"]]
    assert stft == sorted(stft) and stft[1] == 0.98
    assert [c["key"] for c in main_t["columns"]][:2] == ["stft@v1", "snr@v1"]
    assert {c["key"]: c["direction"] for c in main_t["columns"]}["snr@v1"] == "higher"


def test_how_a_checkpoint_was_trained_is_shown(site):
    root, out, paths = site
    rows = {r["folder"]: r for r in table_of(json.loads(paths[1].read_text()), "single")["rows"]}
    assert rows["single"]["trained_with"]["torch_threads"] == 1 and rows["text_pan"]["trained_with"] is None
    assert "trained on cpu with 1 torch thread(s), torch 2.13.0" in paths[0].read_text()


def test_versions_and_builds_are_never_ranked_together(site):
    _, _, paths = site
    data = json.loads(paths[1].read_text())
    newer, rebuilt, main_t = table_of(data, "newer"), table_of(data, "rebuilt"), table_of(data, "text_pan")
    assert len({newer["id"], rebuilt["id"], main_t["id"]}) == 3
    assert [r["folder"] for r in newer["rows"]] == ["newer"]
    assert newer["note"] == "Not ranked with table T1: 'stft' version 2 here, 1 there."
    assert rebuilt["note"] == f"Not ranked with table T1: dataset manifest sha256 {'b' * 64} here, {'a' * 64} there."
    page = paths[0].read_text()
    assert "&#39;stft&#39; version 2 here, 1 there." in page


def test_backbone_metrics_only_beside_the_same_weights(site):
    _, _, paths = site
    main_t = table_of(json.loads(paths[1].read_text()), "gen_a")
    fd_cols = [c for c in main_t["columns"] if c["metric"] == "fd"]
    assert sorted(c["label"].split(" ", 1)[1] for c in fd_cols) == ["[panns_cnn14 dddddddd]", "[tas_cnn cccccccc]"]
    assert all("weights sha256 " in c["title"] for c in fd_cols)
    for col in fd_cols:
        holders = [r["folder"] for r in main_t["rows"] if col["key"] in r["cells"]]
        assert holders == (["gen_a"] if col["backbone"]["id"] == "tas_cnn" else ["gen_b"])


def test_mean_over_splits(site):
    _, _, paths = site
    data = json.loads(paths[1].read_text())
    assert len(data["means"]) == 1
    mean = data["means"][0]
    assert mean["splits"] == [1, 2]
    rows = {r["folder"]: r for r in mean["rows"]}
    assert sorted(rows) == ["evil", "mono_mono", "text_pan"]  # single, newer... have one split
    cell = rows["mono_mono"]["cells"]["stft@v1"]
    assert cell["value"] == pytest.approx((1.155 + 1.175) / 2)
    assert cell["std"] == pytest.approx(np.std([1.155, 1.175], ddof=1))
    assert cell["n"] == 2
    assert [r["folder"] for r in mean["rows"]] == ["text_pan", "evil", "mono_mono"]


def test_corrupt_and_foreign_files_are_named_and_skipped(site):
    _, _, paths = site
    data = json.loads(paths[1].read_text())
    assert len(data["warnings"]) == 2
    corrupt, foreign = sorted(data["warnings"])
    assert corrupt.startswith("skipped: tb-tiny/split1/corrupt/results.json: is not valid JSON")
    assert foreign == ("skipped: tb-tiny/split1/foreign/results.json: is not a tas-eval results file "
                       "(no 'schema_version' field).")
    assert all(r["folder"] not in ("corrupt", "foreign") for t in data["tables"] for r in t["rows"])
    assert "tb-tiny/split1/foreign/results.json: is not a tas-eval results file" in paths[0].read_text()


class _Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.tags, self._in_script = [], [], False
        self.attrs, self.img_srcs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "img":
            self.img_srcs.append(dict(attrs).get("src") or "")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def test_every_submitted_string_is_escaped(site):
    _, _, paths = site
    page = paths[0].read_text()
    assert EVIL not in page and "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    parser = _Parser()
    parser.feed(page)
    # Exactly our two scripts, neither broken out of by the name, and no element carrying an event handler.
    assert len(parser.scripts) == 2
    assert all(not k.startswith("on") for k, _ in parser.attrs)
    assert all(src.startswith("data:image/png;base64,") for src in parser.img_srcs)  # only our plots
    data = json.loads(parser.scripts[0])
    assert EVIL in [r["model"] for t in data["tables"] for r in t["rows"]]
    assert "alert" not in parser.scripts[1]


def test_page_needs_no_network(site):
    _, out, paths = site
    parser = _Parser()
    parser.feed(paths[0].read_text())
    refs = [v for k, v in parser.attrs if k in ("src", "href") and v is not None]
    assert refs, "the page should reference its audio"
    for ref in refs:
        assert ref.startswith("data:") or not re.match(r"^[a-z]+:|^//", ref), ref
        if not ref.startswith("data:"):
            assert (out / ref).is_file(), ref


def test_samples_players_and_plots(site):
    root, out, paths = site
    data = json.loads(paths[1].read_text())
    (group,) = data["samples"]
    assert group["split"] == 1 and [i["item_id"] for i in group["items"]] == ["c001", "c002"]
    first = group["items"][0]
    assert [(t["kind"], t["label"]) for t in first["tracks"]] == [
        ("reference", "reference"), ("mono", "mono"), ("model", EVIL), ("model", "text_pan"), ("counterfactual", "text_pan")]
    for t in first["tracks"]:
        assert (out / t["src"]).read_bytes() == (root / t["file"]).read_bytes()
    assert first["tracks"][-1]["file"] == "tb-tiny/split1/text_pan/samples/c001.counterfactual.wav"
    assert [t["label"] for t in group["items"][1]["tracks"]] == ["reference", "mono", "text_pan"]
    page = paths[0].read_text()
    # Per item: the level differences (with the counterfactual) and the envelopes, one panel per model.
    pngs = re.findall(r'<img class="plot-(\w+)"[^>]* src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [kind for kind, _ in pngs] == ["level_difference", "envelope"] * 2
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for _, p in pngs)
    # Two model panels (evil, text_pan) in one row for c001; one (text_pan) for c002: widths follow the panel count.
    assert [png_size(base64.b64decode(p)) for _, p in pngs] == [panel_figure_size(2)] * 2 + [panel_figure_size(1)] * 2
    assert page.count("<audio ") == 8
    assert page.count('data-kind="counterfactual"') == 1 and 'aria-label="counterfactual of text_pan"' in page


def png_size(png):
    """(width, height) in pixels from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def panel_figure_size(n_panels):
    """The pixel size of a small-multiples figure: fixed margins plus PANEL_SIZE_IN per panel, PANEL_COLUMNS per row."""
    cols = min(B.PANEL_COLUMNS, n_panels)
    rows = -(-n_panels // cols)
    return (round(B.PLOT_DPI * (1 + cols * B.PANEL_SIZE_IN[0])), round(B.PLOT_DPI * (1 + rows * B.PANEL_SIZE_IN[1])))


def test_prompts_are_shown_escaped(site):
    _, _, paths = site
    page = paths[0].read_text()
    item = page[page.index('data-item="c001"'):page.index('data-item="c002"')]
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert f'<span class="clip-prompt">the cello on the left {escaped}</span>' in item
    assert '<li><span class="time">0.0&ndash;0.5 s</span>the cello on the left</li>' in item
    assert f'<li><span class="time">0.5&ndash;1.0 s</span>{escaped}</li>' in item
    later = page[page.index('data-item="c002"'):]
    assert 'class="prompts"' not in later  # c002 has no prompts
    data = json.loads(paths[1].read_text())
    assert data["samples"][0]["items"][0]["prompt"]["dense"][1] == [0.5, 1.0, EVIL]
    assert data["samples"][0]["items"][1]["prompt"] is None


def test_csv(site):
    _, _, paths = site
    rows = list(csv.DictReader(paths[2].open()))
    evil = [r for r in rows if r["folder"] == "evil" and r["view"] == "split" and r["split"] == "1" and r["metric"] == "stft"]
    assert len(evil) == 1 and evil[0]["model"] == EVIL and float(evil[0]["value"]) == 1.02
    mean = [r for r in rows if r["view"] == "mean" and r["folder"] == "text_pan" and r["metric"] == "snr"]
    assert len(mean) == 1 and mean[0]["split"] == "1 2" and float(mean[0]["value"]) == pytest.approx(6.31)
    fd = [r for r in rows if r["metric"] == "fd"]
    assert sorted((r["folder"], r["backbone"], r["backbone_sha256"]) for r in fd) == [
        ("gen_a", "tas_cnn", "c" * 64), ("gen_b", "panns_cnn14", "d" * 64)]
    # 2 splits x 3 models + 5 single rows, 2 metrics each, + 2 fd, + 3 means x 2 metrics
    assert len(rows) == (6 + 5) * 2 + 2 + 6


def test_ground_truth_row_is_shown_unranked(tmp_path):
    root = tmp_path / "results"
    acc = {"direction_acc": metric(0.6, "higher")}
    for split in (1, 2):
        add(root, "ground_truth", "ground_truth", split, 0.0, 40.0, extra_metrics=acc, extra={"ground_truth": True})
        add(root, "a", "a", split, 0.9, 5.0, extra_metrics={"direction_acc": metric(0.85, "higher")})
        add(root, "b", "b", split, 0.8, 6.0, extra_metrics={"direction_acc": metric(0.3, "higher")})
    # A submission that merely calls itself ground_truth is an ordinary row.
    add(root, "impostor", "ground_truth", 1, 0.95, 4.0, extra_metrics=acc)
    out = tmp_path / "site"
    B.build_site(root, out)
    data = json.loads((out / "leaderboard.json").read_text())
    t1 = next(t for t in data["tables"] if t["split"] == 1)
    assert [r["folder"] for r in t1["rows"]] == ["b", "a", "impostor"]
    assert t1["ground_truth"]["folder"] == "ground_truth"
    assert t1["ground_truth"]["cells"]["stft@v1"]["value"] == 0.0 and t1["ground_truth"]["cells"]["direction_acc@v1"]["value"] == 0.6
    (mean,) = data["means"]
    assert sorted(r["folder"] for r in mean["rows"]) == ["a", "b"]
    page = (out / "index.html").read_text()
    footer = page[page.index("<tfoot>"):page.index("</tfoot>")]
    assert "ground truth" in footer and "not ranked" in footer and ">0.600<" in footer.replace(" ", "")
    assert page.count("<tfoot>") == 2  # one per split table, none under the mean table
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    gt = {(r["split"], r["metric"]): float(r["value"]) for r in rows if r["view"] == "ground_truth"}
    assert gt == {("1", "stft"): 0.0, ("1", "snr"): 40.0, ("1", "direction_acc"): 0.6,
                  ("2", "stft"): 0.0, ("2", "snr"): 40.0, ("2", "direction_acc"): 0.6}


def test_csv_keeps_formulas_inert(tmp_path):
    add(tmp_path / "results", "f", "=HYPERLINK(\"http://x\")", 1, 1.0, 5.0)
    B.build_site(tmp_path / "results", tmp_path / "site")
    (row, _) = list(csv.DictReader((tmp_path / "site" / "leaderboard.csv").open()))
    assert row["model"] == "'=HYPERLINK(\"http://x\")"


def test_same_results_give_the_same_site(site, tmp_path):
    root, out, _ = site
    B.build_site(root, tmp_path / "again")
    for name in ("index.html", "leaderboard.json", "leaderboard.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "again" / "audio").iterdir()) == sorted(p.name for p in (out / "audio").iterdir())


def test_empty_results_and_cli(tmp_path, caplog):
    (tmp_path / "results").mkdir()
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert "No results yet" in page and "FAIR-Play, paper-reported" in page
    assert main(["leaderboard", "--results", str(tmp_path / "missing"), "--out", str(tmp_path / "site")]) == 2


def test_level_difference_known_answer():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR)
    audio = np.stack([2.0 * x, x])
    t, sd = B.level_difference(audio, SR)
    assert len(t) == 10 and t[0] == pytest.approx(0.05)
    assert np.allclose(sd, 20 * np.log10(2.0))
    # Independent: SPL per ear with p_ref, per 1600-sample frame, as SAGM eqs. 18-19 write it.
    y = np.concatenate([np.zeros(800), x[:2400]]) * 0.01
    stereo = np.stack([y, 0.5 * y + 0.001 * rng.standard_normal(len(y))])
    _, sd = B.level_difference(stereo, SR)
    for k in range(2):
        frame = stereo[:, k * 1600:(k + 1) * 1600]
        spl = [20 * np.log10(max(np.linalg.norm(c) / np.sqrt(1600), B.SPL_FLOOR_RMS) / 2e-5) for c in frame]
        assert sd[k] == pytest.approx(spl[0] - spl[1], abs=1e-9)


def test_envelope_of_a_tone_is_its_amplitude():
    t = np.arange(SR) / SR
    audio = np.stack([0.8 * np.sin(2 * np.pi * 1000 * t), 0.2 * np.sin(2 * np.pi * 440 * t)])
    times, env = B.envelope(audio, SR)
    assert env.shape == (2, 100) and times[1] - times[0] == pytest.approx(0.01)
    assert np.allclose(env[:, 5:-5], [[0.8], [0.2]], atol=2e-3)


def test_plots_survive_mathtext_and_hidden_labels():
    ref = (tone(0.5), SR)
    models = [("$\\undefined{x", (tone(0.5, 0.2, 1.0), SR), None), ("_private", (tone(0.5), SR), (tone(0.5, 0.25, 1.0), SR))]
    for png in (B.plot_level_differences(ref, models), B.plot_envelopes(ref, [(m[0], m[1]) for m in models])):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png_size(png) == panel_figure_size(2)


def test_small_multiples_keep_their_panel_size_with_15_models():
    ref = (tone(0.5), SR)
    models = [(f"model {k}", (tone(0.5, 1.0, 0.1 * k), SR), (tone(0.5, 0.1 * k, 1.0), SR)) for k in range(15)]
    assert png_size(B.plot_level_differences(ref, models)) == panel_figure_size(15) == (1104, 936)
    assert png_size(B.plot_envelopes(ref, [(m[0], m[1]) for m in models])) == panel_figure_size(15)
    # Without any model the reference still gets its panel; the same input gives the same bytes.
    assert png_size(B.plot_level_differences(ref, [])) == panel_figure_size(1)
    assert B.plot_level_differences(ref, models[:2]) == B.plot_level_differences(ref, models[:2])
    # The counterfactual is drawn: a panel with it differs from one without.
    assert B.plot_level_differences(ref, models[:1]) != B.plot_level_differences(ref, [models[0][:2] + (None,)])


class _Metric:
    def __init__(self, id, version=1, direction="lower", unit="", provenance="p", definition="d"):
        self.id, self.version, self.direction, self.unit = id, version, direction, unit
        self.provenance, self.definition = provenance, definition


def test_sync_display_schema():
    schema = {"sort_priority": ["stft"], "metrics": [
        {"id": "stft", "name": "STFT", "title": "STFT distance", "group": "signal", "shown": True,
         "version": 1, "direction": "lower", "unit": "", "provenance": "p", "definition": "old"},
        {"id": "gone", "name": "G", "title": "G", "group": "signal", "shown": False,
         "version": 1, "direction": "lower", "unit": "", "provenance": "p", "definition": "d"}]}
    new, changes = B.sync_display_schema(schema, [_Metric("stft", version=2), _Metric("snr", direction="higher", unit="dB")])
    assert changes == ["stft.version: 1 -> 2", "stft.definition: 'old' -> 'd'",
                       "removed 'gone' (not a metric of tas_eval.metrics)", "added 'snr'"]
    assert [m["id"] for m in new["metrics"]] == ["stft", "snr"]
    assert new["metrics"][0]["name"] == "STFT" and new["metrics"][0]["version"] == 2
    assert new["metrics"][1]["direction"] == "higher" and new["metrics"][1]["unit"] == "dB"
    assert B.sync_display_schema(new, [_Metric("stft", version=2), _Metric("snr", direction="higher", unit="dB")])[1] == []


def test_committed_display_schema_matches_the_metrics():
    metrics_mod = pytest.importorskip("tas_eval.metrics", reason="tas_eval.metrics is not there yet")
    if not hasattr(metrics_mod, "list_metrics"):
        pytest.skip("tas_eval.metrics has no list_metrics() yet")
    _, changes = B.sync_display_schema(B.load_display_schema(), metrics_mod.list_metrics())
    assert changes == [], "run `tas-eval leaderboard --sync-display-schema`: " + "; ".join(changes)


def test_paper_rows_are_well_formed():
    paper = B.load_paper_rows()
    assert paper["label"] == "FAIR-Play, paper-reported"
    assert [(t["seed_file"][:3], t["table"], len(t["rows"])) for t in paper["tables"]] == [
        ("000", "Table 1", 13), ("001", "Table 3", 11), ("002", "Table 1", 6)]
    ids = {m["id"] for m in B.load_display_schema()["metrics"]}
    for t in paper["tables"]:
        for c in t["columns"]:
            assert c["our_metric"] == "unknown script" or c["our_metric"] in ids, c
            assert c["direction"] in ("lower", "higher") and c["note"]
        for row in t["rows"]:
            assert len(row["labels"]) == len(t["label_columns"]) and len(row["values"]) == len(t["columns"])
            assert all(v == "-" or re.fullmatch(r"\d+\.\d{3}", v) for v in row["values"])


@pytest.mark.skipif(not SEED_DIR.is_dir(), reason=f"{SEED_DIR} (the seed papers) is not on this machine")
def test_paper_rows_match_the_seed_papers():
    for t in B.load_paper_rows()["tables"]:
        text = (SEED_DIR / t["seed_file"]).read_text()
        lines = [re.split(r"\s*\|\s*|\t", line.strip().strip("|")) for line in text.splitlines()]
        for row in t["rows"]:
            cells = row["labels"][-1:] + row["values"]
            hits = [line for line in lines if [c.strip() for c in line if c.strip()][-len(cells):] == cells]
            assert hits, f"{t['seed_file']} {t['table']}: no line reads {cells}"
        for c in t["columns"]:
            assert c["name"].split(" ")[0] in text


def test_the_site_never_shows_where_results_lie_and_names_a_folder_results_json_once(tmp_path):
    root = (tmp_path / "deep" / "results").resolve()
    add(root, "text_pan", "text_pan", 1, 0.98, 6.3)
    (root / "tb-tiny" / "split1" / "odd" / "results.json").mkdir(parents=True)  # a folder named results.json
    samples = root / "tb-tiny" / "split1" / "text_pan" / "samples"
    samples.mkdir()
    (samples / "c001.wav").write_bytes(b"RIFF not audio")  # its error message names the file
    for given in (root, Path(os.path.relpath(root))):
        paths = B.build_site(given, tmp_path / "site")
        data = json.loads(paths[1].read_text())
        for text in (paths[0].read_text(), paths[1].read_text(), paths[2].read_text()):
            assert str(tmp_path) not in text
        odd = [w for w in data["warnings"] if "odd" in w]
        assert odd == ["skipped: tb-tiny/split1/odd/results.json: is a folder, not a results file."]
        assert any(w.startswith("tb-tiny/split1/text_pan/samples/c001.wav: not a readable WAV") for w in data["warnings"])


# ----------------------------------------------------------------------------------------- paired intervals and subsets

IDS = [f"c{i:02d}" for i in range(1, 21)]
_RNG = np.random.default_rng(0)
BASE = {1: _RNG.uniform(0.5, 1.5, size=20), 2: _RNG.uniform(0.5, 1.5, size=20)}
NOISE = _RNG.normal(0.0, 0.05, size=20)
DIRECTIONS = {"stft": "lower", "snr": "higher", "direction_acc": "higher"}
FD = {"value": 5.0, "std": None, "stderr": None, "n": 20, "direction": "lower", "version": 1, "unit": "",
      "backbone": {"id": "tas_cnn", "sha256": "c" * 64}}


def subset_entry(value, n):
    return {"value": value, "std": 0.1, "stderr": 0.1 / np.sqrt(n), "n": n}


SUBSETS_ALPHA = {
    # Written out of the documented order: the page puts none, out_of_view, occluded (and 1, 2, 3-4) in order.
    "visual_case": {"occluded": {"stft": subset_entry(1.2, 5), "direction_acc": subset_entry(0.4, 5)},
                    "none": {"stft": subset_entry(0.9, 12), "direction_acc": subset_entry(0.75, 12), "snr": subset_entry(7.0, 12)},
                    "out_of_view": {"stft": subset_entry(1.1, 4)}},
    "sources": {"2": {"stft": subset_entry(1.05, 8)}, "1": {"stft": subset_entry(0.95, 10)}, "3-4": {"stft": subset_entry(1.3, 2)}},
    "motion": {"static": {"stft": subset_entry(0.97, 15)}, "moving": {"stft": subset_entry(1.08, 5)}},
}
SUBSETS_WORSE = {"visual_case": {"none": {"stft": subset_entry(1.4, 12)}}, "motion": {"moving": {"stft": subset_entry(1.6, 5)}}}
SUBSETS_GT = {"visual_case": {"none": {"stft": subset_entry(0.0, 12), "direction_acc": subset_entry(0.62, 12)}}}


def add_items(root, folder, model, split, values, subsets=None, extra=None, extra_metrics=None):
    """Results whose metric summaries are the means of the given per-item values ({metric: {item_id: value or None}})."""
    ids = sorted({i for per in values.values() for i in per})
    items = [{"item_id": i, **{mid: per.get(i) for mid, per in values.items()},
              "tags": {"visual_case": ["none"], "sources": "1", "motion": "static"}} for i in ids]
    metrics = {}
    for mid, per in values.items():
        vals = np.array([v for v in per.values() if v is not None])
        metrics[mid] = {"value": float(vals.mean()), "std": float(vals.std(ddof=1)),
                        "stderr": float(vals.std(ddof=1) / np.sqrt(len(vals))), "n": len(vals),
                        "direction": DIRECTIONS[mid], "version": 1, "unit": ""}
    res = R.new_results(model=model, dataset=DS, split=split, config={}, checkpoint_sha256=None, seeds={"inference": 0},
                        device="cpu", timings={"predict": 1.0}, metrics={**metrics, **(extra_metrics or {})},
                        extra=extra, subsets=subsets)
    R.write_results(Path(root) / DS["id"] / f"split{split}" / folder, res, items)


def per_item(stft, snr, acc, ids=IDS):
    return {"stft": dict(zip(ids, map(float, stft))), "snr": dict(zip(ids, map(float, snr))),
            "direction_acc": dict(zip(ids, map(float, acc)))}


@pytest.fixture(scope="module")
def paired_site(tmp_path_factory):
    """Known answers: beta scores exactly as alpha on every item; worse is 0.5 worse in stft and 2 dB in snr;
    partial has only 10 items (one null); broken's items.jsonl does not match its results; fd has a backbone."""
    root = tmp_path_factory.mktemp("paired") / "results"
    acc = np.linspace(0.6, 0.9, 20)
    for split in (1, 2):
        base = BASE[split]
        alpha = per_item(base, 10 - base, acc)
        add_items(root, "alpha", "alpha", split, alpha, subsets=SUBSETS_ALPHA if split == 1 else None,
                  extra_metrics={"fd": FD})
        add_items(root, "beta", "beta", split, alpha)
        add_items(root, "worse", "worse", split, per_item(base + 0.5 + NOISE, 8 - base + NOISE, acc - 0.1),
                  subsets=SUBSETS_WORSE if split == 1 else None, extra_metrics={"fd": {**FD, "value": 6.0}})
        add_items(root, "ground_truth", "ground_truth", split, per_item(0 * base, 40 + 0 * base, acc - 0.2),
                  subsets=SUBSETS_GT if split == 1 else None, extra={"ground_truth": True})
    partial = per_item(BASE[1][:10] + 1.0 + NOISE[:10], 7 - BASE[1][:10], acc[:10], ids=IDS[:10])
    partial["stft"]["c03"] = None
    add_items(root, "partial", "partial", 1, partial)
    add_items(root, "broken", "broken", 1, per_item(BASE[1] + 0.01, 10 - BASE[1], acc))
    with open(root / "tb-tiny" / "split1" / "broken" / "items.jsonl", "a") as fh:
        fh.write('{"item_id": "c99", "stft": 0.0}\n')
    R.write_reference_samples(root, DS, 1, {"c01": tone()}, SR)
    add_prompts(root / "tb-tiny" / "split1", {"c01": {"clip": 3, "dense": []}})
    out = root.parent / "site"
    paths = B.build_site(root, out)
    return root, out, paths


def rows_by_folder(table):
    return {r["folder"]: r for r in table["rows"]}


def test_identical_items_give_a_zero_interval_and_the_mark(paired_site):
    _, _, paths = paired_site
    data = json.loads(paths[1].read_text())
    rows = rows_by_folder(table_of(data, "alpha"))
    # alpha and beta tie; the tie goes to the model name, so alpha is the best and beta is compared with it.
    assert rows["alpha"]["cells"]["stft@v1"]["best"] is True and "vs_best" not in rows["alpha"]["cells"]["stft@v1"]
    assert rows["beta"]["cells"]["stft@v1"]["vs_best"] == {
        "best": "alpha", "best_model": "alpha", "mean": 0.0, "low": 0.0, "high": 0.0, "n": 20, "indistinguishable": True}
    assert "best" not in rows["beta"]["cells"]["stft@v1"]
    assert data["bootstrap"] == {"method": "percentile bootstrap over items (tas_eval.stats)", "level": 0.95,
                                 "resamples": 10000, "seed": 0, "min_items": 2}


def test_a_clearly_worse_row_excludes_zero(paired_site):
    _, _, paths = paired_site
    rows = rows_by_folder(table_of(json.loads(paths[1].read_text()), "alpha"))
    vs = rows["worse"]["cells"]["stft@v1"]["vs_best"]
    diffs = 0.5 + NOISE  # worse - alpha per item, in item-id order
    assert (vs["mean"], vs["low"], vs["high"]) == pytest.approx(stats.paired_bootstrap(diffs), abs=1e-12)
    assert vs["mean"] == pytest.approx(0.5 + NOISE.mean()) and 0.4 < vs["low"] < vs["high"] < 0.6
    assert vs["indistinguishable"] is False and vs["n"] == 20
    # snr: higher is better, so alpha is best there too and worse's difference is about -2 dB.
    snr = rows["worse"]["cells"]["snr@v1"]["vs_best"]
    assert snr["best"] == "alpha" and snr["high"] < 0 and snr["mean"] == pytest.approx(-2 + NOISE.mean())


def test_only_items_both_scored_are_paired(paired_site):
    _, _, paths = paired_site
    rows = rows_by_folder(table_of(json.loads(paths[1].read_text()), "alpha"))
    vs = rows["partial"]["cells"]["stft@v1"]["vs_best"]
    keep = [i for i in range(10) if i != 2]  # c03 is null
    assert vs["n"] == 9 and vs["mean"] == pytest.approx(np.mean(1.0 + NOISE[keep]))
    assert rows["partial"]["cells"]["snr@v1"]["vs_best"]["n"] == 10


def test_set_level_metrics_and_unreadable_items_get_no_interval(paired_site):
    _, _, paths = paired_site
    data = json.loads(paths[1].read_text())
    table = table_of(data, "alpha")
    rows = rows_by_folder(table)
    (fd,) = [c["key"] for c in table["columns"] if c["metric"] == "fd"]
    assert {k for r in ("alpha", "worse") for k in rows[r]["cells"][fd]} == {"value", "std", "stderr", "n"}
    assert all("vs_best" not in cell for cell in rows["broken"]["cells"].values())
    assert rows["broken"]["cells"]["stft@v1"]["value"] == pytest.approx(BASE[1].mean() + 0.01)
    assert all("vs_best" not in c and "best" not in c for c in table["ground_truth"]["cells"].values())
    assert ("tb-tiny/split1/broken/items.jsonl: does not match the sha256 recorded in tb-tiny/split1/broken/results.json; "
            "its rows get no bootstrap intervals.") in data["warnings"]
    assert not any("tags" in c["key"] for c in table["columns"])


def test_mean_over_splits_intervals(paired_site):
    _, _, paths = paired_site
    data = json.loads(paths[1].read_text())
    (mean,) = data["means"]
    rows = rows_by_folder(mean)
    assert sorted(rows) == ["alpha", "beta", "worse"]
    alpha = rows["alpha"]["cells"]["stft@v1"]
    m, low, high = stats.bootstrap_mean_over_splits([BASE[1], BASE[2]])
    assert alpha["interval"] == pytest.approx({"mean": m, "low": low, "high": high, "n": 40})
    assert alpha["value"] == pytest.approx(m) and low < m < high and alpha["best"] is True
    assert rows["beta"]["cells"]["stft@v1"]["vs_best"] == {
        "best": "alpha", "best_model": "alpha", "mean": 0.0, "low": 0.0, "high": 0.0, "n": 40, "indistinguishable": True}
    worse = rows["worse"]["cells"]["stft@v1"]["vs_best"]
    want = stats.bootstrap_mean_over_splits([0.5 + NOISE, 0.5 + NOISE])
    assert (worse["mean"], worse["low"], worse["high"]) == pytest.approx(want) and worse["indistinguishable"] is False
    # fd is set-level: no interval in the mean either.
    assert all("interval" not in c for r in rows.values() for k, c in r["cells"].items() if k.startswith("fd@"))


class _Cells(html.parser.HTMLParser):
    """Every table of a page by id: rows of (text, attributes) cells, thead/tbody/tfoot kept apart."""

    def __init__(self):
        super().__init__()
        self.tables, self._stack, self._part, self._cell = {}, [], None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._stack.append(attrs.get("id"))
            self.tables[attrs.get("id")] = {"thead": [], "tbody": [], "tfoot": []}
        elif tag in ("thead", "tbody", "tfoot") and self._stack:
            self._part = tag
        elif tag == "tr" and self._stack:
            self.tables[self._stack[-1]][self._part].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = ["", attrs]
            self.tables[self._stack[-1]][self._part][-1].append(self._cell)
        elif tag == "span" and self._cell is not None and "tie" in (attrs.get("class") or "").split():
            self._cell[1] = {**self._cell[1], "tie_title": attrs.get("title")}

    def handle_endtag(self, tag):
        if tag == "table":
            self._stack.pop()
        elif tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def page_tables(page):
    parser = _Cells()
    parser.feed(page)
    return parser.tables


def cell_of(table, model, column):
    """The cell of ``column`` (index among all cells) in the body row whose model cell starts with ``model``."""
    (row,) = [r for r in table["tbody"] if r[1][0].strip().split(" ")[0] == model]
    return row[column]


def test_page_marks_rows_not_distinguishable_from_the_best(paired_site):
    _, _, paths = paired_site
    tables = page_tables(paths[0].read_text())
    stft = 2  # rank, model, then stft (sort_priority first)
    beta, worse, alpha = (cell_of(tables["T1"], m, stft) for m in ("beta", "worse", "alpha"))
    assert beta[0].strip().endswith("\u2248") and "contains 0" in beta[1]["tie_title"]
    assert "[0.000, 0.000] over the 20 items both scored" in beta[1]["tie_title"] and "(alpha)" in beta[1]["tie_title"]
    assert "\u2248" not in worse[0] and "tie_title" not in worse[1] and "it excludes 0" in worse[1]["title"]
    assert "best" in alpha[1]["class"].split() and "Best in this column." in alpha[1]["title"]
    (mean_id,) = [k for k in tables if k and k.startswith("M")]
    mean_beta = cell_of(tables[mean_id], "beta", stft)
    assert "\u2248" in mean_beta[0] and "over the 40 items both scored" in mean_beta[1]["tie_title"]
    # The mean's own interval is shown under it.
    m, low, high = stats.bootstrap_mean_over_splits([BASE[1], BASE[2]])
    assert f"[{B._fmt(low)}, {B._fmt(high)}]" in cell_of(tables[mean_id], "alpha", stft)[0]


def test_subset_view_shows_the_results_numbers(paired_site):
    _, _, paths = paired_site
    data = json.loads(paths[1].read_text())
    table = table_of(data, "alpha")
    fams = {f["family"]: f for f in table["subset_families"]}
    assert [f["family"] for f in table["subset_families"]] == ["visual_case", "sources", "motion"]
    assert fams["visual_case"]["subsets"] == ["none", "out_of_view", "occluded"]
    assert fams["sources"]["subsets"] == ["1", "2", "3-4"] and fams["motion"]["subsets"] == ["static", "moving"]
    assert [m["metric"] for m in fams["visual_case"]["metrics"]] == ["stft", "direction_acc"]
    assert [m["metric"] for m in fams["sources"]["metrics"]] == ["stft"]
    rows = rows_by_folder(table)
    assert rows["alpha"]["subsets"] == SUBSETS_ALPHA and rows["beta"]["subsets"] is None
    assert table["ground_truth"]["subsets"] == SUBSETS_GT

    tables = page_tables(paths[0].read_text())
    vc = tables["T1-visual_case"]
    assert [c[0] for c in vc["thead"][1]] == ["none", "out_of_view", "occluded"] * 2
    body = {r[0][0].strip(): [c[0] for c in r[1:]] for r in vc["tbody"]}
    assert sorted(body) == ["alpha", "worse"]  # beta has no subsets
    assert body["alpha"] == ["0.900 n=12", "1.100 n=4", "1.200 n=5", "0.750 n=12", "\u2013", "0.400 n=5"]
    assert body["worse"] == ["1.400 n=12", "\u2013", "\u2013", "\u2013", "\u2013", "\u2013"]
    (gt,) = vc["tfoot"]
    assert gt[0][0].startswith("ground truth") and [c[0] for c in gt[1:]][:1] == ["0.000 n=12"]
    assert [c[0] for c in tables["T1-sources"]["tbody"][0][1:]] == ["0.950 n=10", "1.050 n=8", "1.300 n=2"]
    assert "T2-visual_case" not in tables  # split 2 has no subsets


def test_csv_has_the_intervals_and_subsets(paired_site):
    _, _, paths = paired_site
    rows = list(csv.DictReader(paths[2].open()))
    assert list(rows[0])[-9:] == ["subset", "value_ci95_low", "value_ci95_high", "is_best", "diff_vs_best",
                                  "diff_vs_best_ci95_low", "diff_vs_best_ci95_high", "diff_vs_best_n",
                                  "not_distinguishable_from_best"]
    one = {(r["view"], r["split"], r["folder"], r["metric"]): r for r in rows if not r["subset"]}
    beta = one[("split", "1", "beta", "stft")]
    assert (beta["diff_vs_best"], beta["diff_vs_best_ci95_low"], beta["diff_vs_best_ci95_high"]) == ("0.0", "0.0", "0.0")
    assert beta["diff_vs_best_n"] == "20" and beta["not_distinguishable_from_best"] == "true" and beta["is_best"] == ""
    assert one[("split", "1", "alpha", "stft")]["is_best"] == "true"
    worse = one[("split", "1", "worse", "stft")]
    assert worse["not_distinguishable_from_best"] == "false" and float(worse["diff_vs_best_ci95_low"]) > 0.4
    assert one[("split", "1", "alpha", "fd")]["is_best"] == "" and one[("split", "1", "worse", "fd")]["diff_vs_best"] == ""
    mean = one[("mean", "1 2", "alpha", "stft")]
    _, low, high = stats.bootstrap_mean_over_splits([BASE[1], BASE[2]])
    assert float(mean["value_ci95_low"]) == pytest.approx(low) and float(mean["value_ci95_high"]) == pytest.approx(high)
    subset = {(r["view"], r["folder"], r["subset"], r["metric"]): r for r in rows if r["subset"]}
    assert len(subset) == 11 + 2 + 2  # alpha's 11 subset values, worse's 2, the ground truth's 2
    occluded = subset[("subset", "alpha", "visual_case/occluded", "stft")]
    assert (float(occluded["value"]), occluded["n"], occluded["metric_version"], occluded["split"]) == (1.2, "5", "1", "1")
    assert float(subset[("ground_truth_subset", "ground_truth", "visual_case/none", "direction_acc")]["value"]) == 0.62


def test_bad_prompts_are_named_and_the_paired_site_is_deterministic(paired_site, tmp_path):
    root, out, paths = paired_site
    data = json.loads(paths[1].read_text())
    assert ("tb-tiny/split1/_reference/reference.json: the prompts of item 'c01' are not "
            '{"clip": text or null, "dense": [[start s, end s, text], ...]}; not shown.') in data["warnings"]
    B.build_site(root, tmp_path / "again")
    for name in ("index.html", "leaderboard.json", "leaderboard.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_counterfactual_samples_are_not_items(tmp_path):
    """Without reference samples the items come from the predictions; a counterfactual file is not an item of its own."""
    root = tmp_path / "results"
    add(root, "text_pan", "text_pan", 1, 0.98, 6.3)
    R.write_samples(root / "tb-tiny" / "split1" / "text_pan", {"c001": tone(), "c001.counterfactual": tone(1.0, 0.25, 1.0)}, SR)
    B.build_site(root, tmp_path / "site")
    (group,) = json.loads((tmp_path / "site" / "leaderboard.json").read_text())["samples"]
    (item,) = group["items"]
    assert item["item_id"] == "c001" and [t["kind"] for t in item["tracks"]] == ["model", "counterfactual"]


def test_question_answering_gaps_show_their_accuracies_and_chance(tmp_path):
    root = tmp_path / "results"
    qa_backbone = {"id": "tas_qa", "sha256": "b" * 64, "llm": {"id": "lm", "sha256": "c" * 64},
                   "localizer": {"id": "tas_loc", "sha256": "d" * 64}}

    def qa(gap, pred):
        return {"value": gap, "std": None, "stderr": None, "n": 22, "direction": "lower", "version": "1",
                "unit": "points", "backbone": qa_backbone,
                "details": {"accuracy_ground_truth": pred + gap, "accuracy_prediction": pred, "chance": 31.25,
                            "questions": 22}}

    # qa_de at chance on the references: withheld, said once under the table, with no column
    withheld = {"qa_de": {"why": "the assessor answers the references no better than chance on these questions",
                          "accuracy_ground_truth": 56.0, "accuracy_prediction": 52.0, "chance": 56.0, "questions": 25,
                          "p_above_chance": 0.58, "backbone": qa_backbone}}
    add(root, "a", "a", 1, 0.9, 5.0, extra_metrics={"qa_direction": qa(18.5, 45.0)},
        extra={"question_answering_withheld": withheld})
    add(root, "b", "b", 1, 0.8, 6.0, extra_metrics={"qa_direction": qa(-4.5, 68.0)},
        extra={"question_answering_withheld": withheld})
    out = tmp_path / "site"
    B.build_site(root, out)
    data = json.loads((out / "leaderboard.json").read_text())
    (t1,) = [t for t in data["tables"] if t["split"] == 1]
    key = next(c["key"] for c in t1["columns"] if c["metric"] == "qa_direction")
    cell = next(r for r in t1["rows"] if r["folder"] == "a")["cells"][key]
    assert cell["qa"] == {"accuracy_ground_truth": 63.5, "accuracy_prediction": 45.0, "chance": 31.25, "questions": 22}
    page = (out / "index.html").read_text()
    assert "45.0 of 63.5% (chance 31.2" in page and "68.0 of 63.5% (chance 31.2" in page
    assert not any(c["metric"] == "qa_de" for c in t1["columns"])
    assert t1["qa_withheld"] == [{"metric": "qa_de", "why": withheld["qa_de"]["why"], "accuracy_ground_truth": 56.0,
                                  "chance": 56.0, "questions": 25, "p_above_chance": 0.58}]
    assert page.count("qa_de is withheld: the assessor answers the references no better than chance") == 1
    assert "56.0% right on the references, chance 56.0%, 25 questions" in page
