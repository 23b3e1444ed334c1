"""HTML to text with both extractors on real pages (a pydoc page rendered here), hostile markup,
charset decoding, language hints and outgoing links."""

from __future__ import annotations

import json
import pydoc
import sys
import time

import pytest

from core.config import ConfigError, ExtractConfig, load_config
from core.schema import documents_table, make_document
from jobs.extract.html import detect_language, extract_row, extract_row_with, html_to_text, outgoing_links
from jobs.spark.arrow_map import split_rows
from jobs.web.charset import Decoded, codec_name, decode, meta_charset

EXTRACTORS = ["trafilatura", "resiliparse"]
PAGE_URL = "http://docs.local/json.html"


@pytest.fixture(scope="module")
def pydoc_page() -> str:
    """The page pydoc's HTML server renders for the `json` package."""
    doc = pydoc.HTMLDoc()
    return doc.page(pydoc.describe(json), doc.document(json, "json"))


def _extract(html: str, **cfg: object) -> tuple[dict, str | None]:
    return extract_row(make_document("web", PAGE_URL, raw_content=html), ExtractConfig(**cfg))


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_pydoc_page(pydoc_page: str, extractor: str) -> None:
    out, reason = _extract(pydoc_page, extractor=extractor)
    ann = out["annotations"]
    assert reason is None and out["raw_content"] is None
    assert ann["extract.method"] == extractor
    assert ann["extract.title"] == "Python: package json"
    assert ann["extract.raw_bytes"] == str(len(pydoc_page))
    text = " ".join(out["text"].split())
    assert "JSON (JavaScript Object Notation) <https://json.org> is a subset of JavaScript syntax" in text
    assert out["language"] == "en" and float(ann["extract.language_score"]) > 0.99
    docs = f"https://docs.python.org/{sys.version_info.major}.{sys.version_info.minor}/library/json.html"
    assert json.loads(ann["extract.links"]) == [
        "http://docs.local/",  # pydoc's "index" link is href="."
        docs,
        "https://json.org/",
        "http://docs.local/builtins.html",  # `#object` anchors collapse into one page link
        "http://docs.local/json.decoder.html",
        "http://docs.local/json.encoder.html",
        "http://docs.local/json.scanner.html",
        "http://docs.local/json.tool.html",
    ]  # the file: link to json/__init__.py and the page's own #anchors are not outgoing links
    documents_table([out])  # still conforms to the schema


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_links_are_capped_in_page_order(pydoc_page: str, extractor: str) -> None:
    out, _ = _extract(pydoc_page, extractor=extractor, max_links=2)
    assert json.loads(out["annotations"]["extract.links"])[1].startswith("https://docs.python.org/")
    assert len(json.loads(out["annotations"]["extract.links"])) == 2


BROKEN = "<html><body><div><p>Unclosed <b>bold <i>text</p></div><table><tr><td>cell</body>"


@pytest.mark.parametrize(
    ("extractor", "html", "text", "method"),
    [
        ("trafilatura", BROKEN, "Unclosed bold text\n| cell |", "trafilatura"),
        ("resiliparse", BROKEN, "Unclosed bold text\n\ncell", "resiliparse"),
        # lxml cannot parse text without tags, nor nesting deeper than libxml2's limit
        ("trafilatura", "just some plain words", "just some plain words", "resiliparse_fallback"),
        ("trafilatura", "<div>" * 5000 + "deep text" + "</div>" * 5000, "deep text", "resiliparse_fallback"),
        ("resiliparse", "<div>" * 5000 + "deep text" + "</div>" * 5000, "deep text", "resiliparse"),
        ("trafilatura", "<p>a\x00b text here</p>", "ab text here", "resiliparse_fallback"),
        ("resiliparse", "<p>a\x00b text here</p>", "ab text here", "resiliparse"),
        (
            "trafilatura",
            '<?xml version="1.0" encoding="utf-8"?><html><p>Hi xml</p></html>',
            "Hi xml",
            "trafilatura",
        ),
        ("resiliparse", "<html><script>var a = 1;</script></html>", "", "resiliparse_all"),
        ("trafilatura", "<html><script>var a = 1;</script></html>", "", "html2txt"),
    ],
)
def test_bad_markup_never_raises(extractor: str, html: str, text: str, method: str) -> None:
    assert html_to_text(html, extractor) == (text, method)


