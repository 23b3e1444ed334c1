"""Thin Spark driver for MinHash LSH (logic in jobs/dedup/minhash.py): signatures and band keys are
computed per partition with `mapInArrow`, buckets and pair verification are Spark shuffles and
joins. Nothing per document is collected to the driver; only counts come back.

A bucket of more than `max_bucket_size` documents is emitted as a star around its smallest id
(n - 1 pairs, not n(n - 1)/2): it keeps the bucket connected for the connected-components step,
but only star pairs that pass verification become edges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from core.config import MinHashConfig
from jobs.dedup import minhash

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ArrowFn = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
_BROADCAST_IDS = 1_000_000  # candidate ids sent to every task instead of shuffling the texts


def _band_rows(cfg: MinHashConfig, bands: int, rows: int) -> ArrowFn:
    """(id, keys): the band keys (key i is band i) of every document with at least one shingle.

    One row per document (Spark explodes the bands), so each id crosses the Arrow boundary once.
    """

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sets = [minhash.shingle_hashes(t or "", cfg) for t in batch.column("text").to_pylist()]
            keep = np.flatnonzero([s.size > 0 for s in sets])
            keys = minhash.band_key_matrix(minhash.signatures([sets[i] for i in keep], cfg), bands, rows)
            offsets = pa.array(np.arange(0, keys.size + 1, bands, dtype=np.int32))
            yield pa.RecordBatch.from_arrays(
                [batch.column("id").take(pa.array(keep)), pa.ListArray.from_arrays(offsets, keys.ravel())],
                ["id", "keys"],
            )

    return run


def _set_rows(cfg: MinHashConfig) -> ArrowFn:
    """(id, values): the shingle set (`exact`) or the signature (`estimate`) as packed uint32
    bytes, a quarter of the shuffle volume of array<long> and no per-element JVM objects."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            sets = [minhash.shingles(t or "", cfg) for t in batch.column("text").to_pylist()]
            values = list(minhash.signatures(sets, cfg)) if cfg.verify == "estimate" else sets
            arr = pa.array([v.tobytes() for v in values], type=pa.binary())
            yield pa.RecordBatch.from_arrays([batch.column("id"), arr], ["id", "values"])

    return run


def _score_rows(cfg: MinHashConfig) -> ArrowFn:
    """(a, b, jaccard) for joined pairs: exact Jaccard of the sorted sets, or equal slots / num_perm."""

    def score(sa: bytes, sb: bytes) -> float:
        x, y = np.frombuffer(sa, dtype=np.uint32), np.frombuffer(sb, dtype=np.uint32)
        if cfg.verify == "estimate":
            return minhash.estimated_jaccard(x, y)
        return minhash.jaccard(x, y)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            cols = batch.to_pydict()
            scores = [score(x, y) for x, y in zip(cols["sa"], cols["sb"], strict=True)]
            yield pa.RecordBatch.from_arrays(
                [batch.column("a"), batch.column("b"), pa.array(scores, type=pa.float64())],
                ["a", "b", "jaccard"],
            )

    return run


def _pairs_expr(max_bucket_size: int) -> str:
    """All pairs (a < b) of a sorted bucket, or the star around ids[0] when it is too large."""
    all_pairs = (
        "flatten(transform(sequence(0, size(ids) - 2), i -> "
        "transform(slice(ids, i + 2, size(ids) - i - 1), y -> named_struct('a', ids[i], 'b', y))))"
    )
    star = "transform(slice(ids, 2, size(ids) - 1), y -> named_struct('a', ids[0], 'b', y))"
    return f"if(size(ids) > {max_bucket_size}, {star}, {all_pairs})"


def buckets(df: DataFrame, cfg: MinHashConfig) -> DataFrame:
    """(band, key, ids): LSH buckets holding at least two documents, ids sorted."""
    from pyspark.sql import functions as F

    bands, rows = minhash.bands_rows(cfg)
    keyed = df.select("id", "text").mapInArrow(_band_rows(cfg, bands, rows), "id string, keys array<long>")
    keyed = keyed.select("id", F.posexplode("keys").alias("band", "key"))
    grouped = keyed.groupBy("band", "key").agg(
        F.array_sort(F.array_distinct(F.collect_list("id"))).alias("ids")
    )
    return grouped.where(F.size("ids") > 1)


