"""Tokenize documents and write flat uint16 token shards (nanoGPT's format) with a split.

Each Spark partition writes its own `train-NNNNN.bin` / `val-NNNNN.bin`; documents are separated
by EOS. The split is by document id hash, so it is stable across runs and engines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


def is_validation(doc_id: str, val_fraction: float) -> bool:
    bucket = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64
    return bucket < val_fraction


def write_partition(
    index: int, rows: Iterable[Any], tokenizer_file: str, out_dir: str, val_fraction: float
) -> Iterator[dict[str, Any]]:
    """Encode one partition's documents in batches; yields one summary row per split."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file)
    eos = tok.token_to_id("<|endoftext|>")
    buffers: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    docs = {"train": 0, "val": 0}
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        encodings = tok.encode_batch([t for _, t in batch])
        for (doc_id, _), enc in zip(batch, encodings, strict=True):
            split = "val" if is_validation(doc_id, val_fraction) else "train"
            buffers[split].append(np.asarray([*enc.ids, eos], dtype=np.uint16))
            docs[split] += 1
        batch.clear()

    for row in rows:
        batch.append((row["id"], row["text"]))
        if len(batch) >= 256:
            flush()
    if batch:
        flush()
    for split, parts in buffers.items():
        if not parts:
            continue
        arr = np.concatenate(parts)
        name = f"{split}-{index:05d}.bin"
        arr.astype("<u2").tofile(Path(out_dir, name))
        yield {"file": name, "split": split, "tokens": int(arr.size), "documents": docs[split]}
