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
from jobs.dedup_eval import RATES, edit, make_corpus, real_texts, score, true_jaccards


def stdlib_corpus(limit_mb: float) -> list[tuple[str, str]]:
    rng = random.Random(0)
    docs: list[tuple[str, str]] = []
    size = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        docs.append((str(path), text))
        size += len(text.encode())
        if rng.random() < 0.1:
            docs.append(
                (f"{path}#copy", edit(text, rng.choice(["insert", "substitute", "delete"]), 0.01, rng))
            )
        if size > limit_mb * 1e6:
            break
    return docs


def phases(spark: Any, docs: list[tuple[str, str]], cfg: MinHashConfig) -> dict[str, float]:
    from pyspark.sql import functions as F

    from jobs.components import connected_components_with_rounds
    from jobs.minhash_spark import near_duplicate_edges

    df = spark.createDataFrame(docs, "id string, text string").repartition(8).cache()
    df.count()
    start = time.perf_counter()
    edges, stats = near_duplicate_edges(df, cfg)
    lsh = time.perf_counter() - start
    start = time.perf_counter()
    comps, rounds = connected_components_with_rounds(
        spark, edges.select(F.col("a").alias("src"), F.col("b").alias("dst"))
    )
    comps.count()
    cc = time.perf_counter() - start
    edges.unpersist()
    df.unpersist()
    return {
        "signatures_lsh_verify_s": lsh,
        "components_s": cc,
        "edges": stats["verified_pairs"],
        "rounds": rounds,
    }


def run(runs: int = 3, limit_mb: float = 20.0) -> str:
    from jobs.spark_session import get_spark

    cfg = MinHashConfig()
    docs = stdlib_corpus(limit_mb)
    mb = sum(len(t.encode()) for _, t in docs) / 1e6
    lines = [f"near-dedup on {len(docs)} stdlib files, {mb:.1f} MB, median of {runs} runs"]
    for cores in (1, 2):
        spark = get_spark(f"bench-dedup-{cores}", f"local[{cores}]", shuffle_partitions=8)
        spark.sparkContext.setLogLevel("ERROR")
        results = [phases(spark, docs, cfg) for _ in range(runs)]
        spark.stop()
        lsh = statistics.median(r["signatures_lsh_verify_s"] for r in results)
        cc = statistics.median(r["components_s"] for r in results)
        lines.append(
            f"  local[{cores}]: signatures+LSH+verify {lsh:.1f} s ({mb / lsh / cores:.2f} MB/s/core), "
            f"components {cc:.1f} s ({results[0]['rounds']} rounds, {results[0]['edges']} edges), "
            f"end to end {mb / (lsh + cc):.2f} MB/s ({mb / (lsh + cc) / cores:.2f} MB/s/core)"
        )
    lines.append(quality_line(cfg))
    return "\n".join(lines)


def quality_line(cfg: MinHashConfig) -> str:
    from jobs.minhash_spark import near_duplicate_edges
    from jobs.spark_session import get_spark

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
