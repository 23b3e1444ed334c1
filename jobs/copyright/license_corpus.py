"""Real licence texts of this machine with an independently known SPDX id, for the licence detector's
tests and its benchmark (scripts/license_eval.py). None is one of the database's own files:

- common-licenses: Debian's /usr/share/common-licenses (hand-checked table COMMON_IDS);
- dep5: the standalone `License:` paragraphs of DEP-5 /usr/share/doc/*/copyright files, the id from
  the Debian short name (DEBIAN_IDS, copyright-format 1.0 "License specification");
- dist-info: licence files of installed Python packages, the id from METADATA `License-Expression`;
- source: header comments of C and Go files: /usr/include headers carrying an SPDX tag (the tag is
  the expected id and is cut out of the text) and sources under /usr/share/doc/<package>/ whose
  package's DEP-5 `Files:` paragraph names them.

Each text is also reformatted (FORMATS). Negatives: Python standard library docstrings, pydoc topics
and sentences that only talk about licences. Missing system folders give empty lists."""

from __future__ import annotations

import ast
import collections
import fnmatch
import re
import sysconfig
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from jobs.copyright.licenses import Detection, detect, normalise_expression

COMMON = Path("/usr/share/common-licenses")
DOCS = Path("/usr/share/doc")
INCLUDE = Path("/usr/include")
SITE = Path(sysconfig.get_paths()["purelib"])
COMMON_IDS = {
    "Apache-2.0": "Apache-2.0", "Artistic": "Artistic-1.0-Perl", "BSD": "BSD-3-Clause", "CC0-1.0": "CC0-1.0",
    "GFDL-1.2": "GFDL-1.2-only", "GFDL-1.3": "GFDL-1.3-only", "GPL-1": "GPL-1.0-only",
    "GPL-2": "GPL-2.0-only",
    "GPL-3": "GPL-3.0-only", "LGPL-2": "LGPL-2.0-only", "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-3": "LGPL-3.0-only",
    "MPL-1.1": "MPL-1.1", "MPL-2.0": "MPL-2.0",
}  # fmt: skip
DEBIAN_IDS = {  # DEP-5 short names (copyright-format 1.0, "License specification") -> SPDX
    "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
    "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later", "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later", "expat": "MIT", "mit": "MIT", "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause", "apache-2.0": "Apache-2.0",
    "zlib": "Zlib",
    "isc": "ISC", "bsl-1.0": "BSL-1.0", "cc0-1.0": "CC0-1.0", "curl": "curl", "openldap-2.8": "OLDAP-2.8",
    "ftl": "FTL", "x11": "X11", "fsfullr": "FSFULLR", "fsfap": "FSFAP", "mpl-2.0": "MPL-2.0",
    "mpl-1.1": "MPL-1.1", "artistic": "Artistic-1.0-Perl", "artistic-2.0": "Artistic-2.0", "psf-2": "PSF-2.0",
    "unlicense": "Unlicense", "0bsd": "0BSD", "wtfpl": "WTFPL", "bsd-1-clause": "BSD-1-Clause",
    "mit-0": "MIT-0", "ofl-1.1": "OFL-1.1", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0", "lppl-1.3c": "LPPL-1.3c", "epl-1.0": "EPL-1.0", "epl-2.0": "EPL-2.0",
    "gfdl-1.2+": "GFDL-1.2-or-later", "gfdl-1.3+": "GFDL-1.3-or-later", "agpl-3+": "AGPL-3.0-or-later",
    "ijg": "IJG", "libpng": "Libpng", "libtiff": "libtiff", "openssl": "OpenSSL", "sleepycat": "Sleepycat",
    "python-2.0": "Python-2.0", "ntp": "NTP", "hpnd": "HPND", "bzip2-1.0.6": "bzip2-1.0.6", "tcl": "TCL",
}  # fmt: skip
# Debian's short names predate some SPDX variants of the same licence; the SPDX list describes these as
# the named licence with a marked difference (spdx.org/licenses: "BSD-4-Clause (University of
# California-Specific)", "FSF Unlimited License (With License Retention and Warranty Disclaimer)",
# "OpenSSL License, standalone"), so the variant is an exact answer for the coarser Debian name.
VARIANTS = {
    "BSD-4-Clause": {"BSD-4-Clause-UC"},
    "FSFULLR": {"FSFULLRWD"},
    "OpenSSL": {"OpenSSL-standalone"},
}
MENTIONS = [
    "See the LICENSE file for details.", "This project is licensed; ask the authors for terms.",
    "Licence fees are due by March. Contact the licensing office for a new driving licence.",
    "We compared the GPL and the MIT licence in a blog post about open source economics.",
    "The software license agreement was signed by both parties yesterday.",
    "Copyright law differs between countries; consult a lawyer about fair use.",
    "Open source licenses such as Apache, BSD and GPL are popular on GitHub.",
    "pip show prints a package's License field, which may be empty.",
    "Should a patch to a GPL-2.0 program be licensed under the GPL too? Most maintainers say yes.",
    "The Apache License 2.0 and the MIT License differ mainly in the patent grant, the FAQ says.",
    "Choosing a licence: permissive licences such as BSD allow closed forks; copyleft ones do not.",
    "Debian keeps the common licences in one folder so that packages need not ship them.",
    "The six licences are listed at https://creativecommons.org/licenses/ with their deeds.",
    "OSI keeps the approved licences at https://opensource.org/licenses/ for anyone to compare.",
]  # fmt: skip
_LATER = re.compile(r"\blater\b", re.I)


