"""A labelled PII set built from real text on this machine, for tests/test_pii.py.

Real snippets: the standard library's sources and tests (/usr/lib/python3.11 and the running
interpreter's own stdlib), Debian changelogs (/usr/share/doc/*/changelog*.gz, whose trailer lines
carry maintainers' addresses as `<addr>`) and mail headers assembled from those changelogs. Into
them go, under a fixed seed and at known offsets, planted PII of every type in varied formats,
and hard negatives that are not PII (versions, dates, ISBNs, hashes, UUIDs, decimals, ports,
coordinates, numbers inside identifiers and URLs).

Labels come from construction, never from the detector: planted spans, and in changelogs every
RFC 5322 angle-addr (`<local@domain>`). Natural snippets that hold address-like text the
construction cannot label (a bare `x@y.z`, a dotted quad, colon-separated hex groups, key
headers) are left out rather than guessed at. Numbers in real code are kept: any phone, card or
IBAN found in them counts against precision.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
import string
import sys
import sysconfig
import uuid
from dataclasses import dataclass, field
from pathlib import Path

STDLIB_DIRS = (Path("/usr/lib/python3.11"), Path(sysconfig.get_paths()["stdlib"]))
DOC_ROOT = Path("/usr/share/doc")
TYPES = ("email", "phone", "ip", "card", "iban", "secret")

# Text that would be PII (or PII-shaped) but that the construction cannot label.
_UNLABELLABLE = re.compile(
    r"@[\w-]+\.[A-Za-z]|(?<![\w.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])|"
    r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:|PRIVATE KEY|eyJ|AKIA|gh[pousr]_|xox[abposr]-|"
    r"sk_live|(?<![\w])[A-Z]{2}\d{2}[A-Z0-9]{11}"
)
_ANGLE_ADDR = re.compile(r"<([^<>\s@]+@[^<>\s@]+\.[A-Za-z]{2,})>")


@dataclass
class Doc:
    id: str
    text: str
    labels: list[tuple[str, int, int]] = field(default_factory=list)  # (type, start, end)
    source: str = ""


class _Builder:
    """Pieces of text, some labelled; offsets are computed as they are appended."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.labels: list[tuple[str, int, int]] = []
        self.size = 0

    def add(self, text: str, kind: str | None = None) -> None:
        if kind:
            self.labels.append((kind, self.size, self.size + len(text)))
        self.parts.append(text)
        self.size += len(text)

    def doc(self, doc_id: str, source: str) -> Doc:
        return Doc(doc_id, "".join(self.parts), self.labels, source)


# --- sources ------------------------------------------------------------------------------------


def stdlib_files(limit: int = 160) -> list[Path]:
    """Python sources and tests from the stdlib directories that exist, in a stable order."""
    found: dict[str, Path] = {}
    for root in STDLIB_DIRS:
        if not root.is_dir():
            continue
        for sub in ("", "test", "email", "json", "http", "urllib", "logging", "unittest"):
            for path in sorted((root / sub).glob("*.py"))[:40]:
                found.setdefault(f"{sub}/{path.name}", path)
    return [found[k] for k in sorted(found)][:limit]


def changelogs(limit: int = 80) -> list[Path]:
    if not DOC_ROOT.is_dir():
        return []
    return sorted(DOC_ROOT.glob("*/changelog*.gz"))[:limit]


def snippets(text: str, rng: random.Random, count: int, size: int = 900) -> list[str]:
    """`count` runs of whole lines, about `size` characters each, from random places in `text`."""
    lines = text.splitlines(keepends=True)
    out = []
    for _ in range(count):
        if not lines:
            break
        i = rng.randrange(len(lines))
        chunk = ""
        while i < len(lines) and len(chunk) < size:
            chunk += lines[i]
            i += 1
        out.append(chunk)
    return out


def _read(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile):
        return ""
    return raw[:400_000].decode("utf-8", "replace")


# --- planted values -----------------------------------------------------------------------------

