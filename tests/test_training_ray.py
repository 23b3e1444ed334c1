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
    assert out["resumed_from"] == [] and again["resumed_from"] == [40]  # restarted at the checkpoint
    # the validation curve: [step, raw text tokens consumed (2 workers x 8 rows x 32), val_loss]
    assert out["val_curve"] == [[40, 40 * 2 * 8 * 32, out["val_loss"]]]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("parallelism", ["fsdp", "pipeline"])
def test_ray_parallelism_through_the_training_loop(tmp_path: Path, local_ray: None, parallelism: str) -> None:
    """FSDP2 and 2-stage 1F1B pipelining inside real Ray Train workers (gloo): the run learns and
    its checkpoint is a plain, unsharded GPT state."""
    import torch

    from training.model import GPT, GPTConfig

    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    cfg = load_config(
        overrides={
            "storage": {"root": str(tmp_path / "store")},
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {
                "parallelism": parallelism,
                "steps": 30,
                "seq_len": 32,
                "batch_size": 8,
                "log_every": 10,
                "checkpoint_every": 30,
                "warmup_steps": 3,
            },
        }
    )
    out = run_pretraining(cfg, shards, str(tmp_path / "ray"), name=f"par-{parallelism}")
    assert out["parallelism"] == parallelism and out["steps"] == 30
    assert out["last_loss"] < 0.75 * out["first_loss"]
    assert math.isfinite(out["val_loss"])
    state = torch.load(Path(out["checkpoint"], "state.pt"), weights_only=False)
    gpt = GPT(GPTConfig(**state["model_config"]))
    gpt.load_state_dict(state["model"])  # every key, full shapes: no shards, no stage fragments
    assert state["position"] == 30 * 8 * (2 if parallelism == "fsdp" else 1)


@pytest.mark.timeout(240)
def test_ray_streams_s3_shards_and_checkpoints_to_s3(tmp_path: Path, local_ray: None, s3_config) -> None:  # type: ignore[no-untyped-def]
    """Shards on S3 are read by the workers with ranged reads; checkpoints and TensorBoard events
    land under the S3 storage root (moto's server on loopback)."""
    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    storage = open_storage(s3_config)
    for path in shards.iterdir():
        storage.upload_file(path, f"runs/s3/shards/{path.name}")
    cfg = load_config(
        overrides={
            "storage": s3_config.model_dump(mode="python"),
            "ray": {"num_workers": 2, "cpus_per_worker": 1},
            "train": {"steps": 10, "seq_len": 32, "batch_size": 4, "log_every": 5, "checkpoint_every": 10},
        }
    )
    out = run_pretraining(cfg, storage.uri("runs/s3/shards"), storage.uri("runs/s3/ray"), name="s3run")
    assert out["steps"] == 10 and out["checkpoint"].startswith(storage.uri("runs/s3/ray/s3run"))
    prefix = out["checkpoint"].removeprefix(f"s3://{storage.bucket}/")  # type: ignore[attr-defined]
    body = storage.client.get_object(Bucket=storage.bucket, Key=f"{prefix}/state.pt")["Body"].read()  # type: ignore[attr-defined]
    assert len(body) > 1000
    listed = storage.client.list_objects_v2(
        Bucket=storage.bucket, Prefix=f"{storage.prefix}/tensorboard/s3run"
    )  # type: ignore[attr-defined]
    assert any("tfevents" in o["Key"] for o in listed.get("Contents", []))
