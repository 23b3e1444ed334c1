"""Licence detection on real texts found on this machine, none of them the database's own files
(jobs/copyright/license_corpus.py builds the corpora: Debian's common-licenses, DEP-5 licence
paragraphs, installed packages' licence files, C and Go source headers, each in seven formats).
Floors are issue 14's bar: exact SPDX match >= 0.95 overall, >= 0.97 of texts without a licence left
unclaimed. A missing system folder skips its test; an empty corpus fails it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jobs.copyright import license_corpus as corpus
from jobs.copyright import licenses
from jobs.copyright.licenses import detect


@pytest.fixture(scope="module")
def tallies() -> dict[str, corpus.Tally]:
    kinds = {
        "common-licenses": corpus.common_licenses(),
        "dep5": corpus.dep5(),
        "dist-info": corpus.dist_info(),
        "source": corpus.source_headers(),
    }
    return {kind: corpus.evaluate(cases) for kind, cases in kinds.items()}


@pytest.mark.skipif(not corpus.COMMON.is_dir(), reason="no /usr/share/common-licenses on this system")
def test_debian_common_licenses_in_every_format(tallies: dict[str, corpus.Tally]) -> None:
    tally = tallies["common-licenses"]
    assert tally.hits["kind:common-licenses"][1] >= 10 * len(corpus.FORMATS)
    assert tally.rate() >= 0.98, tally.misses  # measured 1.0


@pytest.mark.skipif(not corpus.DOCS.is_dir(), reason="no /usr/share/doc on this system")
def test_dep5_licence_paragraphs(tallies: dict[str, corpus.Tally]) -> None:
    tally = tallies["dep5"]
    assert tally.hits["kind:dep5"][1] >= 50 * len(corpus.FORMATS)
    # Floor just under the measured 0.936: the misses left are Debian names coarser than the text
    # (MIT over MIT-Modern-Variant, ISC over ISC-Veillard, NTP over HPND-Pbmplus), paragraphs whose
    # text contradicts their name (a CC-BY-3.0 text named CC-BY-SA-3.0, a "GPL-2" pointer under
    # "BSD-3-clause") and licence variants ScanCode has no rule for; scripts/license_eval.py --misses.
    assert tally.rate() >= 0.93, tally.misses[:40]


def test_installed_packages_licence_files(tallies: dict[str, corpus.Tally]) -> None:
    tally = tallies["dist-info"]
    assert tally.hits["kind:dist-info"][1] >= 10 * len(corpus.FORMATS)
    # Floor just under the measured 0.941; the misses are licence files bundling third-party licences
    # (grpcio's MPL-2.0, mypy's PSF text) that the METADATA expression leaves out.
    assert tally.rate() >= 0.94, tally.misses


@pytest.mark.skipif(not corpus.INCLUDE.is_dir(), reason="no /usr/include on this system")
def test_c_and_go_source_headers(tallies: dict[str, corpus.Tally]) -> None:
    tally = tallies["source"]
    assert tally.hits["kind:source"][1] >= 20 * len(corpus.FORMATS)
    assert tally.rate() >= 0.98, tally.misses[:40]  # measured 1.0


@pytest.mark.skipif(not corpus.DOCS.is_dir(), reason="no /usr/share/doc on this system")
def test_issue_14_bar_over_all_corpora(tallies: dict[str, corpus.Tally]) -> None:
    """Hundreds of examples over at least 30 SPDX ids; the overall exact-match rate."""
    merged = corpus.Tally()
    for tally in tallies.values():
        for key, (hit, total) in tally.hits.items():
            merged.hits[key][0] += hit
            merged.hits[key][1] += total
    examples = sum(merged.hits[k][1] for k in merged.hits if k.startswith("kind:")) // len(corpus.FORMATS)
    assert examples >= 300 and merged.ids >= 30, (examples, merged.ids)
    assert merged.rate() >= 0.95, merged.rate()


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
    texts = corpus.negatives()
    claimed = [(t[:80], found.expression) for t in texts if (found := detect(t)) is not None]
    assert len(texts) >= 200
    assert 1 - len(claimed) / len(texts) >= 0.97, claimed  # issue 14's bar
    assert all(detect(t) is None for t in corpus.MENTIONS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Text and images: https://creativecommons.org/licenses/by-sa/4.0/ unless noted.", "CC-BY-SA-4.0"),
        ("Released under CC0, see http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        ("Licence: https://spdx.org/licenses/BSD-2-Clause.html", "BSD-2-Clause"),
        ("See /usr/share/common-licenses/GPL-3 (or, at your option, any later version).", "GPL-3.0-or-later"),
        ("On Debian systems the text is in /usr/share/common-licenses/Artistic.", "Artistic-1.0-Perl"),
    ],
)
def test_links_and_debian_pointers(text: str, expected: str) -> None:
    found = detect(text)
    assert found is not None and found.expression == expected, found


def test_notice_for_the_lesser_gpl_is_not_the_gpl() -> None:
    """The words "Lesser" and the version number decide the licence though few 5-grams hold them."""
    notice = (
        "This library is free software; you can redistribute it and/or modify it under the terms of the "
        "GNU Lesser General Public License as published by the Free Software Foundation; either version "
        "{v} of the License, or (at your option) any later version."
    )
    assert (found := detect(notice.format(v="2.1"))) and found.expression == "LGPL-2.1-or-later"
    assert (found := detect(notice.format(v="3"))) and found.expression == "LGPL-3.0-or-later"
    gpl = notice.replace("Lesser ", "").replace("library", "program")
    assert (found := detect(gpl.format(v="2"))) and found.expression == "GPL-2.0-or-later"


def test_hostile_texts_finish_quickly() -> None:
    """CAP_BYTES bounds the work: only the head and tail of a text are read."""
    started = time.perf_counter()
    assert detect("x" * 10_000_000) is None
    assert detect("word " * 10_000_000) is None
    tail = detect("lorem ipsum " * 4_500_000 + "\nSPDX-License-Identifier: MIT\n")  # 54 MB
    assert tail is not None and tail.expression == "MIT" and tail.evidence[0].start > 50_000_000
    assert time.perf_counter() - started < 10


def test_index_hashes_are_stable_and_the_cache_is_rebuilt_when_corrupt(tmp_path: Path) -> None:
    """Shingle hashes do not depend on PYTHONHASHSEED, so a cached index is valid in every process."""
    code = "from jobs.copyright.licenses import _shingles; print(int(_shingles('a b c d e f'.split()).sum()))"
    root = Path(__file__).resolve().parents[1]
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(runs) == 1
    index = licenses.load_index()
    path = tmp_path / "index.npz"
    licenses._write_index(index, path)
    again = licenses._read_index(path)
    assert np.array_equal(again.keys, index.keys) and again.references == index.references
    assert again.ids == index.ids


def test_a_corrupt_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = licenses._cache_path()
    assert path is not None
    licenses._write_index(licenses.load_index(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a write cut short
    rebuilt = licenses.load_index.__wrapped__()
    assert np.array_equal(rebuilt.keys, licenses.load_index().keys)
    assert np.array_equal(licenses._read_index(path).keys, rebuilt.keys)  # and written again


def test_cache_folder_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = licenses._cache_path()
    assert path is not None and path.parent == tmp_path / "lmforge"
    assert path.parent.stat().st_mode & 0o777 == 0o700
