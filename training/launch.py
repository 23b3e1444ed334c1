"""Launch a pretraining run on Ray Train: a local Ray by default, a cluster when an address is set.

The driver validates the shards first (a missing meta.json should fail here, not on every worker
after a Ray start) and turns the Ray `Result` into a plain dict for Airflow and the run summary.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray
import ray.train
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from core.config import REPO_ROOT, PipelineConfig, RayConfig
from core.shard_meta import ShardMeta
from core.storage import open_storage
from training.data import ShardReader, read_meta
from training.loop import FAULT_ENV, PROGRESS_ENV, model_config, train_loop_per_worker
from training.model import GPT

# Train V2 workers hand each report to a one-slot queue that the controller drains every
# RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s); reporting faster than that blocks training. The
# loop reports to Ray only at checkpoints (training/session.py), so Ray's default poll is kept:
# scripts/bench_train.py measured metrics reports every 5 steps at -34% of a plain loop with the
# 2 s poll and -3 to -6% with 0.1-0.5 s polls, whose RPCs share the cores with training.
POLL_INTERVAL_VAR = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"

# Ray starts its workers at niceness 15 (raylet's `worker_niceness`) so that its own daemons (GCS,
# raylet, agents: niceness 0) win every contention for a core. On a local Ray the training worker
# is the whole job, so it runs at the daemons' priority instead of yielding every time slice to
# them (2 threads on 2 cores: 6,863 vs 6,748 tokens/s, median of 3, about this machine's noise).
# Clusters keep Ray's default.
LOCAL_WORKER_NICENESS = 0
# A local Ray is one node that nobody drains: its Train controller needs no preemption-watcher actor
# (one more idle process polling on the training cores).
LOCAL_TRAIN_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


DASHBOARD_ENV = "LMFORGE_RAY_DASHBOARD"  # "0": a local Ray without its dashboard
log = logging.getLogger("lmforge.train")


class PretrainingError(RuntimeError):
    """The Ray Train run failed after its retries; the message names the run and the cause."""


def ensure_ray(cfg: RayConfig) -> bool:
    """Start a local Ray (workers import this repo via PYTHONPATH) or connect to `cfg.address`.

    Returns True when this call connected, so the caller owns the connection and closes it: a
    long-lived process (an Airflow worker, a test session) must not inherit a stale Ray.
    """
    if ray.is_initialized():
        return False
    context = _start_local_ray(cfg) if cfg.address is None else ray.init(address=cfg.address)
    url = getattr(context, "dashboard_url", None)
    log.info("Ray dashboard: %s", f"http://{url}{token_note()}" if url else "off")
    return True


def token_note() -> str:
    """Where the dashboard's login token is, when Ray runs with token authentication (Ray 2.60's
    default for a local `ray.init`); the token itself is never logged."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return ""
    where = "$RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else None
    where = where or os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
    return f" (token authentication: the dashboard asks for the token in {where})"


def _start_local_ray(cfg: RayConfig) -> Any:
    """A local Ray with its dashboard (the run's jobs, actors, logs and metrics, its URL logged) when
    Ray's dashboard packages are installed and `LMFORGE_RAY_DASHBOARD` is not "0"; a dashboard that
    cannot start is logged and the run goes on without it."""
    kwargs: dict[str, Any] = {
        "num_cpus": max(2, cfg.num_workers),
        "_system_config": {"worker_niceness": LOCAL_WORKER_NICENESS},
        # Worker output (the loop's progress lines, Ray's own controller chatter) comes to this
        # process's stderr, so to the task log; "0" keeps it in Ray's log files only.
        "log_to_driver": os.environ.get("LMFORGE_RAY_LOG_TO_DRIVER", "1") == "1",
        "runtime_env": {
            "env_vars": {
                "PYTHONPATH": str(REPO_ROOT),
                **LOCAL_TRAIN_ENV,
                **{k: v for k, v in os.environ.items() if k in (POLL_INTERVAL_VAR, PROGRESS_ENV)},
                # tests' fault injection (training/loop.py) reaches the workers this way only
                **{k: v for k, v in os.environ.items() if k == FAULT_ENV},
            }
        },
    }
    if not sys.stderr.isatty():  # worker lines reach a task log: no ANSI colour codes around them
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if dashboard_wanted():
        try:
            # Ray takes the next free port when 8265 is in use (another local Ray, a test's head).
            return ray.init(include_dashboard=True, dashboard_host="127.0.0.1", **kwargs)
        except Exception as err:  # a dashboard is a convenience, never a reason to fail
            log.warning("the Ray dashboard could not start (%s): starting Ray without it", err)
            if ray.is_initialized():
                ray.shutdown()
    return ray.init(include_dashboard=False, **kwargs)


