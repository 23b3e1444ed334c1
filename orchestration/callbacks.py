"""Task defaults and the failure callback shared by the DAGs.

The callback records a failed try in the run folder, `runs/<run_id>/failures.json`, next to the
run's datasets, so whoever looks at a run sees what failed without the Airflow logs: the task, the
try, when, and the exception's type and message (a Ray job's message carries its status and last
log lines). The run summary lists them (`failures`, jobs/report.py), and the pretrain DAG's report
fails with the last one when training failed. The callback never raises: a callback that fails only hides the
task's own error (it is logged instead). Only the standard library is imported at module level, so
the DAG files stay cheap to parse; core/failures.py reads the file back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from core.failures import FAILURES, read_failures

log = logging.getLogger("lmforge.callbacks")

MESSAGE_CHARS = 4000  # an exception's message kept per failed try (a Ray job's log tail fits)


def default_args(**extra: Any) -> dict[str, Any]:
    """Retries for every task: each is idempotent (a committed stage whose config, inputs and code are
    unchanged is skipped; publish writes the manifest last), so trying again is safe. Backoff from
    30 s up to 10 min rides out a Spark master or object store that is briefly unreachable."""
    return {
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": record_failure,
        "on_retry_callback": record_failure,  # every failed try, not only the last
        **extra,
    }


def _first_line(error: BaseException | str | None) -> str:
    if error is None:
        return ""
    text = str(error).strip() or type(error).__name__
    first = text.splitlines()[0]
    return f"{type(error).__name__}: {first}" if isinstance(error, BaseException) else first


def _message(error: BaseException | str | None) -> str:
    """The whole message, bounded: the first line rarely says why a job failed, its tail does."""
    text = "" if error is None else str(error).strip()
    if len(text) <= MESSAGE_CHARS:
        return text
    half = MESSAGE_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


def run_of(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run id, profile and overrides: the `prepare` task's XCom (curation), else the trigger's
    params or asset event (pretrain)."""
    ti = context.get("task_instance") or context.get("ti")
    try:
        run = ti.xcom_pull(task_ids="prepare") if ti is not None else None
    except Exception:  # no such task in this DAG, or no XCom yet
        run = None
    if isinstance(run, Mapping) and run.get("run_id"):
        return dict(run)
    from orchestration.params import merged_config_args, upstream_from_params

    params = dict(context.get("params") or {})
    upstream = upstream_from_params(params, context.get("triggering_asset_events"))
    profile, overrides_json = merged_config_args(upstream, params)
    return {"run_id": upstream["run_id"], "profile": profile, "overrides_json": overrides_json}


def record_failure(context: Mapping[str, Any]) -> None:
    """on_failure_callback and on_retry_callback: append {task_id, try_number, error, at} to
    `runs/<run_id>/failures.json`.

    Two tasks failing at the same instant may race on the read-modify-write and one entry be lost;
    the Airflow log keeps both. The write itself is atomic (core/storage.py)."""
    try:
        ti = context.get("task_instance") or context.get("ti")
        entry = {
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
            "error": _first_line(context.get("exception")),
            "exception_type": _type_name(context.get("exception")),
            "message": _message(context.get("exception")),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        run = run_of(context)
        if run is None:
            log.warning("task failure not recorded (no run id): %s", entry)
            return
        from core.config import load_config
        from core.datasets import check_run_id
        from core.storage import open_storage

        cfg = load_config(run.get("profile") or None, run.get("overrides_json") or None)
        storage = open_storage(cfg.storage)
        run_id = check_run_id(str(run["run_id"]))
        key = f"runs/{run_id}/{FAILURES}"
        failures = read_failures(storage, run_id)
        failures.append(entry)
        storage.write_bytes(key, json.dumps(failures, indent=2).encode())
        log.info("recorded the failure of %s in %s", entry["task_id"], storage.uri(key))
    except Exception:
        log.exception("could not record a task failure in the run folder")


def _type_name(error: BaseException | str | None) -> str | None:
    return type(error).__name__ if isinstance(error, BaseException) else None
