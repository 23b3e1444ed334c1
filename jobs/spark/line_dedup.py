"""Spark mapping of repeated-line removal (rules in jobs/dedup/lines.py).

Keys come from `lines.keyed_lines` per partition (`mapInArrow`); the first place of each key
(`lines.survivor`, the minimum (id, line number)) is a min aggregate, combined map-side and joined
back on the key: a line repeated millions of times never has to sit sorted in one task, as a
window would, and adaptive execution splits the skewed join. Only (id, line number, key) rows are
shuffled; texts are cut by `lines.cut_lines` per partition, never on the driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.dedup import lines

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from core.config import DedupConfig

_KEYS = pa.schema([("id", pa.string()), ("pos", pa.int32()), ("key", pa.binary())])
_KEYS_DDL = "id string, pos int, key binary"


def _key_batches(batches: Iterator[pa.RecordBatch], min_chars: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (id, text) -> (id, pos, key) of the lines taking part."""
    for batch in batches:
        ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
        keyed = [k for i, t in zip(ids, texts, strict=True) for k in lines.keyed_lines(i, t, min_chars)]
        cols = list(zip(*keyed, strict=True)) if keyed else [(), (), ()]
        arrays = [pa.array(c, f.type) for c, f in zip(cols, _KEYS, strict=True)]
        yield pa.RecordBatch.from_arrays(arrays, schema=_KEYS)


def line_keys(docs: DataFrame, min_chars: int) -> DataFrame:
    """(id, pos, key) for every line of `docs` long enough to take part."""
    return docs.select("id", "text").mapInArrow(partial(_key_batches, min_chars=min_chars), _KEYS_DDL)


def removed_positions(keys: DataFrame) -> DataFrame:
    """Per document: `_removed`, the line numbers that are not their key's survivor, and
    `_compared`, how many of its lines took part (to tell when nothing long is left)."""
    from pyspark.sql import functions as F

    place = F.struct("id", "pos")
    firsts = keys.groupBy("key").agg(F.min(place).alias("_first"))  # lines.survivor
    return (
        keys.join(firsts, "key")
        .withColumn("_repeat", place != F.col("_first"))
        .groupBy("id")
        .agg(
            F.collect_list(F.when(F.col("_repeat"), F.col("pos"))).alias("_removed"),
            F.count("*").alias("_compared"),
        )
    )


def _cut_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: `lines.cut_lines` on each row; the text replaced, `_emptied` appended."""
    for batch in batches:
        removed, compared = batch.column("_removed").to_pylist(), batch.column("_compared").to_pylist()
        cut = [
            lines.cut_lines(t, r or [], c or 0)
            for t, r, c in zip(batch.column("text").to_pylist(), removed, compared, strict=True)
        ]
        texts = pa.array([t for t, _ in cut], pa.string())
        emptied = pa.array([e for _, e in cut], pa.bool_())
        batch = batch.set_column(batch.schema.get_field_index("text"), "text", texts)
        yield batch.append_column("_emptied", emptied)


def _cut(joined: DataFrame) -> DataFrame:
    """Cut the texts; count the removed lines; reject a document `lines.cut_lines` finds emptied."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, StructField, StructType

    schema = StructType([*joined.schema.fields, StructField("_emptied", BooleanType())])
    cut = joined.mapInArrow(_cut_batches, schema)
    n = F.size(F.coalesce(F.col("_removed"), F.array().cast("array<int>")))
    count = F.create_map(F.lit(lines.ANNOTATION), n.cast("string"))
    emptied = F.col("_emptied")
    return (
        cut.withColumn("annotations", F.map_concat("annotations", count))
        .withColumn("reject_stage", F.when(emptied, F.lit("dedup")).otherwise(F.col("reject_stage")))
        .withColumn("reject_reason", F.when(emptied, F.lit(lines.REASON)).otherwise(F.col("reject_reason")))
    )


def remove_repeated_lines(df: DataFrame, cfg: DedupConfig) -> DataFrame:
    """`df` (REJECTED_SCHEMA columns, after exact dedup) with repeated lines removed from the open
    documents of `cfg.line_sources` (`lines.takes_part`); every other row passes through unchanged."""
    from pyspark.sql import functions as F

    takes_part = F.coalesce(
        F.col("reject_reason").isNull() & F.col("source_type").isin(list(cfg.line_sources)), F.lit(False)
    )
    docs = df.filter(takes_part)
    removed = removed_positions(line_keys(docs, cfg.line_min_chars))
    cut = _cut(docs.join(removed, "id", "left")).select(*df.columns)
    return df.filter(~takes_part).unionByName(cut)


def summary(kept: DataFrame) -> dict[str, Any]:
    """Lines removed from kept documents and how many documents lost any (for the manifest)."""
    from pyspark.sql import functions as F

    n = F.coalesce(F.col("annotations").getItem(lines.ANNOTATION).cast("long"), F.lit(0))
    row = kept.agg(F.sum(n).alias("lines"), F.count(F.when(n > 0, 1)).alias("docs")).collect()[0]
    return {"lines_removed": int(row["lines"] or 0), "documents_changed": int(row["docs"] or 0)}