def candidate_pairs(df: DataFrame, cfg: MinHashConfig, bucket_df: DataFrame | None = None) -> DataFrame:
    """Distinct (a, b) with a < b that share at least one band bucket."""
    from pyspark.sql import functions as F

    bucket_df = buckets(df, cfg) if bucket_df is None else bucket_df
    pairs = bucket_df.select(F.explode(F.expr(_pairs_expr(cfg.max_bucket_size))).alias("p"))
    return pairs.select("p.a", "p.b").distinct()


def verified_pairs(
    docs: DataFrame, pairs: DataFrame, cfg: MinHashConfig, n_pairs: int | None = None
) -> DataFrame:
    """(a, b, jaccard) for pairs at or above the threshold, by exact Jaccard on shingle sets
    (`exact`) or the share of equal signature slots (`estimate`).

    Only documents in some pair are re-shingled, once; their ids are broadcast to the document
    scan when there are few enough (at most 2 * `n_pairs`, else counted), so the texts themselves
    are never shuffled.
    """
    from pyspark.sql import functions as F

    ids = pairs.select(F.col("a").alias("id")).union(pairs.select(F.col("b").alias("id"))).distinct()
    if (2 * n_pairs if n_pairs is not None else ids.count()) <= _BROADCAST_IDS:
        ids = F.broadcast(ids)
    needed = docs.select("id", "text").join(ids, "id", "left_semi")
    # Both sides of the join read the sets: materialise them once (memory, spilling to disk),
    # or every set would be re-shingled per side; the blocks go when `sets` is garbage.
    sets = needed.mapInArrow(_set_rows(cfg), "id string, values binary").localCheckpoint(eager=True)
    sa = sets.select(F.col("id").alias("a"), F.col("values").alias("sa"))
    sb = sets.select(F.col("id").alias("b"), F.col("values").alias("sb"))
    joined = pairs.join(sa, "a").join(sb, "b").select("a", "b", "sa", "sb")
    scored = joined.mapInArrow(_score_rows(cfg), "a string, b string, jaccard double")
    return scored.where(F.col("jaccard") >= cfg.threshold)


def near_duplicate_edges(df: DataFrame, cfg: MinHashConfig) -> tuple[DataFrame, dict[str, Any]]:
    """Verified edges (cached; unpersist when done) and the run's stats: chosen bands x rows, the
    hit probability at the threshold, the S-curve, bucket sizes, candidate and verified counts."""
    from pyspark.sql import functions as F

    bands, rows = minhash.bands_rows(cfg)
    bucket_df = buckets(df, cfg).cache()
    size = F.size("ids")
    agg = bucket_df.agg(
        F.count("*").alias("n"),
        F.max(size).alias("largest"),
        F.sum((size > cfg.max_bucket_size).cast("long")).alias("oversized"),
    ).collect()[0]  # a global aggregate has exactly one row
    pairs = candidate_pairs(df, cfg, bucket_df).cache()
    n_candidates = pairs.count()
    edges = verified_pairs(df, pairs, cfg, n_candidates).cache()
    n_edges = edges.count()
    pairs.unpersist()
    bucket_df.unpersist()
    stats = {
        "bands": bands,
        "rows": rows,
        "threshold": cfg.threshold,
        "hit_probability_at_threshold": round(minhash.hit_probability(cfg.threshold, bands, rows), 6),
        "s_curve": minhash.s_curve(bands, rows),
        "buckets": int(agg["n"] or 0),
        "largest_bucket": int(agg["largest"] or 0),
        "oversized_buckets": int(agg["oversized"] or 0),
        "candidate_pairs": n_candidates,
        "verified_pairs": n_edges,
        "verify": cfg.verify,
    }
    return edges, stats
