"""Bias and diversity statistics (jobs/safety/diversity.py, topics.py) on real text: Davidson et al. 2017
tweets, PubMed Central articles, Python's own module docstrings."""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.config import DiversityConfig
from jobs.safety.diversity import MAX_CHARS, CappedCounter, DiversityStats, entropy_bits, gate_rows, top
from jobs.safety.topics import topic_clusters
from tests.conftest import SHARED_DATA

TWEETS = SHARED_DATA / "social" / "davidson-tweets.csv"
PAPERS = sorted((SHARED_DATA / "papers").glob("*.nxml"))
STDLIB = Path("/usr/lib/python3.11")
TAG = re.compile(r"<[^>]+>")
Row = dict[str, Any]


def _doc(
    i: str, text: str, source: str, domain: str | None, language: str | None = "en", tox: float | None = None
) -> Row:
    annotations = None if tox is None else {"toxicity.score": str(tox)}
    return {
        "id": i,
        "text": text,
        "source_type": source,
        "domain": domain,
        "language": language,
        "annotations": annotations,
    }


@pytest.fixture(scope="module")
def tweets() -> list[Row]:
    """Davidson's `class` (0 hate, 1 offensive, 2 neither) as a stand-in toxicity score: 1.0, 0.5, 0.0."""
    if not TWEETS.exists():
        pytest.skip("../shared/data absent")
    with TWEETS.open(newline="", encoding="utf-8") as f:
        return [
            _doc(f"t{r['']}", r["tweet"], "social", "twitter.com", tox=(2 - int(r["class"])) / 2)
            for r in csv.DictReader(f)
        ]


@pytest.fixture(scope="module")
def papers() -> list[Row]:
    if not PAPERS:
        pytest.skip("../shared/data absent")
    return [
        _doc(
            p.stem, " ".join(TAG.sub(" ", p.read_text(encoding="utf-8")).split()), "paper", "ncbi.nlm.nih.gov"
        )
        for p in PAPERS
    ]


