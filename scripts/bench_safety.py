"""PII redaction + toxicity scoring + benchmark decontamination: documents per second per core.

Why (issue 18, "Must show"): the three per-document steps the safety and decontaminate stages run,
on the real documents of every source type that the quality bench uses (scripts/quality_corpus.py:
web pages, book and paper parts, code files, tweets and posts, generated synthetic documents), each
alone and all three in sequence, pinned to one core, median of `runs` passes over fresh rows.

Toxicity is timed with the lexicon and, when the Davidson tweets are beside the project, with the
classifier trained on them (what a deployment with `toxicity.model` runs). Decontamination checks
against the demo's evaluation set and the language-reference topics that pydoc ships (86 items,
13-grams), so its index lookups are real.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import DecontamConfig, PipelineConfig, ToxicityConfig
from scripts import quality_corpus
from scripts.bench_quality import one_core

ROOT = Path(__file__).resolve().parents[1]
DAVIDSON = quality_corpus.SHARED / "social" / "davidson-tweets.csv"
Row = dict[str, Any]
Rule = Callable[[Row], tuple[Row, str | None]]
BatchRule = Callable[[list[Row]], list[tuple[Row, str | None]]]
BATCH = 1000  # rows per call, as an Arrow batch of the Spark adapter


def _row(doc: dict[str, Any]) -> Row:
    return {"id": doc["id"], "text": doc["text"], "source_type": doc["source_type"], "annotations": {}}


def evaluation_sets(folder: Path) -> Path:
    """The demo's quiz and the pydoc topics (one item per topic) as two benchmarks."""
    from pydoc_data.topics import topics

    from demo.safety import write_evaluation_sets

    write_evaluation_sets(folder)
    items = [json.dumps({"id": k, "text": v}) for k, v in sorted(topics.items())]
    (folder / "pydoc-topics.jsonl").write_text("\n".join(items) + "\n", encoding="utf-8")
    return folder


def rules(cfg: PipelineConfig, work: Path) -> dict[str, BatchRule]:
    """Each step as the stages run it: per batch of rows (the classifier vectorises a batch at once)."""
    from jobs.safety.decontam import build_eval_index, decontaminate_with
    from jobs.safety.evalsets import read_evals
    from jobs.safety.pii import redact_with
    from jobs.safety.toxicity import score_rows
    from jobs.spark.safety import safety_rule

    key = b"bench-key-" * 4
    model = train_model(work / "toxicity.npz")
    toxicity = ToxicityConfig(model_path=model) if model else cfg.toxicity
    evals = evaluation_sets(work / "evals")
    index, _ = build_eval_index(read_evals(evals, cfg.decontam.max_eval_bytes), cfg.decontam.ngram)
    decontaminate = per_row(decontaminate_with(DecontamConfig(action="cut"), index))
    out: dict[str, BatchRule] = {"pii": per_row(redact_with(cfg.pii, key))}
    out["toxicity (lexicon)"] = lambda rows: score_rows(rows, cfg.toxicity)
    if model:
        out["toxicity (classifier)"] = lambda rows: score_rows(rows, toxicity)
    out["decontamination"] = decontaminate
    safety = safety_rule(cfg.model_copy(update={"toxicity": toxicity}), key)
    out["all three"] = lambda rows: decontaminate([r for r, why in safety(rows) if not why])
    return out


def per_row(rule: Rule) -> BatchRule:
    return lambda rows: [rule(row) for row in rows]


def train_model(path: Path) -> str | None:
    if not DAVIDSON.is_file():
        return None
    from jobs.safety.toxicity_model import train
    from lmforge.toxicity_commands import read_labelled

    texts, labels = read_labelled(DAVIDSON, "tweet", "class")
    train(texts, labels, seed=0).save(path)
    return str(path)


def time_rule(rule: BatchRule, docs: list[dict[str, Any]], runs: int) -> list[float]:
    """Seconds per pass over fresh rows in batches of BATCH, on one core (after a warm-up)."""
    rule([_row(d) for d in docs[:: max(1, len(docs) // 50)]])
    seconds = []
    for _ in range(runs):
        rows = [_row(d) for d in docs]
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            rule(rows[i : i + BATCH])
        seconds.append(time.perf_counter() - start)
    return seconds


def run(runs: int = 3, work: Path = ROOT / ".bench" / "safety") -> dict[str, Any]:
    docs = quality_corpus.build()
    work.mkdir(parents=True, exist_ok=True)
    cfg = PipelineConfig()
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    result: dict[str, Any] = {"documents": len(docs), "mb": round(mb, 2), "runs": runs, "steps": {}}
    with one_core():
        for name, rule in rules(cfg, work).items():
            seconds = time_rule(rule, docs, runs)
            median = statistics.median(seconds)
            result["steps"][name] = {
                "seconds": seconds, "docs_per_s_per_core": round(len(docs) / median, 1),
                "mb_per_s_per_core": round(mb / median, 3),
            }  # fmt: skip
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Safety per document ({result['documents']} real documents of every source type, "
        f"{result['mb']} MB; one core, median of {result['runs']}):",
        f"{'step':<24} {'docs/s/core':>12} {'MB/s/core':>10}",
    ]
    for name, s in result["steps"].items():
        lines.append(f"{name:<24} {s['docs_per_s_per_core']:>12} {s['mb_per_s_per_core']:>10}")
    return "\n".join(lines)


def report(runs: int = 3, out: Path = ROOT / ".bench" / "safety.json") -> str:
    """Run the bench, write every number to `out`, return the table (what `make bench` prints)."""
    result = run(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return table(result)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    print(report(p.parse_args().runs))
