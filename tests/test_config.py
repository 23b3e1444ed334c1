"""The typed config: profiles, overrides, env vars, and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.config import PROFILES, REPO_ROOT, ConfigError, load_config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LMFORGE_PROFILE", raising=False)
    monkeypatch.delenv("LMFORGE_CONFIG", raising=False)


def _leaves(tree: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += _leaves(value, (*path, key))
        else:
            out.append(((*path, key), value))
    return out


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def test_defaults_are_the_local_profile_under_the_repo_data_dir() -> None:
    cfg = load_config()
    assert cfg.profile == "local"
    assert Path(cfg.storage.root) == REPO_ROOT / ".data"
    assert cfg.storage.endpoint_url is None
    assert cfg.storage.checksum == "when_required"
    assert cfg.spark.master == "local[*]"
    assert cfg.ray.address is None
    assert cfg.crawl.allow_loopback is True  # set by the local profile


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_loads_with_its_values(name: str) -> None:
    cfg = load_config(name)
    assert cfg.profile == name
    dumped = cfg.model_dump()
    for path, value in _leaves(PROFILES[name]):
        assert _get(dumped, path) == value, path


@pytest.mark.parametrize("as_json", [False, True], ids=["dict", "json"])
def test_overrides_deep_merge_keeps_sibling_fields(as_json: bool) -> None:
    overrides: dict[str, Any] = {"storage": {"region": "eu-west-1"}, "spark": {"shuffle_partitions": 16}}
    cfg = load_config("compose", json.dumps(overrides) if as_json else overrides)
    assert cfg.storage.region == "eu-west-1"
    assert cfg.spark.shuffle_partitions == 16
    # Siblings from the profile and the defaults survive the merge.
    assert cfg.storage.root == "s3://lmforge/"
    assert cfg.storage.endpoint_url == "http://minio:9000"
    assert cfg.spark.master == "spark://spark-master:7077"
    assert cfg.spark.driver_memory == "2g"


def test_profile_override_does_not_mutate_profiles() -> None:
    before = json.dumps(PROFILES, sort_keys=True)
    load_config("compose", {"storage": {"root": "s3://other/"}, "ray": {"num_workers": 9}})
    assert json.dumps(PROFILES, sort_keys=True) == before
    assert load_config("compose").storage.root == "s3://lmforge/"


def test_env_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_PROFILE", "compose")
    assert load_config().profile == "compose"
    assert load_config().storage.endpoint_url == "http://minio:9000"
    assert load_config("cluster").profile == "cluster"  # an explicit profile wins over the env


def test_env_config_file_sits_between_profile_and_overrides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "lmforge.json"
    path.write_text(json.dumps({"train": {"steps": 7, "lr": 0.01}, "storage": {"region": "ap-south-1"}}))
    monkeypatch.setenv("LMFORGE_PROFILE", "compose")
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    cfg = load_config(overrides={"train": {"steps": 9}})
    assert cfg.train.steps == 9  # overrides beat the file
    assert cfg.train.lr == 0.01  # the file beats the defaults
    assert cfg.storage.region == "ap-south-1"
    assert cfg.storage.endpoint_url == "http://minio:9000"  # the profile survives


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"spark": {"shuffle_partitions": 0}}, "config field 'spark.shuffle_partitions'"),
        ({"storage": {"checksum": "bogus"}}, "config field 'storage.checksum'"),
        ({"crawl": {"bogus": 1}}, "config field 'crawl.bogus'"),
        ({"train": {"seq_len": "x"}}, "config field 'train.seq_len'"),
        ({"nonsense": 1}, "config field 'nonsense'"),
        ('{"spark": {"driver_memory": "lots"}}', "config field 'spark.driver_memory'"),
        ('{"storage": {"max_attempts": 11}}', "config field 'storage.max_attempts'"),
        ('{"spark": ', "config overrides: not valid JSON"),
        ("[1, 2]", "config overrides: expected a JSON object, got list"),
        ('"local"', "config overrides: expected a JSON object, got str"),
    ],
    ids=[
        "partitions-zero",
        "checksum-bogus",
        "crawl-unknown-key",
        "seq-len-text",
        "unknown-top-level",
        "json-driver-memory",
        "json-max-attempts",
        "invalid-json",
        "json-list",
        "json-string",
    ],
)
def test_bad_values_name_the_field(overrides: dict[str, Any] | str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config("local", overrides)
    assert needle in str(err.value)


def test_bad_value_message_shows_what_was_given() -> None:
    with pytest.raises(ConfigError, match=r"greater than or equal to 1 \(got 0\)"):
        load_config(overrides={"spark": {"shuffle_partitions": 0}})


def test_unknown_profile_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="config field 'profile': unknown profile 'staging'"):
        load_config("staging")
    monkeypatch.setenv("LMFORGE_PROFILE", "nope")
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{oops", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ('{"ray": {"num_workers": 0}}', "config field 'ray.num_workers'"),
    ],
)
def test_bad_env_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    monkeypatch.setenv("LMFORGE_CONFIG", str(path))
    with pytest.raises(ConfigError, match=needle) as err:
        load_config()
    if "config field" not in needle:
        assert str(path) in str(err.value)  # a file error names the file


def test_the_storage_secret_is_never_rendered() -> None:
    """Only the deployment's config sets it (params refuse it: core/overrides.py); no dump shows it."""
    cfg = load_config("compose", {"storage": {"access_key_id": "AKIA", "secret_access_key": "s3cr3t"}})
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in cfg.model_dump_json()
    assert cfg.storage.secret_access_key is not None
    assert cfg.storage.secret_access_key.get_secret_value() == "s3cr3t"
