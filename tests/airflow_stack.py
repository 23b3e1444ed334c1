"""A real Airflow 3 on this machine, for end-to-end tests, the UI check and demos.

`AirflowStack` migrates a fresh AIRFLOW_HOME (SQLite), creates the Spark pool, and starts the real
components, each in its own process group with its log in the home: `airflow api-server`,
`airflow scheduler` (LocalExecutor), `airflow dag-processor` and `airflow triggerer`. Ports are
picked free, so stacks (and other test runs) can share a machine. `stop()` terminates every process
group (SIGTERM, then SIGKILL), so no uvicorn worker, task runner or spark-submit outlives it. On a
failed wait the tail of every component's log is in the exception's message.

    with AirflowStack.start(home, extra_env={"LMFORGE_CONFIG": path}) as stack:
        stack.wait_for_dags(("curation", "pretrain"))
        stack.api.patch("/dags/curation", {"is_paused": False})
        run = stack.api.post("/dags/curation/dagRuns", {"logical_date": None, "conf": {...}})
        stack.wait_for_run("curation", run["dag_run_id"])
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from core.config import load_config
from orchestration.airflow_env import stack_environ
from orchestration.pools import ensure_spark_pool

ALL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED = {"success", "failed"}
T = TypeVar("T")


class StackError(RuntimeError):
    """A component died, or something the stack waited for did not happen in time."""


def free_port() -> int:
    """A TCP port that is free on loopback now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Subprocesses in their own process groups, all terminated (then killed) on close."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        """Start `argv` in a new session, stdout and stderr to `<logs>/<name>.log`."""
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def check_alive(self) -> None:
        """Raise StackError (with the log's tail) if a subprocess has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a subprocess's log."""
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def tails(self, lines: int = 40) -> str:
        """Every subprocess's log tail, for a failure message."""
        return "\n".join(f"--- {n} log ({self.logs / n}.log) ---\n{self.tail(n, lines)}" for n in self.procs)

    def close(self, grace_s: float = 15) -> None:
        """SIGTERM every process group, wait up to `grace_s`, then SIGKILL what is left (stray
        children too: uvicorn workers, the executor's task runners, spark-submit JVMs)."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.procs.clear()


class ApiError(RuntimeError):
    """An HTTP error status from the REST API, with the status and the response body."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:1000]}")
        self.status, self.body = status, body


