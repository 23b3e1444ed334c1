"""The deferred wait for a Ray job: RayJobTrigger against a real local Ray head (tests/ray_head.py)
running real jobs, and PretrainOperator's deferral, resumption and stops around it."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from airflow.sdk.exceptions import TaskDeferralTimeout, TaskDeferred
from airflow.triggers.base import TriggerEvent
from ray.job_submission import JobStatus
from structlog.testing import capture_logs

from core.config import StorageConfig
from core.datasets import commit
from core.storage import open_storage
from orchestration.pretrain_operator import PretrainOperator
from orchestration.ray_trigger import ERROR, RayJobTrigger
from tests.ray_head import RayHead, ray_head
from tests.test_training_ray import write_text_shards
from training.jobs_api import LOG_PREFIX, LogFollower, RayJobError, RayJobs


@pytest.fixture(scope="module")
def deployment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment's config (LMFORGE_CONFIG), one path for the test side and the cluster's jobs."""
    return tmp_path_factory.mktemp("deploy") / "deployment.json"


@pytest.fixture(scope="module")
def cluster(deployment_file: Path) -> Iterator[RayHead]:
    """One token-auth head for the module; its jobs read the deployment file as the worker does."""
    with ray_head(token_auth=True, extra_env={"LMFORGE_CONFIG": str(deployment_file)}) as head:
        yield head


@pytest.fixture
def token(cluster: RayHead, monkeypatch: pytest.MonkeyPatch) -> str:
    """The cluster's token in this process's environment: the worker's and the triggerer's."""
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.token)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    return cluster.token


@pytest.fixture
def jobs(cluster: RayHead) -> RayJobs:
    return RayJobs(cluster.dashboard, poll_s=0.2, headers=cluster.headers)


def _python(code: str) -> str:
    return shlex.join(["python", "-c", code])


def _run(trigger: RayJobTrigger, timeout_s: float = 60) -> tuple[list[TriggerEvent], list[str]]:
    """The trigger's events and its log lines, run as the triggerer runs it: in an event loop."""

    async def collect() -> list[TriggerEvent]:
        return [event async for event in trigger.run()]

    # The tests' Airflow logs at WARNING (orchestration/airflow_env.py); a triggerer logs the
    # trigger's INFO lines into the task log, so they are captured from INFO here.
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as logs:
            events = asyncio.run(asyncio.wait_for(collect(), timeout_s))
    finally:
        structlog.configure(**config)
    return events, [str(entry["event"]) for entry in logs]


