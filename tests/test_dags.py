"""Every DAG imports cleanly and cheaply; the curation and pretraining DAGs run under `dag.test()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import REPO_ROOT

DAG_FILES = sorted(p for p in (REPO_ROOT / "dags").glob("*.py") if p.stem != "__init__")


def deployment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **config: object) -> Path:
    """Write the deployment's config file (LMFORGE_CONFIG): where params cannot reach (storage,
    endpoints, folders as named locations)."""
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    return path


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
    assert dag.task_dict["shards"].upstream_task_ids == {"decontaminate", "tokenizer"}
    assert dag.task_dict["publish"].upstream_task_ids == {"prepare", "shards", "diversity"}
    expected = {
        "seeds",
        "allow_domains",
        "deny_domains",
        "max_pages",
        "max_pages_per_host",
        "max_depth",
        "delay_s",
        "sources",
        "books",
        "code",
        "papers",
        "social",
        "synthetic_count",
        "warc",
        "overrides",
    }
    assert expected <= set(dag.params)
    assert not {"profile", "books_dir", "code_dir", "social_paths", "warc_paths"} & set(dag.params)
    # the trigger form shows types and bounds; folders are location names, never paths
    schema = {k: dag.params.get_param(k).schema for k in ("max_pages", "delay_s", "sources", "warc", "books")}
    assert schema["max_pages"]["minimum"] == 0 and schema["delay_s"]["maximum"] == 3600
    assert schema["sources"]["items"]["enum"] == ["books", "code", "papers", "social", "synthetic"]
    assert schema["warc"]["type"] == ["null", "array"] and schema["warc"]["items"]["maxLength"] == 64
    assert schema["books"]["pattern"].startswith("^[A-Za-z0-9]")


def test_curation_tasks_and_edges_equal_the_registry(dagbag) -> None:  # type: ignore[no-untyped-def]
    from core.registry import dag_stages

    dag = dagbag.get_dag("curation")
    stages = dag_stages("curation")
    assert set(dag.task_dict) == {s.name for s in stages} | {"prepare", "publish"}
    edges = {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}
    expected = {(i, s.name) for s in stages for i in s.upstream}
    expected |= {("prepare", s.name) for s in stages if not s.upstream}
    expected |= {("prepare", "publish"), ("shards", "publish"), ("diversity", "publish")}  # the leaves
    assert edges == expected


def _empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


@pytest.mark.parametrize("dag_id", [p.stem for p in DAG_FILES])
def test_trigger_form_accepts_the_defaults(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    """As the UI's trigger form judges a param: one whose type is not nullable is required, so it
    needs a non-empty default, or the Trigger button stays disabled. Every param says what it is."""
    import jsonschema

    dag = dagbag.get_dag(dag_id)
    for name in dag.params:
        param = dag.params.get_param(name)
        types = param.schema.get("type")
        nullable = "null" in types if isinstance(types, list) else types == "null"
        assert nullable or not _empty(param.value), f"{dag_id}.{name}: required but empty by default"
        assert param.description, f"{dag_id}.{name} has no description"
        jsonschema.validate(param.value, param.schema)  # the default itself is valid


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


def test_bad_params_fail_before_any_spark_job(dagbag, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path / "data")})
    dag = dagbag.get_dag("curation")
    for overrides in ({"spark": {"bogus": 1}}, {"storage": {"root": str(tmp_path / "elsewhere")}}):
        dr = dag.test(run_conf={"run_id": "bad", "overrides": overrides})
        states = _states(dr)
        assert states["prepare"] == "failed"
        assert all(states[t] == "upstream_failed" for t in ("crawl", "ingest", "extract", "shards"))
    assert not (tmp_path / "data").exists() and not (tmp_path / "elsewhere").exists()


def test_pretrain_params_are_typed_with_enums_and_bounds(dagbag) -> None:  # type: ignore[no-untyped-def]
    from orchestration.pretrain_operator import PretrainOperator

    dag = dagbag.get_dag("pretrain")
    assert isinstance(dag.task_dict["train"], PretrainOperator)
    assert dag.task_dict["report"].upstream_task_ids == {"train"}
    schema = {k: dag.params.get_param(k).schema for k in dag.params}
    assert schema["objective"]["enum"] == [None, "causal", "mlm", "span", "prefix_lm", "contrastive"]
    assert schema["model_size"]["enum"] == [None, "tiny", "small", "gpt2-small", "gpt2-medium", "1b"]
    assert schema["parallelism"]["enum"] == [None, "ddp", "fsdp", "pipeline"]
    assert schema["precision"]["enum"] == [None, "fp32", "bf16"]
    assert schema["mode"]["enum"] == [None, "pretrain", "prefix_tuning"]
    assert schema["token_budget"]["type"] == ["null", "integer"] and schema["token_budget"]["minimum"] == 1
    assert schema["grad_accum"]["minimum"] == 1 and schema["steps"]["minimum"] == 0
    assert schema["use_gpu"]["type"] == "boolean" and schema["init_from"]["type"] == ["null", "string"]
    assert all(dag.params[k] is None for k in ("objective", "mode", "token_budget", "init_from"))
    assert not {"profile", "ray_address"} & set(dag.params)
    assert schema["force"]["type"] == "boolean" and dag.params["force"] is False


def test_pretrain_params_map_to_config_fields(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from core.config import load_config
    from orchestration.params import params_to_overrides

    deployment(monkeypatch, tmp_path, locations={"base-model": "/ckpt/step-100"})
    params = {
        "objective": "span",
        "model_size": "small",
        "token_budget": 65536,
        "grad_accum": 2,
        "parallelism": "fsdp",
        "precision": "fp32",
        "mode": "prefix_tuning",
        "init_from": "base-model",
        "workers": 4,
        "use_gpu": True,
        "steps": 0,  # 0 / None: the profile's
        "overrides": {"train": {"lr": 0.001}},
    }
    cfg = load_config(None, params_to_overrides(params))
    t = cfg.train
    assert (t.objective, t.model_size, t.token_budget, t.grad_accum) == ("span", "small", 65536, 2)
    assert (t.parallelism, t.precision, t.mode, t.lr) == ("fsdp", "fp32", "prefix_tuning", 0.001)
    assert t.init_from == "/ckpt/step-100"
    assert (cfg.ray.num_workers, cfg.ray.use_gpu, cfg.ray.address) == (4, True, None)
    assert t.steps == 150  # TrainConfig's default kept


def test_pretrain_bad_params_fail_before_ray(dagbag, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import ParamValidationError

    from core.config import ConfigError

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    dag = dagbag.get_dag("pretrain")
    with pytest.raises(ParamValidationError, match="param objective: 'bogus' is not one of"):
        dag.test(run_conf={"run_id": "bad", "objective": "bogus"})
    with pytest.raises(ParamValidationError, match="param token_budget: 0 is less than the minimum of 1"):
        dag.test(run_conf={"run_id": "bad", "token_budget": 0})
    # valid for the form, invalid together: the train task fails on the config, naming the field
    conf = {"run_id": "bad", "mode": "prefix_tuning"}
    with pytest.raises(ConfigError, match=r"config field 'train'.*needs 'init_from'"):
        dag.task_dict["train"].execute({"params": conf})
    dr = dag.test(run_conf=conf)
    # the report runs after a failed train (trigger rule all_done) and fails naming the reason
    assert _states(dr) == {"train": "failed", "report": "failed"}
    assert not (tmp_path / "runs").exists()


@pytest.mark.timeout(120)
def test_pretrain_on_a_cluster_is_a_ray_job_that_on_kill_stops(dagbag, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    from ray.job_submission import JobStatus

    from core.config import StorageConfig
    from core.datasets import commit
    from core.storage import open_storage
    from tests.ray_head import ray_head
    from tests.test_training_ray import write_text_shards
    from training.jobs_api import RayJobError, RayJobs

    shards = tmp_path / "shards"
    shards.mkdir()
    write_text_shards(shards)
    commit(open_storage(StorageConfig(root=str(tmp_path))), "kill", "shards", shards, config={}, inputs={})
    head_cm = ray_head(token_auth=False)  # fails the test (never skips) when the head cannot start
    head = head_cm.__enter__()
    try:
        deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)}, ray={"address": head.dashboard})
        op = dagbag.get_dag("pretrain").task_dict["train"]
        op.poll_s = 0.2
        op.deferrable = False  # the in-task wait, whose on_kill this test checks
        params = {
            "run_id": "kill",
            "steps": 100_000,
            "workers": 1,
            "overrides": {"train": {"seq_len": 32, "batch_size": 4}},
        }
        outcome: list[BaseException | dict] = []

        def run() -> None:
            try:
                outcome.append(op.execute({"params": params}))
            except BaseException as err:  # handed to the test thread
                outcome.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        jobs = RayJobs(head.dashboard)
        deadline = time.monotonic() + 60
        while op._job_id is None or jobs.status(op._job_id) != JobStatus.RUNNING:
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.2)
        assert op._job_id.startswith("lmforge-pretrain-kill-")
        op.on_kill()
        thread.join(timeout=60)
        assert isinstance(outcome[0], RayJobError) and "STOPPED" in str(outcome[0])
        assert jobs.status(op._job_id) == JobStatus.STOPPED
        assert not (tmp_path / "runs/kill/pretrain/_MANIFEST.json").exists()
    finally:
        head_cm.__exit__(None, None, None)


def test_force_and_rerun_from_params_reach_the_stages(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lmforge.commands import forced
    from orchestration.params import prepare_run

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    base: dict[str, object] = {}
    assert prepare_run(base, "manual__x")["rerun_from"] == ""
    everything = prepare_run({**base, "force": True}, "manual__x")["rerun_from"]
    assert all(forced(s, False, everything) for s in everything.split(","))
    start = prepare_run({**base, "rerun_from": "quality"}, "manual__x")["rerun_from"]
    assert [s for s in ("extract", "quality", "near_dedup", "shards") if forced(s, False, start)] == [
        "quality",
        "near_dedup",
        "shards",
    ]
    with pytest.raises(ValueError, match="unknown stage 'bogus'"):
        prepare_run({**base, "rerun_from": "bogus"}, "manual__x")


EXPECTED_SECTIONS = {
    "curation": ["Run", "Crawl", "Sources", "Curation", "Copyright", "Safety", "Advanced"],
    "pretrain": ["Run", "Model", "Training", "Cluster", "Advanced"],
}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_SECTIONS))
def test_every_param_has_a_section_and_a_description(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    """The trigger form groups params by the schema's `section`, in order of first appearance; a
    section's params are contiguous, so the form reads top to bottom as the dict does."""
    dag = dagbag.get_dag(dag_id)
    sections = []
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.description, f"{dag_id}.{name} has no description"
        section = param.schema.get("section")
        assert section, f"{dag_id}.{name} has no section"
        if not sections or sections[-1] != section:
            sections.append(section)
    assert sections == EXPECTED_SECTIONS[dag_id]


