"""A hostile little web on one loopback server, for crawler tests that need real HTTP.

One `ThreadingHTTPServer` on 127.0.0.1 answers as two hosts, told apart by the Host header:
`127.0.0.1:<port>` (the main site: robots rules, AI opt-outs, TDMRep, slow, flaky and looping
pages, wrong charsets, binaries, a link trap, duplicate URL variants, links to private
addresses) and `localhost:<port>` (a small site whose robots.txt sets `Crawl-delay: 1`).
Every request is logged with its host, path, arrival time and User-Agent, so tests assert on
what the server saw rather than on what the crawler says it did. Endpoints outside the index
(`/trickle`, `/patience-429`, `/drip-headers`, `/unclosed-tags`) are for tests that ask for them;
`serve_hostile_web(robots=...)` replaces the main host's robots.txt.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

from demo.site import serving

HUGE_BYTES = 300_000
SLOW_S = 3.0
DRIP_S = 0.2  # /drip-headers: one header byte this often
UNCLOSED_TAGS = b"<a" * 100_000  # 200 KB of unfinished tags (quadratic for Python's HTMLParser)
PRIVATE_LINKS = ("http://10.0.0.1/internal.html", "http://169.254.169.254/latest/meta-data/")

MAIN_ROBOTS = b"""# hostile web
User-agent: OtherBot
Disallow: /

