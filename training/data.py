"""Deterministic batches from token shards, so a resumed run sees exactly the batches it would have.

A shard directory holds `meta.json` and flat little-endian uint16 files of concatenated documents.
Each file is cut into non-overlapping windows of `seq_len + 1` tokens (inputs plus shifted targets).
Batch `step` for `rank` takes windows `(step * world_size + rank) * batch_size + i` of a permutation
seeded by (seed, epoch): a pure function of its arguments, and disjoint across ranks within an epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

META = "meta.json"


class ShardError(ValueError):
    """The shard directory is missing, malformed, or too small for the requested windows."""


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META
    if not path.is_file():
        raise ShardError(f"no {META} in shard directory {directory}: run the tokenize+shard stage first")
    meta = json.loads(path.read_text())
    if meta.get("dtype", "uint16") != "uint16":
        raise ShardError(f"{path}: dtype {meta['dtype']!r} is not supported (expected 'uint16')")
    return meta


def _map(path: Path) -> np.ndarray:
    """Memory-map a token file; the OS pages in only the windows a batch touches."""
    if path.stat().st_size == 0:  # mmap refuses empty files
        return np.zeros(0, dtype="<u2")
    return np.memmap(path, dtype="<u2", mode="r")


class ShardReader:
    def __init__(
        self,
        directory: Path,
        split: Literal["train", "val"],
        seq_len: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.directory, self.split, self.seq_len = Path(directory), split, seq_len
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.meta = read_meta(self.directory)
        self.files = [_map(self.directory / name) for name in self.meta[f"{split}_files"]]
        # (file index, start offset) of every window; a window never spans two files.
        counts = [max(0, (len(f) - 1) // seq_len) for f in self.files]
        self._file_of = np.repeat(np.arange(len(self.files)), counts)
        self._start = np.concatenate([np.arange(c) * seq_len for c in counts] or [np.zeros(0, int)])
        if self.num_windows == 0:
            tokens = sum(len(f) for f in self.files)
            raise ShardError(
                f"{self.directory} {split} split has {tokens} tokens in {len(self.files)} file(s); "
                f"need at least seq_len + 1 = {seq_len + 1} in one file"
            )
        self._perm_epoch, self._perm = -1, np.zeros(0, dtype=np.int64)

    @property
    def num_windows(self) -> int:
        return len(self._start)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)
            self._perm_epoch = epoch
        return self._perm

    def window_ids(self, step: int, batch_size: int) -> np.ndarray:
        """Indices (into the window table) of this rank's batch at `step`."""
        first = (step * self.world_size + self.rank) * batch_size
        out = np.empty(batch_size, dtype=np.int64)
        for i, g in enumerate(range(first, first + batch_size)):
            epoch, pos = divmod(g, self.num_windows)
            out[i] = self._permutation(epoch)[pos]
        return out

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) int64 tensors of shape [batch_size, seq_len]; y is x shifted by one token."""
        rows = [
            self.files[self._file_of[w]][self._start[w] : self._start[w] + self.seq_len + 1]
            for w in self.window_ids(step, batch_size)
        ]
        tokens = torch.from_numpy(np.stack(rows).astype(np.int64))
        return tokens[:, :-1], tokens[:, 1:]
