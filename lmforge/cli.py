"""`lmforge`: the one command line. Stage subcommands are read off the registry (core/registry.py).

    lmforge stages                      the registry, one JSON line per stage
    lmforge stage NAME --run-id R       run one stage (skipped when current; --force, --rerun-from)
    lmforge run --run-id R              every stage in order, in this process (no Airflow)
    lmforge report RUN                  write and print the run summary
    lmforge demo                        build the demo corpus and run both DAGs through Airflow
    lmforge ui                          the Airflow UI, scheduler and triggerer on the embedded setup
    lmforge airflow ARGS                `airflow ARGS` with the embedded environment
    lmforge scaling fit CSV --json      scaling-law fits (Chinchilla approaches 1-3, Kaplan) with intervals
    lmforge extract|quality < docs.jsonl   a stage's per-document rule on your own JSON lines

A later capability adds a subcommand with `@command(...)` in its own module, listed in `MODULES`.

Exit status: 0 success; 1 some inputs failed (per-document commands); 2 an error a retry may fix or
a bad argument (storage unreachable, a missing upstream stage, an invalid run id); and two codes
that a retry cannot change, which the curation DAG's stage operators (orchestration/spark_operators.py)
turn into a failure without retries:
    65 (`EXIT_GATE`, sysexits EX_DATAERR)   a validation gate in `fail` mode failed (jobs/validate)
    78 (`EXIT_CONFIG`, sysexits EX_CONFIG)  the config is invalid (core.config.ConfigError)
spark-submit in client mode exits with its Python driver's status, so they reach Airflow unchanged.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

EXIT_GATE = 65
EXIT_CONFIG = 78
NO_RETRY_EXIT_CODES = frozenset({EXIT_GATE, EXIT_CONFIG})

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Handler]] = {}
# modules whose @command functions become subcommands
MODULES = (
    "lmforge.commands",
    "lmforge.copyright_commands",
    "lmforge.overlap_commands",
    "lmforge.validate_commands",
    "lmforge.airflow_commands",
    "lmforge.scaling_commands",
    "lmforge.pii_commands",
    "lmforge.toxicity_commands",
    "lmforge.decontam_commands",
)


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] = lambda p: None):
    """Register `fn(args) -> exit status` as `lmforge NAME`."""

    def register(fn: Handler) -> Handler:
        _COMMANDS[name] = (help, arguments, fn)
        return fn

    return register


def config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default=None, help="config profile (default: LMFORGE_PROFILE or local)")
    p.add_argument("--overrides", default=None, help="JSON object of config overrides, nested")


def build_parser() -> argparse.ArgumentParser:
    for module in MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="lmforge", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, arguments, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(handler=fn)
    return parser


def exit_status(err: BaseException) -> int:
    """The status for an error `main` reports: EXIT_GATE / EXIT_CONFIG when a retry cannot help."""
    from core.config import ConfigError
    from jobs.validate.gates import GateFailed

    if isinstance(err, GateFailed):
        return EXIT_GATE
    if isinstance(err, ConfigError):
        return EXIT_CONFIG
    return 2


def main(argv: list[str] | None = None) -> int:
    from core.storage import StorageError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.handler(args))
    except (ValueError, OSError, StorageError) as err:  # config, storage, input: one readable line
        print(f"lmforge {args.command}: {err}", file=sys.stderr)
        return exit_status(err)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, default=str, sort_keys=True), flush=True)
