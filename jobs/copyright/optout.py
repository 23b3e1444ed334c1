"""Opt-outs and blocklists decided for one document: the copyright stage's first rule.

The signals were read where the raw page existed and kept in annotations: the crawler's
(`crawl.optout_signals`, `crawl.tdm_policy`; it already obeyed robots.txt at fetch time), the
archived response's headers (`warc.optout_signals`, `warc.tdm_policy`; jobs/readers/warc.py) and
the page's `<meta>` tags (`extract.optout_signals`, `extract.tdm_policy`; jobs/extract/html.py).
Signals are `noai`, `noimageai` (robots directives, DeviantArt 2022) and `tdm-reservation`
(W3C TDMRep Final Report 2024, sections 3.2-3.3). On top of them, for documents that did not come
from our crawler: a robots.txt cache (archived robots.txt responses, the WARC reader's
`warc_robots_txt` rejects, plus robots.txt texts from the registry), the user's opt-out registry
and the blocklists. Rules and reasons, in the order `decide` reports them:

- `blocklist_domain`, `blocklist_url`: the host or a parent domain is listed (label boundary:
  `ample.com` does not block `example.com`), or a configured regex finds the URL (`re.search`).
  Blocklists are not opt-outs: they apply whatever `honor_optouts` says.
- `optout_registry`: the host is the registry entry's domain or one of its subdomains.
- `optout_robots`: the robots.txt for the URL's origin disallows it for our product token (RFC
  9309 section 2.2; 4xx = allow all, section 2.3.1.3; 5xx = disallow all, section 2.3.1.4; no
  robots.txt known = allowed, nothing to go on). Only for documents from other crawls.
- `optout_noai`: a `noai` directive. `noimageai` alone does not opt text out (it is recorded).
- `optout_tdm_reserved`: a TDMRep reservation. TDMRep section 3 makes `tdm-policy` the way to a
  licence: a document whose declared policy URL is in `licensed_tdm_policies` (the user holds
  that licence) is kept with evidence `tdm_licensed:<url>`.

Opt-out registry file (`OptoutRegistry.load`): JSON lines, UTF-8, one object per line, blank
lines ignored::

    {"domain": "example.com", "opt_out": "ai", "note": "asked by email, 2024-05-01"}
    {"domain": "news.example.org", "opt_out": "all", "robots_txt": "User-agent: *\\nDisallow: /"}

`domain` (required): a host name; the entry covers it and its subdomains (the most specific
entry wins). `opt_out` (required): `all` (no use at all) or `ai` (no AI training / TDM); this
pipeline builds training data, so both drop the document, and the value is kept in the
evidence. `robots_txt` (optional): a robots.txt text applied to the domain's hosts as if fetched
(a site's current file, or one it sent). `note` (optional): free text. Other keys, other types, a
repeated domain, a line over 4 MiB or a file over 64 MiB are errors (ValueError naming
`path:line`): the file is hostile input like any other and is only ever parsed as JSON.

Blocklist file (`Blocklist.load_domains`): one domain per line, `#` starts a comment, blank lines
ignored; the UT1 (Université Toulouse 1 Capitole) and Shallalist `domains` files have this form.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobs.crawl.optout import ROBOTS_MAX_BYTES, RobotsRules, product_token

MAX_FILE_BYTES = 64 * 1024 * 1024  # a registry or blocklist file (UT1's largest list is ~40 MB)
MAX_REGISTRY_LINE_BYTES = 4 * 1024 * 1024  # a 500 KiB robots.txt escaped as JSON fits
MAX_DOMAIN_LINE_BYTES = 4096
ROBOTS_REJECT = "warc_robots_txt"  # the WARC reader's reject reason for archived robots.txt
OPT_OUTS = ("all", "ai")
_REGISTRY_KEYS = {"domain", "opt_out", "robots_txt", "note"}
_LABELS = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Where each stage's signals came from, for the evidence.
_WHERE = {
    ("warc", "noai"): "warc:x-robots-tag noai",
    ("warc", "noimageai"): "warc:x-robots-tag noimageai",
    ("warc", "tdm-reservation"): "warc:tdm-reservation header",
    ("extract", "noai"): "extract:meta noai",
    ("extract", "noimageai"): "extract:meta noimageai",
    ("extract", "tdm-reservation"): "extract:meta tdm-reservation",
}
_STAGES = ("crawl", "warc", "extract")


# ---------------------------------------------------------------- domains


def normalise_domain(name: str) -> str | None:
    """A host or domain as matched here: lower case, no trailing dot, IDNA (RFC 5891) A-labels;
    a leading `*.` or `.` (list styles for "and subdomains") is dropped. None when it is no host."""
    name = name.strip().lower().removeprefix("*.").strip(".")
    if not name or len(name) > 253:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if _is_ip(name):
        return name
    return name if _LABELS.fullmatch(name) else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def domain_suffixes(host: str) -> Iterator[str]:
    """The host, then each parent domain (`a.b.c` -> `a.b.c`, `b.c`, `c`): label boundaries only,
    so a list entry `ample.com` never covers `example.com`. An IP address only matches itself."""
    yield host
    if _is_ip(host):
        return
    while "." in host:
        host = host.split(".", 1)[1]
        if not _is_ip(host):  # `10.0.0.1` is no parent domain of `1.10.0.0.1`
            yield host


def _lookup(host: str, table: Collection[str]) -> str | None:
    """The most specific key of `table` that is the host or a parent domain of it."""
    return next((d for d in domain_suffixes(host) if d in table), None) if host else None


def url_host(url: str) -> str:
    """The URL's host, normalised as list entries are; "" when it has none."""
    try:
        name = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return normalise_domain(name) or ""


