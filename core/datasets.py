"""Immutable, atomically committed stage datasets under `runs/<run id>/<stage>/`.

Protocol: the old manifest is removed first, data files are uploaded, and `_MANIFEST.json` is
written last in one atomic put. A dataset is complete iff its manifest exists, so a stage killed
mid-write leaves files but nothing that looks complete. The manifest's fingerprint hashes the
stage config, the fingerprints of its inputs and its code version: all the same => skip.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.storage import Storage, StorageError

MANIFEST = "_MANIFEST.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")
_SKIP_FILES = ("_SUCCESS", ".crc")


@dataclass
class Manifest:
    run_id: str
    stage: str
    fingerprint: str
    config: dict[str, Any]
    inputs: dict[str, str]  # input stage -> its fingerprint
    files: list[dict[str, Any]] = field(default_factory=list)  # path, bytes, sha256, rows
    rows: dict[str, int] = field(default_factory=dict)  # part (data, rejected, ...) -> rows
    stats: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    created_at: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id or "") or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}: use letters, digits and _.:+- (max 128)")
    return run_id


def stage_prefix(run_id: str, stage: str) -> str:
    return f"runs/{check_run_id(run_id)}/{stage}"


def fingerprint(config: dict[str, Any], inputs: dict[str, str], code: str = "") -> str:
    """What decides whether a committed stage is current: its config, its inputs' fingerprints and
    the version of the code it runs (core/code_version.py; empty when the caller has none)."""
    blob = json.dumps({"config": config, "inputs": inputs, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_manifest(storage: Storage, run_id: str, stage: str) -> Manifest | None:
    key = f"{stage_prefix(run_id, stage)}/{MANIFEST}"
    if not storage.exists(key):
        return None
    return Manifest(**json.loads(storage.read_bytes(key)))


def require_manifest(storage: Storage, run_id: str, stage: str) -> Manifest:
    manifest = read_manifest(storage, run_id, stage)
    if manifest is None:
        raise StorageError(f"stage '{stage}' of run '{run_id}' is not committed (no {MANIFEST})")
    return manifest


def is_current(storage: Storage, run_id: str, stage: str, fp: str) -> bool:
    manifest = read_manifest(storage, run_id, stage)
    return manifest is not None and manifest.fingerprint == fp


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parquet_rows(path: Path) -> int | None:
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def commit(
    storage: Storage,
    run_id: str,
    stage: str,
    local_dir: Path,
    *,
    config: dict[str, Any],
    inputs: dict[str, str],
    stats: dict[str, Any] | None = None,
    code: str = "",
) -> Manifest:
    """Publish every file under `local_dir` as the stage's dataset, manifest last."""
    prefix = stage_prefix(run_id, stage)
    storage.delete_prefix(prefix)  # removes the old manifest first: nothing looks complete
    manifest = Manifest(
        run_id,
        stage,
        fingerprint(config, inputs, code),
        config,
        inputs,
        stats=stats or {},
        code_version=code,
    )
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(local_dir).as_posix()
        if path.name.startswith(".") or path.name.endswith(_SKIP_FILES):
            continue
        digest = _sha256(path)  # hash before upload: a reader can verify what it gets
        storage.upload_file(path, f"{prefix}/{rel}")
        rows = _parquet_rows(path)
        manifest.files.append({"path": rel, "bytes": path.stat().st_size, "sha256": digest, "rows": rows})
        if rows is not None:
            part = rel.split("/", 1)[0] if "/" in rel else "data"
            manifest.rows[part] = manifest.rows.get(part, 0) + rows
    manifest.created_at = time.time()
    storage.write_bytes(f"{prefix}/{MANIFEST}", json.dumps(asdict(manifest), indent=1).encode())
    return manifest


def materialize(storage: Storage, manifest: Manifest, cache_root: Path) -> Path:
    """A local directory with the dataset's files, downloading (and verifying) when remote."""
    prefix = stage_prefix(manifest.run_id, manifest.stage)
    local = storage.local_dir(prefix)
    if local is not None:
        return local
    target = cache_root / manifest.run_id / manifest.stage / manifest.fingerprint[:16]
    for f in manifest.files:
        dest = target / f["path"]
        if dest.exists() and _sha256(dest) == f["sha256"]:
            continue
        storage.download_file(f"{prefix}/{f['path']}", dest)
        if _sha256(dest) != f["sha256"]:
            raise StorageError(f"checksum mismatch for {storage.uri(prefix + '/' + f['path'])}")
    return target
