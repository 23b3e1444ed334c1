"""Bytes to text with one decision for every path: crawled pages, WARC payloads and local files.

Order follows the HTML Standard's encoding sniffing algorithm (section 13.2.3.2): a byte order
mark wins, then the transport (HTTP) charset, then a `<meta>` charset in the first 1024 bytes,
then detection, then the default windows-1252. A label means the encoding a browser uses for it
(Encoding Standard, section 4.2 "Names and labels"). Unlike a browser we decode strictly and move
on when a declaration is wrong (latin-1 served as UTF-8 is common), and try UTF-8 before
detection (legacy bytes almost never form valid UTF-8).

Detection: uchardet via Resiliparse, then charset-normalizer, both on `sample_of(body)` (the first
and last 64 KiB, Resiliparse's own sampling), so a dump streamed from disk and the same bytes in
memory get the same answer; only encodings of the Encoding Standard count. uchardet goes first
because on short Latin-script pages charset-normalizer prefers cp1257/cp1250 over windows-1252
(measured on French and German text). When uchardet sees UTF-8 that failed strictly (a few bad
bytes in a UTF-8 page), the text is UTF-8 with U+FFFD for those bytes, as a browser shows it.

`choose` is the decision; `decode` applies it to bytes in memory (a page, a WARC payload),
`decode_file` to a local file, and jobs/readers/connectors streams large dumps through `choose`.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from jobs.web.mime import sniff_content_type

BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
SAMPLE_HALF = 1 << 16  # Resiliparse's detect_encoding samples max_len=128 KiB, half from each end
ERRORS = "whatwg"  # the error handler for replacement decoding (registered below)
_PRESCAN_BYTES = 1024  # HTML Standard 13.2.3.2: the meta prescan looks at the first 1024 bytes
_BINARY_BYTES = 8192  # a NUL this early means a local file is not text
_META = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
# Encoding Standard, "names and labels": where a browser decodes a label with another encoding
# than Python's codec of that name (a superset), keyed by Python's name so every alias is covered.
_WHATWG = {
    "ascii": "cp1252",  # windows-1252: ascii, us-ascii, iso-8859-1, latin1, l1, cp819, ...
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",  # windows-1254: iso-8859-9, latin5, l5, ...
    "iso8859-11": "cp874",  # windows-874: iso-8859-11, tis-620, dos-874
    "tis-620": "cp874",
    "gb2312": "gbk",  # GBK: gb2312, chinese, csgb2312, iso-ir-58, x-gbk
    "big5": "big5hkscs",  # Big5 (with the HKSCS extension): big5, csbig5, cn-big5, big5-hkscs
    "euc_kr": "cp949",  # EUC-KR (windows-949): euc-kr, korean, ks_c_5601-1987, ksc5601, ...
    "shift_jis": "cp932",  # Shift_JIS (windows-31j): shift_jis, sjis, ms_kanji, csshiftjis
    "utf-16": "utf-16-le",  # UTF-16LE: utf-16, unicode, ucs-2
}
# Labels of the standard that Python has no codec alias for.
_LABELS = {
    "windows-874": "cp874",
    "dos-874": "cp874",
    "windows-949": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc_5601": "cp949",
    "iso-ir-149": "cp949",
    "cseuckr": "cp949",
    "csksc56011987": "cp949",
    "windows-31j": "cp932",
    "gb_2312": "gbk",
    "gb_2312-80": "gbk",
    "csgb2312": "gbk",
    "cn-big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "iso-8859-8-i": "iso8859-8",
    "csiso88598i": "iso8859-8",
    "logical": "iso8859-8",
    "koi8-ru": "koi8-u",
    "unicode": "utf-16-le",
    "ucs-2": "utf-16-le",
    "unicode-1-1-utf-8": "utf-8",
    "unicode11utf8": "utf-8",
    "unicode20utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
}
# Python text codecs that are no web charset (the Encoding Standard leaves UTF-7 out on purpose).
_NOT_CHARSETS = {"utf-7", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"}
# Decoding the bytes the standard maps to C1 controls cannot fail (index-windows-1252: 0x81, 0x8D,
# 0x8F, 0x90 and 0x9D are U+0081 ... U+009D); Python's cp1252 leaves them undefined.
_C1_FILLED = {"cp1252"}
# What detection may answer: the Encoding Standard's encodings (section 4.2), as Python codecs, so
# no EBCDIC or cp1006 for a few bytes of French (charset-normalizer's guesses, measured). UTF-16 is
# left out: a UTF-16 text has a BOM, and detectors call short byte strings UTF-16 (measured).
_DETECTABLE = {
    *("utf-8", "cp866", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic", "cp874"),
    *(f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)),
    *(f"cp125{n}" for n in range(9)),
    *("gbk", "gb18030", "big5hkscs", "euc_jp", "iso2022_jp", "cp932", "cp949"),
}
_CUT = {"unexpected end of data", "truncated data", "incomplete multibyte sequence"}
_OPENS_BOM = {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}


@dataclass(frozen=True, slots=True)
class Decoded:
    """Text, and how it was read: `codec:source` is what the crawler records (`crawl.charset`)."""

    text: str
    codec: str  # Python codec name
    source: str  # what chose it: bom, header, meta, utf-8, detected or default


def _whatwg_errors(err: UnicodeError) -> tuple[str, int]:
    """Replacement decoding (Encoding Standard, "decode"): U+FFFD for a bad byte, except that a
    single-byte (charmap) codec's undefined 0x80-0x9F byte is the C1 control of that value."""
    if not isinstance(err, UnicodeDecodeError):
        raise err
    byte = err.object[err.start]
    if err.encoding == "charmap" and 0x80 <= byte <= 0x9F:
        return chr(byte), err.start + 1
    return "\ufffd", err.end  # one per maximal bad sequence, like Python's (and the standard's) replace


