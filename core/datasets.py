"""Immutable, atomically committed stage datasets under `runs/<run id>/<stage>/`.

Protocol: the old manifest is removed first, data files are uploaded, and `_MANIFEST.json` is
written last in one atomic put. A dataset is complete iff its manifest exists, so a stage killed
mid-write leaves files but nothing that looks complete. The manifest's fingerprint hashes the
stage config, the fingerprints of its inputs and its code version: all the same => skip.

Reading trusts nothing on disk: a manifest is parsed field by field (a malformed one is a
StorageError, its paths are confined to the dataset), and `materialize` hands readers a folder holding
exactly the manifest's files, each matching its size, sha256 and parquet row count. Local datasets are
verified in place and a file the manifest does not list is refused, because readers take whole
folders; remote ones are downloaded and checked. Unchanged folders skip the re-hash (`_Marker`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from core.storage import Storage, StorageError, safe_key

MANIFEST = "_MANIFEST.json"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}$")
_STAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
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
    if not _RUN_ID.fullmatch(run_id or "") or ".." in run_id:
        raise ValueError(f"invalid run id {run_id!r}: use letters, digits and _.:+- (max 128)")
    return run_id


def stage_prefix(run_id: str, stage: str) -> str:
    return f"runs/{check_run_id(run_id)}/{stage}"


def fingerprint(config: dict[str, Any], inputs: dict[str, str], code: str = "") -> str:
    """What decides whether a committed stage is current: its config, its inputs' fingerprints and
    the version of the code it runs (core/code_version.py; empty when the caller has none)."""
    blob = json.dumps({"config": config, "inputs": inputs, "code": code}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---- reading a manifest: every field checked, since readers trust its paths, sizes and checksums ----

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "stage": (str,),
    "fingerprint": (str,),
    "config": (dict,),
    "inputs": (dict,),
    "files": (list,),
    "rows": (dict,),
    "stats": (dict,),
    "code_version": (str,),
    "created_at": (int, float),
}
_FILE_FIELDS = ("path", "bytes", "sha256", "rows")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_file(entry: Any, where: str) -> str:
    """The entry's path, once its fields are the types `commit` writes and the path stays in the dataset."""
    if not isinstance(entry, dict) or sorted(entry) != sorted(_FILE_FIELDS):
        raise StorageError(f"{where} must be an object with exactly the fields {', '.join(_FILE_FIELDS)}")
    path = entry["path"]
    if not isinstance(path, str):
        raise StorageError(f"{where}.path must be a string, got {type(path).__name__}")
    try:
        if safe_key(path) != path or path == MANIFEST:
            raise StorageError(f"refused storage key {path!r}: not a normalised dataset file path")
    except StorageError as err:
        raise StorageError(f"{where}.path: {err}") from None
    if not _count(entry["bytes"]):
        raise StorageError(f"{where}.bytes must be an integer >= 0, got {entry['bytes']!r}")
    if not isinstance(entry["sha256"], str) or not _HEX64.fullmatch(entry["sha256"]):
        raise StorageError(f"{where}.sha256 must be 64 lowercase hex digits, got {entry['sha256']!r}")
    parquet = PurePosixPath(path).suffix == ".parquet"
    if not (_count(entry["rows"]) if parquet else entry["rows"] is None):
        want = "an integer >= 0 (a parquet file)" if parquet else "null (not a parquet file)"
        raise StorageError(f"{where}.rows must be {want}, got {entry['rows']!r}")
    return path


def _check_fields(data: Any) -> None:
    if not isinstance(data, dict):
        raise StorageError(f"expected a JSON object, got {type(data).__name__}")
    if missing := [k for k in _FIELDS if k not in data]:
        raise StorageError(f"missing field(s) {', '.join(missing)}")
    if unknown := sorted(set(data) - set(_FIELDS)):
        raise StorageError(f"unknown field(s) {', '.join(map(str, unknown))}")
    for key, kinds in _FIELDS.items():
        if not isinstance(data[key], kinds) or isinstance(data[key], bool):
            want = " or ".join(k.__name__ for k in kinds)
            raise StorageError(f"field '{key}' must be {want}, got {type(data[key]).__name__}")
    if not _HEX64.fullmatch(data["fingerprint"]):
        raise StorageError("field 'fingerprint' must be 64 lowercase hex digits")
    if not _RUN_ID.fullmatch(data["run_id"]) or ".." in data["run_id"]:
        raise StorageError(f"field 'run_id' is not a valid run id: {data['run_id']!r}")
    if not _STAGE.fullmatch(data["stage"]):
        raise StorageError(f"field 'stage' is not a valid stage name: {data['stage']!r}")
    if not all(isinstance(v, str) for v in data["inputs"].values()):
        raise StorageError("field 'inputs' must map input stages to fingerprint strings")


