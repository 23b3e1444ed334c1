"""Crawler rules as table tests (URL canonicalisation, SSRF guard, robots.txt per RFC 9309, AI
opt-out parsing, Retry-After, charsets) and the HTTP client against real local servers."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import CrawlConfig
from jobs.crawl.fetch import (
    BlockedAddress,
    HostClient,
    check_address,
    extract_links,
    http_get,
    parse_retry_after,
)
from jobs.crawl.optout import (
    RobotsRules,
    optout_decision,
    page_signals,
    parse_robots,
    parse_tdmrep,
    robots_directives,
    tdmrep_match,
)
from jobs.web.charset import Decoded, decode
from jobs.web.mime import sniff_content_type
from jobs.web.urls import canonical_url

UA = "LMForgeBot/0.1 (+https://github.com/lmforge)"


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a#frag", "http://example.com/a"),
        ("https://example.com:443/a?b=1", "https://example.com/a?b=1"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("http://e.com/p?utm_source=x&utm_medium=y", "http://e.com/p"),
        ("http://e.com/p?b=2&fbclid=z&a=1&gclid=q", "http://e.com/p?a=1&b=2"),
        ("http://e.com/a%2fb?q=%e2", "http://e.com/a%2Fb?q=%e2"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_extract_links_resolves_and_filters() -> None:
    html = '<a href="b.html#x">b</a><a href="mailto:x@y">m</a><a href="/c">c</a><a href="b.html">again</a><a'
    assert extract_links("http://h/dir/a.html", html) == ["http://h/c", "http://h/dir/b.html"]
    assert extract_links("http://h/a/", '<base href="/z/"><a href="y">') == ["http://h/z/y"]
    assert extract_links("http://h/", '<a href="http://[::1">bad</a><a href="HTTP://H/Y">') == ["http://h/Y"]


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "169.254.169.254", "192.168.1.1", "127.0.0.1", "100.100.100.200", "0.0.0.0", "[::1]"]
)
def test_ssrf_guard_blocks_private_and_metadata(host: str) -> None:
    with pytest.raises(BlockedAddress, match="ssrf_blocked"):
        check_address(f"http://{host}/", allow_loopback=False)


@pytest.mark.parametrize(
    "host",
    [
        "[::7f00:1]",  # IPv4-compatible 127.0.0.1
        "[::a00:1]",  # IPv4-compatible 10.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 169.254.169.254
        "[64:ff9b::7f00:1]",  # NAT64 127.0.0.1
        "[2002:a00:1::]",  # 6to4 10.0.0.1
        "[2002:7f00:1::1]",  # 6to4 127.0.0.1
        "[2001:0:4136:e378:8000:63bf:f5ff:fffe]",  # Teredo client 10.0.0.1
        "[fec0::1]",  # site-local
    ],
)
def test_ssrf_guard_judges_the_ipv4_an_ipv6_address_embeds(host: str) -> None:
    with pytest.raises(BlockedAddress, match="ssrf_blocked"):
        check_address(f"http://{host}/", allow_loopback=False)


def test_embedded_public_ipv4_stays_allowed() -> None:
    import ipaddress

    from jobs.crawl.fetch import embedded_ipv4

    assert str(embedded_ipv4(ipaddress.IPv6Address("64:ff9b::808:808"))) == "8.8.8.8"
    assert str(embedded_ipv4(ipaddress.IPv6Address("2002:808:808::1"))) == "8.8.8.8"
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None
    check_address("http://[64:ff9b::808:808]/", allow_loopback=False)  # NAT64 to a public host


def test_loopback_allowed_only_when_configured() -> None:
    check_address("http://127.0.0.1/", allow_loopback=True)
    for host in ("10.0.0.1", "[::ffff:10.0.0.1]", "169.254.169.254"):
        with pytest.raises(BlockedAddress):
            check_address(f"http://{host}/", allow_loopback=True)


ROBOTS = """
User-agent: OtherBot
Disallow: /

