"""Run one curation stage on Spark: plan it from the registry, skip when current, commit atomically.

`run_stage` is the one way to run a stage (and so the one place its validation gate runs);
`lmforge stage NAME` (lmforge/cli.py), spark-submit (jobs/spark/main.py), the demo, the benchmarks
and the tests all call it. The SparkSession is
created only when the stage must actually run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from core.config import PipelineConfig
from core.datasets import Manifest, default_cache_root, materialize
from core.plans import plan_for, resolve, stage
from core.stage_run import run_committed
from core.storage import LocalStorage, Storage, open_storage

log = logging.getLogger("lmforge.runner")

EVENTS = "spark-events"  # a run's Spark event logs: runs/<run id>/spark-events/ (spark-history-server)


def event_log_dir(storage: Storage, run_id: str) -> Path:
    """Where a stage's Spark event log goes: into the run folder on local storage; for an object
    store, a local folder (Spark would need the Hadoop s3a jars to write there), said in the log."""
    if isinstance(storage, LocalStorage):
        return Path(storage.root, "runs", run_id, EVENTS)
    local = default_cache_root() / EVENTS / run_id
    log.info("run %s is on %s: Spark event logs go to the local folder %s", run_id, storage.root, local)
    return local


def run_stage(
    name: str, cfg: PipelineConfig, run_id: str, spark: Any = None, *, force: bool = False
) -> tuple[Manifest, bool]:
    """(manifest, skipped) for a Spark stage of the registry."""
    from jobs.spark.frame import StageContext

    if stage(name).engine != "spark":
        raise ValueError(f"stage {name!r} runs on {stage(name).engine}, not Spark")
    storage = open_storage(cfg.storage)
    plan = plan_for(storage, run_id, name, cfg)

    def work(out: Path) -> dict[str, Any]:
        session = spark
        if session is None:
            from jobs.spark.session import get_spark

            session = get_spark(
                f"lmforge-{name}",
                cfg.spark.master,
                cfg.spark.shuffle_partitions,
                cfg.spark.driver_memory,
                event_log_dir=event_log_dir(storage, run_id),
            )
        # Verified against their manifests: adapters read whole folders (spark.read.parquet(dir)), and
        # materialize refuses a local folder holding a file its manifest does not list.
        cache = default_cache_root()
        inputs = {i: materialize(storage, m, cache) for i, m in plan.inputs.items()}
        stats: dict[str, Any] = resolve(stage(name).adapter)(
            StageContext(session, cfg, inputs, plan.inputs, out, name)
        )
        # The gate runs before the commit: a dataset that fails it is never committed, so the next
        # stage cannot start on it (jobs/validate/gates.py).
        start = time.monotonic()
        from jobs.validate.gates import gate  # GX is imported here, and its import time counted

        if (record := gate(name, cfg, out, plan.inputs)) is not None:
            stats["validation"] = {**record, "seconds": round(time.monotonic() - start, 3)}
        return stats

    return run_committed(storage, plan, work, force=force)
