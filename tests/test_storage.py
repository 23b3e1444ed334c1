"""Storage by URI: the same round-trip table on a local directory and on a real S3 server (moto)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import StorageConfig, load_config
from core.storage import LocalStorage, S3Storage, Storage, StorageError, open_storage, safe_key

PAYLOADS = [
    ("a.txt", b"hello"),
    ("runs/r1/stage/data/part-00000.parquet", bytes(range(256)) * 64),
    ("deep/er/still/empty.bin", b""),
    ("unicode/ünï cödé.txt", "héllo wörld".encode()),
    ("odd/name=1+2,3.txt", b"x" * 3),
]


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(StorageConfig(root=str(tmp_path / "root")))
    return open_storage(request.getfixturevalue("s3_config"))


def test_open_storage_picks_the_backend(tmp_path: Path, s3_config: StorageConfig) -> None:
    local = open_storage(StorageConfig(root=f"file://{tmp_path}/x/../y"))
    assert isinstance(local, LocalStorage)
    assert local.root == str(tmp_path / "y")
    s3 = open_storage(s3_config)
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == (s3_config.root.split("/")[2], "prefix")
    assert s3.uri("a/b") == f"{s3_config.root}/a/b"


@pytest.mark.parametrize("root", ["gs://bucket/x", "http://example.org/data", "hdfs://nn/x"])
def test_unsupported_scheme_is_refused(root: str) -> None:
    with pytest.raises(StorageError, match=rf"config field 'storage.root': unsupported scheme in '{root}'"):
        open_storage(StorageConfig(root=root))


def test_s3_root_without_bucket_is_refused() -> None:
    with pytest.raises(StorageError, match="no bucket"):
        open_storage(StorageConfig(root="s3:///prefix", access_key_id="k", secret_access_key="s"))


@pytest.mark.parametrize(("key", "data"), PAYLOADS, ids=[k for k, _ in PAYLOADS])
def test_round_trip(storage: Storage, tmp_path: Path, key: str, data: bytes) -> None:
    assert not storage.exists(key)
    storage.write_bytes(key, data)
    assert storage.exists(key)
    assert storage.read_bytes(key) == data
    storage.write_bytes(key, data + b"!")  # overwrite replaces the whole object
    assert storage.read_bytes(key) == data + b"!"

    src = tmp_path / "src.bin"
    src.write_bytes(data)
    storage.upload_file(src, key + ".up")
    dest = tmp_path / "new" / "dir" / "dest.bin"
    storage.download_file(key + ".up", dest)
    assert dest.read_bytes() == data

    top = key.split("/", 1)[0]
    if "/" in key:
        assert storage.list(top) == sorted([key, key + ".up"])
        storage.delete_prefix(top)
        assert storage.list(top) == []
        assert not storage.exists(key)


def test_list_and_delete_respect_prefix_boundaries(storage: Storage) -> None:
    for key in ["a/1.txt", "a/b/2.txt", "ab/3.txt", "a.txt", "z/4.txt"]:
        storage.write_bytes(key, key.encode())
    assert storage.list("a") == ["a/1.txt", "a/b/2.txt"]
    assert storage.list("a/b") == ["a/b/2.txt"]
    assert storage.list("missing") == []
    storage.delete_prefix("a")
    assert storage.list("a") == []
    assert storage.list("ab") == ["ab/3.txt"]  # a sibling sharing the name's start survives
    assert storage.exists("a.txt")
    storage.delete_prefix("missing")  # deleting nothing is fine


def test_missing_object_is_a_storage_error(storage: Storage) -> None:
    with pytest.raises(StorageError):
        storage.read_bytes("no/such/key")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("..", "it escapes the storage root"),
        ("a/../../b", "it escapes the storage root"),
        ("a/..", "it escapes the storage root"),
        ("./a", "it escapes the storage root"),
        ("C:/Windows/x", "it escapes the storage root"),
        ("C:x", "it escapes the storage root"),
        ("/etc/passwd", "keys are relative '/'-separated paths"),
        ("a\\b", "keys are relative '/'-separated paths"),
        ("..\\..\\x", "keys are relative '/'-separated paths"),
        ("", "keys are relative '/'-separated paths"),
        ("a\x00b", "keys are relative '/'-separated paths"),
    ],
    ids=[
        "dotdot",
        "climb",
        "trailing-dotdot",
        "dot",
        "drive-slash",
        "drive",
        "absolute",
        "backslash",
        "backslash-climb",
        "empty",
        "nul",
    ],
)
def test_safe_key_refuses(key: str, why: str) -> None:
    with pytest.raises(StorageError) as err:
        safe_key(key)
    assert str(err.value) == f"refused storage key {key!r}: {why}"


@pytest.mark.parametrize(
    ("key", "normal"),
    [("a", "a"), ("a/b.txt", "a/b.txt"), ("a//b", "a/b"), ("a/b/", "a/b"), ("x..y/z", "x..y/z")],
)
def test_safe_key_normalises(key: str, normal: str) -> None:
    assert safe_key(key) == normal


@pytest.mark.parametrize("op", ["write", "read", "exists", "list", "delete", "upload", "download"])
def test_every_operation_refuses_escaping_keys(storage: Storage, tmp_path: Path, op: str) -> None:
    local = tmp_path / "f.bin"
    local.write_bytes(b"secret")
    calls = {
        "write": lambda: storage.write_bytes("../escaped.bin", b"x"),
        "read": lambda: storage.read_bytes("../f.bin"),
        "exists": lambda: storage.exists("../f.bin"),
        "list": lambda: storage.list(".."),
        "delete": lambda: storage.delete_prefix(".."),
        "upload": lambda: storage.upload_file(local, "../escaped.bin"),
        "download": lambda: storage.download_file("../f.bin", tmp_path / "out.bin"),
    }
    with pytest.raises(StorageError, match="escapes the storage root"):
        calls[op]()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["f.bin"] + (["root"] if (tmp_path / "root").exists() else [])
    )
    assert local.read_bytes() == b"secret"


def test_delete_of_the_root_is_refused(storage: Storage) -> None:
    storage.write_bytes("keep.txt", b"1")
    with pytest.raises(StorageError):
        storage.delete_prefix("")
    assert storage.exists("keep.txt")


def test_arrow_fs_round_trips_parquet(storage: Storage) -> None:
    """pyarrow ignores AWS_ENDPOINT_URL: this only works if the endpoint is passed explicitly."""
    fs, base = storage.arrow_fs()
    table = pa.table({"id": ["a", "b", "c"], "n": [1, 2, 3]})
    if storage.local_dir("tables") is not None:
        # Local files need their folder. Not on S3: create_dir there leaves a `tables/` marker object.
        fs.create_dir(f"{base}/tables")
    pq.write_table(table, f"{base}/tables/docs.parquet", filesystem=fs)
    assert storage.list("tables") == ["tables/docs.parquet"]
    assert pq.read_table(pa.BufferReader(storage.read_bytes("tables/docs.parquet"))).equals(table)
    # And the other way: an object written by the storage is readable through the filesystem.
    buf = pa.BufferOutputStream()
    pq.write_table(table.slice(1), buf)
    storage.write_bytes("tables/more.parquet", buf.getvalue().to_pybytes())
    assert pq.read_table(f"{base}/tables/more.parquet", filesystem=fs).equals(table.slice(1))


def test_missing_bucket_names_the_bucket(s3_config: StorageConfig) -> None:
    cfg = s3_config.model_copy(update={"root": "s3://no-such-bucket-here/x"})
    with pytest.raises(StorageError, match=r"S3 put failed \(NoSuchBucket\) for s3://no-such-bucket-here"):
        S3Storage(cfg).write_bytes("a", b"1")


@pytest.fixture
def unreachable(tmp_path: Path) -> S3Storage:
    overrides = {
        "storage": {
            "root": "s3://bucket/prefix",
            "endpoint_url": "http://127.0.0.1:9",  # discard port: nothing listens
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "connect_timeout_s": 0.5,
            "max_attempts": 1,
        }
    }
    storage = open_storage(load_config("local", overrides).storage)
    assert isinstance(storage, S3Storage)
    return storage


@pytest.mark.parametrize("op", ["write", "read", "exists", "list", "delete", "upload", "download"])
def test_unreachable_endpoint_says_so(unreachable: S3Storage, tmp_path: Path, op: str) -> None:
    local = tmp_path / "f.bin"
    local.write_bytes(b"1")
    calls = {
        "write": lambda: unreachable.write_bytes("k", b"1"),
        "read": lambda: unreachable.read_bytes("k"),
        "exists": lambda: unreachable.exists("k"),
        "list": lambda: unreachable.list("k"),
        "delete": lambda: unreachable.delete_prefix("k"),
        "upload": lambda: unreachable.upload_file(local, "k"),
        "download": lambda: unreachable.download_file("k", tmp_path / "out.bin"),
    }
    start = time.monotonic()
    with pytest.raises(StorageError, match=r"cannot reach S3 endpoint http://127\.0\.0\.1:9"):
        calls[op]()
    assert time.monotonic() - start < 10
