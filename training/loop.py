"""The training loop, built from plain PyTorch functions, run by Ray Train or by one plain process.

`lr_at` and `build_optimizer` know nothing of Ray and are unit-tested on their own. `run_training`
is the loop itself; it talks to its runner through a small `Session` (rank, world, device, report,
restore), so the same code runs inside Ray Train workers (`train_loop_per_worker`) and in a single
process without Ray (`LocalSession`, the baseline the benchmark compares Ray's overhead against).
It knows no parallelism strategy: a `ParallelPlan` (training/plans.py) wraps the model, takes each
optimizer step, evaluates, and lays out the checkpoint state.

Per step: `grad_accum` micro-batches of the run's single data stream (training/data.py), each
turned into the objective's batch (training/objectives.py), forward under bf16 autocast on GPU,
gradients synchronised once per step, clipping, AdamW, cosine schedule. Rank 0 logs a progress
line (step, loss, tokens/s, elapsed, ETA) at the first and last step and at most every
`LMFORGE_TRAIN_PROGRESS_S` seconds (30) between: a run of hours stays watchable in its task log
without a line per step. Checkpoints hold the
model, optimizer, step, the exact data position and the metrics history; a retry after a lost
worker (Ray Train's FailureConfig) restores all of them.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.config import TrainConfig
from core.shard_meta import ShardMeta
from training.data import ShardReader, read_meta, step_windows
from training.model import GPT, GPTConfig
from training.objectives import Objective, build_objective
from training.plans import ParallelPlan, mean_across_ranks, plan_for
from training.session import RaySession, Session

MIN_LR_RATIO = 0.1  # cosine decays to 10% of the peak (Hoffmann et al. 2022)
FAULT_ENV = "LMFORGE_FAULT_KILL_AT_STEP"  # tests: "<step>:<marker file>" kills rank 1 once
PROGRESS_ENV = "LMFORGE_TRAIN_PROGRESS_S"  # seconds between rank 0's progress lines (default 30)
PROGRESS_EVERY_S = 30.0

log = logging.getLogger("lmforge.train")


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to `base_lr` (reached at step warmup_steps - 1), then cosine to 10% at the end."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    min_lr = base_lr * MIN_LR_RATIO
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW that decays only matrices and embeddings, not biases or LayerNorm gains (as GPT-2/3)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), **({"fused": True} if fused else {}))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _fault_injection(step: int, rank: int) -> None:
    """Tests kill a worker mid-run: SIGKILL on rank 1 at the given step, once (a marker file)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or rank != 1:
        return
    at, marker = spec.split(":", 1)
    if step == int(at) and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def flush_denormals() -> None:
    """Treat denormal floats as zero on CPU (x86 FTZ/DAZ, `torch.set_flush_denormal`).

    AdamW's second moments of small gradients drift into the denormal range after a few dozen
    steps, where x86 arithmetic takes a slow path: the plain loop of scripts/bench_train.py ran a small GPT at
    8,564 tokens/s over 140 steps with this and 5,976 without (the slowdown starts near step 40
    and depends on the data order). Values below 1.2e-38 carry no signal for fp32 training.
    Per thread: call it on the thread that trains (Ray Train V2 runs the loop on its own thread).
    """
    torch.set_flush_denormal(True)


def _duration(seconds: float) -> str:
    """1h02m03s, 2m03s, 3.4s."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class StepProgress:
    """Rank 0's progress lines: at the first and the last step, and between them at most every
    `every_s` seconds (a line per step would flood a task log). Tokens/s covers the steps since the
    previous line; the ETA extrapolates this attempt's mean step time (a resumed run's clock starts
    at its resume step)."""

    def __init__(self, start: int, total: int, tokens_per_step: int, every_s: float | None = None) -> None:
        if every_s is None:
            every_s = float(os.environ.get(PROGRESS_ENV, PROGRESS_EVERY_S))
        self.start, self.total, self.tokens_per_step, self.every_s = start, total, tokens_per_step, every_s
        self.begin = self.last_time = time.monotonic()
        self.last_step = start
        self.lines = 0

    def step(self, done: int, loss: float) -> None:
        now = time.monotonic()
        if not (done == self.start + 1 or done == self.total or now - self.last_time >= self.every_s):
            return
        elapsed = now - self.begin
        rate = self.tokens_per_step * (done - self.last_step) / max(now - self.last_time, 1e-9)
        eta = (self.total - done) * elapsed / max(done - self.start, 1)
        _worker_log().info(
            "train step %d/%d (%.0f%%): loss %.4f, %s tokens/s, elapsed %s, ETA %s",
            done,
            self.total,
            100 * done / max(self.total, 1),
            loss,
            f"{rate:,.0f}",
            _duration(elapsed),
            _duration(eta),
        )
        self.last_time, self.last_step, self.lines = now, done, self.lines + 1


def _worker_log() -> logging.Logger:
    """The training logger, made to write to stderr in a Ray worker that configured no logging
    (Ray passes a worker's stderr to the driver's, so to the task log)."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    elif log.getEffectiveLevel() > logging.INFO:  # a root logger at WARNING would drop the lines
        log.setLevel(logging.INFO)
    return log


