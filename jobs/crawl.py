"""The crawl stage: a URL frontier processed level by level, one Spark task per host.

Each host's URLs go to a single task, which fetches them one after another: at most one
connection per host, with its delay. The driver keeps the frontier and the seen set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa

from core.config import CrawlConfig
from core.schema import DOCUMENT_SCHEMA, make_document
from jobs.fetch import canonical_url, fetch_host

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)


def in_scope(url: str, hosts: set[str]) -> bool:
    return (urlsplit(url).hostname or "") in hosts


def to_document(rec: dict[str, Any]) -> dict[str, Any]:
    return make_document(
        "web",
        rec["url"],
        "",
        domain=rec["host"],
        content_type=rec["content_type"],
        raw_content=rec["html"],
        fetched_at=rec["fetched_at"],
        annotations={"crawl.depth": str(rec["depth"]), "crawl.status": str(rec["status"])},
    )


def crawl(spark: SparkSession, cfg: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Writes `data/` (web documents with raw HTML) and `fetch_log/`; returns counters."""
    import pyarrow.parquet as pq

    seeds = sorted({canonical_url(s) for s in cfg.seeds})
    hosts = {urlsplit(s).hostname or "" for s in seeds}
    seen, frontier, fetched = set(seeds), seeds, 0
    for d in ("data", "fetch_log"):
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    for depth in range(cfg.max_depth + 1):
        frontier = frontier[: max(cfg.max_pages - fetched, 0)]
        if not frontier:
            break
        by_host: dict[str, list[str]] = {}
        for url in frontier:
            by_host.setdefault(urlsplit(url).netloc, []).append(url)
        tasks = sorted(by_host.items())
        recs = (
            spark.sparkContext.parallelize(tasks, max(1, len(tasks)))
            .flatMap(lambda hu, d=depth: fetch_host(hu, cfg, d))
            .collect()  # bodies pass through the driver: bounded by max_pages x max_bytes
        )
        docs = [to_document(r) for r in recs if r["decision"] == "fetched"]
        fetched += len(docs)
        pq.write_table(
            pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA),
            out_dir / "data" / f"level-{depth:03d}.parquet",
        )
        pq.write_table(
            pa.Table.from_pylist(recs, schema=FETCH_LOG_SCHEMA),
            out_dir / "fetch_log" / f"level-{depth:03d}.parquet",
        )
        links = sorted({u for r in recs for u in r["links"] if in_scope(u, hosts)} - seen)
        seen.update(links)
        frontier = links
    return fetched_counts(out_dir)


def fetched_counts(out_dir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    log = pq.read_table(out_dir / "fetch_log").to_pylist()
    decisions: dict[str, int] = {}
    for r in log:
        key = r["decision"] if r["decision"] != "error" else f"error:{r['error']}"
        decisions[key] = decisions.get(key, 0) + 1
    return {"requests_planned": len(log), "decisions": decisions}
