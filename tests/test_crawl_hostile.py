"""The crawl stage on real Spark against the hostile local web (tests/hostile_web.py).

What the server saw is the evidence: no request to a robots-disallowed or TDM-reserved URL, no
host asked faster than its politeness allows, each duplicate variant asked once. The fetch log
must name every failure, and the WARC files must read back with verifying digests.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from core.config import ConfigError, CrawlConfig, load_config
from core.fetch_record import FETCH_LOG_SCHEMA, FetchRecord
from jobs.crawl.crawler import Scope, crawl_host
from jobs.spark.crawl import crawl
from tests.hostile_web import CP1252_TEXT, LATIN1_TEXT, HostileWeb, serve_hostile_web

DELAY_S = 0.2
MAX_DEPTH = 4


@dataclass
class Crawled:
    web: HostileWeb
    cfg: CrawlConfig
    out: Path
    stats: dict[str, Any]
    log: dict[str, dict[str, Any]]  # path (or full URL off the server) -> fetch log row
    docs: dict[str, dict[str, Any]]  # origin path -> document

    def paths(self, host: str = "127.0.0.1") -> list[str]:
        return [h.path for h in self.web.requests if h.host.startswith(host)]


def _key(url: str, web: HostileWeb) -> str:
    for base in (web.base_url, web.alt_url):
        if url.startswith(base):
            return ("alt:/" if base == web.alt_url else "/") + url[len(base) :]
    return url


def _rows(folder: Path) -> list[dict[str, Any]]:
    return pq.read_table(folder).to_pylist()


@pytest.fixture(scope="module")
def crawled(spark, tmp_path_factory) -> Iterator[Crawled]:  # type: ignore[no-untyped-def]
    with serve_hostile_web() as web:
        cfg = CrawlConfig(
            seeds=[web.base_url],
            allow_loopback=True,
            delay_s=DELAY_S,
            timeout_s=1.0,
            max_bytes=100_000,
            max_depth=MAX_DEPTH,
            max_retries=2,
            backoff_base_s=0.1,
            max_retry_wait_s=5,
            allow_domains=["127.0.0.1", "localhost", "10.0.0.1", "169.254.169.254"],
            deny_domains=["deny.localhost"],
            deny_patterns=["/denied-by-pattern/"],
        )
        out = tmp_path_factory.mktemp("crawl")
        stats = crawl(spark, cfg, out)
        log = {_key(r["url"], web): r for r in _rows(out / "fetch_log")}
        rows = _rows(out / "data")
        docs = {_key(d["origin"], web): {**d, "annotations": dict(d["annotations"])} for d in rows}
        yield Crawled(web, cfg, out, stats, log, docs)


def test_crawl_completes_with_counters(crawled: Crawled) -> None:
    s = crawled.stats
    assert sum(s["decisions"].values()) == s["requests_planned"] == len(crawled.log)
    assert s["pages_fetched"] == len(crawled.docs) == s["decisions"]["fetched"]
    assert s["skipped_robots"] == 4  # 2 disallowed, a redirect into one, localhost's /private/
    assert s["skipped_optout"] == 7  # 2 by tdmrep.json, a redirect into it, tdm header and meta, 2 noai
    assert s["errors_by_reason"] == {
        "content_type": 3,
        "http_404": 1,
        "http_503": 1,
        "redirect_loop": 1,
        "ssrf_blocked": 2,
        "timeout": 1,
        "too_many_redirects": 1,
        "truncated": 1,
    }
    assert s["http_requests"] == len(crawled.web.requests)
    assert s["hosts"] == 4 and s["levels"] == MAX_DEPTH + 1


def test_server_never_saw_disallowed_or_reserved_urls(crawled: Crawled) -> None:
    hits = crawled.web.requests
    forbidden = ("/disallowed/secret.html", "/notes.secret", "/reserved/", "/private/", "/denied-by-pattern/")
    assert [h for h in hits if h.path.startswith(forbidden)] == []
    assert not [h for h in hits if h.host.startswith("deny.")]
    assert {h.user_agent for h in hits} == {crawled.cfg.user_agent}
    # ... yet they are in the fetch log with the rule that stopped them
    assert crawled.log["/reserved/a.html"]["decision"] == "optout_tdmrep"
    assert crawled.log["/reserved/a.html"]["error_detail"] == "https://example.org/tdm-policy.json"
    assert crawled.log["/redirect-reserved"]["final_url"].endswith("/reserved/c.html")
    assert crawled.log["/redirect-disallowed"]["decision"] == "robots_disallowed"
    assert crawled.log["/disallowed/public.html"]["decision"] == "fetched"  # the longer Allow wins


def test_no_host_fetched_faster_than_its_politeness(crawled: Crawled) -> None:
    by_host: dict[str, list[float]] = {}
    for hit in crawled.web.requests:
        by_host.setdefault(hit.host.split(":")[0], []).append(hit.time)
    gaps = {h: min(b - a for a, b in itertools.pairwise(t)) for h, t in by_host.items()}
    assert gaps["127.0.0.1"] >= DELAY_S
    assert gaps["localhost"] >= 1.0  # its robots.txt says Crawl-delay: 1


def test_robots_and_tdmrep_fetched_once_per_host_per_crawl(crawled: Crawled) -> None:
    counts = Counter((h.host.split(":")[0], h.path) for h in crawled.web.requests)
    for host in ("127.0.0.1", "localhost"):
        assert counts[(host, "/robots.txt")] == 1
        assert counts[(host, "/.well-known/tdmrep.json")] == 1
    assert crawled.stats["levels"] == 5  # ... although each host had tasks at several levels
    first_pages = crawled.paths()[:3]
    assert first_pages == ["/robots.txt", "/.well-known/tdmrep.json", "/"]  # TDMRep: the file first


@pytest.mark.parametrize(
    ("key", "decision", "error", "retries", "server_hits"),
    [
        ("/slow", "error", "timeout", 0, 1),
        ("/always-503", "error", "http_503", 2, 3),
        ("/retry-503", "fetched", None, 2, 3),
        ("/retry-429", "fetched", None, 1, 2),
        ("/loop/a", "error", "redirect_loop", 0, 1),
        ("/chain/9", "error", "too_many_redirects", 0, 1),
        ("/chain/3", "fetched", None, 0, 1),
        ("/image.png", "content_type_skipped", "content_type", 0, 1),
        ("/download.bin", "content_type_skipped", "content_type", 0, 1),
        ("/unlabeled.bin", "content_type_skipped", "content_type", 0, 1),
        ("/huge", "fetched", "truncated", 0, 1),
        ("/missing", "error", "http_404", 0, 1),
        ("/redirect-metadata", "redirected", None, 0, 1),
        ("http://10.0.0.1/internal.html", "error", "ssrf_blocked", 0, 0),
        ("http://169.254.169.254/latest/meta-data/", "error", "ssrf_blocked", 0, 0),
    ],
)
def test_every_failure_is_logged_with_its_reason(
    crawled: Crawled, key: str, decision: str, error: str | None, retries: int, server_hits: int
) -> None:
    row = crawled.log[key]
    assert (row["decision"], row["error"], row["retries"]) == (decision, error, retries)
    assert crawled.paths().count(key) == server_hits


def test_redirect_rows_name_their_hops(crawled: Crawled) -> None:
    chain = crawled.log["/chain/9"]
    assert chain["redirects"] == 5 and chain["final_url"].endswith("/chain/4")
    assert crawled.paths().count("/chain/4") == 1 and "/chain/3" in crawled.paths()  # via /chain/3 itself
    assert crawled.log["/loop/a"]["error_detail"].endswith("/loop/a")
    assert crawled.log["/huge"]["truncated"] and crawled.log["/huge"]["bytes"] == crawled.cfg.max_bytes


def test_infinite_trap_is_bounded_by_max_depth(crawled: Crawled) -> None:
    trap = [p for p in crawled.paths() if p.startswith("/trap/")]
    assert trap == [f"/trap/{n}" for n in range(1, MAX_DEPTH + 1)]
    assert crawled.stats["links_skipped"]["beyond_depth"] == 1  # /trap/5, never requested


def test_duplicate_variants_are_fetched_once(crawled: Crawled) -> None:
    same = Counter(p for p in crawled.paths() if p.startswith("/same"))
    assert same == {"/same": 1, "/same/": 1, "/same/?a=1&b=2": 1}  # utm, fbclid, order, fragment collapse
    assert crawled.log["/same/"]["decision"] == "duplicate"  # reached first through /same's redirect
    assert crawled.docs["/same/"]["annotations"]["crawl.requested_url"].endswith("/same")
    retried = ("/retry-503", "/retry-429", "/always-503")
    assert all(n == 1 for p, n in Counter(crawled.paths()).items() if p not in retried)


def test_optout_pages_are_not_kept_and_signals_are_recorded(crawled: Crawled) -> None:
    for key in ("/noai-meta", "/noai-header", "/tdm-header", "/tdm-meta", "/reserved/a.html"):
        assert key not in crawled.docs
    assert crawled.log["/noai-meta"]["decision"] == "optout_noai"
    assert crawled.log["/noai-header"]["optout_signals"] == "noai"
    assert crawled.log["/tdm-header"]["tdm_policy"] == "https://example.org/p.json"
    assert crawled.docs["/noimageai"]["annotations"]["crawl.optout_signals"] == "noimageai"
    assert crawled.docs["/noai-otherbot"]["annotations"]["crawl.optout_signals"] == ""  # scoped to otherbot


def test_documents_are_decoded_and_annotated(crawled: Crawled) -> None:
    assert LATIN1_TEXT in crawled.docs["/latin1-as-utf8"]["raw_content"]
    assert CP1252_TEXT in crawled.docs["/cp1252-undeclared"]["raw_content"]
    assert crawled.docs["/huge"]["annotations"]["crawl.truncated"] == "true"
    assert "Broken" in crawled.docs["/broken"]["raw_content"] and "/broken-target.html" in crawled.docs
    for doc in crawled.docs.values():
        ann = doc["annotations"]
        assert doc["fetched_at"] and doc["domain"] in ("127.0.0.1", "localhost")
        assert doc["content_type"] == "text/html" and ann["crawl.status"] == "200"
        assert (crawled.out / ann["crawl.warc_file"]).is_file() and ann["crawl.depth"].isdigit()
    assert crawled.docs["/trap/4"]["annotations"]["crawl.depth"] == "4"


def _sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def test_warc_files_read_back_with_verified_digests(crawled: Crawled) -> None:
    files = sorted((crawled.out / "warc").glob("*.warc.gz"))
    assert len(files) == crawled.stats["warc_files"] and not list((crawled.out / "warc").glob("*.tmp"))
    assert files[0].name.startswith("level-000-host-")
    types: Counter[str] = Counter()
    responses: dict[str, tuple[str, bytes, str | None]] = {}
    for path in files:
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh, check_digests="raise"):
                payload = record.raw_stream.read()  # after the HTTP headers for request/response
                types[record.rec_type] += 1
                if record.rec_type == "warcinfo":
                    continue
                assert record.rec_headers.get_header("WARC-Payload-Digest") == _sha1_b32(payload)
                if record.rec_type == "response":
                    rid = record.rec_headers.get_header("WARC-Record-ID")
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    responses[rid] = (uri, payload, record.rec_headers.get_header("WARC-Truncated"))
    assert types["warcinfo"] == len(files)
    # every request that got a response (/slow timed out: nothing came back to archive)
    assert types["request"] == types["response"] == crawled.stats["http_requests"] - 1
    assert types["metadata"] == crawled.stats["requests_planned"]
    for doc in crawled.docs.values():
        uri, payload, _ = responses[doc["annotations"]["crawl.warc_record_id"]]
        assert uri == doc["origin"] and payload
    _, payload, truncated = responses[crawled.log["/noai-meta"]["warc_record_id"]]
    assert (payload, truncated) == (b"", "unspecified")  # reserved content is never persisted
    _, payload, truncated = responses[crawled.log["/huge"]["warc_record_id"]]
    assert (len(payload), truncated) == (crawled.cfg.max_bytes, "length")


@pytest.mark.parametrize("limit", [{"max_pages": 6}, {"max_pages_per_host": 6}])
def test_opt_outs_recorded_but_not_honoured_and_page_limits(spark, hostile_web, tmp_path, limit) -> None:  # type: ignore[no-untyped-def]
    seeds = [hostile_web.base_url + p for p in ("reserved/a.html", "noai-meta", "tdm-header", "trap/1")]
    cfg = CrawlConfig(seeds=seeds, allow_loopback=True, honor_ai_optout=False, max_depth=20, **limit)
    stats = crawl(spark, cfg, tmp_path)
    assert stats["requests_planned"] == 6
    assert stats["links_skipped"] == {"beyond_depth": 0, "out_of_scope": 0, "over_page_limits": 1}
    trap = [h.path for h in hostile_web.requests if h.path.startswith("/trap/")]
    assert trap == ["/trap/1", "/trap/2", "/trap/3"]
    docs = {d["origin"].rsplit("/", 1)[1]: dict(d["annotations"]) for d in _rows(tmp_path / "data")}
    assert docs["a.html"]["crawl.optout_signals"] == "tdm-reservation"  # from tdmrep.json
    assert docs["noai-meta"]["crawl.optout_signals"] == "noai,noimageai"
    assert docs["tdm-header"]["crawl.optout_signals"] == "tdm-reservation"
    assert stats["skipped_optout"] == 0 and stats["pages_fetched"] == 6


def test_fetch_record_row_is_the_fetch_log_schema() -> None:
    rec = FetchRecord("http://h/a", "h", 1, decision="fetched", final_url="http://h/a", html="<p>x</p>")
    assert list(rec.to_row()) == FETCH_LOG_SCHEMA.names  # html, charset, links stay out of the log
    assert pa.Table.from_pylist([rec.to_row()], schema=FETCH_LOG_SCHEMA).to_pylist()[0] == rec.to_row()


def test_unreachable_host_is_a_decision_not_a_crash(tmp_path: Path) -> None:
    cfg = CrawlConfig(allow_loopback=True, timeout_s=1, max_retries=0)
    scope = Scope.from_config(cfg, ["http://127.0.0.1:9/"])
    recs, state = crawl_host(("127.0.0.1:9", ["http://127.0.0.1:9/x"], None), cfg, scope, 0, str(tmp_path))
    # robots.txt unreachable => complete disallow (RFC 9309 section 2.3.1.4): nothing else is asked
    assert recs[0].decision == "robots_disallowed"
    assert recs[0].error_detail == "robots_unreachable:connection_refused"
    assert state.requests == 1 and recs[0].warc_file and (tmp_path / recs[0].warc_file).is_file()


@pytest.mark.parametrize(
    ("overrides", "url", "allowed"),
    [
        ({}, "http://seed.org/x", True),
        ({}, "http://other.org/x", False),
        ({}, "ftp://seed.org/x", False),
        ({"allow_domains": ["example.org"]}, "http://a.b.example.org/", True),
        ({"allow_domains": ["example.org"]}, "http://badexample.org/", False),  # labels, not characters
        ({"allow_domains": ["x.org"], "deny_domains": ["b.x.org"]}, "http://a.b.x.org/", False),
        ({"deny_patterns": [r"\?sort="]}, "http://seed.org/list?sort=asc", False),
        ({"allow_patterns": [r"/docs/"]}, "http://seed.org/blog/", False),
        ({"allow_patterns": [r"/docs/"]}, "http://seed.org/docs/a", True),
    ],
)
def test_scope_rules(overrides: dict[str, Any], url: str, allowed: bool) -> None:
    cfg = CrawlConfig(**overrides)
    assert Scope.from_config(cfg, ["http://seed.org/"]).allows(url) is allowed


def test_bad_scope_regex_fails_at_load_time() -> None:
    with pytest.raises(ConfigError, match=r"crawl\.deny_patterns.*not a valid regular expression"):
        load_config(overrides={"crawl": {"deny_patterns": ["(unclosed"]}})
