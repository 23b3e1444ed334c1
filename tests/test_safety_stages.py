"""The safety, decontaminate and diversity stages on a real SparkSession, with their stats, their
reasons and the diversity gate (Great Expectations) failing a run. Texts are real: the Python
standard library's docstrings, with contact details of the kind its module headers carry."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from core.config import load_config
from core.schema import documents_table, make_document
from demo.safety import write_evaluation_sets
from jobs.safety.pseudonym import pseudonym
from jobs.spark.frame import StageContext
from jobs.validate.gates import GateFailed, gate

KEY = "9f" * 32  # LMFORGE_PII_KEY as `openssl rand -hex 32` writes one


def _doc(module: Any) -> str:
    return textwrap.dedent(module.__doc__ or "").strip()


def _safety_docs() -> list[dict[str, Any]]:
    import csv
    import shutil

    header = "Maintainer: Jane Roe <jane.roe@example.org>, phone +44 20 7946 0958\n\n"
    return [
        make_document("code", "lib/csv.py", header + _doc(csv), domain="stdlib"),
        make_document("web", "https://docs.example/shutil", _doc(shutil), domain="docs.example",
                      raw_content=f"<p>{header}</p>"),
        make_document("social", "dump.jsonl#1", "@other_user thanks, this helped a lot with my csv files",
                      annotations={"social.author": "Some_Author", "social.mentions": '["@other_user"]'}),
        make_document("social", "dump.jsonl#2", "@other_user you stupid bitch, stop posting this shit",
                      annotations={"social.author": "angry_one", "social.mentions": '["@other_user"]'}),
    ]  # fmt: skip


def _write(folder: Path, docs: list[dict[str, Any]]) -> None:
    (folder / "data").mkdir(parents=True)
    pq.write_table(documents_table(docs), folder / "data" / "part-0.parquet")


def _context(
    tmp: Path, spark: Any, stage: str, upstream: str, docs: list[dict[str, Any]], **cfg: Any
) -> StageContext:
    _write(tmp / upstream, docs)
    config = load_config("local", {"spark": {"shuffle_partitions": 2}, **cfg})
    return StageContext(spark, config, {upstream: tmp / upstream}, {}, tmp / stage, name=stage)


def _part(ctx: StageContext, part: str) -> list[dict[str, Any]]:
    rows = pq.read_table(ctx.out / part).to_pylist()
    for r in rows:
        r["annotations"] = dict(r["annotations"] or [])
    return rows


def test_safety_stage_redacts_pseudonymises_scores_and_counts(tmp_path: Path, spark, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.safety import run_safety

    monkeypatch.setenv("LMFORGE_PII_KEY", KEY)
    ctx = _context(
        tmp_path, spark, "safety", "copyright", _safety_docs(), toxicity={"drop_above": {"social": 0.5}}
    )
    stats = run_safety(ctx)
    kept, rejected = _part(ctx, "data"), _part(ctx, "rejected")
    everything = kept + rejected
    assert not any("jane.roe@example.org" in r["text"] or "7946" in r["text"] for r in everything)
    assert all(r["raw_content"] is None for r in everything)  # the HTML held the same address
    code = next(r for r in kept if r["source_type"] == "code")
    assert "<EMAIL>" in code["text"] and "<PHONE>" in code["text"]
    assert code["annotations"]["pii.email"] == "1" and code["annotations"]["pii.phone"] == "1"
    assert stats["pii_by_type"]["email"] == 1 and stats["pii_by_type"]["phone"] == 1
    assert stats["pii_by_source"]["code"]["with_pii"] == 1 and stats["pii_by_source"]["web"]["with_pii"] == 0
    # social: authors and mentions as keyed hashes; the abusive post dropped by the social threshold
    assert stats["pseudonymised"] == 2 and stats["key_source"] == "env:LMFORGE_PII_KEY"
    key = bytes.fromhex(KEY)
    post = next(r for r in kept if r["source_type"] == "social")
    assert post["annotations"]["social.author"] == pseudonym("Some_Author", key)
    assert json.loads(post["annotations"]["social.mentions"]) == [pseudonym("@other_user", key)]
    assert "other_user" not in post["text"] and "Some_Author" not in json.dumps(everything, default=str)
    assert [r["reject_reason"].split(":")[0] for r in rejected] == ["toxicity_score"]
    assert rejected[0]["annotations"]["toxicity.flag"] == "1"
    assert float(post["annotations"]["toxicity.score"]) < 0.5
    tox = stats["toxicity_by_source"]["social"]
    assert tox == {**tox, "documents": 2, "dropped": 1, "flagged": 1}
    assert stats["rejected_by_reason"] == {"toxicity_score": 1}


def _near_dedup_docs() -> list[dict[str, Any]]:
    import json as json_module
    import shutil

    passage = _doc(json_module).split("\n\n")[0]  # the quiz's first passage (demo/safety.py)
    return [
        make_document("web", "https://docs.example/json", _doc(shutil) + "\n\n" + passage, domain="d.ex"),
        make_document("web", "https://docs.example/shutil", _doc(shutil), domain="d.ex"),
    ]  # fmt: skip


@pytest.mark.parametrize("action", ["drop", "cut"])
def test_decontaminate_stage_drops_or_cuts_and_reports_the_benchmark(
    tmp_path: Path, spark, action: str
) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.decontam import evals_listing, run_decontam

    evals = write_evaluation_sets(tmp_path / "evals")
    overrides = {"locations": {"quiz": str(evals)}, "decontam": {"evals": "quiz", "action": action}}
    ctx = _context(tmp_path, spark, "decontaminate", "near_dedup", _near_dedup_docs(), **overrides)
    assert evals_listing(ctx.cfg)["files"][0][0] == "json-docs-quiz.jsonl"
    stats = run_decontam(ctx)
    kept, rejected = _part(ctx, "data"), _part(ctx, "rejected")
    assert stats["hits_by_benchmark"] == {"json-docs-quiz": 1} and stats["documents_hit"] == 1
    assert stats["benchmarks"]["json-docs-quiz"]["items"] >= 1
    if action == "drop":
        assert [r["origin"] for r in kept] == ["https://docs.example/shutil"]
        assert rejected[0]["reject_reason"] == "decontam_overlap:json-docs-quiz"
    else:
        assert not rejected and stats["cut_chars"] > 100
        cut = next(r for r in kept if r["origin"].endswith("/json"))
        assert "JSON (JavaScript Object Notation)" not in cut["text"] and cut["text"].startswith(
            _doc(__import__("shutil"))[:40]
        )


def test_decontaminate_stage_without_evaluation_sets_passes_everything(tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.decontam import run_decontam

    ctx = _context(tmp_path, spark, "decontaminate", "near_dedup", _near_dedup_docs())
    stats = run_decontam(ctx)
    assert len(_part(ctx, "data")) == 2 and stats["benchmarks"] == {} and stats["evals"] is None


def _diverse_docs() -> list[dict[str, Any]]:
    import argparse
    import csv
    import json as json_module
    import shutil

    texts = [_doc(m) for m in (argparse, csv, json_module, shutil)]
    docs = [make_document("web", f"https://big.example/{i}", t, domain="big.example", language="en")
            for i, t in enumerate(texts)]  # fmt: skip
    docs += [make_document("book", f"books/{i}.txt", t + " book", domain="books", language="en")
             for i, t in enumerate(texts[:2])]  # fmt: skip
    return docs


def test_diversity_stage_reports_and_its_gate_fails_the_run(tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.diversity import run_diversity

    limits = {"max_domain_share": 0.5, "min_source_shares": {"book": 0.1, "code": 0.05}, "topics": 2}
    ctx = _context(tmp_path, spark, "diversity", "decontaminate", _diverse_docs(), diversity=limits)
    stats = run_diversity(ctx)
    report = json.loads((ctx.out / "report.json").read_text())
    assert report["documents"] == 6 and stats["max_domain"] == "big.example"
    assert stats["source_shares"] == pytest.approx({"web": 4 / 6, "book": 2 / 6})
    assert 0 < stats["diversity_by_source"]["web"]["distinct_ngram_ratio"] <= 1
    assert len(report["topics"]) == 2
    failed = {(g["check"], g["subject"]) for g in stats["gates"] if not g["ok"]}
    assert failed == {("max_domain_share", "big.example"), ("min_source_share", "code")}
    with pytest.raises(GateFailed) as err:
        gate("diversity", ctx.cfg, ctx.out, {})
    assert "max_domain_share:big.example" in str(err.value) and "min_source_share:code" in str(err.value)


def test_diversity_gate_passes_within_bounds(tmp_path: Path, spark) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.diversity import run_diversity

    limits = {"max_domain_share": 0.7, "min_source_shares": {"book": 0.1}, "min_language_shares": {"en": 0.9}}
    ctx = _context(tmp_path, spark, "diversity", "decontaminate", _diverse_docs(), diversity=limits)
    run_diversity(ctx)
    record = gate("diversity", ctx.cfg, ctx.out, {})
    assert record is not None and record["success"] and record["suites"] == ["diversity.gates"]


def test_safety_facts_follow_the_key_and_the_model_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A new key or a retrained model at the same path changes the stage's fingerprint; a missing
    model is one clear error at planning, before any Spark job."""
    from jobs.safety.toxicity_model import train
    from jobs.spark.safety import safety_facts

    monkeypatch.setenv("LMFORGE_PII_KEY", KEY)
    model = tmp_path / "tox.npz"
    cfg = load_config("local", {"locations": {"tox": str(model)}, "toxicity": {"model": "tox"}})
    with pytest.raises(ValueError, match=r"toxicity.model: .*tox.npz is not a file"):
        safety_facts(cfg)
    texts = ["you are a lovely person", "shut up you stupid bitch", "what a nice day", "go to hell idiot"] * 5
    train(texts, [2, 1, 2, 1] * 5, seed=0).save(model)
    first = safety_facts(cfg)
    train(texts, [2, 1, 2, 0] * 5, seed=0).save(model)
    second = safety_facts(cfg)
    assert first["pii_key_id"] == second["pii_key_id"] and first["toxicity_model"] != second["toxicity_model"]
    monkeypatch.setenv("LMFORGE_PII_KEY", "77" * 32)
    assert safety_facts(cfg)["pii_key_id"] != second["pii_key_id"]
    assert KEY not in json.dumps(first)  # an id of the key, never the key


def test_empty_corpus_gives_an_empty_report_and_a_missing_evals_folder_a_clear_error(
    tmp_path: Path, spark
) -> None:  # type: ignore[no-untyped-def]
    from jobs.spark.decontam import evals_listing
    from jobs.spark.diversity import run_diversity

    ctx = _context(tmp_path, spark, "diversity", "decontaminate", [])
    stats = run_diversity(ctx)
    assert stats["documents"] == 0 and stats["max_domain_share"] == 0.0
    assert gate("diversity", ctx.cfg, ctx.out, {})["success"]  # nothing to gate with the defaults
    missing = load_config(
        "local", {"locations": {"q": str(tmp_path / "nowhere")}, "decontam": {"evals": "q"}}
    )
    with pytest.raises(ValueError, match=r"decontam.evals: .*nowhere is not a folder"):
        evals_listing(missing)
