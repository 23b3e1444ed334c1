"""`make demo`'s progress: the tasks of a real `airflow dags test` run shown as they start and end,
Airflow's output kept in a log file; plain lines off a terminal, a rich display on one."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo.run import PlainDisplay, RichDisplay, TaskEvent, run_watched

DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False)
def tiny():
    @task
    def first():
        print("output of the first task")
        return 1

    @task
    def second(x):
        raise RuntimeError("the second task fails")

    second(first())


tiny()
"""


Run = tuple[int, list[TaskEvent], str, Path, list[str]]  # exit code, events, shown text, log, log tail


class Recorder:
    def __init__(self, inner: PlainDisplay) -> None:
        self.inner, self.events = inner, []  # type: ignore[var-annotated]

    def show(self, event: TaskEvent) -> None:
        self.events.append(event)
        self.inner.show(event)


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A real `airflow dags test` of a two-task DAG (the second fails) in its own Airflow home."""
    root = tmp_path_factory.mktemp("airflow")
    (root / "dags").mkdir()
    (root / "dags" / "tiny.py").write_text(DAG)
    airflow = str(Path(sys.executable).parent / "airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # as dag_test sets it: the task lines are INFO
    }
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    out = io.StringIO()
    recorder = Recorder(PlainDisplay("tiny", out))
    log_file = root / "logs" / "airflow-tiny.log"
    code, tail = run_watched([airflow, "dags", "test", "tiny"], env, log_file, recorder)
    return code, recorder.events, out.getvalue(), log_file, tail


def test_each_task_is_shown_when_it_starts_and_when_it_ends_with_its_state(
    dag_run: Run,
) -> None:
    code, events, text, log_file, tail = dag_run
    assert [(e.task, e.state) for e in events if e.state != "running"] == [
        ("first", None),
        ("first", "success"),
        ("second", None),
        ("second", "failed"),
    ]
    lines = [line for line in text.splitlines() if " still running (" not in line]  # a slow machine's
    assert lines[0] == "  tiny.first started"
    assert re.fullmatch(
        r"  tiny.first success in \d+\.\d s \(1 tasks done, \d+ s since the DAG started\)", lines[1]
    )
    assert lines[2] == "  tiny.second started"
    assert re.fullmatch(
        r"  tiny.second failed in \d+\.\d s \(2 tasks done, \d+ s since the DAG started\)", lines[3]
    )
    assert len(lines) == 4
    full = log_file.read_text()  # Airflow's own output went to the file, not the screen
    assert "output of the first task" in full and "the second task fails" in full
    assert tail == full.splitlines()[-len(tail) :]
    assert code != 0 or "state=failed" in full  # the run is failed whether or not the CLI says so


def test_the_rich_display_marks_each_finished_task(
    dag_run: Run,
) -> None:
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    _, events, _, _, _ = dag_run
    console = Console(file=io.StringIO(), width=80, force_terminal=False, record=True)
    with Progress(TextColumn("{task.description}"), console=console) as progress:
        display = RichDisplay("tiny", progress)
        for event in events:
            display.show(event)
    rows = [line.strip() for line in console.export_text().splitlines() if line.strip()]
    assert rows[-2:] == ["✓ tiny.first success", "✗ tiny.second failed"]


def test_a_long_task_is_said_to_be_running_at_most_once_a_heartbeat() -> None:
    from demo.run import HEARTBEAT_S, TaskWatcher

    now = [0.0]
    watcher = TaskWatcher(clock=lambda: now[0])
    start = "[DAG TEST] starting task_id=crawl map_index=-1 [airflow.sdk.definitions.dag]"
    assert watcher.feed(start) == TaskEvent("crawl")
    seen = []
    for _ in range(10):  # the task's own output, a line every HEARTBEAT_S / 4
        now[0] += HEARTBEAT_S / 4
        seen.append(watcher.feed("spark: something happened"))
    said = [e for e in seen if e is not None]
    assert said == [
        TaskEvent("crawl", "running", HEARTBEAT_S),
        TaskEvent("crawl", "running", 2 * HEARTBEAT_S),
    ]
    out = io.StringIO()
    PlainDisplay("curation", out).show(said[0])
    assert out.getvalue() == f"  curation.crawl still running ({HEARTBEAT_S:.0f} s)\n"
    end = watcher.feed("[DAG TEST] end task task_id=crawl map_index=-1")
    assert end == TaskEvent("crawl", "finished", 2.5 * HEARTBEAT_S)  # no state line: finished, not success
