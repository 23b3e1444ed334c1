"""Publishing (jobs/publish): every file the committed shards manifest lists, then the manifest, to
the real S3-compatible server on loopback (moto) or a local folder; verified after upload; a publish
that fails or is killed midway never looks complete, and a rerun finishes it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from core.config import PipelineConfig, StorageConfig, load_config
from core.datasets import MANIFEST, commit, materialize, read_manifest, require_manifest, stage_prefix
from core.storage import LocalStorage, StorageError, open_storage
from jobs.publish import PublishError, publish
from jobs.publish.s3 import S3Destination

RUN = "r1"
PREFIX = stage_prefix(RUN, "shards")
MiB = 1 << 20
BIG = 12_000_000  # three 5 MiB parts with multipart on
# Sorted as the manifest lists them: two small files before the big one, one after.
FILES = {"meta.json": 300, "tokenizer.json": 4000, "train-000.bin": BIG, "val-000.bin": 70_000}


def committed_shards(root: Path, tag: bytes = b"") -> Path:
    """A committed `shards` dataset under the local storage root `root` (any files: publish is generic)."""
    src = root.parent / f"{root.name}-src"
    src.mkdir(parents=True, exist_ok=True)
    for i, (name, size) in enumerate(FILES.items()):
        (src / name).write_bytes(
            (tag + bytes([i + 1]) * 7 + os.urandom(64)) * (size // 72) + b"x" * (size % 72)
        )
    commit(LocalStorage(str(root)), RUN, "shards", src, config={"tag": tag.decode()}, inputs={})
    return root


def config(storage: StorageConfig | dict[str, Any], **publish: Any) -> PipelineConfig:
    store = storage.model_dump(mode="json") if isinstance(storage, StorageConfig) else storage
    if isinstance(storage, StorageConfig) and storage.secret_access_key:
        store["secret_access_key"] = storage.secret_access_key.get_secret_value()
    return load_config("local", {"storage": store, "publish": publish})


def s3_dest(s3_config: StorageConfig, sub: str = "published") -> str:
    bucket = s3_config.root.removeprefix("s3://").split("/")[0]
    return f"s3://{bucket}/{sub}/"


def local_src(tmp_path: Path, s3_config: StorageConfig) -> dict[str, Any]:
    """A local storage root that still has the S3 server's endpoint and keys (the destination's)."""
    store = config(s3_config).storage.model_dump(mode="json")
    store["secret_access_key"] = "testing"
    return {**store, "root": str(committed_shards(tmp_path / "root"))}


def published_storage(cfg: PipelineConfig) -> Any:
    assert cfg.publish.uri
    return open_storage(cfg.storage.model_copy(update={"root": cfg.publish.uri}))


def assert_readable(cfg: PipelineConfig, tmp_path: Path) -> None:
    """The destination is a storage root of its own: core/datasets.py reads and verifies it."""
    dest = published_storage(cfg)
    manifest = require_manifest(dest, RUN, "shards")
    assert manifest == require_manifest(open_storage(cfg.storage), RUN, "shards")
    folder = materialize(dest, manifest, tmp_path / "read-cache")
    assert sorted(p.name for p in folder.iterdir() if p.name != MANIFEST) == sorted(FILES)


@pytest.mark.parametrize("threshold_mb", [5, 64], ids=["multipart-on", "multipart-off"])
def test_publish_to_s3_verifies_every_file_by_checksum(
    tmp_path: Path, s3_config: StorageConfig, threshold_mb: int
) -> None:
    pub = {"uri": s3_dest(s3_config), "multipart_threshold_mb": threshold_mb, "multipart_chunksize_mb": 5}
    cfg = config(local_src(tmp_path, s3_config), **pub)
    result = publish(cfg, RUN, cache_root=tmp_path / "cache")

    assert result.manifest_uri == f"{s3_dest(s3_config)}{PREFIX}/{MANIFEST}"
    assert not result.in_place and (result.uploaded, result.skipped) == (len(FILES), 0)
    if threshold_mb == 5:  # the 12 MB file went as three 5 MiB parts: a composite checksum
        assert result.verified == {"composite checksum": 1, "checksum": len(FILES) - 1}
    else:
        assert result.verified == {"checksum": len(FILES)}
    client = S3Destination(cfg.storage, s3_dest(s3_config), cfg.publish)
    etag = client.client.head_object(Bucket=client.bucket, Key=f"published/{PREFIX}/train-000.bin")["ETag"]
    assert etag.endswith('-3"') == (threshold_mb == 5)
    assert_readable(cfg, tmp_path)

    again = publish(cfg, RUN, cache_root=tmp_path / "cache")  # already published: nothing moves
    assert (again.uploaded, again.skipped, again.removed) == (0, len(FILES), 0)


def test_s3_to_s3_with_reread_verification(tmp_path: Path, s3_config: StorageConfig) -> None:
    """A remote source is downloaded and verified first (core/datasets.py materialize)."""
    root = committed_shards(tmp_path / "root")
    source = open_storage(s3_config)
    for key in LocalStorage(str(root)).list(PREFIX):
        source.upload_file(root / key, key)
    pub = {"uri": s3_dest(s3_config), "multipart_threshold_mb": 5, "multipart_chunksize_mb": 5}
    cfg = config(s3_config, verify="reread", **pub)
    result = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert result.verified == {"reread": len(FILES)}
    assert_readable(cfg, tmp_path)


def _corrupting_upload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    """After the real upload of `name`, upload other bytes of the same size over it, with the same
    TransferConfig (a multipart object gets a valid composite of the wrong bytes)."""
    real = S3Destination.upload

    def upload(self: S3Destination, local: Path, key: str) -> None:
        real(self, local, key)
        if key.endswith(name):
            bad = tmp_path / "bad.bin"
            data = bytearray(local.read_bytes())
            data[len(data) // 2] ^= 0xFF
            bad.write_bytes(bytes(data))
            real(self, bad, key)

    monkeypatch.setattr(S3Destination, "upload", upload)


@pytest.mark.parametrize(
    ("verify", "threshold_mb", "name"),
    [
        ("checksum", 5, "train-000.bin"),  # composite checksum of a multipart object
        ("checksum", 64, "train-000.bin"),  # whole-object checksum of a single PUT
        ("checksum", 5, "tokenizer.json"),
        ("reread", 5, "train-000.bin"),
    ],
)
def test_a_corrupted_upload_fails_the_publish(
    tmp_path: Path,
    s3_config: StorageConfig,
    monkeypatch: pytest.MonkeyPatch,
    verify: str,
    threshold_mb: int,
    name: str,
) -> None:
    _corrupting_upload(monkeypatch, tmp_path, name)
    pub = {"uri": s3_dest(s3_config), "multipart_threshold_mb": threshold_mb, "multipart_chunksize_mb": 5}
    cfg = config(local_src(tmp_path, s3_config), verify=verify, **pub)
    with pytest.raises(PublishError, match=rf"checksum mismatch for s3://.*/{name}"):
        publish(cfg, RUN, cache_root=tmp_path / "cache")
    dest = published_storage(cfg)
    assert read_manifest(dest, RUN, "shards") is None  # never looks complete
    assert not dest.exists(f"{PREFIX}/{name}")  # the wrong object is not left to be skipped later

    monkeypatch.undo()
    result = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert result.uploaded == len(FILES) - sorted(FILES).index(name)
    assert_readable(cfg, tmp_path)


@pytest.mark.parametrize("threshold_mb", [5, 64], ids=["multipart-on", "multipart-off"])
def test_local_bytes_that_differ_from_the_manifest_are_refused(
    tmp_path: Path, s3_config: StorageConfig, threshold_mb: int
) -> None:
    pub = load_config(
        "local", {"publish": {"multipart_threshold_mb": threshold_mb, "multipart_chunksize_mb": 5}}
    )
    dest = S3Destination(s3_config, s3_dest(s3_config), pub.publish)
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(BIG))
    entry = {"path": "f.bin", "bytes": BIG, "sha256": "0" * 64, "rows": None}
    expected = "changed since it was verified" if threshold_mb == 5 else "checksum mismatch"
    with pytest.raises(PublishError, match=expected):
        dest.put(local, "x/f.bin", entry)
    assert not dest.store.exists("x/f.bin")


def test_checksum_falls_back_to_a_reread(tmp_path: Path, s3_config: StorageConfig) -> None:
    """No stored checksum (a server or upload without one), or parts of another size than the
    configured ones: the object is re-read and hashed instead, and still caught when wrong."""
    import hashlib

    pub = load_config("local", {"publish": {"multipart_threshold_mb": 5, "multipart_chunksize_mb": 5}})
    dest = S3Destination(s3_config, s3_dest(s3_config), pub.publish)
    local = tmp_path / "f.bin"
    local.write_bytes(os.urandom(BIG))
    entry = {
        "path": "f.bin",
        "bytes": BIG,
        "sha256": hashlib.sha256(local.read_bytes()).hexdigest(),
        "rows": None,
    }

    dest.client.put_object(Bucket=dest.bucket, Key="published/plain", Body=local.read_bytes())  # no checksum
    assert "ChecksumSHA256" not in dest.client.head_object(
        Bucket=dest.bucket, Key="published/plain", ChecksumMode="ENABLED"
    )
    assert dest.check("plain", local, entry) == ("reread", None)

    from boto3.s3.transfer import TransferConfig

    six = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=6 * MiB)
    dest.client.upload_file(
        str(local), dest.bucket, "published/six", ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=six
    )
    assert dest.check("six", local, entry) == ("reread", None)  # 2 parts of 6 MiB, not 3 of 5
    method, problem = dest.check("six", local, {**entry, "sha256": "1" * 64})
    assert method == "reread" and problem and "checksum mismatch" in problem


def test_failure_during_an_upload_leaves_no_manifest_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = committed_shards(tmp_path / "root")
    cfg = config({"root": str(root)}, uri=str(tmp_path / "pub"))
    real, calls = LocalStorage.upload_file, []

    def failing(self: LocalStorage, local: Path, key: str) -> None:
        calls.append(key)
        if len(calls) == 3:
            raise OSError("disk full")
        real(self, local, key)

    monkeypatch.setattr(LocalStorage, "upload_file", failing)
    with pytest.raises(OSError, match="disk full"):
        publish(cfg, RUN, cache_root=tmp_path / "cache")
    dest = LocalStorage(str(tmp_path / "pub"))
    assert dest.list(PREFIX) == [f"{PREFIX}/meta.json", f"{PREFIX}/tokenizer.json"]
    assert read_manifest(dest, RUN, "shards") is None

    monkeypatch.undo()
    result = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert (result.uploaded, result.skipped) == (2, 2) and result.verified == {"reread": 2}
    assert_readable(cfg, tmp_path)


def test_local_destination_republish_replaces_a_stale_publish(tmp_path: Path) -> None:
    root = committed_shards(tmp_path / "root")
    cfg = config({"root": str(root)}, uri=f"file://{tmp_path / 'pub'}")
    first = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert first.manifest_uri == f"{(tmp_path / 'pub').resolve()}/{PREFIX}/{MANIFEST}"
    assert_readable(cfg, tmp_path)

    stale = tmp_path / "pub" / PREFIX / "train-999.bin"  # an earlier publish's file: readers refuse it
    stale.write_bytes(b"old")
    committed_shards(root, tag=b"v2")  # the run's shards recommitted with other bytes
    second = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert not stale.exists() and second.removed == 1 and second.uploaded == len(FILES)
    assert_readable(cfg, tmp_path)
    assert require_manifest(LocalStorage(str(tmp_path / "pub")), RUN, "shards").config == {"tag": "v2"}


def test_in_place_when_no_uri_or_the_storage_root(tmp_path: Path) -> None:
    root = committed_shards(tmp_path / "root")
    for uri in (None, str(root), f"{root}/"):
        result = publish(config({"root": str(root)}, uri=uri), RUN)
        assert result.in_place and result.uploaded == 0
        assert result.manifest_uri == f"{root.resolve()}/{PREFIX}/{MANIFEST}"


def test_in_place_on_s3_and_unsupported_schemes(tmp_path: Path, s3_config: StorageConfig) -> None:
    with pytest.raises(StorageError, match="not committed"):
        publish(config(s3_config, uri=s3_config.root + "/"), RUN)  # in place, but nothing committed
    with pytest.raises(PublishError, match=r"config field 'publish.uri': unsupported scheme"):
        publish(config({"root": str(committed_shards(tmp_path / "root"))}, uri="gs://b/p"), RUN)


def test_the_destination_is_config_only() -> None:
    from core.config import ConfigError
    from orchestration.params import params_to_overrides

    with pytest.raises(ConfigError, match=r"publish\.uri"):
        params_to_overrides({"overrides": {"publish": {"uri": "s3://elsewhere/"}}})
    assert params_to_overrides({"overrides": {"publish": {"max_concurrency": 4}}})


def test_the_asset_event_names_the_published_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    from orchestration.params import prepare_run, publish_shards, upstream_from_events

    root = committed_shards(tmp_path / "root")
    deploy = {"storage": {"root": str(root)}, "publish": {"uri": str(tmp_path / "pub")}}
    (tmp_path / "deploy.json").write_text(json.dumps(deploy))
    monkeypatch.setenv("LMFORGE_CONFIG", str(tmp_path / "deploy.json"))
    extra = publish_shards(prepare_run({"run_id": RUN}, "manual__x"))
    assert extra["manifest"] == f"{(tmp_path / 'pub').resolve()}/{PREFIX}/{MANIFEST}"
    assert Path(extra["manifest"]).is_file() and not extra["in_place"]
    json.dumps(extra)  # an Asset event's extra is JSON
    upstream = upstream_from_events({"token_shards": [types.SimpleNamespace(extra=extra)]})
    assert upstream["run_id"] == RUN  # what pretrain reads back
