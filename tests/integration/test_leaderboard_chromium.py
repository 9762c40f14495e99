"""The generated leaderboard page in a real browser: headless Debian Chromium driven by chromedriver (selenium).

Checks that the table renders, that clicking a column header sorts it (best first, then reversed),
that an <audio> element loads its file, and that a hostile model name stays text.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from leaderboard.build import build_site
from tas_eval import results as R

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
def page(browser, tmp_path_factory):
    base = tmp_path_factory.mktemp("site")
    _results(base / "results")
    index, _, _ = build_site(base / "results", base / "site")
    browser.get(index.resolve().as_uri())
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
