"""Reading a committed dataset trusts nothing on disk: files are checked against the manifest (local and
S3), the manifest itself is validated, local storage never follows a symlink out of its root, and a
commit killed mid-upload to a real S3 server (moto) leaves nothing that looks complete."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import core.datasets
from core.config import REPO_ROOT, StorageConfig
from core.datasets import (
    MANIFEST,
    Manifest,
    commit,
    is_current,
    materialize,
    read_manifest,
    require_manifest,
    stage_prefix,
    verified_local_dir,
)
from core.storage import LocalStorage, S3Storage, Storage, StorageError, open_storage

RUN, STAGE = "run-1", "quality"
PREFIX = stage_prefix(RUN, STAGE)
PART = "data/part-00001.parquet"


def _table(n: int, tag: str = "") -> pa.Table:
    return pa.table({"id": [f"{tag}{i}" for i in range(n)], "text": [f"doc {i}" for i in range(n)]})


def _output(root: Path, sizes: tuple[int, ...] = (3, 2)) -> Path:
    (root / "data").mkdir(parents=True)
    for i, n in enumerate(sizes):
        pq.write_table(_table(n, f"{i}-"), root / "data" / f"part-{i:05d}.parquet")
    (root / "stats.json").write_text(json.dumps({"kept": sum(sizes)}))
    return root


def _committed(storage: Storage, tmp_path: Path) -> Manifest:
    commit(storage, RUN, STAGE, _output(tmp_path / "out"), config={"v": 1}, inputs={})
    return require_manifest(storage, RUN, STAGE)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(str(tmp_path / "root"))
    return open_storage(request.getfixturevalue("s3_config"))


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


# ---- the files: sha256, size and row counts, local and S3 alike ---------------------------------------


def test_corrupted_part_file_is_refused_naming_it(storage: Storage, tmp_path: Path) -> None:
    manifest = _committed(storage, tmp_path)
    key = f"{PREFIX}/{PART}"
    data = storage.read_bytes(key)
    storage.write_bytes(key, _flip_byte(data, len(data) // 2))  # same size, one byte flipped
    with pytest.raises(StorageError, match=f"checksum mismatch for {re.escape(storage.uri(key))}: sha256 "):
        materialize(storage, manifest, tmp_path / "cache")


def test_corruption_is_caught_past_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unchanged folder is not hashed twice; a byte flipped in place with size and mtime restored
    still is, because the marker also records the inode and ctime (which utime() cannot set back)."""
    storage = LocalStorage(str(tmp_path / "root"))
    manifest = _committed(storage, tmp_path)
    time.sleep(1.1)  # files changed in the last second are never marked verified (timestamps are coarse)
    cache = tmp_path / "cache"
    hashed: list[Path] = []
    real_sha256 = core.datasets._sha256
    monkeypatch.setattr(core.datasets, "_sha256", lambda p: hashed.append(p) or real_sha256(p))
    folder = materialize(storage, manifest, cache)
    assert len(hashed) == len(manifest.files)
    hashed.clear()
    assert materialize(storage, manifest, cache) == folder
    assert hashed == []  # verified before, unchanged since: no re-hash
    assert not list(folder.rglob("*verified*"))  # the marker lives in the cache, not in the dataset

    part = folder / PART
    before = part.stat()
    with part.open("r+b") as fh:  # in place: same inode
        fh.seek(before.st_size // 2)
        byte = fh.read(1)
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(part, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (part.stat().st_size, part.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(
        StorageError, match=f"checksum mismatch for {re.escape(storage.uri(f'{PREFIX}/{PART}'))}"
    ):
        materialize(storage, manifest, cache)


def test_truncated_and_missing_files_are_refused(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "root"))
    manifest = _committed(storage, tmp_path)
    stored = tmp_path / "root" / PREFIX
    (stored / "stats.json").write_text("{}")
    with pytest.raises(
        StorageError, match=r"checksum mismatch for .*/stats\.json: 2 bytes, the manifest says"
    ):
        materialize(storage, manifest, tmp_path / "cache")
    (stored / "stats.json").unlink()
    with pytest.raises(StorageError, match=r"/stats\.json is listed in its manifest but missing"):
        materialize(storage, manifest, tmp_path / "cache")


def test_row_counts_are_checked(storage: Storage, tmp_path: Path) -> None:
    """A manifest whose sha256 matches but whose row count does not is caught too."""
    manifest = _committed(storage, tmp_path)
    data = asdict(manifest)
    entry = next(f for f in data["files"] if f["path"] == PART)
    entry["rows"] += 1
    data["rows"]["data"] += 1
    storage.write_bytes(f"{PREFIX}/{MANIFEST}", json.dumps(data).encode())
    tampered = require_manifest(storage, RUN, STAGE)
    uri = re.escape(storage.uri(f"{PREFIX}/{PART}"))
    with pytest.raises(StorageError, match=f"row count mismatch for {uri}: 2 rows, the manifest says 3"):
        materialize(storage, tampered, tmp_path / "cache")


@pytest.mark.parametrize("extra", ["data/part-00099.parquet", "data/.hidden.parquet", "data/sub/x.parquet"])
def test_planted_extra_part_is_refused_on_local_storage(tmp_path: Path, extra: str) -> None:
    """Readers take whole folders (`spark.read.parquet(dir)`): a file the manifest does not list
    would add rows, so the local dataset is refused, naming the file."""
    storage = LocalStorage(str(tmp_path / "root"))
    manifest = _committed(storage, tmp_path)
    planted = tmp_path / "root" / PREFIX / extra
    planted.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_table(7, "planted-"), planted)
    uri = re.escape(storage.uri(f"{PREFIX}/{extra}"))
    with pytest.raises(StorageError, match=f"refused to read .* it holds {uri}, which is not a regular"):
        materialize(storage, manifest, tmp_path / "cache")
    with pytest.raises(StorageError, match="not a regular file its manifest lists"):
        verified_local_dir(storage, manifest, tmp_path / "cache")
    planted.unlink()
    folder = materialize(storage, manifest, tmp_path / "cache")
    assert pq.read_table(folder / "data").num_rows == manifest.rows["data"] == 5


def test_planted_extra_part_is_not_read_from_s3(tmp_path: Path, s3_config: StorageConfig) -> None:
    """Downloads take the manifest's files only; an extra file in the cache folder is removed."""
    storage = open_storage(s3_config)
    manifest = _committed(storage, tmp_path)
    buf = pa.BufferOutputStream()
    pq.write_table(_table(7, "planted-"), buf)
    storage.write_bytes(f"{PREFIX}/data/part-00099.parquet", buf.getvalue().to_pybytes())
    folder = materialize(storage, manifest, tmp_path / "cache")
    assert verified_local_dir(storage, manifest, tmp_path / "cache") is None  # remote: nothing in place
    assert pq.read_table(folder / "data").num_rows == manifest.rows["data"] == 5

    pq.write_table(_table(7, "cache-"), folder / "data" / "part-00042.parquet")
    os.symlink(tmp_path / "out" / "stats.json", folder / "data" / "linked.parquet")
    assert materialize(storage, manifest, tmp_path / "cache") == folder
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(folder / "data").num_rows == 5
    assert (tmp_path / "out" / "stats.json").exists()  # the link was removed, not its target


def test_symlinked_part_file_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "root"))
    manifest = _committed(storage, tmp_path)
    part = tmp_path / "root" / PREFIX / PART
    outside = tmp_path / "outside.parquet"
    part.rename(outside)
    part.symlink_to(outside)  # same content, but out of the root
    uri = re.escape(storage.uri(f"{PREFIX}/{PART}"))
    with pytest.raises(StorageError, match=f"it holds {uri}, which is not a regular file"):
        materialize(storage, manifest, tmp_path / "cache")


