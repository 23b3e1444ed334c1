"""One timed run of datatrove's MinHash dedup with FineWeb's settings, on one core.

Run by scripts/bench_dedup_peers.py with the peer venv's python (datatrove is not a project
dependency), so it imports nothing from this repository. The stages and the 14 buckets x 8 hashes,
64-bit hash config are those of datatrove's examples/minhash_deduplication.py, the FineWeb recipe
(Penedo et al. 2024, section 3.3). Prints one JSON line on stdout; library logs go to stderr.
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
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # one core, so the figure is per core
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    stdout = os.dup(1)
    os.dup2(2, 1)  # anything the libraries print goes to stderr; stdout carries only the result

    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    work = args.workdir
    config = MinhashConfig(
        hash_config=HashConfig(precision=64), num_buckets=14, hashes_per_bucket=8, n_grams=5
    )

    def reader() -> JsonlReader:
        return JsonlReader(str(args.input.parent), glob_pattern=args.input.name, compression=None)

    def executor(pipeline: list, name: str, tasks: int = 1) -> LocalPipelineExecutor:
        # workers=1 runs the tasks one after another in this process; a fresh logging_dir per
        # run, or datatrove would skip the tasks it finds completed
        return LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name)
        )

    stages = {
        "signatures": executor(
            [reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)],
            "signatures",
        ),
        # MinhashDedupBuckets asserts world_size % num_buckets == 0: one task per bucket
        "buckets": executor(
            [
                MinhashDedupBuckets(
                    input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=config
                )
            ],
            "buckets",
            tasks=config.num_buckets,
        ),
        "clusters": executor(
            [
                MinhashDedupCluster(
                    input_folder=str(work / "buckets"), output_folder=str(work / "remove"), config=config
                )
            ],
            "clusters",
        ),
        "filter": executor(
            [
                reader(),
                MinhashDedupFilter(
                    input_folder=str(work / "remove"),
                    exclusion_writer=JsonlWriter(str(work / "removed"), compression=None),
                ),
                JsonlWriter(str(work / "kept"), compression=None),
            ],
            "filter",
        ),
    }
    phases: dict[str, float] = {}
    start = time.perf_counter()
    for name, stage in stages.items():
        t0 = time.perf_counter()
        stage.run()
        phases[name] = time.perf_counter() - t0
    seconds = time.perf_counter() - start

    def ids(folder: Path) -> list[str]:
        return [json.loads(line)["id"] for f in sorted(folder.glob("*.jsonl")) for line in f.open()]

    removed, kept = ids(work / "removed"), ids(work / "kept")
    result = {
        "version": version("datatrove"),
        "seconds": seconds,
        "phases": phases,
        "docs_in": len(removed) + len(kept),  # its reader skips documents with empty text
        "docs_removed": len(removed),
        "removed_ids": removed,
    }
    os.dup2(stdout, 1)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
