"""`lmforge scaling fit|recommend`: scaling-law fits of a results table, and compute-optimal sizes.

    lmforge scaling fit CSV --approach {1,2,3,kaplan,all} --json [--bootstrap N --seed S --drop-highest K]
    lmforge scaling recommend --fit FIT.json (--compute C | --params N | --target-loss L)

`fit` prints one JSON document: {"approach3": {"E": {value, lo, hi, se}, ..., "a", "b"}, ...}
(training/scaling/fits.py); `recommend` reads that document back (training/scaling/recommend.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lmforge.cli import command, print_json

TABLE_HELP = """results table (CSV) columns:
  params                N, total parameters (used when present; Hoffmann et al. 2022 count all)
  non_embedding_params  N without embeddings (Kaplan et al. 2020); used when params is absent
                        or with --params-column non_embedding_params
  tokens | tokens_seen  D, training tokens
  flops                 C, training FLOPs (6*N*D when missing; D = C/(6N) when tokens is missing)
  loss                  final validation loss (or the loss at `step` for a training curve)
  run_id, step          training curves, one row per point: approach 1 needs them
  budget                the IsoFLOP budget a run belongs to (approach 2; else grouped by flops)
Epoch AI's Chinchilla extraction is read as it is: `Model Size` = N, `Training FLOP` = C, D = C/(6N),
and its five highest-loss points are dropped by default (Besiroglu et al. 2024)."""


def _arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = sub.add_parser(
        "fit",
        help="fit scaling laws to a results table",
        description="Fit scaling laws (Hoffmann et al. 2022 approaches 1-3, Kaplan et al. 2020) with "
        "seeded bootstrap intervals.",
        epilog=TABLE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("csv", type=Path, help="the results table (see below)")
    f.add_argument("--approach", choices=["1", "2", "3", "kaplan", "all"], default="3")
    f.add_argument("--json", action="store_true", help="print one JSON document (the only output format)")
    f.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    f.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    f.add_argument(
        "--drop-highest",
        type=int,
        default=None,
        help="approach 3: drop the K highest-loss points (default 5 for the Chinchilla file, else 0)",
    )
    f.add_argument("--params-column", choices=["auto", "params", "non_embedding_params"], default="auto")
    f.add_argument(
        "--no-samples",
        action="store_true",
        help="leave out the bootstrap samples (`recommend` needs them for its intervals)",
    )
    r = sub.add_parser("recommend", help="compute-optimal N, D from a fit document")
    r.add_argument("--fit", type=Path, required=True, help="the JSON `lmforge scaling fit` printed")
    q = r.add_mutually_exclusive_group(required=True)
    q.add_argument("--compute", type=float, help="a FLOP budget C: N_opt, D_opt, loss")
    q.add_argument("--params", type=float, help="a model size N: its compute-optimal D")
    q.add_argument("--target-loss", type=float, help="a loss: the least compute reaching it")


@command(
    "scaling", "Scaling laws: `scaling fit CSV --json`, `scaling recommend --fit F --compute C`", _arguments
)
def scaling_command(args: argparse.Namespace) -> int:
    """Dispatch on the action; errors are ValueError/OSError, which `main` turns into exit status 2."""
    if args.action == "fit":
        return _fit(args)
    return _recommend(args)


def _fit(args: argparse.Namespace) -> int:
    from training.scaling.fits import APPROACHES, fit_all, json_safe
    from training.scaling.table import read_table

    if args.bootstrap < 0 or args.bootstrap > 10_000:
        raise ValueError(f"--bootstrap must be between 0 and 10000, not {args.bootstrap}")
    table = read_table(args.csv, args.params_column)
    approaches = APPROACHES if args.approach == "all" else (args.approach,)
    doc = fit_all(table, approaches, args.bootstrap, args.seed, args.drop_highest)
    if args.no_samples:
        for value in doc.values():
            if isinstance(value, dict):
                value.pop("samples", None)
    doc["input"] = str(args.csv)
    print_json(json_safe(doc))
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from training.scaling.fits import json_safe
    from training.scaling.recommend import for_compute, for_params, for_target_loss

    try:
        doc = json.loads(args.fit.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{args.fit}: not JSON ({err})") from err
    if not isinstance(doc, dict):
        raise ValueError(f"{args.fit}: not a fit document (a JSON object)")
    try:
        if args.compute is not None:
            answer = for_compute(doc, args.compute)
        elif args.params is not None:
            answer = for_params(doc, args.params)
        else:
            answer = for_target_loss(doc, args.target_loss)
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"{args.fit}: not a fit document from `lmforge scaling fit` ({err!r})") from err
    print_json(json_safe(answer))
    return 0
