"""WARC, WET and ARC files into documents, one record at a time.

Reads WARC/1.0, 1.1 and 0.18 (ClueWeb09), plain or gzip (a member per record, as ISO 28500
annex D recommends), and ARC through warcio's arc2warc. `response` and `resource` records
with an HTML payload become `web` documents with the decoded HTML in `raw_content` (extraction
fills `text` later); WET `conversion` records become documents with `text` filled. Other record
types (request, metadata, warcinfo, revisit) are counted in `WarcStats`, not turned into rows.

Opt-outs in the archived response (the raw headers exist only here): `warc.optout_signals` lists
the X-Robots-Tag `noai`/`noimageai` directives scoped to our product token or `*` and a TDMRep
`tdm-reservation: 1` header (TDMRep section 3.3), `warc.tdm_policy` the `tdm-policy` header; the
rules are jobs/crawl/optout.py's `page_signals`. An archived `/robots.txt` response is rejected
`warc_robots_txt` with its body (first ROBOTS_MAX_BYTES, RFC 9309 section 2.5) in `text` and its
status in `warc.http_status`, whatever the status: RFC 9309 section 2.3.1 gives 4xx and 5xx a
meaning (allow all, disallow all), which the copyright stage (jobs/copyright/optout.py) applies.

A bad record never raises out of the iterator: a truncated tail, a corrupt gzip member or a record
whose Content-Length lies is reported in `WarcStats.bad` with its byte offset, and the records
before it are kept. A gzip file whose members do not line up with records (one member for the
whole file, or members split mid-record) is re-read as one gzip stream; offsets then count
decompressed bytes (annotation `warc.offset_decompressed` instead of `warc.offset`).

Every read is bounded by `WarcConfig` (a 261 KB gzip member can inflate to 256 MiB, and warcio
grows a header line by concatenation, quadratic in its length). A record whose block passes
`max_record_bytes` is rejected `warc_record_too_large` after at most that many bytes were held, a
header line over `max_header_line_bytes` (`warc_header_line_too_long`) is cut and the rest of it
read in chunks and dropped, a header block over `max_header_bytes` (`warc_header_too_large`) keeps
only its Content-Length from there on; either way the record's framing survives and reading goes
on with the next record. A header limit hit where no record can be framed, and a file that
inflates past `max_file_bytes` (`warc_file_too_large`), end the file with a bad record naming it.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeadersParser

from core.config import CrawlConfig, WarcConfig
from core.schema import make_document
from jobs.crawl.optout import ROBOTS_MAX_BYTES, bounded_url, page_signals, tdm_policy
from jobs.web.charset import codec_name, decode
from jobs.web.mime import parse_content_type
from jobs.web.urls import host

HTML_TYPES = ("text/html", "application/xhtml+xml")
DOCUMENT_RECORDS = ("response", "resource", "conversion")
_CHUNK = 1 << 16
# Limits that end a walk: re-reading the file as one gzip stream would hit them again.
_FILE_LIMITS = ("warc_file_too_large", "warc_header_line_too_long", "warc_header_too_large")

Ingested = tuple[dict[str, Any], str | None]  # (document, reject reason or None)
# Opt-out directives are scoped to the crawler's product token (robots_directives); the Spark
# reader does not pass a user agent, so it is the crawler's default one.
DEFAULT_USER_AGENT: str = CrawlConfig.model_fields["user_agent"].default
ROBOTS_REJECT = "warc_robots_txt"


@dataclass
class BadRecord:
    offset: int  # byte offset where the bad record (or the unreadable stretch) starts
    error: str


@dataclass
class WarcStats:
    """Per-file counts, filled in while `iter_warc` runs (complete once it is exhausted)."""

    file: str
    records: int = 0  # records read completely, of any type
    by_type: dict[str, int] = field(default_factory=dict)
    documents: int = 0  # rows yielded without a reject reason
    rejected: dict[str, int] = field(default_factory=dict)  # rows yielded with a reason, by rule
    bad: list[BadRecord] = field(default_factory=list)
    gzip_stream: bool = False  # re-read as one gzip stream (members not aligned with records)
    source: str | None = None  # source label, or the warcinfo's `isPartOf`


class _LimitHit(Exception):
    """A file-wide bound was reached: the walk stops, and the reason is its bad record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Guard:
    """The configured bounds, and the header limits hit since the last record took its own."""

    limits: WarcConfig
    problems: list[str] = field(default_factory=list)

    def take(self) -> str | None:
        first = self.problems[0] if self.problems else None
        self.problems.clear()
        return first


