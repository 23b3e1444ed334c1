"""Gopher's quality and repetition filters: Rae et al. (2021), "Scaling Language Models: Methods, Analysis
& Insights from Training Gopher", appendix A.1.1 and table A1. Every threshold is a field of
`GopherQualityRules` / `GopherRepetitionRules` (core/config.py) with the paper's value.

Measured on `TextView` (jobs/filters/view.py). A word is a whitespace token: A.1.1 counts "words" that
may hold no letter (its 80% alphabetic rule), so symbols and numbers are words, in every count and ratio.
Where the paper is silent (ties for the top n-gram, how a line is split) we do what datatrove's
GopherQualityFilter and GopherRepetitionFilter do; the rest of what differs is DATATROVE_DIFFERENCES
(the bench prints it).
"""

from __future__ import annotations

from collections import Counter
from itertools import compress

from core.config import GopherQualityRules, GopherRepetitionRules
from jobs.filters.view import PUNCTUATION, TextView, as_view

BULLETS = ("•", "‣", "◦", "●", "▪", "-", "*")  # datatrove: "•" and "-" only
ELLIPSES = ("...", "…")

DATATROVE_DIFFERENCES = (
    "words: whitespace tokens in every rule (datatrove: a language word tokenizer; the bench also runs it "
    "with whitespace words)",
    "word count and mean word length: symbol-only tokens ('-', '|', '#') are words, as in the ratios "
    "(datatrove leaves them out of these two rules only)",
    "stop words: matched lowercased with punctuation stripped, 'The,' is 'the' (datatrove: exact tokens)",
    "bullet and ellipsis lines: blank lines are not lines (datatrove counts them in the denominator)",
    "bullets: also * ‣ ◦ ● ▪ (datatrove: • and - only)",
    "duplicate n-grams: every repeated occurrence marks its words, overlaps counted once (A.1.1: "
    "characters 'contained within all duplicate n-grams'); datatrove skips n words after a repeat, so "
    "a repeated run longer than n is only partly counted",
    "duplicate lines: whitespace-only lines are not lines (datatrove counts them)",
    "paragraphs: split at blank lines that may hold spaces, stripped (datatrove: at 2+ newlines)",
)


def gopher_quality_stats(view: TextView, rules: GopherQualityRules) -> dict[str, float]:
    """The measured values of every quality rule (persisted before thresholds are applied). A word is a
    whitespace token (A.1.1 counts "words" that may lack a letter, so symbols and numbers are words)."""
    words, lines, text = view.tokens, view.lines, view.text
    n = len(words)
    stop = frozenset(rules.stop_words)
    found = {w for w in (t.strip(PUNCTUATION).lower() for t in words) if w in stop}
    return {
        "words": n,
        "mean_word_length": sum(map(len, words)) / n if n else 0.0,
        "hash_ratio": text.count("#") / n if n else 0.0,
        "ellipsis_ratio": (text.count("...") + text.count("…")) / n if n else 0.0,
        "bullet_lines": sum(ln.startswith(BULLETS) for ln in lines) / len(lines) if lines else 0.0,
        "ellipsis_lines": sum(ln.endswith(ELLIPSES) for ln in lines) / len(lines) if lines else 0.0,
        "alpha_words": sum(any(c.isalpha() for c in w) for w in words) / n if n else 0.0,
        "stop_words": len(found),
    }


