"""WARC/WET/ARC ingest on real files (a Common Crawl excerpt, ClueWeb09, warcio's edge cases) and
on files damaged here: exact counts of documents and bad records, and nothing ever raises."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from core.config import ExtractConfig
from core.schema import document_id, documents_table
from jobs.extract.html import extract_row
from jobs.readers.warc import BadRecord, WarcStats, iter_warc
from tests.conftest import SHARED_DATA

WARC_DIR = SHARED_DATA / "warc"
EDGE = WARC_DIR / "edge-cases"
CC = "commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz"
CLUEWEB = "clueweb09-quirk.warc.gz"


@pytest.fixture
def warc_dir() -> Path:
    if not EDGE.is_dir():
        pytest.skip(f"shared WARC files not present at {WARC_DIR}")
    return WARC_DIR


def ingest(path: Path, **kwargs: str) -> tuple[list[tuple[dict, str | None]], WarcStats]:
    stats = WarcStats(file=path.name)
    return list(iter_warc(path, stats=stats, **kwargs)), stats


# file -> (records by type, documents kept, rejected by rule, bad records, re-read as one gzip stream)
EXPECTED = {
    CC: ({"warcinfo": 1, "request": 17, "response": 16, "metadata": 16}, 16, {}, [], False),
    # WARC/0.18; WARC-Payload-Digest repeats the (valid) block digest: a quirk, not a mismatch
    "clueweb09-quirk.warc.gz": ({"warcinfo": 1, "response": 29}, 29, {}, [], False),
    "edge-cases/example.warc": ({"warcinfo": 2, "response": 1, "request": 2, "revisit": 1}, 1, {}, [], False),
    "edge-cases/example.warc.gz": (
        {"warcinfo": 2, "response": 1, "request": 2, "revisit": 1},
        1,
        {},
        [],
        False,
    ),
    "edge-cases/example.arc.gz": ({"warcinfo": 1, "response": 1}, 1, {}, [], False),
    "edge-cases/example-resource.warc.gz": ({"warcinfo": 2, "resource": 1}, 1, {}, [], False),
    "edge-cases/example-iana.org-chunked.warc": (
        {"warcinfo": 1, "response": 1, "request": 1},
        1,
        {},
        [],
        False,
    ),
    # four request records, the first with a wrong payload digest
    "edge-cases/example-digest.warc": ({"request": 4}, 0, {}, [BadRecord(0, "warc_digest_mismatch")], False),
    # the response's Content-Length is 2 bytes short: its digests fail and stray bytes follow it
    "edge-cases/example-trunc.warc": (
        {"warcinfo": 2, "response": 1, "request": 1},
        0,
        {"warc_digest_mismatch": 1},
        [BadRecord(1197, "warc_invalid_content_length")],
        False,
    ),
    # gzip members cut mid-record (headers | body | next record): recovered as one stream; the
    # response's WARC-Block-Digest is wrong (its payload digest verifies), so it is rejected
    "edge-cases/example-wrong-chunks.warc.gz": (
        {"response": 1, "request": 1},
        0,
        {"warc_digest_mismatch": 1},
        [],
        True,
    ),
    # one gzip member for six records (warcio refuses after the first): recovered as one stream
    "edge-cases/example-bad.warc.gz.bad": (
        {"warcinfo": 1, "response": 2, "request": 2, "revisit": 1},
        1,
        {"warc_http_status": 1},  # the second response is a 302
        [],
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_files_exact_counts(warc_dir: Path, name: str) -> None:
    by_type, kept, rejected, bad, gzip_stream = EXPECTED[name]
    rows, stats = ingest(warc_dir / name)
    assert (stats.by_type, stats.documents, stats.rejected, stats.bad) == (by_type, kept, rejected, bad)
    assert stats.records == sum(by_type.values()) and stats.gzip_stream is gzip_stream
    assert len(rows) == kept + sum(rejected.values())
    assert sum(reason is None for _, reason in rows) == kept
    documents_table([doc for doc, _ in rows])  # every row conforms to the schema


def test_every_edge_case_file_reads_without_raising(warc_dir: Path) -> None:
    for path in sorted(EDGE.iterdir()):
        _, stats = ingest(path)
        assert stats.records > 0, path.name


def test_common_crawl_response_document(warc_dir: Path) -> None:
    rows, stats = ingest(warc_dir / CC)
    doc, reason = rows[0]
    url = "http://003338.cn/l41/481397.html"
    assert reason is None and stats.source == "CC-MAIN-2020-34"
    assert (doc["id"], doc["origin"], doc["domain"]) == (document_id("web", url), url, "003338.cn")
    assert (doc["source_type"], doc["content_type"], doc["text"]) == ("web", "text/html", "")
    assert doc["fetched_at"] == datetime(2020, 8, 8, 17, 27, 41, tzinfo=UTC)
    assert doc["raw_content"].startswith("<html>")
    assert doc["annotations"] == {
        "warc.file": CC,
        "warc.offset": "940",
        "warc.length": "10905",
        "warc.record_id": "<urn:uuid:c4c112a5-3503-4483-abf8-51a0dd86dd53>",
        "warc.http_status": "200",
        "warc.source": "CC-MAIN-2020-34",
        "warc.charset": "utf-8",
    }
    russian = next(d for d, _ in rows if d["origin"] == "http://01spb.ru/company/")
    assert russian["annotations"]["warc.charset"] == "cp1251" and "О компании" in russian["raw_content"]


def test_source_label_wins_over_warcinfo(warc_dir: Path) -> None:
    rows, stats = ingest(warc_dir / CC, source_label="cc-excerpt")
    assert stats.source == "cc-excerpt" and rows[0][0]["annotations"]["warc.source"] == "cc-excerpt"


def test_clueweb09_quirks(warc_dir: Path) -> None:
    rows, stats = ingest(warc_dir / "clueweb09-quirk.warc.gz")
    doc, reason = rows[0]
    assert reason is None and stats.source == "clueweb09-ja"
    assert doc["annotations"]["warc.trec_id"] == "clueweb09-ja0016-50-00000"
    assert [d["annotations"]["warc.trec_id"][-5:] for d, _ in rows] == [f"{i:05d}" for i in range(29)]
    assert doc["fetched_at"] is None  # WARC-Date: 2008-10-294T05:21:46-0700 is not a date
    assert doc["annotations"]["warc.charset"] == "euc_jp"
    assert "<title>ブラウニー ブリーフケース【ヘッドポーター" in doc["raw_content"]


def test_arc_record_has_no_invented_record_id(warc_dir: Path) -> None:
    (doc, _), *_ = ingest(warc_dir / "edge-cases/example.arc.gz")[0]
    assert doc["origin"] == "http://example.com/" and "warc.record_id" not in doc["annotations"]
    assert doc["fetched_at"] == datetime(2014, 2, 16, 5, 2, 21, tzinfo=UTC)


def test_recovered_gzip_stream_counts_decompressed_offsets(warc_dir: Path) -> None:
    rows, _ = ingest(warc_dir / "edge-cases/example-bad.warc.gz.bad")
    assert [(d["origin"], d["annotations"]["warc.offset_decompressed"], r) for d, r in rows] == [
        ("http://example.com?example=1", "460", None),
        ("http://www.iana.org/domains/example", "4771", "warc_http_status:302"),
    ]


def _cc_offsets(warc_dir: Path) -> list[int]:
    return [int(doc["annotations"]["warc.offset"]) for doc, _ in ingest(warc_dir / CC)[0]]


@pytest.mark.parametrize(
    ("into_member", "error"),
    [(5000, "warc_truncated_record"), (40, "warc_truncated_gzip_member")],  # mid-body, mid-gzip-header
)
def test_truncated_gzip_keeps_good_prefix(
    warc_dir: Path, tmp_path: Path, into_member: int, error: str
) -> None:
    sixth = _cc_offsets(warc_dir)[5]
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes((warc_dir / CC).read_bytes()[: sixth + into_member])
    rows, stats = ingest(cut)
    full = ingest(warc_dir / CC)[0]
    same = [(d["id"], d["raw_content"], d["annotations"]["warc.offset"]) for d, _ in full[:5]]
    assert [(d["id"], d["raw_content"], d["annotations"]["warc.offset"]) for d, _ in rows] == same
    assert stats.bad == [BadRecord(sixth, error)]


def test_truncated_plain_warc(warc_dir: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.warc"
    cut.write_bytes((EDGE / "example.warc").read_bytes()[:4000])  # inside the revisit record
    _, stats = ingest(cut)
    assert stats.documents == 1 and stats.bad == [BadRecord(3370, "warc_truncated_record")]


def test_garbage_after_the_last_member(warc_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "junk.warc.gz"
    path.write_bytes((EDGE / "example.warc.gz").read_bytes() + b"\x1f\x8bnot gzip at all")
    _, stats = ingest(path)
    assert stats.documents == 1 and stats.records == 6
    assert [(b.offset, b.error.split(":")[0]) for b in stats.bad] == [(3816, "warc_corrupt_gzip_member")]


@pytest.mark.parametrize("content", [b"", b"this is not a WARC file\n", b"\x1f\x8b\x08\x00garbage"])
def test_not_a_warc_never_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.warc"
    path.write_bytes(content)
    rows, stats = ingest(path)
    assert rows == [] and stats.records == 0 and len(stats.bad) == (1 if content else 0)


def _write_warc(path: Path, records: list[tuple[str, str, bytes, dict | None]], gzip: bool = True) -> None:
    """(type, uri, payload, http headers or None) records, digests added by warcio."""
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=gzip, warc_version="1.1")
        writer.write_record(writer.create_warcinfo_record(path.name, {"isPartOf": "TEST"}))
        for rec_type, uri, payload, http in records:
            kwargs: dict = {"warc_headers_dict": {"WARC-Date": "2024-05-01T12:00:00.123456Z"}}
            if http is not None:
                kwargs["http_headers"] = StatusAndHeaders(
                    http["status"], http["headers"], protocol="HTTP/1.1"
                )
            else:
                kwargs["warc_content_type"] = "text/plain"
            writer.write_record(
                writer.create_warc_record(uri, rec_type, payload=io.BytesIO(payload), **kwargs)
            )


@pytest.mark.parametrize("gzip", [True, False])
def test_wet_conversion_records(tmp_path: Path, gzip: bool) -> None:
    path = tmp_path / ("x.warc.wet.gz" if gzip else "x.warc.wet")
    texts = ["Hello world. This is plain text.", "Ünïcödé text — 日本語", ""]
    _write_warc(
        path, [("conversion", f"http://h{i}.example/", t.encode(), None) for i, t in enumerate(texts)], gzip
    )
    rows, stats = ingest(path)
    assert [(d["text"], d["raw_content"], d["content_type"], r) for d, r in rows] == [
        (texts[0], None, "text/plain", None),
        (texts[1], None, "text/plain", None),
        ("", None, "text/plain", "warc_empty_payload"),
    ]
    assert rows[0][0]["fetched_at"] == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert stats.by_type == {"warcinfo": 1, "conversion": 3} and stats.source == "TEST"


def _http(status: str, content_type: str | None) -> dict:
    return {"status": status, "headers": [("Content-Type", content_type)] if content_type else []}


def test_response_payload_rules(tmp_path: Path) -> None:
    html = "<html><head><title>Grüße</title></head><body><p>Grüße aus Köln</p></body></html>"
    records = [
        ("response", "http://a/", html.encode("cp1252"), _http("200 OK", "text/html")),
        ("response", "http://a/x.png", b"\x89PNG\r\n", _http("200 OK", "image/png")),
        ("response", "http://a/gone", b"<html>nope</html>", _http("404 Not Found", "text/html")),
        ("response", "http://a/empty", b"", _http("200 OK", "text/html")),
        ("response", "http://a/sniff", b"<!DOCTYPE html><p>hi</p>", _http("200 OK", None)),
        ("response", "http://a/lie", "Grüße".encode("latin-1"), _http("200 OK", "text/html; charset=UTF-8")),
        ("response", "http://a/t.txt", b"plain words", _http("200 OK", "text/plain")),
        ("request", "http://a/", b"", {"status": "GET / HTTP/1.1", "headers": []}),
    ]
    path = tmp_path / "r.warc.gz"
    _write_warc(path, records)
    rows, stats = ingest(path)
    assert [(d["origin"], r) for d, r in rows] == [
        ("http://a/", None),
        ("http://a/x.png", "warc_content_type:image/png"),
        ("http://a/gone", "warc_http_status:404"),
        ("http://a/empty", "warc_empty_payload"),
        ("http://a/sniff", None),
        ("http://a/lie", None),
        ("http://a/t.txt", None),
    ]
    first = rows[0][0]
    assert (first["raw_content"], first["annotations"]["warc.charset"]) == (html, "cp1252")
    assert rows[1][0]["raw_content"] is None and rows[6][0]["text"] == "plain words"
    lie = rows[5][0]
    assert (lie["raw_content"], lie["annotations"]["warc.charset"]) == ("Grüße", "cp1252")
    assert lie["annotations"]["warc.declared_charset"] == "UTF-8"
    assert "warc.declared_charset" not in first["annotations"]
    assert stats.by_type == {"warcinfo": 1, "response": 7, "request": 1} and stats.bad == []


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_ingested_pages_extract_with_language(warc_dir: Path, extractor: str) -> None:
    """WARC rows feed the extract stage; the language hints agree with Common Crawl's own CLD2
    metadata records (10 zh, 2 de, 1 each of ru, nl, en; the wuu page is Chinese to CLD2)."""
    cfg = ExtractConfig(extractor=extractor)
    for name, expected in (
        (CC, {"zh": 10, "de": 2, "ru": 1, "nl": 1, "en": 1, "wuu": 1}),
        (CLUEWEB, {"ja": 29}),
    ):
        out = [extract_row(doc, cfg) for doc, _ in ingest(warc_dir / name)[0]]
        assert all(reason is None and row["text"] for row, reason in out)
        assert Counter(row["language"] for row, _ in out) == expected


def test_archived_robots_txt_is_kept_as_a_reject_whatever_its_status(tmp_path: Path) -> None:
    """RFC 9309 section 2.3.1: 4xx means allow all and 5xx disallow all, so every status is kept
    (with the body, cut at 500 KiB per section 2.5) for the copyright stage to decide."""
    rules = b"User-agent: *\nDisallow: /private\n"
    records = [
        ("response", "http://a/robots.txt", rules, _http("200 OK", "text/plain")),
        ("response", "http://b/robots.txt", b"<html>missing</html>", _http("404 Not Found", "text/html")),
        ("response", "https://c:8443/robots.txt", b"", _http("503 Service Unavailable", None)),
        (
            "response",
            "http://d/robots.txt",
            b"\x00" * 10 + rules,
            _http("200 OK", "application/octet-stream"),
        ),
        ("response", "http://e/robots.txt", b"x" * 600_000, _http("200 OK", "text/plain")),
        ("response", "http://f/robots.txt?lang=en", rules, _http("200 OK", "text/plain")),  # not the file
        ("response", "http://g/x/robots.txt", rules, _http("200 OK", "text/plain")),
        ("resource", "http://h/robots.txt", rules, None),  # no HTTP status to go by
    ]
    path = tmp_path / "robots.warc.gz"
    _write_warc(path, records)
    rows, stats = ingest(path)
    got = [(d["origin"], r, d["annotations"].get("warc.http_status")) for d, r in rows]
    assert got == [
        ("http://a/robots.txt", "warc_robots_txt", "200"),
        ("http://b/robots.txt", "warc_robots_txt", "404"),
        ("https://c:8443/robots.txt", "warc_robots_txt", "503"),
        ("http://d/robots.txt", "warc_robots_txt", "200"),
        ("http://e/robots.txt", "warc_robots_txt", "200"),
        ("http://f/robots.txt?lang=en", None, "200"),
        ("http://g/x/robots.txt", None, "200"),
        ("http://h/robots.txt", None, None),
    ]
    texts = [d["text"] for d, _ in rows]
    assert texts[0] == rules.decode() and texts[1] == "<html>missing</html>" and texts[2] == ""
    assert texts[3].endswith(rules.decode()) and len(texts[4]) == 500 * 1024
    assert stats.rejected == {"warc_robots_txt": 5} and stats.documents == 3


def test_archived_response_optout_headers(tmp_path: Path) -> None:
    """X-Robots-Tag noai/noimageai scoped to our product token or all agents, TDMRep headers."""
    page = b"<html><body><p>words</p></body></html>"

    def response(uri: str, *headers: tuple[str, str]) -> tuple[str, str, bytes, dict]:
        return (
            "response",
            uri,
            page,
            {"status": "200 OK", "headers": [("Content-Type", "text/html"), *headers]},
        )

    records = [
        response("http://a/1", ("X-Robots-Tag", "noai")),
        response("http://a/2", ("X-Robots-Tag", "otherbot: noai"), ("X-Robots-Tag", "LMForgeBot: noimageai")),
        response("http://a/3", ("X-Robots-Tag", "noindex, NoAI, noimageai")),
        response("http://a/4", ("tdm-reservation", "1"), ("TDM-Policy", " https://a/policy.json ")),
        response("http://a/5", ("tdm-reservation", "0"), ("X-Robots-Tag", "*: noai")),
        response("http://a/6", ("tdm-policy", "https://a/" + "p" * 9000)),  # no usable URL: dropped
        response("http://a/7"),
    ]
    path = tmp_path / "optout.warc.gz"
    _write_warc(path, records)
    ann = [d["annotations"] for d, _ in ingest(path)[0]]
    assert [(a.get("warc.optout_signals"), a.get("warc.tdm_policy")) for a in ann] == [
        ("noai", None),
        ("noimageai", None),
        ("noai,noimageai", None),
        ("tdm-reservation", "https://a/policy.json"),
        ("noai", None),
        (None, None),
        (None, None),
    ]
    other = [
        d["annotations"].get("warc.optout_signals") for d, _ in ingest(path, user_agent="OtherBot/2.0")[0]
    ]
    assert other[:2] == ["noai", "noai"]  # otherbot: noai now applies, LMForgeBot: noimageai does not