@dataclass(frozen=True)
class Case:
    """One text with its expected SPDX expression; `kind` is the corpus it came from."""

    kind: str
    name: str
    expected: str
    text: str


def _reflow(text: str) -> str:
    return "\n\n".join(
        textwrap.fill(" ".join(p.split()), 61, break_on_hyphens=False, break_long_words=False)
        for p in re.split(r"\n\s*\n", text)
        if p.strip()
    )


def _wrap(prefix: str) -> Callable[[str], str]:
    return lambda text: "\n".join(prefix + line for line in _reflow(text).splitlines())


FORMATS: dict[str, Callable[[str], str]] = {
    "as-is": lambda text: text,
    "reflowed": _reflow,
    "hash-comment": _wrap("# "),
    "slash-comment": _wrap("// "),
    "star-comment": lambda t: "/*\n" + _wrap(" * ")(t) + "\n */\nint main(void) { return 0; }\n",
    "go-header": lambda t: _wrap("// ")(t) + "\n\npackage main\n\nfunc main() {}\n",
    "copyright-header": lambda t: "Copyright (c) 2003-2021 Jane Doe <jane@example.org>\n\n" + _reflow(t),
}


def common_licenses() -> list[Case]:
    return [
        Case("common-licenses", name, spdx, (COMMON / name).read_text(encoding="utf-8"))
        for name, spdx in COMMON_IDS.items()
        if (COMMON / name).is_file()
    ]


def _dep5_paragraphs(path: Path) -> list[str]:
    raw = path.read_text(encoding="utf-8", errors="replace")
    return re.split(r"\n[ \t]*\n", raw) if "copyright-format" in raw[:300] else []


def _body(lines: str) -> str:
    return "\n".join("" if line.strip() == "." else line[1:] for line in lines.splitlines())


def _determinable(short: str, body: str) -> bool:
    """The body itself must carry the version choice the short name states: `GPL-2+` over a bare
    pointer to /usr/share/common-licenses/GPL-2 says "or later" only in the name, and `GPL-2` over
    "either version 2 ... or any later version" contradicts its own text (SPDX annex D.3)."""
    if not re.search(r"\d", short) or not short.lower().startswith(("gpl", "lgpl", "agpl", "gfdl")):
        return True
    short = short.removesuffix("-only")
    return short.endswith("+") == bool(_LATER.search(body))


def dep5() -> list[Case]:
    """Standalone `License:` paragraphs with a body of two lines or more, one per short name and text."""
    out: dict[tuple[str, str], Case] = {}
    for path in sorted(DOCS.glob("*/copyright")):
        for paragraph in _dep5_paragraphs(path):
            m = re.match(r"License:[ \t]*(\S+)[ \t]*\n((?:[ \t].*\n?){2,})", paragraph + "\n")
            if not m or re.search(r"^Files:", paragraph, re.M) or m.group(1).lower() not in DEBIAN_IDS:
                continue
            body = _body(m.group(2))
            if not _determinable(m.group(1), body):
                continue
            key = (m.group(1).lower(), " ".join(body.split())[:300])
            out.setdefault(key, Case("dep5", f"{path.parent.name}/{m.group(1)}", DEBIAN_IDS[key[0]], body))
    return list(out.values())


def _licence_file(dist_info: Path) -> Path | None:
    """The licence file itself (LICENSE, COPYING), not AUTHORS or NOTICE files beside it."""
    files = sorted((dist_info / "licenses").rglob("*")) + sorted(dist_info.glob("*"))
    named = [f for f in files if f.is_file() and re.match(r"(?i)(licen[cs]e|copying)", f.name)]
    return named[0] if named else None


def dist_info() -> list[Case]:
    """Licence files of installed packages whose METADATA names one SPDX id (License-Expression)."""
    out = []
    for meta in sorted(SITE.glob("*.dist-info/METADATA")):
        m = re.search(r"^License-Expression:[ \t]*(\S+)[ \t]*$", meta.read_text(errors="replace"), re.M)
        found = _licence_file(meta.parent)
        if m and found:
            expected, known = normalise_expression(m.group(1))
            if known:
                out.append(Case("dist-info", meta.parent.name, expected, found.read_text(errors="replace")))
    return out


def _header(source: str) -> str:
    """The leading comment lines of a C, C++ or Go file (`/* ... */`, ` * `, `//`), up to the code."""
    lines = []
    inside = False
    for line in source.splitlines()[:300]:
        stripped = line.strip()
        if inside or stripped.startswith(("/*", "//")) or not stripped:
            lines.append(line)
            inside = (inside or stripped.startswith("/*")) and "*/" not in stripped
            continue
        break
    return "\n".join(lines).strip()


