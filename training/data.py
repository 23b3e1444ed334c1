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

Integrity: meta.json lists every shard with its token count, sha256 and a sha256 per block of
`block_tokens` tokens. A file whose size is not its token count is refused at open; a read hashes
each block it touches the first time this process touches it (verified blocks are remembered), so a
corrupted byte fails the read with the file and block named, while ranged reads stay ranged. A
meta.json without this list (older shards) is read unverified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.shard_meta import ShardMeta, ShardMetaError

META = "meta.json"
_TOKEN = np.dtype("<u2")
_LAYOUT_KEYS = ("block_tokens", "shards")
# (file, block index, expected sha256) of every block this process has verified
_VERIFIED: set[tuple[str, int, str]] = set()


class ShardError(ValueError):
    """The shard directory is missing, malformed, or too small for the requested windows."""


class ShardEntry(BaseModel):
    """One shard as the shards stage wrote it (jobs/spark/tokens.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    split: Literal["train", "val"]
    tokens: int = Field(ge=0)
    sha256: str
    block_sha256: tuple[str, ...]


class ShardLayout(BaseModel):
    """meta.json's shard list: what the reader verifies the files against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    block_tokens: int = Field(ge=1)
    shards: tuple[ShardEntry, ...]


class TokenFile(Protocol):
    def __len__(self) -> int: ...

    def read(self, start: int, count: int) -> np.ndarray: ...


class _Blocks:
    """Checks a file's size at open and each block's sha256 the first time a read touches it."""

    def __init__(self, name: str, size: int, entry: ShardEntry | None, block_tokens: int) -> None:
        self.name, self.entry, self.block_tokens = name, entry, block_tokens
        if size % _TOKEN.itemsize:
            raise ShardError(f"{name}: {size} bytes is not a whole number of uint16 tokens (truncated?)")
        if entry is None:
            return
        if size != entry.tokens * _TOKEN.itemsize:
            raise ShardError(
                f"{name}: {size} bytes, but meta.json lists {entry.tokens} tokens "
                f"({entry.tokens * _TOKEN.itemsize} bytes): truncated, or not the file the manifest lists"
            )
        if len(entry.block_sha256) != -(-entry.tokens // block_tokens):
            raise ShardError(
                f"{name}: meta.json lists {len(entry.block_sha256)} block checksums for {entry.tokens} "
                f"tokens in blocks of {block_tokens}"
            )

    def check(self, start: int, count: int, fetch: Callable[[int, int], bytes]) -> bytes | None:
        """Verify the blocks under tokens [start, start + count); `fetch(first, n)` reads tokens. When
        the range lies in one block read just now, its bytes are returned to save a second read."""
        if self.entry is None or count <= 0:
            return None
        first, last = start // self.block_tokens, (start + count - 1) // self.block_tokens
        raw = None
        for b in range(first, last + 1):
            expected = self.entry.block_sha256[b]
            if (self.name, b, expected) in _VERIFIED:
                continue
            lo = b * self.block_tokens
            data = fetch(lo, min(self.block_tokens, self.entry.tokens - lo))
            if hashlib.sha256(data).hexdigest() != expected:
                raise ShardError(
                    f"{self.name}: block {b} (tokens {lo}..{lo + len(data) // 2 - 1}) does not match its "
                    f"sha256 in meta.json: the shard is corrupted"
                )
            _VERIFIED.add((self.name, b, expected))
            if first == last:
                raw = data[(start - lo) * _TOKEN.itemsize : (start - lo + count) * _TOKEN.itemsize]
        return raw


class LocalTokens:
    def __init__(self, path: Path, entry: ShardEntry | None = None, block_tokens: int = 1) -> None:
        size = path.stat().st_size
        self._blocks = _Blocks(str(path), size, entry, block_tokens)
        # mmap refuses empty files
        self._data = np.memmap(path, dtype=_TOKEN, mode="r") if size else np.zeros(0, dtype=_TOKEN)

    def __len__(self) -> int:
        return len(self._data)

    def read(self, start: int, count: int) -> np.ndarray:
        self._blocks.check(start, count, lambda lo, n: self._data[lo : lo + n].tobytes())
        return np.asarray(self._data[start : start + count])


class RemoteTokens:
    """Ranged reads of one token file through a pyarrow filesystem (S3): only the bytes asked for,
    plus, once per block and process, the whole block to verify it."""

    def __init__(self, fs: Any, path: str, entry: ShardEntry | None = None, block_tokens: int = 1) -> None:
        self._file = fs.open_input_file(path)
        size = self._file.size()
        self._blocks = _Blocks(path, size, entry, block_tokens)
        self._len = size // _TOKEN.itemsize

    def __len__(self) -> int:
        return self._len

    def _read(self, start: int, count: int) -> bytes:
        raw = self._file.read_at(count * _TOKEN.itemsize, start * _TOKEN.itemsize)
        return bytes(raw)

    def read(self, start: int, count: int) -> np.ndarray:
        count = max(0, min(count, self._len - start))
        raw = self._blocks.check(start, count, self._read)
        return np.frombuffer(raw if raw is not None else self._read(start, count), dtype=_TOKEN)


def read_meta(directory: Path | str, fs: Any = None) -> ShardMeta:
    """The shard directory's meta.json (locally, or through the pyarrow filesystem `fs`)."""
    return read_layout(directory, fs)[0]


def read_layout(directory: Path | str, fs: Any = None) -> tuple[ShardMeta, ShardLayout | None]:
    """meta.json's typed fields and its shard list (None for shards written before the list),
    checked against each other: a list that disagrees with the file lists or totals is refused."""
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
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ShardError(f"{path}: not a JSON object")
        layout_raw = {k: raw.pop(k) for k in _LAYOUT_KEYS if k in raw}
        meta = ShardMeta.parse(json.dumps(raw), path)
        layout = ShardLayout.model_validate(layout_raw) if layout_raw else None
    except json.JSONDecodeError as err:
        raise ShardError(f"{path}: not valid JSON ({err})") from err
    except ShardMetaError as err:
        raise ShardError(str(err)) from err
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ShardError(f"{path}: field {field!r}: {first['msg']}") from err
    if meta.dtype != "uint16":
        raise ShardError(f"{path}: dtype {meta.dtype!r} is not supported (expected 'uint16')")
    if layout is not None:
        _match(path, meta, layout)
    return meta, layout


def _match(path: str, meta: ShardMeta, layout: ShardLayout) -> None:
    for split, tokens in (("train", meta.train_tokens), ("val", meta.val_tokens)):
        listed = [e for e in layout.shards if e.split == split]
        if tuple(e.file for e in listed) != meta.files(split):
            raise ShardError(f"{path}: the {split} shard list does not match {split}_files")
        if sum(e.tokens for e in listed) != tokens:
            raise ShardError(
                f"{path}: the {split} shards hold {sum(e.tokens for e in listed)} tokens, "
                f"{split}_tokens says {tokens}"
            )


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
        self.meta, layout = read_layout(directory, fs)
        base = str(directory).rstrip("/")
        names = self.meta.files(split)
        entries = {e.file: e for e in layout.shards} if layout else {}
        block = layout.block_tokens if layout else 1
        self.files: list[TokenFile] = (
            [LocalTokens(Path(base, n), entries.get(n), block) for n in names]
            if fs is None
            else [RemoteTokens(fs, f"{base}/{n}", entries.get(n), block) for n in names]
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
