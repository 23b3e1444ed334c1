"""`lmforge pii`: the safety stage's PII redaction on a user's own JSON lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lmforge.cli import command, config_arguments


def _arguments(p: argparse.ArgumentParser) -> None:
    config_arguments(p)
    p.add_argument("--types", default=None, help="comma-separated PII types (default: the config's)")
    p.add_argument("--flag", action="store_true", help="report the spans, keep the text unchanged")
    p.add_argument("--regions", default=None, help="comma-separated regions for national phone formats")


@command(
    "pii",
    "PII redaction on JSON lines {id, text, source_type?, annotations?} from stdin, answering {id, text, "
    "counts, matches: [{type, start, end, rule}] (offsets in the input text), annotations}",
    _arguments,
)
def pii_command(args: argparse.Namespace) -> int:
    from lmforge.jsonl import answer_all

    cfg = pii_config(args)
    keys: list[bytes] = []  # loaded on the first social post only: other inputs need no key
    return 1 if answer_all(sys.stdin.buffer, sys.stdout, lambda obj: pii_answer(obj, cfg, keys)) else 0


def pii_config(args: argparse.Namespace) -> Any:
    """The config's `pii` section with the command line's choices applied (validated again)."""
    from pydantic import ValidationError

    from core.config import ConfigError, PiiConfig, load_config

    data = load_config(args.profile, args.overrides).pii.model_dump()
    if args.types:
        data["types"] = [t.strip() for t in args.types.split(",") if t.strip()]
    if args.regions:
        data["phone_regions"] = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    if args.flag:
        data["action"] = "flag"
    try:
        return PiiConfig.model_validate(data)
    except ValidationError as err:  # a bad option is a config error (exit 78), naming the field
        raise ConfigError(f"pii options: {err}") from None


def pii_answer(obj: dict[str, Any], cfg: Any, keys: list[bytes]) -> dict[str, Any]:
    """One answer; `annotations` only when the input carried any or is a social post."""
    from jobs.safety.pii import redact_row_with_matches
    from jobs.safety.pseudonym import load_key

    if not isinstance(obj.get("text"), str):
        raise ValueError("no string field text")
    annotations = obj.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ValueError("annotations must be an object")
    social = obj.get("source_type") == "social"
    if social and cfg.pseudonymise and not keys:
        keys.append(load_key(cfg))
    row = {"text": obj["text"], "source_type": obj.get("source_type"), "annotations": annotations}
    out, done = redact_row_with_matches(row, cfg, keys[0] if keys else b"")
    answer: dict[str, Any] = {
        "text": out["text"],
        "counts": done.counts,
        "matches": [{"type": m.type, "start": m.start, "end": m.end, "rule": m.rule} for m in done.matches],
        "truncated": done.truncated,
    }
    if annotations is not None or social:
        answer["annotations"] = out["annotations"]
    return answer
