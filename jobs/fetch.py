"""Polite HTTP fetching for the crawler: robots.txt (RFC 9309), an SSRF guard, size and time
limits. Plain Python, engine-agnostic; the Spark crawl job maps `fetch_host` over hosts."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
import urllib.error
import urllib.request
import urllib.robotparser
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from core.config import CrawlConfig

ALLOWED_TYPES = ("text/html", "application/xhtml+xml", "text/plain")


class BlockedAddress(Exception):
    pass


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, drop fragments and default ports, '/' for an empty path."""
    url = urldefrag(url)[0]
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def check_address(url: str, allow_loopback: bool) -> None:
    """Refuse private, link-local, metadata and (unless allowed) loopback targets after DNS."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as err:
        raise BlockedAddress(f"dns_error:{err.strerror}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_loopback and allow_loopback:
            continue
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            raise BlockedAddress(f"ssrf_blocked:{ip}")


class _GuardedRedirect(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def __init__(self, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        check_address(newurl, self.allow_loopback)  # every hop, not only the first
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def extract_links(base_url: str, html: str) -> list[str]:
    parser = _Links()
    with contextlib.suppress(Exception):  # broken markup: keep the links found so far
        parser.feed(html)
    out = []
    for href in parser.hrefs:
        url = canonical_url(urljoin(base_url, href.strip()))
        if url.startswith(("http://", "https://")):
            out.append(url)
    return sorted(set(out))


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    charset: str | None
    final_url: str
    error: str | None = None


def http_get(url: str, cfg: CrawlConfig) -> Response:
    """One GET with the guard, the user agent, a timeout and a byte cap (truncation recorded)."""
    check_address(url, cfg.allow_loopback)
    opener = urllib.request.build_opener(_GuardedRedirect(cfg.allow_loopback))
    req = urllib.request.Request(url, headers={"User-Agent": cfg.user_agent})
    try:
        with opener.open(req, timeout=cfg.timeout_s) as resp:
            body = resp.read(cfg.max_bytes + 1)
            ctype = resp.headers.get_content_type()
            charset = resp.headers.get_content_charset()
            err = "truncated" if len(body) > cfg.max_bytes else None
            return Response(resp.status, body[: cfg.max_bytes], ctype, charset, resp.url, err)
    except urllib.error.HTTPError as e:
        return Response(e.code, b"", "", None, url, f"http_{e.code}")
    except BlockedAddress as e:
        return Response(0, b"", "", None, url, str(e))
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return Response(0, b"", "", None, url, f"network_error:{type(reason).__name__}")


def decode_body(body: bytes, charset: str | None) -> str:
    """Declared charset, else UTF-8; unknown or wrong charsets degrade to replacement chars."""
    try:
        return body.decode(charset or "utf-8", "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def load_robots(base: str, cfg: CrawlConfig) -> urllib.robotparser.RobotFileParser:
    """RFC 9309 section 2.3.1: 4xx => everything allowed; 5xx or unreachable => all disallowed."""
    rp = urllib.robotparser.RobotFileParser()
    resp = http_get(urljoin(base, "/robots.txt"), cfg)
    if resp.status == 200:
        rp.parse(resp.body.decode("utf-8", "replace").splitlines())
    elif 400 <= resp.status < 500:
        rp.allow_all = True
    else:
        rp.disallow_all = True
    return rp


def fetch_host(host_urls: tuple[str, list[str]], cfg: CrawlConfig, depth: int) -> list[dict[str, Any]]:
    """Fetch one host's URLs sequentially (one connection per host), honouring robots and delay."""
    host, urls = host_urls
    robots = load_robots(urls[0], cfg)
    delay = max(cfg.delay_s, float(robots.crawl_delay(cfg.user_agent) or 0))
    results = []
    for i, url in enumerate(urls):
        if not robots.can_fetch(cfg.user_agent, url):
            results.append(_record(url, host, depth, decision="robots_disallowed"))
            continue
        if i and delay:
            time.sleep(delay)
        start = time.monotonic()
        resp = http_get(url, cfg)
        rec = _record(
            url,
            host,
            depth,
            status=resp.status,
            bytes=len(resp.body),
            duration_ms=int((time.monotonic() - start) * 1000),
            error=resp.error,
        )
        if resp.error and resp.error != "truncated":
            rec["decision"] = "error"
        elif resp.content_type not in ALLOWED_TYPES:
            rec.update(decision="content_type_skipped", error=f"content_type:{resp.content_type}")
        else:
            html = decode_body(resp.body, resp.charset)
            rec.update(
                decision="fetched",
                html=html,
                content_type=resp.content_type,
                links=extract_links(resp.final_url, html),
            )
        results.append(rec)
    return results


def _record(url: str, host: str, depth: int, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "url": url,
        "host": host,
        "depth": depth,
        "status": 0,
        "bytes": 0,
        "duration_ms": 0,
        "decision": "",
        "error": None,
        "html": None,
        "content_type": None,
        "links": [],
        "fetched_at": datetime.now(UTC),
    }
    rec.update(fields)
    return rec
