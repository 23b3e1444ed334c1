"""The decontamination stage on Spark: the evaluation sets of `decontam.evals` read and indexed on
the driver (jobs/safety/evalsets.py, jobs/safety/decontam.py), the per-document rule mapped over the
near-dedup stage's documents, and the hits counted per benchmark.

It runs after near-dedup, on the deduplicated corpus (fewer documents to check, and a benchmark
copied into many near-identical pages counts once), and before the tokenizer, so neither the
vocabulary nor the shards see benchmark text. The index is small next to the corpus (12 bytes per
distinct n-gram: 100 MB of evaluation text is about 200 MB) and travels to the tasks in the closure.
Without evaluation sets the stage passes every document through and says so in its stats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import PipelineConfig
from core.registry import STAGES
from jobs.spark.arrow_map import map_rows
from jobs.spark.frame import StageContext, docs, write_split

EVAL_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".gz")


def evals_listing(cfg: PipelineConfig) -> dict[str, list[list[Any]]]:
    """The registry's `external` fact: every evaluation file's name, size and mtime, so a changed
    benchmark re-runs the stage."""
    folder = cfg.decontam.evals_path
    if not folder:
        return {"files": []}
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"decontam.evals: {root} is not a folder of evaluation sets")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(EVAL_SUFFIXES))
    return {
        "files": [[p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    }


def run_decontam(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.decontam
    source = docs(ctx, STAGES["decontaminate"].inputs[0])
    if not cfg.evals_path:
        stats = write_split(map_rows(source, lambda row: (row, None), "decontaminate"), ctx)
        return {**stats, "action": cfg.action, "ngram": cfg.ngram, "benchmarks": {}, "evals": None}
    from jobs.safety.decontam import build_eval_index, decontaminate_with
    from jobs.safety.evalsets import read_evals

    evals = read_evals(cfg.evals_path, cfg.max_eval_bytes)
    index, per_benchmark = build_eval_index(evals, cfg.ngram)
    stats = write_split(map_rows(source, decontaminate_with(cfg, index), "decontaminate"), ctx)
    return {
        **stats, "action": cfg.action, "ngram": cfg.ngram, "benchmarks": per_benchmark,
        "evals": cfg.evals, **hit_counts(ctx),
    }  # fmt: skip


def hit_counts(ctx: StageContext) -> dict[str, Any]:
    """Documents hit per benchmark (a document can hit several), documents hit, characters cut."""
    from pyspark.sql import functions as F

    frames = [
        ctx.spark.read.parquet(str(ctx.out / part)).select("annotations") for part in ("data", "rejected")
    ]
    rows = frames[0].unionByName(frames[1])
    ann = F.col("annotations")
    hit = rows.filter(ann.getItem("decontam.benchmarks").isNotNull())
    per = (
        hit.select(F.explode(F.split(ann.getItem("decontam.benchmarks"), ",")).alias("benchmark"))
        .groupBy("benchmark")
        .count()
        .collect()
    )
    cut = hit.agg(F.sum(F.coalesce(ann.getItem("decontam.cut_chars").cast("long"), F.lit(0)))).first()
    return {
        "hits_by_benchmark": {r["benchmark"]: r["count"] for r in sorted(per, key=lambda r: r["benchmark"])},
        "documents_hit": hit.count(),
        "cut_chars": int(cut[0] or 0) if cut else 0,
    }
