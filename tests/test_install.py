"""install.py, the README's first command: the CPU build of torch without an NVIDIA GPU, PyPI's with one.

PyTorch's CPU index is out of reach here, so the installs themselves are not run: the tests
check which commands it would run, with `nvidia-smi` faked on the PATH.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("install", ROOT / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def _fake_nvidia_smi(folder: Path, output: str, status: int) -> None:
    folder.mkdir(exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{output}'\nexit {status}\n")
    smi.chmod(0o755)


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    """Put a fake nvidia-smi first on the PATH (or none at all)."""

    def make(output: str | None, status: int = 0) -> None:
        folder = tmp_path / "bin"
        if output is not None:
            _fake_nvidia_smi(folder, output, status)
        monkeypatch.setenv("PATH", str(folder) if output is not None else str(tmp_path / "empty"))

    return make


def test_gpu_detection(path_with):
    path_with(None)
    assert not install.has_nvidia_gpu()
    path_with("GPU 0: NVIDIA H100 (UUID: GPU-1234)")
    assert install.has_nvidia_gpu()
    path_with("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", status=9)
    assert not install.has_nvidia_gpu()


@pytest.mark.parametrize(
    "choice, system, gpu, index",
    [
        ("auto", "Linux", False, install.CPU_INDEX),
        ("auto", "Linux", True, None),
        ("auto", "Darwin", False, None),
        ("auto", "Windows", False, None),
        ("cpu", "Linux", True, install.CPU_INDEX),
        ("pypi", "Linux", False, None),
    ],
)
def test_which_torch(choice, system, gpu, index):
    assert install.choose_torch(choice, system, gpu)[1] == index


def test_torch_requirement_is_the_one_in_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert install.torch_requirement() in deps


@pytest.mark.parametrize("gpu", [False, True])
def test_commands_in_order(gpu, path_with, tmp_path, monkeypatch, capsys):
    path_with("GPU 0: NVIDIA H100" if gpu else None)
    monkeypatch.setattr(install.platform, "system", lambda: "Linux")
    commands = []
    monkeypatch.setattr(install, "run", lambda cmd, dry_run: commands.append(cmd))
    venv = tmp_path / "venv"
    assert install.main(["--venv", str(venv)]) == 0
    python = str(venv / "bin" / "python")
    assert commands[0] == [sys.executable, "-m", "venv", str(venv)]
    assert commands[1][:4] == [python, "-m", "pip", "install"] and commands[1][4].startswith("torch")
    assert (commands[1][5:] == []) if gpu else (commands[1][5:] == ["--index-url", install.CPU_INDEX])
    assert commands[2] == [python, "-m", "pip", "install", "-e", f"{ROOT}[lab]"]
    assert not any("-q" in cmd for cmd in commands), "pip's progress must show"
    assert "-m digsite.lab" in capsys.readouterr().out


def test_dry_run_on_this_machine_installs_nothing(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "install.py"), "--dry-run", "--venv", str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    assert "1/3" in out and "2/3" in out and "3/3" in out and "dry run" in out
    assert not (tmp_path / "venv").exists()


def test_readme_first_command_installs_then_launches():
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert first == "python3 install.py && .venv/bin/python -m digsite.lab"
