"""The source connectors on real files built here (EPUB, git repository, PDF, LaTeX, post dumps)
and on the real papers and tweets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from core.config import load_config
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from jobs.readers.connectors import code as code_connector
from jobs.readers.connectors.books import iter_books, strip_gutenberg
from jobs.readers.connectors.code import LICENSE_HEAD_BYTES, combine, iter_code
from jobs.readers.connectors.papers import PUBLIC_DOMAIN, iter_papers, open_license_id
from jobs.readers.connectors.social import iter_social, mentions, parse_time
from jobs.readers.connectors.synthetic import iter_synthetic, verify_exercise
from jobs.readers.local import iter_sources
from tests.conftest import SHARED_DATA


def _by(
    rows: list[tuple[dict[str, Any], str | None]], key: str
) -> dict[str, tuple[dict[str, Any], str | None]]:
    return {Path(d["origin"]).name if key == "name" else d["annotations"][key]: (d, r) for d, r in rows}


# ---------------------------------------------------------------- books

GUTENBERG = """The Project Gutenberg eBook of Moby Dick

This eBook is for the use of anyone anywhere in the United States.

*** START OF THE PROJECT GUTENBERG EBOOK MOBY DICK ***

Call me Ishmael. Some years ago, never mind how long precisely.

*** END OF THE PROJECT GUTENBERG EBOOK MOBY DICK ***

Section 1. General Terms of Use and Redistributing Project Gutenberg electronic works
"""
SMALL_PRINT = """The Project Gutenberg Etext of Walden
**The Legal Small Print**
Ver.04.29.93*END*
*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*

When I wrote the following pages I lived alone, in the woods.

