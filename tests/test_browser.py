"""End to end, as a learner meets it: JupyterLab on localhost (token on), a solution notebook
opened in headless Chromium, every cell run from the Run menu, and the figures checked in
the page itself — a circuitsvis figure, a plotly figure and a widget must render, with no
JavaScript errors. A screenshot is saved to build/browser/.

Needs Debian's chromium (`apt-get install chromium`) and the `playwright` Python package
(in the test extras). Skipped with a reason when they are missing, except in CI, where
`.ci/run` installs them and a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from offline_browser import CHROMIUM, launch_chromium

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "00_orientation.ipynb"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

_missing = [what for what, ok in (("chromium", CHROMIUM), ("playwright", sync_playwright)) if not ok]
if _missing and os.environ.get("CI"):
    raise RuntimeError(f"CI must run the browser test, but {', '.join(_missing)} is missing (see .ci/run).")
pytestmark = pytest.mark.skipif(
    bool(_missing), reason=f"needs {', '.join(_missing)}: apt-get install chromium; pip install playwright"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on localhost with a token, serving a copy of one solution notebook."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(ROOT / "solutions" / NOTEBOOK, served / NOTEBOOK)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (no virtualised windowing), so the checks below see all outputs.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={served}",
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            *(["--allow-root"] if os.geteuid() == 0 else []),  # CI machines run as root
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config")},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text())
        # The token is really required: without it the API refuses.
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/api/contents", timeout=5)
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_solution_notebook_renders_in_a_real_browser(jupyterlab):
    base, token = jupyterlab
    shots = ROOT / "build" / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        # The kernel must be up and idle before Run All, or the first cells may be skipped.
        page.wait_for_function(
            "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\|\\s*Idle/.test(e.textContent))",
            timeout=120_000,
        )
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        n_code = page.locator(".jp-CodeCell").count()
        # Done when every code cell has a numbered prompt ("[3]:"), none pending ("[*]:").
        try:
            page.wait_for_function(
                """n => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
                          return p.length === n && p.every(t => /\\[\\d+\\]/.test(t)); }""",
                arg=n_code,
                timeout=240_000,
            )
        finally:
            page.screenshot(path=str(shots / "after_run_all.png"))
            prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
            print("prompts:", prompts, "code cells:", n_code)
        page.wait_for_timeout(3000)  # let React (circuitsvis) and plotly finish drawing
        for name, selector in (("circuitsvis", "[id^='circuits-vis-']"), ("plotly", ".js-plotly-plot")):
            page.locator(selector).first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"{NOTEBOOK.removesuffix('.ipynb')}_{name}.png"))
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        assert not any("Traceback" in text or "Error:" in text for text in outputs), outputs
        assert page.locator(".js-plotly-plot .main-svg").count() >= 1, "no plotly figure rendered"
        assert page.locator("[id^='circuits-vis-'] *").count() >= 5, "no circuitsvis figure rendered"
        assert page.locator(".jupyter-widgets.widget-slider, .widget-slider").count() >= 1, "no widget rendered"
        browser.close()
    assert errors == [], f"JavaScript errors in the page: {errors}"
