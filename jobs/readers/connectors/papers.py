"""Scientific papers: JATS XML (PubMed Central), LaTeX source and PDF, one document per paper.

- JATS (`*.nxml`, `*.xml`; JATS 1.x / NLM Archiving DTD 2.3 tag set): title, abstract, then the body
  sections in document order with their titles as headings. Figure and table *captions* are kept
  where the float sits (`Figure 1. ...`); table bodies, graphics, display formulas, the reference
  list and supplementary-material entries are dropped (cells and MathML read as noise); back matter
  (acknowledgements, footnotes) is not read. DOI, PMC id, PMID, journal and publication date
  (epub, else ppub, else any) become annotations and `created_at`; `<license>` (its `xlink:href`,
  `ali:license_ref` or text) gives `license` with `license_source="jats:license"`, else
  `<copyright-statement>` with `"jats:copyright-statement"`. The origin is the DOI URL when
  there is one, so the same article from two dumps has one id.
- LaTeX (`*.tex` with `\\begin{document}`): `\\input`/`\\include` inlined from the same folder, the
  body converted by pylatexenc's `LatexNodes2Text` with section titles as plain headings, citations,
  references, labels, graphics, tables and the bibliography dropped, math kept verbatim (LaTeX is
  what arXiv-trained models read); `\\title`, `\\author` and the abstract environment annotated.
  Files without `\\begin{document}` are fragments and rejected as such.
- PDF (pypdf): text per page joined by blank lines; `/Title`, `/Author`, `/CreationDate`. Encrypted
  PDFs are rejected (their owner restricted use), as are PDFs that do not parse.

Other files beside a `.tex` file (figures, PDF ones too, `.bib`, `.sty`) are its assets; elsewhere
an unknown format is rejected. The declared language goes to `paper.language`.

Bounds: XML is parsed without entity substitution, DTD loading or network (no XXE, no billion
laughs) and with libxml2's own size limits (`huge_tree=False`); a LaTeX source whose inputs,
inlined, pass `max_unpacked_bytes` (a file input a thousand times, five levels deep) and a PDF
whose extracted text does are rejected `ingest_unpacked_too_large`. pypdf bounds each stream it
inflates itself (75 MB).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

from core.config import SourcesConfig
from core.schema import make_document
from jobs.readers.connectors import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_FILE_BYTES,
    Ingested,
    file_time,
    files_under,
    guarded,
    size_reason,
)
from jobs.web.charset import decode_file

PUBLIC_DOMAIN = "LicenseRef-Public-Domain"  # SPDX has no id for "no copyright"; a LicenseRef is the rule
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_CC_URL = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)(?:/(\d\.\d))?", re.I)
_CC_TEXT = re.compile(
    r"creative commons attribution((?:[- ,]+(?:non-?commercial|no-?deriv\w*|no derivatives|share-?alike))*)"
    r"(?:[^.]*?\b(\d\.\d))?",
)
_CC_SHORT = re.compile(r"\bcc[- ]by((?:-(?:nc|nd|sa))*)(?:[- ](\d\.\d))?\b")
_CC_PARTS = (("comm", "NC"), ("deriv", "ND"), ("share", "SA"))


def open_license_id(text: str) -> str | None:
    """SPDX id of a Creative Commons / public-domain statement (a URL or prose), else None.

    Creative Commons URLs name the license and version (`/licenses/by-nc/3.0`, `/publicdomain/zero/1.0`);
    prose such as PLOS's "Creative Commons Attribution License" often names no version, and SPDX has
    no unversioned id, so the family (`CC-BY`) is recorded as is.
    """
    if match := _CC_URL.search(text):
        kind, version = match.group(2).lower().strip("-"), match.group(3)
        if match.group(1).lower() == "publicdomain":
            return "CC0-1.0" if kind == "zero" else PUBLIC_DOMAIN
        return f"CC-{kind.upper()}" + (f"-{version}" if version else "")
    low = " ".join(text.lower().split())
    if "cc0" in low or "creative commons zero" in low:
        return "CC0-1.0"
    if match := _CC_TEXT.search(low):
        parts = "".join(f"-{code}" for key, code in _CC_PARTS if key in match.group(1))
        return f"CC-BY{parts}" + (f"-{match.group(2)}" if match.group(2) else "")
    if match := _CC_SHORT.search(low):
        return f"CC-BY{match.group(1).upper()}" + (f"-{match.group(2)}" if match.group(2) else "")
    return PUBLIC_DOMAIN if "public domain" in low else None


# ---------------------------------------------------------------- JATS


def _clean(element: Any) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _blocks(element: Any) -> Iterator[str]:
    """Paragraph texts in document order; a section's title comes before its content."""
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        if child.tag == "sec":
            yield from _blocks(child)
        elif text := _clean(child):
            yield text