# ---- the manifest: confined paths, validated fields ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("{outside}/escaped.bin", "keys are relative"),
        ("../../escaped.bin", "escapes the storage root"),
        ("data/../../../escaped.bin", "escapes the storage root"),
        ("data\\..\\escaped.bin", "keys are relative"),
        ("data/x\x00.bin", "keys are relative"),
        ("./escaped.bin", "escapes the storage root"),
        ("data//x.bin", "not a normalised dataset file path"),
        (MANIFEST, "not a normalised dataset file path"),
    ],
    ids=["absolute", "dotdot", "climb", "backslash", "nul", "dot", "double-slash", "manifest"],
)
def test_manifest_paths_stay_in_the_dataset(storage: Storage, tmp_path: Path, path: str, why: str) -> None:
    manifest = _committed(storage, tmp_path)
    outside = tmp_path / "outside"
    path = path.format(outside=outside)
    data = asdict(manifest)
    data["files"][-1]["path"] = path  # stats.json: rows null, not a parquet file either way
    storage.write_bytes(f"{PREFIX}/{MANIFEST}", json.dumps(data).encode())
    with pytest.raises(StorageError, match=rf"malformed manifest .*{MANIFEST}: files\[2\]\.path: .*{why}"):
        read_manifest(storage, RUN, STAGE)
    # A hand-built manifest that skipped read_manifest is refused by materialize too, before any write.
    cache = tmp_path / "cache" / "deep"
    with pytest.raises(StorageError, match=rf"malformed manifest for run 'run-1' stage 'quality'.*{why}"):
        materialize(storage, Manifest(**data), cache)
    assert not outside.exists()
    assert not (tmp_path / "escaped.bin").exists() and not (tmp_path / "cache" / "escaped.bin").exists()
    assert not (cache / RUN).exists()  # nothing downloaded at all


