"""HTML to text with a choice of extractor; documents that are already text pass through unchanged.

- `trafilatura` (Barbaresi 2021, ACL demo): the main-content extractor FineWeb uses; the quality
  choice. When it finds no main content we fall back to its plain `html2txt`.
- `resiliparse` (Bevendorff et al. 2021, OSSYM): `extract_plain_text(main_content=True)`, the
  speed choice (DCLM, Li et al. 2024, extracts with it); falls back to all visible text when the
  main content is empty.

Both keep the page `<title>` (`extract.title`), the outgoing links (`extract.links`, a JSON list,
http(s) only, resolved against the page URL, first `max_links` in page order) and a py3langid
language hint (Lui & Baldwin 2012) on the extracted text: the `language` column plus
`extract.language_score` (a probability; filters apply thresholds later). `extract.method` names
what produced the text so a later stage can judge. Broken markup yields less text, never a crash.

Opt-out and licence signals are read here, the last time the raw HTML exists, from the tree the
extractor already parsed (no second parse, so the same size and depth bounds hold), for every
HTML document whatever its source; the copyright stage decides on them (jobs/copyright/optout.py):
- `extract.optout_signals`: `noai`/`noimageai` in `<meta name="robots">` or the meta named after
  our product token, and `<meta name="tdm-reservation" content="1">` (TDMRep section 3.2), by
  jobs/crawl/optout.py's `page_signals`; `extract.tdm_policy`: `<meta name="tdm-policy">`.
- `extract.license_url`: the first `<a>`/`<link>` whose `rel` token list holds `license` (HTML
  Living Standard 4.6.7.9, tokens ASCII case-insensitive), resolved against the page URL (or its
  `<base href>`); `extract.license`: its SPDX id when that URL, or failing that a
  creativecommons.org link anywhere in the page, names a licence (`open_license_id`).
Only keys with a value are written.

Bounds on hostile pages: HTML over `max_html_bytes` (UTF-8) is rejected `extract_too_large`
before any parsing, and so is markup nested deeper than `max_html_depth` (`extract_too_deep`,
one linear scan of the tags); extraction that runs past `max_parse_s` is rejected `extract_timeout`. The
clock is checked between phases (parse, main-content extraction, fallback) and once at the end,
not preemptively: a signal alarm works only in a process's main thread (Spark may call us from
others) and Python cannot stop a thread, so a running phase finishes first. Within a phase only
the size cap bounds the cost: parsing is linear (libxml2, lexbor), but trafilatura's main-content
pass took ~10 s per MB of nested-`<div>` soup and resiliparse's grows with size x nesting depth
(measured): the depth cap bounds that product (20 MB at depth 256: 13 s). A hard wall-clock
bound would need a child process.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from core.config import CrawlConfig, ExtractConfig
from jobs.crawl.optout import bounded_url, page_signals, tdm_policy
from jobs.readers.connectors.papers import open_license_id
from jobs.web.urls import http_url

Row = dict[str, Any]
LANGID_CHARS = 20_000  # py3langid's score is stable by then (measured on pydoc pages); caps the cost
# Meta opt-outs are scoped to the crawler's product token; the Spark stage passes no user agent.
DEFAULT_USER_AGENT: str = CrawlConfig.model_fields["user_agent"].default


class ExtractTimeout(Exception):
    """Extraction ran past its deadline (`ExtractConfig.max_parse_s`)."""


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise ExtractTimeout


@dataclass
class Extracted:
    text: str
    method: str
    title: str | None = None
    hrefs: list[str] = field(default_factory=list)  # raw href values, in page order
    base: str | None = None  # <base href>, if the page declares one
    metas: list[tuple[str, str]] = field(default_factory=list)  # (name stripped and lower-cased, content)
    license_hrefs: list[str] = field(default_factory=list)  # raw hrefs of rel="license" a/link, in order


def _with_trafilatura(html: str, deadline: float = math.inf) -> Extracted:
    import trafilatura

    tree = trafilatura.load_html(html)
    if tree is None:  # lxml refuses it (no tags, nesting past libxml2's depth limit): take any text
        return replace(_with_resiliparse(html, deadline), method="resiliparse_fallback")
    out = Extracted("", "trafilatura", _clean(tree.findtext(".//title")), list(tree.xpath("//a/@href")))
    out.base = next(iter(tree.xpath("//base/@href")), None)
    out.metas = _metas((m.get("name"), m.get("content")) for m in tree.xpath("//meta[@name]"))
    rels = tree.xpath("//*[self::a or self::link][@rel][@href]")  # document order
    out.license_hrefs = _license_hrefs((e.get("rel"), e.get("href")) for e in rels)
    _check(deadline)
    try:  # trafilatura copies the tree before pruning it, so the fallback sees the whole page
        text = trafilatura.extract(tree, favor_recall=True, include_comments=False, deduplicate=False)
    except Exception:  # trafilatura/lxml errors on hostile markup: fall back, don't drop
        text = None
    if text and text.strip():
        out.text = text
    else:
        _check(deadline)
        out.text, out.method = (trafilatura.html2txt(tree) or "").strip(), "html2txt"
    return out


def _with_resiliparse(html: str, deadline: float = math.inf) -> Extracted:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    try:
        tree = HTMLTree.parse(html)
        # .values(): iterating the collection itself is quadratic (17 s for 2,700 links, measured)
        anchors = tree.document.query_selector_all("a[href]").values() if tree.document else []
        base = tree.document.query_selector("base[href]") if tree.document else None
        out = Extracted("", "resiliparse", _clean(tree.title), [a.getattr("href") or "" for a in anchors])
        out.base = base.getattr("href") if base else None
        if tree.document:
            metas = tree.document.query_selector_all("meta[name]").values()
            out.metas = _metas((m.getattr("name"), m.getattr("content")) for m in metas)
            rels = tree.document.query_selector_all("a[rel][href], link[rel][href]").values()  # in order
            out.license_hrefs = _license_hrefs((e.getattr("rel"), e.getattr("href")) for e in rels)
        _check(deadline)
        out.text = extract_plain_text(tree, main_content=True).strip()
        if not out.text:
            _check(deadline)
            out.text, out.method = extract_plain_text(tree, main_content=False).strip(), "resiliparse_all"
    except ExtractTimeout:
        raise
    except Exception:  # resiliparse raises HTMLParserException on input it cannot parse at all
        return Extracted("", "resiliparse_unparsable")
    return out


EXTRACTORS: dict[str, Callable[[str, float], Extracted]] = {
    "trafilatura": _with_trafilatura,
    "resiliparse": _with_resiliparse,
}


def _metas(pairs: Iterable[tuple[str | None, str | None]]) -> list[tuple[str, str]]:
    """Named metas as the crawler's `parse_html` gives them: names stripped and lower-cased."""
    return [(n.strip().lower(), c or "") for n, c in pairs if n and n.strip()]


