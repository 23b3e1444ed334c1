"""Basic quality rules: Gopher heuristics for prose, Codex/StarCoder heuristics for code.

Scores are stored in `annotations` (`quality.*`) before thresholds are applied, so a threshold
change needs no recompute. Reasons are prefixed by their rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from core.config import QualityConfig

_WORD = re.compile(r"\S+")
_ALPHA = re.compile(r"[^\W\d_]")


def prose_stats(text: str) -> dict[str, float]:
    words = _WORD.findall(text)
    n = len(words)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    symbols = text.count("#") + text.count("...") + text.count("\u2026")
    return {
        "words": n,
        "mean_word_length": sum(map(len, words)) / n if n else 0.0,
        "symbol_word_ratio": symbols / n if n else 0.0,
        "alpha_word_fraction": sum(1 for w in words if _ALPHA.search(w)) / n if n else 0.0,
        "bullet_line_fraction": sum(ln.lstrip()[:1] in "-*\u2022" for ln in lines) / len(lines)
        if lines
        else 0.0,
    }


def gopher_reason(s: dict[str, float], cfg: QualityConfig) -> str | None:
    """Source: Rae et al. (2021), "Scaling Language Models: Methods, Analysis & Insights from
    Training Gopher", appendix A.1.1 (quality filters): 50-100,000 words, mean word length 3-10,
    symbol-to-word ratio <= 0.1, >= 80% of words with an alphabetic character, <= 90% bullet lines."""
    if s["words"] < cfg.min_words:
        return f"gopher_min_words:{int(s['words'])}"
    if s["words"] > cfg.max_words:
        return f"gopher_max_words:{int(s['words'])}"
    if not cfg.min_mean_word_length <= s["mean_word_length"] <= cfg.max_mean_word_length:
        return f"gopher_mean_word_length:{s['mean_word_length']:.2f}"
    if s["symbol_word_ratio"] > cfg.max_symbol_word_ratio:
        return f"gopher_symbol_word_ratio:{s['symbol_word_ratio']:.3f}"
    if s["alpha_word_fraction"] < cfg.min_alpha_word_fraction:
        return f"gopher_alpha_word_fraction:{s['alpha_word_fraction']:.3f}"
    if s["bullet_line_fraction"] > 0.9:
        return f"gopher_bullet_lines:{s['bullet_line_fraction']:.3f}"
    return None


def code_stats(text: str) -> dict[str, float]:
    lines = text.splitlines() or [""]
    lengths = [len(ln) for ln in lines]
    return {
        "max_line_length": max(lengths),
        "mean_line_length": sum(lengths) / len(lines),
        "alnum_fraction": sum(c.isalnum() for c in text) / len(text) if text else 0.0,
    }


def code_reason(s: dict[str, float], cfg: QualityConfig) -> str | None:
    """Source: Chen et al. (2021), "Evaluating Large Language Models Trained on Code" (Codex),
    section 3.1: drop files with max line length > 1000 or mean line length > 100; Li et al. (2023),
    "StarCoder", section 3: alphanumeric fraction < 0.25."""
    if s["max_line_length"] > cfg.max_code_line_length:
        return f"codex_max_line_length:{int(s['max_line_length'])}"
    if s["mean_line_length"] > cfg.max_code_mean_line_length:
        return f"codex_mean_line_length:{s['mean_line_length']:.1f}"
    if s["alnum_fraction"] < cfg.min_code_alnum_fraction:
        return f"starcoder_alnum_fraction:{s['alnum_fraction']:.3f}"
    return None


def assess(row: dict[str, Any], cfg: QualityConfig) -> tuple[dict[str, Any], str | None]:
    """Annotate scores, then decide: (row, None) keeps, (row, reason) rejects."""
    text = row["text"] or ""
    if not text.strip():
        return row, "quality_empty_text"
    if row["source_type"] == "code":
        stats, reason = code_stats(text), None
        reason = code_reason(stats, cfg)
    else:
        stats = prose_stats(text)
        reason = gopher_reason(stats, cfg)
    ann = dict(row.get("annotations") or {})
    ann.update({f"quality.{k}": f"{v:.4g}" for k, v in stats.items()})
    return {**row, "annotations": ann}, reason


def assess_with(cfg: QualityConfig) -> Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]:
    """`assess` bound to one config: the per-document rule the stage and `lmforge quality` apply."""
    return lambda row: assess(row, cfg)
