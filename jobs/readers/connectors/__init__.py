"""Source connectors: each turns one kind of local source into rows of the document schema.

Every connector yields `(row, reject_reason_or_None)`. Bad input (a corrupt EPUB, a PDF that
will not open, an empty or binary file, a file over the size cap) becomes a reject row whose
reason names the rule, `rule:value`; it never raises, because one odd file must not kill the
ingest stage (DESIGN.md, "Nothing dropped silently").

Local files are not fetched, so `fetched_at` stays empty; `created_at` is the source's own date
(EPUB/PDF metadata, the paper's publication date, the post's time, the commit, else the mtime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.schema import make_document
from jobs.web.charset import SAMPLE_HALF, choose, decode_file, decodes, open_codec
from jobs.web.mime import sniff_content_type

Ingested = tuple[dict[str, Any], str | None]  # (document row, reject reason or None)

DEFAULT_MAX_FILE_BYTES = 50_000_000


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding) of a file: `jobs.web.charset.decode_file` of its content."""
    return decode_file(path.read_bytes())


def sniff_encoding(path: Path, chunk: int = 1 << 20) -> str:
    """The encoding `decode_file` would choose, found by streaming: dumps are read line by line and
    may be larger than memory allows to hold twice. Same decision (`charset.choose`), same sample."""
    with path.open("rb") as fh:  # `charset.sample_of` without reading the middle
        sample = fh.read(2 * SAMPLE_HALF)
        if path.stat().st_size > 2 * SAMPLE_HALF:
            fh.seek(-SAMPLE_HALF, 2)
            sample = sample[:SAMPLE_HALF] + fh.read(SAMPLE_HALF)

    def fits(codec: str) -> bool:
        with path.open("rb") as fh:
            return decodes(iter(lambda: fh.read(chunk), b""), codec)

    codec, source = choose(sample, fits, prescan=sniff_content_type(sample) == "text/html")
    return open_codec(codec, source)


def file_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def text_reason(text: str, encoding: str) -> str | None:
    """The reasons every text file shares: binary content, or nothing but whitespace."""
    if encoding == "binary":
        return "ingest_binary_file"
    return None if text.strip() else "ingest_empty_file"


def size_reason(path: Path, max_bytes: int) -> str | None:
    """`ingest_too_large:<bytes>` above the cap, checked before reading so a huge file costs nothing."""
    size = path.stat().st_size
    return f"ingest_too_large:{size}" if size > max_bytes else None


def guarded(source_type: str, origin: str, build: Callable[[], Ingested], **fields: Any) -> Ingested:
    """`build()`, or a reject row naming the error: an unreadable file or a parser bug on one
    hostile input must cost that document, not the stage."""
    try:
        return build()
    except Exception as err:  # recorded as the reject reason, never re-raised
        reason = "ingest_unreadable" if isinstance(err, OSError) else "ingest_error"
        printable = origin.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # odd file names
        return make_document(source_type, printable, "", **fields), f"{reason}:{type(err).__name__}"


def files_under(root: Path) -> Iterator[Path]:
    """Regular files below `root` in a stable order; hidden entries (`.git`, `.DS_Store`) skipped."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.is_file() and not any(part.startswith(".") for part in rel):
            yield path
