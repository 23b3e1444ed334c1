"""Licence detection on real texts found on this machine, none of them the database's own files:
Debian's /usr/share/common-licenses (Debian's copies, reformatted below), the standalone licence
paragraphs of DEP-5 /usr/share/doc/*/copyright files (Debian short names mapped to SPDX), and the
licence files of the installed Python packages (expected id from METADATA `License-Expression`).
Each text is also reflowed, comment-wrapped (`#`, `//`, ` * `) and given a copyright header.
Negatives: Python standard library docstrings, pydoc topics and sentences that only talk about
licences. A missing system folder skips its test; an empty corpus fails it."""

from __future__ import annotations

import ast
import collections
import re
import sysconfig
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from jobs.copyright.licenses import detect, normalise_expression

COMMON = Path("/usr/share/common-licenses")
DOCS = Path("/usr/share/doc")
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
MENTIONS = [
    "See the LICENSE file for details.", "This project is licensed; ask the authors for terms.",
    "Licence fees are due by March. Contact the licensing office for a new driving licence.",
    "We compared the GPL and the MIT licence in a blog post about open source economics.",
    "The software license agreement was signed by both parties yesterday.",
    "Copyright law differs between countries; consult a lawyer about fair use.",
    "Open source licenses such as Apache, BSD and GPL are popular on GitHub.",
    "pip show prints a package's License field, which may be empty.",
]  # fmt: skip


def _reflow(text: str) -> str:
    return "\n\n".join(
        textwrap.fill(" ".join(p.split()), 61) for p in re.split(r"\n\s*\n", text) if p.strip()
    )


def _wrap(prefix: str) -> Callable[[str], str]:
    return lambda text: "\n".join(prefix + line for line in _reflow(text).splitlines())


FORMATS: dict[str, Callable[[str], str]] = {
    "reflowed": _reflow,
    "hash-comment": _wrap("# "),
    "slash-comment": _wrap("// "),
    "star-comment": lambda t: "/*\n" + _wrap(" * ")(t) + "\n */\nint main(void) { return 0; }\n",
    "copyright-header": lambda t: "Copyright (c) 2003-2021 Jane Doe <jane@example.org>\n\n" + _reflow(t),
}


def _common_licenses() -> list[tuple[str, str, str]]:
    return [
        (f"common-licenses/{name}", spdx, (COMMON / name).read_text(encoding="utf-8"))
        for name, spdx in COMMON_IDS.items()
        if (COMMON / name).is_file()
    ]


def _dep5() -> list[tuple[str, str, str]]:
    """Standalone `License:` paragraphs with a body of two lines or more, one per short name and text."""
    out: dict[tuple[str, str], tuple[str, str, str]] = {}
    for path in sorted(DOCS.glob("*/copyright")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        if "copyright-format" not in raw[:300]:
            continue
        for paragraph in re.split(r"\n[ \t]*\n", raw):
            m = re.match(r"License:[ \t]*(\S+)[ \t]*\n((?:[ \t].*\n?){2,})", paragraph + "\n")
            if not m or re.search(r"^Files:", paragraph, re.M) or m.group(1).lower() not in DEBIAN_IDS:
                continue
            body = "\n".join("" if line.strip() == "." else line[1:] for line in m.group(2).splitlines())
            key = (m.group(1).lower(), " ".join(body.split())[:300])
            out.setdefault(key, (f"dep5/{path.parent.name}/{m.group(1)}", DEBIAN_IDS[key[0]], body))
    return list(out.values())


def _dist_info() -> list[tuple[str, str, str]]:
    """Licence files of installed packages whose METADATA names one SPDX id (License-Expression)."""
    out = []
    for meta in sorted(SITE.glob("*.dist-info/METADATA")):
        m = re.search(r"^License-Expression:[ \t]*(\S+)[ \t]*$", meta.read_text(errors="replace"), re.M)
        files = sorted((meta.parent / "licenses").glob("*")) + sorted(meta.parent.glob("LICEN[CS]E*"))
        if m and files and files[0].is_file():
            expected, known = normalise_expression(m.group(1))
            if known:
                out.append((f"dist-info/{meta.parent.name}", expected, files[0].read_text(errors="replace")))
    return out


def _rates(cases: list[tuple[str, str, str]]) -> tuple[float, dict[str, list[int]], list[str]]:
    per_kind: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    misses = []
    for name, expected, text in cases:
        for kind, fmt in {"as-is": lambda t: t, **FORMATS}.items():
            found = detect(fmt(text))
            ok = found is not None and found.expression == expected
            per_kind[f"{name.split('/')[0]}:{kind}"][0] += ok
            per_kind[f"{name.split('/')[0]}:{kind}"][1] += 1
            per_kind[f"id:{expected}"][0] += ok
            per_kind[f"id:{expected}"][1] += 1
            if not ok:
                misses.append(f"{name} [{kind}] expected {expected}, got {found and found.expression}")
    total = [
        sum(v[0] for k, v in per_kind.items() if k.startswith("id:")),
        sum(v[1] for k, v in per_kind.items() if k.startswith("id:")),
    ]
    return total[0] / total[1], dict(per_kind), misses


@pytest.mark.skipif(not COMMON.is_dir(), reason="no /usr/share/common-licenses on this system")
def test_debian_common_licenses_in_every_format() -> None:
    cases = _common_licenses()
    assert len(cases) >= 10
    rate, _, misses = _rates(cases)
    assert rate >= 0.95, (rate, misses)


@pytest.mark.skipif(not DOCS.is_dir(), reason="no /usr/share/doc on this system")
def test_dep5_licence_paragraphs() -> None:
    cases = _dep5()
    assert len(cases) >= 50
    rate, per_kind, misses = _rates(cases)
    print(per_kind)
    assert rate >= 0.6, (rate, misses[:40])  # regression floor, issue 14 asks 0.95: not reached yet


def test_installed_packages_licence_files() -> None:
    cases = _dist_info()
    assert len(cases) >= 10
    rate, per_kind, misses = _rates(cases)
    print(per_kind)
    assert rate >= 0.85, (rate, misses)  # regression floor, issue 14 asks 0.95: not reached yet


def test_spdx_tags_normalised() -> None:
    cases = {
        "// SPDX-License-Identifier: GPL-2.0+": "GPL-2.0-or-later",
        "/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */":
            "GPL-2.0-only WITH Linux-syscall-note",
        "# SPDX-License-Identifier: (mit OR Apache-2.0)": "(MIT OR Apache-2.0)",
        "-- SPDX-License-Identifier: LGPL-2.1-or-later AND BSD-3-Clause":
            "LGPL-2.1-or-later AND BSD-3-Clause",
        "SPDX-License-Identifier: GPL-2.0-or-later WITH Classpath-exception-2.0":
            "GPL-2.0-or-later WITH Classpath-exception-2.0",
    }  # fmt: skip
    for text, expected in cases.items():
        found = detect("int x;\n" + text + "\n")
        assert found is not None and found.expression == expected, (text, found)
        assert found.evidence[0].rule == "spdx-tag" and found.confidence == 1.0


def test_texts_without_a_licence_stay_unknown() -> None:
    import pydoc_data.topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [t for t in pydoc_data.topics.topics.values() if len(t) > 200] + MENTIONS
    for path in sorted(stdlib.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8", errors="replace")))
        if doc:
            texts.append(doc)
    claimed = [(t[:80], found.expression) for t in texts if (found := detect(t)) is not None]
    assert len(texts) >= 200
    assert 1 - len(claimed) / len(texts) >= 0.97, claimed
    assert all(detect(t) is None for t in MENTIONS)
