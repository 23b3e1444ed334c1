"""scripts/bench_dedup_peers.py without the peers: the removal-precision check on a hand-made
corpus (against brute-force `minhash.jaccard`), the JSONL the peers read, and the table's
"not available" rows. Installing the peer venv takes a minute or more, so no test does it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.config import MinHashConfig
from jobs.dedup import minhash
from scripts.bench_dedup_peers import precision_of_removed, table, write_jsonl

# letters only: normalisation maps digits to 0, so "w1", "w2" would all be one word
WORDS = ["".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=6)) for i in range(500)]


def _text(seed: int, n: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


BASE = _text(1)
OTHER = _text(2)
DOCS = [
    ("base", BASE),
    ("base-edit", BASE.rsplit(" ", 1)[0] + " changed"),  # one word: J ~ 0.95
    ("other", OTHER),
    ("other-half", " ".join(OTHER.split()[:30] + _text(3, 30).split())),  # J = 26 / 86
    ("empty-1", ""),
    ("empty-2", " !!! ... "),  # nothing left after normalisation
    ("lonely", _text(4)),
]


def _best_jaccard(doc_id: str) -> float:
    cfg = MinHashConfig()
    texts = dict(DOCS)
    own = minhash.shingles(texts[doc_id], cfg)
    return max(minhash.jaccard(own, minhash.shingles(t, cfg)) for i, t in DOCS if i != doc_id)


def test_corpus_is_what_the_cases_assume() -> None:
    assert _best_jaccard("base-edit") > 0.9
    assert 0.2 < _best_jaccard("other-half") < 0.5
    assert _best_jaccard("lonely") < 0.1


def test_true_duplicate_removed_is_correct() -> None:
    out = precision_of_removed(["base-edit"], DOCS)
    assert out["removed_checked"] == 1 and out["removed_empty"] == 0
    assert out["precision"] == out["precision_nonempty"] == out["precision_vs_kept"] == 1.0
    assert out["median_best_jaccard"] == pytest.approx(_best_jaccard("base-edit"))


def test_false_positive_lowers_precision() -> None:
    out = precision_of_removed(["base-edit", "other-half", "lonely"], DOCS)
    assert out["precision"] == pytest.approx(1 / 3)
    assert out["precision_nonempty"] == pytest.approx(1 / 3)
    assert out["median_best_jaccard"] == pytest.approx(_best_jaccard("other-half"))


def test_removing_a_whole_cluster_fails_only_the_kept_check() -> None:
    out = precision_of_removed(["base", "base-edit"], DOCS)
    assert out["precision"] == 1.0  # each is a near-duplicate of the other
    assert out["precision_vs_kept"] == 0.0  # but neither survives


def test_empty_documents_are_duplicates_of_each_other() -> None:
    out = precision_of_removed(["empty-2"], DOCS)
    assert out["removed_empty"] == 1
    assert out["precision"] == out["precision_vs_kept"] == 1.0
    assert out["precision_nonempty"] is None
    alone = precision_of_removed(["empty-1"], [d for d in DOCS if d[0] != "empty-2"])
    assert alone["precision"] == 0.0  # no other empty document: not a duplicate of anything


def test_threshold_and_unknown_ids() -> None:
    j = _best_jaccard("other-half")
    assert precision_of_removed(["other-half"], DOCS, threshold=j)["precision"] == 1.0
    assert precision_of_removed(["other-half"], DOCS, threshold=j + 1e-9)["precision"] == 0.0
    out = precision_of_removed(["nope", "base-edit", "base-edit"], DOCS)
    assert out["removed_unknown_ids"] == 1 and out["removed_checked"] == 1
    none = precision_of_removed([], DOCS)
    assert none["removed_checked"] == 0 and none["precision"] is None


def test_jsonl_and_table(tmp_path: Path) -> None:
    path = tmp_path / "c" / "corpus.jsonl"
    write_jsonl(DOCS, path)
    assert [tuple(json.loads(line).values()) for line in path.open()] == DOCS
    rows = [
        {"name": "datatrove", "error": "not available: peer venv: pip failed"},
        {
            "name": "text-dedup",
            "error": None,
            "version": "0.4.0",
            "median_s": 2.0,
            "mb_per_s": 0.5,
            "docs_in": 7,
            "docs_removed": 2,
            "removed_empty": 1,
            "precision": 1.0,
            "precision_nonempty": 1.0,
            "precision_vs_kept": 0.5,
            "phases": {"minhashing": 1.5},
        },
    ]
    text = table(rows, DOCS, runs=3)
    assert "datatrove   not available: peer venv: pip failed" in text
    assert "0.500" in text and "50.0%" in text and "minhashing 1.5" in text
