"""The environment an embedded (project-local) Airflow needs: used by the demo and the tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from core.config import REPO_ROOT


def airflow_environ(home: Path | None = None, spark_master: str = "local[*]") -> dict[str, str]:
    """SQLite metadata DB in a git-ignored AIRFLOW_HOME, our dags/ folder, and `spark_default`
    defined (left undefined, the Spark provider silently falls back to YARN)."""
    home = home or REPO_ROOT / ".airflow"
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
