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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from training.model import GPTConfig


def flops_per_token(n_params: int, n_layer: int, n_head: int, head_dim: int, seq_len: int) -> int:
    """Training FLOPs per token, 6N + 12·L·H·Q·T (PaLM appendix B); `n_params` is the matmul N."""
    return 6 * n_params + 12 * n_layer * n_head * head_dim * seq_len


def model_flops_for(config: GPTConfig, n_params: int, seq_len: int) -> int:
    """`flops_per_token` for our GPT: `n_params` as `GPT.num_params()` counts it (tied head once),
    less the position table, which is a lookup (module docstring)."""
    matmul_params = n_params - config.block_size * config.n_embd
    head_dim = config.n_embd // config.n_head
    return flops_per_token(matmul_params, config.n_layer, config.n_head, head_dim, seq_len)


# Dense (no 2:4 sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, matched on substrings of
# `torch.cuda.get_device_name()`, most specific first; the same table as torchtitan's
# `get_peak_flops`. The data sheets quote "with sparsity" figures: dense is half of those.
_PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("H100 NVL", 835e12),  # H100 data sheet: NVL 1671 TFLOPS sparse
    ("H100 PCIe", 756e12),  # H100 data sheet: PCIe 1513 TFLOPS sparse
    ("H100", 989e12),  # H100 data sheet: SXM 1979 TFLOPS sparse ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),  # H200 data sheet: same Hopper compute as H100 SXM (also GH200)
    ("A100", 312e12),  # A100 data sheet: 312 TFLOPS dense (SXM4 and PCIe alike)
)


def peak_flops(device_name: str | None) -> float | None:
    """Peak dense bf16 FLOP/s of one device, or None for CPUs and devices not in the table."""
    if not device_name:
        return None
    for key, peak in _PEAK_BF16:
        if key.lower() in device_name.lower():
            return peak
    return None


def mfu(tokens_per_s: float, flops_per_token: float, peak: float | None, devices: int = 1) -> float | None:
    """Share of `devices` × `peak` FLOP/s that `tokens_per_s` (all devices together) achieves;
    None when the peak is unknown (CPU), so a CPU run logs no made-up MFU."""
    if peak is None or peak <= 0:
        return None
    return tokens_per_s * flops_per_token / (peak * devices)
