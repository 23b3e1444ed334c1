"""The document contract: stable ids, strict rows, and a lossless Parquet round-trip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import (
    DOCUMENT_SCHEMA,
    REJECTED_SCHEMA,
    SOURCE_TYPES,
    document_id,
    documents_table,
    make_document,
)


def test_document_id_is_stable_and_pinned() -> None:
    first = document_id("web", "https://example.org/a")
    assert first == document_id("web", "https://example.org/a")
    assert len(first) == 32
    int(first, 16)  # hex
    # Golden values: ids must not change across releases, or every committed dataset changes identity.
    assert first == "68258acbdc6c1ca9ffd97ac69e2b92b8"
    assert document_id("book", "books/moby-dick.txt") == "051ffca13465fd2733e90893dcb113f0"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("web", "https://example.org/a"), ("web", "https://example.org/b")),
        (("web", "https://example.org/a"), ("social", "https://example.org/a")),
        (("code", "repo/x.py"), ("paper", "repo/x.py")),
        # Origins are taken verbatim: no trimming or case folding.
        (("web", "a"), ("web", "a ")),
    ],
)
def test_document_id_differs_by_source_or_origin(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert document_id(*a) != document_id(*b)


def test_all_source_types_have_distinct_ids() -> None:
    ids = {document_id(t, "same/origin") for t in SOURCE_TYPES}
    assert len(ids) == len(SOURCE_TYPES)


@pytest.mark.parametrize("source_type", ["html", "", "Web"])
def test_unknown_source_type_is_refused(source_type: str) -> None:
    with pytest.raises(ValueError, match=f"unknown source_type {source_type!r}"):
        document_id(source_type, "x")
    with pytest.raises(ValueError, match="unknown source_type"):
        make_document(source_type, "x", "text")


def test_make_document_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown document fields: \['score', 'title'\]"):
        make_document("web", "https://example.org/", "hi", title="t", score=1)


def test_make_document_fills_every_column() -> None:
    doc = make_document("code", "repo/a.py", "print(1)\n", license="MIT", domain="repo")
    assert list(doc) == DOCUMENT_SCHEMA.names
    assert doc["id"] == document_id("code", "repo/a.py")
    assert doc["annotations"] == {}
    assert doc["language"] is None
    assert doc["license"] == "MIT"


def test_documents_table_round_trips_through_parquet(tmp_path: Path) -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    rows = [
        make_document(
            "web",
            "https://example.org/a",
            "Hello world.",
            domain="example.org",
            language="en",
            fetched_at=when,
            annotations={"quality_score": "0.93", "dedup_cluster": "c17"},
        ),
        make_document("book", "books/b.txt", "Call me Ishmael.", license="PD", created_at=when),
        make_document("synthetic", "gen/0", ""),
    ]
    table = documents_table(rows)
    assert table.schema == DOCUMENT_SCHEMA
    path = tmp_path / "part-00000.parquet"
    pq.write_table(table, path)

    back = pq.read_table(path)
    assert back.schema == DOCUMENT_SCHEMA
    assert back.equals(table)
    out = back.to_pylist()
    # Map columns come back from Arrow as lists of (key, value) pairs.
    assert dict(out[0]["annotations"]) == {"quality_score": "0.93", "dedup_cluster": "c17"}
    assert out[1]["annotations"] == []
    assert out[0]["fetched_at"] == when
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert [r["text"] for r in out] == ["Hello world.", "Call me Ishmael.", ""]


def test_parquet_write_refuses_null_in_required_column(tmp_path: Path) -> None:
    row = make_document("web", "u", "t")
    row["origin"] = None
    table = documents_table([row])  # Arrow does not check nullability here...
    with pytest.raises(pa.ArrowInvalid, match="'origin' is declared non-nullable"):
        pq.write_table(table, tmp_path / "bad.parquet")  # ...but the Parquet writer does


def test_rejected_schema_extends_document_schema() -> None:
    n = len(DOCUMENT_SCHEMA)
    assert REJECTED_SCHEMA.names[:n] == DOCUMENT_SCHEMA.names
    for i, f in enumerate(DOCUMENT_SCHEMA):
        assert REJECTED_SCHEMA.field(i).equals(f)
    assert REJECTED_SCHEMA.names[n:] == ["reject_stage", "reject_reason"]
    assert all(REJECTED_SCHEMA.field(name).type == pa.string() for name in REJECTED_SCHEMA.names[n:])


def test_rejected_rows_round_trip(tmp_path: Path) -> None:
    row = make_document("web", "https://example.org/x", "short")
    row.update(reject_stage="quality", reject_reason="gopher_min_words:1")
    table = pa.Table.from_pylist([row], schema=REJECTED_SCHEMA)
    pq.write_table(table, tmp_path / "rej.parquet")
    back = pq.read_table(tmp_path / "rej.parquet")
    assert back.schema == REJECTED_SCHEMA
    assert back.column("reject_reason").to_pylist() == ["gopher_min_words:1"]
    # The document part of a rejected row reads back under the document schema.
    expected = documents_table([make_document("web", "https://example.org/x", "short")])
    assert back.select(DOCUMENT_SCHEMA.names).cast(DOCUMENT_SCHEMA).equals(expected)
