"""C4-style repeated-line removal in the dedup stage, on a real SparkSession over a hand-made corpus."""

from __future__ import annotations

import random
import typing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import ConfigError, DedupConfig, DocumentSource, PipelineConfig, load_config
from core.schema import DOCUMENT_SCHEMA, SOURCE_TYPES, document_id, make_document
from core.stage_run import plan_stage
from core.storage import LocalStorage
from jobs.dedup import exact, lines
from jobs.dedup.exact import annotate_hash
from jobs.dedup.lines import ANNOTATION, line_key
from jobs.spark.dedup import run_dedup
from jobs.spark.frame import StageContext

NEWS = "Subscribe to our newsletter for weekly updates."  # 47 chars: takes part
OWN = "Nothing here is shared with any other document at all."


def _web_ids() -> list[str]:
    """Four web origins in id order: roles are given by position, so 'first' is the smallest id."""
    return sorted((f"http://example.com/p{i}" for i in range(4)), key=lambda o: document_id("web", o))


def _corpus() -> tuple[list[dict[str, Any]], dict[str, str]]:
    first, second, emptied, plain = _web_ids()
    texts = {
        # a repeat inside the first document goes too (case and spacing do not matter)
        first: f"Home\n\n{NEWS}\nA first document sentence that is long enough.\n"
        "subscribe to our   NEWSLETTER for weekly updates.",
        second: f"Home\n{NEWS}\nThe second document has its own long line too.\n",
        # fullwidth letters: equal after NFKC; then only short lines are left
        emptied: "Ｓｕｂｓｃｒｉｂｅ to our newsletter for weekly updates.\nHome\n\n",
        plain: OWN,
    }
    docs = [make_document("web", o, t) for o, t in texts.items()]
    docs.append(make_document("code", "repo/news.py", f"# {NEWS}\n{NEWS}"))  # not a line source
    docs.append(make_document("web", "http://mirror.example.org/p", OWN))  # exact duplicate of `plain`
    roles = {"first": first, "second": second, "emptied": emptied, "plain": plain}
    return docs, {role: document_id("web", o) for role, o in roles.items()}


def _run(spark, tmp_path: Path, docs: list[dict[str, Any]], files: int = 1, **dedup: Any):  # type: ignore[no-untyped-def]
    src = tmp_path / "extract" / "data"
    src.mkdir(parents=True)
    for i in range(files):
        table = pa.Table.from_pylist(docs[i::files], schema=DOCUMENT_SCHEMA)
        pq.write_table(table, src / f"part-{i}.parquet")
    cfg = load_config(overrides={"spark": {"shuffle_partitions": 3}, "dedup": dedup})
    ctx = StageContext(spark, cfg, {"extract": tmp_path / "extract"}, {}, tmp_path / "out")
    stats = run_dedup(ctx)
    rows = {}
    for part in ("data", "rejected"):
        for r in spark.read.parquet(str(tmp_path / "out" / part)).collect():
            rows[r["id"]] = r.asDict(recursive=True)
    return stats, rows


