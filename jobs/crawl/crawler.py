"""The crawl logic: which URLs are in scope, and one host's URLs of one level fetched in order.

The crawl proceeds level by level, each host's URLs of a level handled by `crawl_host` on a
single connection with its delay. What a host's task learned (robots.txt and tdmrep.json bodies,
URLs requested, when the last response ended) is its `HostState`, which the driver hands to that
host's task at the next level: robots.txt is fetched once per host per crawl and the politeness
clock survives level boundaries. Each task writes its own WARC file. The Spark driver that keeps
the frontier and runs the tasks is jobs/spark/crawl.py; nothing here knows the engine.

Progress: each host's task logs one line when its URLs of a level are done, and `CrawlProgress`
gives the driver one line when a level starts and one when it ends (fetched, failed, skipped by
robots.txt and opt-outs, URLs queued for the next level, hosts, elapsed time), so a crawl of hours
can be followed in its task log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.config import CrawlConfig
from core.fetch_record import FetchRecord
from core.schema import make_document
from jobs.crawl.fetch import Exchange, HostClient, HostDeadline, Page, parse_html
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
from jobs.web import urls
from jobs.web.charset import decode
from jobs.web.mime import sniff_content_type

HTML_TYPES = ("text/html", "application/xhtml+xml")

log = logging.getLogger("lmforge.crawl")


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
        hosts = {urls.host(s) for s in seeds}
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


class _HostCrawl:
    """One host, one level: gates every URL (and redirect hop) before requesting it.

    `host_deadline_s` bounds the task: once past it (or when a wait or request would cross it)
    the URL at hand and every one after it are logged `error`/`host_deadline` without a request;
    pages fetched before are kept. Robots.txt or tdmrep.json cut off by it are not remembered, so
    the next level asks again instead of treating the host as unreachable or unreserved.
    """

    def __init__(
        self, cfg: CrawlConfig, scope: Scope, host: str, level: int, state: HostState, warc: WarcFile
    ) -> None:
        self.cfg, self.scope, self.host, self.level = cfg, scope, host, level
        self.state, self.warc = state, warc
        deadline = time.monotonic() + cfg.host_deadline_s
        self.client = HostClient(cfg, state.last_end, state.hold_until, deadline)
        self._rules: dict[str, tuple[RobotsRules, list[TdmRule]]] = {}

    def policies(self, origin: str) -> tuple[RobotsRules, list[TdmRule]]:
        """robots.txt then tdmrep.json, each requested once per origin per crawl (TDMRep section
        3.1: the file is checked before any page); bodies are kept in the host state."""
        if origin not in self._rules:
            try:
                self._rules[origin] = self._load_policies(origin)
            finally:  # the policy files' exchanges are archived apart from the page's
                self._flush_warc(omit_payload=False)
        return self._rules[origin]

    def _load_policies(self, origin: str) -> tuple[RobotsRules, list[TdmRule]]:
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
        return robots, parse_tdmrep(self.state.tdmrep[origin])

    def gate(self, url: str) -> tuple[str, str | None, str | None] | None:
        """(decision, error, detail) when the URL must not be requested, else None."""
        if url in self.state.visited:
            return "duplicate", None, None
        robots, tdm = self.policies(urls.origin(url))
        blocked = self.state.robots[urls.origin(url)][2] or ""
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

    def fetch(self, url: str) -> FetchRecord:
        """One frontier URL to one fetch record; same-host redirects are followed in place."""
        rec, chain = FetchRecord(url, self.host, self.level), [url]
        try:
            if time.monotonic() >= self.client.deadline:
                raise HostDeadline(url)
            while (hop := self._step(rec, chain)) is not None:
                chain.append(hop)
        except HostDeadline:
            rec.final_url = rec.final_url or url
            rec.decision, rec.error = "error", "host_deadline"
            rec.error_detail = f"{self.cfg.host_deadline_s:g}s"
        return self._finish(rec)

    def _step(self, rec: FetchRecord, chain: list[str]) -> str | None:
        """Gate and request `chain[-1]`: the next hop to follow, or None once `rec` is decided."""
        current = rec.final_url = chain[-1]
        if stop := self.gate(current):
            rec.decision, rec.error, rec.error_detail = stop
            return None
        self.state.visited.add(current)
        ex, retries = self.client.get_retrying(current, tuple(self.cfg.allowed_content_types))
        rec.status, rec.retries = ex.status, rec.retries + retries
        rec.duration_ms += ex.duration_ms
        location = ex.header("location")
        if ex.error:
            rec.decision, rec.error, rec.error_detail = "error", ex.error, ex.detail
        elif 300 <= ex.status < 400 and location:
            return self._redirect(rec, chain, urls.absolute_url(current, location))
        elif not 200 <= ex.status < 300:
            rec.decision, rec.error, rec.error_detail = "error", f"http_{ex.status}", ex.detail
        else:
            self._page(rec, ex)
        return None

    def _redirect(self, rec: FetchRecord, chain: list[str], target: str) -> str | None:
        """Loops and chains longer than `max_redirects` are errors (RFC 9110 section 15.4); a
        target on another host (or out of scope) is not followed here but queued as a link, so
        its own host's task applies that host's robots.txt and politeness."""
        if target in chain or len(chain) > self.cfg.max_redirects:
            error = "redirect_loop" if target in chain else "too_many_redirects"
            rec.decision, rec.error, rec.error_detail = "error", error, target
            return None
        rec.redirects += 1
        if urlsplit(target).netloc != self.host or not self.scope.allows(target):
            rec.decision, rec.error_detail, rec.links = "redirected", target, [target]
            return None
        return target

    def _page(self, rec: FetchRecord, ex: Exchange) -> None:
        mime = ex.mime or sniff_content_type(ex.body)
        rec.content_type, rec.bytes, rec.truncated = mime, len(ex.body), ex.truncated == "length"
        if mime not in self.cfg.allowed_content_types:
            rec.decision, rec.error, rec.error_detail = "content_type_skipped", "content_type", mime
            return
        page_text = decode(ex.body, ex.charset, cut=rec.truncated)
        page = parse_html(rec.final_url, page_text.text) if mime in HTML_TYPES else Page([], [])
        signals = page_signals(ex.headers, page.metas, self.cfg.user_agent)
        rule = tdmrep_match(self.policies(urls.origin(rec.final_url))[1], rec.final_url)
        if rule and rule.reserved:  # only reachable when opt-outs are recorded but not honoured
            signals.add("tdm-reservation")
        optout = optout_decision(signals) if self.cfg.honor_ai_optout else None
        rec.decision = optout or "fetched"
        rec.html = None if optout else page_text.text
        rec.charset = f"{page_text.codec}:{page_text.source}"
        rec.links = page.links
        rec.optout_signals = ",".join(sorted(signals))
        rec.tdm_policy = tdm_policy(ex.headers, page.metas) or (rule.policy if rule else None)
        rec.error = "truncated" if rec.truncated else None

    def _finish(self, rec: FetchRecord) -> FetchRecord:
        record_id = self._flush_warc(omit_payload=rec.decision.startswith("optout_"))
        rec.warc_file, rec.warc_record_id = self.warc.name, record_id
        fields = {
            "decision": rec.decision,
            "error": rec.error or "",
            "final_url": rec.final_url,
            "optout_signals": rec.optout_signals,
        }
        self.warc.metadata(rec.url, {**fields, "depth": str(self.level)}, record_id)
        return rec

    def _flush_warc(self, omit_payload: bool) -> str | None:
        record_id = None
        for ex in self.client.exchanges:
            record_id = self.warc.exchange(ex, omit_payload) or record_id
        self.state.requests += sum(1 for ex in self.client.exchanges if ex.ip)  # blocked: never sent
        self.client.exchanges.clear()
        return record_id


def crawl_host(
    task: tuple[str, list[str], HostState | None], cfg: CrawlConfig, scope: Scope, level: int, out_dir: str
) -> tuple[list[FetchRecord], HostState]:
    """One task: one host's URLs of one level, in order, into one WARC file in `out_dir`; the
    task's clock (`host_deadline_s`) starts here, so a stuck host cannot hold its level past it."""
    host, pending, state = task
    state = state or HostState()
    start = time.monotonic()
    with WarcFile(out_dir, warc_name(level, host), cfg.user_agent) as warc:
        worker = _HostCrawl(cfg, scope, host, level, state, warc)
        records = [worker.fetch(url) for url in pending]
    state.last_end, state.hold_until = worker.client.last_end, worker.client.hold_until
    _task_log().info(
        "crawl level %d host %s: %s in %.1f s", level, host, tally(records).text(), time.monotonic() - start
    )
    return records, state


