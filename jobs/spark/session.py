"""SparkSession creation with a clear failure when Java is missing (PySpark's own error is a
wall of Py4J text)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class JavaMissingError(RuntimeError):
    pass


def find_java() -> str:
    """Path of the `java` Spark will use: $JAVA_HOME/bin/java, else `java` on PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home, "bin", "java")) if home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        where = f"JAVA_HOME={home!r}" if home else "PATH"
        raise JavaMissingError(
            f"Java not found ({where}): Spark needs a Java 17+ runtime; install one "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
        )
    out = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise JavaMissingError(f"Java at {candidate} does not run: {out.stderr.strip()[:200]}")
    return candidate


def get_spark(
    app_name: str, master: str | None = None, shuffle_partitions: int = 4, driver_memory: str | None = None
) -> SparkSession:
    """Reuse or start a session; under spark-submit the master (and driver memory) come from the
    command line. `driver_memory` only applies when this call starts the JVM (local mode: the
    driver's heap is also the executors')."""
    find_java()
    # Python workers must use this interpreter (the venv), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the JVM started this driver (and set the gateway port): its --master wins.
    if master and "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.master(master)
        if driver_memory:
            builder = builder.config("spark.driver.memory", driver_memory)
    repo = str(Path(__file__).resolve().parents[2])
    return (
        builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        # Python workers import the stage logic from the project.
        .config("spark.executorEnv.PYTHONPATH", repo)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
