"""The Airflow pool the curation DAG's Spark stages share.

A scheduler never schedules a task whose pool does not exist (it only logs a warning), so every
launcher we ship creates the pool after `airflow db migrate`: the demo, the test stacks, the compose
stack's `airflow-init` and the Helm values' migration job. `dag.test()` ignores pools.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from core.config import PipelineConfig

DESCRIPTION = "lmforge: Spark stage tasks that run at once on the cluster (spark.pool_slots)"


def pool_command(cfg: PipelineConfig) -> list[str]:
    """`airflow pools set` for the deployment's pool: idempotent, it resizes an existing pool."""
    return ["airflow", "pools", "set", cfg.spark.pool, str(cfg.spark.pool_slots), DESCRIPTION]


def ensure_spark_pool(cfg: PipelineConfig, env: Mapping[str, str], timeout_s: float = 300) -> None:
    """Create or resize the pool in the metadata DB that `env`'s AIRFLOW_HOME names."""
    done = subprocess.run(
        pool_command(cfg), env=dict(env), capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"could not create the Airflow pool {cfg.spark.pool!r}: {done.stderr.strip()[-2000:]}"
        )
