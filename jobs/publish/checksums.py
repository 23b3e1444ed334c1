"""SHA-256 in the forms S3 reports it, computed from the bytes the manifest describes.

S3 stores, for an object uploaded with `ChecksumAlgorithm=SHA256`, the base64 SHA-256 of the whole
object (single PUT), or for a multipart upload a composite: the SHA-256 of the concatenated binary
SHA-256s of its parts, shown as `<base64>-<part count>` ("Using part-level checksums for multipart
uploads", https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
Some S3-compatible servers (moto) leave out the `-<parts>` suffix; the ETag of a multipart object
still ends in `-<parts>` ("Object integrity", same page; ETag: https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable
from pathlib import Path

_PARTS = re.compile(r"-(\d+)\"?$")
BLOCK = 1 << 20


def b64_of_hex(digest_hex: str) -> str:
    """The manifest's hex SHA-256 as S3 shows a single-part checksum."""
    return base64.b64encode(bytes.fromhex(digest_hex)).decode()


def part_count(checksum: str, etag: str) -> int | None:
    """Parts of a multipart object (from `<b64>-N`, else from the ETag's `-N`); None for a single PUT."""
    for text in (checksum, etag):
        if match := _PARTS.search(text or ""):
            return int(match.group(1))
    return None


def stream_sha256(blocks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for block in blocks:
        h.update(block)
    return h.hexdigest()


def file_and_composite(path: Path, part_size: int) -> tuple[str, str, int]:
    """(hex SHA-256 of the whole file, base64 composite of `part_size` parts, part count) in one
    pass, so the composite S3 reports is tied to the file the manifest's sha256 names."""
    whole = hashlib.sha256()
    parts: list[bytes] = []
    with path.open("rb") as fh:
        while True:
            part = hashlib.sha256()
            left = part_size
            while left:
                block = fh.read(min(BLOCK, left))
                if not block:
                    break
                whole.update(block)
                part.update(block)
                left -= len(block)
            if left == part_size:  # nothing read: end of file
                break
            parts.append(part.digest())
            if left:
                break
    composite = base64.b64encode(hashlib.sha256(b"".join(parts)).digest()).decode()
    return whole.hexdigest(), composite, len(parts)


def expected_parts(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))
