"""What the deployment exposes and how it is guarded (issue 12, "Hardening").

Offline, no Docker: docker-compose.yml publishes loopback ports only, holds no credential (each is
a required `${VAR:?...}`, so Compose refuses to start without it; .env.example lists them all),
turns Ray's token authentication on and gives Airflow a Fernet key; infra/ does the same with
Kubernetes Secrets. Then a real local Ray head with token authentication (tests/ray_head.py): its
Jobs API refuses anyone without the token, and the pretrain task's client (training/jobs_api.py,
orchestration/pretrain_operator.py) gets in with the token of its environment only, while the
cluster's secrets stay in the cluster's environment.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography.fernet import Fernet
from ray.job_submission import JobStatus

from core.config import REPO_ROOT, StorageConfig
from core.datasets import commit
from core.storage import open_storage
from tests.ray_head import RayHead, ray_head
from tests.test_training_ray import write_text_shards
from training.jobs_api import RayAuthError, RayJobError, RayJobs

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "infra" / "Dockerfile"
K8S = REPO_ROOT / "infra" / "k8s"
# Environment names that hold a credential; *_FILE / *_PATH name a file holding one, not a value.
CREDENTIAL = re.compile(r"PASSWORD|PASSWD|SECRET|_KEY|TOKEN|FERNET|ROOT_USER", re.I)
A_FILE = re.compile(r"_(?:FILE|PATH)$", re.I)
# Compose interpolation (compose-spec "Interpolation"): $$, $VAR, ${VAR}, ${VAR<op>arg}.
INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?+])([^}]*))?\}|\$(\w+)")
REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]+\}$")
RAY_NODES = ("ray-head", "ray-worker", "ray-worker-gpu")
# the nodes, where the pretrain task runs, and the triggerer running its deferred wait
TOKEN_HOLDERS = {*RAY_NODES, "airflow-scheduler", "airflow-triggerer"}


class Unset(LookupError):
    """A `${VAR:?msg}` / `${VAR?msg}` whose VAR is missing: Compose stops with `msg`."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """One Compose value with `env` substituted, as `docker compose config` would."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3) or ""
        have = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":?", "?") and not have:
            raise Unset(f"{name}: {arg}")
        if op in (":-", "-") and not have:
            return arg
        if op in (":+", "+"):
            return arg if have else ""
        return env.get(name, "")

    return INTERPOLATION.sub(sub, value)


