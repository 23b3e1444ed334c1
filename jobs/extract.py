"""HTML to text with trafilatura; documents that are already text pass through unchanged.

trafilatura (Barbaresi 2021, ACL demo) is the main-content extractor FineWeb and others use; when it
finds no main content we fall back to its plain `html2txt` and record which method produced the
text, so a later stage can judge.
"""

from __future__ import annotations

from typing import Any


def html_to_text(html: str) -> tuple[str, str]:
    """(text, method). Never raises on broken markup: bad HTML yields less text, not a crash."""
    import trafilatura

    try:
        text = trafilatura.extract(html, favor_recall=True, include_comments=False, deduplicate=False)
    except Exception:  # trafilatura/lxml errors on hostile markup: fall back, don't drop
        text = None
    if text and text.strip():
        return text, "trafilatura"
    return (trafilatura.html2txt(html) or "").strip(), "html2txt"


def extract_row(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    raw = row.get("raw_content")
    if raw is None:
        return row, None
    text, method = html_to_text(raw)
    ann = {**(row.get("annotations") or {}), "extract.method": method, "extract.raw_bytes": str(len(raw))}
    out = {**row, "text": text, "raw_content": None, "annotations": ann}
    return out, None if text else "extract_no_text"
