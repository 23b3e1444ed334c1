"""One timed run of text-dedup's MinHash dedup (github.com/ChenghaoMou/text-dedup), on one core.

Run by scripts/bench_dedup_peers.py with the peer venv's python (text-dedup is not a project
dependency), so it imports nothing from this repository. Calls the tool's own click CLI
(`python -m text_dedup.minhash`) in-process, so the timing covers exactly its pipeline: load the
JSONL into a Hugging Face dataset, fingerprint, LSH buckets + union-find, filter, save. Prints one
JSON line on stdout; library logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="JSONL with 'id' and 'text'")
    parser.add_argument("--workdir", type=Path, required=True, help="empty folder for this run")
    parser.add_argument("--hash-func", default="xxh3", choices=["sha1", "xxh3"])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, so the figure is per core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    stdout = os.dup(1)
    os.dup2(2, 1)  # rich logs and progress bars go to stderr; stdout carries only the result

    import text_dedup.minhash as td
    from datasets import load_from_disk
    from text_dedup.utils.timer import Timer

    timer = Timer()
    td.Timer = lambda: timer  # keep the tool's own phase times (it builds its Timer inside main)
    work = args.workdir
    argv = [
        *("--path", "json", "--data_files", str(args.input), "--split", "train"),
        *("--cache_dir", str(work / "cache"), "--output", str(work / "out"), "--num_proc", "1"),
        *("--column", "text", "--ngram", "5", "--num_perm", "112", "--threshold", "0.8"),
        # FineWeb's 14 x 8 bands (its own optimal_param would pick them from threshold and num_perm)
        *("--b", "14", "--r", "8"),
        # 0: no length filter, so every removal is a dedup decision (the default 5 drops short docs)
        *("--min_length", "0", "--hash_func", args.hash_func),
    ]
    start = time.perf_counter()
    td.main.main(args=argv, standalone_mode=False)
    seconds = time.perf_counter() - start

    kept = set(load_from_disk(str(work / "out"))["id"])
    with args.input.open(encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f]
    removed = [i for i in ids if i not in kept]
    result = {
        "version": version("text-dedup"),
        "seconds": seconds,
        "phases": {k.lower(): v for k, v in timer.elapsed_times.items() if k != "Total"},
        "docs_in": len(ids),
        "docs_removed": len(removed),
        "removed_ids": removed,
    }
    os.dup2(stdout, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
