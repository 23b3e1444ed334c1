"""Model FLOPs utilisation (MFU): how much of the accelerator's peak the model's own math uses.

Source: Chowdhery et al. (2022), PaLM, appendix B. MFU is observed tokens/s times the model FLOPs
per token over the hardware's peak FLOP/s. Model FLOPs count only the forward and backward matmuls
(no activation recomputation, no optimizer): 6N per token for the weights (2N forward, 4N
backward) plus 12·L·H·Q·T for self-attention: per layer and head, Q·Kᵀ and the weighted sum of V
cost 2·Q·T each in the forward pass, and the backward pass twice that.

What N counts: the parameters that take part in a matmul for every token. A lookup table does no
FLOPs, so our learned position embedding (`wpe`) is left out; the token embedding is tied to the
output projection (`lm_head`), a [C, V] matmul per token, so it stays in, once. This is nanoGPT's
`estimate_mfu` (which cites PaLM appendix B) and torchtitan's count (which drops only its untied
input embedding); PaLM itself ties embeddings and has no position table, so there N is all params.

Where 6N comes from (Kaplan et al. 2020, §2.1; Hoffmann et al. 2022, Chinchilla, appendix F): per
weight and token, the forward pass does one multiply-add (2 FLOPs); the backward pass does two,
one for the gradient with respect to the layer's input (2) and one for the gradient with respect
to the weight (2). Frozen weights (prefix tuning, Li & Liang 2021) still run forward (2N) and still
pass the activation gradient back to the prefix keys and values of every layer below (2N), but
compute no weight gradient: 4N per token. Less one piece autograd skips: the first block's input
(the frozen embedding) needs no gradient, so neither its QKV projection's input gradient (2·3C²)
nor its queries' attention gradient (2·H·Q·(T + P)) is computed. Attention has no weights and its
backward is all activation gradients, so its 12·L·H·Q·T stays, over the T + P keys a prefix of P
adds. The prefix's own MLP runs once per micro-batch on P rows: 6·N_mlp·P FLOPs, shared by the
batch's tokens. Checked against torch's FlopCounterMode on a real step (tests/test_accounting.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.model import GPTConfig


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> int:
    """Training FLOPs per token, 6N + 12·L·H·Q·T (PaLM appendix B); `n_params` is the matmul N."""
    return 6 * n_params + 12 * n_layer * n_head * head_dim * seq_len


def matmul_params(config: GPTConfig, n_params: int, head: bool = True) -> int:
    """N of the FLOPs count: `n_params` as `GPT.num_params()` counts it (tied head once) less the
    position table (a lookup), and less the tied token table when the head does not run (SimCSE
    pools hidden states: the table is then only a lookup too)."""
    n = n_params - config.block_size * config.n_embd
    return n if head else n - config.vocab_size * config.n_embd


def model_flops_for(config: GPTConfig, n_params: int, seq_len: int, head: bool = True) -> int:
    """`flops_per_token` for our GPT over its matmul parameters (`matmul_params`)."""
    head_dim = config.n_embd // config.n_head
    return flops_per_token(
        matmul_params(config, n_params, head), config.n_layer, config.n_head, head_dim, seq_len
    )


def prefix_tuning_flops_per_token(
    config: GPTConfig,
    n_params: int,
    seq_len: int,
    prefix_length: int,
    prefix_params: int,
    rows: int,
    head: bool = True,
) -> float:
    """Training FLOPs per token of prefix tuning over a frozen GPT (module docstring): 4N for the
    frozen matmul weights, attention over seq_len + prefix_length keys, and the prefix MLP's
    6·N_mlp·P per micro-batch of `rows` rows shared by its rows x seq_len tokens."""
    frozen = matmul_params(config, n_params, head)
    head_dim = config.n_embd // config.n_head
    keys = config.n_head * head_dim * (seq_len + prefix_length)
    attention = 12 * config.n_layer * keys
    skipped = 6 * config.n_embd * config.n_embd + 2 * keys  # the first block's input needs no gradient
    return 4 * frozen - skipped + attention + 6 * prefix_params * prefix_length / (rows * seq_len)


# Dense (no 2:4 sparsity) bf16 tensor-core peaks per GPU, matched on the product name in
# `torch.cuda.get_device_name()`, most specific first. A name that matches no row gets None, never a
# neighbour's figure: an H100 PCIe scored against the SXM peak would show 24% less MFU than it has.
# Sources (NVIDIA's data sheets quote "with sparsity", twice the dense figure):
# - H100 SXM5: NVIDIA H100 Tensor Core GPU Architecture whitepaper, 989.4 dense (1,978.9 sparse);
#   torch reports it as "NVIDIA H100 80GB HBM3" (or "... SXM5 ...").
# - H100 PCIe: H100 data sheet, 1,513 sparse -> 756; "NVIDIA H100 PCIe".
# - H100 NVL: H100 data sheet, 1,671 sparse per GPU -> 835; "NVIDIA H100 NVL".
# - H200 SXM: H200 data sheet, 1,979 sparse -> 989; "NVIDIA H200". H200 NVL: 1,671 -> 835.
# - GH200: GH200 data sheet, the Hopper GPU at H100 SXM's 989; "NVIDIA GH200 480GB".
# - A100: A100 data sheet, 312 dense for SXM4 and PCIe, 40 and 80 GB ("NVIDIA A100-SXM4-80GB").
_PEAK_BF16: tuple[tuple[str, float], ...] = (
    (r"\bH100 NVL\b", 835e12),
    (r"\bH100 PCIe\b", 756e12),
    (r"\bH100\b.*\b(SXM5?|HBM3)\b", 989.4e12),
    (r"\bGH200\b", 989e12),
    (r"\bH200 NVL\b", 835e12),
    (r"\bH200( SXM\w*)?( \d+GB( HBM3e)?)?$", 989e12),
    (r"\bA100\b", 312e12),
)


def peak_flops(device_name: str | None) -> float | None:
    """Peak dense bf16 FLOP/s of one device, or None for CPUs and devices not in the table."""
    if not device_name:
        return None
    name = " ".join(device_name.split())
    return next((peak for pattern, peak in _PEAK_BF16 if re.search(pattern, name, re.IGNORECASE)), None)


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None, devices: int = 1) -> float | None:
    """Share of `devices` × `peak` FLOP/s that `tokens_per_s` (all devices together) achieves;
    None when the peak is unknown (CPU), so a CPU run logs no made-up MFU."""
    if peak is None or peak <= 0:
        return None
    return tokens_per_s * flops_per_token / (peak * devices)
