"""Why a task failed reaches the run folder, the run summary and the pretrain DAG run: the failure
callback (orchestration/callbacks.py) and the pretrain DAG's report task (dags/pretrain.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from core.failures import failure_text, last_failure, read_failures
from dags.pretrain import summarise_run
from orchestration.callbacks import MESSAGE_CHARS, record_failure
from training.jobs_api import RayJobError


def _deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The deployment's config file (LMFORGE_CONFIG) with the run folders under tmp_path."""
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps({"storage": {"root": str(tmp_path)}}))
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))


class _TaskInstance:
    """The task instance fields the callback and the report read (Airflow hands a RuntimeTaskInstance)."""

    def __init__(self, task_id: str, try_number: int, xcom: object = None) -> None:
        self.task_id, self.try_number, self._xcom = task_id, try_number, xcom

    def xcom_pull(self, task_ids: str) -> object:
        return self._xcom if task_ids == "train" else None


def _ray_failure(n: int) -> RayJobError:
    tail = "\n".join(f"step {i} loss 2.0" for i in range(600)) + "\nRuntimeError: CUDA out of memory"
    return RayJobError(
        f"Ray job lmforge-pretrain-r-{n} at http://head:8265 FAILED: exit 1\nlast log lines:\n{tail}"
    )


def _fail(try_number: int, error: BaseException, params: dict[str, object]) -> None:
    """What the task runner does after a try of train fails: its on_retry/on_failure callback."""
    record_failure(
        {"task_instance": _TaskInstance("train", try_number), "params": params, "exception": error}
    )


def test_each_failed_try_keeps_its_type_message_try_and_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _deployment(monkeypatch, tmp_path)
    params = {"run_id": "r"}
    before = datetime.now(UTC) - timedelta(seconds=1)
    record_failure(
        {"task_instance": _TaskInstance("train", 1), "params": params, "exception": _ray_failure(1)}
    )
    record_failure(
        {"task_instance": _TaskInstance("train", 2), "params": params, "exception": OSError("lost")}
    )
    failures = json.loads((tmp_path / "runs/r/failures.json").read_text())
    assert failures == read_failures(_storage(tmp_path), "r")
    first, second = failures
    assert (first["task_id"], first["try_number"], first["exception_type"]) == ("train", 1, "RayJobError")
    assert first["error"] == "RayJobError: Ray job lmforge-pretrain-r-1 at http://head:8265 FAILED: exit 1"
    # the whole message, bounded, keeping its start and its end (where a job's error is)
    assert len(first["message"]) <= MESSAGE_CHARS + 64
    assert (
        first["message"].startswith("Ray job lmforge-pretrain-r-1")
        and "characters left out" in first["message"]
    )
    assert first["message"].endswith("RuntimeError: CUDA out of memory")
    assert before <= datetime.fromisoformat(first["at"]) <= datetime.now(UTC)
    assert (second["try_number"], second["exception_type"], second["message"]) == (2, "OSError", "lost")
    assert last_failure(failures, "train") == second and last_failure(failures, "report") is None
    assert failure_text(second) == f"train try 2 at {second['at']}: OSError: lost"


def _storage(root: Path):  # type: ignore[no-untyped-def]
    from core.config import StorageConfig
    from core.storage import open_storage

    return open_storage(StorageConfig(root=str(root)))


def test_after_a_failed_train_the_summary_holds_why_and_the_report_fails_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _deployment(monkeypatch, tmp_path)
    params = {"run_id": "r"}
    for n in (1, 2, 3):  # three tries: the default_args' retries
        _fail(n, _ray_failure(n), params)
    with pytest.raises(AirflowFailException) as err:
        summarise_run({"ti": _TaskInstance("report", 1, xcom=None), "params": params})
    message = str(err.value)
    assert message.startswith("train failed: train try 3 at ")
    assert "RayJobError: Ray job lmforge-pretrain-r-3 at http://head:8265 FAILED: exit 1" in message
    assert message.endswith("runs/r/summary.json")
    summary = json.loads((tmp_path / "runs/r/summary.json").read_text())
    assert summary["run_id"] == "r" and [f["try_number"] for f in summary["failures"]] == [1, 2, 3]
    assert summary["failures"][-1]["message"].endswith("CUDA out of memory")


def test_after_a_train_that_succeeded_on_a_retry_the_summary_lists_the_failed_try(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _deployment(monkeypatch, tmp_path)
    params = {"run_id": "r"}
    record_failure(
        {"task_instance": _TaskInstance("train", 1), "params": params, "exception": _ray_failure(1)}
    )
    trained = {"run_id": "r", "profile": None, "overrides_json": "{}", "steps": 4}
    uri = summarise_run({"ti": _TaskInstance("report", 1, xcom=trained), "params": params})
    assert uri.endswith("runs/r/summary.json")
    summary = json.loads((tmp_path / "runs/r/summary.json").read_text())
    assert [(f["task_id"], f["try_number"]) for f in summary["failures"]] == [("train", 1)]


def test_a_bad_config_fails_the_report_without_writing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _deployment(monkeypatch, tmp_path)
    params = {"run_id": "r", "mode": "prefix_tuning"}  # needs init_from: train failed on it too
    with pytest.raises(AirflowFailException, match=r"no summary is written.*needs 'init_from'"):
        summarise_run({"ti": _TaskInstance("report", 1), "params": params})
    assert not (tmp_path / "runs").exists()