def _task_log() -> logging.Logger:
    """The crawl logger, made to write to stderr in a Spark Python worker (which configures no
    logging): local Spark passes a worker's stderr on to the driver's, so to the task log."""
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


@dataclass
class Tally:
    """What became of a batch of frontier URLs, by the fetch log's decision."""

    urls: int = 0
    fetched: int = 0
    failed: int = 0  # decision `error`: HTTP errors, timeouts, blocked addresses, host deadline
    robots: int = 0  # robots.txt disallowed it, or asked for a longer crawl delay than allowed
    optout: int = 0  # an AI opt-out (meta, header, TDMRep)
    other: int = 0  # redirected elsewhere, duplicate, content type skipped
    links: int = 0  # links found on the pages (before the seen set and scope)

    def text(self) -> str:
        return (
            f"{self.urls} URLs: {self.fetched} fetched, {self.failed} failed, {self.robots} skipped by "
            f"robots.txt, {self.optout} opted out, {self.other} other; {self.links} links found"
        )


def tally(records: Iterable[FetchRecord]) -> Tally:
    t = Tally()
    for rec in records:
        t.urls += 1
        t.links += len(rec.links)
        if rec.decision == "fetched":
            t.fetched += 1
        elif rec.decision == "error":
            t.failed += 1
        elif rec.decision.startswith("robots_"):
            t.robots += 1
        elif rec.decision.startswith("optout_"):
            t.optout += 1
        else:
            t.other += 1
    return t


