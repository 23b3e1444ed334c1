"""Spark driver of the crawl stage: the URL frontier level by level, one Spark task per host.

The driver keeps the frontier, the seen set and each host's `HostState`; each level's hosts run
`jobs.crawl.crawler.crawl_host` as one task each, which fetches that host's URLs one after
another and writes its WARC file itself into the stage folder (`out_dir` must be a path every
executor sees). Records come back to the driver as `FetchRecord`s and leave it as Parquet rows.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from core.config import CrawlConfig
from core.fetch_record import FETCH_LOG_SCHEMA
from core.schema import DOCUMENT_SCHEMA
from jobs.crawl.crawler import CrawlProgress, HostState, Scope, crawl_host, to_document
from jobs.web.urls import canonical_url

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def crawl(spark: SparkSession, cfg: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Writes `data/` (web documents, raw HTML), `fetch_log/` and `warc/`; returns counters."""
    out_dir = Path(out_dir)
    seeds = sorted({canonical_url(s) for s in cfg.seeds})
    scope = Scope.from_config(cfg, seeds)
    frontier = [s for s in seeds if scope.allows(s)]
    seen: set[str] = set(seeds)
    states: dict[str, HostState] = {}
    per_host: Counter[str] = Counter()
    links = Counter({"out_of_scope": len(seeds) - len(frontier)})
    for d in ("data", "fetch_log", "warc"):
        (out_dir / d).mkdir(parents=True, exist_ok=True)
    levels, progress = 0, CrawlProgress()  # per-level lines in the task log
    for level in range(cfg.max_depth + 1):
        by_host, frontier = _take(frontier, cfg, per_host, links), []
        if not by_host:
            break
        levels += 1
        progress.started(level, by_host)
        tasks = [(host, urls, states.get(host)) for host, urls in sorted(by_host.items())]
        results = (
            spark.sparkContext.parallelize(tasks, len(tasks))
            .map(partial(crawl_host, cfg=cfg, scope=scope, level=level, out_dir=str(out_dir)))
            .collect()  # bodies pass through the driver: bounded by max_pages x max_bytes
        )
        recs = [r for host_recs, _ in results for r in host_recs]
        states.update((task[0], state) for task, (_, state) in zip(tasks, results, strict=True))
        docs = [to_document(r) for r in recs if r.decision == "fetched"]
        name = f"level-{level:03d}.parquet"
        pq.write_table(pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA), out_dir / "data" / name)
        log = [r.to_row() for r in recs]
        pq.write_table(pa.Table.from_pylist(log, schema=FETCH_LOG_SCHEMA), out_dir / "fetch_log" / name)
        seen.update(r.final_url for r in recs)
        found = sorted({u for r in recs for u in r.links} - seen)
        seen.update(found)
        frontier = [u for u in found if scope.allows(u)]
        links["out_of_scope"] += len(found) - len(frontier)
        progress.finished(level, recs, queued=0 if level == cfg.max_depth else len(frontier))
    links["beyond_depth"] += len(frontier)
    if levels == 0:  # no seed in scope: empty tables, so that readers find the parts
        # (an empty folder is not committed)
        name = "level-000.parquet"
        pq.write_table(DOCUMENT_SCHEMA.empty_table(), out_dir / "data" / name)
        pq.write_table(FETCH_LOG_SCHEMA.empty_table(), out_dir / "fetch_log" / name)
    stats = fetched_counts(out_dir)
    stats.update(
        levels=levels,
        hosts=len(states),
        http_requests=sum(s.requests for s in states.values()),
        robots_checked=sum(len(s.robots) for s in states.values()),
        links_skipped=dict(sorted(links.items())),
        warc_files=len(list((out_dir / "warc").glob("*.warc.gz"))),
    )
    return stats


def _take(
    frontier: list[str], cfg: CrawlConfig, per_host: Counter[str], links: Counter[str]
) -> dict[str, list[str]]:
    """This level's URLs by host, within `max_pages` and `max_pages_per_host` (sorted: deterministic)."""
    by_host: dict[str, list[str]] = {}
    for url in frontier:
        host = urlsplit(url).netloc
        if per_host.total() >= cfg.max_pages or per_host[host] >= cfg.max_pages_per_host:
            links["over_page_limits"] += 1
            continue
        per_host[host] += 1
        by_host.setdefault(host, []).append(url)
    return by_host


def fetched_counts(out_dir: Path) -> dict[str, Any]:
    """Counters from the committed fetch log: every decision, failures as `error:<reason>`."""
    files = sorted((out_dir / "fetch_log").glob("*.parquet"))
    log = [r for f in files for r in pq.read_table(f).to_pylist()]
    decisions = Counter(r["decision"] if r["decision"] != "error" else f"error:{r['error']}" for r in log)
    return {
        "requests_planned": len(log),
        "pages_fetched": decisions["fetched"],
        "skipped_robots": sum(n for d, n in decisions.items() if d.startswith("robots_")),
        "skipped_optout": sum(n for d, n in decisions.items() if d.startswith("optout_")),
        "errors_by_reason": dict(sorted(Counter(r["error"] for r in log if r["error"]).items())),
        "decisions": dict(sorted(decisions.items())),
    }
