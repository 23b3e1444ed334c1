"""PII redaction for the `safety` stage: e-mail addresses, phone numbers, IP addresses, payment
cards, IBANs and secrets are replaced by typed placeholders and counted per type.

Placeholders: `<EMAIL>` `<PHONE>` `<IP_ADDRESS>` `<CARD>` `<IBAN>` `<SECRET>`. Validation is left to
maintained libraries (phonenumbers, python-stdnum, ipaddress, detect-secrets); the expressions here
only propose bounded candidates, so no input makes them backtrack for long.

Hard cases, decided:
- Every address in a mail header (From, To, Cc, Reply-To, Sender) is PII, list addresses included;
  Message-ID, In-Reply-To and References values are message identifiers, not addresses
  (RFC 5322 §3.6.4), and are kept.
- `user@localhost` (no dotted domain) is not an Internet address; `git@github.com:owner/repo` is an
  scp-style remote, not a mailbox, and is kept.
- Documentation addresses (example.com, RFC 5737 192.0.2.0/24, RFC 3849 2001:db8::/32) are
  redacted like any other: a model should not learn that they are special, and it is simpler.
- A dotted quad after `version`, `v`, `==`, `>=`, `__version__ =` or a `name-` prefix is a version
  string, not an IPv4 address. IPv6 needs three non-empty groups, so `::`, `::1`, `a::b` and times
  are kept. IP addresses inside URLs are redacted (the host is the identifying part).
- Phones, cards and IBANs are never taken from inside a word, an identifier or a URL; dates,
  times, decimals, ISBN-13s (and ISBN-10s after "ISBN") are not phones; an unformatted digit run
  is a phone only after a phone word ("tel", "call", …), as numbers in code are mostly not phones.
"""

from __future__ import annotations

import ipaddress
import json
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

from core.config import PiiConfig
from jobs.safety.pii_secrets import secret_spans

MAX_PHONE_CANDIDATES = 2000
PII_TYPES = ("email", "phone", "ip", "card", "iban", "secret")
PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ip": "<IP_ADDRESS>",
    "card": "<CARD>",
    "iban": "<IBAN>",
    "secret": "<SECRET>",
}
# When spans overlap, the earlier type wins: a secret can contain anything, a card number is
# checked more strictly than a phone number.
_PRIORITY = {"secret": 0, "email": 1, "iban": 2, "card": 3, "ip": 4, "phone": 5}

# A practical subset of the RFC 5322 §3.2.3 dot-atom local part (letters, digits, `_ % + -`): the
# rarer atext characters (`' = / { } | $ ...`) are code delimiters far more often than parts of
# an address, and `email='a@b.org'` must not swallow `email='`. Then a dotted host name (RFC 1035
# labels, alphabetic TLD).
_ATEXT = r"[A-Za-z0-9_%+-]"
_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])")
_MSGID_LINE = re.compile(r"(?im)^(?:message-id|in-reply-to|references|content-id)[ \t]*:[^\n]*")
# Twitter's handle syntax, as jobs/readers/connectors/social.py reads `social.mentions`.
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})\b")


@dataclass(frozen=True)
class Match:
    """One PII span of `text[start:end]`; `rule` names the detector that fired."""

    type: str
    start: int
    end: int
    rule: str


@dataclass
class Redaction:
    """The redacted text, counts per type, the spans (offsets in the original) and whether the
    document was longer than `max_chars` (the tail is kept unexamined)."""

    text: str
    counts: dict[str, int]
    matches: list[Match]
    truncated: bool


