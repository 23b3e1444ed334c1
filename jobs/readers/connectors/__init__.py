"""Source connectors: each turns one kind of local source into rows of the document schema.

Every connector yields `(row, reject_reason_or_None)`. Bad input (a corrupt EPUB, a PDF that
will not open, an empty or binary file, a file over the size cap) becomes a reject row whose
reason names the rule, `rule:value`; it never raises, because one odd file must not kill the
ingest stage (DESIGN.md, "Nothing dropped silently").

Local files are not fetched, so `fetched_at` stays empty; `created_at` is the source's own date
(EPUB/PDF metadata, the paper's publication date, the post's time, the commit, else the mtime).

Parsers are bounded by `SourcesConfig` (archive members, lines, JSON depth, CSV fields): a limit
hit rejects that record or file with the limit's reason and reading goes on. Dumps read line by
line decide the encoding per line (`decoded_lines`), so one odd line cannot turn the file to mojibake.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.config import SourcesConfig
from core.schema import make_document
from jobs.web.charset import ERRORS, SAMPLE_HALF, choose, decode_file, decodes, open_codec
from jobs.web.mime import sniff_content_type

Ingested = tuple[dict[str, Any], str | None]  # (document row, reject reason or None)

DEFAULT_MAX_FILE_BYTES = SourcesConfig().max_file_bytes
DEFAULT_LIMITS = SourcesConfig()  # the parser bounds when a caller passes none
CHUNK = 1 << 16  # what a bounded reader holds at once beyond its limit
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # where a text file opened with newline="" ends a line too


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


@dataclass(frozen=True, slots=True)
class Line:
    """One physical line of a dump, decoded on its own."""

    number: int  # 1-based
    text: str  # with its line break; "" when rejected
    size: int  # of the whole line: bytes, or characters in a file read as text (UTF-16, ISO-2022)
    codec: str  # what decoded it ("" when rejected)
    reason: str | None  # `ingest_line_too_long:<size>` or `ingest_bad_encoding:<codecs tried>`
    quotes: int  # `"` characters in the whole line, the dropped part of a long one included (CSV)


def bounded_lines(fh: IO[Any], max_len: int) -> Iterator[tuple[Any, int, int]]:
    """(line, its whole length, its `"` count) per line of an open file. `readline(max_len + 1)`,
    then the rest of a longer line is read in chunks and dropped: a 256 MiB line costs a chunk of
    memory, not its length (the line itself comes back cut)."""
    while line := fh.readline(max_len + 1):
        quote: Any = b'"' if isinstance(line, bytes) else '"'
        size, quotes = len(line), line.count(quote)
        if size > max_len and not _ends_line(line):
            while chunk := fh.readline(CHUNK):
                size, quotes = size + len(chunk), quotes + chunk.count(quote)
                if _ends_line(chunk):
                    break
        yield line, size, quotes


def _ends_line(line: str | bytes) -> bool:
    return line.endswith(b"\n") if isinstance(line, bytes) else line.endswith(("\n", "\r"))


def decoded_lines(path: Path, max_bytes: int, codec: str | None = None) -> Iterator[Line]:
    """The lines of a dump, each decoded on its own: strict UTF-8, else the file's legacy encoding
    (`sniff_encoding`, e.g. a windows-1252 export) when the line decodes with it, else rejected
    `ingest_bad_encoding`. UTF-16 (by its BOM) and 7-bit ISO-2022 cannot be split into lines by
    bytes, so such a file is decoded whole, as before. A line over `max_bytes` (what ends in `\n`)
    is rejected `ingest_line_too_long` without being held; a lone `\r` inside one also ends a line,
    as in a file opened with `newline=""`. `codec`: the file's `sniff_encoding`, if known."""
    codec = codec or sniff_encoding(path)
    if codec == "utf-16" or codec.startswith("iso2022"):
        with path.open(encoding=codec, errors=ERRORS, newline="") as whole:
            for number, (line, size, quotes) in enumerate(bounded_lines(whole, max_bytes), start=1):
                too_long = size > max_bytes
                reason = f"ingest_line_too_long:{size}" if too_long else None
                yield Line(number, "" if too_long else line, size, "" if too_long else codec, reason, quotes)
        return
    legacy, number = (None if codec in ("utf-8", "utf-8-sig") else codec), 0
    with path.open("rb") as fh:
        for raw, size, quotes in bounded_lines(fh, max_bytes):
            number += 1
            if size > max_bytes:
                yield Line(number, "", size, "", f"ingest_line_too_long:{size}", quotes)
                continue
            raw = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            text, used = _decode_line(raw, legacy)
            if not used:
                tried = "utf-8" + (f",{legacy}" if legacy else "")
                yield Line(number, "", size, "", f"ingest_bad_encoding:{tried}", quotes)
                continue
            if "\r" in text and len(pieces := _LONE_CR.split(text)) > 1:  # old Mac line ends
                for piece in filter(None, pieces):
                    yield Line(number, piece, len(piece), used, None, piece.count('"'))
                    number += 1
                number -= 1
                continue
            yield Line(number, text, size, used, None, quotes)


def _decode_line(raw: bytes, legacy: str | None) -> tuple[str, str]:
    """(text, codec), or ("", "") when neither UTF-8 nor the file's legacy encoding reads the line."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if legacy and decodes([raw], legacy):
        return raw.decode(legacy, ERRORS), legacy
    return "", ""
