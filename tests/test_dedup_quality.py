"""Near-dedup recall and precision on real text with controlled edits, against brute force."""

from __future__ import annotations

import pytest

from core.config import MinHashConfig
from jobs.dedup.components import union_find
from jobs.dedup.evaluate import RATES, make_corpus, real_texts, score, true_jaccards


@pytest.fixture(scope="module")
def evaluation(spark):  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    from jobs.spark.minhash import near_duplicate_edges

    cfg = MinHashConfig()
    docs = make_corpus(real_texts(30), RATES, seed=0)
    truth = true_jaccards(docs, cfg, floor=0.5)
    df = spark.createDataFrame(docs, "id string, text string")
    edges, stats = near_duplicate_edges(df, cfg)
    found = {(r["a"], r["b"]) for r in edges.select("a", "b").collect()}
    jaccards = edges.select(F.min("jaccard").alias("m")).first()["m"]
    edges.unpersist()
    return cfg, docs, truth, found, stats, jaccards


def test_recall_and_precision_against_brute_force(evaluation) -> None:  # type: ignore[no-untyped-def]
    cfg, _, truth, found, stats, _ = evaluation
    quality = score(found, truth, cfg.threshold, margin=0.05)
    near = [j for j in truth.values() if cfg.threshold - 0.1 <= j < cfg.threshold + 0.1]
    assert quality.truth_pairs >= 100 and len(near) >= 20  # the edits really straddle the threshold
    assert quality.recall >= 0.95, quality.missed
    assert quality.precision >= 0.99
    assert stats["hit_probability_at_threshold"] >= 0.9


def test_verified_edges_are_above_threshold(evaluation) -> None:  # type: ignore[no-untyped-def]
    cfg, _, _, found, _, min_jaccard = evaluation
    assert found and min_jaccard >= cfg.threshold


def test_clusters_equal_union_find_of_the_edges(evaluation, spark) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.components import connected_components

    _, _, _, found, _, _ = evaluation
    edges = spark.createDataFrame(sorted(found), "src string, dst string")
    got = {r["id"]: r["component"] for r in connected_components(spark, edges).collect()}
    assert got == union_find(found)