def _captions_in_place(root: Any) -> None:
    """Figures and tables become one line `Figure 1. caption`; their bodies are dropped."""
    from lxml import etree

    for float_ in list(root.iter("fig", "table-wrap")):
        label, caption = _clean(float_.find("label")), _clean(float_.find("caption"))
        tail = float_.tail
        float_.clear()
        float_.tag, float_.text, float_.tail = "p", ". ".join(t for t in (label, caption) if t), tail
    etree.strip_elements(
        root, "disp-formula", "ref-list", "graphic", "media", "supplementary-material", with_tail=False
    )


def _pub_date(meta: Any) -> datetime | None:
    dates = {d.get("pub-type") or d.get("date-type") or "": d for d in meta.iter("pub-date")}
    node = next((dates[k] for k in ("epub", "ppub", "pub", "collection") if k in dates), None)
    node = node if node is not None else next(iter(dates.values()), None)
    if node is None:
        return None
    try:
        year, month, day = (int(_clean(node.find(k)) or 1) for k in ("year", "month", "day"))
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:  # a month 13, a "Spring" season
        return None


def _jats_license(meta: Any) -> tuple[str | None, str | None]:
    for node in meta.iter("license"):
        if found := open_license_id(f"{node.get(_XLINK_HREF) or ''} {_clean(node)}"):
            return found, "jats:license"
    for node in meta.iter("copyright-statement"):
        if found := open_license_id(_clean(node)):
            return found, "jats:copyright-statement"
    return None, None


def _jats(root_dir: Path, path: Path, limits: SourcesConfig) -> Ingested:
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
    )
    try:
        article = etree.fromstring(path.read_bytes(), parser)
    except etree.XMLSyntaxError:
        article = None
    if limit := next((e for e in parser.error_log if e.type_name == "ERR_RESOURCE_LIMIT"), None):
        # libxml2 stopped (entity amplification, nesting over 256): `recover` would keep a torso
        return _stub("jats", root_dir, path), f"ingest_xml_resource_limit:{limit.message.split(',')[0]}"
    if article is None or article.tag != "article" or article.find(".//article-meta") is None:
        tag = "none" if article is None else str(article.tag)
        return _stub("jats", root_dir, path), f"paper_not_jats:{tag}"
    meta = article.find(".//article-meta")
    _captions_in_place(article)
    ids = {node.get("pub-id-type"): _clean(node) for node in meta.iter("article-id")}
    title = _clean(meta.find("title-group/article-title"))
    abstracts = [a for a in meta.iter("abstract") if a.get("abstract-type") in (None, "summary")]
    abstract = "\n\n".join(b for b in _blocks(abstracts[0]) if b.lower() != "abstract") if abstracts else ""
    body = article.find("body")
    sections = list(_blocks(body)) if body is not None else []
    parts = [title, f"Abstract\n\n{abstract}" if abstract else "", *sections]
    license_id, license_source = _jats_license(meta)
    journal = article.find(".//journal-meta//journal-title")
    annotations = {
        "paper.format": "jats",
        "paper.title": title,
        "paper.doi": ids.get("doi"),
        "paper.pmcid": f"PMC{ids['pmc']}" if ids.get("pmc") else None,
        "paper.pmid": ids.get("pmid"),
        "paper.journal": _clean(journal),
        "paper.language": article.get("{http://www.w3.org/XML/1998/namespace}lang"),
        "paper.sections": str(sum(1 for _ in body.iter("sec"))) if body is not None else "0",
        "paper.path": path.relative_to(root_dir).as_posix(),
    }
    origin = f"https://doi.org/{ids['doi']}" if ids.get("doi") else str(path)
    text = "\n\n".join(p for p in parts if p)
    doc = _paper(
        root_dir, origin, text, annotations, "application/jats+xml", _pub_date(meta) or file_time(path)
    )
    doc.update(license=license_id, license_source=license_source)
    return doc, None if doc["text"] else "paper_no_text"


