"""The Colab path, simulated with no network: what the setup cell would run, and what setup() picks."""

import json
import subprocess
import sys
import types
from pathlib import Path

import plotly.io as pio
import pytest
import torch

from digsite import notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("chapters/*.ipynb")) + sorted(ROOT.glob("solutions/*.ipynb"))


def _setup_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    assert "colab-badge.svg" in "".join(cells[0]["source"]), f"{path.name} must open with the Colab badge"
    return "".join(cells[1]["source"])


@pytest.fixture
def fake_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


@pytest.fixture
def recorded_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_setup_cell_in_colab_installs_the_course_from_the_repository(path, fake_colab, recorded_runs):
    import tomllib

    repo_url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    exec(_setup_cell(path), {})
    assert len(recorded_runs) == 1
    cmd, kwargs = recorded_runs[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert cmd[-1] == f"digsite @ git+{repo_url}"
    assert kwargs.get("check") is True


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_setup_cell_does_nothing_outside_colab(path, recorded_runs):
    exec(_setup_cell(path), {})
    assert recorded_runs == []


def test_setup_picks_colab_renderer_and_gpu_in_colab(fake_colab, monkeypatch):
    before = pio.renderers.default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    try:
        assert notebook.in_colab()
        assert notebook.setup() == torch.device("cuda")
        assert pio.renderers.default == "colab"
    finally:
        pio.renderers.default = before


def test_setup_leaves_renderer_alone_locally():
    before = pio.renderers.default
    notebook.setup(device="cpu")
    assert pio.renderers.default == before
