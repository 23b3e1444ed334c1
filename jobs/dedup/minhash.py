"""MinHash LSH logic in plain Python/numpy: shingles, signatures, bands, S-curves (no Spark here).

Shingles follow FineWeb's datatrove `MinhashDedupSignature` (Penedo et al. 2024, section 3.3):
normalised text (`simplify_text`: lowercase, punctuation removed, digits as 0, whitespace
collapsed), word n-grams, one 32-bit hash each. Hashes must agree across processes and machines,
so tokens are hashed with blake2b (Python's `hash` is salted per process) and n-grams are combined
from token hashes with numpy, never by hashing joined strings.

Signatures use datasketch's `affine32` scheme (datasketch >= 2.0, ekzhu/datasketch#212): each
shingle hash is pre-mixed with the MurmurHash3 finaliser, then permutation k is `a_k * h + b_k mod
2^32` with odd `a_k`, a bijection. The parameters come from datasketch itself, and the values equal
`MinHash(scheme="affine32").update_batch` bit for bit, but all documents of a batch are done at
once with numpy (one `shingles x permutations` matrix per chunk, reduced per document).
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Sequence

import numpy as np

from core.config import MinHashConfig

MAX_HASH = np.uint32(0xFFFFFFFF)  # an empty signature slot
_SPACE = re.compile(r"\s+")
_PRIME = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: the polynomial base for n-gram combining
_CHUNK = 1 << 14  # shingles per permutation matrix: 16k x 112 x 4 B = 7 MB
_word_cache: dict[str, int] = {}


@functools.cache
def _translation(strip_punctuation: bool, normalize_numbers: bool) -> dict[int, int | None]:
    """One `str.translate` table (about 6x faster than regexes): Unicode punctuation and symbols
    (categories P*, S*) removed, decimal digits (Nd) mapped to 0."""
    table: dict[int, int | None] = {}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if strip_punctuation and category[0] in "PS":
            table[code] = None
        elif normalize_numbers and category == "Nd":
            table[code] = ord("0")
    return table


def normalize(text: str, cfg: MinHashConfig) -> str:
    """datatrove's `simplify_text` defaults (FineWeb): lowercase, no punctuation, digits as 0,
    whitespace collapsed (for word shingles `str.split` does that, so the regex pass is skipped)."""
    if cfg.lowercase:
        text = text.lower()
    if cfg.strip_punctuation or cfg.normalize_numbers:
        text = text.translate(_translation(cfg.strip_punctuation, cfg.normalize_numbers))
    if cfg.shingle == "word":  # str.split() below collapses any whitespace run by itself
        return text
    return _SPACE.sub(" ", text).strip()


def mix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 64-bit finaliser (wrapping uint64 arithmetic): spreads the combined bits."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3 32-bit finaliser, the pre-mix of datasketch's affine32 scheme."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


def _word_hashes(words: list[str]) -> np.ndarray:
    """blake2b-64 of each word through a per-process cache (a Zipfian vocabulary hits it)."""
    values = list(map(_word_cache.get, words))
    if None in values:
        if len(_word_cache) > 1_000_000:  # bounded memory on long runs
            _word_cache.clear()
        for i, value in enumerate(values):
            if value is None:
                word = words[i]
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                values[i] = _word_cache[word] = int.from_bytes(digest, "little")
    return np.array(values, dtype=np.uint64)


def _token_hashes(text: str, cfg: MinHashConfig) -> np.ndarray:
    if cfg.shingle == "word":
        return _word_hashes(text.split())
    return mix64(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64))


def shingle_hashes(text: str, cfg: MinHashConfig) -> np.ndarray:
    """32-bit hashes (uint32) of the normalised text's n-grams of words or chars, repeats kept.

    Repeats do not change a MinHash signature, so the signature pass skips the sort that
    `shingles` needs. A text shorter than `ngram` tokens is one shingle (so short texts still
    match); an empty one has none and never enters LSH.
    """
    tokens = _token_hashes(normalize(text, cfg), cfg)
    if tokens.size == 0:
        return np.empty(0, dtype=np.uint32)
    n = min(cfg.ngram, tokens.size)
    width = tokens.size - n + 1
    combined = tokens[:width].copy()
    for i in range(1, n):  # polynomial over the n token hashes of each window, wrapping mod 2^64
        combined *= _PRIME
        combined += tokens[i : i + width]
    return (mix64(combined) >> np.uint64(32)).astype(np.uint32)


def shingles(text: str, cfg: MinHashConfig) -> np.ndarray:
    """The shingle set as sorted unique uint32 hashes: what exact Jaccard compares."""
    return np.unique(shingle_hashes(text, cfg))


@functools.cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own affine32 parameters (odd `a`, any `b`), so sketches interoperate."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(shingle_sets: Sequence[np.ndarray], cfg: MinHashConfig) -> np.ndarray:
    """(documents, num_perm) uint32 MinHash signatures; an empty set gives all MAX_HASH.

    All shingles of the batch are concatenated and permuted in chunks of `_CHUNK` rows; each
    chunk is min-reduced per document with `np.minimum.reduceat` (documents may span chunks).
    """
    a, b = permutations(cfg.num_perm, cfg.seed)
    out = np.full((len(shingle_sets), cfg.num_perm), MAX_HASH, dtype=np.uint32)
    sizes = np.fromiter((len(s) for s in shingle_sets), dtype=np.int64, count=len(shingle_sets))
    if sizes.sum() == 0:
        return out
    values = _fmix32(np.concatenate([np.asarray(s, dtype=np.uint32) for s in shingle_sets]))
    owner = np.repeat(np.arange(len(shingle_sets)), sizes)
    for start in range(0, values.size, _CHUNK):
        chunk_owner = owner[start : start + _CHUNK]
        permuted = values[start : start + _CHUNK, None] * a[None, :] + b[None, :]
        firsts = np.flatnonzero(np.r_[True, chunk_owner[1:] != chunk_owner[:-1]])
        docs = chunk_owner[firsts]
        out[docs] = np.minimum(out[docs], np.minimum.reduceat(permuted, firsts, axis=0))
    return out


def hit_probability(j: float, bands: int, rows: int) -> float:
    """P(a pair with Jaccard j shares at least one band) = 1 - (1 - j^r)^b (Leskovec et al.,
    Mining of Massive Datasets, section 3.4.2)."""
    return float(1.0 - (1.0 - j**rows) ** bands)


def s_curve(bands: int, rows: int, step: float = 0.05) -> list[tuple[float, float]]:
    """(Jaccard, hit probability) at 0, step, ..., 1: what the run reports for its setting."""
    grid = np.round(np.arange(0.0, 1.0 + step / 2, step), 6)
    return [(float(j), round(hit_probability(float(j), bands, rows), 6)) for j in grid]


def false_positive_area(bands: int, rows: int, upto: float) -> float:
    """Integral of P(hit) over J in [0, upto]: the expected candidate load from dissimilar pairs."""
    if upto <= 0:
        return 0.0
    grid = np.linspace(0.0, upto, 201)
    p = 1.0 - (1.0 - grid**rows) ** bands
    return float(np.sum((p[1:] + p[:-1]) / 2) * (grid[1] - grid[0]))


def choose_bands_rows(
    threshold: float, num_perm: int, min_hit_probability: float = 0.9, margin: float = 0.1
) -> tuple[int, int]:
    """Bands x rows (b*r <= num_perm) whose hit probability at `threshold` is at least
    `min_hit_probability`, with the least false-positive area below `threshold - margin`
    (pairs that far below only cost verification). Ties: more bands (more recall above).

    A setting that only puts the S-curve's midpoint at the threshold (e.g. datasketch's default
    weights) finds about half the pairs exactly at it; this rule fixes recall there first.
    """
    feasible = [
        (false_positive_area(b, r, threshold - margin), -b, b, r)
        for r in range(1, num_perm + 1)
        for b in range(1, num_perm // r + 1)
        if hit_probability(threshold, b, r) >= min_hit_probability
    ]
    if not feasible:
        raise ValueError(f"no bands x rows within {num_perm} permutations reach {min_hit_probability}")
    _, _, b, r = min(feasible)
    return b, r


def bands_rows(cfg: MinHashConfig) -> tuple[int, int]:
    """The configured bands x rows, or the derived ones when unset."""
    if cfg.bands is not None and cfg.rows is not None:
        return cfg.bands, cfg.rows
    return choose_bands_rows(cfg.threshold, cfg.num_perm, cfg.min_hit_probability)


def band_key_matrix(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) int64 keys: a 64-bit hash of each band's `rows` signature values."""
    sub = sigs[:, : bands * rows].reshape(len(sigs), bands, rows).astype(np.uint64)
    key = np.zeros(sub.shape[:2], dtype=np.uint64)
    for i in range(rows):
        key = key * _PRIME + sub[:, :, i]
    return mix64(key).view(np.int64)


def band_keys(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One document's band keys (band i is the i-th key)."""
    return band_key_matrix(np.asarray(signature)[None, :], bands, rows)[0].tolist()


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two shingle sets (sorted unique arrays); two empty sets count as 0."""
    union = np.union1d(a, b).size
    return np.intersect1d(a, b, assume_unique=True).size / union if union else 0.0


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal signature slots, an unbiased estimate of Jaccard (Broder 1997)."""
    return float(np.mean(np.asarray(sig_a) == np.asarray(sig_b)))