# ---------------------------------------------------------------- LaTeX

_INPUT = re.compile(r"\\(?:input|include)\s*\{([^}]{1,1000})\}")  # bounded: no rescans to a far `}`
_DROP_ENVS = ("thebibliography", "tabular", "tabular*", "table")
_HEADINGS = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph")
_DROP_MACROS = (
    "cite",
    "citep",
    "citet",
    "ref",
    "eqref",
    "label",
    "includegraphics",
    "bibliography",
    "maketitle",
)


class _Unpacked(Exception):
    """The inlined inputs passed `max_unpacked_bytes`."""


def _inline_inputs(source: str, folder: Path, seen: list[str], budget: list[int], depth: int = 0) -> str:
    """`\\input{x}` / `\\include{x}` replaced by the file's text, only from inside `folder`. Each
    inlining spends the file's size from `budget[0]`: a file input a thousand times on each of five
    levels would otherwise be a billion laughs."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        target = (folder / (name if name.endswith(".tex") else f"{name}.tex")).resolve()
        if depth >= 5 or not target.is_file() or not target.is_relative_to(folder.resolve()):
            return ""
        budget[0] -= target.stat().st_size
        if budget[0] < 0:
            raise _Unpacked
        if (rel := target.relative_to(folder.resolve()).as_posix()) not in seen:
            seen.append(rel)
        return _inline_inputs(decode_file(target.read_bytes())[0], folder, seen, budget, depth + 1)

    return _INPUT.sub(repl, source)


def _braced(source: str, macro: str) -> str | None:
    """The `{...}` argument of the first `\\macro[...]{...}`, braces balanced."""
    match = re.search(rf"\\{macro}\s*(?:\[[^\]]{{0,10000}}\])?\s*\{{", source)
    if not match:
        return None
    depth, start = 1, match.end()
    for i in range(start, len(source)):
        depth += {"{": 1, "}": -1}.get(source[i], 0)
        if depth == 0:
            return source[start:i]
    return None


@cache
def _latex_converter() -> Any:
    """pylatexenc's converter with our macro table in front of its defaults."""
    from pylatexenc import latex2text as l2t

    db = l2t.get_default_latex_context_db()
    macros = [l2t.MacroTextSpec(name, simplify_repl="\n\n%(3)s\n\n") for name in _HEADINGS]
    macros += [l2t.MacroTextSpec(name, discard=True) for name in _DROP_MACROS]
    environments = [l2t.EnvironmentTextSpec(name, discard=True) for name in _DROP_ENVS]
    db.add_context_category("lmforge", macros=macros, environments=environments, prepend=True)
    return l2t.LatexNodes2Text(latex_context=db, math_mode="verbatim")


