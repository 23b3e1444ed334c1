"""datatrove's quality filters on the quality bench's corpus; runs inside `.bench/peers-venv`.

Why a separate script: datatrove and its spaCy tokenizer live in the peer venv
(scripts/peer_requirements.txt), never in the project's. scripts/bench_quality.py starts this with
`--input` (JSON lines `{"id", "text"}`) and `--settings` (JSON: keyword arguments per filter), and
reads one JSON object from the last line of stdout:

- `decisions`: per filter, one entry per document, `null` (kept) or datatrove's drop reason; each
  filter sees every document on its own (the agreement check); `decisions_whitespace_words`: the
  same with words split on whitespace instead of by spaCy (`WhitespaceWords`);
- `seconds` (wall) and `cpu_seconds` (this process's CPU time): the whole chain (Gopher quality,
  Gopher repetition, C4, FineWeb, in that order, as FineWeb's pipeline runs them) timed per run on
  fresh `Document`s through datatrove's own `PipelineStep.run` generators (its per-step stats
  included); `kept`: what the chain kept.

The process pins itself to one core and times inside, so imports and start-up are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from importlib.metadata import version
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import get_filter_result
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

FILTERS = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4": C4QualityFilter,
    "fineweb": FineWebQualityFilter,
}


class WhitespaceWords(WordTokenizer):
    """Words split on whitespace, sentences still spaCy's: datatrove's filters with the paper's
    notion of a word, so the remaining disagreements are rule logic, not tokenisation. datatrove
    accepts a `WordTokenizer` wherever it takes a language (utils/word_tokenizers.py)."""

    def __init__(self) -> None:
        super().__init__("en")
        self.spacy = load_word_tokenizer("en")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return self.spacy.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.spacy.span_tokenize(text)


def make(settings: dict[str, dict[str, Any]], words: WordTokenizer | None = None) -> dict[str, Any]:
    """The four filters; tuple-valued settings (repetition n-gram tables) arrive as lists. `words`:
    a tokenizer to use instead of datatrove's for English (spaCy's blank pipeline)."""
    out = {}
    for name, cls in FILTERS.items():
        kwargs = {
            k: tuple(map(tuple, v)) if k.endswith("_grams") else v for k, v in settings.get(name, {}).items()
        }
        out[name] = cls(**kwargs, **({"language": words} if words else {}))
    return out


def decide(filters: dict[str, Any], docs: list[tuple[str, str]]) -> dict[str, list[str | None]]:
    """Every filter on every document, document by document (datatrove caches the last few word
    tokenizations, so the four filters share one per document)."""
    out: dict[str, list[str | None]] = {name: [] for name in filters}
    for doc_id, text in docs:
        for name, step in filters.items():
            keep, reason = get_filter_result(step.filter(Document(text=text, id=doc_id)))
            out[name].append(None if keep else reason or "dropped")
    return out


def chain(filters: dict[str, Any], docs: list[tuple[str, str]]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, documents kept) for one pass of the chain, as a datatrove
    pipeline runs it."""
    fresh = [Document(text=text, id=doc_id) for doc_id, text in docs]
    start, cpu = time.perf_counter(), time.process_time()
    stream: Any = iter(fresh)
    for step in filters.values():
        stream = step.run(stream)
    kept = sum(1 for _ in stream)
    return time.perf_counter() - start, time.process_time() - cpu, kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True)
    p.add_argument("--settings", required=True, help="JSON: {filter: {keyword: value}}")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-decisions", action="store_true")
    args = p.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with open(args.input, encoding="utf-8") as fh:
        docs = [(d["id"], d["text"]) for d in map(json.loads, fh)]
    settings = json.loads(args.settings)
    filters = make(settings)
    chain(filters, docs[:50])  # warm-up: spaCy's blank English pipeline loads on first use
    decisions = {} if args.no_decisions else decide(filters, docs)
    whitespace = {} if args.no_decisions else decide(make(settings, WhitespaceWords()), docs)
    runs = [chain(filters, docs) for _ in range(args.runs)]
    result = {
        "version": version("datatrove"),
        "spacy": version("spacy"),
        "decisions": decisions,
        "decisions_whitespace_words": whitespace,
        "seconds": [s for s, _, _ in runs],
        "cpu_seconds": [c for _, c, _ in runs],
        "kept": runs[0][2],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
