"""`lmforge validate RUN`: the stages' validation gates on a run that is already committed.

The same suites as the gates before each commit (jobs/validate/), with today's config: a run
committed under looser thresholds, or before a suite existed, is checked again. Datasets are read
through `materialize`, so a file changed since its commit fails before any suite runs. Data Docs
go to `--docs` (committed datasets are immutable, so never into the run).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from core.registry import dag_stages
from lmforge.cli import command, config_arguments, print_json

CURATION = [s.name for s in dag_stages("curation")]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run id")
    p.add_argument("--stage", action="append", choices=CURATION, help="only this stage (repeatable)")
    p.add_argument(
        "--docs", type=Path, default=None, help="folder for the Data Docs (default: a temp folder)"
    )
    config_arguments(p)


@command(
    "validate", "Run the validation gates' suites on a committed run; exit 1 when a gate fails", _arguments
)
def validate_command(args: argparse.Namespace) -> int:
    """One JSON line per stage, then the readable summary of each failure on stderr."""
    import sys

    from core.config import load_config
    from jobs.validate.gates import summary

    cfg = load_config(args.profile, args.overrides)
    docs = args.docs or Path(tempfile.mkdtemp(prefix=f"lmforge-validate-{args.run}-"))
    failed = False
    for name, record in validate_run(cfg, args.run, args.stage or CURATION, docs):
        print_json({"stage": name, **record})
        if record.get("success") is False:
            print(summary(name, record), file=sys.stderr)
            failed = failed or record["mode"] == "fail"
    return 1 if failed else 0


def validate_run(cfg: Any, run_id: str, stages: list[str], docs: Path) -> list[tuple[str, dict[str, Any]]]:
    """(stage, record) for every committed stage of `stages`; a stage whose gate is off is skipped."""
    from core.datasets import default_cache_root, materialize, read_manifest, require_manifest
    from core.storage import open_storage
    from jobs.validate.gates import validate

    storage = open_storage(cfg.storage)
    out = []
    for name in stages:
        manifest = read_manifest(storage, run_id, name)
        if manifest is None or cfg.validation.for_stage(name).mode == "off":
            continue
        inputs = {i: require_manifest(storage, run_id, i) for i in manifest.inputs}
        folder = materialize(storage, manifest, default_cache_root())
        out.append((name, validate(name, cfg, folder, inputs, docs / name)))
    return out
