"""How the curation DAG submits one Spark stage, read off the deployment config at parse time.

`spark.submit: spark-submit` (default): `StageSubmitOperator`, spark-submit of jobs/spark/main.py to
the `spark.conn_id` connection's master (local, standalone, YARN), with `spark.cores.max` when
`spark.cores_max` is set. `spark.submit: kubernetes`: `StageKubernetesOperator`, a Kubeflow
spark-operator `SparkApplication` (`spark_application`, in sync with infra/k8s/spark-application.yaml)
created through the `spark.kubernetes.conn_id` connection. Both run the same arguments: the stage,
then `--run-id`, `--profile`, `--overrides`, `--rerun-from` from the `prepare` task's XCom. Every
stage task takes one slot of the `spark.pool` pool (orchestration/pools.py creates it).

Failures a retry cannot fix: `lmforge stage` exits 65 (a validation gate failed) or 78 (bad
config) (lmforge/cli.py `NO_RETRY_EXIT_CODES`); both operators turn those exit codes into
`AirflowFailException`, which fails the task without spending its retries. spark-submit in client
mode exits with the Python driver's status; on Kubernetes it is the driver container's exit code.

A bad deployment config must not make the DAG disappear (an import error hides it from the UI):
`load_deployment_config` falls back to the built-in defaults and returns the error, which the DAG
shows in its docs and logs; every run then fails at `prepare`, which loads the same config and names
the bad field, before any Spark job starts.
"""

from __future__ import annotations

import logging
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from core.config import ConfigError, PipelineConfig, load_config
from core.registry import Stage
from lmforge.cli import EXIT_GATE, NO_RETRY_EXIT_CODES

log = logging.getLogger(__name__)

MAIN = "jobs/spark/main.py"  # relative to the project root, here and in the image
IMAGE_REPO = "/opt/lmforge"  # where infra/Dockerfile puts the project (PYTHONPATH)
IMAGE_PYTHON = "/usr/local/bin/python"  # the image's interpreter (python:3.11-slim)
IMAGE_UID = 50000  # the image's non-root user
# The deployment config inside the cluster: the ConfigMap that holds the JSON file that
# LMFORGE_CONFIG names (the same file the Airflow pods read, infra/helm/airflow-values.yaml), and
# the Secret with the S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
CONFIG_MAP = "lmforge-config"
CONFIG_DIR = "/etc/lmforge"
CONFIG_FILE = f"{CONFIG_DIR}/config.json"
S3_SECRET = "lmforge-s3"
# LMFORGE_PII_KEY: the safety stage's pseudonymisation key (jobs/safety/pseudonym.py); one key for
# every run, or the same handle gets a different pseudonym in each.
PII_SECRET = "lmforge-pii"
PART_OF = {"app.kubernetes.io/part-of": "lmforge"}
_ERROR_CODE = re.compile(r"Error code is: (-?\d+)")  # SparkSubmitHook.submit's AirflowException


def prepared(key: str) -> str:
    """Jinja for one field of what the `prepare` task returned."""
    return "{{ ti.xcom_pull(task_ids='prepare')['" + key + "'] }}"


def load_deployment_config() -> tuple[PipelineConfig, str | None]:
    """The deployment's config (LMFORGE_PROFILE, LMFORGE_CONFIG), or the built-in defaults and the
    error when it cannot be loaded (see the module docstring)."""
    try:
        return load_config(), None
    except (ConfigError, OSError) as err:
        error = f"{type(err).__name__}: {err}"[:2000]
        log.error("deployment config unusable, the DAG uses the built-in defaults: %s", error)
        return PipelineConfig(), error


def stage_arguments(name: str) -> list[str]:
    """The arguments of jobs/spark/main.py (= `lmforge stage`) for one stage of the run."""
    return [
        name,
        "--run-id",
        prepared("run_id"),
        "--profile",
        prepared("profile"),
        "--overrides",
        prepared("overrides_json"),
        "--rerun-from",
        prepared("rerun_from"),
    ]


def app_name(stage: str) -> str:
    """A DNS-1123 name for the stage's application (stage names have underscores)."""
    return f"lmforge-{stage.replace('_', '-')}"


def spark_version() -> str:
    """The pyspark the image ships (requirements.txt's pin), read without importing pyspark."""
    try:
        return version("pyspark")
    except PackageNotFoundError:  # an Airflow image without pyspark: the Spark image's version
        return "4.2.0"


