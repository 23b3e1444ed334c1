"""The curation stages: each reads committed inputs and writes files into `ctx.out`.

A stage function returns its counters; the runner fingerprints, skips, commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.config import PipelineConfig
from core.datasets import Manifest
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from jobs.dedup import exact as dedup_exact
from jobs.extract import html as extract
from jobs.filters import quality
from jobs.spark.arrow_map import map_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class StageContext:
    spark: SparkSession
    cfg: PipelineConfig
    inputs: dict[str, Path]  # committed input stage -> local directory
    manifests: dict[str, Manifest]
    out: Path


def _write_split(df: DataFrame, ctx: StageContext) -> dict[str, Any]:
    """Kept rows to data/, rejected rows (with reason) to rejected/; deterministic order."""
    from pyspark.sql import functions as F

    df = df.repartition(ctx.cfg.spark.shuffle_partitions, "id").sortWithinPartitions("id").cache()
    kept = df.filter(F.col("reject_reason").isNull()).drop("reject_stage", "reject_reason")
    kept.write.mode("overwrite").parquet(str(ctx.out / "data"))
    df.filter(F.col("reject_reason").isNotNull()).write.mode("overwrite").parquet(str(ctx.out / "rejected"))
    reasons = (
        df.filter(F.col("reject_reason").isNotNull())
        .select(F.split("reject_reason", ":").getItem(0).alias("rule"))
        .groupBy("rule")
        .count()
        .collect()
    )
    df.unpersist()
    return {"rejected_by_reason": {r["rule"]: r["count"] for r in sorted(reasons)}}


def _docs(ctx: StageContext, stage: str) -> DataFrame:
    return ctx.spark.read.parquet(str(ctx.inputs[stage] / "data"))


def run_crawl(ctx: StageContext) -> dict[str, Any]:
    from jobs.crawl.crawler import crawl

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
            if len(batches[part]) >= 2000:
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

    return ingest_warcs(ctx.spark, ctx.cfg.warc.paths, ctx.out, ctx.cfg.warc.source_label)


def run_extract(ctx: StageContext) -> dict[str, Any]:
    df = _docs(ctx, "crawl").unionByName(_docs(ctx, "ingest")).unionByName(_docs(ctx, "warc"))
    return _write_split(map_rows(df, extract.extract_row_with(ctx.cfg.extract), "extract"), ctx)


def run_dedup(ctx: StageContext) -> dict[str, Any]:
    """Exact duplicates (text, then canonical URL); then, when `dedup.repeated_lines` is on, lines
    repeated across the documents left (jobs/dedup/lines.py)."""
    hashed = map_rows(_docs(ctx, "extract"), dedup_exact.annotate_hash, "dedup")
    marked = dedup_exact.mark_duplicates(hashed)
    if not ctx.cfg.dedup.repeated_lines:
        return _write_split(marked, ctx)
    from jobs.dedup import lines as line_dedup

    marked = marked.persist()  # read twice (lines, then texts): hash and rank the documents once
    stats = _write_split(line_dedup.remove_repeated_lines(marked, ctx.cfg.dedup), ctx)
    marked.unpersist()
    kept = ctx.spark.read.parquet(str(ctx.out / "data"))
    return {**stats, "repeated_lines": line_dedup.summary(kept)}


def run_quality(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.quality
    return _write_split(map_rows(_docs(ctx, "dedup"), lambda r: quality.assess(r, cfg), "quality"), ctx)


def run_near_dedup(ctx: StageContext) -> dict[str, Any]:
    """MinHash LSH edges -> connected components -> one keeper per cluster; report from the output."""
    import time

    from pyspark.sql import functions as F

    from jobs.spark.components import connected_components_with_rounds
    from jobs.spark.minhash import near_duplicate_edges
    from jobs.dedup.near import mark_near_duplicates, report

    docs = _docs(ctx, "quality")
    start = time.monotonic()
    edges, stats = near_duplicate_edges(docs.select("id", "text"), ctx.cfg.minhash)
    stats["seconds_signatures_lsh_verify"] = round(time.monotonic() - start, 3)
    start = time.monotonic()
    pairs = edges.select(F.col("a").alias("src"), F.col("b").alias("dst"))
    comps, rounds = connected_components_with_rounds(ctx.spark, pairs)
    comps = comps.cache()
    stats.update(components_rounds=rounds, clustered_documents=comps.count(),
                 clusters=comps.select("component").distinct().count())  # fmt: skip
    stats["seconds_components"] = round(time.monotonic() - start, 3)
    stats.update(_write_split(mark_near_duplicates(docs, comps), ctx))
    comps.unpersist()
    edges.unpersist()
    kept = ctx.spark.read.parquet(str(ctx.out / "data")).withColumn(
        "reject_reason", F.lit(None).cast("string")
    )
    rejected = ctx.spark.read.parquet(str(ctx.out / "rejected")).drop("reject_stage")
    stats["report"] = report(kept.unionByName(rejected), ctx.out)
    return stats


def run_tokenizer(ctx: StageContext) -> dict[str, Any]:
    from jobs.tokens.tokenizer import train_tokenizer

    cfg = ctx.cfg.tokenizer
    df = _docs(ctx, "near_dedup").select("id", "text").orderBy("id").limit(cfg.max_training_docs)
    texts = (row["text"] for row in df.toLocalIterator())
    return train_tokenizer(texts, cfg, ctx.out / "tokenizer.json")


def run_shards(ctx: StageContext) -> dict[str, Any]:
    from jobs.tokens.shards import write_partition

    tokenizer = str(ctx.inputs["tokenizer"] / "tokenizer.json")
    out, val = str(ctx.out), ctx.cfg.shards.val_fraction
    df = _docs(ctx, "near_dedup").select("id", "text").repartition(ctx.cfg.spark.shuffle_partitions, "id")
    summary = (
        df.sortWithinPartitions("id")
        .rdd.mapPartitionsWithIndex(lambda i, rows: write_partition(i, rows, tokenizer, out, val))
        .collect()
    )
    meta = ctx.manifests["tokenizer"].stats
    info = {
        "vocab_size": meta["vocab_size"],
        "eos_id": meta["eos_id"],
        "pad_id": meta["pad_id"],
        "mask_id": meta["mask_id"],
        "sentinel_ids": meta["sentinel_ids"],
        "dtype": "uint16",
        "train_files": sorted(s["file"] for s in summary if s["split"] == "train"),
        "val_files": sorted(s["file"] for s in summary if s["split"] == "val"),
    }
    for split in ("train", "val"):
        info[f"{split}_tokens"] = sum(s["tokens"] for s in summary if s["split"] == split)
        info[f"{split}_documents"] = sum(s["documents"] for s in summary if s["split"] == split)
    (ctx.out / "meta.json").write_text(json.dumps(info, indent=1))
    (ctx.out / "tokenizer.json").write_bytes((ctx.inputs["tokenizer"] / "tokenizer.json").read_bytes())
    return info


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    config_sections: tuple[str, ...]  # the parts of the config that change this stage's output
    run: Any
    # Facts outside the config that change the output (e.g. the files in a source folder).
    external: Any = None


def source_listing(cfg: PipelineConfig) -> dict[str, str]:
    """A digest of every source path's file names, sizes and mtimes: edits re-run ingest."""
    import hashlib

    from jobs.readers.local import source_paths

    out = {}
    for field, roots in source_paths(cfg.sources).items():
        h = hashlib.sha256()
        for root in roots:
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
            for p in files:
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        out[field] = h.hexdigest()
    return out


def warc_listing(cfg: PipelineConfig) -> dict[str, list[list[Any]]]:
    """Sizes and mtimes of the WARC files: a replaced file re-runs the stage."""
    from jobs.spark.warc import expand_paths

    files = [Path(f) for f in expand_paths(cfg.warc.paths)]
    return {"files": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]}


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("crawl", (), ("crawl",), run_crawl),
        Stage("ingest", (), ("sources",), run_ingest, source_listing),
        Stage("warc", (), ("warc",), run_warc, warc_listing),
        Stage("extract", ("crawl", "ingest", "warc"), ("extract",), run_extract),
        Stage("dedup", ("extract",), ("dedup",), run_dedup),
        Stage("quality", ("dedup",), ("quality",), run_quality),
        Stage("near_dedup", ("quality",), ("minhash",), run_near_dedup),
        Stage("tokenizer", ("near_dedup",), ("tokenizer",), run_tokenizer),
        Stage("shards", ("near_dedup", "tokenizer"), ("shards",), run_shards),
    )
}
