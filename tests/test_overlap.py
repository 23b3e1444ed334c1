"""Verbatim overlap with protected works (jobs/copyright/overlap.py, `lmforge overlap`).

Real text only. Protected works: the 79 pydoc topics of the Python language reference
(`pydoc_data.topics`). Unrelated documents: the first 10,000 distinct triple-quoted strings of at
least 500 characters (docstrings, mostly) in this environment's site-packages, files in sorted
order, none split. Some of those really quote the protected works (numpy's string docstrings copy
`str`'s documentation, more_itertools quotes `str.split`): a flagged document counts as a true copy,
not a false positive, when it shares a verbatim run of 50 characters (punctuation and markup
dropped, whitespace collapsed, case folded) with the work reported; the count of such copies is
asserted small and printed.
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
import sysconfig
import textwrap
import time
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from jobs.copyright.overlap import OverlapIndex, build_index, find_overlap, registry_works
from lmforge.cli import main

UNRELATED = 10_000
PLANTS = 1_000
_TRIPLE = re.compile(r'"""(.*?)"""', re.S)
_MARKUP = re.compile(r"[^\w\s]+")


@cache
def protected() -> dict[str, str]:
    from pydoc_data.topics import topics

    return dict(sorted(topics.items()))


@cache
def index() -> OverlapIndex:
    return build_index(protected().items())


@cache
def unrelated() -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["purelib"])
    docs: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if "pydoc_data" in path.parts:
            continue
        for m in _TRIPLE.finditer(path.read_text("utf-8", "replace")):
            doc = textwrap.dedent(m.group(1)).strip()
            if len(doc) >= 500:
                docs.setdefault(doc, f"{path.relative_to(root)}:{m.start()}")
        if len(docs) >= UNRELATED:
            break
    return [(name, doc) for doc, name in docs.items()][:UNRELATED]


def _flat(text: str) -> str:
    """Letters, digits and single spaces, lowercase: the same quotation with other markup matches."""
    return " ".join(_MARKUP.sub(" ", text).split()).lower()


def is_true_copy(text: str, start: int, end: int, work: str, run: int = 50) -> bool:
    """Whether text[start:end] shares `run` verbatim characters with the work (a real quotation)."""
    span, source = _flat(text[start:end]), _flat(protected()[work])
    return any(span[i : i + run] in source for i in range(0, max(1, len(span) - run + 1), 5))


def edited_excerpt(rng: random.Random, work: str, vocabulary: list[str]) -> tuple[str, str]:
    """A 200-400 character excerpt starting and ending at spaces, and a copy with 5% of its words
    (at least one) substituted, inserted or deleted."""
    length = rng.randint(200, 400)
    start = work.find(" ", rng.randrange(max(1, len(work) - length - 1))) + 1
    end = work.find(" ", start + length)
    original = work[start : end if end > 0 else len(work)]
    words = original.split(" ")
    for _ in range(max(1, len(words) // 20)):
        op, at = rng.choice("sid"), rng.randrange(len(words))
        if op == "s":
            words[at] = rng.choice(vocabulary)
        elif op == "i":
            words.insert(at, rng.choice(vocabulary))
        else:
            del words[at]
    return original, " ".join(words)


def test_planted_edited_excerpts_are_found() -> None:
    rng = random.Random(14)
    works, hosts = list(protected().items()), unrelated()
    vocabulary = [w for _, doc in hosts[:200] for w in doc.split()]
    found, started = 0, time.perf_counter()
    for _ in range(PLANTS):
        name, work = works[rng.randrange(len(works))]
        original, excerpt = edited_excerpt(rng, work, vocabulary)
        _, host = hosts[rng.randrange(len(hosts))]
        cut = host.find("\n", rng.randrange(len(host)))
        cut = len(host) if cut < 0 else cut
        doc = f"{host[:cut]}\n{excerpt}\n{host[cut:]}"
        a, b = cut + 1, cut + 1 + len(excerpt)
        spans = find_overlap(doc, index()).spans
        found += any(
            s.start < b and s.end > a and (s.work == name or is_true_copy(original, 0, len(original), s.work))
            for s in spans
        )  # a passage that several topics share (the "compound" topic repeats "while") counts for each
    recall = found / PLANTS
    print(f"recall {recall:.3f} on {PLANTS} plants in {time.perf_counter() - started:.1f} s")
    assert recall >= 0.95


def test_unrelated_documents_are_rarely_flagged() -> None:
    docs = unrelated()
    assert len(docs) >= 5000
    flagged, copies, started = [], [], time.perf_counter()
    for name, doc in docs:
        spans = find_overlap(doc, index()).spans
        if any(not is_true_copy(doc, s.start, s.end, s.work) for s in spans):
            flagged.append(name)
        elif spans:
            copies.append(name)
    seconds = time.perf_counter() - started
    print(
        f"flagged {len(flagged)} / {len(docs)}; true copies {len(copies)}; {len(docs) / seconds:.0f} docs/s"
    )
    print("flagged:", flagged, "copies:", copies)
    assert len(flagged) / len(docs) < 1 / 1000
    assert len(copies) / len(docs) < 0.005  # the quotations found are few and real


def test_spans_have_offsets_in_the_original_text_and_containment() -> None:
    work = protected()["assert"]
    passage = work[100:400]
    idx = build_index([("assert", work)])
    prefix = "Unrelated words — with “punctuation”, CAPITALS and 123 numbers. " * 40
    doc = prefix + passage + " and then some other ending text here."
    found = find_overlap(doc, idx)
    assert len(found.spans) == 1
    span = found.spans[0]
    assert span.work == "assert" and span.ngrams >= 5
    assert abs(span.start - len(prefix)) <= 20 and abs(span.end - (len(prefix) + len(passage))) <= 20
    assert found.fraction == pytest.approx((span.end - span.start) / len(doc))
    assert find_overlap(prefix, idx).spans == []
    assert find_overlap("", idx).fraction == 0.0
    assert find_overlap(doc, idx, max_chars=len(prefix)).truncated


def test_index_saves_and_loads(tmp_path: Path) -> None:
    idx = build_index([("a", protected()["assert"]), ("b", protected()["pass"])])
    idx.save(tmp_path / "index.npz")
    loaded = OverlapIndex.load(tmp_path / "index.npz")
    assert loaded.names == ("a", "b") and loaded.ngram == idx.ngram
    assert np.array_equal(loaded.hashes, idx.hashes) and np.array_equal(loaded.works, idx.works)
    assert np.all(np.diff(loaded.hashes.astype(np.float64)) >= 0)


def test_registry_folder_reads_txt_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("two")
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "skip.md").write_text("not a work")
    assert list(registry_works(tmp_path)) == [("a.txt", "one"), ("sub/b.txt", "two")]
    with pytest.raises(ValueError, match="above 2 bytes"):
        list(registry_works(tmp_path, max_bytes=2))
    with pytest.raises(ValueError, match="not a folder"):
        list(registry_works(tmp_path / "missing"))


def test_overlap_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    work = protected()["with"]
    (tmp_path / "with.txt").write_text(work)
    lines = [
        json.dumps({"id": "copy", "text": "Intro paragraph.\n" + work[200:700]}),
        json.dumps({"id": "clean", "text": "Nothing protected is quoted in this short note at all."}),
        "not json",
        json.dumps({"id": "bad", "text": 7}),
    ]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(lines).encode())))
    assert main(["overlap", "--registry", str(tmp_path)]) == 1
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["id"] for a in answers] == ["copy", "clean", None, "bad"]
    copy, clean = answers[0], answers[1]
    assert copy["overlap_fraction"] > 0.8 and copy["spans"][0]["work"] == "with.txt"
    assert set(copy["spans"][0]) == {"start", "end", "work", "ngrams"}
    assert clean == {"id": "clean", "overlap_fraction": 0.0, "spans": [], "truncated": False}
    assert "not JSON" in answers[2]["error"] and "text" in answers[3]["error"]


def test_one_pass_normalisation_equals_word_by_word() -> None:
    """The index (work_hashes) and the lookup (words) normalise in one pass; both must see exactly
    the words that normalising each whitespace-separated word alone gives."""
    from jobs.copyright.overlap import _NORMAL, ngram_hashes, words, work_hashes
    from jobs.dedup.minhash import normalize

    texts = [doc for _, doc in unrelated()[:300]] + list(protected().values())
    texts.append("".join(chr(i) for i in range(0x20, 0x3000)) + " Ⅻ ǅ İstanbul ß ﬁ 12 3.5 -- ")
    for text in texts:
        one_by_one = [n for w in re.findall(r"\S+", text) if (n := normalize(w, _NORMAL)).strip("0")]
        assert words(text)[0] == one_by_one
        assert np.array_equal(work_hashes(text), np.unique(ngram_hashes(one_by_one)))
