"""The crawl stage: a URL frontier processed level by level, one Spark task per host.

Each host's URLs of a level go to a single task, which fetches them one after another: one
connection per host, with its delay. The driver keeps the frontier, the seen set and each host's
state (robots.txt and tdmrep.json bodies, URLs requested, when the last response ended), which it
hands to that host's task at the next level: robots.txt is fetched once per host per crawl and
the politeness clock survives level boundaries. Tasks write their WARC file themselves into the
stage folder (`out_dir` must be a path every executor sees).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import pyarrow as pa

from core.config import CrawlConfig
from core.schema import DOCUMENT_SCHEMA, make_document
from jobs.crawl.fetch import Exchange, HostClient, Page, canonical_url, decode_body, parse_html, sniff_content_type
from jobs.crawl.optout import (
    ROBOTS_MAX_BYTES,
    RobotsRules,
    TdmRule,
    optout_decision,
    page_signals,
    parse_tdmrep,
    tdm_policy,
    tdmrep_match,
)
from jobs.crawl.warc_writer import WarcFile, warc_name

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
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class Scope:
    """Which URLs the crawl may request: seed hosts by default, else `allow_domains` (suffix
    match on labels), minus `deny_domains`; then the URL regexes (`re.search`)."""

    seed_hosts: set[str]
    allow_domains: list[str]
    deny_domains: list[str]
    allow: list[re.Pattern[str]]
    deny: list[re.Pattern[str]]

    @classmethod
    def from_config(cls, cfg: CrawlConfig, seeds: list[str]) -> Scope:
        hosts = {urlsplit(s).hostname or "" for s in seeds}
        compile_all = lambda ps: [re.compile(p) for p in ps]  # noqa: E731
        return cls(
            hosts,
            cfg.allow_domains,
            cfg.deny_domains,
            compile_all(cfg.allow_patterns),
            compile_all(cfg.deny_patterns),
        )

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        under = lambda ds: any(host == d or host.endswith("." + d) for d in ds)  # noqa: E731
        if parts.scheme not in ("http", "https") or under(self.deny_domains):
            return False
        if not (under(self.allow_domains) if self.allow_domains else host in self.seed_hosts):
            return False
        if any(p.search(url) for p in self.deny):
            return False
        return not self.allow or any(p.search(url) for p in self.allow)


@dataclass
class HostState:
    """What a host's task learned; the driver hands it to the host's task at the next level."""

    robots: dict[str, tuple[int, bytes, str | None]] = field(default_factory=dict)  # origin -> response
    tdmrep: dict[str, bytes] = field(default_factory=dict)  # origin -> tdmrep.json body (b"" if none)
    visited: set[str] = field(default_factory=set)  # canonical URLs requested, redirect hops included
    last_end: float = 0.0  # epoch seconds when the last response to this host ended
    hold_until: float = 0.0  # epoch seconds: no request before (the host's Retry-After)
    requests: int = 0


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _HostCrawl:
    """One host, one level: gates every URL (and redirect hop) before requesting it."""

    def __init__(
        self, cfg: CrawlConfig, scope: Scope, host: str, level: int, state: HostState, warc: WarcFile
    ) -> None:
        self.cfg, self.scope, self.host, self.level = cfg, scope, host, level
        self.state, self.warc = state, warc
        self.client = HostClient(cfg, state.last_end, state.hold_until)
        self._rules: dict[str, tuple[RobotsRules, list[TdmRule]]] = {}

    def policies(self, origin: str) -> tuple[RobotsRules, list[TdmRule]]:
        """robots.txt then tdmrep.json, each requested once per origin per crawl (TDMRep section
        3.1: the file is checked before any page); bodies are kept in the host state."""
        if origin not in self._rules:
            if origin not in self.state.robots:
                ex = self.client.get_following(origin + "/robots.txt")
                error = ":".join(filter(None, (ex.error, ex.detail))) or None
                self.state.robots[origin] = (ex.status, ex.body[:ROBOTS_MAX_BYTES], error)
            status, body, error = self.state.robots[origin]
            robots = RobotsRules.from_response(status, body, self.cfg.user_agent, error)
            usable = (robots.crawl_delay or 0) <= self.cfg.max_crawl_delay_s
            if usable:
                self.client.delay = max(self.client.delay, robots.crawl_delay or 0.0)
            tdm_url = origin + "/.well-known/tdmrep.json"
            if origin not in self.state.tdmrep:
                tdm = self.client.get_following(tdm_url) if usable and robots.allowed(tdm_url) else None
                self.state.tdmrep[origin] = tdm.body if tdm and tdm.status == 200 else b""
            self._rules[origin] = (robots, parse_tdmrep(self.state.tdmrep[origin]))
            self._flush_warc(omit_payload=False)
        return self._rules[origin]

    def gate(self, url: str) -> tuple[str, str | None, str | None] | None:
        """(decision, error, detail) when the URL must not be requested, else None."""
        if url in self.state.visited:
            return "duplicate", None, None
        robots, tdm = self.policies(_origin(url))
        blocked = self.state.robots[_origin(url)][2] or ""
        if blocked.startswith(("ssrf_blocked", "dns_error")):
            error, _, detail = blocked.partition(":")
            return "error", error, detail
        if not robots.allowed(url):
            return "robots_disallowed", None, robots.reason
        if (robots.crawl_delay or 0) > self.cfg.max_crawl_delay_s:
            return "robots_crawl_delay", None, f"{robots.crawl_delay:g}s"
        rule = tdmrep_match(tdm, url)
        if rule and rule.reserved and self.cfg.honor_ai_optout:
            return "optout_tdmrep", None, rule.policy
        return None

    def fetch(self, url: str) -> dict[str, Any]:
        """One frontier URL to one fetch log row; same-host redirects are followed in place."""
        rec, chain = _record(url, self.host, self.level), [url]
        while (hop := self._step(rec, chain)) is not None:
            chain.append(hop)
        return self._finish(rec)

    def _step(self, rec: dict[str, Any], chain: list[str]) -> str | None:
        """Gate and request `chain[-1]`: the next hop to follow, or None once `rec` is decided."""
        current = rec["final_url"] = chain[-1]
        if stop := self.gate(current):
            rec.update(decision=stop[0], error=stop[1], error_detail=stop[2])
            return None
        self.state.visited.add(current)
        ex, retries = self.client.get_retrying(current, tuple(self.cfg.allowed_content_types))
        rec.update(status=ex.status, retries=rec["retries"] + retries)
        rec["duration_ms"] += ex.duration_ms
        location = ex.header("location")
        if ex.error:
            rec.update(decision="error", error=ex.error, error_detail=ex.detail)
        elif 300 <= ex.status < 400 and location:
            return self._redirect(rec, chain, canonical_url(urljoin(current, location)))
        elif not 200 <= ex.status < 300:
            rec.update(decision="error", error=f"http_{ex.status}", error_detail=ex.detail)
        else:
            self._page(rec, ex)
        return None

    def _redirect(self, rec: dict[str, Any], chain: list[str], target: str) -> str | None:
        """Loops and chains longer than `max_redirects` are errors (RFC 9110 section 15.4); a
        target on another host (or out of scope) is not followed here but queued as a link, so
        its own host's task applies that host's robots.txt and politeness."""
        if target in chain or len(chain) > self.cfg.max_redirects:
            error = "redirect_loop" if target in chain else "too_many_redirects"
            rec.update(decision="error", error=error, error_detail=target)
            return None
        rec["redirects"] += 1
        if urlsplit(target).netloc != self.host or not self.scope.allows(target):
            rec.update(decision="redirected", error_detail=target, links=[target])
            return None
        return target

    def _page(self, rec: dict[str, Any], ex: Exchange) -> None:
        mime = ex.mime or sniff_content_type(ex.body)
        rec.update(content_type=mime, bytes=len(ex.body), truncated=ex.truncated == "length")
        if mime not in self.cfg.allowed_content_types:
            rec.update(decision="content_type_skipped", error="content_type", error_detail=mime)
            return
        text, charset, source = decode_body(ex.body, ex.charset, cut=rec["truncated"])
        page = parse_html(rec["final_url"], text) if mime in HTML_TYPES else Page([], [])
        signals = page_signals(ex.headers, page.metas, self.cfg.user_agent)
        rule = tdmrep_match(self.policies(_origin(rec["final_url"]))[1], rec["final_url"])
        if rule and rule.reserved:  # only reachable when opt-outs are recorded but not honoured
            signals.add("tdm-reservation")
        optout = optout_decision(signals) if self.cfg.honor_ai_optout else None
        rec.update(
            decision=optout or "fetched",
            html=None if optout else text,
            charset=f"{charset}:{source}",
            links=page.links,
            optout_signals=",".join(sorted(signals)),
            tdm_policy=tdm_policy(ex.headers, page.metas) or (rule.policy if rule else None),
            error="truncated" if rec["truncated"] else None,
        )

    def _finish(self, rec: dict[str, Any]) -> dict[str, Any]:
        record_id = self._flush_warc(omit_payload=rec["decision"].startswith("optout_"))
        rec.update(warc_file=self.warc.name, warc_record_id=record_id)
        fields = {k: str(rec[k] or "") for k in ("decision", "error", "final_url", "optout_signals")}
        self.warc.metadata(rec["url"], {**fields, "depth": str(self.level)}, record_id)
        return rec

    def _flush_warc(self, omit_payload: bool) -> str | None:
        record_id = None
        for ex in self.client.exchanges:
            record_id = self.warc.exchange(ex, omit_payload) or record_id
        self.state.requests += sum(1 for ex in self.client.exchanges if ex.ip)  # blocked: never sent
        self.client.exchanges.clear()
        return record_id


def _record(url: str, host: str, depth: int) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(FETCH_LOG_SCHEMA.names)
    rec.update(url=url, host=host, depth=depth, status=0, bytes=0, duration_ms=0, retries=0, redirects=0)
    rec.update(truncated=False, optout_signals="", html=None, charset=None, links=[])
    rec["fetched_at"] = datetime.now(UTC)
    return rec


def crawl_host(
    task: tuple[str, list[str], HostState | None], cfg: CrawlConfig, scope: Scope, level: int, out_dir: str
) -> tuple[list[dict[str, Any]], HostState]:
    """The Spark task: one host's URLs of one level, in order, into one WARC file."""
    host, urls, state = task
    state = state or HostState()
    with WarcFile(out_dir, warc_name(level, host), cfg.user_agent) as warc:
        worker = _HostCrawl(cfg, scope, host, level, state, warc)
        records = [worker.fetch(url) for url in urls]
    state.last_end, state.hold_until = worker.client.last_end, worker.client.hold_until
    return records, state