@pytest.fixture(scope="module")
def docstrings() -> list[Row]:
    """Module docstrings of the standard library, split over two domains (top-level modules, packages)."""
    rows = []
    for path in sorted(STDLIB.glob("*.py")) + sorted(STDLIB.glob("*/__init__.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError):
            continue
        if doc and len(doc) > 40:
            domain = "docs.python.org" if path.parent == STDLIB else "packages.python.org"
            rows.append(_doc(str(path), doc, "code", domain))
    if len(rows) < 50:
        pytest.skip("no Python 3.11 standard library sources")
    return rows


def _stats(rows: list[Row], **kw: Any) -> DiversityStats:
    stats = DiversityStats(**kw)
    for row in rows:
        stats.add(row)
    return stats


@pytest.fixture(scope="module")
def davidson(tweets: list[Row]) -> dict[str, Any]:
    return _stats(tweets, topic_sample=200).result()


def test_shares_sum_to_one(tweets: list[Row], papers: list[Row], docstrings: list[Row]) -> None:
    report = _stats(tweets[:2000] + papers + docstrings, topic_sample=100).result()
    assert report["documents"] == 2000 + len(papers) + len(docstrings)
    assert math.isclose(sum(report["source_shares"].values()), 1.0, abs_tol=1e-5)
    assert math.isclose(sum(s["share"] for s in report["by_source"].values()), 1.0, abs_tol=1e-5)
    assert math.isclose(sum(report["language_shares"].values()), 1.0, abs_tol=1e-5)
    assert report["max_domain"] == "twitter.com"
    assert report["length_histogram"]["bins"] and report["by_source"]["paper"]["length"]["median"] > 1000
    json.dumps(report)


def test_merge_of_halves_equals_one_pass(tweets: list[Row], papers: list[Row], docstrings: list[Row]) -> None:
    rows = tweets[:3000] + papers + docstrings
    whole = _stats(rows, topic_sample=300)
    left, right = _stats(rows[1::2], topic_sample=300), _stats(rows[::2], topic_sample=300)
    merged = DiversityStats.from_json(left.to_json()).merge(DiversityStats.from_json(right.to_json()))
    # HyperLogLog registers merge by max, so even the distinct n-gram estimate is the same
    assert merged.result() == whole.result()
    assert merged.sample() == whole.sample()


def test_json_round_trip(papers: list[Row], docstrings: list[Row]) -> None:
    stats = _stats(papers + docstrings, topic_sample=50)
    back = DiversityStats.from_json(stats.to_json())
    assert back.result() == stats.result()
    assert back.to_json() == stats.to_json()


def test_distinct_ngram_ratio(tweets: list[Row], papers: list[Row], docstrings: list[Row]) -> None:
    varied = _stats(tweets[:1000], topic_sample=10).result()["by_source"]["social"]
    repetitive = _stats(tweets[:50] * 20, topic_sample=10).result()["by_source"]["social"]
    assert repetitive["distinct_ngram_ratio"] < 0.1 < 0.8 < varied["distinct_ngram_ratio"]
    report = _stats(papers + docstrings + tweets, topic_sample=10).result()["by_source"]
    print({s: (r["distinct_ngram_ratio"], r["mean_doc_distinct_ngram_ratio"]) for s, r in report.items()})
    # the HyperLogLog++ estimate is within 2% of the exact distinct count
    exact = len({" ".join(g) for r in papers for g in _trigrams(r["text"][:MAX_CHARS])})
    assert abs(report["paper"]["distinct_ngrams"] - exact) / exact < 0.02


def _trigrams(text: str) -> list[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.lower())
    return [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_domain_entropy_is_log2_k_for_k_equal_domains(docstrings: list[Row], k: int) -> None:
    rows = [{**r, "domain": f"d{i % k}.example"} for i, r in enumerate(docstrings[: k * (48 // k)])]
    src = _stats(rows, topic_sample=10).result()["by_source"]["code"]
    assert src["domain_entropy"] == pytest.approx(math.log2(k), abs=1e-6)
    assert src["distinct_domains"] == k


def test_davidson_toxicity_by_group(davidson: dict[str, Any]) -> None:
    social = davidson["by_source"]["social"]
    assert social["documents"] == 24783 and social["scored_documents"] == 24783
    means = {
        f"{axis}/{term}": v["mean_toxicity"]
        for axis, terms in social["toxicity_by_group"].items()
        for term, v in terms.items()
        if v["documents"] >= 30
    }
    print("mean toxicity", social["mean_toxicity"], dict(sorted(means.items(), key=lambda kv: -kv[1])))
    print("pronouns", social["pronouns"])
    assert len(means) >= 10
    assert (
        max(means.values()) - min(means.values()) > 0.1
    )  # some groups co-occur with more toxicity than others
    assert social["pronouns"]["female"] > social["pronouns"]["male"] > 0


def test_topics_separate_tweets_from_docstrings(tweets: list[Row], docstrings: list[Row]) -> None:
    rows = docstrings + tweets[: 2 * len(docstrings)]
    stats = _stats(rows, topic_sample=len(rows))
    for seed in (0, 1):
        start = time.perf_counter()
        topics = stats.result(topics_k=2, seed=seed)["topics"]
        took = round(time.perf_counter() - start, 2)
        purity = sum(max(t["by_source"].values()) for t in topics) / len(rows)
        print("topics", seed, took, "s", purity, [(t["by_source"], t["top_terms"][:5]) for t in topics])
        assert purity >= 0.9
    assert stats.result(topics_k=2, seed=1)["topics"] == topics


def test_topic_clusters_deterministic_and_reduced(docstrings: list[Row]) -> None:
    texts = [r["text"] for r in docstrings[:60]]
    a, b = topic_clusters(texts, 4, seed=3), topic_clusters(texts, 4, seed=3)
    assert a.labels == b.labels and a.top_terms == b.top_terms and sum(a.sizes) == 60
    assert a.assign(texts[:10]) == a.labels[:10]
    assert topic_clusters(texts[:3], 8, seed=0).k == 3
    assert topic_clusters(["same text"] * 5, 4).k == 1
    assert topic_clusters([], 4).k == 0 and topic_clusters(["", "!!"], 4).labels == [0, 0]


def test_gate_rows(tweets: list[Row], papers: list[Row]) -> None:
    report = _stats(
        tweets[:90] + papers[:8] + [_doc("x", "Hallo Welt", "web", None, "de")], topic_sample=10
    ).result()
    cfg = DiversityConfig(
        max_domain_share=0.95,
        min_source_shares={"social": 0.5, "paper": 0.1, "book": 0.01},
        min_language_shares={"en": 0.9, "fr": 0.01},
    )
    rows = {(r["check"], r["subject"]): r for r in gate_rows(report, cfg)}
    expected = {"check": "max_domain_share", "subject": "twitter.com", "observed": 0.909091, "limit": 0.95}
    assert rows[("max_domain_share", "twitter.com")] == {**expected, "ok": True}
    assert rows[("min_source_share", "social")]["ok"] and not rows[("min_source_share", "paper")]["ok"]
    assert (
        rows[("min_source_share", "book")]["observed"] == 0.0 and not rows[("min_source_share", "book")]["ok"]
    )
    assert rows[("min_language_share", "en")]["ok"] and not rows[("min_language_share", "fr")]["ok"]
    assert not gate_rows(report, DiversityConfig(max_domain_share=0.5))[0]["ok"]
    informative = gate_rows(report, DiversityConfig())
    assert len(informative) == 1 and informative[0]["ok"] and informative[0]["limit"] == 1.0
    assert gate_rows(DiversityStats().result(), DiversityConfig())[0] == {
        "check": "max_domain_share", "subject": "", "observed": 0.0, "limit": 1.0, "ok": True,
    }  # fmt: skip


def test_hostile_rows() -> None:
    stats = DiversityStats(topic_sample=5)
    stats.add({"text": None, "source_type": None, "domain": None, "language": None, "annotations": None})
    stats.add({"text": "", "source_type": "web"})
    stats.add(
        {"id": "pairs", "text": "she said", "source_type": "web", "annotations": [("toxicity.score", "0.75")]}
    )
    stats.add(
        {"id": "nan", "text": "he said", "source_type": "web", "annotations": {"toxicity.score": "nan"}}
    )
    stats.add(
        {"id": "junk", "text": "they said", "source_type": "web", "annotations": {"toxicity.score": "high"}}
    )
    huge = "word " * 200_000 + "She " * 100
    start = time.perf_counter()
    stats.add({"id": "huge", "text": huge, "source_type": "book", "domain": "x.org"})
    assert time.perf_counter() - start < 2.0
    report = DiversityStats.from_json(stats.to_json()).result(topics_k=3)
    web, book = report["by_source"]["web"], report["by_source"]["book"]
    assert report["documents"] == 6 and report["by_source"]["unknown"]["language"] == {"und": 1}
    assert web["scored_documents"] == 1 and web["mean_toxicity"] == 0.75
    assert web["toxicity_by_pronoun"]["female"] == {"documents": 1, "mean_toxicity": 0.75}
    assert book["chars"] == len(huge) and book["length"]["mean"] == 200_100
    assert book["words_examined"] == MAX_CHARS // 5 and book["pronouns"]["female"] == 0  # past the bound
    assert book["distinct_ngram_ratio"] < 0.001
    assert report["topic_sample"] == 5 and sum(t["size"] for t in report["topics"]) == 5
    with pytest.raises(ValueError, match="different ngram"):
        DiversityStats(ngram=2).merge(DiversityStats(ngram=3))


def test_sample_is_independent_of_partitioning(tweets: list[Row]) -> None:
    rows = tweets[:600]
    whole = _stats(rows, topic_sample=50)
    parts = [_stats(rows[i::3], topic_sample=50) for i in range(3)]
    merged = parts[2].merge(parts[0]).merge(parts[1])
    assert merged.sample() == whole.sample() and len(whole.sample()) == 50
    assert Counter(s for s, _ in whole.sample()) == {"social": 50}


def test_capped_counter_folds_the_tail_into_entropy_as_singletons() -> None:
    counter = CappedCounter(2)
    for key in "aabcd":
        counter.add(key)
    assert counter.counts == {"a": 2, "b": 1} and counter.folded == 2 and counter.capped
    assert top(counter, 1) == {"a": 2, "other": 3}
    assert entropy_bits(counter) == pytest.approx(-(0.4 * math.log2(0.4) + 3 * 0.2 * math.log2(0.2)))
    assert CappedCounter.from_state(json.loads(json.dumps(counter.state()))).state() == counter.state()
