"""C4-style removal of lines repeated across the corpus (an optional step of the dedup stage), as
plain rules; the Spark mapping is jobs/spark/line_dedup.py.

Source: Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", section 2.2 (C4 keeps one copy of each repeated span; its tfds implementation,
`c4_utils.remove_duplicate_text`, works on lines); Wenzek et al. (2020), CCNet, section 3.1, and
Soldaini et al. (2024), Dolma, remove repeated paragraphs (newline-separated) the same way.

A line takes part when its normalised form (`dedup_exact.normalize`: NFKC, case-fold, collapsed
whitespace) has at least `line_min_chars` characters (`line_key`). Of each set of equal lines the
first by (document id, line number) stays (`survivor`), so the result does not depend on input
order or partitioning, and a line repeated inside one document keeps its first place. A document
whose every taking-part line was removed is rejected with its text unchanged (`cut_lines`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from jobs.dedup.exact import normalize

REASON = "repeated_lines"
ANNOTATION = "dedup.lines_removed"
_KEY_BYTES = 16  # a 2**-64 collision chance at 4e9 distinct lines; a quarter of a hex sha256 to shuffle

Row = dict[str, Any]
Place = tuple[str, int]  # (document id, line number from 0)
KeyedLine = tuple[str, int, bytes]  # (document id, line number, key)


def line_key(line: str, min_chars: int) -> bytes | None:
    """The line's dedup key, or None when its normalised form is too short ever to be removed."""
    norm = normalize(line)
    if len(norm) < min_chars:
        return None
    return hashlib.sha256(norm.encode()).digest()[:_KEY_BYTES]


def split_lines(text: str) -> list[str]:
    """Split on "\\n" only, keeping empty lines, so joining with "\\n" gives the text back."""
    return text.split("\n")


def keyed_lines(doc_id: str, text: str | None, min_chars: int) -> Iterator[KeyedLine]:
    """(id, line number, key) for each line of one document long enough to take part."""
    for pos, line in enumerate(split_lines(text) if text is not None else []):
        key = line_key(line, min_chars)
        if key is not None:
            yield doc_id, pos, key


def survivor(places: Iterable[Place]) -> Place:
    """The occurrence of a repeated line that stays: the first by (document id, line number)."""
    return min(places)


def takes_part(row: Row, sources: Collection[str]) -> bool:
    """Only open documents (not rejected, e.g. as exact duplicates) of the configured sources."""
    return row.get("reject_reason") is None and row.get("source_type") in sources


def removals(keyed: Iterable[KeyedLine]) -> dict[str, tuple[list[int], int]]:
    """Per document with a taking-part line: (line numbers removed, lines that took part)."""
    places: dict[bytes, list[Place]] = {}
    compared: dict[str, int] = {}
    for doc_id, pos, key in keyed:
        places.setdefault(key, []).append((doc_id, pos))
        compared[doc_id] = compared.get(doc_id, 0) + 1
    removed: dict[str, list[int]] = {doc_id: [] for doc_id in compared}
    for group in places.values():
        first = survivor(group)
        for doc_id, pos in group:
            if (doc_id, pos) != first:
                removed[doc_id].append(pos)
    return {doc_id: (sorted(removed[doc_id]), n) for doc_id, n in compared.items()}


def cut_lines(text: str | None, removed: Collection[int], compared: int) -> tuple[str | None, bool]:
    """(text without the removed lines, emptied). Emptied: every line that took part was removed
    (only short lines are left), so the document is rejected and keeps its original text."""
    emptied = 0 < len(removed) == compared
    if text is None or not removed or emptied:
        return text, emptied
    drop = set(removed)
    return "\n".join(line for pos, line in enumerate(split_lines(text)) if pos not in drop), False


def remove_repeated_lines(rows: Iterable[Row], min_chars: int, sources: Collection[str]) -> list[Row]:
    """The whole step over rows with reject columns (after exact dedup): the single-process form of
    the decision, which the Spark mapping must equal. Rows not taking part pass unchanged."""
    rows = list(rows)
    keyed = (k for r in rows if takes_part(r, sources) for k in keyed_lines(r["id"], r["text"], min_chars))
    found = removals(keyed)
    out = []
    for row in rows:
        if not takes_part(row, sources):
            out.append(row)
            continue
        removed, compared = found.get(row["id"], ([], 0))
        text, emptied = cut_lines(row["text"], removed, compared)
        ann = {**(row.get("annotations") or {}), ANNOTATION: str(len(removed))}
        row = {**row, "text": text, "annotations": ann}
        if emptied:
            row.update(reject_stage="dedup", reject_reason=REASON)
        out.append(row)
    return out
