"""The per-worker training loop Ray Train runs, built from plain PyTorch functions.

`lr_at`, `build_optimizer`, `train_step` and `evaluate` know nothing of Ray and are unit-tested on
their own; `train_loop_per_worker` only adds ranks, DDP, metric reports and checkpoints around them.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn

from core.config import TrainConfig
from training.data import ShardReader, read_meta
from training.model import GPT, GPTConfig

MIN_LR_RATIO = 0.1  # cosine decays to 10% of the peak (Hoffmann et al. 2022)
EVAL_BATCHES = 4
STATE_FILE = "state.pt"


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup to `base_lr` (reached at step warmup_steps - 1), then cosine to 10% at the end."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    min_lr = base_lr * MIN_LR_RATIO
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW that decays only matrices and embeddings, not biases or LayerNorm gains (as GPT-2/3)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float
) -> float:
    """One forward/backward/update; returns the batch loss."""
    _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean loss over `batches`, in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    losses = [model(x, y)[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def mean_across_ranks(value: float, device: torch.device) -> float:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / dist.get_world_size()


def _unwrap(model: nn.Module) -> GPT:
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, GPT)
    return inner


def _load_state() -> dict[str, Any] | None:
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, history: list) -> dict[str, Any]:
    inner = _unwrap(model)
    return {
        "model": inner.state_dict(),
        "model_config": asdict(inner.config),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "history": history,
    }


def _report(metrics: dict[str, Any], state: dict[str, Any] | None, rank: int) -> None:
    """Every rank must call report (it is a barrier); only rank 0 hands over a checkpoint."""
    if state is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def _validation(model: nn.Module, shards_dir: Path, cfg: TrainConfig, device: torch.device) -> dict:
    if read_meta(shards_dir).get("val_tokens", 0) <= cfg.seq_len:
        return {}
    ctx = ray.train.get_context()
    reader = ShardReader(shards_dir, "val", cfg.seq_len, ctx.get_world_rank(), ctx.get_world_size(), cfg.seed)
    batches = (reader.batch(i, cfg.batch_size) for i in range(EVAL_BATCHES))
    batches = ((x.to(device), y.to(device)) for x, y in batches)
    loss = mean_across_ranks(evaluate(_unwrap(model), batches), device)
    return {"val_loss": loss, "val_ppl": math.exp(loss)}


def _build(cfg: TrainConfig, vocab_size: int) -> tuple[nn.Module, torch.optim.AdamW, int, list[dict]]:
    """Model (DDP-wrapped), optimizer, first step and metrics history, restored from the run's
    latest checkpoint when Ray Train has one (a retry after a failure, or a rerun of the same name)."""
    torch.manual_seed(cfg.seed)
    model_cfg = GPTConfig.from_size(cfg.model_size, vocab_size, cfg.seq_len)
    gpt = GPT(model_cfg)
    state = _load_state()
    if state is not None:
        if state["model_config"] != asdict(model_cfg):
            raise ValueError(
                f"the run's checkpoint holds a different model ({state['model_config']}) than the "
                f"config asks for ({asdict(model_cfg)}); start a run with a new name"
            )
        gpt.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(gpt)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    if state is None:
        return model, optimizer, 0, []
    optimizer.load_state_dict(state["optimizer"])
    return model, optimizer, state["step"], state["history"]


def train_loop_per_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Ray Train entry point: config = {"train": TrainConfig dict, "shards_dir": str, "vocab_size": int}.

    `batch_size` is per worker. Reports at step 1, every `log_every` steps and at every checkpoint;
    tokens_per_s covers the steps since the previous report, not the report itself. Returns the
    metrics history, which the driver reads as `result.return_value`.
    """
    cfg = TrainConfig.model_validate(config["train"])
    shards_dir = Path(config["shards_dir"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model, optimizer, start, history = _build(cfg, config["vocab_size"])
    device = ray.train.torch.get_device()
    reader = ShardReader(shards_dir, "train", cfg.seq_len, rank, world, cfg.seed)
    clock, steps_timed = time.perf_counter(), 0
    for step in range(start, cfg.steps):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, cfg.steps)
        set_lr(optimizer, lr)
        x, y = (t.to(device) for t in reader.batch(step, cfg.batch_size))
        loss = train_step(model, optimizer, x, y, cfg.grad_clip)
        done, steps_timed = step + 1, steps_timed + 1
        ckpt = done % cfg.checkpoint_every == 0 or done == cfg.steps
        if not (done == 1 or done % cfg.log_every == 0 or ckpt):
            continue
        tokens = cfg.batch_size * cfg.seq_len * world * steps_timed
        metrics = {
            "step": done,
            "loss": mean_across_ranks(loss, device),
            "lr": lr,
            "tokens_per_s": tokens / (time.perf_counter() - clock),
        }
        if done == cfg.steps:
            metrics |= _validation(model, shards_dir, cfg, device)
        history.append(metrics)
        _report(metrics, _state(model, optimizer, done, history) if ckpt else None, rank)
        clock, steps_timed = time.perf_counter(), 0
    return history
