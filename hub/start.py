"""Start a Dig Site workshop hub on this machine: one command, learners from a list.

    python hub/start.py --users hub/users.example.txt --password 'room-password' --ip 0.0.0.0

It reads the learners' names (one a line), gives each a home with a copy of the chapters
(never overwriting a learner's saved work), installs the proxy (configurable-http-proxy, from
npm, into hub/node_modules) if it is missing, and runs JupyterHub with hub/jupyterhub_config.py
until Ctrl-C, which stops every learner's server too. Learners open http://MACHINE:8000, type
their name and the room's password, and land in JupyterLab on chapter 0.

Accounts: as root, each learner gets a Unix account (`useradd`), so learners cannot read each
other's files; without root (or with --accounts shared) every server runs as your account,
homes under the state folder, for a trusted room or a test. See docs/hub.md.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parent
ROOT = HUB.parent
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def read_users(path: Path) -> list[str]:
    """The learners' names from a file, one a line; '#' starts a comment. Names must suit Unix accounts."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such users file (one learner name a line, e.g. hub/users.example.txt).")
    names = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
    names = [n for n in names if n]
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise ValueError(
            f"{path}: these names are not usable as accounts (lower-case letter first, then "
            f"letters, digits, - or _, at most 32): {', '.join(bad)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a name appears twice.")
    if not names:
        raise ValueError(f"{path}: no names in it.")
    return names


def proxy_command() -> str:
    """configurable-http-proxy: on PATH, or under hub/node_modules (installed here by `npm ci` if missing)."""
    local = HUB / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "JupyterHub needs configurable-http-proxy (a Node.js program): install Node.js and npm "
            "(Debian: apt-get install nodejs npm), then run this command again."
        )
    print("Installing configurable-http-proxy into hub/node_modules (npm ci) ...", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefix", str(HUB)], check=True, timeout=600)
    return str(local)


def home_of(name: str, accounts: str, state: Path) -> Path:
    """A learner's home: their Unix account's (created if missing) or a folder under the state."""
    if accounts == "shared":
        return state / "homes" / name
    try:
        return Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, timeout=60)
        return Path(pwd.getpwnam(name).pw_dir)


def give_chapters(home: Path, owner: str | None, with_solutions: bool) -> int:
    """Copy the chapters (and solutions if asked) into a home; a file already there is kept. Returns files copied."""
    copied = 0
    folders = ["chapters", *(["solutions"] if with_solutions else [])]
    for folder in folders:
        (home / folder).mkdir(parents=True, exist_ok=True)
        for nb in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
            target = home / folder / nb.name
            if not target.exists():
                shutil.copy(nb, target)
                copied += 1
        if owner is not None:
            subprocess.run(["chown", "-R", f"{owner}:", str(home / folder)], check=True, timeout=60)
    return copied


def prepare(
    users_file: Path,
    password: str,
    accounts: str,
    state: Path,
    ip: str = "127.0.0.1",
    port: int = 8000,
    admins: tuple[str, ...] = (),
    api_token: str | None = None,
    with_solutions: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """Everything before the hub runs: homes, chapters, proxy. Returns (the command, its environment)."""
    if len(password) < 8:
        raise ValueError("The room's password must have 8 characters or more.")
    if accounts == "system" and os.geteuid() != 0:
        raise PermissionError(
            "--accounts system creates a Unix account per learner: run as root, "
            "or use --accounts shared (no isolation between learners)."
        )
    names = read_users(users_file)
    state.mkdir(parents=True, exist_ok=True)
    for name in [*names, *admins]:
        home = home_of(name, accounts, state)
        give_chapters(home, name if accounts == "system" else None, with_solutions)
    env = {
        **os.environ,
        "DIGSITE_HUB_USERS": str(users_file.resolve()),
        "DIGSITE_HUB_ADMINS": ",".join(admins),
        "DIGSITE_HUB_PASSWORD": password,
        "DIGSITE_HUB_STATE": str(state.resolve()),
        "DIGSITE_HUB_ACCOUNTS": accounts,
        "DIGSITE_HUB_IP": ip,
        "DIGSITE_HUB_PORT": str(port),
        "DIGSITE_HUB_CHP": proxy_command(),
        **({"DIGSITE_HUB_API_TOKEN": api_token} if api_token else {}),
    }
    command = [sys.executable, "-m", "jupyterhub", "-f", str(HUB / "jupyterhub_config.py")]
    return command, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=Path, required=True, help="file with one learner name a line")
    parser.add_argument(
        "--password",
        default=os.environ.get("DIGSITE_HUB_PASSWORD"),
        help="the room's shared password (default: $DIGSITE_HUB_PASSWORD, else a random one, printed)",
    )
    parser.add_argument("--admins", default="", help="comma-separated facilitator names (admin rights)")
    parser.add_argument("--accounts", choices=["system", "shared"], default="system" if os.geteuid() == 0 else "shared")
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on; 0.0.0.0 for the room's network")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state", type=Path, default=HUB / "state", help="database, secrets, shared homes")
    parser.add_argument("--with-solutions", action="store_true", help="also copy solutions/ into every home")
    args = parser.parse_args(argv)
    password = args.password or secrets.token_urlsafe(9)
    admins = tuple(a.strip() for a in args.admins.split(",") if a.strip())
    command, env = prepare(
        args.users, password, args.accounts, args.state, args.ip, args.port, admins, with_solutions=args.with_solutions
    )
    n = len(read_users(args.users))
    print(
        f"Dig Site hub: {n} learners ({args.accounts} accounts), http://{args.ip}:{args.port}/ , "
        f"room password: {password}\nProgress of the room: python -m digsite.progress --room "
        f"{'/home' if args.accounts == 'system' else args.state / 'homes'}\nCtrl-C stops the hub and every server.",
        flush=True,
    )
    os.execve(command[0], command, env)  # the hub replaces this process: Ctrl-C reaches it directly
    return 0  # pragma: no cover - execve does not return


if __name__ == "__main__":
    sys.exit(main())