@pytest.mark.parametrize("extractor", EXTRACTORS)
@pytest.mark.parametrize("html", ["", "   \n", "<<<>>><//>&#xZZ;<!--", "<html><script>x()</script></html>"])
def test_no_text_is_rejected_with_its_length(extractor: str, html: str) -> None:
    out, reason = _extract(html, extractor=extractor, min_text_chars=20)
    assert reason == f"extract_no_text:{len(out['text'].strip())}"
    assert out["raw_content"] is None and "extract.method" in out["annotations"]


@pytest.mark.parametrize("extractor", EXTRACTORS)
def test_huge_document(extractor: str) -> None:
    para = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. " * 10 + "</p>\n"
    count = 5_000_000 // len(para)
    html = f"<html><head><title>Huge</title></head><body>{para * count}</body></html>"
    start = time.monotonic()
    out, reason = _extract(html, extractor=extractor)
    assert time.monotonic() - start < 20
    assert reason is None and out["annotations"]["extract.title"] == "Huge"
    assert out["text"].count("Lorem ipsum") == 10 * count


def test_text_rows_pass_through_unchanged() -> None:
    row = make_document("book", "b.txt", "Some text.", content_type="text/plain")
    assert extract_row(row) == (row, None)


def test_language_can_be_switched_off(pydoc_page: str) -> None:
    out, _ = _extract(pydoc_page, detect_language=False)
    assert out["language"] is None and "extract.language_score" not in out["annotations"]


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The committee will publish its final report on the new railway line next spring.", "en"),
        ("Der Ausschuss wird seinen Abschlussbericht über die neue Bahnstrecke im Frühjahr vorlegen.", "de"),
        ("Le comité publiera son rapport final sur la nouvelle ligne de chemin de fer au printemps.", "fr"),
    ],
)
def test_language_hint(text: str, lang: str) -> None:
    detected, score = detect_language(text)
    assert detected == lang and score > 0.9
    out, _ = _extract(f"<html><body><article><p>{text}</p></article></body></html>")
    assert out["language"] == lang


def test_no_language_for_text_without_letters() -> None:
    assert detect_language("1234 !!! 5678") == (None, 0.0)
    out, _ = _extract("<p>1234 5678</p>")
    assert out["language"] is None and "extract.language_score" not in out["annotations"]


def test_outgoing_links() -> None:
    hrefs = ["#x", "b.html", "../c?q=1#f", "HTTP://H:80/d/a.html#y", "b.html#top", "mailto:x@y"]
    hrefs += ["javascript:void(0)", "http://[bad", " /z ", "file:///etc/passwd"]
    assert outgoing_links("http://h/d/a.html", hrefs) == ["http://h/d/b.html", "http://h/c?q=1", "http://h/z"]
    assert outgoing_links("http://h/d/a.html", ["b.html"], base="/root/") == ["http://h/root/b.html"]
    assert outgoing_links("not-a-url", ["b.html", "http://x/"]) == ["http://x/"]
    assert outgoing_links("http://h/", [f"/{i}" for i in range(500)], limit=3) == [
        f"http://h/{i}" for i in range(3)
    ]


def test_base_href_is_honoured() -> None:
    html = (
        '<html><head><base href="http://cdn.example/docs/"></head><body><a href="x.html">x</a></body></html>'
    )
    out, _ = _extract(html)
    assert json.loads(out["annotations"]["extract.links"]) == ["http://cdn.example/docs/x.html"]


