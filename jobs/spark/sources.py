"""Adapters of the source stages: crawl, local ingest and WARC files, each writing documents."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.config import PipelineConfig
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from jobs.spark.frame import StageContext

INGEST_BATCH_ROWS = 2000


def run_crawl(ctx: StageContext) -> dict[str, Any]:
    from jobs.spark.crawl import crawl

    return crawl(ctx.spark, ctx.cfg.crawl, ctx.out)


def run_ingest(ctx: StageContext) -> dict[str, Any]:
    """Reads every configured local source on the driver (they are files beside it) through its
    connector, streaming rows to Parquet in batches; rejects go to rejected/ with their reason."""
    from jobs.readers.local import iter_sources

    schemas = {"data": DOCUMENT_SCHEMA, "rejected": REJECTED_SCHEMA}
    counts: dict[str, dict[str, int]] = {"data": {}, "rejected": {}}
    batches: dict[str, list[dict[str, Any]]] = {"data": [], "rejected": []}
    writers = {}
    for part, schema in schemas.items():
        (ctx.out / part).mkdir(parents=True)
        writers[part] = pq.ParquetWriter(ctx.out / part / "part-00000.parquet", schema)
    try:
        for doc, reason in iter_sources(ctx.cfg.sources):
            part, key = ("rejected", reason.split(":", 1)[0]) if reason else ("data", doc["source_type"])
            row = {**doc, "reject_stage": "ingest", "reject_reason": reason} if reason else doc
            batches[part].append(row)
            counts[part][key] = counts[part].get(key, 0) + 1
            if len(batches[part]) >= INGEST_BATCH_ROWS:
                writers[part].write_table(pa.Table.from_pylist(batches[part], schema=schemas[part]))
                batches[part].clear()
        for part, rows in batches.items():
            if rows:
                writers[part].write_table(pa.Table.from_pylist(rows, schema=schemas[part]))
    finally:
        for writer in writers.values():
            writer.close()
    return {
        "documents_by_source": dict(sorted(counts["data"].items())),
        "rejected_by_reason": dict(sorted(counts["rejected"].items())),
    }


def run_warc(ctx: StageContext) -> dict[str, Any]:
    from jobs.spark.warc import ingest_warcs

    warc = ctx.cfg.warc
    return ingest_warcs(ctx.spark, warc.paths, ctx.out, warc.source_label, warc)


def source_listing(cfg: PipelineConfig) -> dict[str, str]:
    """A digest of every source path's file names, sizes and mtimes: edits re-run ingest."""
    from jobs.readers.local import source_paths

    out = {}
    for name, roots in source_paths(cfg.sources).items():
        h = hashlib.sha256()
        for root in roots:
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
            for p in files:
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out[name] = h.hexdigest()
    return out


def warc_listing(cfg: PipelineConfig) -> dict[str, list[list[Any]]]:
    """Sizes and mtimes of the WARC files: a replaced file re-runs the stage."""
    from jobs.spark.warc import expand_paths

    files = [Path(f) for f in expand_paths(cfg.warc.paths)]
    return {"files": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