def to_document(rec: dict[str, Any]) -> dict[str, Any]:
    annotations = {
        "crawl.depth": str(rec["depth"]),
        "crawl.status": str(rec["status"]),
        "crawl.warc_file": rec["warc_file"],
        "crawl.warc_record_id": rec["warc_record_id"] or "",
        "crawl.optout_signals": rec["optout_signals"],
        "crawl.charset": rec["charset"] or "",
        "crawl.truncated": str(rec["truncated"]).lower(),
    }
    if rec["final_url"] != rec["url"]:
        annotations["crawl.requested_url"] = rec["url"]
    return make_document(
        "web",
        rec["final_url"],
        "",
        domain=urlsplit(rec["final_url"]).hostname,
        content_type=rec["content_type"],
        raw_content=rec["html"],
        fetched_at=rec["fetched_at"],
        annotations=annotations,
    )


def crawl(spark: SparkSession, cfg: CrawlConfig, out_dir: Path) -> dict[str, Any]:
    """Writes `data/` (web documents, raw HTML), `fetch_log/` and `warc/`; returns counters."""
    import pyarrow.parquet as pq

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
    levels = 0
    for level in range(cfg.max_depth + 1):
        by_host, frontier = _take(frontier, cfg, per_host, links), []
        if not by_host:
            break
        levels += 1
        tasks = [(host, urls, states.get(host)) for host, urls in sorted(by_host.items())]
        results = (
            spark.sparkContext.parallelize(tasks, len(tasks))
            .map(partial(crawl_host, cfg=cfg, scope=scope, level=level, out_dir=str(out_dir)))
            .collect()  # bodies pass through the driver: bounded by max_pages x max_bytes
        )
        recs = [r for host_recs, _ in results for r in host_recs]
        states.update((task[0], state) for task, (_, state) in zip(tasks, results, strict=True))
        docs = [to_document(r) for r in recs if r["decision"] == "fetched"]
        name = f"level-{level:03d}.parquet"
        pq.write_table(pa.Table.from_pylist(docs, schema=DOCUMENT_SCHEMA), out_dir / "data" / name)
        pq.write_table(pa.Table.from_pylist(recs, schema=FETCH_LOG_SCHEMA), out_dir / "fetch_log" / name)
        seen.update(r["final_url"] for r in recs)
        found = sorted({u for r in recs for u in r["links"]} - seen)
        seen.update(found)
        frontier = [u for u in found if scope.allows(u)]
        links["out_of_scope"] += len(found) - len(frontier)
    links["beyond_depth"] += len(frontier)
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
    import pyarrow.parquet as pq

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
