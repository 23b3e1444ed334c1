"""Benchmark decontamination: word n-gram overlap of documents with evaluation sets.

Source: Brown et al. (2020), "Language Models are Few-Shot Learners", appendix C: a training
document is contaminated when it shares a 13-gram (words, punctuation and case ignored) with a
benchmark item. The n-grams, their 64-bit hashes, the sorted index and the span search are the
copyright overlap's (jobs/copyright/overlap.py); here the works are benchmarks, one per file
(evalsets.py), and a single shared n-gram counts (`min_hits` 1, GPT-3's rule).

Edited copies: each substituted, inserted or deleted word kills the n windows covering it, so at
5% of words edited a 13-gram survives with probability about 0.95^13 = 0.51, and a passage of 40
or more words keeps several matches (recall measured per passage length in tests/test_decontam.py).

Short items: GPT-3 set n per benchmark to its 5th-percentile item length, clamped to [8, 13].
One index has one n here, so an item with fewer than n words (after normalisation: numbers and
punctuation dropped) cannot be checked; it is counted as `too_short` in the stats, with the
benchmark's 5th-percentile length (`p5_words`), so that a benchmark of short items is seen and
given its own, smaller `ngram` (at least 8 as GPT-3 did; the config allows 5).

Cut: each span runs from the first matched n-gram's first word to the last one's last word, so
words of an edited copy beyond its last surviving n-gram stay. The text either side of a removed
span is joined by one newline when the span or the whitespace around it held a line break, else
by one space. A document left with fewer than `MIN_CUT_WORDS` words is dropped instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.config import DecontamConfig, MinHashConfig
from jobs.copyright.overlap import OverlapIndex, find_overlap, index_from_parts, ngram_hashes
from jobs.dedup.minhash import normalize
from jobs.safety.evalsets import EvalSet

Row = dict[str, Any]
MIN_CUT_WORDS = 5  # a cut document with fewer words left is dropped (`decontam_cut_empty`)
_NORMAL = MinHashConfig()  # the normalisation overlap.py uses
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of the text repeating `benchmark` over `ngrams` matched n-grams."""

    start: int
    end: int
    benchmark: str
    ngrams: int


@dataclass(frozen=True)
class Contamination:
    """A document's spans, the benchmarks they match (sorted), the covered share of the examined
    characters, and whether the text was longer than the examined `max_chars`."""

    spans: list[Span]
    benchmarks: list[str]
    fraction: float
    truncated: bool

    @property
    def ngrams(self) -> int:
        return sum(s.ngrams for s in self.spans)


def item_words(text: str) -> list[str]:
    """An item's words as the index sees them (overlap.py: normalised, numbers dropped)."""
    return [w for w in normalize(without_surrogates(text), _NORMAL).split() if w.strip("0")]


def without_surrogates(text: str) -> str:
    """Lone surrogates (valid in JSON, not in UTF-8) as U+FFFD, one for one, so offsets hold:
    overlap.py hashes the UTF-8 bytes of each word and would raise on them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def build_eval_index(evals: list[EvalSet], n: int) -> tuple[OverlapIndex, dict[str, dict[str, int]]]:
    """The index of every item's n-grams, one work per benchmark, and per benchmark: items,
    distinct n-grams, items shorter than n words (`too_short`), 5th-percentile words, read errors."""
    parts: list[np.ndarray] = []
    stats: dict[str, dict[str, int]] = {}
    for ev in evals:
        lengths, hashes = [], []
        for item in ev.items:
            normal = item_words(item)
            lengths.append(len(normal))
            hashes.append(ngram_hashes(normal, n))
        part = np.unique(np.concatenate(hashes)) if hashes else np.empty(0, dtype=np.uint64)
        parts.append(part)
        stats[ev.name] = {
            "items": len(ev.items), "ngrams": int(part.size), "too_short": sum(k < n for k in lengths),
            "p5_words": int(np.percentile(lengths, 5)) if lengths else 0, "skipped": ev.skipped,
            "bad_encoding": ev.bad_encoding,
        }  # fmt: skip
    return index_from_parts(parts, tuple(ev.name for ev in evals), n), stats


def check(text: str, index: OverlapIndex, cfg: DecontamConfig) -> Contamination:
    """The spans of `text` (its first `cfg.max_chars` characters) sharing n-grams with a benchmark
    (n is the index's); none unless they match at least `cfg.min_hits` n-grams together. Hits at
    most 2n words apart form one span: one edited word leaves a gap of n."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, not {type(text).__name__}")
    found = find_overlap(
        without_surrogates(text), index, min_hits=1, max_gap=2 * index.ngram, max_chars=cfg.max_chars
    )
    spans = [Span(s.start, s.end, s.work, s.ngrams) for s in found.spans]
    if sum(s.ngrams for s in spans) < cfg.min_hits:
        return Contamination([], [], 0.0, found.truncated)
    return Contamination(spans, sorted({s.benchmark for s in spans}), found.fraction, found.truncated)


