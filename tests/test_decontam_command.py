"""`lmforge decontaminate --evals DIR` as a user runs it: a real subprocess over JSON lines, real
benchmark files (tests/decontam_corpus.py), one answer per input line, bad lines answered with an
error while the stream goes on, the hits per benchmark reported on stderr, a bad folder exit 2."""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import decontam_corpus as corpus

ROOT = Path(__file__).resolve().parents[1]
LMFORGE = [sys.executable, "-m", "lmforge"]


def run(args: list[str], lines: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LMFORGE, "decontaminate", *args], input="\n".join(lines) + "\n", capture_output=True,
        text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("evals")
    return folder, corpus.write_benchmarks(folder)


def _inputs(found: dict[str, list[str]]) -> tuple[list[str], dict[str, Any]]:
    rng, docs = random.Random(5), corpus.documents()
    item = next(p for p in found[corpus.RELATED] if len(p.split()) > 60)
    source = "licenses" if "licenses" in found else corpus.RELATED
    other = next(p for p in found[source][5:] if len(p.split()) > 60)
    planted, a, b = corpus.plant(rng, docs[10], item)
    edited, _, _ = corpus.plant(rng, docs[11], corpus.edit_words(rng, other, docs[12].split()))
    lines = [
        json.dumps({"id": "planted", "text": planted}),
        json.dumps({"id": "edited", "text": edited}),
        json.dumps({"id": "clean", "text": docs[13]}),
        "{not json",
        json.dumps({"id": "no-text", "text": 42}),
        json.dumps({"id": "after", "text": f"Intro.\n{item}\nOutro line with several more words here."}),
    ]
    return lines, {"planted": (planted, a, b), "other": source}


def test_decontaminate_answers_every_line(evals: tuple[Path, dict[str, list[str]]]) -> None:
    folder, found = evals
    lines, facts = _inputs(found)
    done = run(["--evals", str(folder)], lines)
    assert done.returncode == 1, done.stderr[-3000:]  # two inputs failed
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(lines)
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    _, a, b = facts["planted"]
    got = by_id["planted"]
    assert got["contaminated"] and got["benchmarks"] == [corpus.RELATED] and got["action"] == "drop"
    assert got["reason"] == f"decontam_overlap:{corpus.RELATED}" and "text" not in got
    [span] = got["spans"]
    assert span["start"] == a and span["end"] == b and span["benchmark"] == corpus.RELATED
    assert by_id["edited"]["benchmarks"] == [facts["other"]]
    assert by_id["clean"] == {**by_id["clean"], "contaminated": False, "action": "keep", "spans": []}
    assert "no string field text" in by_id["no-text"]["error"]
    assert by_id["after"]["contaminated"]
    assert [x["line"] for x in answers if x["id"] is None] == [4]
    stats, hits = (json.loads(line) for line in done.stderr.strip().splitlines()[-2:])
    assert stats["benchmarks"][corpus.RELATED]["items"] == len(found[corpus.RELATED])
    assert hits["hits"]["documents"] == 4 and hits["hits"]["contaminated"] == 3
    assert hits["hits"]["benchmarks"][corpus.RELATED]["documents"] == 2


def test_cut_returns_the_text_without_the_span(evals: tuple[Path, dict[str, list[str]]]) -> None:
    folder, found = evals
    lines, facts = _inputs(found)
    done = run(["--evals", str(folder), "--action", "cut", "--min-hits", "2"], lines[:3])
    assert done.returncode == 0, done.stderr[-3000:]
    by_id = {a["id"]: a for a in map(json.loads, done.stdout.splitlines())}
    planted, a, b = facts["planted"]
    assert by_id["planted"]["action"] == "cut" and by_id["planted"]["reason"] is None
    assert by_id["planted"]["text"] == planted[:a].rstrip() + "\n" + planted[b:].lstrip()
    assert by_id["clean"]["text"] == json.loads(lines[2])["text"] and by_id["clean"]["action"] == "keep"


def test_bad_folder_exits_2(tmp_path: Path) -> None:
    done = run(["--evals", str(tmp_path / "missing")], [])
    assert done.returncode == 2 and "not a folder" in done.stderr


def test_empty_folder_or_bad_setting_is_a_value_error(tmp_path: Path) -> None:
    """What `lmforge` turns into one stderr line and exit 2 (lmforge/cli.py `main`), in-process."""
    from lmforge.cli import build_parser
    from lmforge.decontam_commands import decontaminate

    build_parser()  # registers the subcommand's arguments
    args = argparse.Namespace(evals=tmp_path, ngram=None, action=None, min_hits=None, fields=None)
    with pytest.raises(ValueError, match=re.escape("no .jsonl")):
        decontaminate(args)
    (tmp_path / "qa.txt").write_text("a benchmark item with enough words to count here\n")
    with pytest.raises(ValueError, match="ngram"):
        decontaminate(argparse.Namespace(**{**vars(args), "ngram": 2}))
