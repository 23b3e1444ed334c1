"""SparkSession creation with a clear failure when Java is missing or older than 17 (PySpark's
own error is a wall of Py4J text)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.prereqs import java_missing_message, java_ok, locate_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class JavaMissingError(RuntimeError):
    pass


class JavaVersionError(JavaMissingError):
    """A `java` was found but is older than Java 17, or its version could not be read."""


def find_java() -> str:
    """Path of the `java` Spark will use: $JAVA_HOME/bin/java, else `java` on PATH; it must report
    Java 17+ (PySpark 4's minimum) by `java -version`."""
    java, where = locate_java()
    if java is None:
        raise JavaMissingError(java_missing_message(where))
    problem = java_ok(java)
    if problem:
        raise JavaVersionError(problem)
    return str(java)


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
