"""Licence detection against ScanCode's licence database (PyPI `licensedcode-data`, nexB).

Three rules, most explicit first: `spdx-tag` (an `SPDX-License-Identifier:` line, its expression
parsed and deprecated ids normalised: `GPL-2.0+` -> `GPL-2.0-or-later`), `full-text` (a licence's
own text, one of the 680 SPDX-listed licences of the database) and `notice` (ScanCode's licence
notice rules: "This program is free software; ... either version 2 of the License, or ...").

Texts are compared as sets of word 5-grams after the normalisation of the SPDX License Matching
Guidelines (spdx-spec v2.3, annex B): case (B.4), punctuation and whitespace (B.3, B.5), code
comment indicators (B.6), bullets and numbering (B.7), varietal spellings (B.8), copyright
notices (B.9, B.10). A reference is matched when most of its 5-grams occur in the text
(containment, so a header or copyright line around the licence costs nothing); among overlapping
matches the one explaining most of the text wins, which separates BSD-2 from BSD-3, MIT from
MIT-0 and the bare GPL text from its "or later" notice. No match stays `None`: unknown is unknown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CAP_BYTES = 64 * 1024  # the head and the tail of a text are examined: licences sit at either end
SHINGLE = 5
MIN_CONTAINMENT = 0.8  # share of a reference's 5-grams that must occur in the text
MIN_REF_SHINGLES = 10  # shorter rules ("Licensed under the MIT license") are references, not notices
MAX_POSTINGS = 20_000  # a 5-gram in more references than this carries no evidence (SPDX B.12 boilerplate)

# SPDX B.6 comment indicators and B.7 bullets at a line start; words are runs of letters and digits.
_TOKEN = re.compile(
    r"(?m)^[ \t#/*;!%>|-]*(?P<bullet>\(?(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)])(?=\s)|(?P<word>[^\W_]+)"
)
_COPYRIGHT_LINE = re.compile(r"(?im)^[ \t#/*;!%>|-]*(?:copyright\b|\(c\)|©)[^\n]*")  # SPDX B.10
_VARIANTS = {  # SPDX B.8 equivalent words (a subset of equivalentwords.txt)
    "licence": "license", "licences": "licenses", "licenced": "licensed", "acknowledgement": "acknowledgment",
    "acknowledgements": "acknowledgments", "analogue": "analog", "authorisation": "authorization",
    "authorised": "authorized", "behaviour": "behavior", "favour": "favor", "honour": "honor",
    "organisation": "organization", "per cent": "percent", "sub license": "sublicense",
    "copyright holder": "copyright owner", "fulfil": "fulfill", "utilise": "utilize",
}  # fmt: skip
_TAG = re.compile(r"SPDX-License-Identifier:[ \t]*([^\r\n]*)", re.I)
_TAG_TOKEN = re.compile(r"\(|\)|[A-Za-z0-9][A-Za-z0-9.+:-]*")
_OPERATORS = {"and": "AND", "or": "OR", "with": "WITH"}


@dataclass(frozen=True)
class Evidence:
    """Why: the rule that fired, the span of the text it matched, the database entry it matched."""

    rule: str  # spdx-tag | full-text | notice
    start: int
    end: int
    reference: str
    containment: float


@dataclass(frozen=True)
class Detection:
    expression: str  # SPDX licence expression
    confidence: float
    evidence: tuple[Evidence, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "license": self.expression,
            "confidence": round(self.confidence, 4),
            "evidence": [vars(e) | {"containment": round(e.containment, 4)} for e in self.evidence],
        }


@dataclass(frozen=True)
class _Reference:
    name: str  # ScanCode licence key or rule file name
    expression: str
    rule: str
    size: int  # distinct indexed 5-grams


@dataclass
class _Index:
    ids: dict[str, str]  # lower-case SPDX id (current or deprecated) -> current SPDX id
    references: list[_Reference]
    postings: dict[int, tuple[int, ...]]  # 5-gram hash -> reference numbers


def detect(text: str) -> Detection | None:
    """The licence of `text` as an SPDX expression with confidence and evidence, or None."""
    index = load_index()
    tagged = _tags(text, index.ids)
    if tagged:
        return tagged
    return _match(text, index)


# ---------------------------------------------------------------- SPDX-License-Identifier tags


def _tags(text: str, ids: dict[str, str]) -> Detection | None:
    parts: list[str] = []
    evidence: list[Evidence] = []
    known = True
    for m in _TAG.finditer(text[:CAP_BYTES]):
        expression, all_known = normalise_expression(m.group(1), ids)
        if expression and expression not in parts:
            parts.append(expression)
            known &= all_known
            evidence.append(Evidence("spdx-tag", m.start(), m.end(), m.group(1).strip()[:200], 1.0))
    if not parts:
        return None
    expression = parts[0] if len(parts) == 1 else " AND ".join(f"({p})" if " " in p else p for p in parts)
    return Detection(expression, 1.0 if known else 0.5, tuple(evidence))


def normalise_expression(raw: str, ids: dict[str, str] | None = None) -> tuple[str, bool]:
    """An SPDX expression with ids in their current spelling (SPDX spec v2.3 annex D), and whether
    every id is known. Text after the expression (a comment closer `*/`, `-->`) is dropped."""
    ids = ids if ids is not None else load_index().ids
    out: list[str] = []
    known = True
    for token in _TAG_TOKEN.findall(raw):
        if token in "()":
            out.append(token)
        elif token.lower() in _OPERATORS:
            out.append(_OPERATORS[token.lower()])
        else:
            canonical = _canonical_id(token, ids)
            known &= canonical is not None
            out.append(canonical or token)
    return " ".join(out).replace("( ", "(").replace(" )", ")"), known


def _canonical_id(token: str, ids: dict[str, str]) -> str | None:
    low = token.lower()
    if low in ids:
        return ids[low]
    if low.startswith("licenseref-") or low.startswith("documentref-"):
        return token
    if low.endswith("+") and low[:-1] in ids:  # `X+` is `X-or-later` where one exists (annex D.3)
        base = ids[low[:-1]].removesuffix("-only")
        return ids.get(f"{base}-or-later".lower(), f"{base}+")
    return None


# ---------------------------------------------------------------- full texts and notices


def tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(normalised word, start, end): comment markers, punctuation, bullets and copyright lines out."""
    skip = [(m.start(), m.end()) for m in _COPYRIGHT_LINE.finditer(text)]
    k = 0
    for m in _TOKEN.finditer(text.lower()):
        if m.group("bullet"):
            continue
        while k < len(skip) and skip[k][1] <= m.start():
            k += 1
        if k < len(skip) and skip[k][0] <= m.start():
            continue
        word = m.group("word")
        yield _VARIANTS.get(word, word), m.start(), m.end()


