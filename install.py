"""Install the course into a virtual environment, with the right build of PyTorch for this machine.

    python3 install.py              # make .venv, install torch and the course, say how to start it
    python3 install.py --dry-run    # only print what it would run

PyPI's torch for Linux is the CUDA build: with its NVIDIA libraries a 5.9 GB environment,
against about 1.5 GB with the CPU build. So on Linux without an NVIDIA GPU (no working
`nvidia-smi`) torch comes from PyTorch's CPU index; with a GPU, and on macOS and Windows
(where PyPI's torch is already the right one), from PyPI. `--torch cpu` or `--torch pypi`
overrides the choice. Then `pip install -e ".[lab]"`: the course and JupyterLab. Re-running
it is safe: the environment is reused and a torch already in it is kept.

Standard library only, Python 3.10+.
"""

from __future__ import annotations

import argparse
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_nvidia_gpu() -> bool:
    """True when `nvidia-smi` exists and lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return listed.returncode == 0 and "GPU" in listed.stdout


def torch_requirement() -> str:
    """The torch requirement of the one dependency list, pyproject.toml (e.g. "torch>=2.1,<3")."""
    found = re.search(r'^\s*"(torch[^"]*)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    if found is None:
        raise SystemExit("pyproject.toml names no torch requirement: is this the course's folder?")
    return found.group(1)


def choose_torch(choice: str, system: str, gpu: bool) -> tuple[str, str | None]:
    """(why, index URL or None for PyPI) for this machine."""
    if choice == "cpu":
        return "the CPU build, as asked", CPU_INDEX
    if choice == "pypi":
        return "PyPI's build, as asked", None
    if system != "Linux":
        return f"PyPI's build, the right one on {system}", None
    if gpu:
        return "the CUDA build from PyPI (an NVIDIA GPU is present); about 2.7 GB to download", None
    return "the CPU build (no NVIDIA GPU found); about 200 MB to download instead of 2.7 GB", CPU_INDEX


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if platform.system() == "Windows" else "bin/python")


def run(cmd: list[str], dry_run: bool) -> None:
    print("+ " + shlex.join(cmd), flush=True)
    if not dry_run:
        subprocess.run(cmd, check=True)


def has_torch(python: Path) -> bool:
    return (
        python.exists()
        and subprocess.run([str(python), "-c", "import torch"], capture_output=True, check=False).returncode == 0
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--venv", type=Path, default=ROOT / ".venv", help="where to make the environment (default: .venv)"
    )
    parser.add_argument(
        "--torch", choices=("auto", "cpu", "pypi"), default="auto", help="which torch build (default: auto)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 -- this runs under any python3, before anything is installed
        raise SystemExit(f"The course needs Python 3.10 or newer; this is {platform.python_version()}.")

    started = time.monotonic()
    python = venv_python(args.venv)
    print(f"1/3 Virtual environment: {args.venv}", flush=True)
    if python.exists():
        print("    (already there: reusing it)")
    else:
        run([sys.executable, "-m", "venv", str(args.venv)], args.dry_run)

    if args.torch == "auto" and has_torch(python):
        print("2/3 PyTorch: already installed in the environment, kept.", flush=True)
    else:
        why, index = choose_torch(args.torch, platform.system(), has_nvidia_gpu())
        print(f"2/3 PyTorch: {why}. After the download pip unpacks it for a minute without a word.", flush=True)
        run(
            [str(python), "-m", "pip", "install", torch_requirement(), *(["--index-url", index] if index else [])],
            args.dry_run,
        )

    print('3/3 The course and JupyterLab: pip install -e ".[lab]" (about 110 MB to download).', flush=True)
    run([str(python), "-m", "pip", "install", "-e", f"{ROOT}[lab]"], args.dry_run)

    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"\nDone in {minutes} min {seconds} s." if not args.dry_run else "\n(dry run: nothing was installed)")
    print(f"Start the course (also on later days):  {shlex.quote(str(python))} -m digsite.lab")
    return 0


if __name__ == "__main__":
    sys.exit(main())
