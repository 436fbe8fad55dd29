"""Fixtures for the browser tier: `fedcloud lab` and headless Chromium driven by Playwright.

Chromium is Debian's (``/usr/bin/chromium``, from tests/apt-packages.txt): Playwright's
own browser downloads are impossible here.  Without it (or without playwright) the tests
skip with the reason; with ``CI`` set they fail.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts"
# JupyterLab settings for the test: no news toast over the page, every cell in the DOM
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser tier is required in CI: {reason} (make test-deps)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """A headless Debian Chromium under Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium; make test-deps)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def lab_settings(tmp_path) -> dict[str, str]:
    """Environment giving JupyterLab its own settings and workspaces under tmp_path."""
    settings = tmp_path / "lab-settings"
    for rel, value in LAB_SETTINGS.items():
        p = settings / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(value))
    return {"JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces")}


@pytest.fixture
def runbook_copy(tmp_path) -> Path:
    """The runbooks, copied: JupyterLab saves and may autosave what it serves."""
    d = tmp_path / "runbooks"
    d.mkdir()
    for nb in (ROOT / "runbooks").glob("*.ipynb"):
        shutil.copy(nb, d / nb.name)
    return d


def fedcloud(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_lib.cli", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
