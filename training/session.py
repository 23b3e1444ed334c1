"""Who runs the training loop: Ray Train workers (`RaySession`) or one plain process (`LocalSession`).

The loop (training/loop.py) needs only a rank, a world size, a device, a way to report metrics with
an optional checkpoint, and the checkpoint to resume from. Keeping Ray behind this small interface
lets the same loop run in unit tests and as the no-Ray baseline of scripts/bench_train.py.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

STATE_FILE = "state.pt"


class CheckpointError(RuntimeError):
    """A checkpoint file holds something other than tensors and plain containers."""


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state, loaded with `weights_only=True`: tensors, numbers, strings and plain
    containers only. A checkpoint lives in shared storage that others can write; a full unpickle
    would run whatever a planted file's `__reduce__` asks for on every worker that resumes."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError names the refused global
        raise CheckpointError(f"refused checkpoint {path}: not a plain tensor state ({err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"refused checkpoint {path}: expected a dict, got {type(state).__name__}")
    return state


class Session(Protocol):
    """What the loop needs from whoever runs it (Ray Train, or one plain process)."""

    rank: int
    world: int
    device: torch.device

    def restore(self) -> dict[str, Any] | None: ...

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None: ...

    def prepare(self, model: nn.Module) -> nn.Module: ...


@dataclass
class LocalSession:
    """One process, no Ray, no process group: the baseline and the unit-test runner."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    rank: int = 0
    world: int = 1
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def restore(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.checkpoints[-1]) if self.checkpoints else None

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        if state is not None:  # a copy, as a saved file would be: the loop goes on mutating its own
            self.checkpoints.append(copy.deepcopy(state))

    def prepare(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)


class RaySession:
    """Ray Train worker: ranks from its context, DDP via `prepare_model`, Ray checkpoints."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()

    def restore(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as d:
            return load_state(Path(d) / STATE_FILE)

    def report(self, metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
        """Only checkpoints go through Ray: `ray.train.report` is a barrier across workers that also
        waits for the controller's next poll, so metrics-only reports would stall every worker
        several times a checkpoint interval. Metrics reach the driver as the loop's returned
        history and TensorBoard. Every rank calls report at a checkpoint; rank 0 hands it over."""
        import ray.train

        if state is None:
            return
        if self.rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / STATE_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    def prepare(self, model: nn.Module) -> nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)