_FIRST = ["jane", "omar", "li", "sofia", "marc", "ana", "kenji", "fatima", "pierre", "ingrid", "raj", "chloe"]
_LAST = ["doe", "haddad", "wei", "rossi", "haber", "silva", "tanaka", "khan", "dupont", "berg", "patel"]
_DOMAINS = [
    "example.com",
    "mail.example.co.uk",
    "uni-bonn.de",
    "gmail.com",
    "posteo.net",
    "debian.org",
    "users.noreply.github.com",
    "lists.debian.org",
    "company.io",
    "correo.es",
]


def email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}+news",
            f"{first}{rng.randint(1, 99)}",
            f"{first.upper()}.{last.capitalize()}",
            f"{rng.randint(10000, 99999)}+{first}",
        ]
    )
    return f"{local}@{rng.choice(_DOMAINS)}"


_NATIONAL = ("US", "GB", "DE", "FR", "IN")
_INTERNATIONAL = ("JP", "BR", "AU", "ES", "IT", "NL", "CH", "MX", "ZA", "SE")


def phone(rng: random.Random) -> str:
    """A number libphonenumber accepts, in the formats people write: national ones for the
    configured regions, international ones for every region."""
    import phonenumbers as pn

    region = rng.choice(_NATIONAL + _INTERNATIONAL)
    kind = rng.choice([pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE])
    number = pn.example_number_for_type(region, kind) or pn.example_number(region)
    assert number is not None, region
    for _ in range(20):
        digits = str(number.national_number)
        trial = pn.parse(f"+{number.country_code}{digits[:-3]}{rng.randint(0, 999):03d}")
        if pn.is_valid_number(trial):
            number = trial
            break
    styles = [pn.PhoneNumberFormat.INTERNATIONAL, pn.PhoneNumberFormat.E164]
    if region in _NATIONAL:
        styles.append(pn.PhoneNumberFormat.NATIONAL)
    text = pn.format_number(number, rng.choice(styles))
    if region == "US" and rng.random() < 0.4:
        d = str(number.national_number)
        text = rng.choice(
            [f"{d[:3]}.{d[3:6]}.{d[6:]}", f"{d[:3]}-{d[3:6]}-{d[6:]}", f"+1 ({d[:3]}) {d[3:6]}-{d[6:]}"]
        )
    return text


def ip(rng: random.Random) -> str:
    import ipaddress

    if rng.random() < 0.55:
        return str(ipaddress.IPv4Address(rng.getrandbits(32) | (rng.randint(1, 223) << 24)))
    groups = [rng.choice([0x2001, 0x2A00, 0x2607, 0xFE80])] + [rng.getrandbits(16) for _ in range(7)]
    zero = rng.randrange(1, 7)
    run = rng.randint(0, 3)
    groups[zero : zero + run] = [0] * len(groups[zero : zero + run])
    addr = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups[:8]))
    return addr.compressed if rng.random() < 0.7 else addr.exploded


def card(rng: random.Random) -> str:
    """A Luhn-valid number (ISO/IEC 7812) of a real network's prefix and length, printed in its
    usual grouping, with dashes, or ungrouped."""
    from stdnum import luhn

    prefix, length = rng.choice(
        [
            ("4", 16),
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("2221", 16),
            ("34", 15),
            ("37", 15),
            ("6011", 16),
            ("65", 16),
            ("3530", 16),
        ]
    )
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn.calc_check_digit(body)
    groups = [4, 6, 5] if length == 15 else [4, 4, 4, 4]
    parts, i = [], 0
    for g in groups:
        parts.append(digits[i : i + g])
        i += g
    return rng.choice([" ".join(parts), "-".join(parts), digits])


# BBAN layouts from the SWIFT IBAN registry: n digits, a upper letters, c alphanumerics.
_BBAN = {
    "DE": "18n",
    "GB": "4a14n",
    "NL": "4a10n",
    "BE": "12n",
    "AT": "16n",
    "CH": "5n12c",
    "PL": "24n",
    "ES": "20n",
    "IT": "1a10n12c",
    "FR": "10n11n2n",
    "SE": "20n",
    "NO": "11n",
    "DK": "14n",
    "FI": "14n",
}


