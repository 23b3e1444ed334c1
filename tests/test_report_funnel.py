"""The run summary's funnel per source and per rule (documents and tokens), its language mix and its
charts, built by the real report code from datasets committed with the real `commit`.

The tiny run: ingest drops an empty code file; extract turns a WARC page's HTML into text; dedup drops
an exact duplicate; quality drops by three rules with measured values in their reasons; near_dedup
keeps the rest. Texts are short word lists, so whitespace-word counts are checked by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import TokenizerConfig
from core.datasets import commit
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA, make_document
from core.storage import LocalStorage
from jobs.funnel import rule_of
from jobs.report import build_summary, render_summary, write_summary
from jobs.tokens.tokenizer import train_tokenizer

RUN = "f1"
HTML = "<div> <p>hello world</p> </div>"  # 4 whitespace words before extraction, 2 after


def doc(source: str, name: str, text: str, language: str | None = None, **fields: Any) -> dict[str, Any]:
    return make_document(source, name, text, language=language, **fields)


B1, B2 = doc("book", "b1", "one two three", "en"), doc("book", "b2", "alpha beta {curly} gamma", "en")
S1, S2, S3 = doc("social", "s1", "hi there"), doc("social", "s2", "a b c d"), doc("social", "s3", "x y")
S4, S5 = doc("social", "s4", "p q r"), doc("social", "s5", "dup text here")
W1_RAW = doc("web", "w1", "", raw_content=HTML)
W1 = doc("web", "w1", "hello world", "de")
C0 = doc("code", "c0", "")


def rejected(row: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    return {**row, "reject_stage": stage, "reject_reason": reason}


def put(
    storage: LocalStorage, tmp: Path, stage: str, data: list[dict[str, Any]], rej: list[dict[str, Any]]
) -> None:
    """Commit `data/` and `rejected/` parquet parts as the stage's dataset, the way stages do."""
    folder = tmp / "work" / stage
    for part, rows, schema in (("data", data, DOCUMENT_SCHEMA), ("rejected", rej, REJECTED_SCHEMA)):
        (folder / part).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / part / "part-0.parquet")
    commit(storage, RUN, stage, folder, config={}, inputs={})


def build_run(tmp: Path) -> LocalStorage:
    storage = LocalStorage(str(tmp / "store"))
    put(storage, tmp, "ingest", [B1, B2, S1, S2, S3, S4, S5], [rejected(C0, "ingest", "ingest_empty_file")])
    put(storage, tmp, "warc", [W1_RAW], [])
    put(storage, tmp, "extract", [B1, B2, S1, S2, S3, S4, S5, W1], [])
    put(storage, tmp, "dedup", [B1, B2, S1, S2, S3, S4, W1], [rejected(S5, "dedup", "exact_duplicate")])
    quality_rejects = [
        rejected(B2, "quality", "c4_curly_bracket"),
        rejected(S1, "quality", "gopher_min_words:2"),
        rejected(S3, "quality", "language:de:0.91"),
        rejected(S4, "quality", "gopher_min_words:3"),
    ]
    put(storage, tmp, "quality", [B1, S2, W1], quality_rejects)
    put(storage, tmp, "copyright", [B1, S2, W1], [])
    put(storage, tmp, "safety", [B1, S2, W1], [])
    put(storage, tmp, "near_dedup", [B1, S2, W1], [])
    put(storage, tmp, "decontaminate", [B1, S2, W1], [])
    return storage


def stage(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in summary["funnel"] if f["stage"] == name)


def counts(d_in: int, d_out: int, d_rm: int, t_in: int, t_out: int, t_rm: int) -> dict[str, int]:
    keys = ("documents_in", "documents_out", "documents_removed", "tokens_in", "tokens_out", "tokens_removed")
    return dict(zip(keys, (d_in, d_out, d_rm, t_in, t_out, t_rm), strict=True))


@pytest.mark.parametrize(
    ("reason", "rule"),
    [
        ("gopher_min_words:12", "gopher_min_words"),
        ("language:de:0.91", "language"),
        ("c4_curly_bracket", "c4_curly_bracket"),
        ("fineweb_line_punct:0.08", "fineweb_line_punct"),
        (None, "unknown"),
    ],
)
def test_rule_is_the_reason_up_to_the_first_colon(reason: str | None, rule: str) -> None:
    assert rule_of(reason) == rule