def _shingles(words: list[str]) -> Iterator[int]:
    for i in range(len(words) - SHINGLE + 1):
        yield hash(tuple(words[i : i + SHINGLE]))


def _bounded(text: str) -> list[tuple[int, str]]:
    if len(text) <= 2 * CAP_BYTES:
        return [(0, text)]
    return [(0, text[:CAP_BYTES]), (len(text) - CAP_BYTES, text[-CAP_BYTES:])]


def _match(text: str, index: _Index) -> Detection | None:
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for base, part in _bounded(text):
        for word, start, end in tokens(part):
            words.append(word)
            spans.append((base + start, base + end))
    hits: dict[int, list[int]] = {}
    seen: set[int] = set()
    for position, h in enumerate(_shingles(words)):
        if h in seen:
            continue
        seen.add(h)
        for ref in index.postings.get(h, ()):
            hits.setdefault(ref, []).append(position)
    candidates = []
    for ref, positions in hits.items():
        containment = len(positions) / index.references[ref].size
        if containment >= MIN_CONTAINMENT and index.references[ref].size >= MIN_REF_SHINGLES:
            candidates.append((len(positions) * containment, ref, positions, containment))
    candidates.sort(key=lambda c: (-c[0], index.references[c[1]].name))
    return _choose(candidates, index, spans)


def _choose(
    candidates: list[tuple[float, int, list[int], float]], index: _Index, spans: list[tuple[int, int]]
) -> Detection | None:
    """Greedy: the match explaining most of the text first; a later one must lie mostly outside it."""
    taken: list[tuple[int, int]] = []
    chosen: list[tuple[int, str, Evidence]] = []
    for _, ref, positions, containment in candidates:
        inside = sum(any(a <= p <= b for a, b in taken) for p in positions)
        if inside > len(positions) / 2:
            continue
        first, last = min(positions), max(positions)
        if last - first > 3 * index.references[ref].size + 50:
            continue  # scattered common phrases, not one copy of the reference
        taken.append((first, last + SHINGLE - 1))
        reference = index.references[ref]
        start, end = spans[first][0], spans[last + SHINGLE - 1][1]
        chosen.append(
            (start, reference.expression, Evidence(reference.rule, start, end, reference.name, containment))
        )
    if not chosen:
        return None
    chosen.sort(key=lambda c: c[0])
    parts = list(dict.fromkeys(expression for _, expression, _ in chosen))
    expression = parts[0] if len(parts) == 1 else " AND ".join(f"({p})" if " " in p else p for p in parts)
    confidence = min(e.containment for _, _, e in chosen)
    return Detection(expression, min(confidence, 1.0), tuple(e for _, _, e in chosen))