def _bounded_line(readline: Callable[[int], bytes], cap: int) -> tuple[bytes, int]:
    """(at most `cap` bytes of the next line, the line's whole length): the rest of a longer line is
    read in chunks and dropped, so time stays linear and memory bounded."""
    line = readline(cap + 1)
    size = len(line)
    if size <= cap:
        return line, size
    if not line.endswith(b"\n"):
        while chunk := readline(_CHUNK):
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
    return line[:cap], size


class _Reader(DecompressingBufferedReader):
    """warcio's record reader, bounded. A gzip member inflates at most `_CHUNK` bytes per step
    (warcio inflates a whole 16 KiB block at once: 16 MiB of zeros); a line read without a length
    (a record's first line, the blank lines between records, an ARC header) is cut at
    `max_header_line_bytes`; the file may inflate to `max_file_bytes` at most."""

    decompressor: Any  # zlib's, or None once the file proved plain

    def __init__(self, fh: Any, guard: _Guard) -> None:
        super().__init__(fh)
        self.guard = guard

    def readline(self, length: int | None = None) -> bytes:
        if length is not None:
            return self._readline(length)
        cap = self.guard.limits.max_header_line_bytes
        line, size = _bounded_line(self._readline, cap)
        if size > cap:
            self.guard.problems.append(f"warc_header_line_too_long:{size}")
        return line

    def _readline(self, length: int) -> bytes:
        """Up to `length` bytes of the line, in linear time (warcio's `readline` subtracts the whole
        line read so far from `length` each round, so returns short; and it concatenates)."""
        parts, left = [], length
        while left > 0:
            self._fillbuff()
            if self.empty():
                break
            part = self.buff.readline(left)
            parts.append(part)
            left -= len(part)
            if part.endswith(b"\n"):
                break
        return b"".join(parts)

    def _fillbuff(self, block_size: int | None = None) -> None:
        inflater = self.decompressor
        if self.empty() and inflater is not None and not inflater.eof and inflater.unconsumed_tail:
            self._process_read(inflater.unconsumed_tail)  # the input a bounded step left over
            if not self.empty():
                return
        super()._fillbuff(block_size)

    def _decompress(self, data: bytes) -> bytes:
        if self.decompressor is None or not data:
            return data
        try:
            return bytes(self.decompressor.decompress(data, _CHUNK))
        except zlib.error:
            if self.num_block_read == 0:  # no gzip at all: warcio reads such a file plain
                self.decompressor = None
                return data
            return b""  # a damaged member: its record comes out truncated

    def _process_read(self, data: bytes) -> None:
        super()._process_read(data)
        if self.num_read > self.guard.limits.max_file_bytes:
            raise _LimitHit(f"warc_file_too_large:>{self.guard.limits.max_file_bytes}")


class _HeaderLines:
    """The lines of one header block (WARC or HTTP) for warcio's parser, each cut at
    `max_header_line_bytes`; past `max_header_bytes` only a Content-Length line (it frames the
    record) and the blank line that ends the block are passed on, the rest is read and dropped."""

    def __init__(self, stream: Any, guard: _Guard, statusline: bytes | None) -> None:
        self.stream, self.guard = stream, guard
        self.used, self.first = len(statusline or b""), statusline is None

    def readline(self, length: int | None = None) -> bytes:
        limits = self.guard.limits
        while True:
            line, size = _bounded_line(self.stream.readline, limits.max_header_line_bytes)
            self.used += size
            if size > limits.max_header_line_bytes:
                self.guard.problems.append(f"warc_header_line_too_long:{size}")
            last, first, self.first = not line.strip(), self.first, False
            if last and self.used > limits.max_header_bytes:
                self.guard.problems.append(f"warc_header_too_large:{self.used}")
            if last or first or self.used <= limits.max_header_bytes or _frames(line):
                return line


