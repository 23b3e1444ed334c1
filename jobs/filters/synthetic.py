"""Synthetic documents are judged by their generator's own verification, not by prose rules: the
connector (jobs/readers/connectors/synthetic.py) executes a Python exercise's tests and writes
`synthetic.verified`; an arithmetic problem is right by construction, and its `synthetic.answer` must
be the answer the text states. Anything else is unverified.
"""

from __future__ import annotations

from typing import Any

from core.config import SyntheticRules


def synthetic_reason(text: str, annotations: dict[str, Any], rules: SyntheticRules) -> str | None:
    """None keeps; `synthetic_unverified:<why>` otherwise."""
    if not rules.require_verified:
        return None
    verified = annotations.get("synthetic.verified")
    if verified == "true":
        return None
    if verified is not None:
        return f"synthetic_unverified:{annotations.get('synthetic.failure') or verified}"
    answer = annotations.get("synthetic.answer")
    if answer is None:
        return "synthetic_unverified:missing"
    return None if f"Answer: {answer}" in text else "synthetic_unverified:answer_mismatch"
