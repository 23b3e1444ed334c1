"""Benchmark decontamination (jobs/safety/evalsets.py, jobs/safety/decontam.py) on real text.

Benchmarks and documents are real (tests/decontam_corpus.py): Python language-reference
paragraphs, licence, PubMed Central and Debian README paragraphs as benchmarks; standard-library
docstrings as documents. Recall: benchmark items planted whole in documents, verbatim and with 5%
of their words (at least one) substituted, inserted or deleted, by item length in words. False
positives: the unplanted documents against the benchmarks from other sources; the stdlib really
carries licence boilerplate (BSD warranty disclaimers), so a hit counts as true when its span
shares a verbatim 50-character run with the benchmark reported, and there must be none at all
against the papers and the READMEs.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from functools import cache
from pathlib import Path

import pytest

from core.config import DecontamConfig
from jobs.copyright.overlap import OverlapIndex
from jobs.safety.decontam import (
    HitReport,
    build_eval_index,
    check,
    decontaminate_row,
    decontaminate_with,
    item_words,
)
from jobs.safety.evalsets import read_evals
from tests import decontam_corpus as corpus

PLANTS = 300  # per length bucket, verbatim and edited each
BUCKETS = ((13, 20), (20, 40), (40, 80), (80, 160), (160, 100_000))  # item words [lo, hi)
UNRELATED = ("papers", "debian/readmes")  # sources that the stdlib does not quote
_MARKUP = re.compile(r"[^\w\s]+")
CFG = DecontamConfig()


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[OverlapIndex, dict, dict]:
    """The index of the benchmarks written as user files, the items by benchmark, the stats."""
    folder = tmp_path_factory.mktemp("evals")
    found = corpus.write_benchmarks(folder)
    index, stats = build_eval_index(read_evals(folder, CFG.max_eval_bytes), CFG.ngram)
    return index, found, stats


def _flat(text: str) -> str:
    return " ".join(_MARKUP.sub(" ", text).split()).lower()


@cache
def _flat_benchmark(name: str) -> str:
    return "\n".join(_flat(item) for item in corpus.benchmarks()[name])


def is_true_copy(span_text: str, benchmark: str, run: int = 50) -> bool:
    flat, source = _flat(span_text), _flat_benchmark(benchmark)
    return any(flat[i : i + run] in source for i in range(0, max(1, len(flat) - run + 1), 5))


def test_planted_items_are_found_verbatim_and_edited(bench: tuple) -> None:
    index, found, _ = bench
    rng, docs = random.Random(13), corpus.documents()
    vocabulary = [w for doc in docs[:200] for w in doc.split()]
    pool = [(name, item) for name, items in found.items() for item in items]
    lengths = {item: len(item_words(item)) for _, item in pool}
    recall: dict[tuple[int, str], float] = {}
    for lo, hi in BUCKETS:
        candidates = [(name, item) for name, item in pool if lo <= lengths[item] < hi]
        for mode in ("exact", "edited"):
            hits = 0
            for _ in range(PLANTS):
                name, item = rng.choice(candidates)
                passage = item if mode == "exact" else corpus.edit_words(rng, item, vocabulary)
                doc, a, b = corpus.plant(rng, rng.choice(docs), passage)
                spans = check(doc, index, CFG).spans
                hits += any(
                    s.start < b and s.end > a and (s.benchmark == name or is_true_copy(item, s.benchmark))
                    for s in spans
                )  # an item two benchmarks share (GPL text in a README) counts for either
            recall[lo, mode] = hits / PLANTS
    print("recall by item words:", {f"{lo}+ {mode}": r for (lo, mode), r in recall.items()})
    assert all(r >= 0.99 for (lo, mode), r in recall.items() if mode == "exact" or lo >= 40)
    # One edit (5% of under 40 words) can kill every 13-gram of a short item (measured 0.45, 0.95).
    assert recall[13, "edited"] >= 0.35 and recall[20, "edited"] >= 0.9


def test_unrelated_benchmarks_flag_no_real_document(bench: tuple) -> None:
    index, found, _ = bench
    present = [name for name in UNRELATED if name in found]
    if not present:
        pytest.skip("no unrelated benchmark source on this machine")
    docs = corpus.documents()
    assert len(docs) >= 1000
    report, false, true = HitReport(), list[tuple[str, str]](), list[tuple[str, str]]()
    for doc in docs:
        hit = check(doc, index, CFG)
        report.add(hit)
        for s in hit.spans:
            copy = s.benchmark not in UNRELATED and is_true_copy(doc[s.start : s.end], s.benchmark)
            (true if copy else false).append((s.benchmark, doc[s.start : s.end][:120]))
    print(f"{len(docs)} documents against {present}: report {report.as_dict()}; true copies {true}")
    assert not false
    assert len(true) <= 20  # the quotations found are few (licence disclaimers, reference prose)


def test_stats_per_benchmark_count_items_and_short_ones(tmp_path: Path) -> None:
    (tmp_path / "qa.jsonl").write_text(
        json.dumps({"q": "What is the capital of France?", "choices": ["Paris", "Rome"], "n": 3}) + "\n"
        + json.dumps({"q": " ".join(corpus.reference_items()[0].split()[:30])}) + "\n"
    )  # fmt: skip
    [ev] = read_evals(tmp_path, 1 << 20)
    assert ev.name == "qa" and ev.items[0] == "What is the capital of France?\nParis\nRome"
    _, stats = build_eval_index([ev], 13)
    assert stats["qa"]["items"] == 2 and stats["qa"]["too_short"] == 1 and stats["qa"]["ngrams"] > 0


def _planted_row(action: str, bench: tuple) -> tuple[dict, str, str, tuple[dict, str | None]]:
    index, found, _ = bench
    item = next(p for p in found["python/reference"] if len(p.split()) > 60)
    before = "The weather station logged steady rain for most of the week across the valley.\n\n"
    after = "\n\nFarmers reported that the late harvest would still finish before the first frost."
    row = {"id": "d1", "text": before + item + after, "annotations": None}
    return row, before, after, decontaminate_row(row, index, DecontamConfig(action=action))


def test_drop_reason_and_annotations(bench: tuple) -> None:
    row, _, _, (out, reason) = _planted_row("drop", bench)
    assert reason == "decontam_overlap:python/reference"
    ann = out["annotations"]
    assert ann["decontam.benchmarks"] == "python/reference" and int(ann["decontam.ngrams"]) > 40
    assert 0.5 < float(ann["decontam.fraction"]) < 1 and out["text"] == row["text"]


def test_cut_removes_the_planted_span_and_keeps_the_rest(bench: tuple) -> None:
    row, before, after, (out, reason) = _planted_row("cut", bench)
    assert reason is None
    assert out["text"] == before.rstrip() + "\n" + after.lstrip()
    assert int(out["annotations"]["decontam.cut_chars"]) == len(row["text"]) - len(out["text"])
    only = {"id": "d2", "text": row["text"][len(before) : -len(after)]}
    kept, why = decontaminate_row(only, bench[0], DecontamConfig(action="cut"))
    assert why == "decontam_cut_empty" and "decontam.cut_chars" in kept["annotations"]


def test_flag_annotates_only_and_clean_rows_are_unchanged(bench: tuple) -> None:
    row, _, _, (out, reason) = _planted_row("flag", bench)
    assert reason is None and out["text"] == row["text"] and "decontam.benchmarks" in out["annotations"]
    clean = {"id": "c", "text": corpus.documents()[0], "annotations": {"x": "1"}}
    assert decontaminate_with(CFG, bench[0])(clean) == (clean, None)
    assert decontaminate_row({"id": "n", "text": None}, bench[0], CFG) == ({"id": "n", "text": None}, None)
    with pytest.raises(TypeError):
        check(b"bytes", bench[0], CFG)  # type: ignore[arg-type]
    item = "\ud800 " + next(p for p in bench[1]["python/reference"] if p[0].isalpha())  # JSON allows it
    assert check(item, bench[0], CFG).spans[0].start == 2


def test_min_hits_and_truncation(bench: tuple) -> None:
    index, found, _ = bench
    item = next(p for p in found["python/reference"] if 14 <= len(item_words(p)) <= 16)
    assert check(item, index, CFG).spans
    assert not check(item, index, DecontamConfig(min_hits=10)).spans
    long_doc = ("Plain filler sentence about nothing in particular. " * 25_000) + item
    hit = check(long_doc, index, DecontamConfig(max_chars=1 << 20))
    assert len(long_doc) > 1 << 20 and hit.truncated and not hit.spans  # the item lies past max_chars


def test_index_round_trips_without_pickle(bench: tuple, tmp_path: Path) -> None:
    index, found, _ = bench
    index.save(tmp_path / "evals.npz")
    loaded = OverlapIndex.load(tmp_path / "evals.npz")
    doc = "Intro line.\n" + found["python/reference"][5]
    assert check(doc, loaded, CFG) == check(doc, index, CFG) and check(doc, index, CFG).spans


def test_report_counts_hits_per_benchmark(bench: tuple) -> None:
    index, found, _ = bench
    report = HitReport()
    for doc in [found["python/reference"][3], found["python/reference"][9], "nothing here at all"]:
        report.add(check(doc, index, CFG))
    got = report.as_dict()
    assert got["documents"] == 3 and got["contaminated"] == 2
    assert got["benchmarks"]["python/reference"]["documents"] == 2


def test_hostile_eval_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("not a folder")):
        read_evals(tmp_path / "missing", 1000)
    with pytest.raises(ValueError, match=re.escape("no .jsonl")):
        read_evals(tmp_path, 1000)
    (tmp_path / "big.txt").write_text("word " * 500)
    with pytest.raises(ValueError, match=re.escape("big.txt: above")):
        read_evals(tmp_path, 1000)
    (tmp_path / "big.txt").write_text("word " * 150)
    (tmp_path / "other.txt").write_text("word " * 150)
    with pytest.raises(ValueError, match=re.escape("together exceed")):
        read_evals(tmp_path, 1000)
    with gzip.open(tmp_path / "big.csv.gz", "wb") as fh:
        fh.write(b"a\n" + b"x" * 5000)
    with pytest.raises(ValueError, match=re.escape("big.csv.gz: above")):
        read_evals(tmp_path, 2000)  # the bound applies after decompression
    (tmp_path / "bad.jsonl.gz").write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(ValueError, match=re.escape("bad.jsonl.gz: unreadable")):
        read_evals(tmp_path, 1 << 20)


def test_hostile_records_are_skipped_and_counted(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    good = json.dumps({"question": "Caf\u00e9 au lait?", "meta": {"tags": ["a", ["b", {"c": "deep"}]]}})
    lines = [good, "{not json", "[1, 2]", deep, '"just a string"', json.dumps({"n": 3})]
    (tmp_path / "qa.jsonl").write_bytes("\n".join(lines).encode() + b'\n{"q": "broken \xff bytes"}\n')
    (tmp_path / "t.csv").write_text("id,text\n1,first row\n2," + "y" * ((1 << 20) + 10) + "\n3,third row\n")
    (tmp_path / "plain.txt").write_bytes(b"first item\nstill first\n\n\n  \nsecond \xe9 item\n")
    sets = {ev.name: ev for ev in read_evals(tmp_path, 1 << 24)}
    qa = sets["qa"]
    assert qa.items == ["Caf\u00e9 au lait?\na\nb\ndeep", "broken \ufffd bytes"] and qa.bad_encoding == 1
    assert qa.skipped == 5  # bad JSON, no strings, too deep, not an object or array, no text
    assert sets["t"].items == ["1\nfirst row", "3\nthird row"] and sets["t"].skipped == 1
    assert sets["plain"].items == ["first item\nstill first", "second \ufffd item"]
    assert sets["plain"].bad_encoding == 1
    only = {ev.name: ev for ev in read_evals(tmp_path, 1 << 24, fields=["text"])}
    assert only["t"].items == ["first row", "third row"]


def test_clashing_names_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("some words here\n")
    (tmp_path / "a.jsonl").write_text('{"q": "x"}\n')
    with pytest.raises(ValueError, match=re.escape("also used by")):
        read_evals(tmp_path, 1 << 20)


def test_formats_and_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/arr.json").write_text(json.dumps([{"q": "first"}, {"q": "second", "n": 1}], indent=1))
    (tmp_path / "obj.json").write_text(json.dumps({"data": [{"q": "only"}]}, indent=2))
    with gzip.open(tmp_path / "zipped.JSONL.GZ", "wt") as fh:
        fh.write(json.dumps({"prompt": "def f():", "test": "assert f() is None"}) + "\n")
    (tmp_path / ".hidden.txt").write_text("ignored")
    (tmp_path / "notes.md").write_text("not an evaluation format")
    sets = {ev.name: ev.items for ev in read_evals(tmp_path, 1 << 20)}
    assert sets == {
        "obj": ["only"], "sub/arr": ["first", "second"], "zipped": ["def f():\nassert f() is None"],
    }  # fmt: skip