def _frames(line: bytes) -> bool:
    return line[:15].lower() == b"content-length:"


class _HeaderParser(StatusAndHeadersParser):
    """warcio's status-and-headers parser over `_HeaderLines`."""

    def __init__(self, base: StatusAndHeadersParser, guard: _Guard) -> None:
        super().__init__(base.statuslist, base.verify)
        self.guard = guard

    def parse(self, stream: Any, full_statusline: bytes | None = None) -> Any:
        lines = _HeaderLines(stream, self.guard, full_statusline)
        return super().parse(lines, full_statusline)


class _Iterator(ArchiveIterator):
    INC_RECORD = ""  # warcio prints this warning to stderr; we count it (err_count) instead

    def __init__(self, fh: IO[bytes], guard: _Guard) -> None:
        super().__init__(fh, arc2warc=True, check_digests=True)
        self.reader = _Reader(self.fh, guard)
        loader = self.loader
        for name in ("warc_parser", "http_parser", "http_req_parser"):
            setattr(loader, name, _HeaderParser(getattr(loader, name), guard))


@dataclass
class _Record:
    rec: ArcWarcRecord
    offset: int
    length: int
    body: bytes
    complete: bool
    framing_error: bool  # the record was not followed by the blank lines its length promises
    limit: str | None  # the bound this record hit (its body is then not read), or None


def iter_warc(
    path: Path,
    *,
    source_label: str | None = None,
    stats: WarcStats | None = None,
    limits: WarcConfig | None = None,
    user_agent: str = DEFAULT_USER_AGENT,
) -> Iterator[Ingested]:
    """(document, reject reason) per document record; pass `stats` to get the file's counts,
    `limits` for the parser bounds (default: `WarcConfig`'s) and `user_agent` to scope opt-outs."""
    stats = stats if stats is not None else WarcStats(file=path.name)
    stats.source = source_label
    arc = _is_arc(path)
    for record in _read_records(path, stats, arc, limits or WarcConfig()):
        if record.framing_error:
            stats.bad.append(BadRecord(record.offset, "warc_invalid_content_length"))
        if record.rec.rec_type == "warcinfo" and stats.source is None:
            stats.source = _warcinfo_field(record.body, "isPartOf")
        if record.rec.rec_type not in DOCUMENT_RECORDS:
            if record.limit:
                stats.bad.append(BadRecord(record.offset, record.limit))
            elif not _digest_ok(record.rec):
                stats.bad.append(BadRecord(record.offset, "warc_digest_mismatch"))
            continue
        doc, reason = _document(record, path.name, stats, user_agent)
        if arc:  # arc2warc invents a random WARC-Record-ID per read: not provenance, not stable
            doc["annotations"].pop("warc.record_id", None)
        if reason:
            rule = reason.split(":", 1)[0]
            stats.rejected[rule] = stats.rejected.get(rule, 0) + 1
        else:
            stats.documents += 1
        yield doc, reason


