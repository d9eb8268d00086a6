"""Load test of the workshop hub: N learners run chapter 1's solution at the same time.

    python benchmarks/hub_load.py --users 5            # one run
    python benchmarks/hub_load.py --users 2 5 10 --json build/hub_load.json

For each N: starts the hub (hub/start.py's setup, shared accounts) on 127.0.0.1 with a
fresh state folder and N learners; logs each learner in through the hub's REST API (an admin
service token asks the hub for a token per learner; one learner also logs in through the real
login form with the room password); starts every learner's server; opens a kernel for each
through the Jupyter server REST API and its kernel websocket; then, all together, every learner
runs every code cell of the solution notebook (default solutions/01_hooks.ipynb) one after the
other, as a learner pressing Shift-Enter without pause would. It measures: whether every run
succeeded, each cell's latency (request sent -> kernel idle), p50/p95/max over all cells of all
learners, each learner's memory (PSS of their server and kernel) and the hub's, then stops
everything (kernels, servers, hub, proxy). All traffic stays on 127.0.0.1; every wait is bounded.

Capacity: the largest N measured whose runs all succeeded with p95 cell latency under --target
seconds (2 s), counting the cells after the first two (the Colab setup cell, then imports and model
loading, which a learner runs once per session; p95 over all cells is reported too).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("hub_start", ROOT / "hub" / "start.py")
hub_start = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hub_start)


SETUP_CELLS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


class Hub:
    """A hub on 127.0.0.1 in its own process group, with an admin service token; stopped by `close`."""

    def __init__(self, n_users: int, state: Path):
        self.state = state
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.password = secrets.token_urlsafe(12)
        self.names = [f"learner{i:03d}" for i in range(1, n_users + 1)]
        users = state / "users.txt"
        state.mkdir(parents=True, exist_ok=True)
        users.write_text("\n".join(self.names) + "\n")
        command, env = hub_start.prepare(
            users, self.password, "shared", state / "hub", port=self.port, api_token=self.token
        )
        self.log = open(state / "hub.log", "w")  # noqa: SIM115 - open while the hub runs; closed by close()
        self.proc = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=state, start_new_session=True
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop the hub (it stops every server and the proxy), then make sure its whole group is gone."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the group (a server or kernel that outlived the hub)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()


async def api(client, method: str, url: str, token: str, body: dict | None = None, ok=(200, 201, 202, 204)):
    from tornado.httpclient import HTTPRequest

    request = HTTPRequest(
        url,
        method=method,
        headers={"Authorization": f"token {token}"},
        body=json.dumps(body) if body is not None else (b"" if method == "POST" else None),
        request_timeout=300,
        allow_nonstandard_methods=True,
    )
    response = await client.fetch(request, raise_error=False)
    if response.code not in ok:
        raise RuntimeError(f"{method} {url} -> {response.code}: {response.body[:300] if response.body else ''}")
    return json.loads(response.body) if response.body else None


async def wait_for_hub(client, hub: Hub, deadline: float) -> None:
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise RuntimeError("The hub exited:\n" + (hub.state / "hub.log").read_text()[-3000:])
        try:
            await api(client, "GET", f"{hub.base}/hub/api/", hub.token)
            return
        except (OSError, RuntimeError):
            await asyncio.sleep(0.5)
    raise TimeoutError("The hub did not answer in time:\n" + (hub.state / "hub.log").read_text()[-3000:])


async def login_form(client, hub: Hub, name: str) -> bool:
    """The real login page accepts a listed learner with the room password (and refuses a wrong one)."""
    from urllib.parse import urlencode

    from tornado.httpclient import HTTPRequest

    page = await client.fetch(f"{hub.base}/hub/login", raise_error=False)
    cookie = "; ".join(c.split(";")[0] for c in page.headers.get_list("Set-Cookie"))
    xsrf = next((c.split("=", 1)[1] for c in cookie.split("; ") if c.startswith("_xsrf=")), "")
    results = []
    for password in (hub.password, hub.password + "x"):
        response = await client.fetch(
            HTTPRequest(
                f"{hub.base}/hub/login",
                method="POST",
                follow_redirects=False,
                headers={"Cookie": cookie},
                body=urlencode({"username": name, "password": password, "_xsrf": xsrf}),
            ),
            raise_error=False,
        )
        results.append(
            response.code == 302 and "jupyterhub-session-id" in " ".join(response.headers.get_list("Set-Cookie"))
        )
    return results == [True, False]


async def learner(
    client, hub: Hub, name: str, token: str, cells: list[str], go: asyncio.Event, ready: asyncio.Queue, deadline: float
) -> dict:
    """One learner: a kernel on their server, then every cell in order once `go` is set."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    base = f"{hub.base}/user/{name}"
    kernel = await api(client, "POST", f"{base}/api/kernels", token, {"name": "python3"})
    ws = await websocket_connect(
        HTTPRequest(
            f"ws://127.0.0.1:{hub.port}/user/{name}/api/kernels/{kernel['id']}/channels",
            headers={"Authorization": f"token {token}"},
            request_timeout=120,
        )
    )
    session = uuid.uuid4().hex
    latencies: list[float] = []
    error = ""

    async def run(code: str) -> tuple[float, str]:
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": name,
                        "session": session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        start, replied, idle, status = time.perf_counter(), False, False, ""
        while not (replied and idle):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{name}: a cell did not finish before the deadline")
            raw = await asyncio.wait_for(ws.read_message(), timeout=remaining)
            if raw is None:
                raise ConnectionError(f"{name}: the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_reply":
                replied, status = True, msg["content"]["status"]
                if status == "error":
                    status = f"error: {msg['content'].get('ename')}: {msg['content'].get('evalue')}"[:300]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        return time.perf_counter() - start, status

    await run("1 + 1")  # the kernel is up and answering before the clock starts
    ready.put_nowait(name)
    await go.wait()
    start = time.perf_counter()
    for code in cells:
        seconds, status = await run(code)
        latencies.append(seconds)
        if status != "ok":
            error = status
            break
    wall = time.perf_counter() - start
    return {
        "name": name,
        "kernel": kernel["id"],
        "ok": not error and len(latencies) == len(cells),
        "error": error,
        "latencies": latencies,
        "wall_s": wall,
        "ws": ws,
    }


def usage_by_learner(hub_pid: int) -> tuple[dict[str, float], dict[str, float], float]:
    """Per learner (by JUPYTERHUB_USER): PSS in MB and CPU seconds used so far of their server +
    kernel; and the PSS of the hub + proxy. CPU seconds do not depend on how busy the machine is."""
    import psutil

    mb: dict[str, float] = {}
    cpu: dict[str, float] = {}
    hub_mb = 0.0
    root = psutil.Process(hub_pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            pss = proc.memory_full_info().pss / 2**20
            times = proc.cpu_times()
            user = proc.environ().get("JUPYTERHUB_USER")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if user:
            mb[user] = mb.get(user, 0.0) + pss
            cpu[user] = cpu.get(user, 0.0) + times.user + times.system
        else:
            hub_mb += pss
    return mb, cpu, hub_mb


async def one_run(n: int, notebook: Path, timeout: float) -> dict:
    """Start a hub with n learners, run the notebook in every kernel at once, measure, stop everything."""
    from tornado.httpclient import AsyncHTTPClient

    cells = code_cells(notebook)
    deadline = time.monotonic() + timeout
    client = AsyncHTTPClient(max_clients=max(10, 2 * n + 4))
    with tempfile.TemporaryDirectory(prefix="digsite-hub-load-") as tmp:
        hub = Hub(n, Path(tmp))
        results: list[dict] = []
        try:
            await wait_for_hub(client, hub, time.monotonic() + 120)
            form_ok = await login_form(client, hub, hub.names[0])
            tokens = {}
            for name in hub.names:  # each learner's own token, issued by the hub's REST API
                tokens[name] = (
                    await api(
                        client,
                        "POST",
                        f"{hub.base}/hub/api/users/{name}/tokens",
                        hub.token,
                        {"note": "load test", "expires_in": 3600},
                    )
                )["token"]
            t0 = time.perf_counter()
            await asyncio.gather(
                *(api(client, "POST", f"{hub.base}/hub/api/users/{name}/server", tokens[name]) for name in hub.names)
            )
            while time.monotonic() < deadline:
                users = [await api(client, "GET", f"{hub.base}/hub/api/users/{name}", hub.token) for name in hub.names]
                if all(u["servers"].get("", {}).get("ready") for u in users):
                    break
                await asyncio.sleep(1)
            else:
                raise TimeoutError("Not every learner's server started in time.")
            spawn_s = time.perf_counter() - t0
            go, ready = asyncio.Event(), asyncio.Queue()
            tasks = [
                asyncio.create_task(learner(client, hub, name, tokens[name], cells, go, ready, deadline))
                for name in hub.names
            ]
            waiting = n  # start everyone at the same moment, once every kernel answered its warm-up
            while waiting and time.monotonic() < deadline and not any(t.done() for t in tasks):
                try:
                    await asyncio.wait_for(ready.get(), timeout=1)
                    waiting -= 1
                except asyncio.TimeoutError:
                    pass
            go.set()
            gathered = await asyncio.gather(*tasks, return_exceptions=True)
            per_mb, per_cpu, hub_mb = usage_by_learner(hub.proc.pid)
            for name, r in zip(hub.names, gathered):
                if isinstance(r, BaseException):
                    results.append(
                        {
                            "name": name,
                            "ok": False,
                            "error": f"{type(r).__name__}: {r}",
                            "latencies": [],
                            "wall_s": float("nan"),
                        }
                    )
                else:
                    r["ws"].close()
                    await api(client, "DELETE", f"{hub.base}/user/{name}/api/kernels/{r['kernel']}", tokens[name])
                    results.append({k: v for k, v in r.items() if k != "ws"})
        finally:
            hub.close()
            client.close()
    latencies = [x for r in results for x in r["latencies"]]
    # The first two cells (Colab setup, then imports and model loading) run once per session;
    # the rest are what a learner waits for while working.
    working = [x for r in results for x in r["latencies"][SETUP_CELLS:]]
    learners_mb = [per_mb.get(r["name"], float("nan")) for r in results]
    learners_cpu = [per_cpu.get(r["name"], float("nan")) for r in results]
    by_cell = [
        statistics.median(r["latencies"][i] for r in results if len(r["latencies"]) > i)
        for i in range(max((len(r["latencies"]) for r in results), default=0))
    ]
    slowest = sorted(range(len(by_cell)), key=lambda i: -by_cell[i])[:3]
    return {
        "n": n,
        "succeeded": sum(r["ok"] for r in results),
        "login_form_ok": form_ok,
        "cells": len(cells),
        "spawn_all_s": round(spawn_s, 1),
        "p50_s": round(percentile(latencies, 50), 3),
        "p95_s": round(percentile(latencies, 95), 3),
        "max_s": round(max(latencies, default=float("nan")), 3),
        "p50_after_setup_s": round(percentile(working, 50), 3),
        "p95_after_setup_s": round(percentile(working, 95), 3),
        "by_cell_median_s": [round(x, 3) for x in by_cell],
        "wall_median_s": round(statistics.median(r["wall_s"] for r in results), 1),
        "learner_mb_median": round(statistics.median(learners_mb), 0),
        "hub_proxy_mb": round(hub_mb, 0),
        "learner_cpu_s_median": round(statistics.median(learners_cpu), 1),
        "slowest_cells": [
            {"cell": i + 1, "median_s": round(by_cell[i], 2), "code": cells[i].splitlines()[0][:60]} for i in slowest
        ],
        "errors": [f"{r['name']}: {r['error']}" for r in results if not r["ok"]][:5],
        "load_avg_1min_after": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, nargs="+", default=[5], help="numbers of learners, one run each")
    parser.add_argument("--notebook", type=Path, default=ROOT / "solutions" / "01_hooks.ipynb")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed for one run, all included")
    parser.add_argument("--target", type=float, default=2.0, help="p95 cell latency that counts as served (s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import psutil

    machine = {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1min_before": round(os.getloadavg()[0], 1),
    }
    print(f"machine: {machine}", flush=True)
    runs = []
    for n in args.users:
        result = asyncio.run(one_run(n, args.notebook, args.timeout))
        runs.append(result)
        print(json.dumps(result), flush=True)
    served = [r["n"] for r in runs if r["succeeded"] == r["n"] and r["p95_after_setup_s"] < args.target]
    summary = {
        "machine": machine,
        "notebook": str(args.notebook.relative_to(ROOT)) if args.notebook.is_relative_to(ROOT) else str(args.notebook),
        "target_p95_s": args.target,
        "runs": runs,
        "capacity_measured": max(served, default=0),
    }
    print(
        f"\n{'N':>4} {'ok':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'p95 after setup':>15} "
        f"{'MB/learner':>10} {'CPU s/learner':>13} {'spawn s':>8}"
    )
    for r in runs:
        print(
            f"{r['n']:>4} {r['succeeded']:>3}/{r['n']:<2} {r['p50_s']:>7} {r['p95_s']:>7} {r['max_s']:>7} "
            f"{r['p95_after_setup_s']:>15} {r['learner_mb_median']:>10} {r['learner_cpu_s_median']:>13} "
            f"{r['spawn_all_s']:>8}"
        )
    print(
        f"largest N measured with every run ok and p95 (after the setup cells) < {args.target} s: "
        f"{summary['capacity_measured']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0 if all(r["succeeded"] == r["n"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
