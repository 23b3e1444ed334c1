"""How the curation DAG submits its Spark stages (orchestration/spark_operators.py): read off the
deployment config when the DAG file is parsed; failures a retry cannot fix are not retried."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from core.config import REPO_ROOT, load_config
from core.registry import dag_stages
from orchestration import spark_operators as so

pytestmark = pytest.mark.usefixtures("airflow_db")  # DagBag looks the DAGs up in the metadata DB

STAGES = [s.name for s in dag_stages("curation")]
MANIFEST = REPO_ROOT / "infra" / "k8s" / "spark-application.yaml"
CONFIG_MAP = REPO_ROOT / "infra" / "k8s" / "lmforge-config.yaml"
PREPARED = {
    "run_id": "r1",
    "profile": "cluster",
    "overrides_json": '{"spark": {"shuffle_partitions": 8}}',
    "driver_memory": "3g",
    "rerun_from": "quality,near_dedup",
}


def example_config() -> dict[str, Any]:
    """The deployment config of the manifests (ConfigMap `lmforge-config`)."""
    return json.loads(yaml.safe_load(CONFIG_MAP.read_text())["data"]["config.json"])


def parse_curation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config: dict[str, Any] | str | None):
    """Parse dags/curation.py as the DAG processor does, under the deployment config `config`."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LMFORGE_PROFILE", "cluster")
    if config is None:
        monkeypatch.delenv("LMFORGE_CONFIG", raising=False)
    else:
        path = tmp_path / "deployment.json"
        path.write_text(config if isinstance(config, str) else json.dumps(config))
        monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "curation.py"))
    assert bag.import_errors == {}
    return bag.get_dag("curation")


class _TI:
    def xcom_pull(self, task_ids: str) -> dict[str, str]:
        assert task_ids == "prepare"
        return PREPARED


def render(task: Any) -> None:
    task.render_template_fields({"ti": _TI(), "task_instance": _TI()})


def test_default_config_submits_with_spark_submit_in_the_pool(monkeypatch, tmp_path: Path) -> None:
    dag = parse_curation(monkeypatch, tmp_path, None)
    for name in STAGES:
        task = dag.task_dict[name]
        assert type(task) is so.StageSubmitOperator, name
        assert task.pool == "spark" and task.pool_slots == 1, name
        assert task._conn_id == "spark_default"
        assert "spark.cores.max" not in (task.conf or {})  # Spark's default: every core of the cluster
        assert task.application == str(REPO_ROOT / "jobs/spark/main.py")
    crawl = dag.task_dict["crawl"]
    render(crawl)
    assert crawl.application_args == [
        "crawl",
        "--run-id",
        "r1",
        "--profile",
        "cluster",
        "--overrides",
        PREPARED["overrides_json"],
        "--rerun-from",
        "quality,near_dedup",
    ]
    assert crawl.conf["spark.driver.memory"] == "3g"
    assert crawl.conf["spark.pyspark.python"] == sys.executable
    for name in ("prepare", "publish"):
        assert dag.task_dict[name].pool == "default_pool"  # only the Spark stages share the pool


def test_spark_config_sets_pool_connection_and_cores_max(monkeypatch, tmp_path: Path) -> None:
    config = {"spark": {"pool": "big-spark", "pool_slots": 6, "cores_max": 12, "conn_id": "spark_cluster"}}
    dag = parse_curation(monkeypatch, tmp_path, config)
    for name in STAGES:
        task = dag.task_dict[name]
        assert task.pool == "big-spark" and task._conn_id == "spark_cluster", name
        assert task.conf["spark.cores.max"] == "12", name


