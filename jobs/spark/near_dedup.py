"""Spark mapping of the near-dedup keeper choice and report (rules in jobs/dedup/near.py).

`near.keeper_key` is computed per clustered document with `mapInArrow`; the keeper of a cluster is
the member with the smallest key, a min aggregate over the key as a struct (Spark orders structs
field by field, as Python orders the flat, null-free `KeeperKey`). Only clustered documents are
ranked, and only (cluster, key) rows are aggregated; the (id, cluster, keeper) labels are then
joined back to all documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.dedup import near

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_KEY_INPUT = ("id", "license", "text", "fetched_at", "annotations")
_KEYS = pa.schema(  # the cluster, then the fields of near.KeeperKey
    [
        ("_cluster", pa.string()),
        ("licence", pa.int32()),
        ("score_rank", pa.int32()),
        ("neg_score", pa.float64()),
        ("length_rank", pa.int32()),
        ("neg_length", pa.int64()),
        ("fetched_rank", pa.int32()),
        ("fetched_us", pa.int64()),
        ("id", pa.string()),
    ]
)


def _key_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (cluster, document columns) -> (cluster, *keeper_key)."""
    for batch in batches:
        out = []
        for row in batch.to_pylist():
            if isinstance(row["annotations"], list):  # Arrow hands maps over as (key, value) pairs
                row["annotations"] = dict(row["annotations"])
            out.append({"_cluster": row["_cluster"], **near.keeper_key(row)._asdict()})
        yield pa.RecordBatch.from_pylist(out, schema=_KEYS)


def keepers(docs: DataFrame, components: DataFrame) -> DataFrame:
    """(id, _cluster, _keeper) for every clustered document: its cluster's `near.choose_keeper`."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    comps = components.select("id", F.col("component").alias("_cluster"))
    members = docs.select(*_KEY_INPUT).join(comps, "id")
    keys = members.mapInArrow(_key_batches, from_arrow_schema(_KEYS))
    best = F.min(F.struct(*near.KeeperKey._fields)).getField("id").alias("_keeper")
    return comps.join(keys.groupBy("_cluster").agg(best), "_cluster").select("id", "_cluster", "_keeper")


def mark_near_duplicates(docs: DataFrame, components: DataFrame) -> DataFrame:
    """REJECTED_SCHEMA columns: every non-keeper member of a cluster gets `minhash_duplicate`."""
    from pyspark.sql import functions as F

    joined = docs.join(keepers(docs, components), on="id", how="left")
    clustered = F.col("_cluster").isNotNull()
    dup = clustered & (F.col("id") != F.col("_keeper"))
    extra = F.create_map(
        F.lit(near.CLUSTER_ANNOTATION), F.col("_cluster"), F.lit(near.KEEPER_ANNOTATION), F.col("_keeper")
    )
    annotations = F.when(clustered, F.map_concat("annotations", extra)).otherwise(F.col("annotations"))
    return (
        joined.withColumn("reject_stage", F.when(dup, F.lit("near_dedup")))
        .withColumn("reject_reason", F.when(dup, F.lit(near.REASON)))
        .withColumn("annotations", annotations)
        .drop("_cluster", "_keeper")
    )


def report(marked: DataFrame, out: Path, samples: int = 5) -> dict[str, Any]:
    """Duplicate rate per source, cluster-size histogram (+ PNG chart), sample clusters: Spark
    aggregates, `near.build_report` does the rest on the small collected results."""
    from pyspark.sql import functions as F

    cluster = F.col("annotations").getItem(near.CLUSTER_ANNOTATION)
    per_source = marked.groupBy("source_type").agg(
        F.count("*").alias("docs"), F.sum(F.col("reject_reason").isNotNull().cast("int")).alias("dups")
    )
    sizes = marked.filter(cluster.isNotNull()).groupBy(cluster.alias("c")).count()
    histogram = sizes.groupBy("count").agg(F.count("*").alias("n")).collect()
    top = [r["c"] for r in sizes.orderBy(F.desc("count"), "c").limit(samples).collect()]
    members = (
        marked.filter(cluster.isin(top))
        .select(
            cluster.alias("c"),
            "id",
            "source_type",
            "reject_reason",
            F.substring("text", 1, 160).alias("head"),
        )
        .orderBy("c", "id")
        .collect()
    )
    sample = {c: [m.asDict() for m in members if m["c"] == c] for c in top}
    return near.build_report(
        [(r["source_type"], r["docs"], r["dups"]) for r in per_source.collect()],
        [(r["count"], r["n"]) for r in histogram],
        sample,
        out,
    )
