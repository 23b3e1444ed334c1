"""Bytes of a web page to text: the declared charset when it decodes, else detection.

Order follows the WHATWG encoding sniffing algorithm (HTML Standard, section 13.2.3.2): a byte
order mark wins, then the transport (HTTP) charset, then a `<meta>` charset in the first 1024
bytes; legacy labels map to what browsers use (Encoding Standard: `iso-8859-1`/`ascii` mean
windows-1252). Unlike a browser we decode strictly and move on when a declaration is wrong.

Detection: strict UTF-8 first (legacy bytes almost never form valid UTF-8), then uchardet via
Resiliparse, then charset-normalizer. uchardet goes first because on short Latin-script pages
charset-normalizer prefers cp1257/cp1250 over windows-1252 (measured on French and German text).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_META = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
# Encoding Standard, "names and labels": labels browsers decode with a superset encoding.
_WHATWG = {"iso8859-1": "cp1252", "ascii": "cp1252", "iso8859-9": "cp1254", "iso8859-11": "cp874"}
_PRESCAN_BYTES = 1024  # HTML Standard 13.2.3.2: the meta prescan looks at the first 1024 bytes


def _lookup(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'").lower().removeprefix("x-")).name
    except LookupError:
        return None


def codec_name(label: str | None) -> str | None:
    """Python codec browsers use for a charset label (`UTF8`, `latin1` -> cp1252); None if unknown."""
    name = _lookup(label)
    return _WHATWG.get(name, name) if name else None


def meta_charset(body: bytes) -> str | None:
    """The charset a `<meta charset>` or `<meta http-equiv content="...; charset=">` declares."""
    match = _META.search(body[:_PRESCAN_BYTES])
    return match.group(1).decode("ascii", "replace") if match else None


def _candidates(body: bytes, declared: str | None) -> Iterator[str | None]:
    """Codecs to try, best first; detection runs only when the earlier ones failed."""
    for label in (declared, meta_charset(body)):
        yield codec_name(label)
        yield _lookup(label)  # the literal codec, e.g. latin-1 when windows-1252 fails on 0x81
    yield "utf-8"
    from resiliparse.parse.encoding import detect_encoding

    yield codec_name(detect_encoding(body))
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    yield codec_name(best.encoding) if best else None


def decode_html(body: bytes, declared: str | None) -> tuple[str, str]:
    """(text, charset used); never raises. `declared` is the HTTP header's charset, if any."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(name, "replace"), name
    tried: set[str] = set()
    for candidate in _candidates(body, declared):
        if candidate and candidate not in tried:
            tried.add(candidate)
            try:
                return body.decode(candidate), candidate
            except UnicodeDecodeError:
                continue
    return body.decode("utf-8", "replace"), "utf-8"
