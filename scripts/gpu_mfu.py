"""GPU throughput and MFU of our GPT at GPT-2 small scale: one command for sessions lent a GPU.

    python3 scripts/gpu_mfu.py --out DIR      (about 4 minutes: four compiles included)

GPT-2 small (Radford et al. 2019: 12 layers, 12 heads, width 768, 124M parameters with the tied
head; vocabulary padded from 50,257 to 50,304, a multiple of 128, as nanoGPT does, so the head's
matmul tiles evenly), sequence 1024, bf16 autocast with fp32 master weights, fused AdamW,
`torch.compile`, flash attention through `scaled_dot_product_attention`. The model and the train
step are the project's own (training/model.py, training/loop.py's `lr_at`); the data are uniform
random tokens already on the GPU, so the figure is the model's, not the input pipeline's.

MFU (Chowdhery et al. 2022, PaLM, appendix B): model FLOPs per token 6N + 12·L·H·Q·T over the
device's peak dense bf16 rate, matched on the exact product name torch reports (training/metrics.py's
table, from NVIDIA's data sheets: H100 SXM5 989.4 TFLOP/s, H100 PCIe 756, H100 NVL 835, H200 SXM
989, H200 NVL 835, A100 312); a device not in the table gets no MFU and says so, never a guess. N counts every
parameter that takes part in a matmul: the tied token embedding (it is the output head) but not the
position table (a lookup).

Attention kernels: each batch size runs once with FlashAttention-2 (SDPA's default choice) and once
with cuDNN's fused attention (`SDPBackend.CUDNN_ATTENTION`), which NVIDIA tunes for Hopper; a kernel
the device or torch build refuses is reported as an error row and the others still run. At
sequence 1024 attention is 13% of GPT-2 small's FLOPs (12·L·H·Q·T = 113M of 855M per token) but runs
at a lower utilisation than the matmuls, so its kernel moves MFU by points. The last line names
the best configuration. Only torch is needed (the GPU image has no Ray or pydantic), so this
imports nothing of the project that pulls them in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.metrics import peak_flops  # torch-free: no Ray or pydantic on the GPU image
from training.model import GPT, GPTConfig

ATTENTION = ("flash", "cudnn", "efficient", "math", "auto")


def attention_kernel(name: str) -> contextlib.AbstractContextManager:
    """Restrict `scaled_dot_product_attention` to one kernel ("auto": SDPA's own choice)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    return sdpa_kernel([backend])


def peak_for(name: str) -> float | None:
    """Peak dense bf16 FLOP/s for the exact product `name` (torch.cuda.get_device_name), None when
    the table does not know it."""
    return peak_flops(name)


def peak_note(name: str) -> str:
    """What the MFU figure is scored against, or why there is none."""
    peak = peak_for(name)
    if peak is None:
        return f"unknown device {name!r}: no datasheet peak in training/metrics.py, so no MFU"
    return f"peak {peak / 1e12:g} dense bf16 TFLOP/s for {name!r}"


def flops_per_token(model: GPT, seq_len: int) -> float:
    cfg = model.config
    n = model.num_params() - model.wpe.weight.numel()
    return 6 * n + 12 * cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * seq_len


def run(
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    compile_model: bool,
    size: dict | None = None,
    mode: str | None = None,
    attention: str = "auto",
) -> dict:
    """One measured configuration; `size` overrides GPT-2 small (the CPU dry run uses a tiny one)."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    shape = size or {"n_layer": 12, "n_head": 12, "n_embd": 768}
    cfg = GPTConfig(vocab_size=50304, block_size=seq, dropout=0.0, **shape)
    model = GPT(cfg).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=cuda
    )
    step_fn = torch.compile(model, mode=mode) if compile_model else model
    data = torch.randint(0, 50257, (steps + warmup, batch, seq + 1), device=device)
    losses: list[float] = []

    def one(i: int) -> torch.Tensor:
        x, y = data[i, :, :-1], data[i, :, 1:]
        with attention_kernel(attention), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            _, loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    start = time.perf_counter()
    for i in range(warmup):
        losses.append(one(i).item())
    if cuda:
        torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    out = [one(warmup + i) for i in range(steps)]
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    losses += [t.item() for t in out]
    tokens_per_s = batch * seq * steps / elapsed
    fpt = flops_per_token(model, seq)
    name = torch.cuda.get_device_name() if cuda else "cpu"
    peak = peak_for(name)
    return {
        "device": name,
        "torch": torch.__version__,
        "params": model.num_params(),
        "batch": batch,
        "seq_len": seq,
        "compile": (mode or "default") if compile_model else False,
        "attention": attention,
        "warmup_steps": warmup,
        "warmup_s": round(warmup_s, 1),
        "timed_steps": steps,
        "step_ms": round(1000 * elapsed / steps, 2),
        "tokens_per_s": round(tokens_per_s),
        "flops_per_token": fpt,
        "achieved_tflops": round(tokens_per_s * fpt / 1e12, 1),
        "peak_tflops": peak / 1e12 if peak else None,
        "peak_note": peak_note(name),
        "mfu": round(tokens_per_s * fpt / peak, 4) if peak else None,
        "loss_first_last": [round(losses[0], 3), round(losses[-1], 3)],
        "loss_at_init_expected": round(math.log(50304), 3),
        "max_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 1) if cuda else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--attention", nargs="+", choices=ATTENTION, default=["flash", "cudnn"])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--cpu-dry-run", action="store_true", help="a tiny model on CPU: checks the script")
    args = parser.parse_args()
    size = None
    if args.cpu_dry_run:
        size = {"n_layer": 2, "n_head": 2, "n_embd": 64}
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script measures GPU throughput (--cpu-dry-run checks it)")
    results = []
    for batch in args.batch:
        for attention in args.attention:
            try:
                result = run(
                    batch, args.seq, args.steps, args.warmup, not args.no_compile, size, args.mode, attention
                )
            except Exception as err:  # a kernel this GPU or build lacks: say so, measure the rest
                result = {
                    "batch": batch,
                    "attention": attention,
                    "error": f"{type(err).__name__}: {err}"[:500],
                }
            print(json.dumps(result), flush=True)
            results.append(result)
            torch._dynamo.reset()  # the next configuration compiles afresh, not as a dynamic-shape graph
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    measured = [r for r in results if "tokens_per_s" in r]
    if measured:
        best = max(measured, key=lambda r: r["tokens_per_s"])
        mfu = f", MFU {best['mfu']:.1%}" if best["mfu"] is not None else f" ({best['peak_note']})"
        rate = f"{best['tokens_per_s']:,} tokens/s"
        print(f"best: batch {best['batch']}, {best['attention']} attention: {rate}{mfu}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_mfu.json").write_text(json.dumps(results, indent=1))
    if not measured:
        raise SystemExit("no configuration ran")


if __name__ == "__main__":
    main()
