"""optuna-dashboard as a person sees it: Debian chromium, headless, driven by Selenium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from losstune.studies import api
from tests.conftest import REPO, chromium_paths, require, tiny_study

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout}s")


def test_dashboard_shows_study_metric_and_trial_attributes(sqlite_url: str) -> None:
    chromium, driver_path = chromium_paths()
    require(chromium is not None and driver_path is not None,
            "Debian chromium + chromium-driver (make chromium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    spec, text = api.study_from_dict(tiny_study(
        n_trials=2, name="browser_study",
        storage="postgresql://u:dash-secret-pw@db.invalid/x"))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "losstune.studies.cli", "dashboard", "--storage", sqlite_url,
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    artifacts = Path(os.environ.get("LOSSTUNE_ARTIFACTS", REPO / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = Path(sqlite_url.split(":///", 1)[1]).parent / "chromium-profile"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    browser = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/studies")
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        body = lambda d: d.find_element(By.TAG_NAME, "body").text  # noqa: E731
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/1")
        WebDriverWait(browser, 60).until(lambda d: "browser_study" in body(d)
                                         and "macro_f1" in body(d))
        browser.save_screenshot(str(artifacts / "dashboard_study.png"))
        page = body(browser)
        assert "browser_study" in page and "macro_f1" in page
        browser.get(f"http://127.0.0.1:{port}/dashboard/studies/1/trials")
        WebDriverWait(browser, 60).until(lambda d: "metric.test.macro_f1" in body(d))
        browser.save_screenshot(str(artifacts / "dashboard_trials.png"))
        page = body(browser)
        assert "metric.test.macro_f1" in page and "term.ce" in page or "term." in page
        assert "dash-secret-pw" not in page
        assert (artifacts / "dashboard_trials.png").stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        server.wait(10)


def test_dashboard_binds_localhost_and_warns_for_other_hosts(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from losstune.studies.cli import cli

    spec, text = api.study_from_dict(tiny_study(n_trials=1))
    api.run_study(spec, study_text=text, storage=sqlite_url, progress=False)
    help_text = CliRunner().invoke(cli, ["dashboard", "--help"]).output
    assert "127.0.0.1" in help_text
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "losstune.studies.cli", "dashboard", "--storage", sqlite_url,
         "--host", "0.0.0.0", "--port", str(port)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/studies")
    finally:
        proc.terminate()
        _, err = proc.communicate(10)
    assert "warning: binding to 0.0.0.0" in err
