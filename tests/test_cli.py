"""The `lmforge` command line: subcommands read off the registry, JSON lines in and out."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from core.registry import STAGES
from lmforge.jsonl import answer_all, read_objects


def lmforge(*args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", *args], input=stdin, capture_output=True, text=True, timeout=300
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_help_lists_the_registry_subcommands() -> None:
    out = lmforge("--help").stdout
    for name in ("stages", "stage", "run", "report", "demo", "extract", "quality"):
        assert f"    {name} " in out
    listed = [json.loads(line) for line in lmforge("stages").stdout.splitlines()]
    assert [s["name"] for s in listed] == list(STAGES)
    assert {s["name"] for s in listed if s["row_command"]} == {"extract", "quality", "copyright"}


PROSE = (
    "The river rose slowly through the night, and by morning the lower fields were under water. Farmers "
    "who had lived in the valley for most of their lives said they had never seen it climb so quickly. "
    "Some of them moved their animals to the hill behind the church, while others waited on the roads "
    "with carts full of grain and tools. The school stayed closed for a week. When the water finally went "
    "down, it left a thin layer of mud over everything, and the children spent the spring helping their "
    "parents clean out barns, cellars and kitchens. Years later, people still measured other floods "
    "against that one."
)


def test_quality_answers_one_line_per_input_including_bad_ones() -> None:
    lines = [
        json.dumps({"id": "good", "text": PROSE, "source_type": "book"}),
        json.dumps({"id": "short", "text": "two words"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "no-text"}),
        json.dumps({"id": "bad-source", "text": PROSE, "source_type": "radio"}),
        "",
    ]
    done = lmforge("quality", stdin="\n".join(lines) + "\n", check=False)
    assert done.returncode == 1  # some inputs failed
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 6  # the blank line is no input
    by_id = {a["id"]: a for a in answers if a["id"]}
    good = by_id["good"]
    assert set(good) == {"id", "keep", "reason", "language", "scores"}
    assert good["keep"] is True and good["reason"] is None and good["language"] == "en"
    assert good["scores"]["words"] == 109.0  # `quality.words`, prefix stripped, as a number
    assert by_id["short"]["keep"] is False and isinstance(by_id["short"]["reason"], str)
    assert "must be a string" in by_id["no-text"]["error"]
    assert "source_type" in by_id["bad-source"]["error"]
    assert [a["line"] for a in answers if a["id"] is None] == [3, 4]


def test_quality_train_is_a_sub_action_and_its_options_need_it(tmp_path: Path) -> None:
    misplaced = lmforge("quality", "--out", str(tmp_path / "m.npz"), check=False)
    assert misplaced.returncode == 2 and "belong to `lmforge quality train`" in misplaced.stderr
    incomplete = lmforge("quality", "train", "--positives", str(tmp_path), check=False)
    assert incomplete.returncode == 2 and "needs --positives" in incomplete.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    args = ("--positives", str(bad), "--negatives", str(bad), "--out", str(tmp_path / "m.npz"))
    refused = lmforge("quality", "train", *args, check=False)
    assert refused.returncode == 2 and "bad.jsonl:2: no string field text" in refused.stderr


def test_extract_fills_text_from_html_and_never_echoes_it() -> None:
    html = "<html><head><title>T</title></head><body><article><p>" + "Words of the page. " * 20
    obj = {"id": 7, "raw_content": html + "</p></article></body></html>", "origin": "https://a.org/x"}
    answer = json.loads(lmforge("extract", stdin=json.dumps(obj) + "\n").stdout)
    assert answer["id"] == 7 and answer["kept"] is True and answer["language"] == "en"
    assert answer["text"].startswith("Words of the page.") and "raw_content" not in answer


def test_long_lines_are_refused_without_stopping_the_stream() -> None:
    data = b'{"id": 1, "text": "ok"}\n' + b"x" * 5000 + b"\n" + b'{"id": 2, "text": "ok"}\n'
    got = list(read_objects(io.BytesIO(data), max_line_bytes=100))
    assert got[0] == (1, {"id": 1, "text": "ok"})
    assert got[1] == (2, "line 2: longer than 100 bytes")
    assert got[2] == (3, {"id": 2, "text": "ok"})
    out = io.StringIO()
    assert answer_all(io.BytesIO(b'{"id": 1}\n[1]\n'), out, lambda o: {"seen": True}) == 1
    assert json.loads(out.getvalue().splitlines()[0]) == {"id": 1, "seen": True}


def test_stage_skips_when_current_and_reruns_on_force_then_report(tmp_path: Path) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "a.txt").write_text("A short book about nothing in particular.\n" * 50)
    overrides = json.dumps(
        {
            "storage": {"root": str(tmp_path / "store")},
            "sources": {"books_dir": str(books), "include": ["books"]},
        }
    )
    first = json.loads(lmforge("stage", "ingest", "--run-id", "c1", "--overrides", overrides).stdout)
    assert first == {**first, "skipped": False, "rows": {"data": 1, "rejected": 0}}
    again = json.loads(lmforge("stage", "ingest", "--run-id", "c1", "--overrides", overrides).stdout)
    assert again["skipped"] is True
    forced = lmforge("stage", "ingest", "--run-id", "c1", "--overrides", overrides, "--rerun-from", "ingest")
    assert json.loads(forced.stdout)["skipped"] is False
    report = lmforge("report", "c1", "--overrides", overrides)
    assert "ingest" in report.stdout and "book" in report.stdout
    assert (tmp_path / "store/runs/c1/summary.json").exists()
    bad = lmforge("stage", "ingest", "--run-id", "../x", "--overrides", overrides, check=False)
    assert bad.returncode == 2 and "invalid run id" in bad.stderr
    missing = lmforge("stage", "extract", "--run-id", "c1", "--overrides", overrides, check=False)
    assert missing.returncode == 2 and "stage 'crawl' of run 'c1' is not committed" in missing.stderr
