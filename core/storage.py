"""Storage by URI: a local directory or `s3://bucket/prefix`, behind one small interface.

Keys are relative, `/`-separated paths under the configured root; a key that would escape the
root (`..`, absolute paths, backslashes) is refused so a bad run id can never overwrite other data.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from core.config import StorageConfig

if TYPE_CHECKING:
    import pyarrow.fs


class StorageError(RuntimeError):
    """Storage is unreachable or a key is invalid; the message says which."""


def safe_key(key: str) -> str:
    """Validate and normalise a relative key."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"refused storage key {key!r}: keys are relative '/'-separated paths")
    parts = key.split("/")
    if any(p in ("..", ".") for p in parts) or (len(parts[0]) >= 2 and parts[0][1] == ":"):
        raise StorageError(f"refused storage key {key!r}: it escapes the storage root")
    return posixpath.normpath(key)


class Storage(ABC):
    """Base interface; `open_storage` returns the backend for the configured root."""

    root: str

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{safe_key(key)}"

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...
    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...
    @abstractmethod
    def exists(self, key: str) -> bool: ...
    @abstractmethod
    def list(self, prefix: str) -> list[str]: ...
    @abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...
    @abstractmethod
    def upload_file(self, local: Path, key: str) -> None: ...
    @abstractmethod
    def download_file(self, key: str, local: Path) -> None: ...
    @abstractmethod
    def arrow_fs(self) -> tuple[pyarrow.fs.FileSystem, str]: ...

    def local_dir(self, prefix: str) -> Path | None:
        """A local directory holding `prefix`, or None when data must be downloaded first."""
        return None


