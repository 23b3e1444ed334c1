"""A crawl with no seed in scope commits empty tables, so `extract` reads an empty input instead of
failing on a missing folder (found by the end-to-end Airflow test triggering curation without seeds)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from core.config import CrawlConfig
from jobs.spark.crawl import crawl


def test_no_seeds_gives_empty_tables(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stats = crawl(spark, CrawlConfig(seeds=[]), tmp_path)
    assert stats["levels"] == 0
    for part in ("data", "fetch_log"):
        files = sorted((tmp_path / part).glob("*.parquet"))
        assert [f.name for f in files] == ["level-000.parquet"], part
        assert pq.read_table(files[0]).num_rows == 0
