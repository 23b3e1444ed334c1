"""Hostile input to the crawler and the extractor (issue 12): every limit holds, costs stay bounded.

Pathological robots.txt/TDMRep wildcards, a server dripping header bytes, a stuck host, 200 KB of
unfinished `<a` tags, oversized and slow-to-extract HTML, and a host asking for a two-minute
Crawl-delay. Parser costs are measured in a child process (tests/bounded.py: peak memory above
the child's baseline and wall time), against generous bounds: they test boundedness, not speed.
Each limit hit must leave a record with a named reason, and the good URLs or pages around it must
be kept.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from core.config import CrawlConfig, ExtractConfig
from core.fetch_record import FETCH_LOG_SCHEMA
from core.schema import make_document
from jobs.crawl.crawler import HostState, Scope, crawl_host
from jobs.crawl.fetch import HostClient, HostDeadline, http_get, parse_html
from jobs.crawl.optout import parse_robots, parse_tdmrep, path_pattern, tdmrep_match
from jobs.extract.html import extract_row, extract_row_with
from jobs.spark.arrow_map import split_rows
from tests.bounded import run_bounded
from tests.hostile_web import DRIP_S, HostileWeb, serve_hostile_web

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

UA = "LMForgeBot/0.1 (+https://github.com/lmforge)"
MAX_PEAK_MIB = 128.0
MAX_SECONDS = 10.0
PATHOLOGICAL = "/" + "a*" * 12 + "b"  # a dozen `*`: a backtracking regex needs minutes per URL


def _host(url: str) -> str:
    return url.split("/")[2]


# --- 1. robots.txt and TDMRep wildcards: linear matching, RFC 9309 semantics kept ---------------

# Google's robots.txt documentation, "URL matching based on path values"; RFC 9309 section 2.2.3
# (`*` any sequence, `$` end) and section 2.2.2 (percent-encoding: escaped unreserved octets
# decoded, non-ASCII escaped as UTF-8).
PATH_TABLE = [
    ("/", "/", True),
    ("/", "/anything/at/all", True),
    ("/*", "/anything", True),
    ("/fish", "/fish", True),
    ("/fish", "/fish.html", True),
    ("/fish", "/fish/salmon.html", True),
    ("/fish", "/fishheads/yummy.html", True),
    ("/fish", "/fish.php?id=anything", True),
    ("/fish", "/Fish.asp", False),
    ("/fish", "/catfish", False),
    ("/fish", "/?id=fish", False),
    ("/fish", "/desert/fish", False),
    ("/fish*", "/fishheads", True),
    ("/fish*", "/catfish", False),
    ("/fish/", "/fish/", True),
    ("/fish/", "/fish/?id=anything", True),
    ("/fish/", "/fish/salmon.htm", True),
    ("/fish/", "/fish", False),
    ("/fish/", "/fish.html", False),
    ("/fish/", "/animals/fish/", False),
    ("/*.php", "/index.php", True),
    ("/*.php", "/folder/filename.php?parameters", True),
    ("/*.php", "/folder/any.php.file.html", True),
    ("/*.php", "/filename.php/", True),
    ("/*.php", "/", False),
    ("/*.php", "/windows.PHP", False),
    ("/*.php$", "/filename.php", True),
    ("/*.php$", "/folder/filename.php", True),
    ("/*.php$", "/filename.php?parameters", False),
    ("/*.php$", "/filename.php/", False),
    ("/*.php$", "/filename.php5", False),
    ("/fish*.php", "/fish.php", True),
    ("/fish*.php", "/fishheads/catfish.php?parameters", True),
    ("/fish*.php", "/Fish.PHP", False),
    ("/this/path/exactly$", "/this/path/exactly", True),
    ("/this/path/exactly$", "/this/path/exactly/", False),
    ("/a*b*c$", "/abcabc", True),  # the last piece must end the path, not just occur
    ("/a*b*c$", "/abcab", False),
    ("/a*$", "/a", True),
    ("/a$b", "/a$b", True),  # only a final `$` anchors; elsewhere it is a character
    ("/foo/bar/\u30c4", "/foo/bar/%E3%83%84", True),  # RFC 9309 section 2.2.2 table
    ("/foo/bar/%62%61%7A", "/foo/bar/baz", True),
    ("/a%3cb", "/a%3Cb", True),
    (PATHOLOGICAL, "/" + "a" * 10_000 + "b", True),
    (PATHOLOGICAL, "/" + "a" * 10_000, False),
]


@pytest.mark.parametrize(("pattern", "path", "matches"), PATH_TABLE)
def test_path_pattern_table(pattern: str, path: str, matches: bool) -> None:
    assert path_pattern(pattern).match(path) is matches
    robots = parse_robots(f"User-agent: *\nDisallow: {pattern}\n", UA)
    assert robots.allowed("http://h" + path) is (not matches or path == "/robots.txt")


def _reference(pattern: str) -> re.Pattern[str]:
    """The regex translation the matcher replaces (fine on short inputs, exponential on long)."""
    parsed = path_pattern(pattern)
    return re.compile(".*".join(map(re.escape, parsed.pieces)) + ("$" if parsed.anchored else ""))


def test_path_pattern_agrees_with_the_regex_on_random_short_inputs() -> None:
    rng = random.Random(9309)
    for _ in range(20_000):
        pattern = "/" + "".join(rng.choice("ab/*$") for _ in range(rng.randint(0, 7)))
        path = "/" + "".join(rng.choice("ab/$") for _ in range(rng.randint(0, 9)))
        assert path_pattern(pattern).match(path) is bool(_reference(pattern).match(path)), (pattern, path)


def test_longest_match_wins_and_allow_wins_ties() -> None:  # RFC 9309 section 2.2.2
    rules = parse_robots("User-agent: *\nDisallow: /*.gif$\nAllow: /img/*\nAllow: /x\nDisallow: /x\n", UA)
    assert not rules.allowed("http://h/a.gif") and rules.allowed("http://h/img/a.gif")  # 7 chars > 6
    assert rules.allowed("http://h/x") and rules.allowed("http://h/img/a.gif?v=1")


def robots_pathological(path_len: int, urls: int) -> dict[str, Any]:
    """Driver: the pathological pattern in robots.txt and tdmrep.json against long paths of `a`s."""
    robots = parse_robots(f"User-agent: *\nDisallow: {PATHOLOGICAL}\nDisallow: /*a*a*a*a*a*a*a*a$\n", UA)
    tdm = parse_tdmrep(f'[{{"location": "{PATHOLOGICAL}", "tdm-reservation": 1}}]'.encode())
    allowed = reserved = 0
    for i in range(urls):
        url = "http://h/" + "a" * (path_len - i) + ("", "/", "b")[i % 3]
        allowed += robots.allowed(url)
        reserved += tdmrep_match(tdm, url) is not None
    return {"allowed": allowed, "reserved": reserved}


def test_pathological_wildcards_are_bounded() -> None:
    cost = run_bounded("tests.test_hostile_crawl:robots_pathological", 10_000, 300)
    assert cost.result == {"allowed": 100, "reserved": 100}  # only paths ending in `/` are allowed
    assert cost.seconds < MAX_SECONDS and cost.peak_above_baseline_mib < MAX_PEAK_MIB


def test_pathological_robots_on_a_real_host_keeps_good_urls(tmp_path: Path) -> None:
    robots = f"User-agent: *\nDisallow: {PATHOLOGICAL}\n".encode()
    with serve_hostile_web(robots=robots) as web:
        cfg = CrawlConfig(allow_loopback=True, max_retries=0, timeout_s=2)
        blocked, long_404 = web.base_url + "a" * 5_000 + "b", web.base_url + "a" * 5_000
        start = time.monotonic()
        recs, _ = crawl_host(
            (_host(web.base_url), [web.base_url, blocked, long_404], None),
            cfg,
            Scope.from_config(cfg, [web.base_url]),
            0,
            str(tmp_path),
        )
        assert time.monotonic() - start < MAX_SECONDS
        assert [(r.decision, r.error) for r in recs] == [
            ("fetched", None),
            ("robots_disallowed", None),
            ("error", "http_404"),  # allowed, so asked (the server has no such page)
        ]
        assert recs[1].error_detail == "robots_txt"
        assert "/" + "a" * 5_000 + "b" not in [h.path for h in web.requests]


# --- 2. a server dripping header bytes: `timeout_s` is the whole request's time -------------------


def test_dripping_headers_hit_the_total_timeout(hostile_web: HostileWeb) -> None:
    cfg = CrawlConfig(allow_loopback=True, timeout_s=1.0, max_retries=0)
    client = HostClient(cfg)
    start = time.monotonic()
    ex, _ = client.get_retrying(hostile_web.base_url + "drip-headers")
    took = time.monotonic() - start
    assert (ex.status, ex.error, ex.detail, ex.truncated) == (0, "timeout", "1s", None)
    assert took < 2.0 and took / DRIP_S > 3  # several bytes arrived, none restarted the clock
    good, _ = client.get_retrying(hostile_web.base_url + "same/")  # the same client goes on
    assert (good.status, good.error) == (200, None) and b"/same/" in good.body


def test_trickled_body_keeps_what_arrived_within_the_deadline(hostile_web: HostileWeb) -> None:
    start = time.monotonic()
    ex = http_get(hostile_web.base_url + "trickle", CrawlConfig(allow_loopback=True, timeout_s=0.5))
    assert (ex.status, ex.error, ex.truncated, len(ex.body)) == (200, "timeout", "time", 500)
    assert time.monotonic() - start < 1.5


def test_dripping_host_in_a_crawl_is_a_logged_timeout(hostile_web: HostileWeb, tmp_path: Path) -> None:
    cfg = CrawlConfig(allow_loopback=True, timeout_s=1.0, max_retries=0)
    urls = [hostile_web.base_url + p for p in ("drip-headers", "noimageai")]
    start = time.monotonic()
    recs, _ = crawl_host(
        (_host(hostile_web.base_url), urls, None), cfg, Scope.from_config(cfg, urls), 0, str(tmp_path)
    )
    assert time.monotonic() - start < 4.0
    assert [(r.decision, r.error, r.error_detail) for r in recs] == [
        ("error", "timeout", "1s"),
        ("fetched", None, None),
    ]
    assert recs[0].to_row()["error"] == "timeout" and list(recs[0].to_row()) == FETCH_LOG_SCHEMA.names


# --- 3. a stuck host: `host_deadline_s` ends its task, pages so far kept ---------------------------


def test_host_deadline_stops_the_task_and_keeps_earlier_pages(
    hostile_web: HostileWeb, tmp_path: Path
) -> None:
    cfg = CrawlConfig(allow_loopback=True, timeout_s=10, host_deadline_s=1.5, max_retries=0)
    urls = [hostile_web.base_url + p for p in ("", "slow", "same/", "noimageai")]  # /slow: 3 s
    start = time.monotonic()
    recs, state = crawl_host(
        (_host(hostile_web.base_url), urls, None), cfg, Scope.from_config(cfg, urls), 0, str(tmp_path)
    )
    assert time.monotonic() - start < 1.5 + 1.0  # not /slow's 3 s, nor its 10 s timeout
    assert [(r.decision, r.error, r.error_detail) for r in recs] == [
        ("fetched", None, None),
        ("error", "host_deadline", "1.5s"),  # asked, cut off by the deadline
        ("error", "host_deadline", "1.5s"),  # never asked
        ("error", "host_deadline", "1.5s"),
    ]
    assert recs[0].html and recs[0].links
    paths = [h.path for h in hostile_web.requests]
    assert "/slow" in paths and "/same/" not in paths and "/noimageai" not in paths
    assert [r.final_url for r in recs] == urls and all(r.warc_file for r in recs)
    assert state.requests == 4  # robots.txt, tdmrep.json, /, /slow
    assert (tmp_path / str(recs[0].warc_file)).is_file()


def test_policy_files_cut_off_by_the_deadline_are_not_remembered(
    hostile_web: HostileWeb, tmp_path: Path
) -> None:
    """A tdmrep.json not read because of the deadline must not count as "no reservations"."""
    cfg = CrawlConfig(allow_loopback=True, delay_s=2.0, host_deadline_s=1.0, max_retries=0)
    urls = [hostile_web.base_url + "reserved/a.html"]
    recs, state = crawl_host(
        (_host(hostile_web.base_url), urls, HostState()), cfg, Scope.from_config(cfg, urls), 0, str(tmp_path)
    )
    assert (recs[0].decision, recs[0].error) == ("error", "host_deadline")
    origin = hostile_web.base_url.rstrip("/")
    assert origin in state.robots and origin not in state.tdmrep  # asked again next level
    assert [h.path for h in hostile_web.requests] == ["/robots.txt"]  # the 2 s delay would cross it


def test_host_client_refuses_to_start_past_its_deadline(hostile_web: HostileWeb) -> None:
    client = HostClient(CrawlConfig(allow_loopback=True), deadline=time.monotonic() - 1)
    with pytest.raises(HostDeadline):
        client.get(hostile_web.base_url)
    assert hostile_web.requests == [] and client.exchanges == []


# --- 4. 200 KB of unfinished `<a` tags: link and meta parsing stays linear -------------------------


def unclosed_tags(count: int) -> dict[str, Any]:
    """Driver: the crawler's link/meta parser, then both extractors, on `count` unfinished `<a`."""
    html = "<a" * count
    page = parse_html("http://h/", html)
    reasons = {}
    for extractor in ("trafilatura", "resiliparse"):
        row = make_document("web", "http://h/", raw_content=html)
        reasons[extractor] = extract_row(row, ExtractConfig(extractor=extractor))[1]
    return {"links": len(page.links), "metas": len(page.metas), "reasons": reasons}


