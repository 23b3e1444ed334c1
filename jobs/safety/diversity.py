"""Bias and diversity statistics: mergeable per-partition state, a JSON report and its gate rows.

`DiversityStats.add` folds one document into bounded state; `merge` combines partitions (Spark ships
them to the driver with `to_json`, no pickle); `result` gives the report; `gate_rows` turns it into
one row per check for Great Expectations. Per source:

- documents, characters and a length histogram in whitespace words (log-spaced half-octave bins, as
  jobs/report_stats.py; the median is read off the bins, so it is exact only to a bin);
- languages and domains: exact counts up to a cap of distinct keys per source (`MAX_DOMAINS`), later
  new keys are folded into one counter and `domains_capped` is set (the folded tail then enters the
  entropy as singletons, an upper bound; merges past the cap depend on order). `domain_entropy` is
  Shannon's H = -sum p log2 p (Shannon 1948) over documents with a domain, in bits;
- `distinct_ngram_ratio`: distinct word n-grams over all word n-grams of the source (distinct-n, Li
  et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models"). The
  distinct count is a HyperLogLog++ sketch (Heule et al. 2013; datasketch's `HyperLogLogPlusPlus`,
  2^14 registers, about 0.8% standard error) so memory is bounded and partitions merge by register
  max. The ratio falls as a source grows, so `mean_doc_distinct_ngram_ratio` (exact, per document,
  averaged) is given too for comparing sources of different sizes;
- pronoun classes and group-term mentions (jobs/safety/demographics.py) with the mean
  `toxicity.score` of the documents that mention each, next to the source's overall mean.

Only the first `MAX_CHARS` characters of a text are tokenised (`words_examined`, n-grams, demographics
and the per-1k-word pronoun rates; the topic sample keeps 2,000); lengths and characters count the whole
text. N-grams are of `demographics.words`
tokens (lowercased `\\w+`), not MinHash's normalisation, which deletes apostrophes ("he's" -> "hes").

Topic sample: a bottom-k sample by `blake2b(seed, id)` (Cohen & Kaplan 2007, "Summarizing data
using bottom-k sketches"): the `topic_sample` documents with the smallest hashes. Unlike a reservoir
it is the same whatever the partitioning and merge order, so the driver clusters the same texts on
every run. Its JSON carries up to `topic_sample` x 2,000 characters (40 MB at the default 20,000).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import math
from collections import Counter
from typing import Any

import numpy as np
from datasketch import HyperLogLogPlusPlus

from core.config import DiversityConfig
from jobs.safety import demographics as dem
from jobs.safety.topics import topic_clusters

TOXICITY = "toxicity.score"  # the annotation the toxicity scorer writes
MAX_CHARS = 100_000  # text examined per document
SAMPLE_CHARS = 2_000  # text kept per topic-sample document
MAX_DOMAINS = 200_000  # exact distinct domains per source
MAX_LANGUAGES = 1_000
HLL_P = 14
TOP_SOURCE_DOMAINS = 20
TOP_DOMAINS = 50
NO_LANGUAGE = "und"  # BCP 47 "undetermined"


class CappedCounter:
    """Exact counts for up to `cap` distinct keys; later new keys only add to `folded`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.folded = 0
        self.capped = False

    def add(self, key: str, n: int = 1) -> None:
        if key in self.counts or len(self.counts) < self.cap:
            self.counts[key] = self.counts.get(key, 0) + n
        else:
            self.folded += n
            self.capped = True

    def merge(self, other: CappedCounter) -> None:
        for key, n in other.counts.items():
            self.add(key, n)
        self.folded += other.folded
        self.capped = self.capped or other.capped

    def most_common(self, limit: int | None = None) -> list[tuple[str, int]]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked if limit is None else ranked[:limit]

    def state(self) -> dict[str, Any]:
        return {"cap": self.cap, "counts": self.counts, "folded": self.folded, "capped": self.capped}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> CappedCounter:
        out = cls(int(s["cap"]))
        out.counts = {str(k): int(v) for k, v in s["counts"].items()}
        out.folded, out.capped = int(s["folded"]), bool(s["capped"])
        return out


