"""Near-duplicate removal: MinHash LSH candidates, verified edges, connected components, and one
deterministic keeper per cluster.

Keeper priority (first wins): the most permissive known licence, then a higher quality score
(`quality.score`, when a scoring stage provides one), then the longer text, then the earliest
fetch, then the smallest id. Permissive licences first follows the licence-aware selection of
The Stack (Kocetkov et al. 2022, section 3.1): when two copies exist, keep the one we may use most
freely. Removed documents keep their cluster id and keeper id.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PERMISSIVE = (
    "MIT",
    "BSD",
    "APACHE",
    "PSF",
    "CC0",
    "UNLICENSE",
    "ISC",
    "ZLIB",
    "PUBLIC-DOMAIN",
    "CC-BY-4",
    "CC-BY-3",
    "CC-BY-2",
)
WEAK_COPYLEFT = ("LGPL", "MPL", "EPL", "CC-BY-SA")
STRONG_COPYLEFT = ("GPL", "AGPL")


def license_rank(license_id: str | None) -> int:
    """0 permissive, 1 weak copyleft, 2 strong copyleft, 3 other known, 4 unknown."""
    if not license_id:
        return 4
    lid = license_id.upper()
    if lid.startswith(("CC-BY-NC", "CC-BY-ND")):
        return 3
    for rank, prefixes in enumerate((PERMISSIVE, WEAK_COPYLEFT, STRONG_COPYLEFT)):
        if any(lid.startswith(p) or f"REF-{p}" in lid for p in prefixes):
            return rank
    return 3


def keeper_order() -> list[Column]:
    """The priority above as Spark sort columns (ascending = preferred first)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType

    rank = F.udf(lambda v: license_rank(v), IntegerType())
    score = F.col("annotations").getItem("quality.score").cast("double")
    return [
        rank("license").asc(),
        score.desc_nulls_last(),
        F.length("text").desc(),
        F.col("fetched_at").asc_nulls_last(),
        F.col("id").asc(),
    ]


def mark_near_duplicates(docs: DataFrame, components: DataFrame) -> DataFrame:
    """REJECTED_SCHEMA columns: every non-keeper member of a cluster gets `minhash_duplicate`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    joined = docs.join(components.withColumnRenamed("component", "_cluster"), on="id", how="left")
    w = Window.partitionBy("_cluster").orderBy(*keeper_order())
    ranked = joined.withColumn("_keeper", F.first("id").over(w)).withColumn(
        "_dup", F.col("_cluster").isNotNull() & (F.col("id") != F.col("_keeper"))
    )
    extra = F.create_map(
        F.lit("dedup.cluster_id"), F.col("_cluster"), F.lit("dedup.keeper_id"), F.col("_keeper")
    )
    return (
        ranked.withColumn("reject_stage", F.when(F.col("_dup"), F.lit("near_dedup")))
        .withColumn("reject_reason", F.when(F.col("_dup"), F.lit("minhash_duplicate")))
        .withColumn(
            "annotations",
            F.when(F.col("_cluster").isNotNull(), F.map_concat("annotations", extra)).otherwise(
                F.col("annotations")
            ),
        )
        .drop("_cluster", "_keeper", "_dup")
    )


def report(marked: DataFrame, out: Path, samples: int = 5) -> dict[str, Any]:
    """Duplicate rate per source, cluster-size histogram (+ PNG chart), sample clusters."""
    from pyspark.sql import functions as F

    cluster = F.col("annotations").getItem("dedup.cluster_id")
    per_source = marked.groupBy("source_type").agg(
        F.count("*").alias("docs"), F.sum(F.col("reject_reason").isNotNull().cast("int")).alias("dups")
    )
    rates = {r["source_type"]: round(r["dups"] / r["docs"], 4) for r in per_source.collect()}
    sizes = marked.filter(cluster.isNotNull()).groupBy(cluster.alias("c")).count()
    histogram = {
        int(r["count"]): int(r["n"]) for r in sizes.groupBy("count").agg(F.count("*").alias("n")).collect()
    }
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
    sample = {c: [m.asDict() for m in members if m["c"] == c][:4] for c in top}
    chart = out / "report" / "cluster_sizes.png"
    plot_histogram(dict(sorted(histogram.items())), chart)
    return {
        "duplicate_rate_by_source": dict(sorted(rates.items())),
        "cluster_size_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "sample_clusters": sample,
        "chart": "report/cluster_sizes.png",
    }


def plot_histogram(histogram: dict[int, int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([str(k) for k in histogram], list(histogram.values()), color="#4c72b0")
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    ax.set_title("Near-duplicate clusters")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    path.write_bytes(buf.getvalue())
