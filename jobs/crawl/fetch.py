"""HTTP for the crawler: one guarded, timed, size-capped GET at a time per host, with retries.

Plain Python, engine-agnostic: `HostClient` owns the politeness clock of one host, every request
(robots.txt, retries, redirect hops) goes through it, and every exchange it makes is kept for
the WARC writer. The crawl job decides what to request; this module only talks HTTP.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import math
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, cast
from urllib.parse import urljoin, urlsplit

from resiliparse.parse.html import HTMLTree

from core.config import CrawlConfig
from jobs.web.mime import parse_content_type
from jobs.web.urls import absolute_url, http_url

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class BlockedAddress(Exception):
    """The target resolves to an address the crawl may not reach (the reason is the message)."""


class HostDeadline(Exception):
    """The host's task is past `CrawlConfig.host_deadline_s`: nothing more may be sent to it."""


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches: IPv4-mapped and IPv4-compatible (RFC 4291
    section 2.5.5), NAT64 (RFC 6052), 6to4 (RFC 3056) and a Teredo client (RFC 4380). Judging the
    IPv6 form alone would let `[::7f00:1]` or `[2002:7f00:1::]` reach loopback or a private host."""
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    value = int(ip)
    if ip in NAT64 or (value >> 32 == 0 and value > 1):  # ::a.b.c.d; `::` and `::1` judged as IPv6
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    """Anything not globally routable (private, loopback, link-local and metadata, CGNAT, reserved,
    IPv6 site-local `fec0::/10`), judged on the IPv4 address an IPv6 one embeds, if any."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return True
        ip = embedded_ipv4(ip) or ip
    if ip.is_loopback:
        return not allow_loopback
    return not ip.is_global or ip.is_multicast


def resolve_checked(url: str, allow_loopback: bool) -> str:
    """The address to connect to, after DNS; refuses the URL if any address is blocked.

    Connecting to this exact address (not resolving again) closes the DNS-rebinding gap.
    """
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 80, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise BlockedAddress(f"dns_error:{getattr(err, 'strerror', err)}") from None
    ips = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in ips:
        if _blocked(ip, allow_loopback):
            raise BlockedAddress(f"ssrf_blocked:{ip}")
    return str(ips[0])


