"""The static leaderboard (leaderboard.build): grouping, means, escaping, bad files, plots, paper rows."""

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
from tas_eval.cli import main

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
    R.write_samples(bad / "text_pan", {"c001": tone(left=1.0, right=0.5), "c002": tone(left=0.5, right=1.0)}, SR)
    R.write_samples(bad / "evil", {"c001": tone(left=0.5, right=0.5)}, SR)
    out = root.parent / "site"
    paths = B.build_site(root, out)
    return root, out, paths


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
        ("reference", "reference"), ("mono", "mono"), ("model", EVIL), ("model", "text_pan")]
    for t in first["tracks"]:
        assert (out / t["src"]).read_bytes() == (root / t["file"]).read_bytes()
    assert [t["label"] for t in group["items"][1]["tracks"]] == ["reference", "mono", "text_pan"]
    page = paths[0].read_text()
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 2 and all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert page.count("<audio ") == 7


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


def test_plot_survives_mathtext_and_hidden_labels():
    png = B.plot_item([("reference", tone(0.5), SR), ("$\\undefined{x", tone(0.5, 0.2, 1.0), SR), ("_private", tone(0.5), SR)])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


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