User-agent: *
Disallow: /disallowed/
Allow: /disallowed/public.html
Disallow: /*.secret$
"""
ALT_ROBOTS = b"User-agent: *\nCrawl-delay: 1\nDisallow: /private/\n"
TDMREP = b"""[
  {"location": "/reserved/", "tdm-reservation": 1, "tdm-policy": "https://example.org/tdm-policy.json"},
  {"location": "/", "tdm-reservation": 0}
]"""
LATIN1_TEXT = "Caf\u00e9 cr\u00e8me, r\u00e9sum\u00e9 na\u00efve"
CP1252_TEXT = "\u201cSmart quotes\u201d \u2014 and an em dash \u2026"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


class Hit(NamedTuple):
    method: str
    host: str  # the Host header: which virtual host was asked
    path: str  # with the query string
    time: float  # epoch seconds when the request line arrived
    user_agent: str | None


def page(title: str, body: str = "", head: str = "") -> bytes:
    text = f"The {title} page has enough ordinary words to look like a real document for tests."
    return f"<html><head><title>{title}</title>{head}</head><body><p>{text}</p>{body}</body></html>".encode()


def links(*hrefs: str) -> str:
    return "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)


MAIN_INDEX_LINKS = (
    "/disallowed/secret.html",
    "/disallowed/public.html",
    "/notes.secret",
    "/reserved/a.html",
    "/reserved/b.html",
    "/noai-meta",
    "/noai-header",
    "/noai-otherbot",
    "/noimageai",
    "/tdm-header",
    "/tdm-meta",
    "/slow",
    "/retry-503",
    "/retry-429",
    "/always-503",
    "/loop/a",
    "/chain/3",
    "/chain/9",
    "/redirect-disallowed",
    "/redirect-reserved",
    "/redirect-metadata",
    "/huge",
    "/latin1-as-utf8",
    "/cp1252-undeclared",
    "/image.png",
    "/download.bin",
    "/unlabeled.bin",
    "/broken",
    "/trap/1",
    "/same",
    "/same/",
    "/same/?utm_source=news&utm_medium=email",
    "/same/?fbclid=abc",
    "/same/#top",
    "/same/?b=2&a=1",
    "/same/?a=1&b=2",
    "/missing",
    "/denied-by-pattern/x.html",
    "mailto:someone@example.org",
    "javascript:void(0)",
    *PRIVATE_LINKS,
)


class HostileWeb:
    """The running server: `base_url` (main host), `alt_url` (Crawl-delay host), `requests`."""

    def __init__(self, robots: bytes = MAIN_ROBOTS) -> None:
        self.base_url = self.alt_url = ""
        self.port = 0
        self.robots = robots
        self._hits: list[Hit] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @property
    def requests(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def _record(self, hit: Hit) -> int:
        """Logs the hit; returns how many times this host and path were asked, this one included."""
        with self._lock:
            self._hits.append(hit)
            key = (hit.host, hit.path)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]


class _Handler(BaseHTTPRequestHandler):
    web: HostileWeb  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        host = self.headers.get("Host", "")
        nth = self.web._record(Hit("GET", host, self.path, time.time(), self.headers.get("User-Agent")))
        path = self.path.split("?")[0]
        with suppress(BrokenPipeError, ConnectionResetError):  # the crawler gave up (a timeout)
            self._alt(path) if host.startswith("localhost") else self._main(path, nth)

    def _send(self, status: int, body: bytes = b"", ctype: str | None = "text/html", **headers: str) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, b"", Location=location)

    def _alt(self, path: str) -> None:
        if path == "/robots.txt":
            self._send(200, ALT_ROBOTS, "text/plain")
        elif path == "/":
            self._send(200, page("alt index", links("/a.html", "/b.html", "/private/x.html")))
        elif path in ("/a.html", "/b.html"):
            self._send(200, page(f"alt {path}", links(self.web.base_url)))
        else:
            self._send(404, b"not found")

    def _main(self, path: str, nth: int) -> None:  # a routing table reads best flat
        if path == "/robots.txt":
            self._send(200, self.web.robots, "text/plain")
        elif path == "/.well-known/tdmrep.json":
            self._send(200, TDMREP, "application/json")
        elif path == "/":
            alt = f"{self.web.alt_url} http://deny.localhost:{self.web.port}/"
            self._send(200, page("index", links(*MAIN_INDEX_LINKS, *alt.split())))
        elif path == "/noai-meta":
            self._send(200, page("noai meta", head='<meta name="robots" content="noai, noimageai">'))
        elif path == "/noai-header":
            self._send(200, page("noai header"), X_Robots_Tag="noai")
        elif path == "/noai-otherbot":
            self._send(200, page("noai for another bot"), X_Robots_Tag="otherbot: noai, noimageai")
        elif path == "/noimageai":
            self._send(200, page("noimageai", head='<meta name="robots" content="noimageai">'))
        elif path == "/tdm-header":
            self._send(200, page("tdm header"), tdm_reservation="1", tdm_policy="https://example.org/p.json")
        elif path == "/tdm-meta":
            self._send(200, page("tdm meta", head='<meta name="tdm-reservation" content="1">'))
        elif path == "/slow":
            time.sleep(SLOW_S)
            self._send(200, page("slow"))
        elif path == "/trickle":  # headers and a first part at once, the rest too late
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "2000")
            self.end_headers()
            self.wfile.write(b"<p>" + b"a" * 497)
            self.wfile.flush()
            time.sleep(SLOW_S)
            self.wfile.write(b"b" * 1500)
        elif path == "/drip-headers":  # a status line, then one header byte every DRIP_S, for 60 s
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Drip: ")
            for _ in range(int(60 / DRIP_S)):
                time.sleep(DRIP_S)
                self.wfile.write(b"a")
        elif path == "/unclosed-tags":
            self._send(200, UNCLOSED_TAGS)
        elif path == "/retry-503":  # two 503s, then the page
            self._send(200, page("recovered 503")) if nth > 2 else self._send(503, b"busy", Retry_After="1")
        elif path == "/retry-429":  # one 429 with an HTTP-date, then the page
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            self._send(200, page("recovered 429")) if nth > 1 else self._send(429, b"later", Retry_After=when)
        elif path == "/always-503":
            self._send(503, b"down", Retry_After="0")
        elif path == "/patience-429":
            self._send(429, b"come back in an hour", Retry_After="3600")
        elif path.startswith("/loop/"):
            self._redirect("/loop/b" if path == "/loop/a" else "/loop/a")
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            self._redirect(f"/chain/{n - 1}") if n > 0 else self._send(200, page("end of chain"))
        elif path == "/redirect-disallowed":
            self._redirect("/disallowed/secret.html")
        elif path == "/redirect-reserved":
            self._redirect("/reserved/c.html")
        elif path == "/redirect-metadata":
            self._redirect(PRIVATE_LINKS[1])
        elif path == "/huge":
            self._send(200, page("huge", "<p>" + "x" * HUGE_BYTES + "</p>"))
        elif path == "/latin1-as-utf8":
            self._send(200, page(LATIN1_TEXT).decode().encode("latin-1"), "text/html; charset=utf-8")
        elif path == "/cp1252-undeclared":
            self._send(200, page(CP1252_TEXT).decode().encode("cp1252"), "text/html")
        elif path == "/image.png":
            self._send(200, PNG, "image/png")
        elif path == "/download.bin":
            self._send(200, bytes(range(256)) * 4, "application/octet-stream")
        elif path == "/unlabeled.bin":
            self._send(200, PNG + bytes(range(32)), None)
        elif path == "/broken":
            body = '<div><p>Broken <b>markup <table><tr><td><a href="/broken-target.html">on</a><a href="/x'
            self._send(200, b"<html><body><p>Unclosed everything " + body.encode())
        elif path.startswith("/trap/"):  # every page links one deeper, forever
            n = int(path.rsplit("/", 1)[1])
            self._send(200, page(f"trap {n}", links(f"/trap/{n + 1}")))
        elif path == "/same":
            self._redirect("/same/", 301)
        elif path in ("/same/", "/broken-target.html") or path.startswith(("/disallowed/", "/reserved/")):
            self._send(200, page(path))
        else:
            self._send(404, b"not found")


@contextmanager
def serve_hostile_web(robots: bytes = MAIN_ROBOTS) -> Iterator[HostileWeb]:
    """Serve until the block exits (port chosen by the OS); slow handlers are daemon threads."""
    web = HostileWeb(robots)
    handler = type("Handler", (_Handler,), {"web": web})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    web.port = server.server_address[1]
    web.base_url = f"http://127.0.0.1:{web.port}/"
    web.alt_url = f"http://localhost:{web.port}/"
    with serving(server, f"hostile-web:{web.port}"):
        yield web
