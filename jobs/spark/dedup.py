"""Adapters of the dedup stages: exact (and repeated lines), and MinHash near-duplicates. The
decisions are plain rules in jobs/dedup/; the jobs/spark/*dedup*.py modules map them."""

from __future__ import annotations

import time
from typing import Any

from core.registry import STAGES
from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split


def run_dedup(ctx: StageContext) -> dict[str, Any]:
    """Exact duplicates (text, then canonical URL); then, when `dedup.repeated_lines` is on, lines
    repeated across the documents left (jobs/dedup/lines.py, mapped by jobs/spark/line_dedup.py)."""
    from jobs.dedup.exact import annotate_hash
    from jobs.spark.dedup_exact import mark_duplicates

    marked = mark_duplicates(map_rows(docs(ctx, "extract"), annotate_hash, "dedup"))
    if not ctx.cfg.dedup.repeated_lines:
        return write_split(marked, ctx)
    from jobs.spark import line_dedup

    marked = marked.persist()  # read twice (lines, then texts): hash and rank the documents once
    stats = write_split(line_dedup.remove_repeated_lines(marked, ctx.cfg.dedup), ctx)
    marked.unpersist()
    kept = ctx.spark.read.parquet(str(ctx.out / "data"))
    return {**stats, "repeated_lines": line_dedup.summary(kept)}


def run_near_dedup(ctx: StageContext) -> dict[str, Any]:
    """MinHash LSH edges -> connected components -> one keeper per cluster; report from the output."""
    from pyspark.sql import functions as F

    from jobs.spark.components import connected_components_with_rounds
    from jobs.spark.minhash import near_duplicate_edges
    from jobs.spark.near_dedup import mark_near_duplicates, report

    source = docs(ctx, STAGES["near_dedup"].inputs[0])  # the registry says what it reads
    start = time.monotonic()
    edges, stats = near_duplicate_edges(source.select("id", "text"), ctx.cfg.minhash)
    stats["seconds_signatures_lsh_verify"] = round(time.monotonic() - start, 3)
    start = time.monotonic()
    pairs = edges.select(F.col("a").alias("src"), F.col("b").alias("dst"))
    comps, rounds = connected_components_with_rounds(ctx.spark, pairs)
    comps = comps.cache()
    stats.update(components_rounds=rounds, clustered_documents=comps.count(),
                 clusters=comps.select("component").distinct().count())  # fmt: skip
    stats["seconds_components"] = round(time.monotonic() - start, 3)
    stats.update(write_split(mark_near_duplicates(source, comps), ctx))
    comps.unpersist()
    edges.unpersist()
    kept = ctx.spark.read.parquet(str(ctx.out / "data")).withColumn(
        "reject_reason", F.lit(None).cast("string")
    )
    rejected = ctx.spark.read.parquet(str(ctx.out / "rejected")).drop("reject_stage")
    stats["report"] = report(kept.unionByName(rejected), ctx.out)
    return stats
