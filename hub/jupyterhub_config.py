# JupyterHub configuration for a Dig Site workshop on one machine.
#
# Normally started by `python hub/start.py` (see docs/hub.md), which sets the DIGSITE_HUB_*
# variables below, creates the learners' homes with a copy of the chapters, and runs
# `jupyterhub -f hub/jupyterhub_config.py`. Every setting a facilitator may change is one of
# these variables; everything else is fixed here.
#
# DIGSITE_HUB_USERS     file with one learner name a line (# comments allowed)
# DIGSITE_HUB_ADMINS    comma-separated facilitator names (they see everyone's server)
# DIGSITE_HUB_PASSWORD  the room's shared password (8+ characters), told to learners
# DIGSITE_HUB_STATE     folder for the hub's database, cookie secret and (shared accounts) homes
# DIGSITE_HUB_ACCOUNTS  "system": one Unix account per learner (run as root; isolated)
#                       "shared": every server runs as the facilitator's account (no root;
#                       learners are NOT isolated from each other: for trusted rooms and tests)
# DIGSITE_HUB_IP, DIGSITE_HUB_PORT   where the hub listens (default 127.0.0.1:8000)
# DIGSITE_HUB_API_TOKEN  optional: a token with admin rights, for scripts (load test, progress)
# DIGSITE_HUB_CHP       path to configurable-http-proxy (start.py installs it under hub/)
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ.get("DIGSITE_HUB_STATE", Path(__file__).resolve().parent / "state"))
users_file = Path(os.environ["DIGSITE_HUB_USERS"])
learners = [ln.split("#")[0].strip() for ln in users_file.read_text().splitlines()]
learners = [name for name in learners if name]
admins = {name.strip() for name in os.environ.get("DIGSITE_HUB_ADMINS", "").split(",") if name.strip()}
accounts = os.environ.get("DIGSITE_HUB_ACCOUNTS", "shared")

c.JupyterHub.ip = os.environ.get("DIGSITE_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("DIGSITE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"  # the hub's own API: only the proxy and the servers talk to it
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.ConfigurableHTTPProxy.command = [os.environ.get("DIGSITE_HUB_CHP", "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every learner's server
c.JupyterHub.cleanup_proxy = True

# Login: each learner types their name from the list and the room's password.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["DIGSITE_HUB_PASSWORD"]
c.Authenticator.allowed_users = set(learners)
c.Authenticator.admin_users = admins
c.JupyterHub.load_roles = []
if os.environ.get("DIGSITE_HUB_API_TOKEN"):
    c.JupyterHub.services = [{"name": "digsite-facilitator", "api_token": os.environ["DIGSITE_HUB_API_TOKEN"]}]
    c.JupyterHub.load_roles = [
        {
            "name": "digsite-facilitator",
            "services": ["digsite-facilitator"],
            "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "list:users"],
        }
    ]

# Each learner's server: JupyterLab on chapter 0, the course's own Python, no network for models,
# one thread per kernel (many learners share few cores; one thread each is also the fastest).
python = os.environ.get("DIGSITE_HUB_PYTHON", sys.executable)
c.Spawner.cmd = [python, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab/tree/chapters/00_orientation.ipynb"
c.Spawner.environment = {
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # A learner's kernel finds the course package the hub's Python has.
    **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.args = ["--ServerApp.shutdown_no_activity_timeout=0"]

if accounts == "system":
    # One Unix account per learner (created by start.py), home /home/NAME: learners are isolated.
    c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
    c.LocalProcessSpawner.notebook_dir = "~"
elif accounts == "shared":
    # Every server runs as the account that started the hub, in its own folder under the state.
    c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
    c.SimpleLocalProcessSpawner.home_dir_template = str(state / "homes" / "{username}")
    c.Spawner.notebook_dir = str(state / "homes" / "{username}")
    if os.geteuid() == 0:  # a root-run test machine (CI): Jupyter refuses root without this
        c.Spawner.args = [*c.Spawner.args, "--allow-root"]
else:
    raise ValueError(f"DIGSITE_HUB_ACCOUNTS must be 'system' or 'shared', not {accounts!r}.")