def iban(rng: random.Random) -> str:
    from stdnum import iban as stdiban

    for _ in range(400):
        country = rng.choice(sorted(_BBAN))
        bban = ""
        for count, kind in re.findall(r"(\d+)([nac])", _BBAN[country]):
            pool = {
                "n": string.digits,
                "a": string.ascii_uppercase,
                "c": string.digits + string.ascii_uppercase,
            }
            bban += "".join(rng.choice(pool[kind]) for _ in range(int(count)))
        number = country + stdiban.calc_check_digits(country + "00" + bban) + bban
        if stdiban.is_valid(number):
            return stdiban.format(number) if rng.random() < 0.5 else number
    raise RuntimeError("no valid IBAN generated")


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


_AN = string.ascii_letters + string.digits
_B64URL = _AN + "-_"
_LOW = string.ascii_lowercase + string.digits


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    claims = {
        "sub": str(rng.randint(1, 10**9)),
        "name": rng.choice(_FIRST),
        "iat": rng.randint(10**9, 2 * 10**9),
    }
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{_rand(rng, _B64URL, 43)}"


def _pem(rng: random.Random) -> str:
    kind = rng.choice(["RSA ", "EC ", "", "OPENSSH "])
    body = "\n".join(_rand(rng, _AN + "+/", 64) for _ in range(rng.randint(3, 8)))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


def secret(rng: random.Random) -> str:
    """A token in one vendor's documented format (the formats detect-secrets' plugins encode)."""
    lower_hex = "0123456789abcdef"
    makers = [
        lambda: "AKIA" + _rand(rng, string.ascii_uppercase + string.digits, 16),
        lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + _rand(rng, _AN, 36),
        lambda: "glpat-" + _rand(rng, _AN, 20),
        lambda: "-".join(
            ["xoxb", _rand(rng, string.digits, 12), _rand(rng, string.digits, 13), _rand(rng, _LOW, 24)]
        ),
        lambda: rng.choice(["sk_live_", "rk_live_"]) + _rand(rng, _AN, 24),
        lambda: "SK" + _rand(rng, lower_hex, 32),
        lambda: f"SG.{_rand(rng, _B64URL, 22)}.{_rand(rng, _B64URL, 43)}",
        lambda: _jwt(rng),
        lambda: _pem(rng),
        lambda: f"sk-{_rand(rng, _AN, 20)}T3BlbkFJ{_rand(rng, _AN, 20)}",
        lambda: _rand(rng, lower_hex, 32) + f"-us{rng.randint(1, 20)}",
        lambda: f"{rng.randint(10**8, 10**9 - 1)}:{_rand(rng, _B64URL, 35)}",
        lambda: "pypi-AgEIcHlwaS5vcmc" + _rand(rng, _B64URL, 80),
    ]
    return rng.choice(makers)()


GENERATORS = {"email": email, "phone": phone, "ip": ip, "card": card, "iban": iban, "secret": secret}

# (prefix, suffix) around a planted value; the value alone is labelled.
TEMPLATES = {
    "email": [
        ("Contact ", " for details.\n"),
        ("# Maintainer: Jane Roe <", ">\n"),
        ("mailto:", "\n"),
        ('AUTHOR_EMAIL = "', '"\n'),
        ("Reply-To: ", "\n"),
        ("(thanks to ", ")\n"),
        ("email='", "'\n"),
    ],
    "phone": [
        ("Call ", " today.\n"),
        ("Tel: ", "\n"),
        ('PHONE = "', '"\n'),
        ("Phone: ", " (office)\n"),
        ("reach me on ", " or by mail.\n"),
        ("Phone: ", " ext. 12\n"),
        ('{"name": "Ana", "phone": "', '"}\n'),
    ],
    "ip": [
        ("server ", " is down\n"),
        ('HOST = "', '"\n'),
        ("ping ", "\n"),
        ("listening on ", " port 8080\n"),
        ("Client address: ", "\n"),
        ("curl http://", "/health\n"),
        ("allow from ", "/32;\n"),
    ],
    "card": [
        ("card number ", "\n"),
        ('cc = "', '"\n'),
        ("Paid with ", " yesterday.\n"),
        ("PAN: ", "\n"),
        ("charged to ", " exp 12/27 for 49.99 EUR.\n"),
    ],
    "iban": [
        ("IBAN: ", "\n"),
        ("Please transfer to ", ".\n"),
        ("iban = '", "'\n"),
        ("Konto ", " (Sparkasse)\n"),
        ("<td>", "</td>\n"),
    ],
    "secret": [
        ('API_KEY = "', '"\n'),
        ("token: ", "\n"),
        ("export TOKEN=", "\n"),
        ("Authorization: Bearer ", "\n"),
        ("\n", "\n"),
        ('{"access_token": "', '", "expires_in": 3600}\n'),
    ],
}