End of The Project Gutenberg Etext of Walden
"""


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (GUTENBERG, "Call me Ishmael. Some years ago, never mind how long precisely.\n"),
        (SMALL_PRINT, "When I wrote the following pages I lived alone, in the woods.\n"),
        ("No markers at all.\n", "No markers at all.\n"),
    ],
)
def test_strip_gutenberg_modern_and_small_print_markers(raw: str, body: str) -> None:
    assert strip_gutenberg(raw) == (body, raw != body)


def _epub(path: Path, first: str, spine_order: tuple[int, ...]) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("moby-test")
    book.set_title("Moby Dick")
    book.set_language("en")
    book.add_author("Herman Melville")
    book.add_metadata("DC", "rights", "Public domain in the USA.")
    book.add_metadata("DC", "date", "1851-10-18")
    chapters = []
    for i, (title, para) in enumerate(
        [("Loomings", first), ("The Carpet-Bag", "I stuffed a shirt or two into my old carpet-bag.")]
    ):
        chapter = epub.EpubHtml(title=title, file_name=f"c{i}.xhtml", lang="en")
        chapter.content = f"<h1>{title}</h1><p>{para}</p><script>var x = 1;</script>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *(chapters[i] for i in spine_order)]
    epub.write_epub(str(path), book)


def test_epub_chapters_in_spine_order_with_metadata(tmp_path: Path) -> None:
    _epub(tmp_path / "moby.epub", "Call me Ishmael.", spine_order=(1, 0))
    [(doc, reason)] = list(iter_books(tmp_path))
    assert reason is None
    # spine order (chapter 2 first); the navigation document and scripts left out
    assert doc["text"] == (
        "The Carpet-Bag\n\nI stuffed a shirt or two into my old carpet-bag.\n\nLoomings\n\nCall me Ishmael."
    )
    ann = doc["annotations"]
    assert (ann["book.title"], ann["book.author"], ann["book.language"]) == (
        "Moby Dick",
        "Herman Melville",
        "en",
    )
    assert (ann["book.format"], ann["book.chapters"], ann["book.gutenberg_stripped"]) == (
        "epub",
        "2",
        "false",
    )
    assert (doc["license"], doc["license_source"]) == (PUBLIC_DOMAIN, "epub:dc:rights")
    assert doc["created_at"] == datetime(1851, 10, 18, tzinfo=UTC)
    assert doc["source_type"] == "book" and doc["content_type"] == "application/epub+zip"
    assert doc["language"] is None  # left to language identification


def test_epub_gutenberg_header_in_first_chapter_is_stripped(tmp_path: Path) -> None:
    header = "The Project Gutenberg eBook of Moby Dick</p><p>*** START OF THE PROJECT GUTENBERG EBOOK ***"
    _epub(tmp_path / "moby.epub", header, spine_order=(0, 1))
    [(doc, _)] = list(iter_books(tmp_path))
    assert doc["text"] == "The Carpet-Bag\n\nI stuffed a shirt or two into my old carpet-bag.\n"
    assert doc["annotations"]["book.gutenberg_stripped"] == "true"


def test_html_chapter_folder_is_one_book_in_natural_order(tmp_path: Path) -> None:
    book = tmp_path / "walden"
    book.mkdir()
    for name, body in (("ch10.html", "Ten"), ("ch2.xhtml", "Two"), ("ch1.html", "One<br/>line")):
        (book / name).write_text(
            f"<html><head><title>x</title><style>p{{}}</style></head><body><p>{body}</p></body></html>"
        )
    (book / "style.css").write_text("p { color: red }")  # an asset, not a book
    (tmp_path / "_sources.json").write_text(
        json.dumps({"walden": {"origin": "gutenberg:205", "license": "PD"}})
    )
    [(doc, reason)] = list(iter_books(tmp_path))
    assert reason is None
    assert doc["text"] == "One\nline\n\nTwo\n\nTen"
    assert (doc["origin"], doc["license"], doc["license_source"]) == ("gutenberg:205", "PD", "_sources.json")
    assert (doc["annotations"]["book.format"], doc["annotations"]["book.chapters"]) == ("html", "3")


def test_bad_books_are_rejected_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "broken.epub").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "empty.txt").write_bytes(b"   \n")
    (tmp_path / "huge.txt").write_text("word " * 100)
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "bom.txt").write_bytes("\ufeffCaf\u00e9".encode())
    got = {
        name: reason
        for name, (_, reason) in _by(list(iter_books(tmp_path, max_file_bytes=100)), "name").items()
    }
    assert got == {
        "bom.txt": None,
        "broken.epub": "book_corrupt_epub:EpubException",
        "empty.txt": "ingest_empty_file",
        "huge.txt": "ingest_too_large:500",
        "scan.pdf": "book_unsupported_format:.pdf",
    }


# ---------------------------------------------------------------- code


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_DATE": "2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2024-01-02T03:04:05Z"}
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "init.defaultBranch=main"]
    out = subprocess.run([*cmd, *args], cwd=repo, check=True, capture_output=True, text=True, env=env)
    return out.stdout.strip()


CODE_TREE = {
    "src/main.py": "def main():\n    return 42\n",
    "Makefile": "all:\n\tpython src/main.py\n",
    "Dockerfile": "FROM python:3.11\n",
    "scripts/run": "#!/usr/bin/env bash\necho hi\n",
    "vendor/lib.js": "function f() { return 1; }\n",
    "node_modules/left-pad/index.js": "module.exports = 1;\n",
    "gen/api.pb.go": "package api\n",
    "gen/schema_pb2.py": "x = 1\n",
    "package-lock.json": "{}\n",
    "gen/client.go": "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage gen\n",
    "web/app.js": "var a=" + "1+" * 600 + "1;\n",
    "web/wide.css": ("a { color: red; }" * 8 + "\n") * 5,
    "assets/logo.png": "\x89PNG\r\n\x1a\n\x00\x00",
    "data/table.csv": "a,b\n1,2\n",
    "empty.py": "",
    ".gitignore": "build/\n",
}
MIT_TEXT = """MIT License

