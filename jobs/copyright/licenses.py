"""Licence detection against ScanCode's licence database (PyPI `licensedcode-data`, nexB).

Rules, most explicit first: `spdx-tag` (an `SPDX-License-Identifier:` line, its expression parsed
and deprecated ids normalised: `GPL-2.0+` -> `GPL-2.0-or-later`), then the database's texts:
`full-text` (a licence's own text, one of the SPDX-listed licences), `text`, `notice` and
`reference` (ScanCode rules flagged is_license_text, is_license_notice, is_license_reference:
"This program is free software; ... either version 2 of the License, or ...", "On Debian systems
the full text ... /usr/share/common-licenses/GPL-2"), then `debian-pointer` (the path of a Debian
common licence where no notice around it names a licence) and last `url` (a Creative Commons, SPDX
list, OSI or Apache licence URL, which names licence and version).

Texts are compared as sets of word 5-grams after the normalisation of the SPDX License Matching
Guidelines (spdx-spec v2.3, annex B): case (B.4), punctuation and whitespace (B.3, B.5), code
comment indicators (B.6), bullets and numbering (B.7), varietal spellings (B.8), copyright
notices (B.9, B.10). A reference is matched when most of its 5-grams occur in the text
(containment, so a header or copyright line around the licence costs nothing); among overlapping
matches the one explaining most of the text wins, which separates BSD-2 from BSD-3, MIT from
MIT-0 and the bare GPL text from its "or later" notice. Notices that differ only in "Lesser" or in
the version number are told apart by those words (`_key_phrases`), and a notice's version choice
("-only" or "-or-later") follows the words of the text. No match stays `None`: unknown is unknown.

The index (5-gram hashes, stable across processes: blake2b of each word, mixed in 64 bits) is built
once and kept as a numpy `.npz` in the user's cache folder, keyed by the database version.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CAP_BYTES = 64 * 1024  # the head and the tail of a text are examined: licences sit at either end
SHINGLE = 5
MIN_CONTAINMENT = 0.8  # share of a reference's 5-grams that must occur in the text
# A second licence joined with AND must be nearly whole: ScanCode reports weak partial matches as
# "license clues", not detections (scancode-toolkit docs, "License detection: clues").
MIN_SECONDARY_CONTAINMENT = 0.9
MIN_REF_SHINGLES = 10  # shorter rules ("Licensed under the MIT license") are references, not notices
MAX_POSTINGS = 20_000  # a 5-gram in more references than this carries no evidence (SPDX B.12 boilerplate)
INDEX_VERSION = 4  # bump when tokens, hashing or the indexed rules change: old caches are ignored
_RULE_FLAGS = {  # ScanCode rule flags (scancode-toolkit docs, "How to add a new license detection rule")
    "is_license_text": "text",
    "is_license_notice": "notice",
    "is_license_reference": "reference",
}
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio): shingle = polynomial of words

# SPDX B.6 comment indicators and B.7 bullets at a line start; words are runs of letters and digits.
_TOKEN = re.compile(
    r"(?m)^[ \t#/*;!%>|-]*(?P<bullet>\(?(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)])(?=\s)|(?P<word>[^\W_]{1,64})"
)
# SPDX B.10: a copyright statement line ("Copyright (c) 2003 Jane", "(c) 2003", "© Jane"), not a
# licence line that merely starts with the word ("copyright notice and this permission notice ...").
_COPYRIGHT_LINE = re.compile(
    r"(?im)^[ \t#/*;!%>|-]*(?:copyright\s*(?:\(c\)|©|\d{4}|by\b)|\(c\)\s*\d{4}|©)[^\n]*"
)
_VARIANTS = {  # SPDX B.8 equivalent words (a subset of equivalentwords.txt)
    "licence": "license", "licences": "licenses", "licenced": "licensed", "acknowledgement": "acknowledgment",
    "acknowledgements": "acknowledgments", "analogue": "analog", "authorisation": "authorization",
    "authorised": "authorized", "behaviour": "behavior", "favour": "favor", "honour": "honor",
    "organisation": "organization", "per cent": "percent", "sub license": "sublicense",
    "copyright holder": "copyright owner", "fulfil": "fulfill", "utilise": "utilize",
}  # fmt: skip
_TAG = re.compile(r"SPDX-License-Identifier:[ \t]*([^\r\n]{0,500})", re.I)
_TAG_TOKEN = re.compile(r"\(|\)|[A-Za-z0-9][A-Za-z0-9.+:-]*")
_OPERATORS = {"and": "AND", "or": "OR", "with": "WITH"}
_LINK = re.compile(
    r"(?P<cc>creativecommons\.org/(?:licenses|publicdomain)/[a-z-]+/\d\.\d)"
    r"|(?:spdx\.org/licenses|opensource\.org/licenses?)/(?P<id>[A-Za-z0-9][A-Za-z0-9.+-]*)"
    r"|(?P<apache>apache\.org/licenses/LICENSE-2\.0)",
    re.I,
)
LATER_WINDOW = 120  # characters after a notice where "or (at your option) any later version" may follow
_LATER = re.compile(r"(?i)\bor\b[^.;]{0,40}\blater\b")
_ANY_LATER = re.compile(r"(?i)\blater\b|\bnewer\b|\bany version\b|\+")
_COMMON_LICENSES = re.compile(r"/usr/share/common-\s*licenses/([A-Za-z0-9][A-Za-z0-9.+-]*[A-Za-z0-9])")
_COMMON_FILES = {  # Debian base-files' /usr/share/common-licenses (versioned GNU names get -only/-or-later)
    "apache-2.0": "Apache-2.0", "artistic": "Artistic-1.0-Perl", "bsd": "BSD-3-Clause", "cc0-1.0": "CC0-1.0",
    "gfdl-1.2": "GFDL-1.2", "gfdl-1.3": "GFDL-1.3", "gpl-1": "GPL-1.0", "gpl-2": "GPL-2.0",
    "gpl-3": "GPL-3.0", "lgpl-2": "LGPL-2.0", "lgpl-2.1": "LGPL-2.1", "lgpl-3": "LGPL-3.0",
    "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0",
}  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """Why: the rule that fired, the span of the text it matched, the database entry it matched."""

    rule: str  # spdx-tag | full-text | text | notice | reference | debian-pointer | url
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
    keys: frozenset[str] = frozenset()  # its distinguishing phrases (_key_phrases)


@dataclass
class _Index:
    """5-gram postings as sorted arrays: the references of keys[i] are refs[offsets[i]:offsets[i + 1]]."""

    ids: dict[str, str]  # lower-case SPDX id (current or deprecated) -> current SPDX id
    references: list[_Reference]
    keys: np.ndarray  # uint64, sorted, unique
    offsets: np.ndarray  # int64, len(keys) + 1
    refs: np.ndarray  # int32 reference numbers
    sizes: np.ndarray = field(init=False)  # int64 reference sizes, for vectorised containment

    def __post_init__(self) -> None:
        self.sizes = np.array([r.size for r in self.references], dtype=np.int64)


def detect(text: str) -> Detection | None:
    """The licence of `text` as an SPDX expression with confidence and evidence, or None."""
    index = load_index()
    tagged = _tags(text, index.ids)
    if tagged:
        return tagged
    found = _match(text, index)
    pointer = _pointer(text)
    if pointer and (found is None or _pointer_wins(found, pointer, text)):
        found = pointer
    return found or _links(text, index.ids)


def _pointer_wins(found: Detection, pointer: Detection, text: str) -> bool:
    """A Debian pointer names the licence file exactly; a lone notice or reference around it that names
    another licence without a version of its own (ScanCode's rules call Debian's Artistic 1.0 file
    `artistic-2.0`) loses to it; a notice that states its version wins."""
    if len(found.evidence) != 1 or found.evidence[0].rule == "full-text":
        return False
    span = text[found.evidence[0].start : found.evidence[0].end]
    versioned = any(k.startswith("version") for k in _key_phrases([w for w, _, _ in tokens(span)]))
    return not versioned and not _family(pointer.expression) <= _family(found.expression)


# ---------------------------------------------------------------- SPDX-License-Identifier tags


def _tags(text: str, ids: dict[str, str]) -> Detection | None:
    parts: list[str] = []
    evidence: list[Evidence] = []
    known = True
    for base, part in _bounded(text):
        for m in _TAG.finditer(part):
            expression, all_known = normalise_expression(m.group(1), ids)
            if expression and expression not in parts:
                parts.append(expression)
                known &= all_known
                span = (base + m.start(), base + m.end())
                evidence.append(Evidence("spdx-tag", *span, m.group(1).strip()[:200], 1.0))
    if not parts:
        return None
    return Detection(_conjunction(parts), 1.0 if known else 0.5, tuple(evidence))


def _conjunction(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else " AND ".join(f"({p})" if " " in p else p for p in parts)


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


def _links(text: str, ids: dict[str, str]) -> Detection | None:
    """A licence URL that names one licence and version: Creative Commons (`/licenses/by-sa/4.0/`),
    the SPDX list and OSI pages (`spdx.org/licenses/MIT.html`, SPDX ids), Apache's LICENSE-2.0."""
    from jobs.readers.connectors.papers import open_license_id

    for base, part in _bounded(text):
        for m in _LINK.finditer(part):
            if m.group("cc"):
                found = open_license_id(m.group("cc"))
            else:
                found = (
                    "Apache-2.0"
                    if m.group("apache")
                    else re.sub(r"\.(html|php|json|txt)$", "", m.group("id"))
                )
            if found and found.lower() in ids:
                spdx = ids[found.lower()]
                start, end = base + m.start(), base + m.end()
                return Detection(spdx, 1.0, (Evidence("url", start, end, m.group(0), 1.0),))
    return None


