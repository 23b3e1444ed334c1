"""The curation DAG stops at a failed gate: duplicated ids after dedup fail the `dedup` task, with
the expectation named in its log, and nothing downstream runs or is committed. The DAG's own retries
stay on: `lmforge stage` exits 65 for a failed gate and the stage operator fails the task at once,
without retrying (orchestration/spark_operators.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from core.config import REPO_ROOT
from demo.site import serve_directory
from tests.test_dags import deployment
from tests.test_validate import tiny_site


@pytest.fixture(scope="module")
def dagbag(airflow_db):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def _dumps(root: Path) -> dict[str, str]:
    """Two dump folders whose files share a name and post ids but not texts: the same document
    ids (core/schema.py: source type + origin `posts.jsonl#<id>`) with different texts, which
    exact dedup keeps both of."""
    locations = {}
    for name, words in (("east", "rivers and hills"), ("west", "deserts and plains")):
        folder = root / name
        folder.mkdir()
        posts = [
            {"id": f"p{i}", "author": "a", "text": f"Post {i} about {words}, written for the gate test."}
            for i in range(6)
        ]
        (folder / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in posts))
        locations[name] = str(folder)
    return locations


def test_duplicated_ids_after_dedup_fail_the_dedup_task(
    dagbag, tmp_path: Path, monkeypatch, caplog, capfd
) -> None:  # type: ignore[no-untyped-def]
    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path / "data")}, locations=_dumps(tmp_path))
    overrides = {"spark": {"shuffle_partitions": 2}}
    conf = {"run_id": "gate", "sources": ["social"], "social": ["east", "west"], "overrides": overrides}
    caplog.set_level(logging.INFO)
    dag = dagbag.get_dag("curation")
    assert dag.task_dict["dedup"].retries == 2  # the DAG's real retries, for transient failures
    with serve_directory(tiny_site(tmp_path / "site")) as site:
        dr = dag.test(run_conf={**conf, "seeds": [site.base_url]})
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states["ingest"] == states["extract"] == "success", states
    assert states["dedup"] == "failed", states
    dedup = next(ti for ti in dr.get_task_instances() if ti.task_id == "dedup")
    assert dedup.try_number == 1  # failed on its first try: a gate failure is not retried
    assert all(states[t] == "upstream_failed" for t in ("quality", "copyright", "near_dedup", "shards")), (
        states
    )
    run = tmp_path / "data/runs/gate"
    assert not (run / "dedup/_MANIFEST.json").exists()
    extract = json.loads((run / "extract/_MANIFEST.json").read_text())["stats"]["validation"]
    assert extract["success"]  # ids may repeat before dedup (the same page crawled and archived)
    log = caplog.text + "".join(capfd.readouterr())
    assert "validation gate 'dedup' failed" in log
    assert "exited 65: a validation gate failed; not retried" in log
    assert "dedup.data: expect_column_values_to_be_unique(column='id')" in log