def _license_hrefs(pairs: Iterable[tuple[str | None, str | None]]) -> list[str]:
    """hrefs whose `rel` is a token list holding `license` (HTML 4.6.7.9; ASCII case-insensitive)."""
    return [h for r, h in pairs if r and h and "license" in r.lower().split()]


def _clean(title: str | None) -> str | None:
    return " ".join(title.split()) or None if title else None


def html_to_text(html: str, extractor: str = "trafilatura") -> tuple[str, str]:
    """(text, method). Never raises on broken markup: bad HTML yields less text, not a crash."""
    out = EXTRACTORS[extractor](html, math.inf)
    return out.text, out.method


def utf8_size(text: str, chunk: int = 1 << 20) -> int:
    """Bytes of `text` in UTF-8, encoded a chunk at a time so a large page is not held twice."""
    if text.isascii():
        return len(text)
    return sum(len(text[i : i + chunk].encode("utf-8", "surrogatepass")) for i in range(0, len(text), chunk))


def outgoing_links(page_url: str, hrefs: list[str], base: str | None = None, limit: int = 200) -> list[str]:
    """Absolute http(s) links, canonical and deduplicated, in page order, at most `limit`; links
    back to the page itself (`#section` anchors) are not outgoing and are left out."""
    root = http_url(page_url, base) if base else page_url
    itself = http_url(page_url, "")
    links: dict[str, None] = {}
    for href in dict.fromkeys(hrefs):  # pages repeat hrefs (menus, `#anchors`): resolve each once
        if len(links) >= limit:
            break
        url = http_url(root or page_url, href)
        if url and url != itself:
            links[url] = None
    return list(links)


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str | None, float]:
    """(ISO 639-1 code, probability) from py3langid; (None, 0.0) for text without letters."""
    sample = text[:LANGID_CHARS]
    if not any(ch.isalpha() for ch in sample):
        return None, 0.0
    lang, score = _identifier().classify(sample)
    return lang, float(score)


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]{0,30})[^<>]{0,4096}?(/?)>")  # never scans past the next <
# Void elements and those whose end tag may be omitted (HTML Living Standard 13.1.2 and 13.1.2.4):
# parsers close them implicitly, so they never deepen the tree.
_FLAT = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"),
        *("track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rp", "rt"),
        *("thead", "tbody", "tfoot", "colgroup", "caption", "html", "head", "body"),
    }
)


