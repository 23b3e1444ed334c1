"""Parallelism plans: how one run spreads over its ranks, one class per strategy, one interface.

As in torchtitan, parallelism is applied from outside an unchanged model, and the training loop
(training/loop.py) never asks which strategy runs: it calls a `ParallelPlan` to wrap the model,
to take one optimizer step, to evaluate, and to save and restore the checkpoint state.

- `DDPPlan`: a full replica per rank, gradients all-reduced (Ray Train's `prepare_model`); one
  process without a process group is its world-size-1 case.
- `FSDPPlan`: parameters, gradients and optimizer state sharded per Block (training/parallel.py).
- `PipelinePlan`: one stage per rank, micro-batched by a schedule (training/pipeline.py).

Every plan saves the model alike: the full, unsharded state dict of the plain module, so weights
saved under one plan load under any other. They are restored into the plain module before `wrap`,
the same for every plan; `load` restores the optimizer, whose state is in the plan's own layout
(a pipeline's per stage, so only into a pipeline of as many stages).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from training.model import GPT
from training.objectives import Objective

if TYPE_CHECKING:
    from core.config import TrainConfig
    from training.data import ShardReader
    from training.pipeline import PipelineTrainer
    from training.session import Session

StateDict = dict[str, Any]


def mean_across_ranks(value: float, device: torch.device) -> float:
    """`value` averaged over all ranks (itself without a process group of more than one rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / dist.get_world_size()


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU; CPU runs stay fp32 (CPU bf16 matmuls are slow)."""
    if device.type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _generator(cfg: TrainConfig, step: int, rank: int, micro: int) -> torch.Generator:
    """Masks and spans are a pure function of (seed, step, rank, micro): a resumed run draws the same."""
    return torch.Generator().manual_seed(((cfg.seed * 1_000_003 + step) * 4099 + rank) * 131 + micro)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class ParallelPlan(ABC):
    """One strategy's answer to everything the loop does that depends on the parallelism.

    `model` in every method is what `wrap` returned (possibly under torch.compile); build the
    optimizer over it. `data_rank`/`data_world` say which slice of the data stream this rank reads.
    """

    def __init__(self, cfg: TrainConfig, session: Session) -> None:
        self.cfg, self.session = cfg, session

    @property
    def data_rank(self) -> int:
        """This rank's place among the data-parallel replicas (which windows of a step it reads)."""
        return self.session.rank

    @property
    def data_world(self) -> int:
        """The number of data-parallel replicas (the windows one step consumes, with the batch)."""
        return self.session.world

    @abstractmethod
    def wrap(self, inner: nn.Module, gpt: GPT) -> nn.Module:
        """`inner` (the GPT, or prefix tuning's module holding `gpt`; weights already restored)
        ready to train on this rank."""

    @abstractmethod
    def state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[StateDict, StateDict]:
        """(model state, optimizer state) for a checkpoint. The model's is the plain module's full
        state dict under every plan (on rank 0 where it is gathered); the optimizer's is in the
        plan's own layout, which `load` reads. A collective: every rank calls it."""

    @abstractmethod
    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: StateDict) -> None:
        """Restore the optimizer state of checkpoint `state` (saved by `state`) into `optimizer`."""

    @abstractmethod
    def step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        objective: Objective,
        reader: ShardReader,
        step: int,
        position: int,
    ) -> float:
        """One optimizer step on the step that starts at stream `position`: all `grad_accum`
        micro-batches, clipping, the update. Returns this rank's loss (the mean over the batch)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, objective: Objective, reader: ShardReader) -> float:
        """The objective's loss on `eval_batches` batches of `reader` (the same windows every
        time), the same on every rank."""


class DataParallelPlan(ParallelPlan):
    """DDP and FSDP compute the same averaged gradient: the same step and evaluation, over the
    objective's batches, and differ only in wrapping and in how the state is laid out."""

    def step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        objective: Objective,
        reader: ShardReader,
        step: int,
        position: int,
    ) -> float:
        cfg, device = self.cfg, self.session.device
        total = 0.0
        for micro in range(cfg.grad_accum):
            tokens = reader.rank_windows(position, micro, cfg.batch_size)
            batch = _to(objective.make_batch(tokens, _generator(cfg, step, self.session.rank, micro)), device)
            with self._no_sync(model, micro == cfg.grad_accum - 1):
                with _autocast(device, cfg.precision):
                    loss = objective.loss(model, batch) / cfg.grad_accum
                loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return total

    def _no_sync(self, model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """Where gradients of a micro-batch that is not the `last` stay local (none by default)."""
        return contextlib.nullcontext()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, objective: Objective, reader: ShardReader) -> float:
        cfg, device = self.cfg, self.session.device
        was_training = model.training
        model.eval()
        losses = []
        for i in range(cfg.eval_batches):
            tokens = reader.rank_windows(0, i, cfg.batch_size)
            batch = _to(objective.make_batch(tokens, _generator(cfg, -1, self.session.rank, i)), device)
            with _autocast(device, cfg.precision):
                losses.append(objective.loss(model, batch).item())
        model.train(was_training)
        return mean_across_ranks(sum(losses) / len(losses), device)