def _read_records(path: Path, stats: WarcStats, arc: bool, limits: WarcConfig) -> Iterator[_Record]:
    """Every complete record once. A gzip layout error triggers one re-read as a single stream,
    whose result counts only if it got further; otherwise the first read's problems stand."""
    with path.open("rb") as fh:
        done, problems = yield from _walk(fh, stats, arc, limits, skip=0, size=path.stat().st_size)
    if problems and _is_gzip(path) and not any(p.error.startswith(_FILE_LIMITS) for p in problems):
        stats.gzip_stream = True
        with path.open("rb") as fh:
            stream = _GzipStream(fh)
            buffered = io.BufferedReader(stream, _CHUNK)
            seen, again = yield from _walk(buffered, stats, arc, limits, skip=done)
        stats.gzip_stream = seen > done
        if seen > done or not again:
            problems = [p for p in again if p.error != "warc_truncated_record" or not stream.error]
            problems += [BadRecord(stream.error_offset, stream.error)] if stream.error else []
    stats.bad.extend(problems)


def _walk(
    fh: IO[bytes], stats: WarcStats, arc: bool, limits: WarcConfig, skip: int, size: int | None = None
) -> Generator[_Record, None, tuple[int, list[BadRecord]]]:
    """Yield records after the first `skip`; return (complete records seen, trailing problems).

    `size`: the file's length, to notice a tail warcio stopped before (a cut gzip member header).
    """
    guard = _Guard(limits)
    it = _Iterator(fh, guard)
    it.known_format = None if arc else "warc"  # else warcio reads any 5-word line as an ARC header
    seen, pending = 0, None  # pending: an incomplete record, bad unless a re-read recovers it
    while True:
        start = it.offset
        try:
            rec = next(it)
            record = _load(rec, it, guard)
        except StopIteration:
            break
        except Exception as err:  # warcio/zlib raise many types on corrupt input; all end the walk
            reason = err.reason if isinstance(err, _LimitHit) else guard.take() or _describe(err)
            return seen, [*([pending] if pending else []), BadRecord(max(start, 0), reason)]
        if pending:  # a good record follows, so a re-read cannot recover it: bad, and counted
            stats.bad.append(pending)
            seen, pending = seen + 1, None
        if not record.complete:
            pending = BadRecord(record.offset, "warc_truncated_record")
            continue
        seen += 1
        if seen > skip:
            stats.records += 1
            stats.by_type[rec.rec_type] = stats.by_type.get(rec.rec_type, 0) + 1
            yield record
    if pending:
        return seen, [pending]
    if size is not None and 0 <= it.offset < size:
        return seen, [BadRecord(it.offset, f"warc_truncated_tail:{size - it.offset}")]
    return seen, []


class _GzipStream(io.RawIOBase):
    """Concatenated gzip members as one stream, wherever the member boundaries fall.

    Stops at the first damaged or cut member and keeps the error and that member's byte offset,
    so everything decompressed before it is still read (gzip.GzipFile would raise and lose it).
    """

    def __init__(self, fh: IO[bytes]) -> None:
        super().__init__()
        self.fh, self.member, self.member_offset = fh, zlib.decompressobj(31), 0
        self.buffer, self.pos, self.error, self.error_offset = b"", 0, "", 0

    def readable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        while self.pos >= len(self.buffer) and self._fill():
            pass
        n = min(len(out), len(self.buffer) - self.pos)
        out[:n] = self.buffer[self.pos : self.pos + n]
        self.pos += n
        return n

    def _fill(self) -> bool:
        """Decompress at most one more chunk (a bomb inflates 1000x); False at the end of input or
        after an error."""
        if self.error:
            return False
        data = b""
        if self.member.eof:  # (zlib leaves the leftover in unconsumed_tail too then: not input)
            data = self.member.unused_data
            self.member_offset = self.fh.tell() - len(data)
            self.member = zlib.decompressobj(31)
        elif self.member.unconsumed_tail:
            data = self.member.unconsumed_tail
        data = data or self.fh.read(_CHUNK)
        if not data:
            if self.member.eof is False and self.fh.tell() > self.member_offset:
                self.error, self.error_offset = "warc_truncated_gzip_member", self.member_offset
            return False
        try:
            self.buffer, self.pos = self.member.decompress(data, _CHUNK), 0
        except zlib.error as err:
            self.error, self.error_offset = f"warc_corrupt_gzip_member:{err}"[:200], self.member_offset
            return False
        return True


