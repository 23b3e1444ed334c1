"""C4's line and page rules: Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer", section 2.2, with the constants of TFDS `c4_utils.clean_page` where
the paper gives none (the 1,000-character word limit). C4 is line-level: `c4_filter` returns the kept
lines and a page-level reason. The paper decides where datatrove's C4QualityFilter departs from it
(DATATROVE_DIFFERENCES, printed by the bench). The "bad words" list rule is not implemented (it needs
a download; datatrove leaves it out too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.config import C4Rules
from jobs.filters.view import TextView, as_view

CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")  # TFDS c4_utils
END_MARKS = (".", "?", "!", '"', "\u201d")  # 2.2: period, exclamation, question, end quotation mark
ELLIPSIS = "..."
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
# A sentence ends at . ! ? (then closing quotes/brackets) before whitespace or the line's end. One
# terminal character per match and a lookahead: linear, no backtracking.
_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s|$)")

DATATROVE_DIFFERENCES = (
    "min_words_per_line 5 and min_sentences 3 as the paper and TFDS say (datatrove: 3 words, 5 sentences)",
    "'lorem ipsum' and '{' drop the page wherever they appear, as the paper says (TFDS and datatrove: only "
    "in lines that survived the line rules; page_rules_on_kept_lines=True restores that)",
    "end marks . ? ! \" and \u201d (paper: 'end quotation mark'; datatrove adds ' and omits \u201d)",
    "sentences: a terminal-punctuation splitter (TFDS and datatrove: nltk punkt, which knows "
    "abbreviations such as 'e.g.'); every kept line counts at least one sentence",
    "words per line are counted after citation markers are removed, as TFDS does (datatrove: before)",
)


@dataclass(frozen=True)
class C4Result:
    text: str  # the kept lines, joined by newlines
    reason: str | None
    lines_removed: int
    sentences: int


def count_sentences(line: str) -> int:
    return max(1, len(_SENTENCE_END.findall(line)))


def _keep_line(line: str, rules: C4Rules) -> str | None:
    """The line as kept (citations removed), or None when a line rule removes it."""
    if rules.max_word_length is not None and any(len(w) > rules.max_word_length for w in line.split()):
        return None
    if rules.remove_citations and "[" in line:
        line = CITATION.sub("", line)
    if rules.line_terminal_punct and (not line.endswith(END_MARKS) or line.endswith(ELLIPSIS)):
        return None
    if len(line.split()) < rules.min_words_per_line:
        return None
    low = line.lower()
    if rules.filter_javascript and "javascript" in low:
        return None
    if rules.filter_policy and any(p in low for p in POLICY):
        return None
    return line


def _page_reason(text: str, rules: C4Rules) -> str | None:
    if rules.filter_lorem_ipsum and "lorem ipsum" in text.lower():
        return "c4_lorem_ipsum"
    if rules.filter_curly_bracket and "{" in text:
        return "c4_curly_bracket"
    return None


def c4_clean(text: str | TextView, rules: C4Rules) -> C4Result:
    """Source: Raffel et al. (2020), section 2.2. Line rules, then the page rules on the whole page
    (or on the kept lines with `page_rules_on_kept_lines`), then the sentence minimum."""
    view = as_view(text)
    lines = view.lines
    if not rules.page_rules_on_kept_lines and (reason := _page_reason(view.text, rules)):
        return C4Result(view.text, reason, 0, 0)
    kept = [k for k in (_keep_line(ln, rules) for ln in lines) if k is not None]
    cleaned = "\n".join(kept)
    sentences = sum(count_sentences(k) for k in kept)
    reason = _page_reason(cleaned, rules) if rules.page_rules_on_kept_lines else None
    if reason is None and not kept:
        reason = "c4_no_lines"
    elif reason is None and sentences < rules.min_sentences:
        reason = f"c4_min_sentences:{sentences}"
    return C4Result(cleaned, reason, len(lines) - len(kept), sentences)


def c4_filter(text: str | TextView, rules: C4Rules) -> tuple[str, str | None]:
    """(cleaned text, page-level reason or None)."""
    result = c4_clean(text, rules)
    return result.text, result.reason
