"""Hostile input to the readers (issue 12): every parser bound holds, costs stay bounded.

WARC records and header lines that inflate to hundreds of MiB, a ZIP bomb EPUB (honest and lying
sizes), a 64 MiB JSONL line, JSON nested 100,000 deep, a CSV field over the limit, a JSONL dump
with one line in another encoding, and billion-laughs XML and LaTeX. Each file is built in
`tmp_path` by streaming compression, so the test never holds the inflated data. The real reader
runs in a child process (tests/bounded.py) that reports peak memory above its baseline and wall
time; the bounds are generous (they test boundedness, not speed). Each limit hit must leave a
rejected record with a named reason, the good records around it must be kept, and the reader must
write nothing outside `tmp_path` (an audit hook in the child records every file opened for writing).
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

# The parsers the readers import lazily, imported here so that the child's baseline includes them.
import lxml.etree
import lxml.html  # noqa: F401
import pylatexenc.latex2text  # noqa: F401
import pypdf  # noqa: F401
import pytest
from ebooklib import epub

from core.config import SourcesConfig, WarcConfig
from jobs.readers.local import iter_sources
from jobs.readers.warc import WarcStats, iter_warc
from tests.bounded import MIB, Cost, run_bounded

MAX_SECONDS = 30.0  # generous: each case takes a second or two on two cores
PEAK_MIB = 64.0  # the limits below are small, so is what a reader may hold


def _watch_writes() -> list[str]:
    """Record every path the process opens for writing, creates, renames or removes from now on."""
    written: list[str] = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | bytes):
            mode, flags = args[1], args[2]
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (flags or 0) & write_flags:
                written.append(os.fsdecode(args[0]))
        elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link"):
            written.append(os.fsdecode(args[0]) if isinstance(args[0], str | bytes) else repr(args[0]))

    sys.addaudithook(hook)
    return written


def _assert_bounded(cost: Cost, tmp_path: Path, peak_mib: float = PEAK_MIB) -> None:
    assert cost.peak_above_baseline_mib < peak_mib, cost
    assert cost.seconds < MAX_SECONDS, cost
    assert all(Path(path).resolve().is_relative_to(tmp_path.resolve()) for path in cost.result["writes"])


def _repeat(byte: bytes, size: int) -> Iterator[bytes]:
    """`size` bytes of `byte`, a MiB at a time."""
    block = byte * MIB
    for _ in range(size // MIB):
        yield block
    yield byte * (size % MIB)


def _gzip_member(out: IO[bytes], parts: Iterable[bytes]) -> None:
    """One gzip member of the concatenated parts, compressed as they stream by."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    for part in parts:
        out.write(packer.compress(part))
    out.write(packer.flush())


# ---------------------------------------------------------------- WARC

GOOD_HTML = b"<html><body><p>A good page with a few ordinary words.</p></body></html>"


def _record(
    uri: str, block: Iterable[bytes], length: int | None, extra: Iterable[bytes] = ()
) -> Iterator[bytes]:
    """A WARC/1.1 response record (no digests); `length` None leaves Content-Length out, `extra`
    are more header lines."""
    yield b"WARC/1.1\r\nWARC-Type: response\r\nWARC-Date: 2024-05-01T12:00:00Z\r\n"
    yield b"WARC-Target-URI: " + uri.encode() + b"\r\n"
    yield from extra
    yield b"Content-Type: application/http; msgtype=response\r\n"
    yield b"" if length is None else b"Content-Length: %d\r\n" % length
    yield b"\r\n"
    yield from block
    yield b"\r\n\r\n"


def _http(body: Iterable[bytes], size: int) -> tuple[list[bytes], int]:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    return [head, *body], len(head) + size


def _good(uri: str) -> Iterator[bytes]:
    block, length = _http([GOOD_HTML], len(GOOD_HTML))
    return _record(uri, block, length)


