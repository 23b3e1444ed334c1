"""Watchable stages: the counts a stage logs when it commits, and a stage's Spark session with its
UI on (another port when 4040 is taken) and its event log in the run folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from core.config import REPO_ROOT, load_config
from core.datasets import commit
from core.stage_run import plan_stage, run_committed
from core.storage import LocalStorage


def _parquet(path: Path, n: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": [str(i) for i in range(n)]}), path)


def test_a_committed_stage_logs_rows_in_and_out_per_input_source_and_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalStorage(str(tmp_path))
    for name, n in (("up_a", 7), ("up_b", 5)):
        _parquet(tmp_path / "in" / name / "data" / "part-0.parquet", n)
        commit(storage, "r", name, tmp_path / "in" / name, config={}, inputs={})
    cfg = load_config(overrides={"storage": {"root": str(tmp_path)}})
    plan = plan_stage(storage, "r", "s", cfg, inputs=("up_a", "up_b"), sections=(), code="v1")

    def work(out: Path) -> dict[str, Any]:
        _parquet(out / "data" / "part-0.parquet", 9)
        _parquet(out / "rejected" / "part-0.parquet", 3)
        return {
            "documents_by_source": {"web": 6, "code": 3},
            "rejected_by_reason": {"too_short": 2, "lang": 1},
        }

    with caplog.at_level(logging.INFO, logger="lmforge.stage"):
        run_committed(storage, plan, work)
    started, done = [r.getMessage() for r in caplog.records if r.name == "lmforge.stage"]
    assert started == "stage s of run r started: 12 rows in (up_a 7, up_b 5)"
    assert done.startswith("stage s committed in ")
    assert "12 rows in (up_a 7, up_b 5); out: data 9, rejected 3;" in done
    assert "documents by source: {web 6, code 3}" in done  # largest first
    assert "rejected by reason: {too_short 2, lang 1}" in done


def _holding(port: int, stack: ExitStack) -> None:
    """Keep `port` taken for the test (if something else holds it already, it is taken anyway)."""
    sock = stack.enter_context(socket.socket())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("0.0.0.0", port))
        sock.listen()
    except OSError:
        pass


def test_a_stage_session_has_its_ui_and_writes_its_event_log_into_the_run_folder(tmp_path: Path) -> None:
    """`lmforge stage ingest` in its own process (its own SparkContext, as under spark-submit)."""
    config = tmp_path / "deployment.json"
    config.write_text(json.dumps({"storage": {"root": str(tmp_path / "store")}}))
    overrides = {
        "spark": {"master": "local[1]", "shuffle_partitions": 1},
        "sources": {"include": ["synthetic"], "synthetic_count": 12},
    }
    env = {**os.environ, "LMFORGE_CONFIG": str(config)}
    with ExitStack() as stack:
        _holding(4040, stack)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "lmforge",
                "stage",
                "ingest",
                "--run-id",
                "p",
                "--overrides",
                json.dumps(overrides),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    ui = [line for line in done.stderr.splitlines() if "lmforge.spark INFO Spark " in line]
    assert len(ui) == 1, done.stderr[-3000:]
    assert "UI http://" in ui[0] and ":4040" not in ui[0]  # 4040 was taken: the next port
    events = tmp_path / "store" / "runs" / "p" / "spark-events"
    assert f"event log {events.as_uri()}" in ui[0]
    (app,) = events.iterdir()  # Spark 4 rolls the log: a folder per application
    assert app.name.startswith("eventlog_v2_local-")
    assert not list(app.glob("*.inprogress"))  # the application ended and closed its log
    (log_file,) = app.glob("events_1_*.zstd")
    text = zstandard.ZstdDecompressor().stream_reader(log_file.open("rb")).read().decode()
    events_read = [json.loads(line) for line in text.splitlines()]
    assert events_read[0]["Event"] == "SparkListenerLogStart"
    (start,) = [e for e in events_read if e["Event"] == "SparkListenerApplicationStart"]
    assert start["App Name"] == "lmforge-ingest"
    assert events_read[-1]["Event"] == "SparkListenerApplicationEnd"
    (counts,) = [line for line in done.stderr.splitlines() if "stage ingest committed in" in line]
    assert "no input stages; out: data 12" in counts and "documents by source: {synthetic 12}" in counts


def test_running_spark_stages_are_logged_as_readable_lines(spark, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.session import StageProgress, stage_lines

    sc = spark.sparkContext
    assert stage_lines(sc) == []  # nothing running: nothing to say
    watcher = StageProgress(sc, every_s=0.2)
    with caplog.at_level(logging.INFO, logger="lmforge.spark"):
        watcher.start()
        try:
            assert sc.parallelize(range(2), 2).map(lambda x: (time.sleep(2), x)[1]).collect() == [0, 1]
        finally:
            watcher.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "lmforge.spark"]
    assert lines, "the watcher saw no running stage"
    assert all(" tasks done, " in line and "/2 tasks done" in line for line in lines), lines
    assert lines[0].startswith("spark stage ") and "(collect at " in lines[0]
    assert len(lines) == len(set(lines))  # a line only when something changed


def test_event_logs_go_to_the_run_folder_or_a_named_local_folder_for_an_object_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from core.config import StorageConfig
    from core.datasets import default_cache_root
    from core.storage import open_storage
    from jobs.spark.runner import event_log_dir

    assert event_log_dir(LocalStorage(str(tmp_path)), "r1") == tmp_path.resolve() / "runs/r1/spark-events"
    with caplog.at_level(logging.INFO, logger="lmforge.runner"):
        local = event_log_dir(open_storage(StorageConfig(root="s3://bucket/lake")), "r1")
    assert local == default_cache_root() / "spark-events" / "r1"  # Spark has no s3a jars here
    assert [r.getMessage() for r in caplog.records if r.name == "lmforge.runner"] == [
        f"run r1 is on s3://bucket/lake: Spark event logs go to the local folder {local}"
    ]
