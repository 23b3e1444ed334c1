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
    from pyspark.sql import DataFrame

_SPACE = re.compile(r"\s+")


def normalized_hash(text: str) -> str:
    norm = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.sha256(norm.encode()).hexdigest()


def annotate_hash(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ann = {**(row.get("annotations") or {}), "dedup.text_sha256": normalized_hash(row["text"] or "")}
    return {**row, "annotations": ann}, None


def mark_duplicates(df: DataFrame) -> DataFrame:
    """Sets reject_reason='exact_duplicate' (and the keeper id) on all but one row per hash."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    key = F.col("annotations").getItem("dedup.text_sha256")
    w = Window.partitionBy(key).orderBy("id")
    keeper = F.first("id").over(w)
    ranked = df.withColumn("_rank", F.row_number().over(w)).withColumn("_keeper", keeper)
    dup = F.col("_rank") > 1
    return (
        ranked.withColumn("reject_stage", F.when(dup, F.lit("dedup")))
        .withColumn("reject_reason", F.when(dup, F.lit("exact_duplicate")))
        .withColumn(
            "annotations",
            F.when(
                dup, F.map_concat("annotations", F.create_map(F.lit("dedup.keeper_id"), "_keeper"))
            ).otherwise(F.col("annotations")),
        )
        .drop("_rank", "_keeper")
    )
