"""`lmforge toxicity` and `lmforge toxicity train` as a user runs them: real subprocesses reading JSON
lines (one answer per input, bad lines answered with an error) and training on labelled files: a
seeded sample of the real Davidson et al. (2017) tweets (CSV, 0/1/2 labels) and JSON lines with
class names in columns the user names."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DAVIDSON = ROOT.parent / "shared/data/social/davidson-tweets.csv"


def lmforge(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lmforge", "toxicity", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def answers(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_lexicon_answers_every_line() -> None:
    lines = [
        json.dumps({"id": "en", "text": "shut up you stupid b!tch"}),
        json.dumps({"id": "fr", "text": "Quel connard", "language": "fr"}),
        json.dumps({"id": "clean", "text": "The committee meets on Tuesday."}),
        "{not json",
        json.dumps({"id": "no-text", "body": "x"}),
        json.dumps({"id": "after", "text": ""}),
    ]
    done = lmforge("--threshold", "0.3", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1, done.stderr[-3000:]  # some inputs failed
    got = answers(done)
    assert len(got) == len(lines)
    by_id = {a["id"]: a for a in got if a["id"] is not None}
    assert (
        by_id["en"]["flag"] is True and by_id["en"]["terms"] == ["b!tch"] and by_id["en"]["lexicon_hits"] == 1
    )
    assert by_id["en"]["score"] == by_id["en"]["lexicon"] and "probabilities" not in by_id["en"]
    assert by_id["fr"]["language"] == "fr" and by_id["fr"]["terms"] == ["connard"]
    assert by_id["clean"] == {**by_id["clean"], "score": 0, "flag": False, "terms": []}
    assert "no string field text" in by_id["no-text"]["error"] and by_id["no-text"]["line"] == 5
    assert by_id["after"]["score"] == 0  # the stream goes on after bad lines
    bad = [a for a in got if a["id"] is None]
    assert len(bad) == 1 and bad[0]["line"] == 4 and "not JSON" in bad[0]["error"]


@pytest.mark.skipif(not DAVIDSON.is_file(), reason="../shared/data is absent")
def test_train_on_davidson_sample_then_score_with_the_model(tmp_path: Path) -> None:
    with DAVIDSON.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pick = np.random.default_rng(2).permutation(len(rows))[:1500]
    sample = tmp_path / "tweets.csv"
    with sample.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[int(i)] for i in pick)
    model = tmp_path / "tox.npz"
    done = lmforge("train", str(sample), "--out", str(model), "--seed", "3", "--n-features", "4096")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["n_train"] == 1200 and len(report["sha256"]) == 64
    assert 0.5 < report["metrics"]["weighted"]["f1"] <= 1 and report["metrics"]["n"] == 300
    docs = [{"id": i, "text": rows[int(j)]["tweet"]} for i, j in enumerate(pick[:20])]
    scored = lmforge(
        "--model", str(model), "--sha256", report["sha256"], stdin="".join(json.dumps(d) + "\n" for d in docs)
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    got = answers(scored)
    assert [a["id"] for a in got] == list(range(20))
    for a in got:
        p = a["probabilities"]
        assert set(p) == {"hate", "offensive", "neither"} and abs(sum(p.values()) - 1) < 1e-3
        assert a["score"] == pytest.approx(p["hate"] + p["offensive"], abs=2e-4)
        assert a["flag"] == (a["score"] >= 0.5)
    wrong = lmforge("--model", str(model), "--sha256", "0" * 64, stdin=json.dumps(docs[0]) + "\n")
    assert wrong.returncode == 2 and "sha256 is" in wrong.stderr


def test_train_on_jsonl_with_named_labels_and_columns(tmp_path: Path) -> None:
    texts = {
        "hate": "I hate those {} people, they should all go away",
        "offensive": "shut up you {} idiot, what a stupid thing",
        "neither": "the {} weather report says rain on tuesday",
    }
    data = tmp_path / "labelled.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for label, template in texts.items():
            for i in range(30):
                fh.write(json.dumps({"body": template.format(f"w{i}"), "kind": label}) + "\n")
    model = tmp_path / "m.npz"
    done = lmforge(
        "train",
        str(data),
        "--out",
        str(model),
        "--text-column",
        "body",
        "--label-column",
        "kind",
        "--n-features",
        "1024",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["counts"] == {"hate": 24, "offensive": 24, "neither": 24}
    assert report["metrics"]["accuracy"] == 1.0
    missing = lmforge("train", str(data), "--out", str(model))  # Davidson's default columns are absent
    assert missing.returncode == 2 and "no text in 'tweet'" in missing.stderr
    bad_label = tmp_path / "bad.jsonl"
    bad_label.write_text(json.dumps({"tweet": "x", "class": "spam"}) + "\n", encoding="utf-8")
    refused = lmforge("train", str(bad_label), "--out", str(model))
    assert refused.returncode == 2 and "label 'spam'" in refused.stderr
