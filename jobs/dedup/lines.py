"""C4-style removal of lines repeated across the corpus: an optional step of the dedup stage.

Source: Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", section 2.2 (C4 keeps one copy of each repeated span; its tfds implementation,
`c4_utils.remove_duplicate_text`, works on lines); Wenzek et al. (2020), CCNet, section 3.1, and
Soldaini et al. (2024), Dolma, remove repeated paragraphs (newline-separated) the same way.

A line takes part when its normalised form (`dedup_exact.normalize`: NFKC, case-fold, collapsed
whitespace) has at least `line_min_chars` characters. Of each set of equal lines the first by
(document id, line number) stays, so the result does not depend on input order or partitioning,
and a line repeated inside one document keeps its first place. Only (id, line number, key) rows are
shuffled; texts are cut with a higher-order filter on their own split lines, never on the driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.dedup.exact import normalize

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import DedupConfig

REASON = "repeated_lines"
ANNOTATION = "dedup.lines_removed"
_KEY_BYTES = 16  # a 2**-64 collision chance at 4e9 distinct lines; a quarter of a hex sha256 to shuffle
_KEYS_SCHEMA = "id string, pos int, key binary"
_KEY_COLUMNS = ["id", "pos", "key"]


def line_key(line: str, min_chars: int) -> bytes | None:
    """The line's dedup key, or None when its normalised form is too short ever to be removed."""
    norm = normalize(line)
    if len(norm) < min_chars:
        return None
    return hashlib.sha256(norm.encode()).digest()[:_KEY_BYTES]


def _key_batches(batches: Iterator[pa.RecordBatch], min_chars: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (id, pos, line) -> (id, pos, key), short lines dropped here already."""
    for batch in batches:
        keys = pa.array([line_key(line, min_chars) for line in batch.column("line").to_pylist()], pa.binary())
        out = pa.RecordBatch.from_arrays([batch.column("id"), batch.column("pos"), keys], names=_KEY_COLUMNS)
        yield out.filter(pc.is_valid(keys))


def _lines(text: Column | str) -> Column:
    """Split on "\\n" keeping empty lines (limit -1), as Python's `str.split("\\n")` does."""
    from pyspark.sql import functions as F

    return F.split(text, "\n", -1)


def line_keys(docs: DataFrame, min_chars: int) -> DataFrame:
    """(id, pos, key) for every line of `docs` long enough to take part."""
    from pyspark.sql import functions as F

    lines = docs.select("id", F.posexplode(_lines("text")).alias("pos", "line"))
    return lines.mapInArrow(partial(_key_batches, min_chars=min_chars), _KEYS_SCHEMA)


def removed_positions(keys: DataFrame) -> DataFrame:
    """Per document: `_removed`, the line numbers that repeat an earlier (id, pos) with the same
    key, and `_compared`, how many of its lines took part (to tell when nothing long is left).

    The first place of each key is a min aggregate (combined map-side), joined back on the key:
    a line repeated millions of times never has to sit sorted in one task, as a window would;
    adaptive execution splits the skewed join instead.
    """
    from pyspark.sql import functions as F

    place = F.struct("id", "pos")
    firsts = keys.groupBy("key").agg(F.min(place).alias("_first"))
    repeat = place != F.col("_first")
    return (
        keys.join(firsts, "key")
        .withColumn("_repeat", repeat)
        .groupBy("id")
        .agg(
            F.collect_list(F.when(F.col("_repeat"), F.col("pos"))).alias("_removed"),
            F.count("*").alias("_compared"),
        )
    )


def _cut(joined: DataFrame) -> DataFrame:
    """Drop the removed lines; reject a document when every line that took part was removed (only
    short lines are left), keeping its original text in the rejected row."""
    from pyspark.sql import functions as F

    removed = F.coalesce(F.col("_removed"), F.array().cast("array<int>"))
    n = F.size(removed)
    emptied = (n > 0) & (n == F.col("_compared"))
    kept = F.array_join(F.filter(_lines("text"), lambda _, i: ~F.array_contains(removed, i)), "\n")
    count = F.create_map(F.lit(ANNOTATION), n.cast("string"))
    return (
        joined.withColumn("text", F.when((n == 0) | emptied, F.col("text")).otherwise(kept))
        .withColumn("annotations", F.map_concat("annotations", count))
        .withColumn("reject_stage", F.when(emptied, F.lit("dedup")).otherwise(F.col("reject_stage")))
        .withColumn("reject_reason", F.when(emptied, F.lit(REASON)).otherwise(F.col("reject_reason")))
    )


def remove_repeated_lines(df: DataFrame, cfg: DedupConfig) -> DataFrame:
    """`df` (REJECTED_SCHEMA columns, after exact dedup) with repeated lines removed from the open
    documents of `cfg.line_sources`; every other row passes through unchanged."""
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

    n = F.coalesce(F.col("annotations").getItem(ANNOTATION).cast("long"), F.lit(0))
    row = kept.agg(F.sum(n).alias("lines"), F.count(F.when(n > 0, 1)).alias("docs")).first()
    return {"lines_removed": int(row["lines"] or 0), "documents_changed": int(row["docs"] or 0)}
