"""Books and long prose: plain text, folders of HTML chapters and EPUB, one document per book.

- `*.txt`: decoded like a crawled page (jobs/web/charset.py: BOM, UTF-8, detection, windows-1252),
  the encoding recorded in `ingest.encoding`.
- `*.epub` (ebooklib): chapters in spine order, which EPUB 3.3 §5.6 defines as the reading order;
  the navigation document is left out; `dc:title`, `dc:creator`, `dc:language`, `dc:date`, `dc:rights`.
- a folder of `*.html`/`*.xhtml`/`*.htm` chapters: one document, chapters in natural file-name order
  (`ch2` before `ch10`); other files in that folder (CSS, images) are its assets. A lone HTML file
  at the root is a one-chapter book.

Project Gutenberg's license header and footer are removed from every format. `_sources.json` in the
root maps a file or folder name to `{"origin": ..., "license": ...}`; its license wins over
`dc:rights`. The declared language goes to `book.language`, leaving the `language` column to
language identification.

An EPUB is a ZIP, and ebooklib inflates every member into memory (a 783 KB file reached 1.1 GiB),
so the archive is checked first against `SourcesConfig`: each member's size, the total and the
compression ratio, from the central directory and then again counting the bytes each member really
inflates to, in bounded reads (declared sizes can lie). A limit hit rejects the book with
`ingest_member_too_large`, `ingest_unpacked_too_large` or `ingest_compression_ratio`.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from core.config import SourcesConfig
from core.schema import make_document
from jobs.readers.connectors import (
    CHUNK,
    DEFAULT_LIMITS,
    DEFAULT_MAX_FILE_BYTES,
    Ingested,
    file_time,
    files_under,
    guarded,
    text_reason,
)
from jobs.readers.connectors.papers import open_license_id
from jobs.web.charset import decode_file

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SOURCES_FILE = "_sources.json"
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Apache POI's ZipArchiveThresholdInputStream checks the inflate ratio only from GRACE_ENTRY_SIZE
# (100 KiB) up: small, repetitive members (a stylesheet, a blank chapter) compress far beyond 100x.
RATIO_GRACE_BYTES = 100 * 1024

# Project Gutenberg markers; the set follows c-w/gutenberg `_domain_model/text.py` (a port of
# Johannes Krugel's strip_headers.cpp), restricted to the unambiguous ones: the modern
# `*** START OF THE PROJECT GUTENBERG EBOOK ... ***` pair and the 1990s `*END*THE SMALL PRINT!` header.
_GUTENBERG_START = re.compile(
    r"^\s*(\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*?\s*THE SMALL PRINT).*$", re.I | re.M
)
_GUTENBERG_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.I | re.M
)
_BLOCK_TAGS = (
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "tr", "section",
    "article", "table", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "hr", "header", "footer",
)  # fmt: skip


def strip_gutenberg(text: str) -> tuple[str, bool]:
    """(body, stripped): the text between the Gutenberg start and end markers, when there are any."""
    start = _GUTENBERG_START.search(text)
    body_from = start.end() if start else 0
    end = _GUTENBERG_END.search(text, body_from)
    if start is None and end is None:
        return text, False
    return text[body_from : end.start() if end else len(text)].strip("\n\r ") + "\n", True


def html_to_text(markup: bytes | str) -> str:
    """Block-aware text of an HTML/XHTML chapter: one blank line between blocks, `<br>` a line break.
    Whole chapters are kept (headings and short sections too), unlike a main-content extractor.
    Bytes are decoded by `decode_file`, like every local file (lxml alone would read UTF-8 without
    a declaration as latin-1)."""
    import lxml.etree
    import lxml.html

    text = decode_file(markup, html=True)[0] if isinstance(markup, bytes) else markup
    try:  # lxml refuses a str that still carries an XML encoding declaration
        root = lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))
    except (lxml.etree.ParserError, ValueError):
        return ""
    for element in root.xpath("//script|//style|//head|//noscript"):
        element.drop_tree()
    for element in root.iter(*_BLOCK_TAGS):
        element.text = "\n\n" + (element.text or "")
        element.tail = "\n\n" + (element.tail or "")
    for element in root.iter("br"):
        element.tail = "\n" + (element.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _read_epub(path: Path) -> tuple[list[str], dict[str, str]]:
    import ebooklib
    from ebooklib import epub

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ebooklib warns about its own future defaults
        book = epub.read_epub(str(path), options={"ignore_ncx": True})
    chapters = []
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or isinstance(item, epub.EpubNav) or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        if text := html_to_text(item.get_content()):
            chapters.append(text)
    meta = {}
    for key in ("title", "creator", "language", "date", "rights"):
        if values := [str(v) for v, _attrs in book.get_metadata("DC", key) if v]:
            meta[key] = "; ".join(values)
    return chapters, meta


def _date(value: str | None) -> datetime | None:
    """`dc:date` is W3CDTF (a year, a date, or a full timestamp)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip() if len(value.strip()) > 4 else f"{value.strip()}-01-01")
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _book(
    root: Path, key: Path, fmt: str, text: str, meta: dict[str, Any], extra: dict[str, str]
) -> Ingested:
    body, stripped = strip_gutenberg(text)
    license_id, license_source = meta.get("license"), SOURCES_FILE if meta.get("license") else None
    if license_id is None and (rights_id := open_license_id(extra.get("book.rights", ""))):
        license_id, license_source = rights_id, "epub:dc:rights"
    annotations = {"book.format": fmt, "book.gutenberg_stripped": str(stripped).lower(), **extra}
    doc = make_document(
        "book",
        meta.get("origin") or str(key),
        body if body.strip() else "",
        domain=root.name,
        license=license_id,
        license_source=license_source,
        content_type={"txt": "text/plain", "epub": "application/epub+zip"}.get(fmt, "text/html"),
        created_at=meta.get("created_at") or file_time(key),
        annotations={k: v for k, v in annotations.items() if v},
    )
    return doc, None if doc["text"] else "book_no_text"


