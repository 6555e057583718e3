"""The web page in a real headless browser: Debian's chromium through selenium, against a real uvicorn server.

CI installs chromium and chromium-driver (apt); without them this test fails, it does not skip.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from test_service import ServerThread, make_state

from bot.service import create_app

CHROMIUM = os.environ.get("MODMATCH_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MODMATCH_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for exe in (CHROMIUM, CHROMEDRIVER):
        assert Path(exe).exists(), f"{exe} is missing: apt-get install -y chromium chromium-driver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="modmatch-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    # explicit paths: Selenium Manager has nothing to look up or download
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_ask_on_the_page(git_repo, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    state = make_state(git_repo)
    rs = state.repo()
    run = rs.models_dir / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metadata.json").write_text(json.dumps({"base_model": "smollm2-135m", "metrics": {"accuracy": 0.875}}))
    (rs.models_dir / "current.json").write_text(json.dumps({"run": "runs/r1"}))
    with ServerThread(create_app(state)) as srv:
        browser.get(srv.url + "/")
        wait = WebDriverWait(browser, 20)
        wait.until(EC.text_to_be_present_in_element((By.ID, "tree"), "storage"))  # the module tree
        wait.until(EC.text_to_be_present_in_element((By.ID, "model"), "0.875"))  # the model's metrics
        wait.until(EC.text_to_be_present_in_element((By.ID, "runs"), "index"))  # the index run
        assert "core" in browser.find_element(By.ID, "repo").text
        browser.find_element(By.ID, "question").send_keys("the HTTP client should retry with backoff")
        browser.find_element(By.ID, "ask").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li.result"))
        first = browser.find_elements(By.CSS_SELECTOR, "#results li.result")[0]
        assert first.find_element(By.CSS_SELECTOR, ".module").text == "network"
        assert re.search(r"(>99|<1|\d{1,3})% confident", first.text), first.text  # the API's `percent`
        assert "lexical" in browser.find_element(By.ID, "ask-status").text
        shot = Path(tempfile.gettempdir()) / "modmatch-web.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors


def test_page_without_model(git_repo, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    with ServerThread(create_app(make_state(git_repo))) as srv:
        browser.get(srv.url + "/")
        WebDriverWait(browser, 20).until(EC.text_to_be_present_in_element((By.ID, "model"), "No model yet"))
