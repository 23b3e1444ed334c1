"""`lmforge ui` and `lmforge airflow`: the embedded Airflow a user starts by hand, run for real.

`lmforge ui` must bring every component up healthy with the `spark` pool and our DAGs under
`$LMFORGE_HOME/.airflow`, and a SIGTERM to it must stop all of them (the standalone's components
outlive a killed parent unless their process group is stopped)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LMFORGE = [sys.executable, "-m", "lmforge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is `folder` (the ones `lmforge ui` started there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == folder:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def get(url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


def test_ui_starts_every_component_with_the_pool_and_stops_them_all(tmp_path: Path) -> None:
    home, port = tmp_path.resolve(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(LMFORGE_HOME=str(home), PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    log = (tmp_path / "ui.log").open("w")
    proc = subprocess.Popen([*LMFORGE, "ui", "--port", str(port)], cwd=home, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.monotonic() + 600, {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            try:
                health = get(f"{base}/api/v2/monitor/health")
                if all(
                    (health.get(c) or {}).get("status") == "healthy"
                    for c in ("scheduler", "triggerer", "dag_processor")
                ):
                    break
            except OSError:
                pass
            time.sleep(3)
        else:
            pytest.fail(f"not healthy in time: {health}\n{(tmp_path / 'ui.log').read_text()[-3000:]}")
        passwords = home / ".airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(passwords.read_text())["admin"]
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            token = json.loads(r.read())["access_token"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{base}/api/v2/dags")  # a login is required
        assert refused.value.code == 401
        pools = {p["name"]: p["slots"] for p in get(f"{base}/api/v2/pools", token)["pools"]}
        assert pools.get("spark") == 2, pools
        deadline = time.monotonic() + 300
        while {"curation", "pretrain"} - {d["dag_id"] for d in get(f"{base}/api/v2/dags", token)["dags"]}:
            assert time.monotonic() < deadline, "the DAGs were never parsed"
            time.sleep(3)
        assert processes_in(home), "the components run in LMFORGE_HOME"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    deadline = time.monotonic() + 60
    while processes_in(home) and time.monotonic() < deadline:
        time.sleep(1)
    assert processes_in(home) == [], "components outlived `lmforge ui`"


def test_airflow_command_uses_the_embedded_home(tmp_path: Path) -> None:
    home = tmp_path.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(LMFORGE_HOME=str(home))
    done = subprocess.run(
        [*LMFORGE, "airflow", "pools", "list", "-o", "json"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (home / ".airflow" / "airflow.db").is_file()
    assert {"spark", "default_pool"} <= {p["pool"] for p in json.loads(done.stdout)}