def _pointer(text: str) -> Detection | None:
    """Debian's `/usr/share/common-licenses/GPL-2` names the licence file; "or later" is said, if at
    all, in the words around it (SPDX annex D.3: without it the version stands alone)."""
    for base, part in _bounded(text):
        for m in _COMMON_LICENSES.finditer(part):
            spdx = _COMMON_FILES.get(m.group(1).lower())
            if spdx is None:
                continue
            if spdx.startswith(("GPL", "LGPL", "GFDL")):
                around = part[max(0, m.start() - 600) : m.end() + 600]
                spdx += "-or-later" if re.search(r"\blater\b", around, re.I) else "-only"
            evidence = Evidence("debian-pointer", base + m.start(), base + m.end(), m.group(0), 1.0)
            return Detection(spdx, 1.0, (evidence,))
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


@functools.lru_cache(maxsize=1 << 17)
def _word_hash(word: str) -> int:
    """Stable across processes, unlike hash(): the on-disk index depends on it."""
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest())


def _shingles(words: list[str]) -> np.ndarray:
    """uint64 hash of every run of SHINGLE words, in order (a polynomial of word hashes, mod 2**64)."""
    n = len(words) - SHINGLE + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    w = np.fromiter((_word_hash(x) for x in words), dtype=np.uint64, count=len(words))
    h = np.zeros(n, dtype=np.uint64)
    for i in range(SHINGLE):
        h = h * _MIX + w[i : i + n]
    return h


