"""`lmforge toxicity`: the safety stage's toxicity scores on a user's own JSON lines, and
`lmforge toxicity train`: a toxicity model from the user's labelled CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmforge.cli import command, print_json

MAX_TRAIN_BYTES = 256 << 20  # a labelled training file
MAX_FIELD_CHARS = 1 << 20  # one CSV field
MAX_ROWS = 5_000_000


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="a model `lmforge toxicity train` wrote")
    p.add_argument("--sha256", default=None, help="refuse the model unless its bytes have this sha256")
    p.add_argument("--threshold", type=float, default=0.5, help="flag at or above this score (default 0.5)")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("train", help="train a model from labelled CSV or JSON lines; prints its sha256")
    t.add_argument(
        "data", type=Path, help="CSV (header row) or JSON lines (.jsonl/.json) with text and label"
    )
    t.add_argument("--out", type=Path, required=True, help="where to write the model (.npz)")
    t.add_argument("--text-column", default="tweet", help="default `tweet` (Davidson et al. 2017)")
    t.add_argument("--label-column", default="class", help="0/1/2 or hate/offensive/neither; default `class`")
    t.add_argument("--holdout", type=float, default=0.2, help="stratified share held out for metrics")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--c", type=float, default=3.0, help="inverse L2 regularisation strength")
    t.add_argument(
        "--n-features", type=int, default=1 << 17, help="hashed features per block (default 2**17)"
    )


@command(
    "toxicity",
    "Toxicity on JSON lines {id, text, language?} from stdin, answering {id, score, lexicon, lexicon_hits, "
    "terms, flag, probabilities?}: glin-profanity's word lists, and with --model a trained classifier "
    "(hate, offensive, neither). `toxicity train DATA --out MODEL` trains one",
    _arguments,
)
def toxicity_command(args: argparse.Namespace) -> int:
    if args.action == "train":
        return _train(args)
    if not 0 <= args.threshold <= 1:
        raise ValueError(f"--threshold must be in [0, 1], got {args.threshold}")
    from lmforge.jsonl import answer_all

    model = None
    if args.model is not None:
        from jobs.safety.toxicity_model import load_model

        model = load_model(args.model, args.sha256)
    return 1 if answer_all(sys.stdin.buffer, sys.stdout, answerer(model, args.threshold)) else 0


def answerer(model: Any, threshold: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The answer for one object: lexicon score and terms, the model's probabilities when given."""
    from jobs.safety.lexicon import lexicon_score
    from jobs.safety.toxicity_model import CLASSES

    def answer(obj: dict[str, Any]) -> dict[str, Any]:
        text = obj.get("text")
        if not isinstance(text, str):
            raise ValueError("no string field text")
        language = obj.get("language")
        lexicon = lexicon_score(text, language if isinstance(language, str) else None)
        out: dict[str, Any] = {"lexicon": round(lexicon.score, 4), "lexicon_hits": lexicon.hits}
        out["terms"], out["language"] = lexicon.terms, lexicon.language
        score = lexicon.score
        if model is not None:
            p = model.predict_proba([text])[0]
            out["probabilities"] = {name: round(float(v), 4) for name, v in zip(CLASSES, p, strict=True)}
            score = float(p[0] + p[1])
        return {"score": round(score, 4), **out, "flag": score >= threshold}

    return answer


def _train(args: argparse.Namespace) -> int:
    from jobs.safety.toxicity_model import train

    texts, labels = read_labelled(args.data, args.text_column, args.label_column)
    provenance = {"data": args.data.name, "text_column": args.text_column, "label_column": args.label_column}
    model = train(
        texts,
        labels,
        seed=args.seed,
        holdout=args.holdout,
        c=args.c,
        n_features=args.n_features,
        provenance=provenance,
    )
    sha256 = model.save(args.out)
    print_json(
        {
            "model": str(args.out),
            "sha256": sha256,
            "n_train": model.metadata["n_train"],
            "counts": model.metadata["counts"],
            "metrics": model.metadata.get("heldout_metrics"),
        }
    )
    return 0


def read_labelled(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[object]]:
    """(texts, labels) from a CSV with a header row or JSON lines; size, field and row count capped."""
    size = path.stat().st_size
    if size > MAX_TRAIN_BYTES:
        raise ValueError(f"{path}: {size} bytes, above the {MAX_TRAIN_BYTES}-byte cap")
    rows = _jsonl_rows(path) if path.suffix.lower() in (".jsonl", ".json", ".ndjson") else _csv_rows(path)
    texts: list[str] = []
    labels: list[object] = []
    for number, row in enumerate(rows, start=1):
        if number > MAX_ROWS:
            raise ValueError(f"{path}: more than {MAX_ROWS} rows")
        text, label = row.get(text_column), row.get(label_column)
        if not isinstance(text, str) or label is None or label == "":
            raise ValueError(
                f"{path} row {number}: no text in {text_column!r} or no label in {label_column!r}"
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise ValueError(f"{path}: no labelled rows")
    return texts, labels


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except (csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable UTF-8 CSV ({err})") from None


def _jsonl_rows(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{path} line {number}: not JSON ({str(err)[:120]})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path} line {number}: not a JSON object")
            out.append(obj)
    return out