class LocalStorage(Storage):
    """A directory. Every operation resolves symlinks and refuses a key that leads out of the root, so a
    planted link cannot make a read, write, list or delete reach data the storage does not own. (A link
    swapped in between the check and the use is not guarded against: whoever can do that owns the root.)"""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root.removeprefix("file://")).resolve())

    def _confine(self, path: Path, key: str) -> None:
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
            raise StorageError(f"refused storage key {key!r}: {err}") from None
        if not real.is_relative_to(self.root):
            raise StorageError(f"refused storage key {key!r}: it escapes the storage root through a symlink")

    def _path(self, key: str) -> Path:
        """The key's path under the root, after checking that no symlink on the way leads out of it."""
        path = Path(self.root, safe_key(key))
        self._confine(path, key)
        return path

    def _replace(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        """Write a temporary file and rename it: atomic, and a symlink at `key` is replaced, not followed.
        The file gets the umask's permissions (not mkstemp's 0600), so other readers of the root see it."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                fill(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomic on POSIX: readers see the old file or the whole new one."""
        self._replace(key, lambda fh: fh.write(data))

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"no such object: {self.uri(key)}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        """Files under `prefix`. Symlinked folders are not descended into and a symlinked file is listed
        only when it resolves to a file inside the root: a link must not widen what the storage holds."""
        base = self._path(prefix)
        keys = []
        for folder, _, names in os.walk(base):  # followlinks=False
            for name in names:
                path = Path(folder, name)
                if path.is_symlink():
                    try:
                        if not path.resolve(strict=True).is_relative_to(self.root):
                            continue
                    except (OSError, RuntimeError):
                        continue
                if path.is_file():
                    keys.append(path.relative_to(self.root).as_posix())
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        """A symlink at `prefix` is unlinked, never followed: rmtree through it would empty its target."""
        path = Path(self.root, safe_key(prefix))
        self._confine(path.parent, prefix)
        if path.is_symlink():
            path.unlink()
            return
        self._confine(path, prefix)
        shutil.rmtree(path, ignore_errors=True)  # does not follow symlinks inside the tree

    def upload_file(self, local: Path, key: str) -> None:
        with local.open("rb") as src:
            self._replace(key, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))

    def download_file(self, key: str, local: Path) -> None:
        src = self._path(key)
        local.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, local)

    def arrow_fs(self) -> tuple[pyarrow.fs.FileSystem, str]:
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem(), self.root

    def local_dir(self, prefix: str) -> Path | None:
        return self._path(prefix)


class S3Storage(Storage):
    def __init__(self, cfg: StorageConfig) -> None:
        import boto3
        from botocore.config import Config

        self.cfg = cfg
        self.root = cfg.root.rstrip("/")
        self.bucket, _, prefix = cfg.root.removeprefix("s3://").partition("/")
        if not self.bucket:
            raise StorageError(f"config field 'storage.root': no bucket in {cfg.root!r}")
        self.prefix = prefix.strip("/")
        secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
        self.client = boto3.client(
            "s3",
            endpoint_url=cfg.endpoint_url,
            region_name=cfg.region,
            aws_access_key_id=cfg.access_key_id,
            aws_secret_access_key=secret,
            config=Config(
                connect_timeout=cfg.connect_timeout_s,
                read_timeout=max(cfg.connect_timeout_s, 30),
                retries={"max_attempts": cfg.max_attempts, "mode": "standard"},
                request_checksum_calculation=cfg.checksum,
                response_checksum_validation=cfg.checksum,
            ),
        )

    def _key(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(*args, **kwargs)
        except EndpointConnectionError as err:
            raise StorageError(f"cannot reach S3 endpoint {self.cfg.endpoint_url or 'AWS'}: {err}") from None
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "?")
            raise StorageError(f"S3 {what} failed ({code}) for s3://{self.bucket}: {err}") from None
        except BotoCoreError as err:
            raise StorageError(f"S3 {what} failed for {self.cfg.endpoint_url or 'AWS'}: {err}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """A single PUT is atomic: readers never see a partial object."""
        self._call("put", self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data)

    def read_bytes(self, key: str) -> bytes:
        resp = self._call("get", self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        return resp["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"S3 head failed for s3://{self.bucket}/{self._key(key)}: {err}") from None
        except Exception:
            # Surface connection problems with the same clear message as other calls.
            self._call("head", self.client.head_object, Bucket=self.bucket, Key=self._key(key))
            raise

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        full = self._key(prefix).rstrip("/") + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        for page in self._call("list", list, pages):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def list(self, prefix: str) -> list[str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in self._iter_keys(prefix))

    def delete_prefix(self, prefix: str) -> None:
        keys = list(self._iter_keys(prefix))
        for i in range(0, len(keys), 1000):
            batch = {"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
            self._call("delete", self.client.delete_objects, Bucket=self.bucket, Delete=batch)

    def upload_file(self, local: Path, key: str) -> None:
        self._call("upload", self.client.upload_file, str(local), self.bucket, self._key(key))

    def download_file(self, key: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", self.client.download_file, self.bucket, self._key(key), str(local))

    def arrow_fs(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """pyarrow ignores AWS_ENDPOINT_URL, so the endpoint is passed explicitly."""
        import pyarrow.fs

        endpoint = self.cfg.endpoint_url
        fs = pyarrow.fs.S3FileSystem(
            access_key=self.cfg.access_key_id,
            secret_key=self.cfg.secret_access_key.get_secret_value() if self.cfg.secret_access_key else None,
            region=self.cfg.region,
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme=endpoint.split("://", 1)[0] if endpoint else "https",
            connect_timeout=self.cfg.connect_timeout_s,
        )
        return fs, f"{self.bucket}/{self.prefix}".rstrip("/")


def open_storage(cfg: StorageConfig) -> Storage:
    if cfg.root.startswith("s3://"):
        return S3Storage(cfg)
    if "://" in cfg.root and not cfg.root.startswith("file://"):
        raise StorageError(
            f"config field 'storage.root': unsupported scheme in {cfg.root!r} (use a path or s3://)"
        )
    return LocalStorage(cfg.root)