def hard_negative(rng: random.Random) -> str:
    """One line that looks like PII to a careless detector and is not."""
    from stdnum import ean, isbn, luhn

    v4 = ".".join(str(rng.randint(0, 30)) for _ in range(4))
    digits12 = "978" + _rand(rng, string.digits, 9)
    isbn13 = digits12 + ean.calc_check_digit(digits12)
    body = "4" + _rand(rng, string.digits, 14)
    in_url = body + luhn.calc_check_digit(body)
    year, month, day = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
    choices = [
        f"version {v4}\n",
        f"__version__ = '{v4}'\n",
        f"tarball foo-{v4}.tar.gz\n",
        f"pip install pkg=={v4}\n",
        f"Requires: lib >= {v4}\n",
        f"Released {year}-{month:02d}-{day:02d} at {rng.randint(0, 23):02d}:30:45\n",
        f"on {day:02d}/{month:02d}/{year}\n",
        f"ISBN {isbn.format(isbn13)}\n",
        f"ISBN {isbn13}\n",
        f"ISBN-10: {isbn.to_isbn10(isbn13)}\n",
        f"commit {_rand(rng, '0123456789abcdef', 40)}\n",
        f"id = '{uuid.UUID(int=rng.getrandbits(128))}'\n",
        f"pi = {rng.random() * 1000:.12f}\n",
        f"timestamp = {rng.randint(10**9, 2 * 10**9)}\n",
        f"connect to localhost:{rng.randint(1024, 65535)}\n",
        f"coords {rng.uniform(-90, 90):.4f}, {rng.uniform(-180, 180):.4f}\n",
        "mac " + ":".join(_rand(rng, "0123456789abcdef", 2) for _ in range(6)) + "\n",
        f"x = {rng.randint(10**13, 10**14)}\n",
        f"def test_{rng.randint(10**9, 10**10)}(self): pass\n",
        f"see https://example.org/items/{in_url}?ref={rng.randint(10**9, 10**10)}\n",
        f"sha256: {_rand(rng, '0123456789abcdef', 64)}\n",
        f"mask = 0x{_rand(rng, '0123456789ABCDEF', 16)}\n",
        f"build {year}{month:02d}{day:02d}.{rng.randint(1, 9)}\n",
        "std::vector<int> v; a[1:2:3]; x = ::1\n",
        f"serial {rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(100, 999)} rev {v4}\n",
    ]
    return rng.choice(choices)


# --- documents ----------------------------------------------------------------------------------


def _plant(base: str, kinds: list[str], rng: random.Random, negatives: int) -> _Builder:
    """`base` with one planted value per kind and `negatives` hard-negative lines, each at a line
    boundary."""
    lines = base.splitlines(keepends=True) or [""]
    if lines[-1] and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    inserts: dict[int, list[tuple[str, str | None] | tuple[str, str, str]]] = {}
    for kind in kinds:
        inserts.setdefault(rng.randrange(len(lines) + 1), []).append((kind, "plant", ""))
    for _ in range(negatives):
        inserts.setdefault(rng.randrange(len(lines) + 1), []).append((hard_negative(rng), None))
    b = _Builder()
    for i in range(len(lines) + 1):
        for item in inserts.get(i, []):
            if len(item) == 3:
                prefix, suffix = rng.choice(TEMPLATES[item[0]])
                b.add(prefix)
                b.add(GENERATORS[item[0]](rng), item[0])
                b.add(suffix)
            else:
                b.add(item[0])
        if i < len(lines):
            b.add(lines[i])
    return b