def top(counter: CappedCounter, limit: int) -> dict[str, int]:
    """The `limit` largest counts, the rest (folded tail included) summed under "other"."""
    ranked = counter.most_common()
    out = dict(ranked[:limit])
    rest = sum(n for _, n in ranked[limit:]) + counter.folded
    if rest:
        out["other"] = rest
    return out


def entropy_bits(counter: CappedCounter) -> float:
    """Shannon entropy in bits of the counts; the folded tail counts as singletons (an upper bound)."""
    total = sum(counter.counts.values()) + counter.folded
    if not total:
        return 0.0
    h = -sum(n / total * math.log2(n / total) for n in counter.counts.values())
    return h + counter.folded * math.log2(total) / total


class LengthHistogram:
    """Whitespace words per document in half-octave bins (b: 2**((b-1)/2) <= n < 2**(b/2), 0 empty)."""

    def __init__(self) -> None:
        self.bins: Counter[int] = Counter()
        self.count = self.total = 0

    def add(self, n: int) -> None:
        self.bins[0 if n <= 0 else math.floor(2 * math.log2(n)) + 1] += 1
        self.count += 1
        self.total += n

    def merge(self, other: LengthHistogram) -> None:
        self.bins.update(other.bins)
        self.count += other.count
        self.total += other.total

    def state(self) -> dict[str, Any]:
        return {"bins": {str(b): n for b, n in self.bins.items()}, "count": self.count, "total": self.total}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> LengthHistogram:
        out = cls()
        out.bins = Counter({int(b): int(n) for b, n in s["bins"].items()})
        out.count, out.total = int(s["count"]), int(s["total"])
        return out

    @staticmethod
    def edges(b: int) -> tuple[float, float]:
        return (0.0, 1.0) if b == 0 else (2 ** ((b - 1) / 2), 2 ** (b / 2))

    def median(self) -> float | None:
        """The geometric middle of the bin holding the median document (exact to a bin)."""
        seen = 0
        for b in sorted(self.bins):
            seen += self.bins[b]
            if 2 * seen >= self.count:
                low, high = self.edges(b)
                return 0.0 if b == 0 else round(math.sqrt(low * high), 2)
        return None

    def result(self) -> dict[str, Any]:
        return {
            "unit": "words",
            "mean": round(self.total / self.count, 2) if self.count else None,
            "median": self.median(),
            "bins": [
                {"low": round(lo, 2), "high": round(hi, 2), "count": self.bins[b]}
                for b in sorted(self.bins)
                for lo, hi in [self.edges(b)]
            ],
        }


def _toxicity(annotations: Any) -> float | None:
    """`toxicity.score` from a dict or an Arrow map's list of pairs; None if absent or not a number."""
    if not annotations:
        return None
    raw = annotations.get(TOXICITY) if isinstance(annotations, dict) else dict(annotations).get(TOXICITY)
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


class _Mention:
    """Documents mentioning something, and the toxicity of those that have a score."""

    __slots__ = ("documents", "scored", "total")

    def __init__(self, documents: int = 0, scored: int = 0, total: float = 0.0) -> None:
        self.documents, self.scored, self.total = documents, scored, total

    def add(self, score: float | None) -> None:
        self.documents += 1
        if score is not None:
            self.scored += 1
            self.total += score

    def merge(self, other: _Mention) -> None:
        self.documents += other.documents
        self.scored += other.scored
        self.total += other.total

    def toxicity(self) -> dict[str, Any]:
        mean = round(self.total / self.scored, 4) if self.scored else None
        return {"documents": self.scored, "mean_toxicity": mean}


