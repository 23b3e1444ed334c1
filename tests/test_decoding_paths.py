"""The same bytes give the same text on every path: crawled (jobs/crawl), read back from a WARC
file (jobs/readers/warc.py), ingested from a folder (jobs/readers/connectors) and extracted
(jobs/extract/html.py), because all of them decode through jobs/web/charset.py.

Each case is served by a real HTTP server to `crawl_host`, written as a WARC response record by
warcio, and saved as an `.html` file in a source tree for `iter_code`; the texts must agree with
each other and with the expected one.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from core.config import CrawlConfig, ExtractConfig
from demo.site import serving
from jobs.crawl.crawler import Scope, crawl_host
from jobs.extract.html import extract_row
from jobs.readers.connectors import read_text, sniff_encoding
from jobs.readers.connectors.code import iter_code
from jobs.readers.warc import iter_warc
from jobs.web.charset import ERRORS, decode_file

GERMAN = "Grüße aus Köln: Straße, Bücher und Käse für alle Gäste, dazu größere Äpfel."
FRENCH = "“Déjà vu” — un café crème à 10 € pour la façade naïve, s’il vous plaît…"
EURO = "Prix : 10 € (dix euros), café à emporter."  # iso-8859-15: € is 0xA4, ¤ in windows-1252


def page(sentence: str, head: str = "") -> str:
    paragraphs = "\n".join(f"<p>{sentence} Absatz {i}.</p>" for i in range(4))
    return (
        f"<!DOCTYPE html>\n<html>\n<head>{head}<title>Zeichensatz</title></head>\n"
        f"<body>\n<h1>Zeichensatz</h1>\n{paragraphs}\n</body>\n</html>\n"
    )


class Case(NamedTuple):
    body: bytes
    content_type: str
    text: str  # the decoded page every path must give
    sentence: str  # what extraction must find in it


def _case(text: str, encoding: str, content_type: str, sentence: str, prefix: bytes = b"") -> Case:
    return Case(prefix + text.encode(encoding), content_type, text, sentence)


def _stray_byte() -> Case:
    """UTF-8 with one invalid byte: UTF-8 text with U+FFFD for that byte, as a browser shows it."""
    before, after = page(GERMAN).split("Straße,", 1)
    body = before.encode() + b"Stra\xdfe," + after.encode()
    return Case(body, "text/html; charset=utf-8", f"{before}Stra\ufffde,{after}", "Stra\ufffde, Bücher")


CASES = {
    "utf8": _case(page(GERMAN), "utf-8", "text/html", GERMAN),
    "utf8-bom": _case(page(GERMAN), "utf-8", "text/html", GERMAN, codecs.BOM_UTF8),
    "utf16-bom": _case(page(GERMAN), "utf-16-le", "text/html", GERMAN, codecs.BOM_UTF16_LE),
    "cp1252": _case(page(FRENCH), "cp1252", "text/html", FRENCH),
    # Encoding Standard: the latin-1 label means windows-1252, so the quotes, dash and euro survive
    "cp1252-labelled-latin1": _case(page(FRENCH), "cp1252", "text/html; charset=iso-8859-1", FRENCH),
    "latin1-labelled-utf8": _case(page(GERMAN), "latin-1", "text/html; charset=utf-8", GERMAN),
    # detection alone reads this as windows-1252 (¤ for €); the <meta> decides, on every path
    "meta-iso-8859-15": _case(page(EURO, '<meta charset="iso-8859-15">'), "iso-8859-15", "text/html", EURO),
    "invalid-utf8": _stray_byte(),
}


@contextmanager
def _serve(cases: dict[str, Case]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name not in cases:
                self.send_error(404)
                return
            body, content_type, _, _ = cases[name]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with serving(server, "decoding-paths"):
        yield f"127.0.0.1:{server.server_address[1]}"


def _write_warc(path: Path, base: str) -> None:
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version="1.1")
        for name, (body, content_type, _, _) in CASES.items():
            http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                f"{base}/{name}", "response", payload=io.BytesIO(body), http_headers=http
            )
            writer.write_record(record)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """path -> case name -> decoded HTML."""
    tmp = tmp_path_factory.mktemp("decoding")
    with _serve(CASES) as host:
        base = f"http://{host}"
        cfg = CrawlConfig(seeds=[base + "/"], allow_loopback=True, max_retries=0, timeout_s=5)
        urls = [f"{base}/{name}" for name in CASES]
        recs, _ = crawl_host((host, urls, None), cfg, Scope.from_config(cfg, urls), 0, str(tmp / "crawl"))
    assert [r.decision for r in recs] == ["fetched"] * len(CASES)
    _write_warc(tmp / "cases.warc.gz", base)
    tree = tmp / "site"
    tree.mkdir()
    for name, case in CASES.items():
        (tree / f"{name}.html").write_bytes(case.body)
    crawler_warc = next((tmp / "crawl").rglob("*.warc.gz"))
    return {
        "crawler": {_name(r.url): r.html or "" for r in recs},
        "warc": {_name(d["origin"]): d["raw_content"] for d, _ in iter_warc(tmp / "cases.warc.gz")},
        "crawler's warc": {_name(d["origin"]): d["raw_content"] for d, _ in iter_warc(crawler_warc)},
        "connector": {_name(d["origin"]).removesuffix(".html"): d["text"] for d, _ in iter_code(tree)},
    }


def _name(origin: str) -> str:
    return origin.rsplit("/", 1)[1]


@pytest.mark.parametrize("name", list(CASES))
def test_every_path_decodes_the_same_text(decoded: dict[str, dict[str, str]], name: str) -> None:
    got = {path: texts[name] for path, texts in decoded.items()}
    assert got == dict.fromkeys(decoded, CASES[name].text)


@pytest.mark.parametrize("name", list(CASES))
def test_extraction_sees_the_same_text(decoded: dict[str, dict[str, str]], name: str) -> None:
    cfg = ExtractConfig(detect_language=False)
    extracted = set()
    for texts in decoded.values():
        row = {"origin": f"http://h/{name}", "raw_content": texts[name], "annotations": {}}
        extracted.add(extract_row(row, cfg)[0]["text"])
    assert len(extracted) == 1 and CASES[name].sentence in extracted.pop()


@pytest.mark.parametrize("name", list(CASES))
def test_streamed_dump_encoding_matches_whole_file(tmp_path: Path, name: str) -> None:
    """Social dumps are sniffed by streaming; the choice must be the one `decode_file` makes."""
    path = tmp_path / f"{name}.txt"
    path.write_bytes(CASES[name].body)
    encoding = sniff_encoding(path)
    assert encoding == read_text(path)[1] == decode_file(CASES[name].body)[1]
    assert path.read_text(encoding=encoding, errors=ERRORS) == read_text(path)[0]