UTF8_STRAY = b"Gr\xc3\xbc\xc3\x9fe au\xffs " + ("Köln, Straße und Bücher. " * 4).encode()
SENTENCE = "Café crème brûlée à la française, naïve façade, déjà vu. Über größer Straße.\n" * 3


def test_latin1_page_declared_utf8_is_decoded_by_detection() -> None:
    page = (
        f"<html><head><meta charset='utf-8'><title>Café</title></head><body><p>{SENTENCE}</p></body></html>"
    )
    decoded = decode(page.encode("latin-1"), "utf-8")
    text = decoded.text
    assert (text, decoded.codec, decoded.source) == (page, "cp1252", "detected")
    out, _ = _extract(text)
    assert out["annotations"]["extract.title"] == "Café" and "brûlée à la française" in out["text"]


def test_cp1252_page_without_declaration() -> None:
    page = f"<html><body><p>“{SENTENCE}” — 10 €</p></body></html>"
    assert decode(page.encode("cp1252")) == Decoded(page, "cp1252", "detected")


@pytest.mark.parametrize(
    ("body", "declared", "expected"),
    [
        ("日本語のテキストです。".encode("euc_jp"), "EUC-JP", ("日本語のテキストです。", "euc_jp")),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
            + "東京".encode("shift_jis"),
            None,
            ('<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">東京', "cp932"),
        ),
        (
            "Это тестовая страница на русском языке.".encode("cp1251"),
            None,
            ("Это тестовая страница на русском языке.", "cp1251"),
        ),
        (b"\xef\xbb\xbfBOM wins", "latin-1", ("BOM wins", "utf-8")),  # HTML Standard: a BOM beats the header
        (b"caf\xe9", "iso-8859-1", ("café", "cp1252")),  # Encoding Standard: latin-1 means windows-1252
        (b"\x81 byte", "iso-8859-1", ("\x81 byte", "cp1252")),  # index-windows-1252: 0x81 is U+0081
        (b"plain", "no-such-charset", ("plain", "utf-8")),
        (b"", None, ("", "utf-8")),
        # Encoding Standard: gb2312 means GBK, which has 镕 (Python's gb2312 has not)
        ('<meta charset="gb2312">中文 镕'.encode("gbk"), None, ('<meta charset="gb2312">中文 镕', "gbk")),
        (b"<meta charset=utf-16>caf\xc3\xa9", None, ("<meta charset=utf-16>café", "utf-8")),  # prescan rule
        (b"<meta charset=base64>ok", None, ("<meta charset=base64>ok", "utf-8")),  # not a charset: ignored
        # detectors guess cp1006/cp852 for a few Latin bytes: not Encoding Standard encodings, so the
        # windows-1252 default
        (b"na\xefve fa\xe7ade", None, ("naïve façade", "cp1252")),
        # UTF-8 but for one byte: UTF-8 with U+FFFD for it, not the whole page as windows-1252
        (UTF8_STRAY, "utf-8", (UTF8_STRAY.decode("utf-8", "replace"), "utf-8")),
    ],
)
def test_decode_html(body: bytes, declared: str | None, expected: tuple[str, str]) -> None:
    decoded = decode(body, declared)
    assert (decoded.text, decoded.codec) == expected


def test_charset_labels() -> None:
    assert meta_charset(b"<html><head><meta charset='windows-1251'>") == "windows-1251"
    assert meta_charset(b" " * 2000 + b"<meta charset=utf-8>") is None  # past the 1024-byte prescan
    expected = {
        "UTF8": "utf-8",
        "latin1": "cp1252",
        "US-ASCII": "cp1252",
        "x-sjis": "cp932",  # Encoding Standard: Shift_JIS is windows-31j
        "gb2312": "gbk",
        "tis-620": "cp874",
        "windows-874": "cp874",
        "bogus": None,
        "base64": None,  # a Python bytes transform, not a charset
    }
    assert {label: codec_name(label) for label in expected} == expected and codec_name(None) is None