def dashboard_wanted() -> bool:
    """The dashboard needs `ray[default]`'s packages (aiohttp and friends): without them, none."""
    if os.environ.get(DASHBOARD_ENV, "1") == "0":
        return False
    try:
        import aiohttp  # noqa: F401
        import ray.dashboard  # noqa: F401
    except ImportError:
        return False
    return True


def run_storage(cfg: PipelineConfig, storage_uri: str) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """Ray's (storage_path, storage_filesystem): pyarrow wants `bucket/key` plus a configured S3 fs."""
    if storage_uri.startswith("s3://"):
        fs, _ = open_storage(cfg.storage).arrow_fs()
        return storage_uri.removeprefix("s3://").rstrip("/"), fs
    return str(Path(storage_uri.removeprefix("file://")).resolve()), None


def shard_location(cfg: PipelineConfig, shards: Path | str) -> tuple[str, Any]:
    """(path the workers open, pyarrow filesystem or None): a local directory, or an s3:// URI that
    workers stream with ranged reads (training/data.py) instead of downloading."""
    text = str(shards)
    if text.startswith("s3://"):
        fs, _ = open_storage(cfg.storage).arrow_fs()
        return text.removeprefix("s3://").rstrip("/"), fs
    return str(Path(text).resolve()), None


def run_pretraining(
    cfg: PipelineConfig,
    shards_dir: Path | str,
    storage_uri: str,
    name: str,
    tracking: bool = True,
) -> dict[str, Any]:
    """Train `cfg.train` on the shards (a local directory or an s3:// URI); checkpoints go to
    `<storage_uri>/<name>/`; TensorBoard events to `<storage root>/tensorboard/<name>` when `tracking`."""
    shards, fs = shard_location(cfg, shards_dir)
    meta = read_meta(shards, fs)
    ShardReader(shards, "train", cfg.train.seq_len, fs=fs)  # fails here, not on every worker
    owned = ensure_ray(cfg.ray)
    try:
        return _fit(cfg, shards, str(shards_dir), storage_uri, name, meta, tracking)
    finally:
        if owned:
            ray.shutdown()


def _fit(
    cfg: PipelineConfig,
    shards: str,
    shards_uri: str,
    storage_uri: str,
    name: str,
    meta: ShardMeta,
    tracking: bool,
) -> dict[str, Any]:
    storage_path, fs = run_storage(cfg, storage_uri)
    trainer = TorchTrainer(
        train_loop_per_worker,  # type: ignore[arg-type]  # Ray's stubs describe Train V1
        train_loop_config={
            "train": cfg.train.model_dump(),
            "shards_dir": shards,
            "shards_uri": shards_uri,
            "storage": cfg.storage.model_dump(),  # SecretStr stays a secret inside the pickle
            "run_name": name,
            "tracking": tracking,
            "threads": max(1, int(cfg.ray.cpus_per_worker)),
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
            failure_config=FailureConfig(max_failures=cfg.train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as err:
        raise PretrainingError(f"pretraining run {name!r} ({storage_uri}/{name}) failed: {err}") from err
    if result.error is not None:
        raise PretrainingError(f"pretraining run {name!r} ({storage_uri}/{name}) failed: {result.error}")
    with torch.device("meta"):
        num_params = GPT(model_config(cfg.train, meta)).num_params()
    out = summarise(result, storage_uri, num_params=num_params, workers=cfg.ray.num_workers)
    out |= {"objective": cfg.train.objective, "mode": cfg.train.mode, "parallelism": cfg.train.parallelism}
    if tracking:
        from training.tracking import TENSORBOARD_PREFIX

        out["tensorboard"] = open_storage(cfg.storage).uri(f"{TENSORBOARD_PREFIX}/{name}")
    return out


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
    timed = history[1:] or [final]  # the first report includes start-up and compilation
    mfus = [m["mfu"] for m in timed if m.get("mfu") is not None]
    return {
        "losses": [[int(m["step"]), float(m["loss"])] for m in history],
        "first_loss": float(history[0]["loss"]),
        "last_loss": float(final["loss"]),
        "val_loss": final.get("val_loss"),
        "val_ppl": final.get("val_ppl"),
        "tokens_per_s": statistics.median(m["tokens_per_s"] for m in timed),
        "mfu": statistics.median(mfus) if mfus else None,
        "steps": int(final["step"]),
        "num_params": num_params,
        "checkpoint": checkpoint,
        "workers": workers,
        # the steps retries restarted from (their checkpoints' steps); [] for a run never restored
        # validation curve (train.eval_every): [step, raw text tokens consumed, val_loss]
        "val_curve": [
            [int(m["step"]), int(m.get("tokens") or 0), float(m["val_loss"])]
            for m in history
            if m.get("val_loss") is not None
        ],
        "resumed_from": sorted({int(m.get("resumed_from_step") or 0) for m in history} - {0}),
    }
