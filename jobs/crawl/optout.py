"""Machine-readable signals a site uses to limit crawling and AI use, parsed into plain answers.

robots.txt (RFC 9309), the `noai`/`noimageai` robots directives and the W3C TDM Reservation
Protocol (TDMRep). Pure functions over bodies and headers: the fetcher makes the requests, so
these rules are testable without a network.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 section 2.5: parse at least the first 500 KiB
AI_DIRECTIVES = ("noai", "noimageai")
# Robots directives that carry a value after ':' (Google's robots meta documentation); any other
# `name:` in an X-Robots-Tag value is a user-agent prefix scoping the directives that follow.
_VALUED = {"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"}
_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


def product_token(user_agent: str) -> str:
    """`LMForgeBot/0.1 (+url)` -> `lmforgebot`: the name robots rules match (RFC 9309 section 2.2.1)."""
    return re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0].lower()


def _normalise(path: str) -> str:
    """RFC 9309 section 2.2.2: decode %-escaped unreserved octets, escape non-ASCII, upper-case hex."""

    def fix(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if re.fullmatch(r"[A-Za-z0-9\-._~]", char) else f"%{m.group(1).upper()}"

    return _UNRESERVED.sub(fix, quote(path, safe="/?&=:;@!$'()*+,%#[]~-._"))


@dataclass(frozen=True)
class PathPattern:
    """A robots.txt path pattern: a prefix where `*` is any run and a final `$` anchors the end.

    Source: RFC 9309 section 2.2.3; TDMRep reuses the same syntax for its `location` patterns.
    Matched without a regex: `*` as `.*` backtracks, so `/a*a*...*b` against a long path of `a`s
    costs O(n^k) for k stars (minutes per URL). A glob whose only wildcard is `*` matches iff its
    literal pieces occur in order, so taking the leftmost occurrence of each piece (greedy, left
    to right, `str.find`) is exact and costs at most O(len(path) x len(pattern)); with `$` the
    last piece must end the path instead. Google's open-source parser (google/robotstxt) also
    matches without a regex.
    """

    pieces: tuple[str, ...]  # the normalised literal runs between `*`s
    anchored: bool  # a final `$`: the match must reach the end of the path

    def match(self, path: str) -> bool:
        """Does the pattern match a prefix of `path` (the whole of it when anchored)?"""
        first, *middle = self.pieces
        if not path.startswith(first):
            return False
        if not middle:
            return not self.anchored or len(path) == len(first)
        *middle, last = middle
        pos = len(first)
        for piece in middle:
            found = path.find(piece, pos)
            if found < 0:
                return False
            pos = found + len(piece)
        if self.anchored:
            return len(path) - len(last) >= pos and path.endswith(last)
        return path.find(last, pos) >= 0


def path_pattern(pattern: str) -> PathPattern:
    """Parse a robots.txt/TDMRep path pattern (RFC 9309 section 2.2.3), normalised as paths are."""
    anchored = pattern.endswith("$")
    body = _normalise(pattern[:-1] if anchored else pattern)
    return PathPattern(tuple(body.split("*")), anchored)


def _url_path(url: str) -> str:
    parts = urlsplit(url)
    return _normalise((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))


@dataclass
class RobotsRules:
    """The group of a robots.txt that applies to one crawler, with RFC 9309 status semantics."""

    rules: list[tuple[int, bool, PathPattern]] = field(default_factory=list)  # (length, allow, pattern)
    crawl_delay: float | None = None
    disallow_all: bool = False
    reason: str = "robots_txt"

    @classmethod
    def from_response(
        cls, status: int, body: bytes, user_agent: str, error: str | None = None
    ) -> RobotsRules:
        """RFC 9309 section 2.3.1: 2xx parse; 4xx => no rules; 5xx or unreachable => disallow all.

        A 429 that outlived its retries counts as unreachable (the server asked us to back off).
        """
        if error or not status or status == 429 or status >= 500:
            return cls(disallow_all=True, reason=f"robots_unreachable:{error or status}")
        if status >= 400:
            return cls(reason=f"robots_{status}")
        # utf-8-sig: a leading byte order mark is not part of the first record (RFC 9309 section 2.2
        # says UTF-8; Google's parser skips a BOM), or a file that disallows everything is ignored.
        return parse_robots(body[:ROBOTS_MAX_BYTES].decode("utf-8-sig", "replace"), user_agent)

    def allowed(self, url: str) -> bool:
        """Longest matching rule wins; on a tie allow wins (RFC 9309 section 2.2.2)."""
        path = _url_path(url)
        if self.disallow_all:
            return False
        if path == "/robots.txt":
            return True  # implicitly allowed, section 2.2.2
        best = max(((n, allow) for n, allow, pattern in self.rules if pattern.match(path)), default=(0, True))
        return best[1]


def parse_robots(text: str, user_agent: str) -> RobotsRules:
    """Group selection by case-insensitive product token, groups for it merged, else `*`.

    Source: RFC 9309 section 2.2.1. `Crawl-delay` is a non-standard record that section 2.2.4
    lets crawlers interpret; we read it from the selected group(s).
    """
    groups: list[tuple[set[str], list[tuple[str, str]]]] = []
    in_agents = False
    for raw in text.removeprefix("\ufeff").splitlines():
        key, sep, value = raw.split("#", 1)[0].partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep:
            continue
        if key == "user-agent":
            if not in_agents:
                groups.append((set(), []))
            groups[-1][0].add(product_token(value) if value != "*" else "*")
            in_agents = True
        elif groups:
            in_agents = False
            groups[-1][1].append((key, value))
    me = product_token(user_agent)
    chosen = [lines for agents, lines in groups if me in agents] or [
        lines for agents, lines in groups if "*" in agents
    ]
    out = RobotsRules()
    for key, value in (line for lines in chosen for line in lines):
        if key in ("allow", "disallow") and value:
            out.rules.append((len(_normalise(value.rstrip("$"))), key == "allow", path_pattern(value)))
        elif key == "crawl-delay":
            with contextlib.suppress(ValueError):
                out.crawl_delay = max(out.crawl_delay or 0.0, float(value))
    return out


def robots_directives(value: str, user_agent: str) -> set[str]:
    """Directives in an `X-Robots-Tag` value or robots `<meta>` content that apply to us.

    `X-Robots-Tag: otherbot: noai` scopes `noai` to otherbot (Google's robots meta documentation).
    """
    me, scope, out = product_token(user_agent), None, set()
    for item in value.split(","):
        name, sep, rest = item.partition(":")
        name = name.strip().lower()
        if sep and name not in _VALUED:  # a user-agent prefix; the rest is its first directive
            scope, name = name, rest.strip().lower()
        if scope in (None, "*", me) and name:
            out.add(name.split(":")[0].strip())
    return out


def page_signals(headers: list[tuple[str, str]], metas: list[tuple[str, str]], user_agent: str) -> set[str]:
    """AI opt-out signals of one response: `noai`/`noimageai` and a TDMRep reservation.

    noai/noimageai: robots directives introduced by DeviantArt (2022), read from the robots meta
    tag (or the one named after our product token) and the X-Robots-Tag header. TDMRep (W3C
    Community Group Final Report, 2024, sections 3.2 and 3.3): `tdm-reservation: 1` as an HTTP
    header or `<meta name="tdm-reservation" content="1">`; other values mean unset.
    """
    me, found = product_token(user_agent), set()
    for name, value in headers:
        lname = name.lower()
        if lname == "x-robots-tag":
            found |= robots_directives(value, user_agent) & set(AI_DIRECTIVES)
        elif lname == "tdm-reservation" and value.strip() == "1":
            found.add("tdm-reservation")
    for name, content in metas:
        if name in ("robots", me):
            found |= {d.strip().lower() for d in content.split(",")} & set(AI_DIRECTIVES)
        elif name == "tdm-reservation" and content.strip() == "1":
            found.add("tdm-reservation")
    return found


def tdm_policy(headers: list[tuple[str, str]], metas: list[tuple[str, str]]) -> str | None:
    """The `tdm-policy` URL a response declares (header first, then meta), TDMRep sections 3.2-3.3."""
    for name, value in [*headers, *metas]:
        if name.lower() == "tdm-policy" and value.strip():
            return value.strip()
    return None


MAX_URL_CHARS = 8000  # RFC 9110 section 4.1 asks for at least 8000 octets; longer is not a usable URL


def bounded_url(value: str | None) -> str | None:
    """A URL taken from a hostile page or header (a policy, a licence), or None when it is longer
    than any client is required to handle: dropped, not cut, as a cut URL names another resource."""
    value = (value or "").strip()
    return value if value and len(value) <= MAX_URL_CHARS else None


def optout_decision(signals: set[str]) -> str | None:
    """The decision for a page whose signals reserve it; `noimageai` alone does not (text is kept)."""
    if "tdm-reservation" in signals:
        return "optout_tdmrep"
    return "optout_noai" if "noai" in signals else None


@dataclass(frozen=True)
class TdmRule:
    pattern: PathPattern
    reserved: bool
    policy: str | None


def parse_tdmrep(body: bytes) -> list[TdmRule]:
    """`/.well-known/tdmrep.json`: a JSON array of {location, tdm-reservation 0|1, tdm-policy}.

    Source: TDMRep Final Report (2024) section 3.1. Rules with another reservation value are
    protocol errors and ignored (unset); a file that is not such an array declares nothing.
    """
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return []
    rules = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("location"), str):
            continue
        value = item.get("tdm-reservation")
        if value in (0, 1, "0", "1"):
            policy = item.get("tdm-policy") if isinstance(item.get("tdm-policy"), str) else None
            rules.append(TdmRule(path_pattern(item["location"]), str(value) == "1", policy))
    return rules


def tdmrep_match(rules: list[TdmRule], url: str) -> TdmRule | None:
    """The rule for a URL: the first in file order that matches (TDMRep section 3.1)."""
    path = _url_path(url)
    return next((r for r in rules if r.pattern.match(path)), None)
