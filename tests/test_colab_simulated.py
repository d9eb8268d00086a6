"""Chapter 0 in a simulated Colab: Colab's Python and package versions, its setup cell, then every cell.

The simulated Colab is a virtual environment on Python 3.13 with Colab's versions of torch,
transformers, ipywidgets and the notebook machinery installed first (tests/colab_versions.txt
says where they come from), and a stand-in `google.colab` module imported at start-up, as in
Colab. Chapter 0's solution notebook runs there top to bottom, its setup cell unchanged except
that the network install (`pip install "digsite @ git+https://github.com/..."`) becomes an
install of this checkout. The test then checks that the cell showed pip's progress, installed
only what Colab lacks (no torch, transformers, ipywidgets or JupyterLab change), and that the
widget and figures came out.

Building the environment downloads about 3 GB (PyPI's torch is the CUDA build) and took 12 and
18 minutes on a busy 2-core machine; it is kept in ~/.cache/digsite/colab-sim/ and reused while
Python and the versions stay the same (a later run took 1 min 49 s there). Marked slow:
`pytest -m "not slow"` leaves it out.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = Path(__file__).with_name("colab_versions.txt")
NOTEBOOK = ROOT / "solutions" / "00_orientation.ipynb"


def _python_313() -> str | None:
    """A Python 3.13 interpreter's real path (a pyenv shim may exist and still refuse to run)."""
    candidates = [
        shutil.which("python3.13"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13"))),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 13), sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.startswith("True"):
            return probe.stdout.split(maxsplit=1)[1].strip()
    return None


PYTHON = _python_313()
if PYTHON is None and os.environ.get("CI"):
    raise RuntimeError("CI must run the simulated-Colab test, but there is no python3.13 on this machine.")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(PYTHON is None, reason="needs Python 3.13 (Colab's)")]


def _colab_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would leak the test's own packages into the simulated Colab."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, env=_colab_env(), **kw)


def _installed(python: Path) -> dict[str, str]:
    """Every distribution the simulated Colab's Python sees, by normalised name."""
    out = _run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True).stdout
    return {d["name"].lower().replace("_", "-"): d["version"] for d in json.loads(out)}


def colab_environment() -> Path:
    """The simulated Colab's Python: a cached venv with Colab's versions, rebuilt when missing or changed."""
    key = hashlib.sha256((VERSIONS.read_text() + PYTHON).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "digsite" / "colab-sim" / key
    python, record = cache / "bin" / "python", cache / "colab-packages.json"
    if record.exists():
        expected, now = json.loads(record.read_text()), _installed(python)
        if now != expected:  # an interrupted run left something behind: put Colab's versions back
            differ = {
                name: (expected.get(name), now.get(name))
                for name in set(expected) | set(now)
                if expected.get(name) != now.get(name)
            }
            print(f"Restoring the cached simulated Colab (was, now): {differ}")
            if extra := sorted(set(now) - set(expected)):
                _run([str(python), "-m", "pip", "uninstall", "-y", *extra])
            _run([str(python), "-m", "pip", "install", "--progress-bar", "off", "-r", str(VERSIONS)])
            now = _installed(python)
        if now == expected:
            return python
        print("Could not restore the cached simulated Colab: rebuilding it.")
    shutil.rmtree(cache, ignore_errors=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    print(f"Building the simulated Colab in {cache} (a few GB, minutes; cached afterwards).")
    _run([PYTHON, "-m", "venv", str(cache)])
    _run([str(python), "-m", "pip", "install", "--progress-bar", "off", "-r", str(VERSIONS)])
    record.write_text(json.dumps(_installed(python)))
    return python


def _fake_colab(folder: Path) -> None:
    """`google.colab` as Colab's kernel has it: imported at start-up; its widget-manager switch records the call."""
    colab = folder / "google" / "colab"
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text("from . import output\n")
    (colab / "output.py").write_text(
        "def enable_custom_widget_manager():\n    print('[fake google.colab] custom widget manager enabled')\n"
    )
    (folder / "sitecustomize.py").write_text("import google.colab  # Colab's kernel starts with it imported\n")


def _course_source(folder: Path) -> Path:
    """What `pip install git+<repository>` would fetch: the files a build of the package reads."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "utils", folder / "utils", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return folder


RUNNER = textwrap.dedent(
    """
    import json, sys
    import nbclient, nbformat
    nb = nbformat.read(sys.argv[1], as_version=4)
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    finally:
        nbformat.write(nb, sys.argv[2])
    """
)


def test_chapter_0_runs_in_a_simulated_colab(tmp_path):
    python = colab_environment()
    before = _installed(python)
    repo_url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    network_install = f"digsite @ git+{repo_url}"
    source = _course_source(tmp_path / "course")
    nb = json.loads(NOTEBOOK.read_text())
    setup = "".join(nb["cells"][1]["source"])
    assert setup.count(network_install) == 1, "the setup cell's install command changed: update this test"
    nb["cells"][1]["source"] = setup.replace(network_install, f"digsite @ {source.as_uri()}")
    (tmp_path / "in.ipynb").write_text(json.dumps(nb))
    _fake_colab(tmp_path / "fake")
    (tmp_path / "runner.py").write_text(RUNNER)
    env = _colab_env(PYTHONPATH=str(tmp_path / "fake"), HF_HUB_OFFLINE="1")
    try:
        run = subprocess.run(
            [str(python), str(tmp_path / "runner.py"), str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        after = _installed(python)
    finally:
        added = set(_installed(python)) - set(before)
        if added:  # leave the cached Colab as Colab ships it
            subprocess.run(
                [str(python), "-m", "pip", "uninstall", "-y", *sorted(added)],
                capture_output=True,
                env=_colab_env(),
                check=False,
            )
    assert run.returncode == 0, f"chapter 0 failed in the simulated Colab:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    setup_output = "".join("".join(o["text"]) for o in cells[1]["outputs"] if o["output_type"] == "stream")
    assert "Successfully installed" in setup_output and "digsite" in setup_output, setup_output[-2000:]
    # Only what Colab lacks was installed: every package Colab had keeps its version; no JupyterLab.
    changed = {name: (before[name], after.get(name)) for name in before if after.get(name) != before[name]}
    assert changed == {}, f"the setup cell changed Colab's own packages: {changed}"
    new = set(after) - set(before)
    assert "digsite" in new and "circuitsvis" in new and "jupyterlab" not in new, sorted(new)
    # ipywidgets 7 (Colab's) needs no custom widget manager, and the explorer is a widget.
    assert "custom widget manager enabled" not in setup_output
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    kinds = {mime for o in outputs for mime in o.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in kinds, "no widget in chapter 0's outputs"
    assert "application/vnd.plotly.v1+json" in kinds or "text/html" in kinds, "no figure in chapter 0's outputs"
    print(f"simulated Colab: added {sorted(new)}")