def _plain(root: Path, path: Path, meta: dict[str, Any]) -> Ingested:
    text, encoding = decode_file(path.read_bytes())
    if reason := text_reason(text, encoding):
        return _stub(root, path, meta, "txt", {"ingest.encoding": encoding}), reason
    return _book(root, path, "txt", text, meta, {"ingest.encoding": encoding})


_EOCD = b"PK\x05\x06"  # end of central directory record (PKWARE APPNOTE 4.3.16)


def zip_entry_count(path: Path) -> int | None:
    """Entries the ZIP's end-of-central-directory record declares (65,535 when it defers to a ZIP64
    record), read from the file's last 64 KiB without loading the directory; None if not a ZIP."""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 65_557))  # the record (22 bytes) plus a comment of at most 65,535
        tail = fh.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 12:
        return None
    return int.from_bytes(tail[at + 10 : at + 12], "little")


def archive_reason(path: Path, limits: SourcesConfig) -> tuple[str, str] | None:
    """(reason, member) when the ZIP at `path` passes a bound, else None: the central directory's
    sizes first (nothing inflated), then each member inflated in `CHUNK` reads and counted."""
    if (count := zip_entry_count(path)) is not None and count > limits.max_archive_members:
        return f"ingest_too_many_members:{count}", ""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:  # not a ZIP at all: ebooklib names that itself (EpubException)
        return None
    with archive:
        members, total = archive.infolist(), 0
        for info in members:
            total += info.file_size
            if reason := _member_reason(info.file_size, info.compress_size, total, limits):
                return reason, info.filename
        total = 0
        for info in members:
            size = 0
            with archive.open(info) as member:
                while chunk := member.read(CHUNK):
                    size, total = size + len(chunk), total + len(chunk)
                    if reason := _member_reason(size, info.compress_size, total, limits):
                        return reason, info.filename
    return None


def _member_reason(size: int, packed: int, total: int, limits: SourcesConfig) -> str | None:
    if size > limits.max_member_bytes:
        return f"ingest_member_too_large:{size}"
    if total > limits.max_unpacked_bytes:
        return f"ingest_unpacked_too_large:{total}"
    if size > RATIO_GRACE_BYTES and size > limits.max_compression_ratio * max(packed, 1):
        return f"ingest_compression_ratio:{size / max(packed, 1):.0f}"
    return None


