"""A run's failed tries, `runs/<run id>/failures.json`: written by the DAGs' failure callback
(orchestration/callbacks.py), read by the run summary (jobs/report.py) and the pretrain report.
Standard library only, so both sides import it cheaply."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("lmforge.failures")

FAILURES = "failures.json"


def read_failures(storage: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's recorded failed tries, oldest first; [] when none (or the file is unreadable).

    `storage` is a core.storage Storage (typed Any: this module imports nothing of core at load)."""
    key = f"runs/{run_id}/{FAILURES}"
    if not storage.exists(key):
        return []
    try:
        failures = json.loads(storage.read_bytes(key))
    except (ValueError, TypeError):
        log.warning("%s is not JSON; its failures are left out", storage.uri(key))
        return []
    if not isinstance(failures, list):
        log.warning("%s is not a JSON list; its failures are left out", storage.uri(key))
        return []
    return [f for f in failures if isinstance(f, dict)]


def last_failure(failures: list[dict[str, Any]], task_id: str) -> dict[str, Any] | None:
    """The latest recorded failure of `task_id`: why the task ended failed, after its retries."""
    return next((f for f in reversed(failures) if f.get("task_id") == task_id), None)


def failure_text(failure: dict[str, Any]) -> str:
    """One line for a log or an exception: "train try 3 at <time>: RayJobError: ..."."""
    kind = f"{failure['exception_type']}: " if failure.get("exception_type") else ""
    lines = str(failure.get("message") or failure.get("error") or "").strip().splitlines()
    head = lines[0] if lines else "no message"
    return f"{failure.get('task_id')} try {failure.get('try_number')} at {failure.get('at')}: {kind}{head}"
