"""Shared fixtures: a real SparkSession, a project-local Airflow home, the demo corpus and site,
and a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import REPO_ROOT, StorageConfig, load_config
from orchestration.airflow_env import airflow_environ

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Airflow reads its home at import time: point it at a fresh folder before any test runs."""
    home = Path(tempfile.mkdtemp(prefix="lmforge-test-airflow-"))
    os.environ.update(airflow_environ(home=home, spark_master="local[2]"))
    # A local Ray's dashboard costs ~12 s per start; tests/test_progress_ray.py turns it on for itself.
    os.environ.setdefault("LMFORGE_RAY_DASHBOARD", "0")
    # The safety stage's key as a deployment sets it, so no test writes a key file into the checkout;
    # tests/test_pii.py removes it where the key file itself is under test.
    os.environ.setdefault("LMFORGE_PII_KEY", "5a" * 32)


@pytest.fixture(scope="session")
def spark():  # type: ignore[no-untyped-def]
    from jobs.spark.session import get_spark

    session = get_spark("lmforge-tests", "local[2]", shuffle_partitions=2)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """`airflow db migrate` on the session's SQLite DB (once)."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo.corpus import build_demo_corpus

    root = tmp_path_factory.mktemp("corpus")
    build_demo_corpus(root, max_pages=25, max_books=6, max_code_files=30)
    return root


@pytest.fixture(scope="session")
def site(small_corpus: Path) -> Iterator[object]:
    from demo.site import serve_directory

    with serve_directory(small_corpus / "site") as served:
        yield served


_S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
_bucket_numbers = itertools.count()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port, with dummy credentials in the env."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request access log
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _S3_ENV.items():
            mp.setenv(name, value)
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()  # the port the OS bound for port=0
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def s3_config(s3_endpoint: str) -> StorageConfig:
    """StorageConfig rooted at `s3://<fresh bucket>/prefix` on the loopback server."""
    import boto3

    bucket = f"lmforge-test-{next(_bucket_numbers)}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    storage = {
        "root": f"s3://{bucket}/prefix",
        "endpoint_url": s3_endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "checksum": "when_required",
    }
    return load_config("local", {"storage": storage}).storage


@pytest.fixture
def hostile_web() -> Iterator[object]:
    """The hostile local web (tests/hostile_web.py): `.base_url`, `.alt_url`, `.requests`."""
    from tests.hostile_web import serve_hostile_web

    with serve_hostile_web() as web:
        yield web


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as parsed (safe_load), for the infra and stack-security tests."""
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]