_SPDX_LINE = re.compile(r"^.*SPDX-License-Identifier:[ \t]*([^\r\n]*?)[ \t]*(?:\*/)?[ \t]*$", re.M)
_PROSE = re.compile(r"(?i)permission|redistribut|free software|licensed under|public domain|warranty")


def include_headers() -> list[Case]:
    """/usr/include headers whose SPDX tag names one licence and whose comment also says it in words:
    the tag is the expected id (the author's own statement) and is removed from the text. The Linux
    uapi headers' `WITH Linux-syscall-note` is the kernel's blanket exception, not in the prose
    (LICENSES/exceptions/Linux-syscall-note), so the licence the prose states is the id before it."""
    out: dict[str, Case] = {}
    for path in sorted(INCLUDE.rglob("*.h")):
        head = _header(path.read_text(encoding="utf-8", errors="replace")[:20000])
        tag = _SPDX_LINE.search(head)
        if not tag or not _PROSE.search(head):
            continue
        expected, known = normalise_expression(re.sub(r"(?i)\s+WITH\s+Linux-syscall-note", "", tag.group(1)))
        text = _SPDX_LINE.sub("", head)
        if known and " " not in expected and _determinable(expected.replace("-or-later", "+"), text):
            out.setdefault(" ".join(text.split())[-400:], Case("source", str(path), expected, text))
    return list(out.values())


def _files_paragraphs(copyright_file: Path) -> list[tuple[list[str], str]]:
    out = []
    for paragraph in _dep5_paragraphs(copyright_file):
        files = re.search(r"^Files:[ \t]*((?:.*\n?)(?:[ \t].*\n?)*)", paragraph + "\n", re.M)
        short = re.search(r"^License:[ \t]*(\S+)[ \t]*$", paragraph, re.M)
        if files and short:
            out.append((files.group(1).split(), short.group(1).lower()))
    return out


def doc_sources() -> list[Case]:
    """C and Go files shipped under /usr/share/doc/<package>/ with a licence in their header, the id
    from the last DEP-5 `Files:` paragraph whose pattern names them (copyright-format 1.0: the last
    match wins); the catch-all `*` is too coarse for one file and is not used."""
    out = []
    for copyright_file in sorted(DOCS.glob("*/copyright")):
        paragraphs = _files_paragraphs(copyright_file)
        if not paragraphs:
            continue
        folder = copyright_file.parent
        for path in sorted(p for ext in ("c", "h", "go", "cc", "cpp") for p in folder.rglob(f"*.{ext}")):
            short = _owner(str(path.relative_to(folder)), paragraphs)
            head = _header(path.read_text(encoding="utf-8", errors="replace")[:20000])
            if short in DEBIAN_IDS and _PROSE.search(head) and "SPDX-License-Identifier" not in head:
                out.append(Case("source", str(path), DEBIAN_IDS[short], head))
    return out


def _owner(relative: str, paragraphs: list[tuple[list[str], str]]) -> str | None:
    found = None
    parts = relative.split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    for patterns, short in paragraphs:
        specific = [p for p in patterns if p != "*"]
        if any(
            fnmatch.fnmatchcase(s, p) or fnmatch.fnmatchcase(s, f"*/{p}") for p in specific for s in suffixes
        ):
            found = short
    return found


def source_headers() -> list[Case]:
    return include_headers() + doc_sources()


def positives() -> list[Case]:
    return common_licenses() + dep5() + dist_info() + source_headers()


def negatives() -> list[str]:
    """Texts without a licence: pydoc topics, standard library docstrings, and MENTIONS."""
    import pydoc_data.topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [t for t in pydoc_data.topics.topics.values() if len(t) > 200] + MENTIONS
    for path in sorted(stdlib.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
        if doc:
            texts.append(doc)
    return texts


def exact(expected: str, found: Detection | None) -> bool:
    return found is not None and (
        found.expression == expected or found.expression in VARIANTS.get(expected, ())
    )


@dataclass
class Tally:
    """Exact matches per `kind:format` and per `id:SPDX`, and the misses."""

    hits: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(lambda: [0, 0]))
    misses: list[str] = field(default_factory=list)

    def add(self, keys: Iterable[str], ok: bool) -> None:
        for key in keys:
            self.hits[key][0] += ok
            self.hits[key][1] += 1

    def rate(self, prefix: str = "id:") -> float:
        rows = [v for k, v in self.hits.items() if k.startswith(prefix)]
        total = sum(v[1] for v in rows)
        return sum(v[0] for v in rows) / total if total else 0.0

    @property
    def ids(self) -> int:
        return sum(k.startswith("id:") for k in self.hits)


def evaluate(cases: list[Case], formats: Iterable[str] = tuple(FORMATS)) -> Tally:
    tally = Tally()
    for case in cases:
        for fmt in formats:
            found = detect(FORMATS[fmt](case.text))
            ok = exact(case.expected, found)
            tally.add([f"{case.kind}:{fmt}", f"kind:{case.kind}", f"id:{case.expected}"], ok)
            if not ok:
                got = found and found.expression
                tally.misses.append(f"{case.kind}/{case.name} [{fmt}] expected {case.expected}, got {got}")
    return tally
