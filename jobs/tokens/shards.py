"""Tokenize documents and write flat uint16 token shards (nanoGPT's format) with a split.

The split is by document id hash, so it is stable across runs, engines and partition counts, and
is taken before the mixture repeats anything, so no copy of a validation document reaches training.
Each split is one stream of EOS-terminated documents in a global seeded order (a hash of seed, id
and copy number), cut into shards of exactly `max_shard_tokens` (the last one shorter): the output
depends only on the documents and the config, never on how Spark partitioned them. A document may
continue into the next shard, as in nanoGPT's flat stream. Every shard gets a sha256 and one per
block of `block_tokens`, so a reader doing ranged reads can verify just the blocks it touches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from jobs.tokens.mixture import NO_LANGUAGE, sample_bucket

TOKEN = np.dtype("<u2")

ENCODED = pa.schema(
    [
        ("id", pa.string()),
        ("source_type", pa.string()),
        ("language", pa.string()),
        ("split", pa.string()),
        ("bucket", pa.int32()),
        ("n_tokens", pa.int64()),
        ("tokens", pa.binary()),
    ]
)
PIECES = pa.schema(
    [("split", pa.string()), ("shard", pa.int64()), ("pos", pa.int64()), ("tokens", pa.binary())]
)
ENTRIES = pa.schema(
    [
        ("file", pa.string()),
        ("split", pa.string()),
        ("tokens", pa.int64()),
        ("sha256", pa.string()),
        ("block_sha256", pa.list_(pa.string())),
    ]
)


def is_validation(doc_id: str, val_fraction: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64
    return bucket < val_fraction


def shuffle_key(seed: int, doc_id: str, copy: int) -> int:
    """The global order's key: the first 60 bits of sha256("shuffle:seed:copy:id") (the Spark adapter
    computes the same with `sha2`, so the key fits a signed long)."""
    return int(hashlib.sha256(f"shuffle:{seed}:{copy}:{doc_id}".encode()).hexdigest()[:15], 16)


def shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.bin"


def encode_batches(
    batches: Iterable[pa.RecordBatch], tokenizer_file: str, val_fraction: float, mix_seed: int
) -> Iterator[pa.RecordBatch]:
    """Documents (id, text, source_type, language) to EOS-terminated uint16 tokens with their split
    and mixture bucket; the text is dropped."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file)
    eos = tok.token_to_id("<|endoftext|>")
    for batch in batches:
        rows = batch.to_pylist()
        encodings = tok.encode_batch([r["text"] or "" for r in rows])
        out = []
        for row, enc in zip(rows, encodings, strict=True):
            ids = np.asarray([*enc.ids, eos], dtype=TOKEN)
            out.append(
                {
                    "id": row["id"],
                    "source_type": row["source_type"],
                    "language": row["language"] or NO_LANGUAGE,
                    "split": "val" if is_validation(row["id"], val_fraction) else "train",
                    "bucket": sample_bucket(mix_seed, row["id"]),
                    "n_tokens": int(ids.size),
                    "tokens": ids.tobytes(),
                }
            )
        yield pa.RecordBatch.from_pylist(out, schema=ENCODED)


def cut_pieces(
    rows: Iterable[Mapping[str, Any]], offsets: Mapping[tuple[int, str], int], max_tokens: int
) -> Iterator[dict[str, Any]]:
    """Rows of one sorted partition (p, split, tokens) as pieces that each fall in one shard; the
    partition's first row starts at stream position offsets[(p, split)]."""
    pos: dict[str, int] = {}
    for row in rows:
        split, data = row["split"], row["tokens"]
        start = pos.setdefault(split, offsets[(row["p"], split)])
        done, n = 0, len(data) // TOKEN.itemsize
        while done < n:
            at = start + done
            take = min(n - done, max_tokens - at % max_tokens)
            piece = data[done * TOKEN.itemsize : (done + take) * TOKEN.itemsize]
            yield {"split": split, "shard": at // max_tokens, "pos": at, "tokens": piece}
            done += take
        pos[split] = start + n


class BlockHasher:
    """sha256 of a whole stream and of each `block_bytes` block of it, fed in arbitrary pieces."""

    def __init__(self, block_bytes: int) -> None:
        self.block_bytes, self.size = block_bytes, 0
        self.whole, self.block = hashlib.sha256(), hashlib.sha256()
        self.blocks: list[str] = []

    def update(self, data: bytes) -> None:
        self.whole.update(data)
        view = memoryview(data)
        while view:
            room = self.block_bytes - self.size % self.block_bytes
            self.block.update(view[:room])
            self.size += min(room, len(view))
            view = view[room:]
            if self.size % self.block_bytes == 0:
                self.blocks.append(self.block.hexdigest())
                self.block = hashlib.sha256()

    def finish(self) -> tuple[str, list[str]]:
        if self.size % self.block_bytes:
            self.blocks.append(self.block.hexdigest())
        return self.whole.hexdigest(), self.blocks


def block_hashes(data: bytes, block_tokens: int) -> tuple[str, list[str]]:
    """(file sha256, per-block sha256s) of a whole shard's bytes."""
    hasher = BlockHasher(block_tokens * TOKEN.itemsize)
    hasher.update(data)
    return hasher.finish()


def write_pieces(
    rows: Iterable[Mapping[str, Any]], out_dir: str, max_tokens: int, block_tokens: int
) -> Iterator[dict[str, Any]]:
    """Pieces sorted by (split, shard, pos) to shard files, streamed; one manifest entry per shard.
    A gap or overlap between pieces means the stream positions were wrong: refuse to write."""
    for (split, shard), pieces in groupby(rows, key=lambda r: (r["split"], int(r["shard"]))):
        name, written = shard_name(split, shard), 0
        hasher = BlockHasher(block_tokens * TOKEN.itemsize)
        with Path(out_dir, name).open("wb") as fh:
            for piece in pieces:
                if piece["pos"] != shard * max_tokens + written:
                    raise ValueError(
                        f"shard {name}: a piece starts at {piece['pos']}, not after token {written}"
                    )
                fh.write(piece["tokens"])
                hasher.update(piece["tokens"])
                written += len(piece["tokens"]) // TOKEN.itemsize
        sha, blocks = hasher.finish()
        yield {"file": name, "split": split, "tokens": written, "sha256": sha, "block_sha256": blocks}
