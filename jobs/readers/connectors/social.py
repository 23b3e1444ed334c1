"""Social post dumps (JSONL or CSV) into one document per post.

Each role (`id`, `text`, `author`, ...) is read from the first column the dump has among its
defaults, or from the column the config names (`sources.social_fields`, e.g. `{"text": "tweet"}`);
JSON roles may be dotted paths into nested objects (`user.screen_name`). The origin is
`<dump file name>#<post id>`; a post without an id is numbered by its line (JSONL) or row (CSV).

The author and the `@handles` in the text are kept as annotations (`social.author`,
`social.mentions` as a JSON list) for the PII stage to act on; the handle syntax is Twitter's
(1-15 of `[A-Za-z0-9_]`, not preceded by a word character). Times are parsed from ISO 8601, Unix
seconds or milliseconds, Twitter's `Wed Oct 10 20:19:24 +0000 2018` and RFC 2822; naive times are
taken as UTC; an unparsable time is kept raw in `social.created_at_raw`.

Dumps are streamed, so the size cap applies to each post, not to the dump (a `.json` array is read
whole and capped as a file). In a folder, files other than dumps are ignored. A malformed JSON line,
a post without text or a repeated id is rejected with its reason; the rest of the dump is kept.

Lines are read bounded and decoded one by one (`connectors.decoded_lines`): a line over
`max_line_bytes` is rejected `ingest_line_too_long` unread, one that decodes neither as UTF-8 nor
in the dump's legacy encoding `ingest_bad_encoding`. JSON nested deeper than `max_json_depth` is
rejected `ingest_json_too_deep` before it is parsed (CPython's parser would raise RecursionError).
A CSV row with a field over `max_csv_field_chars` is rejected `ingest_csv_field_too_large` (or a
row over `max_line_bytes` `ingest_row_too_long`); reading resumes after the rest of that row.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

from core.config import SourcesConfig
from core.schema import make_document
from jobs.readers.connectors import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_FILE_BYTES,
    Ingested,
    Line,
    decoded_lines,
    files_under,
    sniff_encoding,
)
from jobs.web.charset import ERRORS

FIELD_DEFAULTS: dict[str, tuple[str, ...]] = {
    "id": ("id", "id_str", "post_id"),
    "text": ("text", "full_text", "body", "content", "tweet", "selftext"),
    "author": ("author", "user", "username", "screen_name", "user.screen_name"),
    "created_at": ("created_at", "time", "timestamp", "created_utc", "date"),
    "thread": ("thread", "thread_id", "conversation_id", "link_id"),
    "reply_to": ("reply_to", "in_reply_to_status_id_str", "in_reply_to", "parent_id"),
    "community": ("community", "subreddit", "channel", "group"),
    "platform": ("platform",),
}
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})\b")
_TWITTER_TIME = "%a %b %d %H:%M:%S %z %Y"
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET_STEP = tuple({ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(i, 0) for i in range(256))
_NOT_BRACKETS = bytes(i for i in range(256) if i not in b"[]{}")


def json_depth(text: str, limit: int) -> int:
    """The nesting depth of JSON `text`, exactly when it is over `limit` (else at most `limit`):
    brackets counted outside strings, in C-speed passes (a regex drops the strings, `translate`
    the rest, `accumulate` sums), so a line of a million `[` costs linear time and no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return 0
    outside = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, outside)), default=0)


def mentions(text: str) -> list[str]:
    """`@handles` in order of first appearance, each once."""
    return list(dict.fromkeys(f"@{m}" for m in MENTION.findall(text)))


