"""Ray Jobs API submission against a real local Ray cluster with its dashboard (tests/ray_head.py)."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.job_submission import JobStatus

from core.config import StorageConfig
from core.datasets import commit
from core.storage import open_storage
from orchestration.params import merged_config_args
from tests.ray_head import RayHead, RayHeadUnavailable, ray_head
from tests.test_training_ray import write_text_shards
from training.jobs_api import (
    RayJobError,
    RayJobs,
    dashboard_url,
    pretrain_job,
    repo_runtime_env,
    result_from_logs,
    submission_id,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayHead]:
    try:
        with ray_head(token_auth=True) as head:
            yield head
    except RayHeadUnavailable as err:
        pytest.skip(f"no local Ray cluster with a dashboard here: {err}")


@pytest.fixture
def jobs(cluster: RayHead) -> RayJobs:
    return RayJobs(cluster.dashboard, poll_s=0.2, headers=cluster.headers)


def _python(code: str) -> str:
    return shlex.join(["python", "-c", code])


def _wait_status(jobs: RayJobs, job_id: str, wanted: JobStatus, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while jobs.status(job_id) != wanted:
        assert time.monotonic() < deadline, f"{job_id} never {wanted}: {jobs.status(job_id)}"
        time.sleep(0.2)


def test_addresses_ids_and_result_lines() -> None:
    assert dashboard_url("http://head:8265/") == "http://head:8265"
    assert dashboard_url("ray://lmforge-ray-head-svc:10001") == "http://lmforge-ray-head-svc:8265"
    assert dashboard_url("ray-head:6379") == "http://ray-head:8265"
    assert dashboard_url("auto") == "http://127.0.0.1:8265"
    assert submission_id("pretrain", "manual__2026-01-01T00:00:00+00:00", "ab" * 32) == (
        "lmforge-pretrain-manual__2026-01-01T00-00-00-00-00-" + "ab" * 8
    )
    logs = 'x\nLMFORGE_RESULT {"a": 1}\nnoise\nLMFORGE_RESULT {"a": 2}\ntrailing\n'
    assert result_from_logs(logs) == {"a": 2} and result_from_logs("none") is None


def test_success_returns_the_result_and_resubmitting_attaches(jobs: RayJobs, tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    code = (
        "import time, pathlib; from training.jobs_api import print_result;"
        f"pathlib.Path({str(runs)!r}).open('a').write('run\\n'); time.sleep(2);"
        "print_result({'loss': 1.5, 'steps': 3})"
    )
    assert jobs.submit("t-ok", _python(code)) == "t-ok"
    assert jobs.status("t-ok") in (JobStatus.PENDING, JobStatus.RUNNING)
    assert jobs.submit("t-ok", _python(code)) == "t-ok"  # pending/running: attach
    assert jobs.wait("t-ok") == {"loss": 1.5, "steps": 3}
    assert jobs.submit("t-ok", _python(code)) == "t-ok"  # succeeded: attach, no rerun
    assert jobs.wait("t-ok") == {"loss": 1.5, "steps": 3}
    assert runs.read_text() == "run\n"  # one run only
    assert jobs.attempts("t-ok") == [("t-ok", JobStatus.SUCCEEDED)]


def test_stop_a_running_job_then_resubmit_runs_it_again(jobs: RayJobs) -> None:
    forever = _python("import time; print('started', flush=True); time.sleep(600)")
    assert jobs.submit("t-stop", forever) == "t-stop"
    _wait_status(jobs, "t-stop", JobStatus.RUNNING)
    assert jobs.stop("t-stop") is True
    with pytest.raises(RayJobError, match=r"t-stop at http://127\.0\.0\.1:\d+ STOPPED"):
        jobs.wait("t-stop", timeout_s=30)
    # an Airflow retry after a stop runs it again, as the next attempt of the same id
    again = jobs.submit("t-stop", _python("from training.jobs_api import print_result; print_result({})"))
    assert again == "t-stop-try2"
    assert jobs.wait(again, timeout_s=30) == {}
    assert jobs.attempts("t-stop") == [("t-stop", JobStatus.STOPPED), ("t-stop-try2", JobStatus.SUCCEEDED)]
    assert jobs.submit("t-stop", "false") == "t-stop-try2"  # the success is attached to


def test_failed_job_raises_with_the_log_tail(jobs: RayJobs) -> None:
    code = "import sys; print('loading shards', flush=True); sys.exit('boom: no meta.json')"
    with pytest.raises(RayJobError) as err:
        jobs.wait(jobs.submit("t-fail", _python(code)), timeout_s=30)
    message = str(err.value)
    assert "t-fail" in message and "FAILED" in message
    assert "loading shards" in message and "boom: no meta.json" in message


def test_success_without_a_result_line_is_an_error(jobs: RayJobs) -> None:
    with pytest.raises(RayJobError, match="succeeded but printed no LMFORGE_RESULT line"):
        jobs.wait(jobs.submit("t-silent", _python("print('done')")), timeout_s=30)


@pytest.mark.timeout(240)
def test_pretraining_runs_as_a_ray_job(jobs: RayJobs, cluster: RayHead, tmp_path: Path) -> None:
    """The DAG's cluster path end to end: committed shards in, the stage's summary back."""
    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    storage = open_storage(StorageConfig(root=str(tmp_path / "store")))
    commit(storage, "jobrun", "shards", shards, config={}, inputs={})
    train = {"seq_len": 32, "batch_size": 4, "log_every": 2, "checkpoint_every": 4, "warmup_steps": 1}
    params = {
        "steps": 4,
        "workers": 1,
        "ray_address": cluster.dashboard,
        "overrides": {"storage": {"root": str(tmp_path / "store")}, "train": train},
    }
    upstream = {"run_id": "jobrun", "profile": "", "overrides_json": "{}"}
    profile, overrides_json = merged_config_args(upstream, params)
    cfg, job_id, entrypoint = pretrain_job("jobrun", profile, overrides_json)
    assert cfg.ray.address == cluster.dashboard and job_id.startswith("lmforge-pretrain-jobrun-")
    assert pretrain_job("jobrun", profile, overrides_json)[1] == job_id  # deterministic
    forced = pretrain_job("jobrun", profile, overrides_json, force=True, nonce="manual__2026")[1]
    assert forced == f"{job_id}-force-manual__2026"  # a forced rerun never attaches to the old job

    result = jobs.wait(jobs.submit(job_id, entrypoint, repo_runtime_env()), timeout_s=200)
    assert result["run_id"] == "jobrun" and result["skipped"] is False and result["steps"] == 4
    manifest = json.loads((tmp_path / "store/runs/jobrun/pretrain/_MANIFEST.json").read_text())
    assert manifest["stats"]["last_loss"] == result["last_loss"]
    assert Path(result["checkpoint"], "state.pt").is_file()
