"""Adapters of the token stages: train the tokenizer on the driver; encode, weight, shuffle and
shard on the executors (jobs/tokens/shards.py and mixture.py hold the logic).

The shards stage runs in passes: encode every document once (cached), gather the training split's
token histogram per (source, language, bucket) for the mixture plan, expand documents into their
copies with a global seeded key, sort, sum tokens per sorted partition (so the driver knows where
each partition starts in its split's stream), cut into pieces of one shard each, and write every
shard from one task. Only counts and the plan travel through the driver, never tokens.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from core.registry import STAGES
from core.shard_meta import META_FILE, ShardMeta
from jobs.spark.frame import StageContext, docs

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame


def run_tokenizer(ctx: StageContext) -> dict[str, Any]:
    from jobs.tokens.tokenizer import train_tokenizer

    cfg = ctx.cfg.tokenizer
    df = docs(ctx, STAGES["tokenizer"].inputs[0]).select("id", "text").orderBy("id")
    df = df.limit(cfg.max_training_docs)
    texts = (row["text"] for row in df.toLocalIterator())
    return train_tokenizer(texts, cfg, ctx.out / "tokenizer.json")


def run_shards(ctx: StageContext) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from jobs.tokens.mixture import mixture_report

    encoded = _encode(ctx).persist()
    try:
        plan, natural = _plan(ctx, encoded)
        ordered = _ordered(ctx, encoded, plan).persist()
        sums = ordered.groupBy("p", "split", "source_type").agg(
            F.sum("n_tokens").alias("tokens"), F.count("*").alias("docs")
        )
        counts = [r.asDict() for r in sums.collect()]
        entries = _write(ctx, ordered, counts)
        ordered.unpersist()
    finally:
        encoded.unpersist()
    realised: dict[str, int] = defaultdict(int)
    for c in counts:
        if c["split"] == "train":
            realised[c["source_type"]] += c["tokens"]
    meta = _meta(ctx, entries, counts)
    layout = {"block_tokens": ctx.cfg.shards.block_tokens, "shards": entries}
    (ctx.out / META_FILE).write_text(json.dumps({**json.loads(meta.to_json()), **layout}, indent=1))
    (ctx.out / "tokenizer.json").write_bytes((ctx.inputs["tokenizer"] / "tokenizer.json").read_bytes())
    return {
        **meta.model_dump(mode="json"),
        "shard_files": _shard_stats(ctx, entries),
        "mixture": mixture_report(ctx.cfg.mixture, natural, realised),
    }


def _encode(ctx: StageContext) -> DataFrame:
    from pyspark.sql.pandas.types import from_arrow_schema

    from jobs.tokens.shards import ENCODED, encode_batches

    tokenizer = str(ctx.inputs["tokenizer"] / "tokenizer.json")
    val, seed = ctx.cfg.shards.val_fraction, ctx.cfg.mixture.seed

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return encode_batches(batches, tokenizer, val, seed)

    df = docs(ctx, STAGES["shards"].inputs[0]).select("id", "text", "source_type", "language")
    return df.mapInArrow(run, from_arrow_schema(ENCODED))


def _plan(ctx: StageContext, encoded: DataFrame) -> tuple[DataFrame, dict[tuple[str, str], int]]:
    """The mixture plan as a small table (copies = whole + (bucket < cut) per source and language),
    and the training split's natural tokens per (source, language)."""
    from pyspark.sql import functions as F

    from jobs.tokens.mixture import plan_mixture

    rows = (
        encoded.where("split = 'train'")
        .groupBy("source_type", "language", "bucket")
        .agg(F.sum("n_tokens").alias("n"))
        .collect()
    )
    histograms: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for r in rows:
        histograms[(r["source_type"], r["language"])][r["bucket"]] = int(r["n"])
    plans = plan_mixture(histograms, ctx.cfg.mixture)
    table = [(s, lang, p.whole, p.cut) for (s, lang), p in sorted(plans.items())]
    schema = "source_type string, language string, whole int, cut int"
    natural = {g: sum(h.values()) for g, h in histograms.items()}
    return ctx.spark.createDataFrame(table, schema), natural


def _ordered(ctx: StageContext, encoded: DataFrame, plan: DataFrame) -> DataFrame:
    """Every copy with its global key, sorted by (split, key); `p` is the sorted partition."""
    from pyspark.sql import functions as F

    copies = F.when(F.col("split") == "val", F.lit(1)).otherwise(
        F.coalesce(F.col("whole"), F.lit(1))
        + (F.col("bucket") < F.coalesce(F.col("cut"), F.lit(0))).cast("int")
    )
    return (
        encoded.join(F.broadcast(plan), ["source_type", "language"], "left")
        .withColumn("copies", copies)
        .where("copies > 0")
        .withColumn("copy", F.explode(F.sequence(F.lit(0), F.col("copies") - 1)))
        .withColumn("key", shuffle_key_column(ctx.cfg.shards.shuffle_seed))
        .select("split", "key", "id", "copy", "source_type", "n_tokens", "tokens")
        .orderBy("split", "key", "id", "copy")
        .withColumn("p", F.spark_partition_id())
    )