def test_kubernetes_config_submits_spark_applications(monkeypatch, tmp_path: Path) -> None:
    config = example_config()
    dag = parse_curation(monkeypatch, tmp_path, config)
    cfg = load_config("cluster")
    k8s = config["spark"]["kubernetes"]
    assert cfg.spark.submit == "kubernetes"
    for name in STAGES:
        task = dag.task_dict[name]
        assert type(task) is so.StageKubernetesOperator, name
        assert task.pool == "spark" and task.namespace == k8s["namespace"] == "lmforge", name
        assert task.kubernetes_conn_id == k8s["conn_id"]
        assert task.name == so.app_name(name) and "_" not in task.name
        expected = so.spark_application(cfg, name, so.stage_arguments(name), so.prepared("driver_memory"))
        assert task.template_spec == {"spark": expected}
    # the DAG processor stores the DAG serialized: the application spec survives the round trip
    from airflow.serialization.serialized_objects import DagSerialization

    stored = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    stored_quality: Any = stored.task_dict["quality"]
    assert stored_quality.template_spec == dag.task_dict["quality"].template_spec
    near = dag.task_dict["near_dedup"]
    render(near)
    app = near.template_spec["spark"]["spec"]
    assert app["arguments"] == [
        "near_dedup",
        "--run-id",
        "r1",
        "--profile",
        "cluster",
        "--overrides",
        PREPARED["overrides_json"],
        "--rerun-from",
        "quality,near_dedup",
    ]
    assert app["driver"]["memory"] == "3g"
    assert app["mainApplicationFile"] == "local:///opt/lmforge/jobs/spark/main.py"
    assert (app["image"], app["driver"]["serviceAccount"]) == (k8s["image"], k8s["service_account"])
    assert (app["executor"]["instances"], app["executor"]["cores"], app["executor"]["memory"]) == (4, 4, "8g")
    # a string ending in .json stays a string (the base operator would load it as a template file)
    env = {e["name"]: e["value"] for e in app["driver"]["env"]}
    assert env == {"LMFORGE_CONFIG": "/etc/lmforge/config.json", "LMFORGE_PROFILE": "cluster"}


def test_generated_application_equals_the_manifest(monkeypatch, tmp_path: Path) -> None:
    """infra/k8s/spark-application.yaml is what the DAG submits for `quality` under the manifests'
    own deployment config (the ConfigMap), with the prepare task's values for run `example`."""
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(example_config()))
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    cfg = load_config("cluster")
    manifest = yaml.safe_load(MANIFEST.read_text())
    args = ["quality", "--run-id", "example", "--profile", "cluster", "--overrides", "{}", "--rerun-from", ""]
    assert so.spark_application(cfg, "quality", args, cfg.spark.driver_memory) == manifest


def test_a_bad_config_keeps_the_dag_and_fails_its_runs_at_prepare(monkeypatch, tmp_path: Path) -> None:
    from core.config import ConfigError
    from orchestration.params import prepare_run

    dag = parse_curation(monkeypatch, tmp_path, {"spark": {"submit": "yarn"}})
    doc = dag.doc_md or ""
    assert "Deployment config error" in doc and "spark.submit" in doc
    assert type(dag.task_dict["dedup"]) is so.StageSubmitOperator  # the built-in defaults
    with pytest.raises(ConfigError, match=r"spark\.submit"):
        prepare_run({}, "manual__x")
    dag = parse_curation(monkeypatch, tmp_path, "{not json")
    assert "not valid JSON" in (dag.doc_md or "")
    monkeypatch.setenv("LMFORGE_CONFIG", str(tmp_path / "missing.json"))
    cfg, error = so.load_deployment_config()
    assert cfg.spark.submit == "spark-submit" and error and "missing.json" in error
    monkeypatch.delenv("LMFORGE_CONFIG")
    assert so.load_deployment_config()[1] is None


# --- failures a retry cannot fix -------------------------------------------------------------------


def test_lmforge_stage_exit_codes() -> None:
    from jobs.validate.gates import GateFailed
    from lmforge.cli import EXIT_CONFIG, EXIT_GATE, exit_status, main

    assert (EXIT_GATE, EXIT_CONFIG) == (65, 78)
    assert exit_status(GateFailed("validation gate 'dedup' failed")) == 65
    assert exit_status(ValueError("invalid run id")) == 2
    bad = json.dumps({"spark": {"bogus": 1}})
    assert main(["stage", "ingest", "--run-id", "x", "--overrides", bad]) == EXIT_CONFIG
    assert main(["stage", "ingest", "--run-id", "../x"]) == 2  # a bad argument: no config error