def parse_time(value: Any) -> datetime | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (
        isinstance(value, str) and re.fullmatch(r"\d{9,13}(\.\d+)?", value)
    ):
        seconds = float(value)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, tz=UTC)
    text = str(value).strip()
    for parse in (
        datetime.fromisoformat,
        lambda t: datetime.strptime(t, _TWITTER_TIME),
        parsedate_to_datetime,
    ):
        try:
            parsed = parse(text)
        except (ValueError, TypeError, IndexError):
            continue
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _get(record: Mapping[str, Any], path: str) -> Any:
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _utf8(text: str) -> str:
    """JSON may escape lone surrogates (`"\\ud83d"`, half an emoji) that Parquet cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _scalar(value: Any) -> str | None:
    if isinstance(value, Mapping):  # e.g. a whole `user` object: its handle, else its id
        value = value.get("screen_name") or value.get("username") or value.get("name") or value.get("id")
    return None if value is None or value == "" else _utf8(str(value))


class PostReader:
    """Turns records of one dump into documents; remembers ids to reject repeats."""

    def __init__(
        self,
        path: Path,
        fields: Mapping[Any, str],
        encoding: str,
        max_bytes: int,
        limits: SourcesConfig = DEFAULT_LIMITS,
    ) -> None:
        self.path, self.encoding, self.max_bytes, self.seen = path, encoding, max_bytes, set[str]()
        self.fields, self.limits = dict(fields), limits

    def role(self, record: Mapping[str, Any], role: str) -> Any:
        if role in self.fields:
            return _get(record, self.fields[role])
        return next((v for key in FIELD_DEFAULTS[role] if (v := _get(record, key)) not in (None, "")), None)

    def reject(
        self, number: int, raw: str, reason: str, encoding: str | None = None, **notes: str
    ) -> Ingested:
        origin = f"{self.path.name}#line:{number}"
        encoding = self.encoding if encoding is None else encoding
        notes = {"social.line": str(number), **({"ingest.encoding": encoding} if encoding else {}), **notes}
        return make_document("social", origin, raw[:10_000], domain=self.path.stem, annotations=notes), reason

    def post(
        self, number: int, record: Mapping[str, Any], size: int, encoding: str | None = None
    ) -> Ingested:
        encoding = encoding or self.encoding
        if size > self.max_bytes:
            return self.reject(number, "", f"ingest_too_large:{size}", encoding)
        post_id = _scalar(self.role(record, "id")) or f"line:{number}"
        text = self.role(record, "text")
        text = _utf8(text) if isinstance(text, str) else ""
        raw_time = self.role(record, "created_at")
        annotations = {
            "social.id": post_id,
            "social.line": str(number),
            "social.author": _scalar(self.role(record, "author")),
            "social.mentions": json.dumps(mentions(text)),
            "social.created_at_raw": None if parse_time(raw_time) else _scalar(raw_time),
            "ingest.encoding": encoding,
            **{
                f"social.{r}": _scalar(self.role(record, r))
                for r in ("thread", "reply_to", "community", "platform")
            },
        }
        doc = make_document(
            "social",
            f"{self.path.name}#{post_id}",
            text,
            domain=self.path.stem,
            content_type="text/plain",
            created_at=parse_time(raw_time),
            annotations={k: v for k, v in annotations.items() if v is not None},
        )
        reason = None if text.strip() else "social_missing_text"
        if reason is None and post_id in self.seen:
            reason = "social_duplicate_id"
        self.seen.add(post_id)
        return doc, reason


def _jsonl(reader: PostReader) -> Iterator[Ingested]:
    for line in decoded_lines(reader.path, reader.limits.max_line_bytes, reader.encoding):
        text = line.text.rstrip("\r\n")
        if line.reason:
            yield reader.reject(line.number, "", line.reason, line.codec)
        elif text.strip():
            yield _json_line(reader, line, text)


def _json_line(reader: PostReader, line: Line, text: str) -> Ingested:
    number, codec, max_depth = line.number, line.codec, reader.limits.max_json_depth
    if (depth := json_depth(text, max_depth)) > max_depth:
        return reader.reject(number, "", f"ingest_json_too_deep:{depth}", codec)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return reader.reject(number, text, f"social_malformed_json:{err.msg}", codec)
    except RecursionError:  # depth within the limit, but the stack was already deep
        return reader.reject(number, "", f"ingest_json_too_deep:{depth}", codec)
    if not isinstance(record, dict):
        return reader.reject(number, text, f"social_not_an_object:{type(record).__name__}", codec)
    return reader.post(number, record, len(text), codec)


class _LineRejected(Exception):
    """Raised through `csv.reader` for a line it must not see; the reader then starts afresh."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _CsvLines:
    """Decoded physical lines for `csv.reader`, counted per row: a rejected line or a row over
    `max_bytes` raises `_LineRejected`; `resync` skips the rest of a row cut inside a quoted field
    (RFC 4180: quotes inside a field come in pairs, so an odd count means the field goes on)."""

    def __init__(self, lines: Iterator[Line], max_bytes: int) -> None:
        self.lines, self.max_bytes = lines, max_bytes
        self.first = self.last = self.quotes = self.size = 0
        self.codecs: list[str] = []

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        self.first, self.last = self.first or line.number, line.number
        self.quotes, self.size = self.quotes + line.quotes, self.size + line.size
        if line.reason:
            raise _LineRejected(line.reason)
        if self.size > self.max_bytes:
            raise _LineRejected(f"ingest_row_too_long:>{self.max_bytes}")
        self.codecs.append(line.codec)
        return line.text

    def start_row(self) -> None:
        self.first = self.quotes = self.size = 0
        self.codecs.clear()

    def resync(self) -> int:
        """Skip to the end of the row an error cut short; how many lines that took."""
        skipped = 0
        while self.quotes % 2 and (line := next(self.lines, None)) is not None:
            self.quotes, skipped = self.quotes + line.quotes, skipped + 1
        return skipped

    def codec(self) -> str:
        """The row's encoding: the legacy one if any of its lines needed it."""
        return next((c for c in self.codecs if c != "utf-8"), "utf-8")


