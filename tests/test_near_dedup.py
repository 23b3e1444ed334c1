"""Keeper priority and near-duplicate marking on a real SparkSession."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import DOCUMENT_SCHEMA, make_document
from jobs.dedup.near import license_rank, mark_near_duplicates


@pytest.mark.parametrize(
    ("license_id", "rank"),
    [
        ("MIT", 0),
        ("Apache-2.0", 0),
        ("LicenseRef-Public-Domain", 0),
        ("CC-BY-4.0", 0),
        ("LGPL-2.1", 1),
        ("CC-BY-SA-4.0", 1),
        ("GPL-3.0", 2),
        ("AGPL-3.0", 2),
        ("CC-BY-NC-4.0", 3),
        ("Proprietary", 3),
        (None, 4),
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
