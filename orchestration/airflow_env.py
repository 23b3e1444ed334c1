"""The environment an embedded (project-local) Airflow needs: used by the demo and the tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from core.config import REPO_ROOT, lmforge_home


def airflow_environ(home: Path | None = None, spark_master: str = "local[*]") -> dict[str, str]:
    """SQLite metadata DB in a git-ignored AIRFLOW_HOME, our dags/ folder, and `spark_default`
    defined (left undefined, the Spark provider silently falls back to YARN)."""
    home = home or lmforge_home() / ".airflow"
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": spark_master}),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        "PYSPARK_PYTHON": sys.executable,
        "PATH": os.pathsep.join((venv_bin, os.environ.get("PATH", ""))),
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    }


def stack_environ(
    home: Path,
    port: int,
    *,
    spark_master: str = "local[*]",
    parallelism: int = 4,
    secret: str | None = None,
    log_ports: tuple[int, int] = (8793, 8794),
) -> dict[str, str]:
    """`airflow_environ` for running the real components (api-server, scheduler, dag-processor,
    triggerer) on one machine: the LocalExecutor (Airflow 3 runs it on SQLite; there is no
    SequentialExecutor any more), task workers reaching the Execution API on `port`, one JWT secret
    that the scheduler signs task tokens with and the api-server checks, and the simple auth manager
    with everyone an admin (no login, no token: for loopback stacks only). `log_ports`: the
    scheduler's and the triggerer's log servers (two stacks on one machine need their own)."""
    secret = secret or os.urandom(24).hex()
    base_url = f"http://127.0.0.1:{port}"
    return {
        **airflow_environ(home=home, spark_master=spark_master),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),  # LocalExecutor forks this many workers
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secret,
        "AIRFLOW__API_AUTH__JWT_SECRET": secret,
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports[0]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports[1]),
    }
