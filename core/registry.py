"""The one stage registry: every stage of the pipeline, declared once.

The curation DAG's tasks and edges (dags/curation.py), the run summary (jobs/report.py), the
command line (`lmforge stage NAME`, lmforge/cli.py), the stage runners (jobs/spark/runner.py,
training/stage.py, both through core/plans.py) and the pipeline tests all read this table; nothing
else lists stages. It names code by "module:function" strings, so core imports no stage code and
DAG files can read it without heavy imports.

Adding a filter: a module of plain rules under jobs/filters/ (`assess_with(cfg)` giving a function
`row -> (row, reason)`) and one `Stage(...)` line below naming it as `row_logic`, with the generic
adapter `jobs.spark.curate:run_row_logic` (its config section goes into core/config.py). This
module imports nothing heavy: DAG files parse it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Engine = Literal["spark", "ray"]


@dataclass(frozen=True)
class Stage:
    """One box of the pipeline.

    `adapter` ("module:function") runs the stage on its engine; `logic` are the plain-Python modules
    it applies (their code is part of the stage's code version, core/code_version.py); `row_logic`
    ("module:function", optional) is the per-document rule `lmforge <stage>` applies to JSON lines;
    `external` ("module:function", optional) lists facts outside the config that change the output
    (the files in a source folder). `funnel`: a document step whose rows in/out and rejects by
    reason the summary's funnel shows. `summary`: manifest stats copied into the run summary under
    `summary_section`; "a.b" reads a nested key, "key:len" the length of a list.
    """

    name: str
    inputs: tuple[str, ...]
    config: tuple[str, ...]
    adapter: str
    logic: tuple[str, ...] = ()
    engine: Engine = "spark"
    dag: str = "curation"
    description: str = ""
    row_logic: str | None = None
    external: str | None = None
    funnel: bool = False
    source_type: str | None = None  # every kept row is this source type (for the source mix)
    summary_section: str | None = None
    summary: tuple[str, ...] = field(default=())
    reads: tuple[str, ...] = ()  # stages read for facts, not documents (no funnel input)

    @property
    def upstream(self) -> tuple[str, ...]:
        """Every committed stage this one needs: its document inputs, then what it reads."""
        return self.inputs + self.reads


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "crawl", (), ("crawl",), "jobs.spark.sources:run_crawl",
            logic=("jobs.crawl.crawler",),
            description="Polite crawl: robots.txt, AI opt-outs, WARC records, a fetch log",
            external=None, source_type="web", summary_section="crawl",
            summary=("pages_fetched", "skipped_robots", "skipped_optout", "errors_by_reason", "decisions"),
        ),
        Stage(
            "ingest", (), ("sources",), "jobs.spark.sources:run_ingest",
            logic=("jobs.readers.local",),
            description="Local books, code, papers, social posts and synthetic data",
            external="jobs.spark.sources:source_listing", funnel=True,
        ),
        Stage(
            "warc", (), ("warc",), "jobs.spark.sources:run_warc",
            logic=("jobs.readers.warc",),
            description="Common Crawl (or own) WARC, WET and ARC files",
            external="jobs.spark.sources:warc_listing", source_type="web", summary_section="warc",
            summary=("files", "records", "documents", "rejected_by_reason", "bad_records:len"),
        ),
        Stage(
            "extract", ("crawl", "ingest", "warc"), ("extract",), "jobs.spark.curate:run_row_logic",
            logic=("jobs.extract.html",), row_logic="jobs.extract.html:extract_row_with",
            description="HTML to main text (trafilatura or resiliparse), title, language, links",
            funnel=True,
        ),
        Stage(
            "dedup", ("extract",), ("dedup",), "jobs.spark.dedup:run_dedup",
            logic=("jobs.dedup.exact", "jobs.dedup.lines"),
            description="Exact duplicates by normalised text and canonical URL; optional repeated lines",
            funnel=True,
        ),
        Stage(
            "quality", ("dedup",), ("quality",), "jobs.spark.quality:run_quality",
            logic=(
                "jobs.filters.quality", "jobs.filters.view", "jobs.filters.language", "jobs.filters.gopher",
                "jobs.filters.c4", "jobs.filters.fineweb", "jobs.filters.code", "jobs.filters.social",
                "jobs.filters.synthetic",
            ),
            row_logic="jobs.filters.quality:assess_with",
            description="Per-source profiles: language ID, Gopher, C4, FineWeb, code, social, synthetic",
            funnel=True,
        ),
        Stage(
            "copyright", ("quality",), ("copyright",), "jobs.spark.copyright:run_copyright",
            logic=(
                "jobs.copyright.screen", "jobs.copyright.licenses", "jobs.copyright.policy",
                "jobs.copyright.notices", "jobs.copyright.optout", "jobs.copyright.overlap",
                "core.copyright_policy",
            ),
            row_logic="jobs.copyright.screen:screen_with", reads=("warc",),
            description="Licence classes and policy, opt-outs, blocklists, overlap with protected works",
            funnel=True, summary_section="copyright",
            summary=("decisions", "by_class", "flags", "optouts", "overlap_hits", "protected_index"),
        ),
        Stage(
            "safety", ("copyright",), ("pii", "toxicity"), "jobs.spark.safety:run_safety",
            logic=(
                "jobs.safety.pii", "jobs.safety.pseudonym", "jobs.safety.toxicity", "jobs.safety.lexicon",
                "jobs.safety.toxicity_model",
            ),
            description="PII redaction (typed placeholders), pseudonymised social handles, toxicity scores",
            external="jobs.spark.safety:safety_facts", funnel=True, summary_section="safety",
            summary=("pii_by_type", "pii_by_source", "pseudonymised", "toxicity_by_source", "key_source"),
        ),
        Stage(
            "near_dedup", ("safety",), ("minhash",), "jobs.spark.dedup:run_near_dedup",
            logic=("jobs.dedup.minhash", "jobs.dedup.near"),
            description="MinHash LSH, verified pairs, connected components, one keeper per cluster",
            funnel=True, summary_section="near_dedup",
            summary=(
                "bands", "rows", "hit_probability_at_threshold", "candidate_pairs", "verified_pairs",
                "clusters", "report.duplicate_rate_by_source", "report.cluster_size_histogram",
                "report.chart",
            ),
        ),
        Stage(
            "decontaminate", ("near_dedup",), ("decontam",), "jobs.spark.decontam:run_decontam",
            logic=("jobs.safety.decontam", "jobs.safety.evalsets"),
            external="jobs.spark.decontam:evals_listing",
            description="Benchmark decontamination: 13-gram overlap with evaluation sets, drop or cut",
            funnel=True, summary_section="decontamination",
            summary=("action", "ngram", "benchmarks", "hits_by_benchmark", "documents_hit", "cut_chars"),
        ),
        Stage(
            "diversity", ("decontaminate",), ("diversity",), "jobs.spark.diversity:run_diversity",
            logic=("jobs.safety.diversity", "jobs.safety.topics", "jobs.safety.demographics"),
            description="Bias and diversity: sources, domains, languages, lengths, topics, groups; gates",
            summary_section="diversity",
            summary=(
                "documents", "source_shares", "language_shares", "max_domain", "max_domain_share",
                "diversity_by_source", "gates",
            ),
        ),
        Stage(
            "tokenizer", ("decontaminate",), ("tokenizer",), "jobs.spark.tokens:run_tokenizer",
            logic=("jobs.tokens.tokenizer",),
            description="Byte-level BPE with EOS, pad, mask and span sentinel tokens",
        ),
        Stage(
            "shards", ("decontaminate", "tokenizer"), ("shards",), "jobs.spark.tokens:run_shards",
            logic=("jobs.tokens.shards",),
            description="uint16 token shards with a train/validation split, meta.json",
            summary_section="tokens",
            summary=("vocab_size", "train_tokens", "val_tokens", "train_documents", "val_documents"),
        ),
        Stage(
            "pretrain", ("shards",), ("train", "ray"), "training.stage:train_work",
            logic=("training.launch",), engine="ray", dag="pretrain",
            description="Ray Train: GPT pretraining with the configured objective and parallelism",
            summary_section="training",
            summary=(
                "objective", "mode", "parallelism", "steps", "first_loss", "last_loss", "val_loss",
                "val_ppl", "tokens_per_s", "mfu", "num_params", "workers", "checkpoint", "tensorboard",
            ),
        ),
    )
}  # fmt: skip


def dag_stages(dag: str) -> list[Stage]:
    """The stages a DAG runs, in registry (topological) order."""
    return [s for s in STAGES.values() if s.dag == dag]


def downstream(names: list[str] | tuple[str, ...]) -> list[str]:
    """`names` and every stage that reads them, directly or not, in registry order: what a
    `rerun_from` must force (a forced stage's fingerprint is unchanged, so its readers would skip)."""
    chosen = set(names)
    for stage in STAGES.values():  # registry order is topological: one pass suffices
        if chosen.intersection(stage.upstream):
            chosen.add(stage.name)
    return [n for n in STAGES if n in chosen]


def check_registry() -> None:
    """Inputs exist and come earlier (the order is topological); raises ValueError otherwise."""
    seen: set[str] = set()
    for stage in STAGES.values():
        missing = [i for i in stage.upstream if i not in seen]
        if missing:
            raise ValueError(f"stage {stage.name!r} reads {missing}, which are not declared before it")
        seen.add(stage.name)