def shuffle_key_column(seed: int) -> Column:
    """jobs.tokens.shards.shuffle_key in Spark SQL: the first 60 bits of sha256("shuffle:seed:copy:id")."""
    from pyspark.sql import functions as F

    digest = F.sha2(F.concat_ws(":", F.lit("shuffle"), F.lit(str(seed)), "copy", "id"), 256)
    return F.conv(F.substring(digest, 1, 15), 16, 10).cast("long")


def _write(ctx: StageContext, ordered: DataFrame, counts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cut the sorted stream into pieces of one shard each, then write every shard from one task."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from jobs.tokens.shards import ENTRIES, PIECES, cut_pieces, write_pieces

    max_tokens, block = ctx.cfg.shards.max_shard_tokens, ctx.cfg.shards.block_tokens
    offsets, totals = _offsets(counts)
    shards = sum(math.ceil(t / max_tokens) for t in totals.values())
    if shards == 0:
        return []
    out = str(ctx.out)

    def cut(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        rows = (row for batch in batches for row in batch.select(["p", "split", "tokens"]).to_pylist())
        pieces = cut_pieces(rows, offsets, max_tokens)  # one stream per partition: positions carry over
        while chunk := list(islice(pieces, 512)):
            yield pa.RecordBatch.from_pylist(chunk, schema=PIECES)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        rows = (row for batch in batches for row in batch.to_pylist())
        for entry in write_pieces(rows, out, max_tokens, block):
            yield pa.RecordBatch.from_pylist([entry], schema=ENTRIES)

    pieces = ordered.mapInArrow(cut, from_arrow_schema(PIECES))
    written = (
        pieces.repartition(shards, "split", "shard")
        .sortWithinPartitions("split", "shard", "pos")
        .mapInArrow(write, from_arrow_schema(ENTRIES))
        .collect()
    )
    entries = sorted((r.asDict() for r in written), key=lambda e: (e["split"], e["file"]))
    _check(entries, totals, max_tokens)
    return entries


def _offsets(counts: list[dict[str, Any]]) -> tuple[dict[tuple[int, str], int], dict[str, int]]:
    """Where each sorted partition starts in its split's stream, and each split's total tokens."""
    per: dict[tuple[int, str], int] = defaultdict(int)
    for c in counts:
        per[(c["p"], c["split"])] += c["tokens"]
    offsets, totals = {}, {"train": 0, "val": 0}
    for p, split in sorted(per, key=lambda k: (k[1], k[0])):
        offsets[(p, split)] = totals[split]
        totals[split] += per[(p, split)]
    return offsets, totals


def _check(entries: list[dict[str, Any]], totals: dict[str, int], max_tokens: int) -> None:
    """The written shards must add up to the counted stream; otherwise fail before committing."""
    for split, total in totals.items():
        mine = [e for e in entries if e["split"] == split]
        if sum(e["tokens"] for e in mine) != total or any(e["tokens"] > max_tokens for e in mine):
            raise RuntimeError(f"{split} shards hold {[e['tokens'] for e in mine]} tokens, expected {total}")


def _meta(ctx: StageContext, entries: list[dict[str, Any]], counts: list[dict[str, Any]]) -> ShardMeta:
    tok = ctx.manifests["tokenizer"].stats

    def total(split: str, key: str) -> int:
        return sum(c[key] for c in counts if c["split"] == split)

    return ShardMeta(
        vocab_size=tok["vocab_size"],
        eos_id=tok["eos_id"],
        pad_id=tok["pad_id"],
        mask_id=tok["mask_id"],
        sentinel_ids=tok["sentinel_ids"],
        train_files=tuple(e["file"] for e in entries if e["split"] == "train"),
        val_files=tuple(e["file"] for e in entries if e["split"] == "val"),
        train_tokens=total("train", "tokens"),
        train_documents=total("train", "docs"),
        val_tokens=total("val", "tokens"),
        val_documents=total("val", "docs"),
    )


def _shard_stats(ctx: StageContext, entries: list[dict[str, Any]]) -> dict[str, Any]:
    sizes = [e["tokens"] for e in entries]
    return {
        "train": sum(e["split"] == "train" for e in entries),
        "val": sum(e["split"] == "val" for e in entries),
        "max_shard_tokens": ctx.cfg.shards.max_shard_tokens,
        "largest_shard_tokens": max(sizes, default=0),
        "block_tokens": ctx.cfg.shards.block_tokens,
        "shuffle_seed": ctx.cfg.shards.shuffle_seed,
        "files": [{k: e[k] for k in ("file", "tokens", "sha256")} for e in entries],
    }