class DDPPlan(DataParallelPlan):
    """A full replica per rank through the session's `prepare` (Ray Train's DDP when world > 1;
    one plain process just moves the model to its device)."""

    def wrap(self, inner: nn.Module, gpt: GPT) -> nn.Module:
        return self.session.prepare(inner)

    def state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[StateDict, StateDict]:
        from training.parallel import unwrap

        return unwrap(model).state_dict(), optimizer.state_dict()

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: StateDict) -> None:
        optimizer.load_state_dict(state["optimizer"])

    def _no_sync(self, model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces gradients on every backward; accumulate locally until the last micro-batch."""
        inner = getattr(model, "_orig_mod", model)
        if not last and isinstance(inner, nn.parallel.DistributedDataParallel):
            return inner.no_sync()
        return contextlib.nullcontext()


class FSDPPlan(DataParallelPlan):
    """FSDP2 over all ranks (bf16 all-gathers on GPU when `precision` is bf16); the full state is
    gathered onto rank 0's CPU for a checkpoint and broadcast from it on restore."""

    def wrap(self, inner: nn.Module, gpt: GPT) -> nn.Module:
        from training.parallel import wrap_fsdp

        return wrap_fsdp(inner, self.session.device, bf16=self.cfg.precision == "bf16")

    def state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[StateDict, StateDict]:
        from training.parallel import full_state_dict, optimizer_state

        return full_state_dict(model), optimizer_state(model, optimizer)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: StateDict) -> None:
        from training.parallel import load_optimizer_state

        load_optimizer_state(model, optimizer, state["optimizer"])


class PipelinePlan(ParallelPlan):
    """One pipeline stage per rank; all stages form one data-parallel replica, so every rank reads
    the same batch, and the schedule's micro-batches are the step's accumulation."""

    def __init__(self, cfg: TrainConfig, session: Session) -> None:
        super().__init__(cfg, session)
        self._trainer: PipelineTrainer | None = None

    @property
    def data_rank(self) -> int:
        return 0

    @property
    def data_world(self) -> int:
        return 1

    def _stage(self) -> PipelineTrainer:
        if self._trainer is None:
            raise RuntimeError("the pipeline plan has no stage yet: call wrap first")
        return self._trainer

    def wrap(self, inner: nn.Module, gpt: GPT) -> nn.Module:
        from training.pipeline import PipelineTrainer

        cfg = self.cfg
        self._trainer = PipelineTrainer(
            gpt, cfg.pipeline_schedule, cfg.pipeline_microbatches, self.session.device
        )
        return self._trainer.module

    def state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[StateDict, StateDict]:
        return self._stage().full_state_dict(), self._stage().optimizer_state(optimizer)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: StateDict) -> None:
        self._stage().load_optimizer_state(optimizer, state["optimizer"])

    def step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        objective: Objective,
        reader: ShardReader,
        step: int,
        position: int,
    ) -> float:
        """The causal LM on the whole step's rows, next tokens as targets (the only objective a
        pipeline runs: the last stage computes the loss)."""
        cfg, device = self.cfg, self.session.device
        tokens = reader.rank_windows(position, 0, cfg.batch_size * cfg.grad_accum).to(device)
        with _autocast(device, cfg.precision):
            return self._stage().train_step(tokens[:, :-1], tokens[:, 1:], optimizer, cfg.grad_clip)

    def evaluate(self, model: nn.Module, objective: Objective, reader: ShardReader) -> float:
        """Batches of the training step's shape: the stages inferred their buffers from it."""
        cfg, device = self.cfg, self.session.device
        rows = cfg.batch_size * cfg.grad_accum
        evals = [reader.rank_windows(i * rows, 0, rows).to(device) for i in range(cfg.eval_batches)]
        return sum(self._stage().evaluate(t[:, :-1], t[:, 1:]) for t in evals) / len(evals)


PLANS: dict[str, type[ParallelPlan]] = {"ddp": DDPPlan, "fsdp": FSDPPlan, "pipeline": PipelinePlan}


def plan_for(cfg: TrainConfig, session: Session) -> ParallelPlan:
    """The plan for `cfg.parallelism` on this rank."""
    return PLANS[cfg.parallelism](cfg, session)
