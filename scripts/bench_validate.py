"""`make bench`: the validation gates' time as a share of the whole curation run (target < 10%).

Every curation stage on the demo corpus with a fresh storage root per run (nothing skipped), one
SparkSession shared as in scripts/bench.py. A stage's seconds (its manifest's `seconds`) include
its gate; the gate's own seconds are `stats["validation"]["seconds"]` (GX's import is counted in
the first gate of a process). Median of the runs. Separately: GX's import time in a fresh
process, which every Airflow task (a spark-submit process of its own) pays once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.config import REPO_ROOT, load_config
from core.registry import dag_stages

CURATION = [s.name for s in dag_stages("curation")]


def overrides(corpus: Path, base_url: str, root: Path) -> dict[str, Any]:
    """The demo's sources, as scripts/bench.py configures them."""
    return {
        "storage": {"root": str(root)},
        "crawl": {"seeds": [base_url]},
        "sources": {
            "books_dir": str(corpus / "books"),
            "code_dir": str(corpus / "code"),
            "papers_dir": str(corpus / "papers") if (corpus / "papers").is_dir() else "",
            "social_paths": [str(p) for p in sorted((corpus / "social").glob("*.jsonl"))],
            "synthetic_count": 300,
        },
        "warc": {"paths": [str(root / "runs/bench/crawl/warc")]},
    }


def one_run(corpus: Path, base_url: str, spark: Any) -> dict[str, dict[str, float]]:
    """Per stage: `seconds` (stage and gate) and `gate_seconds`."""
    from jobs.spark.runner import run_stage

    root = Path(tempfile.mkdtemp(prefix="lmforge-bench-validate-"))
    try:
        cfg = load_config(overrides=overrides(corpus, base_url, root))
        out = {}
        for name in CURATION:
            manifest, _ = run_stage(name, cfg, "bench", spark)
            gate = manifest.stats.get("validation", {}).get("seconds", 0.0)
            out[name] = {"seconds": manifest.stats["seconds"], "gate_seconds": gate}
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def import_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import jobs.validate.gates"], check=True, cwd=REPO_ROOT)
    return time.perf_counter() - start


def table(runs: list[dict[str, dict[str, float]]], gx_import: float | None = None) -> str:
    """Stage and gate seconds per stage (medians), and the gates' share of the whole run."""
    lines = [f"{'stage':<10} {'stage s':>8} {'gate s':>7} {'share':>6}   (median of {len(runs)} runs)"]
    for name in CURATION:
        secs = statistics.median(r[name]["seconds"] for r in runs)
        gate = statistics.median(r[name]["gate_seconds"] for r in runs)
        lines.append(f"{name:<10} {secs:>8.2f} {gate:>7.2f} {gate / secs:>6.1%}")
    total = statistics.median(sum(r[n]["seconds"] for n in CURATION) for r in runs)
    gates = statistics.median(sum(r[n]["gate_seconds"] for n in CURATION) for r in runs)
    lines.append(f"{'curation':<10} {total:>8.2f} {gates:>7.2f} {gates / total:>6.1%}   (target: under 10%)")
    if gx_import is not None:
        lines.append(f"GX import in a fresh process (once per Airflow task): {gx_import:.2f} s")
    return "\n".join(lines)


def report(runs: int = 3) -> str:
    """Build the demo corpus, run the curation `runs` times, and return the table."""
    from demo.corpus import build_demo_corpus
    from demo.site import serve_directory
    from jobs.spark.session import get_spark

    corpus = REPO_ROOT / ".demo" / "corpus"
    build_demo_corpus(corpus)
    spark = get_spark("lmforge-bench-validate", "local[*]", shuffle_partitions=4)
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with serve_directory(corpus / "site") as site:
            results = [one_run(corpus, site.base_url, spark) for _ in range(runs)]
    finally:
        spark.stop()
    return table(results, import_seconds())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    print(report(p.parse_args().runs))


if __name__ == "__main__":
    main()