def _warc(path: Path, records: Sequence[Iterable[bytes]], gzip: bool = True) -> list[int]:
    """Write the records, a gzip member each or plain; their offsets."""
    offsets = []
    with path.open("wb") as out:
        for record in records:
            offsets.append(out.tell())
            if gzip:
                _gzip_member(out, record)
            else:
                for part in record:
                    out.write(part)
    return offsets


def read_warc(path: str, limits: dict[str, int]) -> dict[str, Any]:
    """Driver: every row (origin, reason) and bad record (offset, error) of one WARC file."""
    writes = _watch_writes()
    stats = WarcStats(file=Path(path).name)
    rows = [[d["origin"], r] for d, r in iter_warc(Path(path), stats=stats, limits=WarcConfig(**limits))]
    return {"rows": rows, "bad": [[b.offset, b.error] for b in stats.bad], "writes": writes}


def test_warc_record_inflating_to_256_mib_is_rejected_and_skipped(tmp_path: Path) -> None:
    """A 250 KB gzip member holding a 256 MiB record (declared), and one holding 128 MiB without a
    Content-Length (found by reading): both rejected, the pages around them kept."""
    path = tmp_path / "bomb.warc.gz"
    declared, declared_len = _http(_repeat(b"\0", 256 * MIB), 256 * MIB)
    undeclared, _ = _http(_repeat(b"\0", 128 * MIB), 128 * MIB)
    records = [
        _good("http://a/before"),
        _record("http://a/declared", declared, declared_len),
        _record("http://a/undeclared", undeclared, None),
        _good("http://a/after"),
    ]
    _warc(path, records)
    assert path.stat().st_size < 1_000_000
    cost = run_bounded("tests.test_hostile_readers:read_warc", str(path), {"max_record_bytes": 1_000_000})
    assert cost.result["rows"] == [
        ["http://a/before", None],
        ["http://a/declared", f"warc_record_too_large:{declared_len}"],
        ["http://a/undeclared", "warc_record_too_large:>1000000"],
        ["http://a/after", None],
    ]
    assert cost.result["bad"] == []
    _assert_bounded(cost, tmp_path)


def test_warc_file_inflating_past_the_file_cap_stops_with_a_bad_record(tmp_path: Path) -> None:
    """Reading stops where the file has inflated past `max_file_bytes`: the records before are
    kept, the rest is one bad record naming the cap (counted, not silent)."""
    path = tmp_path / "long.warc.gz"
    block, length = _http(_repeat(b"\0", 64 * MIB), 64 * MIB)
    _, second, _ = _warc(
        path, [_good("http://a/before"), _record("http://a/big", block, length), _good("http://a/late")]
    )
    limits = {"max_file_bytes": 8_000_000, "max_record_bytes": 100_000_000}
    cost = run_bounded("tests.test_hostile_readers:read_warc", str(path), limits)
    assert cost.result["rows"] == [["http://a/before", None]]
    assert cost.result["bad"] == [[second, "warc_file_too_large:>8000000"]]
    _assert_bounded(cost, tmp_path)


@pytest.mark.parametrize("gzip", [True, False])
def test_warc_header_line_of_32_mib_is_rejected_in_linear_time(tmp_path: Path, gzip: bool) -> None:
    """A 32 MiB WARC-Target-URI took 16 s (quadratic): the line is cut and dropped in chunks, the
    record rejected, and the record after it read where it starts."""
    path = tmp_path / ("long-line.warc" + (".gz" if gzip else ""))
    huge = [b"WARC-Target-URI: http://a/", *_repeat(b"a", 32 * MIB), b"\r\n"]
    block, length = _http([GOOD_HTML], len(GOOD_HTML))
    records = [_good("http://a/before"), _record("http://a/x", block, length, huge), _good("http://a/after")]
    _warc(path, records, gzip)
    cost = run_bounded("tests.test_hostile_readers:read_warc", str(path), {})
    (before, _), (cut, reason), (after, after_reason) = cost.result["rows"]
    assert (before, after, after_reason) == ("http://a/before", "http://a/after", None)
    assert cut.startswith("long-line.warc") and reason == f"warc_header_line_too_long:{32 * MIB + 28}"
    _assert_bounded(cost, tmp_path)


