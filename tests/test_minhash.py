"""MinHash LSH: shingles, signatures (equal to datasketch's), the bands x rows rule, and the Spark
driver on real licence texts with controlled edits."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from core.config import ConfigError, MinHashConfig, load_config
from jobs.dedup import minhash
from jobs.spark.minhash import candidate_pairs, near_duplicate_edges, verified_pairs

LICENSES = Path("/usr/share/common-licenses")
CFG = MinHashConfig()


@pytest.mark.parametrize(
    ("text", "cfg", "count"),
    [
        ("", CFG, 0),
        ("  \n\t ", CFG, 0),
        ("a b c", CFG, 1),  # shorter than the n-gram: one shingle
        ("one two three four five six", CFG, 2),
        ("a a a a a a a a", CFG, 1),  # a set: repeats collapse
        ("abcd", MinHashConfig(shingle="char", ngram=3), 2),
        ("ab  cd", MinHashConfig(shingle="char", ngram=3), 3),  # whitespace collapsed to one space
    ],
)
def test_shingle_counts(text: str, cfg: MinHashConfig, count: int) -> None:
    out = minhash.shingles(text, cfg)
    assert out.dtype == np.uint32 and out.size == count
    assert np.all(np.diff(out.astype(np.int64)) > 0)  # sorted, unique


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello, WORLD! It is 2024 now.", "hello world it is 1999 now"),  # case, punctuation, digits
        ("tabs\tand\n\nnewlines  here", "tabs and newlines here"),
    ],
)
def test_normalisation_makes_equal_shingles(a: str, b: str) -> None:
    assert np.array_equal(minhash.shingles(a, CFG), minhash.shingles(b, CFG))


def test_signatures_equal_datasketch_affine32() -> None:
    sets = [minhash.shingles((LICENSES / name).read_text(), CFG) for name in ("BSD", "Apache-2.0")]
    sets.append(np.empty(0, dtype=np.uint32))
    sigs = minhash.signatures(sets, CFG)
    for s, sig in zip(sets, sigs, strict=True):
        ref = MinHash(num_perm=CFG.num_perm, seed=CFG.seed, hashfunc=lambda x: x, scheme="affine32")
        ref.update_batch(s.tolist())
        assert np.array_equal(ref.hashvalues, sig)
    assert np.all(sigs[2] == minhash.MAX_HASH)


def test_signatures_span_chunks() -> None:
    """A document larger than one permutation chunk gives the same signature alone or batched."""
    rng = np.random.default_rng(0)
    big = np.unique(rng.integers(0, 2**32, 40_000, dtype=np.uint64).astype(np.uint32))
    small = np.unique(rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32))
    batched = minhash.signatures([small, big, small], CFG)
    assert np.array_equal(batched[1], minhash.signatures([big], CFG)[0])
    assert np.array_equal(batched[0], batched[2])


def test_signatures_deterministic_across_processes() -> None:
    code = (
        "from core.config import MinHashConfig; from jobs.dedup import minhash; "
        "s = minhash.shingles(open('/usr/share/common-licenses/BSD').read(), MinHashConfig()); "
        "print(minhash.signatures([s], MinHashConfig())[0].tolist())"
    )
    root = Path(__file__).resolve().parent.parent
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    here = minhash.signatures([minhash.shingles((LICENSES / "BSD").read_text(), CFG)], CFG)[0].tolist()
    assert outs == {f"{here}\n"}


@pytest.mark.parametrize("overlap", [0.0, 0.3, 0.6, 0.8, 0.95])
def test_estimated_jaccard_close_to_exact(overlap: float) -> None:
    rng = np.random.default_rng(int(overlap * 100))
    pool = np.unique(rng.integers(0, 2**32, 6000, dtype=np.uint64).astype(np.uint32))
    rng.shuffle(pool)
    shared = int(2000 * overlap)
    a = np.unique(pool[:2000])
    b = np.unique(np.concatenate([pool[:shared], pool[2000 : 4000 - shared]]))
    sig = minhash.signatures([a, b], MinHashConfig(num_perm=256))
    exact = minhash.jaccard(a, b)
    assert abs(minhash.estimated_jaccard(sig[0], sig[1]) - exact) < 0.1, exact


@pytest.mark.parametrize(
    ("threshold", "num_perm", "target"),
    [(0.8, 112, 0.9), (0.7, 112, 0.9), (0.9, 128, 0.95), (0.5, 64, 0.9)],
)
def test_choose_bands_rows_meets_target(threshold: float, num_perm: int, target: float) -> None:
    b, r = minhash.choose_bands_rows(threshold, num_perm, target)
    assert b * r <= num_perm
    assert minhash.hit_probability(threshold, b, r) >= target


def test_default_setting_and_fineweb_reference() -> None:
    assert minhash.bands_rows(CFG) == (13, 8)  # golden: the rule's pick for 0.8 / 112 / 0.9
    assert minhash.hit_probability(0.8, 13, 8) == pytest.approx(0.908, abs=1e-3)
    assert minhash.hit_probability(0.8, 14, 8) == pytest.approx(0.9235, abs=1e-3)  # FineWeb's 14x8
    assert minhash.hit_probability(0.8, 9, 12) < 0.6  # a steeper split misses pairs at 0.8
    assert minhash.bands_rows(MinHashConfig(bands=14, rows=8)) == (14, 8)


def test_impossible_target_raises() -> None:
    with pytest.raises(ValueError, match="no bands x rows"):
        minhash.choose_bands_rows(0.1, 2, 0.99)


def test_s_curve_monotonic() -> None:
    curve = minhash.s_curve(13, 8)
    js, ps = zip(*curve, strict=True)
    assert len(curve) == 21 and js[0] == 0.0 and js[-1] == 1.0
    assert ps[0] == 0.0 and ps[-1] == 1.0 and all(x <= y for x, y in itertools.pairwise(ps))


def test_band_keys_match_matrix() -> None:
    sigs = minhash.signatures([minhash.shingles("the quick brown fox jumps over", CFG)], CFG)
    keys = minhash.band_keys(sigs[0], 13, 8)
    assert len(keys) == 13 and keys == minhash.band_key_matrix(sigs, 13, 8)[0].tolist()


def test_config_rejects_half_set_bands() -> None:
    with pytest.raises(ConfigError, match="minhash"):
        load_config(overrides={"minhash": {"bands": 14}})


def _substitute(text: str, every: int) -> str:
    words = text.split()
    return " ".join("XYZZY" if i % every == every // 2 else w for i, w in enumerate(words))


def _corpus() -> list[tuple[str, str]]:
    read = {n: (LICENSES / n).read_text() for n in ("Apache-2.0", "BSD", "CC0-1.0", "MPL-2.0", "Artistic")}
    apache_words = read["Apache-2.0"].split()
    return [
        ("apache", read["Apache-2.0"]),
        ("apache_edit", _substitute(read["Apache-2.0"], 400)),  # 4 words changed: found
        ("apache_half", " ".join(apache_words[: len(apache_words) // 2])),  # J ~ 0.5: not an edge
        ("bsd", read["BSD"]),
        ("bsd_recased", read["BSD"].upper().replace(".", " ")),  # normalisation makes it equal
        ("cc0", read["CC0-1.0"]),
        ("mpl", read["MPL-2.0"]),
        ("artistic", read["Artistic"]),
        ("empty", ""),
        ("empty2", "   "),
    ]


@pytest.fixture(scope="module")
def docs(spark):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(_corpus(), "id string, text string").repartition(2)


def test_spark_edges_on_licences(docs) -> None:  # type: ignore[no-untyped-def]
    edges, stats = near_duplicate_edges(docs, CFG)
    rows = {(r["a"], r["b"]): r["jaccard"] for r in edges.collect()}
    edges.unpersist()
    assert set(rows) == {("apache", "apache_edit"), ("bsd", "bsd_recased")}
    texts = dict(_corpus())
    for (a, b), score in rows.items():  # precision: each edge's exact Jaccard is over the threshold
        exact = minhash.jaccard(minhash.shingles(texts[a], CFG), minhash.shingles(texts[b], CFG))
        assert score == pytest.approx(exact) and exact >= CFG.threshold
    assert (stats["bands"], stats["rows"], stats["verified_pairs"]) == (13, 8, 2)
    assert stats["candidate_pairs"] >= 2 and stats["oversized_buckets"] == 0
    assert stats["hit_probability_at_threshold"] >= 0.9 and len(stats["s_curve"]) == 21


def test_spark_estimate_mode_agrees(docs) -> None:  # type: ignore[no-untyped-def]
    cfg = MinHashConfig(verify="estimate")
    pairs = candidate_pairs(docs, cfg)
    found = {(r["a"], r["b"]) for r in verified_pairs(docs, pairs, cfg).collect()}
    assert found == {("apache", "apache_edit"), ("bsd", "bsd_recased")}


def test_spark_oversized_bucket_becomes_star(spark) -> None:  # type: ignore[no-untyped-def]
    text = (LICENSES / "BSD").read_text()
    df = spark.createDataFrame([(f"copy{i}", text) for i in range(5)], "id string, text string")
    cfg = MinHashConfig(max_bucket_size=3)
    pairs = {(r["a"], r["b"]) for r in candidate_pairs(df, cfg).collect()}
    assert pairs == {("copy0", f"copy{i}") for i in range(1, 5)}
    everything = {(r["a"], r["b"]) for r in candidate_pairs(df, MinHashConfig()).collect()}
    assert len(everything) == 10  # under the limit: all 5 * 4 / 2 pairs