# ---------------------------------------------------------------- the database, indexed once per process


def database_root() -> Path:
    """The `licensedcode/data` folder installed by `licensedcode-data` (requirements.txt)."""
    import licensedcode  # a namespace package: data only

    return Path(next(iter(licensedcode.__path__))) / "data"


def _front_matter(path: Path) -> tuple[dict[str, str | list[str]], str]:
    """ScanCode's `---`-delimited YAML header (flat keys and lists only) and the text after it."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    _, head, body = raw.split("---", 2) if raw.startswith("---") else ("", "", raw)
    fields: dict[str, str | list[str]] = {}
    key = ""
    for line in head.splitlines():
        if m := re.match(r"^([a-z_]+):\s*(.*)$", line):
            key = m.group(1)
            fields[key] = m.group(2).strip()
        elif (m := re.match(r"^\s+- (.*)$", line)) and key:
            value = fields.get(key)
            fields[key] = (value if isinstance(value, list) else []) + [m.group(1).strip()]
    return fields, body


@functools.cache
def load_index() -> _Index:
    """SPDX ids, and the 5-grams of every SPDX-listed licence text and licence notice rule."""
    root = database_root()
    keys: dict[str, str] = {}  # ScanCode key -> SPDX id
    ids: dict[str, str] = {}
    texts: list[tuple[str, str, str, str]] = []  # name, expression, rule, text
    for path in sorted((root / "licenses").glob("*.LICENSE")):
        fields, body = _front_matter(path)
        spdx = fields.get("spdx_license_key")
        if not isinstance(spdx, str) or not spdx or spdx.startswith("LicenseRef-"):
            continue
        keys[path.stem] = spdx
        others = fields.get("other_spdx_license_keys", [])
        for other in [spdx, *(others if isinstance(others, list) else [])]:
            if " " not in other and not other.lower().startswith("licenseref-"):
                ids.setdefault(other.lower(), spdx)
        if fields.get("is_deprecated") != "yes" and fields.get("is_exception") != "yes":
            texts.append((path.stem, spdx, "full-text", body))
    for path in sorted((root / "rules").glob("*.RULE")):
        fields, body = _front_matter(path)
        if fields.get("is_license_notice") != "yes" or fields.get("is_deprecated") == "yes":
            continue
        expression = _spdx_expression(str(fields.get("license_expression", "")), keys)
        if expression:
            texts.append((path.stem, expression, "notice", body))
    return _build(texts, ids)


def _spdx_expression(scancode: str, keys: dict[str, str]) -> str | None:
    out = []
    for token in re.findall(r"\(|\)|[^\s()]+", scancode):
        if token in "()" or token.lower() in _OPERATORS:
            out.append(_OPERATORS.get(token.lower(), token))
        elif token in keys:
            out.append(keys[token])
        else:
            return None  # a licence outside the SPDX list: not indexed
    return " ".join(out).replace("( ", "(").replace(" )", ")") or None


def _build(texts: list[tuple[str, str, str, str]], ids: dict[str, str]) -> _Index:
    postings: dict[int, list[int]] = {}
    references: list[_Reference] = []
    for name, expression, rule, text in texts:
        grams = set(_shingles([w for w, _, _ in tokens(text)]))
        if len(grams) < MIN_REF_SHINGLES:
            continue
        number = len(references)
        references.append(_Reference(name, expression, rule, 0))
        for h in grams:
            postings.setdefault(h, []).append(number)
    kept = {h: tuple(refs) for h, refs in postings.items() if len(refs) <= MAX_POSTINGS}
    sizes = [0] * len(references)
    for refs in kept.values():
        for ref in refs:
            sizes[ref] += 1
    pairs = zip(references, sizes, strict=True)
    references = [_Reference(r.name, r.expression, r.rule, max(size, 1)) for r, size in pairs]
    return _Index(ids, references, kept)
