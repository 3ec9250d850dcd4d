"""A real `python -m lexilab serve` on 127.0.0.1 (a free port it picks), a real headless
Chromium on its page, and concurrent clients. The browser test skips only where Debian's
chromium or chromium-driver is missing and CI is not set; in CI it must run."""
from __future__ import annotations

import os
import shutil

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lexilab.io import read_json
from lexilab.serve.loadtest import run_clients, serve_process

# a separate server process (torch import, weights load) and a browser: tens of seconds on 2 cores
pytestmark = pytest.mark.slow
CHROMEDRIVER = "/usr/bin/chromedriver"
TEXT = "red dog north table chair garden"


@pytest.fixture(scope="module")
def live(trained_study, tmp_path_factory):
    log = tmp_path_factory.mktemp("live") / "serve.log"
    with serve_process([trained_study["mtl"], trained_study["topic_only"]], "--max-batch", "16", log=log) as server:
        yield server


def test_server_answers_on_localhost_and_stops_by_pid(live):
    assert live.url.startswith("http://127.0.0.1:") and live.pid > 0
    health = httpx.get(f"{live.url}/health").json()
    assert health["status"] == "ready" and health["runs"] == ["mtl/seed-0", "topic_only/seed-0"]


def test_concurrent_clients_all_answered_and_server_healthy(live):
    before = httpx.get(f"{live.url}/health").json()["batching"]["mtl/seed-0"]["texts"]
    report = run_clients(live.url, clients=8, requests=5)
    assert report.sent == 40 and report.answered == 40 and report.lost == 0, report.failures[:3]
    health = httpx.get(f"{live.url}/health")
    assert health.status_code == 200
    assert health.json()["batching"]["mtl/seed-0"]["texts"] - before == 40  # every text reached the model once


@pytest.fixture
def page(live, monkeypatch):
    """Headless Chromium on the served page, once the page has read /runs (its examples shown)."""
    chromium = shutil.which("chromium")
    if not chromium or not os.path.exists(CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium / chromium-driver are missing (.ci/install-services.sh installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # with both paths given, Selenium Manager is not needed
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,820", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.get(f"{live.url}/")
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#examples button.example"))
        yield driver
    finally:
        driver.quit()


def test_page_in_a_real_browser(page, trained_study, predictors, tmp_path):
    driver, wait = page, WebDriverWait(page, 60)
    assert driver.find_element(By.ID, "status").text.startswith("ready")
    box = driver.find_element(By.ID, "text")
    first = httpx.get(f"{driver.current_url}runs").json()["runs"][0]["examples"][0]["text"]
    driver.find_element(By.CSS_SELECTOR, "#examples button.example").click()  # an example fills the box
    assert box.get_attribute("value") == first
    box.clear()
    box.send_keys(TEXT)
    driver.find_element(By.ID, "submit").click()
    cards = driver.find_elements(By.CSS_SELECTOR, "section.task")
    assert len(cards) == 4  # mtl: topic, emotion, summary; topic_only: topic
    assert len(driver.find_elements(By.CSS_SELECTOR, "section.absent")) == 2  # topic_only has no emotion, summary
    wait.until(lambda d: all(c.get_attribute("data-done") for c in d.find_elements(By.CSS_SELECTOR, "section.task")))
    # read positions only once every card is filled: rows above grow as their results arrive
    topic = [c.location for c in cards if c.get_attribute("data-task") == "topic"]
    assert topic[0]["y"] == topic[1]["y"] and topic[0]["x"] < topic[1]["x"]  # one task's row, runs side by side
    for card in cards:
        run, task, kind = (card.get_attribute(k) for k in ("data-run", "data-task", "data-kind"))
        truth = predictors[run].predict([TEXT], top_k=4)[0][task]
        if kind == "seq2seq":
            assert card.find_element(By.CSS_SELECTOR, ".summary").text == (truth["summary"] or "(empty)")
            continue
        bars = card.find_elements(By.CSS_SELECTOR, ".bar")
        shown = [(b.get_attribute("data-label"), float(b.get_attribute("data-score"))) for b in bars]
        assert shown == [(x["label"], pytest.approx(x["score"], abs=1e-9)) for x in truth["top"]]
        chosen = [b.get_attribute("data-label") for b in card.find_elements(By.CSS_SELECTOR, ".bar.chosen")]
        if kind == "multiclass":
            assert chosen == [truth["label"]]
        else:
            chips = [c.get_attribute("data-label") for c in card.find_elements(By.CSS_SELECTOR, ".chip")]
            assert chips == [x["label"] for x in truth["labels"]] and sorted(chosen) == sorted(chips)
            assert len(card.find_elements(By.CSS_SELECTOR, ".bar .mark")) == len(bars)  # thresholds drawn
    for arm in ("mtl", "topic_only"):
        test = read_json(trained_study[arm] / "metrics.json")["test"]
        cell = driver.find_element(By.CSS_SELECTOR, f'section.metrics[data-run="{arm}/seed-0"]')
        rows = cell.find_elements(By.CSS_SELECTOR, "tr")
        assert rows and all(r.find_element(By.CSS_SELECTOR, ".num").text
                            == f"{test[r.get_attribute('data-task')][r.get_attribute('data-metric')]:.3f}"
                            for r in rows)
    shot = tmp_path / "serve-page.png"
    assert driver.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    print(f"screenshot: {shot}")


def test_page_shows_a_bad_input_message(page):
    page.find_element(By.ID, "submit").click()  # nothing typed: the server's one line is shown
    WebDriverWait(page, 60).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert page.find_element(By.ID, "error").text == "texts[0]: empty text"
