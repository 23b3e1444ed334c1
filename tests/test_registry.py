"""The stage registry is consistent: inputs declared earlier, every named function exists."""

from __future__ import annotations

import pytest

from core.config import PipelineConfig
from core.plans import resolve
from core.registry import STAGES, check_registry, dag_stages, downstream


def test_order_is_topological_and_names_resolve() -> None:
    check_registry()
    for stage in STAGES.values():
        assert callable(resolve(stage.adapter)), stage.adapter
        for entry in (stage.row_logic, stage.external):
            assert entry is None or callable(resolve(entry)), entry
        assert all(section in PipelineConfig.model_fields for section in stage.config), stage.config
        assert stage.description


def test_downstream_is_what_a_rerun_must_force() -> None:
    assert downstream(["quality"]) == [
        "quality",
        "copyright",
        "safety",
        "near_dedup",
        "decontaminate",
        "diversity",
        "tokenizer",
        "shards",
        "pretrain",
    ]
    # copyright reads the warc stage's archived robots.txt: a warc rerun forces it, not extract's path
    assert "copyright" in downstream(["warc"])
    assert downstream(["tokenizer"]) == ["tokenizer", "shards", "pretrain"]
    assert downstream([]) == []
    assert downstream([s.name for s in STAGES.values() if not s.inputs]) == list(STAGES)


def test_copyright_sits_between_quality_and_near_dedup() -> None:
    names = list(STAGES)
    assert names.index("quality") < names.index("copyright") < names.index("near_dedup")
    assert STAGES["copyright"].inputs == ("quality",) and STAGES["safety"].inputs == ("copyright",)
    assert STAGES["copyright"].upstream == ("quality", "warc")


def test_redaction_before_near_dedup_and_decontamination_before_the_tokenizer() -> None:
    """PII is redacted before near-dedup (documents differing only in an address collapse; the keeper
    is redacted); benchmarks are removed after it (fewer documents to check) and before the tokenizer
    and shards see them; the diversity report reads what the tokenizer reads."""
    assert STAGES["near_dedup"].inputs == ("safety",)
    assert STAGES["decontaminate"].inputs == ("near_dedup",)
    assert STAGES["tokenizer"].inputs == ("decontaminate",)
    assert STAGES["shards"].inputs == ("decontaminate", "tokenizer")
    assert STAGES["diversity"].inputs == ("decontaminate",)


def test_dags_split_the_registry() -> None:
    assert [s.name for s in dag_stages("pretrain")] == ["pretrain"]
    assert len(dag_stages("curation")) + 1 == len(STAGES)


def test_unknown_stage_is_a_clear_error() -> None:
    from core.plans import stage

    with pytest.raises(ValueError, match="unknown stage 'nope'; known: crawl, ingest"):
        stage("nope")