def email_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Addresses around each `@`: the local part is searched in the 64 characters before it
    (RFC 5321 §4.5.3.1.1 limit), the domain in the 255 after, so the cost per `@` is bounded."""
    skip = [m.span() for m in _MSGID_LINE.finditer(text)] if ":" in text else []
    for at in (m.start() for m in re.finditer("@", text)):
        left = _LOCAL.search(text, max(0, at - 64), at)
        right = _DOMAIN.match(text, at + 1, at + 256)
        if not left or not right or left.start() == at:
            continue
        start, end = left.start(), right.end()
        if text.startswith(":", end) and end + 1 < len(text) and not text[end + 1].isspace():
            continue  # git@host:path
        if not any(a <= start < b for a, b in skip):
            yield start, end, "rfc5322"


# --- URLs, network addresses, phones, cards and IBANs -------------------------------------------

# URLs (RFC 3986 schemes people write, and bare www. hosts), as spans phones/cards/IBANs stay out of.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{1,15}://|www\.)[^\s<>\"'`]{1,4096}")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\w)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\w)"
)
# A dotted number after these is a version, not an address or a phone (PEP 440 specifiers,
# `__version__`, `name-1.2.3.4`, Debian's "Standards-Version: 3.9.8.0", "bump to 4.6.2.0").
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:versions?|ver|release[ds]?|rel|rev|revision|build|policy|(?:bump|upgrade|update)[ds]?\s+to)\b"
    r"[^\n\d]{0,16}?|\bv\.?|[=<>!~]=|[<>]|__version__\s*=|\w-|\w_)\s*['\"]?$"
)
# Words that name a number as something other than a phone (a serial, an order, a ticket).
_NOT_PHONE_WORD = re.compile(
    r"(?i)\b(?:serial|s/n|order|invoice|ref|ticket|case|part|sku|id|[ugp]id|ports?|bug|closes|no\.|isbn)\W{0,6}$"
)
_ISO_DATE = re.compile(r"(?<!\d)(?:1[89]|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d)")
_GLUE = set("0123456789.-/_")
_TIME_BEFORE = re.compile(r"\d:\s*$")  # "22:37:04 -0800": a time and a zone, not a number
# Digit runs with phone punctuation (ITU-T E.123 spacing, US parentheses and dots).
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w+.\-/=#@%$&?])(?:\+|\(\+?)?\d[\d \u00a0().\-/]{5,24}\d(?![\w@%]|[.\-/]\d)"
)
_DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d+\.\d+")
_PHONE_WORD = re.compile(r"(?i)\b(?:phone|tel|fax|mobile|mob|cell|call|sms|whatsapp|contact|ph)\W{0,12}$")
_ISBN_WORD = re.compile(r"(?i)isbn(?:-1[03])?\W{0,6}$")
# ISO/IEC 7812 numbers: 12-19 digits, grouped as printed on cards or not grouped at all.
_CARD_CANDIDATE = re.compile(r"(?<![\w.,+/=#-])\d(?:[ -]?\d){11,18}(?![\w]|[.,/-]\d)")
_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 3), (4, 4, 4, 2), (4, 4, 5)}
# ISO 13616: two letters, two check digits, up to 30 alphanumerics, optionally in groups of four.
_IBAN_CANDIDATE = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}")


def url_spans(text: str) -> list[tuple[int, int]]:
    """Spans of URLs, trailing sentence punctuation excluded."""
    spans = []
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in ".,;:!?)]}":
            end -= 1
        spans.append((m.start(), end))
    return spans


def ip_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """IPv4 (not in a version context) and IPv6 (three or more groups), checked by `ipaddress`."""
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text, max(0, m.start() - 40), m.start()):
            continue
        if _valid_ip(ipaddress.IPv4Address, m.group()):
            yield m.start(), m.end(), "ipaddress:v4"
    if ":" not in text:
        return
    for m in _IPV6.finditer(text):
        value = m.group()
        groups = [g for g in re.split(r"[:.]", value) if g]
        if len(groups) >= 3 and _valid_ip(ipaddress.IPv6Address, value):
            yield m.start(), m.end(), "ipaddress:v6"


def _valid_ip(kind: Callable[[str], object], value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def phone_spans(text: str, regions: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """Numbers that libphonenumber calls valid (Leniency.VALID) in one of `regions`, or in any
    region when written with `+` and a country code. At most `MAX_PHONE_CANDIDATES` digit runs
    are examined per document: libphonenumber costs about a millisecond each, and a document with
    more is a table of numbers, not correspondence."""
    import phonenumbers

    regions = list(regions) or ["US"]
    for cand in islice(_PHONE_CANDIDATE.finditer(text), MAX_PHONE_CANDIDATES):
        chunk, base = cand.group(), cand.start()
        for region in regions[:1] if chunk.lstrip("(").startswith("+") else regions:
            found = list(phonenumbers.PhoneNumberMatcher(chunk, region, phonenumbers.Leniency.VALID, 8))
            kept = [
                (base + f.start, base + f.end) for f in found if _phone_ok(text, base + f.start, f.raw_string)
            ]
            if kept:
                yield from ((s, e, "phonenumbers") for s, e in kept)
                break


def _phone_ok(text: str, start: int, raw: str) -> bool:
    """Not a date, a decimal or an ISBN; a bare digit run only after a phone word."""
    raw = raw.strip()
    if (
        len(re.sub(r"\D", "", raw)) < 7
        or raw.count("(") != raw.count(")")
        or text[start - 1 : start] in _GLUE
    ):
        return False  # too short for a subscriber number, unbalanced, or a piece of a longer token
    if _ISO_DATE.search(raw) or re.match(r":\d", text[start + len(raw) : start + len(raw) + 2]):
        return False  # an ISO 8601 date, or the hour of a time
    if (pair := re.fullmatch(r"(\d{3,})-(\d{3,})", raw)) and 0 < int(pair[2]) - int(pair[1]) < 1000:
        return False  # a range of numbers ("gid 64040-64044")
    if "." in raw and "/" in raw:
        return False  # "169.254/16": a network prefix
    if _DATE_LIKE.fullmatch(raw) or ("." in raw and min(map(len, re.split(r"[.\s]+", raw.lstrip("+")))) < 2):
        return False  # dates, decimals and dotted versions (phone groups have two or more digits)
    window = text[max(0, start - 40) : start]
    if _VERSION_BEFORE.search(window) or _NOT_PHONE_WORD.search(window) or _TIME_BEFORE.search(window):
        return False
    digits = re.sub(r"\D", "", raw)
    if _is_isbn(text, start, digits):
        return False
    if raw.isdigit():
        return bool(_PHONE_WORD.search(text, max(0, start - 40), start))
    return True


def _is_isbn(text: str, start: int, digits: str) -> bool:
    """ISBN-13 (978/979, valid check digit) anywhere; ISBN-10 only right after the word ISBN, as one
    ten-digit number in eleven passes its check digit by chance."""
    from stdnum import isbn

    if len(digits) == 13 and digits[:3] in ("978", "979"):
        return bool(isbn.is_valid(digits))
    return len(digits) == 10 and bool(_ISBN_WORD.search(text, max(0, start - 12), start))


def card_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Luhn-valid numbers (ISO/IEC 7812-1 annex B) whose prefix and length match a card network's
    issuer identification range, written ungrouped or in the groups cards print."""
    from stdnum import luhn

    for m in _CARD_CANDIDATE.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        network = _card_network(digits)
        if network and _card_layout(raw, network) and luhn.is_valid(digits):
            yield m.start(), m.end(), "luhn"


