"""Toxicity classifier and lexicon on the Davidson et al. (2017) tweets, beside the paper's numbers.

    PYTHONPATH=. python scripts/toxicity_eval.py [--csv ../shared/data/social/davidson-tweets.csv]
        [--holdout 0.2] [--seed 0] [--json]

Split: a seeded stratified 80/20 split of the 24,783 labelled tweets (jobs/model_files.py
`stratified_split`); the model (jobs/safety/toxicity_model.py) is trained on the 80% and measured
on the 20%. The paper held out 10% and cross-validated on the rest (Davidson et al. 2017, "Model");
`--holdout 0.1` gives that proportion. Paper: weighted precision 0.91, recall 0.90, F1 0.90.

Lexicon alone (jobs/safety/lexicon.py, glin-profanity's English list): as a binary toxic (hate or
offensive) vs neither classifier with its threshold chosen to maximise F1 on the training part, then,
mapped onto the three classes (toxic -> offensive, the majority toxic class; below -> neither; it
never says hate), the same weighted and macro scores as the model.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = ROOT.parent / "shared/data/social/davidson-tweets.csv"
PAPER = {"precision": 0.91, "recall": 0.90, "f1": 0.90}
MAX_BYTES = 64 << 20


def read_davidson(path: Path) -> tuple[list[str], np.ndarray]:
    """(tweets, class indices) from the repository's `labeled_data.csv` (columns `tweet`, `class`)."""
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"{path}: above {MAX_BYTES} bytes")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["tweet"] for r in rows], np.array([int(r["class"]) for r in rows])


def lexicon_threshold(scores: np.ndarray, toxic: np.ndarray) -> float:
    """The score threshold (among the observed ones) with the best binary F1 for `toxic`."""
    best, best_f1 = 1.0, -1.0
    for t in np.unique(scores):
        if t <= 0:
            continue
        pred = scores >= t
        tp = float((pred & toxic).sum())
        f1 = 2 * tp / (pred.sum() + toxic.sum()) if tp else 0.0
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of the toxic (hate or offensive) class."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(truth, predicted, average="binary", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def lexicon_eval(texts: list[str], y: np.ndarray, held: np.ndarray) -> dict[str, Any]:
    from jobs.safety.lexicon import lexicon_score
    from jobs.safety.toxicity_model import classification_metrics

    scores = np.array([lexicon_score(t, "en").score for t in texts])
    toxic = y != 2
    threshold = lexicon_threshold(scores[~held], toxic[~held])
    pred = scores[held] >= threshold
    three = classification_metrics(y[held], np.where(pred, 1, 2))
    binary = {**binary_metrics(toxic[held], pred), "threshold": threshold}
    return {"binary_toxic": binary, "three_class": three, "any_hit_share": float((scores > 0).mean())}


def run(path: Path, holdout: float, seed: int) -> dict[str, Any]:
    from jobs.model_files import stratified_split
    from jobs.safety.toxicity_model import evaluate, train

    texts, y = read_davidson(path)
    held = stratified_split(y, holdout, seed)
    start = time.perf_counter()
    model = train([texts[i] for i in np.flatnonzero(~held)], y[~held], seed=seed)
    train_s = time.perf_counter() - start
    test = [texts[int(i)] for i in np.flatnonzero(held)]
    metrics = evaluate(model, test, y[held])
    metrics["binary_toxic"] = binary_metrics(y[held] != 2, model.predict(test) != 2)
    return {
        "data": str(path),
        "split": {"holdout": holdout, "seed": seed, "train": int((~held).sum()), "test": int(held.sum())},
        "model": metrics,
        "paper_weighted": PAPER,
        "lexicon": lexicon_eval(texts, y, held),
        "train_seconds": round(train_s, 1),
    }


def table(result: dict[str, Any]) -> str:
    m, lex = result["model"], result["lexicon"]
    rows = [f"{'':28}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>10}"]
    for name in ("hate", "offensive", "neither"):
        c = m[name]
        rows.append(f"{name:28}{c['precision']:10.3f}{c['recall']:10.3f}{c['f1']:10.3f}{c['support']:10d}")
    for label, v in (
        ("weighted (this model)", m["weighted"]),
        ("weighted (Davidson 2017)", result["paper_weighted"]),
        ("macro (this model)", m["macro"]),
        ("model, toxic vs neither", m["binary_toxic"]),
        ("lexicon, toxic vs neither", lex["binary_toxic"]),
        ("lexicon -> 3 classes, wtd", lex["three_class"]["weighted"]),
        ("lexicon -> 3 classes, macro", lex["three_class"]["macro"]),
    ):
        rows.append(f"{label:28}{v['precision']:10.3f}{v['recall']:10.3f}{v['f1']:10.3f}")
    split = result["split"]
    rows.append(
        f"split: {split['train']} train / {split['test']} test (seed {split['seed']}); "
        f"accuracy {m['accuracy']:.3f}; lexicon threshold {lex['binary_toxic']['threshold']:.4g}; "
        f"training {result['train_seconds']} s"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        print(f"toxicity_eval: {args.csv} not found", file=sys.stderr)
        return 2
    result = run(args.csv, args.holdout, args.seed)
    print(json.dumps(result, sort_keys=True) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
