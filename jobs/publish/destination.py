"""What a publish destination does: the orchestration (jobs/publish/run.py) is the same for S3 and a
local folder, only these operations differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from core.storage import StorageError


class PublishError(StorageError):
    """An upload failed or did not verify; the message names the object and what differs."""


class Destination(Protocol):
    def uri(self, key: str) -> str: ...

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, relative to the destination root."""
        ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes, None when there is none."""
        ...

    def delete(self, key: str) -> None: ...

    def present(self, key: str, local: Path, entry: dict[str, Any]) -> bool:
        """Whether the object already holds exactly the manifest entry's bytes (a resumed publish
        skips it)."""
        ...

    def put(self, local: Path, key: str, entry: dict[str, Any]) -> str:
        """Upload `local` and verify it against `entry`; the verification used, or PublishError."""
        ...

    def put_last(self, key: str, data: bytes) -> None:
        """Write the manifest, atomically and durably, once every file is in place."""
        ...

    def finish(self, prefix: str) -> int:
        """Clean up after a complete publish; how many leftovers (stale uploads) were removed."""
        ...
