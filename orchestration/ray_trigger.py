"""Waiting for a Ray job in the triggerer, so a days-long training run holds no worker slot.

PretrainOperator submits the job on a worker and defers to `RayJobTrigger`, which polls the Ray
Jobs REST API (the dashboard: `GET /api/jobs/{id}`, `GET /api/jobs/{id}/logs`) from the
triggerer's event loop with httpx's async client, every request bounded by a timeout, and fires one
TriggerEvent when the job is over. Its log lines go to the trigger's logger, which Airflow 3 writes
into the deferred task's log, so the job's output shows in the task log while it trains.

Secrets: `serialize()` is stored in the metadata DB (the trigger table), so it holds no token; the
trigger reads it from the triggerer's environment (`RAY_AUTH_TOKEN` / `RAY_AUTH_TOKEN_PATH`,
training/jobs_api.py `auth_headers`), like the worker does for the submission.

Stopping: Airflow 3.3's triggerer calls `on_kill()` when a user marks the deferred task failed or
succeeded or clears it, and this one stops the job. It does not call it on a trigger or execution
timeout; PretrainOperator.resume_execution stops the job then (see there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from training.jobs_api import (
    LOG_BYTES_PER_POLL,
    LOG_PREFIX,
    TOKEN_ENV,
    TOKEN_PATH_ENV,
    LogFollower,
    RayAuthError,
    auth_headers,
    logs_tail,
    result_from_logs,
)

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
ERROR = "ERROR"  # the event's status when the job's state could not be learned (it may still run)
REQUEST_TIMEOUT_S = 30.0
ON_KILL_TIMEOUT_S = 10.0  # the stop request's own bound, inside the triggerer's on_kill_timeout
MAX_POLL_FAILURES = 30  # consecutive failed polls (a dashboard restart, a network blip) before giving up


class _Refused(Exception):
    """The Jobs API answered, and no retry will change its answer (401/403, no such job)."""


class RayJobTrigger(BaseTrigger):
    """Fires {"status", "job_id", "address", "message", "logs_tail", "result"} when the job ends.

    `status` is Ray's terminal status, or "ERROR" when the job could not be watched (token refused,
    job unknown, dashboard unreachable for `max_poll_failures` polls): the job is not stopped then,
    so the task's retry attaches to it.
    """

    def __init__(
        self,
        *,
        address: str,
        job_id: str,
        poll_s: float = 10.0,
        max_log_bytes: int = LOG_BYTES_PER_POLL,
        max_poll_failures: int = MAX_POLL_FAILURES,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.address = address.rstrip("/")
        self.job_id = job_id
        self.poll_s = poll_s
        self.max_log_bytes = max_log_bytes
        self.max_poll_failures = max_poll_failures
        self.request_timeout_s = request_timeout_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "address": self.address,
                "job_id": self.job_id,
                "poll_s": self.poll_s,
                "max_log_bytes": self.max_log_bytes,
                "max_poll_failures": self.max_poll_failures,
                "request_timeout_s": self.request_timeout_s,
            },
        )

    def _client(self, headers: dict[str, str], timeout_s: float | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.address,
            headers=headers,
            timeout=httpx.Timeout(timeout_s or self.request_timeout_s),
            limits=httpx.Limits(max_connections=2),
            follow_redirects=False,
        )

    async def _get(self, client: httpx.AsyncClient, path: str) -> dict[str, Any]:
        response = await client.get(path)
        if response.status_code in (401, 403):
            raise _Refused(
                f"the Ray Jobs API at {self.address} refused the triggerer's token "
                f"(HTTP {response.status_code}): set {TOKEN_ENV} (or {TOKEN_PATH_ENV}, a file) in the "
                "triggerer's environment to the cluster's token"
            )
        if response.status_code == 404:
            raise _Refused(f"Ray job {self.job_id} does not exist at {self.address}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def _event(self, status: str, message: str | None, logs: str = "") -> TriggerEvent:
        result = result_from_logs(logs) if status == "SUCCEEDED" else None
        return TriggerEvent(
            {
                "status": status,
                "job_id": self.job_id,
                "address": self.address,
                "message": message,
                "logs_tail": logs_tail(logs),
                "result": result,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            headers = auth_headers()
        except RayAuthError as err:
            yield self._event(ERROR, f"{err} (in the triggerer's environment)")
            return
        follower = LogFollower(self.max_log_bytes)
        failures, last_status = 0, None
        async with self._client(headers) as client:
            while True:
                try:
                    info = await self._get(client, f"/api/jobs/{self.job_id}")
                    logs = str((await self._get(client, f"/api/jobs/{self.job_id}/logs")).get("logs", ""))
                    failures = 0
                except _Refused as err:
                    yield self._event(ERROR, str(err))
                    return
                except (httpx.HTTPError, ValueError) as err:  # ValueError: a body that is no JSON
                    failures += 1
                    if failures >= self.max_poll_failures:
                        message = f"Ray job {self.job_id}: {failures} polls of {self.address} failed: {err!r}"
                        yield self._event(ERROR, message)
                        return
                    self.log.warning("polling Ray job %s failed (%s), trying again", self.job_id, err)
                    await asyncio.sleep(self.poll_s)
                    continue
                status = str(info.get("status"))
                if status != last_status:
                    self.log.info("Ray job %s at %s is %s", self.job_id, self.address, status)
                    last_status = status
                for line in follower.new_lines(logs, final=status in TERMINAL):
                    self.log.info("%s%s", LOG_PREFIX, line)
                if status in TERMINAL:
                    yield self._event(status, info.get("message"), logs)
                    return
                await asyncio.sleep(self.poll_s)

    async def on_kill(self) -> None:
        """The task was marked failed/succeeded or cleared while deferred: stop the job (SIGTERM,
        then SIGKILL on the cluster), so it does not train on with nobody waiting for it. Within the
        triggerer's bound on on_kill ([triggerer] on_kill_timeout, 30 s by default)."""
        async with self._client(
            auth_headers(), timeout_s=min(self.request_timeout_s, ON_KILL_TIMEOUT_S)
        ) as client:
            response = await client.post(f"/api/jobs/{self.job_id}/stop")
            response.raise_for_status()
            stopped = response.json().get("stopped")
        self.log.info(
            "stop requested for Ray job %s: %s", self.job_id, "stopping" if stopped else "not running"
        )