def check_address(url: str, allow_loopback: bool) -> None:
    resolve_checked(url, allow_loopback)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait: `delay-seconds` or an HTTP-date (RFC 9110 section 10.2.3); None if invalid.

    All three date formats of RFC 9110 section 5.6.7 are accepted; a past date means 0.
    """
    value = (value or "").strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # asctime dates carry no zone; HTTP-dates are GMT
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass
class Exchange:
    """One GET and what came back; `status` 0 means no response (see `error`)."""

    url: str
    started: datetime
    ip: str = ""
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    http_version: str = "HTTP/1.1"
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    truncated: str | None = None  # WARC-Truncated value: length, time or unspecified (not read)
    error: str | None = None
    detail: str | None = None
    duration_ms: int = 0

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def mime(self) -> str | None:
        return parse_content_type(self.header("content-type"))[0]

    @property
    def charset(self) -> str | None:
        return parse_content_type(self.header("content-type"))[1]


def _fail(ex: Exchange, error: str, detail: str | None = None) -> Exchange:
    ex.error, ex.detail = error, detail
    return ex


def _time_left(stop: float) -> float:
    """Seconds until the monotonic time `stop`; TimeoutError once it has passed."""
    left = stop - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


class _DeadlineReader(io.RawIOBase):
    """Socket reads that share one absolute deadline.

    http.client reads the status line and headers with the socket's timeout, which applies to
    each read: a server dripping a byte per read restarts it forever (issue 12 measured a fetch
    held 8 s at `timeout_s` 1 s). Each read here may only wait for what is left of the time.
    """

    def __init__(self, sock: socket.socket, stop: float) -> None:
        super().__init__()
        self.sock, self.stop = sock, stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self.sock.settimeout(_time_left(self.stop))
        return self.sock.recv_into(buffer)


class _DeadlineSocket:
    """All `http.client.HTTPResponse` asks of its socket: `makefile`, here a deadline-bound reader."""

    def __init__(self, sock: socket.socket, stop: float) -> None:
        self.sock, self.stop = sock, stop

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self.sock, self.stop))


def http_get(
    url: str, cfg: CrawlConfig, read_types: tuple[str, ...] | None = None, deadline: float = math.inf
) -> Exchange:
    """One GET, no redirects followed: SSRF guard, pinned address, total deadline, byte cap.

    The body is read only when its declared type is in `read_types` (None: any), or is missing
    (then sniffed by the caller). `timeout_s` bounds connect, status line, headers and body
    together (error `timeout`); `deadline` (monotonic seconds) is the host task's, and a request
    it cuts short fails `host_deadline`. DNS resolution is the system resolver's and not bounded.
    """
    ex = Exchange(url, datetime.now(UTC))
    start = time.monotonic()
    stop = min(start + cfg.timeout_s, deadline)
    try:
        ex.ip = resolve_checked(url, cfg.allow_loopback)
    except BlockedAddress as err:
        return _fail(ex, *str(err).split(":", 1))
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "", parts.port, timeout=cfg.timeout_s)
    conn._create_connection = lambda addr, timeout, src: socket.create_connection(  # type: ignore[attr-defined]
        (ex.ip, addr[1]), _time_left(stop), src
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    ex.request_headers = [
        ("Host", parts.netloc),
        ("User-Agent", cfg.user_agent),
        ("Accept", "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1"),
        ("Accept-Encoding", "identity"),  # the stored payload is then exactly what was sent
        ("Connection", "close"),
    ]
    try:
        _exchange(conn, target, ex, cfg, stop, read_types)
    except TimeoutError:
        if deadline < start + cfg.timeout_s:
            _fail(ex, "host_deadline", f"{cfg.host_deadline_s:g}s")
        else:
            _fail(ex, "timeout", f"{cfg.timeout_s:g}s")
        ex.truncated = "time" if ex.status else None
    except ConnectionRefusedError:
        _fail(ex, "connection_refused")
    except ssl.SSLError as err:
        _fail(ex, "tls_error", type(err).__name__)
    except http.client.HTTPException as err:
        _fail(ex, "protocol_error", type(err).__name__)
    except OSError as err:
        _fail(ex, "network_error", type(err).__name__)
    finally:
        conn.close()
        ex.duration_ms = int((time.monotonic() - start) * 1000)
    return ex


def _exchange(
    conn: http.client.HTTPConnection,
    target: str,
    ex: Exchange,
    cfg: CrawlConfig,
    stop: float,
    read_types: tuple[str, ...] | None,
) -> None:
    """Send the request and read the response, every socket operation bounded by `stop`.

    The response is built on a deadline-bound reader instead of `conn.getresponse()` (which reads
    the headers off the plain socket); the request says `Connection: close`, so no connection
    state is left to keep.
    """
    conn.connect()
    conn.sock.settimeout(_time_left(stop))  # sending, too: the request is small, the wait is not
    conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for name, value in ex.request_headers:
        conn.putheader(name, value)
    conn.endheaders()
    resp = http.client.HTTPResponse(cast(socket.socket, _DeadlineSocket(conn.sock, stop)), method="GET")
    try:
        resp.begin()
        ex.status, ex.reason, ex.headers = resp.status, resp.reason, resp.getheaders()
        ex.http_version = "HTTP/1.0" if resp.version == 10 else "HTTP/1.1"
        if read_types is not None and ex.mime is not None and ex.mime not in read_types:
            ex.truncated = "unspecified"  # not downloaded: the type is outside the allowlist
            return
        _read_body(resp, ex, cfg.max_bytes)
    finally:
        resp.close()


def _read_body(resp: http.client.HTTPResponse, ex: Exchange, max_bytes: int) -> None:
    """Up to `max_bytes` into `ex.body`, `truncated` "length" past it; what had arrived before a
    timeout is kept for the WARC record (`WARC-Truncated: time`)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= max_bytes and not resp.isclosed():  # closed: the whole body was read
            chunk = resp.read1(min(65536, max_bytes + 1 - size))  # what has arrived, up to n
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        ex.body = b"".join(chunks)[:max_bytes]
    if size > max_bytes:
        ex.truncated = "length"