Copyright (c) 2024 Example Contributors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
BSD_CLAUSES = [
    "Copyright (c) 2024, Example Contributors\n\nRedistribution and use in source and binary forms, with or "
    "without\nmodification, are permitted provided that the following conditions are met:\n",
    "1. Redistributions of source code must retain the above copyright notice, this\n   list of conditions "
    "and the following disclaimer.\n",
    "2. Redistributions in binary form must reproduce the above copyright notice,\n   this list of "
    "conditions and the following disclaimer in the documentation\n   and/or other materials provided with "
    "the distribution.\n",
    "3. Neither the name of the copyright holder nor the names of its\n   contributors may be used to "
    "endorse or promote products derived from\n   this software without specific prior written permission.\n",
    'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"\nAND ANY EXPRESS OR IMPLIED '
    "WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE\nIMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A "
    "PARTICULAR PURPOSE ARE\nDISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE\n"
    "FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL\nDAMAGES (INCLUDING, BUT NOT "
    "LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR\nSERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS "
    "INTERRUPTION) HOWEVER\nCAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,\n"
    "OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE\nOF THIS SOFTWARE, EVEN "
    "IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.\n",
]


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(text.encode("latin-1"))


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_repository_tracked_files_languages_and_skip_rules(tmp_path: Path) -> None:
    repo = tmp_path / "demo-repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write_tree(repo, CODE_TREE | {"LICENSE": MIT_TEXT})
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    _git(repo, "remote", "add", "origin", "https://user:secret-token@example.org/team/demo-repo.git")
    _write_tree(repo, {"build/out.py": "ignored = True\n", "untracked.py": "x = 1\n"})
    head = _git(repo, "rev-parse", "HEAD")

    rows = list(iter_code(repo, "Apache-2.0"))
    got = {d["annotations"]["code.path"]: (d["annotations"].get("code.language"), r) for d, r in rows}
    assert got == {
        ".gitignore": (None, "code_unknown_language:.gitignore"),
        "Dockerfile": ("dockerfile", None),
        "Makefile": ("makefile", None),
        "assets/logo.png": (None, "ingest_binary_file"),
        "data/table.csv": (None, "code_unknown_language:.csv"),
        "empty.py": ("python", "ingest_empty_file"),
        "gen/api.pb.go": (None, "code_generated:protobuf"),
        "gen/client.go": ("go", "code_generated:code generated"),
        "gen/schema_pb2.py": (None, "code_generated:protobuf"),
        "node_modules/left-pad/index.js": (None, "code_vendored:node_modules/"),
        "package-lock.json": (None, "code_generated:lockfile"),
        "scripts/run": ("shell", None),
        "src/main.py": ("python", None),
        "vendor/lib.js": (None, "code_vendored:vendor/"),
        "web/app.js": ("javascript", "code_minified:max_line_length=1208"),
        "web/wide.css": ("css", "code_minified:mean_line_length=136"),
    }  # LICENSE is provenance; build/ is git-ignored; untracked.py is not in the repository
    doc = next(d for d, r in rows if d["annotations"]["code.path"] == "src/main.py")
    assert doc["text"] == CODE_TREE["src/main.py"] and doc["origin"] == "demo-repo/src/main.py"
    assert (doc["license"], doc["license_source"]) == ("MIT", "LICENSE")  # detected beats declared
    ann = doc["annotations"]
    assert (ann["code.commit"], ann["code.license_detected"]) == (head, "text")
    assert float(ann["code.license_confidence"]) > 0.9
    assert ann["code.remote"] == "https://example.org/team/demo-repo.git"  # credentials dropped
    assert doc["created_at"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert all(d["text"] == "" for d, r in rows if r)  # rejects carry provenance, not content


def test_plain_tree_unknown_license_hidden_dirs_and_symlinks(tmp_path: Path) -> None:
    _write_tree(
        tmp_path, {"a.rs": "fn main() {}\n", ".cache/b.rs": "x\n", "COPYING": "All rights reserved.\n"}
    )
    (tmp_path / "link.py").symlink_to("/etc/hostname")
    rows = list(iter_code(tmp_path))
    assert [(d["annotations"]["code.path"], r) for d, r in rows] == [
        ("a.rs", None),
        ("link.py", "ingest_symlink"),
    ]
    doc = rows[0][0]
    # "All rights reserved." grants nothing: no licence, not a guessed one
    assert (doc["license"], doc["license_source"], doc["annotations"]["code.license_detected"]) == (
        None,
        "COPYING",
        "none",
    )
    assert "code.commit" not in doc["annotations"] and "code.license_confidence" not in doc["annotations"]
    declared = next(d for d, _ in iter_code(tmp_path, "MIT"))
    assert (declared["license"], declared["annotations"]["code.license_detected"]) == ("MIT", "declared")


def _tree_license(root: Path, files: dict[str, str], declared: str | None = None) -> tuple[Any, ...]:
    """(license, license_source, code.license_detected) of a tree of `files` plus one source file."""
    _write_tree(root, files | {"main.py": "print(1)\n"})
    doc = next(d for d, _ in iter_code(root, declared))
    return doc["license"], doc["license_source"], doc["annotations"]["code.license_detected"]


COMMON_LICENSES = Path("/usr/share/common-licenses")


def _common_license(name: str) -> str:
    if not (COMMON_LICENSES / name).is_file():
        pytest.skip(f"{COMMON_LICENSES / name} not on this machine (Debian ships it)")
    return (COMMON_LICENSES / name).read_text()


@pytest.mark.parametrize(
    ("name", "spdx"),
    [
        ("Apache-2.0", "Apache-2.0"),
        ("BSD", "BSD-3-Clause"),
        ("GPL-3", "GPL-3.0-only"),
        ("MPL-2.0", "MPL-2.0"),
    ],
)
def test_real_license_file_gives_its_id(tmp_path: Path, name: str, spdx: str) -> None:
    assert _tree_license(tmp_path, {"LICENSE.txt": _common_license(name)}, "MIT") == (
        spdx,
        "LICENSE.txt",
        "text",
    )


def test_bsd_3_clause_is_not_bsd_2_clause(tmp_path: Path) -> None:
    three, two = tmp_path / "three", tmp_path / "two"
    assert _tree_license(three, {"LICENSE": "\n".join(BSD_CLAUSES)})[0] == "BSD-3-Clause"
    assert _tree_license(two, {"LICENSE": "\n".join(BSD_CLAUSES[:3] + BSD_CLAUSES[4:])})[0] == "BSD-2-Clause"


def test_rust_dual_license_files_are_alternatives(tmp_path: Path) -> None:
    files = {"LICENSE-APACHE": _common_license("Apache-2.0"), "LICENSE-MIT": MIT_TEXT}
    assert _tree_license(tmp_path, files) == ("MIT OR Apache-2.0", "LICENSE-APACHE, LICENSE-MIT", "text")


def test_huge_license_file_is_read_only_up_to_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = code_connector.detect

    def detect(text: str) -> Any:
        seen.append(len(text))
        return real(text)

    monkeypatch.setattr(code_connector, "detect", detect)
    (tmp_path / "main.py").write_text("print(1)\n")
    block = "This line repeats to fill the file.\n" * 28_000  # about 1 MB
    with (tmp_path / "LICENSE").open("w") as fh:
        fh.write(MIT_TEXT + "\n")
        for _ in range(100):  # 100 MB after the text (NULs would make it a binary file, not a licence)
            fh.write(block)
    doc = next(d for d, _ in iter_code(tmp_path))
    assert doc["license"] == "MIT" and seen and max(seen) <= LICENSE_HEAD_BYTES


@pytest.mark.parametrize(
    ("found", "expression"),
    [
        ({"LICENSE": "MIT", "COPYING": "MIT"}, "MIT"),
        ({"LICENSE-MIT": "MIT", "LICENSE-APACHE.txt": "Apache-2.0"}, "MIT OR Apache-2.0"),
        (
            {"LICENSE-MIT": "MIT", "LICENSE-APACHE": "Apache-2.0", "COPYING": "GPL-2.0-only"},
            "(MIT OR Apache-2.0) AND GPL-2.0-only",
        ),
        ({"LICENSE": "MIT", "COPYING": "Apache-2.0"}, "MIT AND Apache-2.0"),  # not the Rust file names
        (
            {
                "LICENSE": "Apache-2.0 OR BSD-3-Clause",
                "LICENSE.APACHE": "Apache-2.0",
                "LICENSE.BSD": "BSD-3-Clause",
            },
            "Apache-2.0 OR BSD-3-Clause",
        ),  # the texts of the licences LICENSE names
        (
            {"LICENSE": "GPL-2.0-only", "COPYING": "LGPL-2.1-only OR MIT"},
            "GPL-2.0-only AND (LGPL-2.1-only OR MIT)",
        ),
        ({}, None),
    ],
)
def test_combine_license_files(found: dict[str, str], expression: str | None) -> None:
    assert combine(found) == expression


# ---------------------------------------------------------------- papers

PAPERS = SHARED_DATA / "papers"
JATS_EXPECTED = {  # file: (license, license_source, doi, pmcid, created_at)
    "1471-2180-11-174.nxml": (
        "CC-BY-2.0",
        "jats:license",
        "10.1186/1471-2180-11-174",
        "PMC3166277",
        "2011-08-02",
    ),
    "ehp-116-1694.nxml": (PUBLIC_DOMAIN, "jats:license", "10.1289/ehp.11570", "PMC2599765", "2008-08-01"),
    "mds526.nxml": ("CC-BY-NC-3.0", "jats:license", "10.1093/annonc/mds526", "PMC3574550", "2012-11-12"),
    "pntd.0002065.nxml": (
        "CC-BY",
        "jats:license",
        "10.1371/journal.pntd.0002065",
        "PMC3585041",
        "2013-02-28",
    ),
    "pone.0000217.nxml": (
        "CC-BY",
        "jats:copyright-statement",
        "10.1371/journal.pone.0000217",
        "PMC1790863",
        "2007-02-14",
    ),
    "6605965a.nxml": (None, None, "10.1038/sj.bjc.6605965", "PMC2994229", "2010-11-02"),
}


def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} absent (the shared data sits beside the project)")
    return path


