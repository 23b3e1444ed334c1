"""Integration: a real local Ray (2 gloo workers) trains the tiny GPT on shards written here."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from core.config import load_config  # noqa: E402
from core.storage import open_storage  # noqa: E402
from training.launch import run_pretraining  # noqa: E402

TEXT = (
    "The quick brown fox jumps over the lazy dog. "
    "A stitch in time saves nine. "
    "All that glitters is not gold. "
)


def write_text_shards(root: Path, docs: int = 160) -> Path:
    """Byte-level ids (vocab 256, eos 0): real text that a tiny model learns within a few dozen steps."""
    rng = np.random.default_rng(0)
    sentences = [s.strip() + " " for s in TEXT.split(". ") if s.strip()]
    ids: list[int] = []
    for _ in range(docs):
        doc = "".join(rng.choice(sentences, size=3))
        ids += [*doc.encode(), 0]
    tokens = np.array(ids, dtype="<u2")
    cut = len(tokens) * 9 // 10
    tokens[:cut].tofile(root / "train-00000.bin")
    tokens[cut:].tofile(root / "val-00000.bin")
    meta = {
        "vocab_size": 256,
        "eos_id": 0,
        "pad_id": 0,
        "dtype": "uint16",
        "train_files": ["train-00000.bin"],
        "val_files": ["val-00000.bin"],
        "train_tokens": cut,
        "val_tokens": len(tokens) - cut,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.timeout(180)
def test_ray_pretraining_learns_and_checkpoints(tmp_path: Path, local_ray: None) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    cfg = load_config(
        overrides={
            "storage": {"root": str(tmp_path / "store")},
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {
                "model_size": "tiny",
                "steps": 40,
                "seq_len": 32,
                "batch_size": 8,
                "lr": 3e-3,
                "warmup_steps": 5,
                "log_every": 5,
                "checkpoint_every": 20,
                "seed": 0,
            },
        }
    )
    storage_uri = open_storage(cfg.storage).uri("runs/test/train")
    out = run_pretraining(cfg, shards, storage_uri, name="tiny-ray")

    steps = [s for s, _ in out["losses"]]
    assert steps == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert out["first_loss"] == pytest.approx(math.log(256), rel=0.1)
    assert out["last_loss"] < 0.7 * out["first_loss"]
    assert out["steps"] == 40 and out["workers"] == 2 and out["num_params"] > 0
    assert math.isfinite(out["val_loss"]) and out["val_ppl"] == pytest.approx(math.exp(out["val_loss"]))
    assert out["tokens_per_s"] > 0
    checkpoint = Path(out["checkpoint"])
    assert checkpoint.is_relative_to(Path(storage_uri) / "tiny-ray")
    assert (checkpoint / "state.pt").is_file()

    # Same name again with more steps: Train restores the run's latest checkpoint and continues.
    cfg.train.steps = 50
    again = run_pretraining(cfg, shards, storage_uri, name="tiny-ray")
    assert again["losses"][: len(out["losses"])] == out["losses"]  # history carried in the checkpoint
    assert [s for s, _ in again["losses"][len(out["losses"]) :]] == [45, 50]
    assert again["losses"][-2][1] < 0.7 * out["first_loss"]  # resumed weights, not a fresh init