def model_config(cfg: TrainConfig, meta: ShardMeta) -> GPTConfig:
    return GPTConfig.from_size(cfg.model_size, meta.vocab_size, cfg.seq_len, dropout=cfg.dropout)


@dataclass
class Built:
    model: nn.Module  # what forward runs (the plan's wrapping, compiled; a pipeline's own stage)
    inner: nn.Module  # the plain module (the GPT, or prefix tuning's wrapper around it)
    gpt: GPT  # the GPT in `inner`, whose config is saved
    optimizer: torch.optim.Optimizer
    trainable: int
    flops_per_token: float
    plan: ParallelPlan


def build(cfg: TrainConfig, meta: ShardMeta, session: Session, state: dict[str, Any] | None) -> Built:
    """Model (pretrain, or prefix tuning over a frozen checkpoint), wrapped by the run's parallelism
    plan, and its optimizer; restored from `state` when the run resumes (the weights before the
    plan wraps them: a checkpoint holds the plain module's full state under every plan)."""
    from training.metrics import model_flops_for

    torch.manual_seed(cfg.seed)
    gpt_cfg = model_config(cfg, meta)
    if cfg.mode == "prefix_tuning":
        from training.prefix_tuning import PrefixTuning, load_base

        base = load_base(Path(str(cfg.init_from)), dropout=cfg.dropout)
        if base.config.vocab_size != meta.vocab_size:
            raise ValueError(
                f"train.init_from holds a model with vocabulary {base.config.vocab_size}, the shards "
                f"have {meta.vocab_size}: prefix-tune on shards of the same tokenizer"
            )
        inner: nn.Module = PrefixTuning(base, cfg.prefix_length, cfg.prefix_hidden)
        gpt = base
    else:
        inner = gpt = GPT(gpt_cfg)
    if state is not None:
        saved = state["model_config"]
        if saved != asdict(gpt.config):
            raise ValueError(
                f"the run's checkpoint holds a different model ({saved}) than the config asks for "
                f"({asdict(gpt.config)}); start a run with a new name"
            )
        inner.load_state_dict(state["model"])
    plan = plan_for(cfg, session)
    model = plan.wrap(inner, gpt)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # an nn.Module for nn.Module input
    fused = session.device.type == "cuda"
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, fused=fused)
    if state is not None:
        plan.load(model, optimizer, state)
    fpt = model_flops_for(gpt.config, gpt.num_params(), cfg.seq_len)
    trainable = sum(p.numel() for p in inner.parameters() if p.requires_grad)
    return Built(model, inner, gpt, optimizer, trainable, fpt, plan)


def _state(cfg: TrainConfig, built: Built, step: int, position: int, history: list) -> dict[str, Any]:
    """Everything a resume needs; the plan gathers the full state (a collective: all ranks call it)."""
    model_state, optimizer_state = built.plan.state(built.model, built.optimizer)
    return {
        "model": model_state,
        "model_config": asdict(built.gpt.config),
        "optimizer": optimizer_state,
        "step": step,
        "position": position,
        "history": history,
        "objective": cfg.objective,
        "mode": cfg.mode,
    }


def validation(built: Built, objective: Objective, reader: ShardReader) -> dict:
    """The objective's loss on the validation split (same windows every time), and perplexity."""
    loss = built.plan.evaluate(built.model, objective, reader)
    return {"val_loss": loss, "val_ppl": math.exp(min(loss, 50.0))}


def total_steps(cfg: TrainConfig, world: int) -> int:
    """`steps`, or the steps that `token_budget` tokens take at this batch, accumulation and world."""
    if cfg.token_budget is None:
        return cfg.steps
    return max(
        1, math.ceil(cfg.token_budget / (cfg.seq_len * step_windows(world, cfg.grad_accum, cfg.batch_size)))
    )


