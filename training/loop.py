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
model, optimizer, step, the exact data position, the random number generators' states (dropout
draws from torch's global generator) and the metrics history; a retry after a lost worker (Ray
Train's FailureConfig) restores all of them, and every report says the step its attempt started
from (`resumed_from_step`, 0 for a fresh start).

Accounting: `token_budget` and the reported `tokens` count raw text consumed
(training/objectives.py's `text_tokens_per_window`); FLOPs and MFU count the positions the model
runs (`positions_per_window`: SimCSE encodes each row twice). Objectives with a random number of
labelled tokens per row take the mean over the step's labelled tokens, all micro-batches and ranks
together (`TokenMean`), so accumulation and data parallelism equal one big batch.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from core.config import TrainConfig
from core.shard_meta import ShardMeta
from training.data import ShardReader, read_meta, step_windows
from training.model import GPT, GPTConfig
from training.objectives import (
    Objective,
    TokenMean,
    build_objective,
    labelled_tokens,
    positions_per_window,
    text_tokens_per_window,
    varies_in_labels,
)
from training.plans import ParallelPlan, _generator, mean_across_ranks, plan_for
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
    """Tests kill a worker mid-run (in Ray Train workers): SIGKILL on rank 1 at the given step,
    once (a marker file), after the checkpoints reported so far are registered."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or rank != 1:
        return
    at, marker = spec.split(":", 1)
    if step == int(at) and not Path(marker).exists():
        import ray.train

        # Ray Train registers a reported checkpoint when its controller next polls: a kill before
        # that loses it, and the retry silently starts at step 0 (seen here: the test passed so).
        # Wait for the registration, so the retry must resume from the last checkpoint.
        ray.train.get_all_reported_checkpoints()
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
    """The preset `model_size` with the explicit shape (n_layer, n_head, n_embd) on top."""
    from training.model import config_for

    return config_for(cfg, meta.vocab_size)


@dataclass
class Built:
    model: nn.Module  # what forward runs (the plan's wrapping, compiled; a pipeline's own stage)
    inner: nn.Module  # the plain module (the GPT, or prefix tuning's wrapper around it)
    gpt: GPT  # the GPT in `inner`, whose config is saved
    optimizer: torch.optim.Optimizer
    trainable: int
    flops_per_token: float  # per position the model runs (`positions_per_window`)
    plan: ParallelPlan


def build(cfg: TrainConfig, meta: ShardMeta, session: Session, state: dict[str, Any] | None) -> Built:
    """Model (pretrain, or prefix tuning over a frozen checkpoint), wrapped by the run's parallelism
    plan, and its optimizer; restored from `state` when the run resumes (the weights before the
    plan wraps them: a checkpoint holds the plain module's full state under every plan)."""
    from training.metrics import model_flops_for, prefix_tuning_flops_per_token

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
    trainable = sum(p.numel() for p in inner.parameters() if p.requires_grad)
    head = cfg.objective != "contrastive"  # SimCSE pools hidden states: the head never runs
    if cfg.mode == "prefix_tuning":  # a frozen base: 4N, not 6N (training/metrics.py)
        fpt: float = prefix_tuning_flops_per_token(
            gpt.config, gpt.num_params(), cfg.seq_len, cfg.prefix_length, trainable, cfg.batch_size, head
        )
    else:
        fpt = model_flops_for(gpt.config, gpt.num_params(), cfg.seq_len, head)
    return Built(model, inner, gpt, optimizer, trainable, fpt, plan)


def rng_state() -> dict[str, Any]:
    """The states of every generator training draws from without a seed of its own: torch's CPU
    generator (dropout on CPU), each CUDA device's (dropout on GPU), numpy's and Python's, as
    tensors, ints and lists only, so `torch.load(weights_only=True)` reads them back. Every rank
    seeds and draws alike (`build` seeds them all with `seed`), so rank 0's state stands for all."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved (a CUDA state only where this process has CUDA)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _state(cfg: TrainConfig, built: Built, step: int, position: int, history: list) -> dict[str, Any]:
    """Everything a resume needs; the plan gathers the full state (a collective: all ranks call it)."""
    model_state, optimizer_state = built.plan.state(built.model, built.optimizer)
    return {
        "rng": rng_state(),
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


def total_steps(cfg: TrainConfig, world: int, text_per_window: int | None = None) -> int:
    """`steps`, or the steps that `token_budget` raw text tokens take at this batch, accumulation
    and world; `text_per_window` is the objective's `text_tokens_per_window` (seq_len when None,
    which is right for every objective but span corruption)."""
    if cfg.token_budget is None:
        return cfg.steps
    per_window = cfg.seq_len if text_per_window is None else text_per_window
    return max(
        1, math.ceil(cfg.token_budget / (per_window * step_windows(world, cfg.grad_accum, cfg.batch_size)))
    )


def step_labelled_total(
    cfg: TrainConfig, objective: Objective, reader: ShardReader, step: int, position: int, rank: int
) -> int:
    """Labelled tokens in the step that starts at stream `position`: this rank's micro-batches as
    the plan will draw them (the same windows and generators), summed over every rank."""
    count = 0
    for micro in range(cfg.grad_accum):
        tokens = reader.rank_windows(position, micro, cfg.batch_size)
        count += labelled_tokens(objective.make_batch(tokens, _generator(cfg, step, rank, micro)))
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        t = torch.tensor([count], dtype=torch.int64, device=device)  # NCCL reduces GPU tensors only
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        count = int(t.item())
    return count


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
    objective: Objective = build_objective(cfg, meta)
    if varies_in_labels(objective) and cfg.parallelism != "pipeline":
        objective = TokenMean(objective, cfg.grad_accum * built.plan.data_world)
    if state is not None and "rng" in state:  # dropout draws on from where the checkpoint stopped
        set_rng_state(state["rng"])
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
    inner = objective.inner if isinstance(objective, TokenMean) else objective
    text_per_window = text_tokens_per_window(inner, cfg.seq_len)
    steps = total_steps(cfg, data_world, text_per_window)
    peak = peak_flops(torch.cuda.get_device_name(session.device)) if session.device.type == "cuda" else None
    clock, steps_timed = time.perf_counter(), 0
    windows_per_step = step_windows(data_world, cfg.grad_accum, cfg.batch_size)
    tokens_per_step = windows_per_step * cfg.seq_len  # positions of text per step (tokens_per_s)
    # what the model runs, for FLOPs and MFU: SimCSE's two views count twice
    flops_per_window = positions_per_window(inner, cfg.seq_len) * built.flops_per_token
    progress = StepProgress(start, steps, tokens_per_step) if session.rank == 0 else None
    built.model.train()
    for step in range(start, steps):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, steps)
        set_lr(built.optimizer, lr)
        if isinstance(objective, TokenMean):
            objective.total = step_labelled_total(cfg, inner, reader, step, position, built.plan.data_rank)
        loss = built.plan.step(built.model, built.optimizer, objective, reader, step, position)
        position += windows_per_step
        _fault_injection(step + 1, session.rank)
        done, steps_timed = step + 1, steps_timed + 1
        if progress is not None:  # rank 0's own loss: no collective outside the report steps
            progress.step(done, float(loss))
        ckpt = done % cfg.checkpoint_every == 0 or done == steps
        evaluate = val_reader is not None and (
            done == steps or (cfg.eval_every > 0 and done % cfg.eval_every == 0)
        )
        if not (done == 1 or done % cfg.log_every == 0 or ckpt or evaluate):
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
            "tokens": position * text_per_window,  # raw text consumed so far (token_budget's unit)
            "flops": position * flops_per_window,  # model FLOPs so far (training/metrics.py)
            "resumed_from_step": start,
        }
        if peak:
            positions_per_s = (
                windows_per_step * positions_per_window(inner, cfg.seq_len) * steps_timed / elapsed
            )
            metrics["mfu"] = mfu(positions_per_s / session.world, built.flops_per_token, peak)
        eval_s = 0.0
        if evaluate and val_reader is not None:
            if isinstance(objective, TokenMean):
                objective.total = None  # evaluation: each batch's own mean
            eval_start = time.perf_counter()
            metrics |= validation(built, objective, val_reader)
            eval_s = time.perf_counter() - eval_start
        history.append(metrics)
        if tracker is not None:
            tracker.log(done, metrics)
            if ckpt:
                tracker.sync()
        session.report(metrics, _state(cfg, built, done, position, history) if ckpt else None)
        # The next interval starts now: this report's cost (a barrier, a checkpoint upload) counts
        # against the next steps' throughput, as it does in wall time; validation's does not.
        clock, steps_timed = now + eval_s, 0
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
