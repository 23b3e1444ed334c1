"""What a body is: the media type and charset its Content-Type declares, else what its bytes look like.

Shared by the crawler (HTTP responses), WARC ingest (recorded responses) and the charset decoder
(whether a local file is HTML, so its `<meta charset>` counts).
"""

from __future__ import annotations

import re

# MIME Sniffing Standard (WHATWG) section 7.1: tags that mark an unlabeled body as HTML.
_HTML_START = re.compile(
    rb"^\s*<(!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)[\s>]",
    re.I,
)
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """(media type, lower-cased; charset parameter) of a Content-Type value (RFC 9110 section 8.3)."""
    mime, _, params = (value or "").partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return mime.strip().lower() or None, charset


def sniff_content_type(body: bytes) -> str:
    """Type of an unlabeled body (MIME Sniffing Standard, section 7.1, reduced to HTML/text/binary)."""
    if _HTML_START.match(body[:512]):
        return "text/html"
    return "application/octet-stream" if _BINARY.search(body[:512]) else "text/plain"
