"""The copyright stage on Spark: the protected-works index built in Spark, archived robots.txt
joined to the documents of their origin, the per-document screen (jobs/copyright/screen.py) mapped
over the quality stage's documents, and the audit trail written beside the kept and rejected rows.

Index: every protected file's word n-gram hashes computed in parallel (one task per file), made
distinct and sorted by Spark, collected as one sorted uint64 array (8 bytes per distinct n-gram plus
4 for its work: 1 GB of text is about 180 M n-grams, 2 GB) and shipped to the tasks with the screen.
Robots: the warc stage keeps each archived robots.txt response as a `warc_robots_txt` reject; the
latest per origin is joined to the documents of that origin (scheme://host[:port], RFC 9309 2.3)
as two transient annotations the screen reads and removes, so no table of every host is collected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from core.registry import STAGES
from jobs.copyright.optout import ROBOTS_REJECT
from jobs.copyright.overlap import OverlapIndex, index_from_parts, registry_works, work_hashes
from jobs.copyright.screen import ROBOTS_STATUS, ROBOTS_TXT, load_screen
from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

AUDIT_KEYS = (
    "copyright.decision", "copyright.rule", "copyright.class", "copyright.license_rule",
    "copyright.evidence", "copyright.optout_evidence", "copyright.overlap_fraction",
)  # fmt: skip


def run_copyright(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.copyright
    index, index_stats = None, dict[str, Any]()
    if cfg.protected_works_path:
        index, index_stats = build_protected_index(ctx.spark, cfg.protected_works_path, cfg.overlap_ngram)
    df = with_archived_robots(ctx, docs(ctx, STAGES["copyright"].inputs[0]))
    screen = load_screen(cfg, user_agent=ctx.cfg.crawl.user_agent, index=index)
    stats = write_split(map_rows(df, screen, "copyright"), ctx)
    return {**stats, **write_audit(ctx), "protected_index": index_stats}


def build_protected_index(spark: SparkSession, folder: str, n: int) -> tuple[OverlapIndex, dict[str, Any]]:
    """The sorted fingerprint table of every `.txt` under `folder`: each file hashed in a Spark task
    (the costly part: normalising and hashing every word), the sorted arrays merged on the driver."""
    start = time.perf_counter()
    works = list(registry_works(folder))
    names = tuple(name for name, _ in works)
    size = sum(len(text.encode()) for _, text in works)
    rdd = spark.sparkContext.parallelize([text for _, text in works], max(1, min(len(works), 256)))
    parts = rdd.map(lambda text: work_hashes(text, n).tobytes()).collect()
    index = index_from_parts([np.frombuffer(p, dtype=np.uint64) for p in parts], names, n)
    seconds = time.perf_counter() - start
    return index, {
        "works": len(names), "bytes": size, "ngrams": int(index.hashes.size), "ngram": n,
        "build_s": round(seconds, 3),
    }  # fmt: skip


def with_archived_robots(ctx: StageContext, df: DataFrame) -> DataFrame:
    """Documents with their origin's archived robots.txt (status and body) as transient annotations."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rejected = ctx.inputs.get("warc")
    if rejected is None or not (rejected / "rejected").exists():
        return df
    robots = ctx.spark.read.parquet(str(rejected / "rejected"))
    robots = robots.filter(F.col("reject_reason") == ROBOTS_REJECT)
    origin = F.regexp_extract(F.col("origin"), r"^([A-Za-z][A-Za-z0-9+.-]*://[^/?#]+)", 1)
    latest = Window.partitionBy("_origin").orderBy(F.col("fetched_at").desc_nulls_last(), F.col("id"))
    robots = (
        robots.select(
            origin.alias("_origin"), "fetched_at", "id",
            F.coalesce(F.col("annotations").getItem("warc.http_status"), F.lit("200")).alias("_status"),
            F.col("text").alias("_robots"),
        )
        .withColumn("_n", F.row_number().over(latest))
        .filter("_n = 1")
        .select("_origin", "_status", "_robots")
    )  # fmt: skip
    joined = df.withColumn("_origin", F.lower(origin)).join(
        robots.withColumn("_origin", F.lower("_origin")), "_origin", "left"
    )
    extra = F.map_from_arrays(F.array(F.lit(ROBOTS_STATUS), F.lit(ROBOTS_TXT)), F.array("_status", "_robots"))
    annotations = F.when(F.col("_robots").isNull(), F.col("annotations")).otherwise(
        F.map_concat(F.col("annotations"), extra)
    )
    return joined.withColumn("annotations", annotations).drop("_origin", "_status", "_robots")


def write_audit(ctx: StageContext) -> dict[str, Any]:
    """One decision row per document (audit/) and the counts the run summary shows."""
    from pyspark.sql import functions as F

    frames = [ctx.spark.read.parquet(str(ctx.out / part)) for part in ("data", "rejected")]
    kept, rejected = frames
    rows = kept.select("*", F.lit(None).cast("string").alias("reject_reason")).unionByName(
        rejected.drop("reject_stage")
    )
    ann = F.col("annotations")
    audit = rows.select(
        "id", "source_type", "origin", "license", "license_source", "reject_reason",
        *[ann.getItem(k).alias(k.split(".", 1)[1]) for k in AUDIT_KEYS],
    )  # fmt: skip
    audit.repartition(ctx.cfg.spark.shuffle_partitions, "id").sortWithinPartitions("id").write.mode(
        "overwrite"
    ).parquet(str(ctx.out / "audit"))
    counts = audit.groupBy("source_type", "class", "decision").count().collect()
    flags = rows.groupBy(ann.getItem("copyright.flag").alias("flag")).count().collect()
    optouts = audit.filter(F.col("rule").startswith("optout") | F.col("rule").startswith("blocklist"))
    hits = audit.filter(F.col("overlap_fraction").isNotNull()).count()
    decisions: dict[str, dict[str, dict[str, int]]] = {}
    by_class: dict[str, dict[str, int]] = {}
    for r in sorted(counts, key=lambda r: (r["source_type"], r["class"] or "", r["decision"] or "")):
        cls, decision = r["class"] or "unknown", r["decision"] or "keep"
        decisions.setdefault(r["source_type"], {}).setdefault(cls, {})[decision] = r["count"]
        by_class.setdefault(cls, {})
        by_class[cls][decision] = by_class[cls].get(decision, 0) + r["count"]
    return {
        "decisions": decisions,
        "by_class": by_class,
        "flags": {r["flag"]: r["count"] for r in flags if r["flag"]},
        "optouts": {r["rule"]: r["count"] for r in optouts.groupBy("rule").count().collect()},
        "overlap_hits": hits,
    }
