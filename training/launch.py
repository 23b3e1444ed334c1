"""Launch a pretraining run on Ray Train: a local Ray by default, a cluster when an address is set.

The driver validates the shards first (a missing meta.json should fail here, not on every worker
after a Ray start) and turns the Ray `Result` into a plain dict for Airflow and the scaling study.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from core.config import REPO_ROOT, PipelineConfig, RayConfig
from core.storage import open_storage
from training.data import ShardReader
from training.loop import train_loop_per_worker
from training.model import GPT, GPTConfig

# Train V2 workers hand each report to a one-slot queue that the controller drains every
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s); reporting faster than that blocks training.
POLL_INTERVAL_VAR = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


class PretrainingError(RuntimeError):
    """The Ray Train run failed after its retries; the message names the run and the cause."""


def ensure_ray(cfg: RayConfig) -> bool:
    """Start a local Ray (workers import this repo via PYTHONPATH) or connect to `cfg.address`.

    Returns True when this call connected, so the caller owns the connection and closes it: a
    long-lived process (an Airflow worker, a test session) must not inherit a stale Ray.
    """
    if ray.is_initialized():
        return False
    if cfg.address is None:
        ray.init(
            num_cpus=max(2, cfg.num_workers),
            include_dashboard=False,
            # Worker stdout (per-step reports, Ray's own controller chatter) stays in Ray's log
            # files; metrics come back through the Result, errors through TrainingFailedError.
            log_to_driver=os.environ.get("LMFORGE_RAY_LOG_TO_DRIVER", "0") == "1",
            runtime_env={
                "env_vars": {
                    "PYTHONPATH": str(REPO_ROOT),
                    POLL_INTERVAL_VAR: os.environ.get(POLL_INTERVAL_VAR, "0.5"),
                }
            },
        )
    else:
        ray.init(address=cfg.address)
    return True


def run_storage(cfg: PipelineConfig, storage_uri: str) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """Ray's (storage_path, storage_filesystem): pyarrow wants `bucket/key` plus a configured S3 fs."""
    if storage_uri.startswith("s3://"):
        fs, _ = open_storage(cfg.storage).arrow_fs()
        return storage_uri.removeprefix("s3://").rstrip("/"), fs
    return str(Path(storage_uri.removeprefix("file://")).resolve()), None


def run_pretraining(cfg: PipelineConfig, shards_dir: Path, storage_uri: str, name: str) -> dict[str, Any]:
    """Train `cfg.train` on the shards in `shards_dir`; checkpoints go to `<storage_uri>/<name>/`."""
    shards_dir = Path(shards_dir).resolve()
    vocab_size = ShardReader(shards_dir, "train", cfg.train.seq_len).meta["vocab_size"]
    owned = ensure_ray(cfg.ray)
    try:
        return _fit(cfg, shards_dir, storage_uri, name, vocab_size)
    finally:
        if owned:
            ray.shutdown()


def _fit(
    cfg: PipelineConfig, shards_dir: Path, storage_uri: str, name: str, vocab_size: int
) -> dict[str, Any]:
    storage_path, fs = run_storage(cfg, storage_uri)
    trainer = TorchTrainer(
        train_loop_per_worker,  # type: ignore[arg-type]  # Ray's stubs describe Train V1
        train_loop_config={
            "train": cfg.train.model_dump(),
            "shards_dir": str(shards_dir),
            "vocab_size": vocab_size,
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.ray.num_workers,
            use_gpu=cfg.ray.use_gpu,
            resources_per_worker={"CPU": cfg.ray.cpus_per_worker},
        ),
        torch_config=TorchConfig(backend="nccl" if cfg.ray.use_gpu else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=2),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        raise PretrainingError(f"pretraining run {name!r} ({storage_uri}/{name}) failed: {err}") from err
    if result.error is not None:
        raise PretrainingError(f"pretraining run {name!r} ({storage_uri}/{name}) failed: {result.error}")
    model = GPT(GPTConfig.from_size(cfg.train.model_size, vocab_size, cfg.train.seq_len))
    return summarise(result, storage_uri, num_params=model.num_params(), workers=cfg.ray.num_workers)


def summarise(result: ray.train.Result, storage_uri: str, num_params: int, workers: int) -> dict[str, Any]:
    """Plain-dict view of a finished run.

    Train V2 keeps in `metrics_dataframe` only the reports that carried a checkpoint, so the full
    curve comes from the history the loop returns (`return_value`), with the dataframe as fallback.
    """
    history = result.return_value  # type: ignore[attr-defined]  # a Train V2 field
    if not history and result.metrics_dataframe is not None:
        history = result.metrics_dataframe.to_dict("records")
    history = sorted(history or [], key=lambda m: m["step"])
    if not history:
        raise PretrainingError(f"run at {result.path} reported no metrics")
    final = history[-1]
    checkpoint = result.checkpoint.path if result.checkpoint else None
    if checkpoint and storage_uri.startswith("s3://"):
        checkpoint = f"s3://{checkpoint}"
    rates = [m["tokens_per_s"] for m in history[1:]] or [final["tokens_per_s"]]  # first includes warm-up
    return {
        "losses": [[int(m["step"]), float(m["loss"])] for m in history],
        "first_loss": float(history[0]["loss"]),
        "last_loss": float(final["loss"]),
        "val_loss": final.get("val_loss"),
        "val_ppl": final.get("val_ppl"),
        "tokens_per_s": statistics.median(rates),
        "steps": int(final["step"]),
        "num_params": num_params,
        "checkpoint": checkpoint,
        "workers": workers,
    }
