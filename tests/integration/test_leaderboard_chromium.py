"""The generated leaderboard page in a real browser: headless Debian Chromium driven by chromedriver (selenium).

Checks that the table renders, that clicking a column header sorts it (best first, then reversed),
that an <audio> element loads its file, and that a hostile model name stays text. With 15 models:
the marks of rows not distinguishable from the best, the subset tables, the prompts, the
counterfactual players and the small-multiple plots render without a script error; a screenshot of
the listening view is saved to SCREENSHOT for a person to judge its readability.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from leaderboard.build import PANEL_COLUMNS, PANEL_SIZE_IN, PLOT_DPI, build_site
from tas_eval import results as R
from tas_eval.io import write_bytes_atomic

SR = 16000
DS = {"id": "tb-tiny", "version": "1.0.0", "manifest_sha256": "e" * 64, "profile": "tiny"}
HOSTILE = '<img src=x onerror="window.__xss=1">'
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _find(name: str, fallback: str) -> str | None:
    return shutil.which(name) or (fallback if Path(fallback).is_file() else None)


CHROMIUM = _find("chromium", "/usr/bin/chromium")
CHROMEDRIVER = _find("chromedriver", "/usr/bin/chromedriver")


def _results(root: Path) -> None:
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 330 * t)
    for folder, model, stft, snr in (("mono_mono", "mono_mono", 1.15, 5.7), ("text_pan", "text_pan", 0.95, 6.9),
                                     ("hostile", HOSTILE, 1.05, 6.2)):
        res = R.new_results(
            model=model, dataset=DS, split=1, config={}, checkpoint_sha256=None, seeds={"inference": 0},
            device="cpu", timings={"predict": 1.0},
            metrics={"stft": {"value": stft, "std": 0.1, "stderr": 0.04, "n": 6, "direction": "lower", "version": "1", "unit": ""},
                     "snr": {"value": snr, "std": 0.9, "stderr": 0.37, "n": 6, "direction": "higher", "version": "1", "unit": "dB"}})
        folder_path = R.results_dir(root, DS["id"], 1, folder)
        R.write_results(folder_path, res, [{"item_id": "c001", "stft": stft}])
        R.write_samples(folder_path, {"c001": np.stack([tone, 0.5 * tone])}, SR)
    R.write_reference_samples(root, DS, 1, {"c001": np.stack([tone, 0.3 * tone])}, SR)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium or chromedriver is not installed (Debian packages chromium and chromium-driver; "
                    "install.sh installs them): the page test needs a real browser")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def small_site(tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    _results(base / "results")
    index, _, _ = build_site(base / "results", base / "site")
    return index.resolve().as_uri()


@pytest.fixture
def page(browser, small_site):
    # Loaded for each test: the tests of the 15-model site use the same browser.
    browser.get(small_site)
    return browser


def _column(driver, table_id: str, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map(r => r.cells[arguments[1]].textContent.trim());", table_id, index)


def test_table_renders(page):
    from selenium.webdriver.common.by import By

    table = page.find_element(By.ID, "T1")
    assert table.is_displayed()
    # Sorted by STFT, lower first, when the page opens.
    assert _column(page, "T1", 1) == ["text_pan", HOSTILE + " hostile", "mono_mono"]
    header = table.find_element(By.CSS_SELECTOR, 'th[data-col="stft@v1"]')
    assert header.get_attribute("aria-sort") == "ascending"
    assert "\u2193" in header.text and "Lower is better" in header.get_attribute("title")


def test_clicking_a_header_sorts(page):
    from selenium.webdriver.common.by import By

    snr = page.find_element(By.CSS_SELECTOR, '#T1 th[data-col="snr@v1"]')
    assert "\u2191" in snr.text
    snr.click()  # higher is better: best (highest) first
    assert snr.get_attribute("aria-sort") == "descending"
    values = [float(v.split()[0]) for v in _column(page, "T1", 3)]
    assert values == [6.9, 6.2, 5.7]
    assert _column(page, "T1", 0) == ["1", "2", "3"]
    snr.click()
    assert snr.get_attribute("aria-sort") == "ascending"
    assert [float(v.split()[0]) for v in _column(page, "T1", 3)] == [5.7, 6.2, 6.9]
    page.find_element(By.CSS_SELECTOR, '#T1 th[data-kind="text"]').click()
    assert _column(page, "T1", 1) == sorted(_column(page, "T1", 1))


def test_audio_loads(page):
    count = page.execute_script("return document.querySelectorAll('audio').length;")
    assert count == 5  # reference, mono and three models
    deadline = time.time() + 15
    state = None
    while time.time() < deadline:
        state = page.execute_script(
            "return Array.from(document.querySelectorAll('audio')).map(a => [a.readyState, a.duration, a.error && a.error.code]);")
        if all(s[0] >= 1 and s[1] > 0 for s in state):
            break
        time.sleep(0.2)
    assert all(s[0] >= 1 and s[1] == pytest.approx(1.0, abs=0.01) and s[2] is None for s in state), state


def test_hostile_name_stays_text_and_page_is_clean(page):
    assert page.execute_script("return window.__xss === undefined;")
    assert page.execute_script("return document.querySelectorAll('td.model img').length;") == 0
    severe = [e for e in page.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


# ----------------------------------------------------------------------------------------- 15 models

N_MODELS = 15
ITEMS = [f"c{i:02d}" for i in range(1, 13)]
SCREENSHOT = Path("/tmp/leaderboard_15_models.png")


def _item_metrics(k: int, split: int) -> dict:
    """Per-item stft, snr and direction_acc of model k: model 1 scores exactly as model 0, the others get steadily worse."""
    rng = np.random.default_rng(100 * split + k)
    base = np.linspace(0.8, 1.2, len(ITEMS))
    rank = max(k - 1, 0)
    stft = base + 0.01 * rank + (0 if k <= 1 else rng.normal(0, 0.02, len(ITEMS)))
    return {i: {"stft": float(a), "snr": float(8 - 2 * a), "direction_acc": 0.9 - 0.02 * rank} for i, a in zip(ITEMS, stft)}


def _summary(items: dict) -> dict:
    out = {}
    for mid, direction in (("stft", "lower"), ("snr", "higher"), ("direction_acc", "higher")):
        v = np.array([it[mid] for it in items.values()])
        out[mid] = {"value": float(v.mean()), "std": float(v.std(ddof=1)), "stderr": float(v.std(ddof=1) / np.sqrt(len(v))),
                    "n": len(v), "direction": direction, "version": "1", "unit": ""}
    return out


def _subsets(k: int) -> dict:
    def e(value, n):
        return {"value": value, "std": 0.1, "stderr": 0.03, "n": n}
    return {"visual_case": {case: {"stft": e(1.0 + 0.01 * k + 0.1 * j, 2 + j), "direction_acc": e(0.9 - 0.02 * k, 2 + j)}
                            for j, case in enumerate(("none", "out_of_view", "occluded", "silent_object", "distractor"))},
            "sources": {"1": {"stft": e(0.9 + 0.01 * k, 6)}, "2": {"stft": e(1.1 + 0.01 * k, 4)}, "3-4": {"stft": e(1.3, 2)}},
            "motion": {"static": {"stft": e(1.0, 8)}, "moving": {"stft": e(1.2 + 0.01 * k, 4)}}}


def _results_15(root: Path) -> None:
    seconds = 3.0
    t = np.arange(int(seconds * SR)) / SR
    tone = np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t))
    pan = np.sin(2 * np.pi * t / seconds)  # the source moves from left to right and back
    tags = {"visual_case": ["none"], "sources": "1", "motion": "moving"}
    for split in (1, 2):
        for k in range(N_MODELS):
            items = _item_metrics(k, split)
            res = R.new_results(model=f"model_{k:02d}", dataset=DS, split=split, config={}, checkpoint_sha256=None,
                                seeds={"inference": 0}, device="cpu", timings={"predict": 1.0}, metrics=_summary(items),
                                subsets=_subsets(k) if split == 1 else None)
            folder = R.results_dir(root, DS["id"], split, f"model_{k:02d}")
            R.write_results(folder, res, [{"item_id": i, **v, "tags": tags} for i, v in items.items()])
            if split == 1:
                g = 0.2 + 0.05 * k
                pred = np.stack([tone * (1 + g * pan), tone * (1 - g * pan)]) / 2
                cf = pred[::-1].copy()
                R.write_samples(folder, {**{i: pred for i in ITEMS[:3]}, **{f"{i}.counterfactual": cf for i in ITEMS[:3]}}, SR)
    ref = np.stack([tone * (1 + 0.7 * pan), tone * (1 - 0.7 * pan)]) / 2
    R.write_reference_samples(root, DS, 1, {i: ref for i in ITEMS[:3]}, SR)
    info_path = R.reference_dir(root, DS["id"], 1) / R.REFERENCE_FILE
    info = json.loads(info_path.read_text())
    info["prompts"] = {i: {"clip": f"the violin moves from the left to the right and back {HOSTILE}",
                           "dense": [[0.0, 0.7, "the violin on the left"], [0.7, 2.2, "the violin on the right " + HOSTILE],
                                     [2.2, 3.0, "the violin on the left"]]} for i in ITEMS[:3]}
    write_bytes_atomic(info_path, json.dumps(info).encode())


@pytest.fixture(scope="module")
def site_15(tmp_path_factory):
    base = tmp_path_factory.mktemp("site15")
    _results_15(base / "results")
    index, data_path, _ = build_site(base / "results", base / "site")
    return index.resolve().as_uri(), json.loads(data_path.read_text())


@pytest.fixture
def page_15(browser, site_15):
    browser.get(site_15[0])
    browser.get_log("browser")  # only this page's messages count
    return browser


def test_15_models_marks_and_intervals(page_15, site_15):
    ties = page_15.execute_script(
        "return Array.from(document.querySelectorAll('#T1 td .tie')).map(s => [s.closest('tr').cells[1].textContent.trim(),"
        " s.getAttribute('title')]);")
    # model_01 scores exactly as model_00 on every item: it is marked in each of the three columns.
    assert [name for name, _ in ties].count("model_01") == 3
    assert all("contains 0" in title for _, title in ties)
    assert page_15.execute_script("return document.querySelectorAll('#T1 td.best').length;") == 3
    (mean_id,) = [t["id"] for t in site_15[1]["means"]]
    assert page_15.execute_script(f"return document.querySelectorAll('#{mean_id} tbody tr').length;") == N_MODELS
    assert page_15.execute_script(f"return document.querySelectorAll('#{mean_id} .ci').length;") == 3 * N_MODELS


def test_15_models_subset_tables_open(page_15):
    from selenium.webdriver.common.by import By

    details = page_15.find_element(By.ID, "T1-subsets")
    table = page_15.find_element(By.ID, "T1-visual_case")
    assert not table.is_displayed()
    details.find_element(By.TAG_NAME, "summary").click()
    assert table.is_displayed()
    rows = page_15.execute_script("return document.querySelectorAll('#T1-visual_case tbody tr').length;")
    heads = page_15.execute_script(
        "return Array.from(document.querySelectorAll('#T1-visual_case thead tr:nth-child(2) th')).map(h => h.textContent);")
    assert rows == N_MODELS and heads == ["none", "out_of_view", "occluded", "silent_object", "distractor"] * 2
    assert page_15.find_element(By.ID, "T1-sources").is_displayed() and page_15.find_element(By.ID, "T1-motion").is_displayed()


def test_15_models_listening_view(page_15):
    from selenium.webdriver.common.by import By

    assert page_15.execute_script("return document.querySelectorAll('audio[data-kind=\"counterfactual\"]').length;") == 3 * N_MODELS
    assert page_15.execute_script("return document.querySelectorAll('audio').length;") == 3 * (2 + 2 * N_MODELS)
    item = page_15.find_element(By.CSS_SELECTOR, ".item")
    clip = item.find_element(By.CSS_SELECTOR, ".clip-prompt")
    assert clip.text.endswith(HOSTILE) and page_15.execute_script("return window.__xss === undefined;")
    assert len(item.find_elements(By.CSS_SELECTOR, "ol.dense li")) == 3
    sizes = page_15.execute_script(
        "return Array.from(document.querySelectorAll('.item img')).map(i => [i.className, i.complete, i.naturalWidth, i.naturalHeight]);")
    cols, rows = PANEL_COLUMNS, -(-N_MODELS // PANEL_COLUMNS)
    size = [round(PLOT_DPI * (1 + cols * PANEL_SIZE_IN[0])), round(PLOT_DPI * (1 + rows * PANEL_SIZE_IN[1]))]
    assert sizes == [["plot-level_difference", True, *size], ["plot-envelope", True, *size]] * 3
    # A screenshot of the first item's view, to look at: players, prompts and the 15 panels.
    # A window is no taller than its screen: make the viewport as wide as a desktop's, then as tall as the item.
    metrics = {"width": 1450, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
    page_15.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        height = page_15.execute_script("return Math.ceil(arguments[0].getBoundingClientRect().height);", item)
        page_15.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height + 100})
        page_15.execute_script("arguments[0].scrollIntoView();", item)
        assert item.screenshot(str(SCREENSHOT)) and SCREENSHOT.stat().st_size > 0
    finally:
        page_15.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    severe = [e for e in page_15.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []
