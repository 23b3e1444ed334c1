"""Verbatim overlap with protected works: word n-gram fingerprints, spans with offsets, containment.

The index is the fingerprint set of every protected work: each word n-gram of the normalised text
(the near-dedup normalisation, `jobs.dedup.minhash.normalize`: lowercase, punctuation removed,
digits as 0) hashed to 64 bits and kept in a sorted numpy array with a parallel array of the work
it came from; lookup is `np.searchsorted`, exact (no Bloom false positives) and 12 bytes a word.

GPT-3 decontaminated with 13-grams (Brown et al. 2020, appendix C). Here n is 7: a 200-character
excerpt is ~35 words, and each edited word (substituted, inserted, deleted) kills the n n-grams
around it, so with 13-grams two edits can leave nothing; with 7-grams enough survive. A single
shared 7-gram is common in ordinary prose, so a span needs `min_hits` matched n-grams clustered
by position (consecutive hits at most `max_gap` words apart). Measured in tests/test_overlap.py
(n = 6, 7, 8 and min_hits 4-6 tried): 7 and 5 gave the best recall with no false positive.

A document's score is containment, covered characters / document characters (Broder 1997), not
Jaccard: a short copied passage in a long document must still count.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config import MinHashConfig
from jobs.dedup.minhash import mix64, normalize

NGRAM = 7
MIN_HITS = 5  # matched n-grams in one span
MAX_GAP = 2 * NGRAM  # word positions between consecutive hits of one span: two edits close together
MAX_DOC_CHARS = 1 << 20  # a document is examined up to its first 1 Mi characters (cost bound)
MAX_WORK_BYTES = 64 << 20  # one protected file read at most
_WORD = re.compile(r"\S+")
_NORMAL = MinHashConfig()  # word shingles, lowercase, no punctuation, digits as 0
_PRIME = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: polynomial base over word hashes
_word_cache: dict[str, int] = {}


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of the examined text that repeat `work` across `ngrams` n-grams."""

    start: int
    end: int
    work: str
    ngrams: int


@dataclass(frozen=True)
class Overlap:
    """Spans found and the share of the examined characters they cover (containment)."""

    fraction: float
    spans: list[Span] = field(default_factory=list)
    truncated: bool = False


@dataclass(frozen=True)
class OverlapIndex:
    """Sorted n-gram hashes, the work index of each, the work names, and the n they were built with."""

    hashes: np.ndarray  # uint64, sorted
    works: np.ndarray  # uint32, parallel to hashes
    names: tuple[str, ...]
    ngram: int = NGRAM

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path, hashes=self.hashes, works=self.works, names=np.array(self.names, dtype=str),
            ngram=np.array(self.ngram),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> OverlapIndex:
        with np.load(path, allow_pickle=False) as data:
            names = tuple(str(n) for n in data["names"])
            return cls(data["hashes"], data["works"], names, int(data["ngram"]))


def words(text: str) -> tuple[list[str], np.ndarray]:
    """Normalised words and their (start, end) character offsets in `text`. Words that normalise to
    nothing (pure punctuation) are dropped, as the near-dedup shingles drop them, and so are numbers:
    runs like `[1, 2, 3], [4, 5, 6]` recur in every code example and are no evidence of copying."""
    found = list(_WORD.finditer(text))
    # One normalisation pass over the words joined by newlines (per character: no newline appears
    # or vanishes), instead of one call per word.
    normalised = normalize("\n".join(m.group() for m in found), _NORMAL).split("\n") if found else []
    normal: list[str] = []
    offsets: list[tuple[int, int]] = []
    for m, word in zip(found, normalised, strict=True):
        if word.strip("0"):
            normal.append(word)
            offsets.append(m.span())
    return normal, np.array(offsets, dtype=np.int64).reshape(-1, 2)


def ngram_hashes(normal: list[str], n: int = NGRAM) -> np.ndarray:
    """64-bit hash of each word n-gram (window i starts at word i): a polynomial over blake2b word
    hashes (stable across processes, unlike `hash`), then the MurmurHash3 finaliser."""
    if len(normal) < n:
        return np.empty(0, dtype=np.uint64)
    tokens = np.array([_word_hash(w) for w in normal], dtype=np.uint64)
    width = tokens.size - n + 1
    combined = tokens[:width].copy()
    for i in range(1, n):
        combined *= _PRIME
        combined += tokens[i : i + width]
    return mix64(combined)


def build_index(works: Iterable[tuple[str, str]], n: int = NGRAM) -> OverlapIndex:
    """The index of `(name, text)` works; a hash shared by several works keeps the first work."""
    names: list[str] = []
    parts: list[np.ndarray] = []
    for name, text in works:
        parts.append(work_hashes(text, n))
        names.append(name)
    return index_from_parts(parts, tuple(names), n)


def work_hashes(text: str, n: int = NGRAM) -> np.ndarray:
    """The distinct n-gram hashes of one work, sorted (what a Spark task computes per file). No
    offsets are needed here, so the text is normalised in one pass (lowercase and the translation
    table are per character, so this equals `words(text)[0]`, 8x faster; tests/test_overlap.py)."""
    normal = [w for w in normalize(text, _NORMAL).split() if w.strip("0")]
    return np.unique(ngram_hashes(normal, n))


def index_from_parts(parts: list[np.ndarray], names: tuple[str, ...], n: int = NGRAM) -> OverlapIndex:
    """One sorted table from each work's hashes (`parts[i]` belongs to `names[i]`)."""
    owners = [np.full(p.size, i, dtype=np.uint32) for i, p in enumerate(parts)]
    hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    owner = np.concatenate(owners) if owners else np.empty(0, dtype=np.uint32)
    order = np.argsort(hashes, kind="stable")
    hashes, owner = hashes[order], owner[order]
    first = np.ones(hashes.size, dtype=bool)
    first[1:] = hashes[1:] != hashes[:-1]
    return OverlapIndex(hashes[first], owner[first], names, n)


def find_overlap(
    text: str, index: OverlapIndex, *, min_hits: int = MIN_HITS, max_gap: int = MAX_GAP,
    max_chars: int = MAX_DOC_CHARS,
) -> Overlap:  # fmt: skip
    """Spans of `text` (its first `max_chars` characters) that repeat protected works, with offsets
    in the original text and the work each comes from, and the covered share of those characters."""
    examined = text[:max_chars]
    normal, offsets = words(examined)
    hashes = ngram_hashes(normal, index.ngram)
    if not examined or hashes.size == 0 or index.hashes.size == 0:
        return Overlap(0.0, [], len(text) > max_chars)
    at = np.minimum(np.searchsorted(index.hashes, hashes), index.hashes.size - 1)
    positions = np.flatnonzero(index.hashes[at] == hashes)
    spans = [
        _span(group, index.works[at[group]], offsets, index)
        for group in np.split(positions, np.flatnonzero(np.diff(positions) > max_gap) + 1)
        if group.size >= min_hits
    ]
    covered = sum(s.end - s.start for s in spans)  # spans are disjoint: groups are > max_gap apart
    return Overlap(min(1.0, covered / len(examined)), spans, len(text) > max_chars)


def _span(group: np.ndarray, owners: np.ndarray, offsets: np.ndarray, index: OverlapIndex) -> Span:
    """Characters from the first hit's first word to the last hit's last word; the work most hits
    come from."""
    last_word = int(group[-1]) + index.ngram - 1
    work = index.names[int(np.bincount(owners).argmax())]
    return Span(int(offsets[group[0], 0]), int(offsets[last_word, 1]), work, int(group.size))


def registry_works(folder: str | Path, max_bytes: int = MAX_WORK_BYTES) -> Iterator[tuple[str, str]]:
    """(name relative to `folder`, text) for each `.txt` file under it, sorted; a file above
    `max_bytes` is an error naming it (split it), not silently cut."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"registry {root} is not a folder of .txt files")
    for path in sorted(p for p in root.rglob("*.txt") if p.is_file()):
        if path.stat().st_size > max_bytes:
            raise ValueError(f"{path}: above {max_bytes} bytes; split the work into several files")
        with path.open("rb") as fh:
            yield path.relative_to(root).as_posix(), fh.read(max_bytes + 1).decode("utf-8", "replace")


def _word_hash(word: str) -> int:
    value = _word_cache.get(word)
    if value is None:
        if len(_word_cache) > 1_000_000:  # bounded memory on long runs
            _word_cache.clear()
        # surrogatepass: JSON text may carry lone surrogates, which a strict UTF-8 encode refuses
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        value = _word_cache[word] = int.from_bytes(digest, "little")
    return value
