"""Data parallelism for the GPT: FSDP2 sharding applied from outside the unchanged model (torchtitan's
split of model and parallelism), plus state-dict helpers that read and write one format for FSDP and
DDP (training/plans.py chooses between them; DDP itself comes from Ray Train's `prepare_model`).

DDP (Li et al. 2020) keeps a full replica per rank and all-reduces gradients. FSDP (Zhao et al.
2023; ZeRO-3, Rajbhandari et al. 2020) shards parameters, gradients and optimizer state across ranks
and all-gathers each Block's parameters just before use. Both compute the same averaged gradient,
so a run is numerically the same algorithm under either. Checkpoints are full, unsharded state
dicts keyed by the plain GPT's parameter names (torch.distributed.checkpoint.state_dict), so a run
saved under FSDP resumes under DDP or in one process, and the other way round.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.utils._pytree import tree_map

from training.model import GPT, Block

# Rank 0 gathers the full state on CPU, so GPU memory never holds a second copy of the model.
_SAVE = StateDictOptions(full_state_dict=True, cpu_offload=True)
# Rank 0's full state is broadcast and each rank keeps its own shard: only rank 0 must read the file.
_LOAD = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)


def distributed() -> bool:
    """True inside a process group of more than one rank (a Ray Train worker of a multi-worker run)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap_fsdp(model: nn.Module, device: torch.device, *, bf16: bool = False) -> nn.Module:
    """`model` on `device`, sharded with FSDP2 when there is more than one rank; build the optimizer
    after this call.

    `model` is a GPT or a module holding one (prefix tuning's wrapper). `fully_shard` is used
    directly (Ray's own FSDP path refuses CPU; this one runs on gloo too). `bf16` all-gathers and
    computes in bfloat16 with fp32 gradient reduction, on CUDA only (CPU bf16 matmuls are slow);
    fp32 master weights and optimizer state stay fp32 either way.
    """
    model.to(device)
    if not distributed():
        return model
    return shard(model, device, bf16=bf16 and device.type == "cuda")


def shard(model: nn.Module, device: torch.device, *, bf16: bool = False) -> nn.Module:
    """FSDP2 over all ranks: one all-gather unit per Block (torchtitan's unit), the rest in the root.

    The root is sharded last so the tied wte/lm_head weight is one parameter of one unit and stays
    tied; a tie that did not survive would train two matrices, so it is checked here.
    """
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = (
        MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        if bf16
        else MixedPrecisionPolicy()
    )
    for block in [m for m in model.modules() if isinstance(m, Block)]:
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)
    for gpt in (m for m in model.modules() if isinstance(m, GPT)):
        if gpt.lm_head.weight is not gpt.wte.weight:
            raise RuntimeError("FSDP sharding untied lm_head.weight from wte.weight")
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP and torch.compile wrappers: the GPT (or prefix tuning's module). An
    FSDP2 module needs no unwrapping: fully_shard swaps its class for a subclass of the original."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def full_state_dict(model: nn.Module) -> dict[str, Any]:
    """The plain GPT's state dict on CPU, on rank 0 (other ranks get {}); a collective under FSDP,
    so every rank must call it."""
    if not distributed():
        return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    return get_model_state_dict(model, options=_SAVE)


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name (not by position), full and on CPU, on rank 0."""
    if not distributed():
        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    return get_optimizer_state_dict(model, optimizer, options=_SAVE)


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore `optimizer_state`'s output into an optimizer built over `model` (wrapped or not)."""
    if not distributed():
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
        return
    set_optimizer_state_dict(model, optimizer, tree_map(lambda v: v, state), options=_LOAD)
