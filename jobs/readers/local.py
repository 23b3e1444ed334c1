"""Ingest: every configured local source through its connector (jobs/readers/connectors/), in a fixed order.

The connectors turn bad input into reject rows; what raises here is a configuration mistake (a
folder that does not exist), reported with the field's name before anything is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.config import SourcesConfig
from jobs.readers.connectors import Ingested, read_text
from jobs.readers.connectors.books import iter_books
from jobs.readers.connectors.code import iter_code
from jobs.readers.connectors.papers import iter_papers
from jobs.readers.connectors.social import iter_social
from jobs.readers.connectors.synthetic import iter_synthetic

__all__ = [
    "Ingested",
    "iter_books",
    "iter_code",
    "iter_papers",
    "iter_social",
    "iter_sources",
    "iter_synthetic",
    "read_text",
    "source_paths",
]


def source_paths(cfg: SourcesConfig) -> dict[str, list[Path]]:
    """The configured, included source locations by config field; raises on a missing one."""
    wanted = {
        "books_dir": ("books", [cfg.books_dir] if cfg.books_dir else [], Path.is_dir),
        "code_dir": ("code", [cfg.code_dir] if cfg.code_dir else [], Path.is_dir),
        "papers_dir": ("papers", [cfg.papers_dir] if cfg.papers_dir else [], Path.is_dir),
        "social_paths": ("social", cfg.social_paths, Path.exists),
    }
    out: dict[str, list[Path]] = {}
    for field, (kind, values, exists) in wanted.items():
        if kind not in cfg.include or not values:
            continue
        for value in values:
            if not exists(Path(value)):
                raise FileNotFoundError(f"config field 'sources.{field}': {value!r} does not exist")
        out[field] = [Path(v) for v in values]
    return out


def iter_sources(cfg: SourcesConfig) -> Iterator[Ingested]:
    """(document, reject reason or None) for every included source: books, code, papers, social,
    synthetic; `cfg` also carries the parser bounds (archive members, lines, JSON depth, CSV fields)."""
    paths, cap = source_paths(cfg), cfg.max_file_bytes
    for root in paths.get("books_dir", []):
        yield from iter_books(root, cap, cfg)
    for root in paths.get("code_dir", []):
        yield from iter_code(root, cfg.code_license or None, cap)
    for root in paths.get("papers_dir", []):
        yield from iter_papers(root, cap, cfg)
    for dump in paths.get("social_paths", []):
        yield from iter_social(dump, cfg.social_fields, cfg.social_format, cap, cfg)
    if "synthetic" in cfg.include and cfg.synthetic_count:
        yield from iter_synthetic(cfg.synthetic_count, cfg.synthetic_seed)
