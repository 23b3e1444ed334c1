"""The demo corpus is built from real offline text, is deterministic, and its site can be served."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from demo.corpus import BUILT, MIN_BOOK_WORDS, ROBOTS_TXT, SECRET_PAGE, build_demo_corpus
from demo.site import serve_directory

SMALL = {"max_pages": 20, "max_books": 5, "max_code_files": 20}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("corpus") / "demo"
    return out, build_demo_corpus(out, **SMALL)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [value for name, value in attrs if name == "href" and value is not None]


def _hrefs(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.hrefs


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_counts_match_files_on_disk(corpus: tuple[Path, dict[str, int]]) -> None:
    out, counts = corpus
    module_pages = [p for p in (out / "site").glob("*.html") if p.name != "index.html"]
    assert counts == {
        "site": len(module_pages),
        "books": len(list((out / "books").glob("*.txt"))),
        "code": len(list((out / "code").rglob("*.py"))),
    }
    assert counts["site"] == SMALL["max_pages"] and counts["code"] == SMALL["max_code_files"]
    assert 0 < counts["books"] <= SMALL["max_books"]
    built = json.loads((out / BUILT).read_text())
    assert built["counts"] == counts and built["arguments"] == SMALL


def test_site_links_resolve_and_robots(corpus: tuple[Path, dict[str, int]]) -> None:
    site = corpus[0] / "site"
    pages = sorted(site.rglob("*.html"))
    assert (site / "json.html").is_file() and (site / "builtins.html").is_file()  # preferred modules
    for page in pages:
        for href in _hrefs(page):
            assert not href.startswith("file:"), (page.name, href)
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path:
                continue  # external link or same-page anchor
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file() and target.is_relative_to(site.resolve()), (page.name, href)

    index_links = set(_hrefs(site / "index.html"))
    module_pages = {p.name for p in site.glob("*.html")} - {"index.html"}
    assert module_pages <= index_links and SECRET_PAGE in index_links
    assert (site / SECRET_PAGE).is_file()  # exists, so only robots.txt keeps a crawler out
    assert "index.html" in _hrefs(site / "json.html")  # pages link back to the index
    assert "json.decoder.html" not in (site / "json.html").read_text()  # not on the site: unlinked
    robots = (site / "robots.txt").read_text()
    assert robots == ROBOTS_TXT and "User-agent: *" in robots and "Disallow: /private/" in robots


def test_books_are_long_prose_with_sources(corpus: tuple[Path, dict[str, int]]) -> None:
    books = corpus[0] / "books"
    sources = json.loads((books / "_sources.json").read_text())
    files = sorted(p.name for p in books.glob("*.txt"))
    assert sorted(sources) == files
    for name in files:
        assert len((books / name).read_text(encoding="utf-8").split()) >= MIN_BOOK_WORDS, name
        assert name.startswith(("license-", "pkg-")) and set(sources[name]) == {"origin", "license"}
    if Path("/usr/share/common-licenses/Apache-2.0").is_file():
        assert sources["license-Apache-2.0.txt"] == {
            "origin": "/usr/share/common-licenses/Apache-2.0",
            "license": "Apache-2.0",
        }
    packages = [n for n in files if n.startswith("pkg-")]
    assert packages, "alternating licenses and packages: a 5-book build has both"
    assert all(sources[n]["origin"].startswith("python-package:") for n in packages)


def test_code_is_real_python(corpus: tuple[Path, dict[str, int]]) -> None:
    code = corpus[0] / "code"
    for path in code.rglob("*.py"):
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    assert "Python" in (code / "LICENSE").read_text()
    assert not any(part in ("test", "idlelib", "site-packages") for p in code.rglob("*") for part in p.parts)


def test_deterministic_skip_when_built_and_replace(
    corpus: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    first, counts = corpus
    second = tmp_path / "again"
    assert build_demo_corpus(second, **SMALL) == counts
    assert _hashes(second) == _hashes(first)

    mtime = (second / BUILT).stat().st_mtime_ns
    started = time.perf_counter()
    assert build_demo_corpus(second, **SMALL) == counts
    assert time.perf_counter() - started < 1.0
    assert (second / BUILT).stat().st_mtime_ns == mtime

    smaller = build_demo_corpus(second, max_pages=2, max_books=1, max_code_files=3)
    assert smaller == {"site": 2, "books": 1, "code": 3}
    assert len(list((second / "site").glob("*.html"))) == 3  # the old, larger build is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]  # no temporary siblings left


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a demo corpus"):
        build_demo_corpus(tmp_path, max_pages=1, max_books=1, max_code_files=1)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_served_site_logs_requests_in_order(corpus: tuple[Path, dict[str, int]]) -> None:
    agent = "demo-corpus-test/1.0"

    def get(url: str) -> bytes:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"User-Agent": agent}), timeout=5
        ) as response:
            body: bytes = response.read()
            return body

    with serve_directory(corpus[0] / "site") as site:
        assert site.base_url.startswith("http://127.0.0.1:") and site.base_url.endswith("/")
        assert b'href="json.html"' in get(site.base_url + "index.html")
        assert b"<title>Python: package json</title>" in get(site.base_url + "json.html")
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(site.base_url + "no-such-page.html")
        assert missing.value.code == 404
        assert site.requests == [
            ("GET", "/index.html", agent),
            ("GET", "/json.html", agent),
            ("GET", "/no-such-page.html", agent),
        ]
    with pytest.raises(urllib.error.URLError):
        get(site.base_url + "index.html")  # shut down