def test_repeated_lines_keep_the_first_occurrence_only(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs, ids = _corpus()
    stats, rows = _run(spark, tmp_path, docs, repeated_lines=True)
    first, second, emptied, plain = (rows[ids[r]] for r in ("first", "second", "emptied", "plain"))
    assert first["text"] == f"Home\n\n{NEWS}\nA first document sentence that is long enough."
    assert second["text"] == "Home\nThe second document has its own long line too.\n"  # short line kept
    assert (first["annotations"][ANNOTATION], second["annotations"][ANNOTATION]) == ("1", "1")
    assert plain["text"] == OWN and plain["annotations"][ANNOTATION] == "0"
    assert first.get("reject_reason") is None and plain.get("reject_reason") is None
    # only short lines left: rejected with the rule, original text kept in the rejected row
    assert (emptied["reject_stage"], emptied["reject_reason"]) == ("dedup", "repeated_lines")
    assert emptied["text"] == next(d["text"] for d in docs if d["id"] == ids["emptied"])
    assert emptied["annotations"][ANNOTATION] == "1"
    code = rows[document_id("code", "repo/news.py")]
    assert code["text"] == f"# {NEWS}\n{NEWS}" and ANNOTATION not in code["annotations"]
    mirror = rows[document_id("web", "http://mirror.example.org/p")]
    keeper, dup = sorted([plain, mirror], key=lambda r: r["id"])
    assert dup["reject_reason"] == "exact_duplicate" and ANNOTATION not in dup["annotations"]
    assert keeper["text"] == OWN  # the exact duplicate's lines did not take part
    assert stats["rejected_by_reason"] == {"exact_duplicate": 1, "repeated_lines": 1}
    assert stats["repeated_lines"] == {"lines_removed": 2, "documents_changed": 2}


def test_output_does_not_depend_on_input_order_or_partitioning(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs, _ = _corpus()
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    _, a = _run(spark, tmp_path / "a", docs, files=1, repeated_lines=True)
    _, b = _run(spark, tmp_path / "b", shuffled, files=3, repeated_lines=True)
    assert a == b


def test_disabled_by_default_leaves_texts_unchanged(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    docs, _ = _corpus()
    stats, rows = _run(spark, tmp_path, docs)
    assert {i: r["text"] for i, r in rows.items()} == {d["id"]: d["text"] for d in docs}
    assert not any(ANNOTATION in r["annotations"] for r in rows.values())
    assert "repeated_lines" not in stats and stats["rejected_by_reason"] == {"exact_duplicate": 1}


@pytest.mark.parametrize(
    ("line", "key_of"),
    [
        ("Home", None),  # shorter than line_min_chars: never removed
        ("", None),
        (f"  {NEWS.upper()}  ", NEWS),
        ("Ｓｕｂｓｃｒｉｂｅ to our newsletter for weekly updates.", NEWS),
        ("Subscribe to our newsletter\tfor   weekly updates.\r", NEWS),
    ],
)
def test_line_key_normalises_and_skips_short_lines(line: str, key_of: str | None) -> None:
    cfg = load_config().dedup
    expected = None if key_of is None else line_key(key_of, cfg.line_min_chars)
    assert line_key(line, cfg.line_min_chars) == expected


def test_defaults_and_fingerprint(tmp_path: Path) -> None:
    cfg = load_config()
    dedup = cfg.dedup
    assert (dedup.repeated_lines, dedup.line_min_chars, dedup.line_sources) == (False, 30, ["web"])
    assert set(typing.get_args(DocumentSource)) == set(SOURCE_TYPES)
    on = load_config(overrides={"dedup": {"repeated_lines": True}})
    storage = LocalStorage(str(tmp_path))

    def fp(c: PipelineConfig) -> str:
        return plan_stage(storage, "r", "dedup", c, inputs=(), sections=("dedup",), code="v1").fingerprint

    assert fp(cfg) != fp(on)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"line_min_chars": 0}, "dedup.line_min_chars"),
        ({"line_min_chars": "long"}, "dedup.line_min_chars"),
        ({"line_sources": []}, "dedup.line_sources"),
        ({"line_sources": ["blog"]}, "dedup.line_sources.0"),
        ({"repeated_lines": "maybe"}, "dedup.repeated_lines"),
        ({"min_chars": 5}, "dedup.min_chars"),
    ],
)
def test_bad_values_fail_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"config field '{field}'"):
        load_config(overrides={"dedup": overrides})


def _plain_dedup(docs: list[dict[str, Any]], cfg: DedupConfig) -> dict[str, dict[str, Any]]:
    """The stage's decisions in one process: exact passes, then repeated lines (jobs/dedup/)."""
    hashed = [{**annotate_hash(d)[0], "reject_stage": None, "reject_reason": None} for d in docs]
    marked = exact.mark_exact_duplicates(hashed)
    return {r["id"]: r for r in lines.remove_repeated_lines(marked, cfg.line_min_chars, cfg.line_sources)}


def _random_corpus(seed: int) -> list[dict[str, Any]]:
    """Web and code documents drawn from a small pool of long and short lines, some exact copies."""
    rng = random.Random(seed)
    pool = [NEWS, OWN, "Home", "", "Read more", "All rights reserved by the example company 2024."]
    pool += [f"A line of its own, number {i}, long enough to take part." for i in range(30)]
    docs = []
    for i in range(80):
        text = "\n".join(rng.choice(pool) for _ in range(rng.randrange(1, 8)))
        source = "code" if i % 9 == 0 else "web"
        docs.append(make_document(source, f"http://example.com/r{i}", text))
    docs += [
        make_document("web", f"http://mirror.example.net/r{i}", d["text"]) for i, d in enumerate(docs[::7])
    ]
    # the same pages fetched again, changed: duplicates by canonical URL
    docs += [make_document("web", f"HTTP://example.com:80/r{i}#top", f"{OWN}\n{i}") for i in range(1, 80, 11)]
    return docs


@pytest.mark.parametrize("corpus", ["hand-made", "random"])
def test_spark_stage_equals_the_plain_rules(spark, tmp_path: Path, corpus: str) -> None:
    docs = _corpus()[0] if corpus == "hand-made" else _random_corpus(5)
    stats, rows = _run(spark, tmp_path, docs, files=3, repeated_lines=True)
    plain = _plain_dedup(docs, load_config().dedup)
    fields = ("text", "reject_stage", "reject_reason", "annotations")
    assert {i: tuple(r.get(f) for f in fields) for i, r in rows.items()} == {
        i: tuple(r[f] for f in fields) for i, r in plain.items()
    }
    reasons = {r.get("reject_reason") for r in rows.values()}
    assert corpus == "hand-made" or {"exact_duplicate", "exact_duplicate_url", "repeated_lines"} <= reasons
    kept = [r for r in rows.values() if not r.get("reject_reason")]
    removed = sum(int(r["annotations"].get(ANNOTATION, 0)) for r in kept)
    assert removed == stats["repeated_lines"]["lines_removed"] > 0
