"""Crawler fetch logic against real local HTTP servers: robots (RFC 9309), SSRF guard, links."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.config import CrawlConfig
from jobs.fetch import BlockedAddress, canonical_url, check_address, extract_links, fetch_host, load_robots


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("http://example.com:80/a#frag", "http://example.com/a"),
        ("https://example.com:443/a?b=1", "https://example.com/a?b=1"),
        ("http://example.com:8080/", "http://example.com:8080/"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_extract_links_resolves_and_filters() -> None:
    html = '<a href="b.html#x">b</a><a href="mailto:x@y">m</a><a href="/c">c</a><a href="b.html">again</a><a'
    assert extract_links("http://h/dir/a.html", html) == ["http://h/c", "http://h/dir/b.html"]


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "192.168.1.1", "127.0.0.1"])
def test_ssrf_guard_blocks_private_and_metadata(host: str) -> None:
    with pytest.raises(BlockedAddress, match="ssrf_blocked"):
        check_address(f"http://{host}/", allow_loopback=False)


def test_loopback_allowed_only_when_configured() -> None:
    check_address("http://127.0.0.1/", allow_loopback=True)
    with pytest.raises(BlockedAddress):
        check_address("http://10.0.0.1/", allow_loopback=True)


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


@pytest.mark.parametrize(
    ("robots_status", "allowed_yes", "allowed_no"),
    [(200, True, False), (404, True, True), (503, False, False)],  # RFC 9309 section 2.3.1
)
def test_robots_status_semantics(robots_status: int, allowed_yes: bool, allowed_no: bool) -> None:
    cfg = CrawlConfig(allow_loopback=True)
    for base in _server(robots_status):
        rp = load_robots(base + "/", cfg)
        assert rp.can_fetch(cfg.user_agent, base + "/yes.html") is allowed_yes
        assert rp.can_fetch(cfg.user_agent, base + "/no/x.html") is allowed_no


def test_fetch_host_records_every_decision() -> None:
    cfg = CrawlConfig(allow_loopback=True)
    for base in _server(200):
        recs = fetch_host(("h", [base + "/a.html", base + "/no/b.html"]), cfg, depth=0)
        assert [r["decision"] for r in recs] == ["fetched", "robots_disallowed"]
        assert recs[0]["html"] == "<p>page</p>" and recs[1]["html"] is None


def test_unreachable_host_is_an_error_not_a_crash() -> None:
    cfg = CrawlConfig(allow_loopback=True, timeout_s=1)
    recs = fetch_host(("h", ["http://127.0.0.1:9/x"]), cfg, depth=0)
    # robots unreachable => everything disallowed (RFC 9309), so nothing is even requested
    assert recs[0]["decision"] == "robots_disallowed"
