"""Publish a run's committed shards: every file its manifest lists, then the manifest, last.

Layout: `<publish.uri>/runs/<run id>/shards/<file>` and `.../shards/_MANIFEST.json`, the storage
root's own layout, so the destination is itself a storage root that core/datasets.py reads and
verifies (`read_manifest`, `materialize`). The manifest is the completion marker, as for a commit:
it is removed first when it is stale, written only after every file verified, and a publish killed
midway leaves files (or, on S3, unfinished multipart uploads, which are no objects) but no
manifest, so it never looks complete. A rerun skips the files that already verify and finishes
the rest. With no `publish.uri`, or one that is the storage root, the commit is the publish.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.config import PipelineConfig
from core.datasets import MANIFEST, Manifest, default_cache_root, materialize, require_manifest, stage_prefix
from core.storage import open_storage
from jobs.publish.destination import Destination, PublishError

STAGE = "shards"


@dataclass
class PublishResult:
    run_id: str
    dataset_uri: str  # the published shards folder
    manifest_uri: str  # its manifest: the Asset event names it
    in_place: bool
    files: int
    bytes: int
    uploaded: int = 0
    skipped: int = 0
    removed: int = 0  # stale objects, and unfinished uploads of killed attempts
    verified: dict[str, int] = field(default_factory=dict)  # verification -> files
    seconds: float = 0.0


def open_destination(cfg: PipelineConfig) -> Destination | None:
    """The configured destination, None to publish in place. `publish.uri` is config-only
    (core/overrides.py refuses it in params): whoever triggers a run cannot choose where it goes."""
    uri = cfg.publish.uri
    if not uri:
        return None
    if uri.startswith("s3://"):
        from jobs.publish.s3 import S3Destination

        return S3Destination(cfg.storage, uri, cfg.publish)
    if "://" in uri and not uri.startswith("file://"):
        raise PublishError(
            f"config field 'publish.uri': unsupported scheme in {uri!r} (use a folder or s3://)"
        )
    from jobs.publish.local import LocalDestination

    return LocalDestination(uri)


def publish(cfg: PipelineConfig, run_id: str, cache_root: Path | None = None) -> PublishResult:
    """Copy the run's committed shards to `publish.uri`, verified, manifest last."""
    start = time.monotonic()
    storage = open_storage(cfg.storage)
    prefix, manifest = stage_prefix(run_id, STAGE), require_manifest(storage, run_id, STAGE)
    dest = open_destination(cfg)
    if dest is None or dest.uri(prefix) == storage.uri(prefix):
        uri = storage.uri(prefix)
        return PublishResult(run_id, uri, f"{uri}/{MANIFEST}", True, len(manifest.files), manifest.bytes)
    folder = materialize(storage, manifest, cache_root or default_cache_root())  # verified source
    result = _copy(dest, prefix, manifest, folder)
    result.seconds = time.monotonic() - start
    return result


def _copy(dest: Destination, prefix: str, manifest: Manifest, folder: Path) -> PublishResult:
    """The files that do not verify yet, then the manifest. A stale manifest goes first and files
    the manifest does not list are removed (readers refuse a dataset folder holding them)."""
    key, data = f"{prefix}/{MANIFEST}", json.dumps(asdict(manifest), indent=1).encode()
    todo = [f for f in manifest.files if not dest.present(f"{prefix}/{f['path']}", folder / f["path"], f)]
    listed = {f"{prefix}/{f['path']}" for f in manifest.files} | {key}
    extra = [k for k in dest.list(prefix) if k not in listed]
    old = dest.read(key)
    current = old == data and not todo and not extra
    if old is not None and not current:
        dest.delete(key)  # first: from here until the new manifest nothing looks complete
    for k in extra:  # an earlier publish's files, or a killed copy's temporary files
        dest.delete(k)
    result = PublishResult(
        manifest.run_id, dest.uri(prefix), dest.uri(key), False, len(manifest.files), manifest.bytes
    )
    for entry in todo:
        method = dest.put(folder / entry["path"], f"{prefix}/{entry['path']}", entry)
        result.verified[method] = result.verified.get(method, 0) + 1
    if not current:
        dest.put_last(key, data)
    result.uploaded, result.skipped = len(todo), len(manifest.files) - len(todo)
    result.removed = len(extra) + dest.finish(prefix)
    return result
