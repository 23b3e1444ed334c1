"""Copyright notices: "Copyright (c) 2019-2021 Jane Doe", "© 2004 Free Software Foundation, Inc.",
"(C) 1998, 2001-2003 ACME Corp. All rights reserved." -> holder, years and the span.

One line at a time with regexes that have no nested quantifiers, so the cost is linear in the text.
The SPDX License Matching Guidelines (spdx-spec v2.3, annex B.9/B.10) treat `©`, `(c)` and
"Copyright" as equivalent markers of the notice; a notice runs to the end of its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_LINE = 400  # a notice is one line; a longer "line" (minified code) is cut here
_MARK = r"(?:copyright\b\.?(?:[ \t]*(?:\(c\)|©))?|©|\(c\)(?=[ \t]*(?:\d{4}|[A-Z])))"
_NOTICE = re.compile(rf"(?i){_MARK}[ \t:]*(?P<rest>[^\r\n]*)")
_YEARS = re.compile(r"^(?:(?:\d{4}(?:[ \t]*[-–][ \t]*(?:\d{4}|\d{2}|present))?)[ \t]*[,;/]?[ \t]*)+")
_YEAR_ITEM = re.compile(r"(\d{4})(?:[ \t]*[-–][ \t]*(\d{4}|\d{2}|present))?", re.I)
_RESERVED = re.compile(r"[,.;]?[ \t]*all rights reserved\.?", re.I)
_BY = re.compile(r"^(?:by|held by)[ \t]+", re.I)
_ABBREVIATION = re.compile(r"\b(?:Inc|Ltd|Corp|Co|Pty|L\.L\.C|S\.A|B\.V)\.$")
_TAIL = re.compile(r"[ \t]*(?:\*/|-->|#|\*)?[ \t]*$")


@dataclass(frozen=True)
class Notice:
    holder: str | None
    years: tuple[int, ...]  # every year named, ranges expanded (2019-2021 -> 2019, 2020, 2021)
    all_rights_reserved: bool
    start: int
    end: int

    def as_dict(self) -> dict[str, object]:
        return {**vars(self), "years": list(self.years)}


def notices(text: str) -> Iterator[Notice]:
    """Every copyright notice in `text`, in order."""
    for m in _NOTICE.finditer(text):
        rest = m.group("rest")[:MAX_LINE]
        notice = _parse(rest, m.start(), m.start("rest"))
        if notice is not None:
            yield notice


def _parse(rest: str, start: int, rest_start: int) -> Notice | None:
    rest = _TAIL.sub("", rest)
    years_match = _YEARS.match(rest)
    years = _expand(years_match.group(0)) if years_match else ()
    holder_text = rest[years_match.end() :] if years_match else rest
    reserved = _RESERVED.search(holder_text)
    if reserved:
        holder_text = holder_text[: reserved.start()]
    name = _BY.sub("", holder_text).strip(" \t,;:")
    holder = (name if _ABBREVIATION.search(name) else name.rstrip(". \t")) or None
    if not years and (holder is None or not holder[:1].isupper()):
        return None  # "copyright law", "the copyright holders": prose, not a notice
    if holder and (holder.lower().startswith(("notice", "holder", "owner", "law", "and ", "to "))):
        return None
    return Notice(holder, years, reserved is not None, start, rest_start + len(rest))


def _expand(years_text: str) -> tuple[int, ...]:
    years: list[int] = []
    for first, last in _YEAR_ITEM.findall(years_text):
        a = int(first)
        if not last or last.lower() == "present":
            years.append(a)
            continue
        b = int(last) if len(last) == 4 else a - a % 100 + int(last)
        years.extend(range(a, b + 1) if a <= b <= a + 100 else [a, b])
    return tuple(dict.fromkeys(years))
