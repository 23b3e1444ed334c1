"""The validation gates (jobs/validate/): each suite passes on good data and fails on planted bad
data naming the expectation; a gate in fail mode stops the commit, in warn mode commits and records;
the Data Docs list every expectation with its observed value; `lmforge validate` on a committed run.
Real GX throughout, real Spark for the stage runs; nothing is mocked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import REPO_ROOT, load_config
from core.datasets import Manifest
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA, make_document
from jobs.validate.gates import GateFailed, summary, validate


def _doc(i: int, stage: str, **extra: Any) -> dict[str, Any]:
    ann = {"dedup.text_sha256": f"h{i}", "copyright.class": "permissive", **extra.pop("annotations", {})}
    fields = {"language": "en", "domain": f"d{i % 4}.example", "annotations": ann, **extra}
    return make_document("web", f"https://d{i % 4}.example/{i}", f"document number {i} " * 5, **fields)


def _reject(doc: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    return {**doc, "reject_stage": stage, "reject_reason": reason}


def write_stage(
    folder: Path, kept: list[dict], rejected: list[dict], schema: pa.Schema = DOCUMENT_SCHEMA
) -> Path:
    for part, rows, sch in (("data", kept, schema), ("rejected", rejected, REJECTED_SCHEMA)):
        (folder / part).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=sch), folder / part / "part-00000.parquet")
    return folder


def _inputs(stage: str, rows: int) -> dict[str, Manifest]:
    from core.registry import STAGES

    ins = STAGES[stage].inputs
    return {
        i: Manifest("t", i, "0" * 64, {}, {}, rows={"data": rows if n == 0 else 0}) for n, i in enumerate(ins)
    }


REASONS = {
    "extract": "extract_no_text",
    "dedup": "exact_duplicate",
    "quality": "gopher_min_words:12",
    "copyright": "copyright_license:nc_nd",
    "near_dedup": "minhash_duplicate",
}


def good(stage: str, n: int = 12) -> tuple[list[dict], list[dict]]:
    docs = [_doc(i, stage) for i in range(n)]
    return docs[:-2], [_reject(d, stage, REASONS[stage]) for d in docs[-2:]]


def run_gate(
    tmp_path: Path, stage: str, kept: list, rejected: list, inputs: int | None = None, **validation: Any
) -> dict:
    folder = write_stage(tmp_path / stage, kept, rejected)
    cfg = load_config("local", {"validation": validation})
    rows = len(kept) + len(rejected) if inputs is None else inputs
    return validate(stage, cfg, folder, _inputs(stage, rows), tmp_path / "docs" / stage)


@pytest.mark.parametrize("stage", list(REASONS))
def test_each_suite_passes_on_good_data(tmp_path: Path, stage: str) -> None:
    record = run_gate(tmp_path, stage, *good(stage))
    assert record["success"], summary(stage, record)
    assert record["suites"] == [f"{stage}.schema", f"{stage}.data", f"{stage}.rejected"]


def _failed(record: dict) -> set[tuple[str, str, str | None]]:
    return {(f["suite"], f["expectation"], f["kwargs"].get("column")) for f in record["failed"]}


def _dup_ids(kept: list, rejected: list) -> tuple[list, list]:
    return [
        *kept,
        {**kept[0], "text": "another text", "annotations": {"dedup.text_sha256": "other"}},
    ], rejected


def _set(column: str, value: Any, index: int | None = None):  # type: ignore[no-untyped-def]
    def plant(kept: list, rejected: list) -> tuple[list, list]:
        rows = [{**d, column: value} if index in (None, i) else d for i, d in enumerate(kept)]
        return rows, rejected

    return plant


def _annotate(key: str, value: str, count: int):  # type: ignore[no-untyped-def]
    def plant(kept: list, rejected: list) -> tuple[list, list]:
        return [
            {**d, "annotations": {**d["annotations"], key: value}} if i < count else d
            for i, d in enumerate(kept)
        ], rejected

    return plant


def _reason(reason: str):  # type: ignore[no-untyped-def]
    return lambda kept, rejected: (kept, [{**r, "reject_reason": reason} for r in rejected])


def _restage(stage: str):  # type: ignore[no-untyped-def]
    return lambda kept, rejected: (kept, [{**r, "reject_stage": stage} for r in rejected])


UNIQUE, BETWEEN, IN_SET = (
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
)
REGEX, NOT_NULL = "expect_column_values_to_match_regex", "expect_column_values_to_not_be_null"
PLANTED = [
    ("dedup", _dup_ids, {}, ("dedup.data", UNIQUE, "id")),
    ("dedup", _annotate("dedup.text_sha256", "same", 3), {}, ("dedup.data", UNIQUE, "text_sha256")),
    ("extract", _set("text", ""), {}, ("extract.data", BETWEEN, "text_chars")),
    ("extract", _set("text", "x" * 50), {"max_text_chars": 20}, ("extract.data", BETWEEN, "text_chars")),
    ("quality", _set("source_type", "blog", 0), {}, ("quality.data", IN_SET, "source_type")),
    ("quality", _set("id", "not-a-hash", 0), {}, ("quality.data", REGEX, "id")),
    ("quality", _set("language", None), {}, ("quality.data", NOT_NULL, "language")),
    (
        "quality", _set("language", "de"), {"min_language_shares": {"en": 0.5}},
        ("quality.data", IN_SET, "language"),
    ),
    (
        "quality", _set("domain", "one.example"), {"max_domain_share": 0.5},
        ("quality.data", "expect_column_max_to_be_between", "domain_share"),
    ),
    ("copyright", _annotate("copyright.class", "odd", 1), {}, ("copyright.data", IN_SET, "license_class")),
    (
        "copyright", _annotate("copyright.class", "unknown", 6), {"max_unknown_license_share": 0.2},
        ("copyright.data", "expect_column_values_to_not_be_in_set", "license_class"),
    ),
    ("dedup", _reason("Exact Duplicate"), {}, ("dedup.rejected", REGEX, "reject_reason")),
    ("near_dedup", _reason("gopher_min_words:3"), {}, ("near_dedup.rejected", REGEX, "reject_reason")),
    ("quality", _restage("dedup"), {}, ("quality.rejected", IN_SET, "reject_stage")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "plant", "validation", "expected"),
    PLANTED,
    ids=[f"{p[0]}-{p[3][2]}-{i}" for i, p in enumerate(PLANTED)],
)
def test_planted_bad_data_fails_naming_the_expectation(
    tmp_path: Path, stage, plant, validation, expected
) -> None:  # type: ignore[no-untyped-def]
    kept, rejected = plant(*good(stage))
    record = run_gate(tmp_path, stage, kept, rejected, inputs=len(kept) + len(rejected), **validation)
    assert not record["success"]
    assert expected in _failed(record), summary(stage, record)
    text = summary(stage, record)
    assert f"{expected[0]}: {expected[1]}(column='{expected[2]}'" in text and "observed" in text


def test_duplicated_ids_name_the_sample_rows(tmp_path: Path) -> None:
    kept, rejected = _dup_ids(*good("dedup"))
    record = run_gate(tmp_path, "dedup", kept, rejected, inputs=len(kept) + len(rejected))
    (failure,) = [f for f in record["failed"] if f["kwargs"].get("column") == "id"]
    assert failure["sample_ids"] == [kept[0]["id"], kept[0]["id"]]
    assert "2 of 11 rows unexpected" in failure["observed"]


def test_row_counts_must_match_the_inputs(tmp_path: Path) -> None:
    kept, rejected = good("dedup")
    record = run_gate(tmp_path, "dedup", kept, rejected, inputs=len(kept) + len(rejected) + 1)
    (failure,) = record["failed"]
    assert (failure["expectation"], failure["kwargs"]["value"], failure["observed"]) == (
        "expect_table_row_count_to_equal",
        len(kept) + 1,
        len(kept),
    )


def test_schema_suite_names_a_missing_or_retyped_column(tmp_path: Path) -> None:
    schema = DOCUMENT_SCHEMA.remove(DOCUMENT_SCHEMA.get_field_index("license")).set(
        DOCUMENT_SCHEMA.get_field_index("created_at") - 1, pa.field("created_at", pa.string())
    )
    kept, rejected = good("dedup")
    kept = [{k: v for k, v in d.items() if k != "license"} | {"created_at": None} for d in kept]
    folder = write_stage(tmp_path / "dedup", kept, rejected, schema)
    record = validate("dedup", load_config("local"), folder, _inputs("dedup", 12), None)
    (failure,) = [f for f in record["failed"] if f["suite"] == "dedup.schema"]
    assert failure["expectation"] == "expect_column_distinct_values_to_equal_set"
    assert failure["observed"].startswith("unexpected ['data.created_at:string'], missing [")
    assert (
        "'data.created_at:timestamp'" in failure["observed"]
        and "'data.license:string'" in failure["observed"]
    )


def write_shards(folder: Path, tokens: dict[str, list[int]], meta: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True)
    for split, ids in tokens.items():
        np.asarray(ids, dtype=np.uint16).tofile(folder / f"{split}-00000.bin")
    base = {"vocab_size": 512, "train_files": ["train-00000.bin"], "val_files": ["val-00000.bin"]}
    base |= {"train_tokens": len(tokens["train"]), "val_tokens": len(tokens["val"])}
    (folder / "meta.json").write_text(json.dumps(base | (meta or {})))
    return folder


@pytest.mark.parametrize(
    ("tokens", "meta", "expectation"),
    [
        ({"train": [5, 6, 0], "val": [7, 0]}, {}, None),
        ({"train": [5, 6, 0], "val": [7, 0]}, {"train_tokens": 4}, "expect_column_pair_values_to_be_equal"),
        (
            {"train": [5, 6, 0], "val": [7, 0]},
            {"val_files": ["val-00009.bin"]},
            "expect_column_values_to_be_between",
        ),
        ({"train": [5, 600, 0], "val": [7, 0]}, {}, "expect_column_pair_values_a_to_be_greater_than_b"),
        ({"train": [], "val": []}, {}, "expect_column_sum_to_be_between"),
    ],
)
def test_shards_suite_checks_token_counts_and_files(tmp_path: Path, tokens, meta, expectation) -> None:  # type: ignore[no-untyped-def]
    folder = write_shards(tmp_path / "shards", tokens, meta)
    record = validate("shards", load_config("local"), folder, {}, None)
    assert record["success"] is (expectation is None), summary("shards", record)
    if expectation:
        assert expectation in {f["expectation"] for f in record["failed"]}


# ---- real stages on Spark: the gate inside run_stage ---------------------------------------------


def _social(root: Path, name: str, texts: list[str]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": f"p{i}", "author": "a", "text": t}) for i, t in enumerate(texts)]
    (folder / "posts.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "posts.jsonl"


PAGE = "<html><head><title>{0}</title></head><body><article><h1>{0}</h1><p>{1}</p>{2}</article></body></html>"


def tiny_site(root: Path) -> Path:
    """Two linked pages: the crawl needs a seed (without one it writes no data/ part to extract)."""
    root.mkdir(parents=True)
    body = "The gate reads what each stage wrote before it is committed, and stops the run when it must. "
    (root / "index.html").write_text(PAGE.format("Gates", body * 4, '<a href="next.html">next</a>'))
    (root / "next.html").write_text(PAGE.format("Next", body * 3 + "A second page.", ""))
    return root


def _cfg(root: Path, social: list[Path], validation: dict | None = None, seed: str | None = None) -> Any:
    return load_config(
        "local",
        {
            "storage": {"root": str(root)},
            "crawl": {"seeds": [seed] if seed else []},
            "spark": {"shuffle_partitions": 2},
            "sources": {
                "include": ["social", "synthetic"],
                "social_paths": [str(p) for p in social],
                "synthetic_count": 20,
            },
            "validation": validation or {},
        },
    )


POSTS = [f"Post {i}: the river runs past the mill and the hills beyond it, {i} times." for i in range(8)]


@pytest.fixture(scope="module")
def committed(spark, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:  # type: ignore[no-untyped-def]
    from demo.site import serve_directory
    from jobs.spark.runner import run_stage

    root = tmp_path_factory.mktemp("validated")
    with serve_directory(tiny_site(root / "site")) as site:
        cfg = _cfg(root, [_social(root / "src", "a", POSTS + POSTS[:2])], seed=site.base_url)
        for name in ("crawl", "ingest", "warc", "extract", "dedup"):
            run_stage(name, cfg, "v", spark)
    return root, cfg


def _manifest(root: Path, stage: str) -> dict[str, Any]:
    return json.loads((root / "runs/v" / stage / "_MANIFEST.json").read_text())


def test_gates_pass_on_real_stages_and_are_recorded(committed) -> None:  # type: ignore[no-untyped-def]
    root, _ = committed
    for stage in ("crawl", "ingest", "warc", "extract", "dedup"):
        manifest = _manifest(root, stage)
        record = manifest["stats"]["validation"]
        assert record["success"] and record["mode"] == "fail" and record["failed"] == [], (stage, record)
        assert record["data_docs"] == "validation/index.html" and record["seconds"] > 0
        assert "validation/index.html" in {f["path"] for f in manifest["files"]}
    assert _manifest(root, "dedup")["rows"] == {"data": 30, "rejected": 2}  # the two repeated posts


def _page_text(path: Path) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", "", path.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


# How GX 1.24's Data Docs word each expectation on a validation page.
PROSE = {
    "expect_column_values_to_not_be_null": "values must never be null",
    "expect_column_values_to_be_unique": "values must be unique",
    "expect_column_values_to_match_regex": "values must match this regular expression",
    "expect_column_values_to_be_in_set": "values must belong to this set",
    "expect_column_values_to_be_between": "values must be greater than or equal to",
    "expect_table_row_count_to_equal": "Must have exactly",
    "expect_column_distinct_values_to_equal_set": "distinct values must match this set",
}


def test_data_docs_list_every_expectation_with_its_observed_value(committed) -> None:  # type: ignore[no-untyped-def]
    from jobs.validate.gates import plan_suites

    root, cfg = committed
    folder = root / "runs/v/dedup"
    index = (folder / "validation/index.html").read_text()
    planned, _ = plan_suites("dedup", cfg, folder, 32)
    for suite, _frame in planned:
        (page,) = (folder / "validation/validations").glob(f"{suite.name.replace('.', '/')}/**/*.html")
        assert page.relative_to(folder / "validation").as_posix() in index
        text = _page_text(page)
        assert f"Expectation Suite: {suite.name}" in text and "Observed Value" in text
        assert f"Evaluated Expectations {len(suite.expectations)}" in text
        for expectation in suite.expectations:
            assert PROSE[expectation.expectation_type] in text, (suite.name, expectation.expectation_type)
    data = _page_text(next((folder / "validation/validations/dedup/data").glob("**/*.html")))
    assert "Must have exactly 30 rows. 30" in data  # the observed value beside the expectation
    assert "0% unexpected" in data


def test_fail_mode_stops_the_commit_and_warn_mode_commits_and_records(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.runner import run_stage

    social = [_social(tmp_path / "src", "x", [f"post {i} about the weather today" for i in range(8)])]
    short = {"stages": {"ingest": {"max_text_chars": 20}}}  # every post is longer
    with pytest.raises(GateFailed) as err:
        run_stage("ingest", _cfg(tmp_path, social, short), "f", spark)
    assert "ingest.data: expect_column_values_to_be_between(column='text_chars'" in str(err.value)
    assert "sample ids: " in str(err.value)
    assert not (tmp_path / "runs/f/ingest/_MANIFEST.json").exists()

    warn = {"stages": {"ingest": {"max_text_chars": 20, "mode": "warn"}}}
    manifest, _ = run_stage("ingest", _cfg(tmp_path, social, warn), "w", spark)
    record = manifest.stats["validation"]
    assert record["mode"] == "warn" and record["success"] is False
    assert [(f["suite"], f["expectation"]) for f in record["failed"]] == [
        ("ingest.data", "expect_column_values_to_be_between")
    ]
    assert len(record["failed"][0]["sample_ids"]) == 5  # validation.sample_rows

    manifest, _ = run_stage("ingest", _cfg(tmp_path, social, {**short, "mode": "off"}), "o", spark)
    assert "validation" not in manifest.stats


def _lmforge(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = root / "deployment.json"
    config.write_text(json.dumps({"storage": {"root": str(root)}}))
    env = {**os.environ, "LMFORGE_CONFIG": str(config)}
    return subprocess.run(
        [sys.executable, "-m", "lmforge", "validate", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def test_lmforge_validate_on_a_committed_run(committed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _ = committed
    done = _lmforge(root, "v", "--docs", str(tmp_path / "docs"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["stage"] for r in lines] == ["crawl", "ingest", "warc", "extract", "dedup"]
    assert all(r["success"] for r in lines) and (tmp_path / "docs/dedup/index.html").exists()

    strict = json.dumps({"validation": {"stages": {"dedup": {"max_text_chars": 10}}}})
    done = _lmforge(root, "v", "--stage", "dedup", "--overrides", strict, "--docs", str(tmp_path / "strict"))
    assert done.returncode == 1
    assert "dedup.data: expect_column_values_to_be_between(column='text_chars'" in done.stderr
    assert json.loads(done.stdout)["failed"][0]["expectation"] == "expect_column_values_to_be_between"
