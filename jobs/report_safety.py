"""The data report's safety, decontamination and bias/diversity sections (jobs/data_report.py merges
`RENDERERS` here with jobs/report_sections.py's). Numbers come from the run summary; the diversity
stage's full report (`diversity/report.json`) is linked, not repeated."""

from __future__ import annotations

from typing import Any

from jobs.report_doc import Block, Cell, Section, Table
from jobs.report_sections import Context, Renderer, final_documents, pct, stage_link

PII_TYPES = ("email", "phone", "ip", "card", "iban", "secret")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def safety(ctx: Context) -> list[Section]:
    s = _dict(ctx.summary.get("safety"))
    by_source = _dict(s.get("pii_by_source"))
    rows: list[list[Cell]] = [
        [src, _dict(v).get("documents"), _dict(v).get("with_pii"), *(_dict(v).get(t, 0) for t in PII_TYPES)]
        for src, v in sorted(by_source.items())
    ]
    tox = _dict(s.get("toxicity_by_source"))
    tox_rows: list[list[Cell]] = [
        [
            src,
            _dict(v).get("documents"),
            _dict(v).get("mean_score"),
            _dict(v).get("flagged"),
            _dict(v).get("dropped"),
        ]
        for src, v in sorted(tox.items())
    ]
    blocks: list[Block] = [
        "PII replaced by typed placeholders (`<EMAIL>`, `<PHONE>`, ...), counted per source and type; "
        f"social handles pseudonymised with a keyed hash: {s.get('pseudonymised', 0)} posts "
        f"(key: {s.get('key_source') or 'none'}).",
        Table(["source", "documents", "with PII", *PII_TYPES], rows),
        "Toxicity score (the trained classifier when configured, else the glin-profanity lexicon):",
        Table(["source", "documents", "mean score", "flagged", "dropped"], tox_rows),
    ]
    return [Section("Safety: PII and toxicity", blocks)]


def decontaminate(ctx: Context) -> list[Section]:
    d = _dict(ctx.summary.get("decontamination"))
    benchmarks = _dict(d.get("benchmarks"))
    if not benchmarks:
        none = Section("Benchmark decontamination", ["No evaluation sets configured (`decontam.evals`)."])
        return [none, *final_documents(ctx)]
    hits = _dict(d.get("hits_by_benchmark"))
    rows: list[list[Cell]] = [
        [name, _dict(b).get("items"), _dict(b).get("too_short"), hits.get(name, 0)]
        for name, b in sorted(benchmarks.items())
    ]
    blocks: list[Block] = [
        f"{d.get('ngram')}-gram overlap with {len(benchmarks)} evaluation sets; action `{d.get('action')}`: "
        f"{d.get('documents_hit', 0)} documents hit, {d.get('cut_chars', 0)} characters cut.",
        Table(["benchmark", "items", "items shorter than n", "documents hit"], rows),
    ]
    return [Section("Benchmark decontamination", blocks), *final_documents(ctx)]


def diversity(ctx: Context) -> list[Section]:
    d = _dict(ctx.summary.get("diversity"))
    per = _dict(d.get("diversity_by_source"))
    shares = _dict(d.get("source_shares"))
    rows: list[list[Cell]] = [
        [
            src, _dict(v).get("documents"), pct(shares.get(src)), _fmt(_dict(v).get("distinct_ngram_ratio")),
            _fmt(_dict(v).get("domain_entropy")), _fmt(_dict(v).get("mean_toxicity")),
        ]
        for src, v in sorted(per.items())
    ]  # fmt: skip
    gates = [g for g in d.get("gates") or [] if isinstance(g, dict)]
    gate_rows: list[list[Cell]] = [
        [
            g.get("check"),
            g.get("subject"),
            _fmt(g.get("observed")),
            _fmt(g.get("limit")),
            "ok" if g.get("ok") else "FAILED",
        ]
        for g in gates
    ]
    langs = ", ".join(
        f"{k} {pct(v)}" for k, v in sorted(_dict(d.get("language_shares")).items(), key=lambda kv: -kv[1])[:8]
    )
    # distinct n-grams: distinct / total word n-grams; domain entropy in bits
    blocks: list[Block] = [
        f"Largest domain: {d.get('max_domain')} ({pct(d.get('max_domain_share'))} of documents). "
        f"Languages: {langs or 'none'}.",
        Table(["source", "documents", "share", "distinct n-grams", "domain entropy", "mean toxicity"], rows),
        "Gates (a failed one fails the run before publishing):",
        Table(["check", "subject", "observed", "limit", "result"], gate_rows),
        stage_link("Topics, groups, lengths (JSON)", "diversity", str(d.get("report") or "report.json")),
    ]  # fmt: skip
    return [Section("Bias and diversity", blocks)]


def _fmt(value: Any) -> Cell:
    return f"{value:.3f}" if isinstance(value, float) else value


RENDERERS: dict[str, Renderer] = {"safety": safety, "decontaminate": decontaminate, "diversity": diversity}