def origin_key(url: str) -> str | None:
    """`scheme://host[:port]` with the default port left out: the scope of one robots.txt (RFC 9309
    section 2.3: one file per protocol, host and port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, name = parts.scheme.lower(), normalise_domain(parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not name:
        return None
    return f"{scheme}://{name}" + (f":{port}" if port and port != _DEFAULT_PORTS[scheme] else "")


# ---------------------------------------------------------------- bounded files


def _lines(path: Path, max_line: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file read at most `max_line` bytes per line and
    MAX_FILE_BYTES in all, whatever its size claims (a FIFO, /dev/zero)."""
    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, over the {MAX_FILE_BYTES}-byte limit")
    total = 0
    with path.open("rb") as fh:
        for number in itertools.count(1):
            raw = fh.readline(max_line + 1)
            if not raw:
                return
            total += len(raw)
            if total > MAX_FILE_BYTES:
                raise ValueError(f"{path}:{number}: the file passes the {MAX_FILE_BYTES}-byte limit")
            if len(raw) > max_line:
                raise ValueError(f"{path}:{number}: line longer than {max_line} bytes")
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{number}: not UTF-8 ({err.reason})") from None


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class RegistryEntry:
    domain: str  # normalised; covers its subdomains
    opt_out: str  # "all" | "ai"
    robots_txt: str | None = None
    note: str | None = None

    @classmethod
    def from_json(cls, data: object) -> RegistryEntry:
        """One parsed line; raises ValueError saying what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if unknown := set(data) - _REGISTRY_KEYS:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected {sorted(_REGISTRY_KEYS)}")
        for key in _REGISTRY_KEYS:
            if key in data and not isinstance(data[key], str):
                raise ValueError(f"{key!r} must be a string, got {type(data[key]).__name__}")
        if "domain" not in data or "opt_out" not in data:
            raise ValueError("'domain' and 'opt_out' are required")
        domain = normalise_domain(data["domain"])
        if not domain:
            raise ValueError(f"'domain' is not a host name: {str(data.get('domain'))[:100]!r}")
        if data.get("opt_out") not in OPT_OUTS:
            raise ValueError(
                f"'opt_out' must be one of {list(OPT_OUTS)}, got {str(data.get('opt_out'))[:50]!r}"
            )
        return cls(domain, data["opt_out"], data.get("robots_txt"), data.get("note"))


@dataclass
class OptoutRegistry:
    """Domains whose owners opted out, as the user recorded them (format: the module docstring)."""

    entries: dict[str, RegistryEntry] = field(default_factory=dict)  # domain -> entry

    @classmethod
    def load(cls, path: str | Path) -> OptoutRegistry:
        """Parse a registry file; ValueError `path:line: why` on the first bad line."""
        path, registry = Path(path), cls()
        for number, line in _lines(path, MAX_REGISTRY_LINE_BYTES):
            if not line.strip():
                continue
            try:
                registry.add(RegistryEntry.from_json(json.loads(line)))
            except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
                raise ValueError(f"{path}:{number}: {str(err)[:300]}") from None
        return registry

    def add(self, entry: RegistryEntry) -> None:
        if entry.domain in self.entries:
            raise ValueError(f"domain {entry.domain!r} is listed twice")
        self.entries[entry.domain] = entry

    def match(self, host: str) -> RegistryEntry | None:
        """The most specific entry covering the host (itself or a parent domain)."""
        found = _lookup(normalise_domain(host) or "", self.entries)
        return self.entries[found] if found else None


# ---------------------------------------------------------------- robots.txt


@dataclass
class _RobotsFile:
    status: int
    body: bytes
    source: str  # "archive:<origin>" or "registry:<domain>"
    fetched_at: datetime | None = None
    parsed: dict[str, RobotsRules] = field(default_factory=dict)  # product token -> its group

    def rules(self, user_agent: str) -> RobotsRules:
        token = product_token(user_agent)
        if token not in self.parsed:
            self.parsed[token] = RobotsRules.from_response(self.status, self.body, user_agent)
        return self.parsed[token]


@dataclass
class RobotsCache:
    """robots.txt files known without fetching: archived responses by origin, registry texts by
    domain. Parsed lazily, once per product token."""

    archived: dict[str, _RobotsFile] = field(default_factory=dict)  # origin -> file
    supplied: dict[str, _RobotsFile] = field(default_factory=dict)  # registry domain -> file

    @classmethod
    def build(
        cls, records: Iterable[tuple[str, int, str | bytes]] = (), registry: OptoutRegistry | None = None
    ) -> RobotsCache:
        """From (robots.txt URL or origin, HTTP status, body) triples and the registry's texts."""
        cache = cls()
        for url, status, body in records:
            cache.add_archived(url, status, body)
        for entry in registry.entries.values() if registry else ():
            if entry.robots_txt is not None:
                cache.supplied[entry.domain] = _RobotsFile(
                    200, entry.robots_txt.encode("utf-8")[:ROBOTS_MAX_BYTES], f"registry:{entry.domain}"
                )
        return cache

    @classmethod
    def from_rows(
        cls, rows: Iterable[Mapping[str, Any]], registry: OptoutRegistry | None = None
    ) -> RobotsCache:
        """From the WARC reader's rejected rows; rows of other reasons are skipped."""
        return cls.build(filter(None, map(robots_record, rows)), registry)

    def add_archived(
        self, url: str, status: int, body: str | bytes, fetched_at: datetime | None = None
    ) -> bool:
        """Keep one archived answer per origin, the latest fetched (first added on a tie or
        without dates). 1xx/3xx answers are skipped: RFC 9309 section 2.3.1.2 says to follow a
        redirect, whose target is archived (if at all) as its own record. True when kept."""
        key = origin_key(url)
        if key is None or not (200 <= status < 300 or 400 <= status < 600):
            return False
        data = body.encode("utf-8") if isinstance(body, str) else body
        old = self.archived.get(key)
        if old and (fetched_at is None or old.fetched_at is None or fetched_at <= old.fetched_at):
            return False
        self.archived[key] = _RobotsFile(status, data[:ROBOTS_MAX_BYTES], f"archive:{key}", fetched_at)
        return True

    def check(self, url: str, user_agent: str) -> str | None:
        """Why robots.txt forbids `url` to `user_agent` (`robots_disallowed <source>`, or
        `robots_unreachable:<status> <source>` for a 5xx), else None: allowed, or no robots.txt
        known (RFC 9309 section 2.3.1.3: an unavailable file allows all)."""
        files = []
        if (key := origin_key(url)) and key in self.archived:
            files.append(self.archived[key])
        if domain := _lookup(url_host(url), self.supplied):
            files.append(self.supplied[domain])
        for robots in files:
            rules = robots.rules(user_agent)
            if not rules.allowed(url):
                what = rules.reason if rules.disallow_all else "robots_disallowed"
                return f"{what} {robots.source}"
        return None

    def __len__(self) -> int:
        return len(self.archived) + len(self.supplied)