def test_nullable_keeps_the_section() -> None:
    from orchestration.params import nullable

    param = nullable("string", "x", section="Crawl", enum=["a"])
    assert param.schema["section"] == "Crawl" and param.schema["enum"] == [None, "a"]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_SECTIONS))
def test_operational_defaults(dagbag, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from orchestration.callbacks import record_failure

    dag = dagbag.get_dag(dag_id)
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        where = f"{dag_id}.{task.task_id}"
        assert task.retries == (0 if task.task_id == "prepare" else 2), where
        assert task.retry_delay == timedelta(seconds=30) and task.retry_exponential_backoff, where
        assert task.max_retry_delay == timedelta(minutes=10), where
        assert task.execution_timeout is not None, where
        callbacks = task.on_failure_callback
        assert record_failure in (callbacks if isinstance(callbacks, list) else [callbacks]), where
    hours = {t.task_id: t.execution_timeout.total_seconds() / 3600 for t in dag.tasks}
    if dag_id == "curation":
        assert hours.pop("prepare") == hours.pop("publish") == 0.5
        assert set(hours.values()) == {6}  # every Spark stage
    else:
        assert hours == {"train": 72, "report": 0.5}


class _TaskInstance:
    def __init__(self, task_id: str, try_number: int, prepared: object) -> None:
        self.task_id, self.try_number, self._prepared = task_id, try_number, prepared

    def xcom_pull(self, task_ids: str) -> object:
        assert task_ids == "prepare"
        if isinstance(self._prepared, BaseException):
            raise self._prepared
        return self._prepared


def test_failure_callback_records_each_failed_try(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestration.callbacks import record_failure
    from orchestration.params import prepare_run

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    run = prepare_run({"run_id": "cb"}, "manual__x")
    error = RuntimeError("spark-submit exited with 1\nTraceback (most recent call last): ...")
    record_failure({"task_instance": _TaskInstance("extract", 1, run), "exception": error})
    record_failure({"task_instance": _TaskInstance("extract", 2, run), "exception": ValueError("again")})
    failures = json.loads((tmp_path / "runs/cb/failures.json").read_text())
    assert [(f["task_id"], f["try_number"], f["error"]) for f in failures] == [
        ("extract", 1, "RuntimeError: spark-submit exited with 1"),
        ("extract", 2, "ValueError: again"),
    ]
    # pretrain has no `prepare`: the run id comes from the params
    ti = _TaskInstance("train", 1, None)
    record_failure({"task_instance": ti, "params": {"run_id": "cb"}, "exception": OSError("lost")})
    assert json.loads((tmp_path / "runs/cb/failures.json").read_text())[-1]["task_id"] == "train"


def test_failure_callback_never_raises(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestration.callbacks import record_failure

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    record_failure({})  # no task instance, no run id
    record_failure({"task_instance": _TaskInstance("prepare", 1, RuntimeError("no xcom"))})
    refused = {"run_id": "x", "overrides": {"storage": {"root": str(tmp_path / "elsewhere")}}}
    record_failure({"task_instance": _TaskInstance("prepare", 1, None), "params": refused})
    bad_id = {"run_id": "../escape"}
    record_failure({"task_instance": _TaskInstance("prepare", 1, None), "params": bad_id})
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


def test_pretrain_config_errors_fail_without_retries(dagbag, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import AirflowFailException

    deployment(monkeypatch, tmp_path, storage={"root": str(tmp_path)})
    train = dagbag.get_dag("pretrain").task_dict["train"]
    hook = train._pre_execute_hook
    with pytest.raises(AirflowFailException, match="needs 'init_from'"):
        hook({"params": {"run_id": "bad", "mode": "prefix_tuning"}})
    hook({"params": {"run_id": "ok"}})  # a valid config passes on to execute
