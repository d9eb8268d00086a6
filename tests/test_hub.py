"""The workshop hub (hub/start.py, hub/jupyterhub_config.py) and its load test, small.

The smoke test starts the real hub on 127.0.0.1 with two learners (shared accounts, a temporary
state folder), logs them in through the REST API (and one through the login form), runs chapter
0's solution in both kernels at once through the Jupyter server's REST and websocket APIs, and
checks that both runs succeed and that nothing is left running. About a minute; the full load
test is `python benchmarks/hub_load.py --users N` (docs/workshop.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


start = _load("hub_start", ROOT / "hub" / "start.py")


def test_users_file_is_read_and_checked(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("# the room\nada\n\nalan  # facilitator's note\n")
    assert start.read_users(users) == ["ada", "alan"]
    users.write_text("ada\nAda Lovelace\n")
    with pytest.raises(ValueError, match="Ada Lovelace"):
        start.read_users(users)
    users.write_text("ada\nada\n")
    with pytest.raises(ValueError, match="twice"):
        start.read_users(users)
    with pytest.raises(FileNotFoundError, match="users file"):
        start.read_users(tmp_path / "missing.txt")


def test_every_home_gets_the_chapters_and_keeps_its_work(tmp_path):
    home = tmp_path / "ada"
    n = start.give_chapters(home, None, with_solutions=False)
    chapters = sorted(p.name for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    assert n == len(chapters) and sorted(p.name for p in (home / "chapters").iterdir()) == chapters
    (home / "chapters" / chapters[0]).write_text("my work")
    assert start.give_chapters(home, None, with_solutions=True) == len(chapters)  # only the solutions are new
    assert (home / "chapters" / chapters[0]).read_text() == "my work"


def test_prepare_refuses_weak_settings(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("ada\n")
    with pytest.raises(ValueError, match="8 characters"):
        start.prepare(users, "short", "shared", tmp_path / "state")
    if os.geteuid() != 0:
        with pytest.raises(PermissionError, match="root"):
            start.prepare(users, "long enough", "system", tmp_path / "state")


_proxy = (
    (ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy").exists()
    or shutil.which("configurable-http-proxy")
    or shutil.which("npm")
)
try:
    import jupyterhub  # noqa: F401
except ImportError:  # pragma: no cover - depends on the machine
    _proxy = None
if not _proxy and os.environ.get("CI"):
    raise RuntimeError("CI must run the hub smoke test, but jupyterhub or npm is missing (see .ci/run).")


@pytest.mark.skipif(not _proxy, reason='needs jupyterhub (pip install -e ".[test]") and npm for its proxy')
def test_hub_serves_two_learners_at_once_and_stops_cleanly():
    import psutil

    load = _load("hub_load", ROOT / "benchmarks" / "hub_load.py")
    result = asyncio.run(load.one_run(2, ROOT / "solutions" / "00_orientation.ipynb", timeout=600))
    assert result["succeeded"] == 2, result["errors"]
    assert result["login_form_ok"], "the login page did not accept the room password (or accepted a wrong one)"
    assert result["p50_s"] > 0 and result["learner_mb_median"] > 50
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.environ().get("JUPYTERHUB_USER", "").startswith("learner") or any(
                "digsite-hub-load-" in part for part in proc.info["cmdline"] or []
            ):
                leftovers.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert leftovers == [], f"processes left running: {leftovers}"


def test_kubernetes_files_are_consistent():
    """What can be checked without a cluster: the values parse, the image copies files that exist."""
    import yaml

    values = yaml.safe_load((ROOT / "hub" / "k8s" / "values.yaml").read_text())
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "shared-password"
    assert values["singleuser"]["defaultUrl"].endswith("chapters/00_orientation.ipynb")
    assert values["singleuser"]["extraEnv"]["HF_HUB_OFFLINE"] == "1"
    dockerfile = (ROOT / "hub" / "k8s" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
