"""Real benchmarks and real documents for the decontamination tests (tests/test_decontam.py).

Benchmarks, written as the files a user supplies (jobs/safety/evalsets.py):
- `python/reference.jsonl`: paragraphs of the Python language reference (`pydoc_data.topics`), one
  question-like record each: {"id", "question", "passage", "choices"}. Always present.
- `licenses.txt`: paragraphs of the GNU GPL 3, Apache 2.0 and MPL 2.0 (/usr/share/common-licenses).
- `papers.csv`: paragraphs of the PubMed Central articles in ../shared/data/papers (columns id,
  passage, answer).
- `debian/readmes.txt`: paragraphs of the plain-text READMEs in /usr/share/doc.
The last three are skipped where their source is absent.

Real documents: docstrings of at least 300 characters in this interpreter's standard library
(pydoc_data excluded), distinct, files in sorted order. The licences, papers and Debian READMEs are
unrelated to them; the language reference is not (the stdlib may really quote it).
"""

from __future__ import annotations

import csv
import html
import json
import random
import re
import sysconfig
import textwrap
from functools import cache
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LICENSES = Path("/usr/share/common-licenses")
DOCS = Path("/usr/share/doc")
RELATED = "python/reference"
MIN_ITEM_WORDS = 15
_TRIPLE = re.compile(r'"""(.*?)"""', re.S)
_TAG = re.compile(r"<[^>]+>")
_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.S)


def paragraphs(text: str, min_words: int = MIN_ITEM_WORDS) -> list[str]:
    """Blank-line separated paragraphs of at least `min_words` words, whitespace collapsed."""
    found = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return [p for p in found if len(p.split()) >= min_words]


@cache
def reference_items() -> list[str]:
    from pydoc_data.topics import topics

    return [p for _, text in sorted(topics.items()) for p in paragraphs(text)]


@cache
def license_items() -> list[str]:
    names = ("GPL-3", "Apache-2.0", "MPL-2.0")
    return [p for n in names if (LICENSES / n).is_file() for p in paragraphs((LICENSES / n).read_text())]


@cache
def paper_items() -> list[str]:
    items: list[str] = []
    for path in sorted((SHARED_DATA / "papers").glob("*.nxml")):
        for m in _PARAGRAPH.finditer(path.read_text("utf-8", "replace")):
            text = " ".join(html.unescape(_TAG.sub(" ", m.group(1))).split())
            if len(text.split()) >= MIN_ITEM_WORDS:
                items.append(text)
    return items


@cache
def readme_items() -> list[str]:
    items: list[str] = []
    for path in sorted(DOCS.glob("*/README*")):
        if path.is_file() and path.suffix in {"", ".txt", ".md", ".Debian"} and path.stat().st_size < 200_000:
            items.extend(paragraphs(path.read_text("utf-8", "replace")))
    return items


def benchmarks() -> dict[str, list[str]]:
    """Benchmark name -> item passages (the sources present on this machine)."""
    found = {RELATED: reference_items(), "licenses": license_items(), "papers": paper_items()}
    found["debian/readmes"] = readme_items()
    return {name: items for name, items in found.items() if items}


def write_benchmarks(folder: Path) -> dict[str, list[str]]:
    """The benchmarks as user files (JSONL, text, CSV) under `folder`; returns them by name."""
    found = benchmarks()
    (folder / "python").mkdir(parents=True, exist_ok=True)
    with (folder / "python" / "reference.jsonl").open("w") as fh:
        for i, passage in enumerate(found[RELATED]):
            record = {"id": f"ref-{i}", "question": "Which statement does this passage describe?"}
            fh.write(json.dumps({**record, "passage": passage, "choices": ["yes", "no"]}) + "\n")
    if "licenses" in found:
        (folder / "licenses.txt").write_text("\n\n".join(found["licenses"]) + "\n")
    if "papers" in found:
        with (folder / "papers.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "passage", "answer"])
            writer.writerows([f"pmc-{i}", p, "maybe"] for i, p in enumerate(found["papers"]))
    if "debian/readmes" in found:
        (folder / "debian").mkdir(exist_ok=True)
        (folder / "debian" / "readmes.txt").write_text("\n\n".join(found["debian/readmes"]) + "\n")
    return found


@cache
def documents(limit: int = 3000) -> list[str]:
    """Distinct stdlib docstrings of at least 300 characters, files in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        if {"pydoc_data", "test", "site-packages", "idlelib"} & set(path.relative_to(root).parts):
            continue
        for m in _TRIPLE.finditer(path.read_text("utf-8", "replace")):
            doc = textwrap.dedent(m.group(1)).strip()
            if len(doc) >= 300:
                docs.setdefault(doc)
        if len(docs) >= limit:
            break
    return list(docs)[:limit]


def edit_words(rng: random.Random, text: str, vocabulary: list[str], rate: float = 0.05) -> str:
    """`text` with floor(rate x words), at least one, words substituted, inserted or deleted."""
    words = text.split()
    for _ in range(max(1, int(len(words) * rate))):
        op, at = rng.choice("sid"), rng.randrange(len(words))
        if op == "s":
            words[at] = rng.choice(vocabulary)
        elif op == "i":
            words.insert(at, rng.choice(vocabulary))
        else:
            del words[at]
    return " ".join(words)


def plant(rng: random.Random, host: str, passage: str) -> tuple[str, int, int]:
    """`passage` inserted at a line break of `host`; the document and the passage's [start, end)."""
    cut = host.find("\n", rng.randrange(len(host)))
    cut = len(host) if cut < 0 else cut
    return f"{host[:cut]}\n{passage}\n{host[cut:]}", cut + 1, cut + 1 + len(passage)
