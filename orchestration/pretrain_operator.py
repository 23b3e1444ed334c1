"""The pretrain DAG's train task: a local Ray here, or a Ray job on the cluster in `ray.address`.

An operator rather than a `@task`: Airflow calls `on_kill` when the task is stopped from the UI or
times out, and a job on a cluster must be stopped then, or it trains on with nobody waiting for it.
Only the Airflow SDK is imported at module level, so the DAG file parses without Ray or torch.

The cluster's token (Ray token authentication) comes from this worker's environment only
(`RAY_AUTH_TOKEN` or `RAY_AUTH_TOKEN_PATH`, see training/jobs_api.py), never from a trigger param:
whoever triggers a run picks what to train, not the credentials it runs with.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from training.jobs_api import RayJobs

log = logging.getLogger("lmforge.pretrain")


class PretrainOperator(BaseOperator):
    """Returns `pretrain_stage`'s summary (run_id, profile, overrides_json, losses, checkpoint)."""

    def __init__(self, *, poll_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s
        self._jobs: RayJobs | None = None
        self._job_id: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from core.config import load_config
        from orchestration.params import merged_config_args, upstream_from_params

        params = dict(context.get("params") or {})
        upstream = upstream_from_params(params, context.get("triggering_asset_events"))
        profile, overrides_json = merged_config_args(upstream, params)
        cfg = load_config(profile, overrides_json)  # a bad param fails here, before Ray
        run_id, force = upstream["run_id"], bool(params.get("force"))
        if cfg.ray.address is None:
            from training.stage import pretrain_stage

            return pretrain_stage(run_id, profile, overrides_json, force=force)
        return self._run_job(run_id, profile, overrides_json, force, str(context.get("run_id") or ""))

    def _run_job(
        self, run_id: str, profile: str | None, overrides_json: str, force: bool, nonce: str
    ) -> dict[str, Any]:
        from training.jobs_api import RayJobs, pretrain_job, repo_runtime_env

        cfg, job_id, entrypoint = pretrain_job(run_id, profile, overrides_json, force=force, nonce=nonce)
        assert cfg.ray.address is not None
        self._jobs = RayJobs(cfg.ray.address, poll_s=self.poll_s)  # token: auth_headers(), the env's
        self._job_id = self._jobs.submit(job_id, entrypoint, repo_runtime_env())
        # A poll that fails (network) fails the task but leaves the job running: the retry attaches.
        return self._jobs.wait(self._job_id)

    def on_kill(self) -> None:
        """Airflow calls this on SIGTERM (marked failed/cleared in the UI) and on its execution
        timeout (airflow.sdk task_runner)."""
        if self._jobs is not None and self._job_id is not None:
            log.info("stopping Ray job %s", self._job_id)
            self._jobs.stop(self._job_id)
