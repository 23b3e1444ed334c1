"""The one document contract shared by every stage (Arrow/Parquet).

Stages add annotations (`annotations` map, keys prefixed by the stage) and never reinterpret
another stage's columns. `raw_content` carries undecoded markup (HTML) until extraction fills
`text`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

SOURCE_TYPES = ("web", "book", "code", "paper", "social", "synthetic")

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("source_type", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),  # url or path
        pa.field("domain", pa.string()),  # host for web, repository/collection otherwise
        pa.field("license", pa.string()),  # SPDX id when known
        pa.field("license_source", pa.string()),  # where the license claim came from
        pa.field("language", pa.string()),
        pa.field("content_type", pa.string()),
        pa.field("raw_content", pa.string()),
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("annotations", pa.map_(pa.string(), pa.string())),
    ]
)

# A rejected document keeps every column plus the rule that removed it.
REJECTED_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("reject_stage", pa.string())).append(
    pa.field("reject_reason", pa.string())
)


def document_id(source_type: str, origin: str) -> str:
    """Stable id: the same source and origin always give the same id, across runs and engines."""
    if source_type not in SOURCE_TYPES:
        raise ValueError(f"unknown source_type {source_type!r}; expected one of {SOURCE_TYPES}")
    return hashlib.sha256(f"{source_type}\x00{origin}".encode()).hexdigest()[:32]


def make_document(source_type: str, origin: str, text: str = "", **fields: Any) -> dict[str, Any]:
    """A row dict conforming to DOCUMENT_SCHEMA (unknown fields are refused)."""
    unknown = set(fields) - set(DOCUMENT_SCHEMA.names)
    if unknown:
        raise ValueError(f"unknown document fields: {sorted(unknown)}")
    row: dict[str, Any] = dict.fromkeys(DOCUMENT_SCHEMA.names)
    row.update(fields, id=document_id(source_type, origin), text=text, source_type=source_type, origin=origin)
    row["annotations"] = fields.get("annotations") or {}
    return row


def documents_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)
