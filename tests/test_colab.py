"""The Colab path, simulated with no network: what the setup cell would run, and what setup() picks."""

import json
import os
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
    """A stand-in for `google.colab`, recording calls to `output.enable_custom_widget_manager`."""
    colab = types.ModuleType("google.colab")
    colab.widget_manager_calls = []
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: colab.widget_manager_calls.append(1))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    return colab


class _FakePip:
    """Stands in for subprocess.Popen: records the command, prints one line, succeeds."""

    def __init__(self, calls, cmd, **kwargs):
        calls.append((cmd, kwargs))
        self.stdout, self.returncode = iter(["Successfully installed digsite\n"]), 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def recorded_runs(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: _FakePip(calls, cmd, **kw))
    monkeypatch.setenv("DIGSITE_KEEP_GOING", "")  # exercise notebooks' setup cells set it: restored afterwards
    monkeypatch.delenv("DIGSITE_KEEP_GOING")
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
    assert not {"-q", "--quiet"} & set(cmd), "pip's progress must show"
    assert kwargs.get("stdout") is subprocess.PIPE and kwargs.get("stderr") is subprocess.STDOUT


def test_setup_cell_in_colab_prints_pips_messages_and_stops_when_pip_fails(fake_colab, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: _FakePip(calls, cmd, **kw))
    exec(_setup_cell(NOTEBOOKS[-1]), {})
    assert "Successfully installed digsite" in capsys.readouterr().out

    class FailingPip(_FakePip):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.returncode = 1

    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **kw: FailingPip(calls, cmd, **kw))
    with pytest.raises(RuntimeError, match="Installing the course failed"):
        exec(_setup_cell(NOTEBOOKS[-1]), {})


@pytest.mark.parametrize("version, enabled", [("7.7.1", False), ("8.1.5", True)])
def test_setup_cell_enables_colabs_widget_manager_for_ipywidgets_8_only(
    version, enabled, fake_colab, recorded_runs, monkeypatch
):
    import ipywidgets

    monkeypatch.setattr(ipywidgets, "__version__", version)
    exec(_setup_cell(NOTEBOOKS[0]), {})
    assert fake_colab.widget_manager_calls == ([1] if enabled else [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_setup_cell_does_nothing_outside_colab(path, recorded_runs):
    exec(_setup_cell(path), {})
    assert recorded_runs == []
    # Exercise notebooks switch keep_going explicitly, and off; solutions leave it alone.
    assert os.environ.get("DIGSITE_KEEP_GOING") == ("0" if path.parent.name == "chapters" else None)


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
