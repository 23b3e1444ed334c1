"""The subcommands of the pipeline itself: stages, whole runs, reports, the demo, per-document rules.

Per-document subcommands are derived from the registry: every stage with a `row_logic` becomes
`lmforge <stage>`, reading documents as JSON lines and answering one line per input `id`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from core.registry import STAGES
from lmforge.cli import command, config_arguments, print_json


def _stage_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=list(STAGES), help="registry stage")
    p.add_argument("--run-id", required=True)
    config_arguments(p)
    p.add_argument("--force", action="store_true", help="rerun even when the stage is current")
    p.add_argument(
        "--rerun-from",
        default="",
        help="comma-separated stages: this stage reruns if it is one of them or reads from one",
    )


def forced(name: str, force: bool, rerun_from: str) -> bool:
    """Whether `name` must rerun: --force, or it is downstream of (or in) --rerun-from."""
    from core.registry import downstream

    starts = [s for s in (rerun_from or "").split(",") if s]
    unknown = [s for s in starts if s not in STAGES]
    if unknown:
        raise ValueError(f"--rerun-from names unknown stages {unknown}; known: {', '.join(STAGES)}")
    return force or name in downstream(starts)


def run_one(
    name: str, run_id: str, profile: str | None, overrides: str | None, force: bool
) -> dict[str, Any]:
    """One registry stage on its engine; the manifest's summary as a dict."""
    from core.config import load_config

    if STAGES[name].engine == "ray":
        from training.stage import pretrain_stage

        return {"stage": name, **pretrain_stage(run_id, profile, overrides, force=force)}
    from jobs.spark.runner import run_stage

    manifest, skipped = run_stage(name, load_config(profile, overrides), run_id, force=force)
    return {"stage": name, "run_id": run_id, "skipped": skipped, "rows": manifest.rows}


@command("stages", "List the registry's stages as JSON lines")
def stages(args: argparse.Namespace) -> int:
    for s in STAGES.values():
        print_json(
            {"name": s.name, "inputs": s.inputs, "config": s.config, "engine": s.engine, "dag": s.dag,
             "adapter": s.adapter, "row_command": bool(s.row_logic), "description": s.description}
        )  # fmt: skip
    return 0


@command(
    "stage",
    "Run one stage of a run (skipped when its config, inputs and code are unchanged)",
    _stage_arguments,
)
def stage(args: argparse.Namespace) -> int:
    from core.datasets import check_run_id

    check_run_id(args.run_id)
    force = forced(args.name, args.force, args.rerun_from)
    print_json(run_one(args.name, args.run_id, args.profile, args.overrides, force))
    return 0


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-id", required=True)
    config_arguments(p)
    p.add_argument("--rerun-from", default="", help="comma-separated stages to rerun with their readers")
    p.add_argument("--until", default=None, choices=list(STAGES), help="stop after this stage")


@command("run", "Run every stage in registry order in this process (Spark local, local Ray)", _run_arguments)
def run(args: argparse.Namespace) -> int:
    from core.datasets import check_run_id
    from jobs.report import write_summary

    check_run_id(args.run_id)
    for name in STAGES:
        print_json(
            run_one(name, args.run_id, args.profile, args.overrides, forced(name, False, args.rerun_from))
        )
        if name == args.until:
            break
    print(write_summary(args.run_id, args.profile, args.overrides))
    return 0


def _report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", metavar="RUN")
    config_arguments(p)
    p.add_argument("--json", action="store_true", help="print summary.json instead of the text view")


@command(
    "report",
    "Build, store and print a run's summary and its data report (report/index.html, index.md, charts)",
    _report_arguments,
)
def report(args: argparse.Namespace) -> int:
    """The summary on stdout (text or JSON); on stderr the summary's URI, then the data report's."""
    import json

    from core.config import load_config
    from core.datasets import check_run_id
    from core.storage import open_storage
    from jobs.report import render_summary, write_summary

    check_run_id(args.run_id)
    uri = write_summary(args.run_id, args.profile, args.overrides)
    storage = open_storage(load_config(args.profile, args.overrides).storage)
    summary = json.loads(storage.read_bytes(f"runs/{args.run_id}/summary.json"))  # as stored, not rebuilt
    print(json.dumps(summary, indent=1) if args.json else render_summary(summary))
    print(uri, file=sys.stderr)
    print((summary.get("report") or {}).get("html"), file=sys.stderr)
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from demo.run import add_arguments

    add_arguments(p)


@command(
    "demo", "Build the demo corpus and run the curation and pretrain DAGs through Airflow", _demo_arguments
)
def demo(args: argparse.Namespace) -> int:
    from core.prereqs import check_prereqs

    problems = check_prereqs()  # Python 3.11+, Java 17+: before minutes of setup, not after
    for problem in problems:
        print(f"lmforge demo: {problem}", file=sys.stderr)
    if problems:
        return 1
    from demo.run import main as demo_main

    demo_main(args)
    return 0


