"""A GPT decoder in one readable file, after karpathy/nanoGPT and GPT-2 (Radford et al. 2019).

Plain PyTorch: no parallelism in here. Ray Train wraps it in DDP or FSDP from the outside, so the same
module runs in a unit test, on one CPU, or on a GPU cluster. One set of weights serves every training
objective (training/objectives.py): only the attention pattern changes, causal (GPT), bidirectional
(BERT-style MLM, SimCSE) or prefix-LM (T5's decoder-only "prefix LM", Raffel et al. 2020 §3.2.1),
and prefix tuning (Li & Liang 2021) prepends learned keys/values per layer through `prefix_kv`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from core.config import TrainConfig

Attn = Literal["causal", "bidirectional", "prefix"]
PrefixKV = Sequence[tuple[torch.Tensor, torch.Tensor]]
IGNORE_INDEX = -100  # targets at this value add nothing to the loss (PyTorch's cross_entropy default)

# Named sizes for TrainConfig.model_size (also the natural grid for a scaling-law sweep). Parameter
# counts with the tied head, GPT-2's vocabulary (50,257) and a 1,024-token context:
#   gpt2-small  124,439,808 (GPT-2 small, Radford et al. 2019)
#   gpt2-medium 354,823,168 (GPT-2 medium)
#   1b        1,011,476,480 (width 2048 and head size 128 as GPT-3 XL, Brown et al. 2020, and
#                            Pythia-1B, Biderman et al. 2023; 18 layers put the total at ~1.0B)
SIZES: dict[str, dict] = {
    "tiny": {"n_layer": 2, "n_head": 4, "n_embd": 128},
    "small": {"n_layer": 4, "n_head": 4, "n_embd": 256},
    "gpt2-small": {"n_layer": 12, "n_head": 12, "n_embd": 768},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},
    "1b": {"n_layer": 18, "n_head": 16, "n_embd": 2048},
}


@dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 128  # longest sequence the position embedding covers
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True

    @classmethod
    def from_size(
        cls,
        size: str,
        vocab_size: int,
        block_size: int,
        *,
        n_layer: int | None = None,
        n_head: int | None = None,
        n_embd: int | None = None,
        **kwargs: object,
    ) -> GPTConfig:
        """The named preset, with `n_layer`/`n_head`/`n_embd` (TrainConfig's explicit shape, set by a
        scaling sweep) replacing the preset's where given; None keeps the preset's value."""
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; known: {sorted(SIZES)}")
        explicit = {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd}
        shape = SIZES[size] | {k: v for k, v in explicit.items() if v is not None}
        if shape["n_embd"] % shape["n_head"]:
            raise ValueError(f"n_embd {shape['n_embd']} is not divisible by n_head {shape['n_head']}")
        return cls(vocab_size=vocab_size, block_size=block_size, **shape, **kwargs)  # type: ignore[arg-type]


def config_for(train: TrainConfig, vocab_size: int) -> GPTConfig:
    """The model a TrainConfig asks for: its `model_size` preset with its explicit shape on top."""
    return GPTConfig.from_size(
        train.model_size,
        vocab_size,
        train.seq_len,
        n_layer=train.n_layer,
        n_head=train.n_head,
        n_embd=train.n_embd,
        dropout=train.dropout,
    )


@dataclass(frozen=True)
class ParamCount:
    """Parameters of a GPT shape: `total` as `GPT.num_params()` counts it (tied head once) and
    `non_embedding`, without the token and position tables (Kaplan et al. 2020 fit on the latter)."""

    total: int
    non_embedding: int


def param_count(n_layer: int, n_embd: int, vocab_size: int, block_size: int, bias: bool = True) -> ParamCount:
    """Exact parameter counts of `GPT(GPTConfig(...))` without building it: per block 12 C^2 weights
    (attention 4 C^2, MLP 8 C^2) plus 13 C of biases and LayerNorm (9 C biases, 4 C LayerNorm
    gains and biases), the final LayerNorm 2 C, the tied embedding V C and the position table T C.
    Kaplan et al. (2020) section 2.1 approximate the non-embedding part as 12 L C^2."""
    per_vector = 13 if bias else 2  # without biases: the two LayerNorms' gains only, C each
    block = 12 * n_embd * n_embd + per_vector * n_embd
    final_ln = (2 if bias else 1) * n_embd
    non_embedding = n_layer * block + final_ln
    return ParamCount(non_embedding + (vocab_size + block_size) * n_embd, non_embedding)


def attention_mask(
    attn: Attn,
    seq_len: int,
    prefix_len: torch.Tensor | None = None,
    n_prefix_kv: int = 0,
    device: torch.device | None = None,
) -> torch.Tensor | None:
    """Boolean mask for `scaled_dot_product_attention` (True: the query may attend to the key), shaped
    [B or 1, 1, seq_len, n_prefix_kv + seq_len], or None where none is needed: plain causal attention
    runs with `is_causal=True` and bidirectional attention with no mask, which lets SDPA pick its flash
    kernel. Under "prefix", query i of row b sees key j when j <= i or j < prefix_len[b] (bidirectional
    over the prefix, causal after it). Prefix-tuning keys (`n_prefix_kv` of them) are visible to every
    query (Li & Liang 2021: they act as virtual tokens before the input).
    """
    if attn not in ("causal", "bidirectional", "prefix"):
        raise ValueError(f"unknown attention {attn!r}; known: 'causal', 'bidirectional', 'prefix'")
    if (attn == "prefix") != (prefix_len is not None):
        raise ValueError(f"prefix_len is required with attn='prefix' and only then (attn={attn!r})")
    if attn == "bidirectional" or (attn == "causal" and n_prefix_kv == 0):
        return None
    pos = torch.arange(seq_len, device=device)
    visible = pos[None, :] <= pos[:, None]  # [T, T] causal
    if prefix_len is not None:
        in_prefix = pos[None, :] < prefix_len.to(device)[:, None]  # [B, T]: key j in row b's prefix
        visible = visible[None] | in_prefix[:, None, :]
    else:
        visible = visible[None]
    if n_prefix_kv:
        virtual = torch.ones(*visible.shape[:2], n_prefix_kv, dtype=torch.bool, device=device)
        visible = torch.cat([virtual, visible], dim=-1)
    return visible[:, None]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention; causal by default, or under a mask from `attention_mask`."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd {cfg.n_embd} is not divisible by n_head {cfg.n_head}")
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = True,
        prefix_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if prefix_kv is not None:
            k, v = torch.cat([prefix_kv[0], k], dim=2), torch.cat([prefix_kv[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        is_causal = causal and mask is None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN residual block (GPT-2): normalising before each sublayer keeps deep stacks stable.

    `block(x)` alone is causal, so pipeline stages can call blocks without the other arguments."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        causal: bool = True,
        prefix_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, causal, prefix_kv)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied input/output embedding (Press & Wolf 2017)
        self.apply(self._init_weights)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layer) so the residual stream's
        # variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        attn: Attn = "causal",
        prefix_len: torch.Tensor | None = None,
        prefix_kv: PrefixKV | None = None,
        return_hidden: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, T, vocab] (or, with `return_hidden`, the final-LayerNorm states [B, T, C]) and,
        given targets [B, T], the mean cross-entropy over targets that are not IGNORE_INDEX.

        `attn` picks the pattern (see `attention_mask`); `prefix_len` [B] is the bidirectional prefix
        of each row under "prefix"; `prefix_kv` holds one (key, value) pair [B, n_head, P, head_dim]
        per layer, prepended to that layer's keys and values. Positions count from 0 at idx[:, 0]
        whatever P is, so a frozen model sees its inputs where it saw them in pretraining.
        """
        seq_len = idx.size(1)
        if seq_len > self.config.block_size:
            raise ValueError(f"sequence length {seq_len} exceeds block_size {self.config.block_size}")
        if prefix_kv is not None and len(prefix_kv) != len(self.h):
            raise ValueError(f"prefix_kv has {len(prefix_kv)} layers; the model has {len(self.h)}")
        n_kv = 0 if prefix_kv is None else prefix_kv[0][0].size(2)
        mask = attention_mask(attn, seq_len, prefix_len, n_kv, idx.device)
        causal = attn == "causal"
        pos = torch.arange(seq_len, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.h):
            x = block(x, mask, causal, None if prefix_kv is None else prefix_kv[i])
        hidden = self.ln_f(x)
        if return_hidden and targets is None:
            return hidden, None
        logits = self.lm_head(hidden)
        loss = None
        if targets is not None:
            flat = logits.view(-1, logits.size(-1))
            loss = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX)
        return (hidden if return_hidden else logits), loss

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameter count (the tied head counted once); Kaplan et al. (2020) fit on non-embedding."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n
