"""Connected components: the clustering step of near-duplicate detection (candidate pairs -> clusters).

Distributed: the Alternating algorithm of Large-Star and Small-Star star contractions. Source:
Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii (2014), "Connected Components in MapReduce and
Beyond", SoCC (the Alternating algorithm). Each operation keeps connectivity and moves every node's
edges towards smaller ids; the fixed point is one star per component centred on its minimum id.
The paper proves O(log^2 n) rounds and observes about log n; measured here: 10 rounds on a
3,000-node path, 13 on a 100,000-node path, where plain min-label propagation needs n rounds.
GraphFrames' connected components uses the same algorithm; this one is plain DataFrame operations
(no Maven package needed). Skew: a hub's edges meet in one task (Spark's skew-join handling does
not split windows); acceptable for dedup clusters, where hubs are clusters of copies.

Labels are the minimum node id of each component, so they do not depend on partitioning, run or
engine, and equal the plain `union_find` (jobs/dedup/components.py) on the same pairs. Ids compare
as strings (lexicographic order).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def _canonical(edges: DataFrame) -> DataFrame:
    """Undirected edges as (src > dst) without self-loops, nulls or duplicates."""
    from pyspark.sql import functions as F

    pairs = edges.select(F.col("src").cast("string"), F.col("dst").cast("string")).dropna()
    return (
        pairs.where(F.col("src") != F.col("dst"))
        .select(F.greatest("src", "dst").alias("src"), F.least("src", "dst").alias("dst"))
        .distinct()
    )


def large_star(edges: DataFrame) -> DataFrame:
    """Connect each larger neighbour v of u to m(u), the minimum of u's closed neighbourhood."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.union(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
    with_m = both.withColumn("m", F.least(F.min("dst").over(Window.partitionBy("src")), F.col("src")))
    return with_m.where(F.col("dst") > F.col("src")).select(
        F.col("dst").alias("src"), F.col("m").alias("dst")
    )


def small_star(edges: DataFrame) -> DataFrame:
    """Connect u and each smaller neighbour of u to the minimum of those (edges are src > dst)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    with_m = edges.withColumn("m", F.min("dst").over(Window.partitionBy("src")))
    pairs = F.array(F.struct(F.col("dst").alias("src"), "m"), F.struct("src", "m"))
    out = with_m.select(F.explode(pairs).alias("e")).select("e.src", F.col("e.m").alias("dst"))
    return out.where(F.col("src") != F.col("dst")).distinct()


def star_violations(edges: DataFrame) -> int:
    """Nodes breaking "one star per component, centred on its minimum" (0 means done).

    This certifies the result itself, and stops one round earlier than waiting for a round that
    changes no edge (which would also need a join against the previous round's edges).

    Every node must be a centre (no smaller neighbour) or a leaf (exactly one neighbour, smaller):
    then each leaf hangs off a centre, and each centre is the minimum of its star.
    """
    from pyspark.sql import functions as F

    ends = edges.select(F.col("src").alias("id"), F.lit(1).alias("smaller"), F.lit(0).alias("larger")).union(
        edges.select(F.col("dst").alias("id"), F.lit(0), F.lit(1))
    )
    per_node = ends.groupBy("id").agg(F.sum("smaller").alias("smaller"), F.max("larger").alias("larger"))
    return per_node.where((F.col("smaller") > 1) | ((F.col("smaller") == 1) & (F.col("larger") == 1))).count()


def _cut_lineage(df: DataFrame, durable: bool) -> DataFrame:
    """Materialize `df` with a one-step plan: in executor storage, or in the checkpoint dir if durable."""
    if not durable:
        return df.localCheckpoint(eager=True)
    cached = df.persist()  # a reliable checkpoint would otherwise compute `df` twice
    out = cached.checkpoint(eager=True)
    cached.unpersist()
    return out


def contract_to_stars(
    spark: SparkSession, edges: DataFrame, max_iterations: int = 100, checkpoint_dir: str | None = None
) -> tuple[DataFrame, int]:
    """Alternate Large-Star and Small-Star until the graph is stars: edges (node, component minimum), rounds.

    Every round is materialized anyway (the convergence count reads it), so cutting the lineage each
    round costs nothing extra and keeps the plan one step deep on long chains.
    """
    if checkpoint_dir:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    current, rounds = _cut_lineage(_canonical(edges), bool(checkpoint_dir)), 0
    while (bad := star_violations(current)) > 0:
        log.info("connected components: %d nodes not in a star after %d rounds", bad, rounds)
        if rounds == max_iterations:
            raise RuntimeError(f"connected components did not converge in {max_iterations} rounds")
        rounds += 1
        current = _cut_lineage(small_star(large_star(current)), bool(checkpoint_dir))
    log.info("connected components: converged after %d rounds", rounds)
    return current, rounds


def connected_components_with_rounds(
    spark: SparkSession, edges: DataFrame, max_iterations: int = 100, checkpoint_dir: str | None = None
) -> tuple[DataFrame, int]:
    """`connected_components` and the number of Large-Star + Small-Star rounds it took."""
    from pyspark.sql import functions as F

    stars, rounds = contract_to_stars(spark, edges, max_iterations, checkpoint_dir)
    pairs = edges.select(F.col("src").cast("string"), F.col("dst").cast("string")).dropna()
    nodes = pairs.select(F.col("src").alias("id")).union(pairs.select("dst")).distinct()
    labels = stars.select(F.col("src").alias("id"), F.col("dst").alias("component"))
    result = nodes.join(labels, "id", "left").select("id", F.coalesce("component", "id").alias("component"))
    return result, rounds


def connected_components(
    spark: SparkSession, edges: DataFrame, max_iterations: int = 100, checkpoint_dir: str | None = None
) -> DataFrame:
    """(id, component) for every node in `edges` (src, dst); component = the component's minimum id.

    Self-loops, duplicate and reversed pairs are fine; rows with a null end are ignored. Raises
    RuntimeError when `max_iterations` rounds do not reach the fixed point.
    """
    return connected_components_with_rounds(spark, edges, max_iterations, checkpoint_dir)[0]
