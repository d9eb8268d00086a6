"""`python -m digsite.lab`: JupyterLab at the course root, on 127.0.0.1 with a token, chapter 0 opened.

The last test starts the real launcher on a free port, reads the address it prints, asks the
server's API (with and without the token) what it serves, then stops it and checks that no
process is left. It needs JupyterLab (the `lab` extra) and is skipped without it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from digsite import lab

ROOT = Path(__file__).resolve().parent.parent


def test_finds_the_course_root_from_inside_the_checkout():
    assert lab.find_root(ROOT) == ROOT
    assert lab.find_root(ROOT / "utils" / "digsite") == ROOT


def test_elsewhere_it_finds_the_checkout_the_package_came_from(tmp_path):
    assert lab.find_root(tmp_path) == ROOT  # this package is imported from the checkout


def test_without_a_checkout_it_says_how_to_get_the_chapters(tmp_path, capsys):
    assert lab.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "git clone" in err and "python -m digsite.lab" in err


def test_command_is_localhost_at_the_root_opening_chapter_0(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cmd = lab.command(ROOT, 8899, open_browser=False)
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert "--ServerApp.ip=127.0.0.1" in cmd and f"--ServerApp.root_dir={ROOT}" in cmd
    assert "--ServerApp.port=8899" in cmd and "--no-browser" in cmd
    assert cmd[-1] == "chapters/00_orientation.ipynb"
    assert "--allow-root" not in cmd
    assert not any("token" in part.lower() for part in cmd)  # the token never appears on a command line


def test_as_root_it_adds_allow_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--allow-root" in lab.command(ROOT, 8899)


def test_free_port_skips_a_busy_one():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert lab.free_port(port) != port


def _get(url: str):
    import json

    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.mark.skipif(importlib.util.find_spec("jupyterlab") is None, reason='needs JupyterLab: pip install -e ".[lab]"')
def test_launcher_serves_the_repository_root_with_a_token(tmp_path):
    port = lab.free_port(18800)
    env = {
        **os.environ,
        # A private Jupyter configuration, so nothing of the user's (or a previous run's) leaks in.
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "utils"), os.environ.get("PYTHONPATH")])),
    }
    env.pop("JUPYTER_TOKEN", None)
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        # Started from an unrelated folder: it must still find the checkout.
        proc = subprocess.Popen(
            [sys.executable, "-m", "digsite.lab", "--no-browser", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        match = None
        while match is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            match = re.search(r"(http://127\.0\.0\.1:(\d+))/lab/tree/(\S+)\?token=([0-9a-f]+)", log.read_text())
        assert match, f"the launcher printed no address:\n{log.read_text()}"
        base, printed_port, opened, token = match.groups()
        assert int(printed_port) == port and opened == "chapters/00_orientation.ipynb"
        if os.geteuid() == 0:
            assert "--allow-root" in log.read_text()  # the one-line warning
        assert _get(f"{base}/api/status?token={token}")["started"]
        with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no access
            urllib.request.urlopen(f"{base}/api/contents", timeout=10)
        assert refused.value.code == 403
        listing = {item["name"] for item in _get(f"{base}/api/contents?token={token}")["content"]}
        assert {"chapters", "solutions", "README.md"} <= listing, listing
        notebook = _get(f"{base}/api/contents/chapters/00_orientation.ipynb?token={token}")
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
    finally:
        proc.terminate()  # the launcher stops JupyterLab with it
        proc.wait(timeout=60)
    time.sleep(1)
    with pytest.raises(OSError):  # nothing listens any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
