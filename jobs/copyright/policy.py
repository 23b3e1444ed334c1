"""The licence policy: every SPDX expression falls in one class, and each class, per source type, is
kept, dropped or kept with a flag. The near-dedup keeper ranks licences by the same class order
(jobs/dedup/near.py `license_rank`), so there is one ranking, not two.

Classes come from ScanCode's licence categories (licensedcode data, `category` of each licence;
ScanCode LicenseDB documentation, "License categories"):

    Public Domain                          -> public_domain
    Permissive                             -> permissive
    Copyleft Limited                       -> weak_copyleft   (LGPL, MPL, EPL, CC-BY-SA)
    Copyleft                               -> strong_copyleft (GPL, AGPL)
    Free Restricted, Source-available      -> nc_nd           (CC-BY-NC*, CC-BY-ND*, BUSL)
    Proprietary Free, Commercial, Patent License, CLA -> proprietary
    Unstated License, or no licence found  -> unknown

Expressions follow SPDX's precedence (spdx-spec v2.3 annex D.4: WITH binds tighter than AND, AND
tighter than OR). `A OR B` is the user's choice, so the less restrictive class; `A AND B` must honour
both, so the more restrictive; `GPL-2.0-or-later WITH Classpath-exception-2.0` is weak copyleft (the
exception's own category: linking no longer spreads the licence).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from core.copyright_policy import CLASS_ORDER, LicenseClass

_CATEGORY: dict[str, LicenseClass] = {
    "public domain": "public_domain",
    "permissive": "permissive",
    "copyleft limited": "weak_copyleft",
    "copyleft": "strong_copyleft",
    "free restricted": "nc_nd",
    "source-available": "nc_nd",
    "proprietary free": "proprietary",
    "commercial": "proprietary",
    "patent license": "proprietary",
    "cla": "proprietary",
    "unstated license": "unknown",
}
# Ids outside ScanCode's SPDX keys that the connectors write (papers.py: "no copyright").
_EXTRA: dict[str, LicenseClass] = {"licenseref-public-domain": "public_domain"}
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
# Papers' "Creative Commons Attribution License" names no version: jobs/readers/connectors/papers.py
# records the family (`CC-BY`, `CC-BY-NC-SA`); every version of a family has the same class.
_CC_FAMILY = re.compile(r"cc-by(?:-nc)?(?:-nd|-sa)?")


@functools.cache
def categories() -> dict[str, LicenseClass]:
    """Lower-case SPDX id (current and deprecated spellings) -> class, from ScanCode's licence files."""
    from jobs.copyright.licenses import _front_matter, database_root

    out: dict[str, LicenseClass] = dict(_EXTRA)
    for path in sorted((database_root() / "licenses").glob("*.LICENSE")):
        fields, _ = _front_matter(path)
        spdx, category = fields.get("spdx_license_key"), fields.get("category")
        if not isinstance(spdx, str) or not spdx or not isinstance(category, str):
            continue
        cls = _CATEGORY.get(category.lower(), "unknown")
        others = fields.get("other_spdx_license_keys", [])
        for key in [spdx, *(others if isinstance(others, list) else [])]:
            out.setdefault(key.lower(), cls)
    return out


@functools.cache
def _names() -> dict[str, str]:
    """Normalised licence name -> SPDX id, from the `name`, `short_name` and SPDX id of ScanCode's
    SPDX-listed licences; a name two licences share is left out (ambiguous is unknown)."""
    from jobs.copyright.licenses import _front_matter, database_root

    found: dict[str, set[str]] = {}
    for path in sorted((database_root() / "licenses").glob("*.LICENSE")):
        fields, _ = _front_matter(path)
        spdx = fields.get("spdx_license_key")
        if not isinstance(spdx, str) or not spdx or spdx.startswith("LicenseRef-"):
            continue
        if fields.get("is_deprecated") == "yes":
            continue
        for value in (fields.get("name"), fields.get("short_name"), spdx):
            if isinstance(value, str) and value:
                found.setdefault(_name_key(value), set()).add(spdx)
    return {name: next(iter(ids)) for name, ids in found.items() if len(ids) == 1}


def _name_key(name: str) -> str:
    words = re.findall(r"[a-z0-9]+", name.lower().replace("licence", "license"))
    return " ".join(w for w in words if w not in ("the", "version", "v"))


def spdx_from_name(declared: str) -> str | None:
    """An SPDX expression for a licence given by name, as package metadata often does ("Apache
    License 2.0", "MIT License", "MIT or Apache License 2.0"); None unless every part is known."""
    parts = re.split(r"\s+-?or-?\s+", declared.strip(), flags=re.I)
    ids = [_names().get(_name_key(part)) for part in parts]
    if not parts or None in ids:
        return None
    return " OR ".join(dict.fromkeys(i for i in ids if i))


def classify(expression: str | None) -> LicenseClass:
    """The class of an SPDX expression; None, empty or unparsable is `unknown`."""
    if not expression or not expression.strip():
        return "unknown"
    tokens = _TOKEN.findall(expression)
    try:
        cls, end = _or(tokens, 0)
    except (IndexError, ValueError):
        return "unknown"
    return cls if end == len(tokens) else "unknown"


def rank(expression: str | None) -> int:
    """The keeper's preference: 0 for public domain ... 6 for unknown (CLASS_ORDER)."""
    return CLASS_ORDER.index(classify(expression))


def _or(tokens: list[str], i: int) -> tuple[LicenseClass, int]:
    """`A OR B`: the user may choose, so the less restrictive class."""
    return _chain(tokens, i, "OR", _and, min)


def _and(tokens: list[str], i: int) -> tuple[LicenseClass, int]:
    """`A AND B`: both bind, so the more restrictive class."""
    return _chain(tokens, i, "AND", _with, max)


def _chain(
    tokens: list[str], i: int, operator: str, operand: Callable[[list[str], int], tuple[LicenseClass, int]],
    pick: Callable[..., LicenseClass],
) -> tuple[LicenseClass, int]:  # fmt: skip
    cls, i = operand(tokens, i)
    while i < len(tokens) and tokens[i].upper() == operator:
        other, i = operand(tokens, i + 1)
        cls = pick(cls, other, key=CLASS_ORDER.index)
    return cls, i


def _with(tokens: list[str], i: int) -> tuple[LicenseClass, int]:
    if tokens[i] == "(":
        cls, i = _or(tokens, i + 1)
        if tokens[i] != ")":
            raise ValueError("unbalanced parenthesis")
        return cls, i + 1
    if tokens[i] in (")",) or tokens[i].upper() in ("AND", "OR", "WITH"):
        raise ValueError(f"unexpected {tokens[i]!r}")
    cls = _of_id(tokens[i])
    i += 1
    if i < len(tokens) and tokens[i].upper() == "WITH":
        exception = _of_id(tokens[i + 1])
        if cls == "strong_copyleft" and exception in ("weak_copyleft", "permissive", "public_domain"):
            cls = "weak_copyleft"
        i += 2
    return cls, i


def _of_id(token: str) -> LicenseClass:
    low = token.lower()
    table = categories()
    if low in table:
        return table[low]
    if low.endswith("+") and low[:-1] in table:  # `GPL-2.0+`: the same class as its base
        return table[low[:-1]]
    if _CC_FAMILY.fullmatch(low):  # a Creative Commons family named without its version
        return (
            "nc_nd" if ("-nc" in low or "-nd" in low) else "weak_copyleft" if "-sa" in low else "permissive"
        )
    return "unknown"
