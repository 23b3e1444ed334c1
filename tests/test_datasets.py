"""Committed datasets: manifests that match the real files, fingerprints, verified downloads, and a
stage killed mid-write that leaves nothing that looks complete."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import REPO_ROOT, StorageConfig
from core.datasets import (
    MANIFEST,
    check_run_id,
    commit,
    fingerprint,
    is_current,
    materialize,
    read_manifest,
    require_manifest,
    stage_prefix,
)
from core.schema import REJECTED_SCHEMA, documents_table, make_document
from core.storage import LocalStorage, Storage, StorageError, open_storage

RUN, STAGE = "run-1", "quality"
CONFIG = {"min_words": 50, "max_words": 100_000}
INPUTS = {"extract": "f" * 64}
CODE = "0123abcd"  # a stage's code version (core/code_version.py)
FILES = ["data/part-00000.parquet", "data/part-00001.parquet", "rejected/part-00000.parquet", "stats.json"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _keys(paths: list[str]) -> list[str]:
    return sorted(f"runs/{RUN}/{STAGE}/{p}" for p in paths)


def _docs(n: int, tag: str = "") -> pa.Table:
    rows = [make_document("web", f"https://example.org/{tag}{i}", f"doc {i}") for i in range(n)]
    return documents_table(rows)


def _stage_output(root: Path, sizes: tuple[int, ...] = (3, 2), tag: str = "") -> Path:
    """A tiny stage output laid out the way Spark writes it, bookkeeping files included."""
    (root / "data").mkdir(parents=True)
    (root / "rejected").mkdir()
    for i, n in enumerate(sizes):
        pq.write_table(_docs(n, f"{tag}{i}-"), root / "data" / f"part-{i:05d}.parquet")
    reject = make_document("web", "https://example.org/short", "short")
    reject.update(reject_stage="quality", reject_reason="gopher_min_words:1")
    rejected = pa.Table.from_pylist([reject], schema=REJECTED_SCHEMA)
    pq.write_table(rejected, root / "rejected" / "part-00000.parquet")
    (root / "stats.json").write_text(json.dumps({"kept": sum(sizes), "rejected": 1}))
    (root / "data" / "_SUCCESS").write_bytes(b"")  # Spark bookkeeping: never published
    (root / "data" / ".part-00000.parquet.crc").write_bytes(b"crc")
    return root


def test_commit_then_read_manifest(tmp_path: Path) -> None:
    src = _stage_output(tmp_path / "out")
    storage = LocalStorage(str(tmp_path / "root"))
    written = commit(storage, RUN, STAGE, src, config=CONFIG, inputs=INPUTS, stats={"kept": 5}, code=CODE)
    manifest = require_manifest(storage, RUN, STAGE)
    assert manifest == written

    assert [f["path"] for f in manifest.files] == FILES
    stored = tmp_path / "root" / "runs" / RUN / STAGE
    for f in manifest.files:
        for copy in (stored / f["path"], src / f["path"]):
            assert f["bytes"] == copy.stat().st_size
            assert f["sha256"] == _sha256(copy)
        rows = pq.read_metadata(stored / f["path"]).num_rows if f["path"].endswith(".parquet") else None
        assert f["rows"] == rows
    assert manifest.rows == {"data": 5, "rejected": 1}
    assert manifest.bytes == sum((stored / p).stat().st_size for p in FILES)
    assert manifest.fingerprint == fingerprint(CONFIG, INPUTS, CODE)
    assert (manifest.config, manifest.inputs, manifest.stats) == (CONFIG, INPUTS, {"kept": 5})
    assert manifest.code_version == CODE and manifest.created_at > 0
    # Bookkeeping files stay local; the manifest is the only extra object.
    assert storage.list(stage_prefix(RUN, STAGE)) == _keys([*FILES, MANIFEST])

    assert is_current(storage, RUN, STAGE, fingerprint(CONFIG, INPUTS, CODE))
    assert not is_current(storage, RUN, STAGE, fingerprint(CONFIG, INPUTS, "other code"))
    assert not is_current(storage, RUN, STAGE, fingerprint({**CONFIG, "min_words": 51}, INPUTS))
    assert read_manifest(storage, RUN, "dedup") is None
    with pytest.raises(StorageError, match="stage 'dedup' of run 'run-1' is not committed"):
        require_manifest(storage, RUN, "dedup")
    assert materialize(storage, manifest, tmp_path / "cache") == stored  # local: no copy


def test_commit_skips_non_regular_files(tmp_path: Path) -> None:
    src = _stage_output(tmp_path / "out")
    os.mkfifo(src / "zz-pipe")  # never opened: a FIFO is not a dataset file
    manifest = commit(LocalStorage(str(tmp_path / "root")), RUN, STAGE, src, config=CONFIG, inputs={})
    assert [f["path"] for f in manifest.files] == FILES


@pytest.mark.parametrize(
    ("other_config", "other_inputs", "same"),
    [
        (CONFIG, INPUTS, True),
        (dict(reversed(CONFIG.items())), INPUTS, True),  # key order does not matter
        ({**CONFIG, "min_words": 51}, INPUTS, False),
        ({**CONFIG, "extra": None}, INPUTS, False),
        (CONFIG, {"extract": "e" * 64}, False),
        (CONFIG, {**INPUTS, "dedup": "d" * 64}, False),
        (INPUTS, CONFIG, False),
    ],
    ids=["same", "reordered", "value", "extra-key", "input-fp", "extra-input", "swapped"],
)
def test_fingerprint(other_config: dict[str, Any], other_inputs: dict[str, str], same: bool) -> None:
    base = fingerprint(CONFIG, INPUTS)
    assert len(base) == 64
    assert (fingerprint(other_config, other_inputs) == base) is same


def test_same_config_and_inputs_commit_the_same_fingerprint(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "root"))
    first = commit(storage, RUN, STAGE, _stage_output(tmp_path / "a"), config=CONFIG, inputs=INPUTS)
    second = commit(storage, "run-2", STAGE, _stage_output(tmp_path / "b"), config=CONFIG, inputs=INPUTS)
    assert first.fingerprint == second.fingerprint
    assert [f["sha256"] for f in first.files] == [f["sha256"] for f in second.files]  # deterministic files
    third = commit(storage, "run-3", STAGE, _stage_output(tmp_path / "c"), config={"x": 1}, inputs=INPUTS)
    assert third.fingerprint != first.fingerprint


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", "x" * 129, "a..b", ".hidden", "-x", "a b", "a\\b"])
def test_check_run_id_refuses(run_id: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid run id {run_id!r}")):
        check_run_id(run_id)
    with pytest.raises(ValueError, match="invalid run id"):
        stage_prefix(run_id, STAGE)


@pytest.mark.parametrize("run_id", ["r", "run-1", "2024-05-06T07:08:09+00:00", "manual__a_b.c", "x" * 128])
def test_check_run_id_accepts(run_id: str) -> None:
    assert check_run_id(run_id) == run_id
    assert stage_prefix(run_id, STAGE) == f"runs/{run_id}/{STAGE}"


def test_materialize_from_s3_verifies_checksums(tmp_path: Path, s3_config: StorageConfig) -> None:
    storage = open_storage(s3_config)
    src = _stage_output(tmp_path / "out")
    commit(storage, RUN, STAGE, src, config=CONFIG, inputs=INPUTS)
    manifest = require_manifest(storage, RUN, STAGE)
    assert manifest.rows == {"data": 5, "rejected": 1}

    target = materialize(storage, manifest, tmp_path / "cache")
    assert target == tmp_path / "cache" / RUN / STAGE / manifest.fingerprint[:16]
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == FILES
    for f in manifest.files:
        assert _sha256(target / f["path"]) == f["sha256"] == _sha256(src / f["path"])
    assert pq.read_table(target / "data").num_rows == 5

    # A cached copy that is intact is kept; a corrupted one is fetched again.
    kept = target / "data" / "part-00000.parquet"
    stamp = kept.stat().st_mtime_ns
    (target / "stats.json").write_text("corrupted")
    assert materialize(storage, manifest, tmp_path / "cache") == target
    assert kept.stat().st_mtime_ns == stamp
    assert _sha256(target / "stats.json") == _sha256(src / "stats.json")

    # An object changed behind the manifest's back is caught.
    storage.write_bytes(f"{stage_prefix(RUN, STAGE)}/data/part-00001.parquet", b"tampered")
    bad = f"{s3_config.root}/runs/{RUN}/{STAGE}/data/part-00001.parquet"
    with pytest.raises(StorageError, match=f"checksum mismatch for {bad}"):
        materialize(storage, manifest, tmp_path / "fresh-cache")


# ---- a stage killed mid-write --------------------------------------------------------------------

_COMMIT_IN_CHILD = """
import json, sys
from pathlib import Path
from core.datasets import commit
from core.storage import LocalStorage
root, src, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
commit(LocalStorage(root), "run-1", "quality", Path(src), config=config, inputs={})
"""


def _blocker(path: Path) -> None:
    """A 1 TiB sparse file that sorts last. `commit` hashes each file before uploading it, so the
    child is stuck (for many minutes) after every other file is published. A FIFO cannot do this:
    `commit` only publishes regular files (see test_commit_skips_non_regular_files)."""
    with path.open("wb") as fh:
        fh.truncate(1 << 40)


@contextmanager
def _committing_child(root: Path, src: Path, config: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    args = [sys.executable, "-c", _COMMIT_IN_CHILD, str(root), str(src), json.dumps(config)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def _kill_once_published(proc: subprocess.Popen[bytes], src: Path, stored: Path, paths: list[str]) -> None:
    """Wait until every file in `paths` is published with its full content, then SIGKILL the child."""
    deadline = time.monotonic() + 30
    while not all((stored / p).exists() and _sha256(stored / p) == _sha256(src / p) for p in paths):
        if proc.poll() is not None:
            assert proc.stderr is not None
            pytest.fail(f"committing child exited early ({proc.returncode}): {proc.stderr.read().decode()}")
        assert time.monotonic() < deadline, "committing child never published its files"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL  # killed mid-write, not finished


def _assert_nothing_looks_complete(storage: Storage, *fps: str) -> None:
    assert not storage.exists(f"{stage_prefix(RUN, STAGE)}/{MANIFEST}")
    assert read_manifest(storage, RUN, STAGE) is None
    for fp in fps:
        assert not is_current(storage, RUN, STAGE, fp)
    with pytest.raises(StorageError, match="is not committed"):
        require_manifest(storage, RUN, STAGE)


def test_killed_commit_leaves_nothing_complete(tmp_path: Path) -> None:
    src = _stage_output(tmp_path / "out")
    _blocker(src / "zz-last.bin")
    root = tmp_path / "root"
    stored = root / "runs" / RUN / STAGE
    with _committing_child(root, src, CONFIG) as proc:
        _kill_once_published(proc, src, stored, FILES)

    storage = LocalStorage(str(root))
    assert storage.list(stage_prefix(RUN, STAGE)) == _keys(FILES)  # the data, but no manifest
    _assert_nothing_looks_complete(storage, fingerprint(CONFIG, {}))

    # The retry, with the blocker now an ordinary file, publishes everything and the manifest.
    (src / "zz-last.bin").unlink()
    (src / "zz-last.bin").write_bytes(b"done")
    manifest = commit(storage, RUN, STAGE, src, config=CONFIG, inputs={})
    assert require_manifest(storage, RUN, STAGE) == manifest
    assert [f["path"] for f in manifest.files] == [*FILES, "zz-last.bin"]
    assert all(f["sha256"] == _sha256(stored / f["path"]) for f in manifest.files)
    assert manifest.rows == {"data": 5, "rejected": 1}
    assert is_current(storage, RUN, STAGE, fingerprint(CONFIG, {}))


def test_recommit_removes_the_old_manifest_first(tmp_path: Path) -> None:
    root = tmp_path / "root"
    storage = LocalStorage(str(root))
    old = commit(storage, RUN, STAGE, _stage_output(tmp_path / "v1"), config={"v": 1}, inputs={})
    assert is_current(storage, RUN, STAGE, old.fingerprint)

    src = _stage_output(tmp_path / "v2", sizes=(4, 4, 4), tag="v2-")
    _blocker(src / "zz-last.bin")
    new_files = [*FILES[:2], "data/part-00002.parquet", *FILES[2:]]
    with _committing_child(root, src, {"v": 2}) as proc:
        _kill_once_published(proc, src, root / "runs" / RUN / STAGE, new_files)

    # Half-replaced data is on disk, and neither the old nor the new manifest claims it.
    assert storage.list(stage_prefix(RUN, STAGE)) == _keys(new_files)
    _assert_nothing_looks_complete(storage, old.fingerprint, fingerprint({"v": 2}, {}))
