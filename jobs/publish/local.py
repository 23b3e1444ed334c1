"""A local-folder destination: copy to a temporary name, fsync, rename (core/storage.py
LocalStorage), then re-read to verify; the manifest is renamed into place last, after the folders
are fsynced, so a crash never leaves a manifest naming a file that is not on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.storage import LocalStorage
from jobs.publish.checksums import BLOCK, stream_sha256
from jobs.publish.destination import PublishError


def _blocks(path: Path) -> Any:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(BLOCK), b"")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDestination:
    def __init__(self, uri: str) -> None:
        self.store = LocalStorage(uri)

    def uri(self, key: str) -> str:
        return self.store.uri(key)

    def _path(self, key: str) -> Path:
        path = self.store.local_dir(key)  # confined to the root, symlinks checked
        assert path is not None
        return path

    def list(self, prefix: str) -> list[str]:
        return self.store.list(prefix)

    def read(self, key: str) -> bytes | None:
        return self.store.read_bytes(key) if self.store.exists(key) else None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _problem(self, key: str, entry: dict[str, Any]) -> str | None:
        path = self._path(key)
        if not path.is_file():
            return f"{self.uri(key)} is missing"
        if (size := path.stat().st_size) != entry["bytes"]:
            return f"size mismatch for {self.uri(key)}: {size} bytes, the manifest says {entry['bytes']}"
        if (digest := stream_sha256(_blocks(path))) != entry["sha256"]:
            return (
                f"checksum mismatch for {self.uri(key)}: sha256 {digest}, the manifest says {entry['sha256']}"
            )
        return None

    def present(self, key: str, local: Path, entry: dict[str, Any]) -> bool:
        return self._problem(key, entry) is None

    def put(self, local: Path, key: str, entry: dict[str, Any]) -> str:
        self.store.upload_file(local, key)
        if problem := self._problem(key, entry):
            self.delete(key)
            raise PublishError(problem)
        return "reread"

    def put_last(self, key: str, data: bytes) -> None:
        """fsync every folder of the dataset (and those above it, up to the root) before and after the
        manifest's rename: the files' renames, including a killed attempt's, are durable first."""
        folder = self._path(key).parent
        folders = [Path(d) for d, _, _ in os.walk(folder)]
        folders += [p for p in folder.parents if p.is_relative_to(self.store.root)]
        for path in folders:
            _fsync_dir(path)
        self.store.write_bytes(key, data)
        _fsync_dir(folder)

    def finish(self, prefix: str) -> int:
        return 0