def test_warc_header_block_over_the_cap_keeps_the_framing(tmp_path: Path) -> None:
    """50,000 header lines (2.8 MB): the record is rejected, its Content-Length still frames it."""
    path = tmp_path / "many-headers.warc"
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"v" * 40) for i in range(50_000))  # 2.8 MB
    block, length = _http([GOOD_HTML], len(GOOD_HTML))
    records = [
        _good("http://a/before"),
        _record("http://a/x", block, length, [junk]),
        _good("http://a/after"),
    ]
    _warc(path, records, gzip=False)
    header = b"".join(_record("http://a/x", [], length, [junk])).index(b"\r\n\r\n") + 4
    cost = run_bounded("tests.test_hostile_readers:read_warc", str(path), {})
    assert [r for _, r in cost.result["rows"]] == [None, f"warc_header_too_large:{header}", None]
    assert cost.result["bad"] == []
    _assert_bounded(cost, tmp_path)


def test_warc_unframeable_long_first_line_ends_the_file_naming_the_limit(tmp_path: Path) -> None:
    """An 8 MiB line where a record must start frames nothing: the file ends there, with a bad
    record naming the limit rather than a parse error."""
    path = tmp_path / "garbage.warc.gz"
    _warc(path, [_good("http://a/before"), [*_repeat(b"a", 8 * MIB), b"\r\n"], _good("http://a/lost")])
    cost = run_bounded("tests.test_hostile_readers:read_warc", str(path), {})
    assert cost.result["rows"] == [["http://a/before", None]]
    [[_, error]] = cost.result["bad"]
    assert error == f"warc_header_line_too_long:{8 * MIB + 2}"
    _assert_bounded(cost, tmp_path)


# ---------------------------------------------------------------- local sources (through iter_sources)

KINDS = {"books": "books_dir", "papers": "papers_dir", "social": "social_paths"}


def read_sources(kind: str, path: str, limits: dict[str, Any]) -> dict[str, Any]:
    """Driver: every row of one configured source, read by `iter_sources` as the ingest stage does:
    (origin's last part, reason, start of the text, encoding)."""
    writes = _watch_writes()
    where = [path] if kind == "social" else path
    cfg = SourcesConfig(include=[kind], **{KINDS[kind]: where}, **limits)
    rows = [
        [d["origin"].rsplit("/", 1)[-1], r, d["text"][:60], d["annotations"].get("ingest.encoding")]
        for d, r in iter_sources(cfg)
    ]
    return {"rows": rows, "writes": writes}


def _origins_and_reasons(cost: Cost) -> list[list[Any]]:
    return [row[:2] for row in cost.result["rows"]]


# ---------------------------------------------------------------- EPUB

CHAPTER = "EPUB/c0.xhtml"


def _good_epub(path: Path, words: str) -> None:
    book = epub.EpubBook()
    book.set_identifier(path.stem)
    book.set_title(path.stem)
    book.set_language("en")
    chapter = epub.EpubHtml(title="One", file_name="c0.xhtml", lang="en")
    chapter.content = f"<h1>One</h1><p>{words}</p>"
    book.add_item(chapter)
    book.add_item(epub.EpubNav())
    book.spine = [chapter]
    epub.write_epub(str(path), book)