def _epub(root: Path, path: Path, meta: dict[str, Any], limits: SourcesConfig) -> Ingested:
    try:
        if found := archive_reason(path, limits):
            reason, member = found
            return _stub(root, path, meta, "epub", {"ingest.member": member[:1000]}), reason
        chapters, info = _read_epub(path)
    except Exception as err:  # ebooklib raises EpubException, KeyError, lxml and zip errors
        return _stub(root, path, meta, "epub", {}), f"book_corrupt_epub:{type(err).__name__}"
    extra = {f"book.{'author' if k == 'creator' else k}": v for k, v in info.items()}
    extra["book.chapters"] = str(len(chapters))
    return _book(
        root, path, "epub", "\n\n".join(chapters), {"created_at": _date(info.get("date")), **meta}, extra
    )


def _html_chapters(root: Path, key: Path, pages: list[Path], meta: dict[str, Any]) -> Ingested:
    chapters = [text for page in sorted(pages, key=_natural_key) if (text := html_to_text(page.read_bytes()))]
    return _book(root, key, "html", "\n\n".join(chapters), meta, {"book.chapters": str(len(chapters))})


def _stub(root: Path, key: Path, meta: dict[str, Any], fmt: str, extra: dict[str, str]) -> dict[str, Any]:
    """The row of a book that yields no text: provenance only."""
    annotations = {"book.format": fmt, **extra}
    return make_document(
        "book", meta.get("origin") or str(key), "", domain=root.name, annotations=annotations
    )


def _load_sources(root: Path) -> dict[str, dict[str, Any]]:
    path = root / SOURCES_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as err:  # the collection's manifest, not a document: stop loudly
        raise ValueError(f"{path}: not a JSON object of name -> {{origin, license}} ({err})") from None


def _units(root: Path) -> Iterator[tuple[Path, str, list[Path]]]:
    """(key, kind, files) per book, in path order: HTML files sharing a folder are one book."""
    files = [p for p in files_under(root) if p.name != SOURCES_FILE]
    html_dirs = {p.parent for p in files if p.suffix.lower() in HTML_SUFFIXES and p.parent != root}
    units: list[tuple[Path, str, list[Path]]] = []
    for folder in sorted(html_dirs):
        units.append(
            (folder, "html", [p for p in files if p.parent == folder and p.suffix.lower() in HTML_SUFFIXES])
        )
    for path in files:
        suffix = path.suffix.lower()
        if suffix in (".txt", ".epub") or (suffix in HTML_SUFFIXES and path.parent == root):
            units.append((path, "html" if suffix in HTML_SUFFIXES else suffix[1:], [path]))
        elif path.parent not in html_dirs:  # files beside HTML chapters are their assets
            units.append((path, "unsupported", [path]))
    yield from sorted(units, key=lambda unit: unit[0])


def iter_books(
    root: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, limits: SourcesConfig = DEFAULT_LIMITS
) -> Iterator[Ingested]:
    """One document per book under `root`; rejects carry `book_*` or `ingest_*` reasons. `limits`:
    the archive bounds for EPUB."""
    sources = _load_sources(root)
    for key, kind, files in _units(root):
        rel = key.relative_to(root).as_posix()
        meta = dict(sources.get(rel) or sources.get(key.name) or {})
        origin = meta.get("origin") or str(key)
        build = partial(_one, root, key, kind, files, meta, max_file_bytes, limits)
        yield guarded("book", origin, build, domain=root.name)


def _one(
    root: Path,
    key: Path,
    kind: str,
    files: list[Path],
    meta: dict[str, Any],
    cap: int,
    limits: SourcesConfig,
) -> Ingested:
    size = sum(p.stat().st_size for p in files)
    if size > cap:
        return _stub(root, key, meta, kind, {"ingest.bytes": str(size)}), f"ingest_too_large:{size}"
    if kind == "unsupported":
        return _stub(root, key, meta, kind, {}), f"book_unsupported_format:{key.suffix.lower() or 'none'}"
    if kind == "txt":
        return _plain(root, key, meta)
    if kind == "epub":
        return _epub(root, key, meta, limits)
    return _html_chapters(root, key, files, meta)
