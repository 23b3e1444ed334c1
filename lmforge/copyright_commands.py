"""`lmforge license`: the copyright stage's licence detector on a user's own JSON lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lmforge.cli import command


@command(
    "license",
    "Licence detection on JSON lines {id, text} from stdin, answering {id, license, confidence, "
    "evidence}: an SPDX expression from ScanCode's licence database, or null when none is found",
)
def license_command(args: argparse.Namespace) -> int:
    from lmforge.jsonl import answer_all

    return 1 if answer_all(sys.stdin.buffer, sys.stdout, license_answer) else 0


def license_answer(obj: dict[str, Any]) -> dict[str, Any]:
    """One answer: `license` null (unknown) when no tag, licence text or notice is found."""
    from jobs.copyright.licenses import detect

    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError("no string field text")
    found = detect(text)
    if found is None:
        return {"license": None, "confidence": None, "evidence": []}
    return found.as_dict()
