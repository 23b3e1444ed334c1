"""Curation: crawl the web and ingest local sources, then extract, dedup, filter, screen for
copyright, redact PII and score toxicity, near-dedup, decontaminate against evaluation sets,
report bias and diversity (its gates can fail the run), train a tokenizer and write token shards.
One task per stage of the registry (core/registry.py), each a
Spark job: spark-submit, or a SparkApplication on Kubernetes when the deployment config says
`spark.submit: kubernetes` (orchestration/spark_operators.py); the edges are the stages' inputs.
The stages share the `spark.pool` pool. The shards are the `token_shards` Asset that schedules the
`pretrain` DAG.

Trigger params override the deployment's config (profile, LMFORGE_CONFIG) in the fields that
core/overrides.py allows; a bad or refused value fails the `prepare` task with a message naming
the field, before any Spark job starts. Folders and files are picked by location name. A
committed stage whose config, inputs and code are unchanged is skipped; `force` reruns
everything, `rerun_from` a stage and its readers. A stage that fails on a bad config or a
validation gate fails at once, without retries (a retry would fail the same way).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import Param, dag, task

from core.config import LOCATION_NAME
from core.registry import dag_stages
from orchestration.assets import TOKEN_SHARDS
from orchestration.callbacks import default_args
from orchestration.params import config_choices, nullable
from orchestration.spark_operators import load_deployment_config, stage_operator

REPO = Path(__file__).resolve().parent.parent
STAGES = dag_stages("curation")
# Read when the file is parsed (submit mode, pool, cluster settings). A bad config falls back to
# the defaults and is shown in the DAG's docs; each run then fails at `prepare`, naming the field.
CFG, CONFIG_ERROR = load_deployment_config()
DOC = (
    __doc__
    if CONFIG_ERROR is None
    else f"{__doc__}\n\n**Deployment config error** (runs fail at `prepare`): {CONFIG_ERROR}"
)
SOURCE_KINDS = ["books", "code", "papers", "social", "synthetic"]
URLS = {"type": "string"}
NAME = {"maxLength": 64, "pattern": LOCATION_NAME}
NAMES = {"type": "string", **NAME}
LOCATION = "the name of an entry of the deployment config's `locations` (paths are config-only)"
LOCATIONS = "names of entries of the deployment config's `locations` (paths are config-only)"
OVERRIDES = (
    "Other config fields, nested JSON; only the fields listed in core/overrides.py (storage, "
    "endpoints, paths, crawler safety settings and secrets are refused)"
)

# Trigger-form sections (the UI groups params by their `section`, in order of first appearance).
RUN, CRAWL, SOURCES, CURATION, COPYRIGHT, SAFETY, ADVANCED = (
    "Run",
    "Crawl",
    "Sources",
    "Curation",
    "Copyright",
    "Safety",
    "Advanced",
)
# Execution timeouts: generous upper bounds that catch a hung task (a stuck Spark job, a crawl that
# never ends), not budgets. A stage is one Spark job over the whole corpus: the demo takes minutes,
# a cluster crawl or MinHash pass over a large corpus hours, so 6 h. `prepare` only validates the
# config, and `publish` uploads the committed shards and tokenizer and verifies them (token shards
# are small next to the corpus): 30 min; raise it for a slow link to a large `publish.uri`.
# Pool: `spark.pool`, which every launcher creates (orchestration/pools.py); `dag.test()` ignores it.
STAGE_TIMEOUT = timedelta(hours=6)
LIGHT_TIMEOUT = timedelta(minutes=30)


@dag(
    dag_id="curation",
    schedule=None,
    catchup=False,
    doc_md=DOC,
    tags=["lmforge", "curation"],
    default_args=default_args(execution_timeout=STAGE_TIMEOUT),
    max_active_runs=1,  # runs share the Spark cluster; a stage already parallelises inside itself
    params={
        "run_id": nullable("string", "Run id (empty: from the Airflow run id)", section=RUN, maxLength=128),
        "force": Param(
            False, type="boolean", section=RUN, description="Rerun every stage, even those already committed"
        ),
        "rerun_from": nullable(
            "string",
            "Rerun this stage and every stage that reads it",
            section=RUN,
            enum=[s.name for s in STAGES],
        ),
        "seeds": nullable("array", "Crawl seed URLs (empty: the profile's)", section=CRAWL, items=URLS),
        "allow_domains": nullable("array", "Domains to crawl (empty: seed hosts)", section=CRAWL, items=URLS),
        "deny_domains": nullable("array", "Domains the crawl never enters", section=CRAWL, items=URLS),
        "max_pages": nullable(
            "integer", "Pages to fetch in all", section=CRAWL, minimum=0, maximum=10_000_000
        ),
        "max_pages_per_host": nullable(
            "integer", "Pages per host", section=CRAWL, minimum=0, maximum=10_000_000
        ),
        "max_depth": nullable("integer", "Link depth from the seeds", section=CRAWL, minimum=0, maximum=100),
        "delay_s": nullable(
            "number", "Seconds between requests to one host", section=CRAWL, minimum=0, maximum=3600
        ),
        "sources": Param(
            SOURCE_KINDS,
            type="array",
            items={"type": "string", "enum": SOURCE_KINDS},
            section=SOURCES,
            description="Local source kinds to ingest (the crawl and WARC paths are set separately)",
        ),
        "books": nullable(
            "string", f"Books folder (.txt, .epub, HTML chapters): {LOCATION}", section=SOURCES, **NAME
        ),
        "code": nullable("string", f"Source tree or git repository: {LOCATION}", section=SOURCES, **NAME),
        "papers": nullable(
            "string", f"Folder of JATS XML, LaTeX and PDF papers: {LOCATION}", section=SOURCES, **NAME
        ),
        "social": nullable("array", f"JSONL/CSV post dumps: {LOCATIONS}", section=SOURCES, items=NAMES),
        "synthetic_count": Param(
            0,
            type="integer",
            minimum=0,
            maximum=10_000_000,
            section=SOURCES,
            description="Synthetic documents (0: none)",
        ),
        "warc": nullable("array", f"WARC/WET files or folders: {LOCATIONS}", section=SOURCES, items=NAMES),
        "repeated_lines": Param(
            False,
            type="boolean",
            section=CURATION,
            description="C4-style removal of lines repeated across web pages",
        ),
        "minhash_threshold": nullable(
            "number",
            "Near-dedup Jaccard threshold (empty: 0.8, FineWeb / Lee et al. 2022)",
            section=CURATION,
            exclusiveMinimum=0,
            exclusiveMaximum=1,
        ),
        "protected_works": nullable(
            "string",
            f"Folder of protected works (.txt) to find verbatim copies of: {LOCATION}",
            section=COPYRIGHT,
            **NAME,
        ),
        "overlap_action": nullable(
            "string",
            "What to do with a copied span (empty: drop the document)",
            section=COPYRIGHT,
            enum=config_choices("copyright", "overlap_action"),
        ),
        "optout_registry": nullable(
            "string", f"Per-domain opt-out registry (JSON lines): {LOCATION}", section=COPYRIGHT, **NAME
        ),
        "blocklist": nullable(
            "string", f"Domain blocklist (one domain per line): {LOCATION}", section=COPYRIGHT, **NAME
        ),
        "pii_action": nullable(
            "string",
            "PII (e-mail, phone, IP, card, IBAN, secrets): replace with <TYPE> placeholders, or only "
            "count and annotate them (empty: redact)",
            section=SAFETY,
            enum=config_choices("pii", "action"),
        ),
        "toxicity_model": nullable(
            "string",
            f"Toxicity classifier (.npz from `lmforge toxicity train`; empty: the lexicon score): {LOCATION}",
            section=SAFETY,
            **NAME,
        ),
        "toxicity_threshold": nullable(
            "number",
            "Flag documents whose toxicity score is at least this (empty: 0.5)",
            section=SAFETY,
            minimum=0,
            maximum=1,
        ),
        "evals": nullable(
            "string",
            f"Evaluation sets to decontaminate against (JSONL/CSV/text files): {LOCATION}",
            section=SAFETY,
            **NAME,
        ),
        "decontam_action": nullable(
            "string",
            "What to do with a document that repeats a benchmark (empty: drop it)",
            section=SAFETY,
            enum=config_choices("decontam", "action"),
        ),
        "max_domain_share": nullable(
            "number",
            "Fail the run when one domain holds more than this share of documents (empty: no limit)",
            section=SAFETY,
            exclusiveMinimum=0,
            maximum=1,
        ),
        "overrides": nullable("object", OVERRIDES, section=ADVANCED),
    },
)
def curation() -> None:
    # Validation only: a bad param fails the same way every time, so no retries.
    @task(retries=0, execution_timeout=LIGHT_TIMEOUT)
    def prepare(params: dict | None = None, run_id: str | None = None) -> dict:
        """Validate the whole config now, so bad params fail before any Spark job."""
        from orchestration.params import prepare_run

        return prepare_run(params or {}, run_id or "manual", dag="curation")

    prepared_run = prepare()
    tasks = {stage.name: stage_operator(CFG, stage, REPO) for stage in STAGES}
    for stage in STAGES:
        for up in stage.upstream:
            tasks[up] >> tasks[stage.name]
        if not stage.upstream:
            prepared_run >> tasks[stage.name]

    @task(outlets=[TOKEN_SHARDS], execution_timeout=LIGHT_TIMEOUT)
    def publish(run: dict, outlet_events=None) -> dict:
        """Publish the shards, tokenizer and manifest to the deployment's `publish.uri` (manifest last,
        every file verified) and announce them: the event names the published manifest and carries
        the run id that the pretraining DAG reads."""
        from orchestration.params import publish_shards

        info = publish_shards(run)
        outlet_events[TOKEN_SHARDS].extra = info
        return info

    read = {i for s in STAGES for i in s.upstream}
    [tasks[s.name] for s in STAGES if s.name not in read] >> publish(prepared_run)  # type: ignore[arg-type]  # TaskFlow resolves XComArgs


curation()