def test_config_names_bad_extractor() -> None:
    assert load_config("local").extract == ExtractConfig()
    with pytest.raises(ConfigError, match=r"config field 'extract\.extractor'"):
        load_config("local", {"extract": {"extractor": "boilerpipe"}})


def test_extract_row_with_config_in_the_row_mapper(pydoc_page: str) -> None:
    rows = [
        make_document("web", PAGE_URL, raw_content=pydoc_page),
        make_document("web", "http://e/", raw_content=""),
    ]
    out = list(split_rows(rows, extract_row_with(ExtractConfig(extractor="resiliparse")), "extract"))
    assert [r["reject_reason"] for r in out] == [None, "extract_no_text:0"]
    assert out[0]["annotations"]["extract.method"] == "resiliparse"


OPTOUT_KEYS = ("extract.optout_signals", "extract.tdm_policy", "extract.license_url", "extract.license")


def _optouts(html: str, extractor: str, url: str = PAGE_URL) -> dict[str, str]:
    row = make_document("web", url, raw_content=html)
    out, _ = extract_row(row, ExtractConfig(extractor=extractor))
    return {k: v for k, v in out["annotations"].items() if k in OPTOUT_KEYS}


BODY = "<p>Some words in a paragraph of this page.</p>"


@pytest.mark.parametrize("extractor", EXTRACTORS)
@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        ("", BODY, {}),
        ('<meta name="robots" content="noindex, NoAI">', BODY, {"extract.optout_signals": "noai"}),
        ('<meta name=" LMForgeBot " content="noimageai">', BODY, {"extract.optout_signals": "noimageai"}),
        ('<meta name="otherbot" content="noai">', BODY, {}),
        (
            '<meta name="tdm-reservation" content="1"><meta name="tdm-policy" content="https://p.example/t.json">',
            BODY,
            {"extract.optout_signals": "tdm-reservation", "extract.tdm_policy": "https://p.example/t.json"},
        ),
        ('<meta name="tdm-reservation" content="0">', BODY, {}),
        (f'<meta name="tdm-policy" content="https://p.example/{"x" * 9000}">', BODY, {}),  # no usable URL
        (
            '<link rel="stylesheet" href="/s.css"><link rel="LICENSE" href="/licence.html">',
            BODY,
            {"extract.license_url": "http://docs.local/licence.html"},
        ),
        (
            '<base href="https://mirror.example/docs/">',
            BODY + '<a href="/a" rel="nofollow">a</a><a rel="nofollow  License" href="cc.html">l</a>',
            {"extract.license_url": "https://mirror.example/docs/cc.html"},
        ),
        (
            "",
            BODY + '<a rel="license" href="https://creativecommons.org/publicdomain/zero/1.0/">CC0</a>',
            {
                "extract.license_url": "https://creativecommons.org/publicdomain/zero/1.0/",
                "extract.license": "CC0-1.0",
            },
        ),
        (  # no rel="license": a creativecommons.org licence link anywhere names the licence
            "",
            BODY + '<a href="https://evilcreativecommons.org/licenses/by/4.0/">x</a>'
            '<a href="http://creativecommons.org/licenses/by-sa/3.0/deed.en">CC BY-SA</a>',
            {"extract.license": "CC-BY-SA-3.0"},
        ),
        (
            "",
            BODY
            + '<a rel="license" href="/terms">terms</a><a href="https://creativecommons.org/licenses/by/4.0/">cc</a>',
            {"extract.license_url": "http://docs.local/terms", "extract.license": "CC-BY-4.0"},
        ),
        # a comment or a script is not markup: no signal from it
        (
            '<!-- <meta name="robots" content="noai"> -->',
            BODY + '<script>"<a rel=license href=/x>"</script>',
            {},
        ),
    ],
)
def test_optout_and_licence_annotations(
    extractor: str, head: str, body: str, expected: dict[str, str]
) -> None:
    html = f"<html><head><title>T</title>{head}</head><body>{body}</body></html>"
    assert _optouts(html, extractor) == expected
