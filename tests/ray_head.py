"""A real single-node Ray cluster with its dashboard (the Jobs API server) for tests, on loopback.

`ray start --head --block` runs in its own session on free ports and a fresh temp dir, with Ray's
token authentication on or off (on: requests need `headers`); closing it signals only the
processes of that session, so a Ray another test or process started here is never touched (`ray
stop` would stop them all). The test process's own environment is never changed (the head gets
its RAY_AUTH_* in the subprocess's env), so a `ray.init()` elsewhere in the session is unaffected.

A head that cannot start fails the test (`pytest.fail`) rather than skipping it: the Jobs API,
token authentication and `on_kill` are checked only against a real cluster, and a skip would hide
that they were not.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from core.config import REPO_ROOT

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 90.0


@dataclass
class RayHead:
    dashboard: str  # http://127.0.0.1:<port>
    headers: dict[str, str]  # the token header every Jobs API request needs
    temp_dir: Path
    token: str  # the cluster's RAY_AUTH_TOKEN (checked only with token_auth)


class RayHeadUnavailable(RuntimeError):
    """`ray start` could not bring up a dashboard here; the message has its log tail. `ray_head`
    turns it into a test failure."""


START_ATTEMPTS = 3


def _free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _command(temp_dir: Path, ports: list[int]) -> list[str]:
    gcs, dash, client, manager, objects, metrics, agent_http, agent_grpc, env_agent = ports
    return [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}",
        f"--node-manager-port={manager}",
        f"--object-manager-port={objects}",
        f"--metrics-export-port={metrics}",
        f"--dashboard-agent-listen-port={agent_http}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={env_agent}",
        "--num-cpus=2",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]


def _wait_ready(proc: subprocess.Popen, head: RayHead, log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RayHeadUnavailable(f"ray start exited {proc.returncode}: {log_file.read_text()[-3000:]}")
        try:
            if requests.get(f"{head.dashboard}/api/version", headers=head.headers, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RayHeadUnavailable(f"no dashboard after {START_TIMEOUT_S} s: {log_file.read_text()[-3000:]}")


@contextmanager
def ray_head(token_auth: bool = True, extra_env: dict[str, str] | None = None) -> Iterator[RayHead]:
    """`extra_env`: more of the cluster's environment (what its nodes, so its jobs, see)."""
    # Ray's unix socket paths must stay under ~107 bytes: a short temp dir.
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    ports = _free_ports(9)
    token = secrets.token_hex(32)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` in entrypoints
        # explicit either way: unset, Ray turns auth on when ~/.ray/auth_token exists
        "RAY_AUTH_MODE": "token" if token_auth else "disabled",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
        **(extra_env or {}),
    }
    env.pop("RAY_AUTH_TOKEN_PATH", None)  # RAY_AUTH_TOKEN above is the token, whatever this process has
    headers = {"Authorization": f"Bearer {token}"} if token_auth else {}
    proc, head, failure = None, None, None
    # Free ports are probed, then bound by Ray a moment later: another process (a Spark block
    # manager of the same test session) can take one in between and the head dies at start. A fresh
    # set of ports on the next attempt; a head that fails three times is a real failure.
    for attempt in range(START_ATTEMPTS):
        ports = ports if attempt == 0 else _free_ports(9)
        head = RayHead(f"http://127.0.0.1:{ports[1]}", headers, temp_dir, token)
        log_file = temp_dir / f"ray-start-{attempt}.log"
        with log_file.open("w") as log:
            out = {"stdout": log, "stderr": subprocess.STDOUT}
            proc = subprocess.Popen(_command(temp_dir, ports), env=env, start_new_session=True, **out)
        try:
            _wait_ready(proc, head, log_file)
            failure = None
            break
        except RayHeadUnavailable as err:
            failure = str(err)  # kept outside the handler: the report shows no chained traceback
            _stop(proc)
    try:
        if failure is not None or head is None:
            pytest.fail(f"no local Ray head with a dashboard here: {failure}", pytrace=False)
        yield head
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _session_pids(sid: int) -> list[int]:
    """Live processes of the session `ray start` leads: the daemons and workers it started
    (workers get process groups of their own, so a group signal would miss them)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if int(session) == sid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to every process of the cluster's session, by pid, then SIGKILL to any left after
    5 s. Not `ray start`'s own graceful stop: it takes ~30 s after a Ray Train run here, and a
    test cluster has nothing to save."""
    _signal(_session_pids(proc.pid), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while (left := _session_pids(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal(left, signal.SIGKILL)
    proc.wait(timeout=10)