def test_unclosed_tags_parse_in_bounded_time_and_memory() -> None:
    cost = run_bounded("tests.test_hostile_crawl:unclosed_tags", 100_000)
    assert cost.result["links"] == cost.result["metas"] == 0
    assert set(cost.result["reasons"].values()) == {"extract_no_text:0"}
    assert cost.seconds < MAX_SECONDS and cost.peak_above_baseline_mib < MAX_PEAK_MIB


def test_unclosed_tags_page_is_crawled_next_to_good_ones(hostile_web: HostileWeb, tmp_path: Path) -> None:
    cfg = CrawlConfig(allow_loopback=True, max_retries=0)
    urls = [hostile_web.base_url + p for p in ("unclosed-tags", "noai-meta", "")]
    start = time.monotonic()
    recs, _ = crawl_host(
        (_host(hostile_web.base_url), urls, None), cfg, Scope.from_config(cfg, urls), 0, str(tmp_path)
    )
    assert time.monotonic() - start < MAX_SECONDS
    assert [r.decision for r in recs] == ["fetched", "optout_noai", "fetched"]
    assert recs[0].links == [] and recs[0].bytes == 200_000
    assert hostile_web.base_url + "noai-meta" in recs[2].links  # links still found on good pages


@pytest.mark.parametrize(
    ("html", "links", "metas"),
    [
        ('<a href="/a">x</a><area href="/b"><a href="">e</a><a href="mailto:x@y">', ["/a", "/b"], []),
        ('<base href="/z/"><base href="/ignored/"><a href="y">', ["/z/y"], []),
        (
            '<meta name=" Robots " content="noai"><meta name="x"><meta content="y">',
            [],
            [("robots", "noai"), ("x", "")],
        ),
        ('<script>document.write("<a href=/s>")</script><!-- <a href=/c> --><a href=/u>', ["/u"], []),
        ("<div>" * 20_000 + '<a href="/deep">', ["/deep"], []),  # any nesting depth
        ('<a href="/kept">k</a><a href="/cut', ["/kept"], []),  # an unfinished tag at the end is dropped
    ],
)
def test_page_parser_keeps_link_and_meta_behaviour(
    html: str, links: list[str], metas: list[tuple[str, str]]
) -> None:
    page = parse_html("http://h/", html)
    assert page.links == ["http://h" + p for p in links] and page.metas == metas


