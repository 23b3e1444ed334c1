"""The shards stage on real Spark over real text: the split by document hash, the global seeded
shuffle, `max_shard_tokens`, and output that does not depend on the partition count."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from core.config import load_config
from core.datasets import Manifest
from core.schema import documents_table
from jobs.spark.frame import StageContext
from jobs.spark.tokens import run_shards, shuffle_key_column
from jobs.tokens.shards import is_validation, shuffle_key
from jobs.tokens.tokenizer import train_tokenizer
from training.data import ShardReader, read_layout


def shard_inputs(root: Path, docs: list[dict[str, Any]]) -> tuple[dict[str, Path], dict[str, Manifest]]:
    """A near_dedup folder holding `docs` and a small tokenizer trained on them, as a stage reads."""
    from core.config import TokenizerConfig

    near, tok = root / "decontaminate", root / "tokenizer"
    (near / "data").mkdir(parents=True)
    pq.write_table(documents_table(docs), near / "data" / "part-00000.parquet")
    stats = train_tokenizer(
        (d["text"] for d in docs[::5]), TokenizerConfig(vocab_size=512), tok / "tokenizer.json"
    )
    manifest = Manifest("t", "tokenizer", "fp", {}, {}, stats=stats)
    return {"decontaminate": near, "tokenizer": tok}, {"tokenizer": manifest}


def run_with(spark: Any, inputs: Any, out: Path, partitions: int = 2, **sections: Any) -> dict[str, Any]:
    """Run the stage's adapter into `out` with config `sections` (shards=..., mixture=...)."""
    cfg = load_config(overrides={"spark": {"shuffle_partitions": partitions}, **sections})
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    out.mkdir(parents=True)
    try:
        return run_shards(StageContext(spark, cfg, inputs[0], inputs[1], out, "shards"))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", "2")


def shard_bytes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.bin"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from scripts.bench_shards import real_documents

    docs = real_documents(per_source=400)
    return list({d["text"]: d for d in docs}.values())  # as near_dedup leaves it: no exact duplicates


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, corpus: list[dict[str, Any]]) -> Any:
    return shard_inputs(tmp_path_factory.mktemp("in"), corpus)


@pytest.fixture(scope="module")
def runs(spark: Any, inputs: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict]]:
    """The same config at 1, 2 and 4 partitions, shards of at most 20,000 tokens."""
    shards = {"max_shard_tokens": 20_000, "block_tokens": 1024, "val_fraction": 0.1, "shuffle_seed": 7}
    out = {}
    for n in (1, 2, 4):
        folder = tmp_path_factory.mktemp(f"p{n}") / "shards"
        out[n] = (folder, run_with(spark, inputs, folder, n, shards=shards))
    return out


def test_output_is_the_same_at_any_partition_count(runs: dict[int, tuple[Path, dict]]) -> None:
    files = {n: shard_bytes(folder) for n, (folder, _) in runs.items()}
    assert files[1] == files[2] == files[4] and len(files[1]) > 3
    assert len({json.dumps(stats, sort_keys=True) for _, stats in runs.values()}) == 1


def test_max_shard_tokens_is_honoured_and_checksums_listed(runs: dict[int, tuple[Path, dict]]) -> None:
    folder, stats = runs[2]
    meta, layout = read_layout(folder)
    assert layout is not None and layout.block_tokens == 1024
    for e in layout.shards:
        data = (folder / e.file).read_bytes()
        assert len(data) == 2 * e.tokens and hashlib.sha256(data).hexdigest() == e.sha256
        assert e.block_sha256[0] == hashlib.sha256(data[:2048]).hexdigest()
        assert len(e.block_sha256) == math.ceil(e.tokens / 1024)
    train = [e.tokens for e in layout.shards if e.split == "train"]
    assert max(train) == 20_000 and all(t == 20_000 for t in train[:-1])  # every shard full but the last
    assert len(train) == math.ceil(meta.train_tokens / 20_000) == stats["shard_files"]["train"]
    assert stats["shard_files"]["largest_shard_tokens"] <= 20_000
    assert [f["sha256"] for f in stats["shard_files"]["files"]] == [e.sha256 for e in layout.shards]
    reader = ShardReader(folder, "train", 64)  # the reader accepts, and verifies, what was written
    assert reader.windows(0, reader.num_windows).shape == (reader.num_windows, 65)


def _documents(folder: Path, split: str) -> list[bytes]:
    meta, _ = read_layout(folder)
    stream = np.concatenate([np.fromfile(folder / f, dtype="<u2") for f in meta.files(split)])
    ends = np.flatnonzero(stream == meta.eos_id)
    return [stream[a + 1 : b + 1].tobytes() for a, b in zip(np.r_[-1, ends[:-1]], ends, strict=True)]


def test_split_is_disjoint_stable_and_the_configured_share(
    runs: dict[int, tuple[Path, dict]], corpus: list[dict[str, Any]], inputs: Any
) -> None:
    """Disjoint: no document's tokens in both splits. Stable: the same documents in val at every
    partition count (and in a fresh run, test above). Share: val_fraction 0.1 of n documents is a
    binomial count; the observed share is within 4 standard deviations (sqrt(p (1 - p) / n))."""
    from tokenizers import Tokenizer

    folder, stats = runs[4]
    train, val = set(_documents(folder, "train")), set(_documents(folder, "val"))
    assert train and val and not train & val
    tok = Tokenizer.from_file(str(inputs[0]["tokenizer"] / "tokenizer.json"))

    def encoded(d: dict[str, Any]) -> bytes:
        return np.asarray([*tok.encode(d["text"]).ids, stats["eos_id"]], dtype="<u2").tobytes()

    assert val == {encoded(d) for d in corpus if is_validation(d["id"], 0.1)}
    for n in (1, 2):
        assert set(_documents(runs[n][0], "val")) == val
    n = len(corpus)
    assert stats["train_documents"] + stats["val_documents"] == n
    expected = sum(is_validation(d["id"], 0.1) for d in corpus)
    assert stats["val_documents"] == expected
    assert abs(expected / n - 0.1) <= 4 * math.sqrt(0.1 * 0.9 / n)


def test_global_shuffle_is_seeded(spark: Any, inputs: Any, runs: dict, tmp_path: Path) -> None:
    """The same seed gives the same bytes (the partition test); another seed another order of the
    same documents."""
    shards = {"max_shard_tokens": 20_000, "block_tokens": 1024, "val_fraction": 0.1, "shuffle_seed": 8}
    other = tmp_path / "s8"
    run_with(spark, inputs, other, 2, shards=shards)
    folder = runs[2][0]
    assert shard_bytes(other) != shard_bytes(folder)
    assert sorted(_documents(other, "train")) == sorted(_documents(folder, "train"))
    again = tmp_path / "s7"
    run_with(spark, inputs, again, 3, shards={**shards, "shuffle_seed": 7})
    assert shard_bytes(again) == shard_bytes(folder)


def test_spark_key_is_the_documented_shuffle_key(spark: Any) -> None:
    df = spark.createDataFrame([("doc-a", 0), ("doc-b", 3)], "id string, copy int")
    got = df.select("id", "copy", shuffle_key_column(7).alias("k")).collect()
    assert {(r["id"], r["copy"]): r["k"] for r in got} == {
        ("doc-a", 0): shuffle_key(7, "doc-a", 0),
        ("doc-b", 3): shuffle_key(7, "doc-b", 3),
    }