class HostClient:
    """All requests to one host, one at a time: waits `delay` after each response ends and any
    `Retry-After` the server asked for; keeps every exchange for the WARC file.

    `last_end` and `hold_until` are epoch seconds, so the crawl job can carry them to the host's
    task at the next level. `deadline` (monotonic seconds) ends the host's task: a request that
    could not start before it, or that it cuts short, raises `HostDeadline`.
    """

    def __init__(
        self, cfg: CrawlConfig, last_end: float = 0.0, hold_until: float = 0.0, deadline: float = math.inf
    ) -> None:
        self.cfg = cfg
        self.delay = cfg.delay_s
        self.last_end = last_end
        self.hold_until = hold_until
        self.deadline = deadline
        self.exchanges: list[Exchange] = []

    def get(self, url: str, read_types: tuple[str, ...] | None = None) -> Exchange:
        """Sends nothing (error `host_backoff`) while the host's Retry-After outlasts `max_retry_wait_s`."""
        hold = self.hold_until - time.time()
        if hold > self.cfg.max_retry_wait_s:
            ex = _fail(Exchange(url, datetime.now(UTC)), "host_backoff", f"retry_after_{hold:.0f}s_left")
        else:
            wait = max(self.last_end + self.delay - time.time(), hold, 0.0)
            if time.monotonic() + wait >= self.deadline:  # no sleeping into the deadline
                raise HostDeadline(url)
            time.sleep(wait)
            ex = http_get(url, self.cfg, read_types, self.deadline)
            self.last_end = time.time() if ex.ip else self.last_end  # no address: nothing was sent
        self.exchanges.append(ex)  # a request cut short is still archived, `WARC-Truncated: time`
        if ex.error == "host_deadline":
            raise HostDeadline(url)
        return ex

    def get_retrying(self, url: str, read_types: tuple[str, ...] | None = None) -> tuple[Exchange, int]:
        """Retries 429 and 5xx after `Retry-After`, else with exponential backoff.

        Sources: RFC 6585 section 4 (429), RFC 9110 sections 10.2.3 and 15.6.4 (Retry-After,
        503): the wait applies to the host's next request whether or not it is a retry, and a
        server asking for more than `max_retry_wait_s` gets no retry (never sooner than asked).
        """
        for attempt in range(self.cfg.max_retries + 1):
            ex = self.get(url, read_types)
            if not (ex.status == 429 or ex.status >= 500):
                break
            asked = parse_retry_after(ex.header("retry-after"))
            backoff = min(self.cfg.backoff_base_s * 2**attempt, self.cfg.max_retry_wait_s)
            wait = asked if asked is not None else backoff
            self.hold_until = max(self.hold_until, time.time() + wait)
            if wait > self.cfg.max_retry_wait_s:
                ex.detail = f"retry_after_{wait:g}s_exceeds_max_retry_wait_s"
                break
        return ex, attempt

    def get_following(self, url: str, max_hops: int = 5) -> Exchange:
        """GET following redirects, across hosts too: for robots.txt (RFC 9309 section 2.3.1.2
        asks for at least five) and tdmrep.json, never for pages."""
        seen = {url}
        for _ in range(max_hops + 1):
            ex, _retries = self.get_retrying(url)
            location = ex.header("location")
            if not (300 <= ex.status < 400 and location):
                return ex
            url = absolute_url(url, location)
            if url in seen:
                return _fail(ex, "redirect_loop", url)
            seen.add(url)
        return _fail(ex, "too_many_redirects", url)


@dataclass
class Page:
    links: list[str]
    metas: list[tuple[str, str]]


def parse_html(base_url: str, html: str) -> Page:
    """Links (absolute, canonical, http(s) only, `<base href>` honoured) and `<meta name>` pairs.

    Parsed with resiliparse (lexbor, an HTML5 parser: linear time, any nesting depth, broken
    markup repaired as browsers do). Python's HTMLParser is quadratic on unfinished tags: 200 KB
    of `<a` took 19 s. Meta names are stripped and lower-cased for matching robots directives.
    """
    try:
        doc = HTMLTree.parse(html).document
    except Exception:  # resiliparse raises HTMLParserException on input it cannot parse at all
        doc = None
    if doc is None:
        return Page([], [])
    # .values(): iterating a node collection itself is quadratic (jobs/extract/html.py)
    hrefs = [a.getattr("href") for a in doc.query_selector_all("a[href], area[href]").values()]
    bases = [b.getattr("href") for b in doc.query_selector_all("base[href]").values()]
    base = next((b for b in bases if b), None)  # the first non-empty <base href>
    metas = [
        (m.getattr("name") or "", m.getattr("content") or "")
        for m in doc.query_selector_all("meta[name]").values()
    ]
    root = urljoin(base_url, base) if base else base_url
    links = {http_url(root, href) for href in hrefs if href}
    return Page(sorted(u for u in links if u), [(n.strip().lower(), c) for n, c in metas if n])


def extract_links(base_url: str, html: str) -> list[str]:
    return parse_html(base_url, html).links
