"""Peer MinHash near-dedup on the corpus of scripts/bench_dedup.py: how fast, and how precise.

Peers: datatrove, FineWeb's dedup (Penedo et al. 2024; github.com/huggingface/datatrove), with
FineWeb's 14 buckets x 8 hashes over word 5-grams; and text-dedup (github.com/ChenghaoMou/text-dedup)
at threshold 0.8, 112 permutations as 14 x 8 bands, word 5-grams. Both are pinned in
scripts/peer_requirements.txt and installed into their own venv, `.bench/peers-venv`, so their
dependencies (numpy 2, datasets, spaCy, pyspark, ...) never touch the project's `.venv`.

Each peer runs its whole pipeline (its JSONL read, signatures, LSH buckets, clustering, filter, its
output write) in a child process pinned to one core with thread pools capped at one, and times it
inside the child (interpreter start-up and imports excluded), so MB/s is per core. Removals are
judged by exact Jaccard on our own shingles (jobs/dedup/minhash.py), one scale for both tokenisers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.config import MinHashConfig
from jobs.dedup import minhash

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".bench" / "peers-venv"
REQUIREMENTS = Path(__file__).with_name("peer_requirements.txt")
RUNNERS = Path(__file__).with_name("peer_runners")
# name, runner script, extra runner arguments
PEERS: list[tuple[str, str, list[str]]] = [
    ("datatrove", "datatrove_minhash.py", []),
    # xxh3, which its --hash_func help calls faster than the default sha1 (9.4 s vs 6.9 s here)
    ("text-dedup", "text_dedup_minhash.py", ["--hash-func", "xxh3"]),
]
# One core per peer: every thread pool a peer's stack may start (BLAS, Arrow, which reads
# OMP_NUM_THREADS, Rayon, tokenizers) capped at one, no progress bars, no network.
CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


class PeerUnavailable(RuntimeError):
    """A peer (or the peer venv) could not be installed or run; its row says why."""


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def base_python() -> str:
    """The interpreter this venv was made from (a venv's python would nest venvs)."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable


def ensure_peer_venv(venv: Path = PEERS_VENV, requirements: Path = REQUIREMENTS) -> Path:
    """Create `venv` and install the pinned peers, only when its stamp differs from `requirements`
    (so reruns cost nothing and a changed pin reinstalls from scratch). Returns its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.stamp"
    wanted = requirements.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for cmd in (
        [base_python(), "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise PeerUnavailable(f"`{' '.join(cmd[:4])} ...` failed: {_tail(done.stderr or done.stdout)}")
    stamp.write_text(wanted)
    print(f"installed peer venv {venv} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return python


def write_jsonl(docs: Iterable[tuple[str, str]], path: Path) -> None:
    """The corpus as both peers read it: one {"id", "text"} object a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for doc_id, text in docs:
            f.write(json.dumps({"id": doc_id, "text": text}) + "\n")


def run_once(
    python: Path, runner: Path, extra: Sequence[str], corpus: Path, workdir: Path, timeout_s: float
) -> dict:
    """One child run in a fresh folder (datatrove skips tasks it finds completed, datasets reuses
    its cache); the folder is removed afterwards, its stderr kept only on failure."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= CHILD_ENV | {"HF_HOME": str(workdir / "hf-home")}
    cmd = [str(python), str(runner), "--input", str(corpus), "--workdir", str(workdir), *extra]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise PeerUnavailable(f"timed out after {timeout_s:.0f} s") from e
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise PeerUnavailable(f"exit {done.returncode}: {_tail(done.stderr)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_peers(
    docs: list[tuple[str, str]],
    workdir: Path,
    runs: int = 3,
    timeout_s: float = 1200.0,
    peers: Sequence[tuple[str, str, list[str]]] = PEERS,
) -> list[dict[str, Any]]:
    """Each peer `runs` times on `docs` (id, text), written once as JSONL under `workdir`.

    Per peer: name, version, median_s, mb_per_s (corpus MB / median s, one core), seconds (every
    run), phases (median s per phase, the peer's own split), docs_in, docs_removed, removed_ids (of
    the first run), removal precision fields (`precision_of_removed`), and error: None, or why the
    peer is not available (its other numbers are then None).
    """
    mb = sum(len(text.encode()) for _, text in docs) / 1e6
    corpus = workdir / "corpus" / "corpus.jsonl"
    write_jsonl(docs, corpus)
    rows: list[dict[str, Any]] = []
    python: Path | None = None
    try:
        python = ensure_peer_venv()
    except (PeerUnavailable, OSError, subprocess.SubprocessError) as e:
        venv_error = f"not available: peer venv: {e}"
    for name, runner, extra in peers:
        row: dict[str, Any] = {"name": name} | dict.fromkeys(("version", "median_s", "mb_per_s", "error"))
        rows.append(row)
        if python is None:
            row["error"] = venv_error
            continue
        try:
            results = [
                run_once(python, RUNNERS / runner, extra, corpus, workdir / f"{name}-run{i}", timeout_s)
                for i in range(runs)
            ]
        except (PeerUnavailable, OSError, ValueError) as e:
            row["error"] = f"not available: {e}"
            continue
        median = statistics.median(r["seconds"] for r in results)
        first = results[0]
        row |= {
            "version": first["version"],
            "median_s": median,
            "mb_per_s": mb / median,
            "seconds": [r["seconds"] for r in results],
            "phases": {k: statistics.median(r["phases"][k] for r in results) for k in first["phases"]},
            "docs_in": first["docs_in"],
            "docs_removed": first["docs_removed"],
            "same_removals_every_run": all(
                set(r["removed_ids"]) == set(first["removed_ids"]) for r in results
            ),
            "removed_ids": first["removed_ids"],
        }
        row |= precision_of_removed(first["removed_ids"], docs)
    return rows


def precision_of_removed(
    removed_ids: Iterable[str],
    docs: Sequence[tuple[str, str]],
    threshold: float = 0.8,
    cfg: MinHashConfig | None = None,
) -> dict[str, Any]:
    """How many removals were right: a removed document is correct when some other document has
    exact Jaccard >= `threshold` with it on our shingles (`jobs.dedup.minhash.shingles`, the same value as
    `minhash.jaccard`). `precision_vs_kept` asks more: the match must be a document that was kept,
    so the content survives. Two documents with no shingles at all (empty after normalisation) are
    identical, so they count as Jaccard 1 here, where `minhash.jaccard` says 0.

    Exact against every document, not just LSH candidates: all shingles are sorted once with their
    owners, and each removed document's intersections with all others come from one
    `searchsorted` + `bincount` (no pairwise loop, so any corpus size is fine).
    """
    cfg = cfg or MinHashConfig()
    index = {doc_id: k for k, (doc_id, _) in enumerate(docs)}
    removed_list = list(dict.fromkeys(removed_ids))
    removed = [index[i] for i in removed_list if i in index]
    sets = [minhash.shingles(text, cfg) for _, text in docs]
    sizes = np.fromiter((s.size for s in sets), dtype=np.int64, count=len(sets))
    values = np.concatenate(sets) if sets else np.empty(0, dtype=np.uint32)
    owner = np.repeat(np.arange(len(sets)), sizes)
    order = np.argsort(values, kind="stable")
    values, owner = values[order], owner[order]
    kept = np.ones(len(sets), dtype=bool)
    kept[removed] = False
    empty = sizes == 0
    best_any: list[float] = []
    best_kept: list[float] = []
    for r in removed:
        query = sets[r]
        if query.size == 0:
            jac = empty.astype(np.float64)
        else:
            lo = np.searchsorted(values, query, "left")
            counts = np.searchsorted(values, query, "right") - lo
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            inter = np.bincount(owner[starts + np.arange(counts.sum())], minlength=len(sets))
            jac = inter / (sizes + query.size - inter)
        jac[r] = -1.0  # not itself
        best_any.append(float(jac.max()) if len(jac) > 1 else 0.0)
        best_kept.append(float(jac[kept].max()) if kept.any() else 0.0)
    n = len(removed)
    nonempty = [j for r, j in zip(removed, best_any, strict=True) if not empty[r]]
    return {
        "removed_checked": n,
        "removed_unknown_ids": len(removed_list) - n,
        "removed_empty": n - len(nonempty),
        "precision": _share(best_any, threshold),
        "precision_nonempty": _share(nonempty, threshold),  # the removals that needed MinHash
        "precision_vs_kept": _share(best_kept, threshold),
        "median_best_jaccard": float(np.median(best_any)) if n else None,
    }


def _share(values: Sequence[float], threshold: float) -> float | None:
    return sum(v >= threshold for v in values) / len(values) if values else None


def table(rows: list[dict[str, Any]], docs: list[tuple[str, str]], runs: int) -> str:
    """The rows as text, with the corpus they ran on."""
    mb = sum(len(text.encode()) for _, text in docs) / 1e6
    lines = [
        f"peer MinHash dedup on {len(docs)} docs, {mb:.1f} MB, median of {runs} runs, one core each",
        "  precision: share of removed docs with exact Jaccard >= 0.8 (our shingles) to another doc;"
        " non-empty: the same, of the removed docs that have text; vs kept: to a doc that was kept",
        f"  {'peer':<11} {'version':<8} {'s':>7} {'MB/s/core':>9} {'docs in':>8} {'removed':>8} "
        f"{'(empty)':>8} {'precision':>9} {'non-empty':>9} {'vs kept':>8}",
    ]
    for row in rows:
        if row["error"]:
            lines.append(f"  {row['name']:<11} {row['error']}")
            continue
        lines.append(
            f"  {row['name']:<11} {row['version']:<8} {row['median_s']:>7.1f} {row['mb_per_s']:>9.3f} "
            f"{row['docs_in']:>8} {row['docs_removed']:>8} {row['removed_empty']:>8} "
            f"{_pct(row['precision']):>9} {_pct(row['precision_nonempty']):>9} "
            f"{_pct(row['precision_vs_kept']):>8}"
        )
        phases = ", ".join(f"{k} {v:.1f}" for k, v in row["phases"].items())
        lines.append(f"  {'':<11} phases (s): {phases}")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def main(argv: Sequence[str] | None = None) -> None:
    from scripts.bench_dedup import stdlib_corpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mb", type=float, default=20.0, help="corpus size, as scripts/bench_dedup.py")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    docs = stdlib_corpus(args.limit_mb)
    (ROOT / ".bench").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="peers-", dir=ROOT / ".bench"))
    try:
        rows = run_peers(docs, workdir, runs=args.runs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows, docs, args.runs))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
