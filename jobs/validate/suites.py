"""The expectation suites, as code: one function per kind of boundary, thresholds from
`ValidateConfig` (already resolved for the stage, `ValidateConfig.for_stage`).

A stage with documents gets `<stage>.schema` (columns and types of each part), `<stage>.data` (the
kept rows) and `<stage>.rejected` (the rejected rows); the tokenizer and shards stages get one
suite over their files. Each suite names the frame it runs on (jobs/validate/frames.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import great_expectations.expectations as gxe

from core.config import ValidateConfig
from core.copyright_policy import CLASS_ORDER
from core.registry import STAGES, downstream
from core.schema import DOCUMENT_SCHEMA, REJECTED_SCHEMA, SOURCE_TYPES
from jobs.validate.frames import type_name
from jobs.validate.vocabulary import SHAPE, reason_pattern

ID_PATTERN = r"^[0-9a-f]{32}$"  # core/schema.py document_id: sha256 prefix
TEXT_STAGES = frozenset(downstream(["extract"]))  # text is extracted from here on
DEDUPED = frozenset(downstream(["dedup"]))
CHECKS_LANGUAGE = frozenset({"quality"})
CHECKS_LICENSE = frozenset({"copyright"})
CHECKS_DOMAINS = frozenset({"quality", "copyright", "safety", "near_dedup", "decontaminate"})


@dataclass
class Suite:
    name: str
    frame: str  # which frame it runs on: schema, data, rejected, shards, tokenizer
    expectations: list[Any] = field(default_factory=list)


def schema_suite(stage: str, parts: list[str]) -> Suite:
    """Every part has exactly the contract's columns with the contract's types."""
    want = {"data": DOCUMENT_SCHEMA, "rejected": REJECTED_SCHEMA}
    signatures = sorted(f"{p}.{f.name}:{type_name(f.type)}" for p in parts for f in want[p])
    return Suite(
        f"{stage}.schema",
        "schema",
        [gxe.ExpectColumnDistinctValuesToEqualSet(column="signature", value_set=signatures)],
    )


def _ids(stage: str) -> list[Any]:
    """Ids are unique from dedup on only: before it the same page can arrive twice (the crawl and a
    WARC file of the same URL give the same id), and dedup keeps one of them."""
    out = [
        gxe.ExpectColumnValuesToNotBeNull(column="id"),
        gxe.ExpectColumnValuesToMatchRegex(column="id", regex=ID_PATTERN),
    ]
    return [*out, gxe.ExpectColumnValuesToBeUnique(column="id")] if stage in DEDUPED else out


def _source_types(stage: str) -> list[Any]:
    only = STAGES[stage].source_type
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="source_type"),
        gxe.ExpectColumnValuesToBeInSet(
            column="source_type", value_set=[only] if only else list(SOURCE_TYPES)
        ),
    ]


def data_suite(stage: str, g: ValidateConfig, expected_rows: int | None) -> Suite:
    """The kept documents: ids, source types, text length, and each stage's own checks."""
    low = g.min_text_chars if stage in TEXT_STAGES else 0
    out = [*_ids(stage), *_source_types(stage)]
    out.append(
        gxe.ExpectColumnValuesToBeBetween(column="text_chars", min_value=low, max_value=g.max_text_chars)
    )
    if expected_rows is not None:  # kept + rejected = the inputs' rows: nothing dropped silently
        out.append(gxe.ExpectTableRowCountToEqual(value=expected_rows))
    if stage in DEDUPED:
        out.append(gxe.ExpectColumnValuesToBeUnique(column="text_sha256", mostly=1 - g.max_duplicate_rate))
    if stage in CHECKS_LANGUAGE:
        out += _languages(g)
    if stage in CHECKS_LICENSE:
        out += _licenses(g)
    if stage in CHECKS_DOMAINS:
        out.append(gxe.ExpectColumnMaxToBeBetween(column="domain_share", max_value=g.max_domain_share))
    return Suite(f"{stage}.data", "data", out)


def _languages(g: ValidateConfig) -> list[Any]:
    """Share of documents with a language; optionally a minimum share per language (among those)."""
    out: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column="language", mostly=g.min_language_share)]
    for lang, share in sorted(g.min_language_shares.items()):
        out.append(gxe.ExpectColumnValuesToBeInSet(column="language", value_set=[lang], mostly=share))
    return out


def _licenses(g: ValidateConfig) -> list[Any]:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="license_class"),
        gxe.ExpectColumnValuesToBeInSet(column="license_class", value_set=list(CLASS_ORDER)),
        gxe.ExpectColumnValuesToNotBeInSet(
            column="license_class", value_set=["unknown"], mostly=1 - g.max_unknown_license_share
        ),
    ]


def rejected_suite(stage: str) -> Suite:
    """Every rejected row names this stage and a reason of its vocabulary (jobs/validate/vocabulary.py)."""
    out = [
        gxe.ExpectColumnValuesToNotBeNull(column="id"),  # not unique: three copies leave two rejects
        gxe.ExpectColumnValuesToNotBeNull(column="reject_reason"),
        gxe.ExpectColumnValuesToMatchRegex(column="reject_reason", regex=SHAPE),
        gxe.ExpectColumnValuesToBeInSet(column="reject_stage", value_set=[stage]),
    ]
    if (pattern := reason_pattern(stage)) is not None:
        out.append(gxe.ExpectColumnValuesToMatchRegex(column="reject_reason", regex=pattern))
    return Suite(f"{stage}.rejected", "rejected", out)


def shards_suite(g: ValidateConfig) -> Suite:
    """Every listed file exists and holds whole uint16 tokens, as many as meta.json says, each
    below the vocabulary size; both splits together hold at least `min_train_tokens`."""
    return Suite(
        "shards.files",
        "shards",
        [
            gxe.ExpectColumnValuesToBeBetween(column="missing_files", min_value=0, max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="odd_size_files", min_value=0, max_value=0),
            gxe.ExpectColumnPairValuesToBeEqual(column_A="file_tokens", column_B="meta_tokens"),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="vocab_size", column_B="max_token_id"),
            gxe.ExpectColumnSumToBeBetween(column="meta_tokens", min_value=g.min_train_tokens),
        ],
    )


def tokenizer_suite(vocab_size: int) -> Suite:
    """The vocabulary is within the configured size (shards store uint16) and has end-of-text."""
    return Suite(
        "tokenizer.vocab",
        "tokenizer",
        [
            gxe.ExpectColumnValuesToBeBetween(column="vocab_size", min_value=257, max_value=vocab_size),
            gxe.ExpectColumnValuesToBeInSet(column="has_eos", value_set=[True]),
        ],
    )


def diversity_suite() -> Suite:
    """Every bias and diversity gate (jobs/validate/frames.py `diversity_frame`) is within its bound:
    no domain above `diversity.max_domain_share`, each source and language at least its minimum."""
    return Suite(
        "diversity.gates",
        "diversity",
        [
            gxe.ExpectColumnValuesToNotBeNull(column="observed"),
            gxe.ExpectColumnValuesToBeBetween(column="observed", min_value=0, max_value=1),
            gxe.ExpectColumnValuesToBeBetween(column="margin", min_value=0),
        ],
    )