def run_training(
    cfg: TrainConfig,
    shards: str,
    session: Session,
    fs: Any = None,
    make_tracker: Callable[[int], Any] | None = None,
) -> list[dict[str, Any]]:
    """The loop (module docstring). Reports at step 1, every `log_every` steps and at every
    checkpoint; tokens_per_s covers the wall time since the previous report was due, the report
    itself included. Returns the history.

    `make_tracker(start_step)` gives a training/tracking.py Tracker (rank 0 only): it is told the
    step a retry resumes from, so TensorBoard drops the failed attempt's later points.
    """
    if session.device.type == "cpu":
        flush_denormals()
    meta = read_meta(shards, fs)
    state = session.restore()
    built = build(cfg, meta, session, state)
    objective = build_objective(cfg, meta)
    data_rank, data_world = built.plan.data_rank, built.plan.data_world
    reader = ShardReader(shards, "train", cfg.seq_len, data_rank, data_world, cfg.seed, fs)
    val_reader = None
    if meta.val_tokens > cfg.seq_len or (fs is not None and meta.val_files):
        val_reader = ShardReader(shards, "val", cfg.seq_len, data_rank, data_world, cfg.seed, fs)
    start, position, history = (state["step"], state["position"], state["history"]) if state else (0, 0, [])
    tracker = make_tracker(start) if make_tracker is not None else None
    if tracker is not None:
        tracker.log_hparams(cfg.model_dump(mode="json") | {"workers": session.world})
    try:
        return _loop(cfg, built, objective, reader, val_reader, session, tracker, start, position, history)
    finally:
        if tracker is not None:
            tracker.close()


def _loop(
    cfg: TrainConfig,
    built: Built,
    objective: Objective,
    reader: ShardReader,
    val_reader: ShardReader | None,
    session: Session,
    tracker: Any,
    start: int,
    position: int,
    history: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    from training.metrics import mfu, peak_flops

    data_world = built.plan.data_world
    steps = total_steps(cfg, data_world)
    peak = peak_flops(torch.cuda.get_device_name(session.device)) if session.device.type == "cuda" else None
    clock, steps_timed = time.perf_counter(), 0
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.seq_len * data_world
    progress = StepProgress(start, steps, tokens_per_step) if session.rank == 0 else None
    built.model.train()
    for step in range(start, steps):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, steps)
        set_lr(built.optimizer, lr)
        loss = built.plan.step(built.model, built.optimizer, objective, reader, step, position)
        position += step_windows(data_world, cfg.grad_accum, cfg.batch_size)
        _fault_injection(step + 1, session.rank)
        done, steps_timed = step + 1, steps_timed + 1
        if progress is not None:  # rank 0's own loss: no collective outside the report steps
            progress.step(done, float(loss))
        ckpt = done % cfg.checkpoint_every == 0 or done == steps
        if not (done == 1 or done % cfg.log_every == 0 or ckpt):
            continue
        now = time.perf_counter()
        elapsed = now - clock
        tokens_per_s = tokens_per_step * steps_timed / elapsed
        metrics: dict[str, Any] = {
            "step": done,
            "loss": mean_across_ranks(loss, session.device),
            "lr": lr,
            "tokens_per_s": tokens_per_s,
            "position": position,
        }
        if peak:
            metrics["mfu"] = mfu(tokens_per_s / session.world, built.flops_per_token, peak)
        if done == steps and val_reader is not None:
            metrics |= validation(built, objective, val_reader)
        history.append(metrics)
        if tracker is not None:
            tracker.log(done, metrics)
            if ckpt:
                tracker.sync()
        session.report(metrics, _state(cfg, built, done, position, history) if ckpt else None)
        # The next interval starts now: this report's cost (a barrier, a checkpoint upload) counts
        # against the next steps' throughput, as it does in wall time.
        clock, steps_timed = now, 0
    return history


def shard_fs(storage: dict[str, Any] | None, shards: str) -> Any:
    """The pyarrow filesystem for s3:// shards (None for local paths)."""
    if not shards.startswith("s3://") or storage is None:
        return None
    from core.config import StorageConfig
    from core.storage import S3Storage

    return S3Storage(StorageConfig.model_validate(storage)).arrow_fs()[0]


def train_loop_per_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray Train entry point: config = {"train": TrainConfig dict, "shards_dir": path or s3 key
    (bucket/prefix), "shards_uri", "storage": the StorageConfig dict, "run_name", "tracking": bool,
    "threads"}.

    `batch_size` is per worker. Returns the metrics history (the driver reads `result.return_value`).
    """
    cfg = TrainConfig.model_validate(config["train"])
    if config.get("threads"):
        torch.set_num_threads(int(config["threads"]))  # the CPUs Ray reserved for this worker
    session = RaySession()
    shards = config["shards_dir"]
    fs = shard_fs(config.get("storage"), config.get("shards_uri", ""))
    make_tracker = None
    if config.get("tracking") and session.rank == 0:
        from core.config import StorageConfig
        from core.storage import open_storage
        from training.tracking import Tracker

        storage = open_storage(StorageConfig.model_validate(config["storage"]))

        def make_tracker(start: int) -> Tracker:
            return Tracker.for_run(storage, config["run_name"], enabled=True, purge_step=start or None)

    return run_training(cfg, shards, session, fs, make_tracker)
