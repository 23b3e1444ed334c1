"""Every DAG imports cleanly and cheaply; the curation and pretraining DAGs run under `dag.test()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag(airflow_db):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_no_import_errors_and_ids_match_file_stems(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {p.stem for p in DAG_FILES}
    for dag_id in dagbag.dag_ids:
        dag = dagbag.get_dag(dag_id)
        assert dag.doc_md and dag.fileloc.endswith(f"{dag_id}.py")
        dag.check_cycle()  # raises AirflowDagCycleException


def test_curation_wiring(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("curation")
    assert dag.task_dict["extract"].upstream_task_ids == {"crawl", "ingest", "warc"}
    assert dag.task_dict["shards"].upstream_task_ids == {"near_dedup", "tokenizer"}
    expected = {
        "seeds",
        "allow_domains",
        "deny_domains",
        "max_pages",
        "max_pages_per_host",
        "max_depth",
        "delay_s",
        "sources",
        "books_dir",
        "code_dir",
        "papers_dir",
        "social_paths",
        "synthetic_count",
        "warc_paths",
        "overrides",
    }
    assert expected <= set(dag.params)
    # the trigger form shows types and bounds
    schema = {k: dag.params.get_param(k).schema for k in ("max_pages", "delay_s", "sources", "warc_paths")}
    assert schema["max_pages"]["minimum"] == 0 and schema["delay_s"]["maximum"] == 3600
    assert schema["sources"]["items"]["enum"] == ["books", "code", "papers", "social", "synthetic"]
    assert schema["warc_paths"]["type"] == "array"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_parsing_needs_no_database_and_no_heavy_imports(path: Path, tmp_path: Path) -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pyspark', 'torch', 'ray', 'tokenizers', 'trafilatura') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/missing/none.db"}
    done = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def _states(dag_run) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_bad_params_fail_before_any_spark_job(dagbag, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.get_dag("curation")
    conf = {"run_id": "bad", "overrides": {"storage": {"root": str(tmp_path)}, "spark": {"bogus": 1}}}
    dr = dag.test(run_conf=conf)
    states = _states(dr)
    assert states["prepare"] == "failed"
    assert all(states[t] == "upstream_failed" for t in ("crawl", "ingest", "extract", "shards"))
    assert not (tmp_path / "runs").exists()


def test_curation_then_pretrain_end_to_end(dagbag, tmp_path: Path, small_corpus: Path, site) -> None:  # type: ignore[no-untyped-def]
    overrides = {
        "storage": {"root": str(tmp_path)},
        "spark": {"shuffle_partitions": 2},
        "tokenizer": {"vocab_size": 512},
        "train": {"seq_len": 64, "batch_size": 4, "log_every": 5, "checkpoint_every": 20},
    }
    conf = {
        "run_id": "e2e",
        "seeds": [site.base_url],
        "books_dir": str(small_corpus / "books"),
        "code_dir": str(small_corpus / "code"),
        "overrides": overrides,
    }
    dr = dagbag.get_dag("curation").test(run_conf=conf)
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    assert (tmp_path / "runs/e2e/shards/_MANIFEST.json").exists()

    dr = dagbag.get_dag("pretrain").test(
        run_conf={"run_id": "e2e", "steps": 40, "workers": 2, "overrides": overrides}
    )
    assert set(_states(dr).values()) == {"success"}, _states(dr)
    summary = json.loads((tmp_path / "runs/e2e/summary.json").read_text())
    assert summary["training"]["last_loss"] < summary["training"]["first_loss"]
    assert summary["documents_by_source"]["web"] > 0 and summary["tokens"]["train_tokens"] > 0
    assert [f["stage"] for f in summary["funnel"]] == ["ingest", "extract", "dedup", "quality", "near_dedup"]
    assert Path(summary["training"]["checkpoint"]).exists()
