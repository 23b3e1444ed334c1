"""Evaluation sets read from a folder, one benchmark per file, for decontamination (decontam.py).

A benchmark's name is its file path relative to the folder without the extension
(`mmlu/anatomy.jsonl` is `mmlu/anatomy`). Formats, each optionally gzip-compressed (`.gz`):

- `.jsonl` / `.json`: one record per line (a `.json` file holding one array or object is read
  whole). A record gives one item: its text values joined by newlines in record order, so a
  question and its choices stay one passage, as a contaminated document would copy them. Text
  values are, by default, every string in the record, walking nested objects and lists (`choices`)
  down to `MAX_DEPTH` levels; or only the named top-level `fields`.
- `.csv`: a header row, then one item per row: every non-empty cell joined, or the named columns.
- `.txt`: items separated by blank lines.

Files are hostile: each file and all together are bounded by `max_bytes` (after decompression),
and exceeding it is an error naming the file, never a silent cut. Bytes that are not UTF-8 are
decoded with U+FFFD and the lines affected counted (`bad_encoding`); a corrupt JSON line or CSV
row is skipped and counted (`skipped`), never fatal.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = (".jsonl", ".json", ".csv", ".txt")
MAX_DEPTH = 6  # nesting levels of a JSON record searched for strings
MAX_CSV_FIELD_CHARS = 1 << 20  # one CSV cell; a longer one skips its row
MAX_FILES = 100_000


@dataclass
class EvalSet:
    """One benchmark: its items (passages) and what could not be read cleanly."""

    name: str
    items: list[str]
    skipped: int = 0  # records that gave no item: corrupt JSON, not an object, no text, bad CSV row
    bad_encoding: int = 0  # lines that were not valid UTF-8 (decoded with replacement)
    path: str = ""


def read_evals(folder: str | Path, max_bytes: int, fields: Sequence[str] | None = None) -> list[EvalSet]:
    """Every evaluation file under `folder`, sorted by name; raises ValueError naming the folder or
    the file for a missing or empty folder, a file or total above `max_bytes`, or a name clash."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"evaluation sets {str(root)!r}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and _format(p) and not _hidden(p, root))
    if not files:
        raise ValueError(f"evaluation sets {str(root)!r}: no {', '.join(FORMATS)} files (optionally .gz)")
    if len(files) > MAX_FILES:
        raise ValueError(f"evaluation sets {str(root)!r}: more than {MAX_FILES} files")
    sets: dict[str, EvalSet] = {}
    total = 0
    for path in files:
        data = _read_bounded(path, max_bytes)
        total += len(data)
        if total > max_bytes:
            raise ValueError(f"{path}: the evaluation files together exceed {max_bytes} bytes")
        name = path.relative_to(root).as_posix()[: -len(_format(path) + _gz(path))]
        if name in sets:
            raise ValueError(f"{path}: benchmark name {name!r} also used by {sets[name].path}")
        sets[name] = parse(name, data, _format(path), fields)
        sets[name].path = str(path)
    return list(sets.values())


def parse(name: str, data: bytes, fmt: str, fields: Sequence[str] | None = None) -> EvalSet:
    """One file's bytes as a benchmark (`fmt` one of FORMATS)."""
    lines, bad = _decode(data)
    out = EvalSet(name, [], bad_encoding=bad)
    if fmt == ".txt":
        out.items = _paragraphs(lines)
    elif fmt == ".csv":
        _csv(lines, fields, out)
    else:
        _json(lines, fields, out, whole=fmt == ".json")
    return out


def record_text(record: Any, fields: Sequence[str] | None = None) -> str:
    """A JSON record's text: its strings (or those under `fields`) joined by newlines."""
    if fields is not None:
        if not isinstance(record, dict):
            return ""
        return "\n".join(s for f in fields for s in _strings(record.get(f), MAX_DEPTH) if s.strip())
    return "\n".join(s for s in _strings(record, MAX_DEPTH) if s.strip())


def _strings(value: Any, depth: int) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth > 0 and isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth - 1)
    elif depth > 0 and isinstance(value, list):
        for v in value:
            yield from _strings(v, depth - 1)


def _json(lines: list[str], fields: Sequence[str] | None, out: EvalSet, whole: bool) -> None:
    records: list[Any] | None = None
    if whole:
        try:
            loaded = json.loads("".join(lines))
            records = loaded if isinstance(loaded, list) else [loaded]
        except (ValueError, RecursionError):
            records = None  # not one document: read as lines
    if records is None:
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError):
                out.skipped += 1
    for record in records:
        text = record_text(record, fields) if isinstance(record, dict | list) else ""
        if text:
            out.items.append(text)
        else:
            out.skipped += 1


def _csv(lines: list[str], fields: Sequence[str] | None, out: EvalSet) -> None:
    reader = csv.reader(io.StringIO("".join(lines)))
    with _field_limit(MAX_CSV_FIELD_CHARS):
        header = _next_row(reader, out)
        if header is None:
            return
        columns = range(len(header)) if fields is None else [header.index(f) for f in fields if f in header]
        if fields is not None and not columns:
            raise ValueError(f"benchmark {out.name!r}: none of the columns {list(fields)} in {header}")
        while (row := _next_row(reader, out)) is not None:
            text = "\n".join(row[i] for i in columns if i < len(row) and row[i].strip())
            if text:
                out.items.append(text)
            else:
                out.skipped += 1


def _next_row(reader: Any, out: EvalSet) -> list[str] | None:
    """The next row; a malformed one (a cell over the limit, a stray quote) is counted and skipped."""
    while True:
        try:
            return list(next(reader))
        except StopIteration:
            return None
        except csv.Error:
            out.skipped += 1


@contextmanager
def _field_limit(chars: int) -> Iterator[None]:
    """`csv.field_size_limit` is process-wide: set it for one file's parse, then put it back."""
    previous = csv.field_size_limit(chars)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _paragraphs(lines: list[str]) -> list[str]:
    items, current = [], list[str]()
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.rstrip("\r\n"))
        elif current:
            items.append("\n".join(current))
            current = []
    return items


def _decode(data: bytes) -> tuple[list[str], int]:
    """Lines (ends kept), and how many were not UTF-8 and were decoded with replacement."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8").splitlines(keepends=True), 0
    except UnicodeDecodeError:
        pass
    lines, bad = [], 0
    for raw in data.splitlines(keepends=True):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw.decode("utf-8", "replace"))
            bad += 1
    return lines, bad


def _read_bounded(path: Path, max_bytes: int) -> bytes:
    """The file's bytes (decompressed for `.gz`), or ValueError naming it above `max_bytes`."""
    try:
        with gzip.open(path, "rb") if _gz(path) else path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: unreadable evaluation file ({err})") from err
    if len(data) > max_bytes:
        raise ValueError(f"{path}: above the evaluation-set limit of {max_bytes} bytes (max_eval_bytes)")
    return data


def _gz(path: Path) -> str:
    return ".gz" if path.name.lower().endswith(".gz") else ""


def _format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return next((f for f in FORMATS if name.endswith(f) and len(name) > len(f)), "")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
