"""Deterministic batches from token shards, on local disk or S3, with an exact resumable position.

A shard directory holds `meta.json` and flat little-endian uint16 files of concatenated documents.
Each file is cut into non-overlapping windows of `seq_len + 1` tokens (inputs plus shifted targets).
The run reads one global stream: window `g` is entry `g mod W` of a permutation of the W windows
seeded by (seed, g div W), i.e. a fresh shuffle every epoch. A step consumes `world * micro *
batch_size` consecutive stream entries, rank r taking its own disjoint slices, so the data
position is a single integer (windows consumed so far). It goes into every checkpoint; a resumed
run, even with another number of workers, continues the same stream exactly where it stopped.

Local files are memory-mapped (the OS pages in only the windows a batch touches). On S3 each
worker reads only its windows with ranged reads (`read_at`) through pyarrow's S3 filesystem, so no
worker downloads the shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from core.shard_meta import ShardMeta, ShardMetaError

META = "meta.json"
_TOKEN = np.dtype("<u2")


class ShardError(ValueError):
    """The shard directory is missing, malformed, or too small for the requested windows."""


class TokenFile(Protocol):
    def __len__(self) -> int: ...

    def read(self, start: int, count: int) -> np.ndarray: ...


class LocalTokens:
    def __init__(self, path: Path) -> None:
        size = path.stat().st_size
        # mmap refuses empty files
        self._data = np.memmap(path, dtype=_TOKEN, mode="r") if size else np.zeros(0, dtype=_TOKEN)

    def __len__(self) -> int:
        return len(self._data)

    def read(self, start: int, count: int) -> np.ndarray:
        return np.asarray(self._data[start : start + count])


class RemoteTokens:
    """Ranged reads of one token file through a pyarrow filesystem (S3): only the bytes asked for."""

    def __init__(self, fs: Any, path: str) -> None:
        self._file = fs.open_input_file(path)
        self._len = self._file.size() // _TOKEN.itemsize

    def __len__(self) -> int:
        return self._len

    def read(self, start: int, count: int) -> np.ndarray:
        raw = self._file.read_at(count * _TOKEN.itemsize, start * _TOKEN.itemsize)
        return np.frombuffer(raw, dtype=_TOKEN)


def read_meta(directory: Path | str, fs: Any = None) -> ShardMeta:
    """The shard directory's meta.json (locally, or through the pyarrow filesystem `fs`)."""
    path = f"{str(directory).rstrip('/')}/{META}"
    try:
        if fs is None:
            text = Path(path).read_text()
        else:
            with fs.open_input_stream(path) as fh:
                text = fh.read().decode()
    except (FileNotFoundError, OSError) as err:
        raise ShardError(
            f"no {META} in shard directory {directory}: run the tokenize+shard stage first"
        ) from err
    try:
        meta = ShardMeta.parse(text, path)
    except ShardMetaError as err:
        raise ShardError(str(err)) from err
    if meta.dtype != "uint16":
        raise ShardError(f"{path}: dtype {meta.dtype!r} is not supported (expected 'uint16')")
    return meta


class ShardReader:
    def __init__(
        self,
        directory: Path | str,
        split: Literal["train", "val"],
        seq_len: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        fs: Any = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.directory, self.split, self.seq_len = directory, split, seq_len
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.meta = read_meta(directory, fs)
        base = str(directory).rstrip("/")
        names = self.meta.files(split)
        self.files: list[TokenFile] = (
            [LocalTokens(Path(base, n)) for n in names]
            if fs is None
            else [RemoteTokens(fs, f"{base}/{n}") for n in names]
        )
        # (file index, start offset) of every window; a window never spans two files.
        counts = [max(0, (len(f) - 1) // seq_len) for f in self.files]
        self._file_of = np.repeat(np.arange(len(self.files)), counts)
        self._start = np.concatenate([np.arange(c) * seq_len for c in counts] or [np.zeros(0, int)])
        if self.num_windows == 0:
            tokens = sum(len(f) for f in self.files)
            raise ShardError(
                f"{directory} {split} split has {tokens} tokens in {len(self.files)} file(s); "
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

    def stream_ids(self, first: int, count: int) -> np.ndarray:
        """Window indices of global stream entries first .. first + count - 1."""
        out = np.empty(count, dtype=np.int64)
        for i, g in enumerate(range(first, first + count)):
            epoch, pos = divmod(g, self.num_windows)
            out[i] = self._permutation(epoch)[pos]
        return out

    def windows(self, first: int, count: int) -> torch.Tensor:
        """Stream entries first .. first + count - 1 as an int64 tensor [count, seq_len + 1]."""
        rows = [
            self.files[self._file_of[w]].read(int(self._start[w]), self.seq_len + 1)
            for w in self.stream_ids(first, count)
        ]
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def rank_windows(self, position: int, micro: int, batch_size: int) -> torch.Tensor:
        """This rank's `micro`-th slice of the step that starts at stream `position`."""
        first = position + (micro * self.world_size + self.rank) * batch_size
        return self.windows(first, batch_size)

    def batch(self, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) int64 tensors of shape [batch_size, seq_len]; y is x shifted by one token."""
        tokens = self.windows((step * self.world_size + self.rank) * batch_size, batch_size)
        return tokens[:, :-1], tokens[:, 1:]


def step_windows(world_size: int, micro_batches: int, batch_size: int) -> int:
    """Stream entries one optimizer step consumes across all ranks."""
    return world_size * micro_batches * batch_size
