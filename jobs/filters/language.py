"""Language ID for every document that carries natural language: py3langid (Lui & Baldwin 2012, a
model shipped in the package, nothing downloaded), through jobs/extract/html.py `detect_language`.
A document is rejected `language:<code>:<score>` when its language is not `allowed` or the top
probability is under `min_score` (FineWeb's 0.65: Penedo et al. 2024, section 3.2).
"""

from __future__ import annotations

from core.config import LanguageRules
from jobs.extract.html import detect_language


def language_reason(code: str | None, score: float, rules: LanguageRules) -> str | None:
    if rules.allowed and code not in rules.allowed:
        return f"language:{code or 'und'}:{score:.2f}"
    if score < rules.min_score:
        return f"language:{code or 'und'}:{score:.2f}"
    return None


def identify(text: str) -> tuple[str | None, float]:
    """(ISO 639 code or None, probability)."""
    return detect_language(text)
