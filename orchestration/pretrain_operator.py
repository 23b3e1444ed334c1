"""The pretrain DAG's train task: a local Ray here, or a Ray job on the cluster in `ray.address`.

On a cluster the task submits the job on a worker, then defers to `RayJobTrigger`
(orchestration/ray_trigger.py): the triggerer polls the job and streams its log into this task's
log, and no worker slot is held for the days a run trains. The job id is deterministic
(training/jobs_api.py `pretrain_job`), so a retry's submit attaches to the job it left running.
`deferrable=False` keeps the wait in the task (the job's log is streamed there too).

Stopping the job when nobody waits for it any more:
- in the task (local Ray, or not deferrable): Airflow calls `on_kill` on SIGTERM (marked failed or
  cleared in the UI) and on its execution timeout (airflow.sdk task_runner);
- deferred, killed by a user (mark failed / succeeded, clear): Airflow 3.3's triggerer cancels the
  trigger with its user-action message and calls `RayJobTrigger.on_kill`, which stops the job;
- deferred, timed out: Airflow 3.3 does not apply `execution_timeout` to a deferral made by the task
  SDK (its execution API leaves it as a TODO), so `execute` passes what is left of it as the
  deferral's own timeout. At that time the scheduler resumes the task with `__fail__` /
  "Trigger timeout" (the triggerer calls no `on_kill` then), and `resume_execution` stops the job
  before the task fails with TaskDeferralTimeout.

Only the Airflow SDK is imported at module level, so the DAG file parses without Ray or torch.
The cluster's token comes from the worker's and the triggerer's environment only
(`RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`, see training/jobs_api.py), never from a trigger param
and never serialized into the trigger (its kwargs are stored in the metadata DB).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from training.jobs_api import RayJobs

log = logging.getLogger("lmforge.pretrain")


class PretrainOperator(BaseOperator):
    """Returns `pretrain_stage`'s summary (run_id, profile, overrides_json, losses, checkpoint)."""

    def __init__(self, *, poll_s: float = 10.0, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s
        self.deferrable = deferrable
        self._jobs: RayJobs | None = None
        self._job_id: str | None = None

    @staticmethod
    def _job_args(context: Context) -> tuple[str, str | None, str, bool, str]:
        """(run id, profile, overrides JSON, force, nonce) from the params or the asset event."""
        from orchestration.params import merged_config_args, upstream_from_params

        params = dict(context.get("params") or {})
        upstream = upstream_from_params(params, context.get("triggering_asset_events"))
        profile, overrides_json = merged_config_args(upstream, params)
        nonce = str(context.get("run_id") or "")
        return upstream["run_id"], profile, overrides_json, bool(params.get("force")), nonce

    def execute(self, context: Context) -> dict[str, Any]:
        from core.config import load_config

        run_id, profile, overrides_json, force, nonce = self._job_args(context)
        cfg = load_config(profile, overrides_json)  # a bad param fails here, before Ray
        if cfg.ray.address is None:
            from training.stage import pretrain_stage

            return pretrain_stage(run_id, profile, overrides_json, force=force)
        self._submit(run_id, profile, overrides_json, force, nonce)
        assert self._jobs is not None and self._job_id is not None
        if not self.deferrable:
            from training.jobs_api import LogFollower

            # A poll that fails (network) fails the task but leaves the job running: the retry attaches.
            return self._jobs.wait(self._job_id, follow=LogFollower())
        from orchestration.ray_trigger import RayJobTrigger

        trigger = RayJobTrigger(address=self._jobs.address, job_id=self._job_id, poll_s=self.poll_s)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=self._time_left(context))

    def _submit(self, run_id: str, profile: str | None, overrides_json: str, force: bool, nonce: str) -> None:
        from training.jobs_api import RayJobs, pretrain_job, repo_runtime_env

        cfg, job_id, entrypoint = pretrain_job(run_id, profile, overrides_json, force=force, nonce=nonce)
        assert cfg.ray.address is not None
        self._jobs = RayJobs(cfg.ray.address, poll_s=self.poll_s)  # token: auth_headers(), the env's
        self._job_id = self._jobs.submit(job_id, entrypoint, repo_runtime_env())

    def _time_left(self, context: Context) -> timedelta | None:
        """What is left of `execution_timeout` for the deferral (Airflow 3.3 applies none to it)."""
        if self.execution_timeout is None:
            return None
        started = getattr(context.get("ti") or context.get("task_instance"), "start_date", None)
        spent = datetime.now(UTC) - started if isinstance(started, datetime) else timedelta(0)
        return max(self.execution_timeout - spent, timedelta(seconds=1))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resumed by the trigger's event: the job's summary, or RayJobError with why it ended."""
        from orchestration.ray_trigger import ERROR
        from training.jobs_api import RayJobError, job_result

        self._job_id = event["job_id"]
        if event["status"] == ERROR:
            raise RayJobError(
                f"{event['message']}; Ray job {event['job_id']} was not stopped: a retry attaches to it"
            )
        return job_result(
            event["job_id"],
            event["address"],
            event["status"],
            event.get("message"),
            event.get("logs_tail", ""),
            event.get("result"),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """A deferral that timed out comes back here as `__fail__` / "Trigger timeout", with the
        trigger (and its job id) gone: stop the run's latest job attempt, then fail as Airflow does."""
        from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

        if next_method == TRIGGER_FAIL_REPR and (next_kwargs or {}).get("error") == (
            TriggerFailureReason.TRIGGER_TIMEOUT
        ):
            self.stop_latest_attempt(context)
        return super().resume_execution(next_method, next_kwargs, context)

    def stop_latest_attempt(self, context: Context) -> None:
        """Find the job again from the params (its id is deterministic) and stop it if it runs.
        Never raises: the timeout is the task's error, a failed stop is logged next to it."""
        from ray.job_submission import JobStatus

        from training.jobs_api import RayJobs, pretrain_job

        try:
            run_id, profile, overrides_json, force, nonce = self._job_args(context)
            cfg, job_id, _ = pretrain_job(run_id, profile, overrides_json, force=force, nonce=nonce)
            if cfg.ray.address is None:
                return
            jobs = RayJobs(cfg.ray.address, poll_s=self.poll_s)
            attempts = jobs.attempts(job_id)
            if attempts and attempts[-1][1] in (JobStatus.PENDING, JobStatus.RUNNING):
                log.info("deferral timed out: stopping Ray job %s", attempts[-1][0])
                jobs.stop(attempts[-1][0])
        except Exception:
            log.exception("could not stop the Ray job of a timed-out deferral")

    def on_kill(self) -> None:
        """Airflow calls this on SIGTERM (marked failed/cleared in the UI) and on its execution
        timeout (airflow.sdk task_runner) while the task runs in a worker (not while deferred)."""
        if self._jobs is not None and self._job_id is not None:
            log.info("stopping Ray job %s", self._job_id)
            self._jobs.stop(self._job_id)
