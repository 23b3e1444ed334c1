"""Pipeline parallelism for the GPT with torch.distributed.pipelining: one stage per rank.

Each rank builds the whole GPT from the same seed (so every weight equals the unsplit model's) and
keeps only its slice: stage 0 the embeddings and the first blocks, the last stage the last blocks,
ln_f and the head, blocks split as evenly as possible (Huang et al. 2019, GPipe). A step splits the
batch into microbatches and runs GPipe (all forwards, then all backwards) or 1F1B (Narayanan et al.
2019, PipeDream; one forward then one backward in steady state, so at most `stages` microbatches of
activations live at once).

Tied embeddings: wte.weight lives on the first stage and is also the head's weight on the last. As
in Megatron-LM (Shoeybi et al. 2019; Narayanan et al. 2021; the code's
`finalize_model_grads._allreduce_word_embedding_grads`) both copies start equal and their gradients
are all-reduced (summed) between the two stages after each backward, which is the tied parameter's
gradient in the unsplit model; with the same optimizer the copies stay bit-for-bit equal.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe
from torch.utils._pytree import tree_map_only

from training.model import GPT, IGNORE_INDEX

ScheduleName = Literal["1F1B", "GPipe"]
SCHEDULES = {"1F1B": Schedule1F1B, "GPipe": ScheduleGPipe}


def split_blocks(n_layer: int, n_stages: int) -> list[range]:
    """Block indices per stage, contiguous, sizes differing by at most one (earlier stages larger)."""
    if not 2 <= n_stages <= n_layer:
        raise ValueError(f"pipeline needs 2 <= stages <= n_layer ({n_layer}), got {n_stages} stages")
    size, extra = divmod(n_layer, n_stages)
    bounds = [0]
    for s in range(n_stages):
        bounds.append(bounds[-1] + size + (s < extra))
    return [range(lo, hi) for lo, hi in pairwise(bounds)]


class GPTStage(nn.Module):
    """One stage's slice of a GPT. Submodule names match the GPT's (`h` is a ModuleDict keyed by the
    global block index), so this module's state-dict keys are a subset of the GPT's."""

    def __init__(self, gpt: GPT, blocks: range, *, first: bool, last: bool) -> None:
        super().__init__()
        self.first, self.last = first, last
        if first:
            self.wte, self.wpe, self.drop = gpt.wte, gpt.wpe, gpt.drop
        self.h = nn.ModuleDict({str(i): gpt.h[i] for i in blocks})
        if last:
            self.ln_f = gpt.ln_f
            # This stage's own copy of wte (kept equal by the gradient sum); built on "meta" so
            # that no random init runs and the rank's RNG stream stays the unsplit model's.
            self.lm_head = nn.Linear(gpt.config.n_embd, gpt.config.vocab_size, bias=False, device="meta")
            self.lm_head.weight = nn.Parameter(gpt.wte.weight.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids -> hidden states on the first stage; hidden -> hidden; hidden -> logits on the last."""
        if self.first:
            pos = torch.arange(x.size(1), device=x.device)
            x = self.drop(self.wte(x) + self.wpe(pos))
        for block in self.h.values():
            x = block(x)
        return self.lm_head(self.ln_f(x)) if self.last else x


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of one microbatch, as GPT.forward computes it."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