def strings(node: Any) -> Iterator[str]:
    """Every string of a parsed YAML document (keys too): what Compose interpolates."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)
    elif isinstance(node, str):
        yield node


def unset_variables(doc: Any, env: dict[str, str]) -> set[str]:
    missing = set()
    for text in strings(doc):
        while True:
            try:
                interpolate(text, env)
                break
            except Unset as err:
                name = str(err).split(":", 1)[0]
                missing.add(name)
                env = {**env, name: "x"}
    return missing


def env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^\w+=", line)]
    return {name: value for name, value in pairs}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- docker-compose.yml, .env.example, .gitignore ------------------------------------------------


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = []
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: host networking publishes every port"
        for port in service.get("ports") or []:
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:") and str(port).count(":") == 2, f"{name}: {port}"
            published.append(name)
    assert "ray-head" in published and "airflow-apiserver" in published  # the check saw them


def test_ray_nodes_require_the_token_and_only_its_users_hold_it(services: dict[str, dict[str, Any]]) -> None:
    for name in RAY_NODES:
        env = env_of(services[name])
        assert env.get("RAY_AUTH_MODE") == "token", name
        assert (m := REQUIRED.match(env.get("RAY_AUTH_TOKEN", ""))) and m.group(1) == "RAY_AUTH_TOKEN", name
    scheduler = env_of(services["airflow-scheduler"])
    assert scheduler["RAY_AUTH_TOKEN"] == env_of(services["ray-head"])["RAY_AUTH_TOKEN"]
    holders = {name for name, service in services.items() if "RAY_AUTH_TOKEN" in env_of(service)}
    assert holders == TOKEN_HOLDERS, "Spark, MinIO, Postgres and the Airflow UI never need the Ray token"


def test_no_credential_has_a_value_in_the_file(compose: dict[str, Any], services: dict[str, Any]) -> None:
    """Every credential variable is required from the environment: no literal, no default."""
    checked = set()
    for name, service in services.items():
        for var, value in env_of(service).items():
            if CREDENTIAL.search(var) and not A_FILE.search(var):
                assert REQUIRED.match(value), f"{name}: {var} must be ${{VAR:?message}}, not {value!r}"
                checked.add(var)
    assert {"MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD", "AWS_SECRET_ACCESS_KEY", "RAY_AUTH_TOKEN"} <= checked
    # credentials inside longer values (the DB URL, mc's host URL) are required references too
    for text in strings(compose):
        for m in INTERPOLATION.finditer(text):
            name = m.group(1) or m.group(4)
            if name and CREDENTIAL.search(name):
                assert m.group(2) == ":?", f"{m.group(0)} in {text!r}: credentials get no default"


def test_airflow_encrypts_its_secrets_with_a_fernet_key(services: dict[str, dict[str, Any]]) -> None:
    airflow = [name for name in services if name.startswith("airflow-")]
    for name in airflow:
        ref = REQUIRED.match(env_of(services[name]).get("AIRFLOW__CORE__FERNET_KEY", ""))
        assert ref and ref.group(1) == "AIRFLOW_FERNET_KEY", f"{name} has no Fernet key"
    # .env.example documents a generator of valid keys, and the key reaches Airflow unchanged
    assert 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"' in (
        ENV_EXAMPLE.read_text()
    )
    key = Fernet.generate_key().decode()
    Fernet(
        interpolate(env_of(services[airflow[0]])["AIRFLOW__CORE__FERNET_KEY"], {"AIRFLOW_FERNET_KEY": key})
    )


def test_compose_refuses_to_start_without_each_credential(compose: dict[str, Any]) -> None:
    """`${VAR:?}` stops `docker compose` while VAR is unset or empty; .env.example lists exactly them."""
    example = env_example()
    required = unset_variables(compose, {})
    assert required == set(example), f"in the file, not in .env.example: {required ^ set(example)}"
    assert {"MINIO_ROOT_USER", "AIRFLOW_FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD", "RAY_AUTH_TOKEN"} <= required
    assert unset_variables(compose, {name: "" for name in example}) == required  # empty counts as unset
    assert unset_variables(compose, example) == set()
    assert all(value.startswith("change-me") for value in example.values()), "placeholders only"
    env = {"MINIO_ROOT_USER": "u", "MINIO_ROOT_PASSWORD": "p"}
    s3 = compose["x-s3-env"]
    assert (interpolate(s3["AWS_ACCESS_KEY_ID"], env), interpolate(s3["AWS_SECRET_ACCESS_KEY"], env)) == (
        "u",
        "p",
    )


def test_the_filled_in_env_file_is_git_ignored() -> None:
    lines = {line.strip() for line in (REPO_ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in lines
    assert not {".env*", ".env.*", "*.env.example"} & lines, ".env.example is the committed template"


# --- infra/ ---------------------------------------------------------------------------------------


def k8s_docs() -> list[dict[str, Any]]:
    files = sorted([*K8S.glob("**/*.yaml"), *K8S.glob("**/*.yml")])
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_entries(node: Any) -> Iterator[dict[str, Any]]:
    """Every container env entry ({name, value | valueFrom}) anywhere in a manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from (e for e in value if isinstance(e, dict) and "name" in e)
            else:
                yield from env_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_entries(item)