def test_jats_papers_metadata_license_and_section_order() -> None:
    rows = list(iter_papers(_shared(PAPERS)))
    assert len(rows) == 8 and all(r is None for _, r in rows)
    got = {d["annotations"]["paper.path"]: d for d, _ in rows}
    for name, (license_id, source, doi, pmcid, day) in JATS_EXPECTED.items():
        doc = got[name]
        assert (doc["license"], doc["license_source"]) == (license_id, source), name
        assert (doc["annotations"]["paper.doi"], doc["annotations"]["paper.pmcid"]) == (doi, pmcid)
        assert doc["origin"] == f"https://doi.org/{doi}" and doc["source_type"] == "paper"
        assert doc["created_at"] == datetime.fromisoformat(day).replace(tzinfo=UTC)
    doc = got["1471-2180-11-174.nxml"]
    text, ann = doc["text"], doc["annotations"]
    assert text.startswith(
        "Factors influencing lysis time stochasticity in bacteriophage λ\n\nAbstract\n\nBackground"
    )
    assert ann["paper.journal"] == "BMC Microbiology" and ann["paper.pmid"] == "21810267"
    # body sections in document order, after the abstract
    body = text.index("\n\nConclusions\n\n")  # the abstract's last part
    titles = ("Background", "Results", "Discussion", "Manipulation of holin production rate")
    order = [text.index(f"\n\n{title}\n\n", body) for title in titles]
    assert order == sorted(order)
    # captions kept where the float sits; table cells and the reference list dropped
    assert "Figure 1. Schematic presentation of two models of holin hole formation." in text
    assert "Table 1. Effects of holin allelic sequences on the stochasticity of lysis time." in text
    assert "45.7" not in text and "Microbial cell individuality and the underlying sources" not in text