def _bounded(text: str) -> list[tuple[int, str]]:
    if len(text) <= 2 * CAP_BYTES:
        return [(0, text)]
    return [(0, text[:CAP_BYTES]), (len(text) - CAP_BYTES, text[-CAP_BYTES:])]


def _hits(shingles: np.ndarray, index: _Index) -> tuple[np.ndarray, np.ndarray]:
    """(reference, position) pairs: every first occurrence of an indexed 5-gram, per reference."""
    unique, first = np.unique(shingles, return_index=True)
    slot = np.searchsorted(index.keys, unique)
    slot[slot >= len(index.keys)] = 0
    found = index.keys[slot] == unique
    slot, first = slot[found], first[found]
    starts, ends = index.offsets[slot], index.offsets[slot + 1]
    counts = ends - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    cumulative = np.cumsum(counts) - counts
    within = np.arange(total) - np.repeat(cumulative, counts)
    refs = index.refs[np.repeat(starts, counts) + within]
    return refs, np.repeat(first, counts)


def _match(text: str, index: _Index) -> Detection | None:
    words: list[str] = []
    spans: list[tuple[int, int]] = []
    for base, part in _bounded(text):
        for word, start, end in tokens(part):
            words.append(word)
            spans.append((base + start, base + end))
    refs, positions = _hits(_shingles(words), index)
    if len(refs) == 0:
        return None
    counts = np.bincount(refs, minlength=len(index.sizes))
    keep = (counts >= MIN_CONTAINMENT * index.sizes) & (index.sizes >= MIN_REF_SHINGLES)
    if not keep.any():
        return None
    chosen = keep[refs]
    refs, positions = refs[chosen], positions[chosen]
    order = np.lexsort((positions, refs))
    refs, positions = refs[order], positions[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(refs)) + 1])
    ends = np.append(starts[1:], len(refs))
    numbers = refs[starts]
    contained = np.minimum((ends - starts) / index.sizes[numbers], 1.0)
    scores = (ends - starts) * contained
    candidates = [
        (score, ref, positions[a:b], share)
        for score, ref, a, b, share in zip(
            scores.tolist(), numbers.tolist(), starts.tolist(), ends.tolist(), contained.tolist(), strict=True
        )
    ]
    candidates.sort(key=lambda c: (-c[0], index.references[c[1]].name))
    return _choose(candidates, index, spans, words, text)


