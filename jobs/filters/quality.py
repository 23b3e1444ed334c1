"""The quality stage's per-document rule: the profile of the document's source type (core/config.py
`QualityConfig.profiles`) applied in order: synthetic verification, social rules, code rules, language
ID, Gopher quality, Gopher repetition, FineWeb, then C4 (whose kept lines replace the text). Every rule
set measures the text as it arrived, so one `TextView` is split once for all of them.

Scores go into `annotations` as `quality.<name>` strings before thresholds apply, so a threshold change
needs no recompute; the first rule that fires is the reason (`<rule>:<measured value>`). With a trained
model configured (`classifier_model`), every document gets `quality.score` (jobs/filters/classifier.py,
loaded once per process) and the near-dedup keeper ranks by it (jobs/dedup/near.py `SCORE`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from core.config import QualityConfig, SourceProfile
from jobs.filters.c4 import c4_clean
from jobs.filters.code import code_check, code_stats, comment_text
from jobs.filters.fineweb import fineweb_check, fineweb_stats
from jobs.filters.gopher import gopher_quality_check, gopher_quality_stats, gopher_repetition_reason
from jobs.filters.language import identify, language_reason
from jobs.filters.social import social_check, social_stats
from jobs.filters.synthetic import synthetic_reason
from jobs.filters.view import TextView

Row = dict[str, Any]
SCORE = "quality.score"  # the name jobs/dedup/near.py ranks keepers by


@functools.lru_cache(maxsize=4)
def _model(path: str, sha256: str | None) -> Any:
    from jobs.filters.classifier import load_model  # lazy: only runs that configure a model need it

    return load_model(path, sha256)


def _fmt(stats: dict[str, float]) -> dict[str, str]:
    return {f"quality.{k}": f"{v:.4g}" for k, v in stats.items()}


def _language(row: Row, text: str, profile: SourceProfile, ann: dict[str, str]) -> tuple[Row, str | None]:
    """Fill `language` when null, annotate `quality.language_score`; code gets its comments' language."""
    rules = profile.language
    if rules is None:
        return row, None
    if row["source_type"] == "code":
        comments = comment_text(text, ann.get("code.language"))
        if profile.code is None or not profile.code.comment_language or len(comments) < rules.min_chars:
            return row, None
        code, score = identify(comments)
        ann.update({"quality.comment_language": code or "und", "quality.language_score": f"{score:.4g}"})
        return ({**row, "language": row.get("language") or code}, None)  # never rejects code
    if row.get("language") and "extract.language_score" in ann:  # identified on this text already
        code, score = row["language"], float(ann["extract.language_score"])
    else:
        code, score = identify(text)
    ann["quality.language_score"] = f"{score:.4g}"
    return {**row, "language": row.get("language") or code}, language_reason(code, score, rules)


def _rules(row: Row, view: TextView, profile: SourceProfile, ann: dict[str, str]) -> tuple[Row, str | None]:
    """Every rule set of the profile but language, first reason wins; C4 last (it rewrites the text)."""
    text = view.text
    if profile.synthetic and (reason := synthetic_reason(text, ann, profile.synthetic)):
        return row, reason
    if profile.social:
        stats = social_stats(text, profile.social)
        ann.update(_fmt(stats))
        if reason := social_check(stats, profile.social):
            return row, reason
    if profile.code:
        lang = ann.get("code.language")
        stats = code_stats(text, lang)
        ann.update(_fmt(stats))
        if reason := code_check(text, lang, stats, profile.code):
            return row, reason
    if profile.gopher_quality:  # quality filters, then repetition removal: Gopher's own order (A.1.1)
        stats = gopher_quality_stats(view, profile.gopher_quality)
        ann.update(_fmt(stats))
        if reason := gopher_quality_check(stats, profile.gopher_quality):
            return row, reason
    if profile.gopher_repetition and (reason := gopher_repetition_reason(view, profile.gopher_repetition)):
        return row, reason
    if profile.fineweb:
        stats = fineweb_stats(view, profile.fineweb)
        ann.update(_fmt({f"fineweb_{k}": v for k, v in stats.items()}))
        if reason := fineweb_check(stats, profile.fineweb):
            return row, reason
    if profile.c4:
        c4 = c4_clean(view, profile.c4)
        ann["quality.c4_lines_removed"] = str(c4.lines_removed)
        ann["quality.c4_sentences"] = str(c4.sentences)
        if c4.reason:
            return row, c4.reason
        row = {**row, "text": c4.text}
    return row, None


def assess(row: Row, cfg: QualityConfig) -> tuple[Row, str | None]:
    """Annotate scores, then decide: (row, None) keeps, (row, reason) rejects."""
    text = row["text"] or ""
    if not text.strip():
        return row, "quality_empty_text"
    profile = cfg.profiles.get(row["source_type"]) or cfg.profiles.get("web") or SourceProfile()
    ann = dict(row.get("annotations") or {})
    if cfg.classifier_model_path:
        score = float(_model(cfg.classifier_model_path, cfg.classifier_sha256).score(text))
        ann[SCORE] = f"{score:.6g}"
    row, reason = _language(row, text, profile, ann)
    if reason is None:
        row, reason = _rules(row, TextView(text), profile, ann)
    minimum = cfg.classifier_min_score
    if reason is None and minimum is not None and SCORE in ann and float(ann[SCORE]) < minimum:
        reason = f"classifier_score:{float(ann[SCORE]):.3f}"
    return {**row, "annotations": ann}, reason


def top_fraction_keep(n: int, fraction: float) -> int:
    """How many of a source's `n` scored documents `classifier_top_fraction` keeps: the best
    ceil(n * fraction), so a source with any scored document keeps at least one."""
    return min(n, math.ceil(n * fraction - 1e-9))


def assess_with(cfg: QualityConfig) -> Callable[[Row], tuple[Row, str | None]]:
    """`assess` bound to one config: the per-document rule the stage and `lmforge quality` apply."""
    return lambda row: assess(row, cfg)
