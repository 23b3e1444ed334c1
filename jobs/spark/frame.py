"""What every Spark stage adapter shares: its context, reading inputs, writing kept and rejected rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import PipelineConfig
from core.datasets import Manifest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class StageContext:
    spark: SparkSession
    cfg: PipelineConfig
    inputs: dict[str, Path]  # committed input stage -> local directory
    manifests: dict[str, Manifest]
    out: Path
    name: str = ""  # the registry stage being run (the generic adapter reads its entry)


def docs(ctx: StageContext, stage: str) -> DataFrame:
    """The kept documents (`data/`) of a committed input stage."""
    return ctx.spark.read.parquet(str(ctx.inputs[stage] / "data"))


def write_split(df: DataFrame, ctx: StageContext) -> dict[str, Any]:
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