def markup_depth(html: str, limit: int) -> int:
    """How deep elements nest, counted from start and end tags in one linear regex scan (no
    parse); stops as soon as it passes `limit`. An approximation of the parser's tree depth:
    unclosed containers nest, as they do in a browser's tree."""
    depth = deepest = 0
    for m in _TAG.finditer(html):
        if m.group(3) or m.group(2).lower() in _FLAT:
            continue
        if m.group(1):
            depth = max(depth - 1, 0)
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def optout_annotations(out: Extracted, page_url: str, user_agent: str = DEFAULT_USER_AGENT) -> dict[str, str]:
    """The `extract.*` opt-out and licence annotations of a parsed page (see the module docstring)."""
    ann: dict[str, str] = {}
    if signals := page_signals([], out.metas, user_agent):
        ann["extract.optout_signals"] = ",".join(sorted(signals))
    if policy := bounded_url(tdm_policy([], out.metas)):
        ann["extract.tdm_policy"] = policy
    root = (http_url(page_url, out.base) if out.base else None) or page_url
    found = (bounded_url(http_url(root, href)) for href in out.license_hrefs)
    if license_url := next((url for url in found if url), None):
        ann["extract.license_url"] = license_url
    if spdx := _license_id(license_url, [*out.license_hrefs, *out.hrefs], root):
        ann["extract.license"] = spdx
    return ann


def _license_id(license_url: str | None, hrefs: list[str], root: str) -> str | None:
    """SPDX id named by the rel="license" URL, else by the first creativecommons.org link."""
    if license_url and (spdx := open_license_id(license_url)):
        return spdx
    for href in hrefs:
        url = http_url(root, href) if "creativecommons.org" in href.lower() else None
        if url and _under("creativecommons.org", url) and (spdx := open_license_id(url)):
            return spdx
    return None


def _under(domain: str, url: str) -> bool:
    """The URL's host is `domain` or one of its subdomains (on a label boundary)."""
    name = urlsplit(url).hostname or ""
    return name == domain or name.endswith("." + domain)


def extract_row(
    row: Row, cfg: ExtractConfig | None = None, user_agent: str = DEFAULT_USER_AGENT
) -> tuple[Row, str | None]:
    """Fill `text` from `raw_content` (then cleared); rows without raw content pass through.

    `user_agent` scopes opt-out metas named after a crawler (the crawler's default one)."""
    raw = row.get("raw_content")
    if raw is None:
        return row, None
    cfg = cfg or ExtractConfig()
    if (size := utf8_size(raw)) > cfg.max_html_bytes:
        return _unparsed(row, size), f"extract_too_large:{size}"
    if (depth := markup_depth(raw, cfg.max_html_depth)) > cfg.max_html_depth:
        return _unparsed(row, size), f"extract_too_deep:{depth}"
    start = time.monotonic()
    try:
        out = EXTRACTORS[cfg.extractor](raw, start + cfg.max_parse_s)
        _check(start + cfg.max_parse_s)  # a single phase that ran long
    except ExtractTimeout:
        return _unparsed(row, size), f"extract_timeout:{time.monotonic() - start:.1f}s"
    ann = {**(row.get("annotations") or {}), "extract.method": out.method, "extract.raw_bytes": str(size)}
    if out.title:
        ann["extract.title"] = out.title
    links = outgoing_links(row.get("origin") or "", out.hrefs, out.base, cfg.max_links)
    ann["extract.links"] = json.dumps(links, ensure_ascii=False)
    ann.update(optout_annotations(out, row.get("origin") or "", user_agent))
    doc = {**row, "text": out.text, "raw_content": None, "annotations": ann}
    if cfg.detect_language:
        lang, score = detect_language(out.text)
        if lang:
            doc["language"] = lang
            ann["extract.language_score"] = f"{score:.4f}"
    chars = len(out.text.strip())
    return doc, None if chars >= cfg.min_text_chars else f"extract_no_text:{chars}"


def _unparsed(row: Row, size: int) -> Row:
    """A page rejected unextracted: no text, the HTML dropped (the crawl's WARC record keeps it)."""
    ann = {**(row.get("annotations") or {}), "extract.raw_bytes": str(size)}
    return {**row, "text": "", "raw_content": None, "annotations": ann}


def extract_row_with(cfg: ExtractConfig) -> Callable[[Row], tuple[Row, str | None]]:
    """`extract_row` bound to a config, for `arrow_map.map_rows`."""
    return functools.partial(extract_row, cfg=cfg)