class Api:
    """A small client for Airflow's REST API (/api/v2). With the simple auth manager's
    `all_admins` no token is needed; otherwise pass one from `POST /auth/token`."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url, self.token = base_url, token

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Send JSON, return the decoded JSON answer; ApiError on an HTTP error status."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}/api/v2{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as err:
            raise ApiError(method, path, err.code, err.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def healthy(self) -> bool:
        """`/api/v2/monitor/health` answers and names the metadata DB healthy."""
        try:
            health = self.get("/monitor/health")
        except (urllib.error.URLError, ApiError, ConnectionError, TimeoutError, OSError, ValueError):
            return False
        return bool(health and health.get("metadatabase", {}).get("status") == "healthy")


class AirflowStack:
    """The running components of one Airflow home; a context manager that stops them."""

    def __init__(self, home: Path, env: dict[str, str], port: int, procs: Processes) -> None:
        self.home, self.env, self.port, self.procs = home, env, port, procs
        self.base_url = f"http://127.0.0.1:{port}"
        self.api = Api(self.base_url)

    @classmethod
    def start(
        cls,
        home: Path,
        extra_env: Mapping[str, str] | None = None,
        components: Iterable[str] = ALL_COMPONENTS,
        timeout_s: float = 180,
        spark_master: str = "local[2]",
    ) -> AirflowStack:
        """Migrate `home`'s DB, create the Spark pool, start `components`, wait until healthy."""
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            **stack_environ(home, port, spark_master=spark_master, log_ports=(free_port(), free_port())),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # the component logs are what a failure shows
            **(extra_env or {}),
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        migrate = subprocess.run(
            [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if migrate.returncode:
            raise StackError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-3000:]}")
        # The deployment's config names the pool: load it as the DAGs will (LMFORGE_CONFIG).
        with _environ(env, ("LMFORGE_CONFIG", "LMFORGE_PROFILE")):
            cfg = load_config()
        ensure_spark_pool(cfg, env)
        procs = Processes(home)
        stack = cls(home, env, port, procs)
        try:
            for name in components:
                argv = [airflow, name]
                if name == "api-server":
                    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
                procs.start(name, argv, env)
            stack.wait("the API server to be healthy", stack.api.healthy, timeout_s)
        except BaseException:
            procs.close()
            raise
        return stack

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every component and what it started; idempotent."""
        self.procs.close()

    def wait(self, what: str, ready: Callable[[], T | None], timeout_s: float, interval_s: float = 1.0) -> T:
        """Poll `ready()` until it returns something truthy; StackError with every component's log
        tail if a component died or time ran out."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.procs.check_alive()
            except StackError as err:
                raise StackError(f"while waiting for {what}: {err}\n{self.procs.tails()}") from None
            if value := ready():
                return value
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{self.procs.tails()}")
            time.sleep(interval_s)

    def wait_for_dags(self, dag_ids: Iterable[str], timeout_s: float = 180) -> None:
        """Until every DAG is parsed (listed, not stale); on timeout the import errors are named."""
        wanted = tuple(dag_ids)

        def parsed() -> bool:
            dags = {d["dag_id"]: d for d in self.api.get("/dags?limit=100")["dags"]}
            return all(d in dags and not dags[d].get("is_stale") for d in wanted)

        try:
            self.wait(f"DAGs {', '.join(wanted)} to be parsed", parsed, timeout_s, interval_s=2)
        except StackError as err:
            errors = self.api.get("/importErrors").get("import_errors", [])
            detail = "\n".join(f"{e['filename']}:\n{e['stack_trace'][-1500:]}" for e in errors)
            raise StackError(f"{err}\nimport errors:\n{detail or '(none)'}") from None

    def unpause(self, *dag_ids: str) -> None:
        for dag_id in dag_ids:
            self.api.patch(f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        """`POST /dags/{dag_id}/dagRuns`: the created run (ApiError, status 400, on a bad param)."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        run: dict[str, Any] = self.api.post(f"/dags/{dag_id}/dagRuns", body)
        return run

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api.get(f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return runs

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.api.get(f"{_run_path(dag_id, run_id)}/taskInstances?limit=100")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value, deserialized by the API."""
        path = f"{_run_path(dag_id, run_id)}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self.api.get(path)["value"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = 600) -> dict[str, Any]:
        """Until the run finishes (success or failed); the run. A failed run is returned too:
        the caller asserts, with `failure_report` for the message."""

        def finished() -> dict[str, Any] | None:
            run: dict[str, Any] = self.api.get(_run_path(dag_id, run_id))
            return run if run["state"] in FINISHED else None

        return self.wait(f"{dag_id} run {run_id} to finish", finished, timeout_s, interval_s=2)

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task's log as the API serves it (the lines' events joined)."""
        path = f"{_run_path(dag_id, run_id)}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        try:
            content = self.api.get(path).get("content", [])
        except ApiError as err:
            return f"(no log: {err})"
        if isinstance(content, str):
            return content
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in content)

    def failure_report(self, dag_id: str, run_id: str, lines: int = 60) -> str:
        """Task states, the tail of every failed task's log, and the components' log tails."""
        states = self.task_states(dag_id, run_id)
        parts = [f"{dag_id} {run_id}: {states}"]
        for task_id, state in states.items():
            if state not in ("success", "skipped", None):
                log = self.task_log(dag_id, run_id, task_id).splitlines()[-lines:]
                parts.append(f"--- task {task_id} ({state}) ---\n" + "\n".join(log))
        return "\n".join(parts) + "\n" + self.procs.tails(20)


def _run_path(dag_id: str, run_id: str) -> str:
    """The REST path of a DAG run (run ids hold `+` and `:`)."""
    return f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


@contextlib.contextmanager
def _environ(env: Mapping[str, str], keys: Iterable[str]) -> Iterator[None]:
    """os.environ's `keys` temporarily as in `env` (load_config reads LMFORGE_CONFIG from it)."""
    saved = {k: os.environ.get(k) for k in keys}
    for key in saved:
        if key in env:
            os.environ[key] = env[key]
        else:
            os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