def _valid(tmp_path: Path) -> dict[str, Any]:
    storage = LocalStorage(str(tmp_path / "valid"))
    return asdict(_committed(storage, tmp_path / "valid-out"))


def _drop(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _file(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**data, "files": [{**data["files"][0], **changes}, *data["files"][1:]]}


BAD_MANIFESTS: list[tuple[str, Any, str]] = [
    ("no-files", lambda d: _drop(d, "files"), r"missing field\(s\) files"),
    ("no-fingerprint", lambda d: _drop(d, "fingerprint"), r"missing field\(s\) fingerprint"),
    ("unknown-key", lambda d: {**d, "complete": True}, r"unknown field\(s\) complete"),
    ("files-not-list", lambda d: {**d, "files": {}}, "field 'files' must be list, got dict"),
    ("files-null", lambda d: {**d, "files": None}, "field 'files' must be list, got NoneType"),
    ("config-list", lambda d: {**d, "config": []}, "field 'config' must be dict, got list"),
    ("created-bool", lambda d: {**d, "created_at": True}, "field 'created_at' must be int or float"),
    ("fingerprint", lambda d: {**d, "fingerprint": "abc"}, "field 'fingerprint' must be 64 lowercase hex"),
    ("inputs", lambda d: {**d, "inputs": {"x": 1}}, "field 'inputs' must map input stages"),
    ("array", lambda d: [d], "expected a JSON object, got list"),
    ("entry-str", lambda d: {**d, "files": ["a"]}, r"files\[0\] must be an object with exactly the fields"),
    ("entry-extra", lambda d: _file(d, mode=1), r"files\[0\] must be an object with exactly the fields"),
    ("path-int", lambda d: _file(d, path=3), r"files\[0\]\.path must be a string, got int"),
    ("bytes-str", lambda d: _file(d, bytes="12"), r"files\[0\]\.bytes must be an integer >= 0, got '12'"),
    ("bytes-neg", lambda d: _file(d, bytes=-1), r"files\[0\]\.bytes must be an integer >= 0, got -1"),
    ("bytes-bool", lambda d: _file(d, bytes=True), r"files\[0\]\.bytes must be an integer >= 0, got True"),
    ("sha-short", lambda d: _file(d, sha256="ab"), r"files\[0\]\.sha256 must be 64 lowercase hex digits"),
    ("sha-none", lambda d: _file(d, sha256=None), r"files\[0\]\.sha256 must be 64 lowercase hex digits"),
    (
        "rows-str",
        lambda d: _file(d, rows="3"),
        r"files\[0\]\.rows must be an integer >= 0 \(a parquet file\)",
    ),
    ("rows-none", lambda d: _file(d, rows=None), r"files\[0\]\.rows must be an integer >= 0"),
    ("duplicate", lambda d: {**d, "files": [*d["files"], d["files"][0]]}, "lists a path twice"),
    ("rows-total", lambda d: {**d, "rows": {"data": 99}}, r"field 'rows' \{'data': 99\} differs"),
    ("other-run", lambda d: {**d, "run_id": "run-2"}, "it describes run 'run-2' stage 'quality', not run"),
]


@pytest.mark.parametrize(("change", "why"), [b[1:] for b in BAD_MANIFESTS], ids=[b[0] for b in BAD_MANIFESTS])
def test_malformed_manifest_is_a_clear_storage_error(
    storage: Storage, tmp_path: Path, change: Any, why: str
) -> None:
    storage.write_bytes(f"{PREFIX}/{MANIFEST}", json.dumps(change(_valid(tmp_path))).encode())
    where = re.escape(storage.uri(f"{PREFIX}/{MANIFEST}"))
    with pytest.raises(StorageError, match=rf"^malformed manifest {where}: .*{why}"):
        read_manifest(storage, RUN, STAGE)
    with pytest.raises(StorageError, match="malformed manifest"):
        is_current(storage, RUN, STAGE, "0" * 64)


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"run_id": "run-1",', b"\xff\xfe\x00garbage"])
def test_manifest_that_is_not_json_is_a_clear_storage_error(storage: Storage, raw: bytes) -> None:
    storage.write_bytes(f"{PREFIX}/{MANIFEST}", raw)
    where = re.escape(storage.uri(f"{PREFIX}/{MANIFEST}"))
    with pytest.raises(StorageError, match=rf"^malformed manifest {where}: not valid JSON \("):
        require_manifest(storage, RUN, STAGE)


# ---- local storage never follows a symlink out of its root -------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root with a marker file the storage must never read, change or delete."""
    folder = tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    (folder / "marker.txt").write_text("keep me")
    (folder / "sub" / "deep.txt").write_text("keep me too")
    return folder


def _untouched(outside: Path) -> None:
    assert sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*")) == [
        "marker.txt",
        "sub",
        "sub/deep.txt",
    ]
    assert (outside / "marker.txt").read_text() == "keep me"