def robots_record(row: Mapping[str, Any], reason: str | None = None) -> tuple[str, int, str] | None:
    """(URL, status, body) of an archived robots.txt: a row the WARC reader rejected `warc_robots_txt`
    (`reason`, else the row's `reject_reason`); None for any other row or a missing status."""
    if (reason or row.get("reject_reason")) != ROBOTS_REJECT:
        return None
    status = dict(row.get("annotations") or {}).get("warc.http_status", "")
    if not status.isdigit():
        return None
    return row.get("origin") or "", int(status), row.get("text") or ""


# ---------------------------------------------------------------- blocklist


@dataclass(init=False)
class Blocklist:
    """Domains (with their subdomains) and URL regexes the user never wants. The regexes are
    configuration, not input: compiled once and trusted."""

    domains: frozenset[str] = frozenset()
    url_patterns: tuple[re.Pattern[str], ...] = ()

    def __init__(
        self, domains: Iterable[str] = (), url_patterns: Iterable[str | re.Pattern[str]] = ()
    ) -> None:
        self.domains = frozenset(d for d in map(normalise_domain, domains) if d)
        self.url_patterns = tuple(re.compile(p) for p in url_patterns)

    @staticmethod
    def load_domains(path: str | Path) -> frozenset[str]:
        """The domains of a list file (format: the module docstring); ValueError `path:line: why`."""
        path, found = Path(path), set()
        for number, line in _lines(path, MAX_DOMAIN_LINE_BYTES):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            domain = normalise_domain(text)
            if domain is None:
                raise ValueError(f"{path}:{number}: not a domain: {text[:100]!r}")
            found.add(domain)
        return frozenset(found)

    def with_domains_file(self, path: str | Path) -> Blocklist:
        """This blocklist plus the domains of a list file."""
        return Blocklist(self.domains | self.load_domains(path), self.url_patterns)

    def check(self, url: str, host: str = "") -> tuple[str, str] | None:
        """(`blocklist_domain` | `blocklist_url`, evidence) for a blocked URL, else None; `host`
        stands in when the URL has none (a WET record named by file and offset)."""
        if domain := _lookup(url_host(url) or normalise_domain(host) or "", self.domains):
            return "blocklist_domain", f"blocklist:{domain}"
        if pattern := next((p for p in self.url_patterns if p.search(url)), None):
            return "blocklist_url", f"blocklist:pattern {pattern.pattern}"
        return None