def _wait_status(jobs: RayJobs, job_id: str, wanted: JobStatus, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while jobs.status(job_id) != wanted:
        assert time.monotonic() < deadline, f"{job_id} never {wanted}: {jobs.status(job_id)}"
        time.sleep(0.2)


def test_serialize_round_trips_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token")
    trigger = RayJobTrigger(address="http://head:8265/", job_id="lmforge-pretrain-r-ab", poll_s=2.5)
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    again = getattr(import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert isinstance(again, RayJobTrigger) and again.serialize() == (classpath, kwargs)
    assert kwargs["address"] == "http://head:8265" and kwargs["job_id"] == "lmforge-pretrain-r-ab"
    assert again.poll_s == 2.5
    assert "s3cr3t" not in json.dumps(kwargs)  # stored in the metadata DB: never the token


def test_the_log_follower_hands_out_new_lines_once_and_bounded() -> None:
    follow = LogFollower(max_bytes=32, max_lag_polls=100)
    assert follow.new_lines("partial") == []  # a line without its end waits for it
    assert follow.new_lines("partial line\nnext") == ["partial line"]
    log = "partial line\nnext line\n" + "".join(f"line {i:02d} of many\n" for i in range(10))
    seen: list[str] = []
    for _ in range(20):
        before = follow.offset
        lines = follow.new_lines(log)
        assert follow.offset - before <= 32  # the bound per poll
        seen += lines
    assert seen == log.splitlines()[1:]  # each line once, in order
    assert follow.new_lines(log) == []
    long = LogFollower(max_bytes=8)
    assert long.new_lines("0123456789abcdef\n") == ["01234567"]  # one line over the bound is cut
    # far behind (a chatty job, a trigger restarted from 0): on to the last max_bytes, saying so
    behind = LogFollower(max_bytes=32, max_lag_polls=2)
    lines = behind.new_lines("".join(f"step {i:03d} loss 1.0\n" for i in range(100)))
    assert lines == ["[... 1782 bytes of the job's log skipped ...]", "step 099 loss 1.0"]  # 18 B a line
    assert behind.new_lines("".join(f"step {i:03d} loss 1.0\n" for i in range(101))) == ["step 100 loss 1.0"]
    final = LogFollower(max_bytes=24)
    tail = final.new_lines("".join(f"step {i} loss 1.0\n" for i in range(10)), final=True)
    assert tail[0].startswith("[... ") and "bytes of the job's log skipped" in tail[0]
    assert tail[1:] == ["step 9 loss 1.0"]  # the end, where the error is


def test_success_streams_the_log_while_running_and_fires_the_result(token: str, jobs: RayJobs) -> None:
    code = (
        "import time; from training.jobs_api import print_result;"
        "print('first line', flush=True); time.sleep(3); print('second line', flush=True);"
        "print_result({'loss': 1.5})"
    )
    job_id = jobs.submit("trig-ok", _python(code))
    events, logs = _run(RayJobTrigger(address=jobs.address, job_id=job_id, poll_s=0.2))
    assert len(events) == 1
    event = events[0].payload
    assert event["status"] == "SUCCEEDED" and event["result"] == {"loss": 1.5} and event["job_id"] == job_id
    first, ended = (
        logs.index(f"{LOG_PREFIX}first line"),
        logs.index(f"Ray job {job_id} at {jobs.address} is SUCCEEDED"),
    )
    # streamed while the job ran (logged before the poll that saw it end: the job slept 3 s
    # after it), each line once and in order
    assert logs.index(f"Ray job {job_id} at {jobs.address} is RUNNING") < first < ended
    assert first < logs.index(f"{LOG_PREFIX}second line")
    assert logs.count(f"{LOG_PREFIX}first line") == 1 and logs.count(f"{LOG_PREFIX}second line") == 1
    op = PretrainOperator(task_id="train")
    assert op.execute_complete({}, json.loads(json.dumps(event))) == {"loss": 1.5}


def test_failure_fires_the_jobs_message_and_execute_complete_raises_it(token: str, jobs: RayJobs) -> None:
    code = "import sys; print('loading shards', flush=True); sys.exit('boom: no meta.json')"
    job_id = jobs.submit("trig-fail", _python(code))
    events, logs = _run(RayJobTrigger(address=jobs.address, job_id=job_id, poll_s=0.2))
    event = events[0].payload
    assert event["status"] == "FAILED" and event["result"] is None
    assert "boom: no meta.json" in event["logs_tail"] and f"{LOG_PREFIX}boom: no meta.json" in logs
    with pytest.raises(RayJobError) as err:
        PretrainOperator(task_id="train").execute_complete({}, event)
    message = str(err.value)
    assert f"{job_id} at {jobs.address} FAILED" in message and "boom: no meta.json" in message


def test_a_token_missing_in_the_triggerer_is_an_error_that_names_it(
    cluster: RayHead, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    events, _ = _run(RayJobTrigger(address=cluster.dashboard, job_id="trig-any", poll_s=0.2), 30)
    event = events[0].payload
    assert event["status"] == ERROR and "RAY_AUTH_TOKEN" in event["message"]
    assert "triggerer's environment" in event["message"]
    with pytest.raises(RayJobError, match="was not stopped: a retry attaches to it"):
        PretrainOperator(task_id="train").execute_complete({}, event)


def test_an_unreachable_dashboard_gives_up_after_its_polls() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trigger = RayJobTrigger(address=f"http://127.0.0.1:{port}", job_id="j", poll_s=0.05, max_poll_failures=3)
    start = time.monotonic()
    events, logs = _run(trigger, 30)
    assert events[0].payload["status"] == ERROR and "3 polls of" in events[0].payload["message"]
    assert sum("trying again" in line for line in logs) == 2 and time.monotonic() - start < 10


def test_on_kill_stops_the_job(token: str, jobs: RayJobs) -> None:
    """What the triggerer does when a user marks the deferred task failed: cancel run(), on_kill()."""
    job_id = jobs.submit("trig-kill", _python("import time; print('started', flush=True); time.sleep(600)"))
    trigger = RayJobTrigger(address=jobs.address, job_id=job_id, poll_s=0.2)

    async def run_then_kill() -> None:
        task = asyncio.create_task(anext(aiter(trigger.run())))
        deadline = time.monotonic() + 60
        while jobs.status(job_id) != JobStatus.RUNNING:  # the test's own wait
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.on_kill()

    asyncio.run(asyncio.wait_for(run_then_kill(), 90))
    _wait_status(jobs, job_id, JobStatus.STOPPED, 30)


def _train_setup(deployment_file: Path, tmp_path: Path, cluster: RayHead, run_id: str) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    store = tmp_path / "store"
    commit(open_storage(StorageConfig(root=str(store))), run_id, "shards", shards, config={}, inputs={})
    deployment = {"storage": {"root": str(store)}, "ray": {"address": cluster.dashboard}}
    deployment_file.write_text(json.dumps(deployment))


def _context(params: dict[str, Any], started: datetime | None = None) -> dict[str, Any]:
    """What the task runner hands `execute`: params, the Airflow run id, the task instance."""
    ti = SimpleNamespace(task_id="train", try_number=1, start_date=started or datetime.now(UTC))
    return {"params": params, "run_id": "manual__2026-12-01", "ti": ti, "task_instance": ti}


TRAIN = {"seq_len": 32, "batch_size": 4, "log_every": 2, "checkpoint_every": 4, "warmup_steps": 1}


@pytest.mark.timeout(300)
def test_the_operator_defers_and_resumes_with_the_jobs_summary(
    token: str, cluster: RayHead, deployment_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train_setup(deployment_file, tmp_path, cluster, "deferred")
    monkeypatch.setenv("LMFORGE_CONFIG", str(deployment_file))
    op = PretrainOperator(task_id="train", poll_s=0.5, execution_timeout=timedelta(hours=2))
    params = {"run_id": "deferred", "steps": 4, "workers": 1, "overrides": {"train": TRAIN}}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context(params, started=datetime.now(UTC) - timedelta(minutes=30)))
    trigger = deferred.value.trigger
    assert isinstance(trigger, RayJobTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.job_id.startswith("lmforge-pretrain-deferred-") and trigger.address == cluster.dashboard
    # what is left of the execution timeout bounds the deferral (Airflow 3.3 applies none to it)
    assert timedelta(minutes=89) < deferred.value.timeout <= timedelta(minutes=90)
    assert token not in json.dumps(trigger.serialize()[1])

    events, logs = _run(trigger, 240)
    event = events[0].payload
    assert event["status"] == "SUCCEEDED", event
    summary = op.execute_complete(_context(params), json.loads(json.dumps(event)))
    assert summary["run_id"] == "deferred" and summary["steps"] == 4 and summary["skipped"] is False
    assert any(line.startswith(f"{LOG_PREFIX}LMFORGE_RESULT ") for line in logs)  # the job's log streamed
    manifest = json.loads((tmp_path / "store/runs/deferred/pretrain/_MANIFEST.json").read_text())
    assert manifest["stats"]["last_loss"] == summary["last_loss"]


@pytest.mark.timeout(300)
def test_a_retry_attaches_and_a_deferral_timeout_stops_the_job(
    token: str,
    cluster: RayHead,
    jobs: RayJobs,
    deployment_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _train_setup(deployment_file, tmp_path, cluster, "timeout")
    monkeypatch.setenv("LMFORGE_CONFIG", str(deployment_file))
    op = PretrainOperator(task_id="train", poll_s=0.5, execution_timeout=timedelta(hours=1))
    params = {"run_id": "timeout", "steps": 100_000, "workers": 1, "overrides": {"train": TRAIN}}
    with pytest.raises(TaskDeferred) as first:
        op.execute(_context(params))
    job_id = first.value.trigger.job_id
    _wait_status(jobs, job_id, JobStatus.RUNNING, 120)
    with pytest.raises(TaskDeferred) as retry:  # a retry of the task: the same job, not a second one
        PretrainOperator(task_id="train", poll_s=0.5).execute(_context(params))
    assert retry.value.trigger.job_id == job_id
    assert [a for a, _ in jobs.attempts(job_id)] == [job_id]

    # the scheduler's answer to a deferral past its timeout: resume with __fail__ / "Trigger timeout"
    resumed = PretrainOperator(task_id="train", poll_s=0.5)
    with pytest.raises(TaskDeferralTimeout):
        resumed.resume_execution("__fail__", {"error": "Trigger timeout"}, _context(params))
    _wait_status(jobs, job_id, JobStatus.STOPPED, 60)
    assert not (tmp_path / "store/runs/timeout/pretrain/_MANIFEST.json").exists()