def _key_phrases(words: list[str]) -> frozenset[str]:
    """The words 5-grams hardly see but that change the licence: "Lesser General", "Library
    General", "Affero General" and "version 2.1" (ScanCode marks such words as required phrases,
    `{{...}}`, in its rules; SPDX B.3.1 the licence name and version are substantive)."""
    return frozenset(phrase for _, phrase in _key_positions(words))


def _key_positions(words: list[str]) -> list[tuple[int, str]]:
    found = []
    for i, (a, b, c) in enumerate(zip(words, words[1:], [*words[2:], ""], strict=False)):
        if a in ("lesser", "library", "affero") and b == "general":
            found.append((i, f"{a} {b}"))
        elif a == "version" and b.isdigit() and len(b) <= 2:
            found.append((i, f"{a} {b}.{c}" if c.isdigit() and len(c) <= 2 else f"{a} {b}"))
    return found


def _choose(
    candidates: list[tuple[float, int, np.ndarray, float]],
    index: _Index,
    spans: list[tuple[int, int]],
    words: list[str],
    text: str,
) -> Detection | None:
    """Greedy: the match explaining most of the text first; a later one must lie mostly outside it,
    not inside its span, and be nearly whole."""
    taken: list[tuple[int, int]] = []
    covered = np.zeros(len(words) + 1, dtype=bool)
    chosen: list[tuple[int, str, Evidence]] = []
    families: set[str] = set()
    keys = _key_positions(words)
    for _, ref, positions, containment in candidates:
        reference = index.references[ref]
        first, last = _core(positions)
        if last - first > 2 * reference.size + 20:
            continue  # scattered common phrases, not one copy of the reference
        if (
            reference.rule != "full-text"
            and not {k for i, k in keys if first <= i < last + SHINGLE} <= reference.keys
        ):
            continue  # a notice for another licence or version with the same wording
        if taken and (
            containment < MIN_SECONDARY_CONTAINMENT
            or any(a <= first and last <= b for a, b in taken)
            or int(covered[positions].sum()) > len(positions) / 2
            or (reference.rule == "reference" and _family(reference.expression) <= families)
        ):
            continue
        taken.append((first, last + SHINGLE - 1))
        covered[first : last + SHINGLE] = True
        families |= _family(reference.expression)
        start, end = spans[first][0], spans[last + SHINGLE - 1][1]
        expression = reference.expression
        if reference.rule in ("notice", "reference"):
            expression = _version_choice(expression, text[start : end + LATER_WINDOW])
        chosen.append((start, expression, Evidence(reference.rule, start, end, reference.name, containment)))
    if not chosen:
        return None
    chosen.sort(key=lambda c: c[0])
    parts = list(dict.fromkeys(expression for _, expression, _ in chosen))
    confidence = min(e.containment for _, _, e in chosen)
    return Detection(_conjunction(parts), min(confidence, 1.0), tuple(e for _, _, e in chosen))


def _version_choice(expression: str, said: str) -> str:
    """The text's own version choice (SPDX annex D.3): a notice's "-only" becomes "-or-later" when the
    words right after it grant "any later version" (a rule may stop before that clause), and a
    partial match of an "or later" rule over words that grant no later version is "-only"."""
    if "-only" in expression and _LATER.search(said):
        return expression.replace("-only", "-or-later")
    if "-or-later" in expression and not _ANY_LATER.search(said):
        return expression.replace("-or-later", "-only")
    return expression


def _core(positions: np.ndarray) -> tuple[int, int]:
    """The span of the middle 96% of a match's 5-grams: a few common phrases far from the copy
    (a shared "the License" in the licence above) do not stretch it over its neighbours."""
    cut = len(positions) // 50
    return int(positions[cut]), int(positions[len(positions) - 1 - cut])


