"""Social-post rules: short texts are normal, so there is no word minimum in Gopher's sense (50 words
would keep one of the 24,783 Davidson et al. 2017 tweets). What is dropped is what carries no text:
posts that are only URLs, @mentions, hashtags and retweet markers, posts shorter than a few words, and
runs of one repeated character. The URL/mention normalisation follows the tweet preprocessing of
TweetEval (Barbieri et al. 2020, section 3), which replaces them with placeholders; the minimums are
ours (README "Rules and their sources" says why). Thresholds: `SocialRules` (core/config.py).
"""

from __future__ import annotations

import re

from core.config import SocialRules

_NOISE = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|\bRT\b|&(?:amp|lt|gt|quot|#\d{1,6});")


def social_stats(text: str, rules: SocialRules) -> dict[str, float]:
    visible = " ".join(_NOISE.sub(" ", text).split())
    words = [w for w in visible.split() if any(c.isalnum() for c in w)]
    run = re.search(rf"(.)\1{{{rules.max_char_run},}}", text, re.S)
    return {
        "visible_chars": len(visible),
        "visible_words": len(words),
        "char_run": len(run.group(0)) if run else 0,
    }


def social_check(s: dict[str, float], rules: SocialRules) -> str | None:
    if s["visible_words"] == 0:
        return "social_no_text"
    if s["visible_chars"] < rules.min_chars:
        return f"social_min_chars:{int(s['visible_chars'])}"
    if s["visible_words"] < rules.min_words:
        return f"social_min_words:{int(s['visible_words'])}"
    if s["char_run"]:
        return f"social_char_run:{int(s['char_run'])}"
    return None


def social_reason(text: str, rules: SocialRules) -> str | None:
    """None keeps; otherwise `social_<rule>:<measured value>`."""
    return social_check(social_stats(text, rules), rules)
