"""Adapters of the per-document stages: each maps a plain rule (`row -> (row, reason)`) over its input.

A new filter needs only this shape: read the input, `map_rows` its rule, `write_split`.
"""

from __future__ import annotations

from typing import Any

from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split


def run_extract(ctx: StageContext) -> dict[str, Any]:
    from jobs.extract.html import extract_row_with

    df = docs(ctx, "crawl").unionByName(docs(ctx, "ingest")).unionByName(docs(ctx, "warc"))
    return write_split(map_rows(df, extract_row_with(ctx.cfg.extract), "extract"), ctx)


def run_quality(ctx: StageContext) -> dict[str, Any]:
    from jobs.filters.quality import assess_with

    return write_split(map_rows(docs(ctx, "dedup"), assess_with(ctx.cfg.quality), "quality"), ctx)
