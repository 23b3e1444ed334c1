"""Token shard streaming: local and S3 give the same windows; the data position resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.storage import open_storage
from training.data import ShardError, ShardReader, step_windows


def write_shards(root: Path, tokens_per_file: tuple[int, ...] = (1000, 737, 2048)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    names, start = [], 0
    for i, n in enumerate(tokens_per_file):
        np.arange(start, start + n, dtype="<u2").tofile(root / f"train-{i:05d}.bin")
        names.append(f"train-{i:05d}.bin")
        start += n
    np.arange(60000, 60100, dtype="<u2").tofile(root / "val-00000.bin")
    meta = {"vocab_size": 65535, "dtype": "uint16", "train_files": names, "val_files": ["val-00000.bin"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_windows_are_contiguous_tokens_and_epochs_reshuffle(tmp_path: Path) -> None:
    reader = ShardReader(write_shards(tmp_path), "train", seq_len=16, seed=1)
    assert reader.num_windows == 999 // 16 + 736 // 16 + 2047 // 16
    w = reader.windows(0, reader.num_windows * 2)
    assert torch.all(w[:, 1:] - w[:, :-1] == 1)  # each window is one run of consecutive tokens
    first, second = w[: reader.num_windows], w[reader.num_windows :]
    assert sorted(first[:, 0].tolist()) == sorted(second[:, 0].tolist())  # every window once per epoch
    assert first[:, 0].tolist() != second[:, 0].tolist()  # in a new order


def test_position_resumes_the_same_stream_with_another_world_size(tmp_path: Path) -> None:
    """Two workers for 3 steps, then one worker from the saved position: the single stream."""
    shards = write_shards(tmp_path)
    batch, micro = 4, 2
    single = ShardReader(shards, "train", 16, seed=5).windows(0, 5 * step_windows(2, micro, batch))
    seen = []
    position = 0
    two = [ShardReader(shards, "train", 16, rank=r, world_size=2, seed=5) for r in range(2)]
    for _ in range(3):
        for m in range(micro):
            seen += [r.rank_windows(position, m, batch) for r in two]
        position += step_windows(2, micro, batch)
    one = ShardReader(shards, "train", 16, rank=0, world_size=1, seed=5)
    for _ in range(4):  # the resumed run, one worker: same windows, now all on rank 0
        for m in range(micro):
            seen.append(one.rank_windows(position, m, batch))
        position += step_windows(1, micro, batch)
    assert torch.equal(torch.cat(seen), single)


def test_ranks_are_disjoint_within_a_step(tmp_path: Path) -> None:
    shards = write_shards(tmp_path)
    readers = [ShardReader(shards, "train", 16, rank=r, world_size=3, seed=0) for r in range(3)]
    starts = [set(r.rank_windows(0, m, 5)[:, 0].tolist()) for r in readers for m in range(2)]
    assert sum(len(s) for s in starts) == len(set().union(*starts)) == 30


def test_s3_stream_equals_local(tmp_path: Path, s3_config) -> None:  # type: ignore[no-untyped-def]
    local = write_shards(tmp_path / "shards")
    storage = open_storage(s3_config)
    for path in local.iterdir():
        storage.upload_file(path, f"runs/r/shards/{path.name}")
    fs, base = storage.arrow_fs()
    remote = ShardReader(f"{base}/runs/r/shards", "train", 16, rank=1, world_size=2, seed=3, fs=fs)
    here = ShardReader(local, "train", 16, rank=1, world_size=2, seed=3)
    assert remote.num_windows == here.num_windows
    for position in (0, 40, 10_000):
        assert torch.equal(remote.rank_windows(position, 1, 6), here.rank_windows(position, 1, 6))
    val = ShardReader(f"{base}/runs/r/shards", "val", 16, fs=fs)
    assert val.windows(0, 1)[0, 0].item() >= 60000


def test_missing_meta_on_s3_is_a_clear_error(s3_config) -> None:  # type: ignore[no-untyped-def]
    fs, base = open_storage(s3_config).arrow_fs()
    with pytest.raises(ShardError, match=r"no meta\.json"):
        ShardReader(f"{base}/nowhere", "train", 16, fs=fs)
