"""The WARC stage's Spark driver: one task per file, each streaming its records to Parquet.

Files are independent, so they are spread across executors; each task writes its own
`data/` and `rejected/` part files and returns only its counters (bad records with offsets).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from core.config import WarcConfig

WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")
BATCH_ROWS = 1000


def expand_paths(paths: list[str]) -> list[str]:
    """Files as given, folders expanded to their WARC/WET/ARC files; a missing path is an error."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.is_file() and p.name.endswith(WARC_SUFFIXES))
        elif path.is_file():
            out.append(str(path))
        else:
            raise FileNotFoundError(f"config field 'warc.paths': {raw!r} does not exist")
    return sorted(set(out))


class _PartWriter:
    """Streams rows into one Parquet file, created on first write (no empty files)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema, self.rows = path, schema, []  # type: ignore[var-annotated]
        self.writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows = []

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


def ingest_file(
    path: str, out_dir: str, source_label: str | None, limits: WarcConfig | None = None
) -> dict[str, Any]:
    """Runs on an executor: one WARC file to part files; returns its WarcStats as a dict. `limits`:
    the parser bounds (`WarcConfig`'s defaults when None)."""
    from jobs.readers.warc import WarcStats, iter_warc

    name = f"warc-{hashlib.sha256(path.encode()).hexdigest()[:12]}.parquet"
    kept = _PartWriter(Path(out_dir, "data", name), DOCUMENT_SCHEMA)
    rejected = _PartWriter(Path(out_dir, "rejected", name), REJECTED_SCHEMA)
    stats = WarcStats(file=path)
    try:
        for doc, reason in iter_warc(Path(path), source_label=source_label, stats=stats, limits=limits):
            if reason:
                rejected.add({**doc, "reject_stage": "warc", "reject_reason": reason})
            else:
                kept.add(doc)
    finally:
        kept.close()
        rejected.close()
    return asdict(stats)


def ingest_warcs(
    spark: SparkSession,
    paths: list[str],
    out: Path,
    source_label: str | None,
    limits: WarcConfig | None = None,
) -> dict[str, Any]:
    files = expand_paths(paths)
    for part, schema in (("data", DOCUMENT_SCHEMA), ("rejected", REJECTED_SCHEMA)):
        (out / part).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([], schema=schema), out / part / "empty.parquet")  # schema anchor
    per_file: list[dict[str, Any]] = []
    if files:
        target = str(out)
        rdd = spark.sparkContext.parallelize(files, len(files))
        per_file = rdd.map(lambda f: ingest_file(f, target, source_label, limits)).collect()
    return summarise(per_file)


def summarise(per_file: list[dict[str, Any]]) -> dict[str, Any]:
    rejected: dict[str, int] = {}
    for f in per_file:
        for reason, n in f["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    return {
        "files": len(per_file),
        "records": sum(f["records"] for f in per_file),
        "documents": sum(f["documents"] for f in per_file),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "bad_records": [{"file": f["file"], **b} for f in per_file for b in f["bad"]],
    }