def _row_command(name: str) -> None:
    """`lmforge <name>`: the stage's per-document rule over JSON lines on stdin."""
    spec = STAGES[name]

    def arguments(p: argparse.ArgumentParser) -> None:
        config_arguments(p)

    def handler(args: argparse.Namespace) -> int:
        from core.config import load_config
        from core.plans import resolve
        from lmforge.jsonl import answer_all
        from lmforge.rows import row_answer

        cfg = load_config(args.profile, args.overrides)
        rule = resolve(spec.row_logic or "")(getattr(cfg, spec.config[0]))
        return 1 if answer_all(sys.stdin.buffer, sys.stdout, lambda obj: row_answer(obj, rule)) else 0

    command(name, f"{spec.description}: documents as JSON lines on stdin, one answer per id", arguments)(
        handler
    )


for _name, _spec in STAGES.items():
    if _spec.row_logic and _name != "quality":  # quality has its own command, below
        _row_command(_name)


# ---------------------------------------------------------------- quality: score documents, train a model

TRAINING_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".md", ".rst")
MAX_TRAINING_FILE_BYTES = 64 << 20  # one plain-text document; a JSONL file is read a line at a time


def _quality_arguments(p: argparse.ArgumentParser) -> None:
    config_arguments(p)
    p.add_argument("action", nargs="?", choices=["train"], help="train: fit the quality classifier")
    p.add_argument("--positives", nargs="+", type=Path, default=[], metavar="FILE", help="good text (train)")
    p.add_argument("--negatives", nargs="+", type=Path, default=[], metavar="FILE", help="raw text (train)")
    p.add_argument("--out", type=Path, help="model file to write (train), e.g. quality-model.npz")
    p.add_argument("--holdout", type=float, default=0.2, help="share of each class held out (train)")
    p.add_argument("--seed", type=int, default=0, help="held-out split seed (train)")


@command(
    "quality",
    "Quality rules on JSON lines {id, text, source_type} from stdin, answering {id, keep, reason, "
    "language, scores}; `quality train` fits the trained quality score from files of good and raw text",
    _quality_arguments,
)
def quality(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _quality_train(args)
    if args.positives or args.negatives or args.out:
        raise ValueError("--positives, --negatives and --out belong to `lmforge quality train`")
    from core.config import load_config
    from jobs.filters.quality import assess_with
    from lmforge.jsonl import answer_all

    rule = assess_with(load_config(args.profile, args.overrides).quality)
    return 1 if answer_all(sys.stdin.buffer, sys.stdout, lambda obj: quality_answer(obj, rule)) else 0


def quality_answer(
    obj: dict[str, Any], rule: Callable[[dict[str, Any]], tuple[dict[str, Any], str | None]]
) -> dict[str, Any]:
    """The decision on one user document: keep, the rule's reason, the language, and the `quality.*`
    annotations as scores (prefix stripped; numbers as floats)."""
    from lmforge.rows import to_row

    row, reason = rule(to_row(obj))
    scores = {
        k.removeprefix("quality."): _number(v)
        for k, v in sorted((row.get("annotations") or {}).items())
        if k.startswith("quality.")
    }
    return {"keep": reason is None, "reason": reason, "language": row.get("language"), "scores": scores}


def _number(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else value


def _quality_train(args: argparse.Namespace) -> int:
    """Fit, save and print what the config needs: the model's sha256 (`quality.classifier_sha256`)."""
    from jobs.filters.classifier import train

    if not args.positives or not args.negatives or args.out is None:
        raise ValueError(
            "`lmforge quality train` needs --positives FILE..., --negatives FILE... and --out MODEL"
        )
    inputs = {"positives": _names(args.positives), "negatives": _names(args.negatives)}
    model = train(
        training_documents(args.positives), training_documents(args.negatives),
        seed=args.seed, holdout=args.holdout, provenance={"inputs": inputs},
    )  # fmt: skip
    sha = model.save(args.out)
    metrics = model.metadata["heldout_metrics"]
    print_json(
        {"model": str(args.out), "sha256": sha, "bytes": args.out.stat().st_size,
         "counts": model.metadata["counts"], "roc_auc": metrics["roc_auc"], "accuracy": metrics["accuracy"],
         "config": {"locations": {"quality-model": str(args.out.resolve())},
                    "quality": {"classifier_model": "quality-model", "classifier_sha256": sha}}}
    )  # fmt: skip
    return 0


def _names(paths: list[Path]) -> list[str]:
    return [str(p) for p in paths]


def training_documents(paths: list[Path]) -> Iterator[str]:
    """Documents from files: `.jsonl` (optionally `.gz`) gives one per line's `text`; any other file
    is one document (UTF-8); a folder gives its files with a suffix in `TRAINING_SUFFIXES`, sorted.
    A line that is not an object with a string `text` is an error naming the file and line."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(TRAINING_SUFFIXES))
            yield from training_documents(files)
        elif path.name.endswith((".jsonl", ".jsonl.gz")):
            yield from _jsonl_texts(path)
        else:
            if path.stat().st_size > MAX_TRAINING_FILE_BYTES:
                raise ValueError(f"{path}: above {MAX_TRAINING_FILE_BYTES} bytes; split it into JSON lines")
            yield path.read_text(encoding="utf-8", errors="replace")


def _jsonl_texts(path: Path) -> Iterator[str]:
    import gzip

    from lmforge.jsonl import read_objects

    with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as fh:
        for number, obj in read_objects(cast(IO[bytes], fh)):
            if isinstance(obj, str) or not isinstance(obj.get("text"), str):
                raise ValueError(
                    f"{path}:{number}: {obj if isinstance(obj, str) else 'no string field text'}"
                )
            yield obj["text"]
