"""A small CPU scaling-law sweep: 3 IsoFLOP budgets x 3 model sizes, fitted, on a run's shards.

    python -m scripts.sweep_demo [--run demo] [--budgets 1e10 3e10 1e11] [--sizes 3]

It trains on the committed shards of `--run` (`make demo` commits run `demo`); when that run has no
committed shards it commits byte-level shards of this repository's own text (Markdown and Python
sources, vocabulary 256) as run `sweep-demo` and sweeps those. The sweep runs through the functions
the `scaling` DAG's tasks call (training/scaling/sweep.py): plan, one local Ray Train run per point,
results.csv and curves.csv, the fits with bootstrap intervals and the report, all under
`runs/<run>/scaling/`. Then it prints the table, the fitted exponents with their intervals and the
recommendation. Models this small, trained for seconds on two cores, need not follow clean power
laws: what the fits say is printed as it comes, including what could not be fitted and why.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.config import REPO_ROOT, load_config
from core.datasets import commit, read_manifest
from core.storage import open_storage

FALLBACK_RUN = "sweep-demo"


def repo_text_shards(out: Path, max_bytes: int = 2_000_000) -> Path:
    """Byte-level shards (ids 1..255 for bytes, 0 for end of document) of this repository's Markdown
    and Python sources: real text, no tokenizer to train, vocabulary 256."""
    ids: list[int] = []
    for path in sorted([*REPO_ROOT.glob("*.md"), *REPO_ROOT.glob("*/*.py"), *REPO_ROOT.glob("*/*/*.py")]):
        if len(ids) >= max_bytes:
            break
        data = path.read_bytes().replace(b"\x00", b"")
        ids += [*data, 0]
    tokens = np.array(ids[:max_bytes], dtype="<u2")
    cut = len(tokens) * 19 // 20
    tokens[:cut].tofile(out / "train-00000.bin")
    tokens[cut:].tofile(out / "val-00000.bin")
    meta = {
        "vocab_size": 256,
        "eos_id": 0,
        "pad_id": 0,
        "dtype": "uint16",
        "train_files": ["train-00000.bin"],
        "val_files": ["val-00000.bin"],
        "train_tokens": int(cut),
        "val_tokens": int(len(tokens) - cut),
    }
    (out / "meta.json").write_text(json.dumps(meta))
    return out


def shards_run(run: str, overrides: dict[str, Any]) -> str:
    """`run` when its shards are committed, else FALLBACK_RUN with the repository-text shards."""
    storage = open_storage(load_config(None, overrides).storage)
    if read_manifest(storage, run, "shards") is not None:
        return run
    print(
        f"run {run!r} has no committed shards: sweeping byte-level shards of this repository ({FALLBACK_RUN})"
    )
    if read_manifest(storage, FALLBACK_RUN, "shards") is None:
        with tempfile.TemporaryDirectory() as d:
            commit(storage, FALLBACK_RUN, "shards", repo_text_shards(Path(d)), config={}, inputs={})
    return FALLBACK_RUN


def _estimate(e: Any) -> str:
    if not isinstance(e, dict) or "value" not in e:
        return str(e)
    lo, hi = e.get("lo"), e.get("hi")
    if isinstance(lo, float) and isinstance(hi, float) and math.isfinite(lo) and math.isfinite(hi):
        return f"{e['value']:.3g} (95% CI {lo:.3g} to {hi:.3g})"
    return f"{e['value']:.3g} (no interval)"


def regime(trained: list[dict[str, Any]]) -> str:
    """Which size wins each budget: when the smallest wins every one, the budgets are too small for
    the sizes (each model sees too few tokens) and the fits cannot find an optimum inside the range."""
    by_budget: dict[float, list[tuple[int, float]]] = {}
    for t in trained:
        if t["final_val_loss"] is not None:
            pt = t["point"]
            by_budget.setdefault(pt["budget"], []).append((pt["non_embedding_params"], t["final_val_loss"]))
    winners = {c: min(rows, key=lambda r: r[1])[0] for c, rows in sorted(by_budget.items())}
    line = "lowest loss per budget: " + ", ".join(f"C={c:.2g}: N={n:,}" for c, n in winners.items())
    smallest = {c: min(n for n, _ in rows) for c, rows in by_budget.items()}
    if winners and all(winners[c] == smallest[c] for c in winners):
        line += (
            "\nthe smallest model wins every budget: these budgets leave every size data-starved, so no "
            "compute-optimal size lies inside the range (raise --budgets or lower --min-params)"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="demo", help="run whose committed shards to sweep (default demo)")
    p.add_argument("--budgets", type=float, nargs="+", default=[1e10, 3e10, 1e11], help="FLOPs, C = 6 N D")
    p.add_argument("--sizes", type=int, default=3, help="model sizes per budget (>= 3)")
    p.add_argument("--min-params", type=int, default=20_000, help="non-embedding parameters")
    p.add_argument("--max-params", type=int, default=400_000, help="non-embedding parameters")
    p.add_argument("--min-steps", type=int, default=10, help="drop points with fewer steps")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--force", action="store_true", help="retrain points already committed")
    args = p.parse_args(argv)

    from training.launch import ensure_ray
    from training.scaling.sweep import collect_results, fit_and_report, plan_sweep, train_point

    overrides: dict[str, Any] = {
        "scaling": {
            "design": "isoflop",
            "budgets": args.budgets,
            "sizes_per_budget": args.sizes,
            "min_params": args.min_params,
            "max_params": args.max_params,
            "eval_every": args.eval_every,
            "bootstrap": args.bootstrap,
        },
        "train": {
            "seq_len": args.seq_len,
            "batch_size": args.batch_size,
            "precision": "fp32",
            "log_every": 50,
        },
        "ray": {"num_workers": 1},
    }
    run = shards_run(args.run, overrides)
    start = time.monotonic()
    items = plan_sweep(run, None, json.dumps(overrides), min_steps=args.min_steps)
    print(f"{len(items)} points on run {run!r}:")
    for item in items:
        pt = item["point"]
        print(f"  {pt['point_id']}: N={pt['non_embedding_params']:,} D={pt['tokens']:,} C={pt['budget']:.2g}")
    import ray

    owned = ensure_ray(load_config(None, overrides).ray)  # one local Ray for every point
    try:
        trained = [train_point(i["run"], i["point"], force=args.force) for i in items]
    finally:
        if owned:
            ray.shutdown()
    collected = collect_results(items, trained)
    summary = fit_and_report(collected)
    print(
        f"\ntrained {collected['done']} of {collected['points']} points in {time.monotonic() - start:.0f} s"
    )
    print(f"{'point':24} {'N':>9} {'D':>9} {'C':>8} {'val loss':>9}")
    for t in trained:
        pt = t["point"]
        loss = t["final_val_loss"]
        print(
            f"{pt['point_id']:24} {pt['non_embedding_params']:>9,} {pt['tokens']:>9,} {pt['budget']:>8.2g} "
            f"{loss if loss is None else round(loss, 4)!s:>9}"
        )
    print(f"\n{regime(trained)}")
    print("\nfits (N = non-embedding parameters):")
    for name, fit in summary["fits"].items():
        if name == "skipped":
            continue
        shown = {k: v for k, v in fit.items() if isinstance(v, dict)}
        print(f"  {name}: " + "; ".join(f"{k} = {_estimate(v)}" for k, v in shown.items()))
    for name, why in (summary["fits"].get("skipped") or {}).items():
        print(f"  {name}: not fitted: {why}")
    advice = summary.get("recommendation") or {}
    print(f"\nrecommendation for C = {advice.get('compute', 0):.3g} FLOPs (10x the largest budget):")
    if "none" in advice:
        print(f"  none: {advice['none']}")
    for name, rec in advice.items():
        if isinstance(rec, dict):
            print(f"  {name}: " + "; ".join(f"{k} = {_estimate(v)}" for k, v in rec.items()))
    print(f"results: {collected['results']}\nreport: {summary['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