def gopher_quality_check(s: dict[str, float], r: GopherQualityRules) -> str | None:
    """Source: Rae et al. (2021), appendix A.1.1, "quality filters"; the first rule that fires."""
    checks = (
        (s["words"] < r.min_words, f"gopher_min_words:{int(s['words'])}"),
        (r.max_words is not None and s["words"] > r.max_words, f"gopher_max_words:{int(s['words'])}"),
        (
            not r.min_mean_word_length <= s["mean_word_length"] <= r.max_mean_word_length,
            f"gopher_mean_word_length:{s['mean_word_length']:.2f}",
        ),
        (s["hash_ratio"] > r.max_hash_word_ratio, f"gopher_hash_ratio:{s['hash_ratio']:.3f}"),
        (s["ellipsis_ratio"] > r.max_ellipsis_word_ratio, f"gopher_ellipsis_ratio:{s['ellipsis_ratio']:.3f}"),
        (s["bullet_lines"] > r.max_bullet_lines, f"gopher_bullet_lines:{s['bullet_lines']:.3f}"),
        (s["ellipsis_lines"] > r.max_ellipsis_lines, f"gopher_ellipsis_lines:{s['ellipsis_lines']:.3f}"),
        (s["alpha_words"] < r.min_alpha_words, f"gopher_alpha_words:{s['alpha_words']:.3f}"),
        (s["stop_words"] < r.min_stop_words, f"gopher_stop_words:{int(s['stop_words'])}"),
    )
    return next((reason for fired, reason in checks if fired), None)


def gopher_quality_reason(text: str | TextView, rules: GopherQualityRules) -> str | None:
    """None keeps; otherwise the rule and its measured value (`gopher_min_words:12`)."""
    return gopher_quality_check(gopher_quality_stats(as_view(text), rules), rules)


def _duplicates(items: list[str]) -> tuple[int, int]:
    """(occurrences after the first, their characters): Gopher's "duplicate" lines and paragraphs."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count, chars = count + 1, chars + len(item)
        else:
            seen.add(item)
    return count, chars


def _top_ngram_chars(words: list[str], n: int) -> int:
    """Characters in every occurrence of the most frequent n-gram (its words joined by spaces), even when
    it occurs once: A.1.1 "the fraction of characters contained within the most frequently-occurring
    n-gram". Ties: the first in the text (as datatrove's Counter.most_common); overlaps count twice."""
    grams = Counter(zip(*(words[i:] for i in range(n)), strict=False))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return (sum(map(len, gram)) + n - 1) * count


def _dup_ngram_chars(words: list[str], lengths: list[int], n: int) -> int:
    """Characters of the words covered by a repeated occurrence of an n-gram, each word once."""
    seen: set[tuple[str, ...]] = set()
    covered = bytearray(len(words))
    ones = b"\x01" * n
    for i, gram in enumerate(zip(*(words[i:] for i in range(n)), strict=False)):
        if gram in seen:
            covered[i : i + n] = ones
        else:
            seen.add(gram)
    return sum(compress(lengths, covered))


def gopher_repetition_reason(text: str | TextView, rules: GopherRepetitionRules) -> str | None:
    """Source: Rae et al. (2021), appendix A.1.1 "repetition removal" and table A1; fractions of the
    document's characters (len(text)), the first rule that fires with its measured value. Lines are
    compared as written (indentation kept, as datatrove), whitespace-only lines left out."""
    view = as_view(text)
    total = len(view.text) or 1
    paragraphs, lines = view.paragraphs, [ln for ln in view.text.split("\n") if ln.strip()]
    para_dups, para_chars = _duplicates(paragraphs)
    line_dups, line_chars = _duplicates(lines)
    for value, limit, name in (
        (para_dups / (len(paragraphs) or 1), rules.max_dup_paragraphs, "dup_paragraphs"),
        (para_chars / total, rules.max_dup_paragraph_chars, "dup_paragraph_chars"),
        (line_dups / (len(lines) or 1), rules.max_dup_lines, "dup_lines"),
        (line_chars / total, rules.max_dup_line_chars, "dup_line_chars"),
    ):
        if value > limit:
            return f"gopher_{name}:{value:.3f}"
    words = view.tokens
    for n, limit in sorted(rules.max_top_ngram_chars.items()):
        if (value := _top_ngram_chars(words, n) / total) > limit:
            return f"gopher_top_{n}gram:{value:.3f}"
    lengths = [len(w) for w in words]
    for n, limit in sorted(rules.max_dup_ngram_chars.items()):
        if (value := _dup_ngram_chars(words, lengths, n) / total) > limit:
            return f"gopher_dup_{n}gram:{value:.3f}"
    return None
