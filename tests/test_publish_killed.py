"""A publish killed (SIGKILL) in the middle of a multipart upload never looks complete: the objects
uploaded so far are there, the interrupted one is only an unfinished multipart upload (no object),
and there is no manifest. A rerun skips what verifies, uploads the rest, writes the manifest and
aborts the dead upload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from core.config import REPO_ROOT, StorageConfig, load_config
from core.datasets import read_manifest, require_manifest
from core.storage import open_storage
from jobs.publish import publish
from tests.test_publish import FILES, PREFIX, RUN, local_src, s3_dest

# The child publishes for real; from its second UploadPart on, every part call hangs, after telling
# the parent, which then kills it: the first parts of train-000.bin are sent, the upload never completes.
_CHILD = """
import json, sys, threading, time
import botocore.client
from core.config import load_config
from jobs.publish import publish

real, lock, parts = botocore.client.BaseClient._make_api_call, threading.Lock(), []

def call(self, operation, params):
    if operation == "UploadPart":
        with lock:
            parts.append(params["PartNumber"])
            hang = len(parts) >= 2
            if len(parts) == 2:
                print("MID", params["Key"], flush=True)
        if hang:
            time.sleep(600)
    return real(self, operation, params)

botocore.client.BaseClient._make_api_call = call
publish(load_config("local", json.loads(sys.argv[1])), sys.argv[2])
print("FINISHED", flush=True)
"""


def test_killed_publish_never_looks_complete_and_a_rerun_resumes(
    tmp_path: Path, s3_config: StorageConfig
) -> None:
    overrides = {
        "storage": local_src(tmp_path, s3_config),
        "publish": {"uri": s3_dest(s3_config), "multipart_threshold_mb": 5, "multipart_chunksize_mb": 5},
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TMPDIR": str(tmp_path)}  # its own cache folder
    args = [sys.executable, "-c", _CHILD, json.dumps(overrides), RUN]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("MID"):
            proc.kill()
            pytest.fail(
                f"child did not reach the upload: {line!r} {proc.stderr.read() if proc.stderr else ''}"
            )
        assert line.split()[1].endswith(f"{PREFIX}/train-000.bin")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    cfg = load_config("local", overrides)
    dest = open_storage(cfg.storage.model_copy(update={"root": cfg.publish.uri}))
    assert dest.list(PREFIX) == [f"{PREFIX}/meta.json", f"{PREFIX}/tokenizer.json"]  # no manifest
    assert read_manifest(dest, RUN, "shards") is None
    client = boto3.client("s3", endpoint_url=s3_config.endpoint_url, region_name="us-east-1")
    bucket = s3_config.root.removeprefix("s3://").split("/")[0]
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"published/{PREFIX}/").get("Uploads", [])
    assert [u["Key"] for u in uploads] == [f"published/{PREFIX}/train-000.bin"]

    result = publish(cfg, RUN, cache_root=tmp_path / "cache")
    assert (result.skipped, result.uploaded, result.removed) == (2, len(FILES) - 2, 1)
    assert require_manifest(dest, RUN, "shards") == require_manifest(open_storage(cfg.storage), RUN, "shards")
    assert not client.list_multipart_uploads(Bucket=bucket, Prefix=f"published/{PREFIX}/").get("Uploads")
