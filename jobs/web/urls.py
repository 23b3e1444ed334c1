"""URLs as the crawler, WARC ingest, extraction and dedup compare them: one spelling per page.

`canonical_url` decides when two URLs are the same page (the crawler's seen set, redirect loops,
exact dedup by URL); `http_url` resolves a link on a page the same way for the crawler's frontier
and for extraction's `extract.links`.
"""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

# Click and campaign identifiers that never change the page (w3lib `url_query_cleaner` practice).
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|igshid|mc_cid|mc_eid|_hsenc|_hsmi)$", re.I
)
_HEX = re.compile(r"%[0-9a-fA-F]{2}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """One spelling per page, so variants are fetched once.

    Lower-case scheme and host, no default port or fragment, '/' for an empty path, upper-case
    percent-escapes (RFC 3986 section 6.2.2); tracking parameters removed and the rest sorted.
    Raises ValueError on an invalid IPv6 literal, as `urlsplit` does.
    """
    parts = urlsplit(urldefrag(url.strip())[0])
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = _DEFAULT_PORTS.get(scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, default) else f"{host}:{port}"
    if ":" in host:
        netloc = f"[{host}]" if port in (None, default) else f"[{host}]:{port}"
    params = sorted(p for p in parts.query.split("&") if p and not _TRACKING.match(p.split("=", 1)[0]))
    path = _HEX.sub(lambda m: m.group(0).upper(), parts.path or "/")
    return urlunsplit((scheme, netloc, path, "&".join(params), ""))


def absolute_url(base: str, ref: str) -> str:
    """`ref` (a redirect's Location, a link) resolved on `base` (RFC 3986 section 5.2), canonical."""
    return canonical_url(urljoin(base, ref.strip()))


def http_url(base: str, href: str) -> str | None:
    """Canonical absolute http(s) URL of a link on a page; None for other schemes or junk."""
    try:
        url = absolute_url(base, href)
    except ValueError:  # an invalid port or IPv6 literal
        return None
    return url if url.startswith(("http://", "https://")) else None


def origin(url: str) -> str:
    """`scheme://host[:port]`: what robots.txt and tdmrep.json apply to (RFC 9309 section 2.3)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host(url: str) -> str:
    """The lower-cased host name, "" when there is none or the URL does not parse."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
