"""Pretraining on a Ray cluster through the Ray Jobs API (the dashboard's REST service).

Why a job rather than a Ray Client driver inside the Airflow task: the driver then runs on the
cluster, so the run outlives an Airflow worker restart, its logs stay in the dashboard, and it can
be stopped by id (Ray's docs send long-running workloads to Jobs; Ray Client is for interactive
development). The job runs `python -m training.submit_entry`, which calls the same
`pretrain_stage` as a local run and prints its summary as the last `RESULT_MARKER` line; `wait`
reads it back from the job's logs, so no shared folder is needed for the answer.

Submission ids are deterministic (run id + the stage's config fingerprint): submitting again
attaches to a pending, running or finished job instead of starting a second one, and after a
failed or stopped one starts a next attempt, so an Airflow retry re-runs it (Ray Train resumes
from the run's checkpoints, whose run name carries the same fingerprint).

Secrets: the cluster runs with Ray's token authentication (RAY_AUTH_MODE=token), so every request
carries `Authorization: Bearer <token>`, the token read from this deployment's environment
(`RAY_AUTH_TOKEN`, or the file named by `RAY_AUTH_TOKEN_PATH`: Ray's own variables, so one Secret
serves the cluster and its clients), never from a DAG param, never logged. Nothing secret goes
into a job's entrypoint or runtime_env, which the dashboard shows to anyone holding the token and
Ray writes to its logs: the job reads storage credentials from the cluster's own environment
(`AWS_*` from the Compose file or the `lmforge-s3` Kubernetes Secret, or its `LMFORGE_CONFIG`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import REPO_ROOT, PipelineConfig
from core.overrides import SECRET_NAME

if TYPE_CHECKING:
    from ray.job_submission import JobStatus, JobSubmissionClient

log = logging.getLogger("lmforge.jobs")

RESULT_MARKER = "LMFORGE_RESULT "
DEFAULT_DASHBOARD_PORT = 8265  # `ray start --dashboard-port` default; KubeRay's head Service too
LOG_TAIL_LINES = 40
LOG_PREFIX = "ray job | "  # the job's own log lines, in the Airflow task's log
LOG_BYTES_PER_POLL = 64 * 1024  # at most this much new job log is copied into the task log per poll
# Uploaded with the job as py_modules, never with data, venvs or a Compose `.env` (it holds the
# stack's passwords) inside them.
PROJECT_PACKAGES = ("core", "jobs", "training", "orchestration", "lmforge", "dags", "demo")
WORKING_DIR_EXCLUDES = [
    ".git",
    ".venv",
    ".data",
    ".demo",
    ".bench",
    ".airflow",
    ".env",
    "tests",
    "**/__pycache__",
]
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


class RayJobError(RuntimeError):
    """A Ray job ended without a result; the message names the job, its status and its last logs."""


class RayAuthError(RayJobError):
    """The cluster's Jobs API refused this client's token (missing or wrong); says where to set it."""


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`Authorization: Bearer <token>` from the deployment's environment, {} when it names none.

    `RAY_AUTH_TOKEN` first, then the file named by `RAY_AUTH_TOKEN_PATH` (Ray's precedence); a
    path that names no readable, non-empty file is an error, not a silent request without token.
    """
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if not token and (path := env.get(TOKEN_PATH_ENV)):
        try:
            token = Path(path).read_text().strip()
        except OSError as err:
            raise RayAuthError(f"{TOKEN_PATH_ENV}={path}: cannot read the Ray token file ({err})") from None
        if not token:
            raise RayAuthError(f"{TOKEN_PATH_ENV}={path}: the Ray token file is empty")
    return {"Authorization": f"Bearer {token}"} if token else {}


def dashboard_url(address: str) -> str:
    """The Jobs API endpoint for a `ray.address`: http(s) URLs as given, else the address's host on
    the dashboard's default port (`ray://head:10001` -> `http://head:8265`)."""
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    host = address.removeprefix("ray://").split("/", 1)[0].rsplit(":", 1)[0]
    if host in ("", "auto", "localhost"):
        host = "127.0.0.1"
    return f"http://{host}:{DEFAULT_DASHBOARD_PORT}"