class _Source:
    """Everything `DiversityStats` keeps for one source type."""

    def __init__(self) -> None:
        self.documents = self.chars = self.words = self.no_domain = 0
        self.ngrams = 0
        self.doc_distinct = 0.0  # sum of per-document distinct n-gram ratios
        self.ngram_docs = 0
        self.languages = CappedCounter(MAX_LANGUAGES)
        self.domains = CappedCounter(MAX_DOMAINS)
        self.lengths = LengthHistogram()
        self.hll = HyperLogLogPlusPlus(p=HLL_P)
        self.pronouns: Counter[str] = Counter()
        self.mentions: dict[str, _Mention] = {}  # "group:axis:term", "pronoun:male", "all"

    def mention(self, key: str, score: float | None) -> None:
        self.mentions.setdefault(key, _Mention()).add(score)

    def add_ngrams(self, tokens: list[str], n: int) -> None:
        grams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        if not grams:
            return
        distinct = set(grams)
        for gram in distinct:
            self.hll.update(gram.encode())
        self.ngrams += len(grams)
        self.doc_distinct += len(distinct) / len(grams)
        self.ngram_docs += 1

    def merge(self, other: _Source) -> None:
        for name in self._SCALARS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.languages.merge(other.languages)
        self.domains.merge(other.domains)
        self.lengths.merge(other.lengths)
        self.hll.merge(other.hll)
        self.pronouns.update(other.pronouns)
        for key, m in other.mentions.items():
            self.mentions.setdefault(key, _Mention()).merge(m)

    _SCALARS = ("documents", "chars", "words", "no_domain", "ngrams", "doc_distinct", "ngram_docs")

    def state(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in self._SCALARS},
            "languages": self.languages.state(),
            "domains": self.domains.state(),
            "lengths": self.lengths.state(),
            "hll": base64.b64encode(self.hll.reg.astype(np.int8).tobytes()).decode(),
            "pronouns": dict(self.pronouns),
            "mentions": {k: [m.documents, m.scored, m.total] for k, m in self.mentions.items()},
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> _Source:
        src = cls()
        for name in cls._SCALARS:
            setattr(src, name, s[name])
        src.languages = CappedCounter.from_state(s["languages"])
        src.domains = CappedCounter.from_state(s["domains"])
        src.lengths = LengthHistogram.from_state(s["lengths"])
        src.hll = HyperLogLogPlusPlus(reg=np.frombuffer(base64.b64decode(s["hll"]), dtype=np.int8).copy())
        src.pronouns = Counter(s["pronouns"])
        src.mentions = {k: _Mention(int(d), int(c), float(t)) for k, (d, c, t) in s["mentions"].items()}
        return src

    def result(self, total_documents: int) -> dict[str, Any]:
        distinct = float(self.hll.count()) if self.ngrams else 0.0
        return {
            "documents": self.documents,
            "chars": self.chars,
            "words_examined": self.words,
            "share": round(self.documents / total_documents, 6) if total_documents else 0.0,
            "language": dict(self.languages.most_common()),
            "domains": top(self.domains, TOP_SOURCE_DOMAINS),
            "distinct_domains": len(self.domains.counts),
            "domains_capped": self.domains.capped,
            "documents_without_domain": self.no_domain,
            "domain_entropy": round(entropy_bits(self.domains), 6),
            "ngrams": self.ngrams,
            "distinct_ngrams": round(distinct),
            "distinct_ngram_ratio": round(min(distinct / self.ngrams, 1.0), 6) if self.ngrams else None,
            "mean_doc_distinct_ngram_ratio": round(self.doc_distinct / self.ngram_docs, 6)
            if self.ngram_docs
            else None,
            "length": self.lengths.result(),
            **_demographic_result(self),
        }