codecs.register_error(ERRORS, _whatwg_errors)


def _lookup(label: str | None) -> str | None:
    """Python's codec for a label, literally (`latin1` -> iso8859-1); None if none is a charset."""
    label = (label or "").strip().strip("\"'").lower()
    if not label:
        return None
    if label in _LABELS:
        return _LABELS[label]
    try:
        info = codecs.lookup(label.removeprefix("x-"))
    except LookupError:
        return None
    text = getattr(info, "_is_text_encoding", True)  # base64, zlib, rot13 ... are bytes transforms
    return info.name if text and info.name not in _NOT_CHARSETS else None


def codec_name(label: str | None) -> str | None:
    """Python codec browsers use for a charset label (`UTF8`, `latin1` -> cp1252); None if unknown."""
    name = _lookup(label)
    return _WHATWG.get(name, name) if name else None


def meta_charset(body: bytes) -> str | None:
    """The charset a `<meta charset>` or `<meta http-equiv content="...; charset=">` declares."""
    match = _META.search(body[:_PRESCAN_BYTES])
    return match.group(1).decode("ascii", "replace") if match else None


def sample_of(body: bytes) -> bytes:
    """What `choose` looks at: a short body whole, a long one's first and last `SAMPLE_HALF` bytes."""
    return body if len(body) <= 2 * SAMPLE_HALF else body[:SAMPLE_HALF] + body[-SAMPLE_HALF:]


def _label_codecs(label: str | None, meta: bool = False) -> Iterator[str | None]:
    """The browser's codec, then the literal one (latin-1 where a stricter table fails)."""
    for name in (codec_name(label), _lookup(label)):
        # HTML Standard 13.2.3.2 (prescan): a `<meta>` saying UTF-16 is wrong by construction.
        yield "utf-8" if meta and name and name.startswith("utf-16") else name


def _detectable(label: str | None) -> str | None:
    name = codec_name(label)
    return name if name in _DETECTABLE else None


def _uchardet(sample: bytes) -> str | None:
    from resiliparse.parse.encoding import detect_encoding

    # Not html5_compatible: that answers UTF-8 when uchardet knows nothing; the mapping is ours.
    return _detectable(detect_encoding(sample, max_len=2 * SAMPLE_HALF, html5_compatible=False))


def _charset_normalizer(sample: bytes) -> Iterator[str | None]:
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    yield _detectable(best.encoding) if best else None


