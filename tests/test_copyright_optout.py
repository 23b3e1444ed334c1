"""Opt-out decisions of the copyright stage (jobs/copyright/optout.py) on real-looking rows, hostile
registry and blocklist files, RFC 9309 status rules, and one WARC file end to end: written with
warcio, read by the WARC reader, extracted, and decided."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from core.config import ExtractConfig
from core.schema import make_document
from jobs.copyright.optout import (
    MAX_FILE_BYTES,
    ROBOTS_REJECT,
    Blocklist,
    OptoutRegistry,
    RegistryEntry,
    RobotsCache,
    decide,
    normalise_domain,
    robots_record,
)
from jobs.crawl.optout import ROBOTS_MAX_BYTES
from jobs.extract.html import extract_row
from jobs.readers import warc as warc_reader
from jobs.readers.warc import iter_warc

UA = "LMForgeBot/0.1 (+https://github.com/lmforge)"
POLICY = "https://news.example/tdm-policy.json"


def _row(url: str, ann: dict[str, str], crawled: bool = False) -> dict[str, Any]:
    """A WARC-ingested row (warc.* provenance) or, `crawled`, one from our crawler (crawl.*)."""
    base = {"crawl.status": "200", "crawl.optout_signals": ""} if crawled else {"warc.file": "cc.warc.gz"}
    host = url.split("/")[2]
    return make_document("web", url, "some text", domain=host, annotations={**base, **ann})


def _decide(row: dict[str, Any], honor: bool = True, **kwargs: Any) -> tuple[str | None, str]:
    args: dict[str, Any] = {"robots": None, "registry": None, "blocklist": None}
    args.update(kwargs)
    return decide(row, user_agent=UA, honor_optouts=honor, licensed_tdm_policies=frozenset({POLICY}), **args)


ROBOTS = RobotsCache.build(
    [
        ("http://shop.example/robots.txt", 200, "User-agent: *\nDisallow: /cart\n"),
        ("https://down.example/robots.txt", 503, "<html>busy</html>"),
        ("https://gone.example/robots.txt", 404, "not found"),
    ]
)
REGISTRY = OptoutRegistry()
REGISTRY.add(RegistryEntry("optedout.example", "ai", note="email 2024-05-01"))
BLOCK = Blocklist(["blocked.example"], [r"/private/"])


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (_row("https://a.example/p", {}), (None, "")),
        (
            _row("https://a.example/p", {"warc.optout_signals": "noai"}),
            ("optout_noai", "warc:x-robots-tag noai"),
        ),
        (
            _row("https://a.example/p", {"extract.optout_signals": "noai"}),
            ("optout_noai", "extract:meta noai"),
        ),
        (_row("https://a.example/p", {"crawl.optout_signals": "noai"}, True), ("optout_noai", "crawl:noai")),
        # noimageai alone keeps the text; the signal is still in the evidence
        (
            _row("https://a.example/p", {"warc.optout_signals": "noimageai"}),
            (None, "warc:x-robots-tag noimageai"),
        ),
        (
            _row("https://a.example/p", {"warc.optout_signals": "tdm-reservation"}),
            ("optout_tdm_reserved", "warc:tdm-reservation header"),
        ),
        (
            _row(
                "https://a.example/p",
                {"extract.optout_signals": "tdm-reservation", "extract.tdm_policy": "https://other/p.json"},
            ),
            ("optout_tdm_reserved", "extract:meta tdm-reservation policy=https://other/p.json"),
        ),
        # the user holds the licence the policy offers: kept, and the evidence says why
        (
            _row(
                "https://news.example/a",
                {"warc.optout_signals": "tdm-reservation", "warc.tdm_policy": POLICY},
            ),
            (None, f"tdm_licensed:{POLICY}"),
        ),
        (
            _row("https://www.optedout.example/x", {}),
            ("optout_registry", "registry:optedout.example opt_out=ai"),
        ),
        (
            _row("http://shop.example/cart/1", {}),
            ("optout_robots", "robots:robots_disallowed archive:http://shop.example"),
        ),
        (_row("http://shop.example/about", {}), (None, "")),
        # our crawler obeyed robots.txt when it fetched the page: no second check
        (_row("http://shop.example/cart/1", {}, crawled=True), (None, "")),
        (
            _row("https://down.example/x", {}),
            ("optout_robots", "robots:robots_unreachable:503 archive:https://down.example"),
        ),
        (_row("https://gone.example/x", {}), (None, "")),
        (_row("https://cdn.blocked.example/x", {}), ("blocklist_domain", "blocklist:blocked.example")),
        (_row("https://a.example/private/1", {}), ("blocklist_url", "blocklist:pattern /private/")),
    ],
)
def test_reasons(row: dict[str, Any], expected: tuple[str | None, str]) -> None:
    reason, evidence = _decide(row, robots=ROBOTS, registry=REGISTRY, blocklist=BLOCK)
    assert reason == expected[0]
    assert evidence == (f"{reason}={expected[1]}" if reason else expected[1])


def test_several_findings_are_all_recorded_first_reason_wins() -> None:
    row = _row(
        "https://blocked.example/private/x",
        {"warc.optout_signals": "noai,noimageai", "extract.optout_signals": "noai,tdm-reservation"},
    )
    reason, evidence = _decide(row, blocklist=BLOCK)
    assert reason == "blocklist_domain"
    assert evidence.split("; ") == [
        "blocklist_domain=blocklist:blocked.example",
        "optout_noai=warc:x-robots-tag noai",
        "optout_noai=extract:meta noai",
        "optout_tdm_reserved=extract:meta tdm-reservation",
        "warc:x-robots-tag noimageai",
    ]


def test_optouts_not_honoured_are_recorded_but_blocklists_apply() -> None:
    noai = _row("https://www.optedout.example/x", {"warc.optout_signals": "noai"})
    reason, evidence = _decide(noai, honor=False, registry=REGISTRY, blocklist=BLOCK)
    assert reason is None
    assert evidence == (
        "optouts_not_honoured; optout_registry=registry:optedout.example opt_out=ai; "
        "optout_noai=warc:x-robots-tag noai"
    )
    blocked = _row("https://blocked.example/", {"warc.optout_signals": "noai"})
    assert _decide(blocked, honor=False, blocklist=BLOCK)[0] == "blocklist_domain"


def test_annotations_as_arrow_pairs() -> None:
    """Arrow hands maps over as (key, value) pairs; the decision reads both shapes."""
    row = _row("https://a.example/p", {"warc.optout_signals": "noai"})
    row["annotations"] = list(row["annotations"].items())
    assert _decide(row)[0] == "optout_noai"


@pytest.mark.parametrize(
    ("host", "blocked"),
    [
        ("ample.com", True),
        ("www.ample.com", True),
        ("example.com", False),  # a suffix, not a parent domain
        ("ample.com.evil.net", False),
        ("AMPLE.COM.", True),
        ("10.0.0.1", True),
        ("1.10.0.0.1", False),
        ("bücher.de", True),  # IDNA: the list's xn-- form and the URL's Unicode form meet
        ("xn--bcher-kva.de", True),
    ],
)
def test_domain_matching_on_label_boundaries(host: str, blocked: bool) -> None:
    lists = Blocklist(["ample.com", "10.0.0.1", "xn--bcher-kva.de"])
    registry = OptoutRegistry()
    registry.add(RegistryEntry("ample.com", "all"))
    registry.add(RegistryEntry("bücher.de".encode("idna").decode(), "all"))
    assert (lists.check(f"https://{host}/x") is not None) == blocked
    if not host[0].isdigit():
        assert (registry.match(host) is not None) == blocked


def test_normalise_domain() -> None:
    assert normalise_domain("*.Example.COM.") == "example.com"
    assert normalise_domain(".example.com") == "example.com"
    assert normalise_domain("bad domain") is None and normalise_domain("a/b") is None
    assert normalise_domain("x" * 300) is None and normalise_domain("") is None


# ---------------------------------------------------------------- robots.txt cache


@pytest.mark.parametrize(
    ("status", "body", "url", "expected"),
    [
        (
            200,
            "User-agent: *\nDisallow: /\n",
            "http://h.example/a",
            "robots_disallowed archive:http://h.example",
        ),
        (
            200,
            "User-agent: lmforgebot\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
            "http://h.example/a",
            "robots_disallowed archive:http://h.example",
        ),
        (200, "User-agent: otherbot\nDisallow: /\n", "http://h.example/a", None),
        (
            200,
            "\ufeffUser-agent: *\nDisallow: /a\n",
            "http://h.example/a",
            "robots_disallowed archive:http://h.example",
        ),
        (404, "", "http://h.example/a", None),  # RFC 9309 2.3.1.3: unavailable, allow all
        (401, "", "http://h.example/a", None),
        (500, "", "http://h.example/a", "robots_unreachable:500 archive:http://h.example"),  # 2.3.1.4
        (
            503,
            "User-agent: *\nAllow: /\n",
            "http://h.example/a",
            "robots_unreachable:503 archive:http://h.example",
        ),
        (301, "", "http://h.example/a", None),  # a redirect is not the file: unknown
        (200, "User-agent: *\nDisallow: /\n", "http://h.example:8080/a", None),  # another origin
        (200, "User-agent: *\nDisallow: /\n", "https://h.example/a", None),
        (200, "User-agent: *\nDisallow: /\n", "http://sub.h.example/a", None),
        (
            200,
            "User-agent: *\nDisallow: /\n",
            "http://H.EXAMPLE:80/a",
            "robots_disallowed archive:http://h.example",
        ),
    ],
)
def test_robots_status_rules(status: int, body: str, url: str, expected: str | None) -> None:
    cache = RobotsCache.build([("http://h.example/robots.txt", status, body)])
    assert cache.check(url, UA) == expected


def test_robots_body_is_capped_and_latest_wins() -> None:
    late_rule = "\n" * ROBOTS_MAX_BYTES + "User-agent: *\nDisallow: /\n"
    cache = RobotsCache.build([("http://h.example/robots.txt", 200, late_rule)])
    assert cache.check("http://h.example/x", UA) is None  # past RFC 9309 2.5's 500 KiB
    cache = RobotsCache()
    assert cache.add_archived(
        "http://h.example/robots.txt", 200, "User-agent: *\nDisallow: /\n", datetime(2024, 1, 1, tzinfo=UTC)
    )
    assert cache.add_archived("http://h.example/robots.txt", 200, "", datetime(2025, 1, 1, tzinfo=UTC))
    assert not cache.add_archived("http://h.example/robots.txt", 503, "", datetime(2023, 1, 1, tzinfo=UTC))
    assert cache.check("http://h.example/x", UA) is None and len(cache) == 1
    assert not cache.add_archived("ftp://h.example/robots.txt", 200, "")


def test_registry_robots_txt_covers_subdomains() -> None:
    registry = OptoutRegistry()
    registry.add(RegistryEntry("example.org", "ai", robots_txt="User-agent: LMForgeBot\nDisallow: /drafts\n"))
    cache = RobotsCache.build([], registry)
    assert cache.check("https://blog.example.org/drafts/1", UA) == "robots_disallowed registry:example.org"
    assert cache.check("https://blog.example.org/posts/1", UA) is None
    assert cache.check("https://blog.example.org/drafts/1", "OtherBot/1.0") is None


def test_robots_record_reads_the_reader_rejects() -> None:
    assert ROBOTS_REJECT == warc_reader.ROBOTS_REJECT
    row = make_document(
        "web", "http://h.example/robots.txt", "User-agent: *", annotations={"warc.http_status": "404"}
    )
    assert robots_record(row, ROBOTS_REJECT) == ("http://h.example/robots.txt", 404, "User-agent: *")
    assert robots_record({**row, "reject_reason": ROBOTS_REJECT}) == (
        "http://h.example/robots.txt",
        404,
        "User-agent: *",
    )
    assert robots_record(row, "warc_http_status:404") is None and robots_record(row) is None
    no_status = make_document("web", "http://h.example/robots.txt", "")
    assert robots_record(no_status, ROBOTS_REJECT) is None


# ---------------------------------------------------------------- hostile files


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "registry.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_registry_loads_a_good_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            json.dumps({"domain": "Example.com", "opt_out": "all", "note": "court order"}),
            "",
            json.dumps(
                {"domain": "news.example.org", "opt_out": "ai", "robots_txt": "User-agent: *\nDisallow: /\n"}
            ),
        ],
    )
    registry = OptoutRegistry.load(path)
    assert sorted(registry.entries) == ["example.com", "news.example.org"]
    assert registry.match("a.b.example.com") == RegistryEntry("example.com", "all", None, "court order")
    assert registry.match("example.org") is None
    assert RobotsCache.build([], registry).check("https://news.example.org/", UA) is not None


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"domain": "a.com", "opt_out": "ai"}', "{not json"],
            r"registry\.jsonl:2: Expecting property name",
        ),
        (
            ['{"domain": "a.com", "opt_out": "ai"}', "", '["a.com"]'],
            r"registry\.jsonl:3: expected a JSON object, got list",
        ),
        (['{"domain": 7, "opt_out": "ai"}'], r":1: 'domain' must be a string, got int"),
        (['{"domain": "a.com", "opt_out": true}'], r":1: 'opt_out' must be a string, got bool"),
        (['{"domain": "a.com", "opt_out": "some"}'], r":1: 'opt_out' must be one of \['all', 'ai'\]"),
        (['{"domain": "a.com"}'], r":1: 'domain' and 'opt_out' are required"),
        (['{"domain": "a.com", "opt_out": "ai", "optout": "all"}'], r":1: unknown keys \['optout'\]"),
        (['{"domain": "a.com", "opt_out": "ai", "robots_txt": ["x"]}'], r":1: 'robots_txt' must be a string"),
        (['{"domain": "not a host", "opt_out": "ai"}'], r":1: 'domain' is not a host name"),
        (
            ['{"domain": "a.com", "opt_out": "ai"}', '{"domain": "A.com.", "opt_out": "all"}'],
            r":2: domain 'a.com' is listed twice",
        ),
        (["[" * 100_000 + "]" * 100_000], r":1: "),  # nesting past the JSON parser's recursion limit
        (['"' + "x" * (5 * 1024 * 1024) + '"'], r":1: line longer than"),
    ],
)
def test_registry_bad_lines_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OptoutRegistry.load(_write(tmp_path, lines))


def test_registry_not_utf8_and_too_big(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"domain": "a.com", "opt_out": "ai"}\n{"domain": "b\xe9.com", "opt_out": "ai"}\n')
    with pytest.raises(ValueError, match=r"latin1\.jsonl:2: not UTF-8"):
        OptoutRegistry.load(path)
    big = tmp_path / "big.jsonl"
    with big.open("wb") as fh:  # sparse: its size alone refuses it
        fh.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ValueError, match=r"big\.jsonl: \d+ bytes, over the"):
        OptoutRegistry.load(big)


def test_blocklist_file(tmp_path: Path) -> None:
    path = tmp_path / "domains"
    path.write_text(
        "# UT1 adult list excerpt\nexample.net\n\n  Sub.Example.ORG  # trailing comment\n.dot.example\n"
    )
    lists = Blocklist([], [r"\.exe$"]).with_domains_file(path)
    assert Blocklist.load_domains(path) == {"example.net", "sub.example.org", "dot.example"}
    assert lists.check("https://a.sub.example.org/") == ("blocklist_domain", "blocklist:sub.example.org")
    assert lists.check("https://example.org/") is None
    assert lists.check("https://x.test/setup.exe") == ("blocklist_url", "blocklist:pattern \\.exe$")
    bad = tmp_path / "bad"
    bad.write_text("example.net\nhttp://example.com/path\n")
    with pytest.raises(ValueError, match=r"bad:2: not a domain: 'http://example.com/path'"):
        Blocklist.load_domains(bad)
    long = tmp_path / "long"
    long.write_text("a" * 10_000 + "\n")
    with pytest.raises(ValueError, match=r"long:1: line longer than 4096 bytes"):
        Blocklist.load_domains(long)


# ---------------------------------------------------------------- end to end


def _response(writer: WARCWriter, url: str, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
    http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
    writer.write_record(record)


PAGE = (
    "<html><head><title>{t}</title>{head}</head>"
    "<body><p>{t}: a paragraph of real words here.</p>{body}</body></html>"
)


def test_warc_to_decision_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "crawl.warc.gz"
    html = [("Content-Type", "text/html; charset=utf-8")]
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True, warc_version="1.1")
        _response(writer, "http://site.example/robots.txt", "200 OK", [("Content-Type", "text/plain")],
                  b"User-agent: LMForgeBot\nDisallow: /members/\n\nUser-agent: *\nAllow: /\n")  # fmt: skip
        _response(
            writer,
            "http://site.example/members/1",
            "200 OK",
            html,
            PAGE.format(t="Members", head="", body="").encode(),
        )
        _response(writer, "http://site.example/noai", "200 OK", [*html, ("X-Robots-Tag", "noai")],
                  PAGE.format(t="Header", head="", body="").encode())  # fmt: skip
        tdm = [*html, ("tdm-reservation", "1"), ("tdm-policy", POLICY)]
        _response(
            writer,
            "http://site.example/tdm",
            "200 OK",
            tdm,
            PAGE.format(t="Reserved", head="", body="").encode(),
        )
        _response(writer, "http://site.example/meta", "200 OK", html, PAGE.format(
            t="Meta", head='<meta name="robots" content="noai">',
            body='<a rel="license" href="https://creativecommons.org/licenses/by-nc/4.0/">CC BY-NC</a>',
        ).encode())  # fmt: skip
        _response(
            writer,
            "http://site.example/plain",
            "200 OK",
            html,
            PAGE.format(t="Plain", head="", body="").encode(),
        )
    read = list(iter_warc(path))
    robots_rows = [doc for doc, reason in read if reason == ROBOTS_REJECT]
    assert [d["origin"] for d in robots_rows] == ["http://site.example/robots.txt"]
    assert robots_rows[0]["annotations"]["warc.http_status"] == "200"
    assert robots_rows[0]["text"].startswith("User-agent: LMForgeBot")
    kept = [doc for doc, reason in read if reason is None]
    extracted = {
        row["origin"].rsplit("/", 1)[1]: row for row, _ in (extract_row(d, ExtractConfig()) for d in kept)
    }
    ann = {name: row["annotations"] for name, row in extracted.items()}
    assert ann["noai"]["warc.optout_signals"] == "noai"
    assert (ann["tdm"]["warc.optout_signals"], ann["tdm"]["warc.tdm_policy"]) == ("tdm-reservation", POLICY)
    assert ann["meta"]["extract.optout_signals"] == "noai" and "warc.optout_signals" not in ann["meta"]
    assert ann["meta"]["extract.license_url"] == "https://creativecommons.org/licenses/by-nc/4.0/"
    assert ann["meta"]["extract.license"] == "CC-BY-NC-4.0"
    assert not any(k.startswith(("extract.optout", "extract.license", "warc.optout")) for k in ann["plain"])

    robots = RobotsCache.from_rows([{**row, "reject_reason": ROBOTS_REJECT} for row in robots_rows])
    decided = {
        name: _decide(row, robots=robots, registry=None, blocklist=Blocklist())
        for name, row in extracted.items()
    }
    assert decided == {
        "1": ("optout_robots", "optout_robots=robots:robots_disallowed archive:http://site.example"),
        "noai": ("optout_noai", "optout_noai=warc:x-robots-tag noai"),
        "tdm": (None, f"tdm_licensed:{POLICY}"),  # the user holds the policy's licence
        "meta": ("optout_noai", "optout_noai=extract:meta noai"),
        "plain": (None, ""),
    }
    unlicensed = decide(extracted["tdm"], user_agent=UA, robots=robots, registry=None, blocklist=None,
                        honor_optouts=True, licensed_tdm_policies=frozenset())  # fmt: skip
    assert unlicensed == (
        "optout_tdm_reserved",
        f"optout_tdm_reserved=warc:tdm-reservation header policy={POLICY}",
    )


def test_crawled_document_carries_tdm_policy_and_skips_the_robots_cache() -> None:
    from core.fetch_record import FetchRecord
    from jobs.crawl.crawler import to_document

    rec = FetchRecord("http://shop.example/cart/1", "shop.example", 1, status=200, decision="fetched")
    rec.final_url, rec.html, rec.content_type = rec.url, "<html></html>", "text/html"
    rec.optout_signals, rec.tdm_policy = "tdm-reservation", POLICY
    doc = to_document(rec)
    assert doc["annotations"]["crawl.tdm_policy"] == POLICY
    assert _decide(doc, robots=ROBOTS) == (None, f"tdm_licensed:{POLICY}")
    assert (
        "crawl.tdm_policy"
        not in to_document(FetchRecord("http://a/", "a", 0, final_url="http://a/"))["annotations"]
    )
