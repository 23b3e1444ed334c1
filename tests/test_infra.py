"""The deployment files agree with the Compose spec, with each other, with the `compose` profile and
with requirements.txt. Offline: no Docker, no cluster, no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.config import REPO_ROOT, PipelineConfig, load_config

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
K8S = REPO_ROOT / "infra" / "k8s"
SERVICES = {
    "minio",
    "minio-init",
    "postgres",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "spark-master",
    "spark-worker",
    "ray-head",
    "ray-worker",
}
AIRFLOW = sorted(s for s in SERVICES if s.startswith("airflow-"))
THIRD_PARTY = {"minio", "minio-init", "postgres"}


@pytest.fixture
def profile(monkeypatch: pytest.MonkeyPatch) -> PipelineConfig:
    monkeypatch.delenv("LMFORGE_CONFIG", raising=False)
    return load_config("compose")


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> str:
    cmd = service.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG\s+(\w+)=(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE))


def test_compose_file_matches_the_compose_spec() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    assert checker.exists(), f"{checker} missing: it is installed from requirements.txt"
    proc = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_has_every_service_and_no_dangling_dependency(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert "version" not in compose, "the Compose spec dropped the top-level `version` key"
    assert not SERVICES - set(services), f"missing: {sorted(SERVICES - set(services))}"
    for name, service in services.items():
        targets = service.get("depends_on") or {}
        missing = set(targets) - set(services)
        assert not missing, f"{name} depends on undefined services {sorted(missing)}"
        assert name not in targets, f"{name} depends on itself"


def test_images_are_ours_or_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in THIRD_PARTY:
            assert "build" not in service, name
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag ({image})"
        else:
            build = service.get("build") or {}
            assert build.get("dockerfile") == "infra/Dockerfile", f"{name} must build infra/Dockerfile"
            assert (REPO_ROOT / build.get("context", ".") / build["dockerfile"]).is_file()


def test_airflow_services_use_the_compose_profile_and_spark_default(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    for name in AIRFLOW:
        env = env_of(services[name])
        assert env.get("LMFORGE_PROFILE") == "compose", name
        assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES") == "False", name
        conn = json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])
        assert conn["conn_type"] == "spark", name
        # The Spark provider builds the master as host:port; it must be the profile's master.
        assert f"{conn['host']}:{conn['port']}" == profile.spark.master, name
        mounts = [str(v) for v in services[name].get("volumes", [])]
        dags_folder = env["AIRFLOW__CORE__DAGS_FOLDER"]
        assert any(m.startswith("./dags:") and m.split(":")[1] == dags_folder for m in mounts), name


def test_minio_endpoint_and_bucket_match_the_compose_profile(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    endpoint = urlsplit(profile.storage.endpoint_url or "")
    bucket = urlsplit(profile.storage.root).netloc
    assert endpoint.hostname in services, f"no service named {endpoint.hostname!r}"
    minio = services[endpoint.hostname]
    assert "server" in command_of(minio)
    assert endpoint.port == 9000, "MinIO's S3 API listens on 9000"
    assert bucket and f"local/{bucket}" in command_of(services["minio-init"])
    assert set(services["minio-init"]["depends_on"]) == {endpoint.hostname}
    for name in (*AIRFLOW, "spark-worker", "ray-head", "ray-worker"):
        env = env_of(services[name])
        assert env.get("AWS_ENDPOINT_URL") == profile.storage.endpoint_url, name
        assert env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"), name
    user = env_of(minio)["MINIO_ROOT_USER"]
    assert all(env_of(services[n])["AWS_ACCESS_KEY_ID"] == user for n in AIRFLOW)


def test_spark_and_ray_services_match_the_compose_profile(
    services: dict[str, dict[str, Any]], profile: PipelineConfig
) -> None:
    spark = urlsplit(profile.spark.master)
    assert spark.hostname in services
    master = command_of(services[spark.hostname])
    assert "org.apache.spark.deploy.master.Master" in master and f"--port {spark.port}" in master
    assert f"org.apache.spark.deploy.worker.Worker {profile.spark.master}" in command_of(
        services["spark-worker"]
    )
    ray = urlsplit(profile.ray.address or "")
    assert ray.hostname in services
    head = command_of(services[ray.hostname])
    assert "--head" in head and f"--ray-client-server-port {ray.port}" in head
    assert f"--address {ray.hostname}:6379" in command_of(services["ray-worker"])


def test_image_holds_every_package_of_the_project() -> None:
    """The image runs DAGs, spark-submit and Ray jobs: every package they import must be in it."""
    text = DOCKERFILE.read_text()
    for package in ("core", "jobs", "training", "orchestration", "lmforge", "dags"):
        assert f"COPY --chown=50000:0 {package} /opt/lmforge/{package}" in text, package


def test_dockerfile_pins_follow_requirements() -> None:
    args, req, text = dockerfile_args(), pins(), DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, flags=re.MULTILINE)
    assert args["TORCH_VERSION"] == req["torch"]
    assert "torch==${TORCH_VERSION}" in text
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert args["PYSPARK_VERSION"] == req["pyspark"]
    assert args["RAY_VERSION"] == req["ray"]
    assert "openjdk-17-jre-headless" in text
    assert "PYTHONPATH=/opt/lmforge" in text
    assert re.search(r"^USER\s+(?!root\b|0\b)\S+", text, flags=re.MULTILINE), "the image must not run as root"


def test_hadoop_aws_matches_the_hadoop_pyspark_bundles() -> None:
    """The S3A jar must be built for the same Hadoop as pyspark's hadoop-client jars."""
    pyspark = pytest.importorskip("pyspark")
    jars = Path(pyspark.__file__).parent / "jars"
    bundled = {
        p.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
        for p in jars.glob("hadoop-client-api-*.jar")
    }
    assert bundled == {dockerfile_args()["HADOOP_VERSION"]}