def _demographic_result(src: _Source) -> dict[str, Any]:
    rates = {
        f"{c}_per_1k_words": round(1000 * src.pronouns[c] / src.words, 4) if src.words else 0.0
        for c in dem.PRONOUNS
    }
    male, female = src.pronouns["male"], src.pronouns["female"]
    groups: dict[str, dict[str, int]] = {}
    toxicity: dict[str, dict[str, dict[str, Any]]] = {}
    for key in sorted(k for k in src.mentions if k.startswith("group:")):
        _, axis, term = key.split(":", 2)
        groups.setdefault(axis, {})[term] = src.mentions[key].documents
        toxicity.setdefault(axis, {})[term] = src.mentions[key].toxicity()
    overall = src.mentions.get("all", _Mention()).toxicity()
    return {
        "pronouns": {
            **{c: src.pronouns[c] for c in dem.PRONOUNS},
            **rates,
            "male_female_ratio": round(male / female, 4) if female else None,
            "documents": {
                c: src.mentions[f"pronoun:{c}"].documents
                for c in dem.PRONOUNS
                if f"pronoun:{c}" in src.mentions
            },
        },
        "groups": groups,
        "toxicity_by_group": toxicity,
        "toxicity_by_pronoun": {
            c: src.mentions[f"pronoun:{c}"].toxicity() for c in dem.PRONOUNS if f"pronoun:{c}" in src.mentions
        },
        "scored_documents": overall["documents"],
        "mean_toxicity": overall["mean_toxicity"],
    }


def _sample_key(seed: int, doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest(), "big")


