"""The data report (jobs/data_report.py) of a small run committed with the real `commit`: every section
with its numbers, valid PNG charts, HTML references that resolve, and a run missing optional stages.

The run: ingest drops an empty code file; dedup drops an exact social duplicate; quality scores books and
one social post and drops a book by rule (its score kept); copyright reports decisions per source and
class; near_dedup drops a social near-duplicate; shards report a mixture; two stages report data checks.
Texts are word lists, so whitespace-word lengths are checked by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.datasets import commit
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA, make_document
from core.storage import LocalStorage
from jobs.data_report import write_report
from jobs.report import render_summary, summarise, write_summary
from jobs.report_doc import Cell, Section, Table, to_html, to_markdown
from jobs.report_sections import mixture_rows
from jobs.report_stats import length_bin, length_edges

RUN = "r1"
PNG = b"\x89PNG\r\n\x1a\n"


def doc(source: str, name: str, words: int, score: float | None = None, **fields: Any) -> dict[str, Any]:
    ann = {} if score is None else {"quality.score": str(score)}
    return make_document(
        source, name, " ".join(f"{name}w{i}" for i in range(words)), annotations=ann, **fields
    )


B1, B2 = doc("book", "b1", 300, 0.9, language="en"), doc("book", "b2", 5, 0.15, language="en")
S1, S2, S3 = doc("social", "s1", 12, 0.55, language="en"), doc("social", "s2", 8), doc("social", "s3", 8)
W1 = doc("web", "w1", 40, 0.7, language="de")
C0 = doc("code", "c0", 0)

MIXTURE: dict[str, Any] = {
    "weights": {"book": 2.0, "social": 1.0, "web": 1.0},
    "natural_tokens": {"book": 1000, "social": 12, "web": 40},
    "target_tokens": {"book": 2000, "social": 12, "web": 40},
    "realised_tokens": {"book": 1900, "social": 12, "web": 40},
    "target_share": {"book": 0.9505, "social": 0.0057, "web": 0.019},
    "realised_share": {"book": 0.9479, "social": 0.006, "web": 0.02},
    "epochs": {"book": 2.0, "social": 1.0, "web": 1.0},
    "max_repeats": 4.0,
    "capped": ["book"],  # as jobs/tokens/mixture.py writes it: the sources a cap kept below target
}
QUALITY_CHECK = {  # the record jobs/validate/gates.py keeps
    "suites": ["quality_schema", "quality_data"], "success": False, "mode": "warn", "expectations": 5,
    "failed": [{"suite": "quality_data", "expectation": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "language"}, "observed": 1, "sample_ids": ["s2"]}],
    "sampled": False, "data_docs": "validation/index.html", "seconds": 0.5,
}  # fmt: skip
SHARDS_CHECK = {"suite": "shards_out", "success": True, "mode": "enforce", "expectations": 3, "failed": []}
COPYRIGHT = {
    "decisions": {
        "book": {"permissive": {"keep": 1}},
        "social": {"unknown": {"keep": 2}},
        "web": {"proprietary": {"flag": 1}, "nc_nd": {"drop": 1}},
    },
    "by_class": {},
    "flags": {"proprietary": 1},
    "optouts": {"copyright_optout_noai": 2},
    "overlap_hits": 0,
    "protected_index": {},
}
NEAR_DEDUP = {
    "bands": 20, "rows": 5, "hit_probability_at_threshold": 0.5, "candidate_pairs": 2, "verified_pairs": 1,
    "clusters": 1,
    "report": {"duplicate_rate_by_source": {"book": 0.0, "social": 0.5, "web": 0.0},
               "cluster_size_histogram": {"2": 1}},
}  # fmt: skip


def rejected(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    return {**row, "reject_stage": stage, "reject_reason": reason}


def put(
    storage: LocalStorage,
    tmp: Path,
    stage: str,
    data: list[dict[str, Any]],
    rej: list[dict[str, Any]],
    stats: dict[str, Any] | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """Commit `data/` and `rejected/` parquet parts (and `extra` files) as the stage's dataset."""
    folder = tmp / "work" / stage
    for part, rows, schema in (("data", data, DOCUMENT_SCHEMA), ("rejected", rej, REJECTED_SCHEMA)):
        (folder / part).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / part / "part-0.parquet")
    for rel, text in (extra or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    commit(storage, RUN, stage, folder, config={}, inputs={}, stats=stats)


def build_run(tmp: Path) -> LocalStorage:
    storage = LocalStorage(str(tmp / "store"))
    put(storage, tmp, "ingest", [B1, B2, S1, S2, S3], [rejected(C0, "ingest", "ingest_empty_file")])
    put(storage, tmp, "extract", [B1, B2, S1, S2, S3, W1], [])
    put(storage, tmp, "dedup", [B1, B2, S1, S2, W1], [rejected(S3, "dedup", "exact_duplicate")])
    quality_stats = {"validation": QUALITY_CHECK}
    put(storage, tmp, "quality", [B1, S1, S2, W1], [rejected(B2, "quality", "gopher_min_words:5")],
        quality_stats, {"validation/index.html": "<html>data docs</html>"})  # fmt: skip
    put(storage, tmp, "copyright", [B1, S1, S2, W1], [], COPYRIGHT)
    put(storage, tmp, "safety", [B1, S1, S2, W1], [])
    put(
        storage,
        tmp,
        "near_dedup",
        [B1, S1, W1],
        [rejected(S2, "near_dedup", "minhash_duplicate")],
        NEAR_DEDUP,
    )
    put(storage, tmp, "decontaminate", [B1, S1, W1], [])
    shards = {"vocab_size": 512, "train_tokens": 1952, "val_tokens": 100, "train_documents": 3,
              "val_documents": 1, "mixture": MIXTURE, "validation": SHARDS_CHECK}  # fmt: skip
    commit(storage, RUN, "shards", _empty(tmp / "work" / "shards"), config={}, inputs={}, stats=shards)
    return storage


def _empty(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    return folder


def report_of(storage: LocalStorage) -> tuple[dict[str, Any], str]:
    summary, reader = summarise(storage, RUN)
    entry = write_report(storage, summary, reader)
    return entry, Path(entry["markdown"]).read_text()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """The full run's report, built once for the tests that only read it."""
    return report_of(build_run(tmp_path_factory.mktemp("full")))


def section(markdown: str, title: str) -> str:
    """The text of `## title` up to the next `## `."""
    start = markdown.index(f"\n## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else None]


def test_sections_follow_the_pipeline(full: tuple[dict[str, Any], str]) -> None:
    md = full[1]
    titles = re.findall(r"^## (.+)$", md, flags=re.M)
    assert titles == [
        "Run", "Funnel", "Exact deduplication", "Quality score", "Copyright: licence classes and decisions",
        "Safety: PII and toxicity", "Near deduplication", "Benchmark decontamination",
        "What the tokenizer reads: lengths and languages", "Token shards and mixture", "Data checks",
    ]  # fmt: skip


def test_funnel_per_stage_source_and_rule(full: tuple[dict[str, Any], str]) -> None:
    text = section(full[1], "Funnel")
    assert "| quality | 5 | 4 | 1 | 365 | 360 | 5 |" in text  # documents and words in/out/removed
    assert "| dedup | social | 3 | 2 | 1 | 28 | 20 | 8 |" in text
    assert "| quality | gopher_min_words | book | 1 | 5 |" in text
    assert "| ingest | ingest_empty_file | code | 1 | 0 |" in text
    assert "![Funnel](funnel.png)" in text and "![Removed per rule](funnel_rules.png)" in text


def test_dedup_quality_and_copyright_numbers(full: tuple[dict[str, Any], str]) -> None:
    md = full[1]
    assert "| social | 3 | 1 | 33.3% | 8 |" in section(md, "Exact deduplication")
    quality = section(md, "Quality score")
    assert "| book | 2 | 0 | 0.15 | 0.525 | 0.9 |" in quality  # the removed book's score counts too
    assert "| social | 1 | 1 | 0.55 | 0.55 | 0.55 |" in quality  # s2 has no score
    copyright = section(md, "Copyright: licence classes and decisions")
    assert "| web | nc_nd | 0 | 0 | 0 | 1 | 1 |" in copyright
    assert "| social | unknown | 2 | 0 | 0 | 0 | 2 |" in copyright
    assert "Opt-outs and blocklists: copyright_optout_noai: 2." in copyright
    near = section(md, "Near deduplication")
    assert "20 bands x 5 rows, 1 verified pairs, 1 clusters" in near
    assert "| social | 33.3% | 50.0% |" in near and "| book | 0.0% | 0.0% |" in near
    assert "| 2 | 1 |" in near  # one cluster of two


def test_lengths_languages_and_mixture(full: tuple[dict[str, Any], str]) -> None:
    md = full[1]
    final = section(md, "What the tokenizer reads: lengths and languages")
    low, high = length_edges(length_bin(300))
    assert f"| book | 1 | 300 | 300 | 300 | {low:.0f}-{high:.0f} |" in final
    assert "| web | 1 | 40 | 40 | 40 | 32-45 |" in final  # [2**5, 2**5.5)
    assert "| web | de | 1 | 100.0% | 40 |" in final
    shards = section(md, "Token shards and mixture")
    assert "| train | 1,952 | 3 |" in shards
    assert "at most 4.0 epochs per document" in shards
    assert "| book | 2 | 1,000 | 2,000 | 1,900 | 95.0% | 94.8% | 2 | yes |" in shards
    assert "| web | 1 | 40 | 40 | 40 | 1.9% | 2.0% | 1 | no |" in shards
    checks = section(md, "Data checks")
    assert (
        "| quality | quality_schema, quality_data | warn | FAILED | 5 | expect_column_values_to_not_be_null "
        "(language) | [data docs](../quality/validation/index.html) |"
    ) in checks
    assert "| shards | shards_out | enforce | passed | 3 | - | - |" in checks


CHARTS = {
    "funnel",
    "funnel_rules",
    "quality_scores",
    "licences",
    "dedup_rates",
    "lengths",
    "languages",
    "mixture",
}


def test_charts_are_real_pngs_and_html_references_resolve(full: tuple[dict[str, Any], str]) -> None:
    entry = full[0]
    assert set(entry["charts"]) == CHARTS
    for uri in entry["charts"].values():
        data = Path(uri).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
    html_path = Path(entry["html"])
    html = html_path.read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {r for r in refs if r.endswith(".png")} == {f"{c}.png" for c in CHARTS}
    assert "../quality/validation/index.html" in refs
    for ref in refs:
        assert (html_path.parent / ref).resolve().is_file(), ref
    assert "<td>33.3%</td>" in html and "<h2>Data checks</h2>" in html


def test_a_run_missing_optional_stages_still_renders(tmp_path: Path) -> None:
    """Only ingest, quality without scores and shards without a mixture: the sections say so."""
    storage = LocalStorage(str(tmp_path / "store"))
    put(storage, tmp_path, "ingest", [B1, S2], [])
    unscored = {**B1, "annotations": {}}
    put(storage, tmp_path, "quality", [unscored], [], {"validation": "not a dict"})
    commit(storage, RUN, "shards", _empty(tmp_path / "work" / "shards"), config={}, inputs={}, stats={})
    entry, md = report_of(storage)
    assert "No document carries `quality.score`" in section(md, "Quality score")
    assert "No mixture reported" in section(md, "Token shards and mixture")
    assert "No stage reported a data check" in section(md, "Data checks")
    assert "## Copyright" not in md and "## Near deduplication" not in md
    assert set(entry["charts"]) == {"funnel", "funnel_rules"}


def test_an_empty_run_still_reports(tmp_path: Path) -> None:
    entry, md = report_of(LocalStorage(str(tmp_path / "store")))
    assert "## Funnel" in md and Path(entry["html"]).is_file()


@pytest.mark.parametrize(
    "mix",
    [
        MIXTURE,
        {s: {k: v[s] for k, v in MIXTURE.items() if isinstance(v, dict)} for s in ("book", "social", "web")},
    ],
)
def test_mixture_is_read_in_either_shape(mix: dict[str, Any]) -> None:
    rows = mixture_rows(mix)
    assert list(rows) == ["book", "social", "web"]
    assert rows["book"]["realised_tokens"] == 1900 and rows["web"]["epochs"] == 1.0  # rows per source too


def test_mixture_capped_as_a_list_and_junk() -> None:
    rows = mixture_rows({"target_tokens": {"book": 5, "web": 3}, "capped": ["book"]})
    assert rows == {
        "book": {"target_tokens": 5, "capped": True},
        "web": {"target_tokens": 3, "capped": False},
    }
    assert mixture_rows(None) == {} and mixture_rows([1, 2]) == {}


def test_a_data_docs_path_leaving_the_stage_is_shown_not_linked(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "store"))
    put(storage, tmp_path, "ingest", [B1], [], {"validation": {**QUALITY_CHECK, "data_docs": "/etc/x"}})
    md = report_of(storage)[1]
    assert "| /etc/x |" in section(md, "Data checks") and "](../" not in md


def test_write_summary_lists_the_report_and_render_prints_its_path(tmp_path: Path) -> None:
    build_run(tmp_path)
    uri = write_summary(RUN, None, json.dumps({"storage": {"root": str(tmp_path / "store")}}))
    summary = json.loads(Path(uri).read_text())
    report = summary["report"]
    assert Path(report["html"]) == Path(uri).parent / "report" / "index.html"
    assert Path(report["markdown"]).is_file() and set(report["charts"]) == CHARTS
    assert summary["mixture"] == MIXTURE
    assert summary["validation"] == {"quality": QUALITY_CHECK, "shards": SHARDS_CHECK}
    assert summary["distributions"]["length"]["book"]["max"] == 300
    assert f"Data report: {report['html']}" in render_summary(summary)


def test_cells_are_escaped_in_both_views() -> None:
    rows: list[list[Cell]] = [["x|y\nz", 1234], ["<b>", 0.123456], ["big", 10031.7]]
    parts = [Section("S", [Table(["a", "b"], rows), "t<i>", Table(["empty"], [])])]
    md = to_markdown("T", parts)
    assert "| x\\|y z | 1,234 |" in md and "| <b> | 0.1235 |" in md and "| big | 10,032 |" in md
    assert md.endswith("\n\n(none)\n")
    html = to_html("T", parts)
    assert "<td>&lt;b&gt;</td>" in html and "<p>t&lt;i&gt;</p>" in html