def choose(
    sample: bytes, fits: Callable[[str], bool], declared: str | None = None, *, prescan: bool = True
) -> tuple[str, str]:
    """(codec, source) for a body: the one decision every path shares.

    `sample` is `sample_of(body)` (any BOM and `<meta>` are at its start); `fits(codec)` says
    whether the whole body decodes strictly with that codec (`decodes` when streaming it).
    `declared`: the HTTP charset; `prescan`: look for a `<meta>` charset (HTML only).
    """
    for bom, bom_codec in BOMS:
        if sample.startswith(bom):
            return bom_codec, "bom"
    tried: set[str] = set()

    def first_fit(candidates: Iterable[str | None]) -> str | None:
        for codec in candidates:
            if codec and codec not in tried:
                tried.add(codec)
                if fits(codec):
                    return codec
        return None

    meta = _label_codecs(meta_charset(sample), meta=True) if prescan else iter(())
    for candidates, source in ((_label_codecs(declared), "header"), (meta, "meta"), (["utf-8"], "utf-8")):
        if found := first_fit(candidates):
            return found, source
    guess = _uchardet(sample)
    if guess == "utf-8":  # UTF-8 but for a few bad bytes (it failed strictly): U+FFFD for those
        return guess, "detected"
    if found := first_fit(itertools.chain([guess], _charset_normalizer(sample))):
        return found, "detected"
    return "cp1252", "default"  # HTML Standard 13.2.3.2: windows-1252 for most locales


def _strict_errors(codec: str) -> str:
    return ERRORS if codec in _C1_FILLED else "strict"


def decodes(blocks: Iterable[bytes], codec: str) -> bool:
    """Whether bytes read block by block decode strictly with `codec`: `fits` for a streamed file."""
    decoder = codecs.getincrementaldecoder(codec)(_strict_errors(codec))
    try:
        for block in blocks:
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _strict(body: bytes, codec: str, cut: bool) -> str | None:
    """`body` decoded with `codec`, or None when it does not decode; with `cut`, a character the
    truncation split at the very end is dropped instead."""
    try:
        return body.decode(codec, _strict_errors(codec))
    except UnicodeDecodeError as err:
        if cut and err.end == len(body) and err.reason in _CUT:
            return body[: err.start].decode(codec, ERRORS)
        return None


def decode(body: bytes, declared: str | None = None, *, cut: bool = False, prescan: bool = True) -> Decoded:
    """Bytes in memory to text; never raises. `declared` is the HTTP charset, if any; `cut`: the
    body was truncated (`max_bytes`), so an incomplete last character is not a decoding failure."""
    texts: dict[str, str] = {}

    def fits(codec: str) -> bool:
        text = _strict(body, codec, cut)
        if text is not None:
            texts[codec] = text
        return text is not None

    codec, source = choose(sample_of(body), fits, declared, prescan=prescan)
    if source == "bom":
        return Decoded(body.decode(open_codec(codec, source), ERRORS), codec, source)
    return Decoded(texts[codec] if codec in texts else body.decode(codec, ERRORS), codec, source)


def open_codec(codec: str, source: str) -> str:
    """The codec that reads a whole file to the same text, BOM included (`utf-8-sig`, `utf-16`),
    for `open(encoding=..., errors=ERRORS)`."""
    return _OPENS_BOM[codec] if source == "bom" else codec


def is_binary(head: bytes) -> bool:
    """A NUL in the first 8 KiB without a BOM: no text encoding produces that (UTF-16 has a BOM)."""
    return b"\x00" in head[:_BINARY_BYTES] and not any(head.startswith(bom) for bom, _ in BOMS)


def decode_file(data: bytes, html: bool = False) -> tuple[str, str]:
    """(text, encoding) of a local file: `decode`, with the `<meta>` prescan for HTML (`html`, from
    the file's name, or bytes that sniff as HTML) only. ("", "binary") for NUL bytes without a
    BOM, which no text encoding produces. The encoding is `open_codec`'s name, as streaming needs."""
    if is_binary(data):
        return "", "binary"
    decoded = decode(data, prescan=html or sniff_content_type(data) == "text/html")
    return decoded.text, open_codec(decoded.codec, decoded.source)
