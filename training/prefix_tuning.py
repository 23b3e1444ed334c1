"""Prefix tuning (Li & Liang 2021): adapt a frozen pretrained GPT by learning, for every layer, a few
key/value vectors that every position can attend to, as if a prompt of virtual tokens came first.

Li & Liang (§4.3) found optimising those vectors directly unstable and reparametrise them:
P = MLP(P'), with P' a [prefix_length, n_embd] matrix and the MLP Linear(n_embd, hidden), Tanh,
Linear(hidden, n_layer * 2 * n_embd) (hidden 512 in their experiments). After training only the
MLP's output is needed; here it is recomputed each step, which costs one small matmul.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.model import GPT, GPTConfig
from training.session import load_state

STATE_FILE = "state.pt"  # what training/loop.py writes into each checkpoint directory


def load_base(path: str | Path, *, dropout: float | None = None) -> GPT:
    """The GPT saved in a checkpoint directory's state.pt ({"model": state_dict, "model_config":
    asdict(GPTConfig), ...}, training/loop.py), on CPU. `dropout` overrides the saved rate."""
    file = Path(path) / STATE_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"no {STATE_FILE} in {path}: init_from must be a training checkpoint directory"
        )
    state = load_state(file)
    cfg = GPTConfig(**state["model_config"])
    if dropout is not None:
        cfg.dropout = dropout
    model = GPT(cfg)
    model.load_state_dict(state["model"])
    return model


class PrefixTuning(nn.Module):
    """A frozen `base` plus a learned prefix; `forward` takes GPT's arguments, so every objective
    (training/objectives.py) trains it unchanged. The base keeps its dropout (the wrapper's train/eval
    mode reaches it as usual) but none of its parameters requires a gradient."""

    def __init__(self, base: GPT, prefix_length: int = 10, hidden: int = 512) -> None:
        super().__init__()
        base.zero_grad(set_to_none=True)  # no stale gradients from pretraining
        self.base = base.requires_grad_(False)
        cfg = base.config
        self.prefix_length = prefix_length
        self.prefix = nn.Parameter(torch.randn(prefix_length, cfg.n_embd))  # nn.Embedding init, as their code
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, hidden), nn.Tanh(), nn.Linear(hidden, cfg.n_layer * 2 * cfg.n_embd)
        )

    @property
    def config(self) -> GPTConfig:
        return self.base.config

    def prefix_kv(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, (key, value) [batch_size, n_head, prefix_length, head_dim]."""
        cfg = self.base.config
        head_dim = cfg.n_embd // cfg.n_head
        kv = self.mlp(self.prefix).view(self.prefix_length, cfg.n_layer * 2, cfg.n_head, head_dim)
        kv = kv.permute(1, 2, 0, 3).unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(cfg.n_layer)]

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if "prefix_kv" in kwargs:
            raise ValueError("PrefixTuning supplies prefix_kv itself")
        return self.base(idx, targets, prefix_kv=self.prefix_kv(idx.size(0)), **kwargs)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
