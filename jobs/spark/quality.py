"""The quality stage: the per-document rules (jobs/filters/quality.py), then, when
`quality.classifier_top_fraction` is set, the one decision that needs every document at once:
per source type, keep the best-scored share of what the rules kept (DCLM keeps the top 10% by its
fastText score, Li et al. 2024 section 4.4; the fraction is the user's choice and off by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.filters.quality import SCORE, assess_with, top_fraction_keep
from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def run_quality(ctx: StageContext) -> dict[str, Any]:
    df = map_rows(docs(ctx, "dedup"), assess_with(ctx.cfg.quality), "quality")
    fraction = ctx.cfg.quality.classifier_top_fraction
    if fraction is not None:
        df = keep_top_fraction(df, fraction)
    return write_split(df, ctx)


def keep_top_fraction(df: DataFrame, fraction: float) -> DataFrame:
    """Per source type, rank the kept rows by score (best first, ties by id) and reject those past
    `top_fraction_keep(n, fraction)`; rows without a score keep their rules' decision."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    score = F.col("annotations").getItem(SCORE).cast("double")
    ranked = F.col("reject_reason").isNull() & score.isNotNull()
    by_source = Window.partitionBy("source_type", "_ranked")
    order = by_source.orderBy(F.col("_score").desc(), F.col("id"))
    keep_n = F.udf(lambda n: top_fraction_keep(int(n), fraction), "long")
    df = df.withColumn("_ranked", ranked).withColumn("_score", score)
    df = df.withColumn("_pos", F.row_number().over(order)).withColumn("_n", F.count("*").over(by_source))
    cut = F.col("_ranked") & (F.col("_pos") > keep_n(F.col("_n")))
    reason = F.concat(F.lit("classifier_top_fraction:"), F.format_number(F.col("_score"), 3))
    return (
        df.withColumn("reject_reason", F.when(cut, reason).otherwise(F.col("reject_reason")))
        .withColumn("reject_stage", F.when(cut, F.lit("quality")).otherwise(F.col("reject_stage")))
        .drop("_ranked", "_score", "_pos", "_n")
    )
