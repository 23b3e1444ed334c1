"""Thin adapter: apply a plain-Python per-document function to a Spark DataFrame via mapInArrow.

Stage logic stays engine-agnostic (a function of one row dict); Spark only distributes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.schema import REJECTED_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Row = dict[str, Any]
# Returns the (possibly updated) row and a reject reason, or None when the row is kept.
RowFn = Callable[[Row], tuple[Row, str | None]]
BatchFn = Callable[[list[Row]], list[tuple[Row, str | None]]]


def split_rows(rows: Iterable[Row], fn: RowFn, stage: str) -> Iterator[Row]:
    """Apply `fn`; every row comes out once, with reject_stage/reject_reason set when dropped."""
    for row in rows:
        if isinstance(row.get("annotations"), list):  # Arrow hands maps over as (key, value) pairs
            row["annotations"] = dict(row["annotations"])
        out, reason = fn(row)
        out = dict(out)
        out["reject_stage"] = stage if reason else None
        out["reject_reason"] = reason
        yield out


def map_rows(df: DataFrame, fn: RowFn, stage: str) -> DataFrame:
    """DataFrame with REJECTED_SCHEMA columns; filter on `reject_reason IS NULL` to keep."""
    return map_batches(df, lambda rows: [fn(row) for row in rows], stage)


def map_batches(df: DataFrame, fn: BatchFn, stage: str) -> DataFrame:
    """`map_rows` for a rule that decides a whole Arrow batch at once (a model that vectorises many
    documents faster than one at a time); `fn` answers (row, reason) per row, in order."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = REJECTED_SCHEMA

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = batch.to_pylist()
            for row in rows:
                if isinstance(row.get("annotations"), list):  # Arrow hands maps over as (key, value) pairs
                    row["annotations"] = dict(row["annotations"])
            decided = fn(rows)
            if len(decided) != len(rows):
                raise ValueError(f"stage {stage}: {len(decided)} answers for {len(rows)} rows")
            out = [{**r, "reject_stage": stage if why else None, "reject_reason": why} for r, why in decided]
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    base = df.drop("reject_stage", "reject_reason") if "reject_reason" in df.columns else df
    return base.mapInArrow(run, from_arrow_schema(schema))