def submission_id(kind: str, run_id: str, fingerprint: str) -> str:
    """`lmforge-<kind>-<run id>-<16 hex of the fingerprint>`: same run + config, same job."""
    safe_run = re.sub(r"[^A-Za-z0-9_-]+", "-", run_id).strip("-") or "run"
    return f"lmforge-{kind}-{safe_run}-{fingerprint[:16]}"


def attempt_id(job_id: str, n: int) -> str:
    return job_id if n == 1 else f"{job_id}-try{n}"


def print_result(result: dict[str, Any]) -> None:
    """What a job's entrypoint prints last so that `wait` can return it."""
    print(RESULT_MARKER + json.dumps(result, default=str, sort_keys=True), flush=True)


def result_from_logs(logs: str) -> dict[str, Any] | None:
    for line in reversed(logs.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    return None


def logs_tail(logs: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(logs.rstrip().splitlines()[-lines:])


class LogFollower:
    """The part of a job's log not yet shown, for a caller that gets the whole log on every poll.

    The Jobs API (`GET /api/jobs/{id}/logs`) has no offset parameter, so the offset is kept here,
    in bytes of the UTF-8 log. One poll hands out at most `max_bytes`, cut after its last complete
    line (a longer line is cut at the bound), so a chatty job cannot flood the task log or stall a
    poll loop; the rest follows on later polls. More than `max_lag_polls` polls' worth behind (a
    job that logs faster than that, or a trigger that restarted on another triggerer and starts
    from 0), it skips to the log's last `max_bytes`, saying how much it skipped. Once the job is
    over (`final`), what is left is handed out at once, and when that is more than `max_bytes` only
    its end is (where the error is).
    """

    def __init__(self, max_bytes: int = LOG_BYTES_PER_POLL, max_lag_polls: int = 4) -> None:
        self.max_bytes = max_bytes
        self.max_lag_polls = max_lag_polls
        self.offset = 0

    def new_lines(self, logs: str, *, final: bool = False) -> list[str]:
        data = logs.encode("utf-8", "replace")
        if len(data) < self.offset:  # a shorter log than last time: not the log we followed
            self.offset = 0
        pending = data[self.offset :]
        skipped: list[str] = []
        if len(pending) > (self.max_bytes if final else self.max_lag_polls * self.max_bytes):
            start = len(pending) - self.max_bytes
            newline = pending.find(b"\n", start)
            start = newline + 1 if 0 <= newline < len(pending) - 1 else start  # start on a line
            skipped = [f"[... {start} bytes of the job's log skipped ...]"]
            self.offset += start
            pending = pending[start:]
        chunk = pending if final else pending[: self.max_bytes]
        if not final:
            if end := chunk.rfind(b"\n") + 1:
                chunk = chunk[:end]
            elif len(chunk) < self.max_bytes:
                chunk = b""  # a partial last line waits for its end, unless it alone fills the bound
        self.offset += len(chunk)
        return skipped + chunk.decode("utf-8", "replace").splitlines()


def job_result(
    job_id: str, address: str, status: str, message: str | None, tail: str, result: dict[str, Any] | None
) -> dict[str, Any]:
    """A finished job's result, or RayJobError naming its status, Ray's message and its last logs.

    Shared by the in-task wait and the deferred one (PretrainOperator.execute_complete), so both
    fail with the same message."""
    if status == "SUCCEEDED":
        if result is None:
            raise RayJobError(
                f"Ray job {job_id} succeeded but printed no {RESULT_MARKER.strip()} line; "
                f"last log lines:\n{tail}"
            )
        return result
    raise RayJobError(f"Ray job {job_id} at {address} {status}: {message}\nlast log lines:\n{tail}")


class RayJobs:
    """Submit, attach to, wait for and stop jobs on one Ray cluster.

    `headers` go with every request; left None they are `auth_headers()`, the token of this
    deployment's environment (with none there, Ray's own lookup applies: ~/.ray/auth_token when
    RAY_AUTH_MODE=token). Connecting checks the token: a refused one raises RayAuthError here.
    """

    def __init__(self, address: str, *, poll_s: float = 5.0, headers: dict[str, str] | None = None) -> None:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient

        self.address = dashboard_url(address)
        self.poll_s = poll_s
        sent = auth_headers() if headers is None else headers
        try:
            self.client: JobSubmissionClient = JobSubmissionClient(self.address, headers=sent)
        except AuthenticationError as err:
            had = "a token it rejected" if sent else f"no token ({TOKEN_ENV}, {TOKEN_PATH_ENV} unset)"
            raise RayAuthError(
                f"the Ray Jobs API at {self.address} refused this client, which sent {had}: set "
                f"{TOKEN_ENV} (or {TOKEN_PATH_ENV}, a file) in the submitting process's environment "
                f"to the cluster's token. Ray said: {' '.join(err.message.split())}"
            ) from None

    def status(self, job_id: str) -> JobStatus | None:
        """The job's status, or None when the cluster has no job with this id."""
        try:
            return self.client.get_job_status(job_id)
        except RuntimeError as err:
            if "does not exist" in str(err):
                return None
            raise

    def attempts(self, job_id: str) -> list[tuple[str, JobStatus]]:
        """The job's attempts on the cluster, oldest first: `job_id`, `job_id-try2`, ..."""
        found: list[tuple[str, JobStatus]] = []
        while (status := self.status(attempt_id(job_id, len(found) + 1))) is not None:
            found.append((attempt_id(job_id, len(found) + 1), status))
        return found

    def submit(
        self, job_id: str, entrypoint: str, runtime_env: dict[str, Any] | None = None, **kwargs: Any
    ) -> str:
        """Start `entrypoint` as job `job_id` unless it runs or ran already; the id to wait on.

        The latest attempt pending, running or succeeded: attach to it. Failed or stopped: start
        attempt `job_id-tryN` (a new id: Ray tears the old job's supervisor down asynchronously,
        so reusing a deleted id races with it; the failed attempts stay visible in the dashboard).
        kwargs go to `JobSubmissionClient.submit_job` (metadata, entrypoint_num_cpus, ...).
        """
        from ray.job_submission import JobStatus

        attempts = self.attempts(job_id)
        if attempts and attempts[-1][1] not in (JobStatus.FAILED, JobStatus.STOPPED):
            log.info("Ray job %s is already %s at %s: attaching", *attempts[-1], self.address)
            return attempts[-1][0]
        attempt = attempt_id(job_id, len(attempts) + 1)
        try:
            self.client.submit_job(
                entrypoint=entrypoint, submission_id=attempt, runtime_env=runtime_env, **kwargs
            )
        except RuntimeError as err:
            if "already exists" not in str(err):
                raise
            log.info("Ray job %s was submitted concurrently: attaching", attempt)
            return attempt
        log.info("submitted Ray job %s to %s", attempt, self.address)
        return attempt

    def wait(
        self, job_id: str, timeout_s: float | None = None, *, follow: LogFollower | None = None
    ) -> dict[str, Any]:
        """Poll every `poll_s` until the job ends; its result on success, RayJobError otherwise.

        With `follow`, each poll also copies the job's new log lines into this process's log
        (`LOG_PREFIX` + line), so the Airflow task log shows the training as it runs."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        info = self.client.get_job_info(job_id)
        while not info.status.is_terminal():
            if follow is not None:
                self._log_lines(job_id, follow.new_lines(self.client.get_job_logs(job_id)))
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Ray job {job_id} still {info.status} after {timeout_s} s")
            time.sleep(self.poll_s)
            info = self.client.get_job_info(job_id)
        logs = self.client.get_job_logs(job_id)
        if follow is not None:
            self._log_lines(job_id, follow.new_lines(logs, final=True))
        result = result_from_logs(logs) if str(info.status) == "SUCCEEDED" else None
        return job_result(job_id, self.address, str(info.status), info.message, logs_tail(logs), result)

    @staticmethod
    def _log_lines(job_id: str, lines: list[str]) -> None:
        for line in lines:
            log.info("%s%s", LOG_PREFIX, line)

    def stop(self, job_id: str) -> bool:
        """Ask the cluster to stop the job (SIGTERM, then SIGKILL); True if it was still running."""
        stopped = self.client.stop_job(job_id)
        log.info("stop requested for Ray job %s: %s", job_id, "stopping" if stopped else "not running")
        return stopped

    def run(self, job_id: str, entrypoint: str, runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.wait(self.submit(job_id, entrypoint, runtime_env))


def project_modules() -> list[str]:
    """The project's packages, from a checkout or from site-packages after `pip install .`: shipped as
    the job's `py_modules` rather than a working_dir, which for an installed lmforge would be the
    whole site-packages."""
    return [
        str(REPO_ROOT / name) for name in PROJECT_PACKAGES if (REPO_ROOT / name / "__init__.py").is_file()
    ]


def repo_runtime_env(env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """Ship the project's packages with the job, so the cluster runs the code Airflow has.

    `env_vars` must hold no credentials: a runtime_env is stored in plain text with the job (the
    dashboard shows it); the cluster's nodes get their secrets from their own environment.
    """
    env: dict[str, Any] = {"py_modules": project_modules(), "excludes": WORKING_DIR_EXCLUDES}
    if env_vars:
        if secret := sorted(k for k in env_vars if SECRET_NAME.search(k)):
            raise ValueError(
                f"runtime_env env_vars {secret} look like credentials: a job's runtime_env is stored "
                "and shown in plain text; give them to the cluster's nodes through their environment"
            )
        env["env_vars"] = env_vars
    return env


def secret_fields(overrides: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Dotted names of the credential-named fields of a config overrides tree."""
    if not isinstance(overrides, dict):
        return []
    found = []
    for key, value in overrides.items():
        name = (*path, str(key))
        found += [".".join(name)] if SECRET_NAME.search(str(key)) else secret_fields(value, name)
    return found


def pretrain_job(
    run_id: str, profile: str | None, overrides_json: str | None, *, force: bool = False, nonce: str = ""
) -> tuple[PipelineConfig, str, str]:
    """(config, job id, entrypoint) for pretraining a run's committed shards on a cluster.

    Fails here, before anything is submitted, on a bad config or uncommitted shards. The job id
    carries the stage's fingerprint (core/plans.py, the same plan the stage commits under); a
    forced rerun adds `nonce` (the Airflow run id), so it does not attach to the finished job. The
    profile is resolved on this side and passed on, so the job cannot pick another from its
    environment. Overrides travel in the entrypoint's command line, so credentials in them are
    refused: the job reads the storage credentials from the cluster's environment.
    """
    from core.config import ConfigError, load_config
    from core.plans import plan_for
    from core.storage import open_storage

    if secret := secret_fields(json.loads(overrides_json) if overrides_json else {}):
        raise ConfigError(
            f"overrides {secret} refused for a Ray job: its entrypoint (shown by the dashboard, kept "
            "in Ray's logs) must not carry credentials; the job reads them from the cluster's "
            "environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or its LMFORGE_CONFIG)"
        )
    cfg = load_config(profile or None, overrides_json or None)
    plan = plan_for(open_storage(cfg.storage), run_id, "pretrain", cfg)
    job_id = submission_id("pretrain", run_id, plan.fingerprint)
    if force:
        job_id = f"{job_id}-force-{re.sub(r'[^A-Za-z0-9_-]+', '-', nonce)[:40] or 'now'}"
    args = ["--run-id", run_id, "--profile", cfg.profile, "--overrides", overrides_json or "{}"]
    entrypoint = shlex.join(["python", "-m", "training.submit_entry", *args, *(["--force"] if force else [])])
    return cfg, job_id, entrypoint
