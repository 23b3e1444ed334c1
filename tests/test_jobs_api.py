"""Ray Jobs API submission against a real local Ray cluster with its dashboard (tests/ray_head.py)."""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.job_submission import JobStatus

from core.config import ConfigError, StorageConfig
from core.datasets import commit
from core.storage import open_storage
from tests.ray_head import RayHead, ray_head
from tests.test_training_ray import write_text_shards
from training.jobs_api import (
    LOG_PREFIX,
    LogFollower,
    RayAuthError,
    RayJobError,
    RayJobs,
    auth_headers,
    dashboard_url,
    pretrain_job,
    repo_runtime_env,
    result_from_logs,
    secret_fields,
    submission_id,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayHead]:
    """One token-auth head for the module; one that cannot start fails the tests (tests/ray_head.py)."""
    with ray_head(token_auth=True) as head:
        yield head


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


def test_the_token_comes_from_the_environment_or_its_file(tmp_path: Path) -> None:
    """Ray's variables and precedence: RAY_AUTH_TOKEN, then the file RAY_AUTH_TOKEN_PATH names."""
    token_file = tmp_path / "auth_token"
    token_file.write_text("from-file\n")
    assert auth_headers({}) == {}
    assert auth_headers({"RAY_AUTH_TOKEN": "abc"}) == {"Authorization": "Bearer abc"}
    assert auth_headers({"RAY_AUTH_TOKEN_PATH": str(token_file)}) == {"Authorization": "Bearer from-file"}
    both = {"RAY_AUTH_TOKEN": "abc", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert auth_headers(both) == {"Authorization": "Bearer abc"}
    with pytest.raises(RayAuthError, match="cannot read the Ray token file"):
        auth_headers({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(RayAuthError, match="token file is empty"):
        auth_headers({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "empty")})


def test_no_credential_travels_with_a_job() -> None:
    """Entrypoints and runtime_envs are stored and shown in plain text: credentials are refused."""
    named = r"\['AWS_SECRET_ACCESS_KEY', 'RAY_AUTH_TOKEN'\] look like credentials"
    with pytest.raises(ValueError, match=named):
        repo_runtime_env({"AWS_SECRET_ACCESS_KEY": "x", "RAY_AUTH_TOKEN": "y", "LOG_LEVEL": "debug"})
    assert repo_runtime_env({"LOG_LEVEL": "debug"})["env_vars"] == {"LOG_LEVEL": "debug"}
    assert ".env" in repo_runtime_env()["excludes"]  # a Compose .env never uploads with the code
    # the project's packages only, never their parent folder (site-packages once installed)
    modules = [Path(m) for m in repo_runtime_env()["py_modules"]]
    assert {m.name for m in modules} >= {"core", "jobs", "training"}
    assert "working_dir" not in repo_runtime_env()
    assert all((m / "__init__.py").is_file() for m in modules)
    secret = json.dumps({"storage": {"access_key_id": "AKIA", "secret_access_key": "s3cr3t"}})
    refused = r"\['storage.access_key_id', 'storage.secret_access_key'\] refused for a Ray job"
    with pytest.raises(ConfigError, match=refused) as err:
        pretrain_job("r", None, secret)
    assert "s3cr3t" not in str(err.value)
    # names that merely contain "token" are no credentials
    assert secret_fields({"train": {"token_budget": 1000}, "shards": {"max_shard_tokens": 5}}) == []


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


def test_the_in_task_wait_streams_the_jobs_log_into_the_task_log(
    jobs: RayJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """deferrable=False: the job's new log lines go to this process's log as it polls, once each."""
    code = (
        "import time; from training.jobs_api import print_result;"
        "print('epoch 1', flush=True); time.sleep(3); print('epoch 2', flush=True); print_result({})"
    )
    caplog.set_level(logging.INFO, logger="lmforge.jobs")
    assert jobs.wait(jobs.submit("t-follow", _python(code)), timeout_s=60, follow=LogFollower()) == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "lmforge.jobs"]
    assert lines.count(f"{LOG_PREFIX}epoch 1") == 1 and lines.count(f"{LOG_PREFIX}epoch 2") == 1
    first = next(r.created for r in caplog.records if r.getMessage() == f"{LOG_PREFIX}epoch 1")
    second = next(r.created for r in caplog.records if r.getMessage() == f"{LOG_PREFIX}epoch 2")
    assert second - first > 2  # the first line was logged while the job still ran


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
    # storage.root and ray.address are the deployment's (config-only, no trigger param sets them):
    # here they come in the overrides, as from an LMFORGE_CONFIG file.
    overrides_json = json.dumps(
        {
            "storage": {"root": str(tmp_path / "store")},
            "ray": {"address": cluster.dashboard, "num_workers": 1},
            "train": {**train, "steps": 4},
        }
    )
    cfg, job_id, entrypoint = pretrain_job("jobrun", None, overrides_json)
    assert cfg.ray.address == cluster.dashboard and job_id.startswith("lmforge-pretrain-jobrun-")
    assert pretrain_job("jobrun", None, overrides_json)[1] == job_id  # deterministic
    forced = pretrain_job("jobrun", None, overrides_json, force=True, nonce="manual__2026")[1]
    assert forced == f"{job_id}-force-manual__2026"  # a forced rerun never attaches to the old job

    result = jobs.wait(jobs.submit(job_id, entrypoint, repo_runtime_env()), timeout_s=200)
    assert result["run_id"] == "jobrun" and result["skipped"] is False and result["steps"] == 4
    manifest = json.loads((tmp_path / "store/runs/jobrun/pretrain/_MANIFEST.json").read_text())
    assert manifest["stats"]["last_loss"] == result["last_loss"]
    assert Path(result["checkpoint"], "state.pt").is_file()
