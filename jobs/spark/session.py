"""SparkSession creation with a clear failure when Java is missing or older than 17 (PySpark's
own error is a wall of Py4J text), and with what a long run needs to be watched: the Spark UI (its
URL logged), stage progress (Spark's console bar on a terminal, plain log lines in a task log) and
an event log that `spark-history-server` can replay after the run."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.prereqs import java_missing_message, java_ok, locate_java

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

log = logging.getLogger("lmforge.spark")

# Several sessions run at once (tests, parallel Airflow tasks): the UI takes 4040, else the next free
# port of the following PORT_RETRIES (Spark's default of 16 runs out under a busy test run).
UI_PORT = 4040
PORT_RETRIES = 64
PROGRESS_EVERY_S = 30.0  # a task log gets a line per running stage at most this often


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
    app_name: str,
    master: str | None = None,
    shuffle_partitions: int = 4,
    driver_memory: str | None = None,
    *,
    event_log_dir: Path | str | None = None,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> SparkSession:
    """Reuse or start a session; under spark-submit the master (and driver memory) come from the
    command line. `driver_memory` only applies when this call starts the JVM (local mode: the
    driver's heap is also the executors'). `event_log_dir` (a local folder, created here) turns on
    Spark's event log; like every setting it only applies when this call starts the context."""
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
    if event_log_dir is not None:
        Path(event_log_dir).mkdir(parents=True, exist_ok=True)  # Spark refuses a missing folder
        builder = builder.config("spark.eventLog.enabled", "true").config(
            "spark.eventLog.dir", Path(event_log_dir).resolve().as_uri()
        )
    terminal = sys.stderr.isatty()
    repo = str(Path(__file__).resolve().parents[2])
    spark = (
        builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        # Python workers import the stage logic from the project.
        .config("spark.executorEnv.PYTHONPATH", repo)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "true")
        .config("spark.ui.port", str(UI_PORT))
        .config("spark.port.maxRetries", str(PORT_RETRIES))
        # Spark's bar redraws one line with \r: readable on a terminal, noise in a task log file.
        .config("spark.ui.showConsoleProgress", str(terminal).lower())
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    sc = spark.sparkContext
    if getattr(sc, "_lmforge_watched", False):  # a reused session: said and watched already
        return spark
    sc._lmforge_watched = True  # type: ignore[attr-defined]
    event_dir = sc.getConf().get("spark.eventLog.dir") if _event_log_on(sc) else None
    log.info(
        "Spark %s: UI %s, event log %s",
        sc.applicationId,
        sc.uiWebUrl or "off",
        f"{event_dir} (spark-history-server can replay it)" if event_dir else "off",
    )
    if not terminal and progress_every_s > 0:
        StageProgress(sc, progress_every_s).start()
    return spark


def _event_log_on(sc: SparkContext) -> bool:
    return (sc.getConf().get("spark.eventLog.enabled") or "false").lower() == "true"


def stage_lines(sc: SparkContext) -> list[str]:
    """One line per active Spark stage: its id, attempt, name and tasks done/running/total."""
    tracker = sc.statusTracker()
    lines = []
    for stage_id in sorted(tracker.getActiveStageIds()):
        info: Any = tracker.getStageInfo(stage_id)
        if info is None:  # finished between the two calls
            continue
        failed = f", {info.numFailedTasks} failed" if info.numFailedTasks else ""
        lines.append(
            f"spark stage {stage_id}.{info.currentAttemptId} ({info.name}): {info.numCompletedTasks}/"
            f"{info.numTasks} tasks done, {info.numActiveTasks} running{failed}"
        )
    return lines


class StageProgress(threading.Thread):
    """Logs the active stages every `every_s` seconds while they change, until the context stops:
    the task log's readable stand-in for Spark's console bar."""

    def __init__(self, sc: SparkContext, every_s: float) -> None:
        super().__init__(name="lmforge-spark-progress", daemon=True)
        self.sc, self.every_s = sc, every_s
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()
        self.join()

    def run(self) -> None:
        last = None
        while not self.stopped.wait(self.every_s):
            if self.sc._jsc is None:  # the context was stopped
                return
            try:
                lines = stage_lines(self.sc)
            except Exception:  # the context stopped during the call; never worth failing a job for
                return
            if lines and lines != last:
                for line in lines:
                    log.info("%s", line)
            last = lines