def _epub_with(src: Path, dst: Path, members: Mapping[str, Iterable[bytes]]) -> None:
    """`src` with `members` replaced or added, each deflated as it streams by."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            if info.filename not in members:
                new.writestr(info, old.read(info))
        for name, parts in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with new.open(info, "w") as out:
                for part in parts:
                    out.write(part)


def _chapter(fill: Iterable[bytes]) -> Iterator[bytes]:
    yield b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>'
    yield from fill
    yield b"</p></body></html>"


def _lie_about_size(path: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size `name` declares, in its local header and the central directory
    (offsets from PKWARE's APPNOTE.TXT 4.3.7, 4.3.12 and 4.3.16)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        struct.pack_into("<L", data, archive.getinfo(name).header_offset + 22, size)
    (entry,) = struct.unpack_from("<L", data, data.rfind(b"PK\x05\x06") + 16)
    while data[entry : entry + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, entry + 28)
        if data[entry + 46 : entry + 46 + name_len] == name.encode():
            struct.pack_into("<L", data, entry + 24, size)
        entry += 46 + name_len + extra_len + comment_len
    path.write_bytes(bytes(data))


def test_epub_zip_bombs_are_rejected_and_the_books_around_them_kept(tmp_path: Path) -> None:
    """A chapter declaring 256 MiB (the 783 KB EPUB that reached 1.1 GiB), one that declares 1 KB
    but inflates to 64 MiB, one inflating 1000x, members together over the total cap, and 20,000
    members (zipfile would load the whole central directory)."""
    root, good = tmp_path / "books", tmp_path / "good.epub"
    root.mkdir()
    _good_epub(good, "Call me Ishmael.")
    (root / "a-before.txt").write_text("Some years ago, never mind how long precisely.")
    _epub_with(good, root / "b-bomb.epub", {CHAPTER: _chapter(_repeat(b" ", 256 * MIB))})
    _epub_with(good, root / "c-liar.epub", {CHAPTER: _chapter(_repeat(b" ", 64 * MIB))})
    _lie_about_size(root / "c-liar.epub", CHAPTER, 1000)
    _epub_with(good, root / "d-ratio.epub", {CHAPTER: _chapter(_repeat(b" ", 2 * MIB))})
    many = {f"EPUB/extra{i}.bin": [os.urandom(2 * MIB)] for i in range(3)}
    _epub_with(good, root / "e-many.epub", many)
    (root / "f-good.epub").write_bytes(good.read_bytes())
    _epub_with(good, root / "e2-members.epub", {f"EPUB/{i}.css": [b""] for i in range(20_000)})
    (root / "z-after.txt").write_text("Having little or no money in my purse.")
    assert sum(p.stat().st_size for p in root.iterdir()) < 10 * MIB
    limits = {"max_member_bytes": 16_000_000, "max_unpacked_bytes": 5_000_000}
    cost = run_bounded("tests.test_hostile_readers:read_sources", "books", str(root), limits)

    sizes = [info.file_size for info in zipfile.ZipFile(root / "e-many.epub").infolist()]
    total = next(t for t in itertools.accumulate(sizes) if t > 5_000_000)
    ratio = zipfile.ZipFile(root / "d-ratio.epub").getinfo(CHAPTER)
    assert _origins_and_reasons(cost) == [
        ["a-before.txt", None],
        ["b-bomb.epub", f"ingest_member_too_large:{256 * MIB + len(b''.join(_chapter([])))}"],
        ["c-liar.epub", "book_corrupt_epub:BadZipFile"],  # inflating stops at the declared size: bad CRC
        ["d-ratio.epub", f"ingest_compression_ratio:{ratio.file_size / ratio.compress_size:.0f}"],
        ["e-many.epub", f"ingest_unpacked_too_large:{total}"],
        ["e2-members.epub", f"ingest_too_many_members:{20_000 + len(zipfile.ZipFile(good).infolist())}"],
        ["f-good.epub", None],
        ["z-after.txt", None],
    ]
    assert cost.result["rows"][6][2] == "One\n\nCall me Ishmael."
    _assert_bounded(cost, tmp_path)


# ---------------------------------------------------------------- social dumps


def test_jsonl_line_of_64_mib_and_json_100000_deep_are_rejected(tmp_path: Path) -> None:
    """A 64 MiB line peaked at 3x its size before its rejection; 100,000 `[` raised RecursionError
    out of the connector. Both are rejected, the posts around them kept; brackets inside a string
    do not count as nesting."""
    dump = tmp_path / "posts.jsonl"
    with dump.open("wb") as out:
        out.write(b'{"id": "p1", "text": "first post"}\n')
        out.write(b'{"id": "big", "text": "')
        for part in _repeat(b"a", 64 * MIB):
            out.write(part)
        out.write(b'"}\n')
        out.write(b'{"id": "deep", "text": "t", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
        out.write(json.dumps({"id": "p4", "text": "[" * 1000 + " last post"}).encode() + b"\n")
    limits = {"max_line_bytes": 1_000_000}
    cost = run_bounded("tests.test_hostile_readers:read_sources", "social", str(dump), limits)
    assert _origins_and_reasons(cost) == [
        ["posts.jsonl#p1", None],
        ["posts.jsonl#line:2", f"ingest_line_too_long:{64 * MIB + 26}"],
        ["posts.jsonl#line:3", "ingest_json_too_deep:100001"],
        ["posts.jsonl#p4", None],
    ]
    _assert_bounded(cost, tmp_path)


UTF8 = ["Gr\u00fc\u00dfe aus K\u00f6ln, Stra\u00dfe", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0", "na\u00efve"]
CP1252 = "Caf\u00e9 cr\u00e8me \u00e0 la fa\u00e7ade \u2014 \u201cd\u00e9j\u00e0 vu\u201d"


def _post(post_id: str, text: str, encoding: str = "utf-8") -> bytes:
    return json.dumps({"id": post_id, "text": text}, ensure_ascii=False).encode(encoding)


def test_jsonl_encoding_is_decided_per_line(tmp_path: Path) -> None:
    """One line in another encoding decided the whole dump: a UTF-8 dump with one windows-1252
    line was read as UTF-8 with U+FFFD and kept, a windows-1252 dump with one UTF-8 line turned that
    line to mojibake. Now each line is UTF-8 when it decodes so, else the dump's legacy encoding
    (detected on the whole file) if it has one, else rejected."""
    root = tmp_path / "dumps"
    root.mkdir()
    utf8 = [_post(f"u{i}", text) for i, text in enumerate(UTF8)]
    (root / "a-utf8.jsonl").write_bytes(b"\n".join([*utf8[:2], _post("w", CP1252, "cp1252"), utf8[2]]))
    legacy = [_post(f"w{i}", f"{CP1252} {i}", "cp1252") for i in range(3)]
    (root / "b-cp1252.jsonl").write_bytes(b"\n".join([*legacy[:2], utf8[0], legacy[2]]) + b"\n")
    cost = run_bounded("tests.test_hostile_readers:read_sources", "social", str(root), {})
    assert cost.result["rows"] == [
        ["a-utf8.jsonl#u0", None, UTF8[0], "utf-8"],
        ["a-utf8.jsonl#u1", None, UTF8[1], "utf-8"],
        ["a-utf8.jsonl#line:3", "ingest_bad_encoding:utf-8", "", None],
        ["a-utf8.jsonl#u2", None, UTF8[2], "utf-8"],
        ["b-cp1252.jsonl#w0", None, f"{CP1252} 0", "cp1252"],
        ["b-cp1252.jsonl#w1", None, f"{CP1252} 1", "cp1252"],
        ["b-cp1252.jsonl#u0", None, UTF8[0], "utf-8"],
        ["b-cp1252.jsonl#w2", None, f"{CP1252} 2", "cp1252"],
    ]
    _assert_bounded(cost, tmp_path)


def test_csv_field_over_the_limit_rejects_its_row_and_later_rows_survive(tmp_path: Path) -> None:
    """An unquoted field over the limit, a quoted multi-line one with escaped quotes, a 32 MiB line
    and a row of many small quoted fields over many lines: each rejects its row, and every row
    after it is read (the old reader stopped at the first oversized field, uncounted)."""
    dump = tmp_path / "forum.csv"
    with dump.open("wb") as out:
        out.write(b"post_id,body,username\r\n1,first post,ann\r\n")
        out.write(b"2," + b"x" * 200_000 + b",bob\r\n")
        out.write(b"3,third post,cy\r\n")
        out.write(b'4,"starts ""quoted""\r\n' + b'a line, with ""quotes""\r\n' * 10_000 + b'end",dee\r\n')
        out.write(b'5,"fifth, quoted\r\npost",eve\r\n')
        out.write(b"6,")
        for part in _repeat(b"y", 32 * MIB):
            out.write(part)
        out.write(b",fay\r\n7,seventh post,gus\r\n")
        out.write(b'8,"x\r\n' + b'","x\r\n' * 200_000 + b'",hal\r\n')  # small fields, a 1.2 MB row
        out.write(b"9,last post,ivy\r\n")
    limits = {"max_csv_field_chars": 100_000, "max_line_bytes": 1_000_000}
    cost = run_bounded("tests.test_hostile_readers:read_sources", "social", str(dump), limits)
    assert _origins_and_reasons(cost) == [
        ["forum.csv#1", None],
        ["forum.csv#line:2", "ingest_csv_field_too_large:>100000"],
        ["forum.csv#3", None],
        ["forum.csv#line:4", "ingest_csv_field_too_large:>100000"],
        ["forum.csv#5", None],
        ["forum.csv#line:6", f"ingest_line_too_long:{32 * MIB + 8}"],
        ["forum.csv#7", None],
        ["forum.csv#line:8", "ingest_row_too_long:>1000000"],
        ["forum.csv#9", None],
    ]
    assert cost.result["rows"][4][2] == "fifth, quoted\r\npost"
    _assert_bounded(cost, tmp_path)


# ---------------------------------------------------------------- papers

LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))


def _jats(title: str, doctype: str = "") -> str:
    return (
        f'<?xml version="1.0"?>\n{doctype}<article><front><article-meta><title-group>'
        f"<article-title>{title}</article-title></title-group></article-meta></front>"
        "<body><p>A plain body.</p></body></article>"
    )


def test_billion_laughs_xml_and_latex_input_bomb_stay_small(tmp_path: Path) -> None:
    """Entities are never expanded: libxml2 stops the billion laughs (rejected, not kept cut short),
    an external entity is not read; a LaTeX file inputs a file ten times, five levels deep (100,000
    copies), and is rejected once its inputs pass the cap."""
    root = tmp_path / "papers"
    (root / "latex").mkdir(parents=True)
    (root / "a-before.xml").write_text(_jats("Before"))
    (root / "b-laughs.xml").write_text(_jats("&lol9;", f'<!DOCTYPE article [<!ENTITY lol0 "lol">{LAUGHS}]>'))
    secret = tmp_path / "secret.txt"
    secret.write_text("do not ingest me")
    (root / "c-xxe.xml").write_text(
        _jats("XXE &xxe;", f'<!DOCTYPE article [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>')
    )
    (root / "z-after.xml").write_text(_jats("After"))
    latex = root / "latex"
    (latex / "main.tex").write_text("\\begin{document}\n" + "\\input{l1}\n" * 10 + "\\end{document}\n")
    for level in range(1, 5):
        (latex / f"l{level}.tex").write_text(f"\\input{{l{level + 1}}}\n" * 10)
    (latex / "l5.tex").write_text("lol " * 250)
    cost = run_bounded(
        "tests.test_hostile_readers:read_sources", "papers", str(root), {"max_unpacked_bytes": 1_000_000}
    )
    rows = {origin: (reason, text) for origin, reason, text, _ in cost.result["rows"]}
    assert rows["a-before.xml"] == (None, "Before\n\nA plain body.")
    assert rows["z-after.xml"] == (None, "After\n\nA plain body.")
    assert rows["b-laughs.xml"] == (
        "ingest_xml_resource_limit:Maximum entity amplification factor exceeded",
        "",
    )
    assert rows["c-xxe.xml"] == (None, "XXE &xxe;\n\nA plain body.")  # the reference, never the file
    assert rows["main.tex"] == ("ingest_unpacked_too_large:>1000000", "")
    assert {rows[f"l{i}.tex"][0] for i in range(1, 6)} == {"paper_latex_no_document"}
    _assert_bounded(cost, tmp_path)
