"""Curation: crawl the web and ingest local sources, then extract, dedup, filter, train a
tokenizer and write token shards. Each box is a Spark job submitted with `SparkSubmitOperator`;
the shards are the `token_shards` Asset that schedules the `pretrain` DAG.

Trigger params override the active config profile; a bad value fails the `prepare` task with a
message naming the field, before any Spark job starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param, dag, task

from orchestration.assets import TOKEN_SHARDS

REPO = Path(__file__).resolve().parent.parent
SPARK_STAGES = {
    "crawl": [],
    "ingest": [],
    "warc": [],
    "extract": ["crawl", "ingest", "warc"],
    "dedup": ["extract"],
    "quality": ["dedup"],
    "near_dedup": ["quality"],
    "tokenizer": ["near_dedup"],
    "shards": ["near_dedup", "tokenizer"],
}


def prepared(key: str) -> str:
    """Jinja for one field of what the `prepare` task returned."""
    return "{{ ti.xcom_pull(task_ids='prepare')['" + key + "'] }}"


@dag(
    dag_id="curation",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["lmforge", "curation"],
    params={
        "run_id": Param(
            "", type="string", maxLength=128, description="Empty: derived from the Airflow run id"
        ),
        "profile": Param("", type="string", description="Config profile (empty: LMFORGE_PROFILE or local)"),
        "seeds": Param([], type="array", items={"type": "string"}, description="Crawl seed URLs"),
        "allow_domains": Param([], type="array", items={"type": "string"}, description="Empty: seed hosts"),
        "deny_domains": Param([], type="array", items={"type": "string"}),
        "max_pages": Param(None, type=["null", "integer"], minimum=0, maximum=10_000_000),
        "max_pages_per_host": Param(None, type=["null", "integer"], minimum=0, maximum=10_000_000),
        "max_depth": Param(None, type=["null", "integer"], minimum=0, maximum=100),
        "delay_s": Param(
            None, type=["null", "number"], minimum=0, maximum=3600, description="Per-host delay"
        ),
        "sources": Param(
            ["books", "code", "papers", "social", "synthetic"],
            type="array",
            items={"type": "string", "enum": ["books", "code", "papers", "social", "synthetic"]},
            description="Local source kinds to ingest (the crawl and WARC paths are set separately)",
        ),
        "books_dir": Param("", type="string", description="Folder of books: .txt, .epub, HTML chapters"),
        "code_dir": Param("", type="string", description="Source tree or git repository"),
        "papers_dir": Param("", type="string", description="Folder of JATS XML, LaTeX and PDF papers"),
        "social_paths": Param([], type="array", items={"type": "string"}, description="JSONL/CSV post dumps"),
        "synthetic_count": Param(0, type="integer", minimum=0, maximum=10_000_000),
        "warc_paths": Param(
            [], type="array", items={"type": "string"}, description="WARC/WET files or folders"
        ),
        "repeated_lines": Param(
            False, type="boolean", description="C4-style removal of lines repeated across web pages"
        ),
        "minhash_threshold": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            description="Near-dedup Jaccard threshold (empty: 0.8, FineWeb / Lee et al. 2022)",
        ),
        "overrides": Param({}, type="object", description="Any other config fields, nested"),
    },
)
def curation() -> None:
    @task
    def prepare(params: dict | None = None, run_id: str | None = None) -> dict:
        """Validate the whole config now, so bad params fail before any Spark job."""
        from orchestration.params import prepare_run

        return prepare_run(params or {}, run_id or "manual")

    prepared_run = prepare()
    tasks = {}
    for stage in SPARK_STAGES:
        tasks[stage] = SparkSubmitOperator(
            task_id=stage,
            application=str(REPO / "jobs" / "spark" / "main.py"),
            conn_id="spark_default",
            name=f"lmforge-{stage}",
            application_args=[
                stage,
                "--run-id",
                prepared("run_id"),
                "--profile",
                prepared("profile"),
                "--overrides",
                prepared("overrides_json"),
            ],
            conf={
                "spark.pyspark.python": sys.executable,
                "spark.driver.memory": prepared("driver_memory"),
                "spark.pyspark.driver.python": sys.executable,
                "spark.executorEnv.PYTHONPATH": str(REPO),
            },
            env_vars={"PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable},
        )
    for stage, upstream in SPARK_STAGES.items():
        for up in upstream:
            tasks[up] >> tasks[stage]
        if not upstream:
            prepared_run >> tasks[stage]

    @task(outlets=[TOKEN_SHARDS])
    def publish(run: dict, outlet_events=None) -> dict:
        """Announce the committed shards to the pretraining DAG (the event carries the run id)."""
        from orchestration.params import publish_shards

        info = publish_shards(run)
        outlet_events[TOKEN_SHARDS].extra = info
        return info

    tasks["shards"] >> publish(prepared_run)


curation()