class CrawlProgress:
    """The driver's per-level log lines; the clock starts when it is made.

    Usage (jobs/spark/crawl.py): `started(level, by_host)` before a level's tasks run,
    `finished(level, records, queued)` after, with the next level's frontier size.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log, self.start = logger, time.monotonic()
        self.level_start = self.start
        self.totals = Counter[str]()

    def started(self, level: int, by_host: dict[str, list[str]]) -> None:
        self.level_start = time.monotonic()
        urls = sum(len(u) for u in by_host.values())
        self.log.info("crawl level %d started: %d URLs on %d hosts", level, urls, len(by_host))

    def finished(self, level: int, records: list[FetchRecord], queued: int) -> Tally:
        now = time.monotonic()
        t = tally(records)
        self.totals.update({"urls": t.urls, "fetched": t.fetched, "failed": t.failed, "robots": t.robots})
        hosts = len({r.host for r in records})
        self.log.info(
            "crawl level %d done in %.1f s (%.1f s since the crawl started): %s; %d hosts; "
            "%d URLs queued for level %d; so far %d URLs, %d fetched, %d failed, %d skipped by robots.txt",
            level,
            now - self.level_start,
            now - self.start,
            t.text(),
            hosts,
            queued,
            level + 1,
            *(self.totals[k] for k in ("urls", "fetched", "failed", "robots")),
        )
        return t


def to_document(rec: FetchRecord) -> dict[str, Any]:
    """A fetched page as a `web` document; the raw HTML goes to `raw_content` for extraction."""
    annotations = {
        "crawl.depth": str(rec.depth),
        "crawl.status": str(rec.status),
        "crawl.warc_file": rec.warc_file or "",
        "crawl.warc_record_id": rec.warc_record_id or "",
        "crawl.optout_signals": rec.optout_signals,
        "crawl.charset": rec.charset or "",
        "crawl.truncated": str(rec.truncated).lower(),
    }
    if rec.tdm_policy:  # TDMRep sections 3.1-3.3: where to ask for a TDM licence (jobs/copyright/optout.py)
        annotations["crawl.tdm_policy"] = rec.tdm_policy
    if rec.final_url != rec.url:
        annotations["crawl.requested_url"] = rec.url
    return make_document(
        "web",
        rec.final_url,
        "",
        domain=urlsplit(rec.final_url).hostname,
        content_type=rec.content_type,
        raw_content=rec.html,
        fetched_at=rec.fetched_at,
        annotations=annotations,
    )
