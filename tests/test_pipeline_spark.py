"""The curation stages on a real SparkSession over the real (small) demo corpus and site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import REPO_ROOT, load_config
from core.datasets import read_manifest
from core.registry import dag_stages, downstream
from core.schema import DOCUMENT_SCHEMA, make_document
from core.storage import open_storage
from jobs.dedup.exact import annotate_hash
from jobs.spark.arrow_map import map_rows
from jobs.spark.dedup_exact import mark_duplicates
from jobs.spark.runner import run_stage

STAGES = [s.name for s in dag_stages("curation")]  # read off the registry, in order


def _cfg(root: Path, corpus: Path, site, **quality):  # type: ignore[no-untyped-def]
    return load_config(
        overrides={
            "storage": {"root": str(root)},
            "spark": {"shuffle_partitions": 2},
            "crawl": {"seeds": [site.base_url]},
            "sources": {"books_dir": str(corpus / "books"), "code_dir": str(corpus / "code")},
            "tokenizer": {"vocab_size": 512},
            "quality": quality,
        }
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, spark, small_corpus, site):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("store")
    cfg = _cfg(root, small_corpus, site)
    manifests = {s: run_stage(s, cfg, "t1", spark)[0] for s in STAGES}
    return cfg, root, manifests


def test_crawl_respects_robots_and_fetches_the_site(pipeline, site, small_corpus) -> None:  # type: ignore[no-untyped-def]
    _, _, ms = pipeline
    paths = [path for _, path, _ in site.requests]
    assert "/robots.txt" in paths
    assert not [p for p in paths if p.startswith("/private/")]
    # every public page once, plus the seed "/" which serves index.html again (exact dedup drops it)
    pages = len(list((small_corpus / "site").glob("*.html"))) + 1
    assert ms["crawl"].rows["data"] == pages
    assert ms["crawl"].stats["decisions"] == {"fetched": pages, "robots_disallowed": 1}
    assert ms["dedup"].stats["rejected_by_reason"].get("exact_duplicate", 0) >= 1


def test_funnel_counts_add_up(pipeline) -> None:  # type: ignore[no-untyped-def]
    _, _, ms = pipeline
    assert ms["ingest"].stats["documents_by_source"] == {"book": 6, "code": 30}
    assert ms["extract"].rows["data"] + ms["extract"].rows.get("rejected", 0) == (
        ms["crawl"].rows["data"] + ms["ingest"].rows["data"] + ms["warc"].rows["data"]
    )
    pairs = (
        ("dedup", "extract"),
        ("quality", "dedup"),
        ("copyright", "quality"),
        ("near_dedup", "copyright"),
    )
    for stage, upstream in pairs:
        assert ms[stage].rows["data"] + ms[stage].rows.get("rejected", 0) == ms[upstream].rows["data"]


def test_extracted_web_text_replaces_html(pipeline) -> None:  # type: ignore[no-untyped-def]
    _, root, _ = pipeline
    table = pq.read_table(root / "runs/t1/extract/data").to_pylist()
    web = [r for r in table if r["source_type"] == "web"]
    assert web and all(r["raw_content"] is None and r["text"] for r in web)
    json_page = next(r for r in web if r["origin"].endswith("/json.html"))
    assert "JSON (JavaScript Object Notation)" in " ".join(json_page["text"].split())


def test_shards_decode_to_curated_documents(pipeline) -> None:  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer

    _, root, ms = pipeline
    shard_dir = root / "runs/t1/shards"
    meta = json.loads((shard_dir / "meta.json").read_text())
    sizes = sum((shard_dir / f).stat().st_size for f in meta["train_files"])
    assert sizes == 2 * meta["train_tokens"] > 0
    ids = np.fromfile(shard_dir / meta["train_files"][0], dtype="<u2")
    first = ids[: int(np.argmax(ids == meta["eos_id"]))]
    text = Tokenizer.from_file(str(shard_dir / "tokenizer.json")).decode(first.tolist())
    kept = {r["text"] for r in pq.read_table(root / "runs/t1/decontaminate/data").to_pylist()}
    assert text in kept
    assert meta["train_documents"] + meta["val_documents"] == ms["decontaminate"].rows["data"]


def test_rerun_skips_and_config_change_reruns_downstream(pipeline, spark, small_corpus, site) -> None:  # type: ignore[no-untyped-def]
    cfg, root, ms = pipeline
    skipped = {s: run_stage(s, cfg, "t1", spark)[1] for s in STAGES}
    assert all(skipped.values())
    stricter = _cfg(root, small_corpus, site, min_words=3000)
    reran = {s: not run_stage(s, stricter, "t1", spark)[1] for s in STAGES}
    assert reran == {s: s in downstream(["quality"]) for s in STAGES}
    assert reran == {
        "crawl": False,
        "ingest": False,
        "warc": False,
        "extract": False,
        "dedup": False,
        "quality": True,
        "copyright": True,
        "safety": True,
        "near_dedup": True,
        "decontaminate": True,
        "diversity": True,
        "tokenizer": True,
        "shards": True,
    }
    storage = open_storage(cfg.storage)
    assert read_manifest(storage, "t1", "quality").rows["data"] < ms["quality"].rows["data"]
    # force reruns a current stage; its output is the same (stages are deterministic)
    before = read_manifest(storage, "t1", "near_dedup")
    manifest, skipped = run_stage("near_dedup", stricter, "t1", spark, force=True)
    assert not skipped and manifest.created_at > before.created_at
    assert [f["sha256"] for f in manifest.files if f["path"].startswith("data/")] == [
        f["sha256"] for f in before.files if f["path"].startswith("data/")
    ]


def test_exact_dedup_keeps_smallest_id_and_records_keeper(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [
        make_document("web", "http://a/1", "Hello   World"),
        make_document("web", "http://a/2", "hello world"),
        make_document("book", "b.txt", "HELLO WORLD\n"),
        make_document("web", "http://a/3", "something else"),
        make_document(
            "web", "HTTP://a:80/3#top", "the same page fetched again, changed"
        ),  # same canonical URL
    ]
    df = spark.createDataFrame(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA).to_pandas())
    out = mark_duplicates(map_rows(df, annotate_hash, "dedup")).collect()
    dupes = {r["id"]: r for r in out if r["reject_reason"]}
    group = sorted(r["id"] for r in rows[:3])
    same_url = sorted(r["id"] for r in rows[3:])
    assert set(dupes) == {*group[1:], same_url[1]}
    assert {dupes[i]["annotations"]["dedup.keeper_id"] for i in group[1:]} == {group[0]}
    assert {dupes[i]["reject_reason"] for i in group[1:]} == {"exact_duplicate"}
    assert dupes[same_url[1]]["reject_reason"] == "exact_duplicate_url"
    assert dupes[same_url[1]]["annotations"]["dedup.keeper_id"] == same_url[0]


def test_missing_java_is_one_clear_message(tmp_path: Path, small_corpus: Path) -> None:
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(Path(sys.executable).parent)}
    overrides = json.dumps(
        {"storage": {"root": str(tmp_path)}, "sources": {"books_dir": str(small_corpus / "books")}}
    )
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "jobs/spark/main.py"),
            "ingest",
            "--run-id",
            "nojava",
            "--overrides",
            overrides,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Java not found (JAVA_HOME=" in done.stderr
    assert not (tmp_path / "runs/nojava/ingest/_MANIFEST.json").exists()


def test_same_stages_run_against_s3(spark, s3_config, small_corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Storage by URI: ingest -> extract -> dedup with an s3:// root on a loopback S3 server."""
    (tmp_path / "books").mkdir()
    for name in sorted(p.name for p in (small_corpus / "books").glob("*.txt"))[:3]:
        (tmp_path / "books" / name).write_bytes((small_corpus / "books" / name).read_bytes())
    (tmp_path / "books" / "copy.txt").write_bytes((tmp_path / "books" / name).read_bytes())
    cfg = load_config(
        overrides={
            "storage": s3_config.model_dump(mode="json") | {"secret_access_key": "testing"},
            "spark": {"shuffle_partitions": 2},
            "sources": {"books_dir": str(tmp_path / "books")},
        }
    )
    storage = open_storage(cfg.storage)
    storage.write_bytes("runs/s3/crawl/data/stale.parquet", b"")  # left by a crashed attempt
    from core.datasets import commit

    crawl_out = tmp_path / "crawl" / "data"
    crawl_out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([], schema=DOCUMENT_SCHEMA), crawl_out / "part-00000.parquet")
    commit(storage, "s3", "crawl", tmp_path / "crawl", config={}, inputs={})
    assert storage.list("runs/s3/crawl") == [
        "runs/s3/crawl/_MANIFEST.json",
        "runs/s3/crawl/data/part-00000.parquet",
    ]
    for stage in ("ingest", "warc", "extract", "dedup"):
        run_stage(stage, cfg, "s3", spark)
    dedup = read_manifest(storage, "s3", "dedup")
    assert dedup.rows == {"data": 3, "rejected": 1}
    assert any(k.endswith("dedup/_MANIFEST.json") for k in storage.list("runs/s3/dedup"))
    assert not (tmp_path / "runs").exists()  # nothing went to local disk as the dataset


def test_warc_stage_keeps_good_records_of_damaged_files(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import SHARED_DATA

    warc_dir = SHARED_DATA / "warc"
    if not warc_dir.is_dir():
        pytest.skip("../shared/data/warc is absent")
    # A folder contributes its *.warc[.gz]/*.arc[.gz] files; the `.bad` one is only read when named.
    edge = warc_dir / "edge-cases"
    paths = [
        str(warc_dir / "commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz"),
        str(edge),
        str(edge / "example-bad.warc.gz.bad"),
    ]
    cfg = load_config(overrides={"storage": {"root": str(tmp_path)}, "warc": {"paths": paths}})
    manifest, _ = run_stage("warc", cfg, "w", spark)
    # 16 Common Crawl responses + 6 good documents among the edge cases (see tests/test_warc_ingest.py)
    assert manifest.rows["data"] == 22, manifest.stats
    assert manifest.stats["files"] == 10
    bad = {(Path(b["file"]).name, b["error"]) for b in manifest.stats["bad_records"]}
    assert ("example-trunc.warc", "warc_invalid_content_length") in bad
    docs = pq.read_table(tmp_path / "runs/w/warc/data").to_pylist()
    assert all(d["source_type"] == "web" and d["raw_content"] for d in docs)
