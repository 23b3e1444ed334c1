"""Exact deduplication on normalised text, as plain rules (the Spark mapping is jobs/spark/dedup_exact.py).

Normalisation (Unicode NFKC, case-fold, collapsed whitespace) follows the exact-match stage of
Lee et al. (2022), "Deduplicating Training Data Makes Language Models Better", section 4.
Two passes (`PASSES`): rows grouped by normalised-text hash, then the rows still open grouped by
canonical URL. The keeper of each group is the smallest document id, so two runs keep the same
document whatever the input order or partitioning.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
# (annotation holding the group key, reject reason), in the order the passes run.
PASSES: tuple[tuple[str, str], ...] = (
    ("dedup.text_sha256", "exact_duplicate"),
    ("dedup.url", "exact_duplicate_url"),
)
KEEPER_ANNOTATION = "dedup.keeper_id"
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped: the form exact matches compare."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def normalized_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def annotate_hash(row: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ann = {**(row.get("annotations") or {}), "dedup.text_sha256": normalized_hash(row["text"] or "")}
    if row["source_type"] == "web" and (row.get("origin") or "").lower().startswith(("http://", "https://")):
        from jobs.web.urls import canonical_url

        ann["dedup.url"] = canonical_url(row["origin"])
    return {**row, "annotations": ann}, None


def group_key(row: Row, annotation: str) -> str | None:
    """The key `row` is grouped by in one pass, or None when it takes no part: already rejected
    (by this stage's earlier pass or upstream) or without that annotation (a URL only for web)."""
    if row.get("reject_reason") is not None:
        return None
    return (row.get("annotations") or {}).get(annotation)


def choose_keeper(ids: Iterable[str]) -> str:
    """The keeper of one group: the smallest id (string order), independent of input order."""
    return min(ids)


def mark_pass(rows: list[Row], annotation: str, reason: str) -> list[Row]:
    """One pass: in each group every row but the keeper gets `reason` and the keeper's id.

    When one id occurs twice in a group, one copy stays (the first here; the Spark mapping ranks
    with `row_number`, which keeps one of them too).
    """
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        key = group_key(row, annotation)
        if key is not None:
            groups.setdefault(key, []).append(i)
    out = list(rows)
    for members in groups.values():
        keeper = choose_keeper(rows[i]["id"] for i in members)
        stays = next(i for i in members if rows[i]["id"] == keeper)
        for i in members:
            if i == stays:
                continue
            row = rows[i]
            ann = {**(row.get("annotations") or {}), KEEPER_ANNOTATION: keeper}
            out[i] = {**row, "annotations": ann, "reject_stage": "dedup", "reject_reason": reason}
    return out


def mark_exact_duplicates(rows: Iterable[Row]) -> list[Row]:
    """Every pass of `PASSES` in order over rows carrying `annotate_hash`'s annotations: the
    single-process form of the stage's decision (the Spark mapping must give the same rows)."""
    out = [{"reject_stage": None, "reject_reason": None, **row} for row in rows]
    for annotation, reason in PASSES:
        out = mark_pass(out, annotation, reason)
    return out
