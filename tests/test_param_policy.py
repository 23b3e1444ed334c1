"""Trigger params and DAG overrides cannot redirect a run, carry secrets or exceed bounds."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from core.config import ConfigError, PipelineConfig, load_config
from core.overrides import OVERRIDABLE, check_overrides

FORBIDDEN = [
    ({"storage": {"root": "/"}}, "storage"),
    ({"storage": {"endpoint_url": "http://evil.example:9000"}}, "storage"),
    ({"ray": {"address": "http://evil.example:8265"}}, "ray.address"),
    ({"spark": {"master": "spark://evil.example:7077"}}, "spark.master"),
    ({"spark": {"conn_id": "other"}}, "spark.conn_id"),
    ({"crawl": {"allow_loopback": True}}, "crawl.allow_loopback"),
    ({"crawl": {"honor_ai_optout": False}}, "crawl.honor_ai_optout"),
    ({"crawl": {"max_bytes": 10**9}}, "crawl.max_bytes"),
    ({"crawl": {"user_agent": "x"}}, "crawl.user_agent"),
    ({"crawl": {"max_crawl_delay_s": 3600}}, "crawl.max_crawl_delay_s"),
    ({"crawl": {"deny_patterns": ["(a+)+$"]}}, "crawl.deny_patterns"),
    ({"sources": {"code_dir": "/"}}, "sources.code_dir"),
    ({"sources": {"books_dir": "/etc"}}, "sources.books_dir"),
    ({"sources": {"social_paths": ["/etc/passwd"]}}, "sources.social_paths"),
    ({"sources": {"max_file_bytes": 10**10}}, "sources.max_file_bytes"),
    ({"warc": {"paths": ["/"]}}, "warc.paths"),
    ({"warc": {"max_record_bytes": 10**10}}, "warc.max_record_bytes"),
    ({"extract": {"max_html_bytes": 10**9}}, "extract.max_html_bytes"),
    ({"train": {"init_from": "/tmp/evil"}}, "train.init_from"),
    ({"locations": {"x": "/"}}, "locations"),
    ({"profile": "cluster"}, "profile"),
]


@pytest.mark.parametrize(("overrides", "field"), FORBIDDEN, ids=[f for _, f in FORBIDDEN])
def test_each_config_only_field_is_refused_naming_it(overrides: dict, field: str) -> None:
    from orchestration.params import params_to_overrides

    with pytest.raises(ConfigError, match=rf"field '{field}' refused: it is set only by the deployment"):
        params_to_overrides({"overrides": overrides})


def test_the_same_fields_are_allowed_from_the_cli_and_the_config_file(tmp_path: Path) -> None:
    cfg = load_config("local", {"storage": {"root": str(tmp_path)}, "crawl": {"allow_loopback": False}})
    assert cfg.storage.root == str(tmp_path) and cfg.crawl.allow_loopback is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"storage": {"secret_access_key": "hunter2hunter2"}},
        {"train": {"wandb_api_key": "hunter2hunter2"}},
        {"quality": {"service": {"password": "hunter2hunter2"}}},
        {"tokenizer": {"hf_token": "hunter2hunter2"}},
    ],
)
def test_secret_named_fields_are_refused_without_echoing_them(overrides: dict) -> None:
    from orchestration.params import params_to_overrides

    with pytest.raises(ConfigError, match="secrets are never accepted as params") as err:
        params_to_overrides({"overrides": overrides})
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("AKIA" + "ABCDEFGHIJKLMNOP", "AWS access key id"),
        ("ghp_" + "a1" * 18, "GitHub token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB", "private key"),
        ("xoxb-" + "1234567890-abcdef", "Slack token"),
    ],
)
def test_values_in_well_known_key_formats_are_refused(value: str, kind: str) -> None:
    from orchestration.params import params_to_overrides

    with pytest.raises(
        ConfigError, match=rf"field 'crawl.seeds' refused: its value looks like a secret \({kind}\)"
    ) as err:
        params_to_overrides({"seeds": [f"https://example.com/?k={value}"]})
    assert value not in str(err.value)


def test_named_locations_replace_paths_and_unknown_names_fail(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestration.params import params_to_overrides

    deployment = {"locations": {"books-en": str(tmp_path / "books"), "cc-2024": str(tmp_path / "cc.warc.gz")}}
    (tmp_path / "deploy.json").write_text(json.dumps(deployment))
    monkeypatch.setenv("LMFORGE_CONFIG", str(tmp_path / "deploy.json"))
    cfg = load_config(None, params_to_overrides({"books": "books-en", "warc": ["cc-2024"]}))
    assert cfg.sources.books_dir == str(tmp_path / "books") and cfg.warc.paths == [
        str(tmp_path / "cc.warc.gz")
    ]
    with pytest.raises(
        ConfigError, match=r"config field 'sources.code': unknown location '/etc'; known: books-en"
    ):
        load_config(None, params_to_overrides({"code": "/etc"}))


def test_prepare_run_refuses_before_anything_runs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from orchestration.params import prepare_run

    (tmp_path / "deploy.json").write_text(json.dumps({"storage": {"root": str(tmp_path / "data")}}))
    monkeypatch.setenv("LMFORGE_CONFIG", str(tmp_path / "deploy.json"))
    with pytest.raises(ConfigError, match=r"field 'ray\.address' refused"):
        prepare_run({"overrides": {"ray": {"address": "http://evil:8265"}}}, "manual__x")
    with pytest.raises(ValueError, match="invalid run id"):
        prepare_run({"run_id": "ok\n"}, "manual__x")
    prepared = prepare_run({"max_pages": 3}, "manual__x")
    assert json.loads(prepared["overrides_json"]) == {"crawl": {"max_pages": 3}}
    assert not (tmp_path / "data").exists()


def test_asset_events_are_checked_like_params() -> None:
    from orchestration.params import upstream_from_events

    def events(extra: dict) -> dict:
        return {"token_shards": [types.SimpleNamespace(extra=extra)]}

    ok = upstream_from_events(events({"run_id": "r1", "overrides_json": '{"train": {"lr": 0.01}}'}))
    assert ok["run_id"] == "r1"
    with pytest.raises(ConfigError, match="asset event: field 'storage' refused"):
        upstream_from_events(events({"run_id": "r1", "overrides_json": '{"storage": {"root": "/"}}'}))
    with pytest.raises(ValueError, match="invalid run id"):
        upstream_from_events(events({"run_id": "../../etc", "overrides_json": "{}"}))


def test_every_param_maps_to_an_overridable_field() -> None:
    from orchestration.params import PARAM_FIELDS

    for name, (section, field) in PARAM_FIELDS.items():
        allowed = OVERRIDABLE[section]
        assert allowed == "*" or field in allowed, name


def _sections() -> dict[str, type[BaseModel]]:
    out = {}
    for name, info in PipelineConfig.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out[name] = info.annotation
    return out


def test_allowlist_names_real_fields_and_wildcards_hold_no_paths_or_endpoints() -> None:
    sections = _sections()
    for section, allowed in OVERRIDABLE.items():
        fields = set(sections[section].model_fields)
        if allowed == "*":
            risky = [
                f for f in fields if any(w in f for w in ("dir", "path", "root", "url", "address", "file"))
            ]
            assert risky == [], f"section {section} is overridable as a whole but has {risky}"
        else:
            assert set(allowed) <= fields, set(allowed) - fields
    check_overrides({s: {} for s in OVERRIDABLE})  # every listed section passes


def _bounded(info) -> bool:  # type: ignore[no-untyped-def]
    return any(
        getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in info.metadata
    )


def test_every_numeric_field_has_an_upper_bound() -> None:
    unbounded = []
    for section, model in _sections().items():
        for name, info in model.model_fields.items():
            kinds = set(typing.get_args(info.annotation)) or {info.annotation}
            if kinds & {int, float} and bool not in kinds and not _bounded(info):
                unbounded.append(f"{section}.{name}")
    assert unbounded == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"crawl": {"max_pages": 10**12}}, "crawl.max_pages"),
        ({"train": {"batch_size": 10**9}}, "train.batch_size"),
        ({"ray": {"num_workers": 10**6}}, "ray.num_workers"),
        ({"spark": {"driver_memory": "99999t"}}, "spark.driver_memory"),
    ],
)
def test_numbers_past_their_bound_are_refused(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"config field '{field}'"):
        load_config("local", overrides)