def _card_layout(raw: str, network: str) -> bool:
    """One separator kind, in a printed grouping, or none. Ungrouped, only the 15 and 16 digits of
    nearly every issued card, and not Maestro or Diners: their IIN ranges (50, 56-69; 36, 38, 39)
    and lengths (12-19, 14) are so wide that such a number is mostly a number in code."""
    seps = set(re.sub(r"\d", "", raw))
    if not seps:
        return network not in ("maestro", "diners") and len(raw) in (15, 16)
    return len(seps) == 1 and tuple(len(g) for g in re.split(r"[ -]", raw)) in _CARD_GROUPS


def _card_network(digits: str) -> str | None:
    """The network whose IIN range and length fit (Visa, Mastercard, Amex, Discover, JCB, Diners,
    UnionPay, Maestro), from the networks' published ranges."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


def iban_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """The longest prefix of each candidate that python-stdnum validates (ISO 13616 mod-97 check
    and the country's BBAN format)."""
    from stdnum import iban

    for m in _IBAN_CANDIDATE.finditer(text):
        raw = m.group()
        for end in range(len(raw), 14, -1):
            if raw[end - 1] == " " or (end < len(raw) and raw[end].isalnum() and raw[end - 1] != " "):
                continue
            if iban.is_valid(raw[:end]):
                yield m.start(), m.start() + end, "iban"
                break


_DETECTORS: dict[str, Callable[[str, PiiConfig], Iterable[tuple[int, int, str]]]] = {
    "email": lambda text, cfg: email_spans(text),
    "phone": lambda text, cfg: phone_spans(text, cfg.phone_regions),
    "ip": lambda text, cfg: ip_spans(text),
    "card": lambda text, cfg: card_spans(text),
    "iban": lambda text, cfg: iban_spans(text),
    "secret": lambda text, cfg: secret_spans(text),
}


def detect(text: str, cfg: PiiConfig) -> list[Match]:
    """Non-overlapping matches of `cfg.types` in the first `cfg.max_chars` characters, sorted."""
    head = text[: cfg.max_chars]
    urls = url_spans(head)
    found = [
        Match(kind, start, end, rule)
        for kind in cfg.types
        for start, end, rule in _DETECTORS[kind](head, cfg)
        if kind not in ("phone", "card", "iban") or not _inside(urls, start, end)
    ]
    found.sort(key=lambda m: (_PRIORITY[m.type], m.start - m.end, m.start))
    taken: list[Match] = []  # sorted by start, never overlapping: only the neighbours can clash
    for m in found:
        i = bisect_left(taken, m.start, key=lambda t: t.start)
        if (i == 0 or taken[i - 1].end <= m.start) and (i == len(taken) or m.end <= taken[i].start):
            taken.insert(i, m)
    return taken


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) lies in one of `spans` (sorted, not overlapping)."""
    i = bisect_left(spans, (start + 1,)) - 1
    return i >= 0 and spans[i][0] <= start and end <= spans[i][1]


def redact(text: str, cfg: PiiConfig) -> Redaction:
    """Replace each match by its placeholder (`flag`: keep the text); count per type."""
    matches = detect(text, cfg)
    counts: dict[str, int] = {kind: 0 for kind in cfg.types}
    for m in matches:
        counts[m.type] += 1
    truncated = len(text) > cfg.max_chars
    if cfg.action == "flag" or not matches:
        return Redaction(text, counts, matches, truncated)
    parts, last = [], 0
    for m in matches:
        parts += [text[last : m.start], PLACEHOLDERS[m.type]]
        last = m.end
    parts.append(text[last:])
    return Redaction("".join(parts), counts, matches, truncated)


def redact_row(row: dict, cfg: PiiConfig, key: bytes) -> dict:
    """The row with redacted text and annotations `pii.<type>` (nonzero counts), `pii.redacted`
    (their total), `pii.truncated` (longer than `max_chars`); social posts' author and mentions
    pseudonymised (`pii.pseudonymised`). The stage sums these per source. Never rejects."""
    return redact_row_with_matches(row, cfg, key)[0]


def redact_row_with_matches(row: dict, cfg: PiiConfig, key: bytes) -> tuple[dict, Redaction]:
    """`redact_row` and the `Redaction` it applied (offsets in the original text)."""
    text = row.get("text")
    text = text if isinstance(text, str) else ""
    done = redact(text, cfg)
    ann = dict(row.get("annotations") or {})
    ann.update({f"pii.{k}": str(n) for k, n in done.counts.items() if n})
    if total := sum(done.counts.values()):
        ann["pii.redacted"] = str(total)
    if done.truncated:
        ann["pii.truncated"] = "1"
    new_text = done.text
    if row.get("source_type") == "social" and cfg.pseudonymise:
        new_text = _pseudonymise(ann, new_text, key, cfg.action == "redact")
    out = {**row, "annotations": ann}
    if isinstance(row.get("text"), str):
        out["text"] = new_text
    return out, done


def _pseudonymise(ann: dict[str, str], text: str, key: bytes, rewrite_text: bool) -> str:
    """`social.author` and `social.mentions` become keyed hashes, so one person is still one
    person across posts; @handles in the text become `@user` (the TweetEval convention, Barbieri
    et al. 2020), since a model gains nothing from hashes in running text."""
    from jobs.safety.pseudonym import pseudonym

    if ann.get("social.author"):
        ann["social.author"] = pseudonym(ann["social.author"], key)
    if ann.get("social.mentions"):
        ann["social.mentions"] = json.dumps([pseudonym(h, key) for h in _handles(ann["social.mentions"])])
    ann["pii.pseudonymised"] = "1"
    return _MENTION.sub("@user", text) if rewrite_text else text


def _handles(raw: str) -> list[str]:
    """The JSON list of handles; a value that is not one is treated as a single handle."""
    try:
        value = json.loads(raw)
    except ValueError:
        return [raw]
    return [str(h) for h in value] if isinstance(value, list) else [str(value)]


def redact_with(cfg: PiiConfig, key: bytes | None = None) -> Callable[[dict], tuple[dict, str | None]]:
    """`row -> (row, None)` bound to the config and the pseudonym key (loaded once)."""
    if key is None:
        from jobs.safety.pseudonym import load_key

        key = load_key(cfg)
    bound = key
    return lambda row: (redact_row(row, cfg, bound), None)