# --- 5. oversized and slow-to-extract HTML --------------------------------------------------------


def huge_html(mib: int, max_html_bytes: int, non_ascii: bool) -> dict[str, Any]:
    """Driver: a page over `max_html_bytes` (counted in UTF-8) through `extract_row`."""
    unit = "<p>caf\u00e9 cr\u00e8me</p>" if non_ascii else "<p>plain words</p>"
    count = mib * (1 << 20) // len(unit.encode())
    row = make_document("web", "http://h/", raw_content=unit * count)
    out, reason = extract_row(row, ExtractConfig(max_html_bytes=max_html_bytes))
    return {
        "reason": reason,
        "text": out["text"],
        "raw": out["raw_content"],
        "bytes": count * len(unit.encode()),
    }


@pytest.mark.parametrize("non_ascii", [False, True])
def test_huge_html_is_rejected_before_parsing(non_ascii: bool) -> None:
    cost = run_bounded("tests.test_hostile_crawl:huge_html", 24, 20_000_000, non_ascii)
    size = cost.result["bytes"]
    assert size > 20_000_000 and cost.result["reason"] == f"extract_too_large:{size}"
    assert (cost.result["text"], cost.result["raw"]) == ("", None)
    assert cost.seconds < MAX_SECONDS and cost.peak_above_baseline_mib < MAX_PEAK_MIB
    assert cost.peak_above_baseline_mib < 24 * 1.5  # the page itself, not a second (encoded) copy


