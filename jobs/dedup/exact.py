"""Exact deduplication on normalised text.

Normalisation (Unicode NFKC, case-fold, collapsed whitespace) follows the exact-match stage of
Lee et al. (2022), "Deduplicating Training Data Makes Language Models Better", section 4.
The keeper of each group is the smallest document id, so two runs keep the same document.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped: the form exact matches compare."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalized_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def annotate_hash(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ann = {**(row.get("annotations") or {}), "dedup.text_sha256": normalized_hash(row["text"] or "")}
    if row["source_type"] == "web" and (row.get("origin") or "").lower().startswith(("http://", "https://")):
        from jobs.web.urls import canonical_url

        ann["dedup.url"] = canonical_url(row["origin"])
    return {**row, "annotations": ann}, None


def mark_duplicates(df: DataFrame) -> DataFrame:
    """All but one row per normalised-text hash get `exact_duplicate`; then, among the rest, all
    but one web page per canonical URL get `exact_duplicate_url` (the same page crawled and read
    from a WARC, or fetched twice). Keepers are the smallest ids; their ids are recorded."""
    from pyspark.sql import functions as F

    if "reject_reason" not in df.columns:
        df = df.withColumn("reject_stage", F.lit(None).cast("string")).withColumn(
            "reject_reason", F.lit(None).cast("string")
        )
    text_key = F.col("annotations").getItem("dedup.text_sha256")
    url_key = F.col("annotations").getItem("dedup.url")
    return _mark(_mark(df, text_key, "exact_duplicate"), url_key, "exact_duplicate_url")


def _mark(df: DataFrame, key: Column, reason: str) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    open_row = F.col("reject_reason").isNull()
    w = Window.partitionBy(key, open_row).orderBy("id")
    ranked = df.withColumn("_rank", F.row_number().over(w)).withColumn("_keeper", F.first("id").over(w))
    dup = key.isNotNull() & open_row & (F.col("_rank") > 1)
    keeper = F.create_map(F.lit("dedup.keeper_id"), F.col("_keeper"))
    return (
        ranked.withColumn(
            "annotations", F.when(dup, F.map_concat("annotations", keeper)).otherwise(F.col("annotations"))
        )
        .withColumn("reject_stage", F.when(dup, F.lit("dedup")).otherwise(F.col("reject_stage")))
        .withColumn("reject_reason", F.when(dup, F.lit(reason)).otherwise(F.col("reject_reason")))
        .drop("_rank", "_keeper")
    )
