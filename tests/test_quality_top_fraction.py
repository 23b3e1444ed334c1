"""`quality.classifier_top_fraction`: per source, the best-scored share of the rules' survivors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.schema import REJECTED_SCHEMA, make_document
from jobs.filters.quality import top_fraction_keep


@pytest.mark.parametrize(
    ("n", "fraction", "keep"), [(10, 0.1, 1), (10, 0.25, 3), (3, 0.5, 2), (1, 0.01, 1), (4, 1.0, 4)]
)
def test_the_kept_count_rounds_up(n: int, fraction: float, keep: int) -> None:
    assert top_fraction_keep(n, fraction) == keep


def test_spark_pass_keeps_the_best_share_of_each_source(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.quality import keep_top_fraction

    rows = []
    for source, scores in (("web", [0.9, 0.1, 0.5, 0.7]), ("book", [0.2, 0.3])):
        for i, score in enumerate(scores):
            row = make_document(source, f"{source}/{i}", "text", annotations={"quality.score": str(score)})
            rows.append({**row, "reject_stage": None, "reject_reason": None})
    rejected = make_document("web", "web/rejected", "x", annotations={"quality.score": "0.99"})
    rows.append({**rejected, "reject_stage": "quality", "reject_reason": "gopher_min_words:1"})
    unscored = make_document("web", "web/unscored", "y")
    rows.append({**unscored, "reject_stage": None, "reject_reason": None})
    pq.write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA), tmp_path / "rows.parquet")
    df = spark.read.parquet(str(tmp_path / "rows.parquet"))
    out = {r["origin"]: r["reject_reason"] for r in keep_top_fraction(df, 0.5).collect()}
    assert out == {
        "web/0": None,  # 0.9 and 0.7: the best half of the 4 scored web survivors
        "web/3": None,
        "web/2": "classifier_top_fraction:0.500",
        "web/1": "classifier_top_fraction:0.100",
        "book/1": None,  # 0.3: ceil(2 * 0.5) = 1
        "book/0": "classifier_top_fraction:0.200",
        "web/rejected": "gopher_min_words:1",  # the rules' reject stands, and is not ranked
        "web/unscored": None,  # no score: the rules' decision stands
    }