@pytest.mark.parametrize(
    ("text", "spdx"),
    [
        ("http://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-nc-nd/3.0/igo", "CC-BY-NC-ND-3.0"),
        ("http://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0"),
        ("Creative Commons Attribution 4.0 International License", "CC-BY-4.0"),
        ("Creative Commons Attribution-NonCommercial-ShareAlike License", "CC-BY-NC-SA"),
        ("This article is distributed under a CC BY-NC 4.0 license", "CC-BY-NC-4.0"),
        ("This work is in the public domain.", PUBLIC_DOMAIN),
        ("All rights reserved.", None),
    ],
)
def test_open_license_id(text: str, spdx: str | None) -> None:
    assert open_license_id(text) == spdx


LATEX = r"""\documentclass{article}
\usepackage{amsmath}
\newcommand{\R}{\mathbb{R}}
\title{A \emph{Tiny} Study of Things}
\author{Ada Lovelace \and Alan Turing}
\begin{document}
\maketitle
\begin{abstract}
We count things~\cite{knuth} and find $n^2$ of them.
\end{abstract}
\section{Introduction}\label{sec:intro}
% a private note that must not appear
\input{intro}
\begin{figure}\includegraphics[width=3cm]{plot.png}\caption{Things over time.}\end{figure}
\begin{table}\begin{tabular}{cc} secretcell & 2 \\ \end{tabular}\end{table}
\section{Results}
As Section~\ref{sec:intro} shows, $E = mc^2$.
\begin{thebibliography}{9}\bibitem{knuth} D. Knuth, The Art of Computer Programming.\end{thebibliography}
\end{document}
"""


def test_latex_source_to_text(tmp_path: Path) -> None:
    (tmp_path / "main.tex").write_text(LATEX)
    (tmp_path / "intro.tex").write_text("Things are \\textbf{everywhere}.\n")
    (tmp_path / "plot.png").write_bytes(b"\x89PNG")  # an asset of the LaTeX folder
    got = _by(list(iter_papers(tmp_path)), "paper.path")
    assert set(got) == {"main.tex", "intro.tex"}
    assert got["intro.tex"][1] == "paper_latex_no_document"  # a fragment, included by main.tex
    doc, reason = got["main.tex"]
    assert reason is None
    text, ann = doc["text"], doc["annotations"]
    assert text.startswith("A Tiny Study of Things\n\n")
    assert "Introduction\n\nThings are everywhere." in text and "Things over time." in text
    assert "Results\n\nAs Section shows, $E = mc^2$." in text  # math verbatim, references dropped
    for absent in ("usepackage", "private note", "secretcell", "Knuth", "§", "mathbb"):
        assert absent not in text, absent
    assert ann["paper.title"] == "A Tiny Study of Things"
    assert ann["paper.abstract"] == "We count things and find $n^2$ of them."
    assert (ann["paper.format"], ann["paper.latex_inputs"]) == ("latex", "intro.tex")