class PipelineTrainer:
    """This rank's stage of a GPT and the schedule that drives it; build the optimizer over `module`.

    Every rank must construct it with an equal GPT (same config, same seed, on CPU: only this
    rank's stage moves to `device`) and call `step` with the same batch: stage 0 reads `x`, the
    last stage reads `y`. 1F1B needs n_microbatches >= stages (torch checks).
    """

    def __init__(self, gpt: GPT, schedule: ScheduleName, n_microbatches: int, device: torch.device) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown pipeline schedule {schedule!r}; known: {sorted(SCHEDULES)}")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.n_microbatches = n_microbatches
        blocks = split_blocks(gpt.config.n_layer, self.world)[self.rank]
        self.first, self.last = self.rank == 0, self.rank == self.world - 1
        self.module = GPTStage(gpt, blocks, first=self.first, last=self.last).to(device)
        self.device = device
        stage = PipelineStage(self.module, self.rank, self.world, device)
        self.schedule = SCHEDULES[schedule](stage, n_microbatches, loss_fn=lm_loss)
        # The tie group holds the two ranks with a copy of wte; every rank must create it.
        self._tie_group = dist.new_group([0, self.world - 1]) if self.world > 2 else None

    def tied_weight(self) -> torch.Tensor | None:
        """This rank's copy of the tied embedding (first stage: wte, last: lm_head), else None."""
        if self.first:
            return self.module.wte.weight
        return self.module.lm_head.weight if self.last else None

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Forward and backward over the batch in `n_microbatches` microbatches; gradients (the
        batch mean, as the unsplit model's) are left on `module`'s parameters for the optimizer.
        Returns the batch's mean loss on every rank. Clears the previous gradients first."""
        if x.size(0) % self.n_microbatches:
            raise ValueError(f"batch of {x.size(0)} does not split into {self.n_microbatches} microbatches")
        self.module.zero_grad(set_to_none=True)
        losses: list[torch.Tensor] = []
        self._run(self.schedule.step, x, y, losses)
        self._sum_tied_grads()
        return self._broadcast_loss(losses)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Mean loss over the batch, forward only, in eval mode; the same on every rank."""
        was_training = self.module.training
        self.module.eval()
        losses: list[torch.Tensor] = []
        self._run(self.schedule.eval, x, y, losses)
        self.module.train(was_training)
        return self._broadcast_loss(losses)

    def _run(self, fn: Any, x: torch.Tensor, y: torch.Tensor, losses: list[torch.Tensor]) -> None:
        target = y.to(self.device) if self.last else None
        if self.first:
            fn(x.to(self.device), target=target, losses=losses, return_outputs=False)
        else:
            fn(target=target, losses=losses, return_outputs=False)

    def _sum_tied_grads(self) -> None:
        weight = self.tied_weight()
        if weight is None:
            return
        if weight.grad is None:
            weight.grad = torch.zeros_like(weight)
        dist.all_reduce(weight.grad, group=self._tie_group)

    def _broadcast_loss(self, losses: list[torch.Tensor]) -> float:
        loss = torch.stack(losses).mean().detach() if self.last else torch.zeros((), device=self.device)
        loss = loss.to(torch.float32)
        dist.broadcast(loss, src=self.world - 1)
        return loss.item()

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, grad_clip: float
    ) -> float:
        """`step`, global-norm clipping and the optimizer update: one training step of the pipeline plan."""
        loss = self.step(x, y)
        self.clip_grad_norm_(grad_clip)
        optimizer.step()
        return loss

    def clip_grad_norm_(self, max_norm: float) -> float:
        """Clip by the global gradient norm over all stages (the tied weight counted once), as
        torch.nn.utils.clip_grad_norm_ does for the unsplit model; returns the norm before clipping."""
        grads = [p.grad for p in self.module.parameters() if p.grad is not None]
        if self.last and not self.first:
            grads = [g for g in grads if g is not self.module.lm_head.weight.grad]
        sq = torch.zeros((), device=self.device, dtype=torch.float32)
        for g in grads:
            sq += g.detach().float().pow(2).sum()
        dist.all_reduce(sq)
        norm = sq.sqrt()
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        for p in self.module.parameters():
            if p.grad is not None:
                p.grad.mul_(coef.to(p.grad.dtype))
        return norm.item()

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The unsplit GPT's state dict on CPU, on rank 0 (others get {}); every rank must call it."""
        parts = self._gather({k: v.detach().cpu() for k, v in self.module.state_dict().items()})
        return {k: v for part in parts for k, v in part.items()}

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Every stage's optimizer state, on rank 0 ({} elsewhere); it restores only into a pipeline
        with the same number of stages (model weights, via full_state_dict, restore anywhere:
        the loop loads them into the GPT before it is split)."""
        stages = self._gather(tree_map_only(torch.Tensor, torch.Tensor.cpu, optimizer.state_dict()))
        return {"pipeline_stages": stages} if self.rank == 0 else {}

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Restore `optimizer_state`'s output; only rank 0's `state` is read."""
        stages = state.get("pipeline_stages") if self.rank == 0 else None
        if self.rank == 0 and (stages is None or len(stages) != self.world):
            n = "no" if stages is None else len(stages)
            raise ValueError(f"optimizer state holds {n} pipeline stages, this run has {self.world}")
        optimizer.load_state_dict(self._scatter(stages))

    def _gather(self, obj: Any) -> list[Any]:
        """`obj` from every rank, in rank order, on rank 0; [] elsewhere."""
        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out or []

    def _scatter(self, objs: list[Any] | None) -> Any:
        """Rank r receives rank 0's objs[r]."""
        out: list[Any] = [None]
        dist.scatter_object_list(out, objs, src=0)
        return out[0]