@contextmanager
def _csv_field_limit(chars: int) -> Iterator[None]:
    """`csv.field_size_limit` is process-wide: set for one row's parse, then put back."""
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv(reader: PostReader) -> Iterator[Ingested]:
    limits = reader.limits
    lines = _CsvLines(
        decoded_lines(reader.path, limits.max_line_bytes, reader.encoding), limits.max_line_bytes
    )
    rows = csv.DictReader(lines)
    try:
        with _csv_field_limit(limits.max_csv_field_chars):
            header = rows.fieldnames
    except (csv.Error, _LineRejected) as err:  # no names to map the rows by: the dump is unusable
        yield reader.reject(lines.first, "", f"social_malformed_csv:header: {err}"[:200])
        return
    number = 0
    while header:
        lines.start_row()
        try:
            with _csv_field_limit(limits.max_csv_field_chars):
                row = next(rows)
        except StopIteration:
            return
        except (csv.Error, _LineRejected) as err:
            number += 1
            yield _csv_reject(reader, lines, number, err, limits.max_csv_field_chars)
            continue
        number += 1
        size = sum(len(v) for v in row.values() if isinstance(v, str))
        yield reader.post(number, row, size, lines.codec())


def _csv_reject(
    reader: PostReader, lines: _CsvLines, number: int, err: Exception, field_chars: int
) -> Ingested:
    first, last = lines.first, lines.last + lines.resync()
    if isinstance(err, _LineRejected):
        reason = err.reason
    elif str(err).startswith("field larger than field limit"):
        reason = f"ingest_csv_field_too_large:>{field_chars}"
    else:  # a NUL byte, or a quote where strict CSV allows none
        reason = f"social_malformed_csv:{err}"[:200]
    return reader.reject(number, "", reason, lines.codec(), **{"social.lines": f"{first}-{last}"})


def _json_array(reader: PostReader) -> Iterator[Ingested]:
    """A `.json` file holding one array of posts (API exports); read whole, so capped as a file."""
    size = reader.path.stat().st_size
    if size > reader.max_bytes:
        yield reader.reject(0, "", f"ingest_too_large:{size}")
        return
    text = reader.path.read_text(encoding=reader.encoding, errors=ERRORS)
    max_depth = reader.limits.max_json_depth + 1  # the array holding the posts is one more level
    if (depth := json_depth(text, max_depth)) > max_depth:
        yield reader.reject(0, "", f"ingest_json_too_deep:{depth}")
        return
    try:
        records = json.loads(text)
    except json.JSONDecodeError as err:
        yield reader.reject(err.lineno, "", f"social_malformed_json:{err.msg}")
        return
    except RecursionError:
        yield reader.reject(0, "", f"ingest_json_too_deep:{depth}")
        return
    for number, record in enumerate(records, start=1):
        if isinstance(record, dict):
            yield reader.post(number, record, len(json.dumps(record)))
        else:
            yield reader.reject(number, json.dumps(record), f"social_not_an_object:{type(record).__name__}")


def _starts_with_bracket(path: Path, encoding: str) -> bool:
    with path.open(encoding=encoding, errors=ERRORS) as fh:
        return fh.read(1024).lstrip("\ufeff \t\r\n").startswith("[")


DUMP_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv"})


def iter_social(
    path: Path,
    fields: Mapping[Any, str] | None = None,
    fmt: str = "auto",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    limits: SourcesConfig = DEFAULT_LIMITS,
) -> Iterator[Ingested]:
    """One document per post of the dump at `path`, or of every dump in a folder (`.jsonl`,
    `.ndjson`, `.json` lines or array, `.csv`); `fmt` "auto" picks the reader by extension.
    `limits`: the parser bounds (lines, JSON depth, CSV fields)."""
    found = files_under(path) if path.is_dir() else iter([path])
    paths = [p for p in found if p == path or p.suffix.lower() in DUMP_SUFFIXES]
    for dump in paths:
        reader = PostReader(dump, fields or {}, sniff_encoding(dump), max_file_bytes, limits)
        kind = fmt if fmt != "auto" else ("csv" if dump.suffix.lower() == ".csv" else "jsonl")
        if kind == "csv":
            yield from _csv(reader)
        elif dump.suffix.lower() == ".json" and _starts_with_bracket(dump, reader.encoding):
            yield from _json_array(reader)
        else:
            yield from _jsonl(reader)
