"""Adapters of the token stages: train the tokenizer on the driver, write shards per partition."""

from __future__ import annotations

from typing import Any

from core.shard_meta import META_FILE, ShardMeta
from jobs.spark.frame import StageContext, docs


def run_tokenizer(ctx: StageContext) -> dict[str, Any]:
    from jobs.tokens.tokenizer import train_tokenizer

    cfg = ctx.cfg.tokenizer
    df = docs(ctx, "near_dedup").select("id", "text").orderBy("id").limit(cfg.max_training_docs)
    texts = (row["text"] for row in df.toLocalIterator())
    return train_tokenizer(texts, cfg, ctx.out / "tokenizer.json")


def run_shards(ctx: StageContext) -> dict[str, Any]:
    from jobs.tokens.shards import write_partition

    tokenizer = str(ctx.inputs["tokenizer"] / "tokenizer.json")
    out, val = str(ctx.out), ctx.cfg.shards.val_fraction
    df = docs(ctx, "near_dedup").select("id", "text").repartition(ctx.cfg.spark.shuffle_partitions, "id")
    parts = (
        df.sortWithinPartitions("id")
        .rdd.mapPartitionsWithIndex(lambda i, rows: write_partition(i, rows, tokenizer, out, val))
        .collect()
    )
    tok = ctx.manifests["tokenizer"].stats

    def total(split: str, key: str) -> int:
        return sum(p[key] for p in parts if p["split"] == split)

    meta = ShardMeta(
        vocab_size=tok["vocab_size"],
        eos_id=tok["eos_id"],
        pad_id=tok["pad_id"],
        mask_id=tok["mask_id"],
        sentinel_ids=tok["sentinel_ids"],
        train_files=tuple(sorted(p["file"] for p in parts if p["split"] == "train")),
        val_files=tuple(sorted(p["file"] for p in parts if p["split"] == "val")),
        train_tokens=total("train", "tokens"),
        train_documents=total("train", "documents"),
        val_tokens=total("val", "tokens"),
        val_documents=total("val", "documents"),
    )
    (ctx.out / META_FILE).write_text(meta.to_json())
    (ctx.out / "tokenizer.json").write_bytes((ctx.inputs["tokenizer"] / "tokenizer.json").read_bytes())
    return meta.model_dump(mode="json")
