"""Run one curation stage: resolve inputs, skip when already committed, commit atomically.

`main` is the single entry point, used by spark-submit (via `jobs/spark/main.py`), the demo, the
benchmarks and the tests.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from core.config import PipelineConfig, load_config
from core.datasets import Manifest, commit, fingerprint, materialize, read_manifest, require_manifest
from core.storage import LocalStorage, Storage, open_storage

log = logging.getLogger("lmforge.runner")
_SPARK_PART = re.compile(r"^(part-\d+)-[0-9a-f-]{36}(-c\d+)")


def stage_fingerprint(name: str, cfg: PipelineConfig, inputs: dict[str, Manifest]) -> tuple[dict, str]:
    from jobs.spark.stages import STAGES

    stage = STAGES[name]
    conf: dict[str, Any] = {k: getattr(cfg, k).model_dump(mode="json") for k in stage.config_sections}
    if stage.external:
        conf["external"] = stage.external(cfg)
    return conf, fingerprint(conf, {k: m.fingerprint for k, m in inputs.items()})


def normalise_names(out: Path) -> None:
    """Spark part files carry a random UUID; strip it so reruns produce identical names."""
    for path in list(out.rglob("part-*")):
        path.rename(path.with_name(_SPARK_PART.sub(r"\1\2", path.name)))


def scratch_dir(storage: Storage, run_id: str, name: str) -> Path:
    base = (
        Path(storage.root, ".scratch") if isinstance(storage, LocalStorage) else Path(tempfile.gettempdir())
    )
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{run_id}-{name}-", dir=base))


def run_stage(name: str, cfg: PipelineConfig, run_id: str, spark: Any = None) -> tuple[Manifest, bool]:
    """(manifest, skipped). Creates a Spark session only when the stage must actually run."""
    from jobs.spark.stages import STAGES, StageContext

    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; known: {list(STAGES)}")
    storage = open_storage(cfg.storage)
    manifests = {i: require_manifest(storage, run_id, i) for i in STAGES[name].inputs}
    conf, fp = stage_fingerprint(name, cfg, manifests)
    existing = read_manifest(storage, run_id, name)
    if existing is not None and existing.fingerprint == fp:
        log.info("stage %s of run %s is committed with the same inputs and config: skipped", name, run_id)
        return existing, True
    if spark is None:
        from jobs.spark.session import get_spark

        spark = get_spark(
            f"lmforge-{name}", cfg.spark.master, cfg.spark.shuffle_partitions, cfg.spark.driver_memory
        )
    cache = Path(tempfile.gettempdir(), "lmforge-cache")
    inputs = {i: materialize(storage, m, cache) for i, m in manifests.items()}
    out = scratch_dir(storage, run_id, name)
    try:
        start = time.monotonic()
        stats = STAGES[name].run(StageContext(spark, cfg, inputs, manifests, out))
        stats["seconds"] = round(time.monotonic() - start, 3)
        normalise_names(out)
        inputs_fp = {k: m.fingerprint for k, m in manifests.items()}
        manifest = commit(storage, run_id, name, out, config=conf, inputs=inputs_fp, stats=stats)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    log.info("stage %s committed: rows=%s bytes=%s", name, manifest.rows, manifest.bytes)
    return manifest, False


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run one curation stage")
    p.add_argument("stage")
    p.add_argument("--run-id", required=True)
    p.add_argument("--profile", default=None)
    p.add_argument("--overrides", default=None, help="JSON object of config overrides")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    cfg = load_config(args.profile or None, args.overrides or None)
    manifest, skipped = run_stage(args.stage, cfg, args.run_id)
    print(f"stage={args.stage} run={args.run_id} skipped={skipped} rows={manifest.rows}")
    return 0
