"""Local file sources (books/long prose and code trees) into the document schema.

Thin connectors for the foundation; later issues add EPUB, git, papers, social and synthetic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.schema import make_document

# Extensions we read as code; the language name goes into annotations.
CODE_LANGUAGES = {".py": "python", ".c": "c", ".h": "c", ".js": "javascript", ".rs": "rust", ".go": "go"}


Ingested = tuple[dict[str, Any], str | None]  # (document, reject reason or None)


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding). UTF-8 first, then a lossless latin-1 fallback that is recorded;
    ("", "binary") for files with NUL bytes, which no text encoding produces."""
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        return "", "binary"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _reason(text: str, enc: str) -> str | None:
    if enc == "binary":
        return "ingest_binary_file"
    return None if text.strip() else "ingest_empty_file"


def iter_books(root: Path) -> Iterator[Ingested]:
    sources: dict[str, dict[str, Any]] = {}
    if (root / "_sources.json").exists():
        sources = json.loads((root / "_sources.json").read_text())
    for path in sorted(root.rglob("*.txt")):
        meta = sources.get(path.name, {})
        text, enc = read_text(path)
        doc = make_document(
            "book",
            meta.get("origin") or str(path),
            text,
            domain=root.name,
            license=meta.get("license"),
            license_source="_sources.json" if meta.get("license") else None,
            content_type="text/plain",
            created_at=_mtime(path),
            annotations={"ingest.encoding": enc},
        )
        yield doc, _reason(text, enc)


def find_license(root: Path) -> str | None:
    for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING"):
        if (root / name).is_file():
            return name
    return None


def iter_code(root: Path, license_id: str) -> Iterator[Ingested]:
    """One document per source file; the tree's license file is recorded as the license source."""
    license_file = find_license(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            path = Path(dirpath, name)
            lang = CODE_LANGUAGES.get(path.suffix)
            if lang is None:
                continue
            text, enc = read_text(path)
            rel = path.relative_to(root).as_posix()
            doc = make_document(
                "code",
                f"{root.name}/{rel}",
                text,
                domain=root.name,
                license=license_id,
                license_source=license_file,
                content_type="text/x-source",
                created_at=_mtime(path),
                annotations={"ingest.encoding": enc, "code.path": rel, "code.language": lang},
            )
            yield doc, _reason(text, enc)
