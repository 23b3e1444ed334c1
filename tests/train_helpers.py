"""Training helpers only the tests use: a plain causal-LM step and evaluation to compare the
parallel plans against, a DDP-or-FSDP wrapper by name, and restores of full weights into an
already wrapped model or a built pipeline (the loop restores weights before it wraps them).

Ray Train workers import this module by name (tests/test_parallel.py): the repository root is on
their PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from training import pipeline
from training.parallel import distributed, unwrap, wrap_fsdp

Strategy = Literal["ddp", "fsdp"]


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float
) -> float:
    """One causal-LM forward/backward/update; returns the batch loss (the unit-tested basic step)."""
    _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean causal-LM loss over `batches`, in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    losses = [model(x, y)[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def wrap_model(
    model: nn.Module, strategy: Strategy, device: torch.device, *, bf16: bool = False
) -> nn.Module:
    """The model ready to train on `device` under `strategy`, as the DDP and FSDP plans wrap it:
    "ddp" through Ray Train's `prepare_model` (so it needs a Ray Train worker), "fsdp" through
    training/parallel.py's `wrap_fsdp`."""
    if strategy == "ddp":
        import ray.train.torch

        return ray.train.torch.prepare_model(model)
    if strategy != "fsdp":
        raise ValueError(f"unknown data-parallel strategy {strategy!r}; known: 'ddp', 'fsdp'")
    return wrap_fsdp(model, device, bf16=bf16)


def load_full_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a plain GPT state dict into `model` (wrapped or not); only rank 0's `state` is read, so
    other ranks may pass {}. Every rank must call it."""
    if not distributed():
        unwrap(model).load_state_dict(state)
        return
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, dict(state), options=options)  # torch writes into the dict it is given


class PipelineTrainer(pipeline.PipelineTrainer):
    """The library's trainer plus a restore of full weights into stages already built."""

    def load_full_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load an unsplit GPT's state dict; only rank 0's `state` is read (others may pass {})."""
        keys = self._gather(list(self.module.state_dict()))
        parts = [{k: state[k] for k in own} for own in keys] if self.rank == 0 else None
        self.module.load_state_dict(self._scatter(parts))
