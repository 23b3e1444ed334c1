"""Near-dedup benchmark: throughput per phase on real text, local[1] vs local[2], and recall /
precision against brute force on controlled edits. Part of `make bench`.

Corpus: every standard-library module's source (real code and prose every machine has) plus, for
a tenth of them, an edited near-duplicate copy.
"""

from __future__ import annotations

import random
import statistics
import sysconfig
import time
from pathlib import Path
from typing import Any

from core.config import MinHashConfig
from jobs.dedup.evaluate import RATES, edit, make_corpus, real_texts, score, true_jaccards


def stdlib_corpus(limit_mb: float) -> list[tuple[str, str]]:
    """Standard-library modules (not site-packages, whose content depends on the machine), empty
    files skipped, each tenth one followed by an edited near-copy."""
    rng = random.Random(0)
    docs: list[tuple[str, str]] = []
    size = 0
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.relative_to(root).parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        docs.append((str(path.relative_to(root)), text))
        size += len(text.encode())
        if rng.random() < 0.1:
            docs.append(
                (
                    f"{path.relative_to(root)}#copy",
                    edit(text, rng.choice(["insert", "substitute", "delete"]), 0.01, rng),
                )
            )
        if size > limit_mb * 1e6:
            break
    return docs


def phases(spark: Any, docs: list[tuple[str, str]], cfg: MinHashConfig) -> dict[str, float]:
    from pyspark.sql import functions as F

    from jobs.spark.components import connected_components_with_rounds
    from jobs.spark.minhash import near_duplicate_edges

    df = spark.createDataFrame(docs, "id string, text string").repartition(8).cache()
    df.count()
    start = time.perf_counter()
    edges, stats = near_duplicate_edges(df, cfg)
    lsh = time.perf_counter() - start
    start = time.perf_counter()
    comps, rounds = connected_components_with_rounds(
        spark, edges.select(F.col("a").alias("src"), F.col("b").alias("dst"))
    )
    comps = comps.cache()
    comps.count()
    cc = time.perf_counter() - start
    # Removed: every clustered document but its cluster's smallest id (no licence or quality
    # scores here, so the keeper rule's last tie-break decides).
    removed = [r["id"] for r in comps.where(F.col("id") != F.col("component")).select("id").collect()]
    comps.unpersist()
    edges.unpersist()
    df.unpersist()
    return {
        "signatures_lsh_verify_s": lsh,
        "components_s": cc,
        "edges": stats["verified_pairs"],
        "rounds": rounds,
        "removed_ids": removed,
    }


def run(runs: int = 3, limit_mb: float = 20.0, peers: bool = True) -> str:
    """Ours at local[1] and local[2] (one discarded warm-up run each: JVM JIT, Python workers),
    then datatrove and text-dedup on the same documents, one core each, and our ratio to them."""
    from jobs.spark.session import get_spark

    cfg = MinHashConfig()
    docs = stdlib_corpus(limit_mb)
    mb = sum(len(t.encode()) for _, t in docs) / 1e6
    lines = [f"near-dedup on {len(docs)} stdlib files, {mb:.1f} MB, median of {runs} runs after a warm-up"]
    per_core: dict[int, float] = {}
    removed: list[str] = []
    for cores in (1, 2):
        spark = get_spark(f"bench-dedup-{cores}", f"local[{cores}]", shuffle_partitions=8)
        spark.sparkContext.setLogLevel("ERROR")
        results = [phases(spark, docs, cfg) for _ in range(runs + 1)][1:]
        spark.stop()
        lsh = statistics.median(r["signatures_lsh_verify_s"] for r in results)
        cc = statistics.median(r["components_s"] for r in results)
        per_core[cores] = mb / (lsh + cc) / cores
        removed = results[0]["removed_ids"]
        lines.append(
            f"  local[{cores}]: signatures+LSH+verify {lsh:.1f} s ({mb / lsh / cores:.2f} MB/s/core), "
            f"components {cc:.1f} s ({results[0]['rounds']} rounds, {results[0]['edges']} edges), "
            f"end to end {mb / (lsh + cc):.2f} MB/s ({per_core[cores]:.2f} MB/s/core)"
        )
    if peers:
        lines.append(peer_lines(docs, runs, removed, per_core[1]))
    lines.append(quality_line(cfg))
    return "\n".join(lines)


def peer_lines(docs: list[tuple[str, str]], runs: int, removed: list[str], ours_per_core: float) -> str:
    """The peers' table (scripts/bench_dedup_peers.py) plus our own removals judged the same way."""
    import shutil
    import tempfile

    from scripts.bench_dedup_peers import ROOT, precision_of_removed, run_peers, table

    (ROOT / ".bench").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="peers-", dir=ROOT / ".bench"))
    try:
        rows = run_peers(docs, workdir, runs=runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ours = precision_of_removed(removed, docs)
    lines = [table(rows, docs, runs)]
    lines.append(
        f"  {'lmforge':<11} {'local[1]':<8} {'':>7} {ours_per_core:>9.3f} {len(docs):>8} "
        f"{ours['removed_checked']:>8} {ours['removed_empty']:>8} {ours['precision'] or 0:>9.1%} "
        f"{ours['precision_nonempty'] or 0:>9.1%} {ours['precision_vs_kept'] or 0:>8.1%}"
        "  (Spark, end to end)"
    )
    for row in rows:
        if not row["error"]:
            lines.append(f"  ours / {row['name']}: {ours_per_core / row['mb_per_s']:.2f}x MB/s per core")
    return "\n".join(lines)


def quality_line(cfg: MinHashConfig) -> str:
    from jobs.spark.minhash import near_duplicate_edges
    from jobs.spark.session import get_spark

    docs = make_corpus(real_texts(60), RATES, seed=1)
    truth = true_jaccards(docs, cfg, floor=0.5)
    spark = get_spark("bench-dedup-quality", "local[2]", shuffle_partitions=8)
    edges, _ = near_duplicate_edges(spark.createDataFrame(docs, "id string, text string"), cfg)
    found = {(r["a"], r["b"]) for r in edges.collect()}
    spark.stop()
    q = score(found, truth, cfg.threshold, margin=0.05)
    return (
        f"  quality on {len(docs)} edited real texts: recall {q.recall:.3f} "
        f"(pairs with J >= {cfg.threshold + 0.05:.2f}: {q.truth_pairs}), "
        f"precision {q.precision:.4f} ({q.found_pairs} pairs found)"
    )


if __name__ == "__main__":
    print(run())
