"""`lmforge license` as a user runs it: a real subprocess reading JSON lines, one answer per line,
a bad line answered with an error (lmforge/jsonl.py) while the lines around it are still answered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
    'associated documentation files (the "Software"), to deal in the Software without restriction, '
    "including without limitation the rights to use, copy, modify, merge, publish, distribute, "
    "sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is "
    "furnished to do so, subject to the following conditions:\n\nThe above copyright notice and this "
    "permission notice shall be included in all copies or substantial portions of the Software.\n\n"
    'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT '
    "NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND "
    "NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES "
    "OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN "
    "CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.\n"
)


def test_license_subcommand_answers_every_line() -> None:
    lines = [
        json.dumps({"id": "mit", "text": "MIT License\n\nCopyright (c) 2024 Jane Doe\n\n" + MIT}),
        json.dumps({"id": "tag", "text": "/* SPDX-License-Identifier: GPL-2.0+ */\nint main(void);\n"}),
        json.dumps({"id": "none", "text": "The river rose slowly through the night. " * 20}),
        "{not json",
        json.dumps({"id": "no-text", "body": "x"}),
        json.dumps({"id": "after", "text": "// SPDX-License-Identifier: Apache-2.0\n"}),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "lmforge", "license"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # some inputs failed
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(lines)
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    assert by_id["mit"]["license"] == "MIT" and by_id["mit"]["confidence"] >= 0.8
    assert by_id["mit"]["evidence"][0]["rule"] in {"full-text", "text", "notice"}
    assert by_id["tag"] == {**by_id["tag"], "license": "GPL-2.0-or-later", "confidence": 1.0}
    assert by_id["tag"]["evidence"][0]["rule"] == "spdx-tag"
    assert by_id["none"] == {"id": "none", "license": None, "confidence": None, "evidence": []}
    assert "no string field text" in by_id["no-text"]["error"] and by_id["no-text"]["line"] == 5
    assert by_id["after"]["license"] == "Apache-2.0"  # the stream goes on after bad lines
    bad = [a for a in answers if a["id"] is None]
    assert len(bad) == 1 and bad[0]["line"] == 4 and "not JSON" in bad[0]["error"]
