"""The subcommands of the pipeline itself: stages, whole runs, reports, the demo, per-document rules.

Per-document subcommands are derived from the registry: every stage with a `row_logic` becomes
`lmforge <stage>`, reading documents as JSON lines and answering one line per input `id`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

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
    "report", "Build, store and print a run's summary (funnel, sources, tokens, training)", _report_arguments
)
def report(args: argparse.Namespace) -> int:
    import json

    from core.config import load_config
    from core.datasets import check_run_id
    from core.storage import open_storage
    from jobs.report import build_summary, render_summary, write_summary

    check_run_id(args.run_id)
    uri = write_summary(args.run_id, args.profile, args.overrides)
    summary = build_summary(open_storage(load_config(args.profile, args.overrides).storage), args.run_id)
    print(json.dumps(summary, indent=1) if args.json else render_summary(summary))
    print(uri, file=sys.stderr)
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    from demo.run import add_arguments

    add_arguments(p)


@command(
    "demo", "Build the demo corpus and run the curation and pretrain DAGs through Airflow", _demo_arguments
)
def demo(args: argparse.Namespace) -> int:
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
    if _spec.row_logic:
        _row_command(_name)