def test_funnel_per_source_and_rule_in_whitespace_words(tmp_path: Path) -> None:
    summary = build_summary(build_run(tmp_path), RUN)
    assert summary["token_unit"] == "whitespace_words"  # no tokenizer committed
    assert [f["stage"] for f in summary["funnel"]] == [
        "ingest", "extract", "dedup", "quality", "copyright", "safety", "near_dedup", "decontaminate"
    ]  # fmt: skip
    ingest = stage(summary, "ingest")
    assert ingest["by_source"] == {
        "book": counts(2, 2, 0, 7, 7, 0),
        "code": counts(1, 0, 1, 0, 0, 0),
        "social": counts(5, 5, 0, 14, 14, 0),
    }
    assert ingest["removed_by_rule"] == {"ingest_empty_file": {"code": {"documents": 1, "tokens": 0}}}
    extract = stage(summary, "extract")  # the page's tokens in are its HTML's: `text` is not filled yet
    assert extract["by_source"]["web"] == counts(1, 1, 0, 4, 2, 0)
    assert (extract["documents_in"], extract["tokens_in"], extract["tokens_out"]) == (8, 25, 23)
    dedup = stage(summary, "dedup")
    assert dedup["removed_by_rule"] == {"exact_duplicate": {"social": {"documents": 1, "tokens": 3}}}
    quality = stage(summary, "quality")
    assert quality["by_source"] == {
        "book": counts(2, 1, 1, 7, 3, 4),
        "social": counts(4, 1, 3, 11, 4, 7),
        "web": counts(1, 1, 0, 2, 2, 0),
    }
    assert quality["removed_by_rule"] == {
        "c4_curly_bracket": {"book": {"documents": 1, "tokens": 4}},
        "gopher_min_words": {"social": {"documents": 2, "tokens": 5}},
        "language": {"social": {"documents": 1, "tokens": 2}},
    }
    assert (quality["tokens_in"], quality["tokens_out"], quality["tokens_removed"]) == (20, 9, 11)
    assert (quality["documents_in"], quality["documents_out"], quality["rejected"]) == (7, 3, 4)
    assert stage(summary, "near_dedup")["removed_by_rule"] == {}


def test_language_mix_of_what_reaches_the_tokenizer(tmp_path: Path) -> None:
    mix = build_summary(build_run(tmp_path), RUN)["language_mix"]
    assert mix == {
        "stage": "decontaminate",
        "by_source": {
            "book": {"documents": 1, "tokens": 3, "languages": {"en": {"documents": 1, "tokens": 3}},
                     "no_language_share": 0.0},
            "social": {"documents": 1, "tokens": 4, "languages": {"none": {"documents": 1, "tokens": 4}},
                       "no_language_share": 1.0},
            "web": {"documents": 1, "tokens": 2, "languages": {"de": {"documents": 1, "tokens": 2}},
                    "no_language_share": 0.0},
        },
    }  # fmt: skip


def test_tokens_are_the_run_tokenizers_when_it_is_committed(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    storage = build_run(tmp_path)
    out = tmp_path / "work" / "tokenizer"
    texts = [r["text"] for r in (B1, B2, S1, S2, S3, S4, S5, W1)] * 20
    train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1), out / "tokenizer.json")
    commit(storage, RUN, "tokenizer", out, config={}, inputs={})
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))

    def n(*rows: dict[str, Any]) -> int:
        return sum(len(tok.encode(r["text"] or r["raw_content"], add_special_tokens=False).ids) for r in rows)

    summary = build_summary(storage, RUN)
    assert summary["token_unit"] == "tokenizer"
    quality = stage(summary, "quality")
    assert quality["by_source"]["social"] == counts(4, 1, 3, n(S1, S2, S3, S4), n(S2), n(S1, S3, S4))
    assert quality["removed_by_rule"]["gopher_min_words"] == {"social": {"documents": 2, "tokens": n(S1, S4)}}
    assert stage(summary, "extract")["by_source"]["web"]["tokens_in"] == n(W1_RAW) > n(W1)
    assert summary["language_mix"]["by_source"]["book"]["tokens"] == n(B1)


def test_write_summary_stores_the_charts_next_to_it_and_renders_the_funnel(tmp_path: Path) -> None:
    build_run(tmp_path)
    overrides = json.dumps({"storage": {"root": str(tmp_path / "store")}})
    uri = write_summary(RUN, None, overrides)
    summary = json.loads(Path(uri).read_text())
    assert set(summary["charts"]) == {"funnel", "rules"}
    for chart in summary["charts"].values():
        path = Path(chart)
        assert path.parent == Path(uri).parent
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and path.stat().st_size > 5000
    text = render_summary(summary)
    assert "tokens: whitespace words" in text
    assert "gopher_min_words=2/5, language=1/2" in text  # the social row of the quality stage
    assert "c4_curly_bracket=1, gopher_min_words=2, language=1" in text  # the quality stage's row
    assert "no language 100.0%" in text and "en=1/3" in text


def test_an_empty_run_still_summarises(tmp_path: Path) -> None:
    """Nothing committed: zero counts, an empty language mix, and the charts still draw."""
    overrides = json.dumps({"storage": {"root": str(tmp_path / "store")}})
    summary = json.loads(Path(write_summary("empty", None, overrides)).read_text())
    assert stage(summary, "quality")["by_source"] == {} and summary["language_mix"]["by_source"] == {}
    assert Path(summary["charts"]["rules"]).read_bytes().startswith(b"\x89PNG")
    assert "Funnel" in render_summary(summary)
