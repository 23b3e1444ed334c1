"""The pretraining stage: shards in, checkpoints and metrics out, committed like every stage."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from core.datasets import commit, read_manifest, require_manifest, stage_prefix
from orchestration.params import merged_config_args
from core.storage import open_storage
from training.jobs_api import pretrain_fingerprint

log = logging.getLogger("lmforge.pretrain")


def pretrain_stage(params: dict[str, Any], upstream: dict[str, str]) -> dict[str, Any]:
    """Train on the run's shards unless a pretrain dataset with the same inputs+config exists."""
    from core.config import load_config

    profile, overrides_json = merged_config_args(upstream, params)
    cfg = load_config(profile, overrides_json)
    run_id = upstream["run_id"]
    storage = open_storage(cfg.storage)
    shards = require_manifest(storage, run_id, "shards")
    conf = {"train": cfg.train.model_dump(mode="json"), "ray": cfg.ray.model_dump(mode="json")}
    inputs = {"shards": shards.fingerprint}
    result = {"run_id": run_id, "profile": cfg.profile, "overrides_json": overrides_json}
    fp = pretrain_fingerprint(cfg, shards.fingerprint)  # the Ray Jobs submission id uses it too
    existing = read_manifest(storage, run_id, "pretrain")
    if existing is not None and existing.fingerprint == fp:
        log.info("pretrain of run %s already committed with this config: skipped", run_id)
        return {**result, "skipped": True, **_brief(existing.stats)}
    # Local shards are read in place; S3 shards are streamed by the workers (ranged reads).
    local = storage.local_dir(stage_prefix(run_id, "shards"))
    shards_src = str(local) if local else storage.uri(stage_prefix(run_id, "shards"))
    from training.launch import run_pretraining

    ray_uri = storage.uri(f"{stage_prefix(run_id, 'pretrain')}-ray")
    # The fingerprint in the name: Ray resumes a same-named run, which is right only for the same config.
    metrics = run_pretraining(cfg, shards_src, ray_uri, name=f"pretrain-{run_id}-{fp[:12]}")
    out = Path(tempfile.mkdtemp(prefix="pretrain-"))
    try:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
        commit(storage, run_id, "pretrain", out, config=conf, inputs=inputs, stats=metrics)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {**result, "skipped": False, **_brief(metrics)}


def _brief(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("first_loss", "last_loss", "val_loss", "steps", "checkpoint")
    return {k: stats.get(k) for k in keys}