@pytest.fixture
def linked(tmp_path: Path, outside: Path) -> LocalStorage:
    """A root where `runs/link` is a symlinked folder and `runs/file.txt` a symlinked file, both out of it."""
    storage = LocalStorage(str(tmp_path / "root"))
    storage.write_bytes("runs/inside.txt", b"mine")
    (tmp_path / "root" / "runs" / "link").symlink_to(outside, target_is_directory=True)
    (tmp_path / "root" / "runs" / "file.txt").symlink_to(outside / "marker.txt")
    return storage


@pytest.mark.parametrize(
    "op", ["read", "read-file", "exists", "list", "write", "write-file", "upload", "download", "local_dir"]
)
def test_symlinks_out_of_the_root_are_refused(
    linked: LocalStorage, tmp_path: Path, outside: Path, op: str
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"new")
    calls = {
        "read": lambda: linked.read_bytes("runs/link/marker.txt"),
        "read-file": lambda: linked.read_bytes("runs/file.txt"),
        "exists": lambda: linked.exists("runs/link/marker.txt"),
        "list": lambda: linked.list("runs/link"),
        "write": lambda: linked.write_bytes("runs/link/new/planted.txt", b"x"),
        "write-file": lambda: linked.write_bytes("runs/file.txt", b"overwritten"),
        "upload": lambda: linked.upload_file(src, "runs/link/sub/deep.txt"),
        "download": lambda: linked.download_file("runs/link/marker.txt", tmp_path / "copy.txt"),
        "local_dir": lambda: linked.local_dir("runs/link/sub"),
    }
    with pytest.raises(StorageError, match="escapes the storage root through a symlink"):
        calls[op]()
    _untouched(outside)
    assert not (tmp_path / "copy.txt").exists()


def test_list_does_not_descend_through_symlinks(linked: LocalStorage, tmp_path: Path) -> None:
    (tmp_path / "root" / "runs" / "alias.txt").symlink_to(tmp_path / "root" / "runs" / "inside.txt")
    # Neither the linked folder nor the file linked out of the root; a link inside the root is fine.
    assert linked.list("runs") == ["runs/alias.txt", "runs/inside.txt"]


def test_delete_prefix_removes_a_link_not_its_target(
    linked: LocalStorage, tmp_path: Path, outside: Path
) -> None:
    linked.delete_prefix("runs/link")
    assert not (tmp_path / "root" / "runs" / "link").exists()
    _untouched(outside)
    linked.delete_prefix("runs/file.txt")
    assert not (tmp_path / "root" / "runs" / "file.txt").is_symlink()
    _untouched(outside)
    assert linked.read_bytes("runs/inside.txt") == b"mine"


