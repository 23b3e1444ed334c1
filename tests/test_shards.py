"""Shard integrity on read: a corrupted byte, a truncated file and a manifest that does not match its
shards are refused, locally (memory-mapped) and on S3 (ranged reads), with the file and block named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.storage import open_storage
from jobs.tokens.shards import BlockHasher, block_hashes, cut_pieces, write_pieces
from training import data
from training.data import LocalTokens, ShardError, ShardReader, read_layout

BLOCK = 256


def write_verified(root: Path, sizes: tuple[int, ...] = (1000, 737, 2048), block: int = BLOCK) -> Path:
    """Shards and a meta.json in the stage's format (jobs/spark/tokens.py), tokens 0, 1, 2, ..."""
    root.mkdir(parents=True, exist_ok=True)
    entries, start = [], 0
    for i, n in enumerate((*sizes, 100)):
        split, name = ("train", f"train-{i:05d}.bin") if i < len(sizes) else ("val", "val-00000.bin")
        data_ = np.arange(start, start + n, dtype="<u2").tobytes()
        (root / name).write_bytes(data_)
        sha, blocks = block_hashes(data_, block)
        entries.append({"file": name, "split": split, "tokens": n, "sha256": sha, "block_sha256": blocks})
        start += n
    meta = {
        "vocab_size": 65535,
        "train_files": [e["file"] for e in entries[:-1]],
        "val_files": ["val-00000.bin"],
        "train_tokens": sum(sizes),
        "val_tokens": 100,
        "block_tokens": block,
        "shards": entries,
    }
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def flip(path: Path, byte: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[byte] ^= 0x01
    path.write_bytes(bytes(raw))


def test_block_hasher_matches_in_any_pieces() -> None:
    blob = np.arange(3000, dtype="<u2").tobytes()
    whole = block_hashes(blob, 1024)
    hasher = BlockHasher(2048)
    for a, b in ((0, 1), (1, 2047), (2047, 2049), (2049, 6000)):
        hasher.update(blob[a:b])
    assert hasher.finish() == whole and len(whole[1]) == 3


def test_cut_and_write_honour_max_tokens(tmp_path: Path) -> None:
    """Two sorted partitions of one stream, cut at 700 tokens: shards of exactly 700, the last shorter,
    the bytes in stream order across the partition boundary."""
    docs = [np.arange(s, s + n, dtype="<u2") for s, n in ((0, 500), (500, 900), (1400, 30), (1430, 600))]
    rows = [{"p": 0 if i < 2 else 1, "split": "train", "tokens": d.tobytes()} for i, d in enumerate(docs)]
    pieces = [*cut_pieces(rows[:2], {(0, "train"): 0}, 700), *cut_pieces(rows[2:], {(1, "train"): 1400}, 700)]
    pieces.sort(key=lambda p: (p["split"], p["shard"], p["pos"]))
    entries = list(write_pieces(pieces, str(tmp_path), 700, BLOCK))
    assert [e["tokens"] for e in entries] == [700, 700, 630]
    stream = np.concatenate([np.fromfile(tmp_path / e["file"], dtype="<u2") for e in entries])
    assert np.array_equal(stream, np.arange(2030))
    with pytest.raises(ValueError, match=r"train-00000\.bin: a piece starts at 10"):
        list(write_pieces([{**pieces[0], "pos": 10}], str(tmp_path), 700, BLOCK))


def test_verified_shards_read_like_plain_ones(tmp_path: Path) -> None:
    shards = write_verified(tmp_path)
    reader = ShardReader(shards, "train", 16, seed=1)
    w = reader.windows(0, reader.num_windows)
    assert torch.all(w[:, 1:] - w[:, :-1] == 1)
    blocks = sum(-(-n // BLOCK) for n in (1000, 737, 2048))
    assert sum(1 for name, _, _ in data._VERIFIED if name.startswith(str(shards))) == blocks  # each once


def test_corrupted_byte_is_detected_on_read_with_file_and_block(tmp_path: Path) -> None:
    shards = write_verified(tmp_path)
    flip(shards / "train-00002.bin", 2 * (3 * BLOCK + 5))  # token 773, in block 3
    reader = ShardReader(shards, "train", 16, seed=1)
    f = reader.files[2]
    assert f.read(0, 16)[0] == 1737  # blocks that are intact still read
    with pytest.raises(ShardError, match=r"train-00002\.bin: block 3 \(tokens 768\.\.1023\).*corrupted"):
        f.read(770, 16)
    with pytest.raises(ShardError, match="block 3"):
        reader.windows(0, reader.num_windows)


def test_truncated_shard_is_refused_at_open(tmp_path: Path) -> None:
    shards = write_verified(tmp_path)
    path = shards / "train-00001.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ShardError, match=r"train-00001\.bin: 1472 bytes, but meta\.json lists 737 tokens"):
        ShardReader(shards, "train", 16)
    path.write_bytes(path.read_bytes()[:-1])  # an odd size is refused even without a shard list
    with pytest.raises(ShardError, match="not a whole number"):
        LocalTokens(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train_tokens": 3784}, "the train shards hold 3785 tokens, train_tokens says 3784"),
        ({"train_files": ["train-00000.bin", "train-00001.bin"]}, "train shard list does not match"),
        ({"block_tokens": 512}, "lists 4 block checksums for 1000 tokens in blocks of 512"),
        ({"shards": [{"file": "x"}]}, "field 'shards.0.split'"),
    ],
)
def test_manifest_that_does_not_match_its_shards_is_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    shards = write_verified(tmp_path)
    meta = json.loads((shards / "meta.json").read_text())
    (shards / "meta.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(ShardError, match=message):
        ShardReader(shards, "train", 16)


def test_meta_without_a_shard_list_is_still_read(tmp_path: Path) -> None:
    shards = write_verified(tmp_path)
    meta = json.loads((shards / "meta.json").read_text())
    for key in ("shards", "block_tokens"):
        meta.pop(key)
    (shards / "meta.json").write_text(json.dumps(meta))
    assert read_layout(shards)[1] is None
    assert ShardReader(shards, "train", 16).num_windows > 0


def _upload(local: Path, s3_config: Any) -> tuple[Any, str]:
    storage = open_storage(s3_config)
    for path in local.iterdir():
        storage.upload_file(path, f"runs/r/shards/{path.name}")
    fs, base = storage.arrow_fs()
    return fs, f"{base}/runs/r/shards"


def test_s3_ranged_reads_verify_blocks(tmp_path: Path, s3_config: Any) -> None:
    local = write_verified(tmp_path / "good")
    fs, base = _upload(local, s3_config)
    remote, here = ShardReader(base, "train", 16, seed=2, fs=fs), ShardReader(local, "train", 16, seed=2)
    assert torch.equal(remote.windows(0, remote.num_windows), here.windows(0, here.num_windows))


def test_s3_corrupted_byte_and_truncated_shard_are_detected(tmp_path: Path, s3_config: Any) -> None:
    bad = write_verified(tmp_path / "bad")
    flip(bad / "train-00000.bin", 2 * 600)  # token 600: block 2
    short = bad / "train-00002.bin"
    fs, base = _upload(bad, s3_config)
    reader = ShardReader(base, "train", 16, fs=fs)
    with pytest.raises(ShardError, match=r"train-00000\.bin: block 2 .*corrupted"):
        reader.files[0].read(590, 17)
    short.write_bytes(short.read_bytes()[: 2 * 2000])
    fs, base = _upload(bad, s3_config)
    with pytest.raises(ShardError, match=r"train-00002\.bin: 4000 bytes, but meta\.json lists 2048 tokens"):
        ShardReader(base, "train", 16, fs=fs)