def parse_manifest(data: Any, where: str) -> Manifest:
    """A Manifest from decoded JSON, or a StorageError naming `where` and what is wrong: a manifest
    missing `files` must not read as an empty complete dataset, nor a path in it leave the dataset."""
    try:
        _check_fields(data)
        paths = [_check_file(f, f"files[{i}]") for i, f in enumerate(data["files"])]
        if len(set(paths)) != len(paths):
            raise StorageError("field 'files' lists a path twice")
        if clash := set(paths) & {str(p) for path in paths for p in PurePosixPath(path).parents}:
            raise StorageError(f"field 'files' lists {sorted(clash)[0]!r} as a file and as a folder")
        if data["rows"] != (derived := _part_rows(data["files"])):
            raise StorageError(f"field 'rows' {data['rows']} differs from the files' row counts {derived}")
    except StorageError as err:
        raise StorageError(f"malformed manifest {where}: {err}") from None
    return Manifest(**data)


def read_manifest(storage: Storage, run_id: str, stage: str) -> Manifest | None:
    """The stage's manifest, None when it has none; a malformed one (bad JSON, missing or mistyped
    fields, paths out of the dataset, another stage's) is a StorageError, never a complete dataset."""
    key = f"{stage_prefix(run_id, stage)}/{MANIFEST}"
    if not storage.exists(key):
        return None
    where = storage.uri(key)
    try:
        data = json.loads(storage.read_bytes(key))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StorageError(f"malformed manifest {where}: not valid JSON ({err})") from None
    manifest = parse_manifest(data, where)
    if (manifest.run_id, manifest.stage) != (run_id, stage):
        got, want = f"run '{manifest.run_id}' stage '{manifest.stage}'", f"run '{run_id}' stage '{stage}'"
        raise StorageError(f"malformed manifest {where}: it describes {got}, not {want}")
    return manifest


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


def _part_rows(files: list[dict[str, Any]]) -> dict[str, int]:
    """Rows per part: the top folder (data, rejected, ...), `data` for top-level files."""
    rows: dict[str, int] = {}
    for f in files:
        if f["rows"] is not None:
            part = f["path"].split("/", 1)[0] if "/" in f["path"] else "data"
            rows[part] = rows.get(part, 0) + f["rows"]
    return rows


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
    manifest.rows = _part_rows(manifest.files)
    manifest.created_at = time.time()
    storage.write_bytes(f"{prefix}/{MANIFEST}", json.dumps(asdict(manifest), indent=1).encode())
    return manifest


# ---- reading a dataset: verified against its manifest, local and S3 alike ----------------------------


def default_cache_root() -> Path:
    """Where remote datasets are downloaded to, and verification markers are kept: a folder of this
    user's own (mode 0700), since another local user who could write there could swap a verified
    file or forge a marker."""
    root = Path(tempfile.gettempdir(), f"lmforge-cache-{os.getuid()}")
    root.mkdir(mode=0o700, exist_ok=True)
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise StorageError(f"refused cache folder {root}: it must be a folder of this user's with mode 0700")
    return root


def _mismatch(path: Path, entry: dict[str, Any], uri: str) -> str | None:
    """What is wrong with a local copy of a manifest file (size, sha256, parquet rows), or None."""
    size = path.stat().st_size
    if size != entry["bytes"]:
        return f"checksum mismatch for {uri}: {size} bytes, the manifest says {entry['bytes']}"
    digest = _sha256(path)
    if digest != entry["sha256"]:
        return f"checksum mismatch for {uri}: sha256 {digest}, the manifest says {entry['sha256']}"
    if entry["rows"] is not None:
        import pyarrow as pa

        try:
            rows = _parquet_rows(path)
        except (pa.ArrowException, OSError) as err:
            return f"row count mismatch for {uri}: unreadable parquet metadata ({err})"
        if rows != entry["rows"]:
            return f"row count mismatch for {uri}: {rows} rows, the manifest says {entry['rows']}"
    return None


