"""The diversity stage on Spark: mergeable per-partition statistics (jobs/safety/diversity.py) over
the decontaminated documents, merged on the driver, topic clusters fitted on the merged sample, and
the report and gate table written beside each other. It removes nothing; its gate (a Great
Expectations suite over `gates.json`, jobs/validate/suites.py `diversity_suite`) fails the run
before publishing when a share is out of bounds.

It reads what the tokenizer reads (the decontaminated corpus), so the report describes the data the
model trains on; the annotations carry the safety stage's toxicity scores through.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from core.registry import STAGES
from jobs.spark.frame import StageContext, docs

REPORT = "report.json"
GATES = "gates.json"  # one row per check: jobs/safety/diversity.py gate_rows
COLUMNS = ("id", "text", "source_type", "domain", "language", "annotations")


def run_diversity(ctx: StageContext) -> dict[str, Any]:
    from jobs.safety.diversity import DiversityStats, gate_rows

    cfg = ctx.cfg.diversity

    def partition(rows: Iterable[Any]) -> Iterator[str]:
        stats = DiversityStats.from_config(cfg)
        for row in rows:
            stats.add(_row_dict(row))
        yield stats.to_json()

    df = docs(ctx, STAGES["diversity"].inputs[0]).select(*COLUMNS)
    merged = DiversityStats.from_config(cfg)
    for part in df.rdd.mapPartitions(partition).toLocalIterator():
        merged.merge(DiversityStats.from_json(part))
    report = merged.result(topics_k=cfg.topics, seed=cfg.seed)
    gates = gate_rows(report, cfg)
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / REPORT).write_text(json.dumps(report, indent=1, sort_keys=True))
    (ctx.out / GATES).write_text(json.dumps(gates, indent=1))
    return summary_stats(report, gates)


def _row_dict(row: Any) -> dict[str, Any]:
    out = row.asDict()
    if isinstance(out.get("annotations"), list):
        out["annotations"] = dict(out["annotations"])
    return out


def summary_stats(report: dict[str, Any], gates: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run summary shows: shares, the largest domain, diversity per source, the gates."""
    by_source = report.get("by_source") or {}
    keys = ("documents", "distinct_ngram_ratio", "domain_entropy", "mean_toxicity")
    return {
        "documents": report.get("documents"),
        "source_shares": report.get("source_shares"),
        "language_shares": report.get("language_shares"),
        "max_domain": report.get("max_domain"),
        "max_domain_share": report.get("max_domain_share"),
        "diversity_by_source": {s: {k: v.get(k) for k in keys} for s, v in by_source.items()},
        "gates": gates,
        "report": REPORT,
    }
