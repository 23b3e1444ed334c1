"""Ray Train's overhead on CPU: the same model, data and loop in Ray Train and in one plain process.

Three rows, same run, same shards, same threads:
- `plain loop`: the simplest PyTorch loop (batch, forward, backward, clip, AdamW) on our GPT;
- `our loop, no Ray`: training/loop.py `run_training` with a `LocalSession` (objective batches,
  schedule, reports, checkpoints in memory);
- `Ray Train`: the same `run_training` inside one Ray Train worker (TorchTrainer, gloo), holding
  the same number of CPUs, through training/launch.py as the pipeline runs it.
Every row is timed alike: tokens/s per report interval (step 1, then every 5 steps; reports,
the final validation and checkpoint included), the median of all intervals but the first (start-up
and the first step excluded). Every run builds its model and optimizer afresh; the loops flush
denormals to zero on CPU (training/loop.py `flush_denormals`), without which speed drifts with
the data order. Ray is started once, as a cluster or a long-lived worker's Ray would be, and given
10 s to settle (its start-up work would otherwise share the cores with the first run); each Ray
run starts and stops its Train controller and worker group, which `wall s` (the whole call)
shows. The table gives medians of `runs` interleaved runs, for 1 and 2 threads (the Ray worker
reserves as many CPUs). Ray's overhead = 1 - Ray / plain loop. With 2 threads on a 2-core
machine, Ray's own processes (raylet, GCS, the Train controller) share the training cores.

Shards: byte-level tokens (vocabulary 256) of standard-library sources, written by this script.
"""

from __future__ import annotations

import contextlib
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
RAY_SETTLE_S = 10.0


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
    """The baseline any PyTorch user would write, timed as run_training times itself: a rate per
    report interval (step 1, then every `log_every` steps), the median of all but the first."""
    from core.config import TrainConfig
    from training.data import ShardReader, read_meta
    from training.loop import build_optimizer, flush_denormals, model_config
    from training.model import GPT

    cfg = TrainConfig.model_validate(train_cfg(steps))
    flush_denormals()  # as run_training does on CPU: without it, speed depends on the data order
    torch.manual_seed(0)
    model = GPT(model_config(cfg, read_meta(shards)))
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    reader = ShardReader(shards, "train", cfg.seq_len)
    rates: list[float] = []
    clock, timed = time.perf_counter(), 0
    for step in range(steps):
        tokens = reader.windows(step * cfg.batch_size, cfg.batch_size)
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done, timed = step + 1, timed + 1
        if done == 1 or done % cfg.log_every == 0 or done == steps:
            loss.item()
            now = time.perf_counter()
            rates.append(cfg.batch_size * cfg.seq_len * timed / (now - clock))
            clock, timed = now, 0
    return statistics.median(rates[1:])


def _median_rate(history: list[dict[str, Any]]) -> float:
    return statistics.median(m["tokens_per_s"] for m in history[1:])


def our_loop(shards: Path, steps: int) -> float:
    from core.config import TrainConfig
    from training.loop import run_training
    from training.session import LocalSession

    cfg = TrainConfig.model_validate(train_cfg(steps))
    return _median_rate(run_training(cfg, str(shards), LocalSession()))


def ray_cfg(store: Path, steps: int, threads: int) -> Any:
    from core.config import load_config

    return load_config(
        overrides={
            "storage": {"root": str(store)},
            "ray": {"num_workers": 1, "cpus_per_worker": threads},
            "train": train_cfg(steps),
        }
    )


def ray_train(shards: Path, steps: int, store: Path, threads: int) -> float:
    """One TorchTrainer run on the Ray that `run` started (as on a cluster, or an Airflow worker
    that keeps its Ray): the worker group starts and stops per run, Ray itself does not."""
    from training.launch import run_pretraining

    out = run_pretraining(
        ray_cfg(store, steps, threads), shards, str(store / "ray"), name=f"bench-{time.time_ns()}"
    )
    return out["tokens_per_s"]


def _timed(fn: Any, *args: Any) -> tuple[float, float]:
    """(tokens/s the runner measured, wall seconds of the whole call)."""
    t0 = time.perf_counter()
    rate = fn(*args)
    return rate, time.perf_counter() - t0


def run(runs: int = 3, steps: int = 60) -> str:
    import ray

    from training.launch import ensure_ray

    lines = [
        f"Ray Train overhead on CPU: small GPT, seq 128, batch 16, {steps} steps, median of {runs} runs",
        f"  {'threads':>7} {'runner':<22} {'tokens/s':>10} {'vs plain':>9} {'wall s':>7}",
    ]
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        shards = write_byte_shards(Path(d, "shards"))
        store = Path(d, "store")
        t0 = time.perf_counter()
        if ensure_ray(ray_cfg(store, steps, max(THREADS)).ray):
            stack.callback(ray.shutdown)
        # Ray's start-up work (idle workers importing, agents) would otherwise overlap the first runs
        time.sleep(RAY_SETTLE_S)
        lines[0] += f"; local Ray started once in {time.perf_counter() - t0 - RAY_SETTLE_S:.1f} s"
        for threads in THREADS:
            torch.set_num_threads(threads)
            runners: dict[str, tuple[Any, ...]] = {
                "plain loop": (plain_loop, shards, steps),
                "our loop, no Ray": (our_loop, shards, steps),
                "Ray Train (1 worker)": (ray_train, shards, steps, store, threads),
            }
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
            for _ in range(runs):  # interleaved, so drift hits every row alike
                for name, (fn, *args) in runners.items():
                    results[name].append(_timed(fn, *args))
            base = statistics.median(rate for rate, _ in results["plain loop"])
            for name, values in results.items():
                rate = statistics.median(r for r, _ in values)
                wall = statistics.median(w for _, w in values)
                lines.append(f"  {threads:>7} {name:<22} {rate:>10.0f} {rate / base - 1:>+9.1%} {wall:>7.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