def spark_application(
    cfg: PipelineConfig, stage: str, arguments: list[str], driver_memory: str
) -> dict[str, Any]:
    """The `SparkApplication` (sparkoperator.k8s.io/v1beta2) that runs one stage on Kubernetes."""
    k8s = cfg.spark.kubernetes

    def pod() -> dict[str, Any]:  # driver and executor: equal, never shared (the operator edits them)
        return {
            "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID},
            "configMaps": [{"name": CONFIG_MAP, "path": CONFIG_DIR}],
            "env": [
                {"name": "LMFORGE_CONFIG", "value": CONFIG_FILE},
                {"name": "LMFORGE_PROFILE", "value": cfg.profile},
            ],
            "envFrom": [{"secretRef": {"name": S3_SECRET}}, {"secretRef": {"name": PII_SECRET}}],
            "labels": {**PART_OF, "lmforge/stage": stage},
        }

    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": app_name(stage), "namespace": k8s.namespace, "labels": dict(PART_OF)},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": k8s.image,
            "imagePullPolicy": "IfNotPresent",
            "sparkVersion": spark_version(),
            "mainApplicationFile": f"local://{IMAGE_REPO}/{MAIN}",
            "arguments": arguments,
            "sparkConf": {
                "spark.pyspark.python": IMAGE_PYTHON,
                "spark.pyspark.driver.python": IMAGE_PYTHON,
                "spark.executorEnv.PYTHONPATH": IMAGE_REPO,
            },
            # Airflow retries the task (a new application each try); the operator never restarts it.
            "restartPolicy": {"type": "Never"},
            "driver": {"cores": 1, "memory": driver_memory, "serviceAccount": k8s.service_account, **pod()},
            "executor": {
                "instances": k8s.executor_instances,
                "cores": k8s.executor_cores,
                "memory": k8s.executor_memory,
                **pod(),
            },
        },
    }


def no_retry(code: int | None, what: str, err: BaseException) -> None:
    """Raise AirflowFailException (no retries) for an exit code a retry cannot change."""
    if code in NO_RETRY_EXIT_CODES:
        reason = "a validation gate failed" if code == EXIT_GATE else "the config is invalid"
        raise AirflowFailException(f"{what} exited {code}: {reason}; not retried. {err}") from err


class StageSubmitOperator(SparkSubmitOperator):
    """spark-submit of one stage; exit codes in NO_RETRY_EXIT_CODES fail without retries."""

    def execute(self, context: Any) -> None:
        try:
            super().execute(context)
        except (AirflowFailException, AirflowSkipException):
            raise
        except AirflowException as err:
            no_retry(self.submit_exit_code(err), "spark-submit", err)
            raise

    def submit_exit_code(self, err: BaseException) -> int | None:
        """spark-submit's exit status: the hook's process (SparkSubmitHook._submit_sp), else the
        `Error code is: N` that SparkSubmitHook.submit puts in its AirflowException."""
        process = getattr(self._hook, "_submit_sp", None)
        if process is not None and isinstance(process.returncode, int):
            return int(process.returncode)
        found = _ERROR_CODE.search(str(err))
        return int(found.group(1)) if found else None


def driver_exit_code(remote_pod: Any, container: str) -> int | None:
    """The exit code of the driver pod's `container`, when it has terminated."""
    statuses = getattr(getattr(remote_pod, "status", None), "container_statuses", None) or []
    for status in statuses:
        terminated = getattr(getattr(status, "state", None), "terminated", None)
        if status.name == container and terminated is not None:
            return int(terminated.exit_code)
    return None


class StageKubernetesOperator(SparkKubernetesOperator):
    """A stage as a SparkApplication; a driver exit code in NO_RETRY_EXIT_CODES fails without retries.

    `template_ext` is emptied: the spec is a dict (never an `application_file`), and a string in it
    ending in `.json` (LMFORGE_CONFIG's path) must stay a string, not be loaded as a template file.
    """

    template_ext: tuple[str, ...] = ()  # type: ignore[assignment]  # the base declares three

    def cleanup(
        self, pod: Any, remote_pod: Any, xcom_result: dict | None = None, context: Any = None
    ) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except (AirflowFailException, AirflowSkipException):
            raise
        except AirflowException as err:
            no_retry(driver_exit_code(remote_pod, self.base_container_name), "the Spark driver", err)
            raise


def stage_operator(
    cfg: PipelineConfig, stage: Stage, repo: Path
) -> SparkSubmitOperator | SparkKubernetesOperator:
    """The task that runs `stage`, as `cfg.spark.submit` says."""
    arguments = stage_arguments(stage.name)
    common: dict[str, Any] = {"task_id": stage.name, "doc_md": stage.description, "pool": cfg.spark.pool}
    if cfg.spark.submit == "kubernetes":
        k8s = cfg.spark.kubernetes
        app = spark_application(cfg, stage.name, arguments, prepared("driver_memory"))
        return StageKubernetesOperator(
            **common,
            name=app_name(stage.name),  # plus a random suffix: each try is a new application
            namespace=k8s.namespace,
            kubernetes_conn_id=k8s.conn_id,
            template_spec={"spark": app},
            get_logs=True,
            log_events_on_failure=True,
            delete_on_termination=True,
        )
    python = sys.executable  # the Airflow worker's interpreter, also the driver's and executors'
    conf = {
        "spark.pyspark.python": python,
        "spark.driver.memory": prepared("driver_memory"),
        "spark.pyspark.driver.python": python,
        "spark.executorEnv.PYTHONPATH": str(repo),
    }
    if cfg.spark.cores_max is not None:
        conf["spark.cores.max"] = str(cfg.spark.cores_max)
    return StageSubmitOperator(
        **common,
        application=str(repo / MAIN),
        conn_id=cfg.spark.conn_id,
        name=f"lmforge-{stage.name}",
        application_args=arguments,
        conf=conf,
        env_vars={"PYTHONPATH": str(repo), "PYSPARK_PYTHON": python},
    )
