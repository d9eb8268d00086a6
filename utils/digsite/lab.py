"""Start JupyterLab on the course, the safe way: `python -m digsite.lab` (or `digsite-lab`).

It serves the repository root (so the file browser shows `chapters/` and `solutions/`),
opens chapter 0, listens on 127.0.0.1 only, keeps token authentication on, and prints the
address to open. As root (Docker, cloud machines) it adds JupyterLab's `--allow-root`, with
a one-line warning, instead of letting JupyterLab refuse to start.

The course root is the first folder holding `chapters/00_orientation.ipynb`: the current
folder or one above it, else the checkout the package was installed from (`pip install -e .`).
Installed without a checkout (`pip install git+...`), there are no chapters on disk: it says
how to get them. Arguments it does not know are passed on to `jupyter lab`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path

FIRST_NOTEBOOK = Path("chapters") / "00_orientation.ipynb"
DEFAULT_PORT = 8888


def find_root(start: Path | None = None) -> Path | None:
    """The course checkout: `start` (default: the current folder) or a parent of it, else the package's own checkout."""
    start = (start or Path.cwd()).resolve()
    package_checkout = Path(__file__).resolve().parents[2]  # utils/digsite/lab.py -> the repository
    for folder in (start, *start.parents, package_checkout):
        if (folder / FIRST_NOTEBOOK).is_file():
            return folder
    return None


def repository_url() -> str:
    """The course's repository, from the installed package's metadata (pyproject's [project.urls])."""
    try:
        for entry in metadata.metadata("digsite").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "repository":
                return url.strip()
    except metadata.PackageNotFoundError:
        pass
    return "the course's repository"


def free_port(preferred: int = DEFAULT_PORT, tries: int = 50) -> int:
    """`preferred` if nothing listens there on 127.0.0.1, else the next free port after it."""
    for port in range(preferred, preferred + tries):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"No free port in {preferred}–{preferred + tries - 1}: pass --port with a free one.")


def command(root: Path, port: int, open_browser: bool = True, extra: list[str] | None = None) -> list[str]:
    """The `jupyter lab` command line: localhost only, the course root as its root, chapter 0 opened."""
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",  # the address printed below must be the one it serves
        f"--ServerApp.root_dir={root}",
    ]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return [*cmd, *(extra or []), FIRST_NOTEBOOK.as_posix()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m digsite.lab",
        description="Start JupyterLab on the Dig Site course (127.0.0.1, with a token), opening chapter 0. "
        "Other arguments go to `jupyter lab`.",
    )
    parser.add_argument("--root", type=Path, help="the course checkout (default: found from here or from the package)")
    parser.add_argument(
        "--port", type=int, default=None, help=f"port to listen on (default: {DEFAULT_PORT} or the next free one)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    args, extra = parser.parse_known_args(argv)

    root = args.root.resolve() if args.root else find_root()
    if root is None or not (root / FIRST_NOTEBOOK).is_file():
        where = f"{args.root} has no {FIRST_NOTEBOOK}" if args.root else "No course checkout found here"
        print(
            f"{where}: the notebooks live in the repository, not in the installed package.\n"
            f"Get them with `git clone {repository_url()}`, then run `python -m digsite.lab` inside that folder "
            "(or pass --root PATH).",
            file=sys.stderr,
        )
        return 2
    if importlib.util.find_spec("jupyterlab") is None:
        print(
            "JupyterLab is not installed in this environment. Install it with the course's local extras:\n"
            f'  pip install -e "{root}[lab]"',
            file=sys.stderr,
        )
        return 2

    port = args.port or free_port()
    cmd = command(root, port, open_browser=not args.no_browser, extra=extra)
    if "--allow-root" in cmd:
        print(
            "Warning: running as root, so JupyterLab gets --allow-root; a normal user account is safer.",
            file=sys.stderr,
        )
    # The token travels in the environment, not on the command line (where `ps` would show it).
    token = os.environ.get("JUPYTER_TOKEN") or secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    print(f"Dig Site: starting JupyterLab on {root} ...", flush=True)
    server = subprocess.Popen(cmd, cwd=root, env={**os.environ, "JUPYTER_TOKEN": token})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the server with us
    try:
        if not _wait_until_up(server, f"{base}/api/status?token={token}"):
            return server.returncode if server.returncode is not None else 1
        print(
            f"\nDig Site is ready. Open this address in your browser (it carries your access token):\n"
            f"  {base}/lab/tree/{FIRST_NOTEBOOK.as_posix()}?token={token}\n"
            "Stop it with Ctrl+C, twice.\n",
            flush=True,
        )
        while True:
            try:
                return server.wait()
            except KeyboardInterrupt:  # JupyterLab got it too and asks for confirmation; keep waiting for it
                continue
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_until_up(server: subprocess.Popen, status_url: str, timeout: float = 180.0) -> bool:
    """Poll the server's status API until it answers (True) or the server exits or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(status_url, timeout=2).close()
            return True
        except OSError:
            time.sleep(0.5)
    if server.poll() is None:
        print(f"JupyterLab did not answer within {timeout:.0f} s; see its messages above.", file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(main())