def _family(expression: str) -> set[str]:
    """Licence ids without their version choice: a reference to "the LGPL 2.1" after an LGPL-2.1
    "or later" notice names the same licence (SPDX annex D: -only and -or-later are one licence)."""
    return {re.sub(r"-(only|or-later)$|\+$", "", t) for t in _TAG_TOKEN.findall(expression)} - {
        "AND", "OR", "WITH", "(", ")"
    }  # fmt: skip


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
    """The index from the user's cache when it is there and readable, else built and cached."""
    path = _cache_path()
    if path is not None and path.is_file():
        try:
            return _read_index(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # corrupt: rebuilt below
            pass
    index = build_index()
    if path is not None:
        _write_index(index, path)
    return index


def build_index() -> _Index:
    """SPDX ids, and the 5-grams of every SPDX-listed licence text and licence text, notice and
    reference rule of the database."""
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
        rule = next((name for flag, name in _RULE_FLAGS.items() if fields.get(flag) == "yes"), None)
        if rule is None or fields.get("is_deprecated") == "yes" or fields.get("is_false_positive") == "yes":
            continue
        expression = _spdx_expression(str(fields.get("license_expression", "")), keys)
        if expression:
            texts.append((path.stem, expression, rule, body))
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
    grams: list[np.ndarray] = []
    references: list[_Reference] = []
    for name, expression, rule, text in texts:
        words = [w for w, _, _ in tokens(text)]
        unique = np.unique(_shingles(words))
        if len(unique) >= MIN_REF_SHINGLES:
            references.append(_Reference(name, expression, rule, 0, _key_phrases(words)))
            grams.append(unique)
    all_keys = np.concatenate(grams)
    all_refs = np.repeat(np.arange(len(grams), dtype=np.int32), [len(g) for g in grams])
    order = np.argsort(all_keys, kind="stable")  # postings of one key stay in reference order
    all_keys, all_refs = all_keys[order], all_refs[order]
    keys, counts = np.unique(all_keys, return_counts=True)
    kept = counts <= MAX_POSTINGS
    mask = np.repeat(kept, counts)
    all_refs = all_refs[mask]
    keys, counts = keys[kept], counts[kept]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    sizes = np.bincount(all_refs, minlength=len(references))
    pairs = zip(references, sizes.tolist(), strict=True)
    references = [_Reference(r.name, r.expression, r.rule, max(size, 1), r.keys) for r, size in pairs]
    return _Index(ids, references, keys, offsets, all_refs)


# ---------------------------------------------------------------- the on-disk cache (numpy, no pickle)


def _cache_path() -> Path | None:
    """~/.cache/lmforge (or $XDG_CACHE_HOME/lmforge), private to the user; None when unusable."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    try:
        version = importlib.metadata.version("licensedcode-data")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    folder = Path(base) / "lmforge"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / f"licenses-{version}-v{INDEX_VERSION}-s{SHINGLE}.npz"


def _write_index(index: _Index, path: Path) -> None:
    """Written beside and renamed over: a reader never sees half a file."""
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                keys=index.keys,
                offsets=index.offsets,
                refs=index.refs,
                names=np.array([r.name for r in index.references]),
                expressions=np.array([r.expression for r in index.references]),
                rules=np.array([r.rule for r in index.references]),
                sizes=np.array([r.size for r in index.references], dtype=np.int64),
                phrases=np.array(["|".join(sorted(r.keys)) for r in index.references]),
                id_keys=np.array(list(index.ids)),
                id_values=np.array(list(index.ids.values())),
            )
        os.replace(tmp, path)
    except OSError:
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def _read_index(path: Path) -> _Index:
    with np.load(path, allow_pickle=False) as data:
        columns = [data[k].tolist() for k in ("names", "expressions", "rules", "sizes", "phrases")]
        references = [
            _Reference(n, e, r, s, frozenset(k.split("|")) - {""})
            for n, e, r, s, k in zip(*columns, strict=True)
        ]
        names, sizes = columns[0], columns[3]
        ids = dict(zip(data["id_keys"].tolist(), data["id_values"].tolist(), strict=True))
        keys, offsets, refs = data["keys"], data["offsets"], data["refs"]
    if len(offsets) != len(keys) + 1 or int(offsets[-1]) != len(refs) or len(refs) == 0:
        raise ValueError(f"{path}: inconsistent index")
    if int(refs.max()) >= len(references) or len(names) != len(sizes):
        raise ValueError(f"{path}: inconsistent index")
    return _Index(ids, references, keys.astype(np.uint64), offsets.astype(np.int64), refs.astype(np.int32))
