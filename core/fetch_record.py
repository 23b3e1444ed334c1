"""What the crawler knows about one frontier URL once it is decided: the fetch log row, plus the
decoded page and its links for the crawl driver.

A typed record instead of a dict, so the per-host crawl (jobs/crawl/crawler.py), the document it
becomes (`to_document`), the Spark driver that writes the fetch log (jobs/spark/crawl.py) and the
tests agree on names and types. The Parquet edge converts explicitly with `to_row()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

FETCH_LOG_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("host", pa.string()),
        ("depth", pa.int32()),
        ("status", pa.int32()),
        ("bytes", pa.int64()),
        ("duration_ms", pa.int64()),
        ("decision", pa.string()),
        ("error", pa.string()),
        ("error_detail", pa.string()),
        ("retries", pa.int32()),
        ("redirects", pa.int32()),
        ("final_url", pa.string()),
        ("content_type", pa.string()),
        ("truncated", pa.bool_()),
        ("optout_signals", pa.string()),
        ("tdm_policy", pa.string()),
        ("warc_file", pa.string()),
        ("warc_record_id", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class FetchRecord:
    """One requested URL (its redirect hops included); field names are the fetch log's columns."""

    url: str  # as taken from the frontier
    host: str  # the frontier's host key (`host[:port]`)
    depth: int
    status: int = 0  # last HTTP status; 0 when nothing answered
    bytes: int = 0
    duration_ms: int = 0  # all hops and retries together
    decision: str = ""  # fetched, duplicate, robots_*, optout_*, redirected, error, ...
    error: str | None = None
    error_detail: str | None = None
    retries: int = 0
    redirects: int = 0
    final_url: str = ""  # the last URL requested (or gated)
    content_type: str | None = None
    truncated: bool = False  # the body hit `max_bytes`
    optout_signals: str = ""  # comma-separated, sorted
    tdm_policy: str | None = None
    warc_file: str | None = None
    warc_record_id: str | None = None
    fetched_at: datetime = field(default_factory=_now)
    html: str | None = None  # decoded page, None unless kept; not logged
    charset: str | None = None  # `codec:source` of the decoding; not logged
    links: list[str] = field(default_factory=list)  # canonical links to queue; not logged

    def to_row(self) -> dict[str, Any]:
        """The fetch log row: exactly the columns of `FETCH_LOG_SCHEMA`."""
        return {name: getattr(self, name) for name in FETCH_LOG_SCHEMA.names}