def cut_spans(text: str, spans: list[Span]) -> str:
    """`text` without the (disjoint) spans; each seam is one newline when a line break was removed
    with the span or the whitespace around it, else one space; nothing at either end of the text."""
    ordered = sorted(spans, key=lambda s: s.start)
    ends = [0, *(s.end for s in ordered)]
    kept = [text[a:b] for a, b in zip(ends, [*(s.start for s in ordered), len(text)], strict=True)]
    out = kept[0]
    for span, right in zip(ordered, kept[1:], strict=True):
        around = out[len(out.rstrip()) :] + right[: len(right) - len(right.lstrip())]
        seam = around + text[span.start : span.end]
        out, right = out.rstrip(), right.lstrip()
        out = out + ("\n" if "\n" in seam else " ") + right if out and right else out + right
    return out


def decontaminate_row(row: Row, index: OverlapIndex, cfg: DecontamConfig) -> tuple[Row, str | None]:
    """The per-document rule: no hit keeps the row unchanged; a hit adds `decontam.*` annotations
    and then drops (`decontam_overlap:<first benchmark by name>`), cuts the spans, or only flags.
    A text that is not a string has nothing to check and is kept unchanged."""
    text = row.get("text")
    if not isinstance(text, str):
        return row, None
    return apply(row, check(text, index, cfg), cfg)


def apply(row: Row, found: Contamination, cfg: DecontamConfig) -> tuple[Row, str | None]:
    """`cfg.action` for a row whose `text` was checked into `found` (the rule after the check)."""
    if not found.spans:
        return row, None
    text: str = row["text"]
    ann = {
        **(row.get("annotations") or {}), "decontam.benchmarks": ",".join(found.benchmarks),
        "decontam.ngrams": str(found.ngrams), "decontam.fraction": f"{found.fraction:.6g}",
    }  # fmt: skip
    if cfg.action == "drop":
        return {**row, "annotations": ann}, f"decontam_overlap:{found.benchmarks[0]}"
    if cfg.action == "flag":
        return {**row, "annotations": ann}, None
    kept = cut_spans(text, found.spans)
    ann["decontam.cut_chars"] = str(len(text) - len(kept))
    if len(item_words(kept)) < MIN_CUT_WORDS:
        return {**row, "annotations": ann}, "decontam_cut_empty"
    return {**row, "text": kept, "annotations": ann}, None


def decontaminate_with(cfg: DecontamConfig, index: OverlapIndex) -> Callable[[Row], tuple[Row, str | None]]:
    """`decontaminate_row` bound to one config and index (the stage's and `lmforge decontaminate`'s rule)."""
    return lambda row: decontaminate_row(row, index, cfg)


@dataclass
class HitReport:
    """Which benchmark each hit came from: documents and matched n-grams per benchmark."""

    documents: int = 0
    contaminated: int = 0
    by_benchmark: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, found: Contamination) -> None:
        self.documents += 1
        self.contaminated += bool(found.spans)
        for name in found.benchmarks:
            entry = self.by_benchmark.setdefault(name, {"documents": 0, "ngrams": 0})
            entry["documents"] += 1
            entry["ngrams"] += sum(s.ngrams for s in found.spans if s.benchmark == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "contaminated": self.contaminated,
            "benchmarks": dict(sorted(self.by_benchmark.items())),
        }  # fmt: skip
