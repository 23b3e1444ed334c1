"""`make bench`: throughput of every stage on the demo corpus, median of several runs.

Each run uses a fresh storage root, so nothing is skipped; one SparkSession (`local[*]`) is shared
so JVM start-up is not counted. Documents and MB are those the stage reads (text plus raw HTML).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from core.config import REPO_ROOT, load_config
from core.registry import STAGES, dag_stages
from demo.corpus import build_demo_corpus
from demo.site import serve_directory
from jobs.spark.runner import run_stage
from jobs.spark.session import get_spark

CURATION = [s.name for s in dag_stages("curation")]  # the Spark stages, in order


def input_size(root: Path, stage: str) -> tuple[int, int]:
    """(documents, bytes of text + raw HTML) the stage reads; for sources, what they produce."""
    sources = STAGES[stage].inputs or (stage,)
    if stage == "shards":
        sources = (STAGES["shards"].inputs[0],)
    docs = size = 0
    for src in sources:
        table = pq.read_table(root / "runs/bench" / src / "data", columns=["text", "raw_content"])
        docs += table.num_rows
        for col in ("text", "raw_content"):
            size += sum(len(v.encode()) for v in table.column(col).to_pylist() if v)
    return docs, size


def one_run(corpus: Path, base_url: str, spark: Any, train_steps: int) -> dict[str, dict[str, float]]:
    root = Path(tempfile.mkdtemp(prefix="lmforge-bench-"))
    try:
        cfg = load_config(
            overrides={
                "storage": {"root": str(root)},
                "crawl": {"seeds": [base_url]},
                "sources": {
                    "books_dir": str(corpus / "books"),
                    "code_dir": str(corpus / "code"),
                    "papers_dir": str(corpus / "papers") if (corpus / "papers").is_dir() else "",
                    "social_paths": [str(p) for p in sorted((corpus / "social").glob("*.jsonl"))],
                    "synthetic_count": 300,
                },
                # The crawl's own WARC output, read back by the WARC stage.
                "warc": {"paths": [str(root / "runs/bench/crawl/warc")]},
                "train": {"steps": train_steps},
            }
        )
        out = {}
        for name in CURATION:
            manifest, _ = run_stage(name, cfg, "bench", spark)
            docs, size = input_size(root, name)
            out[name] = {"seconds": manifest.stats["seconds"], "docs": docs, "bytes": size}
            if name == "warc":
                out[name]["records"] = manifest.stats["records"]
        out["extractors"] = bench_extractors(root)
        if train_steps:
            out["pretrain"] = train(cfg, root)
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_extractors(root: Path) -> dict[str, dict[str, float]]:
    """Each extractor alone (no Spark) over the crawled HTML: title, links, language included."""
    from core.config import ExtractConfig
    from jobs.extract.html import extract_row_with

    rows = [
        {**r, "annotations": dict(r["annotations"] or [])}
        for r in pq.read_table(root / "runs/bench/crawl/data").to_pylist()
    ]
    size = sum(len(r["raw_content"].encode()) for r in rows)
    out = {}
    for name in ("trafilatura", "resiliparse"):
        fn = extract_row_with(ExtractConfig(extractor=name))
        start = time.perf_counter()
        for row in rows:
            fn(dict(row))
        out[name] = {"seconds": time.perf_counter() - start, "docs": len(rows), "bytes": size}
    return out


def train(cfg: Any, root: Path) -> dict[str, float]:
    from training.launch import run_pretraining

    metrics = run_pretraining(cfg, root / "runs/bench/shards", str(root / "ray"), name="bench")
    return {"tokens_per_s": metrics["tokens_per_s"], "steps": metrics["steps"]}


def table(runs: list[dict[str, dict[str, float]]]) -> str:
    head = f"{'stage':<10} {'docs':>7} {'MB':>8} {'seconds':>8} {'docs/s':>9} {'MB/s':>7}"
    lines = [f"{head}   (median of {len(runs)} runs)"]
    for name in CURATION:
        secs = statistics.median(r[name]["seconds"] for r in runs)
        docs, size = runs[0][name]["docs"], runs[0][name]["bytes"] / 1e6
        lines.append(
            f"{name:<10} {docs:>7} {size:>8.2f} {secs:>8.2f} {docs / secs:>9.1f} {size / secs:>7.2f}"
        )
    recs = statistics.median(r["warc"]["records"] / r["warc"]["seconds"] for r in runs)
    lines.append(f"{'warc':<10} {recs:,.0f} WARC records/s (the crawl's own WARC files, Spark stage)")
    rates = {}
    for name in ("trafilatura", "resiliparse"):
        secs = statistics.median(r["extractors"][name]["seconds"] for r in runs)
        first = runs[0]["extractors"][name]
        rates[name] = first["docs"] / secs
        mbps = first["bytes"] / 1e6 / secs
        lines.append(f"{'extract':<10} {name:<12} {rates[name]:>8.1f} docs/s {mbps:>7.2f} MB/s (one process)")
    lines.append(
        f"{'extract':<10} resiliparse / trafilatura = {rates['resiliparse'] / rates['trafilatura']:.1f}x"
    )
    if "pretrain" in runs[0]:
        tps = statistics.median(r["pretrain"]["tokens_per_s"] for r in runs)
        lines.append(f"{'pretrain':<10} Ray Train, 2 CPU workers: {tps:,.0f} tokens/s")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=30, help="0 skips the training benchmark")
    p.add_argument("--out", type=Path, default=REPO_ROOT / ".bench" / "results.json")
    args = p.parse_args()
    corpus = REPO_ROOT / ".demo" / "corpus"
    build_demo_corpus(corpus)
    spark = get_spark("lmforge-bench", "local[*]", shuffle_partitions=4)
    spark.sparkContext.setLogLevel("ERROR")
    with serve_directory(corpus / "site") as site:
        runs = [one_run(corpus, site.base_url, spark, args.train_steps) for _ in range(args.runs)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1))
    print(table(runs))
    print(f"raw results: {args.out}")
    spark.stop()
    from scripts.bench_dedup import run as bench_dedup

    print(bench_dedup(runs=args.runs))
    from scripts.bench_train import run as bench_train

    print(bench_train(runs=args.runs))
    from scripts.bench_quality import report as bench_quality

    print(bench_quality(runs=args.runs))
    from scripts.bench_copyright import report as bench_copyright

    print(bench_copyright(runs=args.runs))
    from scripts.bench_safety import report as bench_safety

    print(bench_safety(runs=args.runs))
    from scripts.bench_shards import report as bench_shards

    print(bench_shards(runs=args.runs))
    from scripts.bench_publish import report as bench_publish

    print(bench_publish(runs=args.runs))
    from scripts.bench_validate import report as bench_validate

    print(bench_validate(runs=args.runs))
    # Licence detection accuracy per SPDX id and per kind (issue 14's "Must show").
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "license_eval.py")], check=True)


if __name__ == "__main__":
    main()