def _spark_submit(args: list[str], tmp_path: Path) -> Any:
    return so.StageSubmitOperator(
        task_id="ingest",
        application=str(REPO_ROOT / so.MAIN),
        conn_id="spark_default",
        application_args=args,
        conf={"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable},
        env_vars={"PYTHONPATH": str(REPO_ROOT), "PYSPARK_PYTHON": sys.executable, "TMPDIR": str(tmp_path)},
    )


def test_spark_submit_config_error_fails_without_retry(tmp_path: Path, monkeypatch) -> None:
    """A real spark-submit of jobs/spark/main.py (local master): the driver's exit code 78 comes
    back through spark-submit, and the operator raises AirflowFailException; exit 2 stays retryable."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    monkeypatch.setenv("LMFORGE_CONFIG", str(tmp_path / "deployment.json"))
    (tmp_path / "deployment.json").write_text(json.dumps({"storage": {"root": str(tmp_path / "data")}}))
    bad = json.dumps({"spark": {"bogus": 1}})
    op = _spark_submit(["ingest", "--run-id", "x", "--overrides", bad], tmp_path)
    with pytest.raises(AirflowFailException, match="exited 78: the config is invalid; not retried"):
        op.execute({})
    op = _spark_submit(["ingest", "--run-id", "../x"], tmp_path)
    with pytest.raises(AirflowException, match="Error code is: 2") as err:
        op.execute({})
    assert not isinstance(err.value, AirflowFailException)
    assert not (tmp_path / "data").exists()


def test_submit_exit_code_falls_back_to_the_hook_message() -> None:
    op = so.StageSubmitOperator(task_id="t", application="x.py")
    assert op.submit_exit_code(RuntimeError("Cannot execute: spark-submit x.py. Error code is: 65.")) == 65
    assert op.submit_exit_code(RuntimeError("no code here")) is None


def _pod(phase: str, exit_code: int | None) -> Any:
    from kubernetes.client import models as k8s

    terminated = None if exit_code is None else k8s.V1ContainerStateTerminated(exit_code=exit_code)
    status = k8s.V1ContainerStatus(
        name="spark-kubernetes-driver",
        image="lmforge:latest",
        image_id="",
        ready=False,
        restart_count=0,
        state=k8s.V1ContainerState(terminated=terminated),
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="lmforge-dedup-abc-driver", namespace="lmforge"),
        status=k8s.V1PodStatus(phase=phase, container_statuses=[status]),
    )


@pytest.mark.parametrize(
    ("phase", "code", "raised"),
    [("Failed", 78, "fail"), ("Failed", 65, "fail"), ("Failed", 1, "retry"), ("Succeeded", 0, None)],
)
def test_kubernetes_driver_exit_code_decides_retries(phase: str, code: int, raised: str | None) -> None:
    """The provider's own `cleanup` judges the finished driver pod; only its cluster I/O (label
    patch, istio lookup, deleting the application) is stubbed out."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    cfg = load_config("local", {"spark": {"submit": "kubernetes"}})
    stage = next(s for s in dag_stages("curation") if s.name == "dedup")
    op = so.stage_operator(cfg, stage, REPO_ROOT)
    assert isinstance(op, so.StageKubernetesOperator)
    calls: list[str] = []
    stubs = {
        "patch_already_checked": lambda pod, reraise=True: calls.append("patch"),
        "is_istio_enabled": lambda pod: False,
        "process_pod_deletion": lambda pod, reraise=True: calls.append("delete"),
    }
    for name, stub in stubs.items():
        setattr(op, name, stub)
    pod = _pod(phase, code)
    if raised is None:
        op.cleanup(pod, pod)
    else:
        with pytest.raises(AirflowException) as err:
            op.cleanup(pod, pod)
        assert isinstance(err.value, AirflowFailException) == (raised == "fail"), err.value
        assert "returned a failure" in str(err.value)
    assert "delete" in calls
    assert so.driver_exit_code(pod, "spark-kubernetes-driver") == code
    assert so.driver_exit_code(SimpleNamespace(status=None), "spark-kubernetes-driver") is None


def test_parse_imports_no_kubernetes_client_call(tmp_path: Path) -> None:
    """Building the kubernetes operators at parse time reads no kube config and calls no API."""
    import subprocess

    config = tmp_path / "deployment.json"
    config.write_text(json.dumps(example_config()))
    env = {**os.environ, "LMFORGE_CONFIG": str(config), "KUBECONFIG": str(tmp_path / "none")}
    code = (
        "import runpy, sys; g = runpy.run_path(sys.argv[1]);"
        "assert g['CFG'].spark.submit == 'kubernetes', g['CFG'];"
        "assert g['CONFIG_ERROR'] is None, g['CONFIG_ERROR']"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT / "dags/curation.py")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