# ---------------------------------------------------------------- the decision


def from_our_crawler(row: Mapping[str, Any]) -> bool:
    """Fetched by jobs/crawl (its `crawl.*` annotations), which applied robots.txt when fetching."""
    return any(key.startswith("crawl.") for key in dict(row.get("annotations") or {}))


def _signals(ann: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """(signal, where it was read) for every stage's `<stage>.optout_signals`."""
    for stage in _STAGES:
        for signal in (ann.get(f"{stage}.optout_signals") or "").split(","):
            if signal := signal.strip():
                yield signal, _WHERE.get((stage, signal), f"{stage}:{signal}")


def _tdm(ann: Mapping[str, str], where: list[str], licensed: frozenset[str]) -> tuple[str, str]:
    """A TDMRep reservation: licensed when a declared `tdm-policy` is one the user holds."""
    policies = [p for stage in _STAGES if (p := ann.get(f"{stage}.tdm_policy"))]
    if held := next((p for p in policies if p in licensed), None):
        return "", f"tdm_licensed:{held}"
    evidence = ",".join(where) + (f" policy={policies[0]}" if policies else "")
    return "optout_tdm_reserved", evidence


def optout_findings(
    row: Mapping[str, Any],
    *,
    user_agent: str,
    robots: RobotsCache | None,
    registry: OptoutRegistry | None,
    licensed_tdm_policies: frozenset[str],
) -> list[tuple[str, str]]:
    """Every opt-out that applies to the row as (reason, evidence), in decision order; a reason ""
    is evidence of a signal that does not opt out (noimageai, a licensed reservation)."""
    ann, url = dict(row.get("annotations") or {}), row.get("origin") or ""
    host = url_host(url) or normalise_domain(row.get("domain") or "") or ""
    found: list[tuple[str, str]] = []
    if registry and (entry := registry.match(host)):
        found.append(("optout_registry", f"registry:{entry.domain} opt_out={entry.opt_out}"))
    if robots and not from_our_crawler(row) and (why := robots.check(url, user_agent)):
        found.append(("optout_robots", f"robots:{why}"))
    signals = list(_signals(ann))
    found += [("optout_noai", where) for signal, where in signals if signal == "noai"]
    if reserved := [where for signal, where in signals if signal == "tdm-reservation"]:
        found.append(_tdm(ann, reserved, licensed_tdm_policies))
    found += [("", where) for signal, where in signals if signal == "noimageai"]
    return found


def decide(
    row: Mapping[str, Any],
    *,
    user_agent: str,
    robots: RobotsCache | None,
    registry: OptoutRegistry | None,
    blocklist: Blocklist | None,
    honor_optouts: bool,
    licensed_tdm_policies: frozenset[str],
) -> tuple[str | None, str]:
    """(reason to drop, or None to keep; evidence) for one document.

    Evidence lists every finding as `reason=where` (`; `-separated, a bare `where` for signals that
    do not opt out); with `honor_optouts` off the opt-outs are recorded, prefixed
    `optouts_not_honoured`, and only a blocklist drops the document.
    """
    blocked = blocklist.check(row.get("origin") or "", row.get("domain") or "") if blocklist else None
    findings = optout_findings(
        row,
        user_agent=user_agent,
        robots=robots,
        registry=registry,
        licensed_tdm_policies=licensed_tdm_policies,
    )
    items = [
        f"{reason}={where}" if reason else where
        for reason, where in [*([blocked] if blocked else []), *findings]
    ]
    optout = next((reason for reason, _ in findings if reason), None)
    if optout and not honor_optouts:
        items.insert(0, "optouts_not_honoured")
    reason = blocked[0] if blocked else (optout if honor_optouts else None)
    return reason, "; ".join(items)