class DiversityStats:
    """Mergeable bias and diversity statistics over documents (see the module docstring)."""

    def __init__(self, ngram: int = 3, topic_sample: int = 20_000, seed: int = 0) -> None:
        self.ngram, self.topic_sample, self.seed = ngram, topic_sample, seed
        self.sources: dict[str, _Source] = {}
        self._heap: list[tuple[int, str, str]] = []  # (-key, source, text): see _keep

    @classmethod
    def from_config(cls, cfg: DiversityConfig) -> DiversityStats:
        return cls(ngram=cfg.ngram, topic_sample=cfg.topic_sample, seed=cfg.seed)

    def add(self, row: dict[str, Any]) -> None:
        full = row.get("text") or ""
        text = full[:MAX_CHARS]
        source = str(row.get("source_type") or "unknown")
        src = self.sources.setdefault(source, _Source())
        src.documents += 1
        src.chars += len(full)
        src.lengths.add(len(full.split()))
        src.languages.add(str(row.get("language") or NO_LANGUAGE))
        if row.get("domain"):
            src.domains.add(str(row["domain"]))
        else:
            src.no_domain += 1
        tokens = dem.words(text)
        src.words += len(tokens)
        src.add_ngrams(tokens, self.ngram)
        self._demographics(src, tokens, _toxicity(row.get("annotations")))
        doc_id = row.get("id") or hashlib.sha256(full.encode("utf-8", "replace")).hexdigest()
        self._keep(_sample_key(self.seed, str(doc_id)), source, text[:SAMPLE_CHARS])

    @staticmethod
    def _demographics(src: _Source, tokens: list[str], score: float | None) -> None:
        src.mention("all", score)
        pronouns = dem.pronoun_counts(tokens)
        src.pronouns.update(pronouns)
        for cls, n in pronouns.items():
            if n:
                src.mention(f"pronoun:{cls}", score)
        for axis, term in dem.group_mentions(tokens):
            src.mention(f"group:{axis}:{term}", score)

    def _keep(self, key: int, source: str, text: str) -> None:
        """Bottom-k by key: the `topic_sample` smallest keys, whatever the order they arrive in."""
        item = (-key, source, text)  # a max-heap on key, so the largest kept key is evicted first
        if len(self._heap) < self.topic_sample:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def merge(self, other: DiversityStats) -> DiversityStats:
        if (other.ngram, other.seed) != (self.ngram, self.seed):
            raise ValueError("cannot merge DiversityStats with different ngram or seed")
        for name, src in other.sources.items():
            self.sources.setdefault(name, _Source()).merge(src)
        for neg, source, text in other._heap:
            self._keep(-neg, source, text)
        return self

    def to_json(self) -> str:
        return json.dumps(
            {
                "ngram": self.ngram,
                "topic_sample": self.topic_sample,
                "seed": self.seed,
                "sources": {name: src.state() for name, src in self.sources.items()},
                "sample": [[-neg, source, text] for neg, source, text in self._heap],
            }
        )

    @classmethod
    def from_json(cls, s: str) -> DiversityStats:
        data = json.loads(s)
        out = cls(int(data["ngram"]), int(data["topic_sample"]), int(data["seed"]))
        out.sources = {name: _Source.from_state(state) for name, state in data["sources"].items()}
        for key, source, text in data["sample"]:
            out._keep(int(key), str(source), str(text))
        return out

    def sample(self) -> list[tuple[str, str]]:
        """The topic sample as (source, text), in key order (the same for any partitioning)."""
        return [(source, text) for _, source, text in sorted(self._heap, reverse=True)]

    def result(self, topics_k: int | None = None, seed: int = 0) -> dict[str, Any]:
        total = sum(s.documents for s in self.sources.values())
        domains, languages, lengths = (
            CappedCounter(MAX_DOMAINS),
            CappedCounter(MAX_LANGUAGES),
            LengthHistogram(),
        )
        for src in self.sources.values():
            domains.merge(src.domains)
            languages.merge(src.languages)
            lengths.merge(src.lengths)
        share = _shares(total)
        ranked = domains.most_common(TOP_DOMAINS)
        out: dict[str, Any] = {
            "documents": total,
            "ngram": self.ngram,
            "text_limit_chars": MAX_CHARS,
            "by_source": {name: self.sources[name].result(total) for name in sorted(self.sources)},
            "by_language": dict(languages.most_common()),
            "by_domain": top(domains, TOP_DOMAINS),
            "domains_capped": domains.capped,
            "documents_without_domain": sum(s.no_domain for s in self.sources.values()),
            "domain_shares": {d: share(n) for d, n in ranked},
            "max_domain": ranked[0][0] if ranked else None,
            "max_domain_share": share(ranked[0][1]) if ranked else 0.0,
            "source_shares": {name: share(self.sources[name].documents) for name in sorted(self.sources)},
            "language_shares": {lang: share(n) for lang, n in languages.most_common()},
            "length_histogram": lengths.result(),
            "topic_sample": len(self._heap),
        }
        if topics_k is not None:
            out["topics"] = self.topics(topics_k, seed)
        return out

    def topics(self, k: int, seed: int = 0) -> list[dict[str, Any]]:
        """k-means topic clusters of the sample (jobs/safety/topics.py), with sources per cluster."""
        pairs = self.sample()
        found = topic_clusters([text for _, text in pairs], k, seed)
        by_source: list[Counter[str]] = [Counter() for _ in range(found.k)]
        for (src, _), label in zip(pairs, found.labels, strict=True):
            by_source[label][src] += 1
        return [
            {
                "cluster": c,
                "size": found.sizes[c],
                "top_terms": found.top_terms[c],
                "by_source": dict(by_source[c]),
            }
            for c in range(found.k)
        ]


def _shares(total: int) -> Any:
    return lambda n: round(n / total, 6) if total else 0.0


def gate_rows(report: dict[str, Any], cfg: DiversityConfig) -> list[dict[str, Any]]:
    """One row per check: the largest domain's share against `max_domain_share` (always, so the table
    is informative at 1.0), then each configured source and language against its minimum share (0.0
    observed when absent)."""
    limit = cfg.max_domain_share
    observed = float(report.get("max_domain_share") or 0.0)
    rows = [
        {"check": "max_domain_share", "subject": report.get("max_domain") or "", "observed": observed,
         "limit": limit, "ok": observed <= limit}
    ]  # fmt: skip
    for check, shares, minima in (
        ("min_source_share", report.get("source_shares", {}), cfg.min_source_shares),
        ("min_language_share", report.get("language_shares", {}), cfg.min_language_shares),
    ):
        for subject, minimum in sorted(minima.items()):
            seen = float(shares.get(subject, 0.0))
            rows.append(
                {
                    "check": check,
                    "subject": subject,
                    "observed": seen,
                    "limit": minimum,
                    "ok": seen >= minimum,
                }
            )
    return rows
