"""Spark mapping of exact dedup (rules in jobs/dedup/exact.py): each pass of `exact.PASSES` is one
window over (group key, still open), ranked by id, so its first row is `exact.choose_keeper` of
the group; nothing but the ranking and the marks happens here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.dedup import exact

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def mark_duplicates(df: DataFrame) -> DataFrame:
    """All but one row per normalised-text hash get `exact_duplicate`; then, among the rest, all
    but one web page per canonical URL get `exact_duplicate_url` (the same page crawled and read
    from a WARC, or fetched twice). Keepers are the smallest ids; their ids are recorded."""
    from pyspark.sql import functions as F

    if "reject_reason" not in df.columns:
        df = df.withColumn("reject_stage", F.lit(None).cast("string")).withColumn(
            "reject_reason", F.lit(None).cast("string")
        )
    for annotation, reason in exact.PASSES:
        df = _mark(df, F.col("annotations").getItem(annotation), reason)
    return df


def _mark(df: DataFrame, key: Column, reason: str) -> DataFrame:
    """One pass of `exact.mark_pass`: the rows of `exact.group_key` (open, key set) ranked by id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    open_row = F.col("reject_reason").isNull()
    w = Window.partitionBy(key, open_row).orderBy("id")
    ranked = df.withColumn("_rank", F.row_number().over(w)).withColumn("_keeper", F.first("id").over(w))
    dup = key.isNotNull() & open_row & (F.col("_rank") > 1)
    keeper = F.create_map(F.lit(exact.KEEPER_ANNOTATION), F.col("_keeper"))
    return (
        ranked.withColumn(
            "annotations", F.when(dup, F.map_concat("annotations", keeper)).otherwise(F.col("annotations"))
        )
        .withColumn("reject_stage", F.when(dup, F.lit("dedup")).otherwise(F.col("reject_stage")))
        .withColumn("reject_reason", F.when(dup, F.lit(reason)).otherwise(F.col("reject_reason")))
        .drop("_rank", "_keeper")
    )