def latex_to_text(latex: str) -> str:
    text = _latex_converter().latex_to_text(latex)
    lines = (" ".join(line.split()) for line in text.replace("\xa0", " ").splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _environment(source: str, name: str) -> str | None:
    """The body of the first `\\begin{name}...\\end{name}` (`str.find`: a regex would rescan the
    rest of the file from every unmatched `\\begin`)."""
    start = source.find(f"\\begin{{{name}}}")
    end = source.find(f"\\end{{{name}}}", start) if start >= 0 else -1
    return source[start + len(name) + 8 : end] if end >= 0 else None


def _latex(root_dir: Path, path: Path, limits: SourcesConfig) -> Ingested:
    raw, encoding = decode_file(path.read_bytes())
    document = re.search(r"\\begin\{document\}(.*?)(?:\\end\{document\}|\Z)", raw, re.S)
    if document is None:
        return _stub("latex", root_dir, path), "paper_latex_no_document"
    inputs: list[str] = []
    try:
        body = _inline_inputs(document.group(1), path.parent, inputs, [limits.max_unpacked_bytes])
    except _Unpacked:
        return _stub("latex", root_dir, path), f"ingest_unpacked_too_large:>{limits.max_unpacked_bytes}"
    preamble = raw[: document.start()]
    title = latex_to_text(_braced(preamble, "title") or _braced(body, "title") or "")
    abstract = _environment(body, "abstract")
    annotations = {
        "paper.format": "latex",
        "paper.title": title,
        "paper.authors": latex_to_text(_braced(preamble, "author") or _braced(body, "author") or ""),
        "paper.abstract": latex_to_text(abstract) if abstract is not None else "",
        "paper.latex_inputs": ",".join(inputs),
        "paper.path": path.relative_to(root_dir).as_posix(),
        "ingest.encoding": encoding,
    }
    text = "\n\n".join(p for p in (title, latex_to_text(body)) if p)
    doc = _paper(root_dir, str(path), text, annotations, "application/x-tex", file_time(path))
    return doc, None if doc["text"] else "paper_no_text"


# ---------------------------------------------------------------- PDF


def _pdf_meta(reader: Any) -> tuple[str, str, datetime | None]:
    """(title, author, created): a malformed info dictionary costs the metadata, not the text."""
    try:
        info = reader.metadata
        if info is None:
            return "", "", None
        created = info.creation_date
        when = created if created is None or created.tzinfo else created.replace(tzinfo=UTC)
        return str(info.title or ""), str(info.author or ""), when and when.astimezone(UTC)
    except Exception:  # pypdf parses the dates and strings lazily
        return "", "", None


def _pdf(root_dir: Path, path: Path, limits: SourcesConfig) -> Ingested:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            return _stub("pdf", root_dir, path), "paper_encrypted_pdf"
        pages, total = [], 0
        for page in reader.pages:  # one content stream may be drawn on every page
            pages.append(page.extract_text() or "")
            total += len(pages[-1])
            if total > limits.max_unpacked_bytes:
                return _stub("pdf", root_dir, path), f"ingest_unpacked_too_large:>{limits.max_unpacked_bytes}"
    except Exception as err:  # pypdf raises PdfReadError, PdfStreamError, ValueError, KeyError...
        return _stub("pdf", root_dir, path), f"paper_corrupt_pdf:{type(err).__name__}"
    title, author, created = _pdf_meta(reader)
    annotations = {
        "paper.format": "pdf",
        "paper.title": title,
        "paper.authors": author,
        "paper.pages": str(len(pages)),
        "paper.path": path.relative_to(root_dir).as_posix(),
    }
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    doc = _paper(root_dir, str(path), text, annotations, "application/pdf", created or file_time(path))
    return doc, None if text else "paper_no_text"


# ---------------------------------------------------------------- dispatch


def _paper(
    root_dir: Path, origin: str, text: str, annotations: Mapping[str, str | None], ctype: str, when: datetime
) -> dict[str, Any]:
    kept = {k: v for k, v in annotations.items() if v}
    return make_document(
        "paper", origin, text, domain=root_dir.name, content_type=ctype, created_at=when, annotations=kept
    )


def _stub(fmt: str, root_dir: Path, path: Path) -> dict[str, Any]:
    annotations = {"paper.format": fmt, "paper.path": path.relative_to(root_dir).as_posix()}
    return make_document("paper", str(path), "", domain=root_dir.name, annotations=annotations)


READERS = {".nxml": _jats, ".xml": _jats, ".tex": _latex, ".pdf": _pdf}


def _one(root_dir: Path, path: Path, max_file_bytes: int, limits: SourcesConfig) -> Ingested:
    if reason := size_reason(path, max_file_bytes):
        return _stub(path.suffix.lstrip("."), root_dir, path), reason
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        return _stub("unknown", root_dir, path), f"paper_unsupported_format:{path.suffix.lower() or 'none'}"
    return reader(root_dir, path, limits)


def iter_papers(
    root: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, limits: SourcesConfig = DEFAULT_LIMITS
) -> Iterator[Ingested]:
    """One document per paper under `root`; rejects carry `paper_*` or `ingest_*` reasons. `limits`:
    the bounds on inlined LaTeX inputs and extracted PDF text."""
    files = list(files_under(root))
    latex_dirs = {p.parent for p in files if p.suffix.lower() == ".tex"}
    for path in files:
        if path.parent in latex_dirs and path.suffix.lower() not in (".tex", ".nxml", ".xml"):
            continue  # figures (PNG, PDF), .bib and .sty files of a LaTeX source folder
        build = partial(_one, root, path, max_file_bytes, limits)
        yield guarded("paper", str(path), build, domain=root.name)