def _changelog_ok(snippet: str) -> bool:
    """Whether every address-like piece of a changelog snippet is an angle-addr (labelled later)."""
    unlabelled = _ANGLE_ADDR.sub("<>", snippet)
    return bool(snippet.strip()) and not _UNLABELLABLE.search(unlabelled) and "@" not in unlabelled


def mail_header(rng: random.Random) -> _Builder:
    """A list message's headers: every address is labelled, the Message-ID is not (RFC 5322 §3.6.4)."""
    b = _Builder()
    for header in ("From", "To", "Cc", "Reply-To"):
        if header in ("Cc", "Reply-To") and rng.random() < 0.4:
            continue
        b.add(f"{header}: {rng.choice(_FIRST).capitalize()} {rng.choice(_LAST).capitalize()} <")
        b.add(email(rng), "email")
        b.add(">\n")
    stamp = (
        f"{rng.randint(2000, 2025)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 10**6)}"
    )
    b.add(f"Message-ID: <{stamp}.{_rand(rng, 'abcdef0123456789', 12)}@mail.{rng.choice(_DOMAINS)}>\n")
    b.add(f"Date: Thu, {rng.randint(1, 28)} May 2023 17:54:35 +0200\nSubject: Re: new upload\n\n")
    return b


def build(seed: int = 1234, n_docs: int = 360) -> list[Doc]:
    """The labelled set; empty when no source directory exists on this machine."""
    rng = random.Random(seed)
    code = [s for p in stdlib_files() for s in snippets(_read(p), rng, 2)]
    code = [s for s in code if s.strip() and not _UNLABELLABLE.search(s) and "@" not in s]
    logs = [s for p in changelogs() for s in snippets(_read(p), rng, 2, 600)]
    logs = [s for s in logs if _changelog_ok(s)]
    if not code and not logs:
        return []
    docs = []
    for i in range(n_docs):
        kinds = [] if i % 7 == 6 else [TYPES[i % 6]] + ([rng.choice(TYPES)] if rng.random() < 0.5 else [])
        pick = rng.random()
        if logs and (pick < 0.2 or not code):
            doc = _relabel(
                _plant(rng.choice(logs), kinds, rng, rng.randint(1, 3)).doc(f"changelog-{i}", "changelog")
            )
        elif pick < 0.3:
            body = _plant(rng.choice(code) if code else "", kinds, rng, 1)
            doc = _merge(mail_header(rng), body, f"mail-{i}")
        else:
            doc = _plant(rng.choice(code), kinds, rng, rng.randint(1, 3)).doc(f"code-{i}", "stdlib")
        docs.append(doc)
    return docs


def _merge(head: _Builder, body: _Builder, doc_id: str) -> Doc:
    out = _Builder()
    for text, kind in _pieces(head) + _pieces(body):
        out.add(text, kind)
    return out.doc(doc_id, "mail")


def _pieces(b: _Builder) -> list[tuple[str, str | None]]:
    """The builder's parts with their labels (in order: labels match parts by offset)."""
    starts = {s: k for k, s, _ in b.labels}
    out, offset = [], 0
    for part in b.parts:
        out.append((part, starts.get(offset) if part else None))
        offset += len(part)
    return out


def _relabel(doc: Doc) -> Doc:
    """Label the changelog's own angle-addrs (trailer lines, "Thanks to Name <addr>")."""
    planted = {(s, e) for _, s, e in doc.labels}
    doc.labels += [("email", *m.span(1)) for m in _ANGLE_ADDR.finditer(doc.text) if m.span(1) not in planted]
    doc.labels.sort(key=lambda label: label[1])
    return doc


if __name__ == "__main__":  # a quick look: python tests/pii_corpus.py
    built = build()
    print(
        len(built), {t: sum(1 for d in built for k, *_ in d.labels if k == t) for t in TYPES}, file=sys.stderr
    )
