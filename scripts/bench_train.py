"""Ray Train's overhead on CPU: the same model, data and loop in Ray Train and in one plain process.

Three rows, same run, same shards, same threads:
- `plain loop`: the simplest PyTorch loop (batch, forward, backward, clip, AdamW) on our GPT;
- `our loop, no Ray`: training/loop.py `run_training` with a `LocalSession` (objective batches,
  schedule, reports, checkpoints in memory);
- `Ray Train`: the same `run_training` inside one Ray Train worker (TorchTrainer, gloo), holding
  the same number of CPUs, through training/launch.py as the pipeline runs it.
tokens/s is the median over reports after the first (start-up and the first step excluded; the
reports themselves included), and the table gives the median of `runs` runs, for 1 and 2 threads
(the Ray worker reserves as many CPUs). Ray's overhead = 1 - Ray / plain loop. With 2 threads on a
2-core machine, Ray's own processes (raylet, GCS, the Train controller) share the training cores.

Shards: byte-level tokens (vocabulary 256) of standard-library sources, written by this script.
"""

from __future__ import annotations

import json
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

THREADS = (1, 2)


def write_byte_shards(root: Path, mb: float = 4.0) -> Path:
    """uint16 shards of raw UTF-8 bytes (ids 0-255, 0 as the separator) with a 5% validation split."""
    data = bytearray()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        data += path.read_bytes() + b"\0"
        if len(data) > mb * 1e6:
            break
    tokens = np.frombuffer(bytes(data), dtype=np.uint8).astype("<u2")
    cut = len(tokens) * 95 // 100
    root.mkdir(parents=True, exist_ok=True)
    tokens[:cut].tofile(root / "train-00000.bin")
    tokens[cut:].tofile(root / "val-00000.bin")
    meta = {
        "vocab_size": 256,
        "eos_id": 0,
        "pad_id": 0,
        "mask_id": 1,
        "dtype": "uint16",
        "train_files": ["train-00000.bin"],
        "val_files": ["val-00000.bin"],
        "train_tokens": cut,
        "val_tokens": len(tokens) - cut,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def train_cfg(steps: int) -> dict[str, Any]:
    return {
        "model_size": "small",
        "seq_len": 128,
        "batch_size": 16,
        "steps": steps,
        "log_every": 5,
        "checkpoint_every": steps,
        "warmup_steps": 2,
        "eval_batches": 1,
    }


def plain_loop(shards: Path, steps: int) -> float:
    """The baseline any PyTorch user would write: tokens/s over steps 2..steps."""
    from core.config import TrainConfig
    from training.data import ShardReader, read_meta
    from training.loop import build_optimizer, model_config
    from training.model import GPT

    cfg = TrainConfig.model_validate(train_cfg(steps))
    torch.manual_seed(0)
    model = GPT(model_config(cfg, read_meta(shards)))
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    reader = ShardReader(shards, "train", cfg.seq_len)
    start = 0.0
    for step in range(steps):
        if step == 1:
            start = time.perf_counter()
        tokens = reader.windows(step * cfg.batch_size, cfg.batch_size)
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return cfg.batch_size * cfg.seq_len * (steps - 1) / (time.perf_counter() - start)


def _median_rate(history: list[dict[str, Any]]) -> float:
    return statistics.median(m["tokens_per_s"] for m in history[1:])


def our_loop(shards: Path, steps: int) -> float:
    from core.config import TrainConfig
    from training.loop import run_training
    from training.session import LocalSession

    cfg = TrainConfig.model_validate(train_cfg(steps))
    return _median_rate(run_training(cfg, str(shards), LocalSession()))


def ray_train(shards: Path, steps: int, store: Path, threads: int) -> float:
    from core.config import load_config
    from training.launch import run_pretraining

    cfg = load_config(
        overrides={
            "storage": {"root": str(store)},
            "ray": {"num_workers": 1, "cpus_per_worker": threads},
            "train": train_cfg(steps),
        }
    )
    out = run_pretraining(cfg, shards, str(store / "ray"), name=f"bench-{time.time_ns()}")
    return out["tokens_per_s"]


def run(runs: int = 3, steps: int = 40) -> str:
    lines = [
        f"Ray Train overhead on CPU: small GPT, seq 128, batch 16, {steps} steps, median of {runs} runs",
        f"  {'threads':>7} {'runner':<22} {'tokens/s':>10} {'vs plain':>9}",
    ]
    with tempfile.TemporaryDirectory() as d:
        shards = write_byte_shards(Path(d, "shards"))
        for threads in THREADS:
            torch.set_num_threads(threads)
            rows: dict[str, list[float]] = {
                "plain loop": [],
                "our loop, no Ray": [],
                "Ray Train (1 worker)": [],
            }
            for _ in range(runs):  # interleaved, so drift hits every row alike
                rows["plain loop"].append(plain_loop(shards, steps))
                rows["our loop, no Ray"].append(our_loop(shards, steps))
                rows["Ray Train (1 worker)"].append(ray_train(shards, steps, Path(d, "store"), threads))
            base = statistics.median(rows["plain loop"])
            for name, values in rows.items():
                rate = statistics.median(values)
                lines.append(f"  {threads:>7} {name:<22} {rate:>10.0f} {rate / base - 1:>+9.1%}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
