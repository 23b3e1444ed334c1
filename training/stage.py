"""The pretraining stage: shards in, checkpoints and metrics out, committed like every stage.

`pretrain_stage` plans the stage from the registry (core/registry.py) and runs it through the same
committed-stage protocol as the curation stages (core/stage_run.py); `train_work` is its adapter.
The Ray Jobs path (training/jobs_api.py) derives its submission id from the same plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.config import PipelineConfig, load_config
from core.datasets import default_cache_root, stage_prefix, verified_local_dir
from core.plans import plan_for
from core.stage_run import Plan, run_committed
from core.storage import open_storage

STAGE = "pretrain"


def train_work(cfg: PipelineConfig, plan: Plan, out: Path) -> dict[str, Any]:
    """Train on the run's shards; metrics.json into `out`, checkpoints beside the stage's folder."""
    from training.launch import run_pretraining

    storage, run_id = open_storage(cfg.storage), plan.run_id
    # Local shards are verified against their manifest and read in place; S3 shards are streamed by
    # the workers (ranged reads).
    local = verified_local_dir(storage, plan.inputs["shards"], default_cache_root())
    shards_src = str(local) if local else storage.uri(stage_prefix(run_id, "shards"))
    ray_uri = storage.uri(f"{stage_prefix(run_id, STAGE)}-ray")
    # The fingerprint in the name: Ray resumes a same-named run, which is right only for the same
    # config, inputs and code.
    metrics = run_pretraining(cfg, shards_src, ray_uri, name=f"pretrain-{run_id}-{plan.fingerprint[:12]}")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return metrics


def pretrain_stage(
    run_id: str, profile: str | None, overrides_json: str | None, *, force: bool = False
) -> dict[str, Any]:
    """Train unless a pretrain dataset with the same inputs, config and code is committed."""
    cfg = load_config(profile or None, overrides_json or None)
    storage = open_storage(cfg.storage)
    plan = plan_for(storage, run_id, STAGE, cfg)
    manifest, skipped = run_committed(storage, plan, lambda out: train_work(cfg, plan, out), force=force)
    result = {"run_id": run_id, "profile": cfg.profile, "overrides_json": overrides_json or "{}"}
    return {**result, "skipped": skipped, **_brief(manifest.stats)}


def _brief(stats: dict[str, Any]) -> dict[str, Any]:
    keys = ("first_loss", "last_loss", "val_loss", "steps", "checkpoint")
    return {k: stats.get(k) for k in keys}
