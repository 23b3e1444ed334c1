"""Publishing throughput: MB/s from a committed `shards` dataset to a local S3 server, with multipart on
and off, median of `runs`.

Why (issue 15 item 4, "Must show"): `make bench` reports upload MB/s to the local S3 server with
multipart on and off.

Data: `--mb` (200) MB of random bytes (incompressible, as token files are) in 25 MB files plus a
tokenizer-sized JSON, committed as the `shards` stage of a local storage root. Each run publishes it
(jobs/publish: boto3 `upload_file` with the mode's TransferConfig, SHA-256 verification, manifest
last) to a fresh prefix and is timed whole, verification included; the objects are deleted after.
The server is moto's ThreadedMotoServer on loopback, as tests/conftest.py starts it: in this process,
holding objects in memory, so it shares the GIL with the client and the numbers compare transfer
settings on one machine, not a network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.config import load_config
from core.datasets import MANIFEST, commit
from core.storage import LocalStorage, S3Storage, open_storage
from jobs.publish import publish
from jobs.publish.s3 import transfer_config

FILE_MB = 25
# mode -> publish settings: multipart splits each 25 MB file into 8 MiB parts sent 8 at a time;
# "off" sets the threshold above every file, so each is one PutObject.
MODES: dict[str, dict[str, Any]] = {
    "multipart on (8 MiB parts)": {"multipart_threshold_mb": 8, "multipart_chunksize_mb": 8},
    "multipart off (single PUT)": {"multipart_threshold_mb": 5 * 1024},
    "multipart on, verify=reread": {
        "multipart_threshold_mb": 8,
        "multipart_chunksize_mb": 8,
        "verify": "reread",
    },
}

BASELINES = {k: MODES[k] for k in list(MODES)[:2]}  # raw upload_file, same TransferConfig


@contextmanager
def s3_server() -> Iterator[str]:
    """moto on a free loopback port with dummy credentials, as tests/conftest.py `s3_endpoint`."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def shards(root: Path, mb: int) -> int:
    """Commit `mb` MB of shard-like files as run `bench`'s shards; the bytes committed."""
    src = root.parent / "src"
    src.mkdir(parents=True)
    for i in range(max(1, mb // FILE_MB)):
        (src / f"train-{i:03d}.bin").write_bytes(os.urandom(FILE_MB * 1_000_000))
    (src / "tokenizer.json").write_bytes(os.urandom(500_000).hex().encode())
    return commit(LocalStorage(str(root)), "bench", "shards", src, config={}, inputs={}).bytes


def one_run(endpoint: str, root: Path, mode: dict[str, Any], n: int) -> float:
    """Seconds to publish the shards to a fresh prefix (the objects are removed after)."""
    storage = {"root": str(root), "endpoint_url": endpoint, "access_key_id": "testing"}
    storage |= {"secret_access_key": "testing", "checksum": "when_required"}
    cfg = load_config("local", {"storage": storage, "publish": {"uri": f"s3://bench/run-{n}/", **mode}})
    result = publish(cfg, "bench", cache_root=root.parent / "cache")
    assert result.uploaded == result.files and not result.in_place
    open_storage(cfg.storage.model_copy(update={"root": "s3://bench"})).delete_prefix(f"run-{n}")
    return result.seconds


def raw_upload(endpoint: str, root: Path, mode: dict[str, Any], n: int) -> float:
    """The baseline: boto3 `upload_file` of the same files with the same TransferConfig, no checksum,
    no verification, no manifest: what the server and the transfer alone allow."""
    storage = {"root": "s3://bench", "endpoint_url": endpoint, "access_key_id": "testing"}
    storage |= {"secret_access_key": "testing", "checksum": "when_required"}
    cfg = load_config("local", {"storage": storage, "publish": mode})
    store = open_storage(cfg.storage)
    assert isinstance(store, S3Storage)
    files = sorted(p for p in (root / "runs/bench/shards").iterdir() if p.name != MANIFEST)
    start = time.monotonic()
    for path in files:
        store.client.upload_file(
            str(path), "bench", f"raw-{n}/{path.name}", Config=transfer_config(cfg.publish)
        )
    seconds = time.monotonic() - start
    store.delete_prefix(f"raw-{n}")
    return seconds


def measure(runs: int, mb: int) -> tuple[int, dict[str, list[float]]]:
    import boto3

    work = Path(tempfile.mkdtemp(prefix="lmforge-bench-publish-"))
    try:
        size = shards(work / "root", mb)
        with s3_server() as endpoint:
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
            seconds: dict[str, list[float]] = {name: [] for name in MODES}
            seconds |= {f"baseline: {name}": [] for name in BASELINES}
            for n in range(runs):
                for name, mode in MODES.items():
                    seconds[name].append(one_run(endpoint, work / "root", mode, n))
                for name, mode in BASELINES.items():
                    seconds[f"baseline: {name}"].append(raw_upload(endpoint, work / "root", mode, n))
        return size, seconds
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs: int = 3, mb: int = 200) -> str:
    size, seconds = measure(runs, mb)
    lines = [
        "",
        f"Publish to the local S3 server (moto; {size / 1e6:.0f} MB in {FILE_MB} MB files, "
        f"upload + SHA-256 verification + manifest, median of {runs}):",
        f"  {'mode':<44} {'s':>6} {'MB/s':>7}",
    ]
    for name, times in seconds.items():
        s = statistics.median(times)
        lines.append(f"  {name:<44} {s:>6.2f} {size / 1e6 / s:>7.1f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mb", type=int, default=200)
    args = p.parse_args()
    print(report(args.runs, args.mb))


if __name__ == "__main__":
    main()