PAGE = "<html><head><title>Good</title></head><body><article><p>{}</p></article></body></html>"


def deep_html(depth: int, mib: int) -> dict[str, Any]:
    """Driver: `mib` MiB of `<div>`s nested `depth` deep (main-content extraction costs size x
    depth: 100k-deep pages ran for minutes before the depth cap)."""
    unit = "<div>x " * depth + "</div>" * depth
    page = "<html><body>" + unit * max(1, mib * (1 << 20) // len(unit)) + "</body></html>"
    out, reason = extract_row(make_document("web", "http://h/", raw_content=page), ExtractConfig())
    return {"reason": reason, "chars": len(out["text"])}


def test_deeply_nested_html_is_rejected_before_parsing_and_shallow_soup_is_bounded() -> None:
    deep = run_bounded("tests.test_hostile_crawl:deep_html", 100_000, 2)
    assert deep.result["reason"] == "extract_too_deep:257", deep.result
    assert deep.seconds < MAX_SECONDS and deep.peak_above_baseline_mib < MAX_PEAK_MIB
    at_cap = run_bounded("tests.test_hostile_crawl:deep_html", 256, 1)  # allowed: extracted
    assert at_cap.result["reason"] is None and at_cap.result["chars"] > 0
    assert at_cap.seconds < MAX_SECONDS and at_cap.peak_above_baseline_mib < MAX_PEAK_MIB


def test_markup_depth_ignores_void_and_implicitly_closed_elements() -> None:
    from jobs.extract.html import markup_depth

    assert markup_depth("<div><p>a<p>b<br><img src=x><li>c</div>", 100) == 1
    assert markup_depth("<div><span><b>x</b></span></div>" * 1000, 100) == 3
    assert markup_depth("<div>" * 10_000, 300) == 301  # stops just past the limit


def test_limits_reject_with_named_reasons_and_keep_good_pages() -> None:
    good = PAGE.format("A perfectly ordinary paragraph of text for the extractor to keep. " * 5)
    big = PAGE.format("word " * 10_000)
    rows = [
        make_document("web", f"http://h/{i}", raw_content=html) for i, html in enumerate((good, big, good))
    ]
    out = list(split_rows(rows, extract_row_with(ExtractConfig(max_html_bytes=20_000)), "extract"))
    assert [r["reject_reason"] for r in out] == [None, f"extract_too_large:{len(big)}", None]
    assert [r["reject_stage"] for r in out] == [None, "extract", None]
    assert out[1]["annotations"]["extract.raw_bytes"] == str(len(big)) and out[1]["raw_content"] is None
    assert "ordinary paragraph" in out[0]["text"] and out[0]["annotations"]["extract.title"] == "Good"


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_extraction_past_max_parse_s_is_rejected(extractor: str) -> None:
    slow = PAGE.format("<div>" * 50 + "nested words " * 20 + "</div>" * 50) * 200  # ~0.4 MB: > 1 ms
    good = PAGE.format("A perfectly ordinary paragraph of text for the extractor to keep. " * 5)
    cfg = ExtractConfig(extractor=extractor, max_parse_s=0.001)
    out, reason = extract_row(make_document("web", "http://h/slow", raw_content=slow), cfg)
    assert reason is not None and re.fullmatch(r"extract_timeout:\d+\.\ds", reason)
    assert (out["text"], out["raw_content"]) == ("", None)
    kept, none = extract_row(
        make_document("web", "http://h/good", raw_content=good), ExtractConfig(extractor=extractor)
    )
    assert none is None and "ordinary paragraph" in kept["text"]


# --- 6. Crawl-delay over `max_crawl_delay_s`: the host is skipped, nothing waits for it ------------


def test_crawl_delay_over_the_cap_skips_the_host(spark: SparkSession, tmp_path: Path) -> None:
    from jobs.spark.crawl import crawl

    with serve_hostile_web(robots=b"User-agent: *\nCrawl-delay: 120\nDisallow: /disallowed/\n") as web:
        cfg = CrawlConfig(
            seeds=[web.base_url, web.base_url + "noimageai", web.base_url + "disallowed/x", web.alt_url],
            allow_loopback=True,
            allow_domains=["127.0.0.1", "localhost"],
            max_depth=0,
            max_crawl_delay_s=30,
        )
        start = time.monotonic()
        stats = crawl(spark, cfg, tmp_path)
        assert time.monotonic() - start < 60  # never waited the 120 s asked for
        main = [h.path for h in web.requests if h.host.startswith("127.0.0.1")]
        assert main == ["/robots.txt"]  # nothing beyond robots.txt, not even tdmrep.json
        alt = [h.path for h in web.requests if h.host.startswith("localhost")]
    assert alt == ["/robots.txt", "/.well-known/tdmrep.json", "/"]  # the other host is crawled
    import pyarrow.parquet as pq

    log = {r["url"]: r for r in pq.read_table(tmp_path / "fetch_log").to_pylist()}
    for path in ("", "noimageai"):
        row = log[web.base_url + path]
        assert (row["decision"], row["error"], row["error_detail"]) == ("robots_crawl_delay", None, "120s")
    assert log[web.base_url + "disallowed/x"]["decision"] == "robots_disallowed"  # Disallow still wins
    assert log[web.alt_url]["decision"] == "fetched"
    assert stats["decisions"] == {"fetched": 1, "robots_crawl_delay": 2, "robots_disallowed": 1}
    assert stats["skipped_robots"] == 3 and stats["pages_fetched"] == 1
