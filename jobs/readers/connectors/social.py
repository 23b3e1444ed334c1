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
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from core.schema import make_document
from jobs.readers.connectors import DEFAULT_MAX_FILE_BYTES, Ingested, files_under, sniff_encoding
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

    def __init__(self, path: Path, fields: Mapping[Any, str], encoding: str, max_bytes: int) -> None:
        self.path, self.encoding, self.max_bytes, self.seen = path, encoding, max_bytes, set[str]()
        self.fields = dict(fields)

    def role(self, record: Mapping[str, Any], role: str) -> Any:
        if role in self.fields:
            return _get(record, self.fields[role])
        return next((v for key in FIELD_DEFAULTS[role] if (v := _get(record, key)) not in (None, "")), None)

    def reject(self, number: int, raw: str, reason: str) -> Ingested:
        origin = f"{self.path.name}#line:{number}"
        notes = {"social.line": str(number), "ingest.encoding": self.encoding}
        return make_document("social", origin, raw[:10_000], domain=self.path.stem, annotations=notes), reason

    def post(self, number: int, record: Mapping[str, Any], size: int) -> Ingested:
        if size > self.max_bytes:
            return self.reject(number, "", f"ingest_too_large:{size}")
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
            "ingest.encoding": self.encoding,
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
    with reader.path.open(encoding=reader.encoding, errors=ERRORS, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield reader.reject(number, line, f"social_malformed_json:{err.msg}")
                continue
            if not isinstance(record, dict):
                yield reader.reject(number, line, f"social_not_an_object:{type(record).__name__}")
                continue
            yield reader.post(number, record, len(line))


def _csv(reader: PostReader) -> Iterator[Ingested]:
    csv.field_size_limit(max(reader.max_bytes, 131_072))
    with reader.path.open(encoding=reader.encoding, errors=ERRORS, newline="") as fh:
        rows = csv.DictReader(fh)
        try:
            for number, row in enumerate(rows, start=1):
                size = sum(len(v) for v in row.values() if isinstance(v, str))
                yield reader.post(number, row, size)
        except csv.Error as err:  # a broken quote swallows the rest of the file: say where
            yield reader.reject(rows.line_num, "", f"social_malformed_csv:{err}")


def _json_array(reader: PostReader) -> Iterator[Ingested]:
    """A `.json` file holding one array of posts (API exports); read whole, so capped as a file."""
    size = reader.path.stat().st_size
    if size > reader.max_bytes:
        yield reader.reject(0, "", f"ingest_too_large:{size}")
        return
    try:
        records = json.loads(reader.path.read_text(encoding=reader.encoding, errors=ERRORS))
    except json.JSONDecodeError as err:
        yield reader.reject(err.lineno, "", f"social_malformed_json:{err.msg}")
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
) -> Iterator[Ingested]:
    """One document per post of the dump at `path`, or of every dump in a folder (`.jsonl`,
    `.ndjson`, `.json` lines or array, `.csv`); `fmt` "auto" picks the reader by extension."""
    found = files_under(path) if path.is_dir() else iter([path])
    paths = [p for p in found if p == path or p.suffix.lower() in DUMP_SUFFIXES]
    for dump in paths:
        reader = PostReader(dump, fields or {}, sniff_encoding(dump), max_file_bytes)
        kind = fmt if fmt != "auto" else ("csv" if dump.suffix.lower() == ".csv" else "jsonl")
        if kind == "csv":
            yield from _csv(reader)
        elif dump.suffix.lower() == ".json" and _starts_with_bracket(dump, reader.encoding):
            yield from _json_array(reader)
        else:
            yield from _jsonl(reader)
