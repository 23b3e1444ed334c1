"""An S3 destination: boto3's managed transfer (`upload_file` with a TransferConfig) and each object's
SHA-256 checked against the manifest after upload.

S3 facts this relies on (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html and
https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html): a single PUT takes up to
5 GiB; multipart parts are 5 MiB to 5 GiB, at most 10,000 of them; an object appears only when its
single PUT or CompleteMultipartUpload succeeds, so a killed upload leaves no object, only parts that
are billed until the upload is aborted. `ChecksumAlgorithm=SHA256` makes the SDK send each request's
SHA-256 and S3 reject a body that does not match it; HeadObject returns the stored checksum with
`ChecksumMode=ENABLED` (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html).
The composite of a multipart object is recomputed from the local file with the part size boto3 used
(s3transfer's ChunksizeAdjuster); when no checksum is stored or the parts cannot be derived, the
object is re-read and hashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import PublishConfig, StorageConfig
from core.storage import S3Storage, safe_key
from jobs.publish.checksums import b64_of_hex, expected_parts, file_and_composite, part_count, stream_sha256
from jobs.publish.destination import PublishError

MiB = 1 << 20
SHA256 = {"ChecksumAlgorithm": "SHA256"}


def transfer_config(pub: PublishConfig) -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=pub.multipart_threshold_mb * MiB,
        multipart_chunksize=pub.multipart_chunksize_mb * MiB,
        max_concurrency=pub.max_concurrency,
    )


class S3Destination:
    """`uri` is `s3://bucket/prefix`; the endpoint, region, credentials and retries are the storage's."""

    def __init__(self, storage: StorageConfig, uri: str, pub: PublishConfig) -> None:
        self.store = S3Storage(storage.model_copy(update={"root": uri}))
        self.client, self.bucket, self.pub = self.store.client, self.store.bucket, pub
        self.transfer = transfer_config(pub)

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.store.prefix}/{key}" if self.store.prefix else key

    def uri(self, key: str) -> str:
        return self.store.uri(key)

    def list(self, prefix: str) -> list[str]:
        return self.store.list(prefix)

    def read(self, key: str) -> bytes | None:
        return self.store.read_bytes(key) if self.store.exists(key) else None

    def delete(self, key: str) -> None:
        self.store._call("delete", self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def _head(self, key: str) -> dict[str, Any] | None:
        if not self.store.exists(key):
            return None
        head = self.client.head_object
        return dict(
            self.store._call("head", head, Bucket=self.bucket, Key=self._key(key), ChecksumMode="ENABLED")
        )

    def _reread(self, key: str) -> str:
        body = self.store._call("get", self.client.get_object, Bucket=self.bucket, Key=self._key(key))["Body"]
        return stream_sha256(iter(lambda: body.read(MiB), b""))

    def _stored_checksum(
        self, head: dict[str, Any], local: Path, entry: dict[str, Any]
    ) -> tuple[str, str] | None:
        """(method, the checksum S3 should hold for the manifest's bytes), or None: re-read instead."""
        stored = head.get("ChecksumSHA256")
        if not stored:
            return None
        parts = part_count(stored, head.get("ETag", ""))
        if parts is None:
            return "checksum", b64_of_hex(entry["sha256"])
        from s3transfer.utils import ChunksizeAdjuster

        part_size = ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, entry["bytes"])
        if parts != expected_parts(entry["bytes"], part_size):
            return None  # uploaded with another part size (an earlier config): re-read
        whole, composite, _ = file_and_composite(local, part_size)
        if whole != entry["sha256"]:
            raise PublishError(
                f"{local} changed since it was verified: sha256 {whole}, the manifest says {entry['sha256']}"
            )
        return "composite checksum", f"{composite}-{parts}"

    def check(self, key: str, local: Path, entry: dict[str, Any]) -> tuple[str, str | None]:
        """(how it was verified, what is wrong or None) for the object at `key` against `entry`."""
        uri = self.uri(key)
        if (head := self._head(key)) is None:
            return "head", f"{uri} is missing"
        if (size := head["ContentLength"]) != entry["bytes"]:
            return "head", f"size mismatch for {uri}: {size} bytes, the manifest says {entry['bytes']}"
        stored = self._stored_checksum(head, local, entry) if self.pub.verify == "checksum" else None
        if stored is not None:
            method, want = stored
            got = head["ChecksumSHA256"]
            same = got in (want, want.split("-")[0])  # moto leaves out the -<parts>
        else:
            method, want, got = "reread", entry["sha256"], self._reread(key)
            same = got == want
        problem = f"checksum mismatch for {uri} ({method}): S3 holds {got}, the manifest's bytes give {want}"
        return method, None if same else problem

    def present(self, key: str, local: Path, entry: dict[str, Any]) -> bool:
        return self.check(key, local, entry)[1] is None

    def upload(self, local: Path, key: str) -> None:
        """boto3's managed transfer: multipart above the threshold, parts sent concurrently."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError

        try:
            self.client.upload_file(
                str(local), self.bucket, self._key(key), ExtraArgs=SHA256, Config=self.transfer
            )
        except (S3UploadFailedError, BotoCoreError) as err:
            raise PublishError(f"upload of {self.uri(key)} failed: {err}") from None

    def put(self, local: Path, key: str, entry: dict[str, Any]) -> str:
        self.upload(local, key)
        try:
            method, problem = self.check(key, local, entry)
            if problem:
                raise PublishError(problem)
        except PublishError:
            self.delete(key)  # a wrong object must not be skipped as present by the next attempt
            raise
        return method

    def put_last(self, key: str, data: bytes) -> None:
        """One PUT: the manifest appears whole or not at all."""
        put = self.client.put_object
        self.store._call("put", put, Bucket=self.bucket, Key=self._key(key), Body=data, **SHA256)

    def finish(self, prefix: str) -> int:
        """Abort multipart uploads a killed attempt left under `prefix` (their parts are billed)."""
        full = self._key(prefix).rstrip("/") + "/"
        found = self.store._call(
            "list uploads", self.client.list_multipart_uploads, Bucket=self.bucket, Prefix=full
        )
        uploads = found.get("Uploads", [])
        for up in uploads:
            abort = self.client.abort_multipart_upload
            self.store._call("abort", abort, Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
        return len(uploads)
