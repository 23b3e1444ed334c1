"""Keeper priority and near-duplicate marking on a real SparkSession."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import DOCUMENT_SCHEMA, make_document
from jobs.dedup import near
from jobs.dedup.near import license_rank
from jobs.spark.near_dedup import mark_near_duplicates


@pytest.mark.parametrize(
    ("license_id", "rank"),
    [
        ("LicenseRef-Public-Domain", 0),
        ("CC0-1.0", 0),
        ("MIT", 1),
        ("Apache-2.0", 1),
        ("CC-BY-4.0", 1),
        ("GPL-3.0-only OR MIT", 1),  # the user's choice: the less restrictive
        ("LGPL-2.1", 2),
        ("CC-BY-SA-4.0", 2),
        ("GPL-2.0-or-later WITH Classpath-exception-2.0", 2),
        ("GPL-3.0", 3),
        ("AGPL-3.0", 3),
        ("MIT AND GPL-3.0-only", 3),  # both apply: the more restrictive
        ("CC-BY-NC-4.0", 4),
        ("Proprietary", 6),  # not an SPDX id: unknown
        (None, 6),
    ],
)
def test_license_rank(license_id: str | None, rank: int) -> None:
    assert license_rank(license_id) == rank


def test_keeper_priority_license_then_length_then_fetch_then_id(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    t0, t1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    docs = [
        make_document("web", "u/gpl", "same text longer version", license="GPL-3.0", fetched_at=t0),
        make_document("web", "u/mit-short", "same text", license="MIT", fetched_at=t1),
        make_document("web", "u/mit-long-late", "same text, a bit longer", license="MIT", fetched_at=t1),
        make_document("web", "u/mit-long-early", "same text, a bit longer", license="MIT", fetched_at=t0),
        make_document("web", "u/alone", "unrelated"),
    ]
    ids = {d["origin"]: d["id"] for d in docs}
    cluster = min(ids[o] for o in ("u/gpl", "u/mit-short", "u/mit-long-late", "u/mit-long-early"))
    comps = [(ids[o], cluster) for o in ("u/gpl", "u/mit-short", "u/mit-long-late", "u/mit-long-early")]
    pq.write_table(pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA), tmp_path / "docs.parquet")
    df = spark.read.parquet(str(tmp_path / "docs.parquet"))
    out = {
        r["id"]: r
        for r in mark_near_duplicates(
            df, spark.createDataFrame(comps, "id string, component string")
        ).collect()
    }
    keeper = ids["u/mit-long-early"]
    assert out[keeper]["reject_reason"] is None
    assert (
        out[ids["u/alone"]]["reject_reason"] is None
        and "dedup.cluster_id" not in out[ids["u/alone"]]["annotations"]
    )
    for origin in ("u/gpl", "u/mit-short", "u/mit-long-late"):
        row = out[ids[origin]]
        assert row["reject_reason"] == "minhash_duplicate"
        assert (
            row["annotations"]["dedup.keeper_id"] == keeper
            and row["annotations"]["dedup.cluster_id"] == cluster
        )


def _former_keeper_order() -> list[Any]:
    """The keeper order as the stage sorted it before the rule became plain (the mapping's oracle)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType

    rank = F.udf(lambda v: license_rank(v), IntegerType())
    score = F.col("annotations").getItem("quality.score").cast("double")
    return [
        rank("license").asc(),
        score.desc_nulls_last(),
        F.length("text").desc(),
        F.col("fetched_at").asc_nulls_last(),
        F.col("id").asc(),
    ]


def test_spark_keepers_equal_the_plain_rule_and_the_former_sort(spark, tmp_path: Path) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rng = random.Random(11)
    times = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC), None]
    texts = ["same text", "ééé text!", "abc text!", "same text, longer", "x" * 40]
    licences = ["MIT", "GPL-3.0", None, "Proprietary", "CC-BY-NC-4.0", "LGPL-2.1", "BSD-3-Clause"]
    scores = ["0.5", "0.9", "-0.0", "0", "NaN", "Infinity", "-inf", "1e400", " 0.5d", "0x1p-1", None]
    docs = []
    for i in range(400):
        score = rng.choice(scores)
        docs.append(
            make_document(
                "web",
                f"u/{i}",
                rng.choice(texts),
                license=rng.choice(licences),
                fetched_at=rng.choice(times),
                annotations={} if score is None else {"quality.score": score, "other": "x"},
            )
        )
    groups: dict[int, list[str]] = {}
    for d in docs:
        if rng.random() < 0.8:
            groups.setdefault(rng.randrange(60), []).append(d["id"])
    components = {i: min(ids) for ids in groups.values() for i in ids}
    pq.write_table(pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA), tmp_path / "docs.parquet")
    df = spark.read.parquet(str(tmp_path / "docs.parquet"))
    comps = spark.createDataFrame(sorted(components.items()), "id string, component string")

    def marks(rows: Iterable[dict[str, Any]]) -> dict[str, tuple[str | None, str | None, str | None]]:
        return {
            r["id"]: (
                r["reject_reason"],
                dict(r["annotations"]).get("dedup.cluster_id"),
                dict(r["annotations"]).get("dedup.keeper_id"),
            )
            for r in rows
        }

    got = marks(r.asDict() for r in mark_near_duplicates(df, comps).collect())
    read_back = pq.read_table(tmp_path / "docs.parquet").to_pylist()
    for row in read_back:
        row["annotations"] = dict(row["annotations"])
    plain = marks(near.mark_near_duplicates(read_back, components))
    w = Window.partitionBy("_cluster").orderBy(*_former_keeper_order())
    former_rows = (
        df.join(comps.withColumnRenamed("component", "_cluster"), "id")
        .select("id", "_cluster", F.first("id").over(w).alias("_keeper"))
        .collect()
    )
    former = {r["id"]: (r["_cluster"], r["_keeper"]) for r in former_rows}
    assert got == plain
    assert {i: m[1:] for i, m in got.items() if m[1] is not None} == former
    assert len(former) > 250 and len({k for _, k in former.values()}) == len(groups)
    assert sum(m[0] == "minhash_duplicate" for m in got.values()) == len(former) - len(groups)


def test_the_mapped_key_columns_are_the_plain_key_fields() -> None:
    from jobs.spark.near_dedup import _KEYS

    assert tuple(_KEYS.names) == ("_cluster", *near.KeeperKey._fields)