User-agent: *
Disallow: /private/
Allow: /private/open.html
Disallow: /*.pdf$
Disallow: /a%3cb
Allow: /tie
Disallow: /tie
Crawl-delay: 2.5
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/", True),
        ("/private/x.html", False),
        ("/private/open.html", True),  # the longer Allow wins
        ("/doc.pdf", False),
        ("/doc.pdf?x=1", True),  # `$` anchors the end
        ("/a%3Cb", False),  # escapes compare case-insensitively in hex
        ("/tie", True),  # equal length: allow wins
        ("/robots.txt", True),
    ],
)
def test_robots_rfc9309_matching(path: str, allowed: bool) -> None:  # RFC 9309 sections 2.2.2, 2.2.3
    assert parse_robots(ROBOTS, UA).allowed("http://h" + path) is allowed


def test_robots_group_selection_and_crawl_delay() -> None:
    assert parse_robots(ROBOTS, UA).crawl_delay == 2.5
    assert not parse_robots(ROBOTS, "OtherBot/2.0").allowed("http://h/")
    mine = "User-agent: lmforgebot\nDisallow: /mine/\n\nUser-agent: *\nDisallow: /\n"
    rules = parse_robots(mine, UA)  # exact product token, case-insensitive; `*` then ignored
    assert rules.allowed("http://h/x") and not rules.allowed("http://h/mine/x")


@pytest.mark.parametrize(
    ("status", "error", "allowed", "reason"),
    [
        (200, None, False, "robots_txt"),
        (404, None, True, "robots_404"),
        (503, None, False, "robots_unreachable:503"),
        (429, None, False, "robots_unreachable:429"),
        (0, "timeout", False, "robots_unreachable:timeout"),
    ],
)
def test_robots_status_semantics(status: int, error: str | None, allowed: bool, reason: str) -> None:
    rules = RobotsRules.from_response(status, b"User-agent: *\nDisallow: /\n", UA, error)  # RFC 9309 2.3.1
    assert rules.allowed("http://h/x") is allowed and rules.reason == reason


def test_robots_with_a_byte_order_mark_still_applies() -> None:
    body = "\ufeffUser-agent: *\nDisallow: /\n".encode()
    rules = RobotsRules.from_response(200, body, UA, None)
    assert not rules.allowed("http://h/x") and rules.reason == "robots_txt"
    assert not parse_robots("\ufeffUser-agent: *\nDisallow: /private/\n", UA).allowed("http://h/private/a")


@pytest.mark.parametrize(
    ("value", "directives"),
    [
        ("noai, noimageai", {"noai", "noimageai"}),
        ("NOAI", {"noai"}),
        ("otherbot: noai, noimageai", set()),
        ("lmforgebot: noai", {"noai"}),
        ("max-snippet:20, noai", {"max-snippet", "noai"}),
        ("otherbot: noindex, lmforgebot: noimageai", {"noimageai"}),
    ],
)
def test_x_robots_tag_directives(value: str, directives: set[str]) -> None:
    assert robots_directives(value, UA) == directives


@pytest.mark.parametrize(
    ("headers", "metas", "signals", "decision"),
    [
        ([], [("robots", "index, follow")], set(), None),
        ([], [("robots", "noai, noimageai")], {"noai", "noimageai"}, "optout_noai"),
        ([], [("robots", "noimageai")], {"noimageai"}, None),  # images only: the text is kept
        ([], [("lmforgebot", "noai")], {"noai"}, "optout_noai"),
        ([], [("googlebot", "noai")], set(), None),
        ([("X-Robots-Tag", "noai")], [], {"noai"}, "optout_noai"),
        ([("tdm-reservation", "1")], [], {"tdm-reservation"}, "optout_tdmrep"),
        ([("TDM-Reservation", "0")], [], set(), None),
        ([("tdm-reservation", "2")], [], set(), None),  # not 0 or 1: unset (TDMRep)
        ([], [("tdm-reservation", "1")], {"tdm-reservation"}, "optout_tdmrep"),
    ],
)
def test_page_optout_signals(
    headers: list[tuple[str, str]], metas: list[tuple[str, str]], signals: set[str], decision: str | None
) -> None:
    found = page_signals(headers, metas, UA)
    assert found == signals and optout_decision(found) == decision


TDMREP = b"""[
  {"location": "/news/open/*", "tdm-reservation": 0},
  {"location": "/news/", "tdm-reservation": 1, "tdm-policy": "https://p.example/policy.json"},
  {"location": "/*.jpg$", "tdm-reservation": 1},
  {"location": "/bad", "tdm-reservation": 7},
  {"tdm-reservation": 1}
]"""


@pytest.mark.parametrize(
    ("path", "reserved"),
    [
        ("/", None),
        ("/news/a.html", True),
        ("/news/open/a.html", False),  # the first matching rule wins (TDMRep 3.1)
        ("/img/x.jpg", True),
        ("/img/x.jpg?s=1", None),
        ("/bad/x", None),  # an invalid value is ignored
    ],
)
def test_tdmrep_json_rules(path: str, reserved: bool | None) -> None:
    rule = tdmrep_match(parse_tdmrep(TDMREP), "http://h" + path)
    assert (rule.reserved if rule else None) is reserved


@pytest.mark.parametrize("body", [b"not json", b'{"location": "/"}', b"[1, 2]", b"\xff\xfe"])
def test_tdmrep_json_invalid_declares_nothing(body: bytes) -> None:
    assert parse_tdmrep(body) == []


NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 01-May-24 12:01:00 GMT", 60.0),  # obsolete RFC 850 format
        ("Wed May  1 12:00:05 2024", 5.0),  # asctime
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),  # in the past: retry now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:  # RFC 9110 section 10.2.3
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    ("body", "declared", "text", "source"),
    [
        ("héllo".encode(), "utf-8", "héllo", "header"),
        ("café".encode("latin-1"), "utf-8", "café", "detected"),  # declared UTF-8, really latin-1
        ("“quoted”".encode("cp1252"), None, "“quoted”", "detected"),
        ("café".encode("latin-1"), "iso-8859-1", "café", "header"),
        (b'<meta charset="windows-1252">caf\xe9', None, '<meta charset="windows-1252">café', "meta"),
        (b"\xef\xbb\xbfbom", "latin-1", "bom", "bom"),
        (b"ok", "no-such-charset", "ok", "utf-8"),
    ],
)
def test_decode_body(body: bytes, declared: str | None, text: str, source: str) -> None:
    decoded = decode(body, declared)
    assert (decoded.text, decoded.source) == (text, source)


def test_decode_body_truncated_inside_a_character() -> None:
    cut = "ok é".encode()[:-1]
    assert decode(cut, "utf-8", cut=True) == Decoded("ok ", "utf-8", "header")
    assert decode(cut, "utf-8").source == "detected"  # a complete body ending so is not UTF-8


@pytest.mark.parametrize(
    ("body", "mime"),
    [
        (b"  <!DOCTYPE html><p>x", "text/html"),
        (b"<p>x</p>", "text/html"),
        (b"plain words", "text/plain"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "application/octet-stream"),
    ],
)
def test_sniff_content_type(body: bytes, mime: str) -> None:
    assert sniff_content_type(body) == mime


def _server(robots_status: int) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = robots_status if self.path == "/robots.txt" else 200
            body = b"User-agent: *\nDisallow: /no/\n" if status == 200 else b"err"
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if self.path != "/robots.txt" else "text/plain")
            self.end_headers()
            self.wfile.write(body if self.path == "/robots.txt" else b"<p>page</p>")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("robots_status", "allowed_yes", "allowed_no"),
    [(200, True, False), (404, True, True), (503, False, False)],  # RFC 9309 section 2.3.1
)
def test_robots_status_over_http(robots_status: int, allowed_yes: bool, allowed_no: bool) -> None:
    cfg = CrawlConfig(allow_loopback=True, max_retries=0)
    for base in _server(robots_status):
        ex = HostClient(cfg).get_following(base + "/robots.txt")
        rules = RobotsRules.from_response(ex.status, ex.body, cfg.user_agent, ex.error)
        assert rules.allowed(base + "/yes.html") is allowed_yes
        assert rules.allowed(base + "/no/x.html") is allowed_no


def test_http_get_limits_on_the_hostile_web(hostile_web) -> None:  # type: ignore[no-untyped-def]
    cfg = CrawlConfig(allow_loopback=True, max_bytes=1000, timeout_s=0.5)
    huge = http_get(hostile_web.base_url + "huge", cfg)
    assert (huge.status, huge.truncated, len(huge.body)) == (200, "length", 1000)
    start = time.monotonic()
    slow = http_get(hostile_web.base_url + "slow", cfg)
    assert slow.error == "timeout" and time.monotonic() - start < 1.5
    trickle = http_get(hostile_web.base_url + "trickle", cfg)  # the deadline covers the body too
    assert (trickle.status, trickle.error, trickle.truncated) == (200, "timeout", "time")
    assert len(trickle.body) == 500  # what had arrived, for the WARC record
    png = http_get(hostile_web.base_url + "image.png", cfg, read_types=("text/html",))
    assert (png.status, png.body, png.truncated) == (200, b"", "unspecified")  # never downloaded
    blocked = http_get("http://169.254.169.254/latest/meta-data/", cfg)
    assert (blocked.error, blocked.detail, blocked.ip) == ("ssrf_blocked", "169.254.169.254", "")


def test_retries_wait_for_retry_after(hostile_web) -> None:  # type: ignore[no-untyped-def]
    cfg = CrawlConfig(allow_loopback=True, max_retries=3, max_retry_wait_s=5)
    ex, retries = HostClient(cfg).get_retrying(hostile_web.base_url + "retry-503")
    assert (ex.status, retries) == (200, 2)
    times = [h.time for h in hostile_web.requests if h.path == "/retry-503"]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0  # Retry-After: 1
    client = HostClient(cfg)
    ex, retries = client.get_retrying(hostile_web.base_url + "patience-429")  # Retry-After: 3600
    assert (ex.status, retries) == (429, 0) and "exceeds_max_retry_wait_s" in (ex.detail or "")
    later, _ = client.get_retrying(hostile_web.base_url + "same/")  # the host asked for an hour
    assert (later.status, later.error) == (0, "host_backoff")
    assert "/same/" not in [h.path for h in hostile_web.requests]
