"""Which reject reasons each stage may write, as rule families read off the code that emits them.

Every filter names its rule `<family>_<rule>[:<value>]` (README, "The contracts"); a stage's
families are those of the modules its registry entry runs (jobs/readers for ingest, jobs/filters
for quality, ...). A reason outside its stage's families means a rule escaped the convention or a
row was rejected by the wrong stage, and the funnel would misreport it.
"""

from __future__ import annotations

import re

SHAPE = r"^[a-z0-9_]+(?::.*)?$"

# stage -> (families written as `<family>_<rule>`, whole rule names)
_VOCABULARY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ingest": (("ingest", "book", "code", "paper", "social", "synthetic"), ()),
    "warc": (("warc",), ()),
    "extract": (("extract",), ()),
    "dedup": ((), ("exact_duplicate", "exact_duplicate_url", "repeated_lines")),
    "quality": (
        (
            "quality",
            "classifier",
            "gopher",
            "c4",
            "fineweb",
            "starcoder",
            "codex",
            "code",
            "social",
            "synthetic",
        ),
        ("language",),
    ),
    "copyright": (("copyright",), ()),
    "safety": (("toxicity",), ()),
    "near_dedup": ((), ("minhash_duplicate",)),
    "decontaminate": (("decontam",), ()),
}


def reason_pattern(stage: str) -> str | None:
    """A regex every reject reason of `stage` matches (None: the stage rejects nothing by design)."""
    if stage not in _VOCABULARY:
        return None
    families, rules = _VOCABULARY[stage]
    names = [f"{re.escape(f)}_[a-z0-9_]+" for f in families] + [re.escape(r) for r in rules]
    return rf"^(?:{'|'.join(names)})(?::.*)?$"
