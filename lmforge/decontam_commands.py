"""`lmforge decontaminate --evals DIR`: benchmark n-gram overlap on a user's own JSON lines.

Reads `{"id", "text"}` lines on stdin and answers `{"id", "contaminated", "benchmarks", "spans"
(start, end, benchmark, ngrams), "ngrams", "fraction", "truncated", "action", "reason"}` per line
(jobs/safety/decontam.py); with `--action cut` also `text`: the text with the spans removed (null
when too little is left and the document is dropped). `action` is what the rule did: `keep` (no
hit), `drop`, `cut` or `flag`. The evaluation folder (jobs/safety/evalsets.py) is read once; its
per-benchmark statistics and, at the end, the hits per benchmark go to stderr as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmforge.cli import command

if TYPE_CHECKING:  # keeps numpy out of `lmforge --help`
    from core.config import DecontamConfig
    from jobs.copyright.overlap import OverlapIndex
    from jobs.safety.decontam import HitReport

MAX_SPANS = 200  # spans listed per answer; `ngrams` and `fraction` count them all


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--evals", required=True, type=Path, help="folder of evaluation sets (.jsonl, .json, .csv, .txt)"
    )
    p.add_argument("--ngram", type=int, default=None, help="words per n-gram (default 13, GPT-3)")
    p.add_argument("--action", choices=("drop", "cut", "flag"), default=None, help="default drop")
    p.add_argument("--min-hits", type=int, default=None, help="matched n-grams for a hit (default 1)")
    p.add_argument("--fields", default=None, help="comma-separated JSON fields / CSV columns holding text")


def config_from(args: argparse.Namespace) -> DecontamConfig:
    """The config the arguments give; a bad value raises the config's ValueError naming the field."""
    from core.config import DecontamConfig

    given = {"ngram": args.ngram, "action": args.action, "min_hits": args.min_hits}
    return DecontamConfig(evals_path=str(args.evals), **{k: v for k, v in given.items() if v is not None})


def decontam_answer(
    obj: dict[str, Any], index: OverlapIndex, cfg: DecontamConfig, report: HitReport
) -> dict[str, Any]:
    """One document's answer (see the module docstring)."""
    from jobs.safety.decontam import apply, check

    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError("no string field text")
    found = check(text, index, cfg)
    report.add(found)
    row, reason = apply({"id": obj.get("id"), "text": text}, found, cfg)
    spans = [
        {"start": s.start, "end": s.end, "benchmark": s.benchmark, "ngrams": s.ngrams} for s in found.spans
    ]
    answer = {
        "contaminated": bool(found.spans), "benchmarks": found.benchmarks, "spans": spans[:MAX_SPANS],
        "ngrams": found.ngrams, "fraction": round(found.fraction, 6), "truncated": found.truncated,
        "action": ("drop" if reason else cfg.action) if found.spans else "keep", "reason": reason,
    }  # fmt: skip
    if cfg.action == "cut":
        answer["text"] = None if reason else row["text"]
    return answer


@command(
    "decontaminate",
    "Benchmark decontamination: JSON lines {id, text} on stdin, answering {id, contaminated, "
    "benchmarks, spans (start, end, benchmark, ngrams), action, text (with --action cut)} against "
    "the evaluation sets in --evals (13-gram overlap, GPT-3)",
    _arguments,
)
def decontaminate(args: argparse.Namespace) -> int:
    from jobs.safety.decontam import HitReport, build_eval_index
    from jobs.safety.evalsets import read_evals
    from lmforge.jsonl import answer_all

    cfg = config_from(args)
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
    index, stats = build_eval_index(read_evals(args.evals, cfg.max_eval_bytes, fields), cfg.ngram)
    _log({"evals": str(args.evals), "ngram": cfg.ngram, "benchmarks": stats})
    report = HitReport()
    errors = answer_all(sys.stdin.buffer, sys.stdout, lambda obj: decontam_answer(obj, index, cfg, report))
    _log({"hits": report.as_dict()})
    return 1 if errors else 0


def _log(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True), file=sys.stderr, flush=True)