def test_k8s_ray_nodes_take_the_token_from_a_secret() -> None:
    docs = k8s_docs()
    (ray,) = [d["spec"] for d in docs if d["kind"] == "RayCluster"]
    groups = [ray["headGroupSpec"], *ray["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["RAY_AUTH_MODE"].get("value") == "token", container["name"]
            ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "lmforge-ray-token", "key": "auth_token"}, container["name"]
    assert ray["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert not ray["headGroupSpec"].get("enableIngress", False)
    for doc in docs:
        assert doc["kind"] != "Ingress", "nothing is published outside the cluster"
        if doc["kind"] == "Service":
            assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", doc["metadata"]["name"]
        for entry in env_entries(doc):
            if CREDENTIAL.search(entry["name"]) and not A_FILE.search(entry["name"]):
                assert "value" not in entry, f"{doc['kind']}: {entry['name']} is a literal, use a Secret"


def test_the_image_turns_token_auth_on_and_bakes_no_credential() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^\s+RAY_AUTH_MODE=token\s*$", text, flags=re.MULTILINE)
    declared = re.findall(r"^(?:ARG|ENV)?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)
    assert "RAY_AUTH_MODE" in declared
    assert not [n for n in declared if CREDENTIAL.search(n) and not A_FILE.search(n)], declared


# --- a real Ray head with token authentication ----------------------------------------------------

CLUSTER_SECRET = "cluster-only-" + "5" * 24  # what only the Ray nodes' environment holds


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment's config file (LMFORGE_CONFIG) shared by the cluster and the Airflow side."""
    root = tmp_path_factory.mktemp("deployment")
    shards = root / "shards"
    shards.mkdir()
    write_text_shards(shards)
    store = root / "store"
    commit(open_storage(StorageConfig(root=str(store))), "sec", "shards", shards, config={}, inputs={})
    path = root / "lmforge.json"
    path.write_text(json.dumps({"storage": {"root": str(store)}, "train": {"seq_len": 32, "batch_size": 4}}))
    return path


@pytest.fixture(scope="module")
def cluster(deployment: Path) -> Iterator[RayHead]:
    """One token-auth head for the module (a head that cannot start fails the tests)."""
    env = {"LMFORGE_CONFIG": str(deployment), "AWS_SECRET_ACCESS_KEY": CLUSTER_SECRET}
    with ray_head(token_auth=True, extra_env=env) as head:
        config = json.loads(deployment.read_text())
        deployment.write_text(json.dumps({**config, "ray": {"address": head.dashboard}}))
        yield head


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_dashboard_refuses_anyone_without_the_token(cluster: RayHead) -> None:
    """Reaching port 8265 is no longer enough to run a shell command on the cluster."""
    job = {"entrypoint": "echo pwned", "submission_id": "pwned"}
    assert requests.post(f"{cluster.dashboard}/api/jobs/", json=job, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "0" * 64}
    assert (
        requests.post(f"{cluster.dashboard}/api/jobs/", json=job, headers=wrong, timeout=10).status_code
        == 403
    )
    assert (
        requests.get(f"{cluster.dashboard}/api/jobs/pwned", headers=cluster.headers, timeout=10).status_code
        == 404
    )
    assert requests.get(f"{cluster.dashboard}/api/version", headers=cluster.headers, timeout=10).ok


def test_the_jobs_client_without_the_token_is_refused_clearly(
    cluster: RayHead, no_token: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RayAuthError, match=r"refused this client, which sent no token .* set RAY_AUTH_TOKEN"):
        RayJobs(cluster.dashboard)
    no_token.setenv("RAY_AUTH_TOKEN", "0" * 64)
    with pytest.raises(RayAuthError, match="which sent a token it rejected") as err:
        RayJobs(cluster.dashboard)
    assert "0" * 64 not in str(err.value)


def test_the_jobs_client_submits_with_the_token_of_its_environment(
    cluster: RayHead, no_token: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The job sees the cluster's secrets in its environment; none travels with the submission."""
    caplog.set_level("DEBUG")
    no_token.setenv("RAY_AUTH_TOKEN", cluster.token)
    jobs = RayJobs(cluster.dashboard, poll_s=0.2)
    code = (
        "import os; from training.jobs_api import print_result;"
        "print_result({'s3_secret_chars': len(os.environ.get('AWS_SECRET_ACCESS_KEY', ''))})"
    )
    job_id = jobs.submit("sec-env", shlex.join(["python", "-c", code]))
    assert jobs.wait(job_id, timeout_s=60) == {"s3_secret_chars": len(CLUSTER_SECRET)}
    info = jobs.client.get_job_info(job_id)
    assert CLUSTER_SECRET not in f"{info.entrypoint} {json.dumps(info.runtime_env)} {info.metadata}"
    assert cluster.token not in caplog.text
    # the token from a file (a mounted Kubernetes Secret) works the same
    no_token.delenv("RAY_AUTH_TOKEN")
    (tmp_path / "auth_token").write_text(cluster.token + "\n")
    no_token.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "auth_token"))
    assert RayJobs(cluster.dashboard).status(job_id) == JobStatus.SUCCEEDED


@pytest.mark.timeout(180)
def test_the_pretrain_task_submits_with_the_token_and_on_kill_stops_its_job(
    cluster: RayHead, deployment: Path, no_token: pytest.MonkeyPatch
) -> None:
    """The DAG's operator, configured by the deployment (LMFORGE_CONFIG + RAY_AUTH_TOKEN) only."""
    from orchestration.pretrain_operator import PretrainOperator

    no_token.setenv("LMFORGE_CONFIG", str(deployment))
    no_token.setenv("RAY_AUTH_TOKEN", cluster.token)
    op = PretrainOperator(task_id="train", poll_s=0.2, deferrable=False)  # the in-task wait and its on_kill
    outcome: list[BaseException | dict[str, Any]] = []

    def run() -> None:
        try:
            outcome.append(op.execute({"params": {"run_id": "sec", "steps": 100_000, "workers": 1}}))
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 90
    while op._jobs is None or op._job_id is None or op._jobs.status(op._job_id) != JobStatus.RUNNING:
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.2)
    assert op._job_id.startswith("lmforge-pretrain-sec-")
    entrypoint = op._jobs.client.get_job_info(op._job_id).entrypoint
    assert cluster.token not in entrypoint and CLUSTER_SECRET not in entrypoint
    op.on_kill()
    thread.join(timeout=60)
    assert isinstance(outcome[0], RayJobError) and "STOPPED" in str(outcome[0]), outcome