def _scan(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """(regular files by relative path, other entries) under `root`, never following symlinks: a
    symlink, FIFO or socket in a dataset is something a reader must not be handed."""
    files: dict[str, os.stat_result] = {}
    odd: list[str] = []
    for folder, dirs, names in os.walk(root):  # followlinks=False: linked folders are listed, not entered
        for name in dirs + names:
            path = Path(folder, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                files[path.relative_to(root).as_posix()] = st
            elif not stat.S_ISDIR(st.st_mode):
                odd.append(path.relative_to(root).as_posix())
    return files, sorted(odd)


_RACY_NS = 1_000_000_000


def _signature(st: os.stat_result) -> list[int]:
    """Changes whenever the file does: a write or a utime() moves ctime, a replacement moves the inode."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class _Marker:
    """The fast path: `<cache>/.verified/<key>.json` records the stat signatures of a folder's files
    when they last matched the manifest, so an unchanged folder is not hashed again on every read.
    The key covers the folder and the manifest's file list (checksums included); the marker lives
    outside the dataset, so it is never one of its files. Writing it is best effort. Files changed in
    the last second are not recorded: timestamps are coarse, and a second change within the same tick
    would leave the signature as it was (git's "racy clean" problem). Bit rot that bypasses the
    filesystem goes unseen until the signature changes; that is the price of not re-hashing."""

    def __init__(self, cache_root: Path, folder: Path, manifest: Manifest) -> None:
        blob = json.dumps({"folder": str(folder.resolve()), "files": manifest.files}, sort_keys=True)
        self.path = cache_root / ".verified" / f"{hashlib.sha256(blob.encode()).hexdigest()}.json"

    def matches(self, signatures: dict[str, list[int]]) -> bool:
        try:
            return bool(json.loads(self.path.read_bytes()) == signatures)
        except (OSError, ValueError):
            return False

    def save(self, signatures: dict[str, list[int]]) -> None:
        now = time.time_ns()
        if any(now - signature[4] < _RACY_NS for signature in signatures.values()):
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".tmp-{secrets.token_hex(8)}")
            tmp.write_text(json.dumps(signatures))
            os.replace(tmp, self.path)
        except OSError:
            pass


def _verify_in_place(storage: Storage, manifest: Manifest, folder: Path, cache_root: Path) -> None:
    """Local datasets are read where they lie, so the folder must hold exactly the manifest's files:
    Spark reads whole folders (`spark.read.parquet(dir)`), and would read a planted extra part too."""
    prefix = stage_prefix(manifest.run_id, manifest.stage)
    expected = {f["path"]: f for f in manifest.files}
    found, odd = _scan(folder)
    found.pop(MANIFEST, None)
    if extra := sorted({*odd, *(set(found) - set(expected))}):
        raise StorageError(
            f"refused to read {storage.uri(prefix)}: it holds {storage.uri(f'{prefix}/{extra[0]}')}, which "
            f"is not a regular file its manifest lists ({len(extra)} unlisted in all)"
        )
    if missing := sorted(set(expected) - set(found)):
        raise StorageError(f"{storage.uri(f'{prefix}/{missing[0]}')} is listed in its manifest but missing")
    signatures = {rel: _signature(found[rel]) for rel in expected}
    marker = _Marker(cache_root, folder, manifest)
    if marker.matches(signatures):
        return
    for rel, entry in expected.items():
        if problem := _mismatch(folder / rel, entry, storage.uri(f"{prefix}/{rel}")):
            raise StorageError(problem)
    marker.save(signatures)


def _prune(target: Path, expected: dict[str, dict[str, Any]]) -> None:
    """Remove from a download cache what the manifest does not list, and every symlink (unlinked, not
    followed), so the folder handed to readers holds the manifest's files only."""
    for folder, dirs, names in os.walk(target, topdown=False):
        for name in dirs + names:
            path = Path(folder, name)
            rel = path.relative_to(target).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                path.unlink()
            elif path.is_dir():
                if rel in expected:
                    shutil.rmtree(path)  # a folder where a file belongs
            elif rel not in expected:
                path.unlink()


def _download_verified(storage: Storage, manifest: Manifest, cache_root: Path) -> Path:
    prefix = stage_prefix(manifest.run_id, manifest.stage)
    target = cache_root / manifest.run_id / manifest.stage / manifest.fingerprint[:16]
    if not target.resolve().is_relative_to(cache_root.resolve()):
        raise StorageError(f"refused cache folder {target}: a symlink leads it out of {cache_root}")
    expected = {f["path"]: f for f in manifest.files}
    _prune(target, expected)
    found, _ = _scan(target)
    marker = _Marker(cache_root, target, manifest)
    if set(found) == set(expected) and marker.matches({r: _signature(found[r]) for r in expected}):
        return target
    for rel, entry in expected.items():
        dest, uri = target / rel, storage.uri(f"{prefix}/{rel}")
        if rel in found and _mismatch(dest, entry, uri) is None:
            continue
        storage.download_file(f"{prefix}/{rel}", dest)
        if problem := _mismatch(dest, entry, uri):
            raise StorageError(problem)
    found, _ = _scan(target)
    marker.save({r: _signature(found[r]) for r in expected})
    return target


def verified_local_dir(storage: Storage, manifest: Manifest, cache_root: Path) -> Path | None:
    """The dataset's folder when the storage is local, verified in place; None when it is remote."""
    manifest = parse_manifest(asdict(manifest), f"for run {manifest.run_id!r} stage {manifest.stage!r}")
    local = storage.local_dir(stage_prefix(manifest.run_id, manifest.stage))
    if local is not None:
        _verify_in_place(storage, manifest, local, cache_root)
    return local


def materialize(storage: Storage, manifest: Manifest, cache_root: Path) -> Path:
    """A local folder holding exactly the dataset's files, each matching the manifest's size, sha256
    and parquet row count: local datasets are verified in place (extra files refused), remote ones
    are downloaded into `cache_root` (extra files removed). A folder whose files are unchanged since
    they were last verified is not hashed again (`_Marker`)."""
    local = verified_local_dir(storage, manifest, cache_root)  # parses the manifest: valid from here
    return local if local is not None else _download_verified(storage, manifest, cache_root)