def _load(rec: ArcWarcRecord, it: _Iterator, guard: _Guard) -> _Record:
    """Read the payload we need, at most `max_record_bytes` of it, then let warcio drain the rest
    (which finishes the digests). A record over a bound keeps no body."""
    errors, cap = it.err_count, guard.limits.max_record_bytes
    limit, body = guard.take(), b""  # header limits noted while this record's headers were read
    if limit is None and isinstance(rec.length, int) and rec.length > cap:
        limit = f"warc_record_too_large:{rec.length}"
    elif limit is None and _wants_body(rec):
        body, limit = _read_bounded(rec.content_stream(), cap)
    offset, length = it.get_record_offset(), it.get_record_length()
    complete = getattr(rec.raw_stream, "limit", 0) == 0
    return _Record(rec, offset, length, body, complete, it.err_count > errors, limit)


def _read_bounded(stream: Any, cap: int) -> tuple[bytes, str | None]:
    """(payload, None), or (b"", `warc_record_too_large`) as soon as more than `cap` bytes came: a
    missing Content-Length or a content encoding can make the payload larger than declared."""
    parts, size = [], 0
    while chunk := stream.read(min(_CHUNK, cap + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"", f"warc_record_too_large:>{cap}"
    return b"".join(parts), None


def _wants_body(rec: ArcWarcRecord) -> bool:
    if rec.rec_type in ("warcinfo", "conversion") or _is_robots(rec):
        return True
    return rec.rec_type in ("response", "resource") and _media_type(rec)[0] in (*HTML_TYPES, "text/plain", "")


def _media_type(rec: ArcWarcRecord) -> tuple[str, str | None]:
    """(mime type, charset) from the HTTP headers, or the record header for resource records."""
    headers = rec.http_headers if rec.http_headers is not None else rec.rec_headers
    mime, charset = parse_content_type(headers.get_header("Content-Type"))
    if rec.http_headers is None and (mime or "").startswith("application/http"):
        return "", charset
    return mime or "", charset


def _is_robots(rec: ArcWarcRecord) -> bool:
    """An archived robots.txt response: the path is `/robots.txt` at the top of the origin (RFC 9309
    section 2.3) and no query (that is another resource); it needs its HTTP status."""
    if rec.rec_type != "response" or rec.http_headers is None:
        return False
    try:
        parts = urlsplit((rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<> "))
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.path == "/robots.txt" and not parts.query


def _document(record: _Record, file: str, stats: WarcStats, user_agent: str) -> Ingested:
    rec, headers = record.rec, record.rec.rec_headers
    uri = (headers.get_header("WARC-Target-URI") or "").strip("<> ")  # WARC/1.0 allowed <uri>
    origin = uri or headers.get_header("WARC-Record-ID") or f"{file}#{record.offset}"
    mime, declared = _media_type(rec)
    if record.limit and record.limit.startswith("warc_header"):
        origin = f"{file}#{record.offset}"  # a cut header is no provenance to name the row by
    ann = _annotations(record, file, stats)
    _optout_annotations(rec, ann, user_agent)
    fields: dict[str, Any] = {
        "domain": host(origin) or None,
        "fetched_at": _parse_date(headers.get_header("WARC-Date")),
        "annotations": ann,
    }
    if record.limit:  # a parser bound was hit: provenance only
        return make_document("web", origin, **fields), record.limit
    if _is_robots(rec):  # kept whatever its status, for the copyright stage's robots.txt cache
        text = record.body[:ROBOTS_MAX_BYTES].decode("utf-8", "replace")  # RFC 9309 section 2.2: UTF-8
        doc = make_document("web", origin, text, content_type=mime or None, **fields)
        return doc, ("warc_digest_mismatch" if not _digest_ok(rec) else ROBOTS_REJECT)
    if rec.rec_type == "conversion" or mime == "text/plain":
        text = _decode(record.body, declared, ann)
        doc = make_document("web", origin, text, content_type="text/plain", **fields)
        return doc, _reason(record) or (None if text.strip() else "warc_empty_payload")
    is_html = mime in HTML_TYPES or (not mime and _sniff_html(record.body))
    raw = None
    if is_html and record.body:
        raw = _decode(record.body, declared, ann)
    doc = make_document("web", origin, content_type=mime or None, raw_content=raw, **fields)
    if not is_html:
        return doc, f"warc_content_type:{mime or 'unknown'}"
    return doc, _reason(record) or (None if raw and raw.strip() else "warc_empty_payload")


def _decode(body: bytes, declared: str | None, ann: dict[str, str]) -> str:
    """Decode, noting the charset used and, when it was not usable, the one declared."""
    decoded = decode(body, declared)
    ann["warc.charset"] = decoded.codec
    if declared and codec_name(declared) != decoded.codec:
        ann["warc.declared_charset"] = declared
    return decoded.text


def _reason(record: _Record) -> str | None:
    if not _digest_ok(record.rec):
        return "warc_digest_mismatch"
    status = record.rec.http_headers.get_statuscode() if record.rec.http_headers else None
    if status and not status.startswith("2"):
        return f"warc_http_status:{status}"
    return None


def _annotations(record: _Record, file: str, stats: WarcStats) -> dict[str, str]:
    headers = record.rec.rec_headers
    key = "warc.offset_decompressed" if stats.gzip_stream else "warc.offset"
    ann = {"warc.file": file, key: str(record.offset), "warc.length": str(record.length)}
    for name, header in (("record_id", "WARC-Record-ID"), ("trec_id", "WARC-TREC-ID")):
        if value := headers.get_header(header):
            ann[f"warc.{name}"] = value
    if record.rec.http_headers is not None and (status := record.rec.http_headers.get_statuscode()):
        ann["warc.http_status"] = status
    if stats.source:
        ann["warc.source"] = stats.source
    return ann


def _optout_annotations(rec: ArcWarcRecord, ann: dict[str, str], user_agent: str) -> None:
    """The archived response's header opt-outs (X-Robots-Tag; TDMRep section 3.3 headers)."""
    if rec.rec_type != "response" or rec.http_headers is None:
        return
    pairs = [(str(k), str(v)) for k, v in rec.http_headers.headers]
    if signals := page_signals(pairs, [], user_agent):
        ann["warc.optout_signals"] = ",".join(sorted(signals))
    if policy := bounded_url(tdm_policy(pairs, [])):
        ann["warc.tdm_policy"] = policy


def _digest_ok(rec: ArcWarcRecord) -> bool:
    """warcio checks WARC-Block-Digest and WARC-Payload-Digest while the record is read.

    ClueWeb09 (WARC/0.18) writes the block digest into WARC-Payload-Digest as well; when the two
    headers are equal and the block digest verified, the payload "mismatch" is that quirk.
    """
    problems = rec.digest_checker.problems
    if not problems:
        return True
    headers = rec.rec_headers
    copied = headers.get_header("WARC-Payload-Digest") == headers.get_header("WARC-Block-Digest")
    return copied and all(p.startswith("payload digest") for p in problems)


def _sniff_html(body: bytes) -> bool:
    head = body[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _parse_date(value: str | None) -> datetime | None:
    """WARC-Date is ISO 8601 UTC; ClueWeb09's `2008-10-294T...` and other junk give None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _warcinfo_field(body: bytes, name: str) -> str | None:
    for line in body.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower() and value.strip():
            return value.strip()
    return None


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _is_arc(path: Path) -> bool:
    """ARC files open with a `filedesc://` version block (ARC file format 1.0)."""
    try:
        with gzip.open(path) if _is_gzip(path) else path.open("rb") as fh:
            return fh.read(11) == b"filedesc://"
    except (OSError, EOFError):
        return False


def _describe(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"warc_unreadable:{type(err).__name__}: {lines[0] if lines else ''}"[:200]
