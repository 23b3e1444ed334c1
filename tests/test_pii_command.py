"""`lmforge pii` as a user runs it: a real subprocess reading JSON lines, one answer per line with
offsets into the input text, social posts pseudonymised under the environment's key, bad lines
answered with an error while the lines around them are still answered (lmforge/jsonl.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobs.safety.pseudonym import pseudonym

ROOT = Path(__file__).resolve().parents[1]
KEY_HEX = "0f" * 32


def _run(lines: list[str], *options: str, home: Path) -> tuple[int, list[dict], str]:
    env = {**os.environ, "LMFORGE_PII_KEY": KEY_HEX, "LMFORGE_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", "pii", *options],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_pii_subcommand_answers_every_line(tmp_path: Path) -> None:
    text = "Write to jane.doe@example.org or call +44 20 7946 0958 from 10.0.0.7."
    social = {
        "id": "post",
        "source_type": "social",
        "text": "@Bob mail me: bob@example.net",
        "annotations": {"social.author": "@carol", "social.mentions": json.dumps(["@Bob"])},
    }
    lines = [
        json.dumps({"id": "doc", "text": text}),
        json.dumps(social),
        "{not json",
        json.dumps({"id": "no-text", "body": "x"}),
        json.dumps({"id": "clean", "text": "version 1.2.3.4 released 2023-05-25"}),
    ]
    status, answers, err = _run(lines, home=tmp_path)
    assert status == 1, err[-3000:] and len(answers) == len(lines)
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    doc = by_id["doc"]
    assert doc["text"] == "Write to <EMAIL> or call <PHONE> from <IP_ADDRESS>."
    assert [text[m["start"] : m["end"]] for m in doc["matches"]] == [
        "jane.doe@example.org",
        "+44 20 7946 0958",
        "10.0.0.7",
    ]
    assert doc["counts"] == {"email": 1, "phone": 1, "ip": 1, "card": 0, "iban": 0, "secret": 0}
    assert "annotations" not in doc
    post = by_id["post"]
    key = bytes.fromhex(KEY_HEX)
    assert post["text"] == "@user mail me: <EMAIL>"
    assert post["annotations"]["social.author"] == pseudonym("carol", key)
    assert json.loads(post["annotations"]["social.mentions"]) == [pseudonym("bob", key)]
    assert post["annotations"]["pii.email"] == "1" and post["annotations"]["pii.pseudonymised"] == "1"
    assert by_id["clean"]["matches"] == [] and by_id["clean"]["text"] == "version 1.2.3.4 released 2023-05-25"
    assert "no string field text" in by_id["no-text"]["error"] and by_id["no-text"]["line"] == 4
    bad = [a for a in answers if a["id"] is None]
    assert len(bad) == 1 and bad[0]["line"] == 3 and "not JSON" in bad[0]["error"]
    assert not (tmp_path / ".lmforge").exists()  # the key came from the environment


def test_pii_subcommand_flag_and_types(tmp_path: Path) -> None:
    text = "jane@example.org, 4111 1111 1111 1111, DE89 3704 0044 0532 0130 00"
    status, answers, err = _run(
        [json.dumps({"id": 1, "text": text})], "--flag", "--types", "card,iban", home=tmp_path
    )
    assert status == 0, err[-3000:]
    (answer,) = answers
    assert answer["text"] == text  # flagged, not redacted
    assert [(m["type"], m["rule"]) for m in answer["matches"]] == [("card", "luhn"), ("iban", "iban")]
    assert answer["counts"] == {"card": 1, "iban": 1}
    status, answers, err = _run([json.dumps({"id": 2, "text": "x"})], "--types", "email,nope", home=tmp_path)
    assert status == 78 and answers == [] and "types" in err  # EXIT_CONFIG: a retry cannot help
    brazil = json.dumps({"id": 3, "text": "Tel (11) 91234-5678"})
    assert (
        _run([brazil], home=tmp_path)[1][0]["counts"]["phone"] == 0
    )  # not a national format read by default
    assert _run([brazil], "--regions", "br", home=tmp_path)[1][0]["text"] == "Tel <PHONE>"