def test_delete_prefix_through_a_symlinked_parent_is_refused(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "runs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="escapes the storage root through a symlink"):
        storage.delete_prefix("runs/sub")
    _untouched(outside)


def test_commit_over_a_symlinked_stage_folder_stays_in_the_root(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(str(tmp_path / "root"))
    (tmp_path / "root" / "runs" / RUN).mkdir(parents=True)
    (tmp_path / "root" / PREFIX).symlink_to(outside, target_is_directory=True)
    manifest = commit(storage, RUN, STAGE, _output(tmp_path / "out"), config={}, inputs={})
    _untouched(outside)
    stored = tmp_path / "root" / PREFIX
    assert not stored.is_symlink() and (stored / MANIFEST).is_file()
    assert materialize(storage, manifest, tmp_path / "cache") == stored


# ---- a commit killed mid-upload to a real S3 server ---------------------------------------------------

_COMMIT_TO_S3 = """
import json, sys
from pathlib import Path
from core.config import StorageConfig
from core.datasets import commit
from core.storage import open_storage
cfg = StorageConfig(**json.loads(sys.argv[1]))
commit(open_storage(cfg), "run-1", "quality", Path(sys.argv[2]), config={"v": 2}, inputs={})
"""


def _many_files(root: Path, n: int) -> Path:
    """Other parts than `_committed`'s, `n` small files, then a 1 TiB sparse file that sorts last:
    `commit` hashes it before uploading, so the child can never finish, whatever the timing."""
    _output(root, sizes=(4, 4))
    for i in range(n):
        (root / "extra" / f"{i:04d}.json").parent.mkdir(exist_ok=True)
        (root / "extra" / f"{i:04d}.json").write_text(json.dumps({"i": i}))
    with (root / "zz-blocker.bin").open("wb") as fh:
        fh.truncate(1 << 40)
    return root


def test_commit_killed_mid_upload_to_s3_leaves_nothing_complete(
    tmp_path: Path, s3_config: StorageConfig
) -> None:
    storage = open_storage(s3_config)
    assert isinstance(storage, S3Storage)
    old = _committed(storage, tmp_path)  # a complete v1 that the killed v2 commit starts replacing

    src = _many_files(tmp_path / "v2", 200)
    conf = {k: s3_config.model_dump()[k] for k in ("root", "endpoint_url", "access_key_id", "checksum")}
    conf["secret_access_key"] = "testing"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [sys.executable, "-c", _COMMIT_TO_S3, json.dumps(conf), str(src)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len([k for k in storage.list(PREFIX) if "/extra/" in k]) < 5:
            if proc.poll() is not None:
                assert proc.stderr is not None
                pytest.fail(
                    f"committing child exited early ({proc.returncode}): {proc.stderr.read().decode()}"
                )
            assert time.monotonic() < deadline, "committing child never uploaded anything"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()

    keys = storage.list(PREFIX)
    assert any("/extra/" in k for k in keys)  # partly uploaded ...
    assert f"{PREFIX}/{MANIFEST}" not in keys and f"{PREFIX}/zz-blocker.bin" not in keys  # ... never complete
    assert read_manifest(storage, RUN, STAGE) is None
    assert not is_current(storage, RUN, STAGE, old.fingerprint)
    with pytest.raises(StorageError, match="is not committed"):
        require_manifest(storage, RUN, STAGE)
    # The old manifest, still in a reader's hands, cannot read the half-replaced data either.
    with pytest.raises(StorageError):
        materialize(storage, old, tmp_path / "cache")

    # The retry, with the blocker now an ordinary file, commits and reads back verified.
    (src / "zz-blocker.bin").unlink()
    (src / "zz-blocker.bin").write_bytes(b"done")
    manifest = commit(storage, RUN, STAGE, src, config={"v": 2}, inputs={})
    assert require_manifest(storage, RUN, STAGE) == manifest
    assert len(manifest.files) == 3 + 200 + 1
    folder = materialize(storage, manifest, tmp_path / "cache")
    assert pq.read_table(folder / "data").num_rows == manifest.rows["data"] == 8
    assert (folder / "zz-blocker.bin").read_bytes() == b"done"