def _minimal_pdf(pages: list[str], info: dict[str, str]) -> bytes:
    """A valid PDF written by hand: one Helvetica text line per page, an /Info dictionary."""
    n = len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(("<< " + " ".join(f"/{k} ({v})" for k, v in info.items()) + " >>").encode())
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    return bytes(out + b"startxref\n%d\n%%%%EOF\n" % xref)


def test_pdf_pages_metadata_and_bad_pdfs(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    info = {"Title": "On Small Things", "Author": "Grace Hopper", "CreationDate": "D:20200102030405Z"}
    (tmp_path / "paper.pdf").write_bytes(_minimal_pdf(["Hello from page one.", "And page two."], info))
    writer = PdfWriter(clone_from=PdfReader(tmp_path / "paper.pdf"))
    writer.encrypt("secret")
    writer.write(tmp_path / "locked.pdf")
    (tmp_path / "truncated.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (tmp_path / "blank.pdf").write_bytes(_minimal_pdf([""], {"Title": "Blank"}))
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04")
    got = _by(list(iter_papers(tmp_path)), "paper.path")
    doc, reason = got["paper.pdf"]
    assert reason is None
    assert doc["text"] == "Hello from page one.\n\nAnd page two."
    ann = doc["annotations"]
    assert (ann["paper.title"], ann["paper.authors"], ann["paper.pages"]) == (
        "On Small Things",
        "Grace Hopper",
        "2",
    )
    assert doc["created_at"] == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got["locked.pdf"][1] == "paper_encrypted_pdf"
    assert got["truncated.pdf"][1] == "paper_corrupt_pdf:PdfStreamError"
    assert got["blank.pdf"][1] == "paper_no_text"
    assert got["notes.docx"][1] == "paper_unsupported_format:.docx"


# ---------------------------------------------------------------- social


def test_davidson_tweets_with_field_mapping() -> None:
    dump = _shared(SHARED_DATA / "social" / "davidson-tweets.csv")
    rows = list(iter_social(dump, {"id": "", "text": "tweet"}))
    assert len(rows) == 24_783 and all(r is None for _, r in rows)
    assert len({d["id"] for d, _ in rows}) == 24_783
    first = rows[0][0]
    assert first["origin"] == "davidson-tweets.csv#0" and first["source_type"] == "social"
    assert first["text"].startswith("!!! RT @mayasolovely: As a woman you shouldn't complain")
    assert json.loads(first["annotations"]["social.mentions"]) == ["@mayasolovely"]
    assert json.loads(rows[2][0]["annotations"]["social.mentions"]) == ["@UrKindOfBrand", "@80sbaby4life"]


JSONL = [
    json.dumps(
        {
            "id": "p1",
            "text": "Hi @alice and @bob_2, mail me at x@example.org @alice",
            "user": {"screen_name": "carol", "id": 7},
            "created_at": "2021-03-04T05:06:07Z",
            "conversation_id": "t9",
        }
    ),
    '{"id": "p2", "text": "broken',
    json.dumps({"id": "p3", "text": "   ", "author": "dan"}),
    json.dumps({"id": "p1", "text": "same id again"}),
    json.dumps({"id": 4, "body": "Epoch millis", "time": 1614834367000, "reply_to": "p1"}),
    json.dumps({"id": "p5", "text": "Twitter time", "created_at": "Wed Oct 10 20:19:24 +0000 2018"}),
    json.dumps({"text": "no id, odd time \ud83d", "created_at": "yesterday-ish"}),  # half an emoji
    "[1, 2]",
]


def test_jsonl_dump_keeps_good_posts_and_rejects_bad_lines(tmp_path: Path) -> None:
    dump = tmp_path / "posts.jsonl"
    dump.write_text("\n".join(JSONL) + "\n\n")
    rows = list(iter_social(dump))
    assert [(d["origin"], r) for d, r in rows] == [
        ("posts.jsonl#p1", None),
        ("posts.jsonl#line:2", "social_malformed_json:Unterminated string starting at"),
        ("posts.jsonl#p3", "social_missing_text"),
        ("posts.jsonl#p1", "social_duplicate_id"),
        ("posts.jsonl#4", None),
        ("posts.jsonl#p5", None),
        ("posts.jsonl#line:7", None),
        ("posts.jsonl#line:8", "social_not_an_object:list"),
    ]
    first = rows[0][0]
    assert first["annotations"]["social.author"] == "carol" and first["annotations"]["social.thread"] == "t9"
    assert json.loads(first["annotations"]["social.mentions"]) == ["@alice", "@bob_2"]
    assert first["created_at"] == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert rows[1][0]["text"] == '{"id": "p2", "text": "broken'  # the raw line, for inspection
    assert rows[4][0]["created_at"] == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert rows[4][0]["annotations"]["social.reply_to"] == "p1"
    assert rows[5][0]["created_at"] == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    odd = rows[6][0]
    assert odd["created_at"] is None and odd["annotations"]["social.created_at_raw"] == "yesterday-ish"
    assert odd["text"] == "no id, odd time ?"  # a lone surrogate cannot be stored as UTF-8


def test_csv_in_latin1_and_json_array(tmp_path: Path) -> None:
    (tmp_path / "forum.csv").write_bytes(
        "post_id,body,username,timestamp\n"
        "1,Caf\u00e9 cr\u00e8me for @zo\u00eb_,ren\u00e9,2020-05-06 07:08:09\n"
        '2,"multi\nline",x,1588748889\n'.encode("latin-1")
    )
    (tmp_path / "export.json").write_text(json.dumps([{"id": "a", "content": "from an array"}, "oops"]))
    (tmp_path / "README.md").write_text("not a dump")
    rows = list(iter_social(tmp_path))
    assert [(d["origin"], r) for d, r in rows] == [
        ("export.json#a", None),
        ("export.json#line:2", "social_not_an_object:str"),
        ("forum.csv#1", None),
        ("forum.csv#2", None),
    ]
    post = rows[2][0]
    assert post["text"] == "Caf\u00e9 cr\u00e8me for @zo\u00eb_"
    assert (
        post["annotations"]["ingest.encoding"] == "cp1252"  # detected, as for a crawled page
        and post["annotations"]["social.author"] == "ren\u00e9"
    )
    assert json.loads(post["annotations"]["social.mentions"]) == []  # not a Twitter handle: ASCII only
    assert post["created_at"] == datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert rows[3][0]["text"] == "multi\nline" and rows[3][0]["created_at"] == datetime(
        2020, 5, 6, 7, 8, 9, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-03-04T05:06:07+02:00", datetime(2021, 3, 4, 3, 6, 7, tzinfo=UTC)),
        (1614834367, datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("Thu, 04 Mar 2021 05:06:07 GMT", datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)),
        ("", None),
        (True, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_mentions_skip_emails() -> None:
    assert mentions("ask @a_b or @c, not d@e.com; @a_b again") == ["@a_b", "@c"]


# ---------------------------------------------------------------- synthetic

_STEP = re.compile(r"(\$?\d+(?:\s*[×−+]\s*\$?\d+)+)\s*=\s*\$?(\d+)")  # `a × b + c = d`, ÷ lines aside


def test_synthetic_documents_are_seeded_correct_and_verified() -> None:
    docs = [d for d, r in iter_synthetic(40, seed=3) if r is None]
    assert len(docs) == 40
    assert docs == [d for d, _ in iter_synthetic(40, seed=3)]
    assert docs[:5] == [d for d, _ in iter_synthetic(5, seed=3)]  # document i does not depend on the count
    assert [d["text"] for d, _ in iter_synthetic(5, seed=4)] != [d["text"] for d in docs[:5]]
    for i, doc in enumerate(docs):
        ann = doc["annotations"]
        assert (ann["synthetic.seed"], ann["synthetic.index"]) == ("3", str(i))
        assert (doc["license"], doc["license_source"], doc["source_type"]) == (
            "CC0-1.0",
            "generated",
            "synthetic",
        )
        if ann["synthetic.generator"] == "python_exercise":
            assert ann["synthetic.verified"] == "true" and "assert " in doc["text"]
            continue
        steps = doc["text"].split("Solution:\n")[1]
        assert len(_STEP.findall(steps)) >= 2
        for expression, value in _STEP.findall(steps):  # every worked step's arithmetic is right
            python = expression.replace("$", "").replace("×", "*").replace("−", "-")
            assert eval(python) == int(value), (expression, value)  # digits and + - * only
        assert doc["text"].endswith(f"Answer: {ann['synthetic.answer']}\n")
    assert {d["annotations"]["synthetic.generator"] for d in docs} == {
        "arithmetic_word_problem",
        "python_exercise",
    }


def test_verify_exercise_catches_wrong_and_unsafe_solutions() -> None:
    tests = "assert double(2) == 4\nassert double(0) == 0"
    assert verify_exercise("def double(x):\n    return x * 2\n", tests) is None
    assert verify_exercise("def double(x):\n    return x + 2\n", tests) == "AssertionError: "
    failure = verify_exercise("def double(x):\n    return len(open('/etc/passwd').read())\n", tests)
    assert failure == "NameError: name 'open' is not defined"
    assert (
        verify_exercise("import os\ndef double(x):\n    return 2 * x\n", tests)
        == "ImportError: __import__ not found"
    )


# ---------------------------------------------------------------- dispatcher and stage


def _sources(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_text(GUTENBERG)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "m.py").write_text("x = 1\n")
    (tmp_path / "code" / "blob.py").write_bytes(b"\x00" * 10)
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "p.tex").write_text(LATEX)
    (tmp_path / "posts.jsonl").write_text("\n".join(JSONL))
    return {
        "books_dir": str(tmp_path / "books"),
        "code_dir": str(tmp_path / "code"),
        "papers_dir": str(tmp_path / "papers"),
        "social_paths": [str(tmp_path / "posts.jsonl")],
        "synthetic_count": 4,
        "synthetic_seed": 1,
    }


def test_iter_sources_every_kind_and_include_filter(tmp_path: Path) -> None:
    sources = _sources(tmp_path)
    rows = list(iter_sources(load_config(overrides={"sources": sources}).sources))
    kinds = [d["source_type"] for d, _ in rows]
    assert sorted(set(kinds)) == ["book", "code", "paper", "social", "synthetic"]
    assert kinds == sorted(kinds, key=["book", "code", "paper", "social", "synthetic"].index)
    only = load_config(overrides={"sources": {**sources, "include": ["code", "synthetic"]}}).sources
    assert {d["source_type"] for d, _ in iter_sources(only)} == {"code", "synthetic"}
    missing = load_config(overrides={"sources": {"papers_dir": str(tmp_path / "nope")}}).sources
    with pytest.raises(FileNotFoundError, match=r"config field 'sources\.papers_dir'"):
        list(iter_sources(missing))


def test_run_ingest_writes_documents_and_rejects(tmp_path: Path) -> None:
    from jobs.spark.frame import StageContext
    from jobs.spark.sources import run_ingest

    cfg = load_config(overrides={"sources": _sources(tmp_path)})
    out = tmp_path / "out"
    stats = run_ingest(StageContext(spark=None, cfg=cfg, inputs={}, manifests={}, out=out))  # type: ignore[arg-type]
    assert stats == {
        "documents_by_source": {"book": 1, "code": 1, "paper": 1, "social": 4, "synthetic": 4},
        "rejected_by_reason": {
            "ingest_binary_file": 1,
            "social_duplicate_id": 1,
            "social_malformed_json": 1,
            "social_missing_text": 1,
            "social_not_an_object": 1,
        },
    }
    data, rejected = pq.read_table(out / "data"), pq.read_table(out / "rejected")
    assert data.schema.equals(DOCUMENT_SCHEMA) and rejected.schema.equals(REJECTED_SCHEMA)
    assert data.num_rows == 11 and rejected.num_rows == 5
    assert set(rejected.column("reject_stage").to_pylist()) == {"ingest"}


def test_hostile_git_config_runs_nothing(tmp_path: Path) -> None:
    """A repository's .git/config may name programs (fsmonitor, gpg); reading it must run none."""
    import subprocess

    from jobs.readers.connectors.code import list_files

    repo, marker = tmp_path / "repo", tmp_path / "pwned"
    repo.mkdir()
    (repo / "a.py").write_text("print(1)\n")
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=n"]
    for args in (["init", "-q"], ["add", "a.py"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    for key in ("core.fsmonitor", "gpg.program", "core.pager"):
        subprocess.run([*git, "config", key, f"touch {marker}; echo"], check=True)
    subprocess.run([*git, "config", "log.showSignature", "true"], check=True)
    files, facts = list_files(repo)
    assert files == ["a.py"] and facts["code.commit"]
    assert not marker.exists()
