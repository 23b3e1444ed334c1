"""A user's JSON object as a document row, and a stage rule's decision on it as an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.schema import DOCUMENT_SCHEMA, SOURCE_TYPES

Rule = Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]
_TEXT_FIELDS = ("text", "raw_content", "origin", "domain", "license", "language", "content_type")


def to_row(obj: dict[str, Any]) -> dict[str, Any]:
    """Schema columns from `obj` (others ignored); `text` or `raw_content` is required, source_type
    defaults to web, origin to the id. Wrong types are refused with the field's name."""
    if obj.get("id") is None:
        raise ValueError("field 'id' is required")
    if not isinstance(obj.get("text"), str) and not isinstance(obj.get("raw_content"), str):
        raise ValueError("field 'text' (or 'raw_content' for HTML) must be a string")
    source = obj.get("source_type") or "web"
    if source not in SOURCE_TYPES:
        raise ValueError(f"field 'source_type' must be one of {SOURCE_TYPES}, got {source!r}")
    for name in _TEXT_FIELDS:
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise ValueError(f"field {name!r} must be a string")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ValueError("field 'annotations' must be an object of strings")
    row: dict[str, Any] = dict.fromkeys(DOCUMENT_SCHEMA.names)
    row.update({k: obj.get(k) for k in _TEXT_FIELDS})
    row.update(
        id=str(obj["id"]),
        text=obj.get("text") or "",
        source_type=source,
        origin=obj.get("origin") or str(obj["id"]),
        annotations={str(k): str(v) for k, v in annotations.items()},
    )
    return row


def row_answer(obj: dict[str, Any], rule: Rule) -> dict[str, Any]:
    """{"kept", "reason"} plus every column the rule changed (raw HTML is never echoed back)."""
    row = to_row(obj)
    out, reason = rule(dict(row))
    changed = {k: v for k, v in out.items() if k != "raw_content" and v != row.get(k)}
    return {"kept": reason is None, "reason": reason, **changed}
