"""FineWeb's three added heuristic filters: Penedo et al. (2024), "The FineWeb Datasets: Decanting the Web
for the Finest Text Data at Scale", section 3.5 ("developing additional heuristic filters"). Thresholds
are fields of `FineWebRules` (core/config.py); the comparisons are the paper's (<=, >=, "shorter than").
"""

from __future__ import annotations

from core.config import FineWebRules
from jobs.filters.gopher import _duplicates
from jobs.filters.view import TextView, as_view

# Unicode Sentence_Terminal characters (the set datatrove's TERMINAL_PUNCTUATION holds).
TERMINAL_PUNCTUATION = tuple(
    "!.?\u0589\u061d\u061e\u061f\u06d4\u0700\u0701\u0702\u07f9\u0837\u0839\u083d\u083e\u0964\u0965"
    "\u104a\u104b\u1362\u1367\u1368\u166e\u1735\u1736\u17d4\u17d5\u17d6\u17d9\u17da\u1803\u1809\u1944"
    "\u1945\u1aa8\u1aa9\u1aaa\u1aab\u1b5a\u1b5b\u1b5e\u1b5f\u1b7d\u1b7e\u1c3b\u1c3c\u1c7e\u1c7f\u203c"
    "\u203d\u2047\u2048\u2049\u2e2e\u2e3c\u2e53\u2e54\u3002\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua876\ua877"
    "\ua8ce\ua8cf\ua92f\ua9c8\ua9c9\uaa5d\uaa5e\uaa5f\uaaf0\uaaf1\uabeb\ufe52\ufe56\ufe57\uff01\uff0e"
    "\uff1f\uff61\U00010a56\U00010a57\U00010f55\U00010f56\U00010f57\U00010f58\U00010f59\U00010f86"
    "\U00010f87\U00010f88\U00010f89\U00011047\U00011048\U000110be\U000110bf\U000110c0\U000110c1"
    "\U00011141\U00011142\U00011143\U000111c5\U000111c6\U000111cd\U000111de\U000111df\U00011238"
    "\U00011239\U0001123b\U0001123c\U000112a9\U0001144b\U0001144c\U000115c2\U000115c3\U000115c9"
    "\U000115ca\U000115cb\U000115cc\U000115cd\U000115ce\U000115cf\U000115d0\U000115d1\U000115d2"
    "\U000115d3\U000115d4\U000115d5\U000115d6\U000115d7\U00011641\U00011642\U0001173c\U0001173d"
    "\U0001173e\U00011944\U00011946\U00011a42\U00011a43\U00011a9b\U00011a9c\U00011c41\U00011c42"
    "\U00011ef7\U00011ef8\U00011f43\U00011f44\U00016a6e\U00016a6f\U00016af5\U00016b37\U00016b38"
    "\U00016b44\U00016e98\U0001bc9f\U0001da88"
)

DATATROVE_DIFFERENCES = (
    "line punctuation: dropped at <= 0.12 as the paper says (datatrove: < 0.12)",
    "duplicated-line characters: dropped at >= 0.1 as the paper says (datatrove's default: > 0.01)",
    "short lines: shorter than 30 characters, dropped at >= 0.67 (datatrove: <= 30 characters, > 0.67)",
    "no newline-to-word ratio rule (datatrove's new_line_ratio 0.3 is not in the paper)",
    "lines are stripped before measuring (datatrove: unstripped, blank lines removed)",
)


def fineweb_stats(view: TextView, rules: FineWebRules) -> dict[str, float]:
    lines = view.lines
    n = len(lines) or 1
    chars = sum(map(len, lines)) or 1
    return {
        "line_punct": sum(ln.endswith(TERMINAL_PUNCTUATION) for ln in lines) / n,
        "dup_line_chars": _duplicates(lines)[1] / chars,
        "short_lines": sum(len(ln) < rules.short_line_chars for ln in lines) / n,
    }


def fineweb_check(s: dict[str, float], rules: FineWebRules) -> str | None:
    """Source: Penedo et al. (2024), section 3.5: the first of the three rules that fires."""
    if s["line_punct"] <= rules.max_line_punct:
        return f"fineweb_line_punct:{s['line_punct']:.2f}"
    if s["dup_line_chars"] >= rules.max_dup_line_chars:
        return f"fineweb_dup_line_chars:{s['dup_line_chars']:.2f}"
    if s["short_lines"] >= rules.max_short_lines:
        return f"fineweb_short_lines:{s['short_lines']:.2f}"
    return None


def fineweb_reason(text: str | TextView, rules: FineWebRules) -> str | None:
    """None keeps; otherwise `fineweb_<rule>:<measured value>`."""
    view = as_view(text)
    return fineweb_check(fineweb_stats(view, rules), rules)
